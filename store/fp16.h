/* store/fp16.h — fp16 jobs' loss-scale events (store/fp16.c), beside the metric rows: the
 * appends and checkpoint commits that carry them in the same transaction, and the range
 * query GET /v1/jobs/{id}/metrics answers "fp16" from. */
#ifndef ANNEALD_STORE_FP16_H
#define ANNEALD_STORE_FP16_H

#include "store/store.h"

/* A fp16 job's loss-scale event (store/fp16.c): stored for a step whose scale differs from
 * the step before's, that overflowed, or that is the job's first. The scale in force at a
 * step is the last event's at or before it. */
typedef struct store_fp16_event {
    int64_t step;
    double loss_scale;             /* the scale this step used, finite and > 0 */
    int skipped;                   /* 1: the step overflowed and did not update the weights */
} store_fp16_event;

/* store_metrics_append_with_val that also stores `nev` fp16 events (`ev` may be NULL when
 * nev is 0) in the same ONE transaction. Bad events (-EINVAL, naming the field) store
 * nothing. */
int store_metrics_append_fp16(store_t *s, const char *id, const store_metric *rows, size_t n,
                              const store_val_metric *val, size_t nval,
                              const store_fp16_event *ev, size_t nev, const store_progress *p,
                              an_err *err);

/* The job's fp16 events with from < step <= to (to < 0: no bound), led by the one in force
 * at `from` (the last at or before it), in step order; *ev malloc'd (free()), *n 0 for a
 * job without any. -ENOENT unknown job. store_job_rewind drops the events after its step,
 * store_job_delete all of them. */
int store_fp16_events(store_t *s, const char *id, int64_t from, int64_t to,
                      store_fp16_event **ev, size_t *n, an_err *err);

/* store_checkpoint_commit_kept that also stores `nev` fp16 events (as
 * store_metrics_append_fp16) in the same transaction. */
int store_checkpoint_commit_fp16(store_t *s, const char *id, const store_metric *rows,
                                 size_t n, const store_val_metric *val, size_t nval,
                                 const store_fp16_event *ev, size_t nev, int64_t step,
                                 double loss, const void *blob, size_t len,
                                 const store_keep *keep, const store_progress *p, an_err *err);

#endif
