/* overlay — what this process knows of a job beyond its store row (a final state the store
 * could not take yet, a running job's latest progress, why a taken job still waits), copied
 * on the loop thread so that the JSON of many jobs can be made elsewhere (api/jobjson.c, on
 * the request queues). */
#include "jobs/jobmgr.h"

#include <errno.h>
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

/* 1 when run r belongs in the overlay: a worker has it, or it was preempted or restarted,
 * or the store owes its job a state. A queued run has nothing else to add. Manager mutex held
 * (the order is that mutex, then the run's). */
static int keep_run(job_run *r)
{
    uv_mutex_lock(&r->mu);
    int keep = r->taken || r->snap.started || r->snap.preempted || r->snap.restarts;
    uv_mutex_unlock(&r->mu);
    return keep;
}

int jobs_overlay_capture(jobmgr *m, job_overlay *out)
{
    memset(out, 0, sizeof *out);
    out->mgr = m; /* a queued job's place is asked when its JSON is made (jobs/qorder.c) */
    /* Only the runs that can change a job's JSON, never the whole queue: the taken runs and
     * the noted ones (each may be both), and the jobs the store owes a state (fixes). */
    size_t n = 0;
    uv_mutex_lock(&m->mu);
    n += (size_t)m->ntaken;
    uv_mutex_unlock(&m->mu);
    for (job_run *r = m->noted; r; r = r->nnext)
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
    uv_mutex_lock(&m->mu);
    /* the taken list only grows meanwhile (workers), and only at its head: at most n */
    for (job_run *r = m->taken; r && out->n < n; r = r->tnext)
        overlay_of(m, r->id, r, &out->items[out->n++]);
    for (job_run *r = m->noted; r && out->n < n; r = r->nnext)
        if (!r->taken && (keep_run(r) || jobs_find_fix(m, r->id)))
            overlay_of(m, r->id, r, &out->items[out->n++]);
    for (job_fix *f = m->fixes; f && out->n < n; f = f->next) {
        job_run *r = jobs_find(m, f->id);
        if (!r || (!r->taken && !r->noted)) /* no run, or a queued one with a fix */
            overlay_of(m, f->id, r, &out->items[out->n++]);
    }
    uv_mutex_unlock(&m->mu);
    return 0;
}

void jobs_overlay_free(job_overlay *o)
{
    free(o->items);
    free(o->places);
    memset(o, 0, sizeof *o);
}
