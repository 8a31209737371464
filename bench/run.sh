#!/bin/sh
# Runs every benchmark of anneald and writes BENCHMARKS.md.
#   bench/run.sh BUILD_DIR
# One round runs each BUILD_DIR/bench/bench_* binary (from the repository root, BUILD_DIR as
# its first argument), then the service benchmarks (bench/service.mjs: the metrics' cost to a
# fast job, API requests/s under wrk), data-parallel steps/s over Open MPI (bench/mpi.sh) and
# the dashboard's open time (bench/dashboard.mjs).
# Each prints lines "BENCH <name> <value> <unit> ref=<value> ratio=<value>".
# BENCH_ROUNDS rounds (default 3) run one after another; bench/report.mjs then prints each
# figure's median line and writes the table to BENCHMARKS.md, with the machine and date.
# BENCH_QUICK=1 asks every benchmark for a short smoke run, runs one round and writes
# BUILD_DIR/BENCHMARKS-quick.md instead. BENCH_OUT=FILE writes the table to FILE. The summary
# of the last `make load-test` (BUILD_DIR/load-test.txt), when there is one, goes in too.
build=${1:-build}
quick=${BENCH_QUICK:-0}
if [ "$quick" != 0 ]; then
    rounds=${BENCH_ROUNDS:-1}
    outmd=${BENCH_OUT:-$build/BENCHMARKS-quick.md}
    cmd="BENCH_QUICK=1 make bench"
else
    rounds=${BENCH_ROUNDS:-3}
    outmd=${BENCH_OUT:-BENCHMARKS.md}
    cmd="make bench"
fi
# The commit the binaries were built from, taken before the rounds: commits made while they
# run (they take most of an hour) are not what was measured.
if [ -z "${BENCH_COMMIT:-}" ]; then
    BENCH_COMMIT=$(git rev-parse --short HEAD 2>/dev/null) || BENCH_COMMIT=
    if [ -n "$BENCH_COMMIT" ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
        BENCH_COMMIT="$BENCH_COMMIT with uncommitted changes"
    fi
    export BENCH_COMMIT
fi
raw=$build/bench-raw.txt
one=$(mktemp)
trap 'rm -f "$one"' EXIT
: >"$raw"
status=0

# Runs "$@", shows its output and appends it to the raw log; a failure is remembered.
step() {
    echo "== $*"
    "$@" >"$one" 2>&1
    rc=$?
    cat "$one"
    cat "$one" >>"$raw"
    if [ "$rc" -ne 0 ]; then
        echo "!! $* exited with status $rc"
        status=1
    fi
}

r=1
while [ "$r" -le "$rounds" ]; do
    echo "==== round $r of $rounds"
    for b in "$build"/bench/bench_*; do
        [ -x "$b" ] || continue
        case "$b" in *.d) continue ;; esac
        step "$b" "$build"
    done
    step sh bench/mpi.sh "$build"
    step node bench/service.mjs "$build"
    step node bench/dashboard.mjs "$build"
    r=$((r + 1))
done

echo "==== medians of $rounds round(s), written to $outmd"
BENCH_LOAD_REPORT=${BENCH_LOAD_REPORT:-$build/load-test.txt} \
    node bench/report.mjs "$raw" "$outmd" "$rounds" "$cmd" || status=1
exit $status
