/* statefile — the file `anneald train --save` and `anneald-rank --save` write, and their
 * `--resume` reads: a magic line, the job spec it belongs to on one line (normalised, without
 * the fields that do not change training), then the training state blob of train_save.
 *
 * The spec line lets a resume refuse a state that another spec made and say what differs; the
 * blob's own checks only see the model and optimizer layout. Pure: the callers read and write
 * the file. */
#ifndef ANNEALD_STATEFILE_H
#define ANNEALD_STATEFILE_H

#include <stddef.h>

#include "core/config.h"
#include "core/err.h"

/* What goes before the blob: the magic line and the spec line, each ending in '\n'.
 * malloc'd; NULL when out of memory. */
char *statefile_head(const job_spec *spec);

/* Finds the blob in a state file read whole (buf, len) made for `spec`: *blob and *blen point
 * into buf. A bare checkpoint blob (no head: a daemon's checkpoint export) is taken as it is.
 * 0, or -EINVAL with err saying what differs ("ds_config.optimizer.params.lr is 0.02 here,
 * 0.01 in the saved state") or that the spec line is damaged; -ENOMEM. */
int statefile_find_blob(const job_spec *spec, const char *buf, size_t len, const char **blob,
                        size_t *blen, an_err *err);

#endif
