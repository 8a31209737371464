/* sweep_launch — a sweep's trial started as a job: made on a request thread (the loop thread
 * never writes), then queued for the workers on the loop; a job made for a sweep that went
 * meanwhile is taken back the same way (see sweeps.h). */
#include "jobs/sweeps.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/service.h"
#include "jobs/submit.h"
#include "store/sweeps.h"
#include "util/log.h"

/* Why a trial cannot run, "field: message". */
static void error_text(const an_err *e, char buf[800])
{
    snprintf(buf, 800, "%s%s%s", e->field, e->field[0] ? ": " : "", e->message);
}

/* Trial t keeps it in memory too, for the answers until the store has it (out of memory: the
 * message is lost, not the trial's end). */
static void trial_error(sweep_trial *t, const an_err *e)
{
    char buf[800];
    error_text(e, buf);
    free(t->error);
    t->error = strdup(buf);
}

typedef struct launch {
    sweeps *w;
    char sweep[STORE_ID_LEN];
    int trial;
    cJSON *spec;                 /* taken by job_submit (NULL: the trial's values could not
                                    be set, and out says why) */
    submit_outcome out;
    store_job_sched sched;       /* the job's, for the queue */
    job_run *run;                /* its run, for the queue (taken before: queueing cannot fail) */
    struct launch *next;         /* in undo_wait */
    struct launch *out_prev, *out_next; /* in sweeps.launches until launch_after */
} launch;

/* Launches out on the request queue: a queue stopped meanwhile runs their work but calls no
 * launch_after, and sweeps_free frees them. */
static void out_link(sweeps *w, launch *l)
{
    l->out_prev = NULL;
    l->out_next = w->launches;
    if (w->launches)
        w->launches->out_prev = l;
    w->launches = l;
}

static void out_unlink(sweeps *w, launch *l)
{
    if (l->out_prev)
        l->out_prev->out_next = l->out_next;
    else
        w->launches = l->out_next;
    if (l->out_next)
        l->out_next->out_prev = l->out_prev;
}

int sweeps_launches_out(const sweeps *w)
{
    int n = 0;
    for (const launch *l = w->launches; l; l = l->out_next)
        n++;
    return n;
}

static void launch_free(launch *l)
{
    if (l->run)
        jobs_run_free(l->run);
    free(l);
}

static void launch_work(void *arg)
{
    launch *l = arg;
    submit_link link = {l->sweep, l->trial};
    uv_mutex_lock(&l->w->dbmu);
    if (l->spec && job_submit(&l->w->db, l->w->d->opts, l->spec, &link, &l->out) == SUBMIT_OK) {
        jobs_sched_read(&l->w->db, l->out.id, &l->sched);
        if (!(l->run = jobs_run_new(l->out.id))) {
            job_submit_undo(&l->w->db, l->out.id);
            l->out.kind = SUBMIT_NOMEM;
            l->out.nerr = 1;
            an_fail(&l->out.errs[0], NULL, "out of memory queueing its job");
        }
    } else if (l->out.kind == SUBMIT_INVALID || l->out.kind == SUBMIT_UNPROCESSABLE) {
        /* The trial will never start: why is stored with the sweep, as it has no job to keep
         * it (a sweep read after a restart still says why). Unrecorded, it is kept in memory
         * (launch_after) and lost at the next start. */
        char text[800];
        an_err e;
        error_text(&l->out.errs[0], text);
        if (store_sweep_trial_error_set(&l->w->db, l->sweep, l->trial, text, &e) != 0)
            util_log(LOG_WARN, "sweep %s: why trial %d cannot run is not recorded: %s",
                     l->sweep, l->trial, e.message);
    }
    uv_mutex_unlock(&l->w->dbmu);
    l->spec = NULL;
}

/* A trial's job made for nothing (its sweep was cancelled or deleted meanwhile) is taken back
 * on a request thread, as it was made: the loop thread never writes (at a stop, the workers'
 * last checkpoints hold the write lock). */
static void undo_work(void *arg)
{
    launch *l = arg;
    uv_mutex_lock(&l->w->dbmu);
    job_submit_undo(&l->w->db, l->out.id);
    uv_mutex_unlock(&l->w->dbmu);
    launch_free(l);
}

static void undo_after(void *arg)
{
    (void)arg; /* undo_work freed it: a queue stopped meanwhile calls no after */
}

/* Takes l. A full request queue refuses it: it waits in undo_wait for the next pump. */
static void undo_job(sweeps *w, launch *l)
{
    if (w->d->phase != PHASE_CLOSING && /* the queue is stopped */
        workq_push(&w->d->quick, undo_work, undo_after, l) == 0)
        return;
    l->next = w->undo_wait;
    w->undo_wait = l;
}

