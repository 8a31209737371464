/* store — anneald's SQLite store: jobs, per-step metrics, checkpoints and data sets.
 *
 * DESIGN
 * One database file in WAL mode, shared by every thread of the daemon through one connection
 * per thread: the loop thread opens one store_t, each worker opens its own. A store_t is never
 * used by two threads at once (connections are opened SQLITE_OPEN_NOMUTEX). Every write is one
 * `BEGIN IMMEDIATE` transaction, so a writer takes the write lock up front and waits for it
 * (busy_timeout, 5 s) instead of failing half way with SQLITE_BUSY; readers never block
 * writers. synchronous=NORMAL: a crash never corrupts the file or loses a commit, a power cut
 * may lose the last commits (a few steps of a job, which resume from the checkpoint before).
 *
 * Things that must land together land in one transaction:
 *   - a checkpoint's blob, the job row's last_checkpoint_step/progress, and the deletion of
 *     checkpoints beyond keep_last (store_checkpoint_commit);
 *   - a batch of metric rows and (optionally) the job's progress (store_metrics_append);
 *   - rewinding a job to a checkpoint: deleting the history after it and re-queueing it
 *     (store_job_rewind);
 *   - deleting a job and everything it owns (store_job_delete).
 *
 * Schema changes go through PRAGMA user_version (store.c, `migrations[]`); a database made by a
 * newer build is refused rather than misread.
 *
 * Errors: every fallible function returns 0 or a negative errno and, on failure, fills `err`
 * (may be NULL) with a message naming what was expected and what came; `err->field` is "".
 *   -ENOENT     unknown job / checkpoint / data set
 *   -EINVAL     bad argument (unknown state, malformed JSON text, bad range)
 *   -EEXIST     a data set with that name exists
 *   STORE_ESTATE  the job is not in a state that allows this (e.g. deleting a running job)
 *   STORE_EINUSE  the data set is referenced by a job that has not finished
 *   -EBUSY      the database stayed locked by another connection past busy_timeout
 *   -ENOSPC     disk or database full (SQLITE_FULL); the transaction was rolled back
 *   -EROFS      read-only database
 *   -ENOMEM     out of memory
 *   -E2BIG      a value larger than SQLite accepts
 *   -EPROTO     the file was written by a newer schema, or is not a database / is corrupt
 *   -ESTALE     (store_open) the daemon's store file was deleted or replaced since it took
 *               the store's lock (store/lock.h)
 *   -EIO        any other SQLite failure
 * A failed write changes nothing. Nothing here aborts or exits.
 *
 * Times are ISO-8601 UTC with seconds and a Z ("2026-11-25T15:00:00Z"). */
#ifndef ANNEALD_STORE_H
#define ANNEALD_STORE_H

/* The largest data set the store keeps, in bytes (an upload's body, a stored table). */
#define STORE_DATASET_MAX_BYTES ((int64_t)256 << 20)

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>


#include "core/err.h"

struct sqlite3;
struct sqlite3_stmt;

/* Private error codes, outside the errno range (both answer HTTP 409). */
#define STORE_ESTATE (-4201) /* the job's state does not allow the operation */
#define STORE_EINUSE (-4202) /* a data set is referenced by an unfinished job */

/* Default size of one checkpoint chunk row: large enough that a multi-GB state is a few
 * hundred rows, small enough to stay far below SQLite's 1 GB value limit. */
#define STORE_CHUNK_SIZE ((size_t)16 << 20)

#define STORE_ID_LEN 24          /* room for "j_000017" and ids past a million */
#define STORE_MAX_LR 64          /* learning-rate groups per metric row / progress */

enum { STORE_NSTMT = 32 };       /* size of the prepared-statement cache */

