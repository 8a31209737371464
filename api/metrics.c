/* metrics — a job's history and model: GET metrics (columnar JSON or CSV), checkpoints,
 * weights, and POST predict. Each runs on the libuv thread pool with its own store
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
#include "daemon/input_stats.h"

#define PREDICT_MAX_ROWS 100000

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
    http_defer(r, metrics_work);
}

static void checkpoints_work(http_req *r, store_t *s)
{
    const char *id = r->m.params[0];
    an_err e;
    store_job row;
    memset(&row, 0, sizeof row);
    int rc = store_job_get(s, id, &row, &e);
    store_job_free(&row);
    store_checkpoint_info *list = NULL;
    size_t n = 0;
    if (!rc)
        rc = store_checkpoint_list(s, id, &list, &n, &e);
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
        cJSON_AddItemToArray(arr, c);
    }
    free(list);
    http_set_pending_json(r, 200, o);
}

void api_jobs_checkpoints(http_req *r)
{
    http_defer(r, checkpoints_work);
}

/* Builds job `id`'s model from its spec and a stored checkpoint (step < 0 = latest). On
 * failure sets the pending error and returns NULL. */
static train *load_model(http_req *r, store_t *s, const char *id, int64_t step)
{
    an_err e;
    an_err_clear(&e);
    store_job row;
    memset(&row, 0, sizeof row);
    int rc = store_job_get(s, id, &row, &e);
    if (rc) {
        store_fail(r, rc, &e, id);
        return NULL;
    }
    job_spec spec;
    rc = job_spec_parse_text(row.spec_json, strlen(row.spec_json), &spec, &e);
    store_job_free(&row);
    if (rc) {
        http_set_pending_error(r, 500, "internal", e.field, "the stored spec is unreadable: %s",
                               e.message);
        return NULL;
    }
    void *blob = NULL;
    size_t len = 0;
    rc = store_checkpoint_read(s, id, step, &blob, &len, NULL, &e);
    if (rc == -ENOENT) {
        job_spec_free(&spec);
        if (step < 0)
            http_set_pending_error(r, 404, "not_found", "step", "job %s has no checkpoint yet", id);
        else
            http_set_pending_error(r, 404, "not_found", "step", "job %s has no checkpoint at step %lld",
                                   id, (long long)step);
        return NULL;
    }
    if (rc) {
        job_spec_free(&spec);
        store_fail(r, rc, &e, id);
        return NULL;
    }
    char *csv = NULL;
    size_t csv_len = 0;
    if (spec.data.type == DATA_DATASET) {
        const char *ref = spec.data.dataset_id[0] ? spec.data.dataset_id : spec.data.name;
        rc = store_dataset_text(s, ref, &csv, &csv_len, &e);
        if (rc) {
            free(blob);
            job_spec_free(&spec);
            http_set_pending_error(r, 409, "conflict", "data", "the job's data set is gone: %s",
                                   e.message);
            return NULL;
        }
    }
    train *t = NULL;
    rc = train_create(&t, &spec, csv, csv_len, &e);
    free(csv);
    job_spec_free(&spec);
    if (rc == 0)
        rc = train_restore(t, blob, len, &e);
    free(blob);
    if (rc) {
        train_free(t);
        http_set_pending_error(r, 500, "internal", e.field, "the checkpoint cannot be loaded: %s",
                               e.message);
        return NULL;
    }
    return t;
}

static void weights_work(http_req *r, store_t *s)
{
    int64_t *step = r->ctx;
    train *t = load_model(r, s, r->m.params[0], *step);
    if (!t)
        return;
    cJSON *w = NULL;
    cJSON *stats = input_stats_json(s, r->m.params[0], t);
    int ok = train_weights_json(t, &w) == 0 && w && stats &&
             cJSON_AddItemToObject(w, "input_stats", stats);
    if (!ok) {
        if (!cJSON_GetObjectItemCaseSensitive(w, "input_stats"))
            cJSON_Delete(stats);
        cJSON_Delete(w);
        http_set_pending_error(r, 500, "internal", NULL, "the weights cannot be printed");
    } else {
        http_set_pending_json(r, 200, w);
    }
    train_free(t);
}

void api_jobs_weights(http_req *r)
{
    int64_t *step = malloc(sizeof *step);
    if (!step) {
        http_error(r, 500, "internal", NULL, "out of memory");
        return;
    }
    r->ctx = step;
    r->ctx_free = free;
    if (http_query_int(r, "step", 0, INT64_MAX / 2, -1, step))
        return;
    http_defer(r, weights_work);
}

typedef struct predict_in {
    double *x;       /* the inputs as sent */
    int rows, cols;
    int normalized;  /* 1: the caller standardised them already */
} predict_in;

static void predict_free(void *p)
{
    predict_in *in = p;
    if (in)
        free(in->x);
    free(in);
}

