/* config_model — the `model` section of a job spec: architecture, size limits, explicit init.
 *
 * Part of the job-spec parser (config.h); the model is read before `loss` and `data`, which
 * are checked against it. */
#ifndef ANNEALD_CONFIG_MODEL_H
#define ANNEALD_CONFIG_MODEL_H

#include <cjson/cJSON.h>

#include "core/config.h"
#include "core/err.h"

/* Parses `m` (path "model") into *out. out->init is a copy owned by *out, also on failure
 * (the caller frees it with the rest of the spec). */
int cfg_model_parse(const cJSON *m, model_spec *out, an_err *err);

/* The model with every default filled in, as the normalized spec shows it (NULL on ENOMEM). */
cJSON *cfg_model_json(const model_spec *m);

/* 1 when the weights of a model of spec `from` load into one of spec `to` (the type and every
 * dimension the checkpoint's model hash covers; a size still unknown, 0, matches any). Else 0,
 * with the first difference in `what` ("model.hidden is [16] there and [8] here"). */
int cfg_model_same_shape(const model_spec *from, const model_spec *to, char *what, size_t size);

/* Activation names indexed by enum act_type (index 0 unused). */
extern const char *const cfg_act_names[];

#endif
