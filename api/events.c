/* events — GET /v1/jobs/{id}/events and GET /v1/events: Server-Sent Events streams.
 *
 * On connect a client gets "retry:", then either the events it missed (Last-Event-ID still
 * in the hub's ring, see api/sse.h) or, when there is no Last-Event-ID or it is older than the
 * ring, a snapshot: each job's `state` and latest `progress` (from the store and the live
 * run), stamped with the newest id issued so far. Then live events follow. The snapshot is
 * what a client must rely on after a long gap; the exact per-step history is in /metrics. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "api/jobjson.h"
#include "core/jsonnum.h"
#include "api/routes.h"
#include "api/api.h"
#include "store/sweeps.h"

/* Last-Event-ID from the header (or ?last_event_id= for clients that cannot set it). */
static int last_event_id(http_req *r, uint64_t *out)
{
    const char *v = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Last-Event-ID");
    if (!v)
        v = http_query(r, "last_event_id");
    if (!v || !*v)
        return 0;
    char *end = NULL;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || *end)
        return 0; /* not one of ours: treated as no id (snapshot) */
    *out = x;
    return 1;
}

/* A stream being opened: the snapshot is made on the quick queue (it reads the store and
 * prints each job's JSON, parsing its spec), then the stream opens on the loop. */
typedef struct snap_q {
    char job[STORE_ID_LEN];   /* "" = every job; s_…: a sweep's events */
    const char *field;        /* where the id came from, for a 404: "id" (path) or "job" */
    uint64_t id;              /* the newest event id when the request came: the snapshot's */
    int replay;               /* Last-Event-ID is still in the ring: no snapshot */
    uint64_t last;            /* that id */
    job_overlay ov;           /* what the loop knows beyond the store, copied */
    char *frames;             /* the snapshot's frames */
    size_t len, cap;
} snap_q;

static void snap_q_free(void *p)
{
    snap_q *q = p;
    jobs_overlay_free(&q->ov);
    free(q->frames);
    free(q);
}

/* Appends one frame to the snapshot; 0 or -ENOMEM. */
static int add_frame(snap_q *q, const char *event, const cJSON *data)
{
    size_t n = 0;
    char *f = sse_format(event, q->id, data, &n);
    if (!f)
        return -ENOMEM;
    if (q->len + n > q->cap) {
        size_t cap = q->cap ? q->cap : 4096;
        while (cap < q->len + n)
            cap *= 2;
        char *b = realloc(q->frames, cap);
        if (!b) {
            free(f);
            return -ENOMEM;
        }
        q->frames = b;
        q->cap = cap;
    }
    memcpy(q->frames + q->len, f, n);
    q->len += n;
    free(f);
    return 0;
}

/* One job's state and latest progress, as frames of the snapshot. */
static int snapshot(snap_q *q, const store_job *row)
{
    cJSON *js = api_job_json_overlay(&q->ov, row);
    if (!js)
        return -ENOMEM;
    cJSON *st = cJSON_CreateObject();
    cJSON_AddStringToObject(st, "id", row->id);
    cJSON_AddStringToObject(st, "state", store_state_name(row->state));
    if (row->error)
        cJSON_AddStringToObject(st, "error", row->error);
    else
        cJSON_AddNullToObject(st, "error");
    int rc = add_frame(q, "state", st);
    cJSON_Delete(st);
    cJSON *step = cJSON_GetObjectItemCaseSensitive(js, "step");
    if (rc == 0 && cJSON_IsNumber(step) && step->valuedouble > 0) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "id", row->id);
        static const char *keys[] = {"step", "total_steps", "epoch", "loss", "lr",
                                     "samples_per_sec", "eta_s"};
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
            cJSON *v = cJSON_GetObjectItemCaseSensitive(js, keys[k]);
            cJSON_AddItemToObject(p, keys[k], v ? cJSON_Duplicate(v, 1) : cJSON_CreateNull());
        }
        /* Like the live progress events: the validation fields once a validation ran. */
        cJSON *vl = cJSON_GetObjectItemCaseSensitive(js, "val_loss");
        cJSON *va = cJSON_GetObjectItemCaseSensitive(js, "val_acc");
        if (json_is_number(vl)) {
            cJSON_AddItemToObject(p, "val_loss", cJSON_Duplicate(vl, 1));
            cJSON_AddItemToObject(p, "val_acc", va ? cJSON_Duplicate(va, 1) : cJSON_CreateNull());
        }
        rc = add_frame(q, "progress", p);
        cJSON_Delete(p);
    }
    cJSON_Delete(js);
    return rc;
}

