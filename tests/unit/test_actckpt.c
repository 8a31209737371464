/* Tests of activation checkpointing for the mlp (ds_config.activation_checkpointing; core/
 * model_arena.c, core/model.c, core/actckpt.h, core/config_actckpt.c): gradients and trained
 * weights bit-identical to the run without it for every number of checkpoints, the arena and
 * the memory estimate smaller by what the checkpoints save, and bad blocks refused naming the
 * field. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/actckpt.h"
#include "core/config.h"
#include "core/loss.h"
#include "core/memest.h"
#include "core/model.h"
#include "core/rng.h"
#include "core/train.h"

/* Segments: evenly spaced, covering every layer once, as large as actckpt_max_segment says. */
static void test_segments(void **state)
{
    (void)state;
    for (int L = 1; L <= 17; L++)
        for (int K = 1; K <= L; K++) {
            int most = 0;
            assert_int_equal(actckpt_start(0, L, K), 0);
            assert_int_equal(actckpt_start(K, L, K), L);
            for (int s = 0; s < K; s++) {
                int a = actckpt_start(s, L, K), b = actckpt_start(s + 1, L, K);
                assert_true(b > a); /* no empty segment */
                if (b - a > most)
                    most = b - a;
                for (int l = a; l < b; l++)
                    assert_int_equal(actckpt_segment(l, L, K), s);
            }
            assert_int_equal(most, actckpt_max_segment(L, K));
        }
}

/* Four hidden layers of different widths: 5 layers to checkpoint. */
static model_spec deep_spec(int act, double dropout)
{
    model_spec s = {.type = MODEL_MLP, .inputs = 6, .outputs = 3, .activation = act,
                    .dropout = dropout};
    static const int h[] = {32, 24, 40, 16};
    for (int i = 0; i < 4; i++)
        s.hidden[s.nhidden++] = h[i];
    return s;
}

/* Model level: K = 1..5 (and 9, more than the layers) against K = 0 over SGD steps with
 * cross-entropy, dropout on and off, full and partial batches: every loss, gradient and
 * weight bit for bit the same. */
static void test_model_bit_identical(void **state)
{
    (void)state;
    enum { B = 8, I = 6, O = 3, STEPS = 6 };
    static const int acts[] = {ACT_RELU, ACT_GELU, ACT_TANH};
    for (int a = 0; a < 3; a++)
        for (int drop = 0; drop < 2; drop++) {
            model_spec spec = deep_spec(acts[a], drop ? 0.25 : 0.0);
            for (int K = 1; K <= 9; K += K == 5 ? 4 : 1) {
                model *ref, *ck;
                an_err e;
                assert_int_equal(model_create(&ref, &spec, 3, B, &e), 0);
                assert_int_equal(model_create_ckpt(&ck, &spec, 3, B, K, &e), 0);
                assert_int_equal(ck->ckpt, K < 5 ? K : 5);
                assert_int_equal(ck->arena_floats,
                                 model_act_floats(ck->dims, 5, B, drop, ck->ckpt));
                if (K == 1)
                    assert_int_equal(ck->arena_floats, ref->arena_floats);
                else
                    assert_true(ck->arena_floats < ref->arena_floats);
                float x[B * I], y[B], dref[B * O], dck[B * O];
                rng r;
                for (int step = 0; step < STEPS; step++) {
                    int rows = step % 3 == 2 ? 5 : B;
                    rng_init(&r, 9, (uint64_t)step, 0);
                    for (int i = 0; i < rows * I; i++)
                        x[i] = (float)rng_normal(&r);
                    for (int i = 0; i < rows; i++)
                        y[i] = (float)rng_below(&r, O);
                    assert_int_equal(model_forward(ref, x, rows, 1, (uint64_t)step, 0), 0);
                    assert_int_equal(model_forward(ck, x, rows, 1, (uint64_t)step, 0), 0);
                    assert_memory_equal(model_output(ref), model_output(ck),
                                        sizeof(float) * rows * O);
                    loss_compute(LOSS_CROSS_ENTROPY, model_output(ref), y, rows, O, dref);
                    loss_compute(LOSS_CROSS_ENTROPY, model_output(ck), y, rows, O, dck);
                    assert_int_equal(model_backward(ref, dref, ref->grads, 0), 0);
                    assert_int_equal(model_backward(ck, dck, ck->grads, 0), 0);
                    assert_memory_equal(ref->grads, ck->grads, sizeof(float) * ref->nparams);
                    for (size_t i = 0; i < ref->nparams; i++) {
                        ref->params[i] -= 0.1f * ref->grads[i];
                        ck->params[i] -= 0.1f * ck->grads[i];
                    }
                }
                assert_memory_equal(ref->params, ck->params, sizeof(float) * ref->nparams);
                /* The weights moved: the comparison is not of two untouched models. */
                model *fresh;
                assert_int_equal(model_create(&fresh, &spec, 3, B, &e), 0);
                assert_true(memcmp(fresh->params, ck->params, sizeof(float) * ck->nparams) != 0);
                model_free(fresh);
                model_free(ref);
                model_free(ck);
            }
        }
}

