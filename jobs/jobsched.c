/* jobsched — the job manager's scheduling: the queue by priority, preemption, the stall
 * watchdog with its restarts, and the counts /metrics shows.
 *
 * DESIGN
 * The queue (jobmgr.queue) is a tree in the queue's order (jobs/qtree.h): higher priority
 * first, among equals the older job (smaller job number) first; jobs_take takes its head, and
 * adding, moving or removing a job costs O(log n) however many wait.
 * Preemption is decided on the loop thread whenever a run is queued and on every poll: when
 * every worker holds a run that has not let go and the head of the queue has a higher
 * priority than some preemptible running job, the lowest-priority one of those (the youngest
 * among equals: it has the least to lose) is asked to stop with STOP_PREEMPT. Its worker
 * checkpoints and lets go exactly as for a restart; the job is queued again and later resumes
 * from that checkpoint, which is bit-exact. One preemption is in flight at a time, so a burst
 * of high-priority jobs never stops more running jobs than workers they can get.
 * The watchdog looks at each started run's step from the housekeeping timer; a run whose step
 * has not moved for its stall_timeout_s is asked to stop with STOP_STALL: its worker lets go
 * without a new checkpoint (what the stuck run holds is not trusted) and the job restarts
 * from its latest checkpoint, at most max_restarts times; the next stall fails it.
 * Limits: a worker notices a stop between steps, so a step that never returns (a thread stuck
 * in a system call) cannot be taken back without ending the process; the restart counts live
 * in memory and start again from zero when the daemon restarts. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config_sched.h"
#include "jobs/service.h"
#include "jobs/jobmgr.h"
#include "jobs/jobmgr_internal.h"
#include "util/util.h"
#include "util/log.h"

void jobs_sched_apply(job_run *r, const store_job_sched *js)
{
    r->priority = js->priority;
    r->preemptible = js->preemptible;
    r->stall_timeout_s = js->stall_timeout_s > 0 ? js->stall_timeout_s : SCHED_STALL_DEFAULT_S;
    r->max_restarts = js->max_restarts >= 0 ? js->max_restarts : SCHED_RESTARTS_DEFAULT;
    r->seq = jobs_seq_of(r->id);
}

int64_t jobs_seq_of(const char *id)
{
    return strtoll(id + (id[0] == 'j' && id[1] == '_' ? 2 : 0), NULL, 10);
}

int jobs_sched_ahead(int pa, int64_t sa, int pb, int64_t sb)
{
    return pa > pb || (pa == pb && sa < sb);
}

void jobs_sched_of(const job_run *r, store_job_sched *js)
{
    js->priority = r->priority;
    js->preemptible = r->preemptible;
    js->stall_timeout_s = r->stall_timeout_s;
    js->max_restarts = r->max_restarts;
}

const store_job_sched JOBS_SCHED_DEFAULTS = {.priority = 0, .preemptible = 1,
                                             .stall_timeout_s = -1, .max_restarts = -1};

/* Four numbers the store copied out of the spec when it was written: the spec itself
 * (megabytes with inline data) is never parsed to queue a job. */
void jobs_sched_read(store_t *s, const char *id, store_job_sched *js)
{
    an_err e;
    if (store_job_sched_get(s, id, js, &e) != 0)
        *js = JOBS_SCHED_DEFAULTS;
}

void jobs_sched_insert(jobmgr *m, job_run *r)
{
    r->qn.priority = r->priority;
    r->qn.seq = r->seq;
    qtree_insert(&m->queue, &r->qn);
}

