/* pyramid.c — the summary pyramid (metric_pyramid; described in internal.h): per job, for
 * every level k in ST_PYR_L0..ST_PYR_LMAX, one row per non-empty aligned bucket of 2^k steps
 * holding the bucket's first row, last row and the rows of its smallest and largest loss.
 *
 * Appends merge each batch into the buckets it touches (the merge of two disjoint sets of
 * rows is exact: first, last, min and max of the union); a write that replaces stored steps
 * or cuts the history rebuilds the buckets of its range from the rows (lowest level) and the
 * level below (the others). A downsampled query reads one level's rows in a single index
 * range, so its cost follows the number of points asked for, not the number of steps. */
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"
#include "store/pyrtab.h"
#include "util/util.h"

/* ---- appends ------------------------------------------------------------------------- */

int st_pyr_add(store_t *s, int64_t num, const store_metric *const *p, size_t m, an_err *err)
{
    if (m == 0)
        return 0;
    uint64_t span = (uint64_t)((p[m - 1]->step >> ST_PYR_L0) - (p[0]->step >> ST_PYR_L0)) + 1;
    size_t cap = span < m ? (size_t)span : m;
    pyr_ent *e = malloc(cap * sizeof *e), *cur = NULL;
    if (!e)
        return an_failc(err, -ENOMEM, NULL, "out of memory summarising metric rows");
    /* The lowest level from the rows (sorted, distinct steps): indices first, rows copied
     * once per bucket. */
    size_t ne = 0, i0 = 0;
    while (i0 < m) {
        int64_t bk = p[i0]->step >> ST_PYR_L0;
        size_t lo = i0, hi = i0, i = i0 + 1;
        int ng = p[i0]->n_lr;
        for (; i < m && p[i]->step >> ST_PYR_L0 == bk; i++) {
            double v = pyr_canon(p[i]->loss);
            if (st_loss_lt(v, pyr_canon(p[lo]->loss)))
                lo = i;
            else if (st_loss_gt(v, pyr_canon(p[hi]->loss)))
                hi = i;
            if (p[i]->n_lr > ng)
                ng = p[i]->n_lr;
        }
        cur = &e[ne++];
        cur->bucket = bk;
        cur->nrows = (int64_t)(i - i0);
        cur->ng = ng;
        pyr_row_from_metric(p[i0], &cur->r[R_FIRST]);
        pyr_row_from_metric(p[i - 1], &cur->r[R_LAST]);
        pyr_row_from_metric(p[lo], &cur->r[R_LO]);
        pyr_row_from_metric(p[hi], &cur->r[R_HI]);
        i0 = i;
    }
    pyr_ent *old = malloc(sizeof *old);
    int rc = old ? 0 : an_failc(err, -ENOMEM, NULL, "out of memory summarising metric rows");
    /* The cache goes on only from the step after its last append (no cache: every entry is
     * read back, as without one). */
    if (!s->pyr_cache)
        s->pyr_cache = calloc(1, sizeof(pyr_cache));
    pyr_cache *c = s->pyr_cache;
    if (c && (c->num != num || p[0]->step != c->last_step + 1)) {
        memset(c->have, 0, sizeof c->have);
        c->num = num;
    }
    for (int level = ST_PYR_L0; !rc && level <= ST_PYR_LMAX; level++) {
        for (size_t j = 0; !rc && j < ne; j++) {
            rc = pyr_get(s, num, level, e[j].bucket, old, c, err);
            if (!rc) {
                pyr_merge(old, &e[j]);
                rc = pyr_put(s, num, level, old, c, err);
            }
        }
        /* The next level's pieces: neighbours with the same parent merge, in place. */
        size_t k = 0;
        for (size_t j = 0; j < ne; j++) {
            int64_t parent = e[j].bucket >> 1;
            if (k > 0 && e[k - 1].bucket == parent) {
                pyr_merge(&e[k - 1], &e[j]);
            } else {
                if (k != j)
                    e[k] = e[j];
                e[k++].bucket = parent;
            }
        }
        ne = k;
    }
    if (c) {
        if (rc)
            c->num = 0;
        else
            c->last_step = p[m - 1]->step;
    }
    free(old);
    free(e);
    return rc;
}

/* ---- rebuilding ---------------------------------------------------------------------- */

