/* jobmgr — the job manager: state machine, queue, and progress-to-events bridge. */
#include "jobs/jobmgr.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/service.h"
#include "jobs/jobmgr_internal.h"
#include "util/util.h"
#include "util/log.h"

#define PROGRESS_INTERVAL 0.1 /* seconds between progress events of one job */

int jobs_init(jobmgr *m, struct service *d)
{
    memset(m, 0, sizeof *m);
    m->d = d;
    if (uv_mutex_init(&m->mu))
        return -ENOMEM;
    if (uv_cond_init(&m->cond)) {
        uv_mutex_destroy(&m->mu);
        return -ENOMEM;
    }
    if (jobs_index_init(m) != 0) {
        uv_cond_destroy(&m->cond);
        uv_mutex_destroy(&m->mu);
        return -ENOMEM;
    }
    return 0;
}

void jobs_run_free(job_run *r)
{
    uv_mutex_destroy(&r->mu);
    free(r);
}

void jobs_close(jobmgr *m)
{
    jobs_tasks_stop(m);
    job_run *r = m->runs;
    while (r) {
        job_run *n = r->next;
        jobs_run_free(r);
        r = n;
    }
    m->runs = NULL;
    jobs_index_free(m);
    while (m->fixes) {
        job_fix *f = m->fixes;
        m->fixes = f->next;
        free(f);
    }
    jobs_sched_patched_prune(m, 1);
    uv_cond_destroy(&m->cond);
    uv_mutex_destroy(&m->mu);
}

job_run *jobs_run_new(const char *id)
{
    job_run *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    snprintf(r->id, sizeof r->id, "%s", id);
    if (uv_mutex_init(&r->mu)) {
        free(r);
        return NULL;
    }
    atomic_init(&r->stop, STOP_NONE);
    r->sent_step = -1;
    r->snap.eta_s = NAN;
    r->snap.loss_scale = NAN;
    r->snap.loss = NAN;
    return r;
}

void jobs_enqueue_run(jobmgr *m, job_run *r, const store_job_sched *js)
{
    /* Shutting down: the job is queued in the store, and the next start's recovery queues it.
     * A run queued now would be taken by a worker that is still alive while the daemon
     * drains, and trained with no stop asked for: the drain would never end. (A resume whose
     * state write finishes after SIGTERM comes here.) */
    if (m->shutting_down || jobs_find(m, r->id)) {
        jobs_run_free(r);
        return;
    }
    store_job_sched own;
    if (!js) {
        jobs_sched_read(&m->d->store, r->id, &own);
        js = &own;
    }
    jobs_sched_apply(r, js);
    jobs_sched_patched(m, r->id, &r->priority); /* a PATCH newer than js */
    jobs_link_run(m, r);
    uv_mutex_lock(&m->mu);
    jobs_sched_insert(m, r); /* by priority, then oldest first */
    uv_cond_signal(&m->cond);
    uv_mutex_unlock(&m->mu);
    jobs_sched_preempt(m);
}

int jobs_enqueue(jobmgr *m, const char *id, const store_job_sched *js)
{
    if (m->shutting_down || jobs_find(m, id))
        return 0;
    job_run *r = jobs_run_new(id);
    if (!r)
        return -ENOMEM;
    jobs_enqueue_run(m, r, js);
    return 0;
}

/* The restart could not queue the jobs that were running again (a full disk, a read-only
 * store): each is queued as a state the store has not taken yet, written every second until
 * it goes in; then the job is queued for the workers (jobs_settle_outcome). Until then its
 * object says queued and /healthz names the problem. */
static int recover_later(jobmgr *m, const an_err *why, an_err *err)
{
    char(*ids)[STORE_ID_LEN] = NULL;
    size_t k = 0;
    int rc = store_job_ids(&m->d->store, STORE_MASK(STORE_RUNNING), &ids, &k, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < k; i++) {
        jobs_add_fix(m, ids[i], STORE_QUEUED, NULL);
        job_fix *f = jobs_find_fix(m, ids[i]);
        if (f)
            f->requeue = 1;
    }
    free(ids);
    if (k)
        util_log(LOG_ERROR, "%zu job(s) were running when the daemon stopped, but the store "
                 "cannot queue them again (%s): they are queued once it can (tried every "
                 "second)", k, why->message);
    return 0;
}

