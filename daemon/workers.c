/* workers — the fixed pool of training threads. */
#include "daemon/workers.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/config.h"
#include "core/train.h"
#include "daemon/daemon.h"
#include "daemon/jobs.h"
#include "store/store.h"

#define METRIC_BATCH 4096      /* rows per metrics transaction */
#define METRIC_FLUSH_S 0.25    /* …or this often */
#define WAKE_INTERVAL_S 0.05   /* loop wake-ups at most this often */
#define CLOCK_EVERY_S 20e-6    /* read the clock about this often… */
#define CLOCK_STRIDE_MAX 64    /* …but at least every this many steps */

typedef struct wctx {
    store_t store;
    jobmgr *jobs;
    job_run *run;
    store_metric batch[METRIC_BATCH];
    size_t nbatch;
    /* Validation rows since the last flush: at most one per metric row of the batch, so they
     * never outgrow it, and they land in the batch's transaction. */
    store_val_metric vbatch[METRIC_BATCH];
    size_t nval;
    double time_base;          /* job time of this run's first step (resumed runs go on) */
    double t0;                 /* monotonic start of this run */
    int64_t first_step;        /* steps already done when this run started */
    size_t nstamped;           /* rows of batch whose time is set */
    double t_last;             /* job time given to the last stamped row, seconds */
    double now;                /* monotonic time of the latest clock read, seconds */
    int64_t now_step;          /* the step done at that read */
} wctx;

/* Reads the clock and gives the rows since the previous read their times, spread evenly over
 * the interval. A fast job reads the clock only every few dozen steps (about every
 * CLOCK_EVERY_S): one read costs as much as a whole step of a small model. Returns the
 * monotonic time read. */
static double stamp(wctx *w, int64_t step)
{
    double now = daemon_now();
    double t = w->time_base + (now - w->t0);
    double wall = (double)time(NULL);
    size_t c = w->nbatch - w->nstamped;
    for (size_t k = 1; k <= c; k++) {
        store_metric *m = &w->batch[w->nstamped + k - 1];
        m->time = k == c ? t : w->t_last + (t - w->t_last) * (double)k / (double)c;
        m->wall = wall;
    }
    w->nstamped = w->nbatch;
    w->t_last = t;
    w->now = now;
    w->now_step = step;
    return now;
}

static void progress_of(const train_report *rep, store_progress *p)
{
    memset(p, 0, sizeof *p);
    p->step = rep->step;
    p->epoch = rep->epoch;
    p->loss = rep->loss;
    p->n_lr = rep->ngroups < STORE_MAX_LR ? rep->ngroups : STORE_MAX_LR;
    for (int g = 0; g < p->n_lr; g++)
        p->lr[g] = rep->lr[g];
    p->samples_per_sec = rep->samples_per_sec;
}

static int flush(wctx *w, const train_report *last, an_err *e)
{
    if (w->nbatch == 0)
        return 0;
    if (w->nstamped < w->nbatch)
        stamp(w, last->step);
    store_progress p;
    progress_of(last, &p);
    int rc = store_metrics_append_with_val(&w->store, w->run->id, w->batch, w->nbatch,
                                           w->vbatch, w->nval, &p, e);
    w->nbatch = 0;
    w->nval = 0;
    w->nstamped = 0;
    return rc;
}

static int checkpoint(wctx *w, train *t, const train_report *last, int keep, an_err *e)
{
    double c0 = daemon_now();
    void *blob = NULL;
    size_t len = 0;
    int rc = train_save(t, &blob, &len, e);
    if (rc)
        return rc;
    store_progress p;
    progress_of(last, &p);
    int64_t step = train_steps_done(t);
    rc = store_checkpoint_commit(&w->store, w->run->id, step, last->loss, blob, len, keep,
                                 last->step > 0 ? &p : NULL, e);
    free(blob);
    if (rc)
        return rc;
    atomic_fetch_add(&w->jobs->ckpt_bytes, len);
    atomic_fetch_add(&w->jobs->ckpt_count, 1);
    atomic_fetch_add(&w->jobs->ckpt_usec, (uint64_t)((daemon_now() - c0) * 1e6));
    uv_mutex_lock(&w->run->mu);
    w->run->snap.ckpt_seq++;
    w->run->snap.ckpt_step = step;
    w->run->snap.ckpt_bytes = (int64_t)len;
    uv_mutex_unlock(&w->run->mu);
    return 0;
}

