/* store/internal.h — helpers shared by the store's source files (not part of the contract in
 * store.h): SQLite result mapping, transactions, the statement cache, ids and timestamps. */
#ifndef ANNEALD_STORE_INTERNAL_H
#define ANNEALD_STORE_INTERNAL_H

#include <sqlite3.h>

#include "store/store.h"
#include "store/fp16.h"
#include "util/util.h"

#include <stdint.h>
#include <string.h>

/* How long a connection waits for another's lock before SQLITE_BUSY (sqlite3_busy_timeout). */
#define ST_BUSY_MS 5000

/* Slots of store_t.stmt: statements run on hot paths, prepared once per connection. */
enum {
    ST_JOB_NUM = 0,       /* SELECT num, state FROM jobs WHERE id=? */
    ST_BLOCK_INSERT,      /* INSERT INTO metric_blocks … */
    ST_PROGRESS,          /* UPDATE jobs SET step, epoch, loss, lr, samples_per_sec */
    ST_BEGIN,             /* BEGIN IMMEDIATE */
    ST_COMMIT,            /* COMMIT */
    ST_BLOCK_BEFORE,      /* the block with the largest first_step <= ? (overlap check) */
    ST_BLOCK_ASC,         /* blocks overlapping a step range, ascending */
    ST_BLOCK_DESC,        /* blocks starting at or before a step, descending */
    ST_VAL_PUT,           /* INSERT OR REPLACE INTO val_metrics */
    ST_FP16_PUT,          /* INSERT OR REPLACE INTO fp16_events */
    /* The checkpoint commit (checkpoints.c): a periodic checkpoint of a fast job runs these
     * many times a second. */
    ST_CKPT_AT,           /* the checkpoint of a job at a step */
    ST_CKPT_OLDEST,       /* a job's oldest checkpoint and how many it has */
    ST_CKPT_INSERT,       /* INSERT INTO checkpoints */
    ST_CKPT_REUSE,        /* UPDATE checkpoints: an old row takes the new checkpoint */
    ST_CHUNK_INSERT,      /* INSERT INTO checkpoint_chunks */
    ST_CHUNK_UPDATE,      /* UPDATE checkpoint_chunks SET data */
    ST_CHUNK_TRIM,        /* DELETE a checkpoint's chunks from an index on */
    ST_CKPT_JOB,          /* UPDATE jobs SET last_checkpoint_step */
    ST_CKPT_RETIRE_CHUNKS,/* chunks of checkpoints beyond keep_last */
    ST_CKPT_RETIRE,       /* checkpoints beyond keep_last */
    ST_SUM_INSERT,        /* INSERT OR REPLACE INTO metric_sums */
    ST_SUM_ASC,           /* block summaries overlapping a step range, ascending */
    ST_PYR_GET,           /* one bucket of the summary pyramid */
    ST_PYR_PUT,           /* INSERT OR REPLACE INTO metric_pyramid */
    ST_PYR_DEL,           /* DELETE buckets of one level */
    ST_PYR_RANGE,         /* one level's buckets of a range, ascending */
    ST_FIRST_KEPT,        /* the first stored block of a job */
    ST_NSLOTS
};
_Static_assert((int)ST_NSLOTS <= (int)STORE_NSTMT, "store_t.stmt holds every statement slot");

/* Maps a SQLite result code to the module's negative errno and fills err with
 * "<what>: <sqlite message>". Never returns 0 for a failing code. */
int st_fail(store_t *s, int rc, const char *what, an_err *err);

/* A cached, reset statement for `slot` (preparing `sql` the first time). On failure returns
 * NULL and *rc holds the mapped error (err filled). The caller resets it after use. */
sqlite3_stmt *st_stmt(store_t *s, int slot, const char *sql, int *rc, an_err *err);

/* Prepares a one-off statement. Returns 0 or a mapped error. */
int st_prepare(store_t *s, const char *sql, sqlite3_stmt **out, an_err *err);

/* Room for element n of an array of `elem`-byte elements holding *cap: returns `arr` when
 * n < *cap, else the array reallocated to twice *cap (or `first` when empty) with *cap
 * updated; NULL when out of memory (arr is then left as it was). */