/* Merges the stored rows with a <= step <= b into acc. */
static int scan_rows(store_t *s, int64_t num, int64_t a, int64_t b, pyr_ent *acc, pyr_ent *tmp,
                     an_err *err)
{
    st_block_iter it;
    st_block bl;
    int rc = st_blocks_open(s, &it, num, a, b, 0, err);
    if (rc)
        return rc;
    int r;
    while ((r = st_blocks_next(&it, &bl, 1, err)) == 1) {
        size_t i0 = st_block_lower(&bl, a), i1 = st_block_upper(&bl, b);
        if (i0 >= i1)
            continue;
        size_t lo = i0, hi = i0;
        for (size_t i = i0 + 1; i < i1; i++) {
            double v = st_block_val(&bl, ST_COL_LOSS, i);
            if (st_loss_lt(v, st_block_val(&bl, ST_COL_LOSS, lo)))
                lo = i;
            else if (st_loss_gt(v, st_block_val(&bl, ST_COL_LOSS, hi)))
                hi = i;
        }
        tmp->nrows = (int64_t)(i1 - i0);
        tmp->ng = bl.ng;
        pyr_row_from_block(&bl, i0, &tmp->r[R_FIRST]);
        pyr_row_from_block(&bl, i1 - 1, &tmp->r[R_LAST]);
        pyr_row_from_block(&bl, lo, &tmp->r[R_LO]);
        pyr_row_from_block(&bl, hi, &tmp->r[R_HI]);
        pyr_merge(acc, tmp);
    }
    st_blocks_close(&it);
    return r < 0 ? r : 0;
}

/* acc := the points of entry e with a <= step <= b, as a summary of those points alone (the
 * rows between them are gone, so this is the best that is left of them). */
static void merge_points(pyr_ent *acc, const pyr_ent *e, int64_t a, int64_t b, pyr_ent *tmp)
{
    for (int k = 0; k < 4 && e->nrows > 0; k++) {
        const st_row *x = &e->r[k];
        int dup = 0;
        for (int j = 0; j < k; j++)
            dup |= e->r[j].step == x->step;
        if (dup || x->step < a || x->step > b)
            continue;
        tmp->nrows = 1;
        tmp->ng = e->ng;
        tmp->r[R_FIRST] = tmp->r[R_LAST] = tmp->r[R_LO] = tmp->r[R_HI] = *x;
        pyr_merge(acc, tmp);
    }
}

/* Recomputes the buckets of [a, b] from the rows. Below `kept` (the first stored row) rows
 * may have been dropped (store_metrics_retain): a lowest-level bucket reaching below it keeps
 * the points it had there, up to `limit` (the rows after limit are gone). */
static int rebuild(store_t *s, int64_t num, int64_t a, int64_t b, int64_t limit, an_err *err)
{
    if (a < 0)
        a = 0;
    if (b < a)
        return 0;
    st_pyr_forget(s);
    int64_t kept;
    int rc = st_first_kept(s, num, &kept, err);
    if (rc)
        return rc;
    pyr_ent *e = malloc(4 * sizeof *e);
    if (!e)
        return an_failc(err, -ENOMEM, NULL, "out of memory summarising metric rows");
    for (int64_t bk = a >> ST_PYR_L0; !rc && bk <= b >> ST_PYR_L0; bk++) {
        int64_t lo = bk << ST_PYR_L0, hi = lo + ((int64_t)1 << ST_PYR_L0) - 1;
        e[0].bucket = bk;
        e[0].nrows = 0;
        if (lo < kept) {
            rc = pyr_get(s, num, ST_PYR_L0, bk, &e[3], NULL, err);
            if (!rc)
                merge_points(&e[0], &e[3], lo, kept - 1 < limit ? kept - 1 : limit, &e[2]);
        }
        if (!rc && hi >= kept)
            rc = scan_rows(s, num, lo > kept ? lo : kept, hi, &e[0], &e[2], err);
        if (!rc)
            rc = pyr_put(s, num, ST_PYR_L0, &e[0], NULL, err);
    }
    for (int level = ST_PYR_L0 + 1; !rc && level <= ST_PYR_LMAX; level++)
        for (int64_t bk = a >> level; !rc && bk <= b >> level; bk++) {
            rc = pyr_get(s, num, level - 1, 2 * bk, &e[0], NULL, err);
            if (!rc)
                rc = pyr_get(s, num, level - 1, 2 * bk + 1, &e[1], NULL, err);
            if (!rc) {
                pyr_merge(&e[0], &e[1]);
                e[0].bucket = bk;
                rc = pyr_put(s, num, level, &e[0], NULL, err);
            }
        }
    free(e);
    return rc;
}

