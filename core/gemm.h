/* gemm — single-precision matrix products for the engine: oneDNN's dnnl_sgemm (GEMM.md),
 * with a plain C loop for products too small to pay oneDNN's call overhead.
 *
 * All matrices are row-major. Results are deterministic at a fixed thread count; the C loop
 * (used below GEMM_SMALL_FLOPS) is deterministic at any thread count. */
#ifndef ANNEALD_GEMM_H
#define ANNEALD_GEMM_H

#include <stddef.h>

/* Products with M*N*K at or below this many multiply-adds run in the C loop (measured: see
 * the comment in gemm.c). */
#define GEMM_SMALL_FLOPS 512

/* C[M,N] = alpha * op(A)[M,K] · op(B)[K,N] + beta * C, op(X) = X or Xᵀ (transX nonzero).
 * A is [M,K] (lda >= K) or, transposed, [K,M] (lda >= M); B is [K,N] (ldb >= N) or [N,K]
 * (ldb >= K); C is [M,N] (ldc >= N). With beta == 0, C is not read (NaNs in it do not
 * propagate). M, N or K of 0 is allowed (K = 0 gives C = beta*C). */
void gemm_f32(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);

/* The plain C loop behind gemm_f32 for small shapes (same contract); exported for tests and
 * benchmarks. Deterministic: each C element is summed over k in increasing order. */
void gemm_f32_ref(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                  int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* bf16 mode for products issued from the calling thread (ds_config.bf16): both operands are
 * rounded to bfloat16 (round to nearest even) and multiplied by oneDNN's bf16 matmul with
 * float32 accumulation (the same bits at any thread count); products at or below
 * GEMM_SMALL_FLOPS multiply the rounded operands in float32. Off by default. */
void gemm_set_bf16(int on);
/* oneDNN primitives a thread keeps for bf16 products, one a product shape (the least recently
 * used goes). */
#define GEMM_BF16_CACHE 32
int gemm_bf16(void);
float gemm_bf16_round(float x);

/* Frees what bf16 products keep on the calling thread between calls: the operands' bf16
 * scratch (it grows to the largest product's two operands), the float32 copies of rounded
 * operands, and the cached oneDNN primitives with their kernels. The next bf16 product makes
 * them again. A worker thread calls it when a job ends, so that the memory of one job's
 * products does not stay with the thread. */
void gemm_release(void);

/* Bytes of the calling thread's bf16 operand scratch now: the packed bf16 operands and the
 * float32 copies of rounded ones (0 after gemm_release). */
size_t gemm_bf16_scratch_bytes(void);

/* 1 when oneDNN makes bf16 matmuls on this CPU (asked once a process), 0 when bf16 products
 * multiply rounded float32 copies of their operands instead. */
int gemm_bf16_native(void);

/* Sets how many threads oneDNN uses for products issued from the calling thread (OpenMP's
 * per-thread setting, reached at run time in the OpenMP runtime oneDNN is linked with).
 * Returns 0, or -EINVAL for n < 1, or -ENOSYS if no OpenMP runtime is loaded. */
int gemm_set_threads(int n);

/* The thread count products from the calling thread will use (1 without OpenMP). */
int gemm_threads(void);

/* Runs one oneDNN product so that its kernels are generated now (~30 ms once per process)
 * rather than inside the first training step. */
void gemm_warmup(void);

#endif
