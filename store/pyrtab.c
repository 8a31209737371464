/* pyrtab — the summary pyramid's entries: merging rows into them, and reading and writing
 * them in metric_pyramid (with the connection's cache of open buckets). */
#include "store/pyrtab.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

void st_pyr_forget(store_t *s)
{
    if (s->pyr_cache)
        ((pyr_cache *)s->pyr_cache)->num = 0;
}

void st_pyr_cache_free(store_t *s)
{
    free(s->pyr_cache);
    s->pyr_cache = NULL;
}

double pyr_canon(double v) { return isnan(v) ? NAN : v; }

void pyr_row_from_metric(const store_metric *m, st_row *r)
{
    r->step = m->step;
    r->loss = pyr_canon(m->loss);
    r->grad_norm = pyr_canon(m->grad_norm);
    r->time = pyr_canon(m->time);
    r->wall = pyr_canon(m->wall);
    for (int g = 0; g < STORE_MAX_LR; g++)
        r->lr[g] = g < m->n_lr ? m->lr[g] : NAN;
}

void pyr_row_from_block(const st_block *b, size_t i, st_row *r)
{
    r->step = st_block_step(b, i);
    r->loss = st_block_val(b, ST_COL_LOSS, i);
    r->grad_norm = st_block_val(b, ST_COL_GRAD_NORM, i);
    r->time = st_block_val(b, ST_COL_TIME, i);
    r->wall = st_block_val(b, ST_COL_WALL, i);
    for (int g = 0; g < STORE_MAX_LR; g++)
        r->lr[g] = g < b->ng ? st_block_val(b, ST_COL_LR + g, i) : NAN;
}

/* Is a a better minimum (maximum when hi) than b? Ties go to the earlier step. */
int pyr_better(const st_row *a, const st_row *b, int hi)
{
    if (hi ? st_loss_gt(a->loss, b->loss) : st_loss_lt(a->loss, b->loss))
        return 1;
    if (hi ? st_loss_gt(b->loss, a->loss) : st_loss_lt(b->loss, a->loss))
        return 0;
    return a->step < b->step;
}

/* acc := the summary of acc's rows and e's (disjoint sets of steps). */
void pyr_merge(pyr_ent *acc, const pyr_ent *e)
{
    if (e->nrows == 0)
        return;
    if (acc->nrows == 0) {
        int64_t bk = acc->bucket;
        *acc = *e;
        acc->bucket = bk;
        return;
    }
    if (e->r[R_FIRST].step < acc->r[R_FIRST].step)
        acc->r[R_FIRST] = e->r[R_FIRST];
    if (e->r[R_LAST].step > acc->r[R_LAST].step)
        acc->r[R_LAST] = e->r[R_LAST];
    if (pyr_better(&e->r[R_LO], &acc->r[R_LO], 0))
        acc->r[R_LO] = e->r[R_LO];
    if (pyr_better(&e->r[R_HI], &acc->r[R_HI], 1))
        acc->r[R_HI] = e->r[R_HI];
    acc->nrows += e->nrows;
    if (e->ng > acc->ng)
        acc->ng = e->ng;
}

/* ---- table access -------------------------------------------------------------------- */

size_t pyr_row_bytes(int ng) { return (size_t)(5 + ng) * 8; }

int pyr_decode(const unsigned char *p, size_t len, int64_t ng, int64_t nrows, pyr_ent *e)
{
    if (ng < 0 || ng > STORE_MAX_LR || nrows < 1 || !p || len != 4 * pyr_row_bytes((int)ng))
        return -EPROTO;
    e->nrows = nrows;
    e->ng = (int)ng;
    size_t rl = pyr_row_bytes(e->ng);
    for (int k = 0; k < 4; k++) {
        const unsigned char *q = p + (size_t)k * rl;
        st_row *x = &e->r[k];
        x->step = (int64_t)le_get_u64(q);
        x->loss = le_get_f64(q + 8);
        x->grad_norm = le_get_f64(q + 16);
        x->time = le_get_f64(q + 24);
        x->wall = le_get_f64(q + 32);
        for (int g = 0; g < STORE_MAX_LR; g++)
            x->lr[g] = g < e->ng ? le_get_f64(q + 40 + 8 * (size_t)g) : NAN;
    }
    return 0;
}

