/* checkpoints.c — training-state blobs, chunked so multi-GB states fit SQLite's value limit.
 *
 * A checkpoint is one row in `checkpoints` (job, step, loss, bytes, chunk count) plus
 * ceil(bytes / chunk_size) rows in `checkpoint_chunks` (ckpt, idx, data). A commit writes the
 * chunks straight from the caller's buffer (no serialisation copy), the job row's
 * last_checkpoint_step/progress, the retention and (optionally) the metric rows up to the
 * checkpoint in one BEGIN IMMEDIATE transaction, so a crash at any moment leaves either the
 * old set of checkpoints or the new one.
 *
 * A fast job may checkpoint many times a second, so the commit is kept to a few page writes:
 * its statements are cached on the connection, and once keep_last checkpoints are stored the
 * new one overwrites the oldest one's rows in place (the row retention would delete) instead
 * of inserting new rows and deleting old ones, which would churn the table, its (job, step)
 * index, the chunk index and the free-page list on every commit. Reads
 * happen inside one read transaction (a consistent snapshot) and go through incremental blob
 * I/O straight into the destination buffer. */
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

/* Runs cached statement `slot` bound with (?1 = a, ?2 = b) to completion. */
static int run2(store_t *s, int slot, const char *sql, int64_t a, int64_t b, const char *what,
                an_err *err)
{
    int rc;
    sqlite3_stmt *st = st_stmt(s, slot, sql, &rc, err);
    if (!st)
        return rc;
    sqlite3_bind_int64(st, 1, a);
    if (sqlite3_bind_parameter_count(st) >= 2)
        sqlite3_bind_int64(st, 2, b);
    int r = sqlite3_step(st);
    sqlite3_reset(st);
    if (r != SQLITE_DONE)
        rc = st_fail(s, r, what, err);
    return rc;
}

/* Writes the blob's chunks for checkpoint row `ckpt`. A reused row (`reuse` 1) had `old`
 * chunks: those are overwritten in place (the same pages when the size is the same, so a
 * periodic checkpoint of a small model rewrites a page instead of freeing and allocating
 * some), missing ones inserted, and any left beyond the new count deleted. */
static int write_chunks(store_t *s, int64_t ckpt, int reuse, int64_t old,
                        const unsigned char *blob, size_t len, size_t chunk, an_err *err)
{
    int rc = 0;
    int64_t idx = 0;
    for (size_t off = 0; !rc && off < len; off += chunk, idx++) {
        size_t n = len - off < chunk ? len - off : chunk;
        int done = 0;
        if (idx < old) {
            sqlite3_stmt *st = st_stmt(s, ST_CHUNK_UPDATE,
                                       "UPDATE checkpoint_chunks SET data=?3"
                                       " WHERE ckpt=?1 AND idx=?2", &rc, err);
            if (!st)
                break;
            sqlite3_bind_int64(st, 1, ckpt);
            sqlite3_bind_int64(st, 2, idx);
            sqlite3_bind_blob64(st, 3, blob + off, n, SQLITE_STATIC);
            int r = sqlite3_step(st);
            sqlite3_reset(st);
            if (r != SQLITE_DONE)
                rc = st_fail(s, r, "writing a checkpoint chunk", err);
            /* A chunk row that went missing (a damaged store) is inserted instead. */
            done = sqlite3_changes(s->db) == 1;
        }
        if (!rc && !done) {
            sqlite3_stmt *st = st_stmt(s, ST_CHUNK_INSERT,
                                       "INSERT INTO checkpoint_chunks(ckpt, idx, data)"
                                       " VALUES(?,?,?)", &rc, err);
            if (!st)
                break;
            sqlite3_bind_int64(st, 1, ckpt);
            sqlite3_bind_int64(st, 2, idx);
            sqlite3_bind_blob64(st, 3, blob + off, n, SQLITE_STATIC);
            int r = sqlite3_step(st);
            sqlite3_reset(st);
            if (r != SQLITE_DONE)
                rc = st_fail(s, r, "writing a checkpoint chunk", err);
        }
    }
    if (!rc && reuse)
        rc = run2(s, ST_CHUNK_TRIM, "DELETE FROM checkpoint_chunks WHERE ckpt=?1 AND idx>=?2",
                  ckpt, idx, "replacing a checkpoint", err);
    return rc;
}

/* Finds the row the new checkpoint goes into: the job's checkpoint at the same step (a pause
 * right after a periodic checkpoint), else, when keep_last of them are stored already and
 * the oldest is older than `step`, that oldest one (retention would delete it right after).
 * *ckpt = 0 means "insert a new row". *count receives how many checkpoints the job has after
 * the commit, or -1 when not known. */
