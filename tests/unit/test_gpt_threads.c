/* Tests of the GPT layers that run on a job's threads (core/gpt_layers.c: the attention's
 * heads, layernorm, GELU, the residual add): at 2 and 3 threads every output has the same
 * bits as at 1 thread — with dropout, with bf16 products (whose heads stay on the calling
 * thread, the element-wise layers not), and at sizes below the threshold under which
 * the work stays on the calling thread. A test that the comparison can fail: a changed input
 * changes the outputs. And the whole model's passes, which run on one team of threads
 * (core/gpt.c): loss and gradients the same bits run to run at 1, 2 and 3 threads, and
 * across those counts equal to float32 rounding, with and without dropout and activation
 * checkpointing. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/gemm.h"
#include "core/gpt.h"
#include "core/gpt_layers.h"
#include "core/rng.h"

static void fill(float *p, size_t n, uint64_t seed, float lo, float hi)
{
    rng r;
    rng_init(&r, seed, 7, 0);
    for (size_t i = 0; i < n; i++)
        p[i] = (float)rng_range(&r, lo, hi);
}

/* Every output of one pass through the layers, in one buffer. */
typedef struct outs {
    float *buf;
    size_t n;
} outs;

typedef struct shape {
    int B, T, C, NH;
    int drop; /* attention dropout */
    int bias; /* layernorm bias */
} shape;

/* Runs the layers once on inputs made from seed at the given thread count; returns every
 * output, concatenated. */
static outs run_layers(const shape *sh, int threads, uint64_t seed)
{
    int B = sh->B, T = sh->T, C = sh->C, NH = sh->NH, N = B * T;
    size_t nqkv = (size_t)N * 3 * C, natt = (size_t)B * NH * T * T, nx = (size_t)N * C;
    size_t nh = (size_t)N * 4 * C;
    outs o;
    /* attention out, att, dqkv; ln out, mean, rstd, dinp, dw, db; gelu out, d, dinp;
     * residual out */
    o.n = nx + natt + nqkv + nx + N + N + nx + C + C + nh + nh + nh + nx;
    o.buf = calloc(o.n, sizeof *o.buf);
    float *qkv = malloc(nqkv * sizeof *qkv), *dout = malloc(nx * sizeof *dout);
    float *x = malloc(nx * sizeof *x), *w = malloc(C * sizeof *w), *b = malloc(C * sizeof *b);
    float *h = malloc(nh * sizeof *h), *dh = malloc(nh * sizeof *dh);
    float *scratch = malloc(2 * (size_t)T * T * sizeof *scratch);
    uint8_t *keep = malloc(natt);
    assert_non_null(o.buf);
    assert_true(qkv && dout && x && w && b && h && dh && scratch && keep);
    fill(qkv, nqkv, seed, -2, 2);
    fill(dout, nx, seed + 1, -1, 1);
    fill(x, nx, seed + 2, -3, 3);
    fill(w, C, seed + 3, 0.5f, 1.5f);
    fill(b, C, seed + 4, -0.5f, 0.5f);
    fill(h, nh, seed + 5, -4, 4);
    fill(dh, nh, seed + 6, -1, 1);
    for (size_t i = 0; i < natt; i++)
        keep[i] = (uint8_t)((i * 2654435761u >> 7) % 10 != 0);

    assert_int_equal(gemm_set_threads(threads), 0);
    assert_int_equal(gemm_threads(), threads);
    float *p = o.buf;
    float *aout = p, *att = aout + nx, *dqkv = att + natt;
    if (sh->drop) {
        gpt_attention_forward_drop(aout, att, scratch, keep, 1.0f / 0.9f, qkv, B, T, C, NH);
        gpt_attention_backward_drop(dqkv, scratch, keep, 1.0f / 0.9f, dout, qkv, att, B, T, C,
                                    NH);
    } else {
        gpt_attention_forward(aout, att, qkv, B, T, C, NH);
        gpt_attention_backward(dqkv, scratch, dout, qkv, att, B, T, C, NH);
    }
    float *lo = dqkv + nqkv, *mean = lo + nx, *rstd = mean + N, *dx = rstd + N, *dw = dx + nx;
    float *db = dw + C;
    gpt_layernorm_forward(lo, mean, rstd, x, w, sh->bias ? b : NULL, N, C);
    gpt_layernorm_backward(dx, dw, sh->bias ? db : NULL, dout, x, w, mean, rstd, N, C);
    float *go = db + C, *gd = go + nh, *gdx = gd + nh, *res = gdx + nh;
    gpt_gelu_forward_d(go, gd, h, (int)nh, GPT_GELU_ERF);
    gpt_gelu_backward_d(gdx, gd, dh, (int)nh);
    gpt_residual_forward(res, x, dout, (int)nx);
    assert_true(res + nx == o.buf + o.n);
    gemm_set_threads(1);
    free(qkv), free(dout), free(x), free(w), free(b), free(h), free(dh), free(scratch), free(keep);
    return o;
}

