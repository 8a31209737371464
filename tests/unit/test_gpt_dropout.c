/* Tests of the gpt model's dropout (core/gpt.c, gpt_forward_train): the model's gradients
 * against central differences with dropout on (the masks are a function of (seed, step,
 * micro-batch), so every perturbed forward draws the same ones), dropout 0 taking the very
 * path of evaluation (bit-identical weights, no masks in the arena), the masks (fraction
 * dropped, kept values scaled by 1/(1-p), pure in (seed, step, micro, element), the same for
 * a longer batch's first sequences), no dropout in gpt_forward, activation checkpointing's
 * recomputation drawing the same masks for every K (bit-identical gradients and trained
 * weights), the attention layer with a mask against central differences, the arena's size,
 * bad probabilities, and generation without dropout. */
#include <math.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/generate.h"
#include "core/gpt.h"
#include "core/gpt_layers.h"
#include "core/rng.h"
#include "core/text.h"

static void fill(float *p, size_t n, uint64_t seed, float lo, float hi)
{
    rng r;
    rng_init(&r, seed, 99, 0);
    for (size_t i = 0; i < n; i++)
        p[i] = (float)rng_range(&r, lo, hi);
}

/* Analytic against numeric: elementwise within a relative 2e-2 plus an absolute 1e-3,
 * normwise within 1e-2, and the numeric gradient not all zero. */
static void compare(const char *what, const double *num, const float *ana, size_t n)
{
    double dn = 0, nn = 0;
    for (size_t i = 0; i < n; i++) {
        double d = ana[i] - num[i];
        dn += d * d;
        nn += num[i] * num[i];
        double tol = 2e-2 * fmax(fabs(num[i]), fabs((double)ana[i])) + 1e-3;
        if (fabs(d) > tol)
            fail_msg("%s[%zu]: analytic %g, numeric %g", what, i, (double)ana[i], num[i]);
    }
    if (nn <= 0)
        fail_msg("%s: numeric gradient is zero", what);
    if (sqrt(dn / nn) > 1e-2)
        fail_msg("%s: normwise relative error %g", what, sqrt(dn / nn));
}

static const gpt_shape TINY = {.vocab_size = 7, .block_size = 5, .n_layer = 2, .n_head = 2,
                               .n_embd = 8, .bias = 1, .gelu = GPT_GELU_TANH, .dropout = 0.3f};

static void tokens(int32_t *idx, int32_t *tg, int n, int V, int salt)
{
    for (int i = 0; i < n; i++) {
        idx[i] = (i * 3 + 1 + salt) % V;
        tg[i] = (i * 5 + 2 + 2 * salt) % V;
    }
}

