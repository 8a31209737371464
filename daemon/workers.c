/* workers — the fixed pool of training threads. */
#include "daemon/workers.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/config.h"
#include "core/config_metrics.h"
#include "core/memest.h"
#include "core/train.h"
#include "daemon/admit.h"
#include "daemon/daemon.h"
#include "daemon/jobs.h"
#include "store/store.h"

#define METRIC_BATCH 4096      /* rows per metrics transaction */
#define METRIC_FLUSH_S 0.25    /* …or this often */
#define WAKE_INTERVAL_S 0.05   /* loop wake-ups at most this often */
#define DISK_CHECK_S 1.0       /* free space of the store checked this often */
#define CLOCK_EVERY_S 200e-6   /* read the clock about this often… */
#define CLOCK_STRIDE_MAX 1024   /* …but at least every this many steps */
/* Periodic checkpoints: at most one per CKPT_GAP_S on average, in bursts of up to
 * CKPT_BURST. A job that trains millions of steps a second with every_steps 100 would
 * otherwise commit tens of thousands of checkpoints a second and spend most of its time in
 * them; a short job still gets every checkpoint it asks for. */
#define CKPT_GAP_S 0.02
/* samples_per_sec and eta_s: the pace over the last PACE_N - 1 intervals of PACE_EVERY_S
 * (about 5 s), so they follow the job's real speed, stores and checkpoints included. */
#define PACE_EVERY_S 0.25
#define PACE_N 21
#define CKPT_BURST 10.0
/* Batches a worker has in flight: one it fills, the rest queued for (or being written by) its
 * writer thread. The worker waits only when all of them are queued, so a slow disk slows
 * training down instead of growing memory (each slot holds METRIC_BATCH rows, about 2.4 MB). */
#define WRITE_SLOTS 3

/* Recent (time, step) points of a run, one per PACE_EVERY_S, oldest overwritten first. */
typedef struct pace {
    double t[PACE_N];          /* monotonic seconds */
    int64_t step[PACE_N];      /* steps done at t */
    int n;                     /* points held, 0..PACE_N */
    int next;                  /* slot the next point goes to */
} pace;

/* One batch of rows for the writer: metrics, validation rows and progress, and optionally a
 * checkpoint that commits with them in one transaction. */
typedef struct wslot {
    store_metric batch[METRIC_BATCH];
    /* Validation rows of the batch: at most one per metric row, so they never outgrow it. */
    store_val_metric vbatch[METRIC_BATCH];
    size_t nbatch;             /* rows in batch */
    size_t nval;               /* rows in vbatch */
    job_run *run;              /* the job the rows belong to */
    store_progress prog;       /* progress written with the rows */
    int has_prog;              /* 0 = write no progress */
    void *blob;                /* checkpoint state (owned; freed by the writer), or NULL */
    size_t len;                /* bytes in blob */
    int64_t step;              /* step of the checkpoint, or of the batch's last row */
    double loss;               /* the checkpoint's loss */
    store_keep keep;           /* what retention keeps (keep_last, keep_best, pins) */
    double save_s;             /* seconds the worker spent serializing the checkpoint */
} wslot;

/* The worker's writer thread and its queue (a ring of WRITE_SLOTS slots).
 *
 * The store connection is handed over, not shared: while any slot is queued only the writer
 * uses the worker's connection (wctx.store); the worker touches it again only after
 * drain() has seen the queue empty. The mutex orders the two threads' uses, so the connection
 * is never used by two threads at once and needs no second connection (two writers on one
 * SQLite file would only wait for each other's locks). The queue is FIFO and has one writer,
 * so rows are committed in step order and a checkpoint commits after every row before it;
 * after a failure the writer drops everything queued behind it (a checkpoint never commits
 * past rows that were not stored). */
typedef struct writer {
    uv_thread_t thread;
    uv_mutex_t mu;
    uv_cond_t cond;            /* signalled on submit, on each slot written, and on quit */
    int head;                  /* the slot the worker fills */
    int tail;                  /* the oldest queued slot */
    int queued;                /* slots queued or being written, 0..WRITE_SLOTS */
    int quit;                  /* 1 = exit once the queue is empty */
    int rc;                    /* the run's first store failure; 0 = none */
    an_err err;                /* its error */
    const char *what;          /* what it was writing ("metrics" / "the checkpoint") */
    int64_t step;              /* at which step */
} writer;