/* Makes `rep` the run's snapshot that the loop thread reads; `now` is the monotonic time. */
static void publish(wctx *w, const train_report *rep, int64_t total, double now)
{
    job_snap *s = &w->run->snap;
    uv_mutex_lock(&w->run->mu);
    s->step = rep->step;
    s->epoch = rep->epoch;
    s->total_steps = total;
    s->loss = rep->loss;
    s->n_lr = rep->ngroups < STORE_MAX_LR ? rep->ngroups : STORE_MAX_LR;
    for (int g = 0; g < s->n_lr; g++)
        s->lr[g] = rep->lr[g];
    s->samples_per_sec = rep->samples_per_sec;
    /* ETA from this run's own pace (a resumed run does not count the steps it restored). */
    double el = now - w->t0;
    if (el > 0 && rep->step > w->first_step)
        s->eta_s = (double)(total - rep->step) * el / (double)(rep->step - w->first_step);
    uv_mutex_unlock(&w->run->mu);
}

/* Marks the job's end in the store and in the run; `st` is the final state. */
static void finish(wctx *w, store_job_state st, const char *error)
{
    an_err e;
    unsigned from = STORE_MASK(STORE_RUNNING) | STORE_MASK(STORE_QUEUED);
    int rc = store_job_set_state(&w->store, w->run->id, from, st, error, NULL, &e);
    if (rc && rc != STORE_ESTATE)
        daemon_log(LOG_ERROR, "job %s: cannot record state %s: %s", w->run->id,
                   store_state_name(st), e.message);
    uv_mutex_lock(&w->run->mu);
    w->run->snap.final = st;
    snprintf(w->run->snap.error, sizeof w->run->snap.error, "%s", error ? error : "");
    uv_mutex_unlock(&w->run->mu);
}

/* Builds the train state for the job, restoring its latest checkpoint (or, for a new job
 * with resume_from, the named job's weights) and rewinding the stored history to it. */
static int prepare(wctx *w, const store_job *row, job_spec *spec, train **out, an_err *e)
{
    int rc = job_spec_parse_text(row->spec_json, strlen(row->spec_json), spec, e);
    if (rc)
        return rc;
    char *csv = NULL;
    size_t csv_len = 0;
    if (spec->data.type == DATA_DATASET) {
        const char *ref = spec->data.dataset_id[0] ? spec->data.dataset_id : spec->data.name;
        rc = store_dataset_text(&w->store, ref, &csv, &csv_len, e);
        if (rc) {
            job_spec_free(spec);
            return rc;
        }
    }
    rc = train_create(out, spec, csv, csv_len, e);
    free(csv);
    if (rc) {
        job_spec_free(spec);
        return rc;
    }
    void *blob = NULL;
    size_t len = 0;
    int64_t step = 0;
    rc = store_checkpoint_read(&w->store, row->id, -1, &blob, &len, &step, e);
    if (rc == 0) {
        rc = train_restore(*out, blob, len, e);
        free(blob);
        if (rc == 0)
            rc = store_job_rewind(&w->store, row->id, step, STORE_RUNNING, e);
    } else if (rc == -ENOENT) {
        rc = store_job_rewind(&w->store, row->id, 0, STORE_RUNNING, e);
        if (rc == 0 && spec->resume_job[0]) {
            int64_t at = spec->resume_step;
            rc = store_checkpoint_read(&w->store, spec->resume_job, at < 0 ? -1 : at, &blob,
                                       &len, NULL, e);
            if (rc == 0) {
                rc = train_restore_weights(*out, blob, len, e);
                free(blob);
            } else if (rc == -ENOENT) {
                an_fail(e, "resume_from", "job %s has no checkpoint%s to start from",
                        spec->resume_job, at < 0 ? "" : " at that step");
            }
        }
        step = 0;
    }
    if (rc) {
        train_free(*out);
        *out = NULL;
        job_spec_free(spec);
        return rc;
    }
    /* Job time goes on from the checkpoint's row. */
    w->time_base = 0;
    if (step > 0) {
        store_series ser;
        memset(&ser, 0, sizeof ser);
        if (store_metrics_query(&w->store, row->id, step, step, 0, &ser, NULL) == 0 && ser.n)
            w->time_base = ser.time[ser.n - 1];
        store_series_free(&ser);
    }
    return 0;
}

