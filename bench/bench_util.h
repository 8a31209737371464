/* bench_util — what the C benchmarks share: the figure line every one prints, and a scratch
 * directory removed after (the clock is util_now, the product's own). */
#ifndef ANNEALD_BENCH_UTIL_H
#define ANNEALD_BENCH_UTIL_H

#include <dirent.h>
#include <stdio.h>
#include <unistd.h>

#include "util/util.h"

/* One figure: `BENCH <name> <value> <unit> ref=<value> ratio=<value/ref>`. */
static inline void report(const char *name, double v, const char *unit, double ref)
{
    printf("BENCH %s %.6g %s ref=%.6g ratio=%.4f\n", name, v, unit, ref, ref > 0 ? v / ref : 0.0);
    fflush(stdout);
}

/* Removes a scratch directory and the files in it (no subdirectories). */
static inline void rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        char p[512];
        while ((de = readdir(d)) != NULL) {
            if (de->d_name[0] == '.')
                continue;
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* The environment prefix of a PyTorch reference process: one thread, and OpenBLAS's AVX-512
 * kernels forced where the CPU has AVX-512 (Debian's OpenBLAS misdetects AMD Zen 4/5 as
 * Haswell, ~1.4x slower). Without AVX-512 the forced kernels would die of an illegal
 * instruction, and OpenBLAS's own choice is already its best. */
static inline const char *torch_env(void)
{
    return __builtin_cpu_supports("avx512f") ? "OPENBLAS_CORETYPE=SKYLAKEX OMP_NUM_THREADS=1"
                                             : "OMP_NUM_THREADS=1";
}

#endif
