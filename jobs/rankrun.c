/* rankrun — the run of a multi-rank job (world_size > 1) on a worker.
 *
 * The worker starts mpirun with the rank program in a session of its own (jobs/rankproc.c).
 * Rank 0 connects to the run's Unix socket; the worker sends it the job (spec, data set, the
 * checkpoint to resume from: core/rankwire.h) and feeds what it sends back — metric batches,
 * checkpoints, step times — into the writer ring a one-process run uses (jobs/writer.c), so
 * the daemon stays the only SQLite writer and metrics, events, checkpoints and resume work
 * alike. A pause, preemption, shutdown or a limit (max_runtime_s, metrics.max_bytes, the free
 * disk) is forwarded as a checkpointing stop, a cancel as a plain one. The watchdog's
 * STOP_STALL (a hung rank hangs its peers forever) and a dead rank (mpirun exits, or the
 * socket closes, without RW_DONE) end the whole session and send the job back to the queue
 * through the watchdog's restart path (max_restarts). The worker never blocks on the ranks:
 * it reads the socket without waiting and looks at the run's stop flag every POLL_MS. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/blob.h"
#include "core/config_metrics.h"
#include "core/jsonstrict.h"
#include "core/rankwire.h"
#include "jobs/admit.h"
#include "jobs/loader.h"
#include "jobs/mpirun.h"
#include "jobs/rankproc.h"
#include "jobs/rankrun.h"
#include "jobs/service.h"
#include "util/log.h"
#include "util/util.h"


#define POLL_MS 50
#define CONNECT_TIMEOUT_S 120.0 /* mpirun and every rank's MPI_Init */
#define STOP_TIMEOUT_S 120.0    /* a pause's checkpoint and the ranks' exit (at most) */
#define SHUTDOWN_STOP_S 20.0    /* the same when the daemon stops: within the unit's
                                   TimeoutStopSec (30 s); past it the job resumes from its
                                   previous checkpoint after the restart */
#define MPIRUN_REPORT_S 2.0     /* mpirun's own exit after a rank died, for its status */
#define EXIT_TIMEOUT_S 10.0     /* mpirun's exit after RW_DONE */
#define MAX_ROWS 4096

typedef struct rrun {
    wctx *w;
    rank_procs p;              /* mpirun, its session and the socket's directory */
    int fd;                    /* rank 0's connection */
    frame_in in;
    train_report last;         /* the latest row, for the progress and checkpoints */
    store_keep keep;
    int64_t total;
    int started;               /* RW_START came */
    int finder;                /* an LR finder's sweep: it may end before its total */
    int ended;                 /* 1 RW_DONE, 2 RW_FAIL */
    int bound;                 /* a limit stopped the ranks: 1 max_runtime_s (fails), 2 the
                                  metrics' bytes or the disk's free space (pauses) */
    char bound_msg[600];
    double last_disk;
    int how;                   /* RW_DONE's enum rw_end */
    char err[900];
    rw_metric rows[MAX_ROWS];
    double last_flush, last_wake;
} rrun;

/* ---- what rank 0 sends ---- */

static void publish(rrun *r)
{
    wctx *w = r->w;
    job_snap *s = &w->run->snap;
    double now = util_now();
    uv_mutex_lock(&w->run->mu);
    s->step = r->last.step;
    s->epoch = r->last.epoch;
    s->total_steps = r->total;
    s->loss = r->last.loss;
    s->n_lr = r->last.ngroups < STORE_MAX_LR ? r->last.ngroups : STORE_MAX_LR;
    for (int g = 0; g < s->n_lr; g++)
        s->lr[g] = r->last.lr[g];
    s->loss_scale = r->last.loss_scale; /* fp16: the latest step's scale, else NAN */
    s->skipped_steps = r->last.skipped_steps;
    double rate = pace_rate(&w->pace, now, r->last.step);
    if (rate > 0) {
        w->samples_per_sec = rate * (double)w->batch_samples;
        s->samples_per_sec = w->samples_per_sec;
        s->eta_s = (double)(r->total - r->last.step) / rate;
    }
    uv_mutex_unlock(&w->run->mu);
    pace_tick(&w->pace, now, r->last.step);
    if (now - r->last_wake >= WAKE_INTERVAL_S) {
        jobs_wake(w->jobs);
        r->last_wake = now;
    }
}

