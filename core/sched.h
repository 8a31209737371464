/* sched — every learning-rate schedule of anneald.
 *
 * DeepSpeed's WarmupLR, WarmupDecayLR, WarmupCosineLR, OneCycle and LRRangeTest with exactly
 * DeepSpeed's formulas, defaults and quirks (DEEPSPEED.md §3), PyTorch's schedulers, and
 * MultiPhase. All arithmetic in double, in the reference's order of operations.
 *
 * Driven as DeepSpeed's engine drives it: creating a scheduler sets the lr the FIRST optimizer
 * step uses; after every optimizer step the trainer calls sched_step once; sched_lr then gives
 * what the next optimizer step uses. So optimizer step s uses the values read after s-1 calls
 * of sched_step — entry s-1 of a preview.
 *
 * A scheduler is built from its JSON block ({"type": …, "params": {…}}) and the environment
 * it runs in (sched_env). Validation and construction are the same function, so `anneald
 * check`, POST /v1/jobs and a starting job can never disagree about a config. */
#ifndef ANNEALD_SCHED_H
#define ANNEALD_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/err.h"

#define SCHED_MAX_GROUPS 64

/* What a scheduler needs to know about the optimizer and the job. */
typedef struct sched_env {
    int ngroups;                        /* parameter groups (>= 1) */
    double base_lr[SCHED_MAX_GROUPS];   /* each group's lr from the optimizer / param_groups */
    int has_betas;                      /* optimizer is Adam-like (OneCycle cycles beta1) */
    int has_momentum;                   /* SGD or RMSprop: torch's CyclicLR and OneCycleLR
                                           cycle their momentum; without it or betas they
                                           refuse to cycle (PyTorch 1.13 raises) */
    int stored;                         /* a stored job's spec, accepted by an earlier build
                                           before that refusal: its CyclicLR cycles beta1
                                           (or nothing) as it did then */
    double beta1, beta2;                /* the optimizer's configured betas */
    double momentum;                    /* SGD/RMSprop momentum (torch CyclicLR/OneCycleLR) */
    int64_t total_steps;                /* the job's optimizer steps ("auto" total_num_steps) */
    int total_steps_unknown;            /* total_steps is a stand-in: an epochs run over data
                                           whose rows are only known when it is submitted */
    int64_t train_batch_size;           /* for DeepSpeed's ReduceLROnPlateau metric quirk */
} sched_env;

typedef struct sched sched; /* opaque; one allocation per scheduler */

/* Builds a scheduler from `block` at JSON path `path` (e.g. "ds_config.scheduler"). A NULL
 * block means no scheduler: every group keeps its base lr. Bad types, unknown or missing
 * params and out-of-range values fail with the offending path; accepted quirks and resolved
 * "auto" values are appended to `warnings` (cJSON array of strings; may be NULL). */
int sched_create(sched **out, const cJSON *block, const char *path, const sched_env *env,
                 an_err *err, cJSON *warnings);
void sched_free(sched *s);

/* What a scheduler built from the block at `path` asks of the job it drives, which its
 * block alone cannot tell: a ReduceLROnPlateau (alone or as a phase) needs validation losses
 * (has_validation 0 fails naming its "type"); a OneCycleLR must not be stepped past its
 * total_steps (PyTorch raises ValueError there) in a run of `steps` optimizer steps, a
 * MultiPhase phase counting as a run of its own steps (steps 0: not known, not checked). */
int sched_check_run(const sched *s, const char *path, int has_validation, int64_t steps,
                    an_err *err);

/* Validation only: sched_create followed by sched_free. */
int sched_validate(const cJSON *block, const char *path, const sched_env *env, an_err *err,
                   cJSON *warnings);

int sched_ngroups(const sched *s);

/* The learning rate of every group for the next optimizer step ([ngroups]). */
const double *sched_lr(const sched *s);

/* The momentum the schedule sets for the next step: beta1 for Adam-like optimizers, SGD's
 * momentum otherwise ([ngroups]); NULL when the schedule does not cycle momentum. */
const double *sched_mom(const sched *s);

/* beta2 when the schedule overrides it (DeepSpeed's OneCycle forces 0.99); NULL otherwise. */
const double *sched_beta2(const sched *s);

/* Advances by one optimizer step. `metric` feeds ReduceLROnPlateau (a validation loss); NAN
 * means no new measurement at this step. */
void sched_step(sched *s, double metric);

/* Steps taken so far (sched_step calls since creation, including restored ones). */
int64_t sched_steps(const sched *s);

/* The whole state as bytes; restoring it into a scheduler built from the same block and env
 * continues bit for bit. A mismatch or short buffer is an error, never a read past the end. */
size_t sched_state_size(const sched *s);
int sched_save(const sched *s, void *buf, size_t len);
int sched_load(sched *s, const void *buf, size_t len, an_err *err);

/* POST /v1/schedules/preview and `anneald preview`: `body` is {"ds_config": {…}, "steps": N,
 * "param_groups": [{"lr": x}, …]} (also accepted: a whole job spec, whose ds_config and
 * param_groups are used, or a bare ds_config). Sets *out to {"warnings":[…],"step":[…],
 * "lr":[[…]…],"momentum":[[…]…]} (momentum only when the schedule cycles it; warnings: notes
 * that change nothing, such as a ds_config key DeepSpeed does not have, or a quirk a job
 * would note).
 * `steps_override` > 0 replaces the body's steps (default: the body's "steps", else the
 * run length of a job spec given in epochs when its data tells it, else 1000). Up to
 * 10,000,000 steps are shown; any length a job may have when the body thins the answer with
 * "every": N (step 1, every N-th step, the last, and where the lr changes direction) or
 * "max_points": M (at most M such steps). The lr and momentum values are raw items (cJSON_IsRaw) holding the shortest
 * text that reads back to the same double, with valuedouble set too; a value that is not
 * finite (a schedule that overflows) is null. "step" entries are numbers. Errors name their
 * JSON path. */
int sched_preview(const cJSON *body, int64_t steps_override, cJSON **out, an_err *err);

/* The same preview as text, produced as it is read, in constant memory (a 10,000,000-step
 * preview is hundreds of megabytes of text). `csv` 0 gives exactly the JSON of sched_preview
 * on one line; 1 gives CSV rows "step,lr0,…[,momentum0,…]" after a header line (values that
 * are not finite as inf, -inf or nan). Errors in the
 * body are reported by open, never while reading. */
typedef struct sched_preview_stream sched_preview_stream;
int sched_preview_open(const cJSON *body, int64_t steps_override, int csv,
                       sched_preview_stream **out, an_err *err);
/* Steps the preview covers. */
int64_t sched_preview_steps(const sched_preview_stream *ps);
/* Copies up to `max` more bytes into buf; 0 means the end. */
size_t sched_preview_read(sched_preview_stream *ps, char *buf, size_t max);
/* The same, but computes at most about `budget` scheduler steps: a thinned preview of a long
 * schedule computes millions of steps per byte, and a server must not stall on one. It may
 * return 0 before the end: sched_preview_done tells. */
size_t sched_preview_read_some(sched_preview_stream *ps, char *buf, size_t max, int64_t budget);
int sched_preview_done(const sched_preview_stream *ps);
/* The preview's warnings (an array of strings, owned by the stream): in the JSON form's text
 * too, and for the CSV form to be told some other way. */
const cJSON *sched_preview_warnings(const sched_preview_stream *ps);
void sched_preview_close(sched_preview_stream *ps);

#endif
