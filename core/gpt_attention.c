/* gpt_attention — the causal self-attention's forward and backward (see gpt_layers.h), its
 * heads spread over the job's threads. */
#include <math.h>
#include <stdlib.h>

#include "core/gemm.h"
#include "core/gpt_heads.h"
#include "core/gpt_layers.h"
#include "core/gpt_simd.h"

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

/* The attention's heads (B·NH of them, each a few products of T×T×hs and a softmax) run on
 * the job's threads, one head per turn, each head's products on one thread: oneDNN runs a
 * product called inside a parallel region on the calling thread. Splitting each tiny product
 * over the threads instead cost more in wake-ups than it saved (about 1,150 products a step
 * for the README's GPT). A head's result does not depend on which thread ran it, so the
 * heads give the same bits at any thread count.
 *
 * Each thread needs its own T·T scratch (two with dropout). In a pass's team (gpt.c) the
 * caller gives one slice per thread. Otherwise the calling thread uses the
 * arena's, the others share one buffer allocated for the call (a few tens of kB, microseconds
 * against the milliseconds of the heads; a buffer kept per thread would outlive the OpenMP
 * threads that exit when a job with fewer threads comes). Without it the calling thread runs
 * every head. So do bf16 jobs: their products keep per-thread state in core/gemm.c (operand
 * scratch, oneDNN primitives) that only a long-lived thread should build up. */
typedef struct heads {
    float *out, *att, *dqkv;       /* outputs (forward: out, att; backward: dqkv) */
    float *scratch;                /* T·T, or 2·T·T with dropout; a slice per thread in a team */
    const uint8_t *keep;           /* dropout's mask of the attention weights, or NULL */
    float dscale;
    const float *qkv, *dout, *att_in;
    int B, T, C, NH;
} heads;

typedef void (*head_fn)(const heads *h, int i, float *scratch);

static void each_head(const heads *h, head_fn fn, size_t scratch_n)
{
    int n = h->B * h->NH;
    if (gpt_in_team) {
        /* The team's threads take contiguous runs of heads (the sequences of their rows);
         * the caller gave a scratch slice per thread. The loop ends at a barrier. */
        float *s = scratch_n ? h->scratch + (size_t)omp_get_thread_num() * scratch_n : NULL;
#pragma omp for schedule(static)
        for (int i = 0; i < n; i++)
            fn(h, i, s);
        return;
    }
    int k = n > 1 && !gemm_bf16() ? omp_get_max_threads() : 1;
    if (k > n)
        k = n;
    float *more = NULL;
    if (k > 1 && scratch_n && !(more = malloc((size_t)(k - 1) * scratch_n * sizeof *more)))
        k = 1;
    (void)gpt_wide_vectors(); /* decided once, before the threads read it */
#pragma omp parallel num_threads(k) if (k > 1)
    {
        int t = omp_get_thread_num();
        float *s = t == 0 || !scratch_n ? h->scratch : more + (size_t)(t - 1) * scratch_n;
#pragma omp for schedule(static)
        for (int i = 0; i < n; i++)
            fn(h, i, s);
    }
    free(more);
}

/* gpt_dropout on one head's weights, whole, by the thread that runs the head (gpt_dropout
 * itself would share the work with the team). */
static void head_dropout(float *out, const float *in, const uint8_t *keep, float scale,
                         size_t n)
{
    dropout_span(out, in, keep, scale, 0, n);
}

/* Where head i (head i % NH of sequence i / NH) reads and writes: its q in qkv (k and v
 * follow C and 2·C further, dq/dk/dv likewise in dqkv) and its slice of out or dout. */
typedef struct head_at {
    int T, C, hs, C3;
    float scale;           /* 1/√hs */
    size_t qkv, out;       /* offsets */
    const float *q, *k, *v;
} head_at;