static void predict_work(http_req *r, store_t *s)
{
    predict_in *in = r->ctx;
    train *t = load_model(r, s, r->m.params[0], -1);
    if (!t)
        return;
    int ni = train_inputs(t), no = train_outputs(t);
    if (in->cols != ni) {
        http_set_pending_error(r, 400, "invalid_argument", "inputs[0]",
                               "each input row must have %d numbers (the model's inputs), got %d",
                               ni, in->cols);
        train_free(t);
        return;
    }
    /* Raw inputs go through the job's standardisation, computed as training computed it
     * (in double, then rounded to float once). */
    cJSON *stats = in->normalized ? cJSON_CreateNull() : input_stats_json(s, r->m.params[0], t);
    float *x = malloc((size_t)in->rows * (size_t)ni * sizeof *x);
    if (x && (!stats || input_stats_apply(stats, in->x, x, in->rows, ni) != 0)) {
        free(x);
        x = NULL;
    }
    cJSON_Delete(stats);
    float *out = malloc((size_t)in->rows * (size_t)no * sizeof *out);
    an_err e;
    an_err_clear(&e);
    if (!x || !out || train_predict(t, x, in->rows, out, &e) != 0) {
        http_set_pending_error(r, 500, "internal", e.field, "prediction failed: %s",
                               x && out ? e.message : "out of memory");
        free(x);
        free(out);
        train_free(t);
        return;
    }
    free(x);
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "outputs");
    for (int i = 0; i < in->rows; i++) {
        cJSON *row = cJSON_CreateArray();
        for (int k = 0; k < no; k++) {
            float v = out[(size_t)i * (size_t)no + (size_t)k];
            cJSON_AddItemToArray(row, isfinite(v) ? cJSON_CreateNumber((double)v) : cJSON_CreateNull());
        }
        cJSON_AddItemToArray(arr, row);
    }
    free(out);
    train_free(t);
    http_set_pending_json(r, 200, o);
}

void api_jobs_predict(http_req *r)
{
    cJSON *body = http_body_json(r);
    if (!body)
        return;
    cJSON *inputs = cJSON_IsObject(body) ? cJSON_GetObjectItemCaseSensitive(body, "inputs") : NULL;
    if (!cJSON_IsObject(body)) {
        http_error(r, 400, "invalid_argument", NULL, "a JSON object {\"inputs\": [[…], …]} was expected");
        cJSON_Delete(body);
        return;
    }
    if (!cJSON_IsArray(inputs) || cJSON_GetArraySize(inputs) == 0) {
        http_error(r, 400, "invalid_argument", "inputs",
                   "inputs must be a non-empty array of rows (arrays of numbers)");
        cJSON_Delete(body);
        return;
    }
    int rows = cJSON_GetArraySize(inputs);
    if (rows > PREDICT_MAX_ROWS) {
        http_error(r, 400, "invalid_argument", "inputs", "at most %d rows per request, got %d",
                   PREDICT_MAX_ROWS, rows);
        cJSON_Delete(body);
        return;
    }
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(body, "normalized");
    if (norm && !cJSON_IsBool(norm)) {
        http_error(r, 400, "invalid_argument", "normalized",
                   "normalized must be true (the inputs are standardised already) or false "
                   "(the default: raw inputs, standardised as the job's training data was)");
        cJSON_Delete(body);
        return;
    }
    for (const cJSON *k = body->child; k; k = k->next)
        if (strcmp(k->string, "inputs") != 0 && strcmp(k->string, "normalized") != 0) {
            http_error(r, 400, "invalid_argument", k->string,
                       "unknown key '%.64s': predict takes inputs and normalized", k->string);
            cJSON_Delete(body);
            return;
        }
    int cols = cJSON_GetArraySize(inputs->child);
    predict_in *in = calloc(1, sizeof *in);
    double *x = in && cols > 0 ? malloc((size_t)rows * (size_t)cols * sizeof *x) : NULL;
    if (!in || !x) {
        free(in);
        http_error(r, 400, "invalid_argument", "inputs[0]", "each row must be a non-empty array of numbers");
        cJSON_Delete(body);
        return;
    }
    in->x = x;
    in->rows = rows;
    in->cols = cols;
    in->normalized = cJSON_IsTrue(norm);
    r->ctx = in;
    r->ctx_free = predict_free;
    int i = 0;
    for (cJSON *row = inputs->child; row; row = row->next, i++) {
        if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != cols) {
            char field[32];
            snprintf(field, sizeof field, "inputs[%d]", i);
            http_error(r, 400, "invalid_argument", field, "%s must be an array of %d numbers",
                       field, cols);
            cJSON_Delete(body);
            return;
        }
        int k = 0;
        for (cJSON *v = row->child; v; v = v->next, k++) {
            /* The model computes in float: a double beyond its range would become an
             * infinity there and come out as a null. */
            if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) ||
                fabs(v->valuedouble) > FLT_MAX) {
                char field[64];
                snprintf(field, sizeof field, "inputs[%d][%d]", i, k);
                http_error(r, 400, "invalid_argument", field,
                           "%s must be a finite number of at most %g in magnitude (the model "
                           "computes in float)", field, (double)FLT_MAX);
                cJSON_Delete(body);
                return;
            }
            x[(size_t)i * (size_t)cols + (size_t)k] = v->valuedouble;
        }
    }
    cJSON_Delete(body);
    http_defer(r, predict_work);
}
