/* metrics.c — per-step metric rows: batched appends, range queries with extremes-keeping
 * downsampling, CSV export, validation rows.
 *
 * Rows are stored in blocks, one per appended batch (blocks.c, layout in internal.h), keyed
 * by (job, first_step): a range query seeks to the block holding its first step and walks
 * the blocks after it, decoding only the steps and losses of the rows in range, so a million
 * rows downsample in one pass without any precomputed summary. */
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonnum.h"
#include "store/internal.h"

_Static_assert(sizeof(store_metric) % 64 == 0, "a metric row is a whole number of cache lines");

static int check_rows(const store_metric *rows, size_t n, an_err *err)
{
    for (size_t i = 0; i < n; i++) {
        if (rows[i].n_lr < 0 || rows[i].n_lr > STORE_MAX_LR)
            return an_fail(err, "lr", "expected 0..%d learning-rate groups in row %zu, got %d",
                           STORE_MAX_LR, i, rows[i].n_lr);
        if (rows[i].step < 0)
            return an_fail(err, "step", "expected step >= 0 in row %zu, got %" PRId64, i,
                           rows[i].step);
    }
    return 0;
}

int st_metrics_check(const store_metric *rows, size_t n, const store_val_metric *val,
                     size_t nval, an_err *err)
{
    if (n && !rows)
        return an_failc(err, -EINVAL, NULL, "expected %zu metric rows, got NULL", n);
    if (nval && !val)
        return an_failc(err, -EINVAL, NULL, "expected %zu validation rows, got NULL", nval);
    int rc = check_rows(rows, n, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < nval; i++)
        if (val[i].step < 0)
            return an_fail(err, "step", "expected step >= 0 in validation row %zu, got %" PRId64,
                           i, val[i].step);
    return 0;
}

/* Inserts validation rows of job `num` inside the caller's transaction. */
static int val_put(store_t *s, int64_t num, const store_val_metric *rows, size_t n, an_err *err)
{
    if (n == 0)
        return 0;
    int rc;
    sqlite3_stmt *st = st_stmt(s, ST_VAL_PUT,
                               "INSERT OR REPLACE INTO val_metrics(job, step, val_loss, val_acc)"
                               " VALUES(?,?,?,?)", &rc, err);
    if (!st)
        return rc;
    for (size_t i = 0; !rc && i < n; i++) {
        sqlite3_bind_int64(st, 1, num);
        sqlite3_bind_int64(st, 2, rows[i].step);
        st_bind_num(st, 3, rows[i].val_loss);
        st_bind_num(st, 4, rows[i].val_acc);
        int r = sqlite3_step(st);
        sqlite3_reset(st);
        if (r != SQLITE_DONE)
            rc = st_fail(s, r, "inserting validation rows", err);
    }
    return rc;
}

int st_metrics_put_all(store_t *s, int64_t num, const store_metric *rows, size_t n,
                       const store_val_metric *val, size_t nval, an_err *err)
{
    int rc = st_metrics_put(s, num, rows, n, err);
    if (!rc)
        rc = val_put(s, num, val, nval, err);
    return rc;
}

int store_metrics_append_with_val(store_t *s, const char *id, const store_metric *rows,
                                  size_t n, const store_val_metric *val, size_t nval,
                                  const store_progress *p, an_err *err)
{
    return store_metrics_append_fp16(s, id, rows, n, val, nval, NULL, 0, p, err);
}

int store_metrics_append(store_t *s, const char *id, const store_metric *rows, size_t n,
                         const store_progress *p, an_err *err)
{
    return store_metrics_append_with_val(s, id, rows, n, NULL, 0, p, err);
}

int store_val_append(store_t *s, const char *id, const store_val_metric *rows, size_t n,
                     an_err *err)
{
    return store_metrics_append_with_val(s, id, NULL, 0, rows, n, NULL, err);
}

void store_series_free(store_series *m)
{
    if (!m)
        return;
    free(m->step);
    free(m->loss);
    free(m->lr);
    free(m->grad_norm);
    free(m->time);
    free(m->wall);
    memset(m, 0, sizeof *m);
}