void sweeps_undo_retry(sweeps *w)
{
    launch *l = w->undo_wait;
    w->undo_wait = NULL;
    while (l) {
        launch *next = l->next;
        l->next = NULL;
        undo_job(w, l);
        l = next;
    }
}

/* Jobs still to take back, which a full request queue refused until the end: done at
 * sweeps_free, once nothing else writes, or they would run at the next start. */
void sweeps_undo_drain(sweeps *w)
{
    while (w->launches) { /* their work ran: a job it stored waits for the next start */
        launch *l = w->launches;
        out_unlink(w, l);
        launch_free(l);
    }
    while (w->undo_wait) {
        launch *l = w->undo_wait;
        w->undo_wait = l->next;
        if (w->db_open)
            job_submit_undo(&w->db, l->out.id);
        launch_free(l);
    }
}

static void launch_after(void *arg)
{
    launch *l = arg;
    sweeps *w = l->w;
    out_unlink(w, l);
    service *d = w->d;
    sweep_run *r = sweeps_find_run(w, l->sweep);
    sweep_trial *t = r ? &r->trials[l->trial] : NULL;
    if (!t || t->state != TRIAL_LAUNCHING) {
        /* The sweep went away meanwhile (deleted): a job made for it goes too. */
        if (l->out.kind == SUBMIT_OK)
            undo_job(w, l);
        else
            launch_free(l);
        return;
    }
    if (l->out.kind == SUBMIT_OK) {
        if (r->cancelled) {
            t->state = TRIAL_ENDED;
            sweeps_check_done(w, r);
            undo_job(w, l);
            return;
        }
        /* The trial knows its job before a worker can take it: the worker asks for its rungs
         * as it starts. */
        uv_mutex_lock(&w->mu);
        snprintf(t->job, sizeof t->job, "%s", l->out.id);
        t->state = TRIAL_ACTIVE;
        free(t->error); /* a retried trial's last error: the store dropped it with the link */
        t->error = NULL;
        uv_mutex_unlock(&w->mu);
        if (d->phase == PHASE_SERVING) {
            jobs_enqueue_run(&d->jobs, l->run, &l->sched);
            l->run = NULL;
            sweeps_emit(w, r, "trial_started", l->trial);
            jobs_emit_state(&d->jobs, t->job, "queued", NULL);
        }
        /* else stopping: the job stays queued in the store, and the next start queues it and
         * finds it as this trial's (load_run). */
    } else if (l->out.kind == SUBMIT_INVALID || l->out.kind == SUBMIT_UNPROCESSABLE) {
        /* This trial's values make a job that cannot run: say why, go on with the next. */
        const an_err *e = &l->out.errs[0];
        trial_error(t, e);
        t->state = TRIAL_ENDED;
        util_log(LOG_WARN, "sweep %s: trial %d cannot run: %s", r->id, l->trial,
                 t->error ? t->error : e->message);
        sweeps_emit(w, r, "trial_failed", l->trial);
        launch_free(l);
        sweeps_check_done(w, r);
        sweeps_pump(w); /* its place goes to the next trial now, not at the next tick */
        return;
    } else {
        /* The store or memory: tried again by the next pump. */
        t->state = TRIAL_PENDING;
        util_log(LOG_WARN, "sweep %s: trial %d not started yet: %s", r->id, l->trial,
                   l->out.errs[0].message);
    }
    launch_free(l);
    sweeps_check_done(w, r);
}

/* Queues the start of trial k (its job made on a request thread). */
int sweeps_launch_trial(sweeps *w, sweep_run *r, int k)
{
    launch *l = calloc(1, sizeof *l);
    if (!l)
        return -ENOMEM;
    l->w = w;
    snprintf(l->sweep, sizeof l->sweep, "%s", r->id);
    l->trial = k;
    cJSON *params = cJSON_GetArrayItem(r->params, k);
    if (sweep_apply(r->spec.base, params, &l->spec, &l->out.errs[0]) != 0) {
        /* goes through the queue all the same: its error is recorded there */
        l->spec = NULL;
        l->out.kind = SUBMIT_INVALID;
        l->out.nerr = 1;
    } else {
        /* Trials are told apart by name in lists: "<sweep name> #k". */
        char name[sizeof r->spec.name + 16];
        snprintf(name, sizeof name, "%s #%d", r->spec.name[0] ? r->spec.name : r->id, k);
        cJSON_DeleteItemFromObjectCaseSensitive(l->spec, "name");
        cJSON_AddStringToObject(l->spec, "name", name);
    }
    int rc = workq_push(&w->d->quick, launch_work, launch_after, l);
    if (rc) {
        cJSON_Delete(l->spec);
        free(l);
        return rc;
    }
    out_link(w, l);
    r->trials[k].state = TRIAL_LAUNCHING;
    return 0;
}

