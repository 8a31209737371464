/* jobmgr — the job manager: the state machine of API.md over the store, the queue that feeds
 * the worker pool, and the bridge from workers' progress to SSE events.
 *
 * DESIGN
 * The store holds the truth about every job (its row and state); this module holds the jobs
 * this process is working on: one job_run per queued or running job. The loop thread creates
 * runs (POST /v1/jobs, resume, the restart recovery), puts them in a queue ordered by
 * priority, oldest first among equals (jobs/jobsched.c: preemption, the stall watchdog), and later
 * frees them; a worker takes a run off the queue (under the manager's mutex), trains it, and
 * publishes what it did into the run's snapshot under the run's own mutex (never held during
 * compute). Pause, cancel and shutdown are an atomic flag in the run, read by the worker
 * between steps.
 *
 * Workers wake the loop with uv_async_send at most every ~50 ms; the loop then walks the runs
 * and turns what changed into SSE events: `state` on every transition, `checkpoint` for each
 * new checkpoint, and `progress` at most every 100 ms per job (so ≤ 10/s to any client) —
 * always including the last step before a state change. The manager knows no HTTP: a
 * transition returns an outcome (job_outcome), and a caller that must wait for a worker
 * (pausing or cancelling a running job) hangs a job_waiter on the run, whose callback gets the
 * outcome when the worker lets go of it. Events leave through a sink (job_sink) that the
 * daemon's wiring points at the SSE hub.
 *
 * Shutdown: jobs_shutdown sets every run's flag; workers checkpoint, put the job back to
 * `queued` in the store and report; jobs_drained() says when all have and the final states
 * the store refused before were tried again (a few times, for a few seconds at most). */
#ifndef ANNEALD_JOBMGR_H
#define ANNEALD_JOBMGR_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "jobs/qtree.h"
#include "jobs/workq.h"
#include "store/store.h"

struct service;
struct job_snap;

/* What a transition did. JOB_OK: `state` is the job's state now. Otherwise `message` says
 * why nothing changed, naming `field` ("id" or "state") where one is at fault. */
typedef enum job_result {
    JOB_OK = 0,
    JOB_NOT_FOUND,   /* no such job */
    JOB_CONFLICT,    /* the job's state does not allow it (`state` is that state) */
    JOB_BUSY,        /* try again shortly (a worker is letting go; a state not yet stored) */
    JOB_NO_MEMORY,   /* out of memory: nothing changed */
    JOB_STORE        /* the store failed: `store_rc` */
} job_result;

typedef struct job_outcome {
    job_result result;
    store_job_state state;
    int store_rc;
    char field[16];
    char message[400];
} job_outcome;

/* A caller waiting for a worker to let go of a job. `done` runs once, on the loop thread,
 * with the outcome; the waiter's memory is the caller's and must live until then. */
typedef struct job_waiter {
    void (*done)(struct job_waiter *w, const job_outcome *o);
    struct job_waiter *next;
} job_waiter;

/* Where the manager's events go (loop thread): daemon/main points it at the SSE hub. Any
 * callback may be NULL. */
typedef struct job_sink {
    void *ctx;
    void (*state)(void *ctx, const char *id, const char *state, const char *error);
    void (*progress)(void *ctx, const char *id, const struct job_snap *s);
    void (*checkpoint)(void *ctx, const char *id, int64_t step, int64_t bytes);
    void (*deleted)(void *ctx, const char *id);   /* the job is gone: its streams end */
} job_sink;

#define JOB_MAX_RANKS 256 /* CFG_MAX_WORLD */

/* STOP_PREEMPT: checkpoint and go back to the queue for a job of higher priority;
 * STOP_STALL: the watchdog saw no step for stall_timeout_s: back to the queue without a new
 * checkpoint, to restart from the latest one (jobs/jobsched.c);
 * STOP_SWEEP: its sweep's early stopping ended the trial (the worker's own decision). */
enum job_stop {
    STOP_NONE = 0, STOP_PAUSE = 1, STOP_CANCEL = 2, STOP_SHUTDOWN = 3, STOP_PREEMPT = 4,
    STOP_STALL = 5, STOP_SWEEP = 6
};