int st_series_alloc(store_series *m, size_t cap, int n_lr)
{
    memset(m, 0, sizeof *m);
    m->n_lr = n_lr;
    size_t c = cap ? cap : 1;
    m->step = malloc(c * sizeof *m->step);
    m->loss = malloc(c * sizeof *m->loss);
    m->lr = malloc(c * (size_t)(n_lr ? n_lr : 1) * sizeof *m->lr);
    m->grad_norm = malloc(c * sizeof *m->grad_norm);
    m->time = malloc(c * sizeof *m->time);
    m->wall = malloc(c * sizeof *m->wall);
    if (!m->step || !m->loss || !m->lr || !m->grad_norm || !m->time || !m->wall) {
        store_series_free(m);
        return -ENOMEM;
    }
    return 0;
}

typedef st_row mrow; /* a candidate row of a bucket, every column copied out */

/* Row i of block b with n_lr groups: groups the block lacks read as NaN. */
static void read_row(const st_block *b, size_t i, mrow *r, int64_t step, double loss, int n_lr)
{
    r->step = step;
    r->loss = loss;
    r->grad_norm = st_block_val(b, ST_COL_GRAD_NORM, i);
    r->time = st_block_val(b, ST_COL_TIME, i);
    r->wall = st_block_val(b, ST_COL_WALL, i);
    int k = b->ng < n_lr ? b->ng : n_lr;
    for (int g = 0; g < k; g++)
        r->lr[g] = st_block_val(b, ST_COL_LR + g, i);
    for (int g = k; g < n_lr; g++)
        r->lr[g] = NAN;
}

void st_series_emit(store_series *m, size_t cap, const mrow *r)
{
    size_t i = m->n;
    m->step[i] = r->step;
    m->loss[i] = r->loss;
    m->grad_norm[i] = r->grad_norm;
    m->time[i] = r->time;
    m->wall[i] = r->wall;
    for (int g = 0; g < m->n_lr; g++)
        m->lr[(size_t)g * cap + i] = r->lr[g];
    m->n++;
}

#define loss_gt st_loss_gt
#define loss_lt st_loss_lt

/* First and last step of a job's rows in [from, to] and the lr group count of the first row
 * (its block's), reading the blocks at the two ends of the range only. *first = -1 when the
 * range is empty; *n_lr is then the newest block's (0 for a job without rows). */
int st_range_ends(store_t *s, int64_t num, int64_t from, int64_t to, int64_t *first,
                      int64_t *last, int *n_lr, an_err *err)
{
    st_block_iter it;
    st_block b;
    *first = *last = -1;
    *n_lr = 0;
    int rc = st_blocks_open(s, &it, num, from, to, 0, err);
    if (rc)
        return rc;
    int r;
    while ((r = st_blocks_next(&it, &b, 0, err)) == 1) {
        /* A sparse block can span the range and still hold no step inside it. */
        size_t i = st_block_lower(&b, from);
        if (i < b.n && st_block_step(&b, i) <= to) {
            *first = st_block_step(&b, i);
            *n_lr = b.ng;
            break;
        }
    }
    st_blocks_close(&it);
    if (r < 0)
        return r;
    if (*first < 0) {
        /* An empty range still has the job's lr groups (one array each in an answer): its
         * newest block's, when it has rows at all. */
        rc = st_blocks_open(s, &it, num, 0, INT64_MAX, 1, err);
        if (rc)
            return rc;
        r = st_blocks_next(&it, &b, 0, err);
        if (r == 1)
            *n_lr = b.ng;
        st_blocks_close(&it);
        return r < 0 ? r : 0;
    }
    rc = st_blocks_open(s, &it, num, from, to, 1, err);
    if (rc)
        return rc;
    while ((r = st_blocks_next(&it, &b, 0, err)) == 1) {
        size_t i = st_block_upper(&b, to);
        if (i > 0 && st_block_step(&b, i - 1) >= from) {
            *last = st_block_step(&b, i - 1);
            break;
        }
    }
    st_blocks_close(&it);
    if (r < 0)
        return r;
    if (*last < *first) /* the first row is in range, so a last one exists */
        return an_failc(err, -EPROTO, NULL, "metric blocks of a job overlap near step %" PRId64,
                        *first);
    return 0;
}

/* Number of rows with first <= step <= last; reads blobs of sparse blocks only. */
static int count_rows(store_t *s, int64_t num, int64_t first, int64_t last, int64_t *count,
                      an_err *err)
{
    st_block_iter it;
    st_block b;
    *count = 0;
    int rc = st_blocks_open(s, &it, num, first, last, 0, err);
    if (rc)
        return rc;
    int r;
    while ((r = st_blocks_next(&it, &b, 0, err)) == 1)
        *count += (int64_t)(st_block_upper(&b, last) - st_block_lower(&b, first));
    st_blocks_close(&it);
    return r < 0 ? r : 0;
}

