/* bench_optim — optimizer step speed on one thread, against memory bandwidth.
 *
 * For Adam, AdamW, Lamb, Lion and SGD with momentum at 1M, 10M and 64M (2^26, the largest
 * model a job may have) float32 parameters:
 * milliseconds per step and effective GB/s (the bytes the step must move: Adam reads p, g, m,
 * v and writes p, m, v = 28 bytes per parameter). The reference is an in-place
 * read-modify-write kernel over the very same buffers with the same streams (what a step
 * costs if the arithmetic were free), measured in the same run. Fairness:
 *  - same buffers, hence the same alignment, for optimizer and reference (p and g are
 *    64-byte aligned so figures do not depend on where malloc happened to put them);
 *  - interleaved repeats whose order alternates (optimizer first on even repeats, reference
 *    first on odd ones), so neither always finds the other's cache leftovers;
 *  - best of N for both (N >= 5, or >= 3 at 64M, more while a short time budget lasts);
 *  - the reference leaves the values unchanged (x*1 + y*0 with 1 and 0 unknown to the
 *    compiler), so the optimizer always steps on its own, realistic state.
 * Each figure is one line:
 *   BENCH <name> <value> <unit> ref=<value> ratio=<value>
 * BENCH_QUICK=1 in the environment shrinks the sizes 100× for smoke runs; BENCH_ONLY=<text>
 * runs only the cases whose name (e.g. "lamb_10M") contains <text>. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/util.h"
#include "core/gemm.h"
#include "core/optim.h"

/* 1 and 0, read at run time so the compiler cannot drop the reference's arithmetic. */
static volatile float ONE = 1.0f, ZERO = 0.0f;

/* Reference kernels: one or two read-only streams r, s and read-modify-write streams a, b, c.
 * The arithmetic is one multiply-add per written element, far below what memory allows. */
static __attribute__((noinline)) void ref_1r3w(size_t n, const float *restrict r,
                                               float *restrict a, float *restrict b,
                                               float *restrict c)
{
    float k = ONE, z = ZERO;
    for (size_t i = 0; i < n; i++) {
        a[i] = a[i] * k + r[i] * z;
        b[i] = b[i] * k + r[i] * z;
        c[i] = c[i] * k + r[i] * z;
    }
}

static __attribute__((noinline)) void ref_1r2w(size_t n, const float *restrict r,
                                               float *restrict a, float *restrict b)
{
    float k = ONE, z = ZERO;
    for (size_t i = 0; i < n; i++) {
        a[i] = a[i] * k + r[i] * z;
        b[i] = b[i] * k + r[i] * z;
    }
}

static __attribute__((noinline)) void ref_2r2w(size_t n, const float *restrict r,
                                               const float *restrict s, float *restrict a,
                                               float *restrict b)
{
    float k = ONE, z = ZERO;
    for (size_t i = 0; i < n; i++) {
        a[i] = a[i] * k + r[i] * s[i] * z;
        b[i] = b[i] * k + (r[i] + s[i]) * z;
    }
}

static __attribute__((noinline)) void ref_2r1w(size_t n, const float *restrict r,
                                               const float *restrict s, float *restrict a)
{
    float k = ONE, z = ZERO;
    for (size_t i = 0; i < n; i++)
        a[i] = a[i] * k + r[i] * s[i] * z;
}

typedef struct kind {
    const char *name;
    int type;
    double bytes; /* per parameter per step */
} kind;

/* Lamb makes two passes: (read p, g, m, v; write m, v) then (read p, m, v; write p) = 40
 * bytes. Tensors of up to 4 MiB keep the update direction u between the passes instead, which
 * is also 40: (read p, g, m, v; write m, v, u) then (read p, u; write p). */
static const kind KINDS[] = {
    {"adam", OPTIM_ADAM, 28},
    {"adamw", OPTIM_ADAMW, 28},
    {"lamb", OPTIM_LAMB, 24 + 16},
    {"lion", OPTIM_LION, 20},
    {"sgdm", OPTIM_SGD, 20},
};

static void reference(const kind *k, size_t n, float *p, float *g, optim *o)
{
    switch (k->type) {
    case OPTIM_ADAM:
    case OPTIM_ADAMW:
        ref_1r3w(n, g, p, optim_buffer(o, "exp_avg"), optim_buffer(o, "exp_avg_sq"));
        break;
    case OPTIM_LAMB: {
        float *m = optim_buffer(o, "exp_avg"), *v = optim_buffer(o, "exp_avg_sq");
        ref_2r2w(n, p, g, m, v);
        ref_2r1w(n, m, v, p);
        break;
    }
    case OPTIM_LION:
        ref_1r2w(n, g, p, optim_buffer(o, "exp_avg"));
        break;
    default:
        ref_1r2w(n, g, p, optim_buffer(o, "momentum_buffer"));
        break;
    }
}