static int pick_row(store_t *s, int64_t num, int64_t step, int keep_last, int64_t *ckpt,
                    int64_t *old_chunks, int64_t *count, an_err *err)
{
    int rc;
    *ckpt = 0;
    *old_chunks = 0;
    *count = -1;
    sqlite3_stmt *st = st_stmt(s, ST_CKPT_AT,
                               "SELECT id, chunks FROM checkpoints WHERE job=?1 AND step=?2",
                               &rc, err);
    if (!st)
        return rc;
    sqlite3_bind_int64(st, 1, num);
    sqlite3_bind_int64(st, 2, step);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        *ckpt = sqlite3_column_int64(st, 0);
        *old_chunks = sqlite3_column_int64(st, 1);
    } else if (r != SQLITE_DONE) {
        rc = st_fail(s, r, "finding a checkpoint", err);
    }
    sqlite3_reset(st);
    if (rc || *ckpt || keep_last <= 0)
        return rc;
    st = st_stmt(s, ST_CKPT_OLDEST,
                 "SELECT id, step, chunks, (SELECT count(*) FROM checkpoints WHERE job=?1)"
                 " FROM checkpoints WHERE job=?1 ORDER BY step LIMIT 1", &rc, err);
    if (!st)
        return rc;
    sqlite3_bind_int64(st, 1, num);
    r = sqlite3_step(st);
    *count = 1;
    if (r == SQLITE_ROW) {
        int64_t n = sqlite3_column_int64(st, 3);
        if (n >= keep_last && sqlite3_column_int64(st, 1) < step) {
            *ckpt = sqlite3_column_int64(st, 0);
            *old_chunks = sqlite3_column_int64(st, 2);
            *count = n;
        } else {
            *count = n + 1;
        }
    } else if (r != SQLITE_DONE) {
        rc = st_fail(s, r, "finding the oldest checkpoint", err);
    }
    sqlite3_reset(st);
    return rc;
}

/* Stores the checkpoint of job `num` inside the caller's transaction (see
 * store_checkpoint_commit, without the progress). */
static int put_checkpoint(store_t *s, int64_t num, int64_t step, double loss,
                          const void *blob, size_t len, size_t chunk, const store_keep *keep,
                          an_err *err)
{
    int64_t ckpt, old, count;
    int keep_last = keep->keep_last, careful = 0;
    /* Pins or keep_best: no reuse of the oldest row, retention by ckptkeep.c. */
    int rc = st_ckpt_careful(s, num, keep, &careful, err);
    if (!rc)
        rc = pick_row(s, num, step, careful ? 0 : keep_last, &ckpt, &old, &count, err);
    if (rc)
        return rc;
    int reuse = ckpt != 0;
    char now[24];
    st_now(now);
    sqlite3_stmt *st = reuse ? st_stmt(s, ST_CKPT_REUSE,
                                       "UPDATE checkpoints SET step=?2, loss=?3, bytes=?4,"
                                       " chunks=?5, created_at=?6 WHERE id=?1", &rc, err)
                             : st_stmt(s, ST_CKPT_INSERT,
                                       "INSERT INTO checkpoints(job, step, loss, bytes, chunks,"
                                       " created_at) VALUES(?1,?2,?3,?4,?5,?6)", &rc, err);
    if (!st)
        return rc;
    sqlite3_bind_int64(st, 1, reuse ? ckpt : num);
    sqlite3_bind_int64(st, 2, step);
    st_bind_num(st, 3, loss);
    sqlite3_bind_int64(st, 4, (int64_t)len);
    sqlite3_bind_int64(st, 5, (int64_t)((len + chunk - 1) / chunk));
    sqlite3_bind_text(st, 6, now, -1, SQLITE_STATIC);
    int r = sqlite3_step(st);
    if (r != SQLITE_DONE)
        rc = st_fail(s, r, "recording a checkpoint", err);
    else if (!reuse)
        ckpt = sqlite3_last_insert_rowid(s->db);
    sqlite3_reset(st);
    if (!rc)
        rc = write_chunks(s, ckpt, reuse, old, blob, len, chunk, err);
    if (!rc)
        rc = run2(s, ST_CKPT_JOB, "UPDATE jobs SET last_checkpoint_step=?2 WHERE num=?1", num,
                  step, "recording the checkpoint on the job", err);
    if (!rc && careful)
        return st_ckpt_retire_kept(s, num, keep, err);
    /* Retention beyond the reused row: only when more than keep_last may be stored. */
    if (!rc && keep_last > 0 && (count < 0 || count > keep_last)) {
        rc = run2(s, ST_CKPT_RETIRE_CHUNKS,
                  "DELETE FROM checkpoint_chunks WHERE ckpt IN (SELECT id FROM checkpoints "
                  "WHERE job=?1 ORDER BY step DESC LIMIT -1 OFFSET ?2)",
                  num, keep_last, "deleting old checkpoints", err);
        if (!rc)
            rc = run2(s, ST_CKPT_RETIRE,
                      "DELETE FROM checkpoints WHERE id IN (SELECT id FROM checkpoints "
                      "WHERE job=?1 ORDER BY step DESC LIMIT -1 OFFSET ?2)",
                      num, keep_last, "deleting old checkpoints", err);
    }
    return rc;
}

