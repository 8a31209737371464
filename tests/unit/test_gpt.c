/* Tests of core/gpt and core/gpt_layers: every layer's backward against central differences
 * of its forward (encoder, LayerNorm with and without bias, linear, causal attention, GELU
 * tanh and erf, fused cross-entropy), the whole model's gradients likewise (bias on/off,
 * both GELUs), the state_dict layout and parameter count, GPT-2 initialisation, causality,
 * bad shapes and inputs, and that a few SGD steps learn a repeating text. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/gpt.h"
#include "core/gpt_layers.h"
#include "core/gpt_math.h"
#include "core/rng.h"

static void fill(float *p, size_t n, uint64_t seed, float lo, float hi)
{
    rng r;
    rng_init(&r, seed, 99, 0);
    for (size_t i = 0; i < n; i++)
        p[i] = (float)rng_range(&r, lo, hi);
}

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

/* Compares analytic gradients with numeric ones: elementwise within a relative 2e-2 plus an
 * absolute 1e-3, and normwise within 1e-2; the numeric gradient must not be all zero (or the
 * check would prove nothing). */
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

/* A layer under test: forward from the state into out, loss = <out, r>. */
typedef void (*fwd_fn)(void *ctx, float *out);

/* d<out, r>/dp by central differences, for every element of p. */
static void numeric(fwd_fn f, void *ctx, float *p, size_t n, float *out, const float *r,
                    size_t nout, double *g)
{
    const float eps = 1e-3f;
    for (size_t i = 0; i < n; i++) {
        float keep = p[i];
        p[i] = keep + eps;
        f(ctx, out);
        double lp = dot(out, r, nout);
        p[i] = keep - eps;
        f(ctx, out);
        double lm = dot(out, r, nout);
        p[i] = keep;
        g[i] = (lp - lm) / (2.0 * (double)eps);
    }
}

/* ---- LayerNorm ---- */
typedef struct { int N, C; float *x, *w, *b, *mean, *rstd; } ln_ctx;
static void ln_fwd(void *c, float *out)
{
    ln_ctx *k = c;
    gpt_layernorm_forward(out, k->mean, k->rstd, k->x, k->w, k->b, k->N, k->C);
}

static void check_layernorm(int bias)
{
    enum { N = 3, C = 8 };
    float x[N * C], w[C], b[C], mean[N], rstd[N], out[N * C], r[N * C];
    float dx[N * C] = {0}, dw[C] = {0}, db[C] = {0};
    double g[N * C];
    fill(x, N * C, 1, -2, 2);
    fill(w, C, 2, 0.5f, 1.5f);
    fill(b, C, 3, -1, 1);
    fill(r, N * C, 4, -1, 1);
    ln_ctx k = {N, C, x, w, bias ? b : NULL, mean, rstd};
    ln_fwd(&k, out);
    gpt_layernorm_backward(dx, dw, bias ? db : NULL, r, x, w, mean, rstd, N, C);
    numeric(ln_fwd, &k, x, N * C, out, r, N * C, g);
    compare("layernorm dx", g, dx, N * C);
    numeric(ln_fwd, &k, w, C, out, r, N * C, g);
    compare("layernorm dw", g, dw, C);
    if (bias) {
        numeric(ln_fwd, &k, b, C, out, r, N * C, g);
        compare("layernorm db", g, db, C);
    }
}

static void test_layernorm(void **state)
{
    (void)state;
    check_layernorm(1);
    check_layernorm(0);
}

/* ---- linear ---- */
typedef struct { int N, C, OC; float *x, *w, *b; } lin_ctx;
static void lin_fwd(void *c, float *out)
{
    lin_ctx *k = c;
    gpt_linear_forward(out, k->x, k->w, k->b, k->N, k->C, k->OC);
}

