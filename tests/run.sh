#!/bin/sh
# Runs every test of anneald and ends with one plain line: "N passed, N failed".
#   tests/run.sh BUILD_DIR
# Unit tests are cmocka binaries in BUILD_DIR/tests; end-to-end and browser tests are
# node --test files in tests/e2e (they start the real daemon, BUILD_DIR/anneald).
# A binary that dies without cmocka's summary counts as one failure. The fuzz-corpus replays
# (test_fuzz_*) count as one test per corpus in the summary; the number of inputs they
# replayed is reported on a line of its own.
build=${1:-build}
passed=0
failed=0
inputs=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

count() { # $1 = pattern followed by a number on a summary line; prints it, or 0
    n=$(grep -E "$1 *[0-9]+" "$log" | tail -n 1 | sed -E "s/.*$1 *([0-9]+).*/\1/")
    echo "${n:-0}"
}

for t in "$build"/tests/test_*; do
    [ -x "$t" ] || continue
    case "$t" in *.d) continue ;; esac
    echo "== $t"
    "$t" >"$log" 2>&1
    rc=$?
    cat "$log"
    p=$(count '\[  PASSED  \]')
    f=$(count '\[  FAILED  \]')
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "!! $t exited with status $rc"
        f=1
    fi
    case "$t" in
    */test_fuzz_*)
        n=$(sed -n -E 's/.*corpus of .*: ([0-9]+) input\(s\).*/\1/p' "$log" | tail -n 1)
        inputs=$((inputs + ${n:-0}))
        if [ "$f" -eq 0 ] && [ "$p" -gt 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
        ;;
    *)
        passed=$((passed + p))
        failed=$((failed + f))
        ;;
    esac
done

if ls tests/e2e/*.test.mjs >/dev/null 2>&1; then
    echo "== node --test tests/e2e"
    ANNEALD_BIN="$build/anneald" node --test --test-concurrency=1 tests/e2e/ >"$log" 2>&1
    rc=$?
    cat "$log"
    p=$(count '^# pass')
    f=$(count '^# fail')
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    passed=$((passed + p))
    failed=$((failed + f))
fi

echo "fuzz corpora: $inputs inputs replayed (counted above as one test per corpus)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