typedef struct wctx {
    store_t store;
    jobmgr *jobs;
    job_run *run;
    wslot slot[WRITE_SLOTS];
    writer wr;
    store_metric *batch;       /* rows of the slot being filled (slot[wr.head]) */
    size_t nbatch;
    store_val_metric *vbatch;  /* its validation rows */
    size_t nval;
    const char *fail_what;     /* set with a failed flush/checkpoint/drain: what was written */
    int64_t fail_step;         /* …and at which step */
    double time_base;          /* job time of this run's first step (resumed runs go on) */
    double t0;                 /* monotonic start of this run */
    int64_t first_step;        /* steps already done when this run started */
    size_t nstamped;           /* rows of batch whose time is set */
    double t_last;             /* job time given to the last stamped row, seconds */
    double now;                /* monotonic time of the latest clock read, seconds */
    int64_t now_step;          /* the step done at that read */
    int64_t batch_samples;     /* samples per optimizer step (train_batch_size) */
    pace pace;                 /* recent progress, for samples_per_sec and eta_s */
    double samples_per_sec;    /* the run's real pace over the last seconds; NAN unknown */
} wctx;

static void pace_add(pace *p, double t, int64_t step)
{
    p->t[p->next] = t;
    p->step[p->next] = step;
    p->next = (p->next + 1) % PACE_N;
    if (p->n < PACE_N)
        p->n++;
}

/* Steps per second from the oldest point held to (now, step); NAN with no point or no time
 * gone by. */
static double pace_rate(const pace *p, double now, int64_t step)
{
    if (p->n == 0)
        return NAN;
    int old = p->n < PACE_N ? 0 : p->next;
    double dt = now - p->t[old];
    return dt > 0 ? (double)(step - p->step[old]) / dt : NAN;
}

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

static void progress_of(const wctx *w, const train_report *rep, store_progress *p)
{
    memset(p, 0, sizeof *p);
    p->step = rep->step;
    p->epoch = rep->epoch;
    p->loss = rep->loss;
    p->n_lr = rep->ngroups < STORE_MAX_LR ? rep->ngroups : STORE_MAX_LR;
    for (int g = 0; g < p->n_lr; g++)
        p->lr[g] = rep->lr[g];
    p->samples_per_sec = w->samples_per_sec;
}

/* Copies the writer's first failure, if any, into *e and w->fail_*; returns its rc. Call with
 * wr.mu held. */
static int writer_failure(wctx *w, an_err *e)
{
    if (w->wr.rc) {
        *e = w->wr.err;
        w->fail_what = w->wr.what;
        w->fail_step = w->wr.step;
    }
    return w->wr.rc;
}

/* Queues the slot being filled (its nbatch/nval rows are taken from w) and moves on to the
 * next one, waiting while every slot is queued. Returns the writer's first failure of this
 * run (see writer_failure), 0 if none so far. */
static int submit(wctx *w, an_err *e)
{
    wslot *s = &w->slot[w->wr.head];
    s->nbatch = w->nbatch;
    s->nval = w->nval;
    s->run = w->run;
    uv_mutex_lock(&w->wr.mu);
    w->wr.queued++;
    uv_cond_broadcast(&w->wr.cond);
    w->wr.head = (w->wr.head + 1) % WRITE_SLOTS;
    while (w->wr.queued == WRITE_SLOTS)
        uv_cond_wait(&w->wr.cond, &w->wr.mu);
    int rc = writer_failure(w, e);
    uv_mutex_unlock(&w->wr.mu);
    w->batch = w->slot[w->wr.head].batch;
    w->vbatch = w->slot[w->wr.head].vbatch;
    w->nbatch = 0;
    w->nval = 0;
    w->nstamped = 0;
    return rc;
}

/* Waits until the writer has written (or dropped) every queued slot. Returns its first
 * failure of this run, as submit. The worker may use w->store again afterwards. */
