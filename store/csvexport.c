/* csvexport.c — a job's metric rows as CSV, written in 64 KiB pieces through a sink. */
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

/* *yes = 1 when `sql` (one parameter: the job's num) gives a row whose first column is not 0:
 * the job's yes-or-no facts the CSV's columns depend on. */
static int job_fact(store_t *s, int64_t num, const char *sql, const char *what, int *yes,
                    an_err *err)
{
    int64_t v = 0;
    int found = 0, rc = st_one_int(s, sql, num, &v, &found, what, err);
    *yes = !rc && found && v != 0;
    return rc;
}

/* *has = 1 when job `num` has at least one validation row. */
static int job_has_val(store_t *s, int64_t num, int *has, an_err *err)
{
    return job_fact(s, num, "SELECT 1 FROM val_metrics WHERE job=?1 LIMIT 1",
                    "looking for validation rows", has, err);
}

/* *retains = 1 when job `num`'s spec keeps only its newest rows (metrics.full_resolution_steps). */
static int job_retains(store_t *s, int64_t num, int *retains, an_err *err)
{
    return job_fact(s, num, "SELECT json_valid(spec) AND json_extract(spec, "
                            "'$.metrics.full_resolution_steps') IS NOT NULL FROM jobs WHERE num=?1",
                    "reading the job's retention", retains, err);
}

/* ---- cursors ------------------------------------------------------------------------- */

int store_metrics_cursor_open(store_t *s, const char *id, int64_t from, int64_t to,
                              store_metrics_cursor *c, an_err *err)
{
    memset(c, 0, sizeof *c);
    if (to < 0)
        to = INT64_MAX;
    c->from = from;
    c->to = to;
    int rc = st_job_num(s, id, &c->num, NULL, err);
    if (!rc)
        rc = st_range_ends(s, c->num, from, to, &c->first, &c->last, &c->n_lr, err);
    /* Validation columns when the job has validation rows at all (not only in this range),
     * so every slice of one job's CSV has the same header. */
    if (!rc)
        rc = job_has_val(s, c->num, &c->has_val, err);
    if (!rc)
        rc = job_retains(s, c->num, &c->retains, err);
    /* A job whose oldest rows were dropped (metrics.full_resolution_steps): the range starts
     * with the pyramid's points of the dropped part (retain.c). */
    int64_t kept = 0;
    if (!rc)
        rc = st_retained(s, c->num, &kept, err);
    c->full_from = kept;
    if (!rc && kept > 0 && from < kept) {
        int64_t df, dl;
        int ng;
        rc = st_point_ends(s, c->num, from, to < kept - 1 ? to : kept - 1, &df, &dl, &ng, err);
        if (!rc && df >= 0) {
            c->first = df;
            c->n_lr = ng;
            if (c->last < 0)
                c->last = dl;
        }
    }
    c->pos = c->first;
    c->vpos = from;
    if (!rc)
        rc = st_fp16_cursor_open(s, c, err);
    return rc;
}

/* The points of dropped rows handed to a store_row_fn. */
typedef struct point_feed {
    store_row_fn fn;
    void *ctx;
    int64_t stopped;
    store_metric m;
} point_feed;

static int point_row(void *ctx, const st_row *r, int ng)
{
    point_feed *p = ctx;
    p->m.step = r->step;
    p->m.loss = r->loss;
    p->m.grad_norm = r->grad_norm;
    p->m.time = r->time;
    p->m.wall = r->wall;
    p->m.n_lr = ng;
    memcpy(p->m.lr, r->lr, (size_t)ng * sizeof *r->lr);
    if (p->fn(p->ctx, &p->m)) {
        p->stopped = r->step;
        return 1;
    }
    return 0;
}

int store_metrics_cursor_rows(store_t *s, store_metrics_cursor *c, store_row_fn fn, void *ctx,
                              an_err *err)
{
    if (c->first < 0 || c->pos > c->last)
        return 0;
    if (c->pos < c->full_from) {
        point_feed *p = malloc(sizeof *p);
        if (!p)
            return an_failc(err, -ENOMEM, NULL, "out of memory reading metric summaries");
        p->fn = fn;
        p->ctx = ctx;
        int64_t b = c->last < c->full_from - 1 ? c->last : c->full_from - 1;
        int r = st_pyr_points(s, c->num, c->pos, b, 0, point_row, p, err);
        int64_t stopped = p->stopped;
        free(p);
        if (r < 0)
            return r;
        if (r == 1) {
            c->pos = stopped;
            return 0;
        }
        c->pos = c->full_from;
        if (c->pos > c->last)
            return 0;
    }
    st_block_iter it;
    st_block b;
    int rc = st_blocks_open(s, &it, c->num, c->pos, c->last, 0, err);
    if (rc)
        return rc;
    store_metric m;
    int r, stop = 0;
    while (!stop && (r = st_blocks_next(&it, &b, 1, err)) == 1) {
        size_t i1 = st_block_upper(&b, c->last);
        for (size_t i = st_block_lower(&b, c->pos); i < i1; i++) {
            st_block_row(&b, i, &m);
            if (fn(ctx, &m)) {
                c->pos = m.step;
                stop = 1;
                break;
            }
        }
    }
    st_blocks_close(&it);
    if (!stop && r >= 0)
        c->pos = c->last + 1;
    return stop || r >= 0 ? 0 : r;
}

