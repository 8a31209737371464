/* defer — request work off the loop thread: a handler hands its request to the quick or slow
 * queue (jobs/workq.h) with the connection suspended; the work runs on a queue thread with
 * that thread's own store connection, and the answer it made is queued back on the loop. */
#include "api/http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "store/store.h"

/* Each queue thread keeps one store connection for all its requests (opening one costs more
 * than most requests); it is closed when the thread ends (http_thread_end). */
static _Thread_local store_t thread_store;
static _Thread_local int thread_store_open;

void http_thread_end(void)
{
    if (thread_store_open)
        store_close(&thread_store);
    thread_store_open = 0;
}

/* The calling queue thread's store connection, opened on first use. */
static int thread_store_get(const char *db, an_err *e)
{
    if (thread_store_open)
        return 0;
    an_err_clear(e);
    memset(&thread_store, 0, sizeof thread_store);
    /* requests' writes are acknowledged to their clients (store_durable) */
    if (store_open(&thread_store, db, e) != 0)
        return -1;
    if (store_durable(&thread_store, 1, e) != 0) {
        store_close(&thread_store);
        return -1;
    }
    thread_store_open = 1;
    return 0;
}

struct store_t *http_thread_store(struct api *api, an_err *e)
{
    return thread_store_get(api->sv->opts->db, e) == 0 ? &thread_store : NULL;
}

static void defer_work(void *arg)
{
    http_req *r = arg;
    an_err e;
    if (thread_store_get(r->api->sv->opts->db, &e) != 0) {
        http_set_pending_error(r, 503, "unavailable", NULL, "the store cannot be opened: %s",
                               e.message);
        return;
    }
    r->in_work = 1;
    r->work_fn(r, &thread_store);
    r->in_work = 0;
}

static void defer_after(void *arg)
{
    http_req *r = arg;
    r->api->inflight_work--;
    if (r->loop_fn)
        r->loop_fn(r);
    if (r->requeued) { /* another turn: still suspended */
        r->requeued = 0;
        return;
    }
    if (!r->pending)
        r->pending = http_error_response("internal", NULL, "no answer was produced");
    if (!r->pending_status)
        r->pending_status = 500;
    struct MHD_Response *resp = r->pending;
    unsigned st = r->pending_status;
    r->pending = NULL;
    http_resume_with(r, st, resp);
    api_pump(r->api);
}

/* Runs fn on queue q's threads; a full queue answers 503 at once. */
static void defer_on(http_req *r, workq *q, void (*fn)(http_req *r, struct store_t *s))
{
    r->work_fn = fn;
    r->work_q = q;
    http_suspend(r);
    int rc = workq_push(q, defer_work, defer_after, r);
    if (rc) {
        char msg[160];
        snprintf(msg, sizeof msg, rc == -EAGAIN ? "the daemon is busy: %d %s requests are "
                 "waiting already; try again shortly" : "out of memory queueing the request (%d %s)",
                 q->max_depth, q->name);
        http_resume_with(r, 503, http_error_response("unavailable", NULL, msg));
        return;
    }
    r->api->inflight_work++;
}

int http_defer_again(http_req *r)
{
    int rc = workq_requeue(r->work_q, defer_work, defer_after, r);
    if (rc)
        return rc;
    r->api->inflight_work++;
    r->requeued = 1;
    return 0;
}

/* A step of deferred work that does not answer (a piece of an upload): the request is
 * resumed for MHD to go on with its body, or answered if the step set a pending answer. */
static void step_after(void *arg)
{
    http_req *r = arg;
    r->api->inflight_work--;
    r->handed_off = 0;
    if (r->suspended) {
        r->suspended = 0;
        MHD_resume_connection(r->conn);
    }
    api_pump(r->api);
}

int http_defer_step(http_req *r, void (*fn)(http_req *r, struct store_t *s))
{
    return http_defer_step_on(r, &r->api->sv->slow, fn);
}

int http_defer_step_on(http_req *r, workq *q, void (*fn)(http_req *r, struct store_t *s))
{
    r->work_fn = fn;
    http_suspend(r);
    int rc = workq_push(q, defer_work, step_after, r);
    if (rc) {
        r->handed_off = 0;
        r->suspended = 0;
        MHD_resume_connection(r->conn);
        return rc;
    }
    r->api->inflight_work++;
    return 0;
}

/* A store task with no request (the queue thread's store), on the slow queue. */
typedef struct store_task {
    void (*fn)(void *arg, struct store_t *s);
    void *arg;
    const char *db;
} store_task;

static void task_work(void *p)
{
    store_task *t = p;
    an_err e;
    if (thread_store_get(t->db, &e) == 0)
        t->fn(t->arg, &thread_store);
    else
        t->fn(t->arg, NULL);
}

static void task_after(void *p)
{
    free(p);
}

int http_store_task(struct api *api, void (*fn)(void *arg, struct store_t *s), void *arg)
{
    store_task *t = malloc(sizeof *t);
    if (!t)
        return -ENOMEM;
    *t = (store_task){fn, arg, api->sv->opts->db};
    int rc = workq_push(&api->sv->slow, task_work, task_after, t);
    if (rc)
        free(t);
    return rc;
}

void http_defer(http_req *r, void (*fn)(http_req *r, struct store_t *s))
{
    defer_on(r, &r->api->sv->quick, fn);
}

void http_defer_slow(http_req *r, void (*fn)(http_req *r, struct store_t *s))
{
    defer_on(r, &r->api->sv->slow, fn);
}