/* One connection. Caller-allocated; store_open fills it, store_close releases it. */
typedef struct store_t {
    struct sqlite3 *db;                         /* the connection (one thread only) */
    struct sqlite3_stmt *stmt[STORE_NSTMT];     /* prepared statements, lazily, by store.c */
    size_t chunk_size;                          /* bytes per checkpoint chunk; tests lower it */
    void *zc, *zd;                              /* zstd contexts for metric blocks (codec.c) */
    unsigned char *zbuf;                        /* their scratch buffer, zcap bytes */
    size_t zcap;
    int plain_blocks;                           /* 1: write metric blocks uncompressed (tests) */
    int scan_queries;                           /* 1: downsample from the rows and block
                                                 * summaries, not the pyramid (benchmarks) */
    int no_pyramid;                             /* 1: appends skip the pyramid, leaving it
                                                 * stale (only the benchmark of its cost) */
    void *pyr_cache;                            /* open pyramid buckets of the last appends
                                                 * (pyramid.c) */
    int big_commit;                             /* 1 while a job's checkpoint commits (walcopy.h) */
    int wal_copied;                             /* frames of the WAL copied, at the last
                                                 * store_wal_copy_now */
} store_t;

/* ---- connection ---------------------------------------------------------------------- */

/* Opens (creating if missing) the database at `path` for the calling thread: WAL,
 * synchronous=NORMAL, foreign_keys=ON, busy_timeout 5000 ms, then migrates the schema to the
 * current version. Safe to call from several threads at once on the same file. On failure
 * `s` holds no connection (store_close on it is a no-op). */
int store_open(store_t *s, const char *path, an_err *err);

/* Makes every commit of this connection durable before it returns (synchronous=FULL: the
 * WAL is synced at each commit), for the connections whose writes a client is told are done
 * (a submitted job, a state change, a delete, an upload). With NORMAL, which the workers' keep
 * for their metrics and checkpoints, a power loss may take back the last commits: a job then
 * resumes from an earlier checkpoint, but an acknowledged submit or cancel would be lost. */
int store_durable(store_t *s, int on, an_err *err); /* on 0: back to NORMAL */

/* Finalizes statements and closes the connection. Safe on a zeroed or failed store_t. */
void store_close(store_t *s);

/* The schema version this build writes (PRAGMA user_version after store_open). */
int store_schema_version(void);

/* All the housekeeping at once: PRAGMA wal_checkpoint(TRUNCATE) and an incremental vacuum
 * that returns every freed page to the file system. For tools and benchmarks: the daemon
 * does none at shutdown (a stop must be quick) and runs store_housekeep below instead,
 * with the WAL kept under journal_size_limit (docs/STORAGE.md). */
int store_maintain(store_t *s, an_err *err);

/* One slice of housekeeping, cheap enough to run every second beside training: gives at most
 * `max_pages` free pages back to the file system (incremental vacuum, its own short write
 * transaction; skipped when there are none or the write lock is busy) and runs a PASSIVE WAL
 * checkpoint (never waits for readers or writers). *freed (may be NULL) receives the pages
 * given back, so a caller loops while it equals max_pages. */
int store_housekeep(store_t *s, int max_pages, int *freed, an_err *err);

/* What the store occupies, for /healthz and /metrics. */
typedef struct store_usage {
    int64_t bytes;                 /* the database file: page_count * page_size */
    int64_t free_pages;            /* pages on the free list (given back by housekeeping) */
    int64_t page_size;
    int64_t wal_bytes;             /* the -wal file; 0 when there is none */
} store_usage;
int store_usage_get(store_t *s, store_usage *u, an_err *err);

/* Database size in bytes (page_count * page_size), for /metrics. */
int store_size(store_t *s, int64_t *bytes, an_err *err);

/* Name of a return code of this module ("ENOENT", "STORE_EINUSE", …), for logs. */
const char *store_strerror(int rc);

/* ---- jobs ---------------------------------------------------------------------------- */

typedef enum store_job_state {     /* values are stored: append only */
    STORE_QUEUED = 0,
    STORE_RUNNING = 1,
    STORE_PAUSED = 2,
    STORE_COMPLETED = 3,
    STORE_FAILED = 4,
    STORE_CANCELLED = 5,
    STORE_STOPPED = 6,             /* ended by its sweep's early stopping; resumable */
} store_job_state;
#define STORE_NSTATES 7
#define STORE_MASK(st) (1u << (st))
#define STORE_MASK_ALL 0x7fu
#define STORE_MASK_FINISHED                                                               \
    (STORE_MASK(STORE_COMPLETED) | STORE_MASK(STORE_FAILED) | STORE_MASK(STORE_CANCELLED) | \
     STORE_MASK(STORE_STOPPED))