int store_checkpoint_commit_with_metrics(store_t *s, const char *id, const store_metric *rows,
                                         size_t n, const store_val_metric *val, size_t nval,
                                         int64_t step, double loss, const void *blob,
                                         size_t len, int keep_last, const store_progress *p,
                                         an_err *err)
{
    store_keep k = {.keep_last = keep_last};
    return store_checkpoint_commit_kept(s, id, rows, n, val, nval, step, loss, blob, len, &k,
                                        p, err);
}

int store_checkpoint_commit_kept(store_t *s, const char *id, const store_metric *rows,
                                 size_t n, const store_val_metric *val, size_t nval,
                                 int64_t step, double loss, const void *blob, size_t len,
                                 const store_keep *keep, const store_progress *p, an_err *err)
{
    return store_checkpoint_commit_fp16(s, id, rows, n, val, nval, NULL, 0, step, loss, blob,
                                        len, keep, p, err);
}

int store_checkpoint_commit_fp16(store_t *s, const char *id, const store_metric *rows,
                                 size_t n, const store_val_metric *val, size_t nval,
                                 const store_fp16_event *ev, size_t nev, int64_t step,
                                 double loss, const void *blob, size_t len,
                                 const store_keep *keep, const store_progress *p, an_err *err)
{
    if (len && !blob)
        return an_failc(err, -EINVAL, NULL, "expected a %zu-byte checkpoint, got NULL", len);
    if (step < 0)
        return an_fail(err, "step", "expected a checkpoint step >= 0, got %" PRId64, step);
    if (p && (p->n_lr < 0 || p->n_lr > STORE_MAX_LR))
        return an_fail(err, "lr", "expected 0..%d learning-rate groups", STORE_MAX_LR);
    int rc = st_metrics_check(rows, n, val, nval, err);
    if (!rc)
        rc = st_fp16_check(ev, nev, err);
    if (rc)
        return rc;
    /* Chunks are read back with int-sized blob I/O: keep them well under 2 GiB. */
    size_t chunk = s->chunk_size ? s->chunk_size : STORE_CHUNK_SIZE;
    if (chunk > ((size_t)1 << 30))
        chunk = (size_t)1 << 30;
    if (len > (size_t)INT64_MAX)
        return an_failc(err, -E2BIG, NULL, "checkpoint of %zu bytes is too large", len);

    rc = st_begin(s, err);
    if (rc)
        return rc;
    int64_t num = 0;
    rc = st_job_num(s, id, &num, NULL, err);
    if (!rc)
        rc = st_metrics_put_all(s, num, rows, n, val, nval, err);
    if (!rc)
        rc = st_fp16_put(s, num, ev, nev, err);
    if (!rc)
        rc = put_checkpoint(s, num, step, loss, blob, len, chunk, keep, err);
    if (!rc && p)
        rc = st_write_progress(s, num, p, err);
    s->big_commit = 1; /* the WAL's copy into the database is left to others (walcopy.h) */
    rc = st_end(s, rc, err);
    s->big_commit = 0;
    return rc;
}

int store_checkpoint_commit(store_t *s, const char *id, int64_t step, double loss,
                            const void *blob, size_t len, int keep_last,
                            const store_progress *p, an_err *err)
{
    return store_checkpoint_commit_with_metrics(s, id, NULL, 0, NULL, 0, step, loss, blob, len,
                                                keep_last, p, err);
}

