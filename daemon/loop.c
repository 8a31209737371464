/* loop — the service's libuv loop: MHD in external epoll mode, the wake-up from workers,
 * housekeeping, signals and the shutdown state machine.
 *
 * Shutdown (SIGTERM/SIGINT), as a state machine driven by the housekeeping timer so the loop
 * never blocks:
 *   SERVING  -> signal: stop accepting (MHD_quiesce_daemon), new requests get 503, every run
 *               is told to stop (workers checkpoint and put their job back to `queued`);
 *   DRAINING -> when no run is left, the final states still owed to the store were tried
 *               again (jobs_drained) and no deferred request is out: end every SSE stream,
 *               let MHD flush, then close MHD, join the workers, close every handle;
 *   CLOSING  -> the loop ends when the last handle is closed.
 * A second signal exits at once (jobs left `running` are re-queued at the next start). */
#include "daemon/daemon.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "api/http.h"
#include "api/reqguard.h"
#include "api/routes.h"
#include "daemon/notify.h"
#include "daemon/startup_signals.h"
#include "jobs/mpirun.h"
#include "jobs/rankproc.h"
#include "store/lock.h"
#include "store/walcopy.h"
#include "util/util.h"
#include "util/log.h"


static void daemon_pump(daemon_t *d);

static void on_mhd_timer(uv_timer_t *t)
{
    daemon_pump(t->data);
}

static void on_mhd_idle(uv_idle_t *h)
{
    daemon_pump(h->data);
}

/* Runs MHD once and arranges the next run from MHD_get_timeout. A timeout of 0 (a response
 * with more to send, a connection with bytes already read) runs MHD again in the next turn
 * of the loop through an idle handle, after that turn's I/O. A 0 ms timer would not do:
 * libuv 1.44 runs a timer re-armed from its own callback again in the same pass when its
 * time has come, so a streamed answer of seconds was made in one turn while every other
 * request waited. */
static void daemon_pump(daemon_t *d)
{
    if (!d->api->mhd) {
        uv_idle_stop(&d->mhd_idle);
        return;
    }
    MHD_run(d->api->mhd);
    MHD_UNSIGNED_LONG_LONG ms = 0;
    if (MHD_get_timeout(d->api->mhd, &ms) != MHD_YES) {
        uv_timer_stop(&d->mhd_timer);
        uv_idle_stop(&d->mhd_idle);
    } else if (ms == 0) {
        uv_timer_stop(&d->mhd_timer);
        uv_idle_start(&d->mhd_idle, on_mhd_idle);
    } else {
        uv_idle_stop(&d->mhd_idle);
        uv_timer_start(&d->mhd_timer, on_mhd_timer, ms > 60000 ? 60000 : ms, 0);
    }
}

static void on_mhd_poll(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    daemon_pump(p->data);
}

static void on_wake(uv_async_t *a)
{
    daemon_t *d = a->data;
    jobs_poll(&d->sv.jobs);
    daemon_pump(d);
}

/* api_t's pump: the HTTP side asks for MHD to run after resuming a connection. */
static void pump_cb(void *arg)
{
    daemon_pump(arg);
}

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Runs before every poll: the time since the previous one, less the time spent waiting in
 * poll, is the work of one turn of the loop (every callback it ran). */
static void on_turn_end(uv_prepare_t *h)
{
    daemon_t *d = h->data;
    uint64_t now = uv_hrtime(), idle = uv_metrics_idle_time(&d->loop), cpu = thread_cpu_ns();
    if (d->turn_mark_ns) {
        uint64_t wall = now - d->turn_mark_ns, waited = idle - d->turn_idle_ns;
        uint64_t busy = wall > waited ? wall - waited : 0;
        if (busy > d->sv.longest_turn_ns)
            d->sv.longest_turn_ns = busy;
        if (cpu - d->turn_cpu_ns > d->sv.longest_turn_cpu_ns)
            d->sv.longest_turn_cpu_ns = cpu - d->turn_cpu_ns;
        d->sv.turns++;
    }
    d->turn_mark_ns = now;
    d->turn_idle_ns = idle;
    d->turn_cpu_ns = cpu;
}

static void on_work_done(uv_async_t *a)
{
    daemon_t *d = a->data;
    workq_complete(&d->sv.quick);
    workq_complete(&d->sv.slow);
    jobs_tasks_complete(&d->sv.jobs);
}

