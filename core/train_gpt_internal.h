/* train_gpt_internal — the training state of a gpt job that core/train_gpt.c (construction
 * and the step) and core/train_gpt_blob.c (the checkpoint blob) share. Nothing outside
 * core/train_gpt*.c includes it. */
#ifndef ANNEALD_TRAIN_GPT_INTERNAL_H
#define ANNEALD_TRAIN_GPT_INTERNAL_H

#include "core/gradtree.h"
#include "core/optim.h"
#include "core/sched.h"
#include "core/train_gpt.h"


struct gtrain {
    double clip;
    int threads;
    int64_t val_every;
    size_t val_windows;          /* windows a validation reads: kval, or fewer (validation.batches) */
    int micro, gas, T;          /* gas: micro-batches per step on this rank */
    int64_t total_steps, steps, samples;
    uint64_t seed;
    int shuffle, random;
    text_vocab vocab;
    int32_t *tokens;            /* the whole corpus */
    size_t ntok, ntrain;        /* tokens; the first ntrain train */
    size_t ktrain, kval;        /* windows of each part */
    uint32_t *perm;             /* [ktrain] the order of perm_epoch */
    int64_t perm_epoch;
    int64_t epoch, pos;         /* cursor over training windows */
    gpt *g;
    optim opt;
    int ngroups, has_betas;
    sched *sch;
    int32_t *idx, *tgt;         /* [micro·T] */
    int fp16, bf16;             /* ds_config numerics */
    lossscale ls;
    uint64_t layout_hash, model_hash;
    /* The accumulation tree over this rank's micro-batches (gradtree.h); its first buffer is
     * g->grads. */
    gradtree tree;
    /* Data-parallel ranks (gtrain_set_ranks); world 1, rank 0 and no reduce alone. */
    int world, rank;
    train_reduce_fn reduce;
    void *reduce_ctx;
    double *losses;             /* [world·gas] global, then [gas] this rank's */
};

/* Puts the scheduler's lr (and momentum or betas) of this step into the optimizer groups. */
void gtrain_apply_sched(gtrain *t);

#endif
