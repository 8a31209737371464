#!/bin/sh
# Runs every benchmark of anneald in turn and prints their figures.
#   bench/run.sh BUILD_DIR
# Each BUILD_DIR/bench/bench_* binary runs from the repository root with BUILD_DIR as its
# first argument and prints lines "BENCH <name> <value> <unit> ref=<value> ratio=<value>".
# BENCH_QUICK=1 in the environment asks each benchmark for a short smoke run.
build=${1:-build}
status=0
for b in "$build"/bench/bench_*; do
    [ -x "$b" ] || continue
    case "$b" in *.d) continue ;; esac
    echo "== $b"
    "$b" "$build" || { echo "!! $b exited with status $?"; status=1; }
done
exit $status
