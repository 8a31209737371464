/* sweep_asha — a sweep's ASHA decisions, asked for by the workers as their trials reach a
 * rung (see sweeps.h). */
#include "jobs/sweeps.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

int sweeps_trial_rungs(sweeps *w, const char *job, int64_t total_steps, int64_t *rungs,
                       int max)
{
    int k, n = 0;
    uv_mutex_lock(&w->mu);
    sweep_run *r = sweeps_find_trial(w, job, &k);
    if (r && r->spec.asha)
        n = sweep_rungs(&r->spec, total_steps, rungs, max);
    uv_mutex_unlock(&w->mu);
    return n;
}

int sweeps_rung_reached(sweeps *w, const char *job, int64_t step, double loss, double val_loss,
                        double val_acc)
{
    int k, go = 1;
    uv_mutex_lock(&w->mu);
    sweep_run *r = sweeps_find_trial(w, job, &k);
    if (!r || !r->spec.asha) {
        uv_mutex_unlock(&w->mu);
        return 1;
    }
    const char *m = r->spec.metric;
    double value = strcmp(m, "loss") == 0 ? loss : strcmp(m, "val_acc") == 0 ? val_acc : val_loss;
    /* A trial that reaches a rung again (resumed from an earlier checkpoint) keeps the
     * decision it got the first time. */
    for (size_t i = 0; i < r->nrungs; i++)
        if (r->rungs[i].trial == k && r->rungs[i].step == step) {
            go = r->rungs[i].continues;
            uv_mutex_unlock(&w->mu);
            return go;
        }
    double *earlier = malloc((r->nrungs + 1) * sizeof *earlier);
    int count = 0;
    for (size_t i = 0; earlier && i < r->nrungs; i++)
        if (r->rungs[i].step == step)
            earlier[count++] = r->rungs[i].value;
    go = earlier ? sweep_asha_continues(earlier, count, value, r->spec.maximize, r->spec.eta) : 1;
    free(earlier);
    int64_t seq = r->nrungs ? r->rungs[r->nrungs - 1].seq + 1 : 1;
    store_sweep_rung g = {k, step, value, seq, go};
    if (r->nrungs == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        store_sweep_rung *grown = realloc(r->rungs, cap * sizeof *grown);
        if (!grown) {
            uv_mutex_unlock(&w->mu);
            return 1; /* no room to record it: the trial goes on rather than stop unrecorded */
        }
        r->rungs = grown;
        r->cap = cap;
    }
    /* Held at once, so that a trial reaching the same rung meanwhile is judged against it;
     * stored once mu is let go: the write may wait for the write lock, and the loop thread
     * takes mu. */
    r->rungs[r->nrungs++] = g;
    char id[STORE_ID_LEN], metric[sizeof r->spec.metric];
    snprintf(id, sizeof id, "%s", r->id);
    snprintf(metric, sizeof metric, "%s", r->spec.metric);
    uv_mutex_unlock(&w->mu);
    an_err e;
    uv_mutex_lock(&w->dbmu);
    int rc = store_sweep_rung_add(&w->db, id, &g, &e);
    uv_mutex_unlock(&w->dbmu);
    if (rc != 0) {
        util_log(LOG_WARN, "sweep %s: trial %d goes on past rung %lld unjudged: %s", id, k,
                   (long long)step, e.message);
        /* Taken back (the sweep may have gone meanwhile): a resume judges it again. */
        uv_mutex_lock(&w->mu);
        sweep_run *again = sweeps_find_run(w, id);
        for (size_t i = 0; again && i < again->nrungs; i++)
            if (again->rungs[i].trial == k && again->rungs[i].step == step) {
                memmove(&again->rungs[i], &again->rungs[i + 1],
                        (again->nrungs - i - 1) * sizeof *again->rungs);
                again->nrungs--;
                break;
            }
        uv_mutex_unlock(&w->mu);
        return 1;
    }
    util_log(LOG_INFO, "sweep %s: trial %d %s at rung %lld (%s %g)", id, k,
               go ? "goes on" : "is stopped", (long long)step, metric, value);
    return go;
}

double sweeps_metric_of(const sweep_spec *s, const cJSON *job)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(job, s->metric);
    if (cJSON_IsNumber(v))
        return v->valuedouble;
    /* numbers printed exactly are raw text (core/jsonnum.h) */
    if (cJSON_IsRaw(v) && v->valuestring && strcmp(v->valuestring, "null") != 0)
        return strtod(v->valuestring, NULL);
    return NAN;
}