static int drain(wctx *w, an_err *e)
{
    uv_mutex_lock(&w->wr.mu);
    while (w->wr.queued > 0)
        uv_cond_wait(&w->wr.cond, &w->wr.mu);
    int rc = writer_failure(w, e);
    uv_mutex_unlock(&w->wr.mu);
    return rc;
}

/* Writes one slot on the writer thread. 0, or the store's error with *what set. */
static int write_slot(wctx *w, wslot *s, const char **what, an_err *e)
{
    int rc = 0;
    *what = "metrics";
    if (s->blob) {
        double c0 = daemon_now();
        *what = "the checkpoint";
        rc = store_checkpoint_commit_kept(&w->store, s->run->id, s->batch, s->nbatch,
                                          s->vbatch, s->nval, s->step, s->loss, s->blob,
                                          s->len, &s->keep, s->has_prog ? &s->prog : NULL, e);
        if (rc == 0) {
            atomic_fetch_add(&w->jobs->ckpt_bytes, s->len);
            atomic_fetch_add(&w->jobs->ckpt_count, 1);
            atomic_fetch_add(&w->jobs->ckpt_usec,
                             (uint64_t)((s->save_s + daemon_now() - c0) * 1e6));
            uv_mutex_lock(&s->run->mu);
            s->run->snap.ckpt_seq++;
            s->run->snap.ckpt_step = s->step;
            s->run->snap.ckpt_bytes = (int64_t)s->len;
            uv_mutex_unlock(&s->run->mu);
        }
    } else if (s->nbatch) {
        rc = store_metrics_append_with_val(&w->store, s->run->id, s->batch, s->nbatch, s->vbatch,
                                           s->nval, s->has_prog ? &s->prog : NULL, e);
    }
    /* /metrics counts what is committed: one metric row per optimizer step. */
    if (rc == 0 && s->nbatch) {
        atomic_fetch_add(&w->jobs->steps_trained, (uint64_t)s->nbatch);
        atomic_fetch_add(&w->jobs->samples_trained,
                         (uint64_t)s->nbatch * (uint64_t)w->batch_samples);
    }
    return rc;
}

/* The writer thread: writes queued slots in order until told to quit. After a failure it
 * drops the rest of the run's slots (the worker stops the run when it sees the failure). */
static void writer_main(void *arg)
{
    wctx *w = arg;
    uv_mutex_lock(&w->wr.mu);
    for (;;) {
        while (w->wr.queued == 0 && !w->wr.quit)
            uv_cond_wait(&w->wr.cond, &w->wr.mu);
        if (w->wr.queued == 0)
            break;
        wslot *s = &w->slot[w->wr.tail];
        int skip = w->wr.rc != 0;
        uv_mutex_unlock(&w->wr.mu);
        an_err e;
        an_err_clear(&e);
        const char *what = "metrics";
        int rc = skip ? 0 : write_slot(w, s, &what, &e);
        free(s->blob);
        s->blob = NULL;
        uv_mutex_lock(&w->wr.mu);
        if (rc && !w->wr.rc) {
            w->wr.rc = rc;
            w->wr.err = e;
            w->wr.what = what;
            w->wr.step = s->step;
        }
        w->wr.tail = (w->wr.tail + 1) % WRITE_SLOTS;
        w->wr.queued--;
        uv_cond_broadcast(&w->wr.cond);
    }
    uv_mutex_unlock(&w->wr.mu);
}

/* Queues the metric batch (stamped, with the progress of `last`) for the writer. Returns the
 * writer's first failure so far (see submit). */
static int flush(wctx *w, const train_report *last, an_err *e)
{
    if (w->nbatch == 0)
        return 0;
    if (w->nstamped < w->nbatch)
        stamp(w, last->step);
    wslot *s = &w->slot[w->wr.head];
    progress_of(w, last, &s->prog);
    s->has_prog = 1;
    s->blob = NULL;
    s->step = last->step;
    return submit(w, e);
}

/* Queues a checkpoint of the train state together with the metric batch (the rows up to the
 * checkpoint), to commit in one transaction: one commit instead of two, and a crash never
 * keeps a checkpoint whose steps have no rows. Returns a train_save failure (w->fail_* set)
 * or the writer's first failure so far; the checkpoint itself is stored once drain()
 * returns 0. */
