/* retain.c — metrics.full_resolution_steps: dropping a job's oldest metric blocks while the
 * summary pyramid keeps what they summarised, and reading ranges whose older part is only in
 * the pyramid (described in internal.h, "retention").
 *
 * Dropping whole blocks is one DELETE of a few rows: no block is decoded or rewritten, and
 * the pages go to SQLite's free list for the housekeeping thread's incremental vacuum. */
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"
#include "util/util.h"
#include "store/retain.h"

int st_first_kept(store_t *s, int64_t num, int64_t *kept, an_err *err)
{
    int rc;
    *kept = INT64_MAX;
    sqlite3_stmt *st = st_stmt(s, ST_FIRST_KEPT,
                               "SELECT first_step FROM metric_blocks WHERE job=?1"
                               " ORDER BY first_step LIMIT 1", &rc, err);
    if (!st)
        return rc;
    sqlite3_bind_int64(st, 1, num);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW)
        *kept = sqlite3_column_int64(st, 0);
    else if (r != SQLITE_DONE)
        rc = st_fail(s, r, "looking up the first metric block", err);
    sqlite3_reset(st);
    return rc;
}

/* ---- dropping ------------------------------------------------------------------------ */

int store_metrics_retain(store_t *s, const char *id, int64_t keep, int max_blocks,
                         int *dropped, an_err *err)
{
    *dropped = 0;
    if (keep < 1 || max_blocks < 1)
        return an_fail(err, "full_resolution_steps", "expected keep >= 1 and max_blocks >= 1");
    /* Without the pyramid (a benchmark's setting) dropped rows would leave nothing behind. */
    if (s->no_pyramid)
        return 0;
    int rc = st_begin(s, err);
    if (rc)
        return rc;
    int64_t num, last = 0, ckpt = 0;
    int has_last = 0, has_ckpt = 0;
    rc = st_job_num(s, id, &num, NULL, err);
    if (!rc)
        rc = st_one_int(s, "SELECT last_step FROM metric_blocks WHERE job=?1"
                           " ORDER BY first_step DESC LIMIT 1", num, &last, &has_last,
                        "reading metric retention bounds", err);
    if (!rc)
        rc = st_one_int(s, "SELECT last_checkpoint_step FROM jobs WHERE num=?1", num, &ckpt,
                        &has_ckpt, "reading metric retention bounds", err);
    /* Steps from `cut` on stay: the newest `keep`, and everything from the latest checkpoint
     * on, whose row a resume reads and whose bucket its rewind rebuilds from the rows. A job
     * without a checkpoint starts over from step 0 and needs none of them. */
    int64_t cut = has_last ? last - keep + 1 : 0;
    if (has_ckpt && ckpt > 0 && ckpt < cut)
        cut = ckpt;
    cut &= ~(((int64_t)1 << ST_PYR_L0) - 1);
    if (!rc && cut > 0) {
        sqlite3_stmt *st;
        rc = st_prepare(s, "DELETE FROM metric_blocks WHERE id IN (SELECT id FROM metric_blocks"
                           " WHERE job=?1 AND first_step<?2 AND last_step<?2"
                           " ORDER BY first_step LIMIT ?3)", &st, err);
        if (!rc) {
            sqlite3_bind_int64(st, 1, num);
            sqlite3_bind_int64(st, 2, cut);
            sqlite3_bind_int(st, 3, max_blocks);
            int r = sqlite3_step(st);
            if (r == SQLITE_DONE)
                *dropped = sqlite3_changes(s->db);
            else
                rc = st_fail(s, r, "dropping old metric blocks", err);
            sqlite3_finalize(st);
        }
    }
    rc = st_end(s, rc, err);
    if (rc)
        *dropped = 0;
    return rc;
}

/* ---- the points of dropped rows ---------------------------------------------------------- */

static double getd(const unsigned char *p)
{
    uint64_t u = le_get_u64(p);
    double v;
    memcpy(&v, &u, 8);
    return v;
}

