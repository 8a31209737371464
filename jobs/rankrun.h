/* rankrun — the run of a job of several ranks (world_size > 1) on a worker: mpirun started
 * and supervised, rank 0's metrics and checkpoints fed to the worker's writer (rankrun.c). */
#ifndef ANNEALD_RANKRUN_H
#define ANNEALD_RANKRUN_H

#include <stddef.h>

#include "core/config.h"
#include "jobs/wctx.h"
#include "store/store.h"

/* Runs job `row` (marked running, spec parsed) on its ranks to an end and returns the job's
 * final state, with the message of a failure (or of a pause for a full disk) in err. The
 * writer is drained when it returns. */
store_job_state rankrun(wctx *w, const store_job *row, const job_spec *spec, char *err,
                        size_t errsz);

#endif
