/* gpt_layers — forward/backward pairs of the GPT (see gpt_layers.h). Matrix products go to
 * gemm_f32 (oneDNN); the element-wise work is written as simple unit-stride loops over rows
 * so that the compiler vectorises them (-O3, AVX2). */
#include "core/gpt_layers.h"

#include <math.h>
#include <string.h>

#include "core/gemm.h"
#include "core/gpt_math.h"

#define LN_EPS 1e-5f

void gpt_encoder_forward(float *out, const int32_t *idx, const float *wte, const float *wpe,
                         int B, int T, int C)
{
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float *o = out + ((size_t)b * T + t) * C;
            const float *e = wte + (size_t)idx[(size_t)b * T + t] * C;
            const float *p = wpe + (size_t)t * C;
            for (int i = 0; i < C; i++)
                o[i] = e[i] + p[i];
        }
}

void gpt_encoder_backward(float *dwte, float *dwpe, const float *dout, const int32_t *idx, int B,
                          int T, int C)
{
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *d = dout + ((size_t)b * T + t) * C;
            float *de = dwte + (size_t)idx[(size_t)b * T + t] * C;
            float *dp = dwpe + (size_t)t * C;
            for (int i = 0; i < C; i++) {
                de[i] += d[i];
                dp[i] += d[i];
            }
        }
}

#define ALWAYS_INLINE __attribute__((always_inline))

/* The element-wise loops that cost most (GELU, the attention's softmax, layernorm) are also
 * compiled for AVX-512 with 512-bit vectors, picked at run time when the CPU has it: the
 * build targets x86-64-v3 (AVX2), and on this machine class the wide vectors halve the
 * instructions of these loops. Both versions run the same operations on every element in
 * the same order (lanes included), so they give the same bits (test_gpt compares them through
 * gpt_layers_avx512). */
#define AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw," \
                                     "prefer-vector-width=512")))

static int wide = -1; /* -1: not asked yet */

static int wide_vectors(void)
{
    if (wide < 0)
        wide = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw");
    return wide;
}

int gpt_layers_avx512(int on)
{
    wide = -1;
    if (!on)
        wide = 0;
    return wide_vectors();
}

/* name_body (always inlined) compiled twice: name_512 for AVX-512, name_256 as built. */
#define TWO_WAYS(name, params, args)                                   \
    AVX512 static void name##_512 params { name##_body args; }         \
    static void name##_256 params { name##_body args; }                \
    static void name params                                            \
    {                                                                  \
        if (wide_vectors())                                            \
            name##_512 args;                                           \
        else                                                           \
            name##_256 args;                                           \
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

/* One row of causal attention scores in place: the softmax of row[0..n-1], zeros from n to
 * T-1. Whole blocks of LANES are processed up to the one holding the diagonal (the entries
 * past it are selected away), so that short rows are vector work too rather than a scalar
 * tail; the lanes see the same values in the same order as over row[0..n-1] alone (a masked
 * entry adds 0). */
static inline ALWAYS_INLINE void softmax_causal_row(float *row, int n, int T)
{
    int nu = (n + LANES - 1) / LANES * LANES;
    nu = nu > T ? T : nu;
    float mx = row[0];
    {
        float acc[LANES];
        for (int j = 0; j < LANES; j++)
            acc[j] = mx;
        int i = 0;
        for (; i + LANES <= nu; i += LANES)
            for (int j = 0; j < LANES; j++) {
                float v = i + j < n ? row[i + j] : mx;
                acc[j] = v > acc[j] ? v : acc[j];
            }
        for (int j = 0; i < n; i++, j++)
            acc[j] = row[i] > acc[j] ? row[i] : acc[j];
        for (int w = LANES / 2; w > 0; w /= 2)
            for (int j = 0; j < w; j++)
                acc[j] = acc[j + w] > acc[j] ? acc[j + w] : acc[j];
        mx = acc[0];
    }
    float acc[LANES] = {0};
    int i = 0;
    for (; i + LANES <= nu; i += LANES)
        for (int j = 0; j < LANES; j++) {
            float e = i + j < n ? gpt_expf(row[i + j] - mx) : 0.0f;
            row[i + j] = e;
            acc[j] += e;
        }
    int end = i; /* the whole blocks end here: past the diagonal within them, zeros */
    for (int j = 0; i < n; i++, j++) {
        float e = gpt_expf(row[i] - mx);
        row[i] = e;
        acc[j] += e;
    }
    end = end > n ? end : n;
    float inv = 1.0f / lanes_total(acc);
    for (i = 0; i < end; i++)
        row[i] *= inv;
    for (i = end; i < T; i++)
        row[i] = 0.0f;
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
    ln_fwd(out, mean, rstd, inp, w, b, N, C);
}

static inline ALWAYS_INLINE void ln_bwd_body(float *dinp, float *dw, float *db,
                                              const float *dout, const float *inp,
                                              const float *w, const float *mean,
                                              const float *rstd, int N, int C)
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
            dw[i] += norm * d[i];
            dx[i] += (dn - dsum - norm * dnsum) * s;
        }
        if (db)
            for (i = 0; i < C; i++)
                db[i] += d[i];
    }
}