static void run_job(wctx *w)
{
    job_run *run = w->run;
    an_err e;
    an_err_clear(&e);
    store_job row;
    memset(&row, 0, sizeof row);
    if (store_job_get(&w->store, run->id, &row, &e) != 0) {
        daemon_log(LOG_ERROR, "job %s: cannot read it: %s", run->id, e.message);
        finish(w, STORE_FAILED, e.message);
        return;
    }
    store_job_state prev;
    if (store_job_set_state(&w->store, run->id, STORE_MASK(STORE_QUEUED), STORE_RUNNING, NULL,
                            &prev, &e) != 0) {
        /* Not queued any more (paused or cancelled meanwhile): leave it as it is. */
        uv_mutex_lock(&run->mu);
        run->snap.final = prev;
        uv_mutex_unlock(&run->mu);
        store_job_free(&row);
        return;
    }
    job_spec spec;
    train *t = NULL;
    if (prepare(w, &row, &spec, &t, &e) != 0) {
        char msg[900];
        snprintf(msg, sizeof msg, "%s%s%s", e.field, e.field[0] ? ": " : "", e.message);
        daemon_log(LOG_WARN, "job %s failed to start: %s", run->id, msg);
        finish(w, STORE_FAILED, msg);
        store_job_free(&row);
        return;
    }
    store_job_free(&row);
    int64_t total = train_total_steps(t);
    train_report rep;
    memset(&rep, 0, sizeof rep);
    rep.step = train_steps_done(t);
    rep.loss = NAN;
    rep.samples_per_sec = NAN;
    w->t0 = daemon_now();
    w->first_step = rep.step;
    w->nstamped = w->nbatch = w->nval = 0;
    w->t_last = w->time_base;
    w->now = w->t0;
    w->now_step = rep.step;
    uv_mutex_lock(&run->mu);
    run->snap.started = 1;
    run->snap.step = rep.step;
    run->snap.total_steps = total;
    uv_mutex_unlock(&run->mu);
    jobs_wake(w->jobs);

    int keep = spec.ckpt_keep_last;
    int64_t every = spec.ckpt_every_steps;
    double every_s = spec.ckpt_every_seconds;
    double last_flush = w->t0, last_ckpt = w->t0, last_wake = 0;
    int64_t last_ckpt_step = rep.step;
    int stop = STOP_NONE;
    int failed = 0;
    char errmsg[900] = "";
    int64_t stride = 1; /* steps between clock reads, adapted to the job's pace */
    while (train_steps_done(t) < total) {
        stop = atomic_load(&run->stop);
        if (stop != STOP_NONE)
            break;
        if (train_step(t, &rep, &e) != 0) {
            snprintf(errmsg, sizeof errmsg, "%s", e.message);
            failed = 1;
            break;
        }
        store_metric *m = &w->batch[w->nbatch++];
        m->step = rep.step;
        m->loss = rep.loss;
        m->n_lr = rep.ngroups < STORE_MAX_LR ? rep.ngroups : STORE_MAX_LR;
        for (int g = 0; g < m->n_lr; g++)
            m->lr[g] = rep.lr[g];
        m->grad_norm = rep.grad_norm;
        if (rep.has_val) {
            store_val_metric *v = &w->vbatch[w->nval++];
            v->step = rep.step;
            v->val_loss = rep.val_loss;
            v->val_acc = rep.val_acc;
            /* publish() sees only the steps it is called on: a validation between clock
             * reads would otherwise never reach the job's snapshot. */
            uv_mutex_lock(&run->mu);
            run->snap.val_step = rep.step;
            run->snap.val_loss = rep.val_loss;
            run->snap.val_acc = rep.val_acc;
            uv_mutex_unlock(&run->mu);
        }
        if (rep.step - w->now_step >= stride) {
            double prev_now = w->now;
            int64_t prev_step = w->now_step;
            double now = stamp(w, rep.step);
            atomic_fetch_add(&w->jobs->steps_trained, (uint64_t)(rep.step - prev_step));
            double per = (now - prev_now) / (double)(rep.step - prev_step);
            stride = per > 0 ? (int64_t)fmin(CLOCK_STRIDE_MAX, fmax(1, CLOCK_EVERY_S / per))
                             : CLOCK_STRIDE_MAX;
            publish(w, &rep, total, now);
            if (now - last_wake >= WAKE_INTERVAL_S) {
                jobs_wake(w->jobs);
                last_wake = now;
            }
            if (now - last_flush >= METRIC_FLUSH_S && w->nbatch) {
                if (flush(w, &rep, &e)) {
                    snprintf(errmsg, sizeof errmsg, "writing metrics: %s", e.message);
                    failed = 1;
                    break;
                }
                last_flush = now;
            }
        }
        if (w->nbatch == METRIC_BATCH) {
            if (flush(w, &rep, &e)) {
                snprintf(errmsg, sizeof errmsg, "writing metrics: %s", e.message);
                failed = 1;
                break;
            }
            last_flush = w->now;
        }
        if ((every > 0 && rep.step % every == 0) ||
            (every_s > 0 && w->now - last_ckpt >= every_s)) {
            if (flush(w, &rep, &e) || checkpoint(w, t, &rep, keep, &e)) {
                snprintf(errmsg, sizeof errmsg, "checkpointing: %s", e.message);
                failed = 1;
                break;
            }
            last_ckpt = w->now;
            last_ckpt_step = rep.step;
        }
    }
    if (rep.step > w->now_step)
        atomic_fetch_add(&w->jobs->steps_trained, (uint64_t)(rep.step - w->now_step));
    if (w->nbatch && flush(w, &rep, &e) && !failed) {
        snprintf(errmsg, sizeof errmsg, "writing metrics: %s", e.message);
        failed = 1;
    }
    publish(w, &rep, total, daemon_now());
    if (failed) {
        daemon_log(LOG_WARN, "job %s failed: %s", run->id, errmsg);
        finish(w, STORE_FAILED, errmsg);
    } else if (stop == STOP_CANCEL) {
        finish(w, STORE_CANCELLED, NULL);
    } else {
        /* Completed, paused or stopping for a restart: the state is checkpointed first. */
        if (train_steps_done(t) != last_ckpt_step || last_ckpt_step == 0) {
            if (checkpoint(w, t, &rep, keep, &e)) {
                snprintf(errmsg, sizeof errmsg, "checkpointing: %s", e.message);
                daemon_log(LOG_WARN, "job %s: %s", run->id, errmsg);
                finish(w, STORE_FAILED, errmsg);
                goto out;
            }
        }
        if (stop == STOP_PAUSE)
            finish(w, STORE_PAUSED, NULL);
        else if (stop == STOP_SHUTDOWN)
            finish(w, STORE_QUEUED, NULL);
        else
            finish(w, STORE_COMPLETED, NULL);
    }
out:
    train_free(t);
    job_spec_free(&spec);
}

