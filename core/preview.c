/* preview — the learning rates (and momentum) a config would use, step by step, without
 * training: POST /v1/schedules/preview and `anneald preview`. Built with the same
 * optim_parse and sched_create a job uses, so the preview is what a job would do. */
#include "core/sched.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonnum.h"
#include "core/preview_body.h"

/* ---- the steps an answer shows ---------------------------------------------------------
 *
 * A cursor runs the scheduler one step ahead of the step it looks at, so that it can tell
 * whether the lr changes direction there. */
typedef struct cursor {
    sched *s;
    const preview_plan *pl;
    int ngroups;
    int64_t pos;                      /* step index whose values are in cur */
    int64_t k;                        /* the step index last kept */
    int dprev;                        /* direction into pos: -1, 0, 1 */
    int64_t turns;                    /* direction changes kept so far */
    double cur[SCHED_MAX_GROUPS], curm[SCHED_MAX_GROUPS];
    double lr[SCHED_MAX_GROUPS], mom[SCHED_MAX_GROUPS]; /* values of step k */
} cursor;

static void copy_vals(const sched *s, int n, double *lr, double *mom)
{
    const double *a = sched_lr(s), *m = sched_mom(s);
    memcpy(lr, a, (size_t)n * sizeof *lr);
    if (m)
        memcpy(mom, m, (size_t)n * sizeof *mom);
}

/* Starts a pass: the scheduler must be in its initial state. */
static void cur_begin(cursor *c)
{
    c->pos = 0;
    c->k = -1;
    c->dprev = 0;
    c->turns = 0;
    copy_vals(c->s, c->ngroups, c->cur, c->curm);
    sched_step(c->s, NAN);
}

static int sign_of(double d)
{
    return d > 0 ? 1 : d < 0 ? -1 : 0;
}

/* Moves to the next step the plan keeps: 1 (its values in lr/mom, its index in k), 0 at the
 * end, -1 when `*budget` scheduler steps have been spent first (call again to go on). */
static int cur_next(cursor *c, int64_t *budget)
{
    const preview_plan *pl = c->pl;
    while (c->pos < pl->steps) {
        if (*budget <= 0)
            return -1;
        (*budget)--;
        int64_t k = c->pos;
        int dnext = k + 1 < pl->steps ? sign_of(sched_lr(c->s)[0] - c->cur[0]) : 0;
        int keep = pl->every == 1 || k == 0 || k == pl->steps - 1 || k % pl->every == 0;
        if (!keep && dnext != c->dprev && c->turns < pl->turn_cap) {
            keep = 1;
            c->turns++;
        }
        if (keep) {
            c->k = k;
            memcpy(c->lr, c->cur, (size_t)c->ngroups * sizeof *c->lr);
            memcpy(c->mom, c->curm, (size_t)c->ngroups * sizeof *c->mom);
        }
        c->dprev = dnext;
        copy_vals(c->s, c->ngroups, c->cur, c->curm);
        sched_step(c->s, NAN);
        c->pos++;
        if (keep)
            return 1;
    }
    return 0;
}

int sched_preview(const cJSON *body, int64_t steps_override, cJSON **out, an_err *err)
{
    *out = NULL;
    sched *s;
    preview_plan pl;
    int ngroups = 0;
    cJSON *res = cJSON_CreateObject();
    cJSON *warnings = cJSON_AddArrayToObject(res, "warnings");
    if (!warnings) {
        cJSON_Delete(res);
        return an_failc(err, -ENOMEM, "", "out of memory");
    }
    int rc = preview_setup(body, steps_override, &s, &pl, &ngroups, warnings, err);
    if (rc) {
        cJSON_Delete(res);
        return rc;
    }

    cJSON *jstep = cJSON_AddArrayToObject(res, "step");
    cJSON *jlr = cJSON_AddArrayToObject(res, "lr");
    cJSON *jmom = sched_mom(s) ? cJSON_AddArrayToObject(res, "momentum") : NULL;
    cJSON *lr_rows[SCHED_MAX_GROUPS], *mom_rows[SCHED_MAX_GROUPS];
    int ok = res && jstep && jlr && (jmom || !sched_mom(s));
    for (int g = 0; ok && g < ngroups; g++) {
        lr_rows[g] = cJSON_CreateArray();
        ok = lr_rows[g] && cJSON_AddItemToArray(jlr, lr_rows[g]);
        if (ok && jmom) {
            mom_rows[g] = cJSON_CreateArray();
            ok = mom_rows[g] && cJSON_AddItemToArray(jmom, mom_rows[g]);
        }
    }
    /* Entry s-1 is what optimizer step s uses. */
    cursor c = {.s = s, .pl = &pl, .ngroups = ngroups};
    cur_begin(&c);
    int64_t budget = INT64_MAX;
    while (ok && cur_next(&c, &budget) == 1) {
        ok = cJSON_AddItemToArray(jstep, cJSON_CreateNumber((double)(c.k + 1)));
        for (int g = 0; ok && g < ngroups; g++) {
            ok = cJSON_AddItemToArray(lr_rows[g], json_number(c.lr[g]));
            if (ok && jmom)
                ok = cJSON_AddItemToArray(mom_rows[g], json_number(c.mom[g]));
        }
    }
    sched_free(s);
    if (!ok) {
        cJSON_Delete(res);
        return an_failc(err, -ENOMEM, "", "out of memory building a preview of %lld steps",
                        (long long)pl.steps);
    }
    *out = res;
    return 0;
}

