/* jobs_internal — what the job manager's own files (daemon/jobs.c, daemon/jobctl.c) share and
 * nothing else calls. Loop thread. */
#ifndef ANNEALD_JOBS_INTERNAL_H
#define ANNEALD_JOBS_INTERNAL_H

#include "daemon/jobs.h"

/* Frees a run that is in no list any more. */
void jobs_run_free(job_run *r);

/* Removes a run from the queue if no worker has taken it. Returns 1 if it was removed. */
int jobs_unqueue(jobmgr *m, job_run *run);

/* Takes a run out of the list of live runs. */
void jobs_unlink_run(jobmgr *m, job_run *run);

/* Gives every caller waiting on a run the job's final state. */
void jobs_answer_waiters(job_run *run, store_job_state final);

#endif
