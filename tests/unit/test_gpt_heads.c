/* Tests of core/gpt_heads.c, the products of one causal attention head: against a double-
 * precision product on the same operands (strided rows as in the model's qkv buffer), at the
 * sizes the tiles take and at sizes they leave to gemm_f32; the blocks past the diagonal's are
 * left unwritten by the tiles; the sizes they refuse; and the AVX-512 and AVX2 builds give
 * the same bits. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/gpt_heads.h"
#include "core/gpt_layers.h"
#include "core/rng.h"

static float *filled(size_t n, uint64_t seed)
{
    float *p = malloc(n * sizeof *p);
    assert_non_null(p);
    rng r;
    rng_init(&r, seed, 3, 0);
    for (size_t i = 0; i < n; i++)
        p[i] = (float)rng_range(&r, -1, 1);
    return p;
}

/* A T×T matrix with zeros above its diagonal. */
static float *lower_filled(int T, uint64_t seed)
{
    float *L = filled((size_t)T * T, seed);
    for (int t = 0; t < T; t++)
        for (int s = t + 1; s < T; s++)
            L[(size_t)t * T + s] = 0.0f;
    return L;
}

/* |got − want| within float rounding of a sum of n products of magnitude up to mag. */
static void near(float got, double want, int n, double mag)
{
    double tol = 4e-7 * n * mag + 1e-6;
    if (fabs(got - want) > tol)
        fail_msg("got %.9g, want %.9g (tolerance %.3g)", got, want, tol);
}

/* One run of the three products at (T, hs) with row strides as in a qkv buffer: multiplied
 * in the tiles (the blocks past the diagonal's left alone) or, at other sizes, by gemm_f32. */
static void check_products(int T, int hs)
{
    int tiled = gpt_head_fast(T, hs);
    int ld = 3 * hs + 5; /* a stride unlike the width */
    float *a = filled((size_t)T * ld, 11), *b = filled((size_t)T * ld, 12);
    float *L = lower_filled(T, 13);
    const float sentinel = 12345.0f, scale = 0.25f;
    float *S = malloc((size_t)T * T * sizeof *S), *out = malloc((size_t)T * ld * sizeof *out);
    assert_true(S && out);
    for (size_t i = 0; i < (size_t)T * T; i++)
        S[i] = sentinel;
    gpt_head_scores(S, a, ld, b, ld, T, hs, scale);
    for (int t = 0; t < T; t++) {
        int end = tiled ? ((t / 8) * 8 + 7) / 16 * 16 + 16 : T; /* the row's tile's blocks */
        assert_true(end > t);
        for (int s = 0; s < T; s++) {
            float got = S[(size_t)t * T + s];
            if (s >= end) {
                assert_true(got == sentinel);
                continue;
            }
            double want = 0;
            for (int d = 0; d < hs; d++)
                want += (double)a[(size_t)t * ld + d] * b[(size_t)s * ld + d];
            near(got, scale * want, hs, scale);
        }
    }
    for (size_t i = 0; i < (size_t)T * ld; i++)
        out[i] = sentinel;
    gpt_head_lower(out, ld, L, b, ld, T, hs, scale);
    for (int t = 0; t < T; t++)
        for (int d = 0; d < ld; d++) {
            if (d >= hs) { /* outside the head: untouched */
                assert_true(out[(size_t)t * ld + d] == sentinel);
                continue;
            }
            double want = 0;
            for (int s = 0; s <= t; s++)
                want += (double)L[(size_t)t * T + s] * b[(size_t)s * ld + d];
            near(out[(size_t)t * ld + d], scale * want, t + 1, scale);
        }
    gpt_head_lower_t(out, ld, L, b, ld, T, hs, 1.0f);
    for (int s = 0; s < T; s++)
        for (int d = 0; d < hs; d++) {
            double want = 0;
            for (int t = s; t < T; t++)
                want += (double)L[(size_t)t * T + s] * b[(size_t)t * ld + d];
            near(out[(size_t)s * ld + d], want, T - s, 1.0);
        }
    free(a), free(b), free(L), free(S), free(out);
}

static void test_products(void **state)
{
    (void)state;
    check_products(16, 16);
    check_products(64, 32);
    check_products(32, 64);
    check_products(128, 32);
    check_products(48, 16);
    /* Sizes the tiles do not take: the same results through gemm_f32. */
    check_products(20, 12);
    check_products(64, 128);
}

/* The fast path takes multiples of 16 up to T·hs = GPT_HEAD_FAST_MAX, nothing else. */
static void test_fast_sizes(void **state)
{
    (void)state;
    assert_true(gpt_head_fast(64, 32));
    assert_true(gpt_head_fast(64, 64));
    assert_false(gpt_head_fast(64, 128)); /* 8192 floats */
    assert_false(gpt_head_fast(63, 32));
    assert_false(gpt_head_fast(64, 24));
    assert_false(gpt_head_fast(0, 16));
    assert_false(gpt_head_fast(5, 3));
}

/* The AVX-512 and AVX2 builds give the same bits (a no-op comparison on a CPU without
 * AVX-512, where both calls run the AVX2 build). */
static void test_wide_same_bits(void **state)
{
    (void)state;
    enum { T = 64, hs = 32, ld = 96 };
    float *a = filled((size_t)T * ld, 21), *b = filled((size_t)T * ld, 22);
    float *L = lower_filled(T, 23);
    float r[2][3][T * ld];
    for (int w = 0; w < 2; w++) {
        gpt_layers_avx512(w);
        memset(r[w], 0, sizeof r[w]);
        gpt_head_scores(r[w][0], a, ld, b, ld, T, hs, 0.5f);
        gpt_head_lower(r[w][1], ld, L, b, ld, T, hs, 0.5f);
        gpt_head_lower_t(r[w][2], ld, L, a, ld, T, hs, 1.0f);
    }
    gpt_layers_avx512(1);
    assert_memory_equal(r[0], r[1], sizeof r[0]);
    free(a), free(b), free(L);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_products),
        cmocka_unit_test(test_fast_sizes),
        cmocka_unit_test(test_wide_same_bits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
