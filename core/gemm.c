/* gemm — dnnl_sgemm behind one function, a deterministic C loop for tiny shapes, and the
 * per-thread OpenMP thread count.
 *
 * oneDNN 2.6 as Debian builds it uses OpenMP (libgomp) and has no C call of its own for the
 * thread count. omp_set_num_threads is per calling thread, which is what a worker pool needs.
 * gemm_set_threads and gemm_threads look it up with dlsym, so that they act on the libgomp
 * oneDNN loaded even in a build without OpenMP (the fuzzing build); the bf16 fallback's
 * blocks (sgemm_row_blocks) use OpenMP directly, as the gpt layers do. */
#include "core/gemm.h"
#include "core/omp_compat.h"

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

/* bf16 products (gemm_set_bf16): the operands rounded to bfloat16 (round to nearest even)
 * into per-thread scratch that grows to the largest operands once and is then reused, and
 * multiplied by oneDNN's bf16 matmul with float32 accumulation (AVX512-BF16 where the CPU has
 * it). A primitive is made once per shape and thread and kept in a small per-thread cache: a
 * training step issues the same few shapes every time. oneDNN's matmul gives the same bits at
 * any thread count. */
static _Thread_local int bf16_mode;
static _Thread_local uint16_t *bf16_scratch;
static _Thread_local size_t bf16_cap;

void gemm_set_bf16(int on) { bf16_mode = on ? 1 : 0; }
int gemm_bf16(void) { return bf16_mode; }

static inline uint32_t bf16_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) == 0x7f800000u) /* inf, NaN: keep (a NaN stays a NaN) */
        return (u & 0xffff0000u) | ((u & 0xffffu) ? 0x00400000u : 0u);
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest, ties to even */
    return u & 0xffff0000u;
}

float gemm_bf16_round(float x)
{
    uint32_t u = bf16_bits(x);
    memcpy(&x, &u, 4);
    return x;
}

/* Rounds a stored operand of `rows` rows of `cols` (row stride ld) into dst, packed (row
 * stride cols): only the operand's own elements are converted, not what lies between its
 * rows (a head's q in a qkv buffer has 12 times as much). */
static void bf16_pack(uint16_t *dst, const float *X, int rows, int cols, int ld)
{
    for (int r = 0; r < rows; r++) {
        const float *x = X + (size_t)r * (size_t)ld;
        uint16_t *d = dst + (size_t)r * (size_t)cols;
        for (int c = 0; c < cols; c++)
            d[c] = (uint16_t)(bf16_bits(x[c]) >> 16);
    }
}

/* Room for n bf16 values in the scratch; 0, or -1 when it cannot grow. */
static int bf16_room(size_t n)
{
    if (n > bf16_cap) {
        uint16_t *p = realloc(bf16_scratch, n * sizeof *p);
        if (!p)
            return -1;
        bf16_scratch = p;
        bf16_cap = n;
    }
    return 0;
}

typedef struct bf16_prim {
    int used;
    int tA, tB, M, N, K, lda, ldb, ldc;
    float alpha, beta;
    dnnl_primitive_t prim;
    dnnl_memory_t a, b, c;
    uint64_t stamp;
} bf16_prim;

static _Thread_local dnnl_engine_t bf16_engine;
static _Thread_local dnnl_stream_t bf16_stream;
static _Thread_local bf16_prim bf16_cache[GEMM_BF16_CACHE];
static _Thread_local uint64_t bf16_clock;

static void bf16_prim_free(bf16_prim *p)
{
    if (p->prim)
        dnnl_primitive_destroy(p->prim);
    if (p->a)
        dnnl_memory_destroy(p->a);
    if (p->b)
        dnnl_memory_destroy(p->b);
    if (p->c)
        dnnl_memory_destroy(p->c);
    memset(p, 0, sizeof *p);
}

/* A matmul of this shape: op(A)[M,K] bf16 · op(B)[K,N] bf16 → C[M,N] f32, C = alpha·AB +
 * beta·C (output scale and a sum post-op). */
