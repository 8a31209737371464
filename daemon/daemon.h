/* daemon — the service's one state struct, and the loop that runs it.
 *
 * One libuv loop on the main thread drives everything that is not training: libmicrohttpd in
 * external epoll mode (one uv_poll_t on MHD's epoll fd + one uv_timer_t that follows
 * MHD_get_timeout), the async handle workers wake the loop with, one housekeeping timer (SSE
 * pings, store maintenance), and the signal handles. Workers (daemon/workers.c) train on
 * their own threads and never touch HTTP. */
#ifndef ANNEALD_DAEMON_H
#define ANNEALD_DAEMON_H

#include <stdatomic.h>
#include <stdint.h>

#include <microhttpd.h>
#include <uv.h>

#include "api/conns.h"
#include "api/sse.h"
#include "daemon/budget.h"
#include "daemon/housekeep.h"
#include "daemon/jobmgr.h"
#include "daemon/loader.h"
#include "daemon/options.h"
#include "daemon/sweeps.h"
#include "daemon/workers.h"
#include "daemon/workq.h"
#include "store/store.h"

/* Deferred request work (daemon/workq.h): threads and queue depth of each class. */
#define QUICK_THREADS 2
#define QUICK_DEPTH 256
#define SLOW_THREADS 2
#define SLOW_DEPTH 16

/* The most the model cache may hold (models larger than this are loaded per request). */
#define MODEL_CACHE_BYTES ((size_t)256 << 20)

enum daemon_phase { PHASE_SERVING = 0, PHASE_DRAINING = 1, PHASE_CLOSING = 2 };

typedef struct daemon {
    /* General */
    const daemon_opts *opts;
    double started;                /* monotonic seconds at start (uptime) */
    int phase;                     /* enum daemon_phase */
    int exit_code;

    /* Loop and HTTP */
    uv_loop_t loop;
    struct MHD_Daemon *mhd;
    uv_poll_t mhd_poll;            /* readable MHD epoll fd -> MHD_run */
    uv_timer_t mhd_timer;          /* follows MHD_get_timeout */
    uv_timer_t housekeeping;       /* every second: SSE pings (15 s), shutdown progress */
    uv_async_t wake;               /* workers -> loop: progress, checkpoints, finished jobs */
    uv_signal_t sigterm, sigint;
    int port;                      /* the port actually bound */
    conns_t gate;                  /* the listening socket and the connection gate */
    int64_t ticks;                 /* housekeeping ticks */
    int64_t watchdog_ticks;        /* ping systemd's watchdog every this many ticks; 0 = off */
    int inflight_work;             /* http_defer work items not yet answered */

    /* Store: the loop thread's own connection */
    store_t store;
    housekeeper hk;                /* gives free pages back, checkpoints the WAL */

    /* Jobs, workers, streams */
    jobmgr jobs;
    worker_pool pool;
    sse_hub hub;
    sweeps sweeps;                 /* the sweeps being driven (daemon/sweeps.h) */
    model_cache models;            /* trained models for weights and predict (any thread) */
    membudget mem;                 /* --max-memory: jobs, models and uploads (any thread) */

    /* Deferred work and the loop's turns (loop thread) */
    workq quick, slow;
    uv_async_t work_done;          /* a queue thread finished an item */
    uv_prepare_t turn_end;         /* before each poll: closes the turn that just ran */
    uint64_t turn_mark_ns;         /* uv_hrtime at the previous prepare */
    uint64_t turn_idle_ns;         /* uv_metrics_idle_time then */
    uint64_t turn_cpu_ns;          /* the loop thread's CPU time then */
    uint64_t longest_turn_ns;      /* longest turn (wall, without time waiting in poll) */
    uint64_t longest_turn_cpu_ns;  /* longest turn in the loop thread's CPU time */
    uint64_t turns;

    /* Stats for /metrics (loop thread) */
    uint64_t http_by_code[600];    /* requests answered, by status code */
    uint64_t refused_host;         /* 421: a Host that does not name the daemon (api/guard.h) */
    uint64_t refused_origin;       /* 403: a foreign Origin */
    uint64_t refused_media;        /* 415: a body of the wrong Content-Type */
    uint64_t refused_headers;      /* 400: a framing or auth header sent twice */
} daemon_t;

/* Runs the service until SIGTERM/SIGINT; returns the exit status (0 after a clean stop). */
int daemon_run(const daemon_opts *opts);

/* Runs MHD and re-arms the timer from MHD_get_timeout (loop thread). */
void daemon_pump(daemon_t *d);


#endif
