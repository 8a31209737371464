/* metrics_row — one step's row of the per-step metrics table the offline commands write
 * (`anneald train --metrics-csv`, `anneald-rank --metrics-csv`), under the header of
 * job_spec_metrics_header (core/config_metrics.h). */
#ifndef ANNEALD_METRICS_ROW_H
#define ANNEALD_METRICS_ROW_H

#include <stddef.h>

#include "core/config.h"
#include "core/sched.h"
#include "core/train.h"

/* Bytes that hold any row: each number takes at most 24 characters and its comma. */
#define METRICS_ROW_MAX (32 + 25 * (SCHED_MAX_GROUPS + 8))

/* The row of report r, with its newline: every number in the fewest digits that read back to
 * the same double (as the API writes them), so two runs' files compare as text. `time`: the
 * time column's value, or NULL for a table without one. The validation columns (a job that
 * validates) are empty where the step did not validate; an fp16 job's loss scale and skipped
 * flag close the row. Returns the length, as snprintf. */
int metrics_row(const job_spec *s, const train_report *r, const double *time, char *buf,
                size_t size);

#endif