static int on_metrics(rrun *r, const unsigned char *p, size_t len, an_err *e)
{
    wctx *w = r->w;
    size_t n;
    if (rw_metrics_decode(p, len, r->rows, MAX_ROWS, &n))
        return an_failc(e, -EPROTO, "", "rank 0 sent a malformed metric batch");
    /* one row per step, in order, within the run: what the store and the job's progress
     * take for granted of a one-process job */
    for (size_t i = 0; i < n; i++)
        if (!r->started || r->rows[i].step != r->last.step + (int64_t)i + 1 ||
            r->rows[i].step > r->total)
            return an_failc(e, -EPROTO, "", "rank 0 sent the metric row of step %lld after "
                            "step %lld (of %lld)", (long long)r->rows[i].step,
                            (long long)(r->last.step + (int64_t)i), (long long)r->total);
    double wall = (double)time(NULL);
    for (size_t i = 0; i < n; i++) {
        const rw_metric *m = &r->rows[i];
        if (wctx_slot_full(w)) {
            int rc = wctx_flush(w, &r->last, e);
            if (rc)
                return rc;
            r->last_flush = util_now();
        }
        store_metric *s = &w->batch[w->nbatch++];
        s->step = m->step;
        s->loss = m->loss;
        s->n_lr = m->n_lr < STORE_MAX_LR ? m->n_lr : STORE_MAX_LR;
        memcpy(s->lr, m->lr, sizeof(double) * (size_t)s->n_lr);
        s->grad_norm = m->grad_norm;
        s->time = w->time_base + m->time; /* the ranks' clock: each step's own time */
        s->wall = wall;
        w->nstamped = w->nbatch;
        w->t_last = s->time;
        if (m->has_val) {
            store_val_metric *v = &w->vbatch[w->nval++];
            v->step = m->step;
            v->val_loss = m->val_loss;
            v->val_acc = m->val_acc;
            uv_mutex_lock(&w->run->mu);
            w->run->snap.val_step = m->step;
            w->run->snap.val_loss = m->val_loss;
            w->run->snap.val_acc = m->val_acc;
            uv_mutex_unlock(&w->run->mu);
        }
        wctx_fp16_note(w, m->step, m->loss_scale, m->skipped);
        r->last.loss_scale = m->loss_scale;
        r->last.skipped_steps = m->skipped_steps;
        r->last.step = m->step;
        r->last.epoch = m->epoch;
        r->last.loss = m->loss;
        r->last.grad_norm = m->grad_norm;
        r->last.ngroups = s->n_lr;
        memcpy(r->last.lr, m->lr, sizeof(double) * (size_t)s->n_lr);
    }
    if (n)
        publish(r);
    return 0;
}

