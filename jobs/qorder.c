/* qorder — a queued job's place in the queue (API.md, "The job object": queue_position,
 * queue_length).
 *
 * DESIGN
 * The order lives in the manager (jobmgr.queue, a tree counting its nodes: jobs/qtree.h) and
 * changes on the loop thread and when a worker takes the head. A job's JSON is made on a
 * request thread, which asks the manager for the places it prints, under the manager's mutex:
 * one look-up by id and one descent of the tree a job, O(log n), so no answer costs the
 * queue's length, on the loop or off it. A list fixes the places of all its queued jobs in
 * one hold of the mutex first (jobs_queue_fix), so that they are of one moment.
 * The jobs whose row says queued are the runs in the queue and the runs a worker has taken
 * but not yet written `running` for (waiting for memory, or starting): those come first, as
 * they hold a worker already (a few: one a worker). A run taken and written running is no
 * longer counted even before its first step (its row says running).
 * An answer that is made before its own request's change reaches the queue (a submit's, a
 * PATCH's: the loop applies it once answered) shows the place the change gives the job:
 * jobs_queue_place_at notes the change and the look-up applies it to that job. */
#include "jobs/jobmgr.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* 1 when a taken run has not yet left the queue in the store. Manager mutex held. */
static int taken_waiting(job_run *r)
{
    uv_mutex_lock(&r->mu);
    int waiting = !r->snap.left_queue && !r->snap.done;
    uv_mutex_unlock(&r->mu);
    return waiting;
}

/* Job `id`'s place, manager mutex held: as jobs_queue_place, with o's noted change. */
static int place_locked(jobmgr *m, const job_overlay *o, const char *id, size_t *pos,
                        size_t *len)
{
    int64_t seq = jobs_seq_of(id);
    job_run *r = jobs_find(m, id);
    size_t waiting = 0, before = 0;
    for (job_run *t = m->taken; t; t = t->tnext)
        if (taken_waiting(t)) {
            waiting++;
            /* the taken ones in the queue's own order among themselves */
            if (r && t != r && jobs_sched_ahead(t->priority, t->seq, r->priority, r->seq))
                before++;
        }
    size_t queued = qtree_count(&m->queue);
    int moved = o && o->moved && o->move_seq == seq;
    if (r && r->taken) {
        if (!taken_waiting(r))
            return 0;
        *pos = before + 1;
        *len = waiting + queued;
        return 1;
    }
    if (r && r->qn.in) {
        int p = moved ? o->move_priority : r->priority;
        /* the run itself, at its present priority, is ahead of its new key when higher */
        size_t k = qtree_rank(&m->queue, p, seq) - (r->priority > p);
        *pos = waiting + k + 1;
        *len = waiting + queued;
        return 1;
    }
    if (!r && moved && o->move_add) {
        *pos = waiting + qtree_rank(&m->queue, o->move_priority, seq) + 1;
        *len = waiting + queued + 1;
        return 1;
    }
    return 0;
}

static int by_seq_cmp(const void *a, const void *b)
{
    const job_place *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int jobs_queue_place(job_overlay *o, const char *id, size_t *pos, size_t *len)
{
    if (!o || !o->mgr)
        return 0;
    if (o->fixed) {
        job_place key = {.seq = jobs_seq_of(id)};
        const job_place *p = bsearch(&key, o->places, o->nplaces, sizeof key, by_seq_cmp);
        if (!p)
            return 0;
        *pos = p->pos;
        *len = o->fixed_len;
        return 1;
    }
    uv_mutex_lock(&o->mgr->mu);
    int known = place_locked(o->mgr, o, id, pos, len);
    uv_mutex_unlock(&o->mgr->mu);
    return known;
}

int jobs_queue_fix(job_overlay *o, const char *const *ids, size_t n)
{
    if (!o || !o->mgr)
        return 0;
    job_place *p = n ? malloc(n * sizeof *p) : NULL;
    if (n && !p)
        return -ENOMEM;
    size_t k = 0, len = 0;
    uv_mutex_lock(&o->mgr->mu);
    for (size_t i = 0; i < n; i++) {
        size_t pos;
        if (place_locked(o->mgr, o, ids[i], &pos, &len))
            p[k++] = (job_place){.seq = jobs_seq_of(ids[i]), .pos = pos};
    }
    uv_mutex_unlock(&o->mgr->mu);
    if (k > 1) /* qsort's array may not be NULL, even empty (an empty list has none) */
        qsort(p, k, sizeof *p, by_seq_cmp);
    free(o->places);
    o->places = p;
    o->nplaces = k;
    o->fixed_len = len;
    o->fixed = 1;
    return 0;
}

int jobs_queue_place_at(job_overlay *o, const char *id, int priority, int add)
{
    o->moved = 1;
    o->move_seq = jobs_seq_of(id);
    o->move_priority = priority;
    o->move_add = add;
    return 0;
}

job_run *jobs_queue_head(jobmgr *m)
{
    uv_mutex_lock(&m->mu);
    job_run *h = jobs_run_of(qtree_at(&m->queue, 0));
    uv_mutex_unlock(&m->mu);
    return h;
}
