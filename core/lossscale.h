/* lossscale — DeepSpeed's fp16 loss scaler (DEEPSPEED.md, "Additions (second round)"):
 * dynamic (DynamicLossScaler at commit 18fd4c97: the `stable = iters since the last overflow
 * − 1` rule, doubling after loss_scale_window clean steps, halving after `hysteresis`
 * overflows) or fixed (`loss_scale` > 0: never changes). Pure state and arithmetic; the
 * training loop multiplies the loss by lossscale_scale(), checks the gradients with
 * lossscale_overflow(), skips the optimizer and scheduler step on overflow, and calls
 * lossscale_update() once per optimizer step. */
#ifndef ANNEALD_LOSSSCALE_H
#define ANNEALD_LOSSSCALE_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

typedef struct lossscale_cfg {
    double loss_scale;          /* > 0: fixed scale; 0: dynamic */
    int initial_scale_power;    /* 16 */
    int64_t loss_scale_window;  /* 1000 */
    int hysteresis;             /* 2 */
    int consecutive_hysteresis; /* 0 */
    double min_loss_scale;      /* 1 */
} lossscale_cfg;

typedef struct lossscale {
    lossscale_cfg cfg;
    /* The five numbers of DeepSpeed's state (all saved in a checkpoint). */
    double cur_scale;
    int64_t cur_iter;
    int64_t last_overflow_iter;
    int cur_hysteresis;
    int64_t skipped;            /* overflowed (skipped) steps so far */
} lossscale;

/* DeepSpeed's defaults. */
lossscale_cfg lossscale_defaults(void);

void lossscale_init(lossscale *ls, const lossscale_cfg *cfg);

static inline double lossscale_scale(const lossscale *ls)
{
    return ls->cur_scale;
}

/* 1 if any of the n gradients is inf or NaN. */
int lossscale_overflow(const float *grads, size_t n);

/* After a step whose gradients did (overflow = 1) or did not overflow. An overflow at the
 * minimum scale is DeepSpeed's "Current loss scale already at minimum": -ERANGE with err
 * filled, the state unchanged (the run stops). */
int lossscale_update(lossscale *ls, int overflow, an_err *err);

#endif
