/* sched_param — reading scheduler params out of JSON with DeepSpeed's rules.
 *
 * Every reader takes the params object and its JSON path, fills a default when the key is
 * absent, and fails naming "<path>.<key>" (or "<path>.<key>[i]") with what was expected and
 * what came. "auto" is refused here with a message saying which number to give; the few keys
 * where "auto" can be worked out are handled by their scheduler before these readers run. */
#ifndef ANNEALD_SCHED_PARAM_H
#define ANNEALD_SCHED_PARAM_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/err.h"

/* Fails on the first key of `params` not in the NULL-terminated `allowed` list. */
int sp_check_keys(const cJSON *params, const char *path, const char *const *allowed,
                  const char *type, an_err *err);

/* 1 if params[key] is the string "auto" (any case), else 0. */
int sp_is_auto(const cJSON *params, const char *key);

/* A JSON number (bools are not numbers here). Absent: `def`, or an error when `required`. */
int sp_num(const cJSON *params, const char *path, const char *key, double def, int required,
           double *out, an_err *err);

/* A number with an integral value, or true/false (as 1/0, as Python does), >= `min`.
 * DeepSpeed also refuses 100.0 where it wants an int; cJSON keeps no trace of how a number
 * was written, so here 100.0 reads as 100 and only fractional values are refused. */
int sp_int(const cJSON *params, const char *path, const char *key, int64_t def, int required,
           int64_t min, int64_t *out, an_err *err);

/* A JSON boolean. */
int sp_bool(const cJSON *params, const char *path, const char *key, int def, int *out,
            an_err *err);

/* A string; *out points into the JSON (or at `def`). */
int sp_str(const cJSON *params, const char *path, const char *key, const char *def,
           const char **out, an_err *err);

/* A per-group value: one number broadcast to every group, or a list with exactly `ngroups`
 * numbers. Absent: out[g] = def[g] (def may be NULL when required). */
int sp_groups(const cJSON *params, const char *path, const char *key, const double *def,
              int required, int ngroups, double *out, an_err *err);

/* Fails unless every v[g] >= min, naming "<path>.<key>" (or its [g] when given as a list). */
int sp_groups_min(const cJSON *params, const char *path, const char *key, const double *v,
                  int ngroups, double min, an_err *err);

/* Describes a JSON value's type for messages ("a string", "true", "a list", …). */
const char *sp_kind(const cJSON *v);

#endif
