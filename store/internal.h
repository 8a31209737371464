/* store/internal.h — helpers shared by the store's source files (not part of the contract in
 * store.h): SQLite result mapping, transactions, the statement cache, ids and timestamps. */
#ifndef ANNEALD_STORE_INTERNAL_H
#define ANNEALD_STORE_INTERNAL_H

#include <sqlite3.h>

#include "store/store.h"

/* Slots of store_t.stmt: statements run on hot paths, prepared once per connection. */
enum {
    ST_JOB_NUM = 0,       /* SELECT num, state FROM jobs WHERE id=? */
    ST_METRIC_INSERT,     /* INSERT OR REPLACE INTO metrics … */
    ST_PROGRESS,          /* UPDATE jobs SET step, epoch, loss, lr, samples_per_sec */
    ST_BEGIN,             /* BEGIN IMMEDIATE */
    ST_COMMIT,            /* COMMIT */
    ST_NSLOTS
};

/* Maps a SQLite result code to the module's negative errno and fills err with
 * "<what>: <sqlite message>". Never returns 0 for a failing code. */
int st_fail(store_t *s, int rc, const char *what, an_err *err);

/* A cached, reset statement for `slot` (preparing `sql` the first time). On failure returns
 * NULL and *rc holds the mapped error (err filled). The caller resets it after use. */
sqlite3_stmt *st_stmt(store_t *s, int slot, const char *sql, int *rc, an_err *err);

/* Prepares a one-off statement. Returns 0 or a mapped error. */
int st_prepare(store_t *s, const char *sql, sqlite3_stmt **out, an_err *err);

/* BEGIN IMMEDIATE / COMMIT; st_rollback is safe when no transaction is open. */
int st_begin(store_t *s, an_err *err);
int st_commit(store_t *s, an_err *err);
void st_rollback(store_t *s);

/* Runs SQL without results (one or more statements). */
int st_exec(store_t *s, const char *sql, const char *what, an_err *err);

/* Finds a job's row number and state by id; -ENOENT (err names the id) when unknown. */
int st_job_num(store_t *s, const char *id, int64_t *num, store_job_state *state, an_err *err);

/* Takes the next number of sequence `name` (inside the caller's write transaction). */
int st_seq_next(store_t *s, const char *name, int64_t *out, an_err *err);

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

/* Is `s` a JSON text of the given cJSON type (cJSON_Object / cJSON_Array)? */
int st_json_is(const char *s, int type);

#endif
