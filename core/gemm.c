/* gemm — dnnl_sgemm behind one function, a deterministic C loop for tiny shapes, and the
 * per-thread OpenMP thread count.
 *
 * oneDNN 2.6 as Debian builds it uses OpenMP (libgomp) and has no C call of its own for the
 * thread count. omp_set_num_threads is per calling thread, which is what a worker pool needs.
 * libgomp is already loaded (libdnnl depends on it), so it is looked up with dlsym rather than
 * adding -fopenmp / -lgomp to the build. */
#include "core/gemm.h"

#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

void gemm_f32_ref(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                  int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    /* A dot product per C element: for the shapes this serves (a few hundred multiply-adds)
     * it beat an i-k-j loop, whose per-row setup dominates when N is small. Element (i,k) of
     * op(A) is at A[i*sa_i + k*sa_k]; likewise for B. */
    ptrdiff_t sa_i = transA ? 1 : lda, sa_k = transA ? lda : 1;
    ptrdiff_t sb_k = transB ? 1 : ldb, sb_j = transB ? ldb : 1;
    for (int i = 0; i < M; i++) {
        float *c = C + (ptrdiff_t)i * ldc;
        for (int j = 0; j < N; j++) {
            const float *a = A + i * sa_i;
            const float *b = B + j * sb_j;
            float s = 0.0f;
            for (int k = 0; k < K; k++)
                s += a[k * sa_k] * b[k * sb_k];
            c[j] = beta == 0.0f ? alpha * s : alpha * s + beta * c[j];
        }
    }
}

/* bf16 products (gemm_set_bf16): the operands rounded to bfloat16 into per-thread scratch
 * that grows to the largest operand once and is then reused (no allocation per step). */
static _Thread_local int bf16_mode;
static _Thread_local float *bf16_scratch;
static _Thread_local size_t bf16_cap;

void gemm_set_bf16(int on) { bf16_mode = on ? 1 : 0; }
int gemm_bf16(void) { return bf16_mode; }

float gemm_bf16_round(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) == 0x7f800000u) /* inf, NaN: keep (a NaN stays a NaN) */
        return x;
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest, ties to even */
    u &= 0xffff0000u;
    memcpy(&x, &u, 4);
    return x;
}

/* Rounds the operands into the scratch; 0, or -1 when it cannot grow (then fp32 is used). */
static int bf16_operands(const float **A, size_t na, const float **B, size_t nb)
{
    if (na + nb > bf16_cap) {
        float *p = realloc(bf16_scratch, (na + nb) * sizeof *p);
        if (!p)
            return -1;
        bf16_scratch = p;
        bf16_cap = na + nb;
    }
    for (size_t i = 0; i < na; i++)
        bf16_scratch[i] = gemm_bf16_round((*A)[i]);
    for (size_t i = 0; i < nb; i++)
        bf16_scratch[na + i] = gemm_bf16_round((*B)[i]);
    *A = bf16_scratch;
    *B = bf16_scratch + na;
    return 0;
}

void gemm_f32(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    if (bf16_mode && K > 0) {
        size_t na = transA ? (size_t)(K - 1) * (size_t)lda + (size_t)M
                           : (size_t)(M - 1) * (size_t)lda + (size_t)K;
        size_t nb = transB ? (size_t)(N - 1) * (size_t)ldb + (size_t)K
                           : (size_t)(K - 1) * (size_t)ldb + (size_t)N;
        bf16_operands(&A, na, &B, nb);
    }
    /* Measured on the reference machine (1 thread): 8x1x10 takes 55 ns in the loop and 120 ns
     * in dnnl_sgemm; at 8x4x16 (512) both take ~295 ns; above that dnnl_sgemm wins (16x16x16:
     * 2.3 us against 0.35 us). */
    if ((long long)M * N * K <= GEMM_SMALL_FLOPS) {
        gemm_f32_ref(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* dnnl_sgemm only fails on invalid arguments, which the contract excludes. */
    dnnl_sgemm(transA ? 'T' : 'N', transB ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C,
               ldc);
}

typedef void (*omp_set_fn)(int);
typedef int (*omp_get_fn)(void);

int gemm_set_threads(int n)
{
    if (n < 1)
        return -EINVAL;
    omp_set_fn set = (omp_set_fn)dlsym(RTLD_DEFAULT, "omp_set_num_threads");
    if (!set)
        return -ENOSYS;
    set(n);
    return 0;
}

int gemm_threads(void)
{
    omp_get_fn get = (omp_get_fn)dlsym(RTLD_DEFAULT, "omp_get_max_threads");
    return get ? get() : 1;
}

void gemm_warmup(void)
{
    enum { D = 32 };
    float a[D * D] = {0}, c[D * D];
    dnnl_sgemm('N', 'N', D, D, D, 1.0f, a, D, a, D, 0.0f, c, D);
    dnnl_sgemm('N', 'T', D, D, D, 1.0f, a, D, a, D, 0.0f, c, D);
    dnnl_sgemm('T', 'N', D, D, D, 1.0f, a, D, a, D, 0.0f, c, D);
}