static int bf16_prim_make(bf16_prim *p)
{
    dnnl_dims_t ad = {p->M, p->K}, bd = {p->K, p->N}, cd = {p->M, p->N};
    dnnl_dims_t as = {p->tA ? 1 : p->lda, p->tA ? p->lda : 1};
    dnnl_dims_t bs = {p->tB ? 1 : p->ldb, p->tB ? p->ldb : 1};
    dnnl_dims_t cs = {p->ldc, 1};
    dnnl_memory_desc_t amd, bmd, cmd;
    dnnl_matmul_desc_t md;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    int ok = dnnl_memory_desc_init_by_strides(&amd, 2, ad, dnnl_bf16, as) == dnnl_success &&
             dnnl_memory_desc_init_by_strides(&bmd, 2, bd, dnnl_bf16, bs) == dnnl_success &&
             dnnl_memory_desc_init_by_strides(&cmd, 2, cd, dnnl_f32, cs) == dnnl_success &&
             dnnl_matmul_desc_init(&md, &amd, &bmd, NULL, &cmd) == dnnl_success &&
             dnnl_primitive_attr_create(&attr) == dnnl_success;
    if (ok && p->alpha != 1.0f)
        ok = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &p->alpha) == dnnl_success;
    if (ok && p->beta != 0.0f)
        ok = dnnl_post_ops_create(&po) == dnnl_success &&
             dnnl_post_ops_append_sum(po, p->beta) == dnnl_success &&
             dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success;
    ok = ok && dnnl_primitive_desc_create(&pd, &md, attr, bf16_engine, NULL) == dnnl_success &&
         dnnl_primitive_create(&p->prim, pd) == dnnl_success &&
         dnnl_memory_create(&p->a, &amd, bf16_engine, DNNL_MEMORY_NONE) == dnnl_success &&
         dnnl_memory_create(&p->b, &bmd, bf16_engine, DNNL_MEMORY_NONE) == dnnl_success &&
         dnnl_memory_create(&p->c, &cmd, bf16_engine, DNNL_MEMORY_NONE) == dnnl_success;
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (po)
        dnnl_post_ops_destroy(po);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    if (!ok)
        bf16_prim_free(p);
    return ok ? 0 : -1;
}

/* The cached primitive of this shape, made if new (the least recently used one goes); NULL
 * when oneDNN cannot make one (the caller falls back to float32 products of rounded
 * operands). */
static bf16_prim *bf16_prim_get(int tA, int tB, int M, int N, int K, int lda, int ldb, int ldc,
                                float alpha, float beta)
{
    if (!bf16_engine && (dnnl_engine_create(&bf16_engine, dnnl_cpu, 0) != dnnl_success ||
                         dnnl_stream_create(&bf16_stream, bf16_engine,
                                            dnnl_stream_default_flags) != dnnl_success))
        return NULL;
    bf16_prim *lru = &bf16_cache[0];
    for (int i = 0; i < GEMM_BF16_CACHE; i++) {
        bf16_prim *p = &bf16_cache[i];
        if (p->used && p->tA == tA && p->tB == tB && p->M == M && p->N == N && p->K == K &&
            p->lda == lda && p->ldb == ldb && p->ldc == ldc && p->alpha == alpha &&
            p->beta == beta) {
            p->stamp = ++bf16_clock;
            return p->prim ? p : NULL;
        }
        if (!p->used || (lru->used && p->stamp < lru->stamp))
            lru = p;
    }
    bf16_prim_free(lru);
    bf16_prim key = {.used = 1, .tA = tA, .tB = tB, .M = M, .N = N, .K = K, .lda = lda,
                     .ldb = ldb, .ldc = ldc, .alpha = alpha, .beta = beta,
                     .stamp = ++bf16_clock};
    *lru = key;
    if (bf16_prim_make(lru) == 0)
        return lru;
    /* A shape oneDNN has no bf16 matmul for (on a CPU without AVX-512, none) stays in the
     * cache without a primitive, so that it is not asked for again at every call: a refused
     * request cost about 10 us, three times a head's product. */
    *lru = key;
    return NULL;
}

/* One bf16 product; 0, or -1 when it could not run (nothing written to C then). */
static int gemm_bf16_run(int tA, int tB, int M, int N, int K, float alpha, const float *A,
                         int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    /* The operands as stored: rows × cols, packed in the scratch (the primitive's strides are
     * the packed ones). */
    int ra = tA ? K : M, ca = tA ? M : K, rb = tB ? N : K, cb = tB ? K : N;
    size_t na = (size_t)ra * (size_t)ca, nb = (size_t)rb * (size_t)cb;
    bf16_prim *p = bf16_prim_get(tA, tB, M, N, K, ca, cb, ldc, alpha, beta);
    if (!p || bf16_room(na + nb) != 0)
        return -1;
    bf16_pack(bf16_scratch, A, ra, ca, lda);
    bf16_pack(bf16_scratch + na, B, rb, cb, ldb);
    dnnl_memory_set_data_handle(p->a, bf16_scratch);
    dnnl_memory_set_data_handle(p->b, bf16_scratch + na);
    dnnl_memory_set_data_handle(p->c, C);
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, p->a}, {DNNL_ARG_WEIGHTS, p->b},
                               {DNNL_ARG_DST, p->c}};
    if (dnnl_primitive_execute(p->prim, bf16_stream, 3, args) != dnnl_success ||
        dnnl_stream_wait(bf16_stream) != dnnl_success)
        return -1;
    return 0;
}

/* Rounds a stored operand to bf16 values in float32 (the fallback and the small products). */
static const float *bf16_rounded(const float *X, size_t n, float **buf, size_t *cap)
{
    if (n > *cap) {
        float *p = realloc(*buf, n * sizeof *p);
        if (!p)
            return X;
        *buf = p;
        *cap = n;
    }
    for (size_t i = 0; i < n; i++)
        (*buf)[i] = gemm_bf16_round(X[i]);
    return *buf;
}

