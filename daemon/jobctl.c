/* jobctl — the job manager's transitions (pause, cancel, resume, delete) as outcomes: see
 * daemon/jobs.h. Loop thread, except jobs_delete_store (any thread with its own store). */
#include "daemon/jobs.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon.h"
#include "daemon/jobs_internal.h"
#include "daemon/loader.h"

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

/* Reads a job's state into o->state; fills the outcome and returns -1 for an unknown id or a
 * state the store has not taken yet. */
static int get_state(jobmgr *m, const char *id, job_outcome *o)
{
    memset(o, 0, sizeof *o);
    if (m->fixes)
        jobs_settle(m);
    job_fix *f = jobs_find_fix(m, id);
    if (f) {
        fail(o, JOB_BUSY, NULL,
             "job %s is %s but the store could not record it yet (is the disk full?); "
             "free some space and try again", id, store_state_name(f->state));
        return -1;
    }
    store_job row;
    memset(&row, 0, sizeof row);
    an_err e;
    int rc = store_job_get(&m->d->store, id, &row, &e);
    if (rc == -ENOENT) {
        fail(o, JOB_NOT_FOUND, "id", "no job with id '%.64s'", id);
        return -1;
    }
    if (rc) {
        store_failed(o, rc, &e);
        return -1;
    }
    o->state = row.state;
    store_job_free(&row);
    return 0;
}

static void conflict(job_outcome *o, const char *id, const char *what, store_job_state st,
                     const char *allowed)
{
    fail(o, JOB_CONFLICT, "state", "job %s is %s; %s needs a job that is %s", id,
         store_state_name(st), what, allowed);
    o->state = st;
}

/* Common path for pause and cancel: `to` is the target state. */
static int stop_job(jobmgr *m, const char *id, int how, store_job_state to, unsigned from_mask,
                    const char *what, const char *allowed, job_waiter *w, job_outcome *out)
{
    jobs_poll(m); /* a run whose worker has let go is no longer in the way */
    if (get_state(m, id, out))
        return 0;
    if (!(from_mask & STORE_MASK(out->state))) {
        conflict(out, id, what, out->state, allowed);
        return 0;
    }
    job_run *run = jobs_find(m, id);
    if (run && jobs_unqueue(m, run)) { /* queued, no worker yet: change it here */
        jobs_unlink_run(m, run);
        jobs_run_free(run);
        run = NULL;
    }
    if (run) { /* a worker has it: ask it to stop, answer when it lets go */
        int expected = STOP_NONE;
        atomic_compare_exchange_strong(&run->stop, &expected, how);
        if ((expected == STOP_PAUSE && how == STOP_CANCEL) || expected == STOP_PREEMPT ||
            expected == STOP_STALL) /* the user's stop wins over the scheduler's */
            atomic_store(&run->stop, how);
        w->next = run->waiters;
        run->waiters = w;
        return 1;
    }
    an_err e;
    store_job_state prev;
    int rc = store_job_set_state(&m->d->store, id, from_mask, to, NULL, &prev, &e);
    if (rc == STORE_ESTATE) {
        conflict(out, id, what, prev, allowed);
        return 0;
    }
    if (rc) {
        store_failed(out, rc, &e);
        return 0;
    }
    jobs_emit_state(m, id, store_state_name(to), NULL);
    ok(out, to);
    return 0;
}

int jobs_cancel_nowait(jobmgr *m, const char *id)
{
    jobs_poll(m);
    job_run *run = jobs_find(m, id);
    if (run && jobs_unqueue(m, run)) {
        jobs_unlink_run(m, run);
        jobs_answer_waiters(run, STORE_QUEUED);
        jobs_run_free(run);
        run = NULL;
    }
    if (run) {
        int expected = STOP_NONE;
        atomic_compare_exchange_strong(&run->stop, &expected, STOP_CANCEL);
        if (expected == STOP_PAUSE)
            atomic_store(&run->stop, STOP_CANCEL);
        return 1;
    }
    an_err e;
    int rc = store_job_set_state(&m->d->store, id,
                                 STORE_MASK(STORE_QUEUED) | STORE_MASK(STORE_PAUSED),
                                 STORE_CANCELLED, NULL, NULL, &e);
    if (rc == 0)
        jobs_emit_state(m, id, "cancelled", NULL);
    return rc == STORE_ESTATE ? 0 : rc;
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

void jobs_resume(jobmgr *m, const char *id, job_outcome *out)
{
    jobs_poll(m); /* a run whose worker has let go is no longer in the way */
    if (get_state(m, id, out))
        return;
    unsigned okmask = STORE_MASK(STORE_PAUSED) | STORE_MASK(STORE_FAILED) |
                      STORE_MASK(STORE_STOPPED);
    if (!(okmask & STORE_MASK(out->state))) {
        conflict(out, id, "resume", out->state, "paused, stopped or failed");
        return;
    }
    /* A job that was stopped while still being let go of by its worker is not resumable
     * until the worker is done with it (a moment: it is freeing the model). */
    if (jobs_find(m, id)) {
        fail(out, JOB_CONFLICT, "state",
             "job %s is %s but its worker has not let go of it yet; try again", id,
             store_state_name(out->state));
        return;
    }
    an_err e;
    store_job_state prev;
    int rc = store_job_set_state(&m->d->store, id, okmask, STORE_QUEUED, NULL, &prev, &e);
    if (rc == STORE_ESTATE) {
        conflict(out, id, "resume", prev, "paused, stopped or failed");
        return;
    }
    if (rc) {
        store_failed(out, rc, &e);
        return;
    }
    if (jobs_enqueue(m, id) != 0) {
        store_job_set_state(&m->d->store, id, STORE_MASK(STORE_QUEUED), prev, NULL, NULL, &e);
        fail(out, JOB_NO_MEMORY, NULL,
             "job %s could not be queued (out of memory); it stays %s, try again", id,
             store_state_name(prev));
        return;
    }
    jobs_emit_state(m, id, "queued", NULL);
    ok(out, STORE_QUEUED);
}

void jobs_delete_check(jobmgr *m, const char *id, job_outcome *out)
{
    memset(out, 0, sizeof *out);
    jobs_poll(m); /* a run whose worker has let go is no longer in the way */
    if (jobs_find(m, id)) /* a worker still holds it */
        fail(out, JOB_CONFLICT, "state", "job %s is not finished; cancel it first", id);
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
    rc = rc ? rc : store_job_delete(s, id, &e);
    if (rc == STORE_ESTATE) {
        fail(out, JOB_CONFLICT, "state",
             "job %s is %s; only a completed, failed, stopped or cancelled job can be deleted",
             id, store_state_name(st));
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
    model_cache_drop(&m->d->models, id);
    if (m->sink.deleted)
        m->sink.deleted(m->sink.ctx, id);
}

