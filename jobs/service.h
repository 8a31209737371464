/* service — the job manager's side of the service as one struct, and the header api/ includes:
 * the manager (jobmgr.h), the worker pool, sweeps, admission and submission, trained models,
 * the memory budget and the request queues. It knows no HTTP and no loop: the daemon's wiring
 * (daemon/main.c, daemon/loop.c) owns a `service`, starts its parts, and hands api/ a pointer.
 *
 * Threads: the fields are the loop thread's unless their own header says otherwise (the
 * budget and the model cache lock themselves; the workers and queue threads own theirs). */
#ifndef ANNEALD_SERVICE_H
#define ANNEALD_SERVICE_H

#include <stdint.h>

#include <uv.h>

#include "jobs/admit.h"
#include "jobs/budget.h"
#include "jobs/jobmgr.h"
#include "jobs/loader.h"
#include "jobs/mpirun.h"
#include "jobs/settings.h"
#include "jobs/submit.h"
#include "jobs/sweeps.h"
#include "jobs/workers.h"
#include "jobs/workq.h"
#include "store/store.h"

/* Deferred request work (jobs/workq.h): threads and queue depth of each class. */
#define QUICK_THREADS 2
#define QUICK_DEPTH 256
#define SLOW_THREADS 2
#define SLOW_DEPTH 16

/* The most the model cache may hold (models larger than this are loaded per request). */
#define MODEL_CACHE_BYTES ((size_t)256 << 20)

enum service_phase { PHASE_SERVING = 0, PHASE_DRAINING = 1, PHASE_CLOSING = 2 };

typedef struct service {
    const daemon_opts *opts;
    double started;                /* monotonic seconds at start (uptime) */
    int phase;                     /* enum service_phase (the loop sets it) */

    store_t store;                 /* the loop thread's own connection */
    uv_async_t wake;               /* workers -> loop: progress, checkpoints, finished jobs */

    jobmgr jobs;
    worker_pool pool;
    sweeps sweeps;                 /* the sweeps being driven (jobs/sweeps.h) */
    model_cache models;            /* trained models for weights and predict (any thread) */
    membudget mem;                 /* --max-memory: jobs, models and uploads (any thread) */
    workq quick, slow;             /* request work off the loop thread */

    /* The loop's turns, for /metrics (the loop writes them, the loop thread reads them) */
    uint64_t turns;
    uint64_t longest_turn_ns;      /* longest turn (wall, without time waiting in poll) */
    uint64_t longest_turn_cpu_ns;  /* longest turn in the loop thread's CPU time */
} service;

#endif