int jobs_recover(jobmgr *m, an_err *err)
{
    size_t n = 0;
    int rc = store_job_requeue_running(&m->d->store, &n, err);
    if (rc && (rc = recover_later(m, err, err)))
        return rc;
    if (n)
        util_log(LOG_INFO, "%zu job(s) were running when the daemon stopped: queued again", n);
    char(*ids)[STORE_ID_LEN] = NULL;
    size_t k = 0;
    rc = store_job_ids(&m->d->store, STORE_MASK(STORE_QUEUED), &ids, &k, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < k; i++)
        jobs_enqueue(m, ids[i], NULL);
    free(ids);
    return 0;
}

/* Removes a run from the queue if no worker has taken it. Returns 1 if it was removed. */
int jobs_unqueue(jobmgr *m, job_run *run)
{
    int removed = 0;
    uv_mutex_lock(&m->mu);
    if (!run->taken && run->qn.in) {
        qtree_remove(&m->queue, &run->qn);
        removed = 1;
    }
    uv_mutex_unlock(&m->mu);
    return removed;
}

job_run *jobs_take(jobmgr *m)
{
    uv_mutex_lock(&m->mu);
    while (!qtree_count(&m->queue) && !m->quit)
        uv_cond_wait(&m->cond, &m->mu);
    job_run *r = jobs_run_of(qtree_at(&m->queue, 0));
    if (r) {
        qtree_remove(&m->queue, &r->qn);
        r->taken = 1;
        r->tprev = NULL;
        r->tnext = m->taken;
        if (m->taken)
            m->taken->tprev = r;
        m->taken = r;
        m->ntaken++;
    }
    uv_mutex_unlock(&m->mu);
    return r;
}

void jobs_wake(jobmgr *m)
{
    uv_async_send(&m->d->wake);
}

void jobs_done(jobmgr *m, job_run *run)
{
    uv_mutex_lock(&run->mu);
    run->snap.done = 1;
    uv_mutex_unlock(&run->mu);
    uv_async_send(&m->d->wake);
}

void jobs_emit_state(jobmgr *m, const char *id, const char *state, const char *error)
{
    /* The log tells a job's story at the default level, as the event stream does; an end
     * with a reason (a failure, a pause the daemon made: a full disk, a bound) is a warning,
     * logged here once. */
    int why = error && error[0];
    util_log(why || strcmp(state, "failed") == 0 ? LOG_WARN : LOG_INFO, "job %s %s%s%s", id,
             state, why ? ": " : "", why ? error : "");
    if (m->sink.state)
        m->sink.state(m->sink.ctx, id, state, error && error[0] ? error : NULL);
    sweeps_job_state(&m->d->sweeps, id, state); /* a sweep's trial frees its place */
}

/* Gives every caller waiting on a run the job's final state. */
void jobs_answer_waiters(job_run *run, store_job_state final)
{
    job_waiter *w = run->waiters;
    run->waiters = NULL;
    job_outcome o;
    memset(&o, 0, sizeof o);
    o.result = JOB_OK;
    o.state = final;
    while (w) {
        job_waiter *next = w->next;
        w->next = NULL;
        w->done(w, &o);
        w = next;
    }
}

job_fix *jobs_find_fix(jobmgr *m, const char *id)
{
    for (job_fix *f = m->fixes; f; f = f->next)
        if (strcmp(f->id, id) == 0)
            return f;
    return NULL;
}

/* Remembers a final state the worker could not store. Without memory for it the job stays
 * `running` in the store until the next start, which queues it again. */
void jobs_add_fix(jobmgr *m, const char *id, store_job_state st, const char *error)
{
    job_fix *f = jobs_find_fix(m, id);
    if (!f) {
        f = calloc(1, sizeof *f);
        if (!f)
            return;
        snprintf(f->id, sizeof f->id, "%s", id);
        f->next = m->fixes;
        m->fixes = f;
    }
    f->state = st;
    snprintf(f->error, sizeof f->error, "%s", error ? error : "");
}

int jobs_settle(jobmgr *m)
{
    int left = 0;
    for (job_fix *f = m->fixes; f; f = f->next) {
        left++;
        if (f->busy)
            continue;
        unsigned from = STORE_MASK(STORE_RUNNING) | STORE_MASK(STORE_QUEUED);
        if (f->state == STORE_CANCELLED) /* a cancel over a pause the store did take */
            from |= STORE_MASK(STORE_PAUSED);
        job_task *t = jobs_task_new(f->id, TASK_SETTLE, from, f->state);
        if (!t)
            break;
        snprintf(t->error, sizeof t->error, "%s", f->error);
        job_outcome o;
        if (jobs_task_push(m, t, &o) != 0) /* a full queue: the next call tries again */
            break;
        f->busy = 1;
    }
    return left;
}