/* One frame from rank 0 (f->buf is consumed). */
static int on_frame(rrun *r, frame_in *f, an_err *e)
{
    wctx *w = r->w;
    unsigned char *buf = f->buf;
    f->buf = NULL;
    int rc = 0;
    switch (f->type) {
    case RW_START: {
        int64_t done, total;
        uint32_t version;
        int src = rw_start_decode(buf, f->len, &done, &total, &version);
        if (src == -EPROTONOSUPPORT) {
            rc = an_failc(e, -EPROTO, "world_size", "the rank program is of another build "
                          "(its protocol version %u, this daemon's %d): install anneald-rank "
                          "from the daemon's build wherever the ranks run", version, RW_VERSION);
            break;
        }
        if (src || r->started) {
            rc = an_failc(e, -EPROTO, "", "rank 0 sent a malformed start");
            break;
        }
        r->started = 1;
        r->total = total;
        r->last.step = done;
        uv_mutex_lock(&w->run->mu);
        w->run->snap.total_steps = total;
        w->run->snap.step = done;
        uv_mutex_unlock(&w->run->mu);
        break;
    }
    case RW_METRICS:
        rc = on_metrics(r, buf, f->len, e);
        break;
    case RW_CKPT: {
        int64_t step;
        double loss;
        const unsigned char *blob;
        size_t blen;
        if (rw_ckpt_decode(buf, f->len, &step, &loss, &blob, &blen) || step != r->last.step) {
            rc = an_failc(e, -EPROTO, "", "rank 0 sent a checkpoint out of step");
            break;
        }
        /* stored only if it is a training state of that step (its framing and checksum) */
        blob_view v;
        an_err be;
        if (blob_parse(blob, blen, &v, &be) || blob_steps(&v) != step) {
            rc = an_failc(e, -EPROTO, "", "rank 0 sent a checkpoint at step %lld that is not a "
                          "training state of it", (long long)step);
            break;
        }
        memmove(buf, blob, blen); /* the writer frees what it is given */
        rc = wctx_checkpoint_blob(w, buf, blen, step, &r->last, &r->keep, 0, e);
        buf = NULL;
        r->last_flush = util_now();
        break;
    }
    case RW_RANKMS: {
        double ms[RW_MAX_RANKS];
        int n;
        if (rw_rankms_decode(buf, f->len, ms, RW_MAX_RANKS, &n)) {
            rc = an_failc(e, -EPROTO, "", "rank 0 sent malformed step times");
            break;
        }
        uv_mutex_lock(&w->run->mu);
        w->run->snap.n_rank_ms = n;
        memcpy(w->run->snap.rank_step_ms, ms, sizeof(double) * (size_t)n);
        uv_mutex_unlock(&w->run->mu);
        break;
    }
    case RW_DONE:
        if (rw_done_decode(buf, f->len, &r->how))
            rc = an_failc(e, -EPROTO, "", "rank 0 sent a malformed end");
        /* an LR finder's sweep that diverged ends itself early (its total shrinks) */
        else if (r->how == RW_END_COMPLETED &&
                 (!r->started || r->last.step > r->total ||
                  (r->last.step != r->total && !r->finder)))
            rc = an_failc(e, -EPROTO, "", "rank 0 reported the job completed at step %lld of "
                          "%lld", (long long)r->last.step, (long long)r->total);
        else
            r->ended = 1;
        break;
    case RW_FAIL: {
        /* text: its first 800 bytes as UTF-8 (what is not a character becomes U+FFFD), a NUL
         * or another control byte '?' */
        size_t n = f->len < 800 ? f->len : 800, m = 0;
        for (size_t i = 0; i < n; i++)
            if (buf[i] < 0x20 && buf[i] != '\n' && buf[i] != '\t')
                buf[i] = '?';
        char *t = utf8_repair((const char *)buf, n, &m);
        size_t keep = 0; /* whole characters that fit */
        for (size_t k; t && keep < m; keep += k) {
            unsigned char c = (unsigned char)t[keep];
            k = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
            if (keep + k >= sizeof r->err)
                break;
        }
        snprintf(r->err, sizeof r->err, "%.*s", (int)keep, t ? t : "");
        free(t);
        r->ended = 2;
        break;
    }
    default:
        rc = an_failc(e, -EPROTO, "", "rank 0 sent a frame of type %d", f->type);
    }
    free(buf);
    return rc;
}

/* ---- the job ---- */

/* Sends rank 0 the job; the blob is freed. */
static int send_job(rrun *r, const store_job *row, const char *csv, size_t csv_len, void *blob,
                    size_t len, int kind)
{
    unsigned char k = (unsigned char)kind;
    int rc = rankproc_send(r->fd, RW_SPEC, row->spec_json, strlen(row->spec_json), NULL, 0);
    if (!rc)
        rc = rankproc_send(r->fd, RW_DATA, csv, csv_len, NULL, 0);
    if (!rc)
        rc = rankproc_send(r->fd, RW_RESUME, &k, 1, blob, len);
    free(blob);
    return rc;
}

/* The limits a one-process run keeps between steps (jobs/jobrun.c), kept here between
 * frames: 0, or r->bound with its message. */
static int check_bounds(rrun *r, const job_spec *spec, int64_t row_limit)
{
    wctx *w = r->w;
    double now = util_now(), ran = w->time_base + (now - w->t0);
    if (spec->sched.max_runtime_s > 0 && ran >= spec->sched.max_runtime_s &&
        r->last.step < r->total) {
        snprintf(r->bound_msg, sizeof r->bound_msg, "max_runtime: the job trained for %.3f s "
                 "in total, its max_runtime_s is %.6g; checkpointed at the step its ranks were "
                 "at", ran, spec->sched.max_runtime_s);
        return 1;
    }
    if (row_limit > 0 && r->last.step >= row_limit) {
        /* The words of a one-process run (jobs/jobrun.c): rank 0 pauses at the same step. */
        snprintf(r->bound_msg, sizeof r->bound_msg, "metrics.max_bytes: the job's metrics "
                 "reached %" PRId64 " rows of %" PRId64 " bytes, as much as its %" PRId64
                 " bytes allow; paused at step %" PRId64 " with every checkpoint and row kept. "
                 "To train on, submit a job with resume_from this one and a larger "
                 "metrics.max_bytes", r->last.step, METRICS_ROW_BYTES(spec->ngroups + 1),
                 spec->metrics_max_bytes, r->last.step);
        return 2;
    }
    if (now - r->last_disk >= DISK_CHECK_S) {
        r->last_disk = now;
        if (admit_disk_low(w->jobs->d->opts, r->bound_msg, sizeof r->bound_msg))
            return 2;
    }
    return 0;
}

