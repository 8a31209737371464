/* jobrun — the run of one job on a worker: admission against the memory budget, the train
 * state built or restored from the newest usable checkpoint, the step loop (metrics into the
 * writer's batches, clock reads spaced to the job's pace, periodic checkpoints through the
 * token bucket, stops asked for between steps, bounds that pause) and the final state. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/config_metrics.h"
#include "core/memest.h"
#include "core/train.h"
#include "jobs/admit.h"
#include "jobs/rankrun.h"
#include "jobs/service.h"
#include "jobs/wctx.h"
#include "util/util.h"
#include "util/log.h"

/* Rows ahead of the one being written whose line is fetched (see run_admitted). */
#define ROW_AHEAD 8

/* Fetches the line at p ready to be written: PREFETCHW (x86 CPUs without it take it as a
 * no-op). The build's baseline turns __builtin_prefetch into a read prefetch, after which
 * the write still waits for the other core to give the line up. */
static inline void prefetch_write(const void *p)
{
#if defined(__x86_64__)
    __asm__ volatile("prefetchw %0" : : "m"(*(const char *)p));
#else
    __builtin_prefetch(p, 1, 3);
#endif
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
    s->loss_scale = rep->loss_scale;
    s->skipped_steps = rep->skipped_steps;
    /* Both from the run's recent real pace (stores and checkpoints included; a resumed run
     * does not count the steps it restored), not from the compute time of one step. */
    double rate = pace_rate(&w->pace, now, rep->step);
    if (rate > 0) {
        w->samples_per_sec = rate * (double)w->batch_samples;
        s->samples_per_sec = w->samples_per_sec;
        s->eta_s = (double)(total - rep->step) / rate;
    }
    uv_mutex_unlock(&w->run->mu);
    pace_tick(&w->pace, now, rep->step);
}

/* Words a failed store write of `what` at `step` into msg. Returns 1 for a full disk (the
 * job is then paused, not failed: it resumes from its last checkpoint once there is space,
 * and every earlier commit is intact because the failed transaction rolled back). */
static int store_failure(char *msg, size_t size, int rc, const char *what, int64_t step,
                         const an_err *e)
{
    if (rc == -ENOSPC) {
        snprintf(msg, size, "disk full while writing %s at step %" PRId64 ": %s "
                 "(free some space, then POST /v1/jobs/{id}/resume)", what, step, e->message);
        return 1;
    }
    snprintf(msg, size, "writing %s at step %" PRId64 ": %s", what, step, e->message);
    return 0;
}

/* The loss scale a resumed fp16 job's step `step` used (its events up to the checkpoint
 * survive the rewind), so the first step after it records an event only when the scale
 * changes, as in a run that never stopped; NAN at step 0 or when there is none. */
double wctx_fp16_scale_at(wctx *w, const char *id, int64_t step)
{
    if (step <= 0)
        return NAN;
    store_fp16_event *ev = NULL;
    size_t n = 0;
    an_err e;
    double v = NAN;
    if (store_fp16_events(&w->store, id, step, step, &ev, &n, &e) == 0 && n)
        v = ev[0].loss_scale;
    free(ev);
    return v;
}

void wctx_fp16_note(wctx *w, int64_t step, double scale, int skipped)
{
    if (scale != scale)
        return; /* not a fp16 job */
    if (skipped || scale != w->fp16_prev) {
        store_fp16_event *x = &w->ev[w->nev++];
        x->step = step;
        x->loss_scale = scale;
        x->skipped = skipped != 0;
    }
    w->fp16_prev = scale;
}

/* The worker uses its store connection only when the writer holds nothing (wctx.h). */
static void assert_drained(wctx *w)
{
    uv_mutex_lock(&w->wr.mu);
    int queued = w->wr.queued;
    uv_mutex_unlock(&w->wr.mu);
    assert(queued == 0);
    (void)queued;
}

/* Marks the job's end in the store and in the run; `st` is the final state. */
static void finish(wctx *w, store_job_state st, const char *error)
{
    assert_drained(w);
    an_err e;
    unsigned from = STORE_MASK(STORE_RUNNING) | STORE_MASK(STORE_QUEUED);
    /* A job's end is answered to whoever paused or cancelled it, and shown as final: synced
     * like the state thread's writes (store_durable), where metrics and checkpoints are not. */
    an_err de;
    int durable = store_durable(&w->store, 1, &de) == 0;
    int rc = store_job_set_state(&w->store, w->run->id, from, st, error, NULL, &e);
    if (durable)
        store_durable(&w->store, 0, &de);
    int unsaved = rc && rc != STORE_ESTATE;
    if (unsaved)
        util_log(LOG_ERROR, "job %s: cannot record state %s (tried again later): %s",
                   w->run->id, store_state_name(st), e.message);
    uv_mutex_lock(&w->run->mu);
    w->run->snap.final = st;
    w->run->snap.unsaved = unsaved;
    snprintf(w->run->snap.error, sizeof w->run->snap.error, "%s", error ? error : "");
    uv_mutex_unlock(&w->run->mu);
}