/* ---- the attention layer with a mask ---- */
static void test_attention_drop(void **state)
{
    (void)state;
    enum { B = 2, T = 4, C = 6, NH = 2 };
    float qkv[B * T * 3 * C], att[B * NH * T * T], out[B * T * C], r[B * T * C];
    float scratch[2 * T * T], dqkv[B * T * 3 * C] = {0};
    uint8_t keep[B * NH * T * T];
    double num[B * T * 3 * C];
    const float p = 0.4f, scale = 1.0f / (1.0f - p);
    fill(qkv, B * T * 3 * C, 11, -1, 1);
    fill(r, B * T * C, 12, -1, 1);
    rng_keep_mask(keep, B * NH * T * T, 5, 77, rng_drop_threshold(p));
    size_t dropped = 0;
    for (int i = 0; i < B * NH * T * T; i++)
        dropped += !keep[i];
    assert_true(dropped > 0 && dropped < B * NH * T * T);
    gpt_attention_forward_drop(out, att, scratch, keep, scale, qkv, B, T, C, NH);
    /* att keeps the softmax before dropout: causal rows summing to 1. */
    for (int row = 0; row < B * NH * T; row++) {
        double s = 0;
        for (int k = 0; k < T; k++)
            s += att[row * T + k];
        assert_true(fabs(s - 1.0) < 1e-5);
    }
    gpt_attention_backward_drop(dqkv, scratch, keep, scale, r, qkv, att, B, T, C, NH);
    for (int i = 0; i < B * T * 3 * C; i++) {
        float k0 = qkv[i];
        double lp = 0, lm = 0;
        qkv[i] = k0 + 1e-3f;
        gpt_attention_forward_drop(out, att, scratch, keep, scale, qkv, B, T, C, NH);
        for (int j = 0; j < B * T * C; j++)
            lp += (double)out[j] * r[j];
        qkv[i] = k0 - 1e-3f;
        gpt_attention_forward_drop(out, att, scratch, keep, scale, qkv, B, T, C, NH);
        for (int j = 0; j < B * T * C; j++)
            lm += (double)out[j] * r[j];
        qkv[i] = k0;
        num[i] = (lp - lm) / 2e-3;
    }
    compare("attention with dropout dqkv", num, dqkv, B * T * 3 * C);
    /* All kept with scale 1 is the layer without dropout, bit for bit. */
    float out2[B * T * C], att2[B * NH * T * T];
    memset(keep, 1, sizeof keep);
    gpt_attention_forward_drop(out, att, scratch, keep, 1.0f, qkv, B, T, C, NH);
    gpt_attention_forward(out2, att2, qkv, B, T, C, NH);
    assert_memory_equal(out, out2, sizeof out);
}

/* ---- the whole model ---- */
static void check_model(int bias, int gelu, int T)
{
    enum { B = 2 };
    gpt_shape s = TINY;
    s.bias = bias;
    s.gelu = gelu;
    gpt *g;
    an_err err;
    assert_int_equal(gpt_create(&g, &s, 42, B, &err), 0);
    fill(g->params, g->nparams, 18, -0.5f, 0.5f);
    int32_t idx[B * 5], tg[B * 5];
    tokens(idx, tg, B * T, s.vocab_size, 0);
    const uint64_t step = 3, micro = 1;
    double loss, eval;
    assert_int_equal(gpt_forward(g, idx, tg, B, T, &eval), 0);
    assert_int_equal(gpt_forward_train(g, idx, tg, B, T, &loss, step, micro), 0);
    assert_true(loss != eval); /* the masks did something */
    assert_int_equal(gpt_backward(g, g->grads, 0, 1.0f), 0);
    double *num = malloc(g->nparams * sizeof *num);
    assert_non_null(num);
    for (size_t i = 0; i < g->nparams; i++) {
        float keep = g->params[i];
        double lp, lm;
        g->params[i] = keep + 1e-3f;
        assert_int_equal(gpt_forward_train(g, idx, tg, B, T, &lp, step, micro), 0);
        g->params[i] = keep - 1e-3f;
        assert_int_equal(gpt_forward_train(g, idx, tg, B, T, &lm, step, micro), 0);
        g->params[i] = keep;
        num[i] = (lp - lm) / 2e-3;
    }
    for (int t = 0; t < g->ntensors; t++) {
        const gpt_tensor *x = &g->tensors[t];
        size_t n = x->n;
        if (strcmp(x->name, "transformer.wpe.weight") == 0)
            n = (size_t)T * s.n_embd;
        char what[80];
        snprintf(what, sizeof what, "dropout %s", x->name);
        compare(what, num + x->off, g->grads + x->off, n);
    }
    free(num);
    gpt_free(g);
}

static void test_model_gradients(void **state)
{
    (void)state;
    check_model(1, GPT_GELU_TANH, 5);
    check_model(0, GPT_GELU_ERF, 5);
    check_model(1, GPT_GELU_ERF, 3); /* shorter than block_size */
}

/* A few SGD steps of a model; train: gpt_forward_train at (step k, micro 0), else the
 * evaluation forward. */
