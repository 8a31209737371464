/* optim — every optimizer of anneald over flat buffers, and global-norm gradient clipping.
 *
 * Parameters, gradients and optimizer state each live in one contiguous buffer. A model's
 * tensors are ranges of it (optim_tensor); each tensor belongs to one parameter group with its
 * own lr / weight decay. One optimizer step is one pass over each tensor's range: vectorised,
 * no allocation, no per-element branches. Semantics follow DeepSpeed (DEEPSPEED.md §4): its
 * Adam is decoupled (AdamW) unless adam_w_mode is false; Lamb is DeepSpeed's kernel.
 *
 * Two element types: float32 (the engine) and float64 (for checking the formulas against
 * reference trajectories to 1e-12). */
#ifndef ANNEALD_OPTIM_H
#define ANNEALD_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/err.h"

/* The largest learning rate a spec may give (FLT_MAX): the weights are float32, so any larger
 * lr makes the first update infinite and the run fails later instead of at submit. */
#define OPTIM_MAX_LR 3.4028234663852886e38

/* Stored in checkpoints: append only, never renumber. */
enum optim_type {
    OPTIM_ADAM = 1,
    OPTIM_ADAMW = 2,
    OPTIM_LAMB = 3,
    OPTIM_LION = 4,
    OPTIM_ADAGRAD = 5,
    OPTIM_SGD = 6,
    OPTIM_RMSPROP = 7,
};

enum optim_dtype { OPTIM_F32 = 1, OPTIM_F64 = 2 };

/* An optimizer block of ds_config, with DeepSpeed's defaults filled in. */
typedef struct optim_cfg {
    int type;                  /* enum optim_type */
    double lr;                 /* base learning rate */
    double beta1, beta2;       /* Adam, AdamW, Lamb, Lion */
    double eps;                /* Adam, AdamW, Lamb, Adagrad, RMSprop */
    double weight_decay;
    int adam_w_mode;           /* Adam: decoupled decay (DeepSpeed default 1); AdamW: always 1 */
    int bias_correction;       /* Adam, AdamW, Lamb (default 1) */
    int torch_adam;            /* DeepSpeed's torch_adam switch (torch AdamW wd default 0.01) */
    int amsgrad;               /* Adam/AdamW (torch_adam only) */
    double max_coeff, min_coeff; /* Lamb trust-ratio clamp (10.0, 0.01) */
    int eps_inside_sqrt;       /* Lamb */
    double momentum;           /* SGD, RMSprop */
    int momentum_cycled;       /* SGD, RMSprop: a scheduler sets the groups' momentum (torch's
                                * CyclicLR and OneCycleLR cycle it by default), so a momentum
                                * buffer is kept even with momentum 0, as torch's optimizers
                                * then use one. Set by job_spec_parse from the scheduler, never
                                * by optim_parse. */
    double dampening;          /* SGD */
    int nesterov;              /* SGD */
    double alpha;              /* RMSprop smoothing (0.99) */
    int centered;              /* RMSprop */
    double lr_decay;           /* Adagrad */
    double initial_accumulator_value; /* Adagrad */
    int lamb_corrected_update; /* Lamb: 0 = DeepSpeed's kernel (trust ratio on the uncorrected
                                * update m/(sqrt(v)+eps) + wd*p, step lr*sqrt(1-b2^t)/(1-b1^t));
                                * 1 = the LAMB paper's update m^/(sqrt(v^)+eps) + wd*p with step
                                * lr. ds_config always gives 0; 1 exists to check the clamp and
                                * the paper's formula against reference trajectories. */
} optim_cfg;

/* Parses `block` ({"type": …, "params": {…}}, at JSON path `path`, e.g. "ds_config.optimizer")
 * into *out with DeepSpeed's names, case rules and defaults. Unknown params, wrong types and
 * out-of-range values are errors naming their path; the communication-compressed types
 * (OneBitAdam, ZeroOneAdam, OneBitLamb) are errors that suggest Adam / Lamb. Notes that do not
 * stop the job are appended to `warnings` (a cJSON array of strings; may be NULL). */
int optim_parse(const cJSON *block, const char *path, optim_cfg *out, an_err *err,
                cJSON *warnings);

/* The type's name as DeepSpeed spells it ("Adam", "SGD", …). */
const char *optim_type_name(int type);