/* The arena by hand for B = 2, dims 6-32-24-40-16-3 without dropout. Without checkpoints:
 * pre and post of each hidden layer 2·2·(32+24+40+16) = 448, output 6, backward buffers
 * 2·2·40 + 40 = 200: 654. K = 5 (one layer a segment): output 6 + every hidden post kept
 * 2·(32+24+40+16) = 224 + one layer's pre at most 2·40 = 80 + 200 = 510. K = 2 (layers 0-1 |
 * 2-4): output 6, kept post of layer 1 48; segment 0 pre 64 + post 64 + pre 48 = 176,
 * segment 1 pre 80 + post 80 + pre 32 + post 32 = 224; + 200 = 478. */
static void test_arena_by_hand(void **state)
{
    (void)state;
    int dims[] = {6, 32, 24, 40, 16, 3};
    assert_int_equal(model_act_floats(dims, 5, 2, 0, 0), 654);
    assert_int_equal(model_act_floats(dims, 5, 2, 0, 1), 654);
    assert_int_equal(model_act_floats(dims, 5, 2, 0, 5), 510);
    assert_int_equal(model_act_floats(dims, 5, 2, 0, 2), 478);
    /* With dropout: a float mask per hidden layer (+224: 878); with K = 5 one layer's mask in
     * the scratch (pre and mask at most 160 instead of 80) and every mask kept packed, a bit
     * per element: 2 + 2 + 3 + 1 = 8 words; 6 + 224 + 8 + 160 + 200 = 598. K = 1 keeps none. */
    assert_int_equal(model_act_floats(dims, 5, 2, 1, 0), 878);
    assert_int_equal(model_act_floats(dims, 5, 2, 1, 1), 878);
    assert_int_equal(model_act_floats(dims, 5, 2, 1, 5), 598);
}

/* Packed masks read back as the mask, bit for bit. */
static void test_mask_bits(void **state)
{
    (void)state;
    enum { N = 77 };
    float mask[N], back[N], keep = 1.0f / (1.0f - 0.3f);
    uint32_t bits[(N + 31) / 32];
    for (int i = 0; i < N; i++)
        mask[i] = (i * 7 + i / 3) % 5 < 2 ? 0.0f : keep;
    model_mask_pack(bits, mask, N);
    model_mask_unpack(back, bits, N, keep);
    assert_memory_equal(back, mask, sizeof mask);
}

/* ------------------------------------------------------------------------------------------
 * Jobs */