static void sgd(gpt *g, int steps, int train)
{
    int32_t idx[10], tg[10];
    for (int k = 0; k < steps; k++) {
        int T = k % 2 ? 3 : 5;
        tokens(idx, tg, 10, g->s.vocab_size, k);
        double l;
        if (train)
            assert_int_equal(gpt_forward_train(g, idx, tg, 2, T, &l, (uint64_t)k, 0), 0);
        else
            assert_int_equal(gpt_forward(g, idx, tg, 2, T, &l), 0);
        assert_int_equal(gpt_backward(g, g->grads, 0, 1.0f), 0);
        for (size_t i = 0; i < g->nparams; i++)
            g->params[i] -= 0.3f * g->grads[i];
    }
}

/* Dropout 0: no masks in the arena and the training forward is the evaluation forward (the
 * path without dropout), so the weights after training are the same bit for bit; with
 * dropout they are not. */
static void test_zero_is_old_path(void **state)
{
    (void)state;
    gpt_shape s = TINY;
    s.dropout = 0;
    gpt *a, *b, *c;
    an_err err;
    assert_int_equal(gpt_create(&a, &s, 9, 2, &err), 0);
    assert_int_equal(gpt_create(&b, &s, 9, 2, &err), 0);
    assert_int_equal(gpt_create(&c, &TINY, 9, 2, &err), 0);
    assert_null(a->keep_emb);
    assert_null(a->la[0].keep_att);
    assert_non_null(c->keep_emb);
    assert_true(c->arena_floats > a->arena_floats);
    sgd(a, 6, 1);
    sgd(b, 6, 0);
    sgd(c, 6, 1);
    assert_memory_equal(a->params, b->params, a->nparams * sizeof(float));
    assert_true(memcmp(a->params, c->params, a->nparams * sizeof(float)) != 0);
    gpt_free(a);
    gpt_free(b);
    gpt_free(c);
}

static double zero_fraction_u8(const uint8_t *k, size_t n)
{
    size_t z = 0;
    for (size_t i = 0; i < n; i++)
        z += !k[i];
    return (double)z / (double)n;
}

/* The masks: about p of every place dropped, the embedding's output exactly 0 or
 * (wte + wpe)/(1-p), the same masks for the same (seed, step, micro) and other ones for
 * another step or micro-batch, a mask that depends on the element's position only (a batch's
 * first sequences get the masks they get in a shorter batch), and no dropout in evaluation. */