/* "queued", "running", … ; NULL for an out-of-range value. */
const char *store_state_name(store_job_state st);
/* Parses a state name; -EINVAL (and err names the text) for anything else. */
int store_state_parse(const char *name, store_job_state *st, an_err *err);

/* What a new job is made of. Strings are copied; JSON texts are validated. */
typedef struct store_job_new {
    const char *name;              /* display name (may be NULL -> "") */
    const char *spec_json;         /* normalised spec, a JSON object (required) */
    const char *warnings_json;     /* JSON array of strings, or NULL for [] */
    int64_t total_steps;           /* optimizer steps the job will run */
    const char *dataset_ref;       /* data set id or name the spec uses, or NULL */
    const char *resume_from_json;  /* spec's resume_from object ({"job","step"}), or NULL */
    const char *sweep_id;          /* the sweep this job is a trial of, or NULL */
    int trial;                     /* its trial index in that sweep */
} store_job_new;

/* A job row. Strings are malloc'd; release with store_job_free. */
typedef struct store_job {
    char id[STORE_ID_LEN];         /* "j_000017" */
    char *name;
    store_job_state state;
    char *spec_json;               /* normalised spec (JSON object text) */
    char *warnings_json;           /* JSON array text */
    char created_at[24];           /* ISO-8601 UTC; "" = null */
    char started_at[24];           /* first time the job went running; "" = null */
    char finished_at[24];          /* when it became completed/failed/cancelled; "" = null */
    int64_t step;                  /* optimizer steps done */
    int64_t total_steps;
    int64_t epoch;
    double loss;                   /* latest step's loss; NAN = none yet */
    int n_lr;                      /* learning-rate groups in lr[] */
    double lr[STORE_MAX_LR];       /* the lr each group used in the latest step */
    double samples_per_sec;        /* NAN = none yet */
    int64_t last_checkpoint_step;  /* -1 = no checkpoint */
    char *error;                   /* failure message, or NULL */
    char *dataset_ref;             /* data set id or name, or NULL */
    char *resume_from_json;        /* resume_from object text, or NULL */
    int64_t val_step;              /* step of the latest validation row; <= 0 = none */
    double val_loss;               /* that row's held-out loss; NAN = none */
    double val_acc;                /* its accuracy (classification only); NAN = none */
    char sweep[STORE_ID_LEN];      /* the sweep it is a trial of; "" = none */
    int trial;                     /* its trial index there; -1 = none */
} store_job;

/* Progress of a running job, written to its row. */
typedef struct store_progress {
    int64_t step;
    int64_t epoch;
    double loss;                   /* NAN stores null */
    int n_lr;                      /* 0..STORE_MAX_LR */
    double lr[STORE_MAX_LR];
    double samples_per_sec;        /* NAN stores null */
} store_progress;

/* Creates a queued job with the next id from a monotonic sequence (ids are never reused, even
 * after deletes). `id_out` (may be NULL) receives the id. -EINVAL for a spec that is not a
 * JSON object, warnings that are not an array, negative total_steps. */
int store_job_create(store_t *s, const store_job_new *in, char id_out[STORE_ID_LEN], an_err *err);

/* Reads one job into *out (which the caller later passes to store_job_free). -ENOENT for an
 * unknown id. */
int store_job_get(store_t *s, const char *id, store_job *out, an_err *err);

/* Frees the strings of a job filled by this module (not `j` itself). Safe on a zeroed job. */
void store_job_free(store_job *j);

/* Lists jobs whose state is in `state_mask` (STORE_MASK_ALL for all), newest first (by id),
 * skipping `offset`, at most `limit` (limit < 0 = no limit). *jobs is a malloc'd array of *n
 * jobs; free with store_job_list_free. *total (may be NULL) is the number of jobs matching the
 * mask, ignoring limit/offset. */
int store_job_list(store_t *s, unsigned state_mask, int64_t limit, int64_t offset,
                   store_job **jobs, size_t *n, int64_t *total, an_err *err);
void store_job_list_free(store_job *jobs, size_t n);

/* store_job_list narrowed to jobs whose spec's tags hold `tag` exactly (NULL or "" = any) and
 * whose name or notes contain `q` as plain text (NULL or "" = any; LIKE's case rules: ASCII
 * letters match either case). Same order, paging and *total (of the filtered jobs). */