void jobs_sched_preempt(jobmgr *m)
{
    if (m->shutting_down || m->nworkers <= 0)
        return;
    uv_mutex_lock(&m->mu);
    job_run *head = jobs_run_of(qtree_at(&m->queue, 0));
    int top = head ? head->priority : 0;
    /* the taken runs only (as jobs_poll walks them): a few, however long the queue */
    job_run *first = m->taken;
    uv_mutex_unlock(&m->mu);
    if (!head)
        return;
    int busy = 0;
    job_run *victim = NULL;
    for (job_run *r = first; r; r = r->tnext) {
        uv_mutex_lock(&r->mu);
        int done = r->snap.done;
        uv_mutex_unlock(&r->mu);
        if (done) /* its worker is free or about to be */
            continue;
        busy++;
        int stop = atomic_load(&r->stop);
        if (stop == STOP_PREEMPT)
            return; /* one preemption at a time */
        if (stop != STOP_NONE || !r->preemptible || r->priority >= top)
            continue;
        if (!victim || r->priority < victim->priority ||
            (r->priority == victim->priority && r->seq > victim->seq))
            victim = r;
    }
    if (busy < m->nworkers - (int)atomic_load(&m->d->pool.down) || !victim)
        return;
    int expected = STOP_NONE;
    if (atomic_compare_exchange_strong(&victim->stop, &expected, STOP_PREEMPT)) {
        atomic_fetch_add(&m->preemptions, 1);
        util_log(LOG_INFO, "job %s (priority %d) is preempted for job %s (priority %d)",
                   victim->id, victim->priority, head->id, top);
    }
}

void jobs_watchdog(jobmgr *m)
{
    double now = util_now();
    uv_mutex_lock(&m->mu);
    job_run *first = m->taken; /* only a taken run can have started */
    uv_mutex_unlock(&m->mu);
    for (job_run *r = first; r; r = r->tnext) {
        uv_mutex_lock(&r->mu);
        int started = r->snap.started, done = r->snap.done;
        int64_t step = r->snap.step;
        uv_mutex_unlock(&r->mu);
        if (!started || done) {
            r->seen_at = 0;
            continue;
        }
        if (r->seen_at == 0 || step != r->seen_step) {
            r->seen_step = step;
            r->seen_at = now;
            continue;
        }
        if (now - r->seen_at < r->stall_timeout_s)
            continue;
        int expected = STOP_NONE;
        if (atomic_compare_exchange_strong(&r->stop, &expected, STOP_STALL))
            util_log(LOG_WARN, "job %s made no step for %.3g s (stall_timeout_s) at step %"
                       PRId64 ": stopping it for a restart from its latest checkpoint", r->id,
                       now - r->seen_at, step);
    }
}

int jobs_sched_requeue(jobmgr *m, job_run *r, const job_snap *s)
{
    int stall = atomic_load(&r->stop) == STOP_STALL;
    int restarts = s->restarts + stall;
    if (stall && s->restarts >= r->max_restarts) {
        char msg[600];
        if (s->restart_why[0])
            snprintf(msg, sizeof msg, "%s; at step %" PRId64 ", after %d restart%s "
                     "(max_restarts %d)", s->restart_why, s->step, s->restarts,
                     s->restarts == 1 ? "" : "s", r->max_restarts);
        else
            snprintf(msg, sizeof msg, "stalled: no step for %.6g s (stall_timeout_s) at step %"
                     PRId64 ", after %d restart%s (max_restarts %d)", r->stall_timeout_s,
                     s->step, s->restarts, s->restarts == 1 ? "" : "s", r->max_restarts);
        /* On the state thread: the loop never waits for the store's write lock. */
        if (jobs_fail_nowait(m, r->id, msg) != 0)
            util_log(LOG_ERROR, "job %s: cannot record state failed now (it stays queued "
                     "until the next start): %s", r->id, msg);
        return 1;
    }
    store_job_sched js;
    jobs_sched_of(r, &js);
    if (jobs_enqueue(m, r->id, &js) != 0) {
        util_log(LOG_ERROR, "job %s stays queued until the next start: out of memory", r->id);
        return 1;
    }
    job_run *n = jobs_find(m, r->id);
    if (n) {
        uv_mutex_lock(&n->mu);
        n->snap.preempted = !stall;
        n->snap.restarts = restarts;
        uv_mutex_unlock(&n->mu);
        jobs_note_run(m, n); /* its JSON says so while it waits (jobs_overlay_capture) */
    }
    if (stall) {
        atomic_fetch_add(&m->restarts, 1);
        util_log(LOG_INFO, "job %s queued for restart %d of %d", r->id, restarts,
                   r->max_restarts);
    }
    return 0;
}

