/* err — the one error type of anneald: what went wrong, and where in the input.
 *
 * Every fallible function in core/ takes an `an_err *` and returns 0 or a negative errno
 * (-EINVAL for bad input, -ENOMEM, …). On failure it fills the error once, at the place that
 * knows what was expected; callers pass it up unchanged. `field` is the JSON path of the
 * offending value ("ds_config.scheduler.params.warmup_num_steps", "model.hidden[1]"), or ""
 * when the error is not about one value. This is what the HTTP API puts in
 * {"error":{"code","message","field"}} and what `anneald check` prints. */
#ifndef ANNEALD_ERR_H
#define ANNEALD_ERR_H

#include <errno.h>

typedef struct an_err {
    char field[256];   /* JSON path of the offending value, or "" */
    char message[512]; /* one sentence: what was expected and what came */
} an_err;

/* Fills `e` (if not NULL) and returns -EINVAL, so that `return an_fail(e, path, …);` reads
 * naturally. `field` may be NULL. */
int an_fail(an_err *e, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like an_fail with a chosen negative errno (e.g. -ENOMEM, -EPROTO). */
int an_failc(an_err *e, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Clears `e` to "no error". */
void an_err_clear(an_err *e);

/* Writes "<prefix>.<key>" (or "<key>" when prefix is empty) into buf; for building JSON paths. */
const char *an_path(char *buf, unsigned long size, const char *prefix, const char *key);

/* Writes "<prefix>[<index>]" into buf. */
const char *an_path_index(char *buf, unsigned long size, const char *prefix, int index);

#endif