int st_pyr_rebuild(store_t *s, int64_t num, int64_t a, int64_t b, an_err *err)
{
    return rebuild(s, num, a, b, INT64_MAX, err);
}

int st_pyr_truncate(store_t *s, int64_t num, int64_t step, an_err *err)
{
    st_pyr_forget(s);
    sqlite3_stmt *st;
    int rc = st_prepare(s, "DELETE FROM metric_pyramid WHERE job=?1 AND bucket > (?2 >> level)",
                        &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, num);
    sqlite3_bind_int64(st, 2, step < 0 ? -1 : step);
    int r = sqlite3_step(st);
    if (r != SQLITE_DONE)
        rc = st_fail(s, r, "cutting metric summaries", err);
    sqlite3_finalize(st);
    if (!rc && step >= 0)
        rc = rebuild(s, num, step, step, step, err);
    return rc;
}

/* ---- queries ------------------------------------------------------------------------- */

/* acc := the summary of the rows of [a, b], from entries of levels below `top` where an
 * aligned bucket fits inside and from the rows elsewhere. */
static int range_summary(store_t *s, int64_t num, int64_t a, int64_t b, int top, int64_t kept,
                         pyr_ent *acc, pyr_ent *tmp, an_err *err)
{
    acc->nrows = 0;
    int rc = 0;
    int64_t x = a;
    while (!rc && x <= b) {
        int j = top - 1;
        for (; j >= ST_PYR_L0; j--) {
            int64_t w = (int64_t)1 << j;
            if ((x & (w - 1)) == 0 && b - x >= w - 1)
                break;
        }
        if (j >= ST_PYR_L0) {
            rc = pyr_get(s, num, j, x >> j, tmp, NULL, err);
            if (!rc)
                pyr_merge(acc, tmp);
            x += (int64_t)1 << j;
        } else {
            int64_t end = ((x >> ST_PYR_L0) + 1) * ((int64_t)1 << ST_PYR_L0) - 1;
            if (end > b)
                end = b;
            if (x < kept) {
                /* Rows dropped by retention: what is left of them is the bucket's points
                 * (tmp[1] is free: the caller passes two entries). */
                int64_t de = end < kept - 1 ? end : kept - 1;
                rc = pyr_get(s, num, ST_PYR_L0, x >> ST_PYR_L0, &tmp[1], NULL, err);
                if (!rc)
                    merge_points(acc, &tmp[1], x, de, tmp);
                x = de + 1;
            }
            if (!rc && x <= end)
                rc = scan_rows(s, num, x, end, acc, tmp, err);
            x = end + 1;
        }
    }
    return rc;
}

static void emit(const pyr_ent *e, st_pyr_bucket_fn fn, void *ctx, int64_t *seen)
{
    if (e->nrows == 0)
        return;
    fn(ctx, &e->r[R_FIRST], &e->r[R_LAST], &e->r[R_LO], &e->r[R_HI]);
    *seen += e->nrows;
}

