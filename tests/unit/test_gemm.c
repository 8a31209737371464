/* Tests of core/gemm: every transpose combination against a double-precision reference, on
 * both sides of the small-shape threshold, with padded leading dimensions, alpha/beta, the
 * beta = 0 rule, determinism and the thread setting. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/gemm.h"
#include "core/rng.h"

static void fill(float *x, size_t n, uint64_t seed)
{
    rng r;
    rng_init(&r, seed, 1, 0);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)rng_range(&r, -1.0, 1.0);
}

/* Normwise relative error of C against alpha*op(A)op(B) + beta*C0 computed in double (with
 * bf16 mode on, the reference multiplies the bf16-rounded operands). */
static double check_one(int ta, int tb, int M, int N, int K, float alpha, float beta, int pad,
                        int use_ref)
{
    int bf = gemm_bf16();
    int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb;
    size_t nc = (size_t)M * ldc;
    float *A = malloc(na * sizeof *A + 4), *B = malloc(nb * sizeof *B + 4);
    float *C = malloc(nc * sizeof *C + 4), *C0 = malloc(nc * sizeof *C0 + 4);
    fill(A, na, 1);
    fill(B, nb, 2);
    fill(C0, nc, 3);
    memcpy(C, C0, nc * sizeof *C);
    if (use_ref)
        gemm_f32_ref(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else
        gemm_f32(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    double num = 0, den = 0;
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) {
                float fa = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                float fb = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                double a = bf ? gemm_bf16_round(fa) : fa, b = bf ? gemm_bf16_round(fb) : fb;
                s += a * b;
            }
            double want = alpha * s + beta * (double)C0[(size_t)i * ldc + j];
            double d = C[(size_t)i * ldc + j] - want;
            num += d * d;
            den += want * want;
        }
        /* The padding columns of C are untouched. */
        for (int j = N; j < ldc; j++)
            assert_true(C[(size_t)i * ldc + j] == C0[(size_t)i * ldc + j]);
    }
    free(A);
    free(B);
    free(C);
    free(C0);
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static void test_all_transposes_and_sizes(void **state)
{
    (void)state;
    static const int shapes[][3] = {{1, 1, 1}, {8, 1, 10},  {3, 5, 7},    {8, 4, 16},
                                    {9, 4, 16}, {30, 16, 4}, {30, 3, 16}, {128, 96, 64},
                                    {1, 300, 2}, {257, 33, 65}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int t = 0; t < 4; t++)
            for (int pad = 0; pad <= 3; pad += 3) {
                int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                double e1 = check_one(t & 1, t >> 1, M, N, K, 1.0f, 0.0f, pad, 0);
                double e2 = check_one(t & 1, t >> 1, M, N, K, -0.5f, 1.5f, pad, 0);
                double e3 = check_one(t & 1, t >> 1, M, N, K, 0.75f, 1.0f, pad, 1);
                assert_true(e1 < 1e-5);
                assert_true(e2 < 1e-5);
                assert_true(e3 < 1e-5);
            }
}

static void test_beta_zero_ignores_nan(void **state)
{
    (void)state;
    for (int big = 0; big < 2; big++) {
        int M = big ? 64 : 2, N = big ? 64 : 2, K = big ? 64 : 2;
        float *A = calloc((size_t)M * K, sizeof *A), *B = calloc((size_t)K * N, sizeof *B);
        float *C = malloc((size_t)M * N * sizeof *C);
        for (int i = 0; i < M * K; i++)
            A[i] = 1.0f;
        for (int i = 0; i < K * N; i++)
            B[i] = 2.0f;
        for (int i = 0; i < M * N; i++)
            C[i] = NAN;
        gemm_f32(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
        for (int i = 0; i < M * N; i++)
            assert_true(C[i] == 2.0f * K);
        free(A);
        free(B);
        free(C);
    }
}

static void test_k_zero_and_empty(void **state)
{
    (void)state;
    float A[4] = {1, 2, 3, 4}, B[4] = {1, 1, 1, 1}, C[4] = {1, 2, 3, 4};
    gemm_f32(0, 0, 2, 2, 0, 1.0f, A, 1, B, 2, 2.0f, C, 2);
    assert_true(C[0] == 2.0f && C[3] == 8.0f);
    gemm_f32(0, 0, 0, 2, 2, 1.0f, A, 2, B, 2, 0.0f, C, 2); /* M = 0: nothing written */
    assert_true(C[0] == 2.0f);
}

static void test_deterministic(void **state)
{
    (void)state;
    enum { M = 100, N = 70, K = 90 };
    float *A = malloc(M * K * sizeof *A), *B = malloc(K * N * sizeof *B);
    float *C1 = malloc(M * N * sizeof *C1), *C2 = malloc(M * N * sizeof *C2);
    fill(A, M * K, 5);
    fill(B, K * N, 6);
    for (int t = 0; t < 4; t++) {
        int ta = t & 1, tb = t >> 1;
        gemm_f32(ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, 0.0f, C1, N);
        gemm_f32(ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, 0.0f, C2, N);
        assert_memory_equal(C1, C2, M * N * sizeof *C1);
    }
    free(A);
    free(B);
    free(C1);
    free(C2);
}

static void test_threads(void **state)
{
    (void)state;
    assert_int_equal(gemm_set_threads(0), -EINVAL);
    assert_int_equal(gemm_set_threads(-3), -EINVAL);
    assert_int_equal(gemm_set_threads(2), 0);
    assert_int_equal(gemm_threads(), 2);
    assert_int_equal(gemm_set_threads(1), 0);
    assert_int_equal(gemm_threads(), 1);
    gemm_warmup();
    assert_true(check_one(0, 1, 64, 64, 64, 1.0f, 0.0f, 0, 0) < 1e-5);
}

/* bf16 products of several row blocks (where oneDNN has no bf16 matmul for the CPU, the
 * float32 products of the rounded operands are shared over the threads in blocks of rows),
 * every transpose: the same bits at 1, 2 and 3 threads, and other bits for other operands. */
static void bf16_thread_counts(void)
{
    enum { M = 300, N = 200, K = 96 };
    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
    float *C = malloc(sizeof(float) * M * N), *E = malloc(sizeof(float) * M * N);
    float *A2 = malloc(sizeof(float) * M * K);
    assert_true(A && B && C && E && A2);
    fill(A, (size_t)M * K, 17);
    fill(B, (size_t)K * N, 18);
    fill(A2, (size_t)M * K, 19);
    gemm_set_bf16(1);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            int lda = ta ? M : K, ldb = tb ? K : N;
            assert_int_equal(gemm_set_threads(1), 0);
            gemm_f32(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, N);
            for (int t = 2; t <= 3; t++) {
                assert_int_equal(gemm_set_threads(t), 0);
                gemm_f32(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, E, N);
                assert_memory_equal(C, E, sizeof(float) * M * N);
            }
            gemm_f32(ta, tb, M, N, K, 1.0f, A2, lda, B, ldb, 0.0f, E, N);
            assert_memory_not_equal(C, E, sizeof(float) * M * N);
        }
    gemm_set_threads(1);
    gemm_set_bf16(0);
    free(A);
    free(A2);
    free(B);
    free(C);
    free(E);
}