/* Queue thread: checks the job exists and, without a replay, makes the snapshot. */
static void snap_work(http_req *r, store_t *s)
{
    snap_q *q = r->ctx;
    an_err e;
    an_err_clear(&e);
    int rc = 0;
    if (q->job[0] == 's' && q->job[1] == '_') { /* a sweep's events: nothing to snapshot */
        store_sweep w;
        memset(&w, 0, sizeof w);
        rc = store_sweep_get(s, q->job, &w, &e);
        store_sweep_free(&w);
        if (rc == -ENOENT) {
            http_set_pending_error(r, 404, "not_found", q->field, "no sweep with id '%.64s'",
                                   q->job);
            return;
        }
    } else if (q->job[0]) {
        store_job row;
        memset(&row, 0, sizeof row);
        rc = store_job_get(s, q->job, &row, &e);
        if (rc == -ENOENT) {
            http_set_pending_error(r, 404, "not_found", q->field, "no job with id '%.64s'",
                                   q->job);
            store_job_free(&row);
            return;
        }
        if (rc == 0 && !q->replay)
            rc = snapshot(q, &row);
        store_job_free(&row);
    } else if (!q->replay) {
        /* Every job that is not finished, so a dashboard starts from the present. */
        store_job *jobs = NULL;
        size_t n = 0;
        unsigned mask = STORE_MASK(STORE_QUEUED) | STORE_MASK(STORE_RUNNING) |
                        STORE_MASK(STORE_PAUSED);
        rc = store_job_list(s, mask, 200, 0, &jobs, &n, NULL, &e);
        for (size_t i = n; rc == 0 && i-- > 0;)
            rc = snapshot(q, &jobs[i]);
        store_job_list_free(jobs, n);
    }
    if (rc == -ENOMEM)
        http_set_pending_error(r, 503, "unavailable", NULL, "out of memory making the snapshot");
    else if (rc) /* the stream still opens: live events follow, /metrics has the history */
        q->len = 0;
}

/* Admits a stream from the request's address; answers 503 and returns -1 when over a cap. */
static int admit(http_req *r, char ip[48], int deferred)
{
    char msg[160];
    conns_peer(r->conn, ip);
    if (conns_sse_admit(r->api, &r->api->hub, ip, msg, sizeof msg) == 0)
        return 0;
    struct MHD_Response *busy = http_error_response("unavailable", NULL, msg);
    if (busy)
        MHD_add_response_header(busy, "Retry-After", "5");
    if (deferred)
        http_resume_pending(r, 503, busy);
    else
        http_queue(r, 503, busy);
    return -1;
}

/* Loop thread, after snap_work: opens the stream with the snapshot, then whatever was
 * published while it was made. */
static void snap_open(http_req *r)
{
    snap_q *q = r->ctx;
    char ip[48];
    if (r->pending || admit(r, ip, 1)) /* 404, out of memory, or too many streams by now */
        return;
    api_t *api = r->api;
    int replay = q->replay && sse_can_replay(&api->hub, q->job, q->last);
    sse_client *c = NULL;
    struct MHD_Response *resp = sse_client_open(&api->hub, r->conn, q->job, replay, q->last, &c);
    if (!resp) {
        http_set_pending_error(r, 503, "unavailable", NULL, "out of memory");
        return;
    }
    snprintf(c->ip, sizeof c->ip, "%s", ip);
    if (!replay) {
        sse_client_push(c, q->frames, q->len);
        /* Events after the snapshot's id, unless the ring has moved past them: then the
         * snapshot is older than the ring and the client catches up from /metrics. */
        if (sse_can_replay(&api->hub, q->job, q->id))
            sse_client_replay(&api->hub, c, q->id);
    }
    http_resume_pending(r, 200, resp);
}

static void open_stream(http_req *r, const char *job, const char *field)
{
    char ip[48];
    size_t jl = strlen(job);
    if (jl >= STORE_ID_LEN) { /* longer than any id */
        http_error(r, 404, "not_found", field, "no job with id '%.64s'", job);
        return;
    }
    if (admit(r, ip, 0)) /* cheap, before any work; checked again when the stream opens */
        return;
    snap_q *q = calloc(1, sizeof *q);
    if (!q || jobs_overlay_capture(&r->api->sv->jobs, &q->ov) != 0) {
        free(q);
        http_error(r, 503, "unavailable", NULL, "out of memory");
        return;
    }
    memcpy(q->job, job, jl + 1);
    q->field = field;
    q->id = sse_last_id(&r->api->hub);
    q->replay = last_event_id(r, &q->last) && sse_can_replay(&r->api->hub, q->job, q->last);
    r->ctx = q;
    r->ctx_free = snap_q_free;
    r->loop_fn = snap_open;
    http_defer(r, snap_work);
}