/* Emits a bucket's points in step order, each row once: its first and last row, then its
 * smallest and largest loss, the first `nsel` (1..4) of those four in that priority. */
void st_series_bucket(store_series *m, size_t cap, const mrow *first, const mrow *last,
                      const mrow *lo, const mrow *hi, int nsel)
{
    const mrow *c[4] = {first, last, lo, hi};
    const mrow *pick[4];
    int n = 0;
    for (int k = 0; k < nsel && k < 4; k++) {
        int dup = 0;
        for (int j = 0; j < n; j++)
            dup |= pick[j]->step == c[k]->step;
        if (!dup)
            pick[n++] = c[k];
    }
    for (int a = 1; a < n; a++) /* at most four: insertion sort by step */
        for (int j = a; j > 0 && pick[j]->step < pick[j - 1]->step; j--) {
            const mrow *t = pick[j];
            pick[j] = pick[j - 1];
            pick[j - 1] = t;
        }
    for (int j = 0; j < n && m->n < cap; j++)
        st_series_emit(m, cap, pick[j]);
}

/* One pass over the rows with first <= step <= last. With width == 0 every row is emitted
 * (at most cap); otherwise rows fall into buckets of `width` steps and each bucket emits its
 * first and last row and its extremes (emit_bucket, nsel of them). *seen receives the number
 * of rows walked. */
static int scan(store_t *s, int64_t num, int64_t first, int64_t last, int64_t width, int nsel,
                store_series *out, size_t cap, int64_t *seen, an_err *err)
{
    st_block_iter it;
    st_block b;
    int rc = st_blocks_open(s, &it, num, first, last, 0, err);
    if (rc)
        return rc;
    int n_lr = out->n_lr;
    /* These rows are large (every lr group): keep them off the stack of a pool thread. */
    mrow *rw = malloc(4 * sizeof *rw);
    if (!rw) {
        st_blocks_close(&it);
        return an_failc(err, -ENOMEM, NULL, "out of memory downsampling metrics");
    }
    mrow *fr = &rw[0], *lr = &rw[1], *lo = &rw[2], *hi = &rw[3];
    int64_t cur = -1; /* bucket being collected; -1 = none */
    int64_t n = 0;
    int r;
    while ((r = st_blocks_next(&it, &b, 1, err)) == 1) {
        size_t i0 = st_block_lower(&b, first), i1 = st_block_upper(&b, last);
        n += (int64_t)(i1 - i0);
        for (size_t i = i0; i < i1; i++) {
            int64_t step = st_block_step(&b, i);
            double loss = st_block_val(&b, ST_COL_LOSS, i);
            if (width == 0) {
                if (out->n < cap) {
                    read_row(&b, i, lo, step, loss, n_lr);
                    st_series_emit(out, cap, lo);
                }
                continue;
            }
            int64_t bk = (step - first) / width;
            if (bk != cur) {
                if (cur >= 0)
                    st_series_bucket(out, cap, fr, lr, lo, hi, nsel);
                cur = bk;
                read_row(&b, i, fr, step, loss, n_lr);
                *lo = *hi = *lr = *fr;
                continue;
            }
            /* Columns beyond loss are copied only for a new extreme, and for the row that
             * may be the bucket's last (the next row is in another bucket or block). */
            if (loss_lt(loss, lo->loss))
                read_row(&b, i, lo, step, loss, n_lr);
            else if (loss_gt(loss, hi->loss))
                read_row(&b, i, hi, step, loss, n_lr);
            if (i + 1 == i1 || (st_block_step(&b, i + 1) - first) / width != bk)
                read_row(&b, i, lr, step, loss, n_lr);
        }
    }
    st_blocks_close(&it);
    if (r >= 0 && width > 0 && cur >= 0)
        st_series_bucket(out, cap, fr, lr, lo, hi, nsel);
    free(rw);
    if (r < 0)
        return r;
    *seen = n;
    return 0;
}

/* The bucket state of a downsampling pass fed whole rows (scan_summaries). */
typedef struct bucketer {
    store_series *out;
    size_t cap;
    int nsel;
    int64_t first, width, cur;
    mrow *fr, *lr, *lo, *hi;
} bucketer;

