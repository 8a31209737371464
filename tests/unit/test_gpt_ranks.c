/* test_gpt_ranks — a gpt job as the ranks of a data-parallel run, without MPI: W threads, each
 * a train object made rank r of W (train_set_ranks) whose exchange is a barrier and
 * core/ddp.h's ordered sum (what rank/comm.c computes, slice by slice), train bit for bit as
 * one process with W times the accumulation steps: losses, gradient norms, weights and the
 * checkpoint blob, with dropout, fp16 and random windows too; the one-process run itself is
 * the unchanged train_step of a job without ranks. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/ddp.h"
#include "core/train.h"

#define MAXW 4
#define STEPS 8
#define MAXG 8

static const char *TEXT =
    "It is a truth universally acknowledged, that a single man in possession of a good "
    "fortune, must be in want of a wife. However little known the feelings or views of such a "
    "man may be on his first entering a neighbourhood, this truth is so well fixed.";

/* What the ranks share: each one's gradient and losses, and a barrier. */
typedef struct xchg {
    pthread_barrier_t bar;
    int W;
    float *parts[MAXW];
    double losses[MAXW * MAXG];
} xchg;

typedef struct rank_run {
    xchg *x;
    int rank, world, gas;
    const char *model_x, *data_x, *ds_x; /* spliced into the spec's model, data, ds_config */
    const char *spec;           /* or this whole spec (%d: the world size), if set */
    float *scratch[MAXW];       /* this rank's copies of the parts, summed in place */
    double loss[STEPS], norm[STEPS];
    char *weights;              /* the weights' JSON */
    void *blob;
    size_t blob_len;
    int failed;
    char msg[600];              /* a failed step's message */
} rank_run;

static int fake_reduce(void *ctx, float *grad, size_t n, const double *mine, int gas,
                       double *losses)
{
    rank_run *r = ctx;
    xchg *x = r->x;
    memcpy(x->parts[r->rank], grad, n * sizeof *grad);
    memcpy(x->losses + r->rank * gas, mine, (size_t)gas * sizeof *mine);
    pthread_barrier_wait(&x->bar);
    for (int q = 0; q < x->W; q++)
        memcpy(r->scratch[q], x->parts[q], n * sizeof(float));
    ddp_ordered_sum(r->scratch, x->W, n);
    memcpy(grad, r->scratch[0], n * sizeof *grad);
    memcpy(losses, x->losses, (size_t)(x->W * gas) * sizeof *losses);
    pthread_barrier_wait(&x->bar); /* nobody overwrites a part before every rank has read it */
    return 0;
}

static void make_spec(job_spec *s, int world, int gas, const char *model_x, const char *data_x,
                      const char *ds_x)
{
    char buf[2048];
    snprintf(buf, sizeof buf,
             "{\"seed\": 9, \"model\": {\"type\": \"gpt\", \"block_size\": 8, \"n_layer\": 2, "
             "\"n_head\": 2, \"n_embd\": 16%s}, \"data\": {\"type\": \"text\", \"text\": "
             "\"%s\"%s}, \"steps\": %d, \"world_size\": %d, \"ds_config\": "
             "{\"train_micro_batch_size_per_gpu\": 2, \"gradient_accumulation_steps\": %d, "
             "\"gradient_clipping\": 0.5, \"optimizer\": {\"type\": \"AdamW\", \"params\": "
             "{\"lr\": 0.01}}%s}}",
             model_x, TEXT, data_x, STEPS, world, gas, ds_x);
    an_err e;
    if (job_spec_parse_text(buf, strlen(buf), s, &e))
        fail_msg("spec: %s: %s", e.field, e.message);
}