int store_metrics_cursor_val(store_t *s, const store_metrics_cursor *c, int64_t lo,
                             store_val_metric *rows, size_t max, size_t *n, an_err *err)
{
    *n = 0;
    if (!c->has_val || lo > c->to)
        return 0;
    sqlite3_stmt *st;
    int rc = st_prepare(s, "SELECT step, val_loss, val_acc FROM val_metrics WHERE job=?1"
                           " AND step>=?2 AND step<=?3 ORDER BY step LIMIT ?4", &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, c->num);
    sqlite3_bind_int64(st, 2, lo);
    sqlite3_bind_int64(st, 3, c->to);
    sqlite3_bind_int64(st, 4, (int64_t)max);
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW && *n < max) {
        rows[*n].step = sqlite3_column_int64(st, 0);
        rows[*n].val_loss = st_col_num(st, 1);
        rows[*n].val_acc = st_col_num(st, 2);
        (*n)++;
    }
    if (r != SQLITE_DONE && r != SQLITE_ROW)
        rc = st_fail(s, r, "reading validation rows", err);
    sqlite3_finalize(st);
    return rc;
}

/* ---- CSV ----------------------------------------------------------------------------- */

#define VAL_PAGE 512
#define EV_PAGE 256

/* A piece being written: the buffer, and a page of validation rows and one of fp16 events
 * walked beside the rows (all in step order), so the export holds a page of each whatever
 * the job's length. */
typedef struct csvpiece {
    char *buf;
    size_t len, cap;
    int n_lr, has_val;
    store_t *s;
    store_metrics_cursor *c;
    store_val_metric val[VAL_PAGE];
    size_t nval, iv;
    store_fp16_event ev[EV_PAGE];
    size_t nev, ie;
    int rc;
    an_err *err;
} csvpiece;

/* The shortest %.Ng (N = 15..17) that reads back to the same double; "" for NaN. */
static void csv_num(csvpiece *b, double v)
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

static void csv_ch(csvpiece *b, char c) { b->buf[b->len++] = c; }

/* The validation row at `step`, or NULL; pages forward as the rows pass its last row. */
static const store_val_metric *val_at(csvpiece *b, int64_t step)
{
    for (;;) {
        while (b->iv < b->nval && b->val[b->iv].step < step)
            b->iv++;
        if (b->iv < b->nval || b->nval < VAL_PAGE) /* found its place, or no more rows */
            break;
        int64_t lo = b->val[b->nval - 1].step + 1;
        b->iv = 0;
        b->rc = store_metrics_cursor_val(b->s, b->c, lo, b->val, VAL_PAGE, &b->nval, b->err);
        if (b->rc)
            return NULL;
        b->c->vpos = lo;
    }
    return b->iv < b->nval && b->val[b->iv].step == step ? &b->val[b->iv] : NULL;
}

/* fp16: moves the cursor's scale past the events at or before `step` (the row being
 * written: only then, so a row left for the next piece is not walked past) and returns 1
 * when `step` itself overflowed. Pages forward as the rows pass the page's last event. */
static int fp16_at(csvpiece *b, int64_t step)
{
    int skipped = 0;
    for (;;) {
        while (b->ie < b->nev && b->ev[b->ie].step <= step) {
            const store_fp16_event *x = &b->ev[b->ie++];
            b->c->fp16_scale = x->loss_scale;
            b->c->fp16_pos = x->step + 1;
            skipped |= x->step == step && x->skipped;
        }
        if (b->ie < b->nev || b->nev < EV_PAGE) /* found its place, or no more events */
            break;
        b->ie = 0;
        b->rc = st_fp16_page(b->s, b->c, b->c->fp16_pos, b->ev, EV_PAGE, &b->nev, b->err);
        if (b->rc)
            return 0;
    }
    return skipped;
}