int store_job_list_filtered(store_t *s, unsigned state_mask, const char *tag, const char *q,
                            int64_t limit, int64_t offset, store_job **jobs, size_t *n,
                            int64_t *total, an_err *err);

/* A job's scheduling keys as its stored spec has them (kept by triggers); a key the spec does
 * not have stays at its default here: priority 0, preemptible 1, stall_timeout_s and
 * max_restarts -1 (= the caller's default). -ENOENT for an unknown id. */
typedef struct store_job_sched {
    int priority;
    int preemptible;
    double stall_timeout_s;
    int max_restarts;
} store_job_sched;
int store_job_sched_get(store_t *s, const char *id, store_job_sched *out, an_err *err);

/* Changes a job's stored spec in one write transaction: edit(spec, &out, arg) gets the stored
 * spec's JSON text and makes the new one (malloc'd into *out; 0, or a negative errno), then
 * the new spec is stored and the job's name set to its "name" (the PATCH of a job's labels).
 * -ENOENT for an unknown id. */
int store_job_edit_spec(store_t *s, const char *id,
                        int (*edit)(const char *spec, char **out, void *arg),
                        void *arg, an_err *err);

/* Counts jobs in each state: counts[st] for st < STORE_NSTATES. */
int store_job_counts(store_t *s, int64_t counts[STORE_NSTATES], an_err *err);

/* Sets a job's state, but only if its current state is in `from_mask` (STORE_MASK_ALL = any);
 * otherwise STORE_ESTATE and nothing changes (so "pause only if running or queued" is race
 * free). Timestamps: entering running sets started_at if it was null; entering completed,
 * failed or cancelled sets finished_at; entering queued/running/paused clears finished_at.
 * `error` (may be NULL) is stored as the job's error; NULL clears it. *prev (may be NULL;
 * also set with STORE_ESTATE) receives the state before. */
int store_job_set_state(store_t *s, const char *id, unsigned from_mask, store_job_state to,
                        const char *error, store_job_state *prev, an_err *err);

/* Writes progress (step, epoch, loss, lr, samples_per_sec) to the job row. */
int store_job_progress(store_t *s, const char *id, const store_progress *p, an_err *err);

/* Deletes a finished job (completed/failed/cancelled) with its metrics, validation rows and
 * checkpoints, in one transaction. STORE_ESTATE for a queued/running/paused job, -ENOENT for
 * an unknown id. */
int store_job_delete(store_t *s, const char *id, an_err *err);
/* The same, but a trial of a sweep is STORE_ESTATE too (it goes with its sweep: alone, the
 * sweep would take its trial as not run and run it again): a user's delete. */
int store_job_delete_alone(store_t *s, const char *id, an_err *err);

/* Ids of the jobs whose state is in `state_mask`, oldest first: a malloc'd array of *n ids
 * (free with free()). */
int store_job_ids(store_t *s, unsigned state_mask, char (**ids)[STORE_ID_LEN], size_t *n,
                  an_err *err);

/* Restart recovery: every running job becomes queued, in one transaction. *n (may be NULL)
 * receives how many. */
int store_job_requeue_running(store_t *s, size_t *n, an_err *err);

/* Rewinds a job to checkpoint step `step` before it resumes, in one transaction: deletes its
 * metric and validation rows with step > `step` and checkpoints with step > `step` (the
 * abandoned future), sets the row's step to `step` and its state to `to` (queued or running;
 * finished_at and error cleared), so the stored history is exactly what the resumed run
 * produces. `step` 0 means "from scratch" (everything goes). -ENOENT unknown job, -EINVAL for
 * another target state or a negative step. */
int store_job_rewind(store_t *s, const char *id, int64_t step, store_job_state to, an_err *err);

/* ---- metrics ------------------------------------------------------------------------- */

/* One optimizer step. */
/* A fast job writes one per step and its writer reads them on another core: the fields of a
 * row with one lr group fill its first 56 bytes and the size is a multiple of 64, so in an
 * array on a 64-byte boundary (the worker's) such a row costs one cache line. */