#define MLP_JOB(ds_extra)                                                                      \
    "{\"seed\": 4, \"model\": {\"type\": \"mlp\", \"inputs\": 8, \"hidden\": [48, 32, 40],"      \
    " \"outputs\": 3, \"activation\": \"gelu\", \"dropout\": 0.1}, \"loss\": \"cross_entropy\","  \
    " \"data\": {\"type\": \"synthetic\", \"task\": \"classification\", \"samples\": 300,"       \
    " \"features\": 8, \"classes\": 3}, \"steps\": 25, \"validation\": {\"fraction\": 0.2,"      \
    " \"every_steps\": 10}, \"ds_config\": {\"train_batch_size\": 32,"                            \
    " \"gradient_accumulation_steps\": 2, \"gradient_clipping\": 1.0, \"optimizer\":"            \
    " {\"type\": \"AdamW\", \"params\": {\"lr\": 0.01}}" ds_extra "}}"

static void parse_ok(const char *text, job_spec *s)
{
    an_err e = {0};
    if (job_spec_parse_text(text, strlen(text), s, &e))
        fail_msg("spec rejected: %s: %s", e.field, e.message);
}

/* The job's whole state after its steps: weights, optimizer state, counters. */
static void train_blob(const char *text, void **blob, size_t *len, int *ckpt)
{
    job_spec s;
    parse_ok(text, &s);
    *ckpt = s.act_ckpt;
    train *t;
    an_err e = {0};
    if (train_create(&t, &s, NULL, 0, &e))
        fail_msg("train_create: %s: %s", e.field, e.message);
    train_report rep;
    while (train_steps_done(t) < 25)
        if (train_step(t, &rep, &e))
            fail_msg("train_step: %s", e.message);
    double vl, va;
    assert_int_equal(train_validate(t, &vl, &va), 0);
    assert_int_equal(train_save(t, blob, len, &e), 0);
    train_free(t);
    job_spec_free(&s);
}

/* Through the job spec and train_create: dropout, accumulation, clipping, AdamW, validation
 * between steps (an eval forward, then training goes on): the saved state is byte for byte
 * that of the run without checkpointing, for K = 1, 2, 3 and 4 (one per layer, the default). */
static void test_job_bit_identical(void **state)
{
    (void)state;
    void *ref, *got;
    size_t nref, ngot;
    int k;
    train_blob(MLP_JOB(""), &ref, &nref, &k);
    assert_int_equal(k, 0);
    static const struct { const char *block; int k; } cases[] = {
        {", \"activation_checkpointing\": {\"number_checkpoints\": 1}", 1},
        {", \"activation_checkpointing\": {\"number_checkpoints\": 2}", 2},
        {", \"activation_checkpointing\": {\"number_checkpoints\": 3}", 3},
        {", \"activation_checkpointing\": {}", 4},
        {", \"activation_checkpointing\": {\"number_checkpoints\": null, "
         "\"partition_activations\": true, \"cpu_checkpointing\": true}", 4},
    };
    char text[2048];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(text, sizeof text, MLP_JOB("%s"), cases[i].block);
        train_blob(text, &got, &ngot, &k);
        assert_int_equal(k, cases[i].k);
        assert_int_equal(ngot, nref);
        assert_memory_equal(got, ref, nref);
        free(got);
    }
    free(ref);
}

/* The estimate: activations smaller by what is saved, the saving named in the text, and for
 * gpt the same; K = 1 saves nothing. */
static void test_estimate(void **state)
{
    (void)state;
    job_spec s;
    mem_estimate full, ck, one;
    parse_ok(MLP_JOB(""), &s);
    job_spec_memory(&s, -1, &full);
    job_spec_free(&s);
    parse_ok(MLP_JOB(", \"activation_checkpointing\": {}"), &s);
    job_spec_memory(&s, -1, &ck);
    job_spec_free(&s);
    parse_ok(MLP_JOB(", \"activation_checkpointing\": {\"number_checkpoints\": 1}"), &s);
    job_spec_memory(&s, -1, &one);
    job_spec_free(&s);
    assert_int_equal(full.act_saved, 0);
    assert_true(ck.act_saved > 0);
    assert_int_equal(ck.activations + ck.act_saved, full.activations);
    assert_int_equal(ck.total + ck.act_saved, full.total);
    assert_int_equal(one.act_saved, 0);
    assert_int_equal(one.total, full.total);
    char text[512];
    mem_estimate_text(&ck, text, sizeof text);
    assert_non_null(strstr(text, "; activation checkpointing saves "));
    mem_estimate_text(&full, text, sizeof text);
    assert_null(strstr(text, "checkpointing"));
}

