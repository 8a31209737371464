/* rankd — a multi-rank job the daemon supervises (`anneald-rank --job ID --socket PATH`,
 * started by the daemon's worker through mpirun: jobs/rankrun.c).
 *
 * Rank 0 alone connects to the daemon's Unix socket and reads the job (spec, data set, the
 * checkpoint to resume from; core/rankwire.h); it hands them to the other ranks with
 * MPI_Bcast, so every rank trains exactly what a one-process job of the daemon would. Before
 * each step rank 0 broadcasts one control word: a stop the daemon asked for (pause: checkpoint
 * first; cancel: not), a checkpoint due by time (ckpt_every_seconds, decided on rank 0's
 * clock so the ranks agree; so is one due by step count, which rank 0's token bucket spaces
 * as a one-process job's are: jobs/pace.h), and a request for every rank's step time. A
 * checkpoint gathers a sharded optimizer on
 * rank 0 first, so the blob is the one a one-process job saves and resumes at any world size.
 * Rank 0 sends metric rows in batches (at most SEND_EVERY_S apart, always before a checkpoint
 * so the checkpoint commits with its rows), and ends with RW_DONE or RW_FAIL. The daemon going
 * away (the socket closes) stops the ranks like a cancel. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <mpi.h>

#include "core/config.h"
#include "core/config_metrics.h"
#include "core/rankwire.h"
#include "core/train.h"
#include "jobs/pace.h"
#include "rank/rank.h"

#define CTL_PAUSE 1
#define CTL_CANCEL 2
#define CTL_CKPT 4
#define CTL_RANKMS 8
#define METRIC_ROWS 512
#define SEND_EVERY_S 0.1
#define RANKMS_EVERY_S 0.5
#define CHUNK ((size_t)1 << 30) /* MPI counts are ints */

/* Rank 0's end of the socket. */
typedef struct dlink {
    int fd;
    unsigned char in[64];
    size_t nin;
    int stop;       /* enum rw_stop asked for; 0 = none */
    int broken;     /* the daemon is gone or spoke nonsense: stop without a word */
    rw_metric rows[METRIC_ROWS];
    size_t nrows;
    double last_send;
} dlink;

