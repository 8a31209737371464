/* sched_torch — PyTorch's schedulers (torch 1.13 semantics): StepLR, MultiStepLR,
 * ExponentialLR, CosineAnnealingLR, CosineAnnealingWarmRestarts, CyclicLR, OneCycleLR,
 * LinearLR, ConstantLR, PolynomialLR, ReduceLROnPlateau.
 *
 * The chainable ones update the optimizer's current lr recursively, as torch's step() does,
 * so they take the lr (and momentum) arrays they act on: a scheduler's own arrays when it runs
 * alone, the composite's shared arrays inside SequentialLR or ChainedScheduler. */
#ifndef ANNEALD_SCHED_TORCH_H
#define ANNEALD_SCHED_TORCH_H

#include <cjson/cJSON.h>

#include "core/err.h"
#include "core/sched_node.h"

/* The sched_kind for a PyTorch type name (case-sensitive), or 0. */
int torch_kind(const char *type);

/* Reads `params` (at JSON path `ppath`) into s (kind, ngroups, env already set). */
int torch_create(sched *s, const cJSON *params, const char *ppath, an_err *err,
                 cJSON *warnings);

/* The constructor: its writes to the optimizer, then torch's initial step (last_epoch 0). */
void torch_init(sched *s, double *lr, double *mom);

/* One scheduler.step(); `metric` feeds ReduceLROnPlateau (NAN: no measurement). */
void torch_step(sched *s, double *lr, double *mom, double metric);

/* scheduler.step(0) as SequentialLR calls it at a milestone: the closed form at epoch 0. */
void torch_step_zero(sched *s, double *lr, double *mom);

#endif
