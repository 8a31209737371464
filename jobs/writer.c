/* writer — a worker's writer thread: the ring of metric batches and checkpoints the worker
 * fills and the writer commits, in order, on the worker's store connection (jobs/wctx.h
 * describes the hand-over). */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "jobs/service.h"
#include "jobs/thread.h"
#include "jobs/wctx.h"
#include "store/retain.h"
#include "util/log.h"
#include "util/util.h"

/* Reads the clock and gives the rows since the previous read their times, spread evenly over
 * the interval. A fast job reads the clock only every few dozen steps (about every
 * CLOCK_EVERY_S): one read costs as much as a whole step of a small model. Returns the
 * monotonic time read. */
/* The time of the k-th of c rows (1-based) between clock reads at t_prev and t: spread evenly,
 * the last one at t. */
static double spread(double t_prev, double t, size_t k, size_t c)
{
    return k == c ? t : t_prev + (t - t_prev) * (double)k / (double)c;
}

double wctx_stamp(wctx *w, int64_t step)
{
    double now = util_now();
    double t = w->time_base + (now - w->t0);
    double wall = (double)time(NULL);
    size_t c = w->nbatch - w->nstamped;
    wslot *s = &w->slot[w->wr.head];
    if (s->compact && c) {
        assert(s->nmarks < SLOT_MARKS);
        s->marks[s->nmarks++] = (wmark){.end = w->nbatch, .t_prev = w->t_last, .t = t,
                                        .wall = wall};
    } else {
        for (size_t k = 1; k <= c; k++) {
            store_metric *m = &w->batch[w->nstamped + k - 1];
            m->time = spread(w->t_last, t, k, c);
            m->wall = wall;
        }
    }
    w->nstamped = w->nbatch;
    w->t_last = t;
    w->now = now;
    w->now_step = step;
    return now;
}

/* A compact slot's steps written out as whole rows into `out`, with the times wctx_stamp gave
 * them. */
static void expand(const wslot *s, store_metric *out)
{
    size_t k0 = 0;
    for (size_t i = 0; i < s->nmarks; i++) {
        const wmark *mk = &s->marks[i];
        size_t c = mk->end - k0;
        for (size_t k = 1; k <= c; k++) {
            store_metric *m = &out[k0 + k - 1];
            const wrow *r = &s->crow[k0 + k - 1];
            m->step = r->step;
            m->loss = r->loss;
            m->grad_norm = r->grad_norm;
            m->n_lr = 1;
            m->lr[0] = r->lr;
            m->time = spread(mk->t_prev, mk->t, k, c);
            m->wall = mk->wall;
        }
        k0 = mk->end;
    }
    assert(k0 == s->nbatch);
}

void wctx_run_begin(wctx *w, int compact)
{
    uv_mutex_lock(&w->wr.mu);
    assert(w->wr.queued == 0);
    w->wr.nslots = compact ? WRITE_SLOTS : WIDE_SLOTS;
    w->wr.head = w->wr.tail = 0;
    uv_mutex_unlock(&w->wr.mu);
    w->compact = compact;
    wctx_slot_begin(w);
}

void wctx_slot_begin(wctx *w)
{
    wslot *s = &w->slot[w->wr.head];
    s->compact = w->compact;
    s->nmarks = 0;
    w->batch = s->batch;
    w->crow = s->crow;
    w->vbatch = s->vbatch;
    w->ev = s->ev;
    w->nbatch = 0;
    w->nval = 0;
    w->nev = 0;
    w->nstamped = 0;
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
    s->nev = w->nev;
    s->run = w->run;
    s->full_res = w->full_res;
    uv_mutex_lock(&w->wr.mu);
    /* The ring: the slot being filled is never one the writer holds. */
    int n = w->wr.nslots;
    assert(w->wr.queued >= 0 && w->wr.queued < n);
    assert(w->wr.head == (w->wr.tail + w->wr.queued) % n);
    w->wr.queued++;
    uv_cond_broadcast(&w->wr.cond);
    w->wr.head = (w->wr.head + 1) % n;
    while (w->wr.queued == n)
        uv_cond_wait(&w->wr.cond, &w->wr.mu);
    int rc = writer_failure(w, e);
    uv_mutex_unlock(&w->wr.mu);
    wctx_slot_begin(w);
    return rc;
}

/* Waits until the writer has written (or dropped) every queued slot. Returns its first
 * failure of this run, as submit. The worker may use w->store again afterwards. */
int wctx_drain(wctx *w, an_err *e)
{
    uv_mutex_lock(&w->wr.mu);
    while (w->wr.queued > 0)
        uv_cond_wait(&w->wr.cond, &w->wr.mu);
    int rc = writer_failure(w, e);
    uv_mutex_unlock(&w->wr.mu);
    return rc;
}

/* Blocks dropped per retention slice (one short transaction each), and slices per batch: a
 * steady job drops about one block per batch; a backlog (a run resumed on an old history)
 * drains over a few batches without holding the write lock long. */
#define RETAIN_SLICE 16
#define RETAIN_SLICES 4