/* The same bits at 2 and 3 threads as at 1, and not all zero. */
static void same_at_any_thread_count(const shape *sh)
{
    outs one = run_layers(sh, 1, 42);
    size_t nonzero = 0;
    for (size_t i = 0; i < one.n; i++)
        nonzero += one.buf[i] != 0.0f;
    assert_true(nonzero > one.n / 2);
    for (int t = 2; t <= 3; t++) {
        outs more = run_layers(sh, t, 42);
        assert_int_equal(more.n, one.n);
        assert_memory_equal(more.buf, one.buf, one.n * sizeof *one.buf);
        free(more.buf);
    }
    /* The comparison can fail: other inputs give other bits. */
    outs other = run_layers(sh, 2, 43);
    assert_memory_not_equal(other.buf, one.buf, one.n * sizeof *one.buf);
    free(other.buf);
    free(one.buf);
}

/* Large enough that every layer splits its work (over 32,768 elements). */
static void test_threads_same_bits(void **state)
{
    (void)state;
    shape sh = {6, 64, 128, 4, 0, 1};
    same_at_any_thread_count(&sh);
    sh.bias = 0;
    same_at_any_thread_count(&sh);
}

static void test_threads_dropout(void **state)
{
    (void)state;
    shape sh = {4, 32, 96, 3, 1, 1};
    same_at_any_thread_count(&sh);
}

/* bf16 products: the same bits at any thread count, and not those of float32 products (a head
 * multiplied in float32 would show). */
static void test_threads_bf16(void **state)
{
    (void)state;
    shape sh = {6, 64, 128, 4, 0, 1};
    outs f32 = run_layers(&sh, 1, 42);
    gemm_set_bf16(1);
    same_at_any_thread_count(&sh);
    outs b16 = run_layers(&sh, 2, 42);
    gemm_set_bf16(0);
    /* the attention output is the first part; bf16 products change it */
    size_t nx = (size_t)sh.B * sh.T * sh.C;
    assert_memory_not_equal(b16.buf, f32.buf, nx * sizeof *f32.buf);
    free(f32.buf);
    free(b16.buf);
}

/* Small: the work stays on the calling thread (and odd sizes leave uneven pieces). */
static void test_threads_small(void **state)
{
    (void)state;
    shape sh = {1, 7, 12, 2, 0, 1};
    same_at_any_thread_count(&sh);
    shape odd = {5, 33, 76, 4, 0, 1}; /* N·C = 12,540; N·4C over the threshold, not a multiple */
    same_at_any_thread_count(&odd);
}

/* One training forward and backward of a model large enough for its passes to run on a team
 * (B·T·C = 32,768), at the given thread count: the loss, then every gradient. */