static void test_masks(void **state)
{
    (void)state;
    enum { B = 4, T = 16 };
    gpt_shape s = {.vocab_size = 11, .block_size = T, .n_layer = 2, .n_head = 4, .n_embd = 32,
                   .bias = 0, .gelu = GPT_GELU_ERF, .dropout = 0.25f};
    const size_t N = B * T, C = 32, NC = N * C, A = (size_t)B * 4 * T * T;
    gpt *g, *h, *z;
    an_err err;
    assert_int_equal(gpt_create(&g, &s, 4, B, &err), 0);
    assert_int_equal(gpt_create(&h, &s, 4, B, &err), 0);
    gpt_shape s0 = s;
    s0.dropout = 0;
    assert_int_equal(gpt_create(&z, &s0, 4, B, &err), 0);
    int32_t idx[B * T], tg[B * T];
    tokens(idx, tg, B * T, s.vocab_size, 1);
    double l1, l2, l3, l4, le, lz;
    assert_int_equal(gpt_forward_train(g, idx, tg, B, T, &l1, 10, 2), 0);
    /* Every place drops about p (16k elements or more: a standard deviation below 0.004). */
    const uint8_t *places[] = {g->keep_emb, g->la[0].keep_att, g->la[0].keep_attn,
                               g->la[0].keep_mlp, g->la[1].keep_att, g->la[1].keep_mlp};
    const size_t sizes[] = {NC, A, NC, NC, A, NC};
    for (int k = 0; k < 6; k++) {
        double f = zero_fraction_u8(places[k], sizes[k]);
        if (fabs(f - 0.25) > 0.02)
            fail_msg("place %d drops %.4f, expected 0.25", k, f);
    }
    /* Layers and places draw different masks. */
    assert_true(memcmp(g->la[0].keep_attn, g->la[0].keep_mlp, NC) != 0);
    assert_true(memcmp(g->la[0].keep_att, g->la[1].keep_att, A) != 0);
    /* The embedding's output: 0 where dropped, (wte + wpe)·1/(1-p) where kept; zeros ≈ p. */
    float *emb = malloc(NC * sizeof *emb);
    assert_non_null(emb);
    gpt_encoder_forward(emb, idx, g->params + g->off_wte, g->params + g->off_wpe, B, T, (int)C);
    size_t zeros = 0;
    for (size_t i = 0; i < NC; i++) {
        float want = g->keep_emb[i] ? emb[i] * (1.0f / 0.75f) : 0.0f;
        assert_true(g->encoded[i] == want);
        zeros += g->encoded[i] == 0.0f;
    }
    assert_true(fabs((double)zeros / NC - 0.25) < 0.02);
    /* Pure in (seed, step, micro): another model draws the same; another step or micro-batch
     * does not. */
    assert_int_equal(gpt_forward_train(h, idx, tg, B, T, &l2, 10, 2), 0);
    assert_true(l1 == l2);
    assert_memory_equal(g->logits, h->logits, N * 11 * sizeof(float));
    assert_int_equal(gpt_forward_train(h, idx, tg, B, T, &l3, 11, 2), 0);
    assert_int_equal(gpt_forward_train(h, idx, tg, B, T, &l4, 10, 3), 0);
    assert_true(l3 != l1 && l4 != l1 && l3 != l4);
    /* The first two sequences of the batch get the same masks in a batch of two. */
    uint8_t *emb4 = malloc(NC), *att4 = malloc(A);
    assert_non_null(emb4);
    assert_non_null(att4);
    memcpy(emb4, g->keep_emb, NC);
    memcpy(att4, g->la[1].keep_att, A);
    assert_int_equal(gpt_forward_train(h, idx, tg, 2, T, &l3, 10, 2), 0);
    assert_memory_equal(h->keep_emb, emb4, NC / 2);
    assert_memory_equal(h->la[1].keep_att, att4, A / 2);
    /* Evaluation never drops: the same as the model without dropout, bit for bit. */
    memcpy(z->params, g->params, g->nparams * sizeof(float));
    assert_int_equal(gpt_forward(g, idx, tg, B, T, &le), 0);
    assert_int_equal(gpt_forward(z, idx, tg, B, T, &lz), 0);
    assert_true(le == lz && le != l1);
    assert_memory_equal(g->logits, z->logits, N * 11 * sizeof(float));
    assert_int_equal(g->last_drop, 0);
    free(emb);
    free(emb4);
    free(att4);
    gpt_free(g);
    gpt_free(h);
    gpt_free(z);
}

/* Activation checkpointing with dropout, every K over 3 layers (segments of 1, 2 and 1+2
 * layers): the backward recomputes each segment with the masks of the last forward, so
 * gradients and weights are those without checkpointing, bit for bit. */