static int bk_whole(void *ctx, int64_t bf, int64_t bl)
{
    bucketer *k = ctx;
    return (bf - k->first) / k->width == (bl - k->first) / k->width;
}

static void bk_feed(void *ctx, const st_row *r)
{
    bucketer *k = ctx;
    int64_t b = (r->step - k->first) / k->width;
    if (b != k->cur) {
        if (k->cur >= 0)
            st_series_bucket(k->out, k->cap, k->fr, k->lr, k->lo, k->hi, k->nsel);
        k->cur = b;
        *k->fr = *k->lr = *k->lo = *k->hi = *r;
        return;
    }
    if (loss_lt(r->loss, k->lo->loss))
        *k->lo = *r;
    else if (loss_gt(r->loss, k->hi->loss))
        *k->hi = *r;
    *k->lr = *r;
}

/* scan() for wide buckets: a block that lies inside one bucket is taken from its summary
 * (first, last, extremes), the others row by row. *used 0 when the range has blocks without
 * summaries (nothing emitted; scan then does it). */
static int scan_summaries(store_t *s, int64_t num, int64_t first, int64_t last, int64_t width,
                          int nsel, store_series *out, size_t cap, int64_t *seen, int *used,
                          an_err *err)
{
    mrow *rw = malloc(4 * sizeof *rw);
    if (!rw)
        return an_failc(err, -ENOMEM, NULL, "out of memory downsampling metrics");
    bucketer k = {out, cap, nsel, first, width, -1, &rw[0], &rw[1], &rw[2], &rw[3]};
    int rc = st_summary_walk(s, num, first, last, out->n_lr, bk_whole, bk_feed, &k, used, seen,
                             err);
    if (!rc && *used && k.cur >= 0)
        st_series_bucket(out, cap, k.fr, k.lr, k.lo, k.hi, nsel);
    free(rw);
    return rc;
}

/* Downsampling from the summary pyramid: each bucket it reports emits its points. */
typedef struct pyr_sink {
    store_series *out;
    size_t cap;
    int nsel;
} pyr_sink;

static void pyr_emit(void *ctx, const st_row *fr, const st_row *lr, const st_row *lo,
                     const st_row *hi)
{
    pyr_sink *k = ctx;
    st_series_bucket(k->out, k->cap, fr, lr, lo, hi, k->nsel);
}

int store_metrics_query(store_t *s, const char *id, int64_t from, int64_t to,
                        size_t max_points, store_series *out, an_err *err)
{
    memset(out, 0, sizeof *out);
    if (to < 0)
        to = INT64_MAX;
    if (from > to)
        return an_fail(err, "from", "expected from <= to, got from=%" PRId64 " to=%" PRId64,
                       from, to);
    if (max_points == 1)
        max_points = 2;
    int64_t num, first = -1, last = -1, count = 0, seen = 0;
    int n_lr = 0;
    int64_t kept = 0;
    int rc = st_job_num(s, id, &num, NULL, err);
    if (!rc) /* rows dropped by metrics.full_resolution_steps: retain.c */
        rc = st_retained(s, num, &kept, err);
    if (!rc && kept > 0 && from < kept)
        return st_query_retained(s, num, from, to, max_points, kept, out, err);
    if (!rc)
        rc = st_range_ends(s, num, from, to, &first, &last, &n_lr, err);
    if (rc)
        return rc;
    if (first < 0) {
        rc = st_series_alloc(out, 0, 0) ? an_failc(err, -ENOMEM, NULL, "out of memory") : 0;
        out->full_from = kept;
        return rc;
    }

    /* Steps are unique, so a span of at most max_points steps holds at most that many rows
     * and needs no count. Otherwise downsample in one pass; if that pass finds no more than
     * max_points rows after all (sparse steps), read them all instead. */
    uint64_t span = (uint64_t)(last - first) + 1;
    if (max_points > 0 && span > max_points) {
        /* Four points a bucket (first, last, extremes); fewer when max_points is below 4. */
        int nsel = max_points < 4 ? (int)max_points : 4;
        int64_t buckets = (int64_t)(max_points / (size_t)nsel);
        int64_t width = (int64_t)((span + (uint64_t)buckets - 1) / (uint64_t)buckets);
        if (st_series_alloc(out, max_points, n_lr))
            return an_failc(err, -ENOMEM, NULL, "out of memory for %zu metric points",
                            max_points);
        int used = 0;
        pyr_sink sink = {out, max_points, nsel};
        if (!s->scan_queries)
            rc = st_pyr_query(s, num, first, last, buckets, pyr_emit, &sink, &used, &seen, err);
        if (!rc && !used && width >= 2 * ST_BLOCK_CAP) /* whole blocks from their summaries */
            rc = scan_summaries(s, num, first, last, width, nsel, out, max_points, &seen, &used,
                                err);
        if (!rc && !used)
            rc = scan(s, num, first, last, width, nsel, out, max_points, &seen, err);
        if (rc || (uint64_t)seen > max_points) {
            if (rc)
                store_series_free(out);
            else
                count = -1; /* downsampled: done */
        } else {
            store_series_free(out);
            count = seen;
        }
        if (rc)
            return rc;
    } else if (max_points > 0) {
        count = (int64_t)span; /* an upper bound: steps are unique */
    } else {
        rc = count_rows(s, num, first, last, &count, err);
        if (rc)
            return rc;
    }
    if (count >= 0) {
        if (st_series_alloc(out, (size_t)count, n_lr))
            return an_failc(err, -ENOMEM, NULL, "out of memory for %" PRId64 " metric points",
                            count);
        rc = scan(s, num, first, last, 0, 0, out, (size_t)count, &seen, err);
        if (rc) {
            store_series_free(out);
            return rc;
        }
    }
    /* lr was laid out with stride cap; close the gap to stride n. */
    size_t cap = count >= 0 ? (size_t)count : max_points;
    for (int g = 1; g < n_lr && out->n < cap; g++)
        memmove(out->lr + (size_t)g * out->n, out->lr + (size_t)g * cap,
                out->n * sizeof *out->lr);
    out->full_from = kept;
    return 0;
}

