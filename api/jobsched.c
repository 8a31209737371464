/* jobsched — PATCH /v1/jobs/{id}: a job's priority, tags, notes and name. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "api/routes.h"
#include "core/config_sched.h"
#include "daemon/daemon.h"

typedef struct patch_q {
    cJSON *body;               /* the checked PATCH body */
    job_overlay ov;            /* the manager's view, for the answer */
    int has_priority, priority;
} patch_q;

static void patch_q_free(void *p)
{
    patch_q *q = p;
    if (!q)
        return;
    cJSON_Delete(q->body);
    jobs_overlay_free(&q->ov);
    free(q);
}

static int apply(cJSON *spec, void *arg)
{
    return cfg_sched_patch_apply(spec, arg);
}

/* On a queue thread: the edit in one transaction, then the job as it is now. */
static void patch_work(http_req *r, store_t *s)
{
    patch_q *q = r->ctx;
    const char *id = r->m.params[0];
    an_err e;
    int rc = store_job_edit_spec(s, id, apply, q->body, &e);
    if (rc == -ENOENT) {
        http_set_pending_error(r, 404, "not_found", "id", "no job with id '%.64s'", id);
        return;
    }
    store_job row;
    memset(&row, 0, sizeof row);
    if (!rc)
        rc = store_job_get(s, id, &row, &e);
    if (rc) {
        const char *code;
        unsigned st = http_status_of_store(rc, &code);
        http_set_pending_error(r, st, code, NULL, "%s", e.message);
        return;
    }
    snprintf(r->work_id, sizeof r->work_id, "%.31s", id);
    http_set_pending_json(r, 200, jobs_to_json_overlay(&q->ov, &row));
    store_job_free(&row);
    if (!r->pending)
        http_set_pending_error(r, 503, "unavailable", NULL, "out of memory printing the job");
}

/* On the loop: a queued job takes its new place in the queue. */
static void patch_done(http_req *r)
{
    patch_q *q = r->ctx;
    if (r->pending_status == 200 && r->work_id[0] && q->has_priority)
        jobs_sched_reprioritize(&r->d->jobs, r->work_id, q->priority);
}

void api_jobs_patch(http_req *r)
{
    cJSON *body = http_body_json(r);
    if (!body)
        return;
    an_err e;
    an_err_clear(&e);
    if (cfg_sched_patch_check(body, &e) != 0) {
        http_error(r, 400, "invalid_argument", e.field[0] ? e.field : "body", "%s", e.message);
        cJSON_Delete(body);
        return;
    }
    patch_q *q = calloc(1, sizeof *q);
    if (!q || jobs_overlay_capture(&r->d->jobs, &q->ov) != 0) {
        free(q);
        cJSON_Delete(body);
        http_error(r, 503, "unavailable", NULL, "out of memory");
        return;
    }
    q->body = body;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(body, "priority");
    if (p) {
        q->has_priority = 1;
        q->priority = (int)p->valuedouble;
    }
    r->ctx = q;
    r->ctx_free = patch_q_free;
    r->loop_fn = patch_done;
    http_defer(r, patch_work);
}
