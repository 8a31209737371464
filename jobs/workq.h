/* workq — bounded queues of deferred request work, each with its own threads.
 *
 * Requests that would block the loop (store queries, model loads, exports) run here instead
 * of on the loop thread. There are two classes, so one cannot starve the other: `quick` work
 * (a job, a list, checkpoints: milliseconds) and `slow` work (metrics exports, weights,
 * predictions, uploads: up to seconds). Each class has its threads and a queue of bounded
 * depth; a full queue refuses new work at once (the request gets 503) instead of letting it
 * wait behind everything else. A finished item's `after` runs on the loop thread. */
#ifndef ANNEALD_WORKQ_H
#define ANNEALD_WORKQ_H

#include <stdatomic.h>
#include <stdint.h>

#include <uv.h>

typedef struct wq_item {
    void (*work)(void *arg);      /* on a queue thread */
    void (*after)(void *arg);     /* then on the loop thread */
    void *arg;
    struct wq_item *next;
} wq_item;

typedef struct workq {
    const char *name;             /* "quick", "slow": the label in /metrics */
    uv_mutex_t mu;
    uv_cond_t cond;
    wq_item *head, *tail;         /* waiting items */
    int depth, max_depth;         /* waiting now, at most */
    int busy;                     /* items being worked on */
    int nthreads;
    uv_thread_t *threads;
    int quit;
    uv_async_t *wake;             /* the loop's handle: done items are waiting */
    wq_item *done;                /* finished, for the loop (mu) */
    atomic_uint_fast64_t total, rejected;
    int peak_depth;               /* deepest the queue has been (mu) */
    void (*on_exit)(void);        /* run by each thread as it ends (set before workq_init's
                                     threads can end: they end only at workq_stop) */
} workq;

/* Starts nthreads threads for a queue of at most max_depth waiting items; `wake` is sent when
 * an item is done (its callback calls workq_complete). */
int workq_init(workq *q, const char *name, int nthreads, int max_depth, uv_async_t *wake);

/* Stops the threads once the queue is empty (joins them): every item waiting is still run;
 * the `after` callbacks not yet called are not called (their items are dropped). */
void workq_stop(workq *q);

/* Queues work (loop thread). -EAGAIN when the queue is full, -ENOMEM. */
int workq_push(workq *q, void (*work)(void *), void (*after)(void *), void *arg);

/* The same for the next turn of work the queue already took (its `after`, on the loop
 * thread): behind what waits, but never refused for depth, so work done in turns is not cut
 * short by the requests that came after it. -EAGAIN only once the queue is stopping. */
int workq_requeue(workq *q, void (*work)(void *), void (*after)(void *), void *arg);

/* Runs `after` of every finished item (loop thread). */
void workq_complete(workq *q);

/* Waiting and running items, for /metrics. */
void workq_depths(workq *q, int *waiting, int *running, int *peak);

#endif
