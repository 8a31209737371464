/* bench_actckpt — what activation checkpointing (ds_config.activation_checkpointing) costs in
 * time and saves in memory: ms per training step and the activation estimate (the arena the
 * model allocates: job_spec_memory) of the same job with K checkpoints against the same job
 * without, for an mlp (256-1024×6-10 on synthetic data, batch 256, dropout 0.1) and for the
 * nanoGPT recipe's gpt (4 layers, 128 wide, block 64, batch 12, tinyshakespeare). One thread.
 * Lines: BENCH <name> <value> <unit> ref=<value> ratio=<value>. BENCH_QUICK=1 shortens. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/config.h"
#include "core/gemm.h"
#include "core/memest.h"
#include "core/train.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define MLP_SPEC                                                                               \
    "{\"seed\": 1, \"model\": {\"type\": \"mlp\", \"inputs\": 256, \"hidden\": [1024, 1024, "   \
    "1024, 1024, 1024, 1024], \"outputs\": 10, \"dropout\": 0.1}, \"loss\": \"cross_entropy\", " \
    "\"data\": {\"type\": \"synthetic\", \"task\": \"classification\", \"samples\": 4096, "     \
    "\"features\": 256, \"classes\": 10}, \"steps\": %d, \"ds_config\": {\"train_batch_size\": " \
    "256, \"optimizer\": {\"type\": \"SGD\", \"params\": {\"lr\": 0.01, \"momentum\": 0.9}}%s}}"

#define GPT_SPEC                                                                               \
    "{\"seed\": 1, \"model\": {\"type\": \"gpt\", \"block_size\": 64, \"n_layer\": 4, "          \
    "\"n_head\": 4, \"n_embd\": 128, \"bias\": false, \"gelu\": \"erf\"}, \"data\": {\"type\": " \
    "\"builtin\", \"name\": \"tinyshakespeare\", \"sampling\": \"random\"}, \"steps\": %d, "    \
    "\"ds_config\": {\"train_batch_size\": 12, \"optimizer\": {\"type\": \"AdamW\", "           \
    "\"params\": {\"lr\": 0.001}}%s}}"

/* A job of `fmt` with the ds_config extra `extra`: its spec and the estimate's activation
 * bytes in MiB. */
static int spec_of(const char *fmt, const char *extra, int steps, job_spec *spec, double *mib)
{
    char text[2048];
    snprintf(text, sizeof text, fmt, steps + 2, extra);
    an_err e;
    if (job_spec_parse_text(text, strlen(text), spec, &e)) {
        fprintf(stderr, "bench_actckpt: %s: %s\n", e.field, e.message);
        return 1;
    }
    mem_estimate m;
    job_spec_memory(spec, -1, &m);
    *mib = (double)m.activations / (1 << 20);
    return 0;
}

/* ms per step of one run of `steps` steps after 2 warm-up steps; < 0 on error. */
static double run(const job_spec *spec, int steps)
{
    train *t;
    an_err e;
    if (train_create(&t, spec, NULL, 0, &e)) {
        fprintf(stderr, "bench_actckpt: %s: %s\n", e.field, e.message);
        return -1;
    }
    train_report rep;
    double t0 = 0;
    for (int s = 0; s < steps + 2; s++) {
        if (s == 2)
            t0 = now();
        if (train_step(t, &rep, &e)) {
            fprintf(stderr, "bench_actckpt: step: %s\n", e.message);
            train_free(t);
            return -1;
        }
    }
    double ms = (now() - t0) * 1e3 / steps;
    train_free(t);
    return ms;
}

/* The job without checkpointing (k = 0) and with each of ks[]: runs taken in turns, rep after
 * rep, so a busy machine slows them alike; the best run of each is reported. */
static int model(const char *name, const char *fmt, const int *ks, int nk, int steps, int reps)
{
    job_spec spec[8];
    double mib[8], best[8];
    for (int i = 0; i <= nk; i++) {
        char extra[128] = "";
        if (i)
            snprintf(extra, sizeof extra, ", \"activation_checkpointing\": "
                     "{\"number_checkpoints\": %d}", ks[i - 1]);
        if (spec_of(fmt, extra, steps, &spec[i], &mib[i]))
            return 1;
        best[i] = 1e30;
    }
    int rc = 0;
    for (int r = 0; r < reps && !rc; r++)
        for (int i = 0; i <= nk && !rc; i++) {
            double ms = run(&spec[i], steps);
            if (ms < 0)
                rc = 1;
            else if (ms < best[i])
                best[i] = ms;
        }
    for (int i = 1; i <= nk && !rc; i++) {
        printf("BENCH actckpt_%s_k%d_step %.3f ms ref=%.3f ratio=%.3f\n", name, ks[i - 1],
               best[i], best[0], best[i] / best[0]);
        printf("BENCH actckpt_%s_k%d_activations %.2f MiB ref=%.2f ratio=%.3f\n", name,
               ks[i - 1], mib[i], mib[0], mib[i] / mib[0]);
    }
    for (int i = 0; i <= nk; i++)
        job_spec_free(&spec[i]);
    return rc;
}

int main(void)
{
    int quick = getenv("BENCH_QUICK") != NULL;
    gemm_set_threads(1);
    static const int mlp_k[] = {7, 3}, gpt_k[] = {4, 2};
    int rc = model("mlp", MLP_SPEC, mlp_k, 2, quick ? 3 : 20, quick ? 1 : 5);
    if (!rc)
        rc = model("gpt", GPT_SPEC, gpt_k, 2, quick ? 3 : 20, quick ? 1 : 5);
    return rc;
}