static float *model_pass(float dropout, int checkpoint, int threads, int tweak, double *loss)
{
    gpt_shape s = {.vocab_size = 37, .block_size = 64, .n_layer = 3, .n_head = 4,
                   .n_embd = 128, .bias = 1, .gelu = GPT_GELU_TANH, .dropout = dropout};
    enum { B = 4, T = 64 };
    gpt *g;
    an_err err;
    assert_int_equal(gpt_create_ex(&g, &s, 11, B, checkpoint, &err), 0);
    int32_t idx[B * T], tg[B * T];
    for (int i = 0; i < B * T; i++) {
        idx[i] = (i * 7 + 3 + tweak) % s.vocab_size;
        tg[i] = (i * 11 + 5) % s.vocab_size;
    }
    assert_int_equal(gemm_set_threads(threads), 0);
    assert_int_equal(gpt_forward_train(g, idx, tg, B, T, loss, 5, 0), 0);
    assert_int_equal(gpt_backward(g, g->grads, 0, 1.0f), 0);
    gemm_set_threads(1);
    float *grads = malloc(g->nparams * sizeof *grads);
    assert_non_null(grads);
    memcpy(grads, g->grads, g->nparams * sizeof *grads);
    gpt_free(g);
    return grads;
}

/* ‖a − b‖ / ‖b‖ over n floats. */
static double rel_diff(const float *a, const float *b, size_t n)
{
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        r += (double)b[i] * b[i];
    }
    return sqrt(d / r);
}

/* The whole model at 1, 2 and 3 threads. At each count a pass gives the same bits run to run
 * (what a resume needs: a job's thread count is part of its spec). Across counts the passes
 * agree to float32 rounding, not to the bit: a team's products run on pieces of rows whose
 * shape follows the thread count, and oneDNN's sgemm may round a row by the shape of its call
 * (its AVX2 kernels do; its AVX-512 ones gave the same bits). The layers' own code gives the
 * same bits at any count (the tests above). */
static void model_thread_counts(float dropout, int checkpoint)
{
    size_t np;
    {
        gpt_shape s = {.vocab_size = 37, .block_size = 64, .n_layer = 3, .n_head = 4,
                       .n_embd = 128, .bias = 1};
        np = gpt_param_count(&s);
    }
    double l1, lt, again;
    float *one = model_pass(dropout, checkpoint, 1, 0, &l1);
    size_t nonzero = 0;
    for (size_t i = 0; i < np; i++)
        nonzero += one[i] != 0.0f;
    assert_true(nonzero > np / 2);
    for (int t = 1; t <= 3; t++) {
        float *more = model_pass(dropout, checkpoint, t, 0, &lt);
        float *rerun = model_pass(dropout, checkpoint, t, 0, &again);
        assert_memory_equal(&again, &lt, sizeof lt);
        assert_memory_equal(rerun, more, np * sizeof *more);
        assert_true(fabs(lt - l1) <= 1e-6 * fabs(l1));
        assert_true(rel_diff(more, one, np) <= 1e-5);
        free(rerun);
        free(more);
    }
    /* The comparisons can fail: other tokens give another loss and other gradients. */
    float *other = model_pass(dropout, checkpoint, 2, 1, &lt);
    assert_memory_not_equal(&lt, &l1, sizeof l1);
    assert_true(fabs(lt - l1) > 1e-6 * fabs(l1));
    assert_true(rel_diff(other, one, np) > 1e-3);
    free(other);
    free(one);
}

static void test_model_thread_counts(void **state)
{
    (void)state;
    model_thread_counts(0.0f, 0);
}

static void test_model_dropout_checkpointing(void **state)
{
    (void)state;
    model_thread_counts(0.1f, 0);
    model_thread_counts(0.1f, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_same_bits),
        cmocka_unit_test(test_threads_dropout),
        cmocka_unit_test(test_threads_bf16),
        cmocka_unit_test(test_threads_small),
        cmocka_unit_test(test_model_thread_counts),
        cmocka_unit_test(test_model_dropout_checkpointing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
