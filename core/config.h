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

#include "core/err.h"
#include "core/optim.h"

#define CFG_MAX_HIDDEN 16     /* hidden layers of an mlp */
#define CFG_MAX_GROUPS 16     /* param_groups entries (plus group 0) */
#define CFG_MAX_NAME 128

/* Stored in checkpoints and specs: append only. */
enum model_type { MODEL_LINEAR = 1, MODEL_MLP = 2 };
enum act_type { ACT_RELU = 1, ACT_GELU = 2, ACT_TANH = 3, ACT_SIGMOID = 4, ACT_SILU = 5 };
enum loss_type { LOSS_MSE = 1, LOSS_CROSS_ENTROPY = 2, LOSS_BCE = 3, LOSS_MEAN = 4 };
enum data_type { DATA_SYNTHETIC = 1, DATA_INLINE = 2, DATA_DATASET = 3, DATA_BUILTIN = 4 };
enum synth_task { TASK_REGRESSION = 1, TASK_CLASSIFICATION = 2 };
enum synth_gen { GEN_BLOBS = 1, GEN_SPIRALS = 2, GEN_XOR = 3 };

typedef struct model_spec {
    int type;                     /* enum model_type */
    int inputs, outputs;
    int nhidden;                  /* mlp: hidden layers */
    int hidden[CFG_MAX_HIDDEN];   /* mlp: their widths */
    int activation;               /* enum act_type (mlp) */
    double dropout;               /* mlp: probability in [0, 1) after each hidden activation */
    cJSON *init;                  /* {"fc.weight": [[…]], …}: names and shapes checked; owned; NULL if none */
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
    double val_fraction;          /* 0 = no validation */
    int64_t val_every_steps;
    int64_t ckpt_every_steps;
    double ckpt_every_seconds;
    int ckpt_keep_last;
    int threads;
    int ngroups;                  /* param_groups entries (group k+1 = entry k) */
    param_group_spec groups[CFG_MAX_GROUPS];
    char resume_job[64];          /* "" = none */
    int64_t resume_step;          /* -1 = latest */
    /* ds_config */
    int64_t train_batch_size, micro_batch, grad_accum;
    double gradient_clipping;     /* 0 = off */
    optim_cfg optim;
    cJSON *scheduler;             /* the scheduler block, validated ("auto" resolved); NULL if none; owned */
    /* outputs */
    cJSON *normalized;            /* the spec with defaults filled in (GET /v1/jobs/{id} "spec"); owned */
    cJSON *warnings;              /* array of strings; owned */
} job_spec;

/* Parses and validates a job spec. On success *out owns its cJSON parts: job_spec_free. On
 * failure *out is left freed and `err` says what and where. */
int job_spec_parse(const cJSON *json, job_spec *out, an_err *err);

/* The same from text: malformed JSON fails with its line and column. */
int job_spec_parse_text(const char *text, size_t len, job_spec *out, an_err *err);

/* Parses JSON text, or fails with "malformed JSON at line L, column C: …". Used for every
 * JSON body and file. */
int json_parse_text(const char *text, size_t len, cJSON **out, an_err *err);

void job_spec_free(job_spec *s);

/* Total optimizer steps of the run for `train_samples` training samples (resolves epochs). */
int64_t job_spec_total_steps(const job_spec *s, int64_t train_samples);

#endif