/* 1 if the optimizer has betas (Adam-like: OneCycle may cycle beta1), 0 if it has momentum
 * or nothing. */
int optim_has_betas(const optim_cfg *cfg);

/* 1 if the optimizer has a momentum of PyTorch's kind (SGD, RMSprop), which torch's CyclicLR
 * and OneCycleLR may cycle. */
int optim_has_momentum(const optim_cfg *cfg);

/* One tensor: a range of the flat parameter buffer, and its group. */
typedef struct optim_tensor {
    size_t off;  /* first element */
    size_t n;    /* elements */
    int group;   /* index into the groups */
} optim_tensor;

/* A parameter group's live hyperparameters. The scheduler writes lr (and beta1/beta2 or
 * momentum when it cycles them) before every step. */
typedef struct optim_group {
    double lr;
    double weight_decay;
    double beta1, beta2;
    double momentum;
    int64_t step;        /* optimizer steps this group has taken (bias correction) */
    /* SGD: a step with momentum != 0 has been taken, so the buffer holds the momentum. Until
     * then a step at momentum 0 leaves the buffer alone, and the first one with momentum
     * starts it at the step's direction, undamped, as torch makes its momentum_buffer. */
    int mom_started;
} optim_group;

typedef struct optim {
    optim_cfg cfg;
    int dtype;                 /* enum optim_dtype */
    size_t n;                  /* parameters */
    int ntensors;
    optim_tensor *tensors;     /* [ntensors] */
    int ngroups;
    optim_group *groups;       /* [ngroups] */
    void *state;               /* all per-parameter state, one allocation, dtype elements */
    size_t state_elems;        /* elements in state */
    double *scratch;           /* [ntensors] Lamb trust ratios, then Lamb's direction buffer
                                * (dtype elements, the largest tensor of <= 4 MiB) */
} optim;

/* Builds an optimizer for `n` parameters split into `tensors`, each in one of `groups`
 * (copied). All state is allocated here and zeroed (or set to Adagrad's initial value). */
int optim_init(optim *o, const optim_cfg *cfg, int dtype, size_t n, const optim_tensor *tensors,
               int ntensors, const optim_group *groups, int ngroups, an_err *err);
void optim_free(optim *o);

/* A scheduler's values for the next step, one per group: lr, and where the scheduler cycles
 * them, momentum (beta1 for the optimizers with betas: has_betas) and beta2 (NULL: not
 * scheduled). */
void optim_set_sched(optim *o, const double *lr, const double *mom, const double *beta2,
                     int has_betas);

/* One step: params -= update(grads), in o->dtype (float * or double *). */
void optim_step(optim *o, void *params, const void *grads);

/* 1 - b^t, bit for bit, without calling pow once b^t is too small to change the result (the
 * bias correction of Adam and Lamb; exposed for its test). */
double optim_bias_correction(double b, double t);

/* Global L2 norm of grads (dtype elements), accumulated in double (in chunks of 65,536
 * elements whose sums are added in order: on the calling thread's OpenMP threads, with the
 * same bits at any thread count). If max_norm > 0, multiplies every gradient by DeepSpeed's
 * min(1, max_norm / (norm + 1e-6)). Returns the norm before clipping. */
double optim_clip_grad_norm(void *grads, size_t n, int dtype, double max_norm);

/* The whole optimizer state (groups, step counters, per-parameter buffers) as bytes. */
size_t optim_state_size(const optim *o);
int optim_save(const optim *o, void *buf, size_t len);
/* Restores into an optimizer built with the same cfg and layout; a mismatch or short buffer
 * is an error, never a read past the end. */
int optim_load(optim *o, const void *buf, size_t len, an_err *err);

/* Lamb: the trust-ratio coefficient tensor `i` used in the last step (DeepSpeed's
 * get_lamb_coeffs()); 1.0 before the first step, 0.0 for other optimizers or a bad index. */
double optim_lamb_coeff(const optim *o, int i);

/* One per-parameter state buffer by torch's state name ("exp_avg", "exp_avg_sq",
 * "max_exp_avg_sq", "sum", "momentum_buffer", "square_avg", "grad_avg"): o->n elements of
 * o->dtype, indexed like the parameters; NULL if this optimizer keeps no such buffer. */
void *optim_buffer(const optim *o, const char *name);

#endif
