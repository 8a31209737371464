/* metrics_stream — the body of GET /v1/jobs/{id}/metrics, made in pieces (api/pieces.h).
 *
 * A job's metrics can be hundreds of millions of rows, so neither the CSV nor the JSON
 * answer is built in memory: each piece of PIECE bytes is one short read of the store, made on
 * a slow queue thread. A stream therefore holds about 2 * PIECE bytes whatever its length; a
 * downsampled JSON answer also holds its points (at most max_points of them, 48 bytes each
 * and 8 more per further lr group, charged to the memory budget) from the start.
 *
 * The JSON answer is columnar ({"step":[…],"loss":[…],"lr":[[…]…],"grad_norm":[…],
 * "time":[…],"wall":[…],"val_step":[…],"val_loss":[…],"val_acc":[…]}, "fp16":{…} for a fp16 job and
 * "full_resolution_from": S for a job whose rows before S were dropped), so a full-resolution
 * answer reads the range once per column. Its ends are fixed when it opens; should the job be
 * rewound while it streams, the later columns keep the step column's length (null-padded).
 *
 * A stop (SIGTERM: from the moment the daemon drains) or a store error after the head was
 * sent cuts the stream. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "api/metrics_stream.h"
#include "api/pieces.h"
#include "store/fp16.h"
#include "core/jsonnum.h"
#include "api/api.h"
#include "util/log.h"

#define PIECE (256 * 1024)

enum { C_STEP = 0, C_LOSS, C_LR, C_GRAD, C_TIME, C_WALL, C_VSTEP, C_VLOSS, C_VACC, C_FP16, C_END };

typedef struct mstream {
    int csv;
    store_metrics_cursor c;
    store_series ser;              /* a downsampled JSON answer, made at open */
    int have_ser;
    int n_lr;                      /* JSON lr groups */
    /* the JSON writer's place (producer only) */
    int col, g, started;           /* column, lr group; 1 once its opening text is out */
    size_t idx;                    /* next point of ser */
    int64_t written, nrows;        /* values of this column so far; of the step column */
    int64_t vpos;                  /* next validation step of a val column */
    char *fp16;                    /* the "fp16" member's text (made at open), or NULL */
    size_t fp16_len, fp16_off;     /* its length; how much of it is written */
    int ended;                     /* the producer has made the whole text */
    /* A job that keeps only its newest rows (c.retains) drops its oldest ones while it runs,
     * maybe between two columns, whether or not it had dropped any (c.full_from > 0) when the
     * answer opened. The steps of the step column from full_from on, as
     * [first, last] runs (a few for contiguous rows), let the later columns put each value
     * at its step and null where a row went away, instead of shifting the rest. */
    int64_t *runs;
    size_t nruns, capruns;
    size_t ri;                     /* the run of the next expected step … */
    int64_t roff;                  /* … and its offset in it */
    int runs_oom;
} mstream;

static void ms_free(void *p)
{
    mstream *m = p;
    free(m->runs);
    store_series_free(&m->ser);
    free(m->fp16);
    free(m);
}

/* ---- JSON ---------------------------------------------------------------------------- */

typedef struct jw {
    mstream *m;
    char *buf;
    size_t len, cap;
    int col_done;                  /* the column reached the step column's length */
} jw;

static void put_val(jw *w, int col, int g, int64_t step, double v)
{
    if (w->m->written > 0)
        w->buf[w->len++] = ',';
    if (col == C_STEP || col == C_VSTEP)
        w->len += (size_t)snprintf(w->buf + w->len, 24, "%" PRId64, step);
    else
        w->len += (size_t)json_number_text(w->buf + w->len, 32, v, 1);
    (void)g;
    w->m->written++;
}

static double col_of(const store_metric *r, int col, int g)
{
    switch (col) {
    case C_LOSS: return r->loss;
    case C_LR: return g < r->n_lr ? r->lr[g] : NAN;
    case C_GRAD: return r->grad_norm;
    case C_WALL: return r->wall;
    default: return r->time;
    }
}

