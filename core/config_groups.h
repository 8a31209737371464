/* config_groups — param_groups of a job spec (JOBSPEC.md, Top-level fields): each entry's
 * globs, lr and weight_decay; globs that match no tensor, and groups left with no tensor by
 * earlier groups, are warned about (for the models whose tensor names the spec tells). */
#ifndef ANNEALD_CONFIG_GROUPS_H
#define ANNEALD_CONFIG_GROUPS_H

#include <cjson/cJSON.h>

#include "core/config.h"

/* Reads the param_groups list `g` into s->groups and s->ngroups; s->model must be parsed. */
int cfg_groups_parse(const cJSON *g, job_spec *s, an_err *err);

#endif