static int csv_row(void *ctx, const store_metric *m)
{
    csvpiece *b = ctx;
    /* one line: at most 20 + (n_lr + 7) * 33 bytes */
    int cols = b->n_lr + 5 + (b->c->has_fp16 ? 2 : 0);
    if (b->rc || b->len + 64 + (size_t)cols * 34 > b->cap)
        return 1;
    b->len += (size_t)snprintf(b->buf + b->len, 24, "%" PRId64, m->step);
    csv_ch(b, ',');
    csv_num(b, m->loss);
    for (int g = 0; g < b->n_lr; g++) {
        csv_ch(b, ',');
        csv_num(b, g < m->n_lr ? m->lr[g] : NAN);
    }
    csv_ch(b, ',');
    csv_num(b, m->grad_norm);
    csv_ch(b, ',');
    csv_num(b, m->time);
    if (b->has_val) {
        const store_val_metric *v = val_at(b, m->step);
        if (b->rc)
            return 1;
        csv_ch(b, ',');
        csv_num(b, v ? v->val_loss : NAN);
        csv_ch(b, ',');
        csv_num(b, v ? v->val_acc : NAN);
    }
    if (b->c->has_fp16) {
        int skipped = fp16_at(b, m->step);
        if (b->rc)
            return 1;
        csv_ch(b, ',');
        csv_num(b, b->c->fp16_scale);
        csv_ch(b, ',');
        csv_ch(b, skipped ? '1' : '0');
    }
    if (b->c->full_from > 0 || b->c->retains) { /* which rows are every step, which summaries */
        const char *res = m->step < b->c->full_from ? ",summary" : ",full";
        memcpy(b->buf + b->len, res, strlen(res));
        b->len += strlen(res);
    }
    csv_ch(b, '\n');
    return 0;
}

int store_metrics_csv_piece(store_t *s, store_metrics_cursor *c, char *buf, size_t cap,
                            size_t *len, an_err *err)
{
    *len = 0;
    /* an empty range has lr columns (the newest rows', or one before any row) */
    int n_lr = c->first < 0 && c->n_lr == 0 ? 1 : c->n_lr;
    csvpiece *b = malloc(sizeof *b);
    if (!b)
        return an_failc(err, -ENOMEM, NULL, "out of memory for the CSV buffer");
    b->buf = buf;
    b->len = 0;
    b->cap = cap;
    b->n_lr = n_lr;
    b->has_val = c->has_val;
    b->s = s;
    b->c = c;
    b->nval = b->iv = 0;
    b->nev = b->ie = 0;
    b->rc = 0;
    b->err = err;
    if (!c->header) {
        b->len += (size_t)snprintf(b->buf, cap, "step,loss");
        for (int g = 0; g < n_lr; g++)
            b->len += (size_t)snprintf(b->buf + b->len, cap - b->len, ",lr%d", g);
        b->len += (size_t)snprintf(b->buf + b->len, cap - b->len, ",grad_norm,time%s%s%s\n",
                                   c->has_val ? ",val_loss,val_acc" : "",
                                   c->has_fp16 ? ",loss_scale,skipped" : "",
                                   c->full_from > 0 || c->retains ? ",resolution" : "");
        c->header = 1;
    }
    int rc = 0;
    /* Each piece is read on its own: the running job may have dropped rows the cursor has not
     * reached since the last one. Those come as the pyramid's points, marked summary, as the
     * rows dropped before the cursor opened do; the rows from the new first kept step on
     * follow. */
    if (c->retains) {
        int64_t kept = 0;
        rc = st_retained(s, c->num, &kept, err);
        if (!rc && kept > c->full_from)
            c->full_from = kept;
    }
    if (!rc && c->has_val)
        rc = store_metrics_cursor_val(s, c, c->vpos, b->val, VAL_PAGE, &b->nval, err);
    if (!rc && c->has_fp16)
        rc = st_fp16_page(s, c, c->fp16_pos, b->ev, EV_PAGE, &b->nev, err);
    if (!rc)
        rc = store_metrics_cursor_rows(s, c, csv_row, b, err);
    if (!rc)
        rc = b->rc;
    *len = rc ? 0 : b->len;
    free(b);
    return rc;
}

int store_metrics_csv(store_t *s, const char *id, int64_t from, int64_t to,
                      store_write_fn fn, void *ctx, an_err *err)
{
    store_metrics_cursor c;
    int rc = store_metrics_cursor_open(s, id, from, to, &c, err);
    if (rc)
        return rc;
    size_t cap = 65536, len;
    char *buf = malloc(cap);
    if (!buf)
        return an_failc(err, -ENOMEM, NULL, "out of memory for the CSV buffer");
    while (!(rc = store_metrics_csv_piece(s, &c, buf, cap, &len, err)) && len > 0) {
        int w = fn(ctx, buf, len);
        if (w) {
            rc = an_failc(err, w, NULL, "the CSV consumer stopped with error %d", w);
            break;
        }
    }
    free(buf);
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
