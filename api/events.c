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
#include "core/jsonnum.h"
#include "api/routes.h"
#include "daemon/daemon.h"

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

/* Sends one job's state and latest progress to a fresh client. */
static void snapshot(daemon_t *d, sse_client *c, const store_job *row, uint64_t id)
{
    cJSON *js = jobs_to_json(&d->jobs, row);
    if (!js)
        return;
    cJSON *st = cJSON_CreateObject();
    cJSON_AddStringToObject(st, "id", row->id);
    cJSON_AddStringToObject(st, "state", store_state_name(row->state));
    if (row->error)
        cJSON_AddStringToObject(st, "error", row->error);
    else
        cJSON_AddNullToObject(st, "error");
    sse_client_send(c, "state", id, st);
    cJSON_Delete(st);
    cJSON *step = cJSON_GetObjectItemCaseSensitive(js, "step");
    if (cJSON_IsNumber(step) && step->valuedouble > 0) {
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
        sse_client_send(c, "progress", id, p);
        cJSON_Delete(p);
    }
    cJSON_Delete(js);
}

static void open_stream(http_req *r, const char *job)
{
    daemon_t *d = r->d;
    uint64_t last = 0;
    int has_last = last_event_id(r, &last);
    int replay = has_last && sse_can_replay(&d->hub, last);
    char ip[48], msg[160];
    conns_peer(r->conn, ip);
    if (conns_sse_admit(d, &d->hub, ip, msg, sizeof msg)) { /* caps: api/conns.h */
        struct MHD_Response *busy = http_error_response("unavailable", NULL, msg);
        if (busy)
            MHD_add_response_header(busy, "Retry-After", "5");
        http_queue(r, 503, busy);
        return;
    }
    sse_client *c = NULL;
    struct MHD_Response *resp = sse_client_open(&d->hub, r->conn, job, replay, last, &c);
    if (!resp) {
        http_error(r, 500, "internal", NULL, "out of memory");
        return;
    }
    snprintf(c->ip, sizeof c->ip, "%s", ip);
    if (!replay) {
        uint64_t id = sse_last_id(&d->hub);
        if (job[0]) {
            store_job row;
            memset(&row, 0, sizeof row);
            if (store_job_get(&d->store, job, &row, NULL) == 0)
                snapshot(d, c, &row, id);
            store_job_free(&row);
        } else {
            /* Every job that is not finished, so a dashboard starts from the present. */
            store_job *jobs = NULL;
            size_t n = 0;
            unsigned mask = STORE_MASK(STORE_QUEUED) | STORE_MASK(STORE_RUNNING) |
                            STORE_MASK(STORE_PAUSED);
            if (store_job_list(&d->store, mask, 200, 0, &jobs, &n, NULL, NULL) == 0) {
                for (size_t i = n; i-- > 0;)
                    snapshot(d, c, &jobs[i], id);
                store_job_list_free(jobs, n);
            }
        }
    }
    http_queue(r, 200, resp);
}

void api_events_job(http_req *r)
{
    const char *id = r->m.params[0];
    store_job row;
    memset(&row, 0, sizeof row);
    int rc = store_job_get(&r->d->store, id, &row, NULL);
    store_job_free(&row);
    if (rc == -ENOENT) {
        http_error(r, 404, "not_found", "id", "no job with id '%.64s'", id);
        return;
    }
    open_stream(r, id);
}

void api_events_all(http_req *r)
{
    open_stream(r, "");
}
