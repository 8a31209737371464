/* gpt_layers — forward/backward pairs of the GPT (see gpt_layers.h). Matrix products go to
 * gemm_f32 (oneDNN); the element-wise work is written as simple unit-stride loops over rows
 * so that the compiler vectorises them (-O3, AVX2). */
#include "core/gpt_layers.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "core/gemm.h"
#include "core/gpt_math.h"
#include "core/gpt_simd.h"

#define LN_EPS 1e-5f

/* -1: not asked yet. Atomic: two workers' first gpt passes may ask at once (both find the
 * same answer, but unsynchronised they would race), and a pass must never read the -1 that
 * gpt_layers_avx512 writes between its two stores. */
static _Atomic int wide = -1;

_Thread_local int gpt_in_team;

void gpt_team_mark(int on)
{
    gpt_in_team = on;
}

static int cpu_wide(void)
{
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw");
}

int gpt_wide_vectors(void)
{
    int w = atomic_load_explicit(&wide, memory_order_relaxed);
    if (w < 0) {
        w = cpu_wide();
        atomic_store_explicit(&wide, w, memory_order_relaxed);
    }
    return w;
}

int gpt_layers_avx512(int on)
{
    int w = on ? cpu_wide() : 0;
    atomic_store_explicit(&wide, w, memory_order_relaxed);
    return w;
}

void gpt_encoder_forward(float *out, const int32_t *idx, const float *wte, const float *wpe,
                         int B, int T, int C)
{
    ON_THREADS((long)B * T * C >= SPAN_MIN, {
        int r0, r1;
        span(B * T, 1, &r0, &r1);
        for (int r = r0; r < r1; r++) {
            float *o = out + (size_t)r * C;
            const float *e = wte + (size_t)idx[r] * C;
            const float *p = wpe + (size_t)(r % T) * C;
            for (int i = 0; i < C; i++)
                o[i] = e[i] + p[i];
        }
    });
}

/* Split by columns: positions with the same token add to the same row of dwte, so a split by
 * rows would race; each column still sums its positions in order. */
void gpt_encoder_backward(float *dwte, float *dwpe, const float *dout, const int32_t *idx, int B,
                          int T, int C)
{
    ON_THREADS((long)B * T * C >= SPAN_MIN, {
        int c0, c1;
        span(C, 16, &c0, &c1);
        for (int r = 0; r < B * T; r++) {
            const float *d = dout + (size_t)r * C;
            float *de = dwte + (size_t)idx[r] * C;
            float *dp = dwpe + (size_t)(r % T) * C;
            for (int i = c0; i < c1; i++) {
                de[i] += d[i];
                dp[i] += d[i];
            }
        }
    });
}

static inline ALWAYS_INLINE void ln_fwd_body(float *out, float *mean, float *rstd,
                                              const float *inp, const float *w,
                                              const float *b, int N, int C)
{
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * C;
        float m = sum_lanes(x, C) / (float)C;
        float v = sqdev_lanes(x, m, C) / (float)C;
        float s = 1.0f / sqrtf(v + LN_EPS);
        if (b)
            for (int i = 0; i < C; i++)
                o[i] = (x[i] - m) * s * w[i] + b[i];
        else
            for (int i = 0; i < C; i++)
                o[i] = (x[i] - m) * s * w[i];
        mean[n] = m;
        rstd[n] = s;
    }
}

TWO_WAYS(ln_fwd, (float *out, float *mean, float *rstd, const float *inp, const float *w,
                  const float *b, int N, int C), (out, mean, rstd, inp, w, b, N, C))

void gpt_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                           const float *w, const float *b, int N, int C)
{
    (void)gpt_wide_vectors();
    ON_THREADS((long)N * C >= SPAN_MIN, {
        int n0, n1;
        span(N, 1, &n0, &n1);
        if (n0 < n1)
            ln_fwd(out + (size_t)n0 * C, mean + n0, rstd + n0, inp + (size_t)n0 * C, w, b,
                   n1 - n0, C);
    });
}

/* Layernorm backward in two passes, so that both run on the job's threads: dinp row by row
 * (rows are independent), then dw and db column by column (each column sums over the rows in
 * row order, as one fused pass did, so the bits are those of the fused loop). */
