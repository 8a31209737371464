/* wctx — a worker's context, shared by the files of the worker: jobs/workers.c (the pool),
 * jobs/writer.c (the writer thread and its queue of batches) and jobs/jobrun.c (the run
 * of one job). Nothing else includes it. */
#ifndef ANNEALD_WCTX_H
#define ANNEALD_WCTX_H

#include <stdint.h>

#include <uv.h>

#include "core/train.h"
#include "jobs/jobmgr.h"
#include "jobs/pace.h"
#include "store/store.h"
#include "store/fp16.h"

#define METRIC_BATCH 4096      /* rows per metrics transaction */
#define METRIC_FLUSH_S 0.25    /* …or this often */
#define WAKE_INTERVAL_S 0.05   /* loop wake-ups at most this often */
#define DISK_CHECK_S 1.0       /* free space of the store checked this often */
#define CLOCK_EVERY_S 200e-6   /* read the clock about this often… */
#define CLOCK_STRIDE_MAX 1024   /* …but at least every this many steps */
/* Batches a worker has in flight: one it fills, the rest queued for (or being written by) its
 * writer thread. The worker waits only when all of them are queued, so a slow disk slows
 * training down instead of growing memory.
 *
 * A run with one learning rate (nearly every job) fills compact slots, 32 bytes a step: 64 of
 * them hold about 110 ms of the fastest job's steps. They have to: the writer's own copy of
 * the WAL into the database (store/walcopy.h), which lets the WAL start over every 64 MiB,
 * takes 30–80 ms with its fsyncs, and with 8 slots (15 ms) the worker waited it out three
 * times in a 5M-step job, about 4 % of the job's time.
 * The other runs (several learning rates, a multi-rank job's rows) fill whole store_metric
 * rows, 576 bytes each (2.4 MB a slot), and have WIDE_SLOTS of them. */
#define WRITE_SLOTS 64
#define WIDE_SLOTS 8
/* Slots one commit takes at most (writer.c merges a fast job's full batches): a compact run's
 * slots are written out into wctx.rows for it, so this is rows' length in batches. */
#define MERGE_MAX WIDE_SLOTS
/* What else a slot holds at most. A run adds at most one mark, validation row and fp16 event
 * per step, and a flush at most one more mark; a slot without room for that is queued first
 * (wctx_slot_full). A mark is a clock read: one per step only for steps slower than
 * CLOCK_EVERY_S, of which a slot takes at most METRIC_FLUSH_S' worth. */
#define SLOT_MARKS 2048
#define SLOT_VALS 1024
#define SLOT_EVENTS 1024

/* An optimizer step of a job with one learning rate, as the worker records it (wslot). */
typedef struct wrow {
    int64_t step;
    double loss, grad_norm, lr;
} wrow;

/* A clock read (wctx_stamp) in a compact slot: the rows from the previous mark's end to `end`
 * get times spread evenly from t_prev (the previous read's) to t. */
typedef struct wmark {
    size_t end;
    double t_prev, t, wall;
} wmark;

/* One batch of rows for the writer: metrics, validation rows and progress, and optionally a
 * checkpoint that commits with them in one transaction. */
