/* sweeps — the sweeps this process drives: which trial starts next, and ASHA's decisions.
 *
 * A sweep (core/sweep.h) proposes its trials when it is made; they are stored with it. This
 * module starts them as ordinary jobs, at most max_concurrent queued or running at once, in
 * trial order, and starts the next whenever one ends (any final state; a trial the user
 * pauses frees its place too, and takes one again when resumed: sweeps_resume_hold). The
 * sweep is completed once every trial has been started and none is queued or running;
 * cancelling it cancels its queued and running trials and starts no more.
 *
 * ASHA runs inside the workers: a trial's worker asks for its rungs when it starts and, at
 * each rung step, reports the trial's metric there; the decision (core/sweep.h's rule over
 * every trial that reached that rung before) is recorded in the store before it is returned,
 * and a stopped trial ends `stopped` with a checkpoint at the rung, so resuming it continues
 * from there. The metric at a rung is the step's training loss for "loss", and the latest
 * validation at or before the rung for "val_loss"/"val_acc" (none yet: NaN, ranked last).
 *
 * Threads: the list of sweeps and every trial's state change on the loop thread, under `mu`
 * because workers read them; the rung records and the module's own store connection are
 * used by workers and by the request threads that start trials, under `mu` as well. */
#ifndef ANNEALD_SWEEPS_H
#define ANNEALD_SWEEPS_H

#include <stdint.h>

#include <uv.h>

#include "core/sweep.h"
#include "store/sweeps.h"

struct service;

/* RESUMING: ended, with a resume on its way to the store; it holds its place among
 * max_concurrent meanwhile. */
enum trial_state { TRIAL_PENDING, TRIAL_LAUNCHING, TRIAL_ACTIVE, TRIAL_ENDED, TRIAL_RESUMING };

typedef struct sweep_trial {
    int state;                   /* enum trial_state */
    char job[STORE_ID_LEN];      /* its job once started */
    int resumable;               /* its job was last seen paused, failed or stopped: a resume
                                    of it may land, and takes a place (sweeps_resume_hold) */
    char *error;                 /* why it could not be started (NULL = it was): most trials
                                    have none, and a sweep stays in memory while the daemon
                                    runs, so it is not kept inline */
} sweep_trial;

typedef struct sweep_run {
    char id[STORE_ID_LEN];
    sweep_spec spec;
    cJSON *params;               /* the trials' parameters: an array, trial k at k */
    int ntrials;
    sweep_trial *trials;
    int next;                    /* the next trial to start */
    int cancelled;
    int done;                    /* completed or cancelled: nothing more to start */
    store_sweep_rung *rungs;     /* the decisions taken, in order (mu) */
    size_t nrungs, cap;
    struct sweep_run *next_run;
} sweep_run;

/* What a `sweep` event says (API.md): the sweep's id, what happened ("started", a trial's
 * "trial_started", "completed", …), its state, the trial concerned (-1: none) and its job
 * ("" not started), and the counts. */
typedef struct sweep_event {
    const char *id, *event, *state;
    int trial;
    const char *job;
    int trials, trials_started, trials_active;
} sweep_event;

/* Where sweep events go (loop thread): the wiring points it at the SSE hub. */
typedef struct sweep_sink {
    void *ctx;
    void (*event)(void *ctx, const sweep_event *ev);
} sweep_sink;

typedef struct sweeps {
    struct service *d;
    sweep_sink sink;             /* set by the wiring */
    /* mu guards the runs and their trials, and is held only for memory work, so the loop
     * thread never waits behind a store write for it; dbmu guards db, whose writes can wait
     * for the write lock (a worker's checkpoint). Order: mu before dbmu. */
    uv_mutex_t mu, dbmu;
    store_t db;                  /* this module's connection (dbmu) */
    int db_open;
    sweep_run *list;
    struct state_save *save_wait, *save_wait_tail; /* sweep states still to hand to the
                                    request queue, oldest first (loop thread) */
    struct state_save *save_out; /* the one the queue has */
    struct launch *launches;     /* trials' launches the queue has */
    struct launch *undo_wait;    /* trials' jobs to take back that a full request queue
                                    refused: tried again by each pump (loop thread) */
} sweeps;

int sweeps_init(sweeps *w, struct service *d);
void sweeps_free(sweeps *w);

/* Loads the sweeps to drive from the store (start-up, before the workers start): the running
 * ones, and the ended ones with a trial that is queued, running, paused, failed or stopped
 * (one resumed later is judged at its later rungs and counts against max_concurrent). */
int sweeps_recover(sweeps *w, an_err *err);

/* A sweep just stored, read back for driving (any thread, with that thread's store); then
 * sweeps_adopt (loop thread) starts driving it, or sweeps_drop frees it. */
int sweeps_load(store_t *st, const char *id, sweep_run **out, an_err *err);
void sweeps_adopt(sweeps *w, sweep_run *r);
void sweeps_drop(sweep_run *r);

