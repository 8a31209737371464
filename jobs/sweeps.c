/* sweeps — the sweeps driven here: which trial starts next, and what their jobs' states mean
 * for them (see sweeps.h; the start itself is sweep_launch.c, ASHA sweep_asha.c). */
#include "jobs/sweeps.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/service.h"
#include "jobs/submit.h"
#include "store/walcopy.h"
#include "util/log.h"

int sweeps_init(sweeps *w, struct service *d)
{
    memset(w, 0, sizeof *w);
    w->d = d;
    if (uv_mutex_init(&w->mu) != 0)
        return -ENOMEM;
    if (uv_mutex_init(&w->dbmu) != 0) {
        uv_mutex_destroy(&w->mu);
        return -ENOMEM;
    }
    an_err e;
    if (store_open(&w->db, d->opts->db, &e) != 0) {
        uv_mutex_destroy(&w->dbmu);
        uv_mutex_destroy(&w->mu);
        util_log(LOG_ERROR, "sweeps: cannot open the store: %s", e.message);
        return -EIO;
    }
    store_wal_copy_mode(&w->db, STORE_WAL_NEVER); /* small writes: housekeeping copies */
    if (store_durable(&w->db, 1, &e) != 0) /* a sweep's trials and decisions are acknowledged */
        util_log(LOG_WARN, "sweeps: commits are not synced: %s", e.message);
    w->db_open = 1;
    return 0;
}

static void run_free(sweep_run *r)
{
    sweep_free(&r->spec);
    cJSON_Delete(r->params);
    for (int k = 0; r->trials && k < r->ntrials; k++)
        free(r->trials[k].error);
    free(r->trials);
    free(r->rungs);
    free(r);
}

void sweeps_free(sweeps *w)
{
    sweeps_save_drain(w);
    sweeps_undo_drain(w);
    sweep_run *r = w->list;
    while (r) {
        sweep_run *next = r->next_run;
        run_free(r);
        r = next;
    }
    w->list = NULL;
    if (w->db_open)
        store_close(&w->db);
    w->db_open = 0;
    uv_mutex_destroy(&w->dbmu);
    uv_mutex_destroy(&w->mu);
}

sweep_run *sweeps_find_run(sweeps *w, const char *id)
{
    for (sweep_run *r = w->list; r; r = r->next_run)
        if (strcmp(r->id, id) == 0)
            return r;
    return NULL;
}

sweep_run *sweeps_find_trial(sweeps *w, const char *job, int *trial)
{
    for (sweep_run *r = w->list; r; r = r->next_run)
        for (int k = 0; k < r->ntrials; k++)
            if (r->trials[k].job[0] && strcmp(r->trials[k].job, job) == 0) {
                *trial = k;
                return r;
            }
    return NULL;
}

/* Builds a run from a stored sweep: its spec, its trials' parameters, the jobs of the trials
 * started so far and the rung decisions taken. */
