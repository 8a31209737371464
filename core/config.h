/* config — a job spec (JOBSPEC.md) parsed and fully validated into plain structs.
 *
 * Everything a job will do is decided here, before it is accepted: a spec that passes
 * job_spec_parse can be trained. Each error names the JSON path of the offending value and
 * says what was expected and what came. DeepSpeed keys that do not apply, and "auto" values
 * worked out here, are listed in `warnings`. The optimizer block is parsed by optim_parse and
 * the scheduler block validated by sched_validate (the same code that later builds them). */
#ifndef ANNEALD_CONFIG_H
#define ANNEALD_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/config_keep.h"
#include "core/config_sched.h"
#include "core/err.h"
#include "core/jsontext.h"
#include "core/lossscale.h"
#include "core/optim.h"
#include "core/sched.h"

#define CFG_MAX_HIDDEN 16     /* hidden layers of an mlp */
#define CFG_MAX_GROUPS 16     /* param_groups entries (plus group 0) */
#define CFG_MAX_NAME 128
#define CFG_MAX_TENSORS (2 * (CFG_MAX_HIDDEN + 1)) /* weight and bias of every layer */

/* Limits that keep one job within one machine; a spec beyond them is rejected up front. */
#define CFG_MAX_WIDTH 1048576          /* inputs, outputs, each hidden width */
#define CFG_MAX_PARAMS 67108864        /* parameters of a model (2^26: 256 MiB in float32) */
#define CFG_MAX_SAMPLES 16777216       /* synthetic samples, inline rows */
#define CFG_MAX_CELLS 268435456        /* synthetic samples x features */
#define CFG_MAX_CLASSES 1000
#define CFG_MAX_STEPS 1000000000LL     /* steps */
#define CFG_MAX_EPOCHS 1000000LL       /* epochs */
#define CFG_MAX_BATCH 16777216LL       /* each of the three batch sizes */
#define CFG_MAX_THREADS 64
#define CFG_MAX_WORLD 256              /* world_size: ranks of one data-parallel job */
#define CFG_MAX_KEEP 1000              /* checkpoint.keep_last */

/* Steps per epoch assumed when the run is given in epochs and the data's row count is not in
 * the spec (an uploaded dataset): only for validating the scheduler at submission time
 * (sched_env.total_steps = epochs x this). Large, so that no schedule is rejected for a run
 * length the real data may well give; the trainer rebuilds the env from the real row count. */
#define CFG_UNKNOWN_STEPS_PER_EPOCH 1048576LL

/* Stored in checkpoints and specs: append only. */
enum model_type { MODEL_LINEAR = 1, MODEL_MLP = 2, MODEL_GPT = 3 };
enum act_type { ACT_RELU = 1, ACT_GELU = 2, ACT_TANH = 3, ACT_SIGMOID = 4, ACT_SILU = 5 };
enum loss_type { LOSS_MSE = 1, LOSS_CROSS_ENTROPY = 2, LOSS_BCE = 3, LOSS_MEAN = 4 };
enum data_type { DATA_SYNTHETIC = 1, DATA_INLINE = 2, DATA_DATASET = 3, DATA_BUILTIN = 4,
                 DATA_TEXT = 5 };
enum synth_task { TASK_REGRESSION = 1, TASK_CLASSIFICATION = 2 };
enum synth_gen { GEN_BLOBS = 1, GEN_SPIRALS = 2, GEN_XOR = 3 };

typedef struct model_spec {
    int type;                     /* enum model_type */
    int inputs, outputs;
    int nhidden;                  /* mlp: hidden layers */
    int hidden[CFG_MAX_HIDDEN];   /* mlp: their widths */
    int activation;               /* enum act_type (mlp) */
    double dropout;               /* mlp: probability in [0, 1) after each hidden activation */
    cJSON *init;                  /* {"fc.weight": [[…]], …}: names and shapes checked; owned;
                                     NULL if none. Tensors left out get the default init. */
    /* gpt (config_gpt.c); outputs is vocab_size once known */
    int block_size, n_layer, n_head, n_embd;
    int vocab_size;               /* 0 until the data's vocabulary gives it */
    int bias;                     /* biases in linear layers and LayerNorms (default 1) */
    int gelu;                     /* enum gpt_gelu: 0 tanh, 1 erf */
} model_spec;