void jobs_settle_outcome(jobmgr *m, const job_task *t)
{
    job_fix **pp = &m->fixes;
    while (*pp && strcmp((*pp)->id, t->id) != 0)
        pp = &(*pp)->next;
    job_fix *f = *pp;
    if (!f)
        return;
    f->busy = 0;
    /* a newer final state came meanwhile: that one is written next */
    if (f->state != t->to || strcmp(f->error, t->error) != 0)
        return;
    /* STORE_ESTATE or ENOENT: someone else decided (deleted, changed) meanwhile. */
    if (t->rc == 0 || t->rc == STORE_ESTATE || t->rc == -ENOENT) {
        if (t->rc == 0)
            util_log(LOG_INFO, "job %s: state %s recorded", f->id, store_state_name(f->state));
        *pp = f->next;
        /* A restart's recovery queued it in the store at last: the workers get it now, with
         * the numbers the state thread read (the loop does not read the store). A preempted or
         * stalled run whose queueing went in late waits for the next start, as before: its
         * restart count is its run's, which is gone. */
        if (t->rc == 0 && f->state == STORE_QUEUED && f->requeue)
            jobs_enqueue(m, f->id, &t->sched);
        free(f);
    }
}

int jobs_unrecorded(const jobmgr *m, int *requeued)
{
    int n = 0, q = 0;
    for (const job_fix *f = m->fixes; f; f = f->next) {
        n++;
        q += f->requeue && f->state == STORE_QUEUED;
    }
    if (requeued)
        *requeued = q;
    return n;
}

/* Hands the state thread the write a finished run still needs before its waiters can be
 * answered: the pause or cancel that came while its worker was letting go for another
 * reason. The run stays in the list, `settling`, until jobs_finish_outcome. Returns 1 when
 * the write is on its way. */
static int finish_write(jobmgr *m, job_run *r, unsigned from_mask, store_job_state to)
{
    job_task *t = jobs_task_new(r->id, TASK_FINISH, from_mask, to);
    if (!t)
        return 0;
    t->run = r;
    job_outcome o;
    if (jobs_task_push(m, t, &o) != 0)
        return 0;
    r->settling = 1;
    return 1;
}

/* A run its worker let go of: the writes a late pause or cancel still needs, then the event,
 * the waiters' answers and, for a preemption or a restart, its place back in the queue. */
static void run_finished(jobmgr *m, job_run *r)
{
    job_snap s;
    uv_mutex_lock(&r->mu);
    s = r->snap;
    uv_mutex_unlock(&r->mu);
    const char *error = s.error;
    int stop = atomic_load(&r->stop);
    if (r->cancelled_here)
        error = NULL;
    /* A pause asked for while the run was being preempted or restarted wins. */
    if (stop == STOP_PAUSE && s.final == STORE_QUEUED && !s.unsaved && !r->tried_pause) {
        r->tried_pause = 1;
        if (finish_write(m, r, STORE_MASK(STORE_QUEUED), STORE_PAUSED))
            return;
        /* The state thread took no more work: the pause is recorded later (jobs_settle),
         * rather than the job left queued with no run to take it. */
        jobs_add_fix(m, r->id, STORE_PAUSED, NULL);
        s.final = STORE_PAUSED;
    }
    /* A cancel that came after the worker had decided to let go for a pause (or had let go)
     * left the job paused or queued: it is applied here, so that the request that asked for
     * it is answered with a cancelled job. With `unsaved`, the worker's final state is not in
     * the store either (the job is still `running` there). */
    if (stop == STOP_CANCEL && (s.final == STORE_PAUSED || s.final == STORE_QUEUED) &&
        !r->tried_cancel) {
        r->tried_cancel = 1;
        unsigned from = STORE_MASK(STORE_PAUSED) | STORE_MASK(STORE_QUEUED);
        if (s.unsaved)
            from |= STORE_MASK(STORE_RUNNING);
        if (finish_write(m, r, from, STORE_CANCELLED))
            return;
        /* The state thread took no more work: the cancel is recorded later (jobs_settle). */
        jobs_add_fix(m, r->id, STORE_CANCELLED, NULL);
        s.final = STORE_CANCELLED;
        s.unsaved = 0;
        error = NULL;
    }
    int again = (stop == STOP_PREEMPT || stop == STOP_STALL) && s.final == STORE_QUEUED &&
                !s.unsaved && !m->shutting_down;
    if (s.unsaved)
        jobs_add_fix(m, r->id, s.final, error);
    jobs_emit_state(m, r->id, store_state_name(s.final), error);
    jobs_unlink_run(m, r);
    jobs_answer_waiters(r, s.final);
    if (again)
        jobs_sched_requeue(m, r, &s);
    jobs_run_free(r);
}

