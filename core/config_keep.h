/* config_keep — "checkpoint": {"keep_best": {"metric", "mode", "k"}} of a job spec: the k
 * checkpoints with the best value of a metric are kept besides the keep_last newest ones.
 *
 * A checkpoint's value: "loss" is the training loss of its step; "val_loss" and "val_acc"
 * are those of the job's latest validation at or before its step (a checkpoint before the
 * first validation has none and is never among the best). */
#ifndef ANNEALD_CONFIG_KEEP_H
#define ANNEALD_CONFIG_KEEP_H

#include <cjson/cJSON.h>

#include "core/err.h"

enum keep_metric { KEEP_LOSS = 0, KEEP_VAL_LOSS = 1, KEEP_VAL_ACC = 2 };

typedef struct cfg_keep_best {
    int k;                     /* 0 = no keep_best */
    int metric;                /* enum keep_metric */
    int maximize;              /* mode "max" */
} cfg_keep_best;

/* Reads checkpoint.keep_best of the checkpoint object `c` (may be NULL: none). `has_val`:
 * the job validates (val_loss/val_acc need it). Errors name "checkpoint.keep_best.…". */
int cfg_keep_best_parse(const cJSON *c, int has_val, cfg_keep_best *out, an_err *err);

/* Adds "keep_best" to the normalized checkpoint object `c` when k > 0. 0 or -ENOMEM. */
int cfg_keep_best_json(const cfg_keep_best *kb, cJSON *c);

/* The keep_best of a stored (normalized) spec's JSON text; k = 0 when it has none or does not
 * parse. */
void cfg_keep_best_of_spec(const char *spec_json, cfg_keep_best *out);

#endif