static void test_checkpointing(void **state)
{
    (void)state;
    gpt_shape s = TINY;
    s.n_layer = 3;
    for (int K = 1; K <= 3; K++) {
        gpt *a, *b;
        an_err err;
        assert_int_equal(gpt_create_ex(&a, &s, 9, 2, 0, &err), 0);
        assert_int_equal(gpt_create_ex(&b, &s, 9, 2, K, &err), 0);
        assert_int_equal(b->checkpoint, K);
        if (K == 1)
            assert_int_equal(b->arena_floats, a->arena_floats);
        else
            assert_true(b->arena_floats < a->arena_floats);
        assert_int_equal(b->arena_floats, gpt_arena_floats_ex(&s, 2, K));
        int32_t idx[10], tg[10];
        for (int step = 0; step < 6; step++) {
            int T = step % 2 ? 3 : 5;
            tokens(idx, tg, 10, s.vocab_size, step);
            for (int micro = 0; micro < 2; micro++) {
                double la, lb;
                assert_int_equal(gpt_forward_train(a, idx, tg, 2, T, &la, (uint64_t)step,
                                                   (uint64_t)micro), 0);
                assert_int_equal(gpt_forward_train(b, idx, tg, 2, T, &lb, (uint64_t)step,
                                                   (uint64_t)micro), 0);
                assert_true(la == lb);
                assert_int_equal(gpt_backward(a, a->grads, micro, 0.5f), 0);
                assert_int_equal(gpt_backward(b, b->grads, micro, 0.5f), 0);
            }
            assert_memory_equal(a->grads, b->grads, a->nparams * sizeof(float));
            for (size_t i = 0; i < a->nparams; i++) {
                a->params[i] -= 0.3f * a->grads[i];
                b->params[i] -= 0.3f * b->grads[i];
            }
        }
        assert_memory_equal(a->params, b->params, a->nparams * sizeof(float));
        gpt_free(a);
        gpt_free(b);
    }
}

/* Training with dropout and K = 2 checkpoints over 5 layers (segments of 2 and 3 layers, so
 * a place's masks serve layers of both segments): Adam-like steps over micro-batches give
 * the weights of the run without checkpointing, memcmp-equal; the same run without dropout
 * ends elsewhere, so the masks were in play. */
static void train_run(gpt *g, int steps)
{
    int32_t idx[12], tg[12];
    float *m = calloc(g->nparams, sizeof(float));
    assert_non_null(m);
    for (int step = 0; step < steps; step++) {
        for (int micro = 0; micro < 3; micro++) {
            int T = (step + micro) % 3 ? 4 : 5;
            tokens(idx, tg, 12, g->s.vocab_size, 7 * step + micro);
            double l;
            assert_int_equal(gpt_forward_train(g, idx, tg, 2, T, &l, (uint64_t)step,
                                               (uint64_t)micro), 0);
            assert_true(isfinite(l));
            assert_int_equal(gpt_backward(g, g->grads, micro, 1.0f / 3), 0);
        }
        for (size_t i = 0; i < g->nparams; i++) {
            m[i] = 0.9f * m[i] + g->grads[i];
            g->params[i] -= 0.05f * m[i];
        }
    }
    free(m);
}

static void test_train_two_checkpoints(void **state)
{
    (void)state;
    gpt_shape s = TINY;
    s.n_layer = 5;
    s.dropout = 0.25f;
    gpt *a, *b, *z;
    an_err err;
    assert_int_equal(gpt_create_ex(&a, &s, 21, 2, 0, &err), 0);
    assert_int_equal(gpt_create_ex(&b, &s, 21, 2, 2, &err), 0);
    assert_int_equal(b->checkpoint, 2);
    assert_true(b->arena_floats < a->arena_floats);
    /* Layers 0, 1 | 2, 3, 4: the first segment's layers share places 0 and 1 with layers 2
     * and 3, masks included; layer 1's output is its own (kept), layer 3's lies in place 1. */
    assert_ptr_equal(b->la[0].keep_att, b->la[2].keep_att);
    assert_ptr_equal(b->la[1].keep_mlp, b->la[3].keep_mlp);
    assert_ptr_not_equal(b->la[2].keep_mlp, b->la[4].keep_mlp);
    assert_ptr_not_equal(b->la[1].res3, b->la[3].res3);
    gpt_shape s0 = s;
    s0.dropout = 0;
    assert_int_equal(gpt_create_ex(&z, &s0, 21, 2, 2, &err), 0);
    assert_memory_equal(a->params, b->params, a->nparams * sizeof(float));
    train_run(a, 8);
    train_run(b, 8);
    train_run(z, 8);
    assert_int_equal(memcmp(a->params, b->params, a->nparams * sizeof(float)), 0);
    assert_true(memcmp(a->params, z->params, a->nparams * sizeof(float)) != 0);
    gpt_free(a);
    gpt_free(b);
    gpt_free(z);
}