/* What a worker publishes about its run (guarded by job_run.mu). */
typedef struct job_snap {
    int started;                 /* the worker marked the job running */
    int left_queue;              /* the worker wrote `running` to the store (set before
                                    `started`, once the job's row is no longer queued) */
    int64_t step, epoch, total_steps;
    double loss;
    int n_lr;
    double lr[STORE_MAX_LR];
    double samples_per_sec;
    double eta_s;                /* seconds left at the current speed; NAN unknown */
    int64_t val_step;            /* step of this run's latest validation; 0 = none yet */
    double val_loss, val_acc;    /* its held-out loss and accuracy (NAN for regression) */
    double loss_scale;           /* fp16 (gpt): the latest step's loss scale; NAN otherwise */
    int64_t skipped_steps;       /* fp16: overflowed steps so far */
    int64_t ckpt_seq;            /* checkpoints written by this run */
    int64_t ckpt_step, ckpt_bytes;
    int done;                    /* the worker let go of the run */
    store_job_state final;       /* the job's state when done */
    char error[512];             /* failure message when final == failed (or paused by a
                                    full disk) */
    int unsaved;                 /* the store refused the final state (e.g. a full disk): the
                                    state thread records it later (jobs_settle) */
    char wait_reason[400];       /* why a taken job still waits (memory); "" = it does not */
    /* scheduling (set by the loop thread when the run is made; jobs/jobsched.c) */
    int preempted;               /* queued again after a preemption, not running yet */
    int restarts;                /* restarts after stalls since the daemon started */
    char restart_why[400];       /* the worker's reason for a STOP_STALL it set itself (a rank
                                    died): what a failure after max_restarts says; "" = the
                                    watchdog's (no step for stall_timeout_s) */
    /* a multi-rank job (jobs/rankrun.c): its ranks, and each rank's milliseconds per step
       outside the gradient exchange over the last half second (n_rank_ms = 0: none yet) */
    int world_size;
    int n_rank_ms;
    double rank_step_ms[JOB_MAX_RANKS];
    /* the run's activation memory by the estimate, and what activation checkpointing saves
       of it (0 without checkpointing; core/memest.h) */
    uint64_t act_bytes, act_saved;
} job_snap;

/* A final state the store could not take yet; retried by jobs_settle (on the state thread). */
typedef struct job_fix {
    char id[STORE_ID_LEN];
    store_job_state state;
    char error[512];
    int busy;                    /* its write is with the state thread */
    int requeue;                 /* once written (queued), queue it for the workers: a
                                    restart's recovery that could not write it at once */
    struct job_fix *next;
} job_fix;

typedef struct job_run {
    char id[STORE_ID_LEN];
    atomic_int stop;             /* enum job_stop, read by the worker between steps */
    int taken;                   /* a worker has it (manager mutex) */
    uv_mutex_t mu;               /* guards snap */
    job_snap snap;
    /* loop thread only */
    int64_t sent_step;           /* last progress step sent as an event */
    double sent_at;              /* when (monotonic seconds) */
    int64_t sent_ckpt_seq;
    int sent_started;
    job_waiter *waiters;         /* callers answered when the worker lets go */
    /* a run let go of whose late pause or cancel the state thread is writing (jobs_poll):
       it stays listed until the write lands; each is tried once */
    int settling, tried_pause, tried_cancel;
    int cancelled_here;          /* that cancel landed: the worker's error no longer applies */
    int64_t seen_step;           /* the watchdog's last look: step, and when it changed */
    double seen_at;
    /* scheduling, from the spec (jobs/jobsched.c); priority under the manager mutex */
    int priority;
    int preemptible;
    int64_t seq;                 /* the job's number: among equal priorities, oldest first */
    double stall_timeout_s;
    int max_restarts;
    qnode qn;                    /* its place in the queue (manager mutex; jobs/qtree.h) */
    /* the lists it is in: every run (loop thread), the index by id (changed on the loop
       under the manager mutex, so that any thread holding it may look up), the runs a worker
       has taken (manager mutex), the queued runs whose JSON says more than "queued"
       (preempted, restarted: loop thread) */
    struct job_run *next, *prev;
    struct job_run *hnext;
    struct job_run *tnext, *tprev;
    struct job_run *nnext;
    int noted;
} job_run;

/* The run whose queue node is n (NULL for NULL). */
static inline job_run *jobs_run_of(qnode *n)
{
    return n ? (job_run *)(void *)((char *)n - offsetof(job_run, qn)) : NULL;
}

