/* store.c — opening a connection (pragmas, migrations) and the helpers every store file uses:
 * error mapping, transactions, the statement cache, sequences, timestamps, value encoding. */
#include "store/store.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "store/internal.h"
#include "store/lock.h"
#include "store/walbuf.h"
#include "util/util.h"

/* Schema migrations: migrations[i] takes user_version i to i+1 by running its SQL and then its
 * function (if any), in one transaction. Append only; never edit a released entry (databases
 * in the field already ran it). */
typedef struct migration {
    const char *sql;
    int (*fn)(store_t *s, an_err *err); /* data conversion SQL alone cannot do, or NULL */
} migration;

static const migration migrations[] = {
    /* 0 -> 1: the first schema. */
    {
    "CREATE TABLE seq("
    "  name TEXT PRIMARY KEY,"
    "  next INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE jobs("
    "  num INTEGER PRIMARY KEY,"            /* from seq 'job'; id is 'j_' || num padded */
    "  id TEXT NOT NULL UNIQUE,"
    "  name TEXT NOT NULL,"
    "  state INTEGER NOT NULL,"             /* store_job_state */
    "  spec TEXT NOT NULL,"                 /* normalised spec JSON */
    "  warnings TEXT NOT NULL,"             /* JSON array */
    "  created_at TEXT NOT NULL,"
    "  started_at TEXT,"
    "  finished_at TEXT,"
    "  step INTEGER NOT NULL DEFAULT 0,"
    "  total_steps INTEGER NOT NULL,"
    "  epoch INTEGER NOT NULL DEFAULT 0,"
    "  loss REAL,"
    "  lr BLOB,"                            /* float64 LE per group */
    "  samples_per_sec REAL,"
    "  last_checkpoint_step INTEGER,"
    "  error TEXT,"
    "  dataset_ref TEXT,"                   /* data set id or name from the spec */
    "  resume_from TEXT"                    /* spec's resume_from JSON */
    ");"
    "CREATE INDEX jobs_by_state ON jobs(state, num);"
    "CREATE INDEX jobs_by_dataset ON jobs(dataset_ref) WHERE dataset_ref IS NOT NULL;"
    /* One row per optimizer step; (job, step) is the key, so a range query is one b-tree
     * seek plus a sequential walk, and rows are clustered by job. */
    "CREATE TABLE metrics("
    "  job INTEGER NOT NULL REFERENCES jobs(num) ON DELETE CASCADE,"
    "  step INTEGER NOT NULL,"
    "  loss REAL,"
    "  grad_norm REAL,"
    "  time REAL,"
    "  wall REAL,"
    "  lr BLOB,"
    "  PRIMARY KEY(job, step)"
    ") WITHOUT ROWID;"
    "CREATE TABLE val_metrics("
    "  job INTEGER NOT NULL REFERENCES jobs(num) ON DELETE CASCADE,"
    "  step INTEGER NOT NULL,"
    "  val_loss REAL,"
    "  val_acc REAL,"
    "  PRIMARY KEY(job, step)"
    ") WITHOUT ROWID;"
    "CREATE TABLE checkpoints("
    "  id INTEGER PRIMARY KEY,"
    "  job INTEGER NOT NULL REFERENCES jobs(num) ON DELETE CASCADE,"
    "  step INTEGER NOT NULL,"
    "  loss REAL,"
    "  bytes INTEGER NOT NULL,"
    "  chunks INTEGER NOT NULL,"
    "  created_at TEXT NOT NULL,"
    "  UNIQUE(job, step)"
    ");"
    /* Large values: a rowid table (WITHOUT ROWID suits small rows only). */
    "CREATE TABLE checkpoint_chunks("
    "  ckpt INTEGER NOT NULL REFERENCES checkpoints(id) ON DELETE CASCADE,"
    "  idx INTEGER NOT NULL,"
    "  data BLOB NOT NULL,"
    "  PRIMARY KEY(ckpt, idx)"
    ");"
    "CREATE TABLE datasets("
    "  num INTEGER PRIMARY KEY,"
    "  id TEXT NOT NULL UNIQUE,"
    "  name TEXT NOT NULL UNIQUE,"
    "  rows INTEGER NOT NULL,"
    "  columns TEXT NOT NULL,"
    "  bytes INTEGER NOT NULL,"
    "  created_at TEXT NOT NULL"
    ");"
    /* The text apart from its metadata, so listing never walks a 256 MiB value. */
    "CREATE TABLE dataset_text("
    "  dataset INTEGER PRIMARY KEY REFERENCES datasets(num) ON DELETE CASCADE,"
    "  text BLOB NOT NULL"
    ");",
    NULL},
    /* 1 -> 2: metric rows move into blocks, one row per appended batch (layout in
     * internal.h); st_migrate_metric_blocks packs the existing rows and drops `metrics`.
     * A rowid table with a separate (job, first_step) key: its rows are blobs of kilobytes
     * to megabytes, which a WITHOUT ROWID b-tree would also copy into interior pages. */
    {"CREATE TABLE metric_blocks("
     "  id INTEGER PRIMARY KEY,"
     "  job INTEGER NOT NULL REFERENCES jobs(num) ON DELETE CASCADE,"
     "  first_step INTEGER NOT NULL,"   /* step of the block's first row */
     "  last_step INTEGER NOT NULL,"    /* step of its last row */
     "  nrows INTEGER NOT NULL,"        /* rows, 1..4096 */
     "  ngroups INTEGER NOT NULL,"      /* lr groups per row */
     "  data BLOB NOT NULL,"            /* the packed columns */
     "  UNIQUE(job, first_step)"
     ");",
     st_migrate_metric_blocks},
    /* 2 -> 3: metric blocks may be compressed (codec.c); raw is the decoded length, NULL for
     * the blocks written before, which stay readable as they are. */
    {"", st_migrate_blocks_raw},
    {"", st_migrate_sweeps},          /* 3 -> 4: sweeps, trial jobs, rung records (sweeps.c) */
    {"", st_migrate_checkpoint_pins}, /* 4 -> 5: checkpoint pins (ckptkeep.c) */
    {"", st_migrate_pyramid},         /* 5 -> 6: the metric summary pyramid (pyramid.c) */
    /* 6 -> 7: uploads stored as they arrive, in parts (uploads.c). No foreign key: the parts
     * come before their data set's row, which is made once the last one is checked. */
    {"CREATE TABLE IF NOT EXISTS dataset_parts("
     "  dataset INTEGER NOT NULL,"
     "  idx INTEGER NOT NULL,"
     "  data BLOB NOT NULL,"
     "  PRIMARY KEY(dataset, idx)"
     ");",
     NULL},
    /* 7 -> 8: the vocabulary of an uploaded text corpus, worked out as it arrives, so a job on
     * it is checked (model.vocab_size) and shows it (spec.data.vocabulary) at submission. */
    {"", st_migrate_dataset_vocab},
    /* 8 -> 9: fp16 jobs' loss-scale events
     * (fp16.c), a few rows per thousand steps beside the metric blocks. */
    {"CREATE TABLE IF NOT EXISTS fp16_events("
     "  job INTEGER NOT NULL REFERENCES jobs(num) ON DELETE CASCADE,"
     "  step INTEGER NOT NULL,"
     "  loss_scale REAL NOT NULL,"
     "  skipped INTEGER NOT NULL,"
     "  PRIMARY KEY(job, step)"
     ") WITHOUT ROWID;",
     NULL},
    /* 9 -> 10: the data set id counter from the start (datasets.c): ids from 1 on a new store */
    {"INSERT OR IGNORE INTO seq(name, next) SELECT 'dataset_id', "
     "coalesce((SELECT next FROM seq WHERE name = 'dataset'), 1);", NULL},
    {"", st_migrate_sweep_errors},    /* 10 -> 11: why a trial could not start (sweep_errors.c) */
    {"", st_migrate_sweep_retry},     /* 11 -> 12: a retry of such a trial asked for */
};
#define NMIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