static int checkpoint(wctx *w, train *t, const train_report *last, const store_keep *keep,
                      an_err *e)
{
    double c0 = daemon_now();
    void *blob = NULL;
    size_t len = 0;
    int64_t step = train_steps_done(t);
    int rc = train_save(t, &blob, &len, e);
    if (rc) {
        w->fail_what = "the checkpoint";
        w->fail_step = step;
        return rc;
    }
    if (w->nstamped < w->nbatch)
        stamp(w, last->step);
    wslot *s = &w->slot[w->wr.head];
    progress_of(w, last, &s->prog);
    s->has_prog = last->step > 0;
    s->blob = blob;
    s->len = len;
    s->step = step;
    s->loss = last->loss;
    s->keep = *keep;
    s->save_s = daemon_now() - c0;
    return submit(w, e);
}

/* A token bucket for periodic checkpoints: CKPT_BURST tokens, one more every CKPT_GAP_S. */
typedef struct ckpt_bucket {
    double tokens;
    double at;                 /* monotonic time of the last refill */
} ckpt_bucket;

/* Takes a token for a periodic checkpoint due at `now`: 1 = take it now, 0 = defer it (to the
 * next multiple of every_steps, or the next step for every_seconds). Which step a
 * checkpoint lands on does not change the result: a resume from any step is bit-exact. */
