/* gpt_layers — the forward/backward pairs a GPT is built from, on flat row-major buffers.
 *
 * Letters: N rows (B·T positions), C width, OC output width, V vocabulary, B sequences of T
 * tokens, NH heads of hs = C/NH. Every function writes only the buffers it is given and never
 * allocates; backward functions *add* to the gradients of their inputs and parameters unless
 * the comment says otherwise, so that a residual stream's gradient can collect from both its
 * branches. */
#ifndef ANNEALD_GPT_LAYERS_H
#define ANNEALD_GPT_LAYERS_H

#include <stddef.h>
#include <stdint.h>

enum gpt_gelu { GPT_GELU_TANH = 0, GPT_GELU_ERF = 1 };

/* The costliest element-wise loops also exist compiled for AVX-512, used when the CPU has it
 * (the same bits either way). on = 0 makes them use the build's AVX2 versions, on = 1 the
 * AVX-512 ones if the CPU has them (the default); returns whether AVX-512 is now used. For
 * tests and benchmarks that compare the two: a pass running meanwhile may use either. */
int gpt_layers_avx512(int on);

/* Teams: a caller may run a whole pass of these functions on one OpenMP team of its threads
 * (gpt.c does). Each thread of the parallel region calls gpt_team_mark(1) first and
 * gpt_team_mark(0) last, and every thread then calls every function with the same arguments:
 * each function shares its work over the team and returns after a barrier. Without the mark
 * a function runs on a team of its own (large work) or on the calling thread. The results do
 * not depend on the split, except the matrix products', which are the same for a given
 * thread count. Scratch buffers of the attention then hold one slice per thread of the team. */
void gpt_team_mark(int on);

/* out[b,t,:] = wte[idx[b,t],:] + wpe[t,:]. */
void gpt_encoder_forward(float *out, const int32_t *idx, const float *wte, const float *wpe,
                         int B, int T, int C);
/* dwte[idx[b,t]] += dout[b,t]; dwpe[t] += dout[b,t]. */
void gpt_encoder_backward(float *dwte, float *dwpe, const float *dout, const int32_t *idx, int B,
                          int T, int C);

/* LayerNorm over the last dimension (eps 1e-5); mean and rstd [N] are kept for backward.
 * b may be NULL (no bias). */
void gpt_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                           const float *w, const float *b, int N, int C);
/* Adds to dinp, dw and db (db may be NULL). */
void gpt_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                            const float *inp, const float *w, const float *mean,
                            const float *rstd, int N, int C);

/* out[N,OC] = inp[N,C] · wᵀ + b, w [OC,C] (torch's layout), b may be NULL. */
void gpt_linear_forward(float *out, const float *inp, const float *w, const float *b, int N,
                        int C, int OC);
/* dinp is *overwritten* (beta 0) unless dinp_add; dw and db (may be NULL) are added to. */
void gpt_linear_backward(float *dinp, int dinp_add, float *dw, float *db, const float *dout,
                         const float *inp, const float *w, int N, int C, int OC);

/* Causal self-attention. qkv [B,T,3C] (q|k|v, heads of hs inside each), att [B,NH,T,T] keeps
 * the softmax weights (zero above the diagonal), out [B,T,C] the heads concatenated. */
void gpt_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C,
                           int NH);
/* Writes dqkv [B,T,3C] (overwritten); scratch holds T·T floats. */
void gpt_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                            const float *att, int B, int T, int C, int NH);

/* The same with dropout on the attention weights (nanoGPT's attn_dropout): out = (att ⊙ keep ·
 * scale) · v, keep [B,NH,T,T] 0/1 per weight. att still keeps the softmax weights before
 * dropout (what the softmax backward needs); the dropped weights of a head are formed in
 * scratch (T·T floats) in forward, and again in backward, whose scratch holds 2·T·T. */
void gpt_attention_forward_drop(float *out, float *att, float *scratch, const uint8_t *keep,
                                float scale, const float *qkv, int B, int T, int C, int NH);
void gpt_attention_backward_drop(float *dqkv, float *scratch, const uint8_t *keep, float scale,
                                 const float *dout, const float *qkv, const float *att, int B,
                                 int T, int C, int NH);

/* Inverted dropout with a given mask: out[i] = keep[i] ? in[i]·scale : 0 (out may be in).
 * The same function is its own backward on the gradient. */
void gpt_dropout(float *out, const float *in, const uint8_t *keep, float scale, size_t n);

/* GELU, tanh approximation or exact (erf). */
void gpt_gelu_forward(float *out, const float *inp, int n, int kind);
/* dinp = gelu'(inp) · dout (overwritten). */
void gpt_gelu_backward(float *dinp, const float *inp, const float *dout, int n, int kind);
/* The training forward's pair: the forward also writes gelu'(inp) to dgelu (which may be inp
 * itself), and the backward is then dinp = dgelu · dout (dinp may be dout). The erf (tanh)
 * of each element is evaluated once per step instead of once in each pass, and the results
 * are the same bits as the pair above. */
void gpt_gelu_forward_d(float *out, float *dgelu, const float *inp, int n, int kind);
void gpt_gelu_backward_d(float *dinp, const float *dgelu, const float *dout, int n);

/* out = a + b, elementwise. */
void gpt_residual_forward(float *out, const float *a, const float *b, int n);

/* Fused softmax + cross-entropy: logits [N,V] are replaced by the probabilities; returns the
 * mean over N of −log p[target] (in double, from the logits: exact beyond float's e^x).
 * targets in 0..V-1; scratch: at least 2N + 1 floats (each row's loss, in double). */
double gpt_crossentropy_forward(float *logits, const int32_t *targets, int N, int V,
                                float *scratch);
/* probs [N,V] (from the forward) become d(dloss · mean loss)/d(logits), in place. */
void gpt_crossentropy_backward(float *probs, const int32_t *targets, int N, int V, float dloss);

#endif
