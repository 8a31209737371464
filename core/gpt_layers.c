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

void gpt_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                           const float *w, const float *b, int N, int C)
{
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * C;
        float m = 0.0f;
        for (int i = 0; i < C; i++)
            m += x[i];
        m /= (float)C;
        float v = 0.0f;
        for (int i = 0; i < C; i++) {
            float d = x[i] - m;
            v += d * d;
        }
        v /= (float)C;
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

void gpt_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                            const float *inp, const float *w, const float *mean,
                            const float *rstd, int N, int C)
{
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        const float *d = dout + (size_t)n * C;
        float *dx = dinp + (size_t)n * C;
        float m = mean[n], s = rstd[n];
        /* Two reductions first: the mean of dnorm and of dnorm·norm. */
        float dsum = 0.0f, dnsum = 0.0f;
        for (int i = 0; i < C; i++) {
            float norm = (x[i] - m) * s;
            float dn = w[i] * d[i];
            dsum += dn;
            dnsum += dn * norm;
        }
        dsum /= (float)C;
        dnsum /= (float)C;
        for (int i = 0; i < C; i++) {
            float norm = (x[i] - m) * s;
            float dn = w[i] * d[i];
            dw[i] += norm * d[i];
            dx[i] += (dn - dsum - norm * dnsum) * s;
        }
        if (db)
            for (int i = 0; i < C; i++)
                db[i] += d[i];
    }
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
            for (int t = 0; t < T; t++) {
                float *row = a + (size_t)t * T;
                float mx = row[0];
                for (int s = 1; s <= t; s++)
                    mx = row[s] > mx ? row[s] : mx;
                float sum = 0.0f;
                for (int s = 0; s <= t; s++) {
                    row[s] = gpt_expf(row[s] - mx);
                    sum += row[s];
                }
                float inv = 1.0f / sum;
                for (int s = 0; s <= t; s++)
                    row[s] *= inv;
                for (int s = t + 1; s < T; s++)
                    row[s] = 0.0f;
            }
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
            /* datt = dout_h · vᵀ; dv += wᵀ · dout_h. */
            gemm_f32(0, 1, T, T, hs, 1.0f, d, C, v, C3, 0.0f, da, T);
            gemm_f32(1, 0, T, hs, T, 1.0f, w, T, d, C, 1.0f, dv, C3);
            /* Through dropout: the gradient of a dropped weight is 0, of a kept one scaled. */
            if (kh)
                gpt_dropout(da, da, kh, dscale, (size_t)T * T);
            /* Softmax backward row by row, in place: dpre = att·(datt − Σ att·datt). The
             * masked entries have att = 0, so they get 0. */
            for (int t = 0; t < T; t++) {
                const float *ar = a + (size_t)t * T;
                float *dr = da + (size_t)t * T;
                float dot = 0.0f;
                for (int s = 0; s <= t; s++)
                    dot += ar[s] * dr[s];
                for (int s = 0; s <= t; s++)
                    dr[s] = ar[s] * (dr[s] - dot);
                for (int s = t + 1; s < T; s++)
                    dr[s] = 0.0f;
            }
            /* pre = scale · q·kᵀ: dq += scale · dpre·k, dk += scale · dpreᵀ·q. */
            gemm_f32(0, 0, T, hs, T, scale, da, T, k, C3, 1.0f, dq, C3);
            gemm_f32(1, 0, T, hs, T, scale, da, T, q, C3, 1.0f, dk, C3);
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
static inline float tanh_v(float u)
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
        float mx = row[0];
        for (int j = 1; j < V; j++)
            mx = row[j] > mx ? row[j] : mx;
        float sum = 0.0f;
        for (int j = 0; j < V; j++) {
            row[j] = gpt_expf(row[j] - mx);
            sum += row[j];
        }
        float inv = 1.0f / sum;
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