static void test_linear(void **state)
{
    (void)state;
    enum { N = 4, C = 6, OC = 5 };
    float x[N * C], w[OC * C], b[OC], out[N * OC], r[N * OC];
    float dx[N * C], dw[OC * C] = {0}, db[OC] = {0};
    double g[OC * C];
    fill(x, N * C, 5, -1, 1);
    fill(w, OC * C, 6, -1, 1);
    fill(b, OC, 7, -1, 1);
    fill(r, N * OC, 8, -1, 1);
    fill(dx, N * C, 9, 100, 200); /* overwritten, not added to, with dinp_add = 0 */
    lin_ctx k = {N, C, OC, x, w, b};
    lin_fwd(&k, out);
    gpt_linear_backward(dx, 0, dw, db, r, x, w, N, C, OC);
    numeric(lin_fwd, &k, x, N * C, out, r, N * OC, g);
    compare("linear dx", g, dx, N * C);
    numeric(lin_fwd, &k, w, OC * C, out, r, N * OC, g);
    compare("linear dw", g, dw, OC * C);
    numeric(lin_fwd, &k, b, OC, out, r, N * OC, g);
    compare("linear db", g, db, OC);
}

/* ---- attention ---- */
typedef struct { int B, T, C, NH; float *qkv, *att; } att_ctx;
static void att_fwd(void *c, float *out)
{
    att_ctx *k = c;
    gpt_attention_forward(out, k->att, k->qkv, k->B, k->T, k->C, k->NH);
}

static void test_attention(void **state)
{
    (void)state;
    enum { B = 2, T = 5, C = 8, NH = 2, NQ = B * T * 3 * C, NO = B * T * C };
    float qkv[NQ], att[B * NH * T * T], out[NO], r[NO], dqkv[NQ] = {0}, scratch[T * T];
    double g[NQ];
    fill(qkv, NQ, 10, -1.5f, 1.5f);
    fill(r, NO, 11, -1, 1);
    att_ctx k = {B, T, C, NH, qkv, att};
    att_fwd(&k, out);
    /* Softmax rows sum to 1 and nothing attends to the future. */
    for (int i = 0; i < B * NH; i++)
        for (int t = 0; t < T; t++) {
            double s = 0;
            for (int u = 0; u < T; u++) {
                float a = att[((size_t)i * T + t) * T + u];
                if (u > t)
                    assert_true(a == 0.0f);
                s += a;
            }
            assert_true(fabs(s - 1.0) < 1e-5);
        }
    fill(dqkv, NQ, 14, 100, 200); /* overwritten, not added to */
    gpt_attention_backward(dqkv, scratch, r, qkv, att, B, T, C, NH);
    numeric(att_fwd, &k, qkv, NQ, out, r, NO, g);
    compare("attention dqkv", g, dqkv, NQ);
}

/* ---- GELU ---- */
typedef struct { int n, kind; float *x; } gelu_ctx;
static void gelu_fwd(void *c, float *out)
{
    gelu_ctx *k = c;
    gpt_gelu_forward(out, k->x, k->n, k->kind);
}

static void test_gelu(void **state)
{
    (void)state;
    enum { N = 40 };
    for (int kind = 0; kind < 2; kind++) {
        float x[N], out[N], r[N], dx[N];
        double g[N];
        fill(x, N, 12, -4, 4);
        fill(r, N, 13, -1, 1);
        gelu_ctx k = {N, kind, x};
        gelu_fwd(&k, out);
        gpt_gelu_backward(dx, x, r, N, kind);
        numeric(gelu_fwd, &k, x, N, out, r, N, g);
        compare(kind ? "gelu erf" : "gelu tanh", g, dx, N);
        /* The training pair (derivative kept by the forward, written over the input as the
         * model does) gives the same bits as the pair above. */
        float out2[N], d[N], dx2[N];
        gelu_fwd(&k, out); /* numeric() left a perturbed forward in out */
        memcpy(d, x, sizeof d);
        gpt_gelu_forward_d(out2, d, d, N, kind);
        assert_memory_equal(out2, out, sizeof out);
        gpt_gelu_backward_d(dx2, d, r, N);
        assert_memory_equal(dx2, dx, sizeof dx);
    }
    /* The two forms differ (by up to ~1e-3 near |x| = 2) and match known values. */
    float x[2] = {1.0f, -2.0f}, t[2], e[2];
    gpt_gelu_forward(t, x, 2, GPT_GELU_TANH);
    gpt_gelu_forward(e, x, 2, GPT_GELU_ERF);
    assert_true(fabs(e[0] - 0.8413447) < 1e-6);   /* x·Φ(x) at 1 */
    assert_true(fabs(t[0] - 0.8411920) < 1e-6);
    assert_true(fabs(e[1] - -0.0455003) < 1e-6);
    assert_true(t[1] != e[1]);
}

