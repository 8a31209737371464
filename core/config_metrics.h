/* config_metrics — the job spec's "metrics" object: bounds on a job's stored history.
 *
 * {"metrics": {"max_bytes": B}}: the job pauses with a clear error before its stored metric
 * rows pass B bytes, each row counting METRICS_ROW_BYTES(groups) (its columns unpacked: step,
 * loss, grad_norm, time, wall and one lr per parameter group).
 *
 * {"metrics": {"full_resolution_steps": N}}: every step's row is kept for the newest N steps
 * only; older rows are dropped in whole blocks and only the summary pyramid stays for them
 * (store_metrics_retain in store/store.h, docs/STORAGE.md). */
#ifndef ANNEALD_CONFIG_METRICS_H
#define ANNEALD_CONFIG_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/err.h"

struct job_spec;

#define METRICS_ROW_BYTES(groups) (40 + 8 * (int64_t)(groups))
#define METRICS_MAX_BYTES_MAX ((int64_t)1 << 50)
#define METRICS_FULL_RES_MAX ((int64_t)1 << 50)

/* Reads metrics.max_bytes (absent: 0 = no cap) and metrics.full_resolution_steps (absent: 0 =
 * keep every row) of spec `j`. Errors name the key ("metrics.max_bytes", ...). */
int cfg_metrics_parse(const cJSON *j, int64_t *max_bytes, int64_t *full_res, an_err *err);

/* {"max_bytes": B, "full_resolution_steps": N} (each only when set) for the normalized spec,
 * or NULL when neither is. */
cJSON *cfg_metrics_json(int64_t max_bytes, int64_t full_res);

/* Metric rows a job with `groups` lr groups may store under max_bytes (0 = no cap). */
int64_t cfg_metrics_row_limit(int64_t max_bytes, int groups);

/* The header line (with its newline) of a job's per-step metrics table as the offline
 * commands write it: step, loss, one lr per parameter group, grad_norm, time when `with_time`,
 * val_loss and val_acc for a job that validates, loss_scale and skipped for fp16. It is that
 * of the API's CSV, and depends on the spec only, so a run with nothing left to train still
 * writes a well-formed table. Returns the length, as snprintf. */
int job_spec_metrics_header(const struct job_spec *s, int with_time, char *buf, size_t size);

#endif
