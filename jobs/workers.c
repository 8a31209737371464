/* workers — the fixed pool of training threads: each opens its store connection (retrying
 * while it cannot), starts its writer thread and trains the runs it takes off the queue
 * (jobs/jobrun.c). */
#include "jobs/workers.h"

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/gemm.h"
#include "jobs/service.h"
#include "jobs/thread.h"
#include "jobs/wctx.h"
#include "store/walcopy.h"
#include "util/log.h"

/* 1 once the pool is told to quit; else waits up to `ms` (or until a job is queued). */
static int wait_quit(worker_pool *p, int ms)
{
    struct jobmgr *m = p->jobs;
    uv_mutex_lock(&m->mu);
    if (!m->quit)
        uv_cond_timedwait(&m->cond, &m->mu, (uint64_t)ms * 1000000u);
    int quit = m->quit;
    uv_mutex_unlock(&m->mu);
    return quit;
}

/* Opens the worker's store connection, retrying every WORKER_RETRY_MS while it fails (the
 * worker counts as down meanwhile: /healthz says degraded and no job is taken by it).
 * ANNEALD_FAULT=worker-store makes every attempt fail, for the tests of that state. */
static int open_store(worker *wk, wctx *w)
{
    worker_pool *p = wk->pool;
    const char *fault = getenv("ANNEALD_FAULT");
    int down = 0;
    for (;;) {
        an_err e;
        an_err_clear(&e);
        int rc = fault && strstr(fault, "worker-store")
                     ? an_failc(&e, -EIO, NULL, "injected fault (ANNEALD_FAULT=worker-store)")
                     : store_open(&w->store, p->db_path, &e);
        if (rc == 0) {
            store_wal_copy_mode(&w->store, STORE_WAL_AFTER_SMALL);
            if (down) {
                atomic_fetch_sub(&p->down, 1);
                util_log(LOG_INFO, "worker %d: the store is open again; taking jobs",
                           wk->index);
            }
            return 0;
        }
        if (!down) {
            down = 1;
            atomic_fetch_add(&p->down, 1);
            util_log(LOG_ERROR, "worker %d: cannot open the store: %s; it takes no jobs and "
                       "retries every %d ms", wk->index, e.message, WORKER_RETRY_MS);
        }
        if (wait_quit(p, WORKER_RETRY_MS))
            return rc;
    }
}

/* Training yields to the service: a worker thread, and the writer and compute threads it
 * starts (they inherit it), run WORKER_NICE below the loop and the request threads. Alone on
 * the machine training gets every cycle; when the cores are contended, a request, an event
 * stream or the watchdog's ping is served first instead of waiting out a scheduler slice
 * behind a checkpoint being written. (On Linux the nice value is per thread.) */
static void lower_priority(int index)
{
    pid_t tid = (pid_t)syscall(SYS_gettid);
    int now = getpriority(PRIO_PROCESS, (id_t)tid);
    if (setpriority(PRIO_PROCESS, (id_t)tid, now + WORKER_NICE) != 0)
        util_log(LOG_WARN, "worker %d: cannot lower its priority: %s", index, strerror(errno));
}

/* Gives the pages wholly inside [p, p + n) back to the kernel; they read as zeros when
 * next touched. */
static void release_pages(void *p, size_t n)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)p + page - 1) / page * page, hi = ((uintptr_t)p + n) / page * page;
    if (hi > lo)
        madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

/* After a run, the memory its batches used goes back: an idle worker holds only the pages of
 * its context that bookkeeping touches, not the ~34 MB of its queue and rows. */
static void release_batches(wctx *w)
{
    uv_mutex_lock(&w->wr.mu);
    int idle = w->wr.queued == 0; /* always, after a run: its end drains the queue */
    uv_mutex_unlock(&w->wr.mu);
    if (!idle)
        return;
    release_pages(w->rows, sizeof w->rows);
    for (int k = 0; k < WRITE_SLOTS; k++) {
        wslot *s = &w->slot[k];
        release_pages(s->crow, sizeof s->crow);
        release_pages(s->marks, sizeof s->marks);
        release_pages(s->vbatch, sizeof s->vbatch);
        release_pages(s->ev, sizeof s->ev);
    }
}

static void worker_main(void *arg)
{
    worker *wk = arg;
    worker_pool *p = wk->pool;
    /* Named for top -H and perf; the writer thread it starts renames itself. */
    char name[16];
    snprintf(name, sizeof name, "worker-%d", wk->index);
    prctl(PR_SET_NAME, name, 0, 0, 0);
    lower_priority(wk->index);
    /* Mapped, not allocated and cleared: its pages (page-aligned, so its rows are aligned
     * as wctx.h asks) are zero until touched, and most are touched only while a job runs. */
    wctx *w = mmap(NULL, sizeof(wctx), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    if (w == MAP_FAILED) {
        util_log(LOG_ERROR, "worker %d: no memory for its queue: %s", wk->index,
                 strerror(errno));
        atomic_fetch_add(&p->down, 1);
        return;
    }
    w->jobs = p->jobs;
    int open_rc = open_store(wk, w);
    int writer_rc = open_rc == 0 ? writer_start(w) : -1;
    if (open_rc == 0 && writer_rc) {
        util_log(LOG_ERROR, "worker %d: cannot start its store writer thread", wk->index);
        open_rc = -1;
        atomic_fetch_add(&p->down, 1);
    }
    /* A worker without a store takes no job: each would be dropped. */
    for (; open_rc == 0;) {
        job_run *run = jobs_take(p->jobs);
        if (!run)
            break;
        w->run = run;
        w->nbatch = 0;
        w->nval = 0;
        jobrun(w);
        release_batches(w);
        /* The run's model, optimizer, data and checkpoint blobs were freed, and its bf16
         * products' operands and primitives are freed here, on the thread they belong to:
         * malloc keeps freed heap pages for reuse, so without a trim the daemon would stay as
         * large as the largest jobs it ever ran side by side. Here, not on the loop: a trim
         * walks every arena. */
        gemm_release();
        malloc_trim(0);
        w->run = NULL;
        jobs_done(p->jobs, run);
    }
    if (writer_rc == 0)
        writer_stop(w);
    store_close(&w->store);
    munmap(w, sizeof(wctx));
}

int workers_start(worker_pool *p, struct jobmgr *jobs, const char *db_path, int n)
{
    memset(p, 0, sizeof *p);
    p->jobs = jobs;
    p->db_path = db_path;
    p->w = calloc((size_t)n, sizeof *p->w);
    if (!p->w)
        return -ENOMEM;
    p->n = n;
    for (int i = 0; i < n; i++) {
        p->w[i].pool = p;
        p->w[i].index = i;
        int rc = thread_start(&p->w[i].thread, 8 << 20, worker_main, &p->w[i]);
        if (rc) {
            workers_stop(p);
            return rc;
        }
        p->w[i].started = 1;
    }
    return 0;
}

void workers_stop(worker_pool *p)
{
    if (!p->w)
        return;
    uv_mutex_lock(&p->jobs->mu);
    p->jobs->quit = 1;
    uv_cond_broadcast(&p->jobs->cond);
    uv_mutex_unlock(&p->jobs->mu);
    for (int i = 0; i < p->n; i++)
        if (p->w[i].started)
            uv_thread_join(&p->w[i].thread);
    free(p->w);
    p->w = NULL;
}
