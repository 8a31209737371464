/* gpt_heads — the matrix products of one causal attention head (internal to
 * core/gpt_attention.c). The small float32 heads a GPT on a CPU has (T and hs multiples of 16,
 * T·hs up to GPT_HEAD_FAST_MAX) are multiplied here: a library product is mostly call
 * overhead there, and half of each product lies above the causal diagonal. Other sizes and
 * bf16 products go to gemm_f32. Row strides: lda, ldb, ldo, ldx; T×T matrices have stride T. */
#ifndef ANNEALD_GPT_HEADS_H
#define ANNEALD_GPT_HEADS_H

/* The largest T·hs (floats of a transposed operand, kept on the stack: 16 kB). */
#define GPT_HEAD_FAST_MAX 4096

/* 1 when these functions multiply a head of T positions of hs themselves (in float32). */
int gpt_head_fast(int T, int hs);

/* S [T×T] = scale · a·bᵀ (a, b: T×hs), at least in the 16-column blocks up to the diagonal's
 * (which is what the causal softmax and its backward read); the entries past those blocks
 * are unspecified. */
void gpt_head_scores(float *S, const float *a, int lda, const float *b, int ldb, int T, int hs,
                     float scale);

/* out [T×hs] = scale · L·x for L [T×T] zero above its diagonal (x: T×hs). */
void gpt_head_lower(float *out, int ldo, const float *L, const float *x, int ldx, int T, int hs,
                    float scale);

/* out [T×hs] = scale · Lᵀ·x for L [T×T] zero above its diagonal. */
void gpt_head_lower_t(float *out, int ldo, const float *L, const float *x, int ldx, int T,
                      int hs, float scale);

#endif