/* Notes a step of the step column at or after full_from (see mstream.runs); 0 or -1. */
static int run_add(mstream *m, int64_t step)
{
    if (m->nruns && m->runs[2 * m->nruns - 1] + 1 == step) {
        m->runs[2 * m->nruns - 1] = step;
        return 0;
    }
    if (m->nruns == m->capruns) {
        size_t nc = m->capruns ? 2 * m->capruns : 16;
        int64_t *n = realloc(m->runs, 2 * nc * sizeof *n);
        if (!n)
            return -1;
        m->runs = n;
        m->capruns = nc;
    }
    m->runs[2 * m->nruns] = m->runs[2 * m->nruns + 1] = step;
    m->nruns++;
    return 0;
}

/* The next step the step column holds from full_from on, or -1 when no more. */
static int64_t run_next(const mstream *m)
{
    return m->ri < m->nruns ? m->runs[2 * m->ri] + m->roff : -1;
}

static void run_skip(mstream *m)
{
    if (m->runs[2 * m->ri] + ++m->roff > m->runs[2 * m->ri + 1]) {
        m->ri++;
        m->roff = 0;
    }
}

/* A row of the store for the current column (store_row_fn). */
static int json_row(void *ctx, const store_metric *r)
{
    jw *w = ctx;
    mstream *m = w->m;
    if (m->col > C_STEP && m->written >= m->nrows) {
        w->col_done = 1;
        return 1;
    }
    if (w->len + 64 > w->cap)
        return 1;
    if ((m->c.full_from > 0 || m->c.retains) && r->step >= m->c.full_from) {
        if (m->col == C_STEP) {
            if (run_add(m, r->step)) {
                m->runs_oom = 1;
                return 1;
            }
        } else {
            /* Rows dropped since the step column read them: nulls at their steps. */
            int64_t x;
            while ((x = run_next(m)) >= 0 && x < r->step) {
                if (w->len + 64 > w->cap)
                    return 1;
                put_val(w, m->col, m->g, x, NAN);
                run_skip(m);
            }
            if (x != r->step)
                return 0; /* not a step of the step column */
            run_skip(m);
        }
    }
    put_val(w, m->col, m->g, r->step, col_of(r, m->col, m->g));
    return 0;
}

static const char *opening(const mstream *m)
{
    switch (m->col) {
    case C_STEP: return "{\"step\":[";
    case C_LOSS: return "],\"loss\":[";
    case C_LR: return m->g == 0 ? "],\"lr\":[[" : "],[";
    case C_GRAD: return m->n_lr > 0 ? "]],\"grad_norm\":[" : "],\"lr\":[],\"grad_norm\":[";
    case C_TIME: return "],\"time\":[";
    case C_WALL: return "],\"wall\":[";
    case C_VSTEP: return "],\"val_step\":[";
    case C_VLOSS: return "],\"val_loss\":[";
    case C_VACC: return "],\"val_acc\":[";
    case C_FP16: return "]";
    default: return "}\n";
    }
}

static void next_col(mstream *m)
{
    if (m->col == C_STEP)
        m->nrows = m->written;
    if (m->col == C_LR && m->g + 1 < m->n_lr) {
        m->g++;
    } else {
        m->col++;
        m->g = 0;
        if (m->col == C_LR && m->n_lr == 0)
            m->col++;
    }
    m->started = 0;
    m->written = 0;
    m->idx = 0;
    m->ri = 0;
    m->roff = 0;
    m->c.pos = m->c.first;
    m->vpos = m->c.from;
}

