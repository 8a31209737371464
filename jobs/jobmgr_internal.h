/* jobmgr_internal — what the job manager's own files (jobs/jobmgr.c, jobs/jobctl.c) share and
 * nothing else calls. Loop thread. */
#ifndef ANNEALD_JOBMGR_INTERNAL_H
#define ANNEALD_JOBMGR_INTERNAL_H

#include "jobs/jobmgr.h"

/* Removes a run from the queue if no worker has taken it. Returns 1 if it was removed. */
int jobs_unqueue(jobmgr *m, job_run *run);

/* Puts a run in the list of live runs and the index by id (jobs/runindex.c). */
void jobs_link_run(jobmgr *m, job_run *run);

/* Takes a run out of the list of live runs, the index, the taken runs and the noted ones. */
void jobs_unlink_run(jobmgr *m, job_run *run);

/* Lists a queued run whose JSON says more than "queued" (preempted, restarted) for the
 * overlay (jobs_overlay_capture), until it is unlinked. Loop thread. */
void jobs_note_run(jobmgr *m, job_run *run);

/* The index's first buckets (0 or -ENOMEM), and its memory. */
int jobs_index_init(jobmgr *m);
void jobs_index_free(jobmgr *m);

/* Remembers a final state the store has not taken yet, for jobs_settle. */
void jobs_add_fix(jobmgr *m, const char *id, store_job_state st, const char *error);

/* Fails a queued job with `error` through the state thread, so that the loop never waits
 * for the store's write lock: its `state` event follows the write. 0, or -EAGAIN / -ENOMEM
 * when the state thread refused the work (the job then stays queued for the next start). */
int jobs_fail_nowait(jobmgr *m, const char *id, const char *error);

/* Gives every caller waiting on a run the job's final state. */
void jobs_answer_waiters(job_run *run, store_job_state final);

/* A state write for the state thread (jobs/jobtask.c). */
/* TASK_FAIL: a job the scheduler gives up on (no restart left) fails with `error`.
 * TASK_FINISH: the pause or cancel a run let go of still needs (`run`, jobs_poll).
 * TASK_SETTLE: a final state the store refused before (a job_fix), tried again. */
typedef enum job_task_kind {
    TASK_STOP, TASK_RESUME, TASK_REVERT, TASK_FAIL, TASK_FINISH, TASK_SETTLE
} job_task_kind;

typedef struct job_task {
    jobmgr *m;
    char id[STORE_ID_LEN];
    job_task_kind kind;
    unsigned from_mask;          /* the write happens only from these states */
    store_job_state to;
    const char *what, *allowed;  /* for a conflict's message ("pause", "running or queued") */
    int unqueued;                /* the run left the queue for this write: back if refused */
    store_job_sched sched;       /* its numbers then; for TASK_RESUME, read by the state thread */
    job_waiter *w;               /* answered with the outcome; may be NULL */
    job_run *run;                /* TASK_FINISH: the run, listed and `settling` meanwhile */
    char error[600];             /* the job's error with the state written ("" = none) */
    /* the state thread's result */
    int rc;
    store_job_state prev;
    an_err err;
} job_task;

/* A task writing `to` to job `id` from the states in from_mask (zeroed otherwise; the caller
 * fills what its kind needs), or NULL without memory. */
job_task *jobs_task_new(const char *id, job_task_kind kind, unsigned from_mask,
                        store_job_state to);

/* Hands a task (malloc'd, owned from here on) to the state thread: 0, or the refusal in *out
 * (JOB_BUSY, JOB_NO_MEMORY) with the task freed. */
int jobs_task_push(jobmgr *m, job_task *t, job_outcome *out);

/* The outcome of a task the state thread did (loop thread, jobs/jobctl.c): emits the event
 * and queues a resumed job. */
void jobs_task_outcome(jobmgr *m, job_task *t, job_outcome *o);

/* A TASK_FINISH landed: the run is finished with its outcome (jobs/jobmgr.c). */
void jobs_finish_outcome(jobmgr *m, const job_task *t);

/* Drops the PATCHed priorities kept long enough (all of them: `all`) (jobs/jobsched.c). */
void jobs_sched_patched_prune(jobmgr *m, int all);

/* A TASK_SETTLE landed: its fix goes, or stays for the next jobs_settle (jobs/jobmgr.c). */
void jobs_settle_outcome(jobmgr *m, const job_task *t);

#endif