typedef struct jobmgr {
    struct service *d;
    uv_mutex_t mu;               /* guards the queue, taken flags, quit */
    uv_cond_t cond;              /* signalled on enqueue and quit */
    qtree queue;                 /* runs no worker has taken, by priority (jobs_sched_insert) */
    int quit;                    /* workers exit when the queue is empty */
    job_run *runs;               /* every live run (loop thread) */
    job_run **index;             /* the runs by id: chains of `nindex` buckets (jobs/runindex.c) */
    size_t nindex, nruns;
    job_run *taken;              /* the runs workers have taken (manager mutex) … */
    int ntaken;                  /* … and how many */
    job_run *noted;              /* queued runs that were preempted or restarted (loop) */
    job_fix *fixes;              /* final states not yet in the store (loop thread) */
    struct sched_patch *patched; /* priorities PATCHed lately (jobs/jobsched.c; loop thread) */
    int shutting_down;
    int drain_settles;           /* jobs_drained's tries of the fixes left at shutdown … */
    double drain_settle_t0;      /* … and when the first began */
    atomic_uint_fast64_t steps_trained;   /* for /metrics: metric rows committed */
    atomic_uint_fast64_t samples_trained; /* those steps × train_batch_size */
    atomic_uint_fast64_t ckpt_bytes;      /* total bytes checkpointed */
    atomic_uint_fast64_t ckpt_count;
    atomic_uint_fast64_t ckpt_usec;       /* total time spent committing checkpoints */
    atomic_uint_fast64_t preemptions;     /* runs paused for a job of higher priority */
    atomic_uint_fast64_t restarts;        /* runs restarted after a stall */
    atomic_uint_fast64_t stall_failures;  /* jobs failed after max_restarts stalls */
    int nworkers;                         /* workers that take jobs (set by the wiring) */
    job_sink sink;                        /* where events go (set by the wiring) */
    workq tasks;                          /* the state thread (jobs/jobtask.c) */
    int tasks_out;                        /* state writes not yet answered (loop thread) */
    char task_db[4096];                   /* the store the state thread opens */
} jobmgr;

/* What the manager knows about a job beyond its row (a copy, readable on any thread). */
typedef struct job_overlay_item {
    char id[STORE_ID_LEN];
    int has_fix;
    store_job_state fix_state;
    char fix_error[512];
    int has_snap;
    job_snap snap;
} job_overlay_item;

/* A queued job's place, as a list's answer fixed it (jobs/qorder.c). */
typedef struct job_place {
    int64_t seq;                 /* the job's number (job_run.seq) */
    size_t pos;                  /* 1 = the next a worker takes */
} job_place;

typedef struct job_overlay {
    job_overlay_item *items;
    size_t n;
    /* A queued job's place is asked of the manager itself (under its mutex, from the thread
       that makes the JSON: jobs/qorder.c), not copied: a copy costs the queue's length. */
    struct jobmgr *mgr;
    /* the change the answer's own request makes once answered (jobs_queue_place_at) */
    int moved, move_add, move_priority;
    int64_t move_seq;
    /* the places of a list's jobs, all of one moment (jobs_queue_fix): sorted by seq */
    int fixed;
    job_place *places;
    size_t nplaces, fixed_len;
} job_overlay;

/* Loop thread. */
int jobs_init(jobmgr *m, struct service *d);

/* The final state of job `id` the store has not taken yet, or NULL (loop thread). */
job_fix *jobs_find_fix(jobmgr *m, const char *id);

/* Copies the overlay of every job this process works on (loop thread), so that a job's JSON
 * can be made off the loop (api/jobjson.h, any thread): O(runs workers hold + fixes), however
 * long the queue. */
int jobs_overlay_capture(jobmgr *m, job_overlay *out);
void jobs_overlay_free(job_overlay *o);

/* Job `id`'s place in the queue (1 = the next a worker takes) into *pos and the queue's length
 * into *len: 1, or 0 when it is not queued. The runs a worker has taken but not yet started
 * (waiting for memory) count first. Any thread but the loop holding the manager mutex; takes
 * it (and each taken run's mutex inside it). O(log n + workers) for a queue of n jobs; with
 * jobs_queue_fix made before, a look-up in its places. */
int jobs_queue_place(job_overlay *o, const char *id, size_t *pos, size_t *len);

/* Fixes the places of jobs ids[0..n) at one moment (one hold of the manager mutex), so that
 * every job of a list shows the same moment's places: 0 or -ENOMEM. Any thread. */
int jobs_queue_fix(job_overlay *o, const char *const *ids, size_t n);