/* Ends the transaction st_begin opened: commits it when rc is 0, else (or when the commit
 * fails) rolls it back. Returns the final code, so `return st_end(s, rc, err);`. */
int st_end(store_t *s, int rc, an_err *err);

void *st_grow(void *arr, size_t *cap, size_t n, size_t elem, size_t first);

/* BEGIN IMMEDIATE / COMMIT; st_rollback is safe when no transaction is open. */
int st_begin(store_t *s, an_err *err);
int st_commit(store_t *s, an_err *err);
void st_rollback(store_t *s);

/* Runs SQL without results (one or more statements). */
int st_exec(store_t *s, const char *sql, const char *what, an_err *err);

/* An integer from a one-row query with ?1 = num (a count, a yes or no, a step): *out is left
 * as it was, and *found (may be NULL) 0, when it gives no row or NULL; a failed step says
 * `what`. */
int st_one_int(store_t *s, const char *sql, int64_t num, int64_t *out, int *found,
               const char *what, an_err *err);

/* A migration step's ALTER TABLE table ADD COLUMN column decl, unless the column is there
 * already (a store set back to an earlier version runs its steps again): migrate.c. Names
 * are the code's own, never a caller's. */
int st_add_column(store_t *s, const char *table, const char *column, const char *decl,
                  an_err *err);

/* Finds a job's row number and state by id; -ENOENT (err names the id) when unknown. */
int st_job_num(store_t *s, const char *id, int64_t *num, store_job_state *state, an_err *err);

/* Takes the next number of sequence `name` (inside the caller's write transaction). */
int st_seq_next(store_t *s, const char *name, int64_t *out, an_err *err);

/* Checkpoint retention beyond keep_last (ckptkeep.c): the pins table (migration 3 -> 4);
 * whether a commit for job `num` must take the careful path (a keep_best policy or a pin);
 * the retention of that path inside the commit's transaction. */
int st_migrate_checkpoint_pins(store_t *s, an_err *err);
int st_ckpt_careful(store_t *s, int64_t num, const store_keep *k, int *careful, an_err *err);
int st_ckpt_retire_kept(store_t *s, int64_t num, const store_keep *k, an_err *err);

/* Current UTC time as "YYYY-MM-DDTHH:MM:SSZ". */
void st_now(char buf[24]);

/* Binds a double, storing NULL for NaN (SQLite would anyway; this keeps it explicit). */
int st_bind_num(sqlite3_stmt *st, int i, double v);
/* Reads a REAL column, NAN for NULL. */
double st_col_num(sqlite3_stmt *st, int i);
/* malloc'd copy of a TEXT column, NULL for NULL (*oom set when the copy failed). */
char *st_col_strdup(sqlite3_stmt *st, int i, int *oom);
/* Copies a TEXT column into a fixed buffer ("" for NULL). */
void st_col_copy(sqlite3_stmt *st, int i, char *buf, size_t size);

/* lr arrays are stored as a blob of little-endian float64 values, one per group. */
int st_bind_lr(sqlite3_stmt *st, int i, const double *lr, int n);
int st_col_lr(sqlite3_stmt *st, int i, double *lr, int max);

/* Writes the job's progress (step, epoch, loss, lr, samples_per_sec) by row number, inside the
 * caller's transaction. */
int st_write_progress(store_t *s, int64_t num, const store_progress *p, an_err *err);

/* Deletes a job's rows (checkpoints, metrics, validation rows, the job) by row number,
 * inside the caller's transaction, whatever its state. */
int st_job_delete_tx(store_t *s, int64_t num, an_err *err);

/* Records job `job_num` as trial `trial` of sweep `sweep_id` (sweeps.c), inside the caller's
 * transaction; -ENOENT for an unknown sweep. */
int st_sweep_link(store_t *s, const char *sweep_id, int trial, int64_t job_num, an_err *err);
/* Steps `st`, a statement that writes rows of sweep `id`, and finalizes it (sweeps.c): 0,
 * -ENOENT when it changed no row (an unknown sweep), or the store's failure while `what`. */
int st_sweep_write_done(store_t *s, sqlite3_stmt *st, const char *id, const char *what,
                        an_err *err);
