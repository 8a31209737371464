/* metrics — a job's history: GET metrics (columnar JSON or CSV) and checkpoints (weights
 * and predict are in inference.c). Each runs on the libuv thread pool with its own store
 * connection (http_defer), so a long query or building a model never blocks the loop. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "api/metrics_stream.h"
#include "api/routes.h"
#include "core/config.h"
#include "core/jsonnum.h"
#include "core/train.h"
#include "api/api.h"


typedef struct metrics_q {
    int64_t from, to, max_points;
    int csv;
} metrics_q;

static void store_fail(http_req *r, int rc, const an_err *e, const char *id)
{
    if (rc == -ENOENT)
        http_set_pending_error(r, 404, "not_found", "id", "no job with id '%.64s'", id);
    else
        http_set_pending_store_error(r, rc, NULL, e); /* its field (max_points), if any */
}

/* The answer is streamed (metrics_stream.c): the work here only checks the job and makes
 * the first piece, so a failure is still a plain error answer. */
static void metrics_work(http_req *r, store_t *s)
{
    metrics_q *q = r->ctx;
    const char *id = r->m.params[0];
    an_err e;
    an_err_clear(&e);
    struct MHD_Response *resp = NULL;
    int rc = metrics_stream_open(r, s, id, q->from, q->to, q->max_points, q->csv, &resp, &e);
    if (rc) {
        store_fail(r, rc, &e, id);
        return;
    }
    http_resume_pending(r, 200, resp);
}

void api_jobs_metrics(http_req *r)
{
    metrics_q *q = calloc(1, sizeof *q);
    if (!q) {
        http_error(r, 500, "internal", NULL, "out of memory");
        return;
    }
    r->ctx = q;
    r->ctx_free = free;
    if (http_query_int(r, "from", 0, INT64_MAX / 2, 0, &q->from) ||
        http_query_int(r, "to", -1, INT64_MAX / 2, -1, &q->to) ||
        http_query_int(r, "max_points", 0, 10000000, 0, &q->max_points))
        return;
    const char *fmt = http_query(r, "format");
    if (fmt && strcmp(fmt, "csv") != 0 && strcmp(fmt, "json") != 0) {
        http_error(r, 400, "invalid_argument", "format", "format must be json or csv, got '%.32s'",
                   fmt);
        return;
    }
    if (fmt && strcmp(fmt, "csv") == 0 && q->max_points > 0) {
        http_error(r, 400, "invalid_argument", "max_points",
                   "max_points downsamples the JSON answer; the CSV export has every row of the "
                   "range (leave max_points out, or narrow the range with from and to)");
        return;
    }
    if (q->to >= 0 && q->to < q->from) {
        http_error(r, 400, "invalid_argument", "to", "to (%lld) must not be below from (%lld)",
                   (long long)q->to, (long long)q->from);
        return;
    }
    q->csv = fmt && strcmp(fmt, "csv") == 0;
    http_defer_slow(r, metrics_work);
}

static void checkpoints_work(http_req *r, store_t *s)
{
    const char *id = r->m.params[0];
    an_err e;
    store_job row;
    memset(&row, 0, sizeof row);
    int rc = store_job_get(s, id, &row, &e);
    store_keep keep = api_keep_of(&row); /* pinned and best (api/jobsched.c) */
    store_job_free(&row);
    store_checkpoint_info *list = NULL;
    size_t n = 0;
    if (!rc)
        rc = store_checkpoint_list(s, id, &list, &n, &e);
    if (!rc)
        rc = store_checkpoint_marks(s, id, &keep, list, n, &e);
    if (rc) {
        store_fail(r, rc, &e, id);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "checkpoints");
    for (size_t i = 0; i < n; i++) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddNumberToObject(c, "step", (double)list[i].step);
        cJSON_AddStringToObject(c, "created_at", list[i].created_at);
        cJSON_AddNumberToObject(c, "bytes", (double)list[i].bytes);
        if (isfinite(list[i].loss))
            cJSON_AddItemToObject(c, "loss", json_number(list[i].loss)); /* exact */
        else
            cJSON_AddNullToObject(c, "loss");
        cJSON_AddBoolToObject(c, "pinned", list[i].pinned);
        cJSON_AddBoolToObject(c, "best", list[i].best);
        cJSON_AddItemToArray(arr, c);
    }
    free(list);
    http_set_pending_json(r, 200, o);
}

void api_jobs_checkpoints(http_req *r)
{
    http_defer(r, checkpoints_work);
}