static inline ALWAYS_INLINE void ln_bwd_rows_body(float *dinp, const float *dout,
                                                   const float *inp, const float *w,
                                                   const float *mean, const float *rstd, int N,
                                                   int C)
{
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        const float *d = dout + (size_t)n * C;
        float *dx = dinp + (size_t)n * C;
        float m = mean[n], s = rstd[n];
        /* Two reductions first: the mean of dnorm and of dnorm·norm. */
        float as[LANES] = {0}, an[LANES] = {0};
        int i = 0;
        for (; i + LANES <= C; i += LANES)
            for (int j = 0; j < LANES; j++) {
                float norm = (x[i + j] - m) * s;
                float dn = w[i + j] * d[i + j];
                as[j] += dn;
                an[j] = fmaf(dn, norm, an[j]);
            }
        for (int j = 0; i < C; i++, j++) {
            float norm = (x[i] - m) * s;
            float dn = w[i] * d[i];
            as[j] += dn;
            an[j] = fmaf(dn, norm, an[j]);
        }
        float dsum = lanes_total(as) / (float)C;
        float dnsum = lanes_total(an) / (float)C;
        for (i = 0; i < C; i++) {
            float norm = (x[i] - m) * s;
            float dn = w[i] * d[i];
            dx[i] += (dn - dsum - norm * dnsum) * s;
        }
    }
}

TWO_WAYS(ln_bwd_rows, (float *dinp, const float *dout, const float *inp, const float *w,
                       const float *mean, const float *rstd, int N, int C),
         (dinp, dout, inp, w, mean, rstd, N, C))

/* Columns [c0, c1) of dw and db (db may be NULL). */
static inline ALWAYS_INLINE void ln_bwd_cols_body(float *dw, float *db, const float *dout,
                                                   const float *inp, const float *mean,
                                                   const float *rstd, int N, int C, int c0,
                                                   int c1)
{
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        const float *d = dout + (size_t)n * C;
        float m = mean[n], s = rstd[n];
        for (int i = c0; i < c1; i++)
            dw[i] += (x[i] - m) * s * d[i];
        if (db)
            for (int i = c0; i < c1; i++)
                db[i] += d[i];
    }
}

TWO_WAYS(ln_bwd_cols, (float *dw, float *db, const float *dout, const float *inp,
                       const float *mean, const float *rstd, int N, int C, int c0, int c1),
         (dw, db, dout, inp, mean, rstd, N, C, c0, c1))

void gpt_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                            const float *inp, const float *w, const float *mean,
                            const float *rstd, int N, int C)
{
    (void)gpt_wide_vectors();
    ON_THREADS((long)N * C >= SPAN_MIN, {
        int n0, n1, c0, c1;
        span(N, 1, &n0, &n1);
        if (n0 < n1)
            ln_bwd_rows(dinp + (size_t)n0 * C, dout + (size_t)n0 * C, inp + (size_t)n0 * C, w,
                        mean + n0, rstd + n0, n1 - n0, C);
        span(C, 16, &c0, &c1);
        if (c0 < c1)
            ln_bwd_cols(dw, db, dout, inp, mean, rstd, N, C, c0, c1);
    });
}

/* Rows [n0, n1) of the forward. */
static void linear_fwd_rows(float *out, const float *inp, const float *w, const float *b,
                            int n0, int n1, int C, int OC)
{
    gemm_f32(0, 1, n1 - n0, OC, C, 1.0f, inp + (size_t)n0 * C, C, w, C, 0.0f,
             out + (size_t)n0 * OC, OC);
    if (b)
        for (int n = n0; n < n1; n++) {
            float *o = out + (size_t)n * OC;
            for (int j = 0; j < OC; j++)
                o[j] += b[j];
        }
}

/* In a team each thread multiplies its piece of the rows on its own (oneDNN runs a product
 * called inside a parallel region on the calling thread); outside, oneDNN spreads the one
 * product over the job's threads. */