/* The vectorisable exp and erf against double-precision libm over their whole range. */
static void test_math(void **state)
{
    (void)state;
    double me = 0, mr = 0;
    for (float x = -87.0f; x < 88.3f; x += 0.00137f) {
        double r = exp((double)x);
        me = fmax(me, fabs(gpt_expf(x) - r) / r);
    }
    for (float x = -6.0f; x < 6.0f; x += 0.0001f)
        mr = fmax(mr, fabs(gpt_erff(x) - erf((double)x)));
    assert_true(me < 3e-7);
    assert_true(mr < 5e-7);
    assert_true(gpt_expf(-1000.0f) >= 0.0f && gpt_expf(-1000.0f) < 1e-37f);
    assert_true(isfinite(gpt_expf(1000.0f)));
    assert_true(isfinite(gpt_expf(NAN))); /* as the clamp, not a NaN converted to an int */
    assert_true(gpt_erff(10.0f) > 0.999999f && gpt_erff(-10.0f) < -0.999999f);
}

/* ---- cross-entropy ---- */
static void test_crossentropy(void **state)
{
    (void)state;
    enum { N = 3, V = 6 };
    int32_t tg[N] = {0, 5, 2};
    float logits[N * V], probs[N * V];
    double g[N * V];
    float rows[2 * N + 1];
    fill(logits, N * V, 14, -3, 3);
    memcpy(probs, logits, sizeof probs);
    double loss = gpt_crossentropy_forward(probs, tg, N, V, rows);
    /* Against a double-precision log-sum-exp. */
    double ref = 0;
    for (int n = 0; n < N; n++) {
        double mx = -1e30, s = 0;
        for (int j = 0; j < V; j++)
            mx = fmax(mx, logits[n * V + j]);
        for (int j = 0; j < V; j++)
            s += exp(logits[n * V + j] - mx);
        ref += mx + log(s) - logits[n * V + tg[n]];
    }
    assert_true(fabs(loss - ref / N) < 1e-6);
    gpt_crossentropy_backward(probs, tg, N, V, 2.0f);
    for (int i = 0; i < N * V; i++) {
        float keep = logits[i], tmp[N * V];
        logits[i] = keep + 1e-3f;
        memcpy(tmp, logits, sizeof tmp);
        double lp = gpt_crossentropy_forward(tmp, tg, N, V, rows);
        logits[i] = keep - 1e-3f;
        memcpy(tmp, logits, sizeof tmp);
        double lm = gpt_crossentropy_forward(tmp, tg, N, V, rows);
        logits[i] = keep;
        g[i] = 2.0 * (lp - lm) / 2e-3;
    }
    compare("crossentropy dlogits", g, probs, N * V);
    /* Far beyond float's e^x: logits ±100 give a loss of about 200 per token, as torch's
     * cross_entropy does (the softmax's probability of the target is e^-200, 0 in float). */
    float big[2 * 2] = {100, -100, -100, 100};
    int32_t wrong[2] = {1, 0};
    double l = gpt_crossentropy_forward(big, wrong, 2, 2, rows);
    assert_true(fabs(l - (200.0 + log1p(exp(-200.0)))) < 1e-9);
    float huge[2] = {3e38f, -3e38f};
    int32_t one[1] = {1};
    assert_true(gpt_crossentropy_forward(huge, one, 1, 2, rows) > 1e38); /* not clamped */
}