TWO_WAYS(ln_bwd, (float *dinp, float *dw, float *db, const float *dout, const float *inp,
                  const float *w, const float *mean, const float *rstd, int N, int C),
         (dinp, dw, db, dout, inp, w, mean, rstd, N, C))

void gpt_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                            const float *inp, const float *w, const float *mean,
                            const float *rstd, int N, int C)
{
    ln_bwd(dinp, dw, db, dout, inp, w, mean, rstd, N, C);
}

void gpt_linear_forward(float *out, const float *inp, const float *w, const float *b, int N,
                        int C, int OC)
{
    gemm_f32(0, 1, N, OC, C, 1.0f, inp, C, w, C, 0.0f, out, OC);
    if (b)
        for (int n = 0; n < N; n++) {
            float *o = out + (size_t)n * OC;
            for (int j = 0; j < OC; j++)
                o[j] += b[j];
        }
}

void gpt_linear_backward(float *dinp, int dinp_add, float *dw, float *db, const float *dout,
                         const float *inp, const float *w, int N, int C, int OC)
{
    if (dinp)
        gemm_f32(0, 0, N, C, OC, 1.0f, dout, OC, w, C, dinp_add ? 1.0f : 0.0f, dinp, C);
    gemm_f32(1, 0, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dw, C);
    if (db)
        for (int n = 0; n < N; n++) {
            const float *d = dout + (size_t)n * OC;
            for (int j = 0; j < OC; j++)
                db[j] += d[j];
        }
}

void gpt_dropout(float *out, const float *in, const uint8_t *keep, float scale, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = keep[i] ? in[i] * scale : 0.0f;
}

/* The causal softmax of every row of one head's T×T scores. */
static inline ALWAYS_INLINE void softmax_rows_body(float *a, int T)
{
    for (int t = 0; t < T; t++)
        softmax_causal_row(a + (size_t)t * T, t + 1, T);
}

TWO_WAYS(softmax_rows, (float *a, int T), (a, T))

/* Softmax backward of one head, in place on da: dpre = att·(datt − Σ att·datt); entries
 * above the diagonal get 0 (att is 0 there, so the dot may run over whole blocks). */
static inline ALWAYS_INLINE void softmax_back_rows_body(const float *a, float *da, int T)
{
    for (int t = 0; t < T; t++) {
        const float *ar = a + (size_t)t * T;
        float *dr = da + (size_t)t * T;
        int nu = (t + 1 + LANES - 1) / LANES * LANES;
        float dot = dot_lanes(ar, dr, nu > T ? T : nu);
        for (int s = 0; s < T; s++)
            dr[s] = s <= t ? ar[s] * (dr[s] - dot) : 0.0f;
    }
}

TWO_WAYS(softmax_back_rows, (const float *a, float *da, int T), (a, da, T))

/* Attention forward; keep == NULL: no dropout (and scratch unused). */
static void attention_fwd(float *out, float *att, float *scratch, const uint8_t *keep,
                          float dscale, const float *qkv, int B, int T, int C, int NH)
{
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *q = qkv + (size_t)b * T * C3 + h * hs;
            const float *k = q + C;
            const float *v = q + 2 * C;
            float *a = att + ((size_t)b * NH + h) * T * T;
            /* All T×T scores in one product; the upper triangle is computed and then masked,
             * which costs less than T small products. */
            gemm_f32(0, 1, T, T, hs, scale, q, C3, k, C3, 0.0f, a, T);
            softmax_rows(a, T);
            const float *w = a;
            if (keep) {
                gpt_dropout(scratch, a, keep + ((size_t)b * NH + h) * T * T, dscale,
                            (size_t)T * T);
                w = scratch;
            }
            gemm_f32(0, 0, T, hs, T, 1.0f, w, T, v, C3, 0.0f, out + (size_t)b * T * C + h * hs,
                     C);
        }
}

