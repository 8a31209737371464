/* gpt — the `gpt` model (JOBSPEC.md, "Model gpt"): a GPT-2-style pre-LayerNorm decoder with
 * the output layer tied to the token embedding.
 *
 * Parameters live in one flat buffer, tensors in nanoGPT's state_dict order and names
 * ("transformer.wte.weight", "transformer.h.0.ln_1.weight", …); the gradient buffer has the
 * same layout. All activations for up to max_batch sequences of block_size tokens live in one
 * arena allocated by gpt_create: forward and backward never allocate. Not thread-safe: one
 * model per job. */
#ifndef ANNEALD_GPT_H
#define ANNEALD_GPT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/err.h"
#include "core/gpt_layers.h"

#define GPT_MAX_LAYERS 64
#define GPT_TENSORS_PER_LAYER 12
#define GPT_MAX_TENSORS (4 + GPT_TENSORS_PER_LAYER * GPT_MAX_LAYERS)

typedef struct gpt_shape {
    int vocab_size;  /* V */
    int block_size;  /* T (the longest sequence) */
    int n_layer;     /* L */
    int n_head;      /* NH, divides n_embd */
    int n_embd;      /* C */
    int bias;        /* 1: biases in linear layers and LayerNorms */
    int gelu;        /* enum gpt_gelu */
    float dropout;   /* training only, in [0, 1): 0 keeps the arena and the step as without */
} gpt_shape;

typedef struct gpt_tensor {
    char name[48];
    size_t off, n;
    int ndim;
    int shape[2];
} gpt_tensor;

/* Where one layer's tensors are in the flat buffer (NULL where bias is off). */
typedef struct gpt_layer_params {
    float *ln1w, *ln1b, *qkvw, *qkvb, *attprojw, *attprojb;
    float *ln2w, *ln2b, *fcw, *fcb, *fcprojw, *fcprojb;
} gpt_layer_params;

/* One layer's saved activations of the last forward. */
typedef struct gpt_layer_acts {
    float *ln1, *ln1_mean, *ln1_rstd; /* [N,C], [N], [N] */
    float *qkv;                       /* [N,3C] */
    float *att;                       /* [B,NH,T,T] */
    float *atty;                      /* [N,C] heads concatenated */
    float *res2;                      /* [N,C] after the attention residual */
    float *ln2, *ln2_mean, *ln2_rstd;
    float *fch;                       /* [N,4C] GELU's derivative at the fc output (the
                                       * output itself until GELU has read it) */
    float *fch_gelu;                  /* [N,4C] */
    float *res3;                      /* [N,C] the layer's output */
    /* With dropout: 0/1 per element of the attention weights [B,NH,T,T], the attention
     * branch's output and the MLP branch's output [N,C] (NULL without dropout). */
    uint8_t *keep_att, *keep_attn, *keep_mlp;
} gpt_layer_acts;

typedef struct gpt {
    gpt_shape s;
    int max_batch;
    int checkpoint;                   /* activation checkpoints K (0: none; actckpt.h) */
    int ckpt_cur;                     /* the segment whose activations the shared buffers hold */
    size_t nparams;
    float *params;
    float *grads;
    int ntensors;
    gpt_tensor tensors[GPT_MAX_TENSORS];
    /* Offsets of the tensors in the flat buffer ((size_t)-1 for an absent bias), so the same
     * pointers can be formed over params and over a gradient buffer. */
    size_t off_wte, off_wpe, off_lnfw, off_lnfb;
    size_t loff[GPT_MAX_LAYERS][GPT_TENSORS_PER_LAYER];
    gpt_layer_acts la[GPT_MAX_LAYERS];
    float *encoded;                   /* [N,C], after the embedding's dropout */
    uint8_t *keep_emb;                /* [N,C] with dropout */
    float *lnf, *lnf_mean, *lnf_rstd;
    float *logits;                    /* [N,V]: probabilities after a forward with targets */
    float *dres, *dbuf, *dbuf4, *dqkv, *scratch; /* backward scratch */
    /* A pass on a team of team_k threads (gpt.c): the attention's scratch, a slice of 2·T·T
     * floats (T the block size) per thread, allocated at the first such pass. */
    float *team_scratch;
    int team_k;
    float *arena;
    size_t arena_floats;
    const int32_t *last_idx, *last_targets;
    int last_B, last_T;
    /* Dropout: the masks' seed and threshold, the scale 1/(1-p) of what is kept, and the
     * (step, micro-batch) of the last forward's masks (last_drop 0: it had none). */
    uint64_t seed;
    uint32_t drop_thr;
    float drop_scale;
    int last_drop;
    uint64_t drop_step, drop_micro;
} gpt;