void gpt_linear_forward(float *out, const float *inp, const float *w, const float *b, int N,
                        int C, int OC)
{
    if (!gpt_in_team) {
        linear_fwd_rows(out, inp, w, b, 0, N, C, OC);
        return;
    }
    int n0, n1;
    span(N, 1, &n0, &n1);
    if (n0 < n1)
        linear_fwd_rows(out, inp, w, b, n0, n1, C, OC);
#pragma omp barrier
}

/* Rows [n0, n1) of dinp; rows [o0, o1) of dw and entries [o0, o1) of db (each sums all N rows
 * of dout in order). */
static void linear_bwd_part(float *dinp, int dinp_add, float *dw, float *db, const float *dout,
                            const float *inp, const float *w, int N, int C, int OC, int n0,
                            int n1, int o0, int o1)
{
    if (dinp && n0 < n1)
        gemm_f32(0, 0, n1 - n0, C, OC, 1.0f, dout + (size_t)n0 * OC, OC, w, C,
                 dinp_add ? 1.0f : 0.0f, dinp + (size_t)n0 * C, C);
    if (o0 >= o1)
        return;
    gemm_f32(1, 0, o1 - o0, C, N, 1.0f, dout + o0, OC, inp, C, 1.0f, dw + (size_t)o0 * C, C);
    if (db)
        for (int n = 0; n < N; n++) {
            const float *d = dout + (size_t)n * OC;
            for (int j = o0; j < o1; j++)
                db[j] += d[j];
        }
}

/* In a team: dinp by rows, dw and db by output rows; both read only dout, inp and w, so one
 * barrier at the end serves both. */
void gpt_linear_backward(float *dinp, int dinp_add, float *dw, float *db, const float *dout,
                         const float *inp, const float *w, int N, int C, int OC)
{
    if (!gpt_in_team) {
        linear_bwd_part(dinp, dinp_add, dw, db, dout, inp, w, N, C, OC, 0, N, 0, OC);
        return;
    }
    int n0, n1, o0, o1;
    span(N, 1, &n0, &n1);
    span(OC, 16, &o0, &o1);
    linear_bwd_part(dinp, dinp_add, dw, db, dout, inp, w, N, C, OC, n0, n1, o0, o1);
#pragma omp barrier
}

void gpt_dropout(float *out, const float *in, const uint8_t *keep, float scale, size_t n)
{
    size_t i0 = 0, i1 = n;
    if (gpt_in_team)
        span_blocks(n, 64, &i0, &i1);
    dropout_span(out, in, keep, scale, i0, i1);
    if (gpt_in_team) {
#pragma omp barrier
    }
}

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */

/* tanh through the vectorisable exp: absolute error ~1e-7, which is what GELU needs (it adds
 * the result to 1). */
static inline ALWAYS_INLINE float tanh_v(float u)
{
    return 1.0f - 2.0f / (gpt_expf(2.0f * u) + 1.0f);
}

void gpt_gelu_forward(float *out, const float *inp, int n, int kind)
{
    if (kind == GPT_GELU_ERF)
        for (int i = 0; i < n; i++)
            out[i] = 0.5f * inp[i] * (1.0f + gpt_erff(inp[i] * 0.7071067811865476f));
    else
        for (int i = 0; i < n; i++) {
            float x = inp[i];
            out[i] = 0.5f * x * (1.0f + tanh_v(GELU_K * (x + 0.044715f * x * x * x)));
        }
}

void gpt_gelu_backward(float *dinp, const float *inp, const float *dout, int n, int kind)
{
    if (kind == GPT_GELU_ERF)
        for (int i = 0; i < n; i++) {
            float x = inp[i];
            float cdf = 0.5f * (1.0f + gpt_erff(x * 0.7071067811865476f));
            float pdf = 0.3989422804014327f * gpt_expf(-0.5f * x * x);
            dinp[i] = (cdf + x * pdf) * dout[i];
        }
    else
        for (int i = 0; i < n; i++) {
            float x = inp[i];
            float u = GELU_K * (x + 0.044715f * x * x * x);
            float th = tanh_v(u);
            float sech2 = 1.0f - th * th;
            float du = GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
            float g = 0.5f * (1.0f + th) + 0.5f * x * sech2 * du;
            dinp[i] = g * dout[i];
        }
}

