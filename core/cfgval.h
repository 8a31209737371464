/* cfgval — reading typed, range-checked values out of JSON objects, with JSON-path errors.
 *
 * The job-spec parser (config.c, config_model.c, config_data.c) reads every value through
 * these helpers so that each wrong type or out-of-range value fails the same way: `field` is
 * the value's JSON path and the message says what was expected and what came. An optional key
 * that is absent takes its default; a key present with JSON null is a wrong type (a default is
 * given by leaving the key out). */
#ifndef ANNEALD_CFGVAL_H
#define ANNEALD_CFGVAL_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/err.h"

#define CFG_PATH 256 /* room for one JSON path */

/* Largest integer a JSON number (an IEEE double) holds exactly: 2^53. */
#define CFG_INT_MAX 9007199254740992LL

/* Interval ends for cfg_num: open ends exclude the bound itself. */
enum { CFG_CLOSED = 0, CFG_LO_OPEN = 1, CFG_HI_OPEN = 2 };

/* Writes a short description of `v` for messages: `"abc"`, `12.5`, `true`, `null`, `an array
 * of 3`, `an object` (strings are cut at 40 characters). Returns buf. */
const char *cfg_describe(const cJSON *v, char *buf, size_t size);

/* Checks that `obj` (at `path`) is an object whose keys are all in `allowed` (NULL-terminated)
 * and appear once. An unknown key fails naming it, with the closest allowed key as a
 * suggestion when one is near ("unknown key 'stpes' (did you mean 'steps'?)"). */
int cfg_check_keys(const cJSON *obj, const char *path, const char *const *allowed, an_err *err);

/* Checks that `v` at `path` is an object (what = "an object" in the message). */
int cfg_want_object(const cJSON *v, const char *path, an_err *err);

/* The first child of `obj` named exactly `key`, or NULL. */
const cJSON *cfg_get(const cJSON *obj, const char *key);

/* Fails "<path.key> is required" unless `key` is present. */
int cfg_require(const cJSON *obj, const char *path, const char *key, an_err *err);

/* An integer in [lo, hi] at obj.key; `def` when absent. Non-integral numbers, strings,
 * booleans and null fail. */
int cfg_int(const cJSON *obj, const char *path, const char *key, int64_t def, int64_t lo,
            int64_t hi, int64_t *out, an_err *err);

/* The same for a value already taken out of its container (`path` is its own path). */
int cfg_int_value(const cJSON *v, const char *path, int64_t lo, int64_t hi, int64_t *out,
                  an_err *err);

/* A finite number between lo and hi (ends open per `ends`, a CFG_* mask); `def` when absent. */
int cfg_num(const cJSON *obj, const char *path, const char *key, double def, double lo,
            double hi, int ends, double *out, an_err *err);

/* The same for a value already taken out of its container. */
int cfg_num_value(const cJSON *v, const char *path, double lo, double hi, int ends,
                  double *out, an_err *err);

/* 1 for a number a float32 holds: finite and at most FLT_MAX in magnitude. Tensors and data
 * are float32: a larger double would become Inf when the job starts. */
int cfg_is_float32(const cJSON *v);

/* Fails "<path> must be a finite number …" (within float32 range) unless cfg_is_float32. */
int cfg_float_value(const cJSON *v, const char *path, an_err *err);

/* true / false at obj.key; `def` when absent. */
int cfg_bool(const cJSON *obj, const char *path, const char *key, int def, int *out,
             an_err *err);

/* A string of 1..size-1 bytes without control characters copied into buf; `def` when absent
 * (def may be NULL to make the key required). */
int cfg_str(const cJSON *obj, const char *path, const char *key, const char *def, char *buf,
            size_t size, an_err *err);

/* One of `names` (NULL-terminated, matched exactly) at obj.key; *out is its index. `def` is
 * the index taken when absent, or -1 to make the key required. */
int cfg_enum(const cJSON *obj, const char *path, const char *key, const char *const *names,
             int def, int *out, an_err *err);

/* Edit distance between a and b, counting a swap of two neighbours as one edit. */
int cfg_edit_distance(const char *a, const char *b);

/* Appends a formatted warning to the spec's warnings list: 0, or -ENOMEM in err. */
int cfg_warn(cJSON *warnings, an_err *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