/* ---- streaming: the same numbers, written as they are computed ----
 *
 * A preview may ask for 10,000,000 steps: as a cJSON tree that is gigabytes. The stream keeps
 * only the scheduler and its initial state. The JSON form is column-major ("lr" holds one
 * array per group), so the scheduler is rewound to its initial state (sched_load) and run
 * again for each column; a scheduler step costs nanoseconds, so that is cheaper than storing
 * the columns. Text is produced one item at a time into `item` and copied out as the reader
 * asks for it. */

enum { PV_OPEN, PV_STEP, PV_LR_OPEN, PV_LR, PV_MOM_OPEN, PV_MOM, PV_CLOSE, PV_CSV_HEAD, PV_CSV, PV_END };

struct sched_preview_stream {
    sched *s;
    void *init;              /* the scheduler's state before its first step */
    size_t init_len;
    preview_plan pl;
    int ngroups;
    int has_mom;
    int csv;                 /* 1 = CSV rows, 0 = JSON */
    int phase;               /* PV_* */
    int g;                   /* column group in PV_LR / PV_MOM */
    int first;               /* no item written yet in the current array */
    int64_t budget;          /* scheduler steps left in this read */
    cJSON *warnings;         /* preview_setup's notes */
    char *head;              /* the JSON form's text before the steps: its warnings */
    size_t hlen, hpos;
    cursor c;
    char item[SCHED_MAX_GROUPS * 48 + 64]; /* text made but not yet read */
    size_t ilen, ipos;
};

/* Back to the state before the first step, for the next pass. */
static void rewind_sched(sched_preview_stream *ps)
{
    sched_load(ps->s, ps->init, ps->init_len, NULL);
    cur_begin(&ps->c);
    ps->first = 1;
}

int sched_preview_open(const cJSON *body, int64_t steps_override, int csv,
                       sched_preview_stream **out, an_err *err)
{
    *out = NULL;
    sched_preview_stream *ps = calloc(1, sizeof *ps);
    if (!ps)
        return an_failc(err, -ENOMEM, "", "out of memory");
    ps->warnings = cJSON_CreateArray();
    if (!ps->warnings) {
        free(ps);
        return an_failc(err, -ENOMEM, "", "out of memory");
    }
    int rc = preview_setup(body, steps_override, &ps->s, &ps->pl, &ps->ngroups, ps->warnings,
                           err);
    if (rc) {
        sched_preview_close(ps);
        return rc;
    }
    char *w = csv ? NULL : cJSON_PrintUnformatted(ps->warnings);
    if (!csv && w) {
        size_t n = strlen(w) + 32;
        if ((ps->head = malloc(n)))
            ps->hlen = (size_t)snprintf(ps->head, n, "{\"warnings\":%s,\"step\":[", w);
    }
    free(w);
    if (!csv && !ps->head) {
        sched_preview_close(ps);
        return an_failc(err, -ENOMEM, "", "out of memory");
    }
    ps->has_mom = sched_mom(ps->s) != NULL;
    ps->csv = csv;
    ps->phase = csv ? PV_CSV_HEAD : PV_OPEN;
    ps->init_len = sched_state_size(ps->s);
    ps->init = malloc(ps->init_len ? ps->init_len : 1);
    if (!ps->init || sched_save(ps->s, ps->init, ps->init_len) != 0) {
        sched_preview_close(ps);
        return an_failc(err, -ENOMEM, "", "out of memory");
    }
    ps->c = (cursor){.s = ps->s, .pl = &ps->pl, .ngroups = ps->ngroups};
    rewind_sched(ps);
    *out = ps;
    return 0;
}

int64_t sched_preview_steps(const sched_preview_stream *ps)
{
    return ps->pl.steps;
}

/* Appends one number to the item, with a separator before it unless it is the first. */
static void put_num(sched_preview_stream *ps, double v, int first)
{
    if (!first)
        ps->item[ps->ilen++] = ',';
    ps->ilen += (size_t)json_number_text(ps->item + ps->ilen, sizeof ps->item - ps->ilen, v, !ps->csv);
}

static void put_str(sched_preview_stream *ps, const char *t)
{
    size_t n = strlen(t);
    memcpy(ps->item + ps->ilen, t, n);
    ps->ilen += n;
}