/* The same expressions as gpt_gelu_forward and gpt_gelu_backward, so the results are the same
 * bits; erf (or tanh) is evaluated once for both. */
static inline ALWAYS_INLINE void gelu_fwd_d_body(float *out, float *dgelu, const float *inp,
                                                  int n, int kind)
{
    if (kind == GPT_GELU_ERF)
        for (int i = 0; i < n; i++) {
            float x = inp[i];
            float e = gpt_erff(x * 0.7071067811865476f);
            float pdf = 0.3989422804014327f * gpt_expf(-0.5f * x * x);
            out[i] = 0.5f * x * (1.0f + e);
            dgelu[i] = 0.5f * (1.0f + e) + x * pdf;
        }
    else
        for (int i = 0; i < n; i++) {
            float x = inp[i];
            float th = tanh_v(GELU_K * (x + 0.044715f * x * x * x));
            float sech2 = 1.0f - th * th;
            float du = GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
            out[i] = 0.5f * x * (1.0f + th);
            dgelu[i] = 0.5f * (1.0f + th) + 0.5f * x * sech2 * du;
        }
}

TWO_WAYS(gelu_fwd_d, (float *out, float *dgelu, const float *inp, int n, int kind),
         (out, dgelu, inp, n, kind))

void gpt_gelu_forward_d(float *out, float *dgelu, const float *inp, int n, int kind)
{
    (void)gpt_wide_vectors();
    ON_THREADS(n >= SPAN_MIN, {
        int i0, i1;
        span(n, 64, &i0, &i1);
        if (i0 < i1)
            gelu_fwd_d(out + i0, dgelu + i0, inp + i0, i1 - i0, kind);
    });
}

void gpt_gelu_backward_d(float *dinp, const float *dgelu, const float *dout, int n)
{
    ON_THREADS(n >= SPAN_MIN, {
        int i0, i1;
        span(n, 64, &i0, &i1);
        for (int i = i0; i < i1; i++)
            dinp[i] = dgelu[i] * dout[i];
    });
}

void gpt_residual_forward(float *out, const float *a, const float *b, int n)
{
    ON_THREADS(n >= SPAN_MIN, {
        int i0, i1;
        span(n, 64, &i0, &i1);
        for (int i = i0; i < i1; i++)
            out[i] = a[i] + b[i];
    });
}

/* The softmax by rows on the threads, each row's loss log Σ e^(x − max) − (x_target − max)
 * taken from the logits as it goes (in double, into `scratch` aligned for doubles): computed
 * from the float probability it would stop near 87 per token, where e^x leaves float's
 * range, and a diverging run would never read as one. The losses are summed in row order
 * afterwards (by each thread of a team alike, so every thread returns it), so its bits do
 * not depend on the split. */
double gpt_crossentropy_forward(float *logits, const int32_t *targets, int N, int V,
                                float *scratch)
{
    double *rowloss = (double *)(((uintptr_t)scratch + sizeof(double) - 1) &
                                 ~(uintptr_t)(sizeof(double) - 1));
    ON_THREADS((long)N * V >= SPAN_MIN, {
        int n0, n1;
        span(N, 1, &n0, &n1);
        for (int n = n0; n < n1; n++) {
            float *row = logits + (size_t)n * V;
            float mx = max_lanes(row, V);
            double target = (double)row[targets[n]] - (double)mx; /* before the row is e^x */
            float sum = exp_sum_lanes(row, mx, V);
            rowloss[n] = log((double)sum) - target;
            float inv = 1.0f / sum;
            for (int j = 0; j < V; j++)
                row[j] *= inv;
        }
    });
    double total = 0.0;
    for (int n = 0; n < N; n++)
        total += rowloss[n];
    return total / N;
}

void gpt_crossentropy_backward(float *probs, const int32_t *targets, int N, int V, float dloss)
{
    float s = dloss / (float)N;
    ON_THREADS((long)N * V >= SPAN_MIN, {
        int n0, n1;
        span(N, 1, &n0, &n1);
        for (int n = n0; n < n1; n++) {
            float *row = probs + (size_t)n * V;
            for (int j = 0; j < V; j++)
                row[j] *= s;
            row[targets[n]] -= s;
        }
    });
}
