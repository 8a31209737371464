/* jobs — POST/GET/DELETE /v1/jobs and the transitions pause, resume, cancel. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "api/jobjson.h"
#include "api/routes.h"
#include "core/assets.h"
#include "core/config.h"
#include "core/config_data.h"
#include "core/jsonnum.h"
#include "core/memest.h"
#include "api/api.h"

/* Answers 503 when --max-queued jobs already wait; returns 1 then. */
static int queue_full(http_req *r)
{
    api_t *api = r->api;
    int queued = 0, running = 0;
    jobs_counts(&api->sv->jobs, &queued, &running);
    if (queued < api->sv->opts->max_queued)
        return 0;
    http_error(r, 503, "unavailable", NULL,
               "the queue is full: %d jobs are waiting (--max-queued %d); try again later",
               queued, api->sv->opts->max_queued);
    return 1;
}

/* Answers 400 for a spec with `n` (>= 1) errors: API.md's {"error": {code, message, field}}
 * for the first, and "errors": [{"message", "field"}, …] with every one of them (field null
 * when an error has no path), so a client can mark all at once. */
void api_spec_errors(http_req *r, const an_err *errs, int n)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *first = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(first, "code", "invalid_argument");
    cJSON_AddStringToObject(first, "message", errs[0].message[0] ? errs[0].message : "invalid job spec");
    if (errs[0].field[0])
        cJSON_AddStringToObject(first, "field", errs[0].field);
    else
        cJSON_AddNullToObject(first, "field");
    cJSON *all = cJSON_AddArrayToObject(o, "errors");
    for (int k = 0; all && k < n; k++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "message", errs[k].message);
        if (errs[k].field[0])
            cJSON_AddStringToObject(x, "field", errs[k].field);
        else
            cJSON_AddNullToObject(x, "field");
        cJSON_AddItemToArray(all, x);
    }
    http_reply_json(r, 400, o);
}

void api_submit_error(http_req *r, const submit_outcome *out)
{
    const an_err *e = &out->errs[0];
    const char *field = e->field[0] ? e->field : NULL;
    switch (out->kind) {
    case SUBMIT_INVALID:
        api_spec_errors(r, out->errs, out->nerr);
        break;
    case SUBMIT_UNPROCESSABLE:
        http_error(r, 422, "unprocessable", field, "%s", e->message);
        break;
    case SUBMIT_STORE: {
        http_store_error(r, out->store_rc, "the job could not be stored", e);
        break;
    }
    default:
        http_error(r, 503, "unavailable", NULL, "%s", e->message);
        break;
    }
}

/* A stored job on its way to the queue (r->ctx from api_jobs_create_by to create_done), with
 * the copy of the queue its answer shows its place in. */
typedef struct queued_job {
    job_run *run;
    store_job_sched sched;
    job_overlay ov;
} queued_job;

static void queued_job_free(void *p)
{
    queued_job *q = p;
    if (q->run)
        jobs_run_free(q->run);
    jobs_overlay_free(&q->ov);
    free(q);
}

/* Checks and stores a new job on a queue thread (a spec can be megabytes of inline data);
 * create_done queues it on the loop thread. */
static void create_work(http_req *r, store_t *st)
{
    an_err e;
    cJSON *body = NULL;
    if (http_body_read(r, &body, &e)) {
        api_spec_errors(r, &e, 1);
        return;
    }
    api_jobs_submit(r, st, body);
}

void api_jobs_submit(http_req *r, store_t *st, cJSON *body)
{
    submit_outcome *out = malloc(sizeof *out);
    if (!out) {
        cJSON_Delete(body);
        http_error(r, 503, "unavailable", NULL, "out of memory checking the job spec");
        return;
    }
    if (job_submit(st, r->api->sv->opts, body, NULL, out) != SUBMIT_OK) {
        api_submit_error(r, out);
        free(out);
        return;
    }
    char id[STORE_ID_LEN];
    snprintf(id, sizeof id, "%s", out->id);
    free(out);
    /* What create_done needs to queue the job, taken here so that it cannot fail there: its
     * run, and its scheduling numbers (the loop thread reads no store). */
    queued_job *q = r->ctx;
    jobs_sched_read(st, id, &q->sched);
    if (!(q->run = jobs_run_new(id)) ||
        jobs_queue_place_at(&q->ov, id, q->sched.priority, 1) != 0) {
        job_submit_undo(st, id);
        http_error(r, 503, "unavailable", NULL,
                   "out of memory queueing the job; nothing was stored, try again");
        return;
    }
    /* The answer shows the job as stored (queued), before a worker can take it, at the place
     * it takes in the queue. */
    store_job row;
    memset(&row, 0, sizeof row);
    an_err e;
    if (store_job_get(st, id, &row, &e) != 0) {
        http_error(r, 500, "internal", NULL, "%s", e.message);
        return;
    }
    /* a new job: neither preempted nor restarted */
    cJSON *jo = api_job_json_overlay(&q->ov, &row);
    struct MHD_Response *resp = http_json_response(jo);
    store_job_free(&row);
    if (!resp) {
        job_submit_undo(st, id);
        http_error(r, 503, "unavailable", NULL, "out of memory answering; nothing was stored");
        return;
    }
    char loc[64];
    snprintf(loc, sizeof loc, "/v1/jobs/%s", id);
    MHD_add_response_header(resp, "Location", loc);
    snprintf(r->work_id, sizeof r->work_id, "%s", id);
    http_queue(r, 201, resp);
}