/* The row number of sweep `id` (sweeps.c); -ENOENT for an unknown id. */
int st_sweep_num(store_t *s, const char *id, int64_t *num, an_err *err);

/* Create the sweep tables (sweeps.c), (schema 11) the table of trials' start errors and (12)
 * their retries (sweep_errors.c): migration steps. */
int st_migrate_sweeps(store_t *s, an_err *err);
int st_migrate_sweep_errors(store_t *s, an_err *err);
int st_migrate_sweep_retry(store_t *s, an_err *err);

/* Is `s` a JSON text of the given cJSON type (cJSON_Object / cJSON_Array)? */
int st_json_is(const char *s, int type);

/* ---- metric blocks (blocks.c) --------------------------------------------------------
 *
 * A job's metric rows are stored as blocks: one row of metric_blocks per appended batch (or
 * per piece of one, see ST_BLOCK_CAP), holding up to ST_BLOCK_CAP rows with distinct,
 * increasing steps and the same number of lr groups. Block spans [first_step, last_step]
 * of a job never overlap, so the block that can hold a step is the one with the largest
 * first_step <= step.
 *
 * The data blob is columnar, every value little-endian, n = nrows, G = ngroups, C = 4 + G
 * value columns (loss, grad_norm, time, wall, lr of group 0 … G-1):
 *   u8    constant[ceil(C / 8)]  bit c (byte c/8, bit c%8) set: column c holds one value,
 *                                the same bits for every row, stored once
 *   int64 step[n]                only when the steps are not first_step, first_step+1, …,
 *                                last_step (a "sparse" block; a contiguous one stores none)
 *   then each value column in that order, as f64[n], or as one f64 when constant.
 * loss, grad_norm, time and wall hold the canonical NAN for null. A constant lr (no
 * scheduler, or a flat phase) or an unmeasured grad_norm costs 8 bytes per block instead of 8
 * per row; nothing is rounded. Columns keep a downsampling pass to two arrays (step, loss)
 * and copy the rest only for the rows it keeps. The layout is part of the schema: changing
 * it takes a migration. */

/* Compression (codec.c). Since schema 3 a block's layout is stored zstd-compressed after an
 * exact transform (each 8-byte word XORed with the one before, then split into byte planes),
 * and metric_blocks.raw holds the layout's length; raw NULL means the blob is the layout
 * itself (blocks written before schema 3, or ones that would not get smaller).
 * st_block_pack: `len` bytes of layout with an `ml`-byte mask -> *out (*outlen bytes, in s's
 * scratch buffer, valid until the next pack/unpack on s). st_block_unpack: the inverse into
 * s's scratch buffer; -EPROTO when the blob does not decode to exactly `len` bytes. */
int st_block_pack(store_t *s, const unsigned char *raw, size_t len, size_t ml,
                  unsigned char **out, size_t *outlen);
int st_block_unpack(store_t *s, const unsigned char *z, size_t zlen, size_t len, size_t ml,
                    unsigned char **out);
void st_codec_free(store_t *s);

#define ST_BLOCK_CAP 4096 /* rows per block: a batch above it is stored as several blocks */

enum { ST_COL_LOSS = 0, ST_COL_GRAD_NORM, ST_COL_TIME, ST_COL_WALL, ST_COL_LR };

/* One block as read from the table. `data` points into the statement's memory and is valid
 * until the iterator moves or closes; it is NULL when the iterator did not need to load it. */
typedef struct st_block {
    int64_t first, last;           /* steps of the first and last row */
    size_t n;                      /* rows, 1..ST_BLOCK_CAP */
    int ng;                        /* lr groups per row, 0..STORE_MAX_LR */
    int sparse;                    /* 1: the blob has an explicit step column */
    const unsigned char *data;     /* the blob, or NULL (see above) */
    /* With data: where each column starts (bytes into data) and its bytes per row (8, or 0
     * for a constant column); steps_off is the step column's start. */
    size_t steps_off;
    size_t off[4 + STORE_MAX_LR];
    unsigned char inc[4 + STORE_MAX_LR];
} st_block;

