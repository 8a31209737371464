/* model_arena — the activation arena of a linear or mlp model: how large it is and where each
 * buffer lies, without and with activation checkpointing (core/actckpt.h). model_create and
 * the memory estimate (memest.c) both count it here, so the estimate is what is allocated. */
#include "core/model.h"

#include "core/actckpt.h"

/* Offsets (in floats) of every activation buffer from the arena's start. */
typedef struct arena_layout {
    size_t pre[MODEL_MAX_LAYERS], post[MODEL_MAX_LAYERS], mask[MODEL_MAX_LAYERS];
    size_t bits[MODEL_MAX_LAYERS]; /* checkpointing with dropout: the kept masks, packed */
    size_t dbuf[2], colsum, total;
} arena_layout;

/* Without checkpointing every hidden layer has its own pre, post (and mask), the output layer
 * its pre. With K checkpoints the output's pre and the post of each segment's last hidden
 * layer (the next segment's input: a checkpoint) are kept; every other buffer lies in one
 * scratch region that the segments take in turn, as large as the largest segment needs.
 * With dropout each hidden layer's mask is also kept, packed a bit per element (1/32 of its
 * float form), so a recomputation reads it back instead of drawing it again. */
static void layout(const int *dims, int L, size_t B, int dropout, int K, arena_layout *o)
{
    size_t off = 0, widest = 0;
    for (int l = 0; l <= L; l++)
        if ((size_t)dims[l] > widest)
            widest = (size_t)dims[l];
    if (K <= 0) {
        for (int l = 0; l < L; l++) {
            size_t w = B * (size_t)dims[l + 1];
            o->pre[l] = off;
            off += w;
            if (l < L - 1) {
                o->post[l] = off;
                off += w;
                o->mask[l] = off;
                off += dropout ? w : 0;
            }
        }
    } else {
        if (K > L)
            K = L;
        /* The kept buffers first, then the scratch region. */
        o->pre[L - 1] = off;
        off += B * (size_t)dims[L];
        for (int l = 0; l < L - 1; l++) {
            if (actckpt_segment(l + 1, L, K) != actckpt_segment(l, L, K)) {
                o->post[l] = off;
                off += B * (size_t)dims[l + 1];
            }
            o->bits[l] = off; /* K = 1 recomputes nothing: no mask kept */
            off += dropout && K > 1 ? (B * (size_t)dims[l + 1] + 31) / 32 : 0;
        }
        size_t scratch = off, most = 0;
        for (int s = 0; s < K; s++) {
            size_t at = scratch;
            int end = actckpt_start(s + 1, L, K);
            for (int l = actckpt_start(s, L, K); l < end && l < L - 1; l++) {
                size_t w = B * (size_t)dims[l + 1];
                o->pre[l] = at;
                at += w;
                o->mask[l] = at;
                at += dropout ? w : 0;
                if (l + 1 < end) { /* not a checkpoint: the segment's own */
                    o->post[l] = at;
                    at += w;
                }
            }
            if (at - scratch > most)
                most = at - scratch;
        }
        off = scratch + most;
    }
    o->dbuf[0] = off;
    off += B * widest;
    o->dbuf[1] = off;
    off += B * widest;
    o->colsum = off;
    off += widest;
    o->total = off;
}

size_t model_act_floats(const int *dims, int nlayers, int max_batch, int dropout,
                        int checkpoints)
{
    arena_layout o;
    layout(dims, nlayers, (size_t)max_batch, dropout, checkpoints, &o);
    return o.total;
}

void model_arena_carve(model *m)
{
    arena_layout o;
    layout(m->dims, m->nlayers, (size_t)m->max_batch, m->dropout > 0, m->ckpt, &o);
    float *a = m->arena;
    for (int l = 0; l < m->nlayers; l++) {
        m->pre[l] = a + o.pre[l];
        m->post[l] = l < m->nlayers - 1 ? a + o.post[l] : NULL;
        m->mask[l] = l < m->nlayers - 1 && m->dropout > 0 ? a + o.mask[l] : NULL;
        /* uint32 words in the float arena: only ever accessed as uint32 */
        m->maskbits[l] = l < m->nlayers - 1 && m->dropout > 0 && m->ckpt > 1
                             ? (uint32_t *)(void *)(a + o.bits[l]) : NULL;
    }
    m->dbuf[0] = a + o.dbuf[0];
    m->dbuf[1] = a + o.dbuf[1];
    m->colsum = a + o.colsum;
}

void model_mask_pack(uint32_t *bits, const float *mask, size_t n)
{
    for (size_t w = 0; w < (n + 31) / 32; w++) {
        uint32_t v = 0;
        size_t end = w * 32 + 32 < n ? w * 32 + 32 : n;
        for (size_t i = w * 32; i < end; i++)
            v |= (uint32_t)(mask[i] != 0.0f) << (i & 31);
        bits[w] = v;
    }
}

void model_mask_unpack(float *mask, const uint32_t *bits, size_t n, float keep)
{
    for (size_t i = 0; i < n; i++)
        mask[i] = bits[i >> 5] >> (i & 31) & 1 ? keep : 0.0f;
}