static int ckpt_take(ckpt_bucket *b, double now)
{
    if (now > b->at) {
        b->tokens = fmin(CKPT_BURST, b->tokens + (now - b->at) / CKPT_GAP_S);
        b->at = now;
    }
    if (b->tokens < 1.0)
        return 0;
    b->tokens -= 1.0;
    return 1;
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
    if (now - w->pace.t[(w->pace.next + PACE_N - 1) % PACE_N] >= PACE_EVERY_S)
        pace_add(&w->pace, now, rep->step);
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

/* Marks the job's end in the store and in the run; `st` is the final state. */
static void finish(wctx *w, store_job_state st, const char *error)
{
    an_err e;
    unsigned from = STORE_MASK(STORE_RUNNING) | STORE_MASK(STORE_QUEUED);
    int rc = store_job_set_state(&w->store, w->run->id, from, st, error, NULL, &e);
    int unsaved = rc && rc != STORE_ESTATE;
    if (unsaved)
        daemon_log(LOG_ERROR, "job %s: cannot record state %s (tried again later): %s",
                   w->run->id, store_state_name(st), e.message);
    uv_mutex_lock(&w->run->mu);
    w->run->snap.final = st;
    w->run->snap.unsaved = unsaved;
    snprintf(w->run->snap.error, sizeof w->run->snap.error, "%s", error ? error : "");
    uv_mutex_unlock(&w->run->mu);
}

/* Restores the newest usable checkpoint of job `id` into `t`; *step receives its step, or 0
 * when the job has none or none is usable (the job then starts over from step 0: a retry
 * could not do better, and the uninterrupted result is still what it ends with). A checkpoint
 * whose chunks do not read back (missing or short chunks: -EPROTO) or whose blob train_restore
 * rejects (checksum, framing) is logged and skipped for the one before it; the rewind that
 * follows deletes the skipped ones with the rest of the abandoned future. Any other failure
 * (I/O, out of memory, a full disk) says nothing about the checkpoint and is returned. */
static int restore_usable(wctx *w, const char *id, train *t, int64_t *step, an_err *e)
{
    *step = 0;
    store_checkpoint_info *list = NULL;
    size_t n = 0;
    int rc = store_checkpoint_list(&w->store, id, &list, &n, e);
    if (rc)
        return rc;
    size_t bad = 0;
    for (size_t i = n; i-- > 0;) {
        void *blob = NULL;
        size_t len = 0;
        int64_t at = list[i].step;
        rc = store_checkpoint_read(&w->store, id, at, &blob, &len, NULL, e);
        if (rc == 0) {
            rc = train_restore(t, blob, len, e);
            free(blob);
            if (rc == -ENOMEM)
                break;
        } else if (rc != -EPROTO) {
            break;
        }
        if (rc == 0) {
            *step = at;
            if (bad)
                daemon_log(LOG_WARN, "job %s: resuming from the checkpoint at step %" PRId64
                           " (%zu newer one%s unusable)", id, at, bad, bad == 1 ? " was" : "s were");
            break;
        }
        bad++;
        daemon_log(LOG_ERROR, "job %s: the checkpoint at step %" PRId64 " is unusable (%s%s%s); "
                   "%s", id, at, e->field, e->field[0] ? ": " : "", e->message,
                   i > 0 ? "trying the one before it" : "no older checkpoint: starting over "
                   "from step 0");
        rc = 0;
    }
    free(list);
    return rc;
}

/* Builds the train state for the job, restoring its latest checkpoint (or, for a new job
 * with resume_from, the named job's weights) and rewinding the stored history to it. */
static int prepare(wctx *w, const store_job *row, job_spec *spec, train **out, an_err *e)
{
    int rc = loader_spec(row, spec, e);
    if (rc)
        return rc;
    char *csv = NULL;
    size_t csv_len = 0;
    rc = loader_data(&w->store, spec, &csv, &csv_len, e);
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
    rc = restore_usable(w, row->id, *out, &step, e);
    if (rc == 0 && step > 0) {
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

/* Admits the job against the memory budget (daemon/admit.h), finishing it as a stop that
 * came first asks, or failed when it could never fit. 0 with *charge reserved. */
static int admit(wctx *w, uint64_t *charge)
{
    char why[400];
    int rc = admit_job(w->jobs->d, &w->store, w->run, charge, why, sizeof why);
    if (rc < 0) {
        daemon_log(LOG_WARN, "job %s failed: %s", w->run->id, why);
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

static void run_job(wctx *w)
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
        daemon_log(LOG_ERROR, "job %s: cannot read it: %s", run->id, e.message);
        finish(w, STORE_FAILED, e.message);
        return;
    }
    store_job_state prev = STORE_QUEUED;
    int src = store_job_set_state(&w->store, run->id, STORE_MASK(STORE_QUEUED), STORE_RUNNING,
                                  NULL, &prev, &e);
    if (src != 0 && src != STORE_ESTATE) {
        char msg[900];
        int disk = store_failure(msg, sizeof msg, src, "the job's state", row.step, &e);
        daemon_log(LOG_ERROR, "job %s cannot start: %s", run->id, msg);
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
    job_spec spec;
    train *t = NULL;
    int prc = prepare(w, &row, &spec, &t, &e);
    if (prc != 0) {
        char msg[900];
        int disk = prc == -ENOSPC;
        if (disk)
            store_failure(msg, sizeof msg, prc, "the job's restart", row.step, &e);
        else
            snprintf(msg, sizeof msg, "%s%s%s", e.field, e.field[0] ? ": " : "", e.message);
        daemon_log(LOG_WARN, "job %s %s: %s", run->id, disk ? "paused" : "failed to start", msg);
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
    rep.samples_per_sec = NAN;
    w->t0 = daemon_now();
    w->first_step = rep.step;
    w->batch_samples = spec.train_batch_size;
    w->samples_per_sec = NAN;
    memset(&w->pace, 0, sizeof w->pace);
    pace_add(&w->pace, w->t0, rep.step);
    w->nstamped = w->nbatch = w->nval = 0;
    w->batch = w->slot[w->wr.head].batch;
    w->vbatch = w->slot[w->wr.head].vbatch;
    w->wr.rc = 0; /* the queue is empty: the previous run drained it */
    w->t_last = w->time_base;
    w->now = w->t0;
    w->now_step = rep.step;
    uv_mutex_lock(&run->mu);
    run->snap.started = 1;
    run->snap.step = rep.step;
    run->snap.total_steps = total;
    uv_mutex_unlock(&run->mu);
    jobs_wake(w->jobs);

    store_keep keep = {.keep_last = spec.ckpt_keep_last, .best_k = spec.keep_best.k,
                       .best_metric = spec.keep_best.metric,
                       .best_max = spec.keep_best.maximize};
    int64_t every = spec.ckpt_every_steps;
    double every_s = spec.ckpt_every_seconds;
    double last_flush = w->t0, last_ckpt = w->t0, last_wake = 0;
    int64_t last_ckpt_step = rep.step;
    ckpt_bucket bucket = {CKPT_BURST, w->t0};
    int stop = STOP_NONE;
    int failed = 0, disk_full = 0, rc;
    char errmsg[900] = "";
    int64_t stride = 1; /* steps between clock reads, adapted to the job's pace */
    /* A sweep's trial meets ASHA's rungs (daemon/sweeps.h): at each it may be stopped. */
    int64_t rungs[SWEEP_MAX_RUNGS];
    int nrungs = sweeps_trial_rungs(&w->jobs->d->sweeps, run->id, total, rungs, SWEEP_MAX_RUNGS);
    int rung_i = 0;
    while (rung_i < nrungs && rungs[rung_i] <= rep.step)
        rung_i++;
    double last_val_loss = NAN, last_val_acc = NAN;
    /* Bounds that pause the job with a message: metrics.max_bytes and --min-free-disk. */
    int64_t row_limit = cfg_metrics_row_limit(spec.metrics_max_bytes, spec.ngroups + 1);
    int bound_hit = admit_disk_low(w->jobs->d->opts, errmsg, sizeof errmsg);
    double last_disk = w->t0;
    if (bound_hit)
        stop = STOP_PAUSE;
    int64_t hang_at = jobs_hang_step(spec.name); /* test hook (daemon/jobsched.c) */
    double max_runtime = spec.sched.max_runtime_s; /* job time: resumed runs go on counting */
    int runtime_hit = 0;
    /* train_total_steps is read each step: a learning-rate sweep ends itself early. */
    while (!bound_hit && train_steps_done(t) < train_total_steps(t)) {
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
            double now = stamp(w, rep.step);
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
                if ((rc = flush(w, &rep, &e))) {
                    disk_full = store_failure(errmsg, sizeof errmsg, rc, w->fail_what,
                                              w->fail_step, &e);
                    failed = 1;
                    break;
                }
                last_flush = now;
            }
        }
        if (w->nbatch == METRIC_BATCH) {
            if ((rc = flush(w, &rep, &e))) {
                disk_full = store_failure(errmsg, sizeof errmsg, rc, w->fail_what, w->fail_step,
                                          &e);
                failed = 1;
                break;
            }
            last_flush = w->now;
        }
        if (((every > 0 && rep.step % every == 0) ||
             (every_s > 0 && w->now - last_ckpt >= every_s)) &&
            ckpt_take(&bucket, w->now)) {
            /* The checkpoint's transaction carries the metric batch too. */
            if ((rc = checkpoint(w, t, &rep, &keep, &e))) {
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
        flush(w, &rep, &e);
    /* Everything queued is written (or dropped after a failure) before the job's end is
     * reported, and the worker's store connection is its own again. */
    if ((rc = drain(w, &e)) && !failed) {
        disk_full = store_failure(errmsg, sizeof errmsg, rc, w->fail_what, w->fail_step, &e);
        failed = 1;
    }
    total = train_total_steps(t);
    publish(w, &rep, total, daemon_now());
    if (failed && disk_full) {
        daemon_log(LOG_ERROR, "job %s paused: %s", run->id, errmsg);
        finish(w, STORE_PAUSED, errmsg);
    } else if (failed) {
        daemon_log(LOG_WARN, "job %s failed: %s", run->id, errmsg);
        finish(w, STORE_FAILED, errmsg);
    } else if (stop == STOP_CANCEL) {
        finish(w, STORE_CANCELLED, NULL);
    } else if (stop == STOP_STALL) {
        /* Restarted from its latest checkpoint: what the stalled run holds is not saved. */
        finish(w, STORE_QUEUED, NULL);
    } else {
        /* Completed, paused or stopping for a restart: the state is checkpointed first. */
        if (train_steps_done(t) != last_ckpt_step || last_ckpt_step == 0) {
            if ((rc = checkpoint(w, t, &rep, &keep, &e)) || (rc = drain(w, &e))) {
                disk_full = store_failure(errmsg, sizeof errmsg, rc, w->fail_what, w->fail_step,
                                          &e);
                daemon_log(LOG_WARN, "job %s %s: %s", run->id, disk_full ? "paused" : "failed",
                           errmsg);
                finish(w, disk_full ? STORE_PAUSED : STORE_FAILED, errmsg);
                goto out;
            }
        }
        if (stop == STOP_PAUSE && bound_hit)
            daemon_log(LOG_WARN, "job %s paused: %s", run->id, errmsg);
        if (stop == STOP_PAUSE)
            finish(w, STORE_PAUSED, bound_hit ? errmsg : NULL);
        else if (runtime_hit) {
            daemon_log(LOG_WARN, "job %s failed: %s", run->id, errmsg);
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

/* 1 once the pool is told to quit; else waits up to `ms` (or until a job is queued). */
static int wait_quit(worker_pool *p, int ms)
{
    struct jobmgr *m = p->jobs;
    uv_mutex_lock(&m->mu);
    if (!m->quit)
        uv_cond_timedwait(&m->cond, &m->mu, (uint64_t)ms * 1000000u);
    int quit = m->quit;
    uv_mutex_unlock(&m->mu);
    return quit;
}

/* Opens the worker's store connection, retrying every WORKER_RETRY_MS while it fails (the
 * worker counts as down meanwhile: /healthz says degraded and no job is taken by it).
 * ANNEALD_FAULT=worker-store makes every attempt fail, for the tests of that state. */
static int open_store(worker *wk, wctx *w)
{
    worker_pool *p = wk->pool;
    const char *fault = getenv("ANNEALD_FAULT");
    int down = 0;
    for (;;) {
        an_err e;
        an_err_clear(&e);
        int rc = fault && strstr(fault, "worker-store")
                     ? an_failc(&e, -EIO, NULL, "injected fault (ANNEALD_FAULT=worker-store)")
                     : store_open(&w->store, p->db_path, &e);
        if (rc == 0) {
            if (down) {
                atomic_fetch_sub(&p->down, 1);
                daemon_log(LOG_INFO, "worker %d: the store is open again; taking jobs",
                           wk->index);
            }
            return 0;
        }
        if (!down) {
            down = 1;
            atomic_fetch_add(&p->down, 1);
            daemon_log(LOG_ERROR, "worker %d: cannot open the store: %s; it takes no jobs and "
                       "retries every %d ms", wk->index, e.message, WORKER_RETRY_MS);
        }
        if (wait_quit(p, WORKER_RETRY_MS))
            return rc;
    }
}

static void worker_main(void *arg)
{
    worker *wk = arg;
    worker_pool *p = wk->pool;
    wctx *w = calloc(1, sizeof *w);
    if (!w)
        return;
    w->jobs = p->jobs;
    int open_rc = open_store(wk, w);
    int writer_rc = -1;
    if (open_rc == 0 && uv_mutex_init(&w->wr.mu) == 0) {
        if (uv_cond_init(&w->wr.cond) == 0) {
            uv_thread_options_t opt = {UV_THREAD_HAS_STACK_SIZE, 1 << 20};
            writer_rc = uv_thread_create_ex(&w->wr.thread, &opt, writer_main, w);
            if (writer_rc)
                uv_cond_destroy(&w->wr.cond);
        }
        if (writer_rc)
            uv_mutex_destroy(&w->wr.mu);
    }
    if (open_rc == 0 && writer_rc) {
        daemon_log(LOG_ERROR, "worker %d: cannot start its store writer thread", wk->index);
        open_rc = -1;
        atomic_fetch_add(&p->down, 1);
    }
    /* A worker without a store takes no job: each would be dropped. */
    for (; open_rc == 0;) {
        job_run *run = jobs_take(p->jobs);
        if (!run)
            break;
        w->run = run;
        w->nbatch = 0;
        w->nval = 0;
        run_job(w);
        w->run = NULL;
        jobs_done(p->jobs, run);
    }
    if (writer_rc == 0) {
        uv_mutex_lock(&w->wr.mu);
        w->wr.quit = 1;
        uv_cond_broadcast(&w->wr.cond);
        uv_mutex_unlock(&w->wr.mu);
        uv_thread_join(&w->wr.thread);
        uv_cond_destroy(&w->wr.cond);
        uv_mutex_destroy(&w->wr.mu);
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
