/* config_actckpt — ds_config.activation_checkpointing of a job spec (JOBSPEC.md, "Activation
 * checkpointing"): honoured for gpt and mlp models, number_checkpoints checked against the
 * model's layers, DeepSpeed's GPU-only keys accepted with a warning. */
#ifndef ANNEALD_CONFIG_ACTCKPT_H
#define ANNEALD_CONFIG_ACTCKPT_H

#include <cjson/cJSON.h>

#include "core/config.h"
#include "core/err.h"

/* Layers a model has for checkpointing: gpt n_layer, mlp hidden layers + 1, linear 1; 0 for
 * type 0 (a model with errors: no layer count is checked against it). */
int cfg_actckpt_layers(const model_spec *m);

/* Reads ds_config.activation_checkpointing of `ds` (may be NULL or lack it) into
 * s->act_ckpt: the checkpoints K (default one per layer), 0 without the block or for a linear
 * model (warned: one layer, nothing to recompute). s->model must be parsed, or have type 0. Errors name
 * "ds_config.activation_checkpointing[.number_checkpoints]". */
int cfg_actckpt_parse(const cJSON *ds, job_spec *s, an_err *err);

#endif
