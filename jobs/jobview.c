/* jobview — a job's JSON: its store row plus what this process knows beyond it (a final
 * state the store could not take yet, a running job's latest progress, why a taken job still
 * waits). The overlay can be copied on the loop thread so that the JSON of many jobs is made
 * elsewhere (job lists on the request queues). */
#include "jobs/jobmgr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonnum.h"

static cJSON *num_or_null(double v)
{
    return json_number(v);
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
        if (cJSON_GetObjectItemCaseSensitive(o, "eta_s"))
            cJSON_ReplaceItemInObject(o, "eta_s", num_or_null(s->eta_s));
        else
            cJSON_AddItemToObject(o, "eta_s", num_or_null(s->eta_s));
    }
}

/* The overlay of one job, read now (loop thread). */
static void overlay_of(jobmgr *m, const char *id, job_overlay_item *it)
{
    memset(it, 0, sizeof *it);
    snprintf(it->id, sizeof it->id, "%s", id);
    job_fix *f = jobs_find_fix(m, id);
    if (f) {
        it->has_fix = 1;
        it->fix_state = f->state;
        snprintf(it->fix_error, sizeof it->fix_error, "%s", f->error);
    }
    job_run *r = jobs_find(m, id);
    if (r) {
        it->has_snap = 1;
        uv_mutex_lock(&r->mu);
        it->snap = r->snap;
        uv_mutex_unlock(&r->mu);
    }
}

int jobs_overlay_capture(jobmgr *m, job_overlay *out)
{
    memset(out, 0, sizeof *out);
    size_t n = 0;
    for (job_run *r = m->runs; r; r = r->next)
        n++;
    for (job_fix *f = m->fixes; f; f = f->next)
        n++;
    if (n == 0)
        return 0;
    out->items = calloc(n, sizeof *out->items);
    if (!out->items)
        return -ENOMEM;
    /* Only what can change a job's JSON: runs a worker has taken (a queued run has nothing
     * to add), and fixes. */
    for (job_run *r = m->runs; r; r = r->next) {
        uv_mutex_lock(&m->mu);
        int taken = r->taken;
        uv_mutex_unlock(&m->mu);
        job_overlay_item *it = &out->items[out->n];
        overlay_of(m, r->id, it);
        if (taken || it->snap.started || it->has_fix || it->snap.preempted ||
            it->snap.restarts)
            out->n++;
    }
    for (job_fix *f = m->fixes; f; f = f->next)
        if (!jobs_find(m, f->id))
            overlay_of(m, f->id, &out->items[out->n++]);
    return 0;
}

void jobs_overlay_free(job_overlay *o)
{
    free(o->items);
    memset(o, 0, sizeof *o);
}

cJSON *jobs_to_json_overlay(const job_overlay *ov, const store_job *row)
{
    cJSON *o = store_job_to_json(row);
    if (!o)
        return NULL;
    const job_snap *snap = NULL;
    for (size_t i = 0; ov && i < ov->n; i++)
        if (strcmp(ov->items[i].id, row->id) == 0) {
            overlay_apply(o, row, &ov->items[i]);
            snap = ov->items[i].has_snap ? &ov->items[i].snap : NULL;
            break;
        }
    jobs_sched_json(o, snap);
    return o;
}

