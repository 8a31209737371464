/* model — the networks anneald trains (JOBSPEC.md, Models): `linear` and `mlp`, their
 * parameters in one flat buffer, forward and backward passes.
 *
 * Letters: B rows in a batch (<= max_batch), I inputs, O outputs, H a hidden width; layer l
 * maps dims[l] -> dims[l+1]. Tensors are named as PyTorch's state_dict names them ("fc.weight"
 * [O, I], "fc.bias" [O]; an mlp has "fc1.weight", "fc1.bias", "fc2.weight", …, weights in
 * torch's [out, in] layout) and are ranges (offset, length) of the flat parameter buffer; a
 * gradient buffer has the same layout. All activation memory is allocated by model_create for
 * max_batch rows: forward and backward never allocate. Not thread-safe: one model per job.
 *
 * With activation checkpointing (model_create_ckpt, ds_config.activation_checkpointing) the
 * forward keeps only the inputs of K evenly spaced layers (core/actckpt.h) and the output;
 * the backward recomputes each segment's activations from its input. The recomputation runs
 * the same operations on the same values (dropout masks redrawn from the same stream), so
 * gradients and trained weights are bit-identical to those without it. */
#ifndef ANNEALD_MODEL_H
#define ANNEALD_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/config.h"
#include "core/err.h"
#include "core/optim.h"

#define MODEL_MAX_LAYERS (CFG_MAX_HIDDEN + 1)
#define MODEL_MAX_TENSORS (2 * MODEL_MAX_LAYERS)

/* One named tensor: a range of the flat parameter (and gradient) buffer. */
typedef struct model_tensor {
    char name[24];  /* "fc.weight", "fc3.bias", … */
    size_t off;     /* first element in the flat buffer */
    size_t n;       /* elements */
    int ndim;       /* 2 for weights, 1 for biases */
    int shape[2];   /* [out, in] for weights, [out] (shape[1] = 0) for biases */
    int layer;      /* the layer it belongs to */
} model_tensor;

typedef struct model {
    int type;                           /* enum model_type */
    int nlayers;                        /* linear: 1; mlp: hidden layers + 1 */
    int dims[MODEL_MAX_LAYERS + 1];     /* dims[0] = inputs, dims[nlayers] = outputs */
    int act;                            /* enum act_type, after every hidden layer */
    float dropout;                      /* probability, after every hidden activation */
    uint64_t seed;                      /* of initial weights and dropout masks */
    int max_batch;                      /* rows a forward pass may take */
    size_t nparams;
    float *params;                      /* [nparams]: every tensor, in tensor order */
    float *grads;                       /* [nparams]: a gradient buffer for the caller's use */
    int ntensors;                       /* 2 * nlayers: weight, bias per layer */
    model_tensor tensors[MODEL_MAX_TENSORS];
    /* Activations of the last forward pass, each [max_batch, dims[l+1]]. */
    float *pre[MODEL_MAX_LAYERS];       /* z = in · Wᵀ + b; pre[nlayers-1] is the output */
    float *post[MODEL_MAX_LAYERS];      /* hidden: dropout(act(z)), the next layer's input */
    float *mask[MODEL_MAX_LAYERS];      /* hidden, if dropout: 0 or 1/(1-p) per element */
    uint32_t *maskbits[MODEL_MAX_LAYERS]; /* with checkpointing and dropout: mask[l] a bit per
                                           element, kept for the recomputation */
    float *dbuf[2];                     /* [max_batch, widest layer]: backward scratch */
    float *colsum;                      /* [widest layer]: bias-gradient scratch */
    float *arena;                       /* the one allocation behind all activations */
    size_t arena_floats;                /* its size */
    int ckpt;                           /* activation checkpoints K (0 = every activation kept) */
    int ckpt_cur;                       /* the segment whose activations the arena holds */
    uint64_t last_step, last_micro;     /* of the last forward: its dropout masks' stream */
    const float *last_x;                /* input of the last forward ([B, I], caller's) */
    int last_b;                         /* rows of the last forward */
    int last_masked;                    /* the last forward applied dropout */
} model;

/* Builds the model of `spec` for batches of up to max_batch rows: PyTorch nn.Linear's default
 * initialisation (weights and biases uniform in ±1/sqrt(fan_in)) drawn from `seed`, then
 * spec->init applied if present (model_set_init). Errors name the JSON path ("model.init.…",
 * "model.hidden[2]"). */
