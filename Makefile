# anneald — build, test, run.
#
#   make            build build/anneald
#   make deps       install what is missing to build, run and test (Debian packages, npm packages)
#   make deps-run   only what building and running need (make run uses this)
#   make test       deps + build + every test; ends with "N passed, N failed"
#   make check      the same suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   make run        build and start the daemon on 127.0.0.1:8470 with ./anneald.db
#   make bench      benchmarks: every figure beside its reference, as a ratio; writes BENCHMARKS.md
#   make load-test  wrk + 200 SSE clients against the daemon for 300 s; report in build/load-test.txt
#   make crash-test kill -9 the daemon 300 times during a job; report in build/crash-test.txt
#   make soak-test  every user action over and over for 480 s; figures per cycle in build/soak-test.csv

PREFIX   ?= /usr/local
BINDIR   ?= $(PREFIX)/bin
UNITDIR  ?= $(PREFIX)/lib/systemd/system
DOCDIR   ?= $(PREFIX)/share/doc/anneald
MANDIR   ?= $(PREFIX)/share/man
DESTDIR  ?=
BUILD    ?= build
CC       ?= cc
PKG_CONFIG ?= pkg-config
WERROR   ?= -Werror
OPT      ?= -O3 -march=x86-64-v3 -mtune=native -fno-math-errno -fno-trapping-math

PKGS := libuv libmicrohttpd libcjson sqlite3 libzstd zlib
# What building and running need, and what only the tests, benchmarks and fuzzing need.
DEB_RUN  := libuv1-dev libmicrohttpd-dev libcjson-dev libsqlite3-dev libzstd-dev pkg-config \
            libdnnl-dev zlib1g-dev dataset-fashion-mnist openmpi-bin libopenmpi-dev
DEB_TEST := libcmocka-dev chromium sqlite3 wrk clang libclang-rt-14-dev prometheus strace
DEB_PKGS := $(DEB_RUN) $(DEB_TEST)

WARN := -std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wformat=2 -Wno-format-nonliteral $(WERROR)
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
ALL_CFLAGS := $(WARN) $(OPT) -g -D_GNU_SOURCE -I. -I$(BUILD)/gen $(PKG_CFLAGS) -MMD -MP $(CFLAGS)
# OpenMP for the loops of core/ that run on a job's threads (gpt_layers.c: the element-wise
# layers; gpt_attention.c: the heads; gpt.c: the team a pass runs on; optim.c, optim_clip.c: large steps
# and clipping). It is the runtime oneDNN already uses (libgomp), so both share one thread pool and
# one thread count (gemm_set_threads). The fuzzing build (clang) leaves it out (the loops then
# run on the calling thread): OMP_CFLAGS=-Wno-unknown-pragmas.
OMP_CFLAGS ?= -fopenmp
ALL_LDLIBS := $(PKG_LIBS) -ldnnl -lgomp -lm -lpthread $(LDLIBS)
TEST_LDLIBS := -lcmocka