typedef struct store_metric {
    int64_t step;                  /* from 1 */
    double loss;                   /* NAN stores null (reads back NAN) */
    double grad_norm;              /* NAN = not measured */
    double time;                   /* seconds since the job (first) started */
    double wall;                   /* wall clock, seconds since the Unix epoch */
    int n_lr;                      /* 0..STORE_MAX_LR */
    double lr[STORE_MAX_LR];       /* the lr each group used in this step */
    char pad_[16];                 /* to 576 bytes */
} store_metric;

/* A validation result after step `step`. */
typedef struct store_val_metric {
    int64_t step;
    double val_loss;
    double val_acc;                /* NAN for regression */
} store_val_metric;

/* Appends `n` rows in ONE transaction (a row for an existing step replaces it), and, if `p`
 * is not NULL, writes the job's progress in the same transaction. -ENOENT unknown job.
 * Rows may come in any order; with two rows for one step the later one wins. Cost: a batch
 * is stored as one packed block (a few per 4096 rows), so the per-call cost of a transaction
 * dominates small batches: append hundreds of rows at a time, not one. Writing steps that
 * are already stored rewrites the blocks holding them (correct, but slower). */
int store_metrics_append(store_t *s, const char *id, const store_metric *rows, size_t n,
                         const store_progress *p, an_err *err);

/* store_metrics_append that also stores `nval` validation rows (a row for an existing step
 * replaces it) in the same ONE transaction, so a crash never keeps one without the other.
 * `val` may be NULL when nval is 0. */
int store_metrics_append_with_val(store_t *s, const char *id, const store_metric *rows,
                                  size_t n, const store_val_metric *val, size_t nval,
                                  const store_progress *p, an_err *err);

/* Appends validation rows in one transaction. */
int store_val_append(store_t *s, const char *id, const store_val_metric *rows, size_t n,
                     an_err *err);

/* Columnar metrics. Arrays are malloc'd, n entries each; lr is group-major:
 * lr[g * n + i] is group g's lr at point i. Free with store_series_free. */
typedef struct store_series {
    size_t n;
    int n_lr;
    int64_t *step;
    double *loss;                  /* NAN where null */
    double *lr;                    /* n_lr * n */
    double *grad_norm;
    double *time;
    double *wall;
    int64_t full_from;             /* > 0: rows before it were dropped (store/retain.h) */
} store_series;
void store_series_free(store_series *m);

/* Rows with from <= step <= to (to < 0 = no upper bound), in step order.
 *
 * max_points == 0, or at most max_points rows in range: every row.
 * Otherwise downsampling, in one pass over the rows: the step span [first, last] of the rows
 * in range is cut into B = max_points / 4 buckets of equal width W = ceil((last-first+1)/B)
 * steps (bucket k holds steps first+k*W … first+(k+1)*W-1). From each non-empty bucket four
 * rows are emitted, each once, in step order: its first row, its last row, the row with the
 * smallest loss and the row with the largest loss (a NaN/null loss counts as larger than any
 * number, so a divergence stays visible; ties go to the earlier step). So the result has at
 * most max_points rows, starts at the range's first row and ends at its last (a warm-up's
 * first lr is always there), includes the global minimum and maximum loss, and no spike
 * vanishes. With max_points 2 or 3 there is one bucket and the first 2 or 3 of those four.
 * max_points == 1 is treated as 2. -ENOENT unknown job; an empty range gives n = 0.
 *
 * Long ranges are answered from the summary pyramid instead, with the same four points per
 * bucket but aligned buckets: those of the finest level 2^k (k >= 11) that cuts the range
 * into at most B of them, i.e. between about B/2 and B buckets (the two at the range's ends
 * cover only its part of them). That happens when even buckets of 1024 steps would be more
 * than B; the cost then follows max_points, not the range's length. */
int store_metrics_query(store_t *s, const char *id, int64_t from, int64_t to,
                        size_t max_points, store_series *out, an_err *err);

/* Validation rows of a job with from <= step <= to (to < 0 = no bound); *rows malloc'd. */
int store_val_query(store_t *s, const char *id, int64_t from, int64_t to,
                    store_val_metric **rows, size_t *n, an_err *err);

