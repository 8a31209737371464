/* jobsched — PATCH /v1/jobs/{id} (a job's priority, tags, notes and name) and the pins of
 * its checkpoints (POST /v1/jobs/{id}/checkpoints/{step}/pin, /unpin). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "api/jobjson.h"
#include "api/routes.h"
#include "core/config_keep.h"
#include "core/jsonnum.h"
#include "core/config_sched.h"
#include "api/api.h"

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

/* The stored spec with the PATCH applied, as text for the store. */
static int apply(const char *text, char **out, void *arg)
{
    cJSON *spec = cJSON_Parse(text);
    if (!spec)
        return -EPROTO;
    int rc = cfg_sched_patch_apply(spec, arg);
    if (!rc && !(*out = cJSON_PrintUnformatted(spec)))
        rc = -ENOMEM;
    cJSON_Delete(spec);
    return rc;
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
        http_set_pending_store_error(r, rc, NULL, &e);
        return;
    }
    snprintf(r->work_id, sizeof r->work_id, "%.31s", id);
    /* the answer shows the place patch_done gives a queued job (the copy is from before) */
    if (q->has_priority && jobs_queue_place_at(&q->ov, id, q->priority, 0) != 0) {
        store_job_free(&row);
        http_set_pending_error(r, 503, "unavailable", NULL, "out of memory printing the job");
        return;
    }
    http_set_pending_json(r, 200, api_job_json_overlay(&q->ov, &row));
    store_job_free(&row);
    if (!r->pending)
        http_set_pending_error(r, 503, "unavailable", NULL, "out of memory printing the job");
}

/* On the loop: a queued job takes its new place in the queue. */
static void patch_done(http_req *r)
{
    patch_q *q = r->ctx;
    if (r->pending_status == 200 && r->work_id[0] && q->has_priority)
        jobs_sched_reprioritize(&r->api->sv->jobs, r->work_id, q->priority);
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
    if (!q || jobs_overlay_capture(&r->api->sv->jobs, &q->ov) != 0) {
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

/* ---- checkpoint pins ------------------------------------------------------------------ */

store_keep api_keep_of(const store_job *row)
{
    store_keep k = {0};
    cfg_keep_best kb;
    cfg_keep_best_of_spec(row ? row->spec_json : NULL, &kb);
    k.best_k = kb.k;
    k.best_metric = kb.metric;
    k.best_max = kb.maximize;
    return k;
}

typedef struct pin_q {
    int pin;
    int64_t step;
} pin_q;

/* One checkpoint's object, as in GET /v1/jobs/{id}/checkpoints. */
static cJSON *checkpoint_json(const store_checkpoint_info *c)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddNumberToObject(o, "step", (double)c->step);
    cJSON_AddStringToObject(o, "created_at", c->created_at);
    cJSON_AddNumberToObject(o, "bytes", (double)c->bytes);
    if (isfinite(c->loss))
        cJSON_AddItemToObject(o, "loss", json_number(c->loss)); /* exact */
    else
        cJSON_AddNullToObject(o, "loss");
    cJSON_AddBoolToObject(o, "pinned", c->pinned);
    cJSON_AddBoolToObject(o, "best", c->best);
    return o;
}

static void pin_work(http_req *r, store_t *s)
{
    pin_q *q = r->ctx;
    const char *id = r->m.params[0];
    an_err e;
    an_err_clear(&e);
    int rc = store_checkpoint_pin(s, id, q->step, q->pin, &e);
    if (rc == -ENOENT && strcmp(e.field, "step") == 0) {
        http_set_pending_error(r, 404, "not_found", "step", "%s", e.message);
        return;
    }
    if (rc == -ENOENT) {
        http_set_pending_error(r, 404, "not_found", "id", "no job with id '%.64s'", id);
        return;
    }
    store_job row;
    memset(&row, 0, sizeof row);
    store_checkpoint_info *list = NULL;
    size_t n = 0;
    if (!rc)
        rc = store_job_get(s, id, &row, &e);
    store_keep keep = api_keep_of(&row);
    store_job_free(&row);
    if (!rc)
        rc = store_checkpoint_list(s, id, &list, &n, &e);
    if (!rc)
        rc = store_checkpoint_marks(s, id, &keep, list, n, &e);
    if (rc) {
        http_set_pending_store_error(r, rc, NULL, &e);
        free(list);
        return;
    }
    cJSON *o = NULL;
    for (size_t i = 0; i < n; i++)
        if (list[i].step == q->step)
            o = checkpoint_json(&list[i]);
    free(list);
    if (!o) { /* retired between the pin (an unpin) and the read */
        http_set_pending_error(r, 404, "not_found", "step",
                               "job %s has no checkpoint at step %lld any more", id,
                               (long long)q->step);
        return;
    }
    http_set_pending_json(r, 200, o);
    if (!r->pending)
        http_set_pending_error(r, 503, "unavailable", NULL, "out of memory");
}

static void pin_route(http_req *r, int pin)
{
    const char *p = r->m.params[1];
    char *end = NULL;
    errno = 0;
    long long step = strtoll(p, &end, 10);
    if (!*p || *end || errno || step < 0 || p[0] == '+' || p[0] == '-' || p[0] == ' ') {
        http_error(r, 400, "invalid_argument", "step",
                   "step must be a checkpoint's step (an integer >= 0), got '%.32s'", p);
        return;
    }
    if (http_body_none(r, pin ? "pin" : "unpin"))
        return;
    pin_q *q = calloc(1, sizeof *q);
    if (!q) {
        http_error(r, 503, "unavailable", NULL, "out of memory");
        return;
    }
    q->pin = pin;
    q->step = step;
    r->ctx = q;
    r->ctx_free = free;
    http_defer(r, pin_work);
}

void api_checkpoint_pin(http_req *r)
{
    pin_route(r, 1);
}

void api_checkpoint_unpin(http_req *r)
{
    pin_route(r, 0);
}
