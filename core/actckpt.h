/* actckpt — where activation checkpoints fall (ds_config.activation_checkpointing, JOBSPEC.md
 * "Activation checkpointing"), shared by the mlp (model_ckpt.c), the gpt (gpt.c) and the
 * memory estimate (memest.c) so that all three count the same segments.
 *
 * K checkpoints over L layers split the layers into K segments; segment i starts at layer
 * floor(i·L/K), so the segments are evenly spaced and their sizes differ by at most one. The
 * forward keeps only the input of each segment's first layer; the backward recomputes one
 * segment's activations from that input before going through it. K = L: one layer per
 * segment; K = 1: one segment (nothing recomputed, nothing saved). */
#ifndef ANNEALD_ACTCKPT_H
#define ANNEALD_ACTCKPT_H

#include <stdint.h>

/* First layer of segment i (i = K gives L, the end of the last segment). */
static inline int actckpt_start(int i, int L, int K)
{
    return (int)((int64_t)i * L / K);
}

/* The segment layer l (0..L-1) belongs to: the largest i with start(i) <= l. */
static inline int actckpt_segment(int l, int L, int K)
{
    return (int)(((int64_t)(l + 1) * K - 1) / L);
}

/* Layers in the largest segment (ceil(L/K)). */
static inline int actckpt_max_segment(int L, int K)
{
    return (L + K - 1) / K;
}

#endif
