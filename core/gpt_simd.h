/* gpt_simd — what the GPT's files share (internal to core/gpt.c, core/gpt_layers.c and
 * core/gpt_attention.c): the AVX-512/AVX2 double build of a loop, the split of a loop over a
 * job's threads (and the team a pass runs on), and sums in fixed lanes. */
#ifndef ANNEALD_GPT_SIMD_H
#define ANNEALD_GPT_SIMD_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include "core/omp_compat.h"

#include "core/gpt_math.h"

/* 1 when the AVX-512 builds of the loops are used (decided once; gpt_layers_avx512 sets it). */
int gpt_wide_vectors(void);

#define ALWAYS_INLINE __attribute__((always_inline))

/* The element-wise loops that cost most (GELU, the attention's softmax, layernorm) are also
 * compiled for AVX-512 with 512-bit vectors, picked at run time when the CPU has it: the
 * build targets x86-64-v3 (AVX2), and on this machine class the wide vectors halve the
 * instructions of these loops. Both versions run the same operations on every element in
 * the same order (lanes included), so they give the same bits (test_gpt compares them through
 * gpt_layers_avx512). */
#ifdef __clang__ /* the fuzzing build: clang takes no vector width in a target attribute */
#define AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw")))
#else
#define AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw," \
                                     "prefer-vector-width=512")))
#endif

/* name_512, name_body (always inlined) compiled for AVX-512, and name, which calls it or
 * name_256 (defined by the caller: the build's own way) as the CPU allows. */
#define WIDE_OR_256(name, params, args)                                \
    AVX512 static void name##_512 params { name##_body args; }         \
    static void name params                                            \
    {                                                                  \
        if (gpt_wide_vectors())                                        \
            name##_512 args;                                           \
        else                                                           \
            name##_256 args;                                           \
    }

/* name_body compiled twice: name_512 for AVX-512, name_256 as built. */
#define TWO_WAYS(name, params, args)                                   \
    static void name##_256 params { name##_body args; }                \
    WIDE_OR_256(name, params, args)

/* The element-wise layers run on the job's threads too (OpenMP, the runtime oneDNN uses): each
 * thread takes one contiguous piece of the rows or elements. Every element or row is computed
 * by the same operations whichever piece it falls in (element pieces start at multiples of 64,
 * so vector lanes line up as in one pass), so the results do not depend on the thread count.
 * Work under SPAN_MIN elements stays on the calling thread: waking the others costs more. */
#define SPAN_MIN 32768

/* A pass of the model (gpt.c's forward or backward) may run on one team of the job's threads
 * from start to end: every layer function is then called by each thread of the team, splits
 * its work over the team, and ends at a barrier, so the layers keep their order exactly as in
 * a serial pass. Outside a team, a function opens a team of its own when its work is large
 * enough. The team version saves the waking of sleeping threads at every layer (about 120
 * times a step for the README's GPT, tens of microseconds each) and lets each matrix product
 * run as a few single-threaded products on pieces of its rows. gpt_in_team is this thread's
 * mark, set by gpt_team_enter (an explicit mark rather than omp_in_parallel: a caller inside
 * a parallel region of its own is not a team of the model). */
extern _Thread_local int gpt_in_team;

/* body on the job's threads: by the calling team, then a barrier; or by a team opened here
 * when big is true; else on the calling thread alone. body splits its work with span(). */
#define ON_THREADS(big, ...)                                     \
    do {                                                         \
        if (gpt_in_team) {                                       \
            { __VA_ARGS__ }                                      \
            _Pragma("omp barrier")                               \
        } else {                                                 \
            int on_threads_big_ = (big);                         \
            (void)on_threads_big_;                               \
            _Pragma("omp parallel if (on_threads_big_)")         \
            { __VA_ARGS__ }                                      \
        }                                                        \
    } while (0)

/* out[i] = keep[i] ? in[i]·scale : 0 for i in [i0, i1): gpt_dropout's loop, which a head's
 * own dropout (one thread's) runs whole. */
static inline void dropout_span(float *out, const float *in, const uint8_t *keep, float scale,
                                size_t i0, size_t i1)
{
    for (size_t i = i0; i < i1; i++)
        out[i] = keep[i] ? in[i] * scale : 0.0f;
}

/* Sums run in LANES independent partial sums (element i goes to lane i % LANES), added up
 * pairwise at the end: a single running float sum is a chain of dependent adds that the
 * compiler may not reorder (no -ffast-math), so it ran at one add per add-latency; lanes are
 * vector registers' worth of independent adds. The order is fixed, so results are the same
 * run to run and in a recomputation. */
#define LANES 16

static inline ALWAYS_INLINE float lanes_total(float *acc)
{
    for (int w = LANES / 2; w > 0; w /= 2)
        for (int j = 0; j < w; j++)
            acc[j] += acc[j + w];
    return acc[0];
}

static inline ALWAYS_INLINE float sum_lanes(const float *x, int n)
{
    float acc[LANES] = {0};
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++)
            acc[j] += x[i + j];
    for (int j = 0; i < n; i++, j++)
        acc[j] += x[i];
    return lanes_total(acc);
}

/* Σ (x[i] − m)². */
static inline ALWAYS_INLINE float sqdev_lanes(const float *x, float m, int n)
{
    float acc[LANES] = {0};
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) {
            float d = x[i + j] - m;
            acc[j] = fmaf(d, d, acc[j]);
        }
    for (int j = 0; i < n; i++, j++) {
        float d = x[i] - m;
        acc[j] = fmaf(d, d, acc[j]);
    }
    return lanes_total(acc);
}

/* Σ a[i]·b[i]. */
static inline ALWAYS_INLINE float dot_lanes(const float *a, const float *b, int n)
{
    float acc[LANES] = {0};
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++)
            acc[j] = fmaf(a[i + j], b[i + j], acc[j]);
    for (int j = 0; i < n; i++, j++)
        acc[j] = fmaf(a[i], b[i], acc[j]);
    return lanes_total(acc);
}

/* max of x[0..n-1], n >= 1 (max is exact, so the lanes change nothing but speed). */
static inline ALWAYS_INLINE float max_lanes(const float *x, int n)
{
    float acc[LANES];
    for (int j = 0; j < LANES; j++)
        acc[j] = x[0];
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++)
            acc[j] = x[i + j] > acc[j] ? x[i + j] : acc[j];
    for (int j = 0; i < n; i++, j++)
        acc[j] = x[i] > acc[j] ? x[i] : acc[j];
    for (int w = LANES / 2; w > 0; w /= 2)
        for (int j = 0; j < w; j++)
            acc[j] = acc[j + w] > acc[j] ? acc[j + w] : acc[j];
    return acc[0];
}

/* x[i] = e^(x[i] − mx) for i < n; returns their sum. */
static inline ALWAYS_INLINE float exp_sum_lanes(float *x, float mx, int n)
{
    float acc[LANES] = {0};
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) {
            float e = gpt_expf(x[i + j] - mx);
            x[i + j] = e;
            acc[j] += e;
        }
    for (int j = 0; i < n; i++, j++) {
        float e = gpt_expf(x[i] - mx);
        x[i] = e;
        acc[j] += e;
    }
    return lanes_total(acc);
}


#endif