int store_schema_version(void) { return NMIGRATIONS; }

int st_end(store_t *s, int rc, an_err *err)
{
    if (!rc)
        rc = st_commit(s, err);
    if (rc)
        st_rollback(s);
    return rc;
}

void *st_grow(void *arr, size_t *cap, size_t n, size_t elem, size_t first)
{
    if (n < *cap)
        return arr;
    size_t nc = *cap ? *cap * 2 : first;
    void *na = realloc(arr, nc * elem);
    if (na)
        *cap = nc;
    return na;
}

int st_prepare(store_t *s, const char *sql, sqlite3_stmt **out, an_err *err)
{
    int rc = sqlite3_prepare_v2(s->db, sql, -1, out, NULL);
    if (rc != SQLITE_OK) {
        *out = NULL;
        return st_fail(s, rc, "preparing a statement", err);
    }
    return 0;
}

sqlite3_stmt *st_stmt(store_t *s, int slot, const char *sql, int *rc, an_err *err)
{
    if (!s->stmt[slot]) {
        int r = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->stmt[slot],
                                   NULL);
        if (r != SQLITE_OK) {
            s->stmt[slot] = NULL;
            *rc = st_fail(s, r, "preparing a statement", err);
            return NULL;
        }
    }
    sqlite3_reset(s->stmt[slot]);
    sqlite3_clear_bindings(s->stmt[slot]);
    *rc = 0;
    return s->stmt[slot];
}