/* The recipe's arena with dropout (test_gpt's test_memory has the rest by hand): N = 768,
 * C = 128, per layer the masks of B·NH·T² = 196,608 attention weights (49,152 floats) and of
 * two N·C outputs (2 × 24,576); outside the layers the embedding's mask 24,576 and a second
 * T² = 4,096 of scratch. 8,521,984 + 4·98,304 + 28,672 = 8,943,872 floats; with one
 * checkpoint per layer (K = 4) one layer's masks: 3,499,264 + 98,304 + 28,672 = 3,626,240;
 * with K = 2 two places' activations and masks (2 · 1,772,544 + 2 · 98,304), one inner
 * output and two segment outputs (3 · 98,304) and the rest outside the layers (1,431,808 +
 * 28,672): 5,300,480. */
static void test_memory_and_bad(void **state)
{
    (void)state;
    gpt_shape r = {65, 64, 4, 4, 128, 0, GPT_GELU_ERF, 0.2f};
    gpt_memory m = gpt_memory_estimate(&r, 12, 0, 2);
    assert_int_equal(m.activations, (size_t)8943872 * 4);
    gpt_memory c = gpt_memory_estimate(&r, 12, 4, 2);
    assert_int_equal(c.activations, (size_t)3626240 * 4);
    assert_int_equal(c.saved, (size_t)(8943872 - 3626240) * 4);
    gpt_memory c2 = gpt_memory_estimate(&r, 12, 2, 2);
    assert_int_equal(c2.activations, (size_t)5300480 * 4);
    assert_int_equal(c2.saved, (size_t)(8943872 - 5300480) * 4);
    gpt *g;
    an_err err;
    assert_int_equal(gpt_create_ex(&g, &r, 1, 12, 4, &err), 0);
    assert_int_equal(g->arena_floats * 4, c.activations);
    gpt_free(g);
    assert_int_equal(gpt_create_ex(&g, &r, 1, 12, 2, &err), 0);
    assert_int_equal(g->arena_floats * 4, c2.activations);
    gpt_free(g);
    const float bad[] = {1.0f, 1.5f, -0.1f, NAN};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        r.dropout = bad[k];
        g = NULL;
        assert_int_equal(gpt_create(&g, &r, 1, 1, &err), -EINVAL);
        assert_null(g);
        assert_string_equal(err.field, "model.dropout");
        assert_non_null(strstr(err.message, "[0, 1)"));
    }
}

/* The vocabulary of TINY's text (its tokens in *toks, free() them). */
static void tiny_text(text_vocab *v, int32_t **toks)
{
    size_t ntok = 0;
    an_err err;
    *toks = NULL;
    assert_int_equal(text_tokenize("abcdefg", 7, 0, 2, "text", v, toks, &ntok, &err), 0);
    assert_int_equal(v->size, TINY.vocab_size);
}

/* Generation never drops: a model with dropout samples the same text as the same weights
 * without it. */
static void test_generation(void **state)
{
    (void)state;
    text_vocab v;
    int32_t *toks;
    an_err err;
    tiny_text(&v, &toks);
    gpt *d, *z;
    gpt_shape s0 = TINY;
    s0.dropout = 0;
    assert_int_equal(gpt_create(&d, &TINY, 6, 1, &err), 0);
    assert_int_equal(gpt_create(&z, &s0, 6, 1, &err), 0);
    fill(d->params, d->nparams, 3, -0.5f, 0.5f);
    memcpy(z->params, d->params, d->nparams * sizeof(float));
    gen_params p = {.max_tokens = 40, .temperature = 1.0, .top_k = 0, .seed = 9, .step = -1,
                    .prompt = "abc"};
    gen_state a, b;
    assert_int_equal(gen_state_init(&a, d, &v, &p, &err), 0);
    assert_int_equal(gen_state_init(&b, z, &v, &p, &err), 0);
    char ta[5], tb[5];
    int na, nb;
    while ((na = gen_next(&a, ta)) > 0) {
        nb = gen_next(&b, tb);
        assert_int_equal(na, nb);
        assert_string_equal(ta, tb);
    }
    assert_int_equal(na, 0);
    assert_int_equal(a.made, 40);
    assert_int_equal(d->last_drop, 0);
    gen_state_free(&a);
    gen_state_free(&b);
    gpt_free(d);
    gpt_free(z);
    free(toks);
    text_vocab_free(&v);
}