/* The job's newest validation row at or before step `at` into *row; -ENOENT when there is
 * none (or no such job). One seek in the (job, step) key. */
int store_val_last(store_t *s, const char *id, int64_t at, store_val_metric *row, an_err *err);

/* Number of metric rows of a job. */
int store_metrics_count(store_t *s, const char *id, int64_t *count, an_err *err);

/* Sink for streamed output: returns 0, or a negative errno that stops the stream and is
 * returned by the producer. */
typedef int (*store_write_fn)(void *ctx, const char *buf, size_t len);

/* CSV of the rows with from <= step <= to (to < 0 = no bound): header
 * "step,loss,lr0,lr1,…,grad_norm,time" (one lr column per group), then one line per row;
 * a job that has any validation row gets two more columns, ",val_loss,val_acc", filled on the
 * rows of the steps a validation ran after and empty on the others; a job that has any fp16
 * event (store/fp16.h) two more after those, ",loss_scale,skipped": the scale in force at the
 * row's step (its last event at or before it; empty if none) and 1 when the step overflowed,
 * else 0; a job whose oldest rows were dropped a last one, ",resolution";
 * numbers print in the shortest form that reads back to the same double, NaN as an empty
 * cell. Written in pieces of up to 64 KiB through `fn`. */
int store_metrics_csv(store_t *s, const char *id, int64_t from, int64_t to,
                      store_write_fn fn, void *ctx, an_err *err);

/* The same CSV into one malloc'd, NUL-terminated buffer (*len excludes the NUL). */
int store_metrics_csv_buf(store_t *s, const char *id, int64_t from, int64_t to,
                          char **csv, size_t *len, an_err *err);

/* A read position in a job's metric rows, for answers made in pieces (each piece its own
 * short read, so a long export never holds a snapshot of the database open). The range's
 * ends are fixed when it opens: rows appended later are not part of it. */
typedef struct store_metrics_cursor {
    int64_t num;                   /* the job's row */
    int64_t from, to;              /* the range asked for (to INT64_MAX: no bound) */
    int64_t first, last;           /* its first and last stored steps; first -1: no rows */
    int n_lr;                      /* lr groups of its first row (CSV: 1 when there are none) */
    int has_val;                   /* the job has validation rows (at any step) */
    int64_t pos;                   /* the next step to read */
    int64_t vpos;                  /* the next validation step to read (CSV) */
    int header;                    /* 1 once the CSV header is written */
    int64_t full_from;             /* as store_series.full_from (store/retain.h) */
    int retains;                   /* the job keeps only its newest rows (its spec's
                                    * metrics.full_resolution_steps): the CSV has the resolution
                                    * column, and rows dropped while it streams come as points */
    int has_fp16;                  /* the job has fp16 events (store/fp16.h) at any step */
    double fp16_scale;             /* CSV: the scale in force before fp16_pos; NAN none */
    int64_t fp16_pos;              /* CSV: the next fp16 event step to read */
} store_metrics_cursor;

/* Opens a cursor on the rows with from <= step <= to (to < 0 = no bound). -ENOENT unknown
 * job. */
int store_metrics_cursor_open(store_t *s, const char *id, int64_t from, int64_t to,
                              store_metrics_cursor *c, an_err *err);

/* Feeds the rows with c->pos <= step <= c->last to fn in step order until fn returns nonzero
 * (that row is not consumed: c->pos stays at its step) or the range ends (c->pos =
 * c->last + 1). Each row's n_lr is its own block's. */
typedef int (*store_row_fn)(void *ctx, const store_metric *m);
int store_metrics_cursor_rows(store_t *s, store_metrics_cursor *c, store_row_fn fn, void *ctx,
                              an_err *err);

/* Up to `max` validation rows of the cursor's job with lo <= step <= c->to, in step order,
 * into rows (the caller's); *n how many. */
int store_metrics_cursor_val(store_t *s, const store_metrics_cursor *c, int64_t lo,
                             store_val_metric *rows, size_t max, size_t *n, an_err *err);

/* The next piece of the CSV of store_metrics_csv: at most `cap` bytes (cap >= 64 KiB) into
 * buf, whole lines only; *len 0 when the CSV is complete. */
