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
#include "api/routes.h"
#include "core/config.h"
#include "core/jsonnum.h"
#include "core/train.h"
#include "daemon/daemon.h"


typedef struct metrics_q {
    int64_t from, to, max_points;
    int csv;
} metrics_q;

static void store_fail(http_req *r, int rc, const an_err *e, const char *id)
{
    const char *code;
    unsigned st = http_status_of_store(rc, &code);
    if (rc == -ENOENT)
        http_set_pending_error(r, 404, "not_found", "id", "no job with id '%.64s'", id);
    else
        http_set_pending_error(r, st, code, NULL, "%s", e->message);
}

/* Adds the validation rows as columns "val_step", "val_loss", "val_acc" (NaN as null). They
 * are never downsampled: a job validates every `every_steps` steps, so there are few of them
 * next to the per-step rows. Returns -ENOMEM when an item could not be made. */
static int add_val(cJSON *o, const store_val_metric *val, size_t n)
{
    cJSON *st = cJSON_AddArrayToObject(o, "val_step");
    cJSON *vl = cJSON_AddArrayToObject(o, "val_loss");
    cJSON *va = cJSON_AddArrayToObject(o, "val_acc");
    if (!st || !vl || !va)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        cJSON *a = cJSON_CreateNumber((double)val[i].step);
        cJSON *b = isfinite(val[i].val_loss) ? json_number(val[i].val_loss)
                                              : cJSON_CreateNull();
        cJSON *c = isfinite(val[i].val_acc) ? json_number(val[i].val_acc)
                                             : cJSON_CreateNull();
        if (!a || !b || !c) {
            cJSON_Delete(a);
            cJSON_Delete(b);
            cJSON_Delete(c);
            return -ENOMEM;
        }
        cJSON_AddItemToArray(st, a);
        cJSON_AddItemToArray(vl, b);
        cJSON_AddItemToArray(va, c);
    }
    return 0;
}

static void metrics_work(http_req *r, store_t *s)
{
    metrics_q *q = r->ctx;
    const char *id = r->m.params[0];
    an_err e;
    an_err_clear(&e);
    store_job row;
    memset(&row, 0, sizeof row);
    int rc = store_job_get(s, id, &row, &e);
    store_job_free(&row);
    if (rc) {
        store_fail(r, rc, &e, id);
        return;
    }
    if (q->csv) {
        char *csv = NULL;
        size_t len = 0;
        rc = store_metrics_csv_buf(s, id, q->from, q->to, &csv, &len, &e);
        if (rc) {
            store_fail(r, rc, &e, id);
            return;
        }
        struct MHD_Response *resp = MHD_create_response_from_buffer(len, csv, MHD_RESPMEM_MUST_FREE);
        if (!resp) {
            free(csv);
            return;
        }
        MHD_add_response_header(resp, "Content-Type", "text/csv; charset=utf-8");
        r->pending = resp;
        r->pending_status = 200;
        return;
    }
    store_series ser;
    memset(&ser, 0, sizeof ser);
    rc = store_metrics_query(s, id, q->from, q->to, (size_t)q->max_points, &ser, &e);
    if (rc) {
        store_fail(r, rc, &e, id);
        return;
    }
    store_val_metric *val = NULL;
    size_t nval = 0;
    rc = store_val_query(s, id, q->from, q->to, &val, &nval, &e);
    if (rc) {
        store_series_free(&ser);
        store_fail(r, rc, &e, id);
        return;
    }
    cJSON *o = store_series_to_json(&ser);
    store_series_free(&ser);
    if (o && add_val(o, val, nval) != 0) {
        cJSON_Delete(o);
        o = NULL;
    }
    free(val);
    http_set_pending_json(r, 200, o);
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
            cJSON_AddNumberToObject(c, "loss", list[i].loss);
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
