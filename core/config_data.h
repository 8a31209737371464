/* config_data — the `data` section of a job spec, checked against the model and the loss.
 *
 * Part of the job-spec parser (config.h). Feature and output counts must agree with the
 * model; class-labelled data must agree with the loss (cross_entropy: one output per class;
 * bce: two classes, one output; mse needs real-valued targets). */
#ifndef ANNEALD_CONFIG_DATA_H
#define ANNEALD_CONFIG_DATA_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/config.h"
#include "core/err.h"

/* Parses `d` (path "data") into *out for model `m` and loss `loss` (enum loss_type). The
 * cJSON parts of *out are copies it owns, also on failure (freed with the rest of the spec). */
int cfg_data_parse(const cJSON *d, const model_spec *m, int loss, data_spec *out, an_err *err);

/* The data section with every default filled in (NULL on ENOMEM). */
cJSON *cfg_data_json(const data_spec *d);

/* Rows of the data when the spec tells, else -1 (an uploaded dataset). */
int64_t cfg_data_rows(const data_spec *d);

/* The builtin data sets: rows, feature columns and classes of `name`; 0 if unknown. */
int cfg_builtin_shape(const char *name, int64_t *rows, int *features, int *classes);

/* The column names of builtin data set `name` (a JSON array), NULL if unknown or out of
 * memory. */
cJSON *cfg_builtin_columns(const char *name);

/* "a, b, c" for messages: every column, or as many as fit and how many there are. */
void cfg_columns_text(const cJSON *cols, char *buf, size_t size);

/* Checks that data.target and data.features name columns of `cols` (the data set's column
 * names; `what` names the set in messages, e.g. "builtin iris"), and, without data.target,
 * that no feature is the label column (the last). Every bad name goes to
 * errs[] (up to max), their count to *n. 0 or -EINVAL. */
int cfg_data_check_columns(const data_spec *d, const char *what, const cJSON *cols, an_err *errs,
                           int max, int *n);

#endif