int store_val_query(store_t *s, const char *id, int64_t from, int64_t to,
                    store_val_metric **rows, size_t *n, an_err *err)
{
    *rows = NULL;
    *n = 0;
    if (to < 0)
        to = INT64_MAX;
    int64_t num;
    int rc = st_job_num(s, id, &num, NULL, err);
    if (rc)
        return rc;
    sqlite3_stmt *st;
    rc = st_prepare(s, "SELECT step, val_loss, val_acc FROM val_metrics"
                       " WHERE job=?1 AND step>=?2 AND step<=?3 ORDER BY step", &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, num);
    sqlite3_bind_int64(st, 2, from);
    sqlite3_bind_int64(st, 3, to);
    size_t cap = 0;
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        void *grown = st_grow(*rows, &cap, *n, sizeof **rows, 64);
        if (!grown) {
            rc = an_failc(err, -ENOMEM, NULL, "out of memory reading validation rows");
            break;
        }
        *rows = grown;
        (*rows)[*n].step = sqlite3_column_int64(st, 0);
        (*rows)[*n].val_loss = st_col_num(st, 1);
        (*rows)[*n].val_acc = st_col_num(st, 2);
        (*n)++;
    }
    if (!rc && r != SQLITE_DONE)
        rc = st_fail(s, r, "reading validation rows", err);
    sqlite3_finalize(st);
    if (rc) {
        free(*rows);
        *rows = NULL;
        *n = 0;
    }
    return rc;
}

int store_val_last(store_t *s, const char *id, int64_t at, store_val_metric *row, an_err *err)
{
    int64_t num;
    int rc = st_job_num(s, id, &num, NULL, err);
    if (rc)
        return rc;
    sqlite3_stmt *st;
    rc = st_prepare(s, "SELECT step, val_loss, val_acc FROM val_metrics"
                       " WHERE job=?1 AND step<=?2 ORDER BY step DESC LIMIT 1", &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, num);
    sqlite3_bind_int64(st, 2, at);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        row->step = sqlite3_column_int64(st, 0);
        row->val_loss = st_col_num(st, 1);
        row->val_acc = st_col_num(st, 2);
    } else if (r == SQLITE_DONE) {
        rc = -ENOENT;
    } else {
        rc = st_fail(s, r, "reading the last validation row", err);
    }
    sqlite3_finalize(st);
    return rc;
}

int store_metrics_count(store_t *s, const char *id, int64_t *count, an_err *err)
{
    int64_t num;
    int rc = st_job_num(s, id, &num, NULL, err);
    if (rc)
        return rc;
    return st_one_int(s, "SELECT coalesce(sum(nrows), 0) FROM metric_blocks WHERE job=?1", num,
                      count, NULL, "counting metric rows", err);
}