/* ---- encoder ---- */
typedef struct { int B, T, C; const int32_t *idx; float *wte, *wpe; } enc_ctx;
static void enc_fwd(void *c, float *out)
{
    enc_ctx *k = c;
    gpt_encoder_forward(out, k->idx, k->wte, k->wpe, k->B, k->T, k->C);
}

static void test_encoder(void **state)
{
    (void)state;
    enum { B = 2, T = 3, C = 4, V = 5 };
    const int32_t idx[B * T] = {1, 4, 1, 0, 3, 3}; /* repeats: gradients must add up */
    float wte[V * C], wpe[T * C], out[B * T * C], r[B * T * C];
    float dwte[V * C] = {0}, dwpe[T * C] = {0};
    double g[V * C];
    fill(wte, V * C, 15, -1, 1);
    fill(wpe, T * C, 16, -1, 1);
    fill(r, B * T * C, 17, -1, 1);
    enc_ctx k = {B, T, C, idx, wte, wpe};
    enc_fwd(&k, out);
    gpt_encoder_backward(dwte, dwpe, r, idx, B, T, C);
    numeric(enc_fwd, &k, wte, V * C, out, r, B * T * C, g);
    /* Token 2 never occurs: its rows get exactly zero. */
    for (int i = 0; i < C; i++)
        assert_true(dwte[2 * C + i] == 0.0f && g[2 * C + i] == 0.0);
    compare("encoder dwte", g, dwte, V * C);
    numeric(enc_fwd, &k, wpe, T * C, out, r, B * T * C, g);
    compare("encoder dwpe", g, dwpe, T * C);
}

/* ---- the whole model ---- */
static const gpt_shape TINY = {.vocab_size = 7, .block_size = 5, .n_layer = 2, .n_head = 2,
                               .n_embd = 8, .bias = 1, .gelu = GPT_GELU_TANH};

