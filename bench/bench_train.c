/* bench_train — optimizer steps per second of whole training steps (train_step), against the
 * same work written as a plain loop.
 *
 * Jobs: DeepSpeed's tutorial (linear 10 -> 1, mean loss, batch 8, Adam, WarmupLR), the iris
 * MLP (4-16-3 ReLU, cross-entropy, batch 30, SGD with momentum) and a wider MLP with gradient
 * accumulation (32-256-256-10, micro-batch 64 x 4). The reference runs, for the same spec,
 * the bare engine: rows copied from the data set, forward, loss, backward into one gradient
 * buffer (accumulating), optimizer step — no accumulation tree, clipping, scheduler,
 * validation check or report. The ratio (train / reference) is what the training loop's
 * bookkeeping costs; the two are measured interleaved in rounds so both see the same machine
 * load. Each figure is one line:
 *   BENCH <name> <value> <unit> ref=<value> ratio=<value>
 * BENCH_QUICK=1 in the environment shortens the runs for smoke tests. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/util.h"
#include "core/config.h"
#include "core/data.h"
#include "core/gemm.h"
#include "core/loss.h"
#include "core/model.h"
#include "core/optim.h"
#include "core/train.h"

/* The bare engine of one spec. */
typedef struct plain {
    dataset tr, va;
    model *m;
    optim o;
    float *x, *y, *dout;
    int micro, gas, loss;
    long long row;
} plain;

static int plain_init(plain *p, const job_spec *s)
{
    an_err err;
    memset(p, 0, sizeof *p);
    if (data_load(s, NULL, 0, &p->tr, &p->va, &err) ||
        model_create(&p->m, &s->model, s->seed, (int)s->micro_batch, &err)) {
        fprintf(stderr, "bench_train: %s\n", err.message);
        return -1;
    }
    optim_tensor t[MODEL_MAX_TENSORS];
    int nt = model_optim_tensors(p->m, NULL, 0, t);
    optim_group g = {.lr = s->optim.lr, .weight_decay = s->optim.weight_decay,
                     .beta1 = s->optim.beta1, .beta2 = s->optim.beta2,
                     .momentum = s->optim.momentum};
    if (optim_init(&p->o, &s->optim, OPTIM_F32, p->m->nparams, t, nt, &g, 1, &err)) {
        fprintf(stderr, "bench_train: %s\n", err.message);
        return -1;
    }
    p->micro = (int)s->micro_batch;
    p->gas = (int)s->grad_accum;
    p->loss = s->loss;
    int O = p->m->dims[p->m->nlayers];
    p->x = malloc((size_t)p->micro * p->tr.d * sizeof *p->x);
    p->y = malloc((size_t)p->micro * p->tr.ydim * sizeof *p->y);
    p->dout = malloc((size_t)p->micro * O * sizeof *p->dout);
    return p->x && p->y && p->dout ? 0 : -1;
}

static void plain_free(plain *p)
{
    free(p->x);
    free(p->y);
    free(p->dout);
    optim_free(&p->o);
    model_free(p->m);
    data_free(&p->tr);
    data_free(&p->va);
}

static void plain_step(plain *p)
{
    int O = p->m->dims[p->m->nlayers];
    for (int j = 0; j < p->gas; j++) {
        for (int r = 0; r < p->micro; r++) {
            memcpy(p->x + (size_t)r * p->tr.d, p->tr.x + (size_t)p->row * p->tr.d,
                   (size_t)p->tr.d * sizeof *p->x);
            memcpy(p->y + (size_t)r * p->tr.ydim, p->tr.y + (size_t)p->row * p->tr.ydim,
                   (size_t)p->tr.ydim * sizeof *p->y);
            p->row = (p->row + 1) % p->tr.n;
        }
        model_forward(p->m, p->x, p->micro, 1, 0, (uint64_t)j);
        loss_compute(p->loss, model_output(p->m), p->y, p->micro, O, p->dout);
        model_backward(p->m, p->dout, p->m->grads, j > 0);
    }
    optim_step(&p->o, p->m->params, p->m->grads);
}