/* Step of row i (0 <= i < n); needs data only for a sparse block. */
static inline int64_t st_block_step(const st_block *b, size_t i)
{
    return b->sparse ? (int64_t)le_get_u64(b->data + b->steps_off + 8 * i) : b->first + (int64_t)i;
}

/* Column `col` (ST_COL_*, or ST_COL_LR + g for group g) of row i. */
static inline double st_block_val(const st_block *b, int col, size_t i)
{
    uint64_t u = le_get_u64(b->data + b->off[col] + b->inc[col] * i);
    double v;
    memcpy(&v, &u, 8);
    return v;
}

/* Index of the first row with step >= x (n if none) / step > x (n if none). */
size_t st_block_lower(const st_block *b, int64_t x);
size_t st_block_upper(const st_block *b, int64_t x);

/* Row i as a store_metric (n_lr = the block's groups). */
void st_block_row(const st_block *b, size_t i, store_metric *m);

/* Walks a job's blocks that hold steps in [from, to]: ascending from the block that can hold
 * `from`, or descending from the block that can hold `to`. Blocks whose span misses the range
 * are skipped. Uses a cached statement: one iterator of each direction at a time. */
typedef struct st_block_iter {
    store_t *s;
    sqlite3_stmt *st;              /* the running statement */
    int desc;                      /* 1 = descending */
    int64_t from, to;              /* the step range */
} st_block_iter;

int st_blocks_open(store_t *s, st_block_iter *it, int64_t num, int64_t from, int64_t to,
                   int desc, an_err *err);
/* Next block into *b: 1 = a block, 0 = no more, < 0 = error (err filled). With want_data 0
 * the blob is loaded only for a sparse block (whose steps are in it); with 1 always. A blob
 * whose length does not match its columns is -EPROTO. */
int st_blocks_next(st_block_iter *it, st_block *b, int want_data, an_err *err);
void st_blocks_close(st_block_iter *it);

/* Stores rows with distinct, increasing steps as new blocks (split at ST_BLOCK_CAP rows and
 * where the lr group count changes), inside the caller's transaction. The caller guarantees
 * that no stored block overlaps their span. */
int st_blocks_write(store_t *s, int64_t num, const store_metric *const *rows, size_t n,
                    an_err *err);

/* Validates metric and validation rows for an append (counts against NULL arrays, lr groups,
 * steps), before any transaction starts. */
int st_metrics_check(const store_metric *rows, size_t n, const store_val_metric *val,
                     size_t nval, an_err *err);

/* Stores metric rows (st_metrics_put) and validation rows (replacing a row at the same step)
 * of job `num` inside the caller's transaction. */
int st_metrics_put_all(store_t *s, int64_t num, const store_metric *rows, size_t n,
                       const store_val_metric *val, size_t nval, an_err *err);

/* fp16 loss-scale events (fp16.c): bad events (-EINVAL, naming the field); inserting them
 * for job `num` inside the caller's transaction (an event for a stored step replaces it). */
int st_fp16_check(const store_fp16_event *ev, size_t n, an_err *err);
int st_fp16_put(store_t *s, int64_t num, const store_fp16_event *ev, size_t n, an_err *err);
/* For a metrics cursor (csvexport.c): c->has_fp16, and c->fp16_scale / c->fp16_pos set so the
 * walk starts at the cursor's first row with the scale in force before it. */
int st_fp16_cursor_open(store_t *s, store_metrics_cursor *c, an_err *err);
/* Up to `max` events of the cursor's job with lo <= step <= c->last, in step order. */
int st_fp16_page(store_t *s, const store_metrics_cursor *c, int64_t lo, store_fp16_event *ev,
                 size_t max, size_t *n, an_err *err);

/* Appends rows in any order with replace semantics (a later row for a step wins over an
 * earlier one and over a stored one), inside the caller's transaction. */
int st_metrics_put(store_t *s, int64_t num, const store_metric *rows, size_t n, an_err *err);

/* Deletes a job's rows with step > `step`, rewriting the block that straddles it. */
int st_metrics_truncate(store_t *s, int64_t num, int64_t step, an_err *err);

/* The row at exactly `step`: *found 1 and *m filled, or *found 0. */
int st_metric_at(store_t *s, int64_t num, int64_t step, store_metric *m, int *found,
                 an_err *err);

