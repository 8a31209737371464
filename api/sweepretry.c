/* sweepretry — POST /v1/sweeps/{id}/retry: the trials that could not start, started again. */
#include <errno.h>
#include <stdio.h>

#include "api/api.h"
#include "api/http.h"
#include "api/routes.h"
#include "api/sweepq.h"
#include "store/sweeps.h"

/* The retry is recorded first (the trials' marks and the sweep's state, one transaction), so
 * that the answer and a restart see it; the loop then starts the trials (retry_done). */
static void retry_work(http_req *r, store_t *st)
{
    sweep_q *q = r->ctx;
    const char *id = r->m.params[0];
    int marked = 0;
    an_err e;
    an_err_clear(&e);
    int rc = store_sweep_retry(st, id, q->retry_also, &marked, &q->reopened, &e);
    if (rc == -ENOENT) {
        http_set_pending_error(r, 404, "not_found", "id", "no sweep with id '%.64s'", id);
        return;
    }
    if (rc == STORE_ESTATE) {
        http_set_pending_error(r, 409, "conflict", e.field, "%s", e.message);
        return;
    }
    /* A sweep the loop does not drive (it ended with nothing that may run again, or came from
     * an earlier start) is read back for it, its retried trials pending. */
    if (!rc && !q->driven)
        rc = sweeps_load(st, id, &q->made, &e);
    if (rc) {
        http_set_pending_store_error(r, rc, "the retry could not be recorded", &e);
        return;
    }
    snprintf(r->work_id, sizeof r->work_id, "%.31s", id);
    api_sweep_answer(r, st, id, 200);
}

/* Loop thread: the retried trials wait for their places, the first ones start now. */
static void retry_done(http_req *r)
{
    sweep_q *q = r->ctx;
    if (!r->work_id[0])
        return;
    sweeps_retry(&r->api->sv->sweeps, r->work_id, q->made, q->reopened);
    q->made = NULL;
}

void api_sweeps_retry(http_req *r)
{
    if (http_body_none(r, "a sweep's retry"))
        return;
    const char *id = r->m.params[0];
    int n = sweeps_retry_count(&r->api->sv->sweeps, id);
    if (n == -ECANCELED) { /* its cancel may not be in the store yet */
        http_error(r, 409, "conflict", "state", "sweep %s was cancelled: its trials start no "
                   "more", id);
        return;
    }
    sweep_q *q = api_sweep_q_new(r, id);
    if (!q)
        return;
    q->driven = n >= 0;
    q->retry_also = n > 0 ? n : 0;
    r->work_id[0] = '\0';
    r->loop_fn = retry_done;
    http_defer(r, retry_work);
}
