/* summary.c — per-block summaries (metric_sums; described in internal.h): written with each
 * block, walked by downsampled queries so that a block inside one bucket costs one small row
 * instead of a decompression. */
#include "store/store.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"
#include "util/util.h"

/* As stored in a block: NaN of the first four columns is the canonical NaN. */
static double canon(double v) { return isnan(v) ? NAN : v; }

int st_summary_put(store_t *s, int64_t num, const store_metric *const *rows, size_t n,
                   an_err *err)
{
    if (n == 0)
        return 0;
    size_t lo = 0, hi = 0;
    for (size_t i = 1; i < n; i++) {
        double v = canon(rows[i]->loss);
        if (st_loss_lt(v, canon(rows[lo]->loss)))
            lo = i;
        else if (st_loss_gt(v, canon(rows[hi]->loss)))
            hi = i;
    }
    int ng = rows[0]->n_lr;
    size_t rl = (size_t)(5 + ng) * 8;
    unsigned char buf[4 * (5 + STORE_MAX_LR) * 8];
    size_t pick[4] = {0, n - 1, lo, hi};
    for (int k = 0; k < 4; k++) {
        const store_metric *m = rows[pick[k]];
        unsigned char *p = buf + (size_t)k * rl;
        le_put_u64(p, (uint64_t)m->step);
        le_put_f64(p + 8, canon(m->loss));
        le_put_f64(p + 16, canon(m->grad_norm));
        le_put_f64(p + 24, canon(m->time));
        le_put_f64(p + 32, canon(m->wall));
        for (int g = 0; g < ng; g++)
            le_put_f64(p + 40 + 8 * (size_t)g, m->lr[g]);
    }
    int rc;
    sqlite3_stmt *st = st_stmt(s, ST_SUM_INSERT,
                               "INSERT OR REPLACE INTO metric_sums(job, first_step, last_step,"
                               " nrows, ngroups, rows) VALUES(?,?,?,?,?,?)", &rc, err);
    if (!st)
        return rc;
    sqlite3_bind_int64(st, 1, num);
    sqlite3_bind_int64(st, 2, rows[0]->step);
    sqlite3_bind_int64(st, 3, rows[n - 1]->step);
    sqlite3_bind_int64(st, 4, (int64_t)n);
    sqlite3_bind_int(st, 5, ng);
    sqlite3_bind_blob(st, 6, buf, (int)(4 * rl), SQLITE_STATIC);
    int r = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return r == SQLITE_DONE ? 0 : st_fail(s, r, "storing a metric block summary", err);
}

/* An integer from a one-row query with ?1 = num, ?2, ?3 bound. */
static int count3(store_t *s, const char *sql, int64_t num, int64_t a, int64_t b, int64_t *out,
                  an_err *err)
{
    sqlite3_stmt *st;
    int rc = st_prepare(s, sql, &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, num);
    sqlite3_bind_int64(st, 2, a);
    sqlite3_bind_int64(st, 3, b);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else
        rc = st_fail(s, r, "counting metric blocks", err);
    sqlite3_finalize(st);
    return rc;
}

/* Feeds the rows of [first, last] of the block starting at bfirst, every column copied. */
static int feed_block(store_t *s, int64_t num, int64_t bfirst, int64_t first, int64_t last,
                      int n_lr, void (*feed)(void *ctx, const st_row *r), void *ctx,
                      st_row *row, int64_t *seen, an_err *err)
{
    st_block_iter it;
    st_block b;
    int rc = st_blocks_open(s, &it, num, bfirst > first ? bfirst : first, last, 0, err);
    if (rc)
        return rc;
    int r = st_blocks_next(&it, &b, 1, err);
    if (r == 1 && b.first == bfirst) {
        size_t i1 = st_block_upper(&b, last);
        int k = b.ng < n_lr ? b.ng : n_lr;
        for (size_t i = st_block_lower(&b, first); i < i1; i++) {
            row->step = st_block_step(&b, i);
            row->loss = st_block_val(&b, ST_COL_LOSS, i);
            row->grad_norm = st_block_val(&b, ST_COL_GRAD_NORM, i);
            row->time = st_block_val(&b, ST_COL_TIME, i);
            row->wall = st_block_val(&b, ST_COL_WALL, i);
            for (int g = 0; g < n_lr; g++)
                row->lr[g] = g < k ? st_block_val(&b, ST_COL_LR + g, i) : NAN;
            feed(ctx, row);
            (*seen)++;
        }
    } else if (r >= 0) {
        rc = an_failc(err, -EPROTO, NULL, "a metric block summary has no block at step %lld",
                      (long long)bfirst);
    } else {
        rc = r;
    }
    st_blocks_close(&it);
    return rc;
}