typedef struct data_spec {
    int type;                     /* enum data_type */
    /* synthetic */
    int task;                     /* enum synth_task */
    int generator;                /* enum synth_gen (classification) */
    int64_t samples;
    int features, outputs, classes;
    double noise;
    /* inline: rows as given (owned); y is a list of rows or of class indices */
    cJSON *x, *y;
    /* dataset (uploaded CSV) and builtin */
    char dataset_id[64];          /* "" if named */
    char name[CFG_MAX_NAME];      /* dataset name, or builtin "iris" / "digits" / "wine" */
    char target[CFG_MAX_NAME];    /* label column ("" = the last column) */
    cJSON *features_sel;          /* array of column names to use, or NULL for all others (owned) */
    int normalize;                /* standardise features (default 1) */
    int shuffle;                  /* reshuffle every epoch (default 1) */
    /* text (config_gpt.c): the corpus is inline (text), builtin (name "tinyshakespeare",
     * text_builtin 1) or an uploaded text data set (dataset_id or name) */
    cJSON *text;                  /* inline corpus (a JSON string, owned) or NULL */
    int text_builtin;
    int tokenizer;                /* enum text_tokenizer */
    int sampling_random;          /* "sampling": "random" instead of shuffled windows */
    cJSON *vocab;                 /* the vocabulary (text_vocab_json) when the spec's text gives
                                     it; owned; NULL for an uploaded data set */
} data_spec;

typedef struct param_group_spec {
    cJSON *match;                 /* array of glob strings (owned) */
    int has_lr, has_weight_decay;
    double lr, weight_decay;
} param_group_spec;

typedef struct job_spec {
    char name[CFG_MAX_NAME];
    uint64_t seed;
    model_spec model;
    int loss;                     /* enum loss_type */
    data_spec data;
    int64_t steps;                /* optimizer steps; 0 when the run is given in epochs */
    int64_t epochs;               /* passes over the training data; 0 when given in steps */
    double val_fraction;          /* share of rows held out, in [0, 1); 0 = no validation */
    int val_split_test;           /* validation.split "test": the data set's own test split
                                     (fashion-mnist) validates */
    int64_t val_every_steps;      /* optimizer steps between validations (default 100) */
    int64_t val_batches;          /* validation.batches: gpt validates on this many batches of
                                     windows spread evenly over its split; 0 = every window */
    int64_t ckpt_every_steps;     /* optimizer steps between checkpoints; 0 = no step trigger */
    double ckpt_every_seconds;    /* seconds between checkpoints; 0 = no time trigger */
    int ckpt_keep_last;           /* checkpoints kept, 1..CFG_MAX_KEEP (default 3) */
    cfg_keep_best keep_best;      /* checkpoint.keep_best (config_keep.h); k 0 = none */
    int threads;                  /* compute threads, 1..CFG_MAX_THREADS (default 1) */
    int64_t metrics_max_bytes;    /* metrics.max_bytes; 0 = no cap (config_metrics.h) */
    int64_t metrics_full_res;     /* metrics.full_resolution_steps; 0 = keep every row */
    int ngroups;                  /* param_groups entries (group k+1 = entry k) */
    param_group_spec groups[CFG_MAX_GROUPS];
    double lrfind_stop;           /* lr_finder.stop_factor: the run ends once its smoothed loss
                                     diverges (core/lrfind.h); 0 = an ordinary job */
    cfg_sched sched;              /* priority, preemption, limits, tags, notes (config_sched.h) */
    char resume_job[64];          /* "" = none */
    int stored;                   /* parsed from the store (job_spec_parse_stored): accepted
                                     once, so refusals added since are not applied again, and it
                                     runs as it did when accepted */
    int64_t resume_step;          /* -1 = latest */
    /* ds_config */
    int64_t train_batch_size, micro_batch, grad_accum; /* samples, samples, micro-batches per
                                     step: all resolved, train_batch_size = micro_batch x
                                     grad_accum x world_size */
    int world_size;               /* ranks of a data-parallel job, 1..CFG_MAX_WORLD (default 1) */
    int zero_stage;               /* ZeRO stage that runs: 0 or 1 (2 and 3 run as 1) */
    double gradient_clipping;     /* 0 = off */
    int fp16;                     /* ds_config.fp16.enabled (gpt): loss scaling, half gradients */
    lossscale_cfg loss_scale;     /* its scaler (DeepSpeed's keys and defaults) */
    int bf16;                     /* ds_config.bf16.enabled (gpt): bf16 matrix products */
    int act_ckpt;                 /* ds_config.activation_checkpointing (gpt, mlp): the
                                     checkpoints K, 1..layers (0 = off); activations between
                                     them recomputed in backward (core/actckpt.h) */
    optim_cfg optim;
    cJSON *scheduler;             /* the scheduler block as given, validated against the job's
                                     sched_env (its "auto" values are resolved from that env by
                                     sched_create, here and when the job starts); NULL if none;
                                     owned */
    /* outputs */
    cJSON *normalized;            /* the spec with defaults filled in (GET /v1/jobs/{id} "spec"); owned */
    cJSON *warnings;              /* array of strings; owned */
} job_spec;