static int load_run(store_t *st, const store_sweep *row, sweep_run **out, an_err *err)
{
    sweep_run *r = calloc(1, sizeof *r);
    if (!r)
        return an_failc(err, -ENOMEM, NULL, "out of memory");
    snprintf(r->id, sizeof r->id, "%s", row->id);
    /* An ended sweep is driven for its trials that may run again: ASHA judges them at their
     * later rungs, and max_concurrent holds when they are resumed; it starts no trial. */
    r->cancelled = strcmp(row->state, "cancelled") == 0;
    r->done = strcmp(row->state, "running") != 0;
    cJSON *body = cJSON_Parse(row->spec_json);
    int rc = body ? sweep_parse_stored(body, &r->spec, err)
                  : an_failc(err, -EINVAL, NULL, "sweep %s: its stored body is not JSON", row->id);
    cJSON_Delete(body);
    r->params = rc ? NULL : cJSON_Parse(row->trials_json);
    r->ntrials = r->params ? cJSON_GetArraySize(r->params) : 0;
    if (!rc && (!r->params || r->ntrials != row->ntrials))
        rc = an_failc(err, -EINVAL, NULL, "sweep %s: its stored trials are damaged", row->id);
    if (!rc && !(r->trials = calloc((size_t)r->ntrials, sizeof *r->trials)))
        rc = an_failc(err, -ENOMEM, NULL, "out of memory");
    store_job *jobs = NULL;
    size_t n = 0;
    if (!rc)
        rc = store_sweep_jobs(st, row->id, &jobs, &n, err);
    for (size_t i = 0; !rc && i < n; i++) {
        if (jobs[i].trial < 0 || jobs[i].trial >= r->ntrials)
            continue;
        sweep_trial *t = &r->trials[jobs[i].trial];
        snprintf(t->job, sizeof t->job, "%s", jobs[i].id);
        t->state = jobs[i].state == STORE_QUEUED || jobs[i].state == STORE_RUNNING
                       ? TRIAL_ACTIVE : TRIAL_ENDED;
        t->resumable = jobs[i].state == STORE_PAUSED || jobs[i].state == STORE_FAILED ||
                       jobs[i].state == STORE_STOPPED;
    }
    store_job_list_free(jobs, n);
    /* A trial that could not start is ended, with why, unless a retry of it was asked for
     * (sweeps_retry): then it waits to start again, its error saying why it last could not. */
    char **errors = NULL;
    int *retry = NULL;
    if (!rc)
        rc = store_sweep_trial_errors(st, row->id, r->ntrials, &errors, &retry, err);
    for (int k = 0; !rc && k < r->ntrials; k++)
        if (errors[k] && !r->trials[k].job[0]) {
            r->trials[k].state = retry[k] ? TRIAL_PENDING : TRIAL_ENDED;
            r->trials[k].error = errors[k];
            errors[k] = NULL;
        }
    store_sweep_trial_errors_free(errors, r->ntrials);
    free(retry);
    if (!rc)
        rc = store_sweep_rungs(st, row->id, &r->rungs, &r->nrungs, err);
    r->cap = r->nrungs;
    if (rc) {
        run_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

static void link_run(sweeps *w, sweep_run *r)
{
    uv_mutex_lock(&w->mu);
    r->next_run = w->list;
    w->list = r;
    uv_mutex_unlock(&w->mu);
}

int sweeps_recover(sweeps *w, an_err *err)
{
    store_sweep *rows = NULL;
    size_t n = 0;
    int rc = store_sweep_list(&w->db, 1, &rows, &n, err);
    for (size_t i = 0; !rc && i < n; i++) {
        sweep_run *r;
        an_err e;
        an_err_clear(&e);
        if (load_run(&w->db, &rows[i], &r, &e) != 0) {
            util_log(LOG_ERROR, "sweep %s is not driven: %s", rows[i].id, e.message);
            continue;
        }
        link_run(w, r);
    }
    store_sweep_list_free(rows, n);
    return rc;
}

int sweeps_load(store_t *st, const char *id, sweep_run **out, an_err *err)
{
    store_sweep row;
    int rc = store_sweep_get(st, id, &row, err);
    if (rc)
        return rc;
    rc = load_run(st, &row, out, err);
    store_sweep_free(&row);
    return rc;
}

void sweeps_adopt(sweeps *w, sweep_run *r)
{
    link_run(w, r);
    sweeps_pump(w);
}

void sweeps_drop(sweep_run *r)
{
    if (r)
        run_free(r);
}

void sweeps_forget(sweeps *w, const char *id)
{
    uv_mutex_lock(&w->mu);
    for (sweep_run **p = &w->list; *p; p = &(*p)->next_run)
        if (strcmp((*p)->id, id) == 0) {
            sweep_run *r = *p;
            *p = r->next_run;
            run_free(r);
            break;
        }
    uv_mutex_unlock(&w->mu);
}

char (*sweeps_trial_errors(sweeps *w, const char *id, int *ntrials))[800]
{
    sweep_run *r = sweeps_find_run(w, id);
    *ntrials = 0;
    if (!r)
        return NULL;
    char (*e)[800] = calloc((size_t)r->ntrials + 1, 800);
    if (!e)
        return NULL;
    for (int k = 0; k < r->ntrials; k++) /* a trial waiting for its retry may start yet */
        if (r->trials[k].error && r->trials[k].state == TRIAL_ENDED)
            snprintf(e[k], 800, "%s", r->trials[k].error);
    *ntrials = r->ntrials;
    return e;
}

/* Reports a `sweep` event through the sink (on the sweep's id, so /v1/events?job=<sweep>
 * follows it). */
void sweeps_emit(sweeps *w, const sweep_run *r, const char *what, int trial)
{
    if (!w->sink.event)
        return;
    sweep_event ev = {.id = r->id, .event = what, .trial = trial, .trials = r->ntrials,
                      .state = r->cancelled ? "cancelled" : r->done ? "completed" : "running",
                      .job = trial >= 0 ? r->trials[trial].job : ""};
    for (int k = 0; k < r->ntrials; k++) {
        ev.trials_started += r->trials[k].state != TRIAL_PENDING;
        ev.trials_active += r->trials[k].state == TRIAL_ACTIVE ||
                            r->trials[k].state == TRIAL_LAUNCHING ||
                            r->trials[k].state == TRIAL_RESUMING;
    }
    w->sink.event(w->sink.ctx, &ev);
}

/* A sweep with nothing left to start and nothing queued or running is completed. */
void sweeps_check_done(sweeps *w, sweep_run *r)
{
    if (r->done)
        return;
    for (int k = 0; k < r->ntrials; k++)
        if (r->trials[k].state != TRIAL_ENDED)
            return;
    r->done = 1;
    sweeps_save_state(w, r->id, "completed");
    sweeps_emit(w, r, "completed", -1);
    util_log(LOG_INFO, "sweep %s completed: %d trials", r->id, r->ntrials);
}

static int busy_of(const sweep_run *r);

void sweeps_pump(sweeps *w)
{
    sweeps_save_retry(w);
    sweeps_undo_retry(w);
    if (w->d->phase != PHASE_SERVING)
        return;
    /* Trials are jobs: they wait (pending) while --max-queued jobs are queued, counting the
     * launches on their way into the queue. */
    int queued = 0, running = 0;
    jobs_counts(&w->d->jobs, &queued, &running);
    int room = w->d->opts->max_queued - queued - sweeps_launches_out(w);
    for (sweep_run *r = w->list; r; r = r->next_run) {
        if (r->done || r->cancelled)
            continue;
        int busy = busy_of(r);
        for (int k = 0; k < r->ntrials && busy < r->spec.max_concurrent && room > 0; k++) {
            if (r->trials[k].state != TRIAL_PENDING)
                continue;
            room--;
            if (sweeps_launch_trial(w, r, k) != 0)
                break; /* the request queue is full: the next pump tries again */
            if (r->trials[k].state == TRIAL_LAUNCHING)
                busy++;
        }
        sweeps_check_done(w, r);
    }
}

void sweeps_job_state(sweeps *w, const char *job, const char *state)
{
    int k;
    sweep_run *r = sweeps_find_trial(w, job, &k);
    if (!r)
        return;
    int active = strcmp(state, "queued") == 0 || strcmp(state, "running") == 0;
    int was = r->trials[k].state;
    uv_mutex_lock(&w->mu);
    r->trials[k].state = active ? TRIAL_ACTIVE : TRIAL_ENDED;
    uv_mutex_unlock(&w->mu);
    r->trials[k].resumable = strcmp(state, "paused") == 0 || strcmp(state, "failed") == 0 ||
                             strcmp(state, "stopped") == 0;
    /* The event says what ended it: ASHA (stopped), a pause (resumable), a failure, or its end
     * (completed, or cancelled: a paused trial's cancel ends it too). */
    if (!active && (was == TRIAL_ACTIVE || strcmp(state, "cancelled") == 0))
        sweeps_emit(w, r, strcmp(state, "stopped") == 0  ? "trial_stopped"
                          : strcmp(state, "paused") == 0 ? "trial_paused"
                          : strcmp(state, "failed") == 0 ? "trial_failed"
                                                         : "trial_ended", k);
    if (active && was != TRIAL_ACTIVE) {
        if (r->done && !r->cancelled) {
            /* A trial resumed after the sweep completed: the sweep runs again until it ends. */
            r->done = 0;
            sweeps_save_state(w, r->id, "running");
            sweeps_emit(w, r, "running", -1);
        }
        sweeps_emit(w, r, "trial_resumed", k);
    }
    sweeps_check_done(w, r);
    sweeps_pump(w);
}

/* Trials that hold a place among max_concurrent. */
static int busy_of(const sweep_run *r)
{
    int busy = 0;
    for (int k = 0; k < r->ntrials; k++)
        busy += r->trials[k].state == TRIAL_ACTIVE || r->trials[k].state == TRIAL_LAUNCHING ||
                r->trials[k].state == TRIAL_RESUMING;
    return busy;
}

int sweeps_resume_hold(sweeps *w, const char *job, char *why, size_t n)
{
    int k;
    sweep_run *r = sweeps_find_trial(w, job, &k);
    /* not a trial here, queued or running, or finished (completed, cancelled): the job
     * manager answers, saying why it cannot be resumed at all */
    if (!r || r->trials[k].state == TRIAL_ACTIVE ||
        (r->trials[k].state == TRIAL_ENDED && !r->trials[k].resumable))
        return 0;
    if (r->trials[k].state == TRIAL_RESUMING) {
        snprintf(why, n, "job %s is being resumed already", job);
        return -EALREADY;
    }
    int busy = busy_of(r);
    if (busy >= r->spec.max_concurrent) {
        snprintf(why, n, "job %s is trial %d of sweep %s, which has %d trial%s queued or "
                 "running, its max_concurrent; resume it once one of them ends (or pause one)",
                 job, k, r->id, busy, busy == 1 ? "" : "s");
        return -EBUSY;
    }
    uv_mutex_lock(&w->mu);
    r->trials[k].state = TRIAL_RESUMING;
    uv_mutex_unlock(&w->mu);
    return 1;
}

void sweeps_resume_undo(sweeps *w, const char *job)
{
    int k;
    sweep_run *r = sweeps_find_trial(w, job, &k);
    if (!r || r->trials[k].state != TRIAL_RESUMING)
        return;
    uv_mutex_lock(&w->mu);
    r->trials[k].state = TRIAL_ENDED;
    uv_mutex_unlock(&w->mu);
    sweeps_pump(w); /* the place it held goes to the next trial */
}

int sweeps_cancel(sweeps *w, const char *id, char (**jobs)[STORE_ID_LEN], size_t *n)
{
    *jobs = NULL;
    *n = 0;
    sweep_run *r = sweeps_find_run(w, id);
    if (!r || r->cancelled || r->done)
        return -ENOENT;
    *jobs = calloc((size_t)r->ntrials + 1, STORE_ID_LEN);
    if (!*jobs)
        return -ENOMEM;
    r->cancelled = 1;
    r->done = 1;
    for (int k = 0; k < r->ntrials; k++) {
        /* a trial being resumed is cancelled too: its cancel lands after the resume */
        if (r->trials[k].state == TRIAL_ACTIVE || r->trials[k].state == TRIAL_RESUMING)
            snprintf((*jobs)[(*n)++], STORE_ID_LEN, "%s", r->trials[k].job);
        if (r->trials[k].state == TRIAL_PENDING)
            r->trials[k].state = TRIAL_ENDED;
    }
    sweeps_emit(w, r, "cancelled", -1); /* the request that cancels records it in the store */
    return 0;
}