/* metrics.full_resolution_steps: drops the job's rows beyond the newest ones, on the writer's
 * connection after the batch is committed. Rows since the latest checkpoint are kept (a
 * resume reads them), so a checkpoint lets a whole interval go at once: after one the slices
 * go on until nothing is left to drop (the final checkpoint of a finished job comes with no
 * batch after it). A failure keeps the rows a while longer (the next batch tries again), so
 * it is logged and not the run's failure. */
static void retain(wctx *w, wslot *s)
{
    for (int k = 0; s->blob || k < RETAIN_SLICES; k++) {
        an_err e;
        int dropped = 0;
        if (store_metrics_retain(&w->store, s->run->id, s->full_res, RETAIN_SLICE, &dropped,
                                 &e) != 0) {
            util_log(LOG_WARN, "job %s: old metric rows not dropped yet: %s", s->run->id,
                       e.message);
            break;
        }
        if (dropped < RETAIN_SLICE)
            break;
    }
}

/* Writes one slot on the writer thread: its checkpoint, or `nrows` metric rows from `rows` on
 * (the slot's own, or more when full slots after it are merged in, see writer_main), with the
 * progress `last` carries. 0, or the store's error with *what set. */
static int write_slot(wctx *w, wslot *s, const store_metric *rows, size_t nrows,
                      const wslot *last, const char **what, an_err *e)
{
    int rc = 0;
    *what = "metrics";
    if (s->blob) {
        double c0 = util_now();
        *what = "the checkpoint";
        rc = store_checkpoint_commit_fp16(&w->store, s->run->id, rows, s->nbatch,
                                          s->vbatch, s->nval, s->ev, s->nev, s->step, s->loss,
                                          s->blob, s->len, &s->keep,
                                          s->has_prog ? &s->prog : NULL, e);
        if (rc == 0) {
            atomic_fetch_add(&w->jobs->ckpt_bytes, s->len);
            atomic_fetch_add(&w->jobs->ckpt_count, 1);
            atomic_fetch_add(&w->jobs->ckpt_usec,
                             (uint64_t)((s->save_s + util_now() - c0) * 1e6));
            uv_mutex_lock(&s->run->mu);
            s->run->snap.ckpt_seq++;
            s->run->snap.ckpt_step = s->step;
            s->run->snap.ckpt_bytes = (int64_t)s->len;
            uv_mutex_unlock(&s->run->mu);
        }
    } else if (nrows) {
        rc = store_metrics_append_fp16(&w->store, s->run->id, rows, nrows, last->vbatch,
                                       last->nval, last->ev, last->nev,
                                       last->has_prog ? &last->prog : NULL, e);
    }
    if (rc == 0 && (nrows || s->blob) && s->full_res > 0)
        retain(w, s);
    /* /metrics counts what is committed: one metric row per optimizer step. */
    if (rc == 0 && nrows) {
        atomic_fetch_add(&w->jobs->steps_trained, (uint64_t)nrows);
        atomic_fetch_add(&w->jobs->samples_trained, (uint64_t)nrows * (uint64_t)w->batch_samples);
    }
    return rc;
}

/* How long the writer waits for a full batch's successor (see writer_main). */
#define PAIR_WAIT_NS 20000000ull

/* A full metric-only batch (no checkpoint, validation rows or fp16 events): one that a
 * following batch of the same run may be merged into. */
static int batch_alone(const wslot *s)
{
    return !s->blob && s->nbatch == METRIC_BATCH && !s->nval && !s->nev;
}

/* How many queued slots from the tail on the writer may commit as one, at most MERGE_MAX: a
 * full metric-only slot (no checkpoint, no validation rows, no fp16 events) and the queued
 * metric-only slots of the same run after it, each but the last full; a wide run's must also
 * be next to each other in the rows array, so their rows are contiguous (a compact run's are
 * written out next to each other). A fast job's writer that has fallen behind then pays a
 * transaction and the pyramid's per-batch work once for several batches. Call with wr.mu
 * held. */
static int mergeable(const wctx *w)
{
    int k = 1, t = w->wr.tail, n = w->wr.nslots;
    const wslot *s = &w->slot[t];
    if (s->blob)
        return 1;
    while (k < w->wr.queued && k < MERGE_MAX && (s->compact || t + k < n)) {
        const wslot *prev = &w->slot[(t + k - 1) % n], *next = &w->slot[(t + k) % n];
        if (!batch_alone(prev) || next->blob || next->run != s->run)
            break;
        k++;
    }
    return k;
}

/* The writer thread: writes queued slots in order until told to quit. After a failure it
 * drops the rest of the run's slots (the worker stops the run when it sees the failure). */