/* ------------------------------------------------------------------------------------------
 * Bad blocks */

static void refused(const char *ds_extra, const char *field, const char *words)
{
    char text[2048];
    snprintf(text, sizeof text, MLP_JOB("%s"), ds_extra);
    job_spec s;
    an_err e = {0};
    int rc = job_spec_parse_text(text, strlen(text), &s, &e);
    if (rc == 0) {
        job_spec_free(&s);
        fail_msg("accepted: %s", ds_extra);
    }
    assert_int_equal(rc, -EINVAL);
    assert_string_equal(e.field, field);
    if (!strstr(e.message, words))
        fail_msg("%s: message '%s' lacks '%s'", ds_extra, e.message, words);
}

static void test_bad_values(void **state)
{
    (void)state;
    const char *nc = "ds_config.activation_checkpointing.number_checkpoints";
    refused(", \"activation_checkpointing\": {\"number_checkpoints\": 0}", nc, "from 1");
    refused(", \"activation_checkpointing\": {\"number_checkpoints\": -2}", nc, "from 1");
    refused(", \"activation_checkpointing\": {\"number_checkpoints\": 1.5}", nc, "integer");
    refused(", \"activation_checkpointing\": {\"number_checkpoints\": \"2\"}", nc, "integer");
    refused(", \"activation_checkpointing\": {\"number_checkpoints\": [2]}", nc, "integer");
    refused(", \"activation_checkpointing\": {\"number_checkpoints\": true}", nc, "integer");
    refused(", \"activation_checkpointing\": {\"number_checkpoints\": \"auto\"}", nc, "auto");
    refused(", \"activation_checkpointing\": {\"number_checkpoints\": 5}", nc, "4 layers");
    refused(", \"activation_checkpointing\": true", "ds_config.activation_checkpointing",
            "object");
    refused(", \"activation_checkpointing\": [1]", "ds_config.activation_checkpointing",
            "object");
}

/* Warnings: GPU keys accepted and named; a linear model has nothing to recompute. */
static void test_warnings(void **state)
{
    (void)state;
    job_spec s;
    parse_ok(MLP_JOB(", \"activation_checkpointing\": {\"contiguous_memory_optimization\": "
                     "true, \"number_checkpoints\": 2}"), &s);
    assert_int_equal(s.act_ckpt, 2);
    char *w = cJSON_PrintUnformatted(s.warnings);
    assert_non_null(strstr(w, "activation_checkpointing.contiguous_memory_optimization is for "
                              "GPUs"));
    free(w);
    job_spec_free(&s);
    const char *lin =
        "{\"model\": {\"type\": \"linear\", \"inputs\": 2, \"outputs\": 1}, \"data\": {\"type\": "
        "\"synthetic\", \"task\": \"regression\", \"samples\": 40, \"features\": 2}, \"steps\": "
        "3, \"ds_config\": {\"train_batch_size\": 4, \"optimizer\": {\"type\": \"SGD\", "
        "\"params\": {\"lr\": 0.1}}, \"activation_checkpointing\": {}}}";
    parse_ok(lin, &s);
    assert_int_equal(s.act_ckpt, 0);
    w = cJSON_PrintUnformatted(s.warnings);
    assert_non_null(strstr(w, "not used for a linear model"));
    free(w);
    job_spec_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_segments),
        cmocka_unit_test(test_model_bit_identical),
        cmocka_unit_test(test_arena_by_hand),
        cmocka_unit_test(test_mask_bits),
        cmocka_unit_test(test_job_bit_identical),
        cmocka_unit_test(test_estimate),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_warnings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
