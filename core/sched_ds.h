/* sched_ds — DeepSpeed's schedulers: WarmupLR, WarmupDecayLR, WarmupCosineLR, OneCycle,
 * LRRangeTest (DEEPSPEED.md §3), with DeepSpeed's formulas in its order of operations. */
#ifndef ANNEALD_SCHED_DS_H
#define ANNEALD_SCHED_DS_H

#include <cjson/cJSON.h>

#include "core/err.h"
#include "core/sched_node.h"

/* The sched_kind for a DeepSpeed type name (case-sensitive, as DeepSpeed looks it up), or 0. */
int ds_kind(const char *type);

/* Reads `params` (at JSON path `ppath`) into s (s->kind, ngroups and env already set) and
 * sets the values the first optimizer step uses. */
int ds_create(sched *s, const cJSON *params, const char *ppath, an_err *err, cJSON *warnings);

/* Sets lr (and momentum/beta2) from the step count: the constructor's values before the first
 * step, DeepSpeed's f(i) with i = last_batch_iteration after it. */
void ds_apply(sched *s);

#endif