/* Builds the train state for the job, restoring its latest checkpoint (or, for a new job
 * with resume_from, the named job's weights: *forked is then 1) and rewinding the stored
 * history to it. */
static int prepare(wctx *w, const store_job *row, job_spec *spec, train **out, int *forked,
                   an_err *e)
{
    *forked = 0;
    int rc = loader_spec(row, spec, e);
    if (rc)
        return rc;
    if (spec->world_size > 1)
        return 1; /* the ranks build it (jobs/rankrun.c) */
    char *csv = NULL;
    size_t csv_len = 0;
    rc = loader_data(&w->store, spec, row->dataset_ref, &csv, &csv_len, e);
    if (rc) {
        job_spec_free(spec);
        return rc;
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
    rc = wctx_restore_newest(w, row->id, *out, &step, e);
    if (rc == 0 && step >= 0) {
        rc = store_job_rewind(&w->store, row->id, step, STORE_RUNNING, e);
    } else if (rc == 0) {
        rc = store_job_rewind(&w->store, row->id, 0, STORE_RUNNING, e);
        if (rc == 0 && spec->resume_job[0]) {
            int64_t at = spec->resume_step;
            rc = store_checkpoint_read(&w->store, spec->resume_job, at < 0 ? -1 : at, &blob,
                                       &len, NULL, e);
            if (rc == 0) {
                rc = train_restore_weights(*out, blob, len, e);
                free(blob);
                *forked = rc == 0;
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

/* Admits the job against the memory budget (jobs/admit.h), finishing it as a stop that
 * came first asks, or failed when it could never fit. 0 with *charge reserved. */
static int admit(wctx *w, uint64_t *charge)
{
    char why[400];
    int rc = admit_job(w->jobs->d, &w->store, w->run, charge, why, sizeof why);
    if (rc < 0) {
        finish(w, STORE_FAILED, why);
    } else if (rc > 0) {
        int stop = atomic_load(&w->run->stop);
        finish(w, stop == STOP_CANCEL ? STORE_CANCELLED : stop == STOP_PAUSE ? STORE_PAUSED
                                                                             : STORE_QUEUED,
               NULL);
    }
    return rc;
}

static void run_admitted(wctx *w);

void jobrun(wctx *w)
{
    uint64_t charge = 0;
    if (admit(w, &charge) != 0)
        return;
    run_admitted(w);
    budget_release(&w->jobs->d->mem, charge);
}

static void run_admitted(wctx *w)
{

    job_run *run = w->run;
    an_err e;
    an_err_clear(&e);
    store_job row;
    memset(&row, 0, sizeof row);
    if (store_job_get(&w->store, run->id, &row, &e) != 0) {
        util_log(LOG_ERROR, "job %s: cannot read it: %s", run->id, e.message);
        finish(w, STORE_FAILED, e.message);
        return;
    }
    store_job_state prev = STORE_QUEUED;
    int src = store_job_set_state(&w->store, run->id, STORE_MASK(STORE_QUEUED), STORE_RUNNING,
                                  NULL, &prev, &e);
    if (src != 0 && src != STORE_ESTATE) {
        char msg[900];
        int disk = store_failure(msg, sizeof msg, src, "the job's state", row.step, &e);
        util_log(LOG_ERROR, "job %s cannot start: %s", run->id, msg);
        finish(w, disk ? STORE_PAUSED : STORE_FAILED, msg);
        store_job_free(&row);
        return;
    }
    if (src != 0) {
        /* Not queued any more (paused or cancelled meanwhile): leave it as it is. */
        uv_mutex_lock(&run->mu);
        run->snap.final = prev;
        uv_mutex_unlock(&run->mu);
        store_job_free(&row);
        return;
    }
    /* its row is no longer queued: the copies of the queue leave it out (jobs/qorder.c) */
    uv_mutex_lock(&run->mu);
    run->snap.left_queue = 1;
    uv_mutex_unlock(&run->mu);
    job_spec spec;
    train *t = NULL;
    int forked = 0;
    int prc = prepare(w, &row, &spec, &t, &forked, &e);
    if (prc == 1) {
        char msg[900];
        store_job_state st = rankrun(w, &row, &spec, msg, sizeof msg);
        finish(w, st, msg[0] ? msg : NULL);
        store_job_free(&row);
        job_spec_free(&spec);
        return;
    }
    if (prc != 0) {
        char msg[900];
        int disk = prc == -ENOSPC;
        if (disk)
            store_failure(msg, sizeof msg, prc, "the job's restart", row.step, &e);
        else
            snprintf(msg, sizeof msg, "%s%s%s", e.field, e.field[0] ? ": " : "", e.message);
        util_log(LOG_WARN, "job %s %s: %s", run->id, disk ? "paused" : "failed to start", msg);
        finish(w, disk ? STORE_PAUSED : STORE_FAILED, msg);
        store_job_free(&row);
        return;
    }
    store_job_free(&row);
    int64_t total = train_total_steps(t);
    train_report rep;
    memset(&rep, 0, sizeof rep);
    rep.step = train_steps_done(t);
    rep.loss = NAN;
    w->t0 = util_now();
    w->first_step = rep.step;
    w->batch_samples = spec.train_batch_size;
    w->full_res = spec.metrics_full_res;
    w->samples_per_sec = NAN;
    memset(&w->pace, 0, sizeof w->pace);
    pace_add(&w->pace, w->t0, rep.step);
    wctx_run_begin(w, spec.ngroups == 0); /* compact: one learning rate */
    w->fp16_prev = wctx_fp16_scale_at(w, run->id, rep.step);
    w->wr.rc = 0; /* the queue is empty: the previous run drained it */
    w->t_last = w->time_base;
    w->now = w->t0;
    w->now_step = rep.step;
    /* The activation memory of the run, and what activation checkpointing saves of it (the
     * estimate's parts; the data set's size does not enter them), for /metrics. */
    mem_estimate est;
    job_spec_memory(&spec, 0, &est);
    uv_mutex_lock(&run->mu);
    run->snap.started = 1;
    run->snap.step = rep.step;
    run->snap.total_steps = total;
    run->snap.act_bytes = est.activations;
    run->snap.act_saved = est.act_saved;
    uv_mutex_unlock(&run->mu);
    jobs_wake(w->jobs);

    store_keep keep = {.keep_last = spec.ckpt_keep_last, .best_k = spec.keep_best.k,
                       .best_metric = spec.keep_best.metric,
                       .best_max = spec.keep_best.maximize};
    int64_t every = spec.ckpt_every_steps;
    /* The next multiple of `every` after the restored step: a compare a step instead of a
     * 64-bit division (a few per cent of a tutorial step). */
    int64_t next_every = every > 0 ? (rep.step / every + 1) * every : INT64_MAX;
    double every_s = spec.ckpt_every_seconds;
    double last_flush = w->t0, last_ckpt = w->t0, last_wake = 0;
    int64_t last_ckpt_step = rep.step;
    ckpt_bucket bucket = {CKPT_BURST, w->t0};
    int stop = STOP_NONE;
    int failed = 0, disk_full = 0, rc;
    char errmsg[900] = "";
    int64_t stride = 1; /* steps between clock reads, adapted to the job's pace */
    /* A sweep's trial meets ASHA's rungs (jobs/sweeps.h): at each it may be stopped. */
    int64_t rungs[SWEEP_MAX_RUNGS];
    int nrungs = sweeps_trial_rungs(&w->jobs->d->sweeps, run->id, total, rungs, SWEEP_MAX_RUNGS);
    int rung_i = 0;
    while (rung_i < nrungs && rungs[rung_i] <= rep.step)
        rung_i++;
    /* What a rung reached in this run is judged by: the newest validation at or before it,
     * which for a resumed run may be one stored before the restart. */
    double last_val_loss = NAN, last_val_acc = NAN;
    store_val_metric before;
    if (nrungs > rung_i && rep.step > 0 &&
        store_val_last(&w->store, run->id, rep.step, &before, NULL) == 0) {
        last_val_loss = before.val_loss;
        last_val_acc = before.val_acc;
    }
    /* Bounds that pause the job with a message: metrics.max_bytes and --min-free-disk. */
    int64_t row_limit = cfg_metrics_row_limit(spec.metrics_max_bytes, spec.ngroups + 1);
    int bound_hit = admit_disk_low(w->jobs->d->opts, errmsg, sizeof errmsg);
    double last_disk = w->t0;
    if (bound_hit)
        stop = STOP_PAUSE;
    int64_t hang_at = jobs_hang_step(spec.name, rep.step); /* test hook (jobs/jobsched.c) */
    double max_runtime = spec.sched.max_runtime_s; /* job time: resumed runs go on counting */
    int runtime_hit = 0;
    /* A fork's first run keeps what it starts from as its own checkpoint at step 0, so that a
     * restart before its first checkpoint needs nothing of the source job (whose retention
     * may remove that checkpoint meanwhile) and starts from the same state. (Its writer then
     * shares the store connection: nothing below reads it before the loop.) A disk bound
     * already hit pauses the job, which checkpoints it. */
    if (forked && !bound_hit && (rc = wctx_checkpoint(w, t, &rep, &keep, &e))) {
        disk_full = store_failure(errmsg, sizeof errmsg, rc, w->fail_what, w->fail_step, &e);
        failed = 1;
    }
    /* train_total_steps is read each step: a learning-rate sweep ends itself early. */
    while (!failed && !bound_hit && train_steps_done(t) < train_total_steps(t)) {
        stop = atomic_load(&run->stop);
        if (stop != STOP_NONE)
            break;
        if (row_limit > 0 && train_steps_done(t) >= row_limit) {
            snprintf(errmsg, sizeof errmsg,
                     "metrics.max_bytes: the job's metrics reached %" PRId64 " rows of %" PRId64
                     " bytes, as much as its %" PRId64 " bytes allow; paused at step %" PRId64
                     " with every checkpoint and row kept. To train on, submit a job with "
                     "resume_from this one and a larger metrics.max_bytes",
                     train_steps_done(t), METRICS_ROW_BYTES(spec.ngroups + 1),
                     spec.metrics_max_bytes, train_steps_done(t));
            stop = STOP_PAUSE;
            bound_hit = 1;
            break;
        }
        if (hang_at >= 0 && train_steps_done(t) >= hang_at) {
            jobs_hang(run);
            continue;
        }
        if (train_step(t, &rep, &e) != 0) {
            snprintf(errmsg, sizeof errmsg, "%s", e.message);
            failed = 1;
            break;
        }
        /* One learning rate: the step's 32 bytes, which the writer makes into a row (wctx.h). */
        if (w->compact) {
            wrow *r = &w->crow[w->nbatch++];
            r->step = rep.step;
            r->loss = rep.loss;
            r->grad_norm = rep.grad_norm;
            r->lr = rep.lr[0];
        } else {
            /* A row's line was last in the writer thread's cache (or in none): ask for it a
             * few steps ahead, so that its fetch overlaps the training instead of holding up
             * the stores behind this one. */
            if (w->nbatch + ROW_AHEAD < METRIC_BATCH)
                prefetch_write(&w->batch[w->nbatch + ROW_AHEAD]);
            store_metric *m = &w->batch[w->nbatch++];
            m->step = rep.step;
            m->loss = rep.loss;
            m->n_lr = rep.ngroups < STORE_MAX_LR ? rep.ngroups : STORE_MAX_LR;
            for (int g = 0; g < m->n_lr; g++)
                m->lr[g] = rep.lr[g];
            m->grad_norm = rep.grad_norm;
        }
        wctx_fp16_note(w, rep.step, rep.loss_scale, rep.skipped);
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
            last_val_loss = rep.val_loss;
            last_val_acc = rep.val_acc;
        }
        if (rung_i < nrungs && rep.step == rungs[rung_i]) {
            rung_i++;
            if (!sweeps_rung_reached(&w->jobs->d->sweeps, run->id, rep.step, rep.loss,
                                     last_val_loss, last_val_acc)) {
                stop = STOP_SWEEP; /* checkpointed at this step below, then `stopped` */
                break;
            }
        }
        if (rep.step - w->now_step >= stride) {
            double prev_now = w->now;
            int64_t prev_step = w->now_step;
            double now = wctx_stamp(w, rep.step);
            double per = (now - prev_now) / (double)(rep.step - prev_step);
            stride = per > 0 ? (int64_t)fmin(CLOCK_STRIDE_MAX, fmax(1, CLOCK_EVERY_S / per))
                             : CLOCK_STRIDE_MAX;
            publish(w, &rep, total, now);
            if (max_runtime > 0 && w->time_base + (now - w->t0) >= max_runtime &&
                train_steps_done(t) < train_total_steps(t)) {
                snprintf(errmsg, sizeof errmsg, "max_runtime: the job trained for %.3f s in "
                         "total, its max_runtime_s is %.6g; checkpointed at step %" PRId64,
                         w->time_base + (now - w->t0), max_runtime, train_steps_done(t));
                runtime_hit = 1;
                break;
            }
            if (now - last_disk >= DISK_CHECK_S) {
                last_disk = now;
                if (admit_disk_low(w->jobs->d->opts, errmsg, sizeof errmsg)) {
                    stop = STOP_PAUSE;
                    bound_hit = 1;
                    break;
                }
            }
            if (now - last_wake >= WAKE_INTERVAL_S) {
                jobs_wake(w->jobs);
                last_wake = now;
            }
            if (now - last_flush >= METRIC_FLUSH_S && w->nbatch) {
                if ((rc = wctx_flush(w, &rep, &e))) {
                    disk_full = store_failure(errmsg, sizeof errmsg, rc, w->fail_what,
                                              w->fail_step, &e);
                    failed = 1;
                    break;
                }
                last_flush = now;
            }
        }
        if (wctx_slot_full(w)) {
            if ((rc = wctx_flush(w, &rep, &e))) {
                disk_full = store_failure(errmsg, sizeof errmsg, rc, w->fail_what, w->fail_step,
                                          &e);
                failed = 1;
                break;
            }
            last_flush = w->now;
        }
        int step_due = rep.step >= next_every && rep.step % every == 0;
        if (rep.step >= next_every)
            next_every = (rep.step / every + 1) * every;
        if ((step_due ||
             (every_s > 0 && w->now - last_ckpt >= every_s)) &&
            ckpt_take(&bucket, w->now)) {
            /* The checkpoint's transaction carries the metric batch too. */
            if ((rc = wctx_checkpoint(w, t, &rep, &keep, &e))) {
                disk_full = store_failure(errmsg, sizeof errmsg, rc, w->fail_what, w->fail_step,
                                          &e);
                failed = 1;
                break;
            }
            last_ckpt = w->now;
            last_ckpt_step = rep.step;
        }
    }
    if (disk_full)
        w->nbatch = 0; /* no room for them; the resume rewinds to the last checkpoint anyway */
    else if (w->nbatch)
        wctx_flush(w, &rep, &e);
    /* Everything queued is written (or dropped after a failure) before the job's end is
     * reported, and the worker's store connection is its own again. */
    if ((rc = wctx_drain(w, &e)) && !failed) {
        disk_full = store_failure(errmsg, sizeof errmsg, rc, w->fail_what, w->fail_step, &e);
        failed = 1;
    }
    total = train_total_steps(t);
    publish(w, &rep, total, util_now());
    if (failed && disk_full) {
        finish(w, STORE_PAUSED, errmsg);
    } else if (failed) {
        finish(w, STORE_FAILED, errmsg);
    } else if (stop == STOP_CANCEL) {
        finish(w, STORE_CANCELLED, NULL);
    } else if (stop == STOP_STALL) {
        /* Restarted from its latest checkpoint: what the stalled run holds is not saved. */
        finish(w, STORE_QUEUED, NULL);
    } else {
        /* Completed, paused or stopping for a restart: the state is checkpointed first. */
        if (train_steps_done(t) != last_ckpt_step || last_ckpt_step == 0) {
            /* Drained whatever the outcome: a failure may leave the slot queued, and the
             * store is the worker's again only once the writer holds nothing. */
            rc = wctx_checkpoint(w, t, &rep, &keep, &e);
            an_err de;
            int drc = wctx_drain(w, &de);
            if (!rc && drc) {
                rc = drc;
                e = de;
            }
            if (rc) {
                disk_full = store_failure(errmsg, sizeof errmsg, rc, w->fail_what, w->fail_step,
                                          &e);
                finish(w, disk_full ? STORE_PAUSED : STORE_FAILED, errmsg);
                goto out;
            }
        }
        if (stop == STOP_PAUSE)
            finish(w, STORE_PAUSED, bound_hit ? errmsg : NULL);
        else if (runtime_hit) {
            finish(w, STORE_FAILED, errmsg);
        } else if (stop == STOP_SHUTDOWN || stop == STOP_PREEMPT)
            finish(w, STORE_QUEUED, NULL);
        else if (stop == STOP_SWEEP)
            finish(w, STORE_STOPPED, NULL);
        else
            finish(w, STORE_COMPLETED, NULL);
    }
out:
    train_free(t);
    job_spec_free(&spec);
}
