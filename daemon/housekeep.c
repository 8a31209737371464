/* housekeep — incremental vacuum in slices, passive WAL checkpoints and store sizes, on a
 * thread of its own (see housekeep.h). */
#include "daemon/housekeep.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "daemon/daemon.h"

/* Waits up to ms for a stop; 1 when asked to stop. */
static int nap(housekeep *h, int ms)
{
    uv_mutex_lock(&h->mu);
    if (!h->quit)
        uv_cond_timedwait(&h->cond, &h->mu, (uint64_t)ms * 1000000u);
    int q = h->quit;
    uv_mutex_unlock(&h->mu);
    return q;
}

static void run(void *arg)
{
    housekeep *h = arg;
    store_t s;
    an_err e;
    an_err_clear(&e);
    int open = 0;
    for (;;) {
        if (!open) {
            if (store_open(&s, h->path, &e) != 0) {
                daemon_log(LOG_WARN, "housekeeping cannot open the store: %s", e.message);
                if (nap(h, HOUSEKEEP_IDLE_MS * 5))
                    break;
                continue;
            }
            open = 1;
        }
        int64_t left = 0;
        uv_mutex_lock(&h->mu);
        int had_free = !h->have_stats || h->stats.free_bytes > 0;
        uv_mutex_unlock(&h->mu);
        int rc = store_vacuum_step(&s, HOUSEKEEP_SLICE_PAGES, &left, &e);
        store_stats st;
        int have = rc == 0 && store_stats_read(&s, h->path, &st, &e) == 0;
        if (left == 0 || rc)
            store_maintain(&s, NULL); /* passive: copies the WAL back, never waits */
        uv_mutex_lock(&h->mu);
        if (have) {
            h->stats = st;
            h->have_stats = 1;
        }
        if (rc == 0 && had_free)
            h->slices++; /* a slice that had pages to give back */
        snprintf(h->error, sizeof h->error, "%s", rc ? e.message : "");
        uv_mutex_unlock(&h->mu);
        /* SQLITE_BUSY (a worker's long commit) is not a failure: the next round tries again */
        if (nap(h, rc == 0 && left > 0 ? HOUSEKEEP_PERIOD_MS : HOUSEKEEP_IDLE_MS))
            break;
    }
    if (open)
        store_close(&s);
}

int housekeep_start(housekeep *h, const char *path)
{
    memset(h, 0, sizeof *h);
    if (strlen(path) >= sizeof h->path)
        return -ENAMETOOLONG;
    snprintf(h->path, sizeof h->path, "%s", path);
    if (uv_mutex_init(&h->mu))
        return -ENOMEM;
    if (uv_cond_init(&h->cond)) {
        uv_mutex_destroy(&h->mu);
        return -ENOMEM;
    }
    int rc = uv_thread_create(&h->thread, run, h);
    if (rc) {
        uv_cond_destroy(&h->cond);
        uv_mutex_destroy(&h->mu);
        return rc;
    }
    h->started = 1;
    return 0;
}

void housekeep_ask_stop(housekeep *h)
{
    if (!h->started)
        return;
    uv_mutex_lock(&h->mu);
    h->quit = 1;
    uv_cond_signal(&h->cond);
    uv_mutex_unlock(&h->mu);
}

void housekeep_stop(housekeep *h)
{
    if (!h->started)
        return;
    housekeep_ask_stop(h);
    uv_thread_join(&h->thread);
    uv_cond_destroy(&h->cond);
    uv_mutex_destroy(&h->mu);
    h->started = 0;
}

int housekeep_stats(housekeep *h, store_stats *out, long long *slices)
{
    if (!h->started)
        return 0;
    uv_mutex_lock(&h->mu);
    int have = h->have_stats;
    if (have)
        *out = h->stats;
    if (slices)
        *slices = h->slices;
    uv_mutex_unlock(&h->mu);
    return have;
}