/* PATCH is the only way a job's priority changes after its submit, so the newest PATCHed
 * priority is never wrong, only no longer needed once the numbers read before it have been
 * used: the race it covers lasts one state write. Entries go after PATCHED_KEEP_S. */
#define PATCHED_KEEP_S 60.0

typedef struct sched_patch {
    char id[STORE_ID_LEN];
    int priority;
    double at;
    struct sched_patch *next;
} sched_patch;

/* Drops the entries older than PATCHED_KEEP_S (all: when `all`). */
void jobs_sched_patched_prune(jobmgr *m, int all)
{
    double now = util_now();
    for (sched_patch **pp = &m->patched; *pp;) {
        sched_patch *p = *pp;
        if (all || now - p->at > PATCHED_KEEP_S) {
            *pp = p->next;
            free(p);
        } else {
            pp = &p->next;
        }
    }
}

int jobs_sched_patched(jobmgr *m, const char *id, int *priority)
{
    for (sched_patch *p = m->patched; p; p = p->next)
        if (strcmp(p->id, id) == 0) {
            *priority = p->priority;
            return 1;
        }
    return 0;
}

/* Remembers job id's new priority (without memory: the race stays open, nothing worse). */
static void remember_patch(jobmgr *m, const char *id, int priority)
{
    jobs_sched_patched_prune(m, 0);
    sched_patch *p = m->patched;
    while (p && strcmp(p->id, id) != 0)
        p = p->next;
    if (!p) {
        if (!(p = calloc(1, sizeof *p)))
            return;
        snprintf(p->id, sizeof p->id, "%s", id);
        p->next = m->patched;
        m->patched = p;
    }
    p->priority = priority;
    p->at = util_now();
}

void jobs_sched_reprioritize(jobmgr *m, const char *id, int priority)
{
    remember_patch(m, id, priority);
    job_run *r = jobs_find(m, id);
    if (!r)
        return;
    uv_mutex_lock(&m->mu);
    r->priority = priority;
    if (!r->taken && r->qn.in) { /* out of the queue and back in at its new place */
        qtree_remove(&m->queue, &r->qn);
        jobs_sched_insert(m, r);
    }
    uv_mutex_unlock(&m->mu);
    jobs_sched_preempt(m);
}

int jobs_queue_by_priority(jobmgr *m, int *prio, int *count, int max)
{
    int n = 0;
    uv_mutex_lock(&m->mu);
    /* The queue is in priority order: a priority's jobs are neighbours, from the first job of
     * it to the first of the next lower (two descents of the tree a priority). */
    for (size_t k = 0; n < max;) {
        qnode *q = qtree_at(&m->queue, k);
        if (!q)
            break;
        size_t end = qtree_rank(&m->queue, q->priority, INT64_MAX);
        prio[n] = q->priority;
        count[n++] = (int)(end - k);
        k = end;
    }
    uv_mutex_unlock(&m->mu);
    return n;
}


/* The test hook of the stall watchdog: with ANNEALD_FAULT containing "hang", a job named
 * "hang-at-N" stops making steps once it has done N (in every run, so it stalls again after
 * each restart). Returns N, or -1 for every other job. */
int64_t jobs_hang_step(const char *name, int64_t start)
{
    const char *fault = getenv("ANNEALD_FAULT");
    long long n;
    if (!fault || !strstr(fault, "hang"))
        return -1;
    if (sscanf(name, "hang-at-%lld", &n) == 1 && n >= 0)
        return (int64_t)n;
    if (sscanf(name, "hang-once-at-%lld", &n) == 1 && n >= 0 && start < n)
        return (int64_t)n;
    return -1;
}

/* The hook's hang: no step until someone asks the run to stop. */
void jobs_hang(job_run *run)
{
    while (atomic_load(&run->stop) == STOP_NONE)
        uv_sleep(10);
}