/* Makes the next item of text: 1 when made (it may be empty), 0 at the end of the stream, -1
 * when this read's budget of scheduler steps is spent. */
static int next_item(sched_preview_stream *ps)
{
    ps->ilen = ps->ipos = 0;
    switch (ps->phase) {
    case PV_CSV_HEAD:
        put_str(ps, "step");
        for (int g = 0; g < ps->ngroups; g++)
            ps->ilen += (size_t)snprintf(ps->item + ps->ilen, sizeof ps->item - ps->ilen, ",lr%d", g);
        for (int g = 0; ps->has_mom && g < ps->ngroups; g++)
            ps->ilen += (size_t)snprintf(ps->item + ps->ilen, sizeof ps->item - ps->ilen, ",momentum%d", g);
        put_str(ps, "\n");
        ps->phase = PV_CSV;
        return 1;
    case PV_CSV: {
        int r = cur_next(&ps->c, &ps->budget);
        if (r < 0)
            return -1;
        if (r == 0) {
            ps->phase = PV_END;
            return 0;
        }
        ps->ilen += (size_t)snprintf(ps->item, sizeof ps->item, "%lld", (long long)(ps->c.k + 1));
        for (int g = 0; g < ps->ngroups; g++)
            put_num(ps, ps->c.lr[g], 0);
        for (int g = 0; ps->has_mom && g < ps->ngroups; g++)
            put_num(ps, ps->c.mom[g], 0);
        put_str(ps, "\n");
        return 1;
    }
    case PV_OPEN: /* its text is `head`, read before any item */
        ps->phase = PV_STEP;
        return 1;
    case PV_LR:
    case PV_MOM:
    case PV_STEP: {
        /* a run of entries per item keeps the call count down */
        int mom = ps->phase == PV_MOM;
        for (int i = 0; i < 16; i++) {
            int r = cur_next(&ps->c, &ps->budget);
            if (r < 0)
                return i ? 1 : -1;
            if (r == 0) {
                if (i)
                    return 1;
                if (ps->phase == PV_STEP) {
                    put_str(ps, "],\"lr\":[");
                    ps->phase = PV_LR_OPEN;
                    ps->g = 0;
                } else {
                    put_str(ps, "]");
                    ps->g++;
                    ps->phase = mom ? PV_MOM_OPEN : PV_LR_OPEN;
                }
                return 1;
            }
            if (ps->phase == PV_STEP)
                ps->ilen += (size_t)snprintf(ps->item + ps->ilen, sizeof ps->item - ps->ilen,
                                             ps->first ? "%lld" : ",%lld",
                                             (long long)(ps->c.k + 1));
            else
                put_num(ps, mom ? ps->c.mom[ps->g] : ps->c.lr[ps->g], ps->first);
            ps->first = 0;
        }
        return 1;
    }
    case PV_LR_OPEN:
    case PV_MOM_OPEN: {
        int mom = ps->phase == PV_MOM_OPEN;
        if (ps->g >= ps->ngroups) {
            if (!mom && ps->has_mom) {
                put_str(ps, "],\"momentum\":[");
                ps->phase = PV_MOM_OPEN;
                ps->g = 0;
            } else {
                put_str(ps, "]}\n");
                ps->phase = PV_CLOSE;
            }
            return 1;
        }
        put_str(ps, ps->g ? ",[" : "[");
        rewind_sched(ps);
        ps->phase = mom ? PV_MOM : PV_LR;
        return 1;
    }
    default:
        ps->phase = PV_END;
        return 0;
    }
}

size_t sched_preview_read_some(sched_preview_stream *ps, char *buf, size_t max, int64_t budget)
{
    size_t n = 0;
    ps->budget = budget;
    if (ps->hpos < ps->hlen) {
        n = ps->hlen - ps->hpos < max ? ps->hlen - ps->hpos : max;
        memcpy(buf, ps->head + ps->hpos, n);
        ps->hpos += n;
    }
    while (n < max) {
        if (ps->ipos == ps->ilen) {
            int r = next_item(ps);
            if (r <= 0)
                break;
        }
        size_t take = ps->ilen - ps->ipos;
        if (take > max - n)
            take = max - n;
        memcpy(buf + n, ps->item + ps->ipos, take);
        ps->ipos += take;
        n += take;
    }
    return n;
}

size_t sched_preview_read(sched_preview_stream *ps, char *buf, size_t max)
{
    return sched_preview_read_some(ps, buf, max, INT64_MAX);
}

int sched_preview_done(const sched_preview_stream *ps)
{
    return ps->phase == PV_END && ps->ipos == ps->ilen;
}

const cJSON *sched_preview_warnings(const sched_preview_stream *ps)
{
    return ps->warnings;
}

void sched_preview_close(sched_preview_stream *ps)
{
    if (!ps)
        return;
    sched_free(ps->s);
    cJSON_Delete(ps->warnings);
    free(ps->head);
    free(ps->init);
    free(ps);
}