/* The answer made with o shows job `id` at the place priority `priority` gives it, as
 * jobs_sched_reprioritize will once the request is answered (a taken job stays where it is);
 * `add`: a job not queued yet joins (a new job, queued once answered). Always 0 (kept an int
 * for its callers). Any thread. */
int jobs_queue_place_at(job_overlay *o, const char *id, int priority, int add);

/* The run at the head of the queue (the next a worker takes), or NULL (takes the mutex). */
job_run *jobs_queue_head(jobmgr *m);
void jobs_close(jobmgr *m);

/* Restart recovery: running jobs become queued and every queued job is enqueued, oldest
 * first. */
int jobs_recover(jobmgr *m, an_err *err);

/* Enqueues an already-queued job (in the store) for the workers. js: its scheduling numbers,
 * read off the loop thread (store_job_sched_get; a failed read leaves them at their
 * defaults). NULL reads them here, on the loop's connection: only the start's recovery does,
 * before the daemon serves, because the loop thread reads no store while it serves. */
int jobs_enqueue(jobmgr *m, const char *id, const store_job_sched *js);

/* The same in two halves, so that a path which must not fail once its job is stored (a
 * submit, a sweep's trial) takes the memory first, on its request thread: jobs_run_new
 * allocates a run (any thread; NULL without memory; jobs_run_free discards it), and
 * jobs_enqueue_run queues it (loop thread; takes r, and cannot fail). */
job_run *jobs_run_new(const char *id);
void jobs_enqueue_run(jobmgr *m, job_run *r, const store_job_sched *js);

/* Frees a run that is in no list (any thread). */
void jobs_run_free(job_run *r);

/* The live run of a job, or NULL. */
job_run *jobs_find(jobmgr *m, const char *id);

/* Called on the loop thread when workers wake it: emits events, answers waiting requests,
 * frees finished runs. */
void jobs_poll(jobmgr *m);

/* The transitions of API.md (loop thread). Each returns 0 with the outcome in *out, decided
 * from memory (an unknown state the store has not taken yet, a resume of a job a worker
 * still holds, a full state queue), or 1 when `w` waits: for the worker that holds the job
 * and has been asked to stop, or for the state thread that writes the new state
 * (jobs/jobtask.c). w->done then gets the outcome on the loop thread. The loop never waits
 * for the store's write lock. */
int jobs_pause(jobmgr *m, const char *id, job_waiter *w, job_outcome *out);
int jobs_cancel(jobmgr *m, const char *id, job_waiter *w, job_outcome *out);
int jobs_resume(jobmgr *m, const char *id, job_waiter *w, job_outcome *out);

/* The state thread (jobs/jobtask.c): started once the store exists, with the loop's handle
 * that runs jobs_tasks_complete; stopped (after jobs_idle) at shutdown, or by jobs_close. */
int jobs_tasks_start(jobmgr *m, const char *db, uv_async_t *wake);
void jobs_tasks_complete(jobmgr *m);
void jobs_tasks_stop(jobmgr *m);

/* Delete, in two halves so the store's work runs off the loop: jobs_delete_check (loop
 * thread) refuses a job a worker still holds (JOB_CONFLICT), unless the worker has finished
 * it and is only letting go: then `w` is hung on the run, answered when it has, and 1 is
 * returned; jobs_delete_store (any thread, its own store connection) deletes a finished job;
 * jobs_deleted (loop thread) then lets the job's streams and cached models go. */
int jobs_delete_check(jobmgr *m, const char *id, job_waiter *w, job_outcome *out);
void jobs_delete_store(store_t *s, const char *id, job_outcome *out);
void jobs_deleted(jobmgr *m, const char *id);

/* Cancels a job without a request waiting (a sweep's trials): a queued or paused job through
 * the state thread, a running one by asking its worker. 1: its `state` event follows (unless
 * the job had ended meanwhile); 0 when no run holds it and nothing could be queued for it;
 * negative: the state thread refused the work (-EAGAIN full, -ENOMEM). */
int jobs_cancel_nowait(jobmgr *m, const char *id);

/* Publishes a `state` event for a job. */
void jobs_emit_state(jobmgr *m, const char *id, const char *state, const char *error);

/* Asks every run to stop for a restart (checkpoint, back to queued). */
void jobs_shutdown(jobmgr *m);

/* 1 when no run is left (after jobs_shutdown: every worker has reported) and no state write
 * is waiting for the store. */
int jobs_idle(jobmgr *m);