/* Loop thread, after create_work: a stored job joins the queue. */
static void create_done(http_req *r)
{
    api_t *api = r->api;
    if (!r->work_id[0] || r->pending_status != 201 || !r->ctx)
        return;
    if (api->sv->phase != PHASE_SERVING) /* stopping: it stays queued in the store for the restart */
        return;
    queued_job *q = r->ctx;
    if (!q->run)
        return;
    jobs_enqueue_run(&api->sv->jobs, q->run, &q->sched);
    q->run = NULL;
    jobs_emit_state(&api->sv->jobs, r->work_id, "queued", NULL);
}

void api_jobs_create(http_req *r)
{
    if (http_body_blank(r)) {
        http_error(r, 400, "invalid_argument", "body",
                   "a job spec (JSON object) was expected, got an empty body");
        return;
    }
    api_jobs_create_by(r, create_work);
}

void api_jobs_create_by(http_req *r, void (*work)(http_req *r, store_t *st))
{
    if (queue_full(r))
        return;
    queued_job *q = calloc(1, sizeof *q);
    if (!q || jobs_overlay_capture(&r->api->sv->jobs, &q->ov) != 0) {
        free(q);
        http_error(r, 503, "unavailable", NULL, "out of memory");
        return;
    }
    r->ctx = q;
    r->ctx_free = queued_job_free;
    r->loop_fn = create_done;
    http_defer(r, work);
}

/* A list or one job, made on a queue thread: the store read, every spec parsed and the
 * answer printed off the loop (a list of large specs takes a while), with the manager's
 * overlay copied on the loop before. */
typedef struct list_q {
    int64_t limit, offset;
    unsigned mask;
    char tag[SCHED_TAG_LEN];  /* ?tag= ("" = any) */
    char text[257];           /* ?q= ("" = any) */
    job_overlay ov;
} list_q;

static void list_q_free(void *p)
{
    list_q *q = p;
    if (q)
        jobs_overlay_free(&q->ov);
    free(q);
}

static void list_work(http_req *r, store_t *s)
{
    list_q *q = r->ctx;
    store_job *jobs = NULL;
    size_t n = 0;
    int64_t total = 0;
    an_err e;
    int rc = q->tag[0] || q->text[0]
                 ? store_job_list_filtered(s, q->mask, q->tag, q->text, q->limit, q->offset,
                                           &jobs, &n, &total, &e)
                 : store_job_list(s, q->mask, q->limit, q->offset, &jobs, &n, &total, &e);
    if (rc) {
        http_set_pending_store_error(r, rc, NULL, &e);
        return;
    }
    /* the places of its queued jobs, all of one moment (a job the store owes `queued` may
     * have another state in its row: every job is asked) */
    const char **ids = n ? malloc(n * sizeof *ids) : NULL;
    for (size_t i = 0; ids && i < n; i++)
        ids[i] = jobs[i].id;
    int fixed = (!n || ids) && jobs_queue_fix(&q->ov, ids, n) == 0;
    free(ids);
    cJSON *o = fixed ? cJSON_CreateObject() : NULL;
    cJSON *arr = cJSON_AddArrayToObject(o, "jobs");
    int ok = arr != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        cJSON *j = api_job_json_overlay(&q->ov, &jobs[i]);
        /* a corpus's vocabulary can be thousands of characters: the list names its tokenizer
         * and size, as the list of data sets does (GET the job for the tokens) */
        cJSON *v = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "spec"), "data"),
            "vocabulary");
        if (cJSON_IsObject(v))
            cJSON_DeleteItemFromObjectCaseSensitive(v, "tokens");
        ok = j && cJSON_AddItemToArray(arr, j);
        if (!ok)
            cJSON_Delete(j);
    }
    ok = ok && cJSON_AddNumberToObject(o, "total", (double)total);
    store_job_list_free(jobs, n);
    if (!ok) {
        cJSON_Delete(o);
        http_set_pending_error(r, 503, "unavailable", NULL, "out of memory listing %zu jobs", n);
        return;
    }
    http_set_pending_json(r, 200, o);
    if (!r->pending)
        http_set_pending_error(r, 503, "unavailable", NULL, "out of memory printing the list");
}

