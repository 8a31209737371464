/* housekeep — see housekeep.h. */
#include "daemon/housekeep.h"

#include <errno.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "jobs/thread.h"
#include "jobs/workers.h"
#include "store/lock.h"
#include "store/store.h"
#include "store/walcopy.h"
#include "util/log.h"

/* 256 pages of 16 KiB: 4 MiB per slice, a transaction of a few milliseconds, so a worker's
 * commit never waits long behind it; a deleted 2 GB job is back in about 500 slices. */
#define SLICE_PAGES 256
#define EVERY_S 1.0
#define BETWEEN_SLICES_S 0.005
/* The WAL is copied into the database this often (store/walcopy.h): a fast job's writer then
 * finds almost every frame copied when its WAL passes the threshold, and its own copy, the
 * one that lets the WAL start over, is short. A copy with nothing to do costs no I/O. */
#define WAL_COPY_S 0.1

/* Waits up to `s` seconds or until told to quit; returns quit. Call with h->mu held. */
static int wait_quit(housekeeper *h, double s)
{
    if (!h->quit)
        uv_cond_timedwait(&h->cond, &h->mu, (uint64_t)(s * 1e9));
    return h->quit;
}

static void housekeeper_main(void *arg)
{
    housekeeper *h = arg;
    prctl(PR_SET_NAME, "housekeeping", 0, 0, 0);
    /* Background work yields to the service as training does (jobs/workers.c): copying a
     * large checkpoint's WAL into the database is seconds of work that, at the loop's
     * priority on two cores, kept a read waiting for a core now and then (101 ms once, where
     * the bound is 100). */
    pid_t tid = (pid_t)syscall(SYS_gettid);
    if (setpriority(PRIO_PROCESS, (id_t)tid, getpriority(PRIO_PROCESS, (id_t)tid) + WORKER_NICE))
        util_log(LOG_WARN, "housekeeping: cannot lower its priority: %s", strerror(errno));
    store_t s;
    an_err e;
    an_err_clear(&e);
    if (store_open(&s, h->db, &e) != 0) {
        util_log(LOG_ERROR, "housekeeping: cannot open the store: %s", e.message);
        return;
    }
    int moved = 0;
    uv_mutex_lock(&h->mu);
    for (;;) {
        /* Copies of the WAL between rounds. */
        int quit = 0, copies = (int)(h->every_s / WAL_COPY_S + 0.5);
        for (int k = 0; k < copies && !quit; k++) {
            quit = wait_quit(h, WAL_COPY_S);
            if (!quit) {
                uv_mutex_unlock(&h->mu);
                store_wal_copy_now(&s);
                uv_mutex_lock(&h->mu);
            }
        }
        if (quit)
            break;
        /* The store file deleted or replaced under the daemon: said once in the log (and in
         * /healthz while it lasts), since nothing else fails until a new connection opens. */
        uv_mutex_unlock(&h->mu);
        int was_moved = moved;
        moved = store_lock_verify(h->db, NULL, &e) != 0;
        if (moved && !was_moved)
            util_log(LOG_ERROR, "%s", e.message);
        int gone = 0;
        if (store_upload_retry(&s, &gone, &e) == 0 && gone)
            util_log(LOG_INFO, "deleted the parts of %d abandoned upload(s) the store had "
                     "refused to delete", gone);
        uv_mutex_lock(&h->mu);
        /* Slices until the free list is empty or a stop is asked for. */
        for (;;) {
            uv_mutex_unlock(&h->mu);
            int freed = 0;
            int rc = store_housekeep(&s, h->slice_pages, &freed, &e);
            if (rc)
                util_log(LOG_WARN, "housekeeping: %s", e.message);
            uv_mutex_lock(&h->mu);
            if (rc || freed < h->slice_pages || wait_quit(h, BETWEEN_SLICES_S))
                break;
        }
    }
    uv_mutex_unlock(&h->mu);
    store_close(&s);
}

int housekeeper_start(housekeeper *h, const char *db)
{
    memset(h, 0, sizeof *h);
    h->db = db;
    h->every_s = EVERY_S;
    h->slice_pages = SLICE_PAGES;
    if (uv_mutex_init(&h->mu))
        return -ENOMEM;
    if (uv_cond_init(&h->cond)) {
        uv_mutex_destroy(&h->mu);
        return -ENOMEM;
    }
    int rc = thread_start(&h->thread, 0, housekeeper_main, h);
    if (rc) {
        uv_cond_destroy(&h->cond);
        uv_mutex_destroy(&h->mu);
        return rc;
    }
    h->started = 1;
    return 0;
}

void housekeeper_stop(housekeeper *h)
{
    if (!h->started)
        return;
    uv_mutex_lock(&h->mu);
    h->quit = 1;
    uv_cond_signal(&h->cond);
    uv_mutex_unlock(&h->mu);
    uv_thread_join(&h->thread);
    uv_cond_destroy(&h->cond);
    uv_mutex_destroy(&h->mu);
    h->started = 0;
}