/* Trains one rank (world 1: a job without ranks) to the end; results into r. */
static void *train_rank(void *arg)
{
    rank_run *r = arg;
    job_spec s;
    train *t = NULL;
    an_err e;
    if (r->spec) {
        char buf[2048];
        snprintf(buf, sizeof buf, r->spec, r->world);
        if (job_spec_parse_text(buf, strlen(buf), &s, &e))
            fail_msg("spec: %s: %s", e.field, e.message);
    } else {
        make_spec(&s, r->world, r->gas, r->model_x, r->data_x, r->ds_x);
    }
    r->failed = 1;
    if (train_create(&t, &s, NULL, 0, &e) == 0 &&
        (r->world == 1 || train_set_ranks(t, r->world, r->rank, fake_reduce, r) == 0)) {
        size_t n = train_nparams(t);
        int ok = n > 0;
        for (int q = 0; ok && r->world > 1 && q < r->world; q++)
            ok = (r->scratch[q] = malloc(n * sizeof(float))) != NULL;
        if (ok && r->world > 1 && r->rank == 0)
            for (int q = 0; ok && q < r->world; q++)
                ok = (r->x->parts[q] = malloc(n * sizeof(float))) != NULL;
        if (r->world > 1)
            pthread_barrier_wait(&r->x->bar); /* the parts exist before anyone writes them */
        train_report rep;
        for (int k = 0; ok && k < STEPS; k++) {
            ok = train_step(t, &rep, &e) == 0;
            if (!ok)
                snprintf(r->msg, sizeof r->msg, "%s", e.message);
            r->loss[k] = rep.loss;
            r->norm[k] = rep.grad_norm;
        }
        cJSON *w = NULL;
        if (ok && train_weights_json(t, &w) == 0) {
            r->weights = cJSON_PrintUnformatted(w);
            cJSON_Delete(w);
            r->failed = train_save(t, &r->blob, &r->blob_len, &e) != 0 || !r->weights;
        }
        for (int q = 0; r->world > 1 && q < r->world; q++)
            free(r->scratch[q]);
    }
    train_free(t);
    job_spec_free(&s);
    return NULL;
}

static void free_run(rank_run *r)
{
    free(r->weights);
    free(r->blob);
}

/* G micro-batches per step at W = 1 and at each W of `worlds`: all the same bits. */
static void same_at(int G, const int *worlds, int nw, const char *model_x, const char *data_x,
                    const char *ds_x)
{
    rank_run ref = {.rank = 0, .world = 1, .gas = G, .model_x = model_x, .data_x = data_x,
                    .ds_x = ds_x};
    train_rank(&ref);
    assert_false(ref.failed);
    assert_true(ref.loss[STEPS - 1] == ref.loss[STEPS - 1]); /* finite, not NaN */
    for (int i = 0; i < nw; i++) {
        int W = worlds[i];
        xchg x = {.W = W};
        pthread_barrier_init(&x.bar, NULL, (unsigned)W);
        rank_run r[MAXW];
        pthread_t th[MAXW];
        for (int q = 0; q < W; q++) {
            r[q] = (rank_run){.x = &x, .rank = q, .world = W, .gas = G / W, .model_x = model_x,
                              .data_x = data_x, .ds_x = ds_x};
            assert_int_equal(pthread_create(&th[q], NULL, train_rank, &r[q]), 0);
        }
        for (int q = 0; q < W; q++)
            pthread_join(th[q], NULL);
        for (int q = 0; q < W; q++) {
            if (r[q].failed)
                fail_msg("G=%d W=%d rank %d failed (%s%s%s)", G, W, q, model_x, data_x, ds_x);
            for (int k = 0; k < STEPS; k++)
                if (memcmp(&r[q].loss[k], &ref.loss[k], sizeof(double)) ||
                    memcmp(&r[q].norm[k], &ref.norm[k], sizeof(double)))
                    fail_msg("G=%d W=%d rank %d step %d: loss %.17g norm %.17g, one process "
                             "%.17g %.17g (%s%s%s)", G, W, q, k + 1, r[q].loss[k], r[q].norm[k],
                             ref.loss[k], ref.norm[k], model_x, data_x, ds_x);
            assert_string_equal(r[q].weights, ref.weights);
            assert_int_equal(r[q].blob_len, ref.blob_len);
            assert_memory_equal(r[q].blob, ref.blob, ref.blob_len);
            free_run(&r[q]);
        }
        for (int q = 0; q < W; q++)
            free(x.parts[q]);
        pthread_barrier_destroy(&x.bar);
    }
    free_run(&ref);
}

static void test_windows(void **state)
{
    (void)state;
    static const int w24[] = {2, 4}, w2[] = {2};
    same_at(4, w24, 2, "", "", "");
    same_at(2, w2, 1, "", "", "");
    /* 8 micro-batches: two levels of the tree on each of 2 ranks, one on each of 4 */
    same_at(8, w24, 2, "", "", "");
}

static void test_dropout_random_fp16(void **state)
{
    (void)state;
    static const int w24[] = {2, 4}, w2[] = {2};
    /* dropout masks keyed by (step, global micro-batch) */
    same_at(4, w24, 2, ", \"dropout\": 0.2", "", "");
    /* random windows drawn by (step, micro-batch, row) */
    same_at(4, w2, 1, "", ", \"sampling\": \"random\"", "");
    /* fp16: the loss scaler sees the summed gradient, the same at every W */
    same_at(4, w24, 2, "", "", ", \"fp16\": {\"enabled\": true, \"initial_scale_power\": 12}");
    /* and each micro-batch's, in steps that overflow (2^24: the first ones do) */
    same_at(4, w24, 2, "", "", ", \"fp16\": {\"enabled\": true, \"initial_scale_power\": 24, "
            "\"loss_scale_window\": 2}");
}

