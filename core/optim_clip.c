/* optim_clip — gradient clipping (optim_clip_grad_norm, see optim.h): the global norm,
 * summed in chunks on the job's threads, and the scaling of every gradient. */
#include "core/optim.h"

#include <math.h>
#include <stddef.h>

#include "core/omp_compat.h"

/* Sum of squares in double over W partial sums. Each partial sum is a chain of dependent
 * adds: with 8 (two AVX2 registers) a large gradient's pass ran at the adds' latency, 2 % of
 * an MLP step on Fashion-MNIST, so gradients from SUMSQ_WIDE_MIN elements on take 32. A
 * small model keeps 8 (and its old bits): adding up 32 partial sums cost the 11-parameter
 * tutorial job 7 % of its step. */
#define SUMSQ_WIDE_MIN 1024
#define SUMSQ_BODY(W, n, x)                                                                   \
    do {                                                                                      \
        double a[W] = {0};                                                                    \
        size_t i = 0;                                                                         \
        for (; i + (W) <= (n); i += (W))                                                      \
            for (size_t j = 0; j < (W); j++)                                                  \
                a[j] += (double)(x)[i + j] * (double)(x)[i + j];                              \
        for (size_t j = 0; i < (n); i++, j++)                                                 \
            a[j] += (double)(x)[i] * (double)(x)[i];                                          \
        double s = 0;                                                                         \
        for (int j = 0; j < (W); j++)                                                         \
            s += a[j];                                                                        \
        return s;                                                                             \
    } while (0)

/* The kernels, once for float and once for double. */
#define CLIP_KERNELS(T, K)                                                                    \
    static double K##sumsq8(size_t n, const T *restrict x) { SUMSQ_BODY(8, n, x); }           \
    static double K##sumsq32(size_t n, const T *restrict x) { SUMSQ_BODY(32, n, x); }         \
    static double K##sumsq(size_t n, const T *restrict x)                                     \
    {                                                                                         \
        return n < SUMSQ_WIDE_MIN ? K##sumsq8(n, x) : K##sumsq32(n, x);                       \
    }                                                                                         \
    static void K##scale(size_t n, T *restrict x, T c)                                        \
    {                                                                                         \
        for (size_t i = 0; i < n; i++)                                                        \
            x[i] = x[i] * c;                                                                  \
    }

CLIP_KERNELS(float, f32_)
CLIP_KERNELS(double, f64_)

/* The norm's sum of squares runs over chunks of SUMSQ_CHUNK elements, each summed alone, the
 * chunks' sums then added in order: the same bits whichever thread sums a chunk, so large
 * gradients are summed on the job's threads (a model of one chunk or less sums as one pass,
 * as it always did). The chunks' sums are kept SUMSQ_GROUP at a time. */
#define SUMSQ_CHUNK 65536
#define SUMSQ_GROUP 256

static double chunk_sumsq(const void *x, size_t i0, size_t i1, int dtype)
{
    return dtype == OPTIM_F64 ? f64_sumsq(i1 - i0, (const double *)x + i0)
                              : f32_sumsq(i1 - i0, (const float *)x + i0);
}

static double sumsq_chunked(const void *x, size_t n, int dtype)
{
    size_t chunks = (n + SUMSQ_CHUNK - 1) / SUMSQ_CHUNK;
    /* One chunk: no OpenMP at all. Even a region that runs on one thread costs a call into
     * the runtime, several times a small model's whole step. */
    if (chunks < 2)
        return chunk_sumsq(x, 0, n, dtype);
    int k = omp_get_max_threads();
    (void)k; /* only OpenMP's clause reads it */
    double part[SUMSQ_GROUP], total = 0.0;
    for (size_t c0 = 0; c0 < chunks; c0 += SUMSQ_GROUP) {
        size_t c1 = c0 + SUMSQ_GROUP < chunks ? c0 + SUMSQ_GROUP : chunks;
#pragma omp parallel for num_threads(k) schedule(static) if (k > 1)
        for (size_t c = c0; c < c1; c++) {
            size_t i1 = (c + 1) * SUMSQ_CHUNK;
            part[c - c0] = chunk_sumsq(x, c * SUMSQ_CHUNK, i1 < n ? i1 : n, dtype);
        }
        for (size_t c = c0; c < c1; c++)
            total += part[c - c0];
    }
    return total;
}

double optim_clip_grad_norm(void *grads, size_t n, int dtype, double max_norm)
{
    double norm = sqrt(sumsq_chunked(grads, n, dtype));
    if (max_norm > 0) {
        double coef = max_norm / (norm + 1e-6);
        if (coef > 1.0)
            coef = 1.0; /* a NaN norm keeps coef NaN, as torch.clamp does */
        if (coef == 1.0)
            return norm; /* x * 1 is x: a pass over the gradients saved */
        size_t chunks = (n + SUMSQ_CHUNK - 1) / SUMSQ_CHUNK;
        if (chunks < 2) {
            if (dtype == OPTIM_F64)
                f64_scale(n, grads, coef);
            else
                f32_scale(n, grads, (float)coef);
            return norm;
        }
        int k = omp_get_max_threads();
        (void)k;
        /* Element by element: any split gives the same bits. */
#pragma omp parallel for num_threads(k) schedule(static) if (k > 1)
        for (size_t c = 0; c < chunks; c++) {
            size_t i0 = c * SUMSQ_CHUNK, i1 = i0 + SUMSQ_CHUNK < n ? i0 + SUMSQ_CHUNK : n;
            if (dtype == OPTIM_F64)
                f64_scale(i1 - i0, (double *)grads + i0, coef);
            else
                f32_scale(i1 - i0, (float *)grads + i0, (float)coef);
        }
    }
    return norm;
}
