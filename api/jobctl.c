/* jobctl — POST /v1/jobs/{id}/pause, resume and cancel, and DELETE /v1/jobs/{id}: the job
 * manager's outcomes (jobs/jobmgr.h) as HTTP.
 *
 * The transition is decided on the loop thread, where the manager lives; the request then
 * waits (a job_waiter in its context) for the worker that holds the job to let go of it, or
 * for the manager's state thread to write the new state. The answer's body, the job as the transition left it, is made on the quick queue: it
 * parses the job's stored spec, which may be megabytes of inline data. A delete's store work
 * runs there too, between a check and a release on the loop. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "api/jobjson.h"
#include "api/routes.h"
#include "api/api.h"

typedef struct ctl_q {
    job_waiter w;             /* hung on the run while a worker lets go */
    http_req *r;
    store_job_state state;    /* the state the answer shows */
    job_overlay ov;           /* copied on the loop when the outcome is known */
    job_outcome out;          /* a delete's, from the queue thread */
} ctl_q;

static void ctl_q_free(void *p)
{
    ctl_q *q = p;
    jobs_overlay_free(&q->ov);
    free(q);
}

static unsigned status_of(const job_outcome *o, const char **code)
{
    switch (o->result) {
    case JOB_NOT_FOUND:
        *code = "not_found";
        return 404;
    case JOB_CONFLICT:
        *code = "conflict";
        return 409;
    case JOB_STORE:
        return http_status_of_store(o->store_rc, code);
    default: /* JOB_BUSY, JOB_NO_MEMORY */
        *code = "unavailable";
        return 503;
    }
}

/* Queue thread: the job's object, with the state the transition left it in (a worker may
 * have taken a resumed job by now; the answer still says what the request did). */
static void answer_work(http_req *r, store_t *s)
{
    ctl_q *q = r->ctx;
    const char *id = r->m.params[0];
    store_job row;
    memset(&row, 0, sizeof row);
    an_err e;
    int rc = store_job_get(s, id, &row, &e);
    if (rc == -ENOENT) { /* deleted meanwhile */
        http_set_pending_error(r, 404, "not_found", "id", "no job with id '%.64s'", id);
        return;
    }
    if (rc) {
        http_set_pending_store_error(r, rc, NULL, &e);
        return;
    }
    row.state = q->state;
    http_set_pending_json(r, 200, api_job_json_overlay(&q->ov, &row));
    store_job_free(&row);
    if (!r->pending)
        http_set_pending_error(r, 503, "unavailable", NULL, "out of memory printing the job");
}

/* Answers an outcome: an error at once, or the job's object made off the loop. `later`: the
 * request is suspended (it waited for a worker), so the answer is queued on resume. */
static void answer(http_req *r, const job_outcome *o, int later)
{
    ctl_q *q = r->ctx;
    if (o->result != JOB_OK) {
        const char *code;
        unsigned st = status_of(o, &code);
        struct MHD_Response *resp =
            http_error_response(code, o->field[0] ? o->field : NULL, o->message);
        if (later)
            http_resume_with(r, st, resp);
        else
            http_queue(r, st, resp);
        return;
    }
    q->state = o->state;
    if (jobs_overlay_capture(&r->api->sv->jobs, &q->ov) != 0) {
        struct MHD_Response *resp = http_error_response(
            "unavailable", NULL, "out of memory answering; the transition was made");
        if (later)
            http_resume_with(r, 503, resp);
        else
            http_queue(r, 503, resp);
        return;
    }
    http_defer(r, answer_work);
}

/* The worker let go of the job, or the state thread wrote its state: loop thread. */
static void waited(job_waiter *w, const job_outcome *o)
{
    ctl_q *q = (ctl_q *)((char *)w - offsetof(ctl_q, w));
    answer(q->r, o, 1);
}

static ctl_q *new_ctl_q(http_req *r)
{
    ctl_q *q = calloc(1, sizeof *q);
    if (!q) {
        http_error(r, 503, "unavailable", NULL, "out of memory");
        return NULL;
    }
    q->r = r;
    q->w.done = waited;
    r->ctx = q;
    r->ctx_free = ctl_q_free;
    return q;
}

typedef int (*ctl_fn)(jobmgr *m, const char *id, job_waiter *w, job_outcome *out);

/* Pause, cancel, resume: answered now, or once the worker or the state thread is done. */
static void control(http_req *r, ctl_fn fn)
{
    ctl_q *q = new_ctl_q(r);
    if (!q)
        return;
    job_outcome o;
    if (fn(&r->api->sv->jobs, r->m.params[0], &q->w, &o) == 1) {
        http_suspend(r); /* answered by waited() */
        return;
    }
    answer(r, &o, 0);
}

void api_jobs_pause(http_req *r)
{
    if (!http_body_none(r, "pause"))
        control(r, jobs_pause);
}

void api_jobs_cancel(http_req *r)
{
    if (!http_body_none(r, "cancel"))
        control(r, jobs_cancel);
}

void api_jobs_resume(http_req *r)
{
    if (!http_body_none(r, "resume"))
        control(r, jobs_resume);
}

static void delete_work(http_req *r, store_t *s)
{
    ctl_q *q = r->ctx;
    jobs_delete_store(s, r->m.params[0], &q->out);
    if (q->out.result != JOB_OK) {
        const char *code;
        unsigned st = status_of(&q->out, &code);
        http_set_pending_error(r, st, code, q->out.field[0] ? q->out.field : NULL, "%s",
                               q->out.message);
        return;
    }
    http_resume_pending(r, 204,
                        MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT));
}

/* Loop thread, after delete_work. */
static void delete_done(http_req *r)
{
    ctl_q *q = r->ctx;
    if (q->out.result == JOB_OK && r->pending_status == 204)
        jobs_deleted(&r->api->sv->jobs, r->m.params[0]);
}

static void delete_go(http_req *r)
{
    ctl_q *q = r->ctx;
    q->out.result = JOB_NO_MEMORY; /* until delete_work says otherwise */
    r->loop_fn = delete_done;
    http_defer(r, delete_work);
}

/* The worker that had finished the job let go of it: loop thread. */
static void delete_waited(job_waiter *w, const job_outcome *o)
{
    (void)o;
    delete_go(((ctl_q *)((char *)w - offsetof(ctl_q, w)))->r);
}

void api_jobs_delete(http_req *r)
{
    ctl_q *q = new_ctl_q(r);
    if (!q)
        return;
    q->w.done = delete_waited;
    job_outcome o;
    if (jobs_delete_check(&r->api->sv->jobs, r->m.params[0], &q->w, &o) == 1) {
        http_suspend(r); /* deleted once the worker lets go (delete_waited) */
        return;
    }
    if (o.result != JOB_OK) {
        answer(r, &o, 0);
        return;
    }
    delete_go(r);
}