int model_create(model **out, const model_spec *spec, uint64_t seed, int max_batch, an_err *err);
/* The same with `checkpoints` activation checkpoints (1..layers; 0 = none; more than the
 * layers count as one per layer). */
int model_create_ckpt(model **out, const model_spec *spec, uint64_t seed, int max_batch,
                      int checkpoints, an_err *err);
void model_free(model *m);

/* Floats of the activation arena of a model whose layer l maps dims[l] -> dims[l+1] (nlayers
 * layers), for max_batch rows, with a dropout mask per hidden layer if `dropout`, and
 * `checkpoints` activation checkpoints (0 = none). What model_create allocates: the memory
 * estimate counts it (model_arena.c). */
size_t model_act_floats(const int *dims, int nlayers, int max_batch, int dropout,
                        int checkpoints);

/* Points pre, post, mask, maskbits, dbuf and colsum into m->arena (model_arena.c; for
 * model_create). */
void model_arena_carve(model *m);

/* A dropout mask of n elements (0 or `keep`) packed a bit per element into bits, and back
 * (model_arena.c): what checkpointing keeps of a mask. */
void model_mask_pack(uint32_t *bits, const float *mask, size_t n);
void model_mask_unpack(float *mask, const uint32_t *bits, size_t n, float keep);

/* Redraws the default initialisation of every tensor from `seed` (deterministic: the same
 * seed gives the same bits). */
void model_init_default(model *m, uint64_t seed);

/* Sets tensors from {"fc.weight": [[…], …], "fc.bias": […]} (nested arrays in the tensor's
 * shape). An unknown name, a wrong shape or a non-number fails naming its path under
 * "model.init" and leaves the parameters as they were. */
int model_set_init(model *m, const cJSON *init, an_err *err);

/* The tensor called `name`, or NULL. */
const model_tensor *model_find(const model *m, const char *name);

/* Fills out[0..ntensors) with each tensor's range and parameter group: the first group k
 * (0-based in `groups`) with a glob in `match` (fnmatch syntax, e.g. "*.bias") that matches
 * the tensor's name gives group k + 1; no match gives group 0. Returns the tensor count. */
int model_optim_tensors(const model *m, const param_group_spec *groups, int ngroups,
                        optim_tensor *out);

/* 1 if the glob `pattern` matches tensor name `name`. */
int model_glob_match(const char *pattern, const char *name);

/* Forward pass over x [B, I] (kept by pointer until the next forward: backward reads it).
 * training = 1 applies dropout with the mask drawn from stream (RNG_DROPOUT, step, micro,
 * layer) of the model's seed, so a recomputed micro-batch gets the same mask; 0 is eval.
 * Output [B, O] at model_output(m). -EINVAL if B is not in 1..max_batch. */
int model_forward(model *m, const float *x, int B, int training, uint64_t step, uint64_t micro);

/* The output [B, O] of the last forward pass (row-major). */
const float *model_output(const model *m);

/* Eval-mode outputs of `rows` rows x [rows, I] into out [rows, O], max_batch rows at a time
 * (predict). 0, or an error naming "rows" or "x". */
int model_predict(model *m, const float *x, int rows, float *out, an_err *err);

/* Backward pass of the last forward: dout [B, O] is d(loss)/d(output). Parameter gradients
 * go to grad (nparams floats, the parameter layout): overwritten if accumulate == 0, added
 * to if 1. Returns -EINVAL if no forward pass came before. */
int model_backward(model *m, const float *dout, float *grad, int accumulate);

/* The tensors of `params` (the model's layout) as JSON: an array of {"name", "shape", "data"},
 * data nested as for model_set_init (so the output is a valid "init"), every float printed in
 * the shortest form that reads back to the same bits (non-finite values as null). NULL if
 * out of memory. */
cJSON *model_weights_json(const model *m, const float *params);

/* n floats as a JSON array, each the shortest text that reads back to the same float (null
 * when not finite): how every weight is written, by any model. NULL when out of memory. */
cJSON *model_row_json(const float *p, int n);

/* The name of an activation ("relu", …), or "?" */
const char *model_act_name(int act);

#endif
