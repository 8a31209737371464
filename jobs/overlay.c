/* overlay — what this process knows of a job beyond its store row (a final state the store
 * could not take yet, a running job's latest progress, why a taken job still waits), copied
 * on the loop thread so that the JSON of many jobs can be made elsewhere (api/jobjson.c, on
 * the request queues). */
#include "jobs/jobmgr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* The overlay of one job, read now (loop thread): its run `r` (NULL: none) is passed in, as
 * looking it up by id for every run would walk the runs once per run. */
static void overlay_of(jobmgr *m, const char *id, job_run *r, job_overlay_item *it)
{
    memset(it, 0, sizeof *it);
    snprintf(it->id, sizeof it->id, "%s", id);
    job_fix *f = jobs_find_fix(m, id);
    if (f) {
        it->has_fix = 1;
        it->fix_state = f->state;
        snprintf(it->fix_error, sizeof it->fix_error, "%s", f->error);
    }
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
    if (jobs_queue_copy(m, out) != 0)
        return -ENOMEM;
    size_t n = 0;
    for (job_run *r = m->runs; r; r = r->next)
        n++;
    for (job_fix *f = m->fixes; f; f = f->next)
        n++;
    if (n == 0)
        return 0;
    out->items = calloc(n, sizeof *out->items);
    if (!out->items) {
        jobs_overlay_free(out);
        return -ENOMEM;
    }
    /* Only what can change a job's JSON: runs a worker has taken (a queued run has nothing
     * to add), and fixes. */
    for (job_run *r = m->runs; r; r = r->next) {
        uv_mutex_lock(&m->mu);
        int taken = r->taken;
        uv_mutex_unlock(&m->mu);
        /* looked at before the snapshot (kilobytes) is copied: most runs are only queued */
        uv_mutex_lock(&r->mu);
        int keep = taken || r->snap.started || r->snap.preempted || r->snap.restarts;
        uv_mutex_unlock(&r->mu);
        if (keep || jobs_find_fix(m, r->id))
            overlay_of(m, r->id, r, &out->items[out->n++]);
    }
    for (job_fix *f = m->fixes; f; f = f->next)
        if (!jobs_find(m, f->id))
            overlay_of(m, f->id, NULL, &out->items[out->n++]);
    return 0;
}

void jobs_overlay_free(job_overlay *o)
{
    free(o->items);
    free(o->queue);
    free(o->by_seq);
    memset(o, 0, sizeof *o);
}