int pyr_damaged(an_err *err, int level, int64_t bucket)
{
    return an_failc(err, -EPROTO, NULL,
                    "the metric summary of level %d bucket %" PRId64 " is damaged", level,
                    bucket);
}

/* Reads entry (level, bucket) into *e; e->nrows 0 when there is none. With a valid cache
 * `c`, the level's open bucket comes from it and a later bucket is known to be empty (the
 * cache's appends hold the job's last rows). */
int pyr_get(store_t *s, int64_t num, int level, int64_t bucket, pyr_ent *e,
                   const pyr_cache *c, an_err *err)
{
    int rc;
    if (c && c->num == num && c->have[level]) {
        if (c->e[level].bucket == bucket) {
            *e = c->e[level];
            return 0;
        }
        if (bucket > c->e[level].bucket) {
            e->bucket = bucket;
            e->nrows = 0;
            e->ng = 0;
            return 0;
        }
    }
    e->bucket = bucket;
    e->nrows = 0;
    e->ng = 0;
    sqlite3_stmt *st = st_stmt(s, ST_PYR_GET,
                               "SELECT nrows, ngroups, rows FROM metric_pyramid"
                               " WHERE job=?1 AND level=?2 AND bucket=?3", &rc, err);
    if (!st)
        return rc;
    sqlite3_bind_int64(st, 1, num);
    sqlite3_bind_int(st, 2, level);
    sqlite3_bind_int64(st, 3, bucket);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        if (pyr_decode(sqlite3_column_blob(st, 2), (size_t)sqlite3_column_bytes(st, 2),
                   sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 0), e))
            rc = pyr_damaged(err, level, bucket);
    } else if (r != SQLITE_DONE) {
        rc = st_fail(s, r, "reading a metric summary", err);
    }
    sqlite3_reset(st);
    return rc;
}

/* Stores entry e at `level` (deleting the row when e is empty); a cache `c` for the job
 * keeps it as the level's open bucket. */
int pyr_put(store_t *s, int64_t num, int level, const pyr_ent *e, pyr_cache *c,
                   an_err *err)
{
    if (c && c->num == num) {
        c->e[level] = *e;
        c->have[level] = 1;
    }
    int rc;
    sqlite3_stmt *st;
    if (e->nrows == 0) {
        st = st_stmt(s, ST_PYR_DEL, "DELETE FROM metric_pyramid WHERE job=?1 AND level=?2"
                                    " AND bucket BETWEEN ?3 AND ?4", &rc, err);
        if (!st)
            return rc;
        sqlite3_bind_int64(st, 1, num);
        sqlite3_bind_int(st, 2, level);
        sqlite3_bind_int64(st, 3, e->bucket);
        sqlite3_bind_int64(st, 4, e->bucket);
        int r = sqlite3_step(st);
        sqlite3_reset(st);
        return r == SQLITE_DONE ? 0 : st_fail(s, r, "deleting a metric summary", err);
    }
    unsigned char buf[4 * (5 + STORE_MAX_LR) * 8];
    size_t rl = pyr_row_bytes(e->ng);
    for (int k = 0; k < 4; k++) {
        const st_row *x = &e->r[k];
        unsigned char *p = buf + (size_t)k * rl;
        le_put_u64(p, (uint64_t)x->step);
        le_put_f64(p + 8, x->loss);
        le_put_f64(p + 16, x->grad_norm);
        le_put_f64(p + 24, x->time);
        le_put_f64(p + 32, x->wall);
        for (int g = 0; g < e->ng; g++)
            le_put_f64(p + 40 + 8 * (size_t)g, x->lr[g]);
    }
    st = st_stmt(s, ST_PYR_PUT,
                 "INSERT OR REPLACE INTO metric_pyramid(job, level, bucket, nrows, ngroups, rows)"
                 " VALUES(?,?,?,?,?,?)", &rc, err);
    if (!st)
        return rc;
    sqlite3_bind_int64(st, 1, num);
    sqlite3_bind_int(st, 2, level);
    sqlite3_bind_int64(st, 3, e->bucket);
    sqlite3_bind_int64(st, 4, e->nrows);
    sqlite3_bind_int(st, 5, e->ng);
    sqlite3_bind_blob(st, 6, buf, (int)(4 * rl), SQLITE_STATIC);
    int r = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return r == SQLITE_DONE ? 0 : st_fail(s, r, "storing a metric summary", err);
}