typedef struct wslot {
    /* A wide slot's METRIC_BATCH rows: wctx.rows[k] for the k-th of the first WIDE_SLOTS
     * (set by writer_start), NULL for the others. */
    store_metric *batch;
    /* A compact slot has its steps in crow, 32 bytes each, and its clock reads in marks; the
     * writer writes them out into wctx.rows just before it commits them. A row of batch is
     * 576 bytes, a new cache line every step, and that line was last in the writer's cache:
     * filled by the worker step by step, each row's line held the training up while it came
     * (about 5 % of the fastest job). */
    int compact;
    wrow crow[METRIC_BATCH];
    wmark marks[SLOT_MARKS];
    size_t nmarks;
    store_val_metric vbatch[SLOT_VALS]; /* validation rows of the batch */
    store_fp16_event ev[SLOT_EVENTS];   /* fp16 jobs' loss-scale events (store/fp16.c) */
    size_t nbatch;             /* rows in batch */
    size_t nval;               /* rows in vbatch */
    size_t nev;                /* events in ev */
    job_run *run;              /* the job the rows belong to */
    store_progress prog;       /* progress written with the rows */
    int has_prog;              /* 0 = write no progress */
    void *blob;                /* checkpoint state (owned; freed by the writer), or NULL */
    size_t len;                /* bytes in blob */
    int64_t step;              /* step of the checkpoint, or of the batch's last row */
    double loss;               /* the checkpoint's loss */
    store_keep keep;           /* what retention keeps (keep_last, keep_best, pins) */
    double save_s;             /* seconds the worker spent serializing the checkpoint */
    int64_t full_res;          /* metrics.full_resolution_steps of the job; 0 = keep all */
} wslot;

/* The worker's writer thread and its queue (a ring of `nslots` slots: WRITE_SLOTS for a
 * compact run, WIDE_SLOTS for the others).
 *
 * The store connection is handed over, not shared: while any slot is queued only the writer
 * uses the worker's connection (wctx.store); the worker touches it again only after
 * wctx_drain() has seen the queue empty. The mutex orders the two threads' uses, so the connection
 * is never used by two threads at once and needs no second connection (two writers on one
 * SQLite file would only wait for each other's locks). The queue is FIFO and has one writer,
 * so rows are committed in step order and a checkpoint commits after every row before it;
 * after a failure the writer drops everything queued behind it (a checkpoint never commits
 * past rows that were not stored). */
typedef struct writer {
    uv_thread_t thread;
    uv_mutex_t mu;
    uv_cond_t cond;            /* signalled on submit, on each slot written, and on quit */
    int nslots;                /* the ring's length this run (wctx_run_begin) */
    int head;                  /* the slot the worker fills */
    int tail;                  /* the oldest queued slot */
    int queued;                /* slots queued or being written, 0..nslots */
    int quit;                  /* 1 = exit once the queue is empty */
    int rc;                    /* the run's first store failure; 0 = none */
    an_err err;                /* its error */
    const char *what;          /* what it was writing ("metrics" / "the checkpoint") */
    int64_t step;              /* at which step */
    uint64_t commits;          /* transactions written (several slots may make one) */
    /* A committed checkpoint's buffer, kept for the job's next one (train_save_into): the
     * worker takes it, the writer gives it back; freed at the job's end (wctx_spare_free). */
    void *spare;
    size_t spare_cap;
} writer;

typedef struct wctx {
    store_t store;
    jobmgr *jobs;
    job_run *run;
    /* Whole metric rows, one array: a wide run's slots (full slots that follow each other are
     * one run of rows the writer commits in one transaction when it has fallen behind), or
     * where the writer writes out the compact slots it commits together (writer.c). */
    _Alignas(64) store_metric rows[MERGE_MAX][METRIC_BATCH]; /* a row: one line (store.h) */
    wslot slot[WRITE_SLOTS];
    writer wr;
    store_metric *batch;       /* rows of the slot being filled (slot[wr.head]) */
    wrow *crow;                /* …or its compact steps (compact runs) */
    int compact;               /* this run's slots are compact (wctx_slot_begin) */
    size_t nbatch;
    store_val_metric *vbatch;  /* its validation rows */
    size_t nval;
    store_fp16_event *ev;      /* its fp16 events */
    size_t nev;
    double fp16_prev;          /* the loss scale of the previous step; NAN none (or not fp16) */
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
    int64_t full_res;          /* metrics.full_resolution_steps of the run; 0 = keep all */
} wctx;

/* ---- jobs/writer.c ---- */

/* Starts w's writer thread (its store connection is open). 0 or a negative errno. */
int writer_start(wctx *w);

