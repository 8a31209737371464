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

void gemm_f32(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
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
