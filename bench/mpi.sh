#!/bin/sh
# Data-parallel training over Open MPI on this machine: steps/s of a compute-bound mlp job
# (synthetic classification, 256 → 512 → 512 → 10, global batch 64, one thread per rank) run
# by the rank program at world_size 1 and 2, and the share of the W = 2 run spent in the
# gradient exchange (waiting for the slower rank included). Ranks yield the CPU while they
# wait (mpi_yield_when_idle): W = 2 fills both cores of a 2-core machine.
#   bench/mpi.sh BUILD_DIR   (BENCH_QUICK=1: a short smoke run)
build=${1:-build}
rank=$build/anneald-rank
if ! command -v mpirun >/dev/null 2>&1 || [ ! -x "$rank" ]; then
    echo "mpi: skipped (mpirun or $rank missing: make deps && make rank)"
    exit 0
fi
steps=300
[ "${BENCH_QUICK:-0}" != 0 ] && steps=20
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
for w in 1 2; do
    gas=$((2 / w))
    cat >"$dir/w$w.json" <<JSON
{"seed": 1, "model": {"type": "mlp", "inputs": 256, "hidden": [512, 512], "outputs": 10},
 "loss": "cross_entropy", "steps": $steps, "world_size": $w,
 "data": {"type": "synthetic", "task": "classification", "samples": 8192, "features": 256, "classes": 10},
 "ds_config": {"train_micro_batch_size_per_gpu": 32, "gradient_accumulation_steps": $gas,
   "optimizer": {"type": "Adam", "params": {"lr": 0.001}}}}
JSON
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
        mpirun -np $w --mca btl self,vader --mca mpi_yield_when_idle 1 --bind-to none "$rank" "$dir/w$w.json" \
        2>"$dir/err$w" >/dev/null || { cat "$dir/err$w"; exit 1; }
done
# "anneald-rank: N steps at world_size W in T s (S steps/s, C% in communication)"
s1=$(sed -n 's/.*(\([0-9.]*\) steps\/s.*/\1/p' "$dir/err1")
s2=$(sed -n 's/.*(\([0-9.]*\) steps\/s.*/\1/p' "$dir/err2")
c2=$(sed -n 's/.*, \([0-9.]*\)% in communication.*/\1/p' "$dir/err2")
awk -v s1="$s1" -v s2="$s2" -v c2="$c2" 'BEGIN {
    printf "BENCH mpi_mlp_w1 %.1f steps/s ref=%.1f ratio=1.00\n", s1, s1
    printf "BENCH mpi_mlp_w2 %.1f steps/s ref=%.1f ratio=%.2f\n", s2, s1, (s1 > 0 ? s2 / s1 : 0)
    printf "BENCH mpi_mlp_w2_comm_share %.0f %% ref=0 ratio=0\n", c2
}'