static void worker_main(void *arg)
{
    worker *wk = arg;
    worker_pool *p = wk->pool;
    wctx *w = calloc(1, sizeof *w);
    if (!w)
        return;
    w->jobs = p->jobs;
    an_err e;
    int open_rc = store_open(&w->store, p->db_path, &e);
    if (open_rc)
        daemon_log(LOG_ERROR, "worker %d: cannot open the store: %s", wk->index, e.message);
    for (;;) {
        job_run *run = jobs_take(p->jobs);
        if (!run)
            break;
        w->run = run;
        w->nbatch = 0;
        w->nval = 0;
        if (open_rc == 0) {
            run_job(w);
        } else {
            uv_mutex_lock(&run->mu);
            run->snap.final = STORE_QUEUED;
            uv_mutex_unlock(&run->mu);
        }
        w->run = NULL;
        jobs_done(p->jobs, run);
    }
    store_close(&w->store);
    free(w);
}

int workers_start(worker_pool *p, struct jobmgr *jobs, const char *db_path, int n)
{
    memset(p, 0, sizeof *p);
    p->jobs = jobs;
    p->db_path = db_path;
    p->w = calloc((size_t)n, sizeof *p->w);
    if (!p->w)
        return -ENOMEM;
    p->n = n;
    for (int i = 0; i < n; i++) {
        p->w[i].pool = p;
        p->w[i].index = i;
        uv_thread_options_t opt = {UV_THREAD_HAS_STACK_SIZE, 8 << 20};
        int rc = uv_thread_create_ex(&p->w[i].thread, &opt, worker_main, &p->w[i]);
        if (rc) {
            workers_stop(p);
            return rc;
        }
        p->w[i].started = 1;
    }
    return 0;
}

void workers_stop(worker_pool *p)
{
    if (!p->w)
        return;
    uv_mutex_lock(&p->jobs->mu);
    p->jobs->quit = 1;
    uv_cond_broadcast(&p->jobs->cond);
    uv_mutex_unlock(&p->jobs->mu);
    for (int i = 0; i < p->n; i++)
        if (p->w[i].started)
            uv_thread_join(&p->w[i].thread);
    free(p->w);
    p->w = NULL;
}
