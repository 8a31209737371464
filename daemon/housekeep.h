/* housekeep — the store's housekeeping thread: gives deleted jobs' pages back to the file
 * system in small slices and keeps the WAL short with passive checkpoints, off the loop and
 * off the workers, so neither ever waits for it and shutdown never does it. */
#ifndef ANNEALD_HOUSEKEEP_H
#define ANNEALD_HOUSEKEEP_H

#include <uv.h>

typedef struct housekeeper {
    uv_thread_t thread;
    uv_mutex_t mu;
    uv_cond_t cond;
    int quit;                  /* 1 = stop at the next slice boundary */
    int started;
    const char *db;            /* the store's path (the daemon's options own it) */
    double every_s;            /* pause between rounds */
    int slice_pages;           /* pages given back per transaction */
} housekeeper;

/* Starts the thread on the store at `db` (already migrated by the loop's connection).
 * 0 or a negative errno. */
int housekeeper_start(housekeeper *h, const char *db);

/* Tells the thread to stop and joins it: it stops within one slice (milliseconds), so a
 * SIGTERM after deleting gigabytes still exits at once; the next start goes on from there. */
void housekeeper_stop(housekeeper *h);

#endif