/* While the daemon drains (after jobs_shutdown), called on every tick: once jobs_idle holds,
 * the final states the store still owes (fixes) are tried again, a few times at most, so a
 * pause or cancel recorded late is not lost with the process. 1 when the daemon may stop;
 * the fixes still left then are logged (the store keeps the job's earlier state). */
int jobs_drained(jobmgr *m);

/* Worker side: blocks until a run is available (returns it, taken) or quit (NULL). */
job_run *jobs_take(jobmgr *m);

/* Worker side: the run is done; wakes the loop. */
void jobs_done(jobmgr *m, job_run *run);

/* Worker side: wakes the loop (rate-limited by the caller). */
void jobs_wake(jobmgr *m);

/* Tries again to store the final states the store refused (a full disk): hands each write
 * to the state thread (one at a time per job), and each becomes the job's state once a write
 * succeeds. Called from the housekeeping timer and before a transition reads a job's state.
 * Returns how many are still pending, the writes on their way included. */
int jobs_settle(jobmgr *m);

/* How many jobs have a state the store has not recorded yet (the loop's count; /healthz);
 * *requeued (may be NULL) gets how many of them a restart queued again while the store still
 * says running. */
int jobs_unrecorded(const jobmgr *m, int *requeued);

/* Scheduling (jobs/jobsched.c). */

/* Sets the run's priority, preemptibility and stall limits from js (its stored spec's
 * numbers: store_job_sched_get), the defaults where js has none. */
void jobs_sched_apply(job_run *r, const store_job_sched *js);

/* The numbers a run was queued with, to queue it again (js as jobs_enqueue takes it). */
void jobs_sched_of(const job_run *r, store_job_sched *js);

/* store_job_sched_get, with the defaults (JOBS_SCHED_DEFAULTS) when the job cannot be read. */
void jobs_sched_read(store_t *s, const char *id, store_job_sched *js);
extern const store_job_sched JOBS_SCHED_DEFAULTS;

/* A job's number (job_run.seq) from its id ("j_000042": 42). */
int64_t jobs_seq_of(const char *id);

/* 1 when a job of priority pa and number sa goes before one of pb, sb: the queue's order,
 * higher priority first, then the older (smaller number). */
int jobs_sched_ahead(int pa, int64_t sa, int pb, int64_t sb);

/* Puts a run into the queue by priority (higher first, then oldest first). Call with the
 * manager mutex held. */
void jobs_sched_insert(jobmgr *m, job_run *r);

/* Preempts the lowest-priority preemptible running job when every worker is busy and a job
 * of higher priority waits (loop thread). */
void jobs_sched_preempt(jobmgr *m);

/* The watchdog: asks a run that made no step for its stall_timeout_s to stop for a restart
 * (loop thread, from the housekeeping timer). */
void jobs_watchdog(jobmgr *m);

/* A run let go of for a preemption or a stall: queues the job again (or fails it after
 * max_restarts stalls). Returns 1 when it handled the run (the caller then only frees it).
 * Loop thread. */
int jobs_sched_requeue(jobmgr *m, job_run *r, const job_snap *s);

/* A new priority of a job (PATCH): moves a queued run to its place. Loop thread. It is also
 * kept a while (jobs_sched_patched) for a job that has no run now but may be queued soon
 * from numbers read before the PATCH landed: a resume's, read on the state thread. */
void jobs_sched_reprioritize(jobmgr *m, const char *id, int priority);

/* The priority PATCH gave job `id` lately, into *priority: 1, or 0 when none. Loop thread. */
int jobs_sched_patched(jobmgr *m, const char *id, int *priority);

/* Queued runs by priority, for /metrics: up to `max` distinct priorities (highest first)
 * into prio[]/count[]; returns how many. */
int jobs_queue_by_priority(jobmgr *m, int *prio, int *count, int max);

/* The watchdog's test hook (worker side): with ANNEALD_FAULT containing "hang", a job named
 * "hang-at-N" makes no step once it has done N: jobs_hang_step returns N (-1 for any other
 * job) and jobs_hang waits until the run is asked to stop. A job named "hang-once-at-N" (a
 * sweep's trials of a sweep so named too) holds only a run that started before step N
 * (`start`), so that it can be paused there and resumed past it. */
int64_t jobs_hang_step(const char *name, int64_t start);
void jobs_hang(job_run *run);

/* Counts of runs queued and running (loop thread). */
void jobs_counts(jobmgr *m, int *queued, int *running);

#endif