# Every .c in a folder belongs to that folder's layer; daemon/main.c is the only entry point.
CORE_SRC   := $(sort $(wildcard core/*.c util/*.c))
SVC_SRC    := $(sort $(wildcard store/*.c api/*.c jobs/*.c) $(filter-out daemon/main.c,$(wildcard daemon/*.c)))
CORE_OBJ   := $(CORE_SRC:%.c=$(BUILD)/%.o)
SVC_OBJ    := $(SVC_SRC:%.c=$(BUILD)/%.o)
ASSET_OBJ  := $(BUILD)/gen/assets.o
TEST_SRC   := $(sort $(wildcard tests/unit/test_*.c))
TEST_BIN   := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)
BENCH_SRC  := $(sort $(wildcard bench/bench_*.c))
BENCH_BIN  := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

# Files built into the binary (tools/mkassets.sh): the builtin data sets and the dashboard.
UPLOT  := node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css
ASSETS := $(sort $(wildcard data/*.csv data/*.txt)) $(sort $(wildcard web/*.html web/*.js web/*.css)) \
          $(UPLOT) api/openapi.json

.PHONY: rank all deps deps-run test check run bench clean install uninstall tests benches crash-test \
        load-test soak-test
all: $(BUILD)/anneald

$(BUILD)/core/gpt.o $(BUILD)/core/gpt_layers.o $(BUILD)/core/gpt_attention.o \
  $(BUILD)/core/optim.o $(BUILD)/core/optim_clip.o $(BUILD)/core/gemm.o: ALL_CFLAGS += $(OMP_CFLAGS)

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/gen/assets.S: tools/mkassets.sh $(ASSETS)
	@mkdir -p $(@D)
	sh tools/mkassets.sh $(ASSETS) > $@

# uPlot comes from npm (package-lock.json), never from the repository.
$(UPLOT) &: package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $(UPLOT)

$(BUILD)/gen/assets.o: $(BUILD)/gen/assets.S
	$(CC) -c $< -o $@

$(BUILD)/libcore.a: $(CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

# The rank program of data-parallel jobs: the one binary built with Open MPI's mpicc (the
# daemon never links MPI). Built by `make tests` and `make rank` when mpicc is installed.
MPICC ?= mpicc
HAVE_MPICC := $(shell command -v $(MPICC) 2>/dev/null)
# (jobs/fashion.o: the standalone rank program reads the builtin fashion-mnist files itself;
# jobs/pace.o: its checkpoints are spaced as a one-process job's)
$(BUILD)/anneald-rank: $(wildcard rank/*.c rank/*.h) $(BUILD)/jobs/fashion.o \
                       $(BUILD)/jobs/pace.o $(BUILD)/libcore.a $(ASSET_OBJ)
	$(MPICC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(filter %.c %.o %.a,$^) $(ALL_LDLIBS)
rank: $(BUILD)/anneald-rank

$(BUILD)/libsvc.a: $(SVC_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/anneald: $(BUILD)/daemon/main.o $(BUILD)/libsvc.a $(BUILD)/libcore.a $(ASSET_OBJ)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(filter %.c %.o %.a,$^) $(ALL_LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libsvc.a $(BUILD)/libcore.a $(ASSET_OBJ)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(filter %.c %.o %.a,$^) $(ALL_LDLIBS) $(TEST_LDLIBS)

$(BUILD)/bench/%: bench/%.c $(BUILD)/libsvc.a $(BUILD)/libcore.a $(ASSET_OBJ)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(filter %.c %.o %.a,$^) $(ALL_LDLIBS)

tests: $(BUILD)/anneald $(TEST_BIN) $(if $(HAVE_MPICC),$(BUILD)/anneald-rank)

# The LD_PRELOAD shim of tests/e2e/powerloss.test.mjs, which logs the daemon's writes and syncs
# of its store. Built without $(CFLAGS): under `make check` it is loaded ahead of the
# sanitizers' runtime, and must not need it.
$(BUILD)/tests/powerloss/iolog.so: tests/powerloss/iolog.c
	@mkdir -p $(@D)
	$(CC) $(WARN) -O2 -g -D_GNU_SOURCE -fPIC -shared -o $@ $< -ldl -lpthread
tests: $(BUILD)/tests/powerloss/iolog.so
benches: $(BUILD)/anneald $(BENCH_BIN)

# Installs only what is missing, so a second run costs a few dpkg queries.
deps: DEB_WANT = $(DEB_PKGS)
deps-run: DEB_WANT = $(DEB_RUN)
deps deps-run:
	@missing=""; for p in $(DEB_WANT); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@$(MAKE) -s --no-print-directory $(UPLOT) >/dev/null

test: deps
	$(MAKE) tests
	@sh tests/run.sh $(BUILD)

check: deps
	$(MAKE) BUILD=build-san OPT="-O1 -fno-omit-frame-pointer" \
	  CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all" \
	  LDFLAGS="-fsanitize=address,undefined" tests
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ANNEALD_SANITIZED=1 sh tests/run.sh build-san

# The long crash test: kill -9 the daemon CRASH_KILLS times (300) mid-job; report in $(BUILD)/crash-test.txt.
crash-test: deps
	$(MAKE) all
	@rm -f $(BUILD)/crash-test.txt
	CRASH_KILLS=$${CRASH_KILLS:-300} CRASH_REPORT=$(BUILD)/crash-test.txt ANNEALD_BIN=$(BUILD)/anneald \
	  node --test tests/e2e/crash.test.mjs
	@cat $(BUILD)/crash-test.txt

run: deps-run
	$(MAKE) all
	./$(BUILD)/anneald --listen 127.0.0.1:8470 --db anneald.db

# python3-torch with OpenBLAS (not the reference BLAS it pulls in): bench_gpt's PyTorch
# reference, which only the benchmarks need.
bench: deps
	@( for p in python3-torch libopenblas0-pthread; do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || exit 1; done ) || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends python3-torch libopenblas0-pthread >/dev/null; }
	$(MAKE) benches
	@sh bench/run.sh $(BUILD)

# The long load test: LOAD_SECONDS (300) of wrk and 200 SSE clients while two jobs train.
load-test: deps
	$(MAKE) all
	@rm -f $(BUILD)/load-test.txt
	LOAD_SECONDS=$${LOAD_SECONDS:-300} LOAD_REPORT=$(BUILD)/load-test.txt ANNEALD_BIN=$(BUILD)/anneald \
	  node --test tests/e2e/load.test.mjs
	@cat $(BUILD)/load-test.txt

# The soak: SOAK_SECONDS (480) of every user action, over and over (bench/soak.mjs); fails
# when descriptors or threads grow after the warm-up or memory keeps climbing.
soak-test: deps
	$(MAKE) all
	node bench/soak.mjs --bin $(BUILD)/anneald --seconds $${SOAK_SECONDS:-480} --warmup 5 > $(BUILD)/soak-test.csv

# INSTALL_BIN: the binary to install (default: the one this tree builds, built if needed).
INSTALL_BIN ?= $(BUILD)/anneald
# The README and BENCHMARKS.md at the top of DOCDIR, docs/ beside them as in this tree, so
# the README's links to docs/… resolve where it is installed.
DOCS := README.md BENCHMARKS.md
DOCS_SUB := $(sort $(wildcard docs/*.md)) docs/job-page.png
install: $(INSTALL_BIN)
	install -Dm755 $(INSTALL_BIN) $(DESTDIR)$(BINDIR)/anneald
	@# the rank program of multi-rank jobs, where it was built (needs mpicc): `anneald rank`
	@# looks for it next to the daemon
	if [ -x $(dir $(INSTALL_BIN))anneald-rank ]; then \
	  install -m755 $(dir $(INSTALL_BIN))anneald-rank $(DESTDIR)$(BINDIR)/anneald-rank; fi
	@mkdir -p $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR) $(DESTDIR)$(MANDIR)/man1
	sed -e 's|^ExecStart=/usr/local/bin/anneald|ExecStart=$(BINDIR)/anneald|' \
	    -e 's|^Documentation=.*|Documentation=man:anneald(1) file://$(DOCDIR)/README.md|' \
	  systemd/anneald.service > $(DESTDIR)$(UNITDIR)/anneald.service
	chmod 644 $(DESTDIR)$(UNITDIR)/anneald.service
	install -m644 $(DOCS) $(DESTDIR)$(DOCDIR)/
	@mkdir -p $(DESTDIR)$(DOCDIR)/docs
	install -m644 $(DOCS_SUB) $(DESTDIR)$(DOCDIR)/docs/
	install -m644 docs/anneald.1 $(DESTDIR)$(MANDIR)/man1/anneald.1

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/anneald $(DESTDIR)$(BINDIR)/anneald-rank \
	  $(DESTDIR)$(UNITDIR)/anneald.service \
	  $(DESTDIR)$(MANDIR)/man1/anneald.1 $(addprefix $(DESTDIR)$(DOCDIR)/,$(DOCS) $(DOCS_SUB))
	-rmdir $(DESTDIR)$(DOCDIR)/docs $(DESTDIR)$(DOCDIR) 2>/dev/null

clean:
	rm -rf build build-san

-include $(CORE_OBJ:.o=.d) $(SVC_OBJ:.o=.d) $(BUILD)/daemon/main.d $(TEST_BIN:=.d) $(BENCH_BIN:=.d)

# ------------------------------------------------------------------------------------------
# Fuzzing (tests/fuzz/): every tests/fuzz/fuzz_<t>.c defines LLVMFuzzerTestOneInput.
#
#   make fuzz [FUZZ_SECONDS=60] [FUZZ_TARGETS="csv jobspec"]
#       builds each target with clang, libFuzzer, ASan and UBSan in build-fuzz/ (the core
#       compiled there with clang too) and runs them one after another, FUZZ_SECONDS each, on
#       tests/fuzz/corpus/<t>/. The committed corpus is only read: new inputs go to
#       build-fuzz/findings/<t>/, crashes to build-fuzz/crashes/<t>-*.
#   make fuzz-merge
#       adds the findings that reach new coverage to the committed corpus (-merge=1).
#
# `make test` needs no clang: it builds the same targets with $(CC) against
# tests/fuzz/driver.c as $(BUILD)/tests/test_fuzz_<t>, which replay the committed corpus and
# print cmocka's summary lines for tests/run.sh.
FUZZ_ALL     := $(sort $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_TARGETS ?= $(FUZZ_ALL)
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_BUILD   := build-fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_OBJ     := $(FUZZ_ALL:%=$(BUILD)/tests/fuzz/fuzz_%.o) $(BUILD)/tests/fuzz/driver.o \
                $(BUILD)/tests/fuzz/seed_state.o
FUZZ_REGRESSION := $(FUZZ_ALL:%=$(BUILD)/tests/test_fuzz_%)

.PHONY: fuzz fuzz-build fuzz-merge fuzzers fuzz-clean
.SECONDARY: $(FUZZ_OBJ)
tests: $(FUZZ_REGRESSION)
clean: fuzz-clean

$(BUILD)/tests/test_fuzz_%: $(BUILD)/tests/fuzz/fuzz_%.o $(BUILD)/tests/fuzz/driver.o \
                            $(BUILD)/libsvc.a $(BUILD)/libcore.a $(ASSET_OBJ)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(ALL_LDLIBS)

# Writes real saved states as seeds: $(BUILD)/fuzz/seed_state state|train DIR.
$(BUILD)/fuzz/seed_state: $(BUILD)/tests/fuzz/seed_state.o $(BUILD)/libcore.a $(ASSET_OBJ)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(ALL_LDLIBS)

# Run with BUILD=$(FUZZ_BUILD) CC=clang (by fuzz-build): the libFuzzer binaries.
fuzzers: $(FUZZ_ALL:%=$(BUILD)/fuzz/fuzz_%)
$(BUILD)/fuzz/fuzz_%: $(BUILD)/tests/fuzz/fuzz_%.o $(BUILD)/libsvc.a $(BUILD)/libcore.a $(ASSET_OBJ)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer $(LDFLAGS) -o $@ $^ $(ALL_LDLIBS)

fuzz-build:
	$(MAKE) BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) OMP_CFLAGS=-Wno-unknown-pragmas OPT="-O1 -fno-omit-frame-pointer -march=x86-64-v3" \
	  CFLAGS="-fsanitize=fuzzer-no-link $(FUZZ_SAN)" LDFLAGS="$(FUZZ_SAN)" fuzzers

# One target at a time (one core); every target runs even after a crash, the exit status
# says whether any crashed.
fuzz: deps fuzz-build
	@failed=""; for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_BUILD)/findings/$$t $(FUZZ_BUILD)/crashes; \
	  dict=""; [ -f tests/fuzz/$$t.dict ] && dict="-dict=tests/fuzz/$$t.dict"; \
	  echo "== fuzz_$$t: $(FUZZ_SECONDS) s"; \
	  $(FUZZ_BUILD)/fuzz/fuzz_$$t $$dict -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	    -rss_limit_mb=2048 -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_BUILD)/crashes/$$t- \
	    $(FUZZ_BUILD)/findings/$$t tests/fuzz/corpus/$$t || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "crashed:$$failed (inputs in $(FUZZ_BUILD)/crashes/)"; exit 1; fi

fuzz-merge: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_BUILD)/findings/$$t; \
	  $(FUZZ_BUILD)/fuzz/fuzz_$$t -merge=1 tests/fuzz/corpus/$$t $(FUZZ_BUILD)/findings/$$t || exit 1; \
	done

fuzz-clean:
	rm -rf $(FUZZ_BUILD)

-include $(FUZZ_OBJ:.o=.d)
