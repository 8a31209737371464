/* sched_node — the inside of a scheduler, shared by sched.c, sched_ds.c and sched_torch.c.
 *
 * One struct serves every type: the fixed parameters a type reads at construction, and the
 * few values that change while it runs (steps, last_epoch, the lr/momentum arrays, the
 * plateau and warm-restart counters, the current child). Only the changing values are
 * serialised; the fixed ones are rebuilt from the same block and env. Composite types
 * (SequentialLR, ChainedScheduler, MultiPhase) own child schedulers. */
#ifndef ANNEALD_SCHED_NODE_H
#define ANNEALD_SCHED_NODE_H

#include <stdint.h>

#include "core/sched.h"

/* Serialised as a number: append only. */
enum sched_kind {
    SK_CONST = 1,          /* no scheduler: base lrs forever */
    SK_WARMUP = 2,
    SK_WARMUP_DECAY = 3,
    SK_WARMUP_COSINE = 4,
    SK_ONECYCLE = 5,
    SK_LRRANGE = 6,
    SK_STEP = 20,
    SK_MULTISTEP = 21,
    SK_EXP = 22,
    SK_COSINE = 23,
    SK_CAWR = 24,
    SK_CYCLIC = 25,
    SK_ONECYCLELR = 26,
    SK_LINEAR = 27,
    SK_CONSTANT = 28,
    SK_POLY = 29,
    SK_PLATEAU = 30,
    SK_SEQUENTIAL = 40,
    SK_CHAINED = 41,
    SK_MULTIPHASE = 42,
};

#define SCHED_MAX_MILESTONES 64
#define SCHED_MAX_CHILDREN 16

struct sched {
    int kind;                         /* enum sched_kind */
    int ngroups;
    sched_env env;                    /* as given at creation */

    /* ---- changing state (serialised) ---- */
    int64_t steps;                    /* sched_step calls */
    int64_t last_epoch;               /* torch: last_epoch; DeepSpeed: last_batch_iteration */
    double lr[SCHED_MAX_GROUPS];      /* what the next optimizer step uses */
    double mom[SCHED_MAX_GROUPS];     /* beta1 or SGD momentum, when cycles_mom */
    double beta2[SCHED_MAX_GROUPS];   /* when sets_beta2 */
    double best;                      /* ReduceLROnPlateau: best metric so far */
    int64_t num_bad;                  /* ReduceLROnPlateau: bad epochs in a row */
    int64_t cooldown_counter;         /* ReduceLROnPlateau */
    int64_t t_i, t_cur;               /* CosineAnnealingWarmRestarts: period, position */
    int64_t cur;                      /* composites: index of the running child */
    int64_t phase_steps;              /* MultiPhase: steps taken in the current phase */

    /* ---- fixed parameters ---- */
    int cycles_mom;                   /* sched_mom is non-NULL */
    int sets_beta2;                   /* sched_beta2 is non-NULL */
    double base[SCHED_MAX_GROUPS];    /* torch initial_lr / DeepSpeed org_lr per group */

    /* DeepSpeed family */
    int64_t lbi0;                     /* last_batch_iteration param (-1 = fresh) */
    double min_lr[SCHED_MAX_GROUPS], max_lr[SCHED_MAX_GROUPS], delta[SCHED_MAX_GROUPS];
    double min_mom[SCHED_MAX_GROUPS], max_mom[SCHED_MAX_GROUPS];
    double warmup;                    /* W after max(2, ·) */
    double inv_log_w;                 /* 1 / ln W */
    int log_warmup;                   /* 1 = log, 0 = linear */
    double total_num;                 /* T */
    double wmr, cmr;                  /* WarmupCosineLR ratios */
    double first, second, total, ratio; /* OneCycle step sizes (float) */
    int64_t stair1, stair2;
    double decay_step, decay_lr_rate, decay_mom_rate;
    int skip_lr_decay, skip_mom_decay;
    double range_size, range_rate;    /* LRRangeTest */
    int staircase;

    /* PyTorch family */
    double gamma, eta_min, factor, start_factor, end_factor, power;
    int64_t step_size, total_iters, t_max, t_0, t_mult;
    int nmilestones;
    int64_t milestones[SCHED_MAX_MILESTONES]; /* sorted, duplicates kept */
    /* CyclicLR */
    int cyc_mode;                     /* 1 triangular, 2 triangular2, 3 exp_range */
    double total_size, step_ratio;
    double base_mom[SCHED_MAX_GROUPS], max_momv[SCHED_MAX_GROUPS];
    /* OneCycleLR */
    int nphases;
    double phase_end[3];
    int anneal_cos;
    double init_lr[SCHED_MAX_GROUPS], peak_lr[SCHED_MAX_GROUPS], final_lr[SCHED_MAX_GROUPS];
    int64_t total_steps;
    /* ReduceLROnPlateau */
    int mode_max, thr_abs;
    double threshold, eps;
    int64_t patience, cooldown;
    double plateau_min_lr[SCHED_MAX_GROUPS];

    /* composites */
    int nchild;
    sched *child[SCHED_MAX_CHILDREN];
    int64_t bounds[SCHED_MAX_CHILDREN]; /* SequentialLR milestones / MultiPhase step counts */
};

/* Whether `kind` is one of PyTorch's schedulers that may run inside SequentialLR or
 * ChainedScheduler (they share the optimizer's lr). */
int sched_kind_chainable(int kind);

#endif
