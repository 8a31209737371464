/* jobjson — a job's JSON (API.md, "Job object"): its store row, and what this process knows
 * beyond it (jobs/jobmgr.h's overlay: a final state the store could not take yet, a running
 * job's latest progress, preemption and restarts). Any thread. */
#include "api/jobjson.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonnum.h"

/* Adds a number or null (for NaN/Inf, which JSON cannot carry). */
static cJSON *num_or_null(double v)
{
    return json_number(v);
}

static cJSON *str_or_null(const char *v)
{
    return (v && v[0]) ? cJSON_CreateString(v) : cJSON_CreateNull();
}

/* Parses a stored JSON text, falling back to `fallback` (a fresh item) if it does not parse. */
static cJSON *json_or(const char *text, cJSON *(*fallback)(void))
{
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    return j ? j : fallback();
}

cJSON *api_job_json(const store_job *j)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON *lr = cJSON_CreateArray();
    for (int g = 0; lr && g < j->n_lr; g++)
        cJSON_AddItemToArray(lr, num_or_null(j->lr[g]));
    int ok = 1;
    ok &= cJSON_AddItemToObject(o, "id", cJSON_CreateString(j->id));
    ok &= cJSON_AddItemToObject(o, "name", cJSON_CreateString(j->name ? j->name : ""));
    ok &= cJSON_AddItemToObject(o, "state", str_or_null(store_state_name(j->state)));
    ok &= cJSON_AddItemToObject(o, "created_at", str_or_null(j->created_at));
    ok &= cJSON_AddItemToObject(o, "started_at", str_or_null(j->started_at));
    ok &= cJSON_AddItemToObject(o, "finished_at", str_or_null(j->finished_at));
    ok &= cJSON_AddItemToObject(o, "step", cJSON_CreateNumber((double)j->step));
    ok &= cJSON_AddItemToObject(o, "total_steps", cJSON_CreateNumber((double)j->total_steps));
    ok &= cJSON_AddItemToObject(o, "epoch", cJSON_CreateNumber((double)j->epoch));
    ok &= cJSON_AddItemToObject(o, "loss", num_or_null(j->loss));
    ok &= cJSON_AddItemToObject(o, "lr", lr);
    ok &= cJSON_AddItemToObject(o, "samples_per_sec", num_or_null(j->samples_per_sec));
    /* the time left is known only while a worker trains the job (overlay_apply) */
    ok &= cJSON_AddItemToObject(o, "eta_s", cJSON_CreateNull());
    ok &= cJSON_AddItemToObject(o, "last_checkpoint_step",
                                j->last_checkpoint_step < 0
                                    ? cJSON_CreateNull()
                                    : cJSON_CreateNumber((double)j->last_checkpoint_step));
    ok &= cJSON_AddItemToObject(o, "error", str_or_null(j->error));
    ok &= cJSON_AddItemToObject(o, "warnings", json_or(j->warnings_json, cJSON_CreateArray));
    cJSON *spec = json_or(j->spec_json, cJSON_CreateObject);
    const cJSON *ws = cJSON_GetObjectItemCaseSensitive(spec, "world_size"); /* before made exact */
    double world = cJSON_IsNumber(ws) ? ws->valuedouble : 1;
    /* Shown as stored: every number with the digits that give back its bits. */
    if (spec && json_make_exact(spec->child) != 0)
        ok = 0;
    /* a learning-rate sweep (POST /v1/lr_finder) is a job whose spec has "lr_finder" */
    ok &= cJSON_AddItemToObject(o, "kind", cJSON_CreateString(
                                               cJSON_GetObjectItemCaseSensitive(spec, "lr_finder")
                                                   ? "lr_finder" : "train"));
    ok &= cJSON_AddItemToObject(o, "sweep", str_or_null(j->sweep[0] ? j->sweep : NULL));
    ok &= cJSON_AddItemToObject(o, "trial", j->trial < 0 ? cJSON_CreateNull()
                                                           : cJSON_CreateNumber(j->trial));
    ok &= cJSON_AddItemToObject(o, "world_size", cJSON_CreateNumber(world));
    ok &= cJSON_AddItemToObject(o, "spec", spec);
    ok &= cJSON_AddItemToObject(o, "resume_from", json_or(j->resume_from_json, cJSON_CreateNull));
    ok &= cJSON_AddItemToObject(o, "val_loss", num_or_null(j->val_step > 0 ? j->val_loss : NAN));
    ok &= cJSON_AddItemToObject(o, "val_acc", num_or_null(j->val_step > 0 ? j->val_acc : NAN));
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* Preemption and restarts: what the scheduler did to a job (jobs/jobsched.c). */
static void sched_json(cJSON *o, const job_snap *s, store_job_state state)
{
    cJSON_AddBoolToObject(o, "preempted", s && s->preempted && !s->started);
    cJSON_AddNumberToObject(o, "restarts", s ? s->restarts : 0);
    /* a running job of several ranks: each rank's milliseconds per step outside the exchange
     * (the row's state too: between the store taking the final state and the worker marking
     * its run done, the run still looks started) */
    int running = state == STORE_RUNNING && s && s->started && !s->done && s->n_rank_ms;
    cJSON *ms = running ? cJSON_CreateArray() : cJSON_CreateNull();
    for (int i = 0; s && cJSON_IsArray(ms) && i < s->n_rank_ms; i++)
        cJSON_AddItemToArray(ms, num_or_null(s->rank_step_ms[i]));
    cJSON_AddItemToObject(o, "rank_step_ms", ms);
}