int store_checkpoint_list(store_t *s, const char *id, store_checkpoint_info **list, size_t *n,
                          an_err *err)
{
    *list = NULL;
    *n = 0;
    int64_t num;
    int rc = st_job_num(s, id, &num, NULL, err);
    if (rc)
        return rc;
    sqlite3_stmt *st;
    rc = st_prepare(s, "SELECT step, created_at, bytes, loss FROM checkpoints WHERE job=?"
                       " ORDER BY step", &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, num);
    size_t cap = 0;
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        void *grown = st_grow(*list, &cap, *n, sizeof **list, 8);
        if (!grown) {
            rc = an_failc(err, -ENOMEM, NULL, "out of memory listing checkpoints");
            break;
        }
        *list = grown;
        store_checkpoint_info *c = &(*list)[*n];
        c->step = sqlite3_column_int64(st, 0);
        st_col_copy(st, 1, c->created_at, sizeof c->created_at);
        c->bytes = sqlite3_column_int64(st, 2);
        c->loss = st_col_num(st, 3);
        c->pinned = c->best = 0; /* store_checkpoint_marks */
        (*n)++;
    }
    if (!rc && r != SQLITE_DONE)
        rc = st_fail(s, r, "listing checkpoints", err);
    sqlite3_finalize(st);
    if (rc) {
        free(*list);
        *list = NULL;
        *n = 0;
    }
    return rc;
}

/* Reads the chunks of checkpoint `ckpt` (expected: nchunks chunks adding up to len bytes)
 * into dst. */
#define READ_PIECE ((size_t)1 << 20) /* what a sink gets at a time */

/* Reads a checkpoint's chunks in order: into dst (len bytes), or, with dst NULL, through a
 * buffer of READ_PIECE bytes handed to `sink`. */
static int read_chunks(store_t *s, int64_t ckpt, int64_t nchunks, unsigned char *dst,
                       size_t len, store_chunk_sink sink, void *ctx, an_err *err)
{
    unsigned char *piece = NULL;
    sqlite3_stmt *st;
    int rc = st_prepare(s, "SELECT rowid, idx, length(data) FROM checkpoint_chunks"
                           " WHERE ckpt=? ORDER BY idx", &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, ckpt);
    sqlite3_blob *b = NULL;
    size_t off = 0;
    int64_t want = 0;
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t rowid = sqlite3_column_int64(st, 0);
        int64_t idx = sqlite3_column_int64(st, 1);
        int64_t n = sqlite3_column_int64(st, 2);
        if (idx != want || n < 0 || (uint64_t)n > len - off) {
            rc = an_failc(err, -EPROTO, NULL,
                          "checkpoint chunk %" PRId64 " does not fit: expected chunk %" PRId64
                          " within %zu bytes, got %" PRId64 " bytes",
                          idx, want, len - off, n);
            break;
        }
        if (!dst && !piece) {
            piece = malloc(READ_PIECE);
            if (!piece) {
                rc = an_failc(err, -ENOMEM, NULL, "out of memory reading a checkpoint");
                break;
            }
        }
        int x = b ? sqlite3_blob_reopen(b, rowid)
                  : sqlite3_blob_open(s->db, "main", "checkpoint_chunks", "data", rowid, 0, &b);
        if (x == SQLITE_OK && dst)
            x = sqlite3_blob_read(b, dst + off, (int)n, 0);
        for (int64_t at = 0; x == SQLITE_OK && !dst && at < n; at += READ_PIECE) {
            int m = n - at < (int64_t)READ_PIECE ? (int)(n - at) : (int)READ_PIECE;
            x = sqlite3_blob_read(b, piece, m, (int)at);
            if (x == SQLITE_OK && (rc = sink(ctx, piece, (size_t)m, err)) != 0)
                break;
        }
        if (rc)
            break;
        if (x != SQLITE_OK) {
            rc = st_fail(s, x, "reading a checkpoint chunk", err);
            break;
        }
        off += (size_t)n;
        want++;
    }
    if (!rc && r != SQLITE_DONE)
        rc = st_fail(s, r, "reading checkpoint chunks", err);
    if (!rc && (want != nchunks || off != len))
        rc = an_failc(err, -EPROTO, NULL,
                      "checkpoint is incomplete: expected %" PRId64 " chunks and %zu bytes, got "
                      "%" PRId64 " chunks and %zu bytes", nchunks, len, want, off);
    if (b)
        sqlite3_blob_close(b);
    sqlite3_finalize(st);
    free(piece);
    return rc;
}

/* The checkpoint row of job `id` at `step` (< 0: the latest); inside a read transaction
 * when its chunks are read next. */
