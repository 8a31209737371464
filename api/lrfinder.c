/* lrfinder — the learning-rate finder: POST /v1/lr_finder makes a sweep job from a job spec,
 * and GET /v1/jobs/{id}/lr_finder reads any job's recorded lr (group 0) and loss on the thread
 * pool (core/lrfind has the rules). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "api/routes.h"
#include "core/config.h"
#include "core/lrfind.h"
#include "api/api.h"

typedef struct lrfinder_q {
    int64_t from, to;
} lrfinder_q;

/* Whether the job's loss is `mean`, which has no floor (its finder's suggestions say so). */
static int loss_has_no_floor(store_t *s, const char *id)
{
    store_job row;
    memset(&row, 0, sizeof row);
    an_err e;
    int mean = 0;
    if (store_job_get(s, id, &row, &e) == 0 && row.spec_json) {
        cJSON *spec = cJSON_Parse(row.spec_json);
        const cJSON *loss = cJSON_GetObjectItemCaseSensitive(spec, "loss");
        mean = cJSON_IsString(loss) && strcmp(loss->valuestring, "mean") == 0;
        cJSON_Delete(spec);
    }
    store_job_free(&row);
    return mean;
}

static void lrfinder_work(http_req *r, store_t *s)
{
    lrfinder_q *q = r->ctx;
    const char *id = r->m.params[0];
    an_err e;
    an_err_clear(&e);
    store_series ser;
    memset(&ser, 0, sizeof ser);
    /* at most LRFIND_MAX_STEPS steps are read: the range's first ones */
    int64_t to = q->to >= 0 && q->to - q->from < LRFIND_MAX_STEPS ? q->to
                                                                 : q->from + LRFIND_MAX_STEPS - 1;
    int rc = store_metrics_query(s, id, q->from, to, 0, &ser, &e);
    if (rc == -ENOENT) {
        http_set_pending_error(r, 404, "not_found", "id", "no job with id '%.64s'", id);
        return;
    }
    if (rc) {
        http_set_pending_store_error(r, rc, NULL, &e);
        return;
    }
    size_t n = ser.n;
    double *loss = malloc((n ? n : 1) * sizeof *loss), *sm = malloc((n ? n : 1) * sizeof *sm);
    cJSON *o = NULL;
    if (loss && sm) {
        /* a null loss is a step whose loss was not finite: as diverged as it gets */
        for (size_t i = 0; i < n; i++)
            loss[i] = isfinite(ser.loss[i]) ? ser.loss[i] : INFINITY;
        lrfind_result res;
        memset(&res, 0, sizeof res);
        res.steepest = res.valley = res.minimum_div_10 = NAN;
        if (n == 0 || lrfind_analyze(ser.lr, loss, n, LRFIND_BETA, LRFIND_STOP_FACTOR, sm,
                                     &res) == 0)
            o = lrfind_report(ser.lr, loss, sm, n, &res);
        lrfind_caveats cav;
        if (o && (lrfind_caveats_find(loss, sm, n, &res, loss_has_no_floor(s, id), &cav) ||
                  lrfind_caveats_json(&cav, o))) {
            cJSON_Delete(o);
            o = NULL;
        }
        /* the steps the arrays cover: null when the range holds none (past the last step) */
        if (o && (!cJSON_AddItemToObject(o, "from", n ? cJSON_CreateNumber((double)ser.step[0])
                                                      : cJSON_CreateNull()) ||
                  !cJSON_AddItemToObject(o, "to", n ? cJSON_CreateNumber((double)ser.step[n - 1])
                                                    : cJSON_CreateNull()))) {
            cJSON_Delete(o);
            o = NULL;
        }
    }
    free(loss);
    free(sm);
    store_series_free(&ser);
    if (!o) {
        http_set_pending_error(r, 503, "unavailable", NULL,
                               "out of memory while reading the sweep of job %.64s", id);
        return;
    }
    http_set_pending_json(r, 200, o);
}

void api_jobs_lr_finder(http_req *r)
{
    lrfinder_q *q = calloc(1, sizeof *q);
    if (!q) {
        http_error(r, 503, "unavailable", NULL, "out of memory");
        return;
    }
    r->ctx = q;
    r->ctx_free = free;
    if (http_query_int(r, "from", 0, INT64_MAX / 2, 0, &q->from) ||
        http_query_int(r, "to", -1, INT64_MAX / 2, -1, &q->to))
        return;
    if (q->to >= 0 && q->to < q->from) {
        http_error(r, 400, "invalid_argument", "to", "to (%lld) must not be below from (%lld)",
                   (long long)q->to, (long long)q->from);
        return;
    }
    http_defer(r, lrfinder_work);
}

/* Reads the finder request into its job spec on a queue thread: a request's job may hold
 * megabytes of inline data, whose tree the loop would take tens of milliseconds to copy and
 * free. */
static void finder_work(http_req *r, store_t *st)
{
    an_err e;
    cJSON *body = NULL;
    if (http_body_read(r, &body, &e)) {
        http_error_err(r, 400, "invalid_argument", &e);
        return;
    }
    lrfind_req q;
    cJSON *spec = NULL;
    int rc = lrfind_request(body, &q, &spec, &e);
    cJSON_Delete(body);
    if (rc == -ENOMEM) {
        http_error(r, 503, "unavailable", NULL, "out of memory");
        return;
    }
    if (rc) {
        http_error(r, 400, "invalid_argument", e.field, "%s", e.message);
        return;
    }
    api_jobs_submit(r, st, spec); /* the sweep is an ordinary job from here on */
}

void api_lr_finder_create(http_req *r)
{
    if (http_body_blank(r)) {
        http_error(r, 400, "invalid_argument", "body",
                   "a finder request {\"job\": {…a job spec…}, \"min_lr\", \"max_lr\", "
                   "\"steps\", \"stop_factor\", \"mode\"} was expected, got an empty body");
        return;
    }
    api_jobs_create_by(r, finder_work);
}
