/* daemon — the service's one state struct, and the loop that runs it.
 *
 * One libuv loop on the main thread drives everything that is not training: libmicrohttpd in
 * external epoll mode (one uv_poll_t on MHD's epoll fd + one uv_timer_t that follows
 * MHD_get_timeout), the async handle workers wake the loop with, one housekeeping timer (SSE
 * pings, store maintenance), and the signal handles. Workers (jobs/workers.c) train on
 * their own threads and never touch HTTP. */
#ifndef ANNEALD_DAEMON_H
#define ANNEALD_DAEMON_H

#include <stdint.h>

#include <uv.h>

#include "daemon/housekeep.h"
#include "jobs/service.h"

struct api;

typedef struct daemon {
    service sv;                    /* the job manager's side (jobs/service.h) */
    struct api *api;               /* the HTTP side (api/api.h), made by the wiring */
    int exit_code;

    /* Loop */
    uv_loop_t loop;
    uv_poll_t mhd_poll;            /* readable MHD epoll fd -> MHD_run */
    uv_timer_t mhd_timer;          /* follows MHD_get_timeout */
    uv_idle_t mhd_idle;            /* MHD_get_timeout of 0: MHD_run once per turn */
    uv_timer_t housekeeping;       /* every second: SSE pings (15 s), shutdown progress */
    uv_signal_t sigterm, sigint;
    int port;                      /* the port actually bound */
    int64_t ticks;                 /* housekeeping ticks */
    int64_t watchdog_ticks;        /* ping systemd's watchdog every this many ticks; 0 = off */
    housekeeper hk;                /* gives free pages back, checkpoints the WAL */

    /* Deferred work and the loop's turns */
    uv_async_t work_done;          /* a queue thread finished an item */
    uv_prepare_t turn_end;         /* before each poll: closes the turn that just ran */
    uint64_t turn_mark_ns;         /* uv_hrtime at the previous prepare */
    uint64_t turn_idle_ns;         /* uv_metrics_idle_time then */
    uint64_t turn_cpu_ns;          /* the loop thread's CPU time then */
} daemon_t;

/* Runs the service until SIGTERM/SIGINT; returns the exit status (0 after a clean stop). */
int daemon_run(const daemon_opts *opts);


#endif