/* Lets the writer finish what is queued, then joins it. */
void writer_stop(wctx *w);

/* Frees the kept checkpoint buffer (the writer idle: after wctx_drain). */
void wctx_spare_free(wctx *w);

/* Reads the clock and gives the rows since the previous read their times (see writer.c).
 * Returns the monotonic time read. */
double wctx_stamp(wctx *w, int64_t step);
/* Starts a run's use of the ring (empty: the previous run drained it): compact (one learning
 * rate, rows kept as wrow) or wide, and the first slot begun. */
void wctx_run_begin(wctx *w, int compact);
/* Points batch, crow, vbatch and ev at the slot now being filled (slot[wr.head]), empty, and
 * makes it compact if the run is. */
void wctx_slot_begin(wctx *w);
/* 1 when the slot being filled must be queued before another step's rows go in: its rows are
 * METRIC_BATCH, or its marks, validation rows or events have no room left for one more step's
 * (and, for marks, a flush's). Asked
 * after every step, so inline: the fastest job's step is under half a microsecond. */
static inline int wctx_slot_full(const wctx *w)
{
    return w->nbatch == METRIC_BATCH || w->slot[w->wr.head].nmarks + 2 >= SLOT_MARKS ||
           w->nval + 1 >= SLOT_VALS || w->nev + 1 >= SLOT_EVENTS;
}

/* Queues the metric batch (stamped, with the progress of `last`) for the writer. Returns the
 * writer's first failure so far. */
int wctx_flush(wctx *w, const train_report *last, an_err *e);

/* Queues a checkpoint of the train state with the metric batch, to commit in one
 * transaction (see writer.c). */
int wctx_checkpoint(wctx *w, train *t, const train_report *last, const store_keep *keep,
                    an_err *e);

/* The same for a checkpoint blob made elsewhere (a multi-rank job's rank 0: jobs/rankrun.c),
 * taken over (freed by the writer) whatever the outcome; save_s: the time it took to make. */
int wctx_checkpoint_blob(wctx *w, void *blob, size_t len, int64_t step,
                         const train_report *last, const store_keep *keep, double save_s,
                         an_err *e);

/* Restores the newest usable checkpoint of job `id` into `t` (jobs/restore.c); *step gets its
 * step, -1 when there is none to restore. */
int wctx_restore_newest(wctx *w, const char *id, train *t, int64_t *step, an_err *e);

/* For a job of several ranks: the newest of its checkpoints that reads back (a corrupt one is
 * skipped for the one before it), or for a new job with resume_from the named job's (weights
 * only: *kind 1), as a blob (*blob, *len; NULL and *step 0 for a start at step 0). The stored
 * history is rewound to it and w->time_base set from it. */
int wctx_pick_resume_blob(wctx *w, const store_job *row, const job_spec *spec, void **blob,
                          size_t *len, int *kind, int64_t *step, an_err *e);

/* Waits until the writer has written (or dropped) every queued slot; returns its first
 * failure of this run. The worker may use w->store again afterwards. */
int wctx_drain(wctx *w, an_err *e);

/* ---- jobs/jobrun.c ---- */

/* Trains the run w->run to its end (admission, restore, the step loop, the final state). */
void jobrun(wctx *w);

/* fp16 (store/fp16.c): notes the row just added to the batch (step `step`, the loss scale it
 * used, whether it overflowed) as an event when its scale differs from the step before's
 * (w->fp16_prev) or it was skipped; nothing when scale is NAN (not a fp16 job). Both kinds of
 * run, one process and several ranks (jobs/rankrun.c), go through it. */
void wctx_fp16_note(wctx *w, int64_t step, double scale, int skipped);

/* The loss scale job `id`'s step `step` used (its last event at or before it), for
 * w->fp16_prev when a run resumes from a checkpoint there; NAN at step 0 or when none. */
double wctx_fp16_scale_at(wctx *w, const char *id, int64_t step);

#endif