static int bench(const char *name, const char *spec_text, int steps, int rounds)
{
    job_spec s = {0};
    an_err err;
    if (job_spec_parse_text(spec_text, strlen(spec_text), &s, &err)) {
        fprintf(stderr, "bench_train: %s: %s: %s\n", name, err.field, err.message);
        return 1;
    }
    train *t;
    plain p;
    if (train_create(&t, &s, NULL, 0, &err)) {
        fprintf(stderr, "bench_train: %s: %s\n", name, err.message);
        job_spec_free(&s);
        return 1;
    }
    if (plain_init(&p, &s)) {
        train_free(t);
        job_spec_free(&s);
        return 1;
    }
    double best_t = 1e30, best_p = 1e30;
    train_report r;
    for (int k = 0; k < rounds; k++) {
        double t0 = util_now();
        for (int i = 0; i < steps; i++)
            if (train_step(t, &r, &err)) {
                /* a diverged run still measured the loop; start it over */
                train_free(t);
                if (train_create(&t, &s, NULL, 0, &err))
                    return 1;
            }
        double t1 = util_now();
        for (int i = 0; i < steps; i++)
            plain_step(&p);
        double t2 = util_now();
        if (t1 - t0 < best_t)
            best_t = t1 - t0;
        if (t2 - t1 < best_p)
            best_p = t2 - t1;
    }
    double sps = steps / best_t, ref = steps / best_p;
    printf("BENCH train_%s %.0f steps/s ref=%.0f ratio=%.3f\n", name, sps, ref, sps / ref);
    fflush(stdout);
    plain_free(&p);
    train_free(t);
    job_spec_free(&s);
    return 0;
}

int main(void)
{
    int quick = getenv("BENCH_QUICK") != NULL;
    int rounds = quick ? 2 : 5;
    gemm_warmup();
    int rc = 0;
    rc |= bench("tutorial",
                "{\"seed\": 42, \"model\": {\"type\": \"linear\", \"inputs\": 10, \"outputs\": 1},"
                " \"loss\": \"mean\", \"data\": {\"type\": \"synthetic\", \"task\": \"regression\","
                " \"samples\": 4096, \"features\": 10}, \"steps\": 1000000, \"ds_config\":"
                " {\"train_batch_size\": 8, \"optimizer\": {\"type\": \"Adam\", \"params\":"
                " {\"lr\": 0.01}}, \"scheduler\": {\"type\": \"WarmupLR\", \"params\":"
                " {\"warmup_min_lr\": 0.001, \"warmup_max_lr\": 0.01, \"warmup_num_steps\": 100}}}}",
                quick ? 2000 : 40000, rounds);
    rc |= bench("iris_mlp",
                "{\"model\": {\"type\": \"mlp\", \"inputs\": 4, \"hidden\": [16], \"outputs\": 3,"
                " \"activation\": \"relu\"}, \"loss\": \"cross_entropy\", \"data\": {\"type\":"
                " \"builtin\", \"name\": \"iris\"}, \"steps\": 1000000, \"ds_config\":"
                " {\"train_batch_size\": 30, \"gradient_clipping\": 0, \"optimizer\": {\"type\":"
                " \"SGD\", \"params\": {\"lr\": 0.05, \"momentum\": 0.9}}}}",
                quick ? 1000 : 20000, rounds);
    rc |= bench("mlp256_gas4",
                "{\"model\": {\"type\": \"mlp\", \"inputs\": 32, \"hidden\": [256, 256],"
                " \"outputs\": 10, \"activation\": \"gelu\"}, \"loss\": \"cross_entropy\","
                " \"data\": {\"type\": \"synthetic\", \"task\": \"classification\", \"generator\":"
                " \"blobs\", \"samples\": 4096, \"features\": 32, \"classes\": 10}, \"steps\":"
                " 1000000, \"ds_config\": {\"train_micro_batch_size_per_gpu\": 64,"
                " \"gradient_accumulation_steps\": 4, \"optimizer\": {\"type\": \"Adam\","
                " \"params\": {\"lr\": 0.001}}}}",
                quick ? 20 : 200, rounds);
    return rc;
}