/* Parses and validates a job spec. On success *out owns its cJSON parts: job_spec_free. On
 * failure *out is left freed and `err` says what and where. */
int job_spec_parse(const cJSON *json, job_spec *out, an_err *err);

/* The top-level keys of a job spec (NULL-terminated). */
extern const char *const JOB_SPEC_KEYS[];

/* Like job_spec_parse, but goes on after a bad section and reports every error it finds:
 * up to `max` go to errs[], their total count to *nerr (which may exceed max). Sections that
 * depend on a bad one are not checked. Returns the first error's code, or 0. */
int job_spec_parse_all(const cJSON *json, job_spec *out, an_err *errs, int max, int *nerr);

/* The same from text: malformed JSON fails with its line and column. */
int job_spec_parse_text(const char *text, size_t len, job_spec *out, an_err *err);

/* The same for a spec the daemon stored itself. Specs accepted before duplicate keys were
 * refused may hold one below the top level; the first of them counts, as it did when the job
 * was accepted, so such a job still loads and resumes as it trained. */
int job_spec_parse_stored(const char *text, size_t len, job_spec *out, an_err *err);


/* Frees what *s owns and zeroes it; safe on a zeroed or already freed spec. */
void job_spec_free(job_spec *s);

/* Total optimizer steps of the run for `train_samples` training samples (resolves epochs):
 * `steps` when given, else ceil(epochs x train_samples / train_batch_size). Batches are always
 * full: a batch that reaches the end of an epoch continues with the next epoch's order (as
 * the data loader does), so the run sees epochs x train_samples samples, rounded up to whole
 * batches. Returns at least 1 for a valid spec and train_samples
 * >= 1; 0 if train_samples < 1 in an epochs run. */
int64_t job_spec_total_steps(const job_spec *s, int64_t train_samples);

/* An epochs run whose data rows the parse could not count (an uploaded data set, a text):
 * with its training samples known (at submission), the checks of its length the parse left
 * — the limit of `steps`, naming "epochs", and what its scheduler asks of a run that long
 * (a OneCycleLR's total_steps). The scheduler's warnings are then those of the real length:
 * a "total_num_steps": "auto" says the number it resolved to. 0 for a run in steps. */
int job_spec_check_run_length(job_spec *s, int64_t train_samples, an_err *err);

/* Rows of the job's data when the spec alone tells (synthetic: samples; inline: rows of x;
 * builtin: the data set's rows), -1 for an uploaded dataset. */
int64_t job_spec_data_samples(const job_spec *s);

/* The split of `rows` data rows: validation takes floor(rows x val_fraction) rows, training
 * the rest. Returns the training rows; *val_rows (may be NULL) gets the validation rows. */
int64_t job_spec_train_samples(const job_spec *s, int64_t rows, int64_t *val_rows);

/* The scheduler's environment for this job: groups (group 0 = the optimizer's lr, group k =
 * param_groups[k-1].lr or the optimizer's lr), betas/momentum, train_batch_size and
 * total_steps for `train_samples` training rows (-1 = unknown: an epochs run then uses
 * epochs x CFG_UNKNOWN_STEPS_PER_EPOCH). job_spec_parse validates the scheduler with
 * exactly this env (train_samples from the spec's data when known). */
void job_spec_sched_env(const job_spec *s, int64_t train_samples, sched_env *env);

/* One tensor of a model, named as a PyTorch state_dict names it. */
typedef struct spec_tensor {
    char name[24];                /* "fc.weight", "fc1.bias", … */
    int rank;                     /* 2 for weights [out, in], 1 for biases [out] */
    int shape[2];
} spec_tensor;

/* The model's tensors in order (layer by layer, weight then bias) into t[CFG_MAX_TENSORS];
 * returns their count. */
int model_spec_tensors(const model_spec *m, spec_tensor *t);

/* Parameters of the model (sum over its tensors). */
int64_t model_spec_params(const model_spec *m);

#endif