static store_job_state stopped_state(int stop)
{
    return stop == STOP_CANCEL ? STORE_CANCELLED : stop == STOP_PAUSE ? STORE_PAUSED
                                                                      : STORE_QUEUED;
}

/* A rank died or hung: the session is ended and the job goes back to the queue through the
 * watchdog's restart path (counted against max_restarts), unless a stop asked for another end.
 * The reason goes on the run, so a failure after max_restarts says what happened. */
static store_job_state crashed(rrun *r, const char *what)
{
    wctx *w = r->w;
    /* mpirun sees a dead rank and exits by itself: a moment for that, so its status and output
     * say what happened rather than the SIGKILL that ends the session. */
    double t0 = util_now();
    int exited = rankproc_reap(&r->p, 0);
    while (!exited && util_now() - t0 < MPIRUN_REPORT_S) {
        uv_sleep(20);
        exited = rankproc_reap(&r->p, 0);
    }
    rankproc_end(&r->p);
    char tail[300], how[64];
    rankproc_tail(&r->p, tail, sizeof tail);
    if (!exited)
        snprintf(how, sizeof how, "mpirun ended by the daemon");
    else
        snprintf(how, sizeof how, "mpirun %s %d",
                 WIFSIGNALED(r->p.status) ? "killed by signal" : "exit status",
                 WIFSIGNALED(r->p.status) ? WTERMSIG(r->p.status) : WEXITSTATUS(r->p.status));
    int expected = STOP_NONE;
    int mine = atomic_compare_exchange_strong(&w->run->stop, &expected, STOP_STALL);
    int stop = atomic_load(&w->run->stop);
    if (mine) {
        uv_mutex_lock(&w->run->mu);
        snprintf(w->run->snap.restart_why, sizeof w->run->snap.restart_why, "%s (%s)%s%s", what,
                 how, tail[0] ? ": " : "", tail);
        uv_mutex_unlock(&w->run->mu);
    }
    uv_mutex_lock(&w->run->mu);
    int last = w->run->snap.restarts >= w->run->max_restarts; /* jobs_sched_requeue fails it */
    uv_mutex_unlock(&w->run->mu);
    util_log(LOG_WARN, "job %s: %s (%s)%s%s; %s", w->run->id, what, how, tail[0] ? ": " : "",
             tail, stop != STOP_STALL ? "stopped as asked"
                   : last ? "no restart left (max_restarts): it fails"
                          : "back to the queue to resume from its latest checkpoint");
    return stop == STOP_STALL ? STORE_QUEUED : stopped_state(stop);
}