/* Values of the current column into w until it ends (1) or the piece is full (0). */
static int json_column(mstream *m, jw *w, store_t *s, an_err *e, int *rc)
{
    if (m->col == C_FP16) {
        /* Made at open: copied as room allows, leaving the piece with less than the 64
         * bytes json_piece wants free when it stops short, so the loop ends there. */
        size_t k = m->fp16_len - m->fp16_off;
        size_t room = w->cap - w->len > 63 ? w->cap - w->len - 63 : 0;
        if (k > room)
            k = room;
        if (k) /* no events: no text (memcpy from NULL is undefined even for 0 bytes) */
            memcpy(w->buf + w->len, m->fp16 + m->fp16_off, k);
        w->len += k;
        m->fp16_off += k;
        return m->fp16_off == m->fp16_len;
    }
    if (m->col >= C_VSTEP) {
        store_val_metric page[256];
        size_t n = 0;
        size_t room = (w->cap - w->len) / 40;
        if (room == 0)
            return 0;
        *rc = store_metrics_cursor_val(s, &m->c, m->vpos, page, room < 256 ? room : 256, &n, e);
        if (*rc)
            return 0;
        for (size_t i = 0; i < n; i++)
            put_val(w, m->col, 0, page[i].step,
                    m->col == C_VLOSS ? page[i].val_loss : page[i].val_acc);
        if (n)
            m->vpos = page[n - 1].step + 1;
        return n < (room < 256 ? room : 256);
    }
    if (m->have_ser) {
        const store_series *a = &m->ser;
        for (; m->idx < a->n; m->idx++) {
            if (w->len + 64 > w->cap)
                return 0;
            size_t i = m->idx;
            double v = m->col == C_LOSS ? a->loss[i]
                       : m->col == C_LR ? a->lr[(size_t)m->g * a->n + i]
                       : m->col == C_GRAD ? a->grad_norm[i]
                       : m->col == C_WALL ? a->wall[i] : a->time[i];
            put_val(w, m->col, m->g, a->step[i], v);
        }
        return 1;
    }
    w->col_done = 0;
    *rc = store_metrics_cursor_rows(s, &m->c, json_row, w, e);
    if (!*rc && m->runs_oom)
        *rc = an_failc(e, -ENOMEM, NULL, "out of memory for the steps of a metrics answer");
    if (*rc)
        return 0;
    /* No rows in the range (first -1): the column is empty, not waiting for room. */
    if (!w->col_done && m->c.first >= 0 && m->c.pos <= m->c.last)
        return 0; /* the piece is full */
    /* Rows that went away while this streamed (a rewind): keep the columns' length. */
    while (m->col > C_STEP && m->written < m->nrows) {
        if (w->len + 64 > w->cap)
            return 0;
        put_val(w, m->col, m->g, 0, NAN);
    }
    return 1;
}

static int json_piece(mstream *m, store_t *s, char *buf, size_t cap, size_t *len, an_err *e)
{
    jw w = {m, buf, 0, cap, 0};
    int rc = 0;
    while (!rc && !m->ended && w.len + 64 <= cap) {
        if (!m->started) {
            const char *o = opening(m);
            size_t k = strlen(o);
            if (m->col == C_END && m->c.full_from > 0) /* the job's older rows were dropped */
                k -= 2;                                /* the field, then "}\n" */
            memcpy(w.buf + w.len, o, k);
            w.len += k;
            if (m->col == C_END && m->c.full_from > 0)
                w.len += (size_t)snprintf(w.buf + w.len, 48, ",\"full_resolution_from\":%" PRId64
                                          "}\n", m->c.full_from);
            m->started = 1;
            if (m->col == C_END) {
                m->ended = 1;
                break;
            }
        }
        if (json_column(m, &w, s, e, &rc))
            next_col(m);
        else if (!rc && w.len + 64 <= cap && m->col >= C_VSTEP)
            continue; /* a val page filled its room: more may fit */
        else
            break;
    }
    *len = w.len;
    return rc;
}

/* The "fp16" member of a fp16 job's answer (",\"fp16\":{…}", or nothing without events):
 * its loss-scale events in the range, led by the one in force at `from` (its step may be
 * below from), and the skipped steps of the range. A few per thousand steps, so it is made
 * whole at open. */