static int run_slot(store_t *s, int slot, const char *sql, const char *what, an_err *err)
{
    int rc;
    sqlite3_stmt *st = st_stmt(s, slot, sql, &rc, err);
    if (!st)
        return rc;
    int r = sqlite3_step(st);
    sqlite3_reset(st);
    if (r != SQLITE_DONE)
        return st_fail(s, r, what, err);
    return 0;
}

int st_begin(store_t *s, an_err *err)
{
    return run_slot(s, ST_BEGIN, "BEGIN IMMEDIATE", "starting a write transaction", err);
}

int st_commit(store_t *s, an_err *err)
{
    int rc = run_slot(s, ST_COMMIT, "COMMIT", "committing", err);
    if (rc)
        st_rollback(s);
    return rc;
}

void st_rollback(store_t *s)
{
    st_pyr_forget(s); /* what the transaction merged into the open buckets is gone too */
    /* SQLite rolls back by itself after some errors (SQLITE_FULL, SQLITE_NOMEM, …); a second
     * ROLLBACK would then fail with "no transaction is active". */
    if (s->db && !sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

int st_exec(store_t *s, const char *sql, const char *what, an_err *err)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return st_fail(s, rc, what, err);
    return 0;
}

int st_one_int(store_t *s, const char *sql, int64_t num, int64_t *out, int *found,
               const char *what, an_err *err)
{
    sqlite3_stmt *st;
    int rc = st_prepare(s, sql, &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, num);
    int r = sqlite3_step(st);
    int has = r == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL;
    if (has)
        *out = sqlite3_column_int64(st, 0);
    if (found)
        *found = has;
    if (r != SQLITE_ROW && r != SQLITE_DONE)
        rc = st_fail(s, r, what, err);
    sqlite3_finalize(st);
    return rc;
}

int st_job_num(store_t *s, const char *id, int64_t *num, store_job_state *state, an_err *err)
{
    int rc;
    if (!id)
        return an_failc(err, -EINVAL, NULL, "expected a job id, got NULL");
    sqlite3_stmt *st = st_stmt(s, ST_JOB_NUM, "SELECT num, state FROM jobs WHERE id=?", &rc, err);
    if (!st)
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        if (num)
            *num = sqlite3_column_int64(st, 0);
        if (state)
            *state = (store_job_state)sqlite3_column_int(st, 1);
        rc = 0;
    } else if (r == SQLITE_DONE) {
        rc = an_failc(err, -ENOENT, NULL, "no job with id \"%s\"", id);
    } else {
        rc = st_fail(s, r, "looking up a job", err);
    }
    sqlite3_reset(st);
    return rc;
}

int st_seq_next(store_t *s, const char *name, int64_t *out, an_err *err)
{
    sqlite3_stmt *st;
    int rc = st_prepare(s,
                        "INSERT INTO seq(name, next) VALUES(?1, 2) "
                        "ON CONFLICT(name) DO UPDATE SET next = next + 1 RETURNING next - 1",
                        &st, err);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        r = sqlite3_step(st);
    }
    if (r != SQLITE_DONE)
        rc = st_fail(s, r, "allocating an id", err);
    sqlite3_finalize(st);
    return rc;
}

void st_now(char buf[24])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(buf, 24, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int st_bind_num(sqlite3_stmt *st, int i, double v)
{
    return isnan(v) ? sqlite3_bind_null(st, i) : sqlite3_bind_double(st, i, v);
}

double st_col_num(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

char *st_col_strdup(sqlite3_stmt *st, int i, int *oom)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    if (!t)
        return NULL;
    char *c = strdup((const char *)t);
    if (!c)
        *oom = 1;
    return c;
}

void st_col_copy(sqlite3_stmt *st, int i, char *buf, size_t size)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(buf, size, "%s", t ? (const char *)t : "");
}

