/* bench_optim — optimizer step speed on one thread, against memory bandwidth.
 *
 * For Adam, AdamW, Lamb, Lion and SGD with momentum at 1M, 10M and 100M float32 parameters:
 * milliseconds per step and effective GB/s (the bytes the step must move: Adam reads p, g, m,
 * v and writes p, m, v = 28 bytes per parameter). The reference is an in-place
 * read-modify-write kernel over the very same buffers with the same streams (what a step
 * costs if the arithmetic were free), measured in the same run, interleaved with the
 * optimizer so both see the same machine load. Each figure is one line:
 *   BENCH <name> <value> <unit> ref=<value> ratio=<value>
 * BENCH_QUICK=1 in the environment shrinks the sizes 100× for smoke runs. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/optim.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Reference kernels: one read-only stream r, read-modify-write streams w*. The arithmetic
 * is one multiply-add per written element, far below what memory allows. */
static __attribute__((noinline)) void ref_1r3w(size_t n, const float *restrict r,
                                               float *restrict a, float *restrict b,
                                               float *restrict c)
{
    for (size_t i = 0; i < n; i++) {
        a[i] = a[i] * 0.999f + r[i];
        b[i] = b[i] * 0.999f + r[i];
        c[i] = c[i] * 0.999f + r[i];
    }
}

static __attribute__((noinline)) void ref_1r2w(size_t n, const float *restrict r,
                                               float *restrict a, float *restrict b)
{
    for (size_t i = 0; i < n; i++) {
        a[i] = a[i] * 0.999f + r[i];
        b[i] = b[i] * 0.999f + r[i];
    }
}

static __attribute__((noinline)) void ref_2r2w(size_t n, const float *restrict r,
                                               const float *restrict s, float *restrict a,
                                               float *restrict b)
{
    for (size_t i = 0; i < n; i++) {
        a[i] = a[i] * 0.999f + r[i] * s[i];
        b[i] = b[i] * 0.999f + r[i] + s[i];
    }
}

static __attribute__((noinline)) void ref_2r1w(size_t n, const float *restrict r,
                                               const float *restrict s, float *restrict a)
{
    for (size_t i = 0; i < n; i++)
        a[i] = a[i] * 0.999f + r[i] * s[i];
}

typedef struct kind {
    const char *name;
    int type;
    double bytes; /* per parameter per step */
} kind;

/* Lamb makes two passes: (read p, g, m, v; write m, v) then (read p, m, v; write p). */
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

static int run(const kind *k, size_t n, const char *label, double budget)
{
    optim_cfg c = {.type = k->type, .lr = 1e-4, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                   .bias_correction = 1, .adam_w_mode = 1, .weight_decay = 0.01,
                   .max_coeff = 10, .min_coeff = 0.01, .momentum = 0.9};
    optim_group gr = {c.lr, c.weight_decay, c.beta1, c.beta2, c.momentum, 0};
    optim_tensor t = {0, n, 0};
    optim o;
    an_err err;
    float *p = malloc(n * sizeof *p), *g = malloc(n * sizeof *g);
    if (!p || !g || optim_init(&o, &c, OPTIM_F32, n, &t, 1, &gr, 1, &err) != 0) {
        fprintf(stderr, "bench_optim: cannot set up %s at %s parameters\n", k->name, label);
        free(p);
        free(g);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        p[i] = 1.0f + (float)(i % 7) * 0.01f;
        g[i] = 1e-3f * (float)((int)(i % 13) - 6);
    }
    /* First touch of the state, then alternate optimizer and reference; keep the best. */
    optim_step(&o, p, g);
    reference(k, n, p, g, &o);
    double best = 1e30, bestref = 1e30, start = now();
    int reps = 0;
    while (reps < 3 || (now() - start < budget && reps < 1000)) {
        double t0 = now();
        optim_step(&o, p, g);
        double t1 = now();
        reference(k, n, p, g, &o);
        double t2 = now();
        if (t1 - t0 < best)
            best = t1 - t0;
        if (t2 - t1 < bestref)
            bestref = t2 - t1;
        reps++;
    }
    double gb = k->bytes * (double)n / best / 1e9, refgb = k->bytes * (double)n / bestref / 1e9;
    printf("BENCH %s_%s_1t %.2f GB/s ref=%.2f ratio=%.2f\n", k->name, label, gb, refgb,
           gb / refgb);
    printf("BENCH %s_%s_1t_step %.3f ms ref=%.3f ratio=%.2f\n", k->name, label, best * 1e3,
           bestref * 1e3, bestref / best);
    fflush(stdout);
    optim_free(&o);
    free(p);
    free(g);
    return 0;
}

int main(void)
{
    const char *q = getenv("BENCH_QUICK");
    int quick = q && q[0] && strcmp(q, "0") != 0;
    static const struct {
        size_t n;
        const char *label;
    } SIZES[] = {{1000000, "1M"}, {10000000, "10M"}, {100000000, "100M"}};
    int rc = 0;
    for (size_t s = 0; s < sizeof SIZES / sizeof *SIZES; s++) {
        size_t n = quick ? SIZES[s].n / 100 : SIZES[s].n;
        char label[32];
        snprintf(label, sizeof label, "%s%s", SIZES[s].label, quick ? "q" : "");
        for (size_t k = 0; k < sizeof KINDS / sizeof *KINDS; k++)
            rc |= run(&KINDS[k], n, label, quick ? 0.05 : 0.4);
    }
    return rc ? 1 : 0;
}