/* W ranks on threads of `spec` (%d: the world size); each one's result in r. */
static void run_ranks(const char *spec, int W, rank_run *r)
{
    xchg x = {.W = W};
    pthread_barrier_init(&x.bar, NULL, (unsigned)W);
    pthread_t th[MAXW];
    for (int q = 0; q < W; q++) {
        r[q] = (rank_run){.x = &x, .rank = q, .world = W, .spec = spec};
        assert_int_equal(pthread_create(&th[q], NULL, train_rank, &r[q]), 0);
    }
    for (int q = 0; q < W; q++)
        pthread_join(th[q], NULL);
    for (int q = 0; q < W; q++)
        free(x.parts[q]);
    pthread_barrier_destroy(&x.bar);
}

/* A loss that is not finite in one rank's micro-batch: every rank fails at that step with the
 * same message as one process (naming the micro-batch of the global batch), rather than the
 * one rank leaving the exchange the others wait in; the LR finder's sweep ends on every rank
 * at that step. Row 3 (3e38) is micro-batch 2 of 2, on rank 1. */
static void test_non_finite_loss_on_one_rank(void **state)
{
    (void)state;
    static const char *spec =
        "{\"seed\": 1, \"model\": {\"type\": \"linear\", \"inputs\": 2, \"outputs\": 1, "
        "\"init\": {\"fc.weight\": [[1, 1]], \"fc.bias\": [0]}}, \"loss\": \"mse\", \"data\": "
        "{\"type\": \"inline\", \"x\": [[1, 1], [2, 1], [3e38, 3e38], [1, 2]], \"y\": [[1], [2], [3], "
        "[4]], \"shuffle\": false}, \"steps\": %d, \"world_size\": %%d, \"ds_config\": "
        "{\"train_batch_size\": 4, \"train_micro_batch_size_per_gpu\": 2, "
        "\"gradient_clipping\": 0, \"optimizer\": {\"type\": \"SGD\", \"params\": "
        "{\"lr\": 0.0001}}}%s}";
    char plain[2048], finder[2048];
    snprintf(plain, sizeof plain, spec, STEPS, "");
    snprintf(finder, sizeof finder, spec, STEPS, ", \"lr_finder\": {\"stop_factor\": 4}");
    rank_run one, r[2];
    one = (rank_run){.rank = 0, .world = 1, .spec = plain};
    train_rank(&one);
    assert_true(one.failed);
    assert_non_null(strstr(one.msg, "loss is Inf at step 1 (micro-batch 2 of 2)"));
    run_ranks(plain, 2, r);
    for (int q = 0; q < 2; q++) {
        assert_true(r[q].failed);
        assert_string_equal(r[q].msg, one.msg);
        free_run(&r[q]);
    }
    free_run(&one);
    /* the finder: step 1 is its last, on every rank */
    run_ranks(finder, 2, r);
    for (int q = 0; q < 2; q++) {
        assert_false(r[q].failed);
        assert_true(isinf(r[q].loss[0]));
        free_run(&r[q]);
    }
}

/* The exchange's arithmetic is not a no-op: another seed gives other weights (the comparisons
 * above can fail), and W·gas above 2^20 micro-batches is refused. */
static void test_can_fail(void **state)
{
    (void)state;
    rank_run a = {.world = 1, .gas = 4, .model_x = "", .data_x = "", .ds_x = ""};
    rank_run b = {.world = 1, .gas = 2, .model_x = "", .data_x = "", .ds_x = ""};
    train_rank(&a);
    train_rank(&b);
    assert_false(a.failed || b.failed);
    assert_string_not_equal(a.weights, b.weights);
    free_run(&a);
    free_run(&b);
    job_spec s;
    make_spec(&s, 2, 1, "", "", "");
    train *t = NULL;
    an_err e;
    assert_int_equal(train_create(&t, &s, NULL, 0, &e), 0);
    assert_int_equal(train_set_ranks(t, 1 << 21, 0, fake_reduce, NULL), -EINVAL);
    assert_int_equal(train_set_ranks(t, 2, 2, fake_reduce, NULL), -EINVAL);
    train_free(t);
    job_spec_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_windows),
        cmocka_unit_test(test_dropout_random_fp16),
        cmocka_unit_test(test_can_fail),
        cmocka_unit_test(test_non_finite_loss_on_one_rank),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
