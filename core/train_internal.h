/* train_internal — the training state that core/train.c (construction and the step) and
 * core/train_blob.c (the checkpoint blob) share. Nothing outside core/train*.c includes it. */
#ifndef ANNEALD_TRAIN_INTERNAL_H
#define ANNEALD_TRAIN_INTERNAL_H

#include "core/data.h"
#include "core/gradtree.h"
#include "core/lrfind.h"
#include "core/model.h"
#include "core/optim.h"
#include "core/sched.h"
#include "core/train.h"
#include "core/train_gpt.h"

#define VAL_BATCH 256          /* rows per validation / prediction batch at most */

struct train {
    double clip;                /* gradient_clipping; 0 = off */
    int threads;                /* compute threads */
    int64_t val_every;          /* optimizer steps between validations */
    int micro;                  /* rows per micro-batch */
    int gas;                    /* micro-batches per optimizer step */
    int loss;                   /* enum loss_type */
    int64_t total_steps;
    int64_t steps;              /* optimizer steps done */
    int64_t samples;            /* training rows consumed */
    dataset train_ds, val_ds;
    data_loader loader;
    model *m;
    optim opt;
    int ngroups;                /* optimizer groups: param_groups entries + 1 */
    int has_betas;
    sched *sch;
    /* step buffers, all allocated by train_create */
    float *x, *y;               /* [micro, inputs], [micro, ydim] */
    float *dout;                /* [max_batch, outputs] */
    gradtree tree;              /* the micro-batch gradients' pairwise sum (gradtree.h) */
    uint64_t layout_hash, model_hash;
    int finder;                 /* an lr_finder sweep: ends when the watch sees divergence */
    lrfind_watch watch;
    gtrain *gt;                 /* a gpt job: every call goes to train_gpt.c */
    int world, rank;            /* data-parallel ranks (train_set_ranks); 1, 0 alone */
    train_reduce_fn reduce;     /* the cross-rank sum; NULL alone */
    void *reduce_ctx;
    double *losses;             /* [world·gas] micro-batch losses of a step (world > 1) */
    /* ZeRO stage 1 (train_shard.c): opt holds only this rank's slice [shard_lo, shard_hi) */
    int sharded;
    size_t shard_lo, shard_hi;
    train_gather_fn gather;
    void *gather_ctx;
    optim_tensor *full_tensors; /* the unsharded optimizer's tensors, for consolidation */
    int nfull_tensors;
    int unsharded;              /* rank 0 between train_unshard_begin and _end */
    optim shard_keep;           /* the slice's optimizer meanwhile */
};

/* ZeRO stage 1 (train_shard.c): the optimizer step of a sharded rank, then the all-gather of
 * the parameters. */
int train_shard_step(train *t, float *params, float *grad, an_err *err);
void train_shard_free(train *t);

#endif