static int run(const kind *k, size_t n, const char *label, float *p, float *g, int minreps,
               double budget)
{
    optim_cfg c = {.type = k->type, .lr = 1e-4, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                   .bias_correction = 1, .adam_w_mode = 1, .weight_decay = 0.01,
                   .max_coeff = 10, .min_coeff = 0.01, .momentum = 0.9};
    optim_group gr = {c.lr, c.weight_decay, c.beta1, c.beta2, c.momentum, 0, 0};
    optim_tensor t = {0, n, 0};
    optim o;
    an_err err;
    if (optim_init(&o, &c, OPTIM_F32, n, &t, 1, &gr, 1, &err) != 0) {
        fprintf(stderr, "bench_optim: cannot set up %s at %s parameters: %s\n", k->name, label,
                err.message);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        p[i] = 1.0f + (float)(i % 7) * 0.01f;
        g[i] = 1e-3f * (float)((int)(i % 13) - 6);
    }
    /* First touch of the state, then alternate optimizer and reference; keep the best. */
    optim_step(&o, p, g);
    reference(k, n, p, g, &o);
    double best = 1e30, bestref = 1e30, start = util_now();
    int reps = 0;
    while (reps < minreps || (util_now() - start < budget && reps < 1000)) {
        double t0, t1;
        if (reps % 2 == 0) {
            t0 = util_now();
            optim_step(&o, p, g);
            t1 = util_now();
            best = t1 - t0 < best ? t1 - t0 : best;
            reference(k, n, p, g, &o);
            t0 = util_now();
            bestref = t0 - t1 < bestref ? t0 - t1 : bestref;
        } else {
            t0 = util_now();
            reference(k, n, p, g, &o);
            t1 = util_now();
            bestref = t1 - t0 < bestref ? t1 - t0 : bestref;
            optim_step(&o, p, g);
            t0 = util_now();
            best = t0 - t1 < best ? t0 - t1 : best;
        }
        reps++;
    }
    double gb = k->bytes * (double)n / best / 1e9, refgb = k->bytes * (double)n / bestref / 1e9;
    printf("BENCH %s_%s_1t %.2f GB/s ref=%.2f ratio=%.2f\n", k->name, label, gb, refgb,
           gb / refgb);
    printf("BENCH %s_%s_1t_step %.3f ms ref=%.3f ratio=%.2f\n", k->name, label, best * 1e3,
           bestref * 1e3, bestref / best);
    fflush(stdout);
    optim_free(&o);
    return 0;
}

int main(void)
{
    const char *q = getenv("BENCH_QUICK"), *only = getenv("BENCH_ONLY");
    int quick = q && q[0] && strcmp(q, "0") != 0;
    /* One thread, as the figures say: a large step would otherwise run on every core (the
     * optimizer uses the calling thread's OpenMP thread count, which is a job's threads in
     * the daemon and the core count here). */
    if (gemm_set_threads(1) != 0) {
        fprintf(stderr, "bench_optim: cannot set one thread\n");
        return 1;
    }
    static const struct {
        size_t n;
        const char *label;
    } SIZES[] = {{1000000, "1M"}, {10000000, "10M"}, {(size_t)1 << 26, "64M"}};
    int rc = 0;
    for (size_t s = 0; s < sizeof SIZES / sizeof *SIZES; s++) {
        size_t n = quick ? SIZES[s].n / 100 : SIZES[s].n;
        char label[32];
        snprintf(label, sizeof label, "%s%s", SIZES[s].label, quick ? "q" : "");
        /* n is a multiple of 16, so the byte count is a multiple of the alignment. */
        float *p = aligned_alloc(64, n * sizeof *p), *g = aligned_alloc(64, n * sizeof *g);
        if (!p || !g) {
            fprintf(stderr, "bench_optim: out of memory for %s parameters\n", label);
            free(p);
            free(g);
            return 1;
        }
        for (size_t k = 0; k < sizeof KINDS / sizeof *KINDS; k++) {
            char name[64];
            snprintf(name, sizeof name, "%s_%s", KINDS[k].name, label);
            if (only && !strstr(name, only))
                continue;
            /* The 64M cases move gigabytes per step: three repeats say enough. */
            int big = !quick && n >= ((size_t)1 << 26);
            rc |= run(&KINDS[k], n, label, p, g, big ? 3 : 5, quick ? 0.05 : big ? 0.2 : 0.25);
        }
        free(p);
        free(g);
    }
    return rc ? 1 : 0;
}