int st_bind_lr(sqlite3_stmt *st, int i, const double *lr, int n)
{
    unsigned char b[STORE_MAX_LR * 8];
    if (n <= 0)
        return sqlite3_bind_null(st, i);
    if (n > STORE_MAX_LR)
        n = STORE_MAX_LR;
    for (int g = 0; g < n; g++)
        le_put_f64(b + g * 8, lr[g]);
    return sqlite3_bind_blob(st, i, b, n * 8, SQLITE_TRANSIENT);
}

int st_col_lr(sqlite3_stmt *st, int i, double *lr, int max)
{
    const unsigned char *b = sqlite3_column_blob(st, i);
    int n = sqlite3_column_bytes(st, i) / 8;
    if (!b)
        return 0;
    if (n > max)
        n = max;
    for (int g = 0; g < n; g++)
        lr[g] = le_get_f64(b + g * 8);
    return n;
}

int st_json_is(const char *text, int type)
{
    if (!text)
        return 0;
    cJSON *j = cJSON_Parse(text);
    int ok = j && (j->type & 0xff) == type;
    cJSON_Delete(j);
    return ok;
}

/* Brings the schema to NMIGRATIONS, each step in its own write transaction. Two connections
 * opening a fresh file at once serialise on BEGIN IMMEDIATE and the second sees the version
 * the first wrote. */
static int migrate(store_t *s, an_err *err)
{
    /* The common case, a current schema, is read without the write lock, so opening a
     * connection never queues behind a worker's commit. */
    sqlite3_stmt *v0;
    if (st_prepare(s, "PRAGMA user_version", &v0, NULL) == 0) {
        int cur = sqlite3_step(v0) == SQLITE_ROW ? sqlite3_column_int(v0, 0) : -1;
        sqlite3_finalize(v0);
        if (cur == NMIGRATIONS)
            return 0;
    }
    for (;;) {
        int rc = st_begin(s, err);
        if (rc)
            return rc;
        sqlite3_stmt *st;
        rc = st_prepare(s, "PRAGMA user_version", &st, err);
        if (rc) {
            st_rollback(s);
            return rc;
        }
        int v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
        sqlite3_finalize(st);
        if (v < 0 || v > NMIGRATIONS) {
            st_rollback(s);
            return an_failc(err, -EPROTO, NULL,
                            "database schema version %d is newer than this build's %d "
                            "(refusing to use it)", v, NMIGRATIONS);
        }
        if (v == NMIGRATIONS) {
            st_rollback(s); /* nothing written */
            return 0;
        }
        rc = st_exec(s, migrations[v].sql, "migrating the schema", err);
        if (!rc && migrations[v].fn)
            rc = migrations[v].fn(s, err);
        if (!rc) {
            char sql[48];
            snprintf(sql, sizeof sql, "PRAGMA user_version=%d", v + 1);
            rc = st_exec(s, sql, "recording the schema version", err);
        }
        if (!rc)
            rc = st_commit(s, err);
        if (rc) {
            st_rollback(s);
            return rc;
        }
    }
}

/* Whether the connection's database is in WAL mode. */
static int journal_is_wal(store_t *s)
{
    int wal = 0;
    sqlite3_stmt *jm;
    if (st_prepare(s, "PRAGMA journal_mode", &jm, NULL) == 0) {
        if (sqlite3_step(jm) == SQLITE_ROW) {
            const char *m = (const char *)sqlite3_column_text(jm, 0);
            wal = m && strcmp(m, "wal") == 0;
        }
        sqlite3_finalize(jm);
    }
    return wal;
}

int store_durable(store_t *s, int on, an_err *err)
{
    return st_exec(s, on ? "PRAGMA synchronous=FULL;" : "PRAGMA synchronous=NORMAL;",
                   "setting how the connection's commits are synced", err);
}