static int find_checkpoint(store_t *s, const char *id, int64_t step, int64_t *ckpt,
                           int64_t *bytes, int64_t *nchunks, int64_t *at, an_err *err)
{
    int64_t num = 0;
    int rc = st_job_num(s, id, &num, NULL, err);
    sqlite3_stmt *st = NULL;
    if (!rc)
        rc = st_prepare(s,
                        step < 0 ? "SELECT id, bytes, chunks, step FROM checkpoints WHERE job=?1"
                                   " ORDER BY step DESC LIMIT 1"
                                 : "SELECT id, bytes, chunks, step FROM checkpoints WHERE job=?1"
                                   " AND step=?2",
                        &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, num);
    if (step >= 0)
        sqlite3_bind_int64(st, 2, step);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        *ckpt = sqlite3_column_int64(st, 0);
        *bytes = sqlite3_column_int64(st, 1);
        *nchunks = sqlite3_column_int64(st, 2);
        *at = sqlite3_column_int64(st, 3);
    } else if (r == SQLITE_DONE) {
        if (step < 0)
            rc = an_failc(err, -ENOENT, NULL, "job %s has no checkpoint", id);
        else
            rc = an_failc(err, -ENOENT, NULL, "job %s has no checkpoint at step %" PRId64, id,
                          step);
    } else {
        rc = st_fail(s, r, "finding a checkpoint", err);
    }
    sqlite3_finalize(st);
    if (!rc && (*bytes < 0 || (uint64_t)*bytes > SIZE_MAX - 1))
        rc = an_failc(err, -EPROTO, NULL, "checkpoint records an impossible size %" PRId64,
                      *bytes);
    return rc;
}

int store_checkpoint_exists(store_t *s, const char *id, int64_t step, an_err *err)
{
    int64_t ckpt = 0, bytes = 0, nchunks = 0, at = 0;
    return find_checkpoint(s, id, step, &ckpt, &bytes, &nchunks, &at, err);
}

int store_checkpoint_read(store_t *s, const char *id, int64_t step, void **buf, size_t *len,
                          int64_t *step_out, an_err *err)
{
    *buf = NULL;
    *len = 0;
    /* One read transaction, so the row and its chunks come from the same snapshot even if a
     * writer replaces or retires this checkpoint meanwhile. */
    int rc = st_exec(s, "BEGIN", "starting a read transaction", err);
    if (rc)
        return rc;
    int64_t ckpt = 0, bytes = 0, nchunks = 0, at = 0;
    rc = find_checkpoint(s, id, step, &ckpt, &bytes, &nchunks, &at, err);
    unsigned char *dst = NULL;
    if (!rc) {
        dst = malloc(bytes ? (size_t)bytes : 1);
        if (!dst)
            rc = an_failc(err, -ENOMEM, NULL, "out of memory for a %" PRId64 "-byte checkpoint",
                          bytes);
    }
    if (!rc)
        rc = read_chunks(s, ckpt, nchunks, dst, (size_t)bytes, NULL, NULL, err);
    st_rollback(s); /* ends the read transaction */
    if (rc) {
        free(dst);
        return rc;
    }
    *buf = dst;
    *len = (size_t)bytes;
    if (step_out)
        *step_out = at;
    return 0;
}

int store_checkpoint_read_each(store_t *s, const char *id, int64_t step, store_chunk_sink sink,
                               void *ctx, size_t *len, int64_t *step_out, an_err *err)
{
    *len = 0;
    int rc = st_exec(s, "BEGIN", "starting a read transaction", err);
    if (rc)
        return rc;
    int64_t ckpt = 0, bytes = 0, nchunks = 0, at = 0;
    rc = find_checkpoint(s, id, step, &ckpt, &bytes, &nchunks, &at, err);
    if (!rc)
        rc = read_chunks(s, ckpt, nchunks, NULL, (size_t)bytes, sink, ctx, err);
    st_rollback(s);
    if (rc)
        return rc;
    *len = (size_t)bytes;
    if (step_out)
        *step_out = at;
    return 0;
}

int store_checkpoint_steps_text(store_t *s, const char *id, char *buf, size_t size)
{
    if (size)
        buf[0] = '\0';
    store_checkpoint_info *list = NULL;
    size_t n = 0;
    if (store_checkpoint_list(s, id, &list, &n, NULL) != 0)
        return -1;
    size_t len = (size_t)snprintf(buf, size, "%s", n ? "it has checkpoints at steps "
                                                       : "it has none now");
    /* the first ones while they fit, then the last */
    for (size_t i = 0; i < n && len < size; i++) {
        if (len + 32 < size)
            len += (size_t)snprintf(buf + len, size - len, "%s%lld", i ? ", " : "",
                                    (long long)list[i].step);
        else if (i == n - 1)
            len += (size_t)snprintf(buf + len, size - len, ", …, %lld", (long long)list[i].step);
    }
    free(list);
    return (int)n;
}