/* ---- the job manager's events ---------------------------------------------------------- */

static void sink_state(void *ctx, const char *id, const char *state, const char *error)
{
    api_t *api = ctx;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "state", state);
    if (error)
        cJSON_AddStringToObject(o, "error", error);
    else
        cJSON_AddNullToObject(o, "error");
    sse_publish(&api->hub, id, "state", o);
    cJSON_Delete(o);
}

static void sink_progress(void *ctx, const char *id, const job_snap *s)
{
    api_t *api = ctx;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddNumberToObject(o, "step", (double)s->step);
    cJSON_AddNumberToObject(o, "total_steps", (double)s->total_steps);
    cJSON_AddNumberToObject(o, "epoch", (double)s->epoch);
    cJSON_AddItemToObject(o, "loss", json_number(s->loss));
    cJSON *lr = cJSON_AddArrayToObject(o, "lr");
    for (int g = 0; g < s->n_lr; g++)
        cJSON_AddItemToArray(lr, json_number(s->lr[g]));
    cJSON_AddItemToObject(o, "samples_per_sec", json_number(s->samples_per_sec));
    cJSON_AddItemToObject(o, "eta_s", json_number(s->eta_s));
    if (s->val_step > 0) { /* the latest validation of this run, once there is one */
        cJSON_AddItemToObject(o, "val_loss", json_number(s->val_loss));
        cJSON_AddItemToObject(o, "val_acc", json_number(s->val_acc));
    }
    sse_publish(&api->hub, id, "progress", o);
    cJSON_Delete(o);
}

static void sink_checkpoint(void *ctx, const char *id, int64_t step, int64_t bytes)
{
    api_t *api = ctx;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddNumberToObject(o, "step", (double)step);
    cJSON_AddNumberToObject(o, "bytes", (double)bytes);
    sse_publish(&api->hub, id, "checkpoint", o);
    cJSON_Delete(o);
}

void api_events_deleted(struct api *api, const char *id)
{
    cJSON *o = cJSON_CreateObject();
    if (o && cJSON_AddStringToObject(o, "id", id))
        sse_publish(&api->hub, id, "deleted", o);
    cJSON_Delete(o);
    sse_hub_end(&api->hub, id);
}

static void sink_deleted(void *ctx, const char *id)
{
    api_events_deleted(ctx, id);
}

void api_events_sink(api_t *api, job_sink *out)
{
    out->ctx = api;
    out->state = sink_state;
    out->progress = sink_progress;
    out->checkpoint = sink_checkpoint;
    out->deleted = sink_deleted;
}

/* A sweep's event as its SSE frame (loop thread). */
static void sink_sweep(void *ctx, const sweep_event *ev)
{
    api_t *api = ctx;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", ev->id);
    cJSON_AddStringToObject(o, "event", ev->event);
    cJSON_AddStringToObject(o, "state", ev->state);
    if (ev->trial >= 0) {
        cJSON_AddNumberToObject(o, "trial", ev->trial);
        if (ev->job[0])
            cJSON_AddStringToObject(o, "job", ev->job);
        else
            cJSON_AddNullToObject(o, "job");
    }
    cJSON_AddNumberToObject(o, "trials", ev->trials);
    cJSON_AddNumberToObject(o, "trials_started", ev->trials_started);
    cJSON_AddNumberToObject(o, "trials_active", ev->trials_active);
    if (o)
        sse_publish(&api->hub, ev->id, "sweep", o);
    cJSON_Delete(o);
}

void api_sweeps_sink(api_t *api, sweep_sink *out)
{
    out->ctx = api;
    out->event = sink_sweep;
}

void api_events_job(http_req *r)
{
    open_stream(r, r->m.params[0], "id");
}

/* ?job=ID narrows it to one job (as /v1/jobs/{id}/events) or to one sweep's events. */
void api_events_all(http_req *r)
{
    const char *job = http_query(r, "job");
    if (job && !*job) {
        http_error(r, 400, "invalid_argument", "job", "job must be a job id (j_…) or a sweep id "
                   "(s_…); leave it out for every job's events");
        return;
    }
    open_stream(r, job ? job : "", "job");
}
