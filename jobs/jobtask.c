/* jobtask — the job manager's state writes, made on a thread of their own.
 *
 * A transition that needs no worker (pause or cancel of a job no worker holds, resume) is one
 * conditional UPDATE of the job's row. It is small, but it needs SQLite's write lock, and a
 * worker committing a checkpoint of a large model holds that lock for seconds: made on the
 * loop thread, the write would stall every connection, the SSE streams and the watchdog's
 * ping for as long. So the loop decides what it can from memory (is a worker holding the job?
 * is the run still in the queue?) and hands the write to this one thread, which keeps its own
 * store connection. One thread, first in first out: two transitions of one job reach the
 * store in the order they were asked, and each write is conditional on the state it expects
 * (store_job_set_state's mask), so whatever happened meanwhile is seen as a conflict rather
 * than overwritten. The outcome goes back to the loop thread, which emits the event, queues a
 * resumed job for the workers and answers the caller's waiter. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/service.h"
#include "jobs/jobmgr_internal.h"

#define TASK_DEPTH 1024 /* transitions waiting for the store before new ones get JOB_BUSY */

/* The state thread's connection, opened on its first task, closed when it ends. */
static _Thread_local store_t task_store;
static _Thread_local int task_store_open;

static void task_thread_end(void)
{
    if (task_store_open)
        store_close(&task_store);
    task_store_open = 0;
}

int jobs_tasks_start(jobmgr *m, const char *db, uv_async_t *wake)
{
    snprintf(m->task_db, sizeof m->task_db, "%s", db);
    int rc = workq_init(&m->tasks, "state", 1, TASK_DEPTH, wake);
    if (rc == 0)
        m->tasks.on_exit = task_thread_end;
    return rc;
}

void jobs_tasks_stop(jobmgr *m)
{
    workq_stop(&m->tasks);
}

void jobs_tasks_complete(jobmgr *m)
{
    if (m->tasks.threads)
        workq_complete(&m->tasks);
}

/* State thread. */
static void task_work(void *arg)
{
    job_task *t = arg;
    an_err_clear(&t->err);
    if (!task_store_open) {
        memset(&task_store, 0, sizeof task_store);
        t->rc = store_open(&task_store, t->m->task_db, &t->err);
        if (!t->rc && (t->rc = store_durable(&task_store, 1, &t->err)) != 0)
            store_close(&task_store); /* state changes are acknowledged: durable */
        if (t->rc)
            return;
        task_store_open = 1;
    }
    t->rc = store_job_set_state(&task_store, t->id, t->from_mask, t->to,
                                t->error[0] ? t->error : NULL, &t->prev, &t->err);
    /* to queue it without the loop reading */
    if (t->rc == 0 && (t->kind == TASK_RESUME || (t->kind == TASK_SETTLE && t->to == STORE_QUEUED)))
        jobs_sched_read(&task_store, t->id, &t->sched);
}

/* Loop thread. */
static void task_after(void *arg)
{
    job_task *t = arg;
    jobmgr *m = t->m;
    m->tasks_out--;
    job_outcome o;
    jobs_task_outcome(m, t, &o);
    if (t->w)
        t->w->done(t->w, &o);
    free(t);
}

job_task *jobs_task_new(const char *id, job_task_kind kind, unsigned from_mask,
                        store_job_state to)
{
    job_task *t = calloc(1, sizeof *t);
    if (t) {
        snprintf(t->id, sizeof t->id, "%s", id);
        t->kind = kind;
        t->from_mask = from_mask;
        t->to = to;
    }
    return t;
}

int jobs_task_push(jobmgr *m, job_task *t, job_outcome *out)
{
    t->m = m;
    int rc = m->tasks.threads ? workq_push(&m->tasks, task_work, task_after, t) : -ESRCH;
    if (rc == 0) {
        m->tasks_out++;
        return 0;
    }
    memset(out, 0, sizeof *out);
    out->result = rc == -ENOMEM ? JOB_NO_MEMORY : JOB_BUSY;
    if (rc == -EAGAIN)
        snprintf(out->message, sizeof out->message, "the daemon is busy: %d state changes are "
                 "waiting for the store already; job %.64s is unchanged, try again shortly",
                 TASK_DEPTH, t->id);
    else if (rc == -ESRCH)
        snprintf(out->message, sizeof out->message,
                 "the daemon is stopping; job %.64s is unchanged", t->id);
    else
        snprintf(out->message, sizeof out->message,
                 "out of memory recording a state change; job %.64s is unchanged", t->id);
    free(t);
    return rc;
}