static head_at head_place(const heads *h, int i)
{
    head_at p;
    int b = i / h->NH, hd = i % h->NH;
    p.T = h->T, p.C = h->C, p.hs = h->C / h->NH, p.C3 = 3 * h->C;
    p.scale = 1.0f / sqrtf((float)p.hs);
    p.qkv = (size_t)b * (size_t)p.T * (size_t)p.C3 + (size_t)hd * (size_t)p.hs;
    p.out = (size_t)b * (size_t)p.T * (size_t)p.C + (size_t)hd * (size_t)p.hs;
    p.q = h->qkv + p.qkv;
    p.k = p.q + p.C;
    p.v = p.q + 2 * p.C;
    return p;
}

static void head_fwd(const heads *h, int i, float *scratch)
{
    head_at p = head_place(h, i);
    int T = p.T, C = p.C, hs = p.hs, C3 = p.C3;
    const float *q = p.q, *k = p.k, *v = p.v;
    float *a = h->att + (size_t)i * T * T;
    /* All T×T scores in one product; the upper triangle is computed and then masked, which
     * costs less than T small products (gpt_heads.c skips the blocks past the diagonal where it can). */
    gpt_head_scores(a, q, C3, k, C3, T, hs, p.scale);
    softmax_rows(a, T);
    const float *w = a;
    if (h->keep) {
        head_dropout(scratch, a, h->keep + (size_t)i * T * T, h->dscale, (size_t)T * T);
        w = scratch;
    }
    gpt_head_lower(h->out + p.out, C, w, v, C3, T, hs, 1.0f);
}

/* Attention forward; keep == NULL: no dropout (and scratch unused). */
static void attention_fwd(float *out, float *att, float *scratch, const uint8_t *keep,
                          float dscale, const float *qkv, int B, int T, int C, int NH)
{
    heads h = {.out = out, .att = att, .scratch = scratch, .keep = keep, .dscale = dscale,
               .qkv = qkv, .B = B, .T = T, .C = C, .NH = NH};
    each_head(&h, head_fwd, keep ? (size_t)T * T : 0);
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

static void head_bwd(const heads *h, int i, float *scratch)
{
    head_at p = head_place(h, i);
    int T = p.T, C = p.C, hs = p.hs, C3 = p.C3;
    float scale = p.scale;
    const float *q = p.q, *k = p.k, *v = p.v;
    float *dq = h->dqkv + p.qkv;
    float *dk = dq + C;
    float *dv = dq + 2 * C;
    const float *a = h->att_in + (size_t)i * T * T;
    const float *d = h->dout + p.out;
    float *da = scratch;
    /* The weights that multiplied v: att, or att after dropout. */
    const float *w = a;
    const uint8_t *kh = h->keep ? h->keep + (size_t)i * T * T : NULL;
    if (kh) {
        head_dropout(scratch + (size_t)T * T, a, kh, h->dscale, (size_t)T * T);
        w = scratch + (size_t)T * T;
    }
    /* datt = dout_h · vᵀ; dv = wᵀ · dout_h. */
    gpt_head_scores(da, d, C, v, C3, T, hs, 1.0f);
    gpt_head_lower_t(dv, C3, w, d, C, T, hs, 1.0f);
    /* Through dropout: the gradient of a dropped weight is 0, of a kept one scaled. */
    if (kh)
        head_dropout(da, da, kh, h->dscale, (size_t)T * T);
    /* Softmax backward row by row, in place (masked entries get 0). */
    softmax_back_rows(a, da, T);
    /* pre = scale · q·kᵀ: dq = scale · dpre·k, dk = scale · dpreᵀ·q. Each slice of dqkv gets
     * one product, so they are written, not added to (no zeroing pass). */
    gpt_head_lower(dq, C3, da, k, C3, T, hs, scale);
    gpt_head_lower_t(dk, C3, da, q, C3, T, hs, scale);
}

/* Attention backward; keep == NULL: no dropout (scratch T·T, else 2·T·T). */
static void attention_bwd(float *dqkv, float *scratch, const uint8_t *keep, float dscale,
                          const float *dout, const float *qkv, const float *att, int B, int T,
                          int C, int NH)
{
    heads h = {.dqkv = dqkv, .scratch = scratch, .keep = keep, .dscale = dscale, .qkv = qkv,
               .dout = dout, .att_in = att, .B = B, .T = T, .C = C, .NH = NH};
    each_head(&h, head_bwd, (size_t)T * T * (keep ? 2 : 1));
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