/* Checks a shape; errors name the field under "model" ("model.n_head", "model.dropout", …). */
int gpt_shape_check(const gpt_shape *s, an_err *err);

/* Floats of the activation arena for max_batch sequences (for memory estimates); with
 * checkpoint = K > 0, for K activation checkpoints (gpt_create_ex). Dropout adds a byte per
 * masked element (per layer without checkpointing, per place of a segment with it; and T·T
 * floats of scratch); dropout 0 adds nothing. */
size_t gpt_arena_floats(const gpt_shape *s, int max_batch);
size_t gpt_arena_floats_ex(const gpt_shape *s, int max_batch, int checkpoint);
/* Parameter count. */
size_t gpt_param_count(const gpt_shape *s);

/* Memory of a gpt job by part, in bytes (what a job's memory estimate reports). */
typedef struct gpt_memory {
    size_t params;       /* float32 weights */
    size_t grads;        /* one gradient buffer */
    size_t optim;        /* optimizer state: optim_floats_per_param per weight */
    size_t activations;  /* the activation arena (with checkpointing if asked) */
    size_t saved;        /* activation memory checkpointing saves (0 without it) */
    size_t total;
} gpt_memory;

gpt_memory gpt_memory_estimate(const gpt_shape *s, int max_batch, int checkpoint,
                               int optim_floats_per_param);

/* Builds the model with GPT-2's initialisation drawn from seed. */
int gpt_create(gpt **out, const gpt_shape *s, uint64_t seed, int max_batch, an_err *err);
/* checkpoint = K > 0: activation checkpointing with K checkpoints (DeepSpeed's
 * activation_checkpointing block, number_checkpoints; more than n_layer count as n_layer):
 * the layers fall into K evenly spaced segments (core/actckpt.h), the forward keeps only each
 * segment's output, and one segment's worth of activations is shared by all segments; the
 * backward recomputes each segment from its input before going through it. The gradients
 * are bit-identical to those without it (the same operations on the same values). */
int gpt_create_ex(gpt **out, const gpt_shape *s, uint64_t seed, int max_batch, int checkpoint,
                  an_err *err);
void gpt_free(gpt *g);

/* Redraws GPT-2's initialisation: weights normal(0, 0.02), every c_proj.weight
 * normal(0, 0.02/sqrt(2·n_layer)), biases 0, LayerNorm weights 1. */
void gpt_init_default(gpt *g, uint64_t seed);

const gpt_tensor *gpt_find(const gpt *g, const char *name);

/* Sets tensors from {"transformer.wte.weight": [[…], …], …} (nested arrays in the tensor's
 * shape; gpt_init.c). An unknown name, a wrong shape or a non-number fails naming its path
 * under "model.init" and leaves the parameters as they were. */
int gpt_set_init(gpt *g, const cJSON *init, an_err *err);

/* Forward over idx [B,T] (T <= block_size, tokens in 0..V-1; kept by pointer until the next
 * forward). With targets [B,T] it returns the mean cross-entropy in *loss and leaves the
 * probabilities in g->logits; without, g->logits holds the logits. -EINVAL on bad sizes or
 * tokens. Never applies dropout: this is the forward of evaluation and generation. */
int gpt_forward(gpt *g, const int32_t *idx, const int32_t *targets, int B, int T, double *loss);

/* The training forward: as gpt_forward, with dropout when s.dropout > 0 (nanoGPT's places:
 * the embedding's output, the attention weights, the attention and MLP branches' outputs
 * before their residual additions; inverted, kept values scaled by 1/(1-p)). The mask of
 * every element is a pure function of (seed, step, micro, layer, place, element index)
 * (rng_keep_mask on stream (RNG_GPT_DROPOUT, step, micro, place)), so a resumed run and
 * activation checkpointing's recomputation draw the same masks. Without dropout this is
 * gpt_forward. */
int gpt_forward_train(gpt *g, const int32_t *idx, const int32_t *targets, int B, int T,
                      double *loss, uint64_t step, uint64_t micro);

/* Backward of the last forward with targets (through its dropout masks, if any), for
 * d(total)/d(loss) = dloss. Gradients go to grad (nparams floats): overwritten if
 * accumulate == 0, added to if 1. */
int gpt_backward(gpt *g, float *grad, int accumulate, float dloss);

#endif
