/* train — one job's whole training state and its optimizer step.
 *
 * A train object owns everything a job needs (model, data, optimizer, scheduler, RNG, data
 * cursor), all allocated by train_create; train_step does not allocate. One train_step is one
 * optimizer step in DeepSpeed's engine order: gradient_accumulation_steps micro-batches (the
 * micro-batch gradients summed in a fixed pairwise tree, scaled once), gradient clipping,
 * optimizer step, scheduler step.
 *
 * The state serialises to one versioned, checksummed blob; restoring it and training on gives
 * bit for bit what an uninterrupted run gives (same spec, same thread count). No threads, no
 * I/O: the daemon's worker and `anneald train` drive it. */
#ifndef ANNEALD_TRAIN_H
#define ANNEALD_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/config.h"
#include "core/err.h"
#include "core/sched.h"

/* What one optimizer step reports. */
typedef struct train_report {
    int64_t step;                    /* optimizer steps done, counting this one (from 1) */
    int64_t epoch;                   /* data epoch the step's last micro-batch came from */
    double loss;                     /* mean training loss of the step's micro-batches */
    int ngroups;
    double lr[SCHED_MAX_GROUPS];     /* the lr each group used in this step */
    double grad_norm;                /* global L2 norm before clipping */
    int has_val;                     /* a validation ran after this step */
    double val_loss;
    double val_acc;                  /* classification only, else NAN */
    double loss_scale;               /* fp16: the scale this step used, else NAN */
    int64_t skipped_steps;           /* fp16: overflowed steps so far (this one included) */
    int skipped;                     /* fp16: this step overflowed (no optimizer or scheduler
                                        step) */
} train_report;

typedef struct train train; /* opaque */

/* Builds a job's state from a validated spec. `csv`/`csv_len` carry the uploaded data set's
 * text for data type "dataset" (NULL otherwise). Fails with a clear error (e.g. a CSV cell
 * that is not a number names its row and column). */
int train_create(train **out, const job_spec *spec, const char *csv, size_t csv_len, an_err *err);
void train_free(train *t);

/* One optimizer step. A NaN or Inf loss fails with -EDOM and an error naming the step. */
int train_step(train *t, train_report *rep, an_err *err);

/* The cross-rank part of a data-parallel step (the rank program's MPI exchange): replaces
 * grad[0..n) with the sum over all ranks in core/ddp.h's order and fills losses[0..W·gas)
 * with every micro-batch's loss in global order, given this rank's own gas losses (`mine`).
 * Returns 0 or a negative errno. */
typedef int (*train_reduce_fn)(void *ctx, float *grad, size_t n, const double *mine, int gas,
                               double *losses);

/* Makes t rank `rank` of `world`: each step reads the whole global batch of world·gas
 * micro-batches from the loader, trains micro-batches rank·gas … of it, and `fn` sums the
 * gradients across ranks before the one scaling by 1/(world·gas) (a gpt job: each
 * micro-batch's gradient is of loss/(world·gas), train_gpt.h), clipping and the optimizer
 * step, which every rank does alike. -EINVAL for a world above 2^20 micro-batches. */
int train_set_ranks(train *t, int world, int rank, train_reduce_fn fn, void *ctx);

/* Gathers a flat buffer of n elements sliced across the ranks as core/ddp.h's ddp_shard
 * slices it: `mine` holds this rank's slice; to_all 1 fills the whole of `full` on every rank
 * (`mine` may point into `full`, at the slice), to_all 0 only on rank 0 (`full` is NULL on
 * the others). 0 or a negative errno. */
typedef int (*train_gather_fn)(void *ctx, const float *mine, float *full, size_t n, int to_all);

/* ZeRO stage 1 (after train_set_ranks, and after any train_restore): the rank keeps the
 * optimizer state of its slice of the flat parameters only (1/world of it), steps that slice
 * and all-gathers the parameters through `gather` after each step. The weights and losses
 * stay those of the unsharded run bit for bit (the gradient sum, the norm and the clipping
 * are unchanged; the optimizers other than Lamb are element-wise). Lamb (its trust ratio is
 * a norm over each whole tensor) is refused with -ENOTSUP, a single rank with -EINVAL. */
int train_shard_optimizer(train *t, train_gather_fn gather, void *ctx, an_err *err);

/* Bytes of optimizer state this rank holds, and the unsharded total. */
size_t train_optim_bytes(const train *t, size_t *total);

/* Consolidation for a checkpoint, called by every rank (it gathers): rank 0 then holds the
 * whole optimizer, so that its train_save writes the blob an unsharded run writes (any world
 * size resumes it); train_unshard_end goes back to the slice. A no-op when not sharded. */
int train_unshard_begin(train *t, an_err *err);
void train_unshard_end(train *t);

/* Length of the flat parameter (and gradient) buffer. */
size_t train_nparams(const train *t);

int64_t train_steps_done(const train *t);
int64_t train_total_steps(const train *t);

/* Validation loss (and accuracy) on the held-out split now; -ENOENT without a split. */
int train_validate(train *t, double *loss, double *acc);

/* The whole state as one blob (malloc'd into *buf; the caller frees it). */
int train_save(const train *t, void **buf, size_t *len, an_err *err);

/* The same into a buffer the caller keeps from one checkpoint to the next (*buf of *cap
 * bytes, NULL/0 at first), replaced by a larger one when it is too small: a state of
 * hundreds of MB is then mapped and faulted in once a job, not once a checkpoint, and no
 * checkpoint unmaps one (an unmap of that size holds the process's memory map long enough to
 * stall every other thread that maps memory). *len receives the blob's size. The caller
 * frees *buf, whatever the result. */
int train_save_into(const train *t, void **buf, size_t *cap, size_t *len, an_err *err);

/* Restores a blob made by train_save for the same spec. A truncated, corrupt or foreign blob
 * is rejected with a clear error and changes nothing. */
int train_restore(train *t, const void *buf, size_t len, an_err *err);

/* Takes only the parameters from a blob (resume_from: a new ds_config on trained weights).
 * The model must match. */
int train_restore_weights(train *t, const void *buf, size_t len, an_err *err);

/* {"step":…,"tensors":[{"name","shape","data"}]} — every float printed so it reads back to
 * the same bits. */
int train_weights_json(const train *t, cJSON **out);

/* Runs `rows` input rows (inputs floats each) through the current weights: outputs floats
 * per row into out (rows × outputs). */
/* The standardisation the job's inputs went through (data.normalize): per-feature mean and
 * population std of the training rows, as data_standardize applied them. Returns the number
 * of features and sets *mean and *std (owned by t), or returns 0 when the job trains on its
 * inputs as they are. */
int train_input_stats(const train *t, const double **mean, const double **std);

/* Adds "input_stats": {"mean": […], "std": […]} (null when there are none) to the object w,
 * beside the tensors of train_weights_json: what predict applies to raw inputs. 0 or
 * -ENOMEM. */
int train_input_stats_json(const train *t, cJSON *w);

int train_predict(train *t, const float *x, int rows, float *out, an_err *err);

int train_inputs(const train *t);
/* A gpt job's state (train_gpt.h), NULL for other models. */
struct gtrain *train_gpt(train *t);
int train_outputs(const train *t);

#endif