/* First and last step of a job's rows in [from, to] and the lr group count of the first row,
 * reading the blocks at the two ends of the range only; *first = -1 when it is empty. */
int st_range_ends(store_t *s, int64_t num, int64_t from, int64_t to, int64_t *first,
                  int64_t *last, int *n_lr, an_err *err);

/* Loss order of the downsampling: NaN is larger than every number. */
static inline int st_loss_gt(double a, double b) { return b == b && (a != a || a > b); }
static inline int st_loss_lt(double a, double b) { return a == a && (b != b || a < b); }

/* ---- block summaries (summary.c) -------------------------------------------------------
 *
 * metric_sums holds, per metric block (same job and first_step; a trigger deletes it with
 * its block), the block's first row, last row, the row with the smallest loss and the row
 * with the largest loss (ties: the earliest), each as int64 step then float64 loss,
 * grad_norm, time, wall, lr[ngroups] (the stored bits). A downsampled query whose buckets
 * span many blocks takes a block that lies inside one bucket from its summary instead of
 * decompressing it. Blocks written before schema 3 have none; such ranges are scanned. */
int st_summary_put(store_t *s, int64_t num, const store_metric *const *rows, size_t n,
                   an_err *err);

/* One row of a summary or a block, every column copied out. */
typedef struct st_row {
    int64_t step;
    double loss, grad_norm, time, wall;
    double lr[STORE_MAX_LR];
} st_row;

/* Rows of [first, last] through `feed(ctx, row)` in step order: summary rows of the blocks
 * that `whole(ctx, block_first, block_last)` accepts (4 per block, each step once), every
 * row of the others. *used is 0 (nothing fed) when some block of the range has no summary:
 * the caller then scans the rows itself. n_lr: groups to copy (missing ones read NaN). */
int st_summary_walk(store_t *s, int64_t num, int64_t first, int64_t last, int n_lr,
                    int (*whole)(void *ctx, int64_t bfirst, int64_t blast),
                    void (*feed)(void *ctx, const st_row *r), void *ctx, int *used,
                    int64_t *seen, an_err *err);

/* Schema migration 1 -> 2: packs the per-step metrics table into metric_blocks (created by the
 * migration's SQL) and drops it, inside the migration's transaction. */
int st_migrate_metric_blocks(store_t *s, an_err *err);

/* Schema migration 2 -> 3: adds metric_blocks.raw unless it is there already (a schema-1 file
 * gets it from st_migrate_metric_blocks, which writes compressed blocks). */
int st_migrate_blocks_raw(store_t *s, an_err *err);

/* ---- the summary pyramid (pyramid.c) ----------------------------------------------------
 *
 * metric_pyramid holds, per job, level k (ST_PYR_L0 <= k <= ST_PYR_LMAX) and aligned bucket
 * b (steps b*2^k … (b+1)*2^k - 1) with at least one row: the number of rows and four rows in
 * the metric_sums format (first, last, smallest loss, largest loss; ties: the earliest step;
 * lr groups beyond a row's own NaN, ngroups the most of any of them). It is kept in step
 * with metric_blocks inside the same transaction: st_metrics_put merges an append
 * (st_pyr_add) or rebuilds the range it replaced (st_pyr_rebuild); st_metrics_truncate cuts
 * it (st_pyr_truncate). Rows of a job are cascaded away with the job. */
#define ST_PYR_L0 11   /* the finest level: buckets of 2048 steps */
#define ST_PYR_LMAX 31 /* the coarsest: 2^31 steps, above the largest job's step count */

/* Merges rows with distinct, increasing steps, none of them stored before, into the pyramid. */
int st_pyr_add(store_t *s, int64_t num, const store_metric *const *p, size_t m, an_err *err);
/* Recomputes every bucket overlapping [a, b] from the stored rows. */
int st_pyr_rebuild(store_t *s, int64_t num, int64_t a, int64_t b, an_err *err);
/* Drops the connection's cache of open pyramid buckets (a rolled-back transaction), and
 * frees it (store_close). */
void st_pyr_forget(store_t *s);
void st_pyr_cache_free(store_t *s);