static void get_work(http_req *r, store_t *s)
{
    list_q *q = r->ctx;
    const char *id = r->m.params[0];
    store_job row;
    memset(&row, 0, sizeof row);
    an_err e;
    int rc = store_job_get(s, id, &row, &e);
    if (rc == -ENOENT) {
        http_set_pending_error(r, 404, "not_found", "id", "no job with id '%.64s'", id);
        return;
    }
    if (rc) {
        http_set_pending_store_error(r, rc, NULL, &e);
        return;
    }
    http_set_pending_json(r, 200, api_job_json_overlay(&q->ov, &row));
    store_job_free(&row);
    if (!r->pending)
        http_set_pending_error(r, 503, "unavailable", NULL, "out of memory printing the job");
}

/* A list_q with the overlay, as the request's context; answers 503 and returns NULL when
 * out of memory. */
static list_q *new_list_q(http_req *r)
{
    list_q *q = calloc(1, sizeof *q);
    if (!q || jobs_overlay_capture(&r->api->sv->jobs, &q->ov) != 0) {
        free(q);
        http_error(r, 503, "unavailable", NULL, "out of memory");
        return NULL;
    }
    r->ctx = q;
    r->ctx_free = list_q_free;
    return q;
}

void api_jobs_list(http_req *r)
{
    int64_t limit, offset;
    if (http_query_int(r, "limit", 1, 1000, 50, &limit) ||
        http_query_int(r, "offset", 0, INT64_MAX / 2, 0, &offset))
        return;
    unsigned mask = STORE_MASK_ALL;
    /* ?state and ?state= (no value) are a state filter naming none, not no filter */
    const char *st = NULL;
    size_t stn = 0;
    if (MHD_lookup_connection_value_n(r->conn, MHD_GET_ARGUMENT_KIND, "state", 5, &st, &stn) ==
            MHD_YES &&
        !st)
        st = "";
    if (st) {
        /* One state or a comma-separated list ("queued,running"), of any length: every
         * name in it is checked, and one at least is given (an empty ?state= would read as
         * no filter). */
        mask = 0;
        for (const char *p = st; *p;) {
            size_t n = strcspn(p, ",");
            if (n > 0) {
                char tok[16];
                store_job_state s;
                if (n >= sizeof tok || (snprintf(tok, sizeof tok, "%.*s", (int)n, p),
                                        store_state_parse(tok, &s, NULL) != 0)) {
                    http_error(r, 400, "invalid_argument", "state",
                               "state must be queued, running, paused, completed, failed, "
                               "cancelled or stopped, got '%.*s'", n > 32 ? 32 : (int)n, p);
                    return;
                }
                mask |= STORE_MASK(s);
            }
            p += n;
            if (*p == ',')
                p++;
        }
        if (!mask) {
            http_error(r, 400, "invalid_argument", "state",
                       "state must name one or more of queued, running, paused, completed, "
                       "failed, cancelled and stopped (comma-separated), got '%.32s'", st);
            return;
        }
    }
    const char *tag = http_query(r, "tag"), *text = http_query(r, "q");
    if (tag && strlen(tag) >= SCHED_TAG_LEN) {
        http_error(r, 400, "invalid_argument", "tag", "a tag has at most %d bytes, got %zu",
                   SCHED_TAG_LEN - 1, strlen(tag));
        return;
    }
    if (text && strlen(text) > 256) {
        http_error(r, 400, "invalid_argument", "q", "q has at most 256 bytes, got %zu",
                   strlen(text));
        return;
    }
    list_q *q = new_list_q(r);
    if (!q)
        return;
    snprintf(q->tag, sizeof q->tag, "%s", tag ? tag : "");
    snprintf(q->text, sizeof q->text, "%s", text ? text : "");
    q->limit = limit;
    q->offset = offset;
    q->mask = mask;
    http_defer(r, list_work);
}

void api_jobs_get(http_req *r)
{
    if (new_list_q(r))
        http_defer(r, get_work);
}