static void check_model(int bias, int gelu, int T)
{
    enum { B = 2 };
    gpt_shape s = TINY;
    s.bias = bias;
    s.gelu = gelu;
    gpt *g;
    an_err err;
    assert_int_equal(gpt_create(&g, &s, 42, B, &err), 0);
    /* Larger weights than GPT-2's 0.02 so that every gradient is well above rounding. */
    fill(g->params, g->nparams, 18, -0.5f, 0.5f);
    int32_t idx[B * 5], tg[B * 5];
    for (int i = 0; i < B * T; i++) {
        idx[i] = (i * 3 + 1) % s.vocab_size;
        tg[i] = (i * 5 + 2) % s.vocab_size;
    }
    double loss;
    assert_int_equal(gpt_forward(g, idx, tg, B, T, &loss), 0);
    assert_int_equal(gpt_backward(g, g->grads, 0, 1.0f), 0);
    double *num = malloc(g->nparams * sizeof *num);
    assert_non_null(num);
    for (size_t i = 0; i < g->nparams; i++) {
        float keep = g->params[i];
        double lp, lm;
        g->params[i] = keep + 1e-3f;
        assert_int_equal(gpt_forward(g, idx, tg, B, T, &lp), 0);
        g->params[i] = keep - 1e-3f;
        assert_int_equal(gpt_forward(g, idx, tg, B, T, &lm), 0);
        g->params[i] = keep;
        num[i] = (lp - lm) / 2e-3;
    }
    /* Per tensor, so a failure names it. wpe rows at or past T get no gradient. */
    for (int t = 0; t < g->ntensors; t++) {
        const gpt_tensor *x = &g->tensors[t];
        size_t n = x->n;
        if (strcmp(x->name, "transformer.wpe.weight") == 0)
            n = (size_t)T * s.n_embd;
        compare(x->name, num + x->off, g->grads + x->off, n);
    }
    /* accumulate = 1 adds a second copy. */
    float *first = malloc(g->nparams * sizeof *first);
    memcpy(first, g->grads, g->nparams * sizeof *first);
    assert_int_equal(gpt_forward(g, idx, tg, B, T, &loss), 0);
    assert_int_equal(gpt_backward(g, g->grads, 1, 1.0f), 0);
    for (size_t i = 0; i < g->nparams; i++)
        assert_true(fabsf(g->grads[i] - 2.0f * first[i]) <= 1e-6f * (1 + fabsf(first[i])));
    free(first);
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

/* Activation checkpointing with K = 1..n_layer checkpoints: the same losses and
 * bit-identical gradients and weights over a few SGD steps (full and shorter sequences); the
 * arena is smaller for every K but 1 (one segment: nothing to recompute). It need not shrink
 * with K: 3 checkpoints over 4 layers keep one output more than 2 and share as much. */
static void test_checkpointing(void **state)
{
    (void)state;
    gpt_shape s = TINY;
    s.n_layer = 4;
    for (int K = 1; K <= 5; K++) {
        gpt *a, *b;
        an_err err;
        assert_int_equal(gpt_create_ex(&a, &s, 9, 2, 0, &err), 0);
        assert_int_equal(gpt_create_ex(&b, &s, 9, 2, K, &err), 0);
        assert_int_equal(b->checkpoint, K < 4 ? K : 4); /* more than n_layer: one per layer */
        if (K == 1)
            assert_int_equal(b->arena_floats, a->arena_floats);
        else
            assert_true(b->arena_floats < a->arena_floats);
        if (K > 4)
            assert_int_equal(b->arena_floats, gpt_arena_floats_ex(&s, 2, 4));
        assert_int_equal(a->arena_floats, gpt_arena_floats(&s, 2));
        assert_int_equal(b->arena_floats, gpt_arena_floats_ex(&s, 2, K));
        assert_memory_equal(a->params, b->params, a->nparams * sizeof(float));
        int32_t idx[10], tg[10];
        for (int step = 0; step < 6; step++) {
            int T = step % 2 ? 3 : 5;
            for (int i = 0; i < 10; i++) {
                idx[i] = (i * 3 + step) % s.vocab_size;
                tg[i] = (i * 5 + 2 * step) % s.vocab_size;
            }
            double la, lb;
            assert_int_equal(gpt_forward(a, idx, tg, 2, T, &la), 0);
            assert_int_equal(gpt_forward(b, idx, tg, 2, T, &lb), 0);
            assert_true(la == lb);
            assert_int_equal(gpt_backward(a, a->grads, 0, 1.0f), 0);
            assert_int_equal(gpt_backward(b, b->grads, 0, 1.0f), 0);
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
    /* The recipe's activations at batch 12: one checkpoint per layer keeps under half. */
    gpt_shape r = {65, 64, 4, 4, 128, 0, GPT_GELU_ERF, 0};
    size_t full = gpt_arena_floats(&r, 12), ck = gpt_arena_floats_ex(&r, 12, 4);
    assert_true(ck < full / 2);
}

/* The recipe's memory by part, worked out by hand: N = 12·64 = 768 positions, C = 128.
 * Per layer N·(16C + 4) + B·NH·T² = 1,575,936 + 196,608 = 1,772,544 floats; outside the layers
 * encoded N·C 98,304 + ln_f N·(C+2) 99,840 + logits N·V 49,920 + backward scratch
 * (N·C + 2·N·4C + N·3C + T²) 1,183,744 = 1,431,808. All 4 layers: 8,521,984 floats; with
 * 4 checkpoints 1,772,544 − 98,304 + 4·98,304 + 1,431,808 = 3,499,264; with 2 (two segments
 * of two layers) 2·(1,772,544 − 98,304) + 98,304 + 2·98,304 + 1,431,808 = 5,075,200. */
static void test_memory(void **state)
{
    (void)state;
    gpt_shape r = {65, 64, 4, 4, 128, 0, GPT_GELU_ERF, 0};
    gpt_memory m = gpt_memory_estimate(&r, 12, 0, 2);
    assert_int_equal(m.params, 804096 * 4);
    assert_int_equal(m.grads, 804096 * 4);
    assert_int_equal(m.optim, 804096 * 8);
    assert_int_equal(m.activations, 8521984 * 4);
    assert_int_equal(m.saved, 0);
    assert_int_equal(m.total, 804096 * 16 + 8521984 * 4);
    gpt_memory c = gpt_memory_estimate(&r, 12, 4, 2);
    assert_int_equal(c.activations, 3499264 * 4);
    assert_int_equal(c.saved, (8521984 - 3499264) * 4);
    gpt_memory c2 = gpt_memory_estimate(&r, 12, 2, 2);
    assert_int_equal(c2.activations, 5075200 * 4);
    assert_int_equal(c2.saved, (8521984 - 5075200) * 4);
    /* The arena gpt_create allocates is the estimate. */
    gpt *g;
    an_err err;
    assert_int_equal(gpt_create_ex(&g, &r, 1, 12, 4, &err), 0);
    assert_int_equal(g->arena_floats * 4, c.activations);
    gpt_free(g);
    assert_int_equal(gpt_create_ex(&g, &r, 1, 12, 2, &err), 0);
    assert_int_equal(g->arena_floats * 4, c2.activations);
    gpt_free(g);
}

static void test_layout(void **state)
{
    (void)state;
    /* nanoGPT's shakespeare_char recipe: V 65, T 64, 4 layers, 128 wide, no biases.
     * wte 65·128 + wpe 64·128 + 4·(ln 128 + qkv 384·128 + proj 128·128 + ln 128 +
     * fc 512·128 + proj 128·512) + ln_f 128 = 804096 (nanoGPT prints 0.80M, which leaves
     * out wpe). */
    gpt_shape s = {65, 64, 4, 4, 128, 0, GPT_GELU_ERF, 0};
    assert_int_equal(gpt_param_count(&s), 804096);
    gpt *g;
    an_err err;
    assert_int_equal(gpt_create(&g, &s, 1, 2, &err), 0);
    assert_int_equal(g->nparams, 804096);
    assert_int_equal(g->ntensors, 2 + 4 * 6 + 1);
    assert_string_equal(g->tensors[0].name, "transformer.wte.weight");
    assert_string_equal(g->tensors[2].name, "transformer.h.0.ln_1.weight");
    assert_string_equal(g->tensors[3].name, "transformer.h.0.attn.c_attn.weight");
    assert_int_equal(g->tensors[3].shape[0], 384);
    assert_int_equal(g->tensors[3].shape[1], 128);
    const gpt_tensor *fp = gpt_find(g, "transformer.h.3.mlp.c_proj.weight");
    assert_non_null(fp);
    assert_int_equal(fp->shape[0], 128);
    assert_int_equal(fp->shape[1], 512);
    assert_null(gpt_find(g, "transformer.h.0.attn.c_attn.bias"));
    assert_null(gpt_find(g, "lm_head.weight"));
    assert_string_equal(g->tensors[g->ntensors - 1].name, "transformer.ln_f.weight");
    /* Tensors tile the buffer exactly. */
    size_t off = 0;
    for (int i = 0; i < g->ntensors; i++) {
        assert_int_equal(g->tensors[i].off, off);
        off += g->tensors[i].n;
    }
    assert_int_equal(off, g->nparams);
    gpt_free(g);
    s.bias = 1;
    assert_int_equal(gpt_param_count(&s), 804096 + 4 * (128 + 384 + 128 + 128 + 512 + 128) + 128);
}

static void stats(const float *p, size_t n, double *mean, double *sd)
{
    double s = 0, q = 0;
    for (size_t i = 0; i < n; i++) {
        s += p[i];
        q += (double)p[i] * p[i];
    }
    *mean = s / n;
    *sd = sqrt(q / n - *mean * *mean);
}

static void test_init(void **state)
{
    (void)state;
    gpt_shape s = {65, 64, 4, 4, 128, 1, GPT_GELU_TANH, 0};
    gpt *a, *b;
    an_err err;
    assert_int_equal(gpt_create(&a, &s, 7, 1, &err), 0);
    assert_int_equal(gpt_create(&b, &s, 7, 1, &err), 0);
    assert_memory_equal(a->params, b->params, a->nparams * sizeof(float));
    gpt_init_default(b, 8);
    assert_true(memcmp(a->params, b->params, a->nparams * sizeof(float)) != 0);
    double m, sd;
    const gpt_tensor *t = gpt_find(a, "transformer.h.1.attn.c_attn.weight");
    stats(a->params + t->off, t->n, &m, &sd);
    assert_true(fabs(m) < 1e-3 && fabs(sd - 0.02) < 1e-3);
    t = gpt_find(a, "transformer.h.1.mlp.c_proj.weight");
    stats(a->params + t->off, t->n, &m, &sd);
    assert_true(fabs(sd - 0.02 / sqrt(8.0)) < 5e-4);
    t = gpt_find(a, "transformer.h.2.ln_2.weight");
    stats(a->params + t->off, t->n, &m, &sd);
    assert_true(m == 1.0 && sd == 0.0);
    t = gpt_find(a, "transformer.h.2.mlp.c_fc.bias");
    stats(a->params + t->off, t->n, &m, &sd);
    assert_true(m == 0.0 && sd == 0.0);
    gpt_free(a);
    gpt_free(b);
}

static void test_causal(void **state)
{
    (void)state;
    gpt *g;
    an_err err;
    assert_int_equal(gpt_create(&g, &TINY, 3, 1, &err), 0);
    int V = TINY.vocab_size, T = TINY.block_size;
    int32_t idx[5] = {1, 2, 3, 4, 5};
    float before[5 * 7];
    assert_int_equal(gpt_forward(g, idx, NULL, 1, T, NULL), 0);
    memcpy(before, g->logits, sizeof before);
    idx[3] = 0; /* changes positions 3.. only */
    assert_int_equal(gpt_forward(g, idx, NULL, 1, T, NULL), 0);
    assert_memory_equal(before, g->logits, 3 * V * sizeof(float));
    assert_true(memcmp(before + 3 * V, g->logits + 3 * V, V * sizeof(float)) != 0);
    gpt_free(g);
}

static void test_bad(void **state)
{
    (void)state;
    an_err err;
    gpt *g = NULL;
    gpt_shape s = TINY;
    s.n_head = 3;
    assert_int_equal(gpt_create(&g, &s, 1, 1, &err), -EINVAL);
    assert_null(g);
    assert_string_equal(err.field, "model.n_head");
    assert_non_null(strstr(err.message, "divide"));
    s = TINY;
    s.n_layer = 0;
    assert_int_equal(gpt_shape_check(&s, &err), -EINVAL);
    assert_string_equal(err.field, "model.n_layer");
    s = TINY;
    s.vocab_size = 0;
    assert_int_equal(gpt_shape_check(&s, &err), -EINVAL);
    assert_string_equal(err.field, "model.vocab_size");
    s = TINY;
    s.block_size = -1;
    assert_int_equal(gpt_shape_check(&s, &err), -EINVAL);
    assert_string_equal(err.field, "model.block_size");
    s = TINY;
    s.gelu = 5;
    assert_int_equal(gpt_shape_check(&s, &err), -EINVAL);
    assert_string_equal(err.field, "model.gelu");

    assert_int_equal(gpt_create(&g, &TINY, 1, 2, &err), 0);
    int32_t idx[5] = {0, 1, 2, 3, 7}, tg[5] = {1, 2, 3, 4, 5};
    assert_int_equal(gpt_forward(g, idx, tg, 1, 5, NULL), -EINVAL);   /* token 7 of V 7 */
    idx[4] = 6;
    tg[0] = -1;
    assert_int_equal(gpt_forward(g, idx, tg, 1, 5, NULL), -EINVAL);
    tg[0] = 1;
    assert_int_equal(gpt_forward(g, idx, tg, 3, 5, NULL), -EINVAL);   /* B > max_batch */
    assert_int_equal(gpt_forward(g, idx, tg, 1, 6, NULL), -EINVAL);   /* T > block_size */
    assert_int_equal(gpt_backward(g, g->grads, 0, 1.0f), -EINVAL);   /* no forward yet */
    assert_int_equal(gpt_forward(g, idx, NULL, 1, 5, NULL), 0);
    assert_int_equal(gpt_backward(g, g->grads, 0, 1.0f), -EINVAL);   /* no targets */
    gpt_free(g);
}

/* Plain SGD on "abcabc…" learns the next character: the loss falls from ~ln V to near 0. */
static void test_learns(void **state)
{
    (void)state;
    gpt_shape s = {3, 8, 2, 2, 16, 1, GPT_GELU_TANH, 0};
    gpt *g;
    an_err err;
    assert_int_equal(gpt_create(&g, &s, 5, 4, &err), 0);
    int32_t idx[4 * 8], tg[4 * 8];
    for (int b = 0; b < 4; b++)
        for (int t = 0; t < 8; t++) {
            idx[b * 8 + t] = (b + t) % 3;
            tg[b * 8 + t] = (b + t + 1) % 3;
        }
    double first = 0, loss = 0;
    for (int step = 0; step < 150; step++) {
        assert_int_equal(gpt_forward(g, idx, tg, 4, 8, &loss), 0);
        if (step == 0)
            first = loss;
        assert_int_equal(gpt_backward(g, g->grads, 0, 1.0f), 0);
        for (size_t i = 0; i < g->nparams; i++)
            g->params[i] -= 0.5f * g->grads[i];
    }
    assert_true(fabs(first - log(3.0)) < 0.05);
    assert_true(loss < 0.05);
    gpt_free(g);
}

/* The AVX-512 versions of the element-wise loops give the bits of the AVX2 ones: a forward and
 * backward of a small model (both GELUs; rows of 40 hit the lanes' whole blocks and tails)
 * with each, compared byte for byte. On a CPU without AVX-512 both runs are AVX2. */
static void test_wide_same_bits(void **state)
{
    (void)state;
    enum { B = 3, T = 40 };
    for (int kind = 0; kind < 2; kind++) {
        gpt_shape s = {13, T, 2, 2, 48, 1, kind, 0};
        gpt *g;
        an_err err;
        assert_int_equal(gpt_create(&g, &s, 5, B, &err), 0);
        int32_t idx[B * T], tg[B * T];
        for (int i = 0; i < B * T; i++) {
            idx[i] = (i * 7 + 3) % 13;
            tg[i] = (i * 5 + 1) % 13;
        }
        float *g0 = malloc(g->nparams * sizeof(float));
        float *p0 = malloc((size_t)B * T * 13 * sizeof(float));
        double l0 = 0, l1 = 0;
        gpt_layers_avx512(0);
        assert_int_equal(gpt_forward(g, idx, tg, B, T, &l0), 0);
        memcpy(p0, g->logits, (size_t)B * T * 13 * sizeof(float));
        assert_int_equal(gpt_backward(g, g0, 0, 1.0f), 0);
        gpt_layers_avx512(1);
        assert_int_equal(gpt_forward(g, idx, tg, B, T, &l1), 0);
        assert_memory_equal(g->logits, p0, (size_t)B * T * 13 * sizeof(float));
        assert_int_equal(gpt_backward(g, g->grads, 0, 1.0f), 0);
        assert_memory_equal(g->grads, g0, g->nparams * sizeof(float));
        assert_true(l0 == l1);
        free(g0);
        free(p0);
        gpt_free(g);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_gelu),
        cmocka_unit_test(test_math),
        cmocka_unit_test(test_crossentropy),
        cmocka_unit_test(test_encoder),
        cmocka_unit_test(test_model_gradients),
        cmocka_unit_test(test_checkpointing),
        cmocka_unit_test(test_memory),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_causal),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_learns),
        cmocka_unit_test(test_wide_same_bits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
