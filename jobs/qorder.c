/* qorder — a copy of the queue's order, for a queued job's place in it (API.md, "The job
 * object": queue_position, queue_length).
 *
 * DESIGN
 * The order lives in the manager (jobmgr.qhead, sorted: jobs/jobsched.c) and changes on the
 * loop thread and when a worker takes the head. A job's JSON is made on a request thread, so
 * the loop copies the order with the overlay (jobs_overlay_capture): one walk of the queue,
 * 16 bytes a job, once per answer. The request thread then indexes the copy by job number
 * once (a sort) and finds each job of its answer by binary search, so a list of a thousand
 * jobs costs one copy and one sort, not a walk of the queue per job.
 * The jobs whose row says queued are the runs in the queue and the runs a worker has taken
 * but not yet written `running` for (waiting for memory, or starting): those come first, as
 * they hold a worker already. A run taken and written running is no longer counted even
 * before its first step (its row says running). */
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

/* Puts e into q (n entries) at its place among q[lo..hi), which are in the queue's order. */
static void insert_entry(job_queue_entry *q, size_t lo, size_t hi, size_t n,
                         const job_queue_entry *e)
{
    size_t i = lo;
    while (i < hi && !jobs_sched_ahead(e->priority, e->seq, q[i].priority, q[i].seq))
        i++;
    memmove(q + i + 1, q + i, (n - i) * sizeof *q);
    q[i] = *e;
}

/* How many entries at the head of the copy are taken runs. */
static size_t taken_count(const job_overlay *o)
{
    size_t t = 0;
    while (t < o->nqueue && o->queue[t].taken)
        t++;
    return t;
}

int jobs_queue_copy(jobmgr *m, job_overlay *o)
{
    size_t cap = 0;
    uv_mutex_lock(&m->mu);
    for (job_run *r = m->runs; r; r = r->next) /* a bound: every live run */
        cap++;
    job_queue_entry *q = cap ? malloc(cap * sizeof *q) : NULL;
    size_t n = 0, taken = 0;
    if (cap && !q) {
        uv_mutex_unlock(&m->mu);
        return -ENOMEM;
    }
    for (job_run *r = m->runs; r; r = r->next)
        if (r->taken && taken_waiting(r)) {
            /* the few taken ones in the queue's own order among themselves */
            job_queue_entry e = {.seq = r->seq, .priority = r->priority, .taken = 1};
            insert_entry(q, 0, taken, taken, &e);
            taken++;
        }
    n = taken;
    for (job_run *r = m->qhead; r && n < cap; r = r->qnext)
        q[n++] = (job_queue_entry){.seq = r->seq, .priority = r->priority, .taken = 0};
    uv_mutex_unlock(&m->mu);
    free(o->by_seq);
    free(o->queue);
    o->by_seq = NULL;
    o->queue = q;
    o->nqueue = n;
    return 0;
}

/* qsort_r is not in C11: the index sorts pointers into the copy, turned back into indexes. */
static int by_seq_cmp(const void *a, const void *b)
{
    const job_queue_entry *x = *(job_queue_entry *const *)a, *y = *(job_queue_entry *const *)b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int index_copy(job_overlay *o)
{
    if (o->by_seq || o->nqueue == 0)
        return 0;
    const job_queue_entry **p = malloc(o->nqueue * sizeof *p);
    uint32_t *idx = malloc(o->nqueue * sizeof *idx);
    if (!p || !idx) {
        free(p);
        free(idx);
        return -ENOMEM;
    }
    for (size_t i = 0; i < o->nqueue; i++)
        p[i] = &o->queue[i];
    qsort(p, o->nqueue, sizeof *p, by_seq_cmp);
    for (size_t i = 0; i < o->nqueue; i++)
        idx[i] = (uint32_t)(p[i] - o->queue);
    free(p);
    o->by_seq = idx;
    return 0;
}

/* The index in the copy of the job numbered seq, or -1. */
static long find(job_overlay *o, int64_t seq)
{
    if (!o || index_copy(o) != 0)
        return -1;
    size_t lo = 0, hi = o->nqueue;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int64_t s = o->queue[o->by_seq[mid]].seq;
        if (s == seq)
            return (long)o->by_seq[mid];
        if (s < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

int jobs_queue_place(job_overlay *o, const char *id, size_t *pos, size_t *len)
{
    long i = find(o, jobs_seq_of(id));
    if (i < 0)
        return 0;
    *pos = (size_t)i + 1;
    *len = o->nqueue;
    return 1;
}

int jobs_queue_place_at(job_overlay *o, const char *id, int priority, int add)
{
    int64_t seq = jobs_seq_of(id);
    long i = find(o, seq);
    if (i < 0 && !add)
        return 0;
    if (i >= 0 && o->queue[i].taken)
        return 0;
    job_queue_entry e = {.seq = seq, .priority = priority, .taken = 0};
    if (i >= 0) { /* out, and back in at its new place */
        memmove(o->queue + i, o->queue + i + 1, (o->nqueue - (size_t)i - 1) * sizeof e);
        o->nqueue--;
    } else {
        job_queue_entry *q = realloc(o->queue, (o->nqueue + 1) * sizeof *q);
        if (!q)
            return -ENOMEM;
        o->queue = q;
    }
    insert_entry(o->queue, taken_count(o), o->nqueue, o->nqueue, &e);
    o->nqueue++;
    free(o->by_seq); /* made again at the next look-up */
    o->by_seq = NULL;
    return 0;
}
