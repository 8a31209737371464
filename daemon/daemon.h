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

#include "api/sse.h"
#include "daemon/housekeep.h"
#include "daemon/jobs.h"
#include "daemon/options.h"
#include "daemon/workers.h"
#include "store/store.h"

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
    int64_t ticks;                 /* housekeeping ticks */
    int64_t watchdog_ticks;        /* ping systemd's watchdog every this many ticks; 0 = off */
    int inflight_work;             /* http_defer work items not yet answered */

    /* Store: the loop thread's own connection */
    store_t store;
    store_pool rpool;              /* connections of deferred requests (http_defer) */
    housekeeper hk;                /* gives free pages back, checkpoints the WAL */

    /* Jobs, workers, streams */
    jobmgr jobs;
    worker_pool pool;
    sse_hub hub;

    /* Stats for /metrics (loop thread) */
    uint64_t http_by_code[600];    /* requests answered, by status code */
} daemon_t;

/* Runs the service until SIGTERM/SIGINT; returns the exit status (0 after a clean stop). */
int daemon_run(const daemon_opts *opts);

/* Runs MHD and re-arms the timer from MHD_get_timeout (loop thread). */
void daemon_pump(daemon_t *d);

/* Monotonic seconds. */
double daemon_now(void);

/* Logs one line to stderr when `level` is enabled. */
void daemon_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
