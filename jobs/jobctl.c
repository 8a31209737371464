/* jobctl — the job manager's transitions (pause, cancel, resume, delete) as outcomes: see
 * jobs/jobmgr.h. Loop thread, except jobs_delete_store (any thread with its own store). */
#include "jobs/jobmgr.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/service.h"
#include "jobs/jobmgr_internal.h"
#include "jobs/loader.h"
#include "util/log.h"

static void fail(job_outcome *o, job_result res, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail(job_outcome *o, job_result res, const char *field, const char *fmt, ...)
{
    o->result = res;
    snprintf(o->field, sizeof o->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->message, sizeof o->message, fmt, ap);
    va_end(ap);
}

static void ok(job_outcome *o, store_job_state st)
{
    memset(o, 0, sizeof *o);
    o->result = JOB_OK;
    o->state = st;
}

static void store_failed(job_outcome *o, int rc, const an_err *e)
{
    if (rc == -ENOENT) {
        fail(o, JOB_NOT_FOUND, "id", "%s", e->message);
        return;
    }
    fail(o, JOB_STORE, NULL, "%s", e->message);
    o->store_rc = rc;
}

/* The answer while job `id`'s state `f` is not recorded: 503, try again. */
static void unrecorded(job_outcome *o, const char *id, const job_fix *f)
{
    fail(o, JOB_BUSY, NULL,
         "job %s is %s, but the store has not recorded that yet (it is written again every "
         "second; if the disk is full, free some space); try again shortly", id,
         store_state_name(f->state));
}

/* A final state the store has not taken yet (a full disk, a write the state thread could not
 * make): no transition until it has. Its write is handed to the state thread first; the
 * transition's own write then follows it there (one thread, in the order asked) and finds
 * the state it left, so a resume right after the disk has room again just works. Only when
 * that write could not be handed over does the caller hear 503: fills the outcome and
 * returns -1 then. */
static int fix_pending(jobmgr *m, const char *id, job_outcome *o)
{
    memset(o, 0, sizeof *o);
    if (m->fixes)
        jobs_settle(m);
    job_fix *f = jobs_find_fix(m, id);
    if (!f || f->busy)
        return 0;
    unrecorded(o, id, f);
    return -1;
}

static void conflict(job_outcome *o, const char *id, const char *what, store_job_state st,
                     const char *allowed)
{
    fail(o, JOB_CONFLICT, "state", "job %s is %s; %s needs a job that is %s", id,
         store_state_name(st), what, allowed);
    o->state = st;
}

/* Hands the write of a new state to the state thread. Returns 1 (w waits), or 0 with the
 * refusal in *out; a run taken out of the queue for it (unqueued: the numbers it was queued
 * with, else NULL) goes back. */
static int write_state(jobmgr *m, const char *id, job_task_kind kind, unsigned from_mask,
                       store_job_state to, const char *what, const char *allowed,
                       const store_job_sched *unqueued, job_waiter *w, job_outcome *out)
{
    job_task *t = jobs_task_new(id, kind, from_mask, to);
    int rc = -ENOMEM;
    if (t) {
        t->what = what;
        t->allowed = allowed;
        t->unqueued = unqueued != NULL;
        if (unqueued)
            t->sched = *unqueued;
        t->w = w;
        rc = jobs_task_push(m, t, out); /* frees t when it refuses */
    } else {
        fail(out, JOB_NO_MEMORY, NULL, "out of memory; job %s is unchanged", id);
    }
    if (rc == 0)
        return 1;
    if (unqueued)
        jobs_enqueue(m, id, unqueued);
    return 0;
}

/* Asks a worker's run to stop. The user's stop wins over the scheduler's (a preemption or a
 * stalled run's restart would put the run back in the queue), and a cancel over a pause. */
static void ask_stop(job_run *run, int how)
{
    int expected = STOP_NONE;
    atomic_compare_exchange_strong(&run->stop, &expected, how);
    if ((expected == STOP_PAUSE && how == STOP_CANCEL) || expected == STOP_PREEMPT ||
        expected == STOP_STALL)
        atomic_store(&run->stop, how);
}

/* A run no worker has taken yet leaves the queue, and the store alone decides its job's
 * state: its numbers go to *js (if js), to queue it again should the write be refused, and
 * *run becomes NULL. Returns 1 if so; 0 when there is no run or a worker has it. */
static int unqueue_run(jobmgr *m, job_run **run, store_job_sched *js)
{
    if (!*run || !jobs_unqueue(m, *run))
        return 0;
    if (js)
        jobs_sched_of(*run, js);
    jobs_unlink_run(m, *run);
    jobs_answer_waiters(*run, STORE_QUEUED);
    jobs_run_free(*run);
    *run = NULL;
    return 1;
}

/* Common path for pause and cancel: `to` is the target state. */
static int stop_job(jobmgr *m, const char *id, int how, store_job_state to, unsigned from_mask,
                    const char *what, const char *allowed, job_waiter *w, job_outcome *out)
{
    jobs_poll(m); /* a run whose worker has let go is no longer in the way */
    if (fix_pending(m, id, out))
        return 0;
    job_run *run = jobs_find(m, id);
    store_job_sched js, *unqueued = unqueue_run(m, &run, &js) ? &js : NULL;
    if (run) { /* a worker has it: ask it to stop, answer when it lets go */
        ask_stop(run, how);
        w->next = run->waiters;
        run->waiters = w;
        return 1;
    }
    return write_state(m, id, TASK_STOP, from_mask, to, what, allowed, unqueued, w, out);
}

int jobs_cancel_nowait(jobmgr *m, const char *id)
{
    jobs_poll(m);
    job_run *run = jobs_find(m, id);
    store_job_sched js, *unqueued = unqueue_run(m, &run, &js) ? &js : NULL;
    if (run) {
        ask_stop(run, STOP_CANCEL);
        return 1;
    }
    job_outcome o;
    if (write_state(m, id, TASK_STOP, STORE_MASK(STORE_QUEUED) | STORE_MASK(STORE_PAUSED),
                    STORE_CANCELLED, "cancel", "queued or paused", unqueued, NULL, &o))
        return 1;
    return o.result == JOB_NO_MEMORY ? -ENOMEM : -EAGAIN;
}

int jobs_pause(jobmgr *m, const char *id, job_waiter *w, job_outcome *out)
{
    return stop_job(m, id, STOP_PAUSE, STORE_PAUSED,
                    STORE_MASK(STORE_RUNNING) | STORE_MASK(STORE_QUEUED), "pause",
                    "running or queued", w, out);
}

int jobs_cancel(jobmgr *m, const char *id, job_waiter *w, job_outcome *out)
{
    return stop_job(m, id, STOP_CANCEL, STORE_CANCELLED,
                    STORE_MASK(STORE_RUNNING) | STORE_MASK(STORE_QUEUED) |
                        STORE_MASK(STORE_PAUSED),
                    "cancel", "queued, running or paused", w, out);
}

#define RESUMABLE (STORE_MASK(STORE_PAUSED) | STORE_MASK(STORE_FAILED) | STORE_MASK(STORE_STOPPED))
#define RESUMABLE_TEXT "paused, stopped or failed"

int jobs_resume(jobmgr *m, const char *id, job_waiter *w, job_outcome *out)
{
    jobs_poll(m); /* a run whose worker has let go is no longer in the way */
    if (fix_pending(m, id, out))
        return 0;
    job_run *run = jobs_find(m, id);
    if (run) { /* queued or running: known here without the store */
        if (atomic_load(&run->stop) != STOP_NONE) {
            /* Stopped, but its worker is still letting go (a moment: it is freeing the
             * model); not resumable until then. */
            fail(out, JOB_CONFLICT, "state",
                 "job %s is stopping and its worker has not let go of it yet; try again", id);
            out->state = STORE_RUNNING;
            return 0;
        }
        uv_mutex_lock(&run->mu);
        store_job_state st = run->snap.started ? STORE_RUNNING : STORE_QUEUED;
        uv_mutex_unlock(&run->mu);
        conflict(out, id, "resume", st, RESUMABLE_TEXT);
        return 0;
    }
    /* A sweep's trial takes a place among its sweep's max_concurrent first. */
    char why[sizeof out->message];
    int held = sweeps_resume_hold(&m->d->sweeps, id, why, sizeof why);
    if (held < 0) {
        fail(out, JOB_CONFLICT, "state", "%s", why);
        return 0;
    }
    int waits = write_state(m, id, TASK_RESUME, RESUMABLE, STORE_QUEUED, "resume",
                            RESUMABLE_TEXT, NULL, w, out);
    if (!waits && held)
        sweeps_resume_undo(&m->d->sweeps, id);
    return waits;
}

/* A stop written while no worker held the job, landed: a run queued meanwhile can only be
 * that of a resume written before it (the state thread keeps the order), and the job is not
 * queued any more, so the run goes. One a worker took already finds the job stopped and lets
 * go of it by itself. */
static void drop_stale_run(jobmgr *m, const char *id)
{
    job_run *run = jobs_find(m, id);
    unqueue_run(m, &run, NULL);
}

int jobs_fail_nowait(jobmgr *m, const char *id, const char *error)
{
    job_task *t = jobs_task_new(id, TASK_FAIL, STORE_MASK(STORE_QUEUED), STORE_FAILED);
    if (!t)
        return -ENOMEM;
    t->what = "fail";
    t->allowed = "queued";
    snprintf(t->error, sizeof t->error, "%s", error);
    job_outcome o;
    if (jobs_task_push(m, t, &o) == 0) /* frees t when it refuses */
        return 0;
    return o.result == JOB_NO_MEMORY ? -ENOMEM : -EAGAIN;
}

/* A TASK_FAIL landed: the event, or a retry later when the store could not take it. A job
 * that left `queued` meanwhile (resumed, cancelled, deleted) was decided by someone else. */
static void fail_outcome(jobmgr *m, const job_task *t)
{
    if (t->rc == 0) {
        atomic_fetch_add(&m->stall_failures, 1);
        jobs_emit_state(m, t->id, "failed", t->error);
    } else if (t->rc != STORE_ESTATE && t->rc != -ENOENT) {
        util_log(LOG_ERROR, "job %s: cannot record state failed (tried again later): %s", t->id,
                 t->err.message);
        jobs_add_fix(m, t->id, STORE_FAILED, t->error);
    }
}

static void task_outcome(jobmgr *m, job_task *t, job_outcome *o);

void jobs_task_outcome(jobmgr *m, job_task *t, job_outcome *o)
{
    task_outcome(m, t, o);
    /* a resume that did not land gives back the place its sweep held for it */
    if (t->kind == TASK_RESUME && o->result != JOB_OK)
        sweeps_resume_undo(&m->d->sweeps, t->id);
}

static void task_outcome(jobmgr *m, job_task *t, job_outcome *o)
{
    memset(o, 0, sizeof *o);
    if (t->kind == TASK_FAIL) {
        fail_outcome(m, t);
        return;
    }
    if (t->kind == TASK_FINISH) {
        jobs_finish_outcome(m, t);
        return;
    }
    if (t->kind == TASK_SETTLE) {
        jobs_settle_outcome(m, t);
        return;
    }
    if (t->rc == STORE_ESTATE) {
        /* The store still has the state before a fix that has not gone in yet (the fix's
         * write ran first and failed again): the job is what the fix says, so this is not a
         * conflict but a wait. */
        const job_fix *f = jobs_find_fix(m, t->id);
        if (f)
            unrecorded(o, t->id, f);
        else
            conflict(o, t->id, t->what, t->prev, t->allowed);
        if (t->unqueued && t->prev == STORE_QUEUED) /* still queued: the run goes back */
            jobs_enqueue(m, t->id, &t->sched);
        return;
    }
    if (t->rc == -ENOENT) {
        fail(o, JOB_NOT_FOUND, "id", "no job with id '%.64s'", t->id);
        return;
    }
    if (t->rc) {
        store_failed(o, t->rc, &t->err);
        if (t->unqueued)
            jobs_enqueue(m, t->id, &t->sched);
        return;
    }
    if (t->kind == TASK_REVERT)
        return;
    if (t->kind == TASK_STOP)
        drop_stale_run(m, t->id);
    if (t->kind == TASK_RESUME && jobs_enqueue(m, t->id, &t->sched) != 0) {
        /* Queued in the store but not for the workers: back to what it was. */
        job_outcome r;
        write_state(m, t->id, TASK_REVERT, STORE_MASK(STORE_QUEUED), t->prev, "resume",
                    RESUMABLE_TEXT, NULL, NULL, &r);
        fail(o, JOB_NO_MEMORY, NULL,
             "job %s could not be queued (out of memory); it stays %s, try again", t->id,
             store_state_name(t->prev));
        return;
    }
    jobs_emit_state(m, t->id, store_state_name(t->to), NULL);
    ok(o, t->to);
}

int jobs_delete_check(jobmgr *m, const char *id, job_waiter *w, job_outcome *out)
{
    memset(out, 0, sizeof *out);
    jobs_poll(m); /* a run whose worker has let go is no longer in the way */
    job_run *run = jobs_find(m, id);
    if (!run)
        return 0;
    /* Its final state is already stored (a client may have seen it `completed`), and the
     * worker is freeing the model: the delete waits for that moment rather than failing. */
    uv_mutex_lock(&run->mu);
    store_job_state final = run->snap.final;
    uv_mutex_unlock(&run->mu);
    if (final >= STORE_COMPLETED) {
        w->next = run->waiters;
        run->waiters = w;
        return 1;
    }
    fail(out, JOB_CONFLICT, "state", "job %s is not finished; cancel it first", id);
    return 0;
}

void jobs_delete_store(store_t *s, const char *id, job_outcome *out)
{
    memset(out, 0, sizeof *out);
    store_job row;
    memset(&row, 0, sizeof row);
    an_err e;
    int rc = store_job_get(s, id, &row, &e);
    if (rc == -ENOENT) {
        fail(out, JOB_NOT_FOUND, "id", "no job with id '%.64s'", id);
        return;
    }
    store_job_state st = row.state;
    store_job_free(&row);
    rc = rc ? rc : store_job_delete_alone(s, id, &e);
    if (rc == STORE_ESTATE) { /* its state, or a sweep it is a trial of: the store says */
        fail(out, JOB_CONFLICT, "state", "%s", e.message);
        out->state = st;
        return;
    }
    if (rc) {
        store_failed(out, rc, &e);
        return;
    }
}

void jobs_deleted(jobmgr *m, const char *id)
{
    model_cache_job_deleted(&m->d->models, id);
    util_log(LOG_INFO, "job %s deleted", id);
    if (m->sink.deleted)
        m->sink.deleted(m->sink.ctx, id);
}