/* Forgets a deleted sweep (loop thread). */
void sweeps_forget(sweeps *w, const char *id);

/* Copies the trials' start errors of a sweep this process drives (loop thread): a malloc'd
 * array of ntrials strings of 800 bytes, NULL when it is not driven here. A trial waiting to
 * start again after a retry (sweeps_retry) has none here: it may start yet. */
char (*sweeps_trial_errors(sweeps *w, const char *id, int *ntrials))[800];

/* Starts the trials that have room (loop thread). */
void sweeps_pump(sweeps *w);

/* A job changed state (loop thread; every `state` event passes here). */
void sweeps_job_state(sweeps *w, const char *job, const char *state);

/* A resume of job `job` asked for (loop thread), before the job manager writes it: a trial
 * of a sweep driven here takes a place among its max_concurrent, or is refused when none is
 * free (-EBUSY) or a resume of it is on its way already (-EALREADY), *why saying so. 1: the
 * place is held (TRIAL_RESUMING) until the job is queued (sweeps_job_state), or the resume
 * fails and sweeps_resume_undo gives it back; 0: not a trial to hold a place for (none
 * here, or one whose job is queued, running, completed or cancelled: the job manager answers). */
int sweeps_resume_hold(sweeps *w, const char *job, char *why, size_t n);
void sweeps_resume_undo(sweeps *w, const char *job);

/* A retry of the trials that could not start (POST /v1/sweeps/{id}/retry). First, on the
 * loop thread, sweeps_retry_count: how many trials of sweep `id` driven here could not start,
 * -ENOENT when it is not driven here, -ECANCELED for a sweep cancelled here. Then the store
 * records the retry (store_sweep_retry, off the loop) and, back on the loop, sweeps_retry
 * makes those trials pending again, to start under max_concurrent in trial order (each keeps
 * its error until it starts); a completed sweep runs again (the `running` event). `made`:
 * the sweep read back from the store when it was not driven here (taken; dropped if it is
 * driven meanwhile), with `reopened` saying whether the store had it completed. */
int sweeps_retry_count(sweeps *w, const char *id);
void sweeps_retry(sweeps *w, const char *id, sweep_run *made, int reopened);

/* Cancels a sweep (loop thread): no trial starts any more; the ids of its queued and running
 * trials, and of those being resumed, are returned (malloc'd, *n of them) for the caller to
 * cancel. -ENOENT when this process does not drive it (unknown, or already completed or
 * cancelled). */
int sweeps_cancel(sweeps *w, const char *id, char (**jobs)[STORE_ID_LEN], size_t *n);

/* The sweep of this id, and the sweep and trial of a job (mu held, or the loop thread): for
 * this module's files (jobs/sweeps.c, jobs/sweep_asha.c, jobs/sweep_launch.c). */
sweep_run *sweeps_find_run(sweeps *w, const char *id);
sweep_run *sweeps_find_trial(sweeps *w, const char *job, int *trial);

/* This module's own, on the loop thread: a `sweep` event of run r (trial -1: none); a sweep
 * with nothing left to start and nothing queued or running becomes completed; trial k's
 * launch handed to the request queue (non-zero: the queue is full, tried again by the next
 * pump), and how many launches the queue has; the trials' jobs to take back that a full queue refused, tried again, or (at the
 * end, once nothing else writes) taken back here. */
void sweeps_emit(sweeps *w, const sweep_run *r, const char *what, int trial);
void sweeps_check_done(sweeps *w, sweep_run *r);
int sweeps_launch_trial(sweeps *w, sweep_run *r, int k);
int sweeps_launches_out(const sweeps *w);
void sweeps_undo_retry(sweeps *w);
void sweeps_undo_drain(sweeps *w);

/* A sweep's state recorded on a request thread (jobs/sweep_save.c), one out at a time so
 * that states land in order; a full request queue keeps it (and every later one) for the
 * next sweeps_save_retry (each pump): the loop thread never writes. sweeps_save_drain writes
 * what is left at the end (sweeps_free), once nothing else writes. */
void sweeps_save_state(sweeps *w, const char *id, const char *state);
void sweeps_save_retry(sweeps *w);
void sweeps_save_drain(sweeps *w);

/* Worker: the rungs of job `job` if it is a trial of an ASHA sweep (0 otherwise). */
int sweeps_trial_rungs(sweeps *w, const char *job, int64_t total_steps, int64_t *rungs,
                       int max);

/* Worker: job `job` reached rung `step` with this training loss and latest validation (NAN:
 * none yet); the sweep's metric is taken from them. 1 = it goes on, 0 = it stops. */
int sweeps_rung_reached(sweeps *w, const char *job, int64_t step, double loss, double val_loss,
                        double val_acc);

/* The sweep's metric of a trial from its job object: val_loss, val_acc or loss (NAN when
 * null). */
double sweeps_metric_of(const sweep_spec *s, const cJSON *job);

#endif