/* The tiny text's vocabulary and tokens, and a model of TINY without dropout on it, its
 * weights filled in [-2, 2). */
static gpt *tiny_model(text_vocab *v, int32_t **toks)
{
    an_err err;
    tiny_text(v, toks);
    gpt_shape s0 = TINY;
    s0.dropout = 0;
    gpt *g;
    assert_int_equal(gpt_create(&g, &s0, 6, 1, &err), 0);
    fill(g->params, g->nparams, 5, -2.0f, 2.0f);
    return g;
}

/* A temperature too small to divide a logit by samples as temperature 0 does: the largest
 * logit every time. */
static void test_tiny_temperature_is_greedy(void **state)
{
    (void)state;
    text_vocab v;
    int32_t *toks;
    an_err err;
    gpt *g = tiny_model(&v, &toks);
    const double temps[] = {0.0, 5e-324, 1e-300, 1e-30};
    char want[64] = "";
    for (size_t k = 0; k < sizeof temps / sizeof temps[0]; k++) {
        gen_params p = {.max_tokens = 20, .temperature = temps[k], .top_k = 0, .seed = 3,
                        .step = -1, .prompt = "ab"};
        gen_state a;
        assert_int_equal(gen_state_init(&a, g, &v, &p, &err), 0);
        char got[64] = "", t[5];
        while (gen_next(&a, t) > 0)
            strcat(got, t);
        gen_state_free(&a);
        assert_int_equal(strlen(got), 20);
        if (k == 0)
            strcpy(want, got);
        else
            assert_string_equal(got, want);
    }
    gpt_free(g);
    free(toks);
    text_vocab_free(&v);
}

/* Weights that are not finite (a run that diverged before it saved them) are refused when
 * the generation starts, naming the step; finite weights whose scores overflow stop it with
 * -EDOM; top_k with fewer finite logits than k never reads outside its buffer (it did, and
 * the heap broke). */
static void test_weights_not_finite(void **state)
{
    (void)state;
    text_vocab v;
    int32_t *toks;
    an_err err;
    gpt *g = tiny_model(&v, &toks);
    gen_params p = {.max_tokens = 5, .temperature = 1.0, .top_k = 1, .seed = 3, .step = -1,
                    .prompt = "ab"};
    gen_state a;
    g->params[7] = NAN;
    assert_int_equal(gen_state_init(&a, g, &v, &p, &err), -EINVAL);
    assert_string_equal(err.field, "step");
    assert_non_null(strstr(err.message, "not finite"));
    /* every weight 3e38: finite, and the scores overflow to infinities and NaN */
    for (size_t i = 0; i < g->nparams; i++)
        g->params[i] = 3e38f;
    for (int k = 0; k <= 2; k++) {
        p.top_k = k;
        assert_int_equal(gen_state_init(&a, g, &v, &p, &err), 0);
        char t[5];
        assert_int_equal(gen_next(&a, t), -EDOM);
        assert_int_equal(a.made, 0);
        gen_state_free(&a);
    }
    gpt_free(g);
    free(toks);
    text_vocab_free(&v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attention_drop),
        cmocka_unit_test(test_model_gradients),
        cmocka_unit_test(test_zero_is_old_path),
        cmocka_unit_test(test_masks),
        cmocka_unit_test(test_checkpointing),
        cmocka_unit_test(test_train_two_checkpoints),
        cmocka_unit_test(test_memory_and_bad),
        cmocka_unit_test(test_generation),
        cmocka_unit_test(test_tiny_temperature_is_greedy),
        cmocka_unit_test(test_weights_not_finite),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