store_job_state rankrun(wctx *w, const store_job *row, const job_spec *spec, char *err,
                        size_t errsz)
{
    rrun *r = calloc(1, sizeof *r);
    err[0] = 0;
    if (!r) {
        snprintf(err, errsz, "out of memory for the ranks' run");
        return STORE_FAILED;
    }
    r->w = w;
    r->finder = spec->lrfind_stop > 0;
    r->p.lfd = r->fd = -1;
    r->keep = (store_keep){.keep_last = spec->ckpt_keep_last, .best_k = spec->keep_best.k,
                           .best_metric = spec->keep_best.metric,
                           .best_max = spec->keep_best.maximize};
    r->last.loss = NAN;
    r->last.loss_scale = NAN;
    store_job_state st = STORE_FAILED;
    an_err e;
    an_err_clear(&e);
    char *csv = NULL;
    size_t csv_len = 0;
    void *blob = NULL;
    size_t blen = 0;
    int kind = 0;
    int64_t step = 0;
    int rc = loader_data(&w->store, spec, row->dataset_ref, &csv, &csv_len, &e);
    if (!rc)
        rc = wctx_pick_resume_blob(w, row, spec, &blob, &blen, &kind, &step, &e);
    if (rc) {
        snprintf(err, errsz, "%s%s%s", e.field, e.field[0] ? ": " : "", e.message);
        st = rc == -ENOSPC ? STORE_PAUSED : STORE_FAILED;
        goto out;
    }
    if ((rc = rankproc_socket(&r->p))) {
        snprintf(err, errsz, "world_size: cannot make the ranks' socket: %s", strerror(-rc));
        goto out;
    }
    if (rankproc_spawn(&r->p, w->jobs->d->opts, spec->world_size, row->id, err, errsz))
        goto out;

    w->t0 = util_now();
    w->first_step = step;
    w->batch_samples = spec->train_batch_size;
    w->full_res = spec->metrics_full_res;
    w->samples_per_sec = NAN;
    memset(&w->pace, 0, sizeof w->pace);
    pace_add(&w->pace, w->t0, step);
    wctx_run_begin(w, 0); /* wide: the ranks' rows come whole, each with its own time */
    /* fp16: rank 0 sends each row's loss scale; the events go as in a one-process run. */
    w->fp16_prev = wctx_fp16_scale_at(w, row->id, step);
    w->wr.rc = 0;
    w->t_last = w->time_base;
    r->last.step = step;
    r->last_flush = w->t0;
    uv_mutex_lock(&w->run->mu);
    w->run->snap.started = 1; /* the watchdog looks from here: a rank hung in MPI_Init too */
    w->run->snap.step = step;
    w->run->snap.world_size = spec->world_size;
    uv_mutex_unlock(&w->run->mu);
    jobs_wake(w->jobs);

    /* Rank 0 connects. */
    double since = util_now();
    while (r->fd < 0) {
        int stop = atomic_load(&w->run->stop);
        if (stop != STOP_NONE) {
            rankproc_end(&r->p);
            st = stopped_state(stop);
            goto out;
        }
        if (rankproc_reap(&r->p, 0)) {
            /* mpirun itself failed (hosts, installation): a restart would fail alike */
            char tail[600];
            rankproc_tail(&r->p, tail, sizeof tail);
            snprintf(err, errsz, "world_size: mpirun ended (%s %d) before rank 0 connected%s%s",
                     WIFSIGNALED(r->p.status) ? "signal" : "exit status",
                     WIFSIGNALED(r->p.status) ? WTERMSIG(r->p.status) : WEXITSTATUS(r->p.status),
                     tail[0] ? ": " : "", tail);
            rankproc_end(&r->p);
            goto out;
        }
        if (util_now() - since > CONNECT_TIMEOUT_S) {
            st = crashed(r, "rank 0 did not connect in time");
            goto out;
        }
        struct pollfd pf = {r->p.lfd, POLLIN, 0};
        if (poll(&pf, 1, POLL_MS) > 0)
            r->fd = accept4(r->p.lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    }
    rc = send_job(r, row, csv, csv_len, blob, blen, kind);
    blob = NULL;
    if (rc) {
        st = crashed(r, "rank 0 did not take the job");
        goto out;
    }

    int sent = STOP_NONE;
    double stop_at = 0, stop_limit = STOP_TIMEOUT_S;
    int write_failed = 0;           /* a store write failed: the rows left are not written */
    int64_t row_limit = cfg_metrics_row_limit(spec->metrics_max_bytes, spec->ngroups + 1);
    r->last_disk = util_now();
    for (;;) {
        if (!r->bound)
            r->bound = check_bounds(r, spec, row_limit);
        int stop = atomic_load(&w->run->stop);
        if (stop == STOP_NONE && r->bound)
            stop = STOP_PAUSE; /* the ranks checkpoint and exit; the end says why */
        if (stop == STOP_STALL) {
            rankproc_end(&r->p);
            util_log(LOG_WARN, "job %s: ended its %d ranks for the restart", row->id,
                     spec->world_size);
            st = STORE_QUEUED;
            break;
        }
        if (stop == STOP_CANCEL) {
            /* No checkpoint is wanted: the session ends now, also with a rank that hangs.
             * What rank 0 sent so far is kept. */
            rankproc_end(&r->p);
            st = STORE_CANCELLED;
            break;
        }
        if (stop != STOP_NONE && stop != sent) {
            unsigned char how = RW_STOP_PAUSE;
            rankproc_send(r->fd, RW_STOP, &how, 1, NULL, 0); /* a dead rank 0 shows below */
            sent = stop;
            stop_at = util_now();
            /* A hung rank would hold the stop: a pause waits no longer than the watchdog
             * would, a shutdown no longer than the daemon's own stop may take. */
            stop_limit = sent == STOP_SHUTDOWN ? SHUTDOWN_STOP_S : STOP_TIMEOUT_S;
            if (spec->sched.stall_timeout_s > 0 && spec->sched.stall_timeout_s < stop_limit)
                stop_limit = spec->sched.stall_timeout_s;
        }
        if (sent != STOP_NONE && util_now() - stop_at > stop_limit) {
            st = crashed(r, "the ranks did not stop in time");
            break;
        }
        struct pollfd pf = {r->fd, POLLIN, 0};
        poll(&pf, 1, POLL_MS);
        /* read what is there; once mpirun is gone, once more: what rank 0 sent before it
         * exited (its RW_DONE) may have come after the first read */
        int frc = 0, gone = 0;
        for (int pass = 0; pass < 2 && !rc && !r->ended && (pass == 0 || gone); pass++) {
            while (!r->ended && (frc = rankproc_read(r->fd, &r->in)) == 1)
                if ((rc = on_frame(r, &r->in, &e)))
                    break;
            gone = gone || rankproc_reap(&r->p, 0);
        }
        if (rc) {
            snprintf(err, errsz, "%s", e.message);
            rankproc_end(&r->p);
            st = rc == -ENOSPC ? STORE_PAUSED : STORE_FAILED;
            write_failed = rc == -ENOSPC;
            break;
        }
        if (r->ended)
            break;
        if (frc < 0 || gone) {
            st = crashed(r, frc == -EPROTO ? "rank 0 sent a malformed frame"
                                           : "a rank died");
            break;
        }
        if (w->nbatch && util_now() - r->last_flush >= METRIC_FLUSH_S) {
            if ((rc = wctx_flush(w, &r->last, &e))) {
                snprintf(err, errsz, "writing metrics: %s", e.message);
                rankproc_end(&r->p);
                st = rc == -ENOSPC ? STORE_PAUSED : STORE_FAILED;
                write_failed = 1;
                break;
            }
            r->last_flush = util_now();
        }
    }
    if (r->ended) {
        double t = util_now();
        while (!rankproc_reap(&r->p, 0) && util_now() - t < EXIT_TIMEOUT_S)
            uv_sleep(10);
        rankproc_end(&r->p); /* strays, and mpirun itself if it did not exit */
        int stop = atomic_load(&w->run->stop);
        if (!r->bound) /* rank 0 stops by itself at the metrics' row limit: the last rows */
            r->bound = check_bounds(r, spec, row_limit);
        if (r->ended == 2)
            st = STORE_FAILED;
        else if (r->how == RW_END_COMPLETED)
            st = STORE_COMPLETED;
        else if (r->bound && stop != STOP_CANCEL) {
            st = r->bound == 1 ? STORE_FAILED : STORE_PAUSED;
            snprintf(err, errsz, "%s", r->bound_msg);
        } else
            st = stopped_state(stop);
    }
    if (st == STORE_FAILED && !err[0])
        snprintf(err, errsz, "%s", r->err[0] ? r->err : "the ranks failed");
    /* The rows rank 0 sent are kept whatever the end (a job that fails keeps its history up
     * to the failing step, as a one-process run does), unless writing is what failed. */
    if (w->nbatch && !write_failed)
        wctx_flush(w, &r->last, &e);
    if ((rc = wctx_drain(w, &e)) && st != STORE_FAILED) {
        snprintf(err, errsz, "writing %s at step %" PRId64 ": %s", w->fail_what, w->fail_step,
                 e.message);
        st = rc == -ENOSPC ? STORE_PAUSED : STORE_FAILED;
    }
    publish(r);
out:
    if (r->p.pid > 0)
        rankproc_end(&r->p);
    free(blob);
    free(csv);
    rankproc_cleanup(&r->p);
    if (r->fd >= 0)
        close(r->fd);
    free(r->in.buf);
    free(r);
    return st;
}