/* After the rows with step > `step` are gone: drops and recomputes what covered them. */
int st_pyr_truncate(store_t *s, int64_t num, int64_t step, an_err *err);

/* A bucket of a downsampled answer: its first, last, min-loss and max-loss rows. */
typedef void (*st_pyr_bucket_fn)(void *ctx, const st_row *first, const st_row *last,
                                 const st_row *lo, const st_row *hi);
/* Downsamples [first, last] (the range's first and last stored steps) from one level: the
 * finest whose aligned buckets over the range number at most nb_max. The two buckets the
 * range's ends cut are summarised exactly over their part inside it (finer levels, then the
 * rows). fn gets each non-empty bucket in step order; *seen the number of rows summarised.
 * *used 0 (nothing fed) when no level fits or a finer bucketing than the finest level
 * would (then the caller scans the rows). */
int st_pyr_query(store_t *s, int64_t num, int64_t first, int64_t last, int64_t nb_max,
                 st_pyr_bucket_fn fn, void *ctx, int *used, int64_t *seen, an_err *err);

/* ---- retention (retain.c): metrics.full_resolution_steps ---------------------------------
 *
 * store_metrics_retain drops a job's oldest blocks (their summaries go with them) and leaves
 * the pyramid as it is, so below the first stored row the pyramid's lowest level (buckets of
 * 2^ST_PYR_L0 steps) is all that is left: its first, last, smallest- and largest-loss rows,
 * the "points" of those buckets. Rows are dropped only below a bucket boundary at or before
 * the job's latest checkpoint, so the rewind of a resume never cuts into a bucket that lost
 * rows (its rebuild from the rows stays exact). */

/* The first step of job num's first stored block; INT64_MAX when it has none. */
int st_first_kept(store_t *s, int64_t num, int64_t *kept, an_err *err);

/* *kept = the first stored step when rows before it were dropped (the pyramid has points
 * below it), else 0. */
int st_retained(store_t *s, int64_t num, int64_t *kept, an_err *err);

/* Feeds the lowest level's points with a <= step <= b, each once, in step order (descending
 * with desc) to fn(ctx, row, ngroups) until it returns nonzero. 1 = stopped by fn, 0 = done,
 * < 0 = error. */
typedef int (*st_point_fn)(void *ctx, const st_row *r, int ng);
int st_pyr_points(store_t *s, int64_t num, int64_t a, int64_t b, int desc, st_point_fn fn,
                  void *ctx, an_err *err);

/* The first and last point of [a, b] and the groups of the first; *first = -1 when none. */
int st_point_ends(store_t *s, int64_t num, int64_t a, int64_t b, int64_t *first,
                  int64_t *last, int *ng, an_err *err);

/* store_metrics_query of a range reaching below `kept` (st_retained): the points of the
 * dropped part, then the stored rows, downsampled like any range when max_points asks. */
int st_query_retained(store_t *s, int64_t num, int64_t from, int64_t to, size_t max_points,
                      int64_t kept, store_series *out, an_err *err);

/* Building a store_series (metrics.c): arrays for cap points of n_lr groups; a point; a
 * downsampling bucket's points (first, last, extremes; the first nsel of them). */
int st_series_alloc(store_series *m, size_t cap, int n_lr);
void st_series_emit(store_series *m, size_t cap, const st_row *r);
void st_series_bucket(store_series *m, size_t cap, const st_row *first, const st_row *last,
                      const st_row *lo, const st_row *hi, int nsel);

/* Schema migration 5 -> 6: creates metric_pyramid and builds it for the rows stored before. */
/* Inserts a datasets row numbered `num` (its id "d_%06d" into id); -EEXIST for a name in use.
 * Inside the caller's transaction (datasets.c, uploads.c). */
int st_dataset_insert(store_t *s, int64_t num, const char *name, int64_t rows,
                      const char *columns_json, int64_t bytes, char id[STORE_ID_LEN],
                      an_err *err);
int st_migrate_pyramid(store_t *s, an_err *err);

/* 7 -> 8: datasets.vocab, the vocabulary of an uploaded text corpus (datasets.c). Adds the
 * column only if it is not there, so it may run again. */
int st_migrate_dataset_vocab(store_t *s, an_err *err);

#endif
