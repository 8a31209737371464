/* train_gpt — the training state of a `gpt` job on `text` data: the same contract as train.h
 * (train.c hands a gpt job's calls to these), with token windows instead of table rows.
 *
 * Data (JOBSPEC.md, "Data text"): the corpus is tokenized once; the first ⌊N·(1−f)⌋ tokens
 * train and the tail validates, each cut into non-overlapping windows of T+1 tokens. Windows
 * are visited in the permutation of (seed, epoch) (or in order without shuffle); with
 * "sampling": "random" each row's start is a counter-based draw of (seed, step, micro-batch,
 * row). Either way a batch is a pure function of the step and a (epoch, position) cursor that
 * the checkpoint holds, so a resumed run trains bit for bit as an uninterrupted one.
 *
 * A step: gradient_accumulation_steps micro-batches, each one's gradient (of its loss / gas)
 * in a buffer of its own, summed in core/train.c's pairwise tree, clipping, the optimizer, a
 * validation when due, the scheduler. As rank r of W (gtrain_set_ranks) a step covers a
 * global batch of W·gas micro-batches: the rank trains r·gas … r·gas + gas − 1 of them (each
 * of loss / (W·gas), with the data and dropout masks of its global index), the ranks' sums are
 * summed in core/ddp.h's order, and every rank clips and steps alike; W = 1, 2, 4 then give
 * the same bits whenever gas is a power of two. */
#ifndef ANNEALD_TRAIN_GPT_H
#define ANNEALD_TRAIN_GPT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/config.h"
#include "core/err.h"
#include "core/gpt.h"
#include "core/lossscale.h"
#include "core/text.h"
#include "core/train.h"

typedef struct gtrain gtrain;

/* text/len: the uploaded corpus for data.dataset (NULL for inline or builtin text). */
int gtrain_create(gtrain **out, const job_spec *spec, const char *text, size_t len, an_err *err);
void gtrain_free(gtrain *t);
int gtrain_step(gtrain *t, train_report *rep, an_err *err);
/* The failure of a run whose micro-batch j (0-based, of G in the step) had loss l at the
 * 0-based step: -EDOM with the message both trainers give. */
int gtrain_loss_not_finite(double l, int64_t step, int j, int G, an_err *err);

/* Makes t rank `rank` of `world` (train.h, train_set_ranks). -EINVAL for a world above 2^20
 * micro-batches, -ENOMEM. */
int gtrain_set_ranks(gtrain *t, int world, int rank, train_reduce_fn fn, void *ctx);

/* Length of the flat parameter (and gradient) buffer. */
size_t gtrain_nparams(const gtrain *t);

/* Bytes of optimizer state (the whole of it: a gpt's is not sharded). */
size_t gtrain_optim_bytes(const gtrain *t);
int64_t gtrain_steps_done(const gtrain *t);
int64_t gtrain_total_steps(const gtrain *t);
int gtrain_validate(gtrain *t, double *loss);
int gtrain_save_into(const gtrain *t, void **buf, size_t *cap, size_t *len, an_err *err);
int gtrain_restore(gtrain *t, const void *buf, size_t len, an_err *err);
int gtrain_restore_weights(gtrain *t, const void *buf, size_t len, an_err *err);
int gtrain_weights_json(const gtrain *t, cJSON **out);
int gtrain_block_size(const gtrain *t);
int gtrain_vocab_size(const gtrain *t);

/* The vocabulary (text_vocab_json), NULL if out of memory; the caller deletes it. */
cJSON *gtrain_vocab_json(const gtrain *t);

/* The fp16 loss scaler's state, NULL without fp16. */
const lossscale *gtrain_lossscale(const gtrain *t);

/* What identifies a gpt's parameter layout in a checkpoint blob (its model hash). */
uint64_t gtrain_model_hash(const gpt *g);

/* The model and vocabulary, for generation (gpt.h, text.h). */
gpt *gtrain_model(gtrain *t);
const text_vocab *gtrain_vocab(const gtrain *t);

#endif
