/* workers — the fixed pool of training threads.
 *
 * DESIGN
 * N uv_thread_t threads (--workers), each with its own store connection, take runs from the
 * job manager's queue (highest priority first) (jobs/jobmgr.c) and train them: build the train state from the
 * stored spec (or restore it from the latest checkpoint), step, write metrics in batches
 * (every 4096 steps or 250 ms, one transaction each; a fast job reads the clock only every few
 * dozen steps and the rows between get evenly spread times), checkpoint every
 * checkpoint.every_steps / every_seconds, at the end and when asked to stop, and publish
 * progress. A worker never touches HTTP and never holds a lock while computing. The training libuv thread pool is not
 * used for this: training would starve its short chores.
 * The SQLite writes of metric batches and checkpoints run on a writer thread per worker, off
 * the compute path: the worker fills one of a few batch buffers while the writer commits the
 * earlier ones in order (a checkpoint goes through the same queue, so it commits after every
 * row before it), and waits only when the writer is all buffers behind. While batches are
 * queued the writer alone uses the worker's store connection; the worker drains the queue
 * before it uses the connection again (the end of a run, pause, failure, shutdown). */
#ifndef ANNEALD_WORKERS_H
#define ANNEALD_WORKERS_H

#include <stdatomic.h>

/* How much lower than the service's threads a worker's threads run (nice units). */
#define WORKER_NICE 10

#include <uv.h>

/* How often a worker whose store connection failed to open tries again. */
#define WORKER_RETRY_MS 2000

struct jobmgr;

typedef struct worker {
    struct worker_pool *pool;
    int index;
    uv_thread_t thread;
    int started;
} worker;

typedef struct worker_pool {
    struct jobmgr *jobs;
    const char *db_path;
    int n;
    worker *w;
    atomic_int down;             /* workers without a store connection (taking no jobs) */
} worker_pool;

/* Starts n workers. 0 or a negative errno (threads already started are joined). */
int workers_start(worker_pool *p, struct jobmgr *jobs, const char *db_path, int n);

/* Tells workers to quit once the queue is empty and joins them. */
void workers_stop(worker_pool *p);

#endif