/* Puts what this process knows beyond the store into a job's JSON: a final state the store
 * could not take yet (fix) and a running job's latest progress (snap). */
static void overlay_apply(cJSON *o, const store_job *row, const job_overlay_item *it)
{
    if (it->has_fix) { /* the state the store could not take yet is the truth */
        cJSON_ReplaceItemInObject(o, "state", cJSON_CreateString(store_state_name(it->fix_state)));
        cJSON_ReplaceItemInObject(o, "error", it->fix_error[0] ? cJSON_CreateString(it->fix_error)
                                                              : cJSON_CreateNull());
    }
    if (it->has_snap && row->state == STORE_QUEUED && it->snap.wait_reason[0])
        cJSON_AddStringToObject(o, "queue_reason", it->snap.wait_reason);
    if (it->has_snap && row->state == STORE_RUNNING) {
        const job_snap *s = &it->snap;
        if (s->started && s->step > row->step) {
            cJSON_ReplaceItemInObject(o, "step", cJSON_CreateNumber((double)s->step));
            cJSON_ReplaceItemInObject(o, "epoch", cJSON_CreateNumber((double)s->epoch));
            cJSON_ReplaceItemInObject(o, "loss", num_or_null(s->loss));
            cJSON *lr = cJSON_CreateArray();
            for (int g = 0; g < s->n_lr; g++)
                cJSON_AddItemToArray(lr, num_or_null(s->lr[g]));
            cJSON_ReplaceItemInObject(o, "lr", lr);
            cJSON_ReplaceItemInObject(o, "samples_per_sec", num_or_null(s->samples_per_sec));
            /* fp16 jobs: the loss scale and the overflowed (skipped) steps, while running */
            if (s->loss_scale == s->loss_scale) {
                cJSON_AddItemToObject(o, "loss_scale", num_or_null(s->loss_scale));
                cJSON_AddNumberToObject(o, "skipped_steps", (double)s->skipped_steps);
            }
        }
        if (s->started && s->val_step > 0 && s->val_step > row->val_step) {
            cJSON_ReplaceItemInObject(o, "val_loss", num_or_null(s->val_loss));
            cJSON_ReplaceItemInObject(o, "val_acc", num_or_null(s->val_acc));
        }
        cJSON_ReplaceItemInObject(o, "eta_s", num_or_null(s->eta_s));
    }
}

/* A queued job's place in the order the workers take them, asked of the manager through the
 * overlay (jobs_queue_place); null for a job that is not queued, or not in the queue (a
 * resume being written, a stop under way). */
static void queue_json(cJSON *o, job_overlay *ov, const char *id, store_job_state state)
{
    size_t pos = 0, len = 0;
    int known = state == STORE_QUEUED && jobs_queue_place(ov, id, &pos, &len);
    cJSON_AddItemToObject(o, "queue_position",
                          known ? cJSON_CreateNumber((double)pos) : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "queue_length",
                          known ? cJSON_CreateNumber((double)len) : cJSON_CreateNull());
}

cJSON *api_job_json_overlay(job_overlay *ov, const store_job *row)
{
    cJSON *o = api_job_json(row);
    if (!o)
        return NULL;
    const job_snap *snap = NULL;
    store_job_state state = row->state;
    for (size_t i = 0; ov && i < ov->n; i++)
        if (strcmp(ov->items[i].id, row->id) == 0) {
            overlay_apply(o, row, &ov->items[i]);
            snap = ov->items[i].has_snap ? &ov->items[i].snap : NULL;
            if (ov->items[i].has_fix) /* the state the store could not take yet */
                state = ov->items[i].fix_state;
            break;
        }
    sched_json(o, snap, state);
    queue_json(o, ov, row->id, state);
    return o;
}