int store_metrics_csv_piece(store_t *s, store_metrics_cursor *c, char *buf, size_t cap,
                            size_t *len, an_err *err);

/* ---- checkpoints --------------------------------------------------------------------- */

typedef struct store_checkpoint_info {
    int64_t step;
    char created_at[24];
    int64_t bytes;
    double loss;                   /* NAN = null */
    int pinned;                    /* store_checkpoint_marks: pinned (never retired) */
    int best;                      /* …and among the k best of the job's keep_best */
} store_checkpoint_info;

/* What retention keeps of a job's checkpoints (store/ckptkeep.c): the keep_last newest
 * (<= 0: every checkpoint), the best_k best by best_metric (enum keep_metric of
 * core/config_keep.h: 0 loss, 1 val_loss, 2 val_acc; best_max: larger is better), and every
 * pinned one. */
typedef struct store_keep {
    int keep_last;
    int best_k;
    int best_metric;
    int best_max;
} store_keep;

/* store_checkpoint_commit_with_metrics with the full retention policy. */
int store_checkpoint_commit_kept(store_t *s, const char *id, const store_metric *rows,
                                 size_t n, const store_val_metric *val, size_t nval,
                                 int64_t step, double loss, const void *blob, size_t len,
                                 const store_keep *keep, const store_progress *p, an_err *err);

/* Pins (pin 1) or unpins (0) the checkpoint of job `id` at `step`; pinning twice is no
 * error. -ENOENT (field "id" or "step") for an unknown job or a step without a checkpoint. */
int store_checkpoint_pin(store_t *s, const char *id, int64_t step, int pin, an_err *err);

/* Fills pinned and best of a list from store_checkpoint_list (best by `keep`, may be NULL). */
int store_checkpoint_marks(store_t *s, const char *id, const store_keep *keep,
                           store_checkpoint_info *list, size_t n, an_err *err);

/* Commits a checkpoint of job `id` at `step` in ONE transaction: the blob (split into
 * s->chunk_size chunks, bound straight from `blob` without a copy), the job row's
 * last_checkpoint_step = step and, if `p` is not NULL, its progress; then deletes the job's
 * older checkpoints so that at most `keep_last` remain (keep_last <= 0 keeps all). A checkpoint
 * already stored at the same step is replaced. Either all of it lands or nothing does (e.g.
 * -ENOSPC leaves the previous checkpoints and job row as they were). */
int store_checkpoint_commit(store_t *s, const char *id, int64_t step, double loss,
                            const void *blob, size_t len, int keep_last,
                            const store_progress *p, an_err *err);

/* store_checkpoint_commit that also appends `n` metric rows and `nval` validation rows (as
 * store_metrics_append_with_val; `rows`/`val` may be NULL when their count is 0) in the same
 * ONE transaction: the rows up to a checkpoint and the checkpoint land together or not at
 * all, for the price of one commit. Bad rows (-EINVAL) store nothing, the checkpoint neither.
 * Cost: once keep_last checkpoints are stored, a new one overwrites the oldest one's rows in
 * place, so a commit of a small model writes a few pages whatever keep_last is. */
int store_checkpoint_commit_with_metrics(store_t *s, const char *id, const store_metric *rows,
                                         size_t n, const store_val_metric *val, size_t nval,
                                         int64_t step, double loss, const void *blob,
                                         size_t len, int keep_last, const store_progress *p,
                                         an_err *err);

/* The job's checkpoints, oldest first; *list malloc'd (free()). */
int store_checkpoint_list(store_t *s, const char *id, store_checkpoint_info **list, size_t *n,
                          an_err *err);

/* "it has checkpoints at steps 100, 200, …, 900" (or "it has none now") into buf, for the
 * error of a step without one. Returns how many it has, or < 0 when they cannot be listed
 * (buf then empty). */
int store_checkpoint_steps_text(store_t *s, const char *id, char *buf, size_t size);

/* Whether job `id` still has its checkpoint at `step` (retention or a rewind may have deleted
 * it): 0 when it has, -ENOENT when the job or the checkpoint is gone. Two indexed reads. */
int store_checkpoint_exists(store_t *s, const char *id, int64_t step, an_err *err);