/* bf16 mode: oneDNN's bf16 matmul multiplies the operands rounded to bfloat16 with float32
 * accumulation: every transpose, padded leading dimensions, alpha and beta, on both sides of
 * the small-shape threshold, agree with the product of the rounded operands to float32
 * accuracy, and not with the unrounded product (the rounding did happen); results are the
 * same bits run to run and at 1 and 2 threads; rounding is to nearest even and keeps NaN. */
static void test_bf16(void **state)
{
    (void)state;
    gemm_set_bf16(1);
    const int shapes[][3] = {{3, 4, 5}, {64, 48, 96}, {768, 128, 384}, {33, 17, 129}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int pad = 0; pad < 2; pad++) {
                    int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                    double e = check_one(ta, tb, M, N, K, pad ? 0.5f : 1.0f, pad ? 0.25f : 0.0f,
                                         pad * 3, 0);
                    if (e > 1e-5)
                        fail_msg("bf16 %dx%dx%d ta=%d tb=%d pad=%d: error %.3g", M, N, K, ta, tb,
                                 pad, e);
                }
    /* An attention head's products: 32-wide slices of rows 384 apart (a qkv buffer), which
     * the operands' packing reads row by row. */
    for (int ta = 0; ta < 2; ta++) {
        double e = check_one(ta, 1 - ta, 64, 64, 32, 0.17f, 0.0f, 352, 0);
        if (e > 1e-5)
            fail_msg("bf16 head 64x64x32 ta=%d: error %.3g", ta, e);
    }
    /* Against the unrounded product the error is bf16's (~1e-3), far above float32's. */
    gemm_set_bf16(0);
    enum { M = 64, N = 64, K = 256 };
    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
    float *C = malloc(sizeof(float) * M * N), *D = malloc(sizeof(float) * M * N);
    float *E = malloc(sizeof(float) * M * N);
    fill(A, (size_t)M * K, 7);
    fill(B, (size_t)K * N, 8);
    gemm_f32(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, D, N);
    gemm_set_bf16(1);
    gemm_f32(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
    double num = 0, den = 0;
    for (int i = 0; i < M * N; i++) {
        num += (double)(C[i] - D[i]) * (C[i] - D[i]);
        den += (double)D[i] * D[i];
    }
    assert_true(sqrt(num / den) > 1e-4);
    assert_true(sqrt(num / den) < 2e-2);
    /* Deterministic, and the same at any thread count. */
    gemm_f32(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, E, N);
    assert_memory_equal(C, E, sizeof(float) * M * N);
    if (gemm_set_threads(1) == 0) {
        gemm_f32(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, E, N);
        assert_memory_equal(C, E, sizeof(float) * M * N);
        gemm_set_threads(2);
        gemm_f32(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, E, N);
        assert_memory_equal(C, E, sizeof(float) * M * N);
    }
    gemm_set_bf16(0);
    free(A);
    free(B);
    free(C);
    free(D);
    free(E);
    bf16_thread_counts();
    /* Rounding: ties to even, overflow to infinity, NaN kept. */
    assert_true(gemm_bf16_round(1.0f + 0x1p-8f) == 1.0f);               /* a tie: to even */
    assert_true(gemm_bf16_round(1.0f + 0x1p-7f + 0x1p-8f) == 1.0f + 0x1p-6f); /* to even */
    assert_true(gemm_bf16_round(1.0f + 0x1p-8f + 0x1p-20f) == 1.0f + 0x1p-7f);
    assert_true(isinf(gemm_bf16_round(3.4e38f)));
    assert_true(isnan(gemm_bf16_round(NAN)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_transposes_and_sizes),
        cmocka_unit_test(test_beta_zero_ignores_nan),
        cmocka_unit_test(test_k_zero_and_empty),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_bf16),
    };
    return cmocka_run_group_tests_name("gemm", tests, NULL, NULL);
}