int st_pyr_query(store_t *s, int64_t num, int64_t first, int64_t last, int64_t nb_max,
                 st_pyr_bucket_fn fn, void *ctx, int *used, int64_t *seen, an_err *err)
{
    *used = 0;
    *seen = 0;
    if (nb_max < 1 || first < 0 || last < first)
        return 0;
    /* The finest stored level whose aligned buckets over [first, last] are at most nb_max;
     * none when an even finer level would fit (a scan of the rows answers that better) or
     * when the coarsest level has too many. */
    if ((last >> (ST_PYR_L0 - 1)) - (first >> (ST_PYR_L0 - 1)) + 1 <= nb_max)
        return 0;
    int level = ST_PYR_L0;
    while (level <= ST_PYR_LMAX && (last >> level) - (first >> level) + 1 > nb_max)
        level++;
    if (level > ST_PYR_LMAX)
        return 0;
    *used = 1;
    int64_t lb = first >> level, hb = last >> level, w = (int64_t)1 << level;
    int64_t kept;
    int rc = st_first_kept(s, num, &kept, err);
    if (rc)
        return rc;
    pyr_ent *e = malloc(3 * sizeof *e);
    if (!e)
        return an_failc(err, -ENOMEM, NULL, "out of memory downsampling metrics");
    /* The buckets cut by the range's ends come from finer levels and the rows. */
    int cut_lo = first != lb * w, cut_hi = last != hb * w + w - 1;
    if (lb == hb || cut_lo) {
        e[0].bucket = lb;
        rc = range_summary(s, num, first, lb == hb ? last : lb * w + w - 1, level, kept, &e[0],
                           &e[1], err);
        if (!rc)
            emit(&e[0], fn, ctx, seen);
        if (lb == hb || rc) {
            free(e);
            return rc;
        }
        lb++;
    }
    int64_t mid_hi = cut_hi ? hb - 1 : hb;
    sqlite3_stmt *st = mid_hi >= lb ? st_stmt(s, ST_PYR_RANGE,
                                              "SELECT bucket, nrows, ngroups, rows FROM"
                                              " metric_pyramid WHERE job=?1 AND level=?2 AND"
                                              " bucket BETWEEN ?3 AND ?4 ORDER BY bucket",
                                              &rc, err)
                                    : NULL;
    if (st) {
        sqlite3_bind_int64(st, 1, num);
        sqlite3_bind_int(st, 2, level);
        sqlite3_bind_int64(st, 3, lb);
        sqlite3_bind_int64(st, 4, mid_hi);
        int r;
        while (!rc && (r = sqlite3_step(st)) == SQLITE_ROW) {
            e[0].bucket = sqlite3_column_int64(st, 0);
            if (pyr_decode(sqlite3_column_blob(st, 3), (size_t)sqlite3_column_bytes(st, 3),
                       sqlite3_column_int64(st, 2), sqlite3_column_int64(st, 1), &e[0]))
                rc = pyr_damaged(err, level, e[0].bucket);
            else
                emit(&e[0], fn, ctx, seen);
        }
        if (!rc && r != SQLITE_DONE)
            rc = st_fail(s, r, "reading metric summaries", err);
        sqlite3_reset(st);
    }
    if (!rc && cut_hi) {
        e[0].bucket = hb;
        rc = range_summary(s, num, hb * w, last, level, kept, &e[0], &e[1], err);
        if (!rc)
            emit(&e[0], fn, ctx, seen);
    }
    free(e);
    return rc;
}

/* ---- migration ----------------------------------------------------------------------- */

int st_migrate_pyramid(store_t *s, an_err *err)
{
    int rc = st_exec(s,
                     "CREATE TABLE IF NOT EXISTS metric_pyramid("
                     "  job INTEGER NOT NULL REFERENCES jobs(num) ON DELETE CASCADE,"
                     "  level INTEGER NOT NULL,"  /* buckets of 2^level steps */
                     "  bucket INTEGER NOT NULL," /* steps bucket*2^level … +2^level-1 */
                     "  nrows INTEGER NOT NULL,"
                     "  ngroups INTEGER NOT NULL,"
                     "  rows BLOB NOT NULL,"      /* first, last, min-loss, max-loss rows */
                     "  PRIMARY KEY(job, level, bucket)"
                     ") WITHOUT ROWID;",
                     "creating metric_pyramid", err);
    if (rc)
        return rc;
    /* Jobs stored before: their pyramid from their blocks (once). */
    sqlite3_stmt *st;
    rc = st_prepare(s, "SELECT job, min(first_step), max(last_step) FROM metric_blocks"
                       " GROUP BY job ORDER BY job", &st, err);
    if (rc)
        return rc;
    int64_t *jobs = NULL;
    size_t n = 0, cap = 0;
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        void *g = st_grow(jobs, &cap, n + 2, sizeof *jobs, 48);
        if (!g) {
            rc = an_failc(err, -ENOMEM, NULL, "out of memory listing metric blocks");
            break;
        }
        jobs = g;
        for (int c = 0; c < 3; c++)
            jobs[n++] = sqlite3_column_int64(st, c);
    }
    if (!rc && r != SQLITE_DONE)
        rc = st_fail(s, r, "listing metric blocks", err);
    sqlite3_finalize(st);
    for (size_t i = 0; !rc && i + 2 < n; i += 3)
        rc = st_pyr_rebuild(s, jobs[i], jobs[i + 1], jobs[i + 2], err);
    free(jobs);
    return rc;
}