static void writer_main(void *arg)
{
    wctx *w = arg;
    prctl(PR_SET_NAME, "store-writer", 0, 0, 0);
    uv_mutex_lock(&w->wr.mu);
    for (;;) {
        while (w->wr.queued == 0 && !w->wr.quit)
            uv_cond_wait(&w->wr.cond, &w->wr.mu);
        if (w->wr.queued == 0)
            break;
        wslot *s = &w->slot[w->wr.tail];
        int skip = w->wr.rc != 0;
        int k = mergeable(w);
        /* A lone full batch comes from a fast job: the next one is a few milliseconds away,
         * and committing the two as one halves the commits, the pyramid's updates and the
         * pages written to the WAL; the worker meanwhile fills its other free slots. A
         * partial batch (a flush on time, the run's end) or a stop goes at once. */
        if (k == 1 && w->wr.queued == 1 && !skip && batch_alone(s)) {
            uv_cond_timedwait(&w->wr.cond, &w->wr.mu, PAIR_WAIT_NS);
            k = mergeable(w);
        }
        int n = w->wr.nslots;
        uv_mutex_unlock(&w->wr.mu);
        const wslot *last = &w->slot[(w->wr.tail + k - 1) % n];
        size_t nrows = (size_t)(k - 1) * METRIC_BATCH + last->nbatch;
        const store_metric *rows = s->compact ? w->rows[0] : s->batch;
        for (int j = 0; j < k && !skip && s->compact; j++)
            expand(&w->slot[(w->wr.tail + j) % n], w->rows[j]);
        an_err e;
        an_err_clear(&e);
        const char *what = "metrics";
        int rc = skip ? 0 : write_slot(w, s, rows, s->blob ? s->nbatch : nrows, last, &what,
                                       &e);
        void *done = s->blob;
        s->blob = NULL;
        uv_mutex_lock(&w->wr.mu);
        if (done && !w->wr.spare) {
            w->wr.spare = done;
            w->wr.spare_cap = s->len;
        } else
            free(done);
        if (rc && !w->wr.rc) {
            w->wr.rc = rc;
            w->wr.err = e;
            w->wr.what = what;
            w->wr.step = last->step;
        }
        if (!skip && !rc)
            w->wr.commits++;
        assert(w->wr.queued >= k);
        w->wr.tail = (w->wr.tail + k) % n;
        w->wr.queued -= k;
        uv_cond_broadcast(&w->wr.cond);
    }
    uv_mutex_unlock(&w->wr.mu);
}

/* Queues the metric batch (stamped, with the progress of `last`) for the writer. Returns the
 * writer's first failure so far (see submit). */
int wctx_flush(wctx *w, const train_report *last, an_err *e)
{
    if (w->nbatch == 0)
        return 0;
    if (w->nstamped < w->nbatch)
        wctx_stamp(w, last->step);
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
 * or the writer's first failure so far; the checkpoint itself is stored once wctx_drain()
 * returns 0. */
int wctx_checkpoint(wctx *w, train *t, const train_report *last, const store_keep *keep,
                    an_err *e)
{
    double c0 = util_now();
    uv_mutex_lock(&w->wr.mu);
    void *blob = w->wr.spare;
    size_t cap = w->wr.spare_cap, len = 0;
    w->wr.spare = NULL;
    w->wr.spare_cap = 0;
    uv_mutex_unlock(&w->wr.mu);
    int64_t step = train_steps_done(t);
    int rc = train_save_into(t, &blob, &cap, &len, e);
    if (rc) {
        free(blob);
        w->fail_what = "the checkpoint";
        w->fail_step = step;
        return rc;
    }
    return wctx_checkpoint_blob(w, blob, len, step, last, keep, util_now() - c0, e);
}

int wctx_checkpoint_blob(wctx *w, void *blob, size_t len, int64_t step,
                         const train_report *last, const store_keep *keep, double save_s,
                         an_err *e)
{
    if (w->nstamped < w->nbatch)
        wctx_stamp(w, last->step);
    wslot *s = &w->slot[w->wr.head];
    progress_of(w, last, &s->prog);
    s->has_prog = last->step > 0;
    s->blob = blob;
    s->len = len;
    s->step = step;
    s->loss = last->loss;
    s->keep = *keep;
    s->save_s = save_s;
    return submit(w, e);
}

int writer_start(wctx *w)
{
    for (int k = 0; k < WRITE_SLOTS; k++)
        w->slot[k].batch = k < WIDE_SLOTS ? w->rows[k] : NULL;
    w->wr.nslots = WIDE_SLOTS;
    int rc = uv_mutex_init(&w->wr.mu);
    if (rc)
        return rc;
    if ((rc = uv_cond_init(&w->wr.cond)) == 0) {
        rc = thread_start(&w->wr.thread, 1 << 20, writer_main, w);
        if (rc)
            uv_cond_destroy(&w->wr.cond);
    }
    if (rc)
        uv_mutex_destroy(&w->wr.mu);
    return rc;
}

void wctx_spare_free(wctx *w)
{
    uv_mutex_lock(&w->wr.mu);
    free(w->wr.spare);
    w->wr.spare = NULL;
    w->wr.spare_cap = 0;
    uv_mutex_unlock(&w->wr.mu);
}

void writer_stop(wctx *w)
{
    uv_mutex_lock(&w->wr.mu);
    w->wr.quit = 1;
    uv_cond_broadcast(&w->wr.cond);
    uv_mutex_unlock(&w->wr.mu);
    uv_thread_join(&w->wr.thread);
    uv_cond_destroy(&w->wr.cond);
    uv_mutex_destroy(&w->wr.mu);
}
