/* csvexport.c — a job's metric rows as CSV, written in 64 KiB pieces through a sink. */
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

/* *has = 1 when job `num` has at least one validation row. */
static int job_has_val(store_t *s, int64_t num, int *has, an_err *err)
{
    sqlite3_stmt *st;
    int rc = st_prepare(s, "SELECT 1 FROM val_metrics WHERE job=?1 LIMIT 1", &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, num);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW || r == SQLITE_DONE)
        *has = r == SQLITE_ROW;
    else
        rc = st_fail(s, r, "looking for validation rows", err);
    sqlite3_finalize(st);
    return rc;
}

/* ---- CSV ----------------------------------------------------------------------------- */

typedef struct csvbuf {
    char buf[65536];
    size_t len;
    store_write_fn fn;
    void *ctx;
} csvbuf;

static int csv_flush(csvbuf *b)
{
    int rc = b->len ? b->fn(b->ctx, b->buf, b->len) : 0;
    b->len = 0;
    return rc;
}

/* Makes room for `need` bytes. */
static int csv_room(csvbuf *b, size_t need)
{
    return (b->len + need > sizeof b->buf) ? csv_flush(b) : 0;
}

/* The shortest %.Ng (N = 15..17) that reads back to the same double; "" for NaN. */
static void csv_num(csvbuf *b, double v)
{
    if (isnan(v))
        return;
    char *p = b->buf + b->len;
    int k = 0;
    for (int prec = 15; prec <= 17; prec++) {
        k = snprintf(p, 32, "%.*g", prec, v);
        if (strtod(p, NULL) == v)
            break;
    }
    b->len += (size_t)k;
}

static void csv_ch(csvbuf *b, char c) { b->buf[b->len++] = c; }

int store_metrics_csv(store_t *s, const char *id, int64_t from, int64_t to,
                      store_write_fn fn, void *ctx, an_err *err)
{
    if (to < 0)
        to = INT64_MAX;
    int64_t num, first = -1, last = -1;
    int n_lr = 0;
    int rc = st_job_num(s, id, &num, NULL, err);
    if (!rc)
        rc = st_range_ends(s, num, from, to, &first, &last, &n_lr, err);
    if (rc)
        return rc;
    if (first < 0) /* still one group column, so the header always has the lr columns */
        n_lr = 1;
    /* Validation columns when the job has validation rows at all (not only in this range), so
     * every slice of one job's CSV has the same header. */
    int has_val = 0;
    store_val_metric *val = NULL;
    size_t nval = 0, iv = 0;
    rc = job_has_val(s, num, &has_val, err);
    if (!rc && has_val)
        rc = store_val_query(s, id, from, to, &val, &nval, err);
    if (rc)
        return rc;
    csvbuf *b = malloc(sizeof *b);
    if (!b) {
        free(val);
        return an_failc(err, -ENOMEM, NULL, "out of memory for the CSV buffer");
    }
    b->len = 0;
    b->fn = fn;
    b->ctx = ctx;
    b->len += (size_t)snprintf(b->buf, sizeof b->buf, "step,loss");
    for (int g = 0; g < n_lr; g++)
        b->len += (size_t)snprintf(b->buf + b->len, sizeof b->buf - b->len, ",lr%d", g);
    b->len += (size_t)snprintf(b->buf + b->len, sizeof b->buf - b->len, ",grad_norm,time%s\n",
                               has_val ? ",val_loss,val_acc" : "");

    st_block_iter it;
    st_block blk;
    int r = 0, sink = 0;
    if (first >= 0)
        rc = st_blocks_open(s, &it, num, first, last, 0, err);
    if (!rc && first >= 0) {
        while (!sink && (r = st_blocks_next(&it, &blk, 1, err)) == 1) {
            size_t i1 = st_block_upper(&blk, last);
            int k = blk.ng < n_lr ? blk.ng : n_lr;
            for (size_t i = st_block_lower(&blk, first); i < i1; i++) {
                /* one line: at most 20 + (n_lr + 5) * 33 bytes */
                if ((sink = csv_room(b, 64 + (size_t)(n_lr + 5) * 34)) != 0)
                    break;
                b->len += (size_t)snprintf(b->buf + b->len, 24, "%" PRId64,
                                           st_block_step(&blk, i));
                csv_ch(b, ',');
                csv_num(b, st_block_val(&blk, ST_COL_LOSS, i));
                for (int g = 0; g < n_lr; g++) {
                    csv_ch(b, ',');
                    csv_num(b, g < k ? st_block_val(&blk, ST_COL_LR + g, i) : NAN);
                }
                csv_ch(b, ',');
                csv_num(b, st_block_val(&blk, ST_COL_GRAD_NORM, i));
                csv_ch(b, ',');
                csv_num(b, st_block_val(&blk, ST_COL_TIME, i));
                if (has_val) {
                    /* Both lists are in step order: one cursor walks the validation rows. */
                    int64_t stp = st_block_step(&blk, i);
                    while (iv < nval && val[iv].step < stp)
                        iv++;
                    int hit = iv < nval && val[iv].step == stp;
                    csv_ch(b, ',');
                    csv_num(b, hit ? val[iv].val_loss : NAN);
                    csv_ch(b, ',');
                    csv_num(b, hit ? val[iv].val_acc : NAN);
                }
                csv_ch(b, '\n');
            }
        }
        st_blocks_close(&it);
        if (sink)
            rc = an_failc(err, sink, NULL, "the CSV consumer stopped with error %d", sink);
        else if (r < 0)
            rc = r;
    }
    if (!rc) {
        rc = csv_flush(b);
        if (rc)
            an_failc(err, rc, NULL, "the CSV consumer stopped with error %d", rc);
    }
    free(b);
    free(val);
    return rc;
}

typedef struct growbuf {
    char *p;
    size_t len, cap;
} growbuf;

static int grow_write(void *ctx, const char *buf, size_t len)
{
    growbuf *g = ctx;
    if (g->len + len + 1 > g->cap) {
        size_t nc = g->cap ? g->cap : 65536;
        while (nc < g->len + len + 1)
            nc *= 2;
        char *np = realloc(g->p, nc);
        if (!np)
            return -ENOMEM;
        g->p = np;
        g->cap = nc;
    }
    memcpy(g->p + g->len, buf, len);
    g->len += len;
    g->p[g->len] = '\0';
    return 0;
}

int store_metrics_csv_buf(store_t *s, const char *id, int64_t from, int64_t to,
                          char **csv, size_t *len, an_err *err)
{
    growbuf g = {0};
    int rc = store_metrics_csv(s, id, from, to, grow_write, &g, err);
    if (rc) {
        free(g.p);
        *csv = NULL;
        *len = 0;
        return rc;
    }
    *csv = g.p;
    *len = g.len;
    return 0;
}