static void close_handle(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* DRAINING: finishes once every run has let go, the final states still owed to the store
 * were tried again, and no deferred request is out. */
static void drain_step(daemon_t *d)
{
    jobs_poll(&d->sv.jobs);
    if (d->api->inflight_work > 0 || !jobs_drained(&d->sv.jobs)) {
        daemon_pump(d);
        return;
    }
    d->sv.phase = PHASE_CLOSING;
    util_log(LOG_INFO, "every job is checkpointed; closing");
    conns_close(d->api); /* connections still sending their head */
    sse_hub_end(&d->api->hub, "");
    /* Let MHD write the last bytes and end the streams. */
    for (int i = 0; i < 20 && d->api->hub.nclients > 0; i++) {
        MHD_run(d->api->mhd);
        usleep(5000);
    }
    uv_poll_stop(&d->mhd_poll);
    uv_close((uv_handle_t *)&d->mhd_poll, NULL);
    MHD_stop_daemon(d->api->mhd);
    d->api->mhd = NULL;
    workers_stop(&d->sv.pool);
    d->sv.quick.on_exit = d->sv.slow.on_exit = http_thread_end;
    workq_stop(&d->sv.quick);
    workq_stop(&d->sv.slow);
    jobs_tasks_stop(&d->sv.jobs);
    housekeeper_stop(&d->hk); /* stops within one slice: shutdown never does housekeeping */
    uv_walk(&d->loop, close_handle, NULL);
}

static void on_housekeeping(uv_timer_t *t)
{
    daemon_t *d = t->data;
    d->ticks++;
    conns_sweep(d->api, util_now()); /* heads overdue (api/conns.h) */
    if (d->sv.phase == PHASE_DRAINING) {
        drain_step(d);
        return;
    }
    if (d->sv.phase != PHASE_SERVING)
        return;
    jobs_poll(&d->sv.jobs); /* a trailing coalesced progress event, if any */
    jobs_watchdog(&d->sv.jobs); /* stalled runs (jobs/jobsched.c) */
    jobs_sched_preempt(&d->sv.jobs);
    if (d->sv.jobs.fixes && d->ticks % 4 == 0) /* final states a full disk refused: every second */
        jobs_settle(&d->sv.jobs);
    if (d->ticks % 4 == 0) /* trials that could not start (a full queue): every second */
        sweeps_pump(&d->sv.sweeps);
    if (d->ticks % 60 == 0) /* 15 s at 250 ms */
        sse_hub_ping(&d->api->hub);
    else if (d->ticks % 4 == 0) /* every second: streams whose client hung up */
        sse_hub_check_peers(&d->api->hub);
    /* Watchdog pings come from the loop itself, so a stalled loop gets restarted. */
    if (d->watchdog_ticks > 0 && d->ticks % d->watchdog_ticks == 0)
        notify_send("WATCHDOG=1");
    daemon_pump(d);
}

static void on_signal(uv_signal_t *s, int signum)
{
    daemon_t *d = s->data;
    if (d->sv.phase != PHASE_SERVING) {
        util_log(LOG_WARN, "second signal %d: exiting now", signum);
        _exit(1);
    }
    util_log(LOG_INFO, "signal %d: checkpointing every job and stopping", signum);
    d->sv.phase = PHASE_DRAINING;
    notify_send("STOPPING=1\nSTATUS=checkpointing running jobs");
    /* Close the listening socket, so the port is free (and new connections are refused)
     * while the jobs checkpoint. */
    conns_stop_listening(d->api);
    jobs_shutdown(&d->sv.jobs);
    drain_step(d);
}

/* Every connection is a descriptor: let the daemon use as many as its hard limit allows
 * (CONNS_MAX connections plus the store's files), up to 65536. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = want;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int bind_address(const daemon_opts *o, struct sockaddr_storage *ss, unsigned *flags)
{
    memset(ss, 0, sizeof *ss);
    const char *host = strcmp(o->host, "localhost") == 0 ? "127.0.0.1" : o->host;
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)o->port);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)o->port);
        *flags |= MHD_USE_IPv6;
        return 0;
    }
    return -EINVAL;
}

/* What an operator can do about a store that does not open, after SQLite's own words. A
 * full file system often shows as an I/O error (the shared-memory file cannot grow), so the
 * free space decides, not only the code. Nothing was written: a migration is one transaction
 * per schema version, rolled back whole. */
static const char *store_open_hint(int rc, const char *db, const an_err *e)
{
    uint64_t avail = 0;
    if (rc == -ENOSPC || ((rc == -EIO || rc == -EROFS) && util_free_disk(db, &avail) == 0 &&
                          avail < (1u << 20)))
        return " (the store's file system is full: free some space there and start again; "
               "the store was left as it was)";
    if (rc == -EPROTO && !strstr(e->message, "schema version"))
        return " (it is not an anneald store, or it is damaged: truncated or overwritten. It "
               "was left as it is: restore it from a backup, or start with another --db)";
    if (rc == -EROFS || rc == -EACCES || rc == -ENOENT)
        return " (the store and its directory must be writable by the daemon's user: SQLite "
               "writes its -wal and -shm files beside it)";
    return "";
}

/* A stop signal before the loop serves (startup_signals.h), maybe seconds into opening and
 * migrating the store or loading its jobs: the start ends at once. Each of its writes is one
 * transaction, so the store holds what was committed and nothing half done (SQLite rolls back
 * a migration or recovery cut short, and the next start does it again); the kernel lets go of
 * the store's lock with the process. Exit 0, as after a stop while serving: the stop was
 * asked for, and systemd's Restart=on-failure must not start the daemon again. */
static void stopped_in_startup(int sig)
{
    util_log(LOG_INFO, "%s during start-up: stopped before serving; the store keeps what was "
             "committed (a migration or recovery cut short is done again at the next start)",
             sig == SIGINT ? "SIGINT" : "SIGTERM");
    _exit(0);
}

int daemon_run(const daemon_opts *opts)
{
    /* Until the loop can take the stop signals, a thread waits for them (main blocked them
     * before its exec; again here, as the thread waits only for blocked ones). */
    startup_signals_block();
    startup_watch(stopped_in_startup);
    static daemon_t dd; /* one per process; static keeps it off the stack (it is large) */
    daemon_t *d = &dd;
    memset(d, 0, sizeof *d);
    static api_t aa; /* the HTTP side, as large and as lasting */
    memset(&aa, 0, sizeof aa);
    d->api = &aa;
    aa.sv = &d->sv;
    aa.loop = &d->loop;
    aa.pump = pump_cb;
    aa.pump_arg = d;
    d->sv.opts = opts;
    util_log_set_level(opts->log_level);
    d->sv.started = util_now();
    signal(SIGPIPE, SIG_IGN);
    /* Few malloc arenas: each thread's own 64 MiB arena would take address space (and, under
     * ulimit -v, the limit) for nothing the budget can see. */
    mallopt(M_ARENA_MAX, 4);
    /* Fixed thresholds rather than glibc's sliding ones: after a large block is freed, glibc
     * raises the mmap threshold to its size (up to 32 MiB) and the trim threshold to twice
     * that, so the next jobs' parameters, optimizer state and checkpoint blobs land in the
     * arenas, whose free tops are never given back (malloc_trim returns only the main
     * arena's). Blocks of 4 MiB and more are mapped and unmapped whole; an arena keeps at most
     * 8 MiB free at its top, more than a training step's passing buffers, so a step does not
     * give pages back only to fault them in again. */
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    mallopt(M_TRIM_THRESHOLD, 8 << 20);

    /* The address first: a port in use (or a bad address) fails the start before the store
     * or its lock file is created. */
    struct sockaddr_storage ss;
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
                     MHD_USE_NO_LISTEN_SOCKET;
    if (bind_address(opts, &ss, &flags)) {
        fprintf(stderr, "anneald: --listen %s: a numeric IPv4 or IPv6 address was expected\n",
                opts->host);
        return 2;
    }
    d->api->gate.fd = -1;
    int rc = conns_bind(d->api, (struct sockaddr *)&ss,
                        ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                 : sizeof(struct sockaddr_in),
                        &d->port);
    if (rc) {
        fprintf(stderr, "anneald: cannot listen on %s:%d: %s\n", opts->host, opts->port,
                strerror(-rc));
        return 1;
    }

    an_err e;
    an_err_clear(&e);
    /* One daemon per store (store/lock.h): held until the process ends. */
    static store_lock lock = {-1, -1, 0};
    if (store_lock_take(&lock, opts->db, &e)) {
        fprintf(stderr, "anneald: %s\n", e.message);
        return 1;
    }
    if (lock.links > 1)
        util_log(LOG_WARN, "the store %s has %ld names (hard links): open it by this one only. "
                 "SQLite finds its write-ahead log by name, so after a crash another name would "
                 "miss the last commits", opts->db, lock.links);
    rc = store_open(&d->sv.store, opts->db, &e);
    if (rc) {
        fprintf(stderr, "anneald: cannot open the store %s: %s%s\n", opts->db, e.message,
                store_open_hint(rc, opts->db, &e));
        return 1;
    }
    store_wal_copy_mode(&d->sv.store, STORE_WAL_NEVER); /* this thread never waits on the disk */
    int stale = rankproc_sweep_stale(); /* before the loop runs */
    if (stale)
        util_log(LOG_INFO, "removed %d rank director%s left in /tmp by a daemon that was killed",
                 stale, stale == 1 ? "y" : "ies");
    if (uv_loop_init(&d->loop) != 0) {
        store_close(&d->sv.store);
        return 1;
    }
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    uint64_t first_id = ((uint64_t)wall.tv_sec * 1000 + (uint64_t)(wall.tv_nsec / 1000000)) * 1000;
    if (sse_hub_init(&d->api->hub, 8192, first_id) || jobs_init(&d->sv.jobs, &d->sv) ||
        model_cache_init(&d->sv.models, MODEL_CACHE_BYTES) ||
        budget_init(&d->sv.mem, opts->max_memory)) {
        fprintf(stderr, "anneald: out of memory\n");
        return 1;
    }
    api_events_sink(d->api, &d->sv.jobs.sink); /* the manager's events become SSE frames */
    uv_async_init(&d->loop, &d->sv.wake, on_wake);
    d->sv.wake.data = d;
    d->sv.models.budget = opts->max_memory ? &d->sv.mem : NULL;
    uv_loop_configure(&d->loop, UV_METRICS_IDLE_TIME);
    uv_prepare_init(&d->loop, &d->turn_end);
    d->turn_end.data = d;
    uv_prepare_start(&d->turn_end, on_turn_end);
    uv_async_init(&d->loop, &d->work_done, on_work_done);
    d->work_done.data = d;
    if (workq_init(&d->sv.quick, "quick", QUICK_THREADS, QUICK_DEPTH, &d->work_done) ||
        workq_init(&d->sv.slow, "slow", SLOW_THREADS, SLOW_DEPTH, &d->work_done) ||
        jobs_tasks_start(&d->sv.jobs, opts->db, &d->work_done)) {
        fprintf(stderr, "anneald: cannot start the request threads\n");
        return 1;
    }

    raise_fd_limit();
    /* MHD gets connections from the gate (api/conns.h) once their head is in; it listens on
     * nothing itself. Its idle timeout ends a connection that neither reads nor writes for
     * 30 s, which includes a stream whose reader stopped taking bytes. */
    d->api->mhd = MHD_start_daemon(flags, 0, NULL, NULL, http_access, d->api,
                              MHD_OPTION_EXTERNAL_LOGGER, reqguard_mhd_log, d->api, /* first */
                              MHD_OPTION_NOTIFY_COMPLETED, http_completed, d->api,
                              MHD_OPTION_NOTIFY_CONNECTION, conns_mhd_notify, d->api,
                              MHD_OPTION_URI_LOG_CALLBACK, conns_mhd_uri, d->api,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)30,
                              MHD_OPTION_CONNECTION_LIMIT, (unsigned int)CONNS_MAX,
                              MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
                              MHD_OPTION_END);
    if (!d->api->mhd) {
        fprintf(stderr, "anneald: cannot start the HTTP server\n");
        return 1;
    }
    rc = conns_start(d->api);
    if (rc) {
        fprintf(stderr, "anneald: cannot listen on %s:%d: %s\n", opts->host, d->port,
                strerror(-rc));
        return 1;
    }
    const union MHD_DaemonInfo *ei = MHD_get_daemon_info(d->api->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    uv_poll_init(&d->loop, &d->mhd_poll, ei->epoll_fd);
    d->mhd_poll.data = d;
    uv_poll_start(&d->mhd_poll, UV_READABLE, on_mhd_poll);
    uv_timer_init(&d->loop, &d->mhd_timer);
    d->mhd_timer.data = d;
    uv_idle_init(&d->loop, &d->mhd_idle);
    d->mhd_idle.data = d;
    uv_timer_init(&d->loop, &d->housekeeping);
    d->housekeeping.data = d;
    uv_timer_start(&d->housekeeping, on_housekeeping, 250, 250);
    uv_signal_init(&d->loop, &d->sigterm);
    d->sigterm.data = d;
    uv_signal_start(&d->sigterm, on_signal, SIGTERM);
    uv_signal_init(&d->loop, &d->sigint);
    d->sigint.data = d;
    uv_signal_start(&d->sigint, on_signal, SIGINT);

    if (sweeps_init(&d->sv.sweeps, &d->sv) != 0) {
        fprintf(stderr, "anneald: cannot start the sweeps\n");
        return 1;
    }
    api_sweeps_sink(d->api, &d->sv.sweeps.sink); /* sweep events become SSE frames */
    if (sweeps_recover(&d->sv.sweeps, &e))
        util_log(LOG_ERROR, "sweep recovery failed: %s", e.message);
    d->sv.jobs.nworkers = opts->workers; /* preemption needs to know when all are busy */
    int64_t parts = 0; /* uploads a stop cut short (store/uploads.c) */
    if (store_upload_sweep(&d->sv.store, &parts, &e) != 0)
        util_log(LOG_WARN, "cannot delete the parts of unfinished uploads: %s", e.message);
    else if (parts)
        util_log(LOG_INFO, "deleted %lld part(s) of uploads a stop cut short", (long long)parts);
    if (jobs_recover(&d->sv.jobs, &e))
        util_log(LOG_ERROR, "restart recovery failed: %s", e.message);
    /* Before the workers train: from here on a stop checkpoints the jobs, through the loop's
     * signal handles (started above; a signal that came meanwhile is taken in its first
     * turn). */
    startup_over();
    startup_signals_unblock();
    rc = workers_start(&d->sv.pool, &d->sv.jobs, opts->db, opts->workers);
    if (rc) {
        fprintf(stderr, "anneald: cannot start %d workers: %s\n", opts->workers, strerror(-rc));
        return 1;
    }

    if (housekeeper_start(&d->hk, opts->db) != 0)
        util_log(LOG_WARN, "no housekeeping thread: deleted jobs' space comes back at restart");

    int v6 = (flags & MHD_USE_IPv6) != 0;
    printf("listening on http://%s%s%s:%d\n", v6 ? "[" : "", opts->host, v6 ? "]" : "", d->port);
    fflush(stdout);
    util_log(LOG_INFO, "serving on port %d with %d worker%s, store %s", d->port,
               opts->workers, opts->workers == 1 ? "" : "s", opts->db);
    char mpi[PATH_MAX];
    if (strcmp(opts->mpirun, "mpirun") != 0 && mpirun_find(opts->mpirun, mpi, sizeof mpi) != 0)
        util_log(LOG_WARN, "--mpirun %s is not an executable file: jobs with world_size > 1 "
                 "(those queued at this start included) fail until the daemon runs with a "
                 "working one", opts->mpirun);
    if (opts->token[0] && strlen(opts->token) < 16)
        util_log(LOG_WARN, "the token is %zu characters: one of 16 or more is much harder to "
                 "guess", strlen(opts->token));
    uint64_t wd = notify_watchdog_usec();
    if (wd > 0) {
        d->watchdog_ticks = (int64_t)(wd / 2 / 250000);
        if (d->watchdog_ticks < 1)
            d->watchdog_ticks = 1;
    }
    char status[128];
    snprintf(status, sizeof status, "READY=1\nSTATUS=serving on port %d", d->port);
    notify_send(status);
    daemon_pump(d);

    uv_run(&d->loop, UV_RUN_DEFAULT);

    if (uv_loop_close(&d->loop) != 0)
        util_log(LOG_WARN, "the loop closed with handles still open");
    jobs_close(&d->sv.jobs);
    sweeps_free(&d->sv.sweeps);
    sse_hub_close(&d->api->hub);
    model_cache_free(&d->sv.models);
    conns_free(d->api);
    budget_free(&d->sv.mem);
    /* No vacuum or WAL truncation here: the housekeeping thread did that in slices while
     * serving, and whatever is left waits for the next start. */
    store_close(&d->sv.store);
    if (store_lock_set_aside(opts->db) > 0)
        util_log(LOG_WARN, "the store file %s was deleted or replaced while the daemon ran: "
                 "its write-ahead log is kept as %s-wal.of-a-replaced-store (it belongs to "
                 "the file this daemon opened, not to the one at that path now)",
                 opts->db, opts->db);
    store_lock_release(&lock);
    util_log(LOG_INFO, "stopped");
    return d->exit_code;
}