int store_open(store_t *s, const char *path, an_err *err)
{
    memset(s, 0, sizeof *s);
    s->chunk_size = STORE_CHUNK_SIZE;
    if (!path || !path[0])
        return an_failc(err, -EINVAL, NULL, "expected a database path, got an empty one");
    /* In a daemon holding the store's lock, a later connection opens the locked file or
     * nothing: a fresh file created where the store was deleted (or one put in its place)
     * would be read with the old file's WAL, and the daemon's connections would each see
     * another store. */
    int held = 0, vrc = store_lock_verify(path, &held, err);
    if (vrc)
        return vrc;
    int r = sqlite3_open_v2(path, &s->db,
                            SQLITE_OPEN_READWRITE | (held ? 0 : SQLITE_OPEN_CREATE) |
                            SQLITE_OPEN_NOMUTEX, walbuf_vfs());
    if (r == SQLITE_OK && held && (vrc = store_lock_verify(path, NULL, err)) != 0) {
        store_close(s); /* replaced between the check and the open */
        return vrc;
    }
    if (r != SQLITE_OK) {
        int rc = st_fail(s, r, "opening the database", err);
        store_close(s);
        return rc;
    }
    sqlite3_extended_result_codes(s->db, 0);
    sqlite3_busy_timeout(s->db, ST_BUSY_MS);
    /* A file already in WAL mode was set up by an earlier open: only the per-connection
     * settings are made, since page_size/auto_vacuum/journal_mode on it would wait for the
     * write lock (a worker's multi-second checkpoint commit) just to change nothing. */
    int in_wal = journal_is_wal(s), rc = 0;
    /* page_size and auto_vacuum only take effect before the first table exists. Large pages
     * suit big blobs; incremental vacuum lets deleted jobs give space back. Two connections
     * setting up a fresh file at once can each hold the lock the other needs to switch to
     * WAL; SQLite then answers BUSY at once instead of waiting (the wait would never end).
     * The one refused tries again, and finds the file in WAL mode once the other is done. */
    for (int tries = 0; !in_wal; tries++) {
        rc = st_exec(s,
                     "PRAGMA page_size=16384;"
                     "PRAGMA auto_vacuum=INCREMENTAL;"
                     "PRAGMA journal_mode=WAL;",
                     "configuring the database", err);
        if (rc != -EBUSY || tries == 200)
            break;
        struct timespec pause = {0, 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
        in_wal = journal_is_wal(s);
        rc = 0;
    }
    if (!rc)
        rc = st_exec(s,
                     /* A checkpoint that caught up truncates the WAL to this, so one burst
                      * of writes (a large checkpoint, a deleted job) does not leave a
                      * gigabyte file behind. */
                     "PRAGMA journal_size_limit=67108864;"
                     "PRAGMA synchronous=NORMAL;"
                     "PRAGMA foreign_keys=ON;"
                     "PRAGMA secure_delete=OFF;"
                     "PRAGMA temp_store=MEMORY;",
                     "configuring the connection", err);
    if (!rc) {
        /* journal_mode=WAL can silently stay on another mode (e.g. for :memory:); say so. */
        sqlite3_stmt *st;
        rc = st_prepare(s, "PRAGMA journal_mode", &st, err);
        if (!rc) {
            if (sqlite3_step(st) == SQLITE_ROW) {
                const char *m = (const char *)sqlite3_column_text(st, 0);
                if (!m || (strcmp(m, "wal") != 0 && strcmp(m, "memory") != 0))
                    rc = an_failc(err, -EIO, NULL, "expected journal_mode wal, got %s",
                                  m ? m : "nothing");
            }
            sqlite3_finalize(st);
        }
    }
    if (!rc)
        rc = migrate(s, err);
    if (rc) {
        store_close(s);
        s->chunk_size = STORE_CHUNK_SIZE;
    }
    return rc;
}

void store_close(store_t *s)
{
    if (!s)
        return;
    for (int i = 0; i < STORE_NSTMT; i++) {
        if (s->stmt[i])
            sqlite3_finalize(s->stmt[i]);
        s->stmt[i] = NULL;
    }
    if (s->db)
        sqlite3_close_v2(s->db);
    s->db = NULL;
    st_codec_free(s);
    st_pyr_cache_free(s);
}

int store_maintain(store_t *s, an_err *err)
{
    int rc = st_exec(s, "PRAGMA incremental_vacuum", "returning free pages", err);
    if (rc)
        return rc;
    int log = 0, ckpt = 0;
    int r = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, &log, &ckpt);
    if (r != SQLITE_OK && r != SQLITE_BUSY)
        return st_fail(s, r, "checkpointing the WAL", err);
    return 0;
}

int store_size(store_t *s, int64_t *bytes, an_err *err)
{
    sqlite3_stmt *st;
    int rc = st_prepare(s, "SELECT page_count * page_size FROM pragma_page_count(), "
                           "pragma_page_size()", &st, err);
    if (rc)
        return rc;
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW)
        *bytes = sqlite3_column_int64(st, 0);
    else
        rc = st_fail(s, r, "reading the database size", err);
    sqlite3_finalize(st);
    return rc;
}