static int fp16_member(mstream *m, store_t *s, const char *id, int64_t from, an_err *e)
{
    if (m->c.first < 0)
        return 0;
    store_fp16_event *ev = NULL;
    size_t n = 0;
    /* Bounded by the range's last stored step, fixed at open like the rows. */
    int rc = store_fp16_events(s, id, from, m->c.last, &ev, &n, e);
    if (rc || n == 0) {
        free(ev);
        return rc;
    }
    size_t cap = 64 + n * 64;
    char *t = malloc(cap);
    if (!t) {
        free(ev);
        return an_failc(e, -ENOMEM, NULL, "out of memory for the answer");
    }
    size_t len = (size_t)snprintf(t, cap, ",\"fp16\":{\"step\":[");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(t + len, cap - len, "%s%" PRId64, i ? "," : "", ev[i].step);
    len += (size_t)snprintf(t + len, cap - len, "],\"loss_scale\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            t[len++] = ',';
        len += (size_t)json_number_text(t + len, 32, ev[i].loss_scale, 1);
    }
    len += (size_t)snprintf(t + len, cap - len, "],\"skipped\":[");
    int any = 0;
    for (size_t i = 0; i < n; i++)
        if (ev[i].skipped && ev[i].step >= from)
            len += (size_t)snprintf(t + len, cap - len, "%s%" PRId64, any++ ? "," : "",
                                    ev[i].step);
    len += (size_t)snprintf(t + len, cap - len, "]}");
    free(ev);
    m->fp16 = t;
    m->fp16_len = len;
    return 0;
}

/* ---- pieces -------------------------------------------------------------------------- */

/* The next piece (pieces_make_fn): a queue thread, or the opening work. */
static int ms_make(void *ctx, store_t *s, char *buf, size_t cap, size_t *len, int *last,
                   an_err *e)
{
    mstream *m = ctx;
    int rc;
    if (m->csv) {
        rc = store_metrics_csv_piece(s, &m->c, buf, cap, len, e);
        *last = !rc && *len == 0;
    } else {
        rc = json_piece(m, s, buf, cap, len, e);
        *last = m->ended;
    }
    return rc;
}

/* Reserves the points of a downsampled answer (store_series: step, loss, grad_norm, time,
 * wall and the lr groups, 8 bytes each) for the rest of the request; -EBUSY when the budget
 * (--max-memory) cannot take them now. */
static int charge_points(http_req *r, uint64_t points, int n_lr, an_err *e)
{
    uint64_t bytes = points * (5u + (uint64_t)(n_lr > 0 ? n_lr : 1)) * 8u;
    if (budget_try(&r->api->sv->mem, bytes) != 0) {
        char t[32];
        return an_failc(e, -EBUSY, "max_points", "the daemon's memory budget (--max-memory) "
                        "cannot take the %s that %" PRIu64 " points of %d lr groups need now; "
                        "ask for fewer points (max_points) or try again later",
                        mem_bytes_text(bytes, t, sizeof t), points, n_lr > 0 ? n_lr : 1);
    }
    r->mem_charge += bytes;
    return 0;
}

int metrics_stream_open(http_req *r, store_t *s, const char *id, int64_t from, int64_t to,
                        int64_t max_points, int csv, struct MHD_Response **out, an_err *e)
{
    *out = NULL;
    mstream *m = calloc(1, sizeof *m);
    if (!m)
        return an_failc(e, -ENOMEM, NULL, "out of memory for the answer");
    m->csv = csv;
    int rc = store_metrics_cursor_open(s, id, from, to, &m->c, e);
    if (!rc && !csv) {
        m->n_lr = m->c.n_lr; /* an empty range too: one empty array per group */
        uint64_t span = m->c.first < 0 ? 0 : (uint64_t)(m->c.last - m->c.first) + 1;
        if (max_points > 0 && span > (uint64_t)max_points) {
            /* Downsampled: the points first (at most max_points), then their text. The points
             * are charged to the memory budget until the request ends: a max_points of
             * millions on a job of many lr groups is gigabytes. */
            /* the first and last points always: two at least (store_metrics_query) */
            rc = charge_points(r, (uint64_t)(max_points < 2 ? 2 : max_points), m->n_lr, e);
            if (!rc)
                rc = store_metrics_query(s, id, from, to, (size_t)max_points, &m->ser, e);
            m->have_ser = !rc;
            m->n_lr = m->ser.n_lr;
        }
        m->c.pos = m->c.first;
        m->vpos = m->c.from;
        if (!rc)
            rc = fp16_member(m, s, id, from, e);
    }
    if (rc) {
        ms_free(m);
        return rc;
    }
    pieces_spec sp = {.piece = PIECE, .make = ms_make, .free_ctx = ms_free, .ctx = m,
                      .what = "a metrics stream",
                      .content_type = csv ? "text/csv; charset=utf-8"
                                          : "application/json; charset=utf-8"};
    return pieces_open(r, s, &sp, out, e);
}