void jobs_finish_outcome(jobmgr *m, const job_task *t)
{
    job_run *r = t->run;
    r->settling = 0;
    int rc = t->rc;
    if (rc && rc != STORE_ESTATE && rc != -ENOENT) {
        /* The callers hear the state asked for and the store gets it later (jobs_settle):
         * a pause left unwritten would leave the job queued with no run to take it. */
        util_log(LOG_ERROR, "job %s: cannot record state %s (tried again later): %s", t->id,
                 store_state_name(t->to), t->err.message);
        jobs_add_fix(m, t->id, t->to, NULL);
        rc = 0;
    }
    if (rc == 0) {
        r->cancelled_here = t->to == STORE_CANCELLED;
        uv_mutex_lock(&r->mu);
        r->snap.final = t->to;
        r->snap.unsaved = 0;
        uv_mutex_unlock(&r->mu);
    }
    /* Again: a cancel may have come while the pause was written. */
    run_finished(m, r);
}

void jobs_poll(jobmgr *m)
{
    double now = util_now();
    /* Only a run a worker took changes: the queued ones are skipped however many. Workers add
     * to the head of the taken list (under the mutex) and only this thread takes runs out of
     * it, so the walk from the head read under the mutex is safe without it. */
    uv_mutex_lock(&m->mu);
    job_run *r = m->taken;
    uv_mutex_unlock(&m->mu);
    while (r) {
        job_run *next = r->tnext;
        job_snap s;
        uv_mutex_lock(&r->mu);
        s = r->snap;
        uv_mutex_unlock(&r->mu);
        if (s.started && !r->sent_started) {
            r->sent_started = 1;
            jobs_emit_state(m, r->id, "running", NULL);
        }
        int forced = s.done;
        if (s.started && s.step != r->sent_step &&
            (forced || now - r->sent_at >= PROGRESS_INTERVAL)) {
            if (m->sink.progress)
                m->sink.progress(m->sink.ctx, r->id, &s);
            r->sent_step = s.step;
            r->sent_at = now;
        }
        if (s.ckpt_seq != r->sent_ckpt_seq) {
            r->sent_ckpt_seq = s.ckpt_seq;
            if (m->sink.checkpoint)
                m->sink.checkpoint(m->sink.ctx, r->id, s.ckpt_step, s.ckpt_bytes);
        }
        if (s.done && !r->settling)
            run_finished(m, r);
        r = next;
    }
}

void jobs_shutdown(jobmgr *m)
{
    m->shutting_down = 1;
    /* Queued runs nobody took stay queued in the store: drop them here. */
    job_run *r = m->runs;
    while (r) {
        job_run *next = r->next;
        if (jobs_unqueue(m, r)) {
            jobs_unlink_run(m, r);
            jobs_answer_waiters(r, STORE_QUEUED);
            jobs_run_free(r);
        } else {
            /* A pause or cancel already asked for wins: its request waits for it, and a
             * cancelled job must not come back as `queued` at the next start. */
            int expected = STOP_NONE;
            atomic_compare_exchange_strong(&r->stop, &expected, STOP_SHUTDOWN);
        }
        r = next;
    }
}

int jobs_idle(jobmgr *m)
{
    return m->runs == NULL && m->tasks_out == 0;
}

/* Tries of the fixes left at shutdown, and the time after the first in which more may
 * start: a write that fails at once (a full disk, the state thread gone) is not tried for
 * long, and one that waits for the lock (its busy timeout, 5 s) is not tried again, so a stop
 * stays well inside systemd's stop timeout. */
#define DRAIN_SETTLES 4
#define DRAIN_SETTLE_S 2.0

int jobs_drained(jobmgr *m)
{
    if (!jobs_idle(m))
        return 0;
    if (!m->fixes)
        return 1;
    double now = util_now();
    if (m->drain_settles == 0)
        m->drain_settle_t0 = now;
    if (m->drain_settles < DRAIN_SETTLES && now - m->drain_settle_t0 < DRAIN_SETTLE_S) {
        m->drain_settles++;
        jobs_settle(m);
        return 0; /* the writes' outcomes come back on a later tick */
    }
    for (job_fix *f = m->fixes; f; f = f->next)
        util_log(LOG_WARN, "job %s: state %s could not be recorded before stopping; the store "
                 "keeps its earlier state", f->id, store_state_name(f->state));
    return 1;
}

void jobs_counts(jobmgr *m, int *queued, int *running)
{
    uv_mutex_lock(&m->mu);
    *queued = (int)qtree_count(&m->queue);
    *running = m->ntaken;
    uv_mutex_unlock(&m->mu);
}