static int send_all(int fd, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -EPIPE;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int send_frame(dlink *d, int type, const void *head, size_t hlen, const void *body,
                      size_t blen)
{
    if (d->broken)
        return -EPIPE;
    unsigned char h[RW_HEADER];
    rw_header(h, type, (uint32_t)(hlen + blen));
    if (send_all(d->fd, h, sizeof h) || (hlen && send_all(d->fd, head, hlen)) ||
        (blen && send_all(d->fd, body, blen))) {
        d->broken = 1;
        return -EPIPE;
    }
    return 0;
}

static int recv_all(int fd, void *buf, size_t len)
{
    unsigned char *p = buf;
    while (len) {
        ssize_t n = recv(fd, p, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -EPIPE;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads one frame of the expected type; the payload is NUL-terminated for the spec's text. */
static int recv_frame(int fd, int want, unsigned char **buf, size_t *len)
{
    unsigned char h[RW_HEADER];
    int type;
    uint32_t n;
    if (recv_all(fd, h, sizeof h) || rw_header_parse(h, &type, &n) || type != want)
        return -EPROTO;
    *buf = malloc((size_t)n + 1);
    if (!*buf)
        return -ENOMEM;
    if (recv_all(fd, *buf, n)) {
        free(*buf);
        *buf = NULL;
        return -EPIPE;
    }
    (*buf)[n] = 0;
    *len = n;
    return 0;
}

static int connect_to(const char *path)
{
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof a.sun_path)
        return -1;
    strcpy(a.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Rank 0: what the daemon sent since the last look, without waiting. */
static void poll_daemon(dlink *d)
{
    while (!d->broken) {
        ssize_t n = recv(d->fd, d->in + d->nin, sizeof d->in - d->nin, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            d->broken = 1;
            return;
        }
        d->nin += (size_t)n;
        while (d->nin >= RW_HEADER) {
            int type, how;
            uint32_t len;
            if (rw_header_parse(d->in, &type, &len) || type != RW_STOP ||
                len + RW_HEADER > sizeof d->in) {
                d->broken = 1;
                return;
            }
            if (d->nin < RW_HEADER + len)
                break;
            if (rw_stop_decode(d->in + RW_HEADER, len, &how)) {
                d->broken = 1;
                return;
            }
            if (!d->stop || how == RW_STOP_CANCEL)
                d->stop = how;
            memmove(d->in, d->in + RW_HEADER + len, d->nin - RW_HEADER - len);
            d->nin -= RW_HEADER + len;
        }
    }
}

static void send_rows(dlink *d)
{
    if (!d->nrows)
        return;
    size_t len = rw_metrics_size(d->rows, d->nrows);
    unsigned char *buf = malloc(len);
    if (!buf) {
        d->broken = 1;
        return;
    }
    rw_metrics_encode(d->rows, d->nrows, buf);
    send_frame(d, RW_METRICS, NULL, 0, buf, len);
    free(buf);
    d->nrows = 0;
    d->last_send = MPI_Wtime();
}

static void send_fail(dlink *d, const char *field, const char *msg)
{
    char text[900];
    int n = snprintf(text, sizeof text, "%s%s%s", field, field[0] ? ": " : "", msg);
    send_frame(d, RW_FAIL, NULL, 0, text, n > 0 ? strlen(text) : 0);
}

static void bcast_bytes(unsigned char *buf, size_t len)
{
    for (size_t off = 0; off < len; off += CHUNK) {
        size_t n = len - off < CHUNK ? len - off : CHUNK;
        MPI_Bcast(buf + off, (int)n, MPI_BYTE, 0, MPI_COMM_WORLD);
    }
}

/* Collective: the state gathered on rank 0 and sent as one checkpoint (with every row
 * before it sent first). */
static int checkpoint(dlink *d, train *t, int rank, double loss, an_err *e)
{
    if (rank == 0)
        send_rows(d);
    if (train_unshard_begin(t, e) != 0)
        return -EIO;
    int rc = 0;
    if (rank == 0) {
        void *blob = NULL;
        size_t len = 0;
        unsigned char head[RW_CKPT_HEAD];
        rw_ckpt_head(head, train_steps_done(t), loss);
        rc = train_save(t, &blob, &len, e);
        if (rc == 0)
            send_frame(d, RW_CKPT, head, sizeof head, blob, len);
        free(blob);
    }
    train_unshard_end(t);
    return rc;
}

/* Every rank's milliseconds per step spent outside the exchange since the last call, to
 * rank 0 and on to the daemon: the rank the others wait for stands out. Collective. */
static void send_rankms(dlink *d, comm_ctx *c, int rank, int world, double *since,
                        double *comm_since, int64_t *steps_since, int64_t step)
{
    double now = MPI_Wtime();
    int64_t n = step - *steps_since;
    double mine = n > 0 ? 1e3 * ((now - *since) - (c->comm_s - *comm_since)) / (double)n : 0;
    *since = now, *comm_since = c->comm_s, *steps_since = step;
    double all[RW_MAX_RANKS];
    if (world == 1)
        all[0] = mine;
    else
        MPI_Gather(&mine, 1, MPI_DOUBLE, all, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    if (rank == 0 && n > 0) {
        unsigned char buf[4 + 8 * RW_MAX_RANKS];
        size_t len = rw_rankms_encode(all, world, buf);
        send_frame(d, RW_RANKMS, NULL, 0, buf, len);
    }
}

int rankd_run(int rank, int world, const char *job, const char *sock)
{
    static dlink d; /* rank 0's; large (the row batch), so not on the stack */
    d.fd = -1;
    uint64_t lens[4] = {0, 0, 0, 0}; /* spec, data, resume blob, resume kind; [0] max = no */
    unsigned char *bufs[3] = {NULL, NULL, NULL};
    if (world > RW_MAX_RANKS) {
        if (rank == 0)
            fprintf(stderr, "anneald-rank: at most %d ranks\n", RW_MAX_RANKS);
        return 1;
    }
    if (rank == 0) {
        size_t n[3] = {0, 0, 0};
        int rc = -1;
        d.fd = connect_to(sock);
        if (d.fd < 0)
            fprintf(stderr, "anneald-rank: job %s: cannot connect to %s: %s\n", job, sock,
                    strerror(errno));
        else if ((rc = recv_frame(d.fd, RW_SPEC, &bufs[0], &n[0])) ||
                 (rc = recv_frame(d.fd, RW_DATA, &bufs[1], &n[1])) ||
                 (rc = recv_frame(d.fd, RW_RESUME, &bufs[2], &n[2])) || n[2] < 1)
            fprintf(stderr, "anneald-rank: job %s: the daemon sent no job (%s)\n", job,
                    strerror(rc ? -rc : EPROTO));
        if (rc || n[2] < 1)
            lens[0] = UINT64_MAX;
        else
            lens[0] = n[0], lens[1] = n[1], lens[2] = n[2] - 1, lens[3] = bufs[2][0];
    }
    MPI_Bcast(lens, 4, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    if (lens[0] == UINT64_MAX) {
        for (int i = 0; i < 3; i++)
            free(bufs[i]);
        if (d.fd >= 0)
            close(d.fd);
        return 1;
    }
    int ok = 1;
    if (rank != 0)
        for (int i = 0; i < 3; i++)
            ok &= (bufs[i] = malloc(lens[i] + 1 + (i == 2))) != NULL;
    int all_ok = 0;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    job_spec spec;
    int have_spec = 0;
    train *t = NULL;
    comm_ctx c = {.world = world, .rank = rank};
    an_err e;
    an_err_clear(&e);
    int rc = 1, agreed = 0;
    if (!all_ok) {
        an_fail(&e, "", "a rank is out of memory for the job");
        goto setup_failed;
    }
    bcast_bytes(bufs[0], lens[0]);
    bcast_bytes(bufs[1], lens[1]);
    bcast_bytes(bufs[2] + 1, lens[2]); /* rank 0's buffer starts with the kind byte */
    bufs[0][lens[0]] = 0;
    const unsigned char *blob = bufs[2] + 1;
    ok = job_spec_parse_stored((const char *)bufs[0], lens[0], &spec, &e) == 0;
    have_spec = ok;
    if (ok && spec.world_size != world)
        ok = !an_fail(&e, "world_size", "the spec has world_size %d but %d ranks were started",
                      spec.world_size, world);
    if (ok)
        ok = train_create(&t, &spec, lens[1] ? (const char *)bufs[1] : NULL, lens[1], &e) == 0;
    if (ok && world > 1 && train_set_ranks(t, world, rank, comm_reduce, &c) != 0)
        ok = !an_fail(&e, "world_size", "world_size times gradient_accumulation_steps is over "
                      "2^20");
    if (ok && world > 1 && comm_prepare(&c, train_nparams(t)) != 0)
        ok = !an_fail(&e, "", "out of memory for the exchange buffers");
    if (ok && lens[2])
        ok = (lens[3] ? train_restore_weights(t, blob, lens[2], &e)
                      : train_restore(t, blob, lens[2], &e)) == 0;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (all_ok && world > 1 && spec.zero_stage >= 1) {
        int zrc = train_shard_optimizer(t, comm_gather, &c, &e);
        ok = zrc == 0 || zrc == -ENOTSUP; /* gpt: full state on every rank, as warned */
        if (zrc == -ENOTSUP && rank == 0)
            fprintf(stderr, "anneald-rank: job %s: %s: %s\n", job, e.field, e.message);
        MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    }
    for (int i = 0; i < 3; i++) {
        free(bufs[i]);
        bufs[i] = NULL;
    }
    if (!all_ok) {
        if (ok)
            an_fail(&e, "", "another rank could not set the job up (see the daemon's log)");
        goto setup_failed;
    }

    if (rank == 0) {
        unsigned char st[RW_START_LEN];
        rw_start_encode(st, train_steps_done(t), train_total_steps(t));
        send_frame(&d, RW_START, NULL, 0, st, sizeof st);
    }
    int64_t every = spec.ckpt_every_steps, last_ckpt = train_steps_done(t);
    /* metrics.max_bytes: the job pauses at the step whose row fills it, as a one-process run
     * does; the daemon, which sees the rows later, would stop the ranks past it. */
    int64_t row_limit = cfg_metrics_row_limit(spec.metrics_max_bytes, spec.ngroups + 1);
    double every_s = spec.ckpt_every_seconds;
    double t0 = MPI_Wtime(), last_ckpt_t = t0, last_ms = t0, since = t0, comm_since = 0;
    ckpt_bucket bucket = {.tokens = CKPT_BURST, .at = t0};
    int64_t steps_since = train_steps_done(t);
    d.last_send = t0;
    train_report rep;
    memset(&rep, 0, sizeof rep);
    rep.loss = NAN;
    int how = RW_END_COMPLETED;
    for (;;) {
        int ctl = 0;
        if (rank == 0) {
            double now = MPI_Wtime();
            poll_daemon(&d);
            if (d.broken || d.stop == RW_STOP_CANCEL)
                ctl |= CTL_CANCEL;
            else if (d.stop == RW_STOP_PAUSE ||
                     (row_limit > 0 && train_steps_done(t) >= row_limit))
                ctl |= CTL_PAUSE;
            /* by step count too, here and not on every rank's own count, so that the token
             * bucket (jobs/pace.h) spaces them as it does a one-process job's: a due step
             * without a token leaves the checkpoint to the next multiple of every_steps */
            int64_t s = train_steps_done(t);
            int step_due = every > 0 && s > last_ckpt && s % every == 0;
            if ((step_due || (every_s > 0 && now - last_ckpt_t >= every_s)) &&
                ckpt_take(&bucket, now))
                ctl |= CTL_CKPT;
            if (now - last_ms >= RANKMS_EVERY_S) {
                ctl |= CTL_RANKMS;
                last_ms = now;
            }
        }
        if (world > 1)
            MPI_Bcast(&ctl, 1, MPI_INT, 0, MPI_COMM_WORLD);
        if (ctl & CTL_RANKMS)
            send_rankms(&d, &c, rank, world, &since, &comm_since, &steps_since,
                        train_steps_done(t));
        if (ctl & CTL_CANCEL) {
            how = RW_END_STOPPED;
            break;
        }
        int done = train_steps_done(t) >= train_total_steps(t);
        if ((ctl & (CTL_CKPT | CTL_PAUSE)) || done) {
            if (train_steps_done(t) > last_ckpt) {
                if (checkpoint(&d, t, rank, rep.loss, &e) != 0)
                    goto step_failed;
                last_ckpt = train_steps_done(t);
            }
            last_ckpt_t = MPI_Wtime();
            if (ctl & CTL_PAUSE)
                how = RW_END_STOPPED;
            if ((ctl & CTL_PAUSE) || done)
                break;
        }
        int src = train_step(t, &rep, &e);
        if (src) {
            /* a loss that is not finite fails every rank alike after the exchange (core/train.h):
             * the others wait for rank 0 to tell the daemon, or their abort could come first
             * and read as a rank that died */
            agreed = src == -EDOM && world > 1;
            goto step_failed;
        }
        if (rank == 0) {
            rw_metric *m = &d.rows[d.nrows++];
            m->step = rep.step;
            m->epoch = rep.epoch;
            m->loss = rep.loss;
            m->grad_norm = rep.grad_norm;
            m->time = MPI_Wtime() - t0;
            m->n_lr = rep.ngroups < RW_MAX_LR ? rep.ngroups : RW_MAX_LR;
            for (int g = 0; g < m->n_lr; g++)
                m->lr[g] = rep.lr[g];
            m->has_val = rep.has_val;
            m->val_loss = rep.val_loss;
            m->val_acc = rep.val_acc;
            m->loss_scale = rep.loss_scale; /* NAN unless fp16 */
            m->skipped_steps = rep.skipped_steps;
            m->skipped = rep.skipped;
            if (d.nrows == METRIC_ROWS || m->time + t0 - d.last_send >= SEND_EVERY_S)
                send_rows(&d);
        }
    }
    if (rank == 0)
        send_rows(&d);
    send_rankms(&d, &c, rank, world, &since, &comm_since, &steps_since, train_steps_done(t));
    if (rank == 0) {
        unsigned char b = (unsigned char)how;
        send_frame(&d, RW_DONE, NULL, 0, &b, 1);
        fprintf(stderr, "anneald-rank: job %s: %s at step %lld of %lld (world_size %d)\n", job,
                how == RW_END_COMPLETED ? "completed" : "stopped",
                (long long)train_steps_done(t), (long long)train_total_steps(t), world);
    }
    rc = 0;
    goto out;

step_failed:
    fprintf(stderr, "anneald-rank %d: job %s: %s\n", rank, job, e.message);
    if (rank == 0) {
        send_rows(&d);
        send_fail(&d, e.field, e.message);
    }
    if (agreed)
        MPI_Barrier(MPI_COMM_WORLD);
    MPI_Abort(MPI_COMM_WORLD, 1);
    goto out;

setup_failed:
    if (rank == 0) {
        fprintf(stderr, "anneald-rank: job %s: %s%s%s\n", job, e.field, e.field[0] ? ": " : "",
                e.message);
        send_fail(&d, e.field, e.message);
    }
    for (int i = 0; i < 3; i++)
        free(bufs[i]);
out:
    train_free(t);
    comm_free(&c);
    if (have_spec)
        job_spec_free(&spec);
    if (d.fd >= 0)
        close(d.fd);
    return rc;
}
