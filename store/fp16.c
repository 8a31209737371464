/* fp16.c — a fp16 job's loss-scale events: one row per step whose scale differs from the
 * step before's, or that overflowed (was skipped), plus the job's first step. A scaler
 * changes its scale every loss_scale_window steps at most once things settle, so the table
 * stays a few rows per thousand steps and the metric blocks keep their format. The scale in
 * force at any step is the one of the last event at or before it. */
#include "store/fp16.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>

#include "store/internal.h"

int st_fp16_check(const store_fp16_event *ev, size_t n, an_err *err)
{
    if (n && !ev)
        return an_failc(err, -EINVAL, NULL, "expected %zu fp16 events, got NULL", n);
    for (size_t i = 0; i < n; i++) {
        if (ev[i].step < 0)
            return an_fail(err, "step", "expected step >= 0 in fp16 event %zu, got %" PRId64,
                           i, ev[i].step);
        if (!(ev[i].loss_scale > 0) || !isfinite(ev[i].loss_scale))
            return an_fail(err, "loss_scale",
                           "expected a finite loss_scale > 0 in fp16 event %zu, got %g", i,
                           ev[i].loss_scale);
    }
    return 0;
}

int st_fp16_put(store_t *s, int64_t num, const store_fp16_event *ev, size_t n, an_err *err)
{
    if (n == 0)
        return 0;
    int rc;
    sqlite3_stmt *st = st_stmt(s, ST_FP16_PUT,
                               "INSERT OR REPLACE INTO fp16_events(job, step, loss_scale, skipped)"
                               " VALUES(?,?,?,?)", &rc, err);
    if (!st)
        return rc;
    for (size_t i = 0; !rc && i < n; i++) {
        sqlite3_bind_int64(st, 1, num);
        sqlite3_bind_int64(st, 2, ev[i].step);
        sqlite3_bind_double(st, 3, ev[i].loss_scale);
        sqlite3_bind_int(st, 4, ev[i].skipped != 0);
        int r = sqlite3_step(st);
        sqlite3_reset(st);
        if (r != SQLITE_DONE)
            rc = st_fail(s, r, "inserting fp16 events", err);
    }
    return rc;
}

int store_fp16_events(store_t *s, const char *id, int64_t from, int64_t to,
                      store_fp16_event **ev, size_t *n, an_err *err)
{
    *ev = NULL;
    *n = 0;
    int64_t num;
    int rc = st_job_num(s, id, &num, NULL, err);
    if (rc)
        return rc;
    if (to < 0)
        to = INT64_MAX;
    /* The event in force at `from` (the last one at or before it), then those after it. */
    sqlite3_stmt *st;
    rc = st_prepare(s, "SELECT step, loss_scale, skipped FROM ("
                       " SELECT * FROM (SELECT step, loss_scale, skipped FROM fp16_events"
                       "  WHERE job=?1 AND step<=?2 ORDER BY step DESC LIMIT 1)"
                       " UNION ALL"
                       " SELECT step, loss_scale, skipped FROM fp16_events"
                       "  WHERE job=?1 AND step>?2 AND step<=?3)"
                       " ORDER BY step", &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, num);
    sqlite3_bind_int64(st, 2, from);
    sqlite3_bind_int64(st, 3, to);
    size_t cap = 0;
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        void *grown = st_grow(*ev, &cap, *n, sizeof **ev, 16);
        if (!grown) {
            rc = an_failc(err, -ENOMEM, NULL, "out of memory reading fp16 events");
            break;
        }
        *ev = grown;
        store_fp16_event *x = &(*ev)[(*n)++];
        x->step = sqlite3_column_int64(st, 0);
        x->loss_scale = sqlite3_column_double(st, 1);
        x->skipped = sqlite3_column_int(st, 2);
    }
    if (!rc && r != SQLITE_DONE)
        rc = st_fail(s, r, "reading fp16 events", err);
    sqlite3_finalize(st);
    if (rc) {
        free(*ev);
        *ev = NULL;
        *n = 0;
    }
    return rc;
}

int st_fp16_cursor_open(store_t *s, store_metrics_cursor *c, an_err *err)
{
    c->has_fp16 = 0;
    c->fp16_scale = NAN;
    c->fp16_pos = c->first;
    /* Whether the job has any event at all (not only in this range), so every slice of one
     * job's CSV has the same header; and the one in force before its first row. */
    sqlite3_stmt *st;
    int rc = st_prepare(s, "SELECT (SELECT 1 FROM fp16_events WHERE job=?1 LIMIT 1),"
                           " (SELECT loss_scale FROM fp16_events WHERE job=?1 AND step<?2"
                           "  ORDER BY step DESC LIMIT 1)", &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, c->num);
    sqlite3_bind_int64(st, 2, c->first);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        c->has_fp16 = sqlite3_column_type(st, 0) != SQLITE_NULL;
        if (sqlite3_column_type(st, 1) != SQLITE_NULL)
            c->fp16_scale = sqlite3_column_double(st, 1);
    } else {
        rc = st_fail(s, r, "looking for fp16 events", err);
    }
    sqlite3_finalize(st);
    return rc;
}

int st_fp16_page(store_t *s, const store_metrics_cursor *c, int64_t lo, store_fp16_event *ev,
                 size_t max, size_t *n, an_err *err)
{
    *n = 0;
    if (!c->has_fp16 || c->first < 0 || lo > c->last)
        return 0;
    sqlite3_stmt *st;
    int rc = st_prepare(s, "SELECT step, loss_scale, skipped FROM fp16_events WHERE job=?1"
                           " AND step>=?2 AND step<=?3 ORDER BY step LIMIT ?4", &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, c->num);
    sqlite3_bind_int64(st, 2, lo);
    sqlite3_bind_int64(st, 3, c->last);
    sqlite3_bind_int64(st, 4, (int64_t)max);
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW && *n < max) {
        ev[*n].step = sqlite3_column_int64(st, 0);
        ev[*n].loss_scale = sqlite3_column_double(st, 1);
        ev[*n].skipped = sqlite3_column_int(st, 2);
        (*n)++;
    }
    if (r != SQLITE_DONE && r != SQLITE_ROW)
        rc = st_fail(s, r, "reading fp16 events", err);
    sqlite3_finalize(st);
    return rc;
}

int store_metrics_append_fp16(store_t *s, const char *id, const store_metric *rows, size_t n,
                              const store_val_metric *val, size_t nval,
                              const store_fp16_event *ev, size_t nev, const store_progress *p,
                              an_err *err)
{
    int rc = st_metrics_check(rows, n, val, nval, err);
    if (!rc)
        rc = st_fp16_check(ev, nev, err);
    if (rc)
        return rc;
    if (p && (p->n_lr < 0 || p->n_lr > STORE_MAX_LR))
        return an_fail(err, "lr", "expected 0..%d learning-rate groups", STORE_MAX_LR);
    rc = st_begin(s, err);
    if (rc)
        return rc;
    int64_t num;
    rc = st_job_num(s, id, &num, NULL, err);
    if (!rc)
        rc = st_metrics_put_all(s, num, rows, n, val, nval, err);
    if (!rc)
        rc = st_fp16_put(s, num, ev, nev, err);
    if (!rc && p)
        rc = st_write_progress(s, num, p, err);
    return st_end(s, rc, err);
}
