/* housekeep — the store's upkeep on a thread of its own: deleted jobs' pages go back to the
 * file system in small slices (an incremental vacuum of a few megabytes at a time, each its
 * own short transaction, so workers and readers hardly notice), the WAL is checkpointed
 * passively, and the file's sizes are kept for /healthz and /metrics. Nothing of it runs on
 * the loop thread, and shutdown waits for at most one slice. */
#ifndef ANNEALD_HOUSEKEEP_H
#define ANNEALD_HOUSEKEEP_H

#include <uv.h>

#include "store/store.h"

#define HOUSEKEEP_SLICE_PAGES 512   /* pages returned per slice (8 MiB of 16 KiB pages) */
#define HOUSEKEEP_PERIOD_MS 100     /* pause between slices while pages are free */
#define HOUSEKEEP_IDLE_MS 1000      /* pause when there is nothing to give back */

typedef struct housekeep {
    uv_thread_t thread;
    uv_mutex_t mu;
    uv_cond_t cond;
    int quit, started;
    char path[4096];
    store_stats stats;     /* the latest reading (under mu) */
    int have_stats;
    long long slices;      /* vacuum slices done */
    char error[512];       /* the latest failure, "" when the last round worked */
} housekeep;

/* Starts the thread on the store at `path`. 0 or -errno. */
int housekeep_start(housekeep *h, const char *path);

/* Asks it to stop without waiting (the loop thread, at SIGTERM): no slice starts after this. */
void housekeep_ask_stop(housekeep *h);

/* Stops it: the slice in progress finishes, nothing more starts. Safe if never started. */
void housekeep_stop(housekeep *h);

/* The latest sizes; 0 when none was read yet. */
int housekeep_stats(housekeep *h, store_stats *out, long long *slices);

#endif