int st_summary_walk(store_t *s, int64_t num, int64_t first, int64_t last, int n_lr,
                    int (*whole)(void *ctx, int64_t bfirst, int64_t blast),
                    void (*feed)(void *ctx, const st_row *r), void *ctx, int *used,
                    int64_t *seen, an_err *err)
{
    *used = 0;
    *seen = 0;
    /* The block that can hold `first` starts at or before it; every other one inside. */
    int64_t from = first, nb = 0, ns = 0;
    int rc = count3(s, "SELECT coalesce(max(first_step), ?2) FROM metric_blocks"
                       " WHERE job=?1 AND first_step<=?2 AND ?3=?3", num, first, last, &from, err);
    if (!rc)
        rc = count3(s, "SELECT count(*) FROM metric_blocks WHERE job=?1 AND first_step"
                       " BETWEEN ?2 AND ?3", num, from, last, &nb, err);
    if (!rc)
        rc = count3(s, "SELECT count(*) FROM metric_sums WHERE job=?1 AND first_step"
                       " BETWEEN ?2 AND ?3", num, from, last, &ns, err);
    if (rc || nb != ns || nb == 0)
        return rc; /* blocks from before schema 3: the caller scans */
    *used = 1;
    st_row *row = malloc(5 * sizeof *row);
    if (!row)
        return an_failc(err, -ENOMEM, NULL, "out of memory reading block summaries");
    sqlite3_stmt *st = st_stmt(s, ST_SUM_ASC,
                               "SELECT first_step, last_step, nrows, ngroups, rows FROM"
                               " metric_sums WHERE job=?1 AND first_step BETWEEN ?2 AND ?3"
                               " ORDER BY first_step", &rc, err);
    if (st) {
        sqlite3_bind_int64(st, 1, num);
        sqlite3_bind_int64(st, 2, from);
        sqlite3_bind_int64(st, 3, last);
    }
    int r = SQLITE_DONE;
    while (st && !rc && (r = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t bf = sqlite3_column_int64(st, 0), bl = sqlite3_column_int64(st, 1);
        int64_t nrows = sqlite3_column_int64(st, 2), ng = sqlite3_column_int64(st, 3);
        const unsigned char *p = sqlite3_column_blob(st, 4);
        size_t len = (size_t)sqlite3_column_bytes(st, 4);
        if (bl < first)
            continue; /* the block before the range */
        if (bf < first || bl > last || !whole(ctx, bf, bl)) {
            /* The statement stays on this row while the block is read by another one. */
            rc = feed_block(s, num, bf, first, last, n_lr, feed, ctx, &row[4], seen, err);
            continue;
        }
        if (ng < 0 || ng > STORE_MAX_LR || !p || len != 4 * (size_t)(5 + ng) * 8) {
            rc = an_failc(err, -EPROTO, NULL, "the metric block summary at step %lld is damaged",
                          (long long)bf);
            break;
        }
        size_t rl = (size_t)(5 + ng) * 8;
        int n = 0;
        for (int k = 0; k < 4; k++) {
            const unsigned char *q = p + (size_t)k * rl;
            st_row *x = &row[n];
            x->step = (int64_t)le_get_u64(q);
            int dup = 0;
            for (int j = 0; j < n; j++)
                dup |= row[j].step == x->step;
            if (dup)
                continue;
            x->loss = le_get_f64(q + 8);
            x->grad_norm = le_get_f64(q + 16);
            x->time = le_get_f64(q + 24);
            x->wall = le_get_f64(q + 32);
            for (int g = 0; g < n_lr; g++)
                x->lr[g] = g < ng ? le_get_f64(q + 40 + 8 * (size_t)g) : NAN;
            n++;
        }
        for (int a = 1; a < n; a++) /* step order */
            for (int j = a; j > 0 && row[j].step < row[j - 1].step; j--) {
                row[4] = row[j];
                row[j] = row[j - 1];
                row[j - 1] = row[4];
            }
        for (int j = 0; j < n; j++)
            feed(ctx, &row[j]);
        *seen += nrows;
    }
    if (st && !rc && r != SQLITE_DONE)
        rc = st_fail(s, r, "reading metric block summaries", err);
    if (st)
        sqlite3_reset(st);
    free(row);
    return rc;
}