void gpt_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C,
                           int NH)
{
    attention_fwd(out, att, NULL, NULL, 1.0f, qkv, B, T, C, NH);
}

void gpt_attention_forward_drop(float *out, float *att, float *scratch, const uint8_t *keep,
                                float scale, const float *qkv, int B, int T, int C, int NH)
{
    attention_fwd(out, att, scratch, keep, scale, qkv, B, T, C, NH);
}

/* Attention backward; keep == NULL: no dropout (scratch T·T, else 2·T·T). */
static void attention_bwd(float *dqkv, float *scratch, const uint8_t *keep, float dscale,
                          const float *dout, const float *qkv, const float *att, int B, int T,
                          int C, int NH)
{
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *q = qkv + (size_t)b * T * C3 + h * hs;
            const float *k = q + C;
            const float *v = q + 2 * C;
            float *dq = dqkv + (size_t)b * T * C3 + h * hs;
            float *dk = dq + C;
            float *dv = dq + 2 * C;
            const float *a = att + ((size_t)b * NH + h) * T * T;
            const float *d = dout + (size_t)b * T * C + h * hs;
            float *da = scratch;
            /* The weights that multiplied v: att, or att after dropout. */
            const float *w = a;
            const uint8_t *kh = keep ? keep + ((size_t)b * NH + h) * T * T : NULL;
            if (kh) {
                gpt_dropout(scratch + (size_t)T * T, a, kh, dscale, (size_t)T * T);
                w = scratch + (size_t)T * T;
            }
            /* datt = dout_h · vᵀ; dv = wᵀ · dout_h. */
            gemm_f32(0, 1, T, T, hs, 1.0f, d, C, v, C3, 0.0f, da, T);
            gemm_f32(1, 0, T, hs, T, 1.0f, w, T, d, C, 0.0f, dv, C3);
            /* Through dropout: the gradient of a dropped weight is 0, of a kept one scaled. */
            if (kh)
                gpt_dropout(da, da, kh, dscale, (size_t)T * T);
            /* Softmax backward row by row, in place (masked entries get 0). */
            softmax_back_rows(a, da, T);
            /* pre = scale · q·kᵀ: dq = scale · dpre·k, dk = scale · dpreᵀ·q. Each slice of dqkv
             * gets one product, so they are written, not added to (no zeroing pass). */
            gemm_f32(0, 0, T, hs, T, scale, da, T, k, C3, 0.0f, dq, C3);
            gemm_f32(1, 0, T, hs, T, scale, da, T, q, C3, 0.0f, dk, C3);
        }
}

void gpt_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                            const float *att, int B, int T, int C, int NH)
{
    attention_bwd(dqkv, scratch, NULL, 1.0f, dout, qkv, att, B, T, C, NH);
}

void gpt_attention_backward_drop(float *dqkv, float *scratch, const uint8_t *keep, float scale,
                                 const float *dout, const float *qkv, const float *att, int B,
                                 int T, int C, int NH)
{
    attention_bwd(dqkv, scratch, keep, scale, dout, qkv, att, B, T, C, NH);
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
    gelu_fwd_d(out, dgelu, inp, n, kind);
}

void gpt_gelu_backward_d(float *dinp, const float *dgelu, const float *dout, int n)
{
    for (int i = 0; i < n; i++)
        dinp[i] = dgelu[i] * dout[i];
}

void gpt_residual_forward(float *out, const float *a, const float *b, int n)
{
    for (int i = 0; i < n; i++)
        out[i] = a[i] + b[i];
}

double gpt_crossentropy_forward(float *logits, const int32_t *targets, int N, int V)
{
    double total = 0.0;
    for (int n = 0; n < N; n++) {
        float *row = logits + (size_t)n * V;
        float mx = max_lanes(row, V);
        float inv = 1.0f / exp_sum_lanes(row, mx, V);
        for (int j = 0; j < V; j++)
            row[j] *= inv;
        /* −log p computed from the probability; clamp so that a p that underflowed to 0
         * gives a large finite loss rather than inf. */
        float p = row[targets[n]];
        total += -log(p > 1e-38f ? (double)p : 1e-38);
    }
    return total / N;
}

void gpt_crossentropy_backward(float *probs, const int32_t *targets, int N, int V, float dloss)
{
    float s = dloss / (float)N;
    for (int n = 0; n < N; n++) {
        float *row = probs + (size_t)n * V;
        for (int j = 0; j < V; j++)
            row[j] *= s;
        row[targets[n]] -= s;
    }
}
