/* infer — a trained model for predictions and weights, built from a job spec and one of its
 * checkpoints without the data set, the optimizer or the scheduler.
 *
 * Only the model's tensors are read out of the checkpoint blob (its framing and checksum are
 * checked whole), so a prediction costs the model and one batch of activations, not the
 * training state: a data set deleted after the job finished does not matter. */
#ifndef ANNEALD_INFER_H
#define ANNEALD_INFER_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/err.h"
#include "core/gpt.h"
#include "core/model.h"
#include "core/text.h"

/* Rows one forward pass of a prediction takes at most. */
#define INFER_BATCH 256

typedef struct infer {
    model *m;       /* the parameters are the checkpoint's */
    int64_t step;   /* optimizer steps done at the checkpoint */
    int nstats;     /* inputs with statistics (0: the checkpoint has none) */
    double *mean, *std; /* the training data's input statistics, nstats each */
    int standardises;   /* the job's spec standardises its inputs */
    gpt *g;             /* a gpt job: the model (m is NULL), one sequence at a time */
    text_vocab vocab;   /* and its vocabulary, from the checkpoint */
} infer;

/* Builds the model of `spec` and sets its parameters from the checkpoint blob. A corrupt blob
 * or one of another model fails with a clear error (field "checkpoint"). */
int infer_create(infer **out, const job_spec *spec, const void *blob, size_t len, an_err *err);

/* The same from a checked view that holds at least the counters, the parameters and, where
 * the job has them, the input statistics and the vocabulary (core/blob_pick.h keeps only
 * those: INFER_SECTIONS). */
struct blob_view;
int infer_create_view(infer **out, const job_spec *spec, const struct blob_view *v,
                      an_err *err);
#define INFER_SECTIONS ((1u << 1) | (1u << 3) | (1u << 7) | (1u << 8)) /* SEC_COUNTERS, SEC_PARAMS,
                                                  SEC_INPUT_STATS, SEC_VOCAB of core/blob.h */
void infer_free(infer *f);

int infer_inputs(const infer *f);

/* Standardises raw input rows as training did ((x - mean) / std in double, rounded once to
 * float) into out, or copies them when the job does not standardise. -ENOENT (field
 * "normalized") when the job standardises but the checkpoint holds no statistics (it was
 * written before they were stored): the caller must standardise and say so. */
int infer_prepare(const infer *f, const double *x, int rows, float *out, an_err *err);
int infer_outputs(const infer *f);

/* Bytes the object holds (parameters, gradient scratch, activations): what a cache counts. */
size_t infer_bytes(const infer *f);

/* Runs `rows` input rows through the model in eval mode: outputs floats per row into out.
 * Not thread-safe on one object (activations are shared): callers serialise. */
int infer_predict(infer *f, const float *x, int rows, float *out, an_err *err);

/* What an infer object for `spec` will hold, without building it (for admission). */
size_t infer_bytes_estimate(const job_spec *spec);

#endif