/* The bf16 products that oneDNN cannot make (no bf16 matmul on this CPU): the rounded
 * operands' float32 product in blocks of BF16_FALLBACK_ROWS rows of C, each on one thread,
 * the blocks shared over the job's threads. A whole float32 call would be split by oneDNN in
 * a way that depends on the number of threads, and bf16 products give the same bits at any
 * thread count (JOBSPEC.md), as the bf16 matmul does. */
enum { BF16_FALLBACK_ROWS = 64 };

static void sgemm_row_blocks(int transA, int transB, int M, int N, int K, float alpha,
                             const float *A, int lda, const float *B, int ldb, float beta,
                             float *C, int ldc)
{
    int blocks = (M + BF16_FALLBACK_ROWS - 1) / BF16_FALLBACK_ROWS;
    int threads = omp_get_max_threads();
    int share = blocks > 1 && !omp_in_parallel() && threads > 1;
    if (!share)
        omp_set_num_threads(1); /* this thread's setting only: the product stays on it */
#pragma omp parallel for schedule(static) if (share)
    for (int b = 0; b < blocks; b++) {
        int r = b * BF16_FALLBACK_ROWS;
        int m = M - r < BF16_FALLBACK_ROWS ? M - r : BF16_FALLBACK_ROWS;
        dnnl_sgemm(transA ? 'T' : 'N', transB ? 'T' : 'N', m, N, K, alpha,
                   transA ? A + r : A + (size_t)r * (size_t)lda, lda, B, ldb, beta,
                   C + (size_t)r * (size_t)ldc, ldc);
    }
    if (!share)
        omp_set_num_threads(threads);
}

static _Thread_local float *bf16_fa, *bf16_fb;
static _Thread_local size_t bf16_fa_cap, bf16_fb_cap;

size_t gemm_bf16_scratch_bytes(void)
{
    return bf16_cap * sizeof *bf16_scratch + (bf16_fa_cap + bf16_fb_cap) * sizeof(float);
}

/* 0 not asked yet, 1 oneDNN makes bf16 matmuls here, 2 it does not. */
static _Atomic int bf16_native;

int gemm_bf16_native(void)
{
    int v = bf16_native;
    if (v)
        return v == 1;
    dnnl_engine_t eng = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_dims_t d = {64, 64};
    dnnl_memory_desc_t a, c;
    dnnl_matmul_desc_t md;
    int ok = dnnl_engine_create(&eng, dnnl_cpu, 0) == dnnl_success &&
             dnnl_memory_desc_init_by_tag(&a, 2, d, dnnl_bf16, dnnl_ab) == dnnl_success &&
             dnnl_memory_desc_init_by_tag(&c, 2, d, dnnl_f32, dnnl_ab) == dnnl_success &&
             dnnl_matmul_desc_init(&md, &a, &a, NULL, &c) == dnnl_success &&
             dnnl_primitive_desc_create(&pd, &md, NULL, eng, NULL) == dnnl_success;
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (eng)
        dnnl_engine_destroy(eng);
    bf16_native = ok ? 1 : 2;
    return ok;
}

void gemm_release(void)
{
    for (int i = 0; i < GEMM_BF16_CACHE; i++)
        bf16_prim_free(&bf16_cache[i]);
    if (bf16_stream)
        dnnl_stream_destroy(bf16_stream);
    if (bf16_engine)
        dnnl_engine_destroy(bf16_engine);
    bf16_stream = NULL;
    bf16_engine = NULL;
    bf16_clock = 0;
    free(bf16_scratch);
    free(bf16_fa);
    free(bf16_fb);
    bf16_scratch = NULL;
    bf16_fa = bf16_fb = NULL;
    bf16_cap = bf16_fa_cap = bf16_fb_cap = 0;
}

void gemm_f32(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    if (bf16_mode && K > 0) {
        if ((long long)M * N * K > GEMM_SMALL_FLOPS &&
            gemm_bf16_run(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) == 0)
            return;
        /* Tiny products (and a primitive oneDNN could not make): the rounded operands through
         * the float32 paths, which accumulate in float32 as well. */
        size_t na = transA ? (size_t)(K - 1) * (size_t)lda + (size_t)M
                           : (size_t)(M - 1) * (size_t)lda + (size_t)K;
        size_t nb = transB ? (size_t)(N - 1) * (size_t)ldb + (size_t)K
                           : (size_t)(K - 1) * (size_t)ldb + (size_t)N;
        A = bf16_rounded(A, na, &bf16_fa, &bf16_fa_cap);
        B = bf16_rounded(B, nb, &bf16_fb, &bf16_fb_cap);
        if ((long long)M * N * K > GEMM_SMALL_FLOPS) {
            sgemm_row_blocks(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
            return;
        }
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