int st_pyr_points(store_t *s, int64_t num, int64_t a, int64_t b, int desc, st_point_fn fn,
                  void *ctx, an_err *err)
{
    if (b < a || b < 0)
        return 0;
    if (a < 0)
        a = 0;
    sqlite3_stmt *st;
    int rc = st_prepare(s, desc ? "SELECT nrows, ngroups, rows FROM metric_pyramid WHERE job=?1"
                                  " AND level=?2 AND bucket BETWEEN ?3 AND ?4 ORDER BY bucket DESC"
                                : "SELECT nrows, ngroups, rows FROM metric_pyramid WHERE job=?1"
                                  " AND level=?2 AND bucket BETWEEN ?3 AND ?4 ORDER BY bucket",
                        &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, num);
    sqlite3_bind_int(st, 2, ST_PYR_L0);
    sqlite3_bind_int64(st, 3, a >> ST_PYR_L0);
    sqlite3_bind_int64(st, 4, b >> ST_PYR_L0);
    st_row *pt = malloc(4 * sizeof *pt); /* large rows: off a pool thread's stack */
    if (!pt)
        rc = an_failc(err, -ENOMEM, NULL, "out of memory reading metric summaries");
    int r = SQLITE_DONE, stop = 0;
    while (!rc && !stop && (r = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t ng = sqlite3_column_int64(st, 1);
        const unsigned char *p = sqlite3_column_blob(st, 2);
        size_t len = (size_t)sqlite3_column_bytes(st, 2), rl = (size_t)(5 + ng) * 8;
        if (ng < 0 || ng > STORE_MAX_LR || !p || len != 4 * rl) {
            rc = an_failc(err, -EPROTO, NULL, "a metric summary of job %" PRId64 " is damaged",
                          num);
            break;
        }
        int n = 0;
        for (int k = 0; k < 4; k++) {
            const unsigned char *q = p + (size_t)k * rl;
            int64_t step = (int64_t)le_get_u64(q);
            int dup = 0;
            for (int j = 0; j < n; j++)
                dup |= pt[j].step == step;
            if (dup || step < a || step > b)
                continue;
            st_row *x = &pt[n++];
            x->step = step;
            x->loss = getd(q + 8);
            x->grad_norm = getd(q + 16);
            x->time = getd(q + 24);
            x->wall = getd(q + 32);
            for (int g = 0; g < STORE_MAX_LR; g++)
                x->lr[g] = g < ng ? getd(q + 40 + 8 * (size_t)g) : NAN;
        }
        for (int i = 1; i < n; i++) /* at most four: insertion sort by step */
            for (int j = i; j > 0 && (pt[j].step < pt[j - 1].step) != desc; j--) {
                st_row t = pt[j];
                pt[j] = pt[j - 1];
                pt[j - 1] = t;
            }
        for (int j = 0; !stop && j < n; j++)
            stop = fn(ctx, &pt[j], (int)ng) != 0;
    }
    if (!rc && !stop && r != SQLITE_DONE)
        rc = st_fail(s, r, "reading metric summaries", err);
    sqlite3_finalize(st);
    free(pt);
    return rc ? rc : stop;
}

typedef struct one_point {
    int64_t step;
    int ng;
} one_point;

static int take_one(void *ctx, const st_row *r, int ng)
{
    one_point *o = ctx;
    o->step = r->step;
    o->ng = ng;
    return 1;
}

int st_point_ends(store_t *s, int64_t num, int64_t a, int64_t b, int64_t *first,
                  int64_t *last, int *ng, an_err *err)
{
    one_point o = {-1, 0};
    *first = *last = -1;
    *ng = 0;
    int rc = st_pyr_points(s, num, a, b, 0, take_one, &o, err);
    if (rc <= 0 || o.step < 0)
        return rc < 0 ? rc : 0;
    *first = o.step;
    *ng = o.ng;
    rc = st_pyr_points(s, num, a, b, 1, take_one, &o, err);
    if (rc < 0)
        return rc;
    *last = o.step;
    return 0;
}

int st_retained(store_t *s, int64_t num, int64_t *kept, an_err *err)
{
    int64_t k, f, l;
    int ng;
    *kept = 0;
    int rc = st_first_kept(s, num, &k, err);
    if (!rc && k > 0)
        rc = st_point_ends(s, num, 0, k == INT64_MAX ? INT64_MAX / 2 : k - 1, &f, &l, &ng, err);
    if (!rc && k > 0 && f >= 0) /* no block at all: after a rewind behind every kept row */
        *kept = k == INT64_MAX ? l + 1 : k;
    return rc;
}

/* ---- queries ----------------------------------------------------------------------------- */

/* A walk over the points of [a, kept-1] and the rows of [kept, b] as st_rows of n_lr
 * groups, through a downsampling bucketer (width > 0) or straight into a series. */
typedef struct walk {
    store_series *out;
    size_t cap;
    int n_lr, nsel;
    int64_t first, width, cur, seen;
    st_row *fr, *lr, *lo, *hi;
} walk;

static void walk_feed(walk *w, const st_row *r)
{
    w->seen++;
    if (!w->out)
        return; /* counting */
    if (w->width == 0) {
        if (w->out->n < w->cap)
            st_series_emit(w->out, w->cap, r);
        return;
    }
    int64_t b = (r->step - w->first) / w->width;
    if (b != w->cur) {
        if (w->cur >= 0)
            st_series_bucket(w->out, w->cap, w->fr, w->lr, w->lo, w->hi, w->nsel);
        w->cur = b;
        *w->fr = *w->lr = *w->lo = *w->hi = *r;
        return;
    }
    if (st_loss_lt(r->loss, w->lo->loss))
        *w->lo = *r;
    else if (st_loss_gt(r->loss, w->hi->loss))
        *w->hi = *r;
    *w->lr = *r;
}

static int walk_point(void *ctx, const st_row *r, int ng)
{
    walk *w = ctx;
    (void)ng; /* groups beyond the bucket's read NaN already */
    walk_feed(w, r);
    return 0;
}

/* Points of [a, kept-1], then rows of [kept, b]. */
static int walk_range(store_t *s, int64_t num, int64_t a, int64_t b, int64_t kept, walk *w,
                      an_err *err)
{
    int rc = st_pyr_points(s, num, a, b < kept - 1 ? b : kept - 1, 0, walk_point, w, err);
    if (rc < 0 || b < kept)
        return rc < 0 ? rc : 0;
    st_block_iter it;
    st_block bl;
    rc = st_blocks_open(s, &it, num, a > kept ? a : kept, b, 0, err);
    if (rc)
        return rc;
    st_row *row = malloc(sizeof *row);
    if (!row) {
        st_blocks_close(&it);
        return an_failc(err, -ENOMEM, NULL, "out of memory reading metric rows");
    }
    int r;
    while ((r = st_blocks_next(&it, &bl, w->out != NULL, err)) == 1) {
        size_t i0 = st_block_lower(&bl, a), i1 = st_block_upper(&bl, b);
        if (!w->out) { /* counting: steps only */
            w->seen += (int64_t)(i1 - i0);
            continue;
        }
        int k = bl.ng < w->n_lr ? bl.ng : w->n_lr;
        for (size_t i = i0; i < i1; i++) {
            row->step = st_block_step(&bl, i);
            row->loss = st_block_val(&bl, ST_COL_LOSS, i);
            row->grad_norm = st_block_val(&bl, ST_COL_GRAD_NORM, i);
            row->time = st_block_val(&bl, ST_COL_TIME, i);
            row->wall = st_block_val(&bl, ST_COL_WALL, i);
            for (int g = 0; g < w->n_lr; g++)
                row->lr[g] = g < k ? st_block_val(&bl, ST_COL_LR + g, i) : NAN;
            walk_feed(w, row);
        }
    }
    st_blocks_close(&it);
    free(row);
    return r < 0 ? r : 0;
}

static void pyr_bucket(void *ctx, const st_row *fr, const st_row *lr, const st_row *lo,
                       const st_row *hi)
{
    walk *w = ctx;
    st_series_bucket(w->out, w->cap, fr, lr, lo, hi, w->nsel);
}

int st_query_retained(store_t *s, int64_t num, int64_t from, int64_t to, size_t max_points,
                      int64_t kept, store_series *out, an_err *err)
{
    int64_t first, last, rfirst, rlast;
    int n_lr, rn_lr;
    int rc = st_point_ends(s, num, from, to < kept - 1 ? to : kept - 1, &first, &last, &n_lr,
                           err);
    if (!rc && to >= kept)
        rc = st_range_ends(s, num, from > kept ? from : kept, to, &rfirst, &rlast, &rn_lr, err);
    else
        rfirst = rlast = -1, rn_lr = 0;
    if (rc)
        return rc;
    if (first < 0) {
        first = rfirst;
        n_lr = rn_lr;
    }
    if (rlast >= 0)
        last = rlast;
    walk w = {NULL, 0, n_lr, 0, first, 0, -1, 0, NULL, NULL, NULL, NULL};
    st_row *rw = NULL;
    uint64_t span = first < 0 ? 0 : (uint64_t)(last - first) + 1;
    size_t cap = 0;
    int done = 0;
    if (first >= 0 && max_points > 0 && span > max_points) {
        /* As store_metrics_query: the pyramid when a level fits, else one pass. */
        w.nsel = max_points < 4 ? (int)max_points : 4;
        int64_t buckets = (int64_t)(max_points / (size_t)w.nsel);
        w.width = (int64_t)((span + (uint64_t)buckets - 1) / (uint64_t)buckets);
        cap = max_points;
        rw = malloc(4 * sizeof *rw);
        if (!rw || st_series_alloc(out, cap, n_lr)) {
            free(rw);
            return an_failc(err, -ENOMEM, NULL, "out of memory for %zu metric points", cap);
        }
        w.out = out;
        w.cap = cap;
        w.fr = &rw[0], w.lr = &rw[1], w.lo = &rw[2], w.hi = &rw[3];
        int used = 0;
        int64_t seen = 0;
        if (!s->scan_queries)
            rc = st_pyr_query(s, num, first, last, buckets, pyr_bucket, &w, &used, &seen, err);
        if (!rc && !used) {
            rc = walk_range(s, num, first, last, kept, &w, err);
            if (!rc && w.cur >= 0)
                st_series_bucket(out, cap, w.fr, w.lr, w.lo, w.hi, w.nsel);
            seen = w.seen;
        }
        free(rw);
        done = !rc && (uint64_t)seen > max_points;
        if (rc || !done)
            store_series_free(out);
        if (rc)
            return rc;
    }
    if (!done) {
        /* Every point and row: counted first, so the arrays are made once. */
        w.out = NULL;
        w.width = 0;
        w.seen = 0;
        if (first >= 0)
            rc = walk_range(s, num, first, last, kept, &w, err);
        if (rc)
            return rc;
        cap = (size_t)w.seen;
        if (st_series_alloc(out, cap, first >= 0 ? n_lr : 0))
            return an_failc(err, -ENOMEM, NULL, "out of memory for %zu metric points", cap);
        w.out = out;
        w.cap = cap;
        if (first >= 0)
            rc = walk_range(s, num, first, last, kept, &w, err);
        if (rc) {
            store_series_free(out);
            return rc;
        }
    }
    /* lr was laid out with stride cap; close the gap to stride n. */
    for (int g = 1; g < out->n_lr && out->n < cap; g++)
        memmove(out->lr + (size_t)g * out->n, out->lr + (size_t)g * cap,
                out->n * sizeof *out->lr);
    out->full_from = kept;
    return 0;
}