/* Reads a checkpoint (step < 0 = the latest) into a malloc'd buffer *buf of *len bytes;
 * *step_out (may be NULL) receives its step. -ENOENT for an unknown job or when there is no
 * such checkpoint; -EPROTO when the stored chunks do not add up to the recorded size. */
int store_checkpoint_read(store_t *s, const char *id, int64_t step, void **buf, size_t *len,
                          int64_t *step_out, an_err *err);

/* Hands a checkpoint's bytes to `sink` in order, at most 1 MiB at a time whatever the
 * checkpoint's size, so a reader can keep only what it needs. The sink's
 * non-zero return stops the read and is returned. *len gets the checkpoint's size; errors as
 * store_checkpoint_read. */
typedef int (*store_chunk_sink)(void *ctx, const void *data, size_t n, an_err *err);
int store_checkpoint_read_each(store_t *s, const char *id, int64_t step, store_chunk_sink sink,
                               void *ctx, size_t *len, int64_t *step_out, an_err *err);

/* ---- datasets ------------------------------------------------------------------------ */

typedef struct store_dataset {
    char id[STORE_ID_LEN];         /* "d_000003" */
    char *name;
    int64_t rows;                  /* data rows (header excluded) */
    char *columns_json;            /* JSON array of column names */
    int64_t bytes;                 /* size of the CSV text */
    char created_at[24];
    char *vocab_json;              /* an uploaded text's char vocabulary (text_vocab_json), or
                                      NULL (CSV, or uploaded before schema 8) */
} store_dataset;

/* Stores a CSV text (up to 256 MiB) under a unique name; `rows` and `columns_json` (a JSON
 * array) describe it as the caller parsed it. `id_out` (may be NULL) receives the new id.
 * -EEXIST if the name is taken, -EINVAL for a bad name/columns, -E2BIG above 256 MiB. */
int store_dataset_create(store_t *s, const char *name, const char *csv, size_t len,
                         int64_t rows, const char *columns_json, char id_out[STORE_ID_LEN],
                         an_err *err);

/* Metadata of a data set found by id or by name. -ENOENT if neither matches. */
int store_dataset_get(store_t *s, const char *id_or_name, store_dataset *out, an_err *err);
void store_dataset_free(store_dataset *d);

/* All data sets, oldest first; free with store_dataset_list_free. */
int store_dataset_list(store_t *s, store_dataset **list, size_t *n, an_err *err);
void store_dataset_list_free(store_dataset *list, size_t n);

/* The CSV text (malloc'd, NUL-terminated; *len excludes the NUL) of a data set by id or name. */
int store_dataset_text(store_t *s, const char *id_or_name, char **csv, size_t *len,
                       an_err *err);

/* Deletes a data set (by id or name). STORE_EINUSE while a queued, running or paused job
 * references it (by id or by name); -ENOENT if unknown. */
/* A data set stored as its upload arrives (uploads.c): store_upload_open reserves its number,
 * store_upload_part stores the body's pieces in order (idx 0, 1, …), store_upload_finish makes
 * the data set (name, size, rows and columns as store_dataset_create takes them, and a text's
 * vocabulary JSON or NULL; -EEXIST for a name in use, nothing of the upload then visible). store_upload_abort deletes the parts of
 * an upload that did not finish; store_upload_sweep those of every upload a stop cut short
 * (call it at start, before any upload begins). */
int store_upload_open(store_t *s, int64_t *num, an_err *err);
int store_upload_part(store_t *s, int64_t num, int64_t idx, const void *data, size_t len,
                      an_err *err);
int store_upload_finish(store_t *s, int64_t num, const char *name, int64_t bytes, int64_t rows,
                        const char *columns_json, const char *vocab_json,
                        char id_out[STORE_ID_LEN], an_err *err);
int store_upload_abort(store_t *s, int64_t num, an_err *err);
int store_upload_sweep(store_t *s, int64_t *parts, an_err *err);
/* Deletes again the parts of uploads whose store_upload_abort failed (in this process), as
 * many as the store now takes; *done receives how many uploads' parts went. Only one thread
 * calls it (the daemon's housekeeping). 0, or the error that stopped it. */
int store_upload_retry(store_t *s, int *done, an_err *err);

int store_dataset_delete(store_t *s, const char *id_or_name, an_err *err);

#endif
