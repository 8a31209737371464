/* sweeps — POST/GET/DELETE /v1/sweeps and POST /v1/sweeps/{id}/cancel: the sweep objects
 * with their trials, best first, and ASHA's decisions (the retry: sweepretry.c). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "api/jobjson.h"
#include "api/routes.h"
#include "api/sweepq.h"
#include "core/jsonnum.h"
#include "core/sweep.h"
#include "api/api.h"
#include "store/sweeps.h"
#include "util/log.h"

static void sweep_q_free(void *p)
{
    sweep_q *q = p;
    if (!q)
        return;
    jobs_overlay_free(&q->ov);
    free(q->errors);
    sweeps_drop(q->made);
    free(q);
}

sweep_q *api_sweep_q_new(http_req *r, const char *id)
{
    sweep_q *q = calloc(1, sizeof *q);
    if (!q || jobs_overlay_capture(&r->api->sv->jobs, &q->ov) != 0) {
        free(q);
        http_error(r, 503, "unavailable", NULL, "out of memory");
        return NULL;
    }
    if (id)
        q->errors = sweeps_trial_errors(&r->api->sv->sweeps, id, &q->nerrors);
    r->ctx = q;
    r->ctx_free = sweep_q_free;
    return q;
}

/* One trial in a sweep object. */
typedef struct trial_row {
    int index;
    cJSON *json;
    double metric;
    double key;                  /* metric, negated when larger is better: ascending is best */
    int completed;
} trial_row;

/* Completed trials first, each group best first (NaN last), then by trial index. */
static int trial_cmp(const void *a, const void *b)
{
    const trial_row *x = a, *y = b;
    if (x->completed != y->completed)
        return y->completed - x->completed;
    int nx = isnan(x->key), ny = isnan(y->key);
    if (nx != ny)
        return nx - ny;
    if (!nx && x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->index - y->index;
}

static cJSON *num_or_null(double v)
{
    return isfinite(v) ? json_number(v) : cJSON_CreateNull(); /* exact */
}

/* The sweep object: {"id","name","state","created_at","finished_at","search","metric","mode",
 * "max_concurrent","early_stopping","trial_count","trials_started","trials":[…best first],
 * "best","rungs":[…in decision order],"spec"}; `brief` leaves out trials, rungs and spec. */
static cJSON *sweep_json(store_t *st, const store_sweep *row, sweep_q *q, int brief,
                         an_err *err)
{
    cJSON *body = cJSON_Parse(row->spec_json), *params = cJSON_Parse(row->trials_json);
    sweep_spec spec;
    memset(&spec, 0, sizeof spec);
    int rc = body && params ? sweep_parse_stored(body, &spec, err)
                            : an_failc(err, -EINVAL, NULL, "sweep %s is damaged", row->id);
    store_job *jobs = NULL;
    size_t njobs = 0;
    store_sweep_rung *rungs = NULL;
    size_t nrungs = 0;
    trial_row *rows = NULL;
    cJSON *o = NULL;
    if (!rc)
        rc = store_sweep_jobs(st, row->id, &jobs, &njobs, err);
    if (!rc)
        rc = store_sweep_rungs(st, row->id, &rungs, &nrungs, err);
    char **stored_errors = NULL; /* why trials could not start: kept in the store */
    int *retry = NULL;           /* …and those of them waiting to start again */
    if (!rc)
        rc = store_sweep_trial_errors(st, row->id, row->ntrials, &stored_errors, &retry, err);
    if (!rc && !(rows = calloc((size_t)row->ntrials + 1, sizeof *rows)))
        rc = an_failc(err, -ENOMEM, NULL, "out of memory");
    if (rc)
        goto out;
    int started = 0;
    for (int k = 0; k < row->ntrials; k++) {
        trial_row *t = &rows[k];
        t->index = k;
        t->metric = NAN;
        t->json = cJSON_CreateObject();
        cJSON_AddNumberToObject(t->json, "trial", k);
        cJSON_AddItemToObject(t->json, "params",
                              cJSON_Duplicate(cJSON_GetArrayItem(params, k), 1));
        const store_job *j = NULL;
        for (size_t i = 0; i < njobs; i++)
            if (jobs[i].trial == k)
                j = &jobs[i];
        cJSON *job = j ? api_job_json_overlay(&q->ov, j) : NULL;
        const char *state = job ? cJSON_GetStringValue(cJSON_GetObjectItem(job, "state"))
                                : NULL;
        /* the store's record, or the driver's until the store has it */
        const char *error = stored_errors[k] ? stored_errors[k]
                            : k < q->nerrors && q->errors[k][0] ? q->errors[k] : NULL;
        started += j != NULL;
        if (job) {
            t->metric = sweeps_metric_of(&spec, job);
            t->completed = state && strcmp(state, "completed") == 0;
            error = cJSON_GetStringValue(cJSON_GetObjectItem(job, "error"));
        }
        /* The rung that stopped it, while it is stopped: a trial resumed since is running,
         * paused or finished on its own account (its decisions stay in `rungs`). */
        int64_t stopped_at = -1;
        for (size_t i = 0; state && strcmp(state, "stopped") == 0 && i < nrungs; i++)
            if (rungs[i].trial == k && !rungs[i].continues)
                stopped_at = rungs[i].step;
        cJSON_AddItemToObject(t->json, "job", j ? cJSON_CreateString(j->id) : cJSON_CreateNull());
        /* A trial a cancelled sweep never started will not start: "pending" would say it
         * still might. One retried is pending again, with the error it last had. */
        const char *waiting = strcmp(row->state, "cancelled") == 0 ? "cancelled" : "pending";
        cJSON_AddStringToObject(t->json, "state", state ? state
                                                  : error && !retry[k] ? "not_started" : waiting);
        cJSON_AddItemToObject(t->json, "metric", num_or_null(t->metric));
        cJSON_AddItemToObject(t->json, "step", job ? cJSON_Duplicate(cJSON_GetObjectItem(job,
                                                                     "step"), 1)
                                                   : cJSON_CreateNumber(0));
        cJSON_AddItemToObject(t->json, "stopped_at",
                              stopped_at < 0 ? cJSON_CreateNull()
                                             : cJSON_CreateNumber((double)stopped_at));
        cJSON_AddItemToObject(t->json, "error",
                              error ? cJSON_CreateString(error) : cJSON_CreateNull());
        cJSON_Delete(job);
    }
    for (int k = 0; k < row->ntrials; k++)
        rows[k].key = spec.maximize ? -rows[k].metric : rows[k].metric;
    qsort(rows, (size_t)row->ntrials, sizeof *rows, trial_cmp);

    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", row->id);
    cJSON_AddStringToObject(o, "name", row->name ? row->name : "");
    cJSON_AddStringToObject(o, "state", row->state);
    cJSON_AddStringToObject(o, "created_at", row->created_at);
    cJSON_AddItemToObject(o, "finished_at", row->finished_at[0]
                                                ? cJSON_CreateString(row->finished_at)
                                                : cJSON_CreateNull());
    cJSON_AddStringToObject(o, "search", spec.search == SWEEP_GRID ? "grid" : "random");
    cJSON_AddStringToObject(o, "metric", spec.metric);
    cJSON_AddStringToObject(o, "mode", spec.maximize ? "max" : "min");
    cJSON_AddNumberToObject(o, "max_concurrent", spec.max_concurrent);
    if (spec.asha) {
        cJSON *es = cJSON_AddObjectToObject(o, "early_stopping");
        cJSON_AddStringToObject(es, "type", "asha");
        cJSON_AddNumberToObject(es, "min_steps", (double)spec.min_steps);
        cJSON_AddNumberToObject(es, "reduction_factor", spec.eta);
    } else {
        cJSON_AddNullToObject(o, "early_stopping");
    }
    cJSON_AddNumberToObject(o, "trial_count", row->ntrials);
    cJSON_AddNumberToObject(o, "trials_started", started);
    /* The best trial: the first of the ranking that has a value. */
    cJSON *best = NULL;
    for (int k = 0; k < row->ntrials && !best; k++)
        if (!isnan(rows[k].metric)) /* a completed trial without a value ranks before it */
            best = cJSON_Duplicate(rows[k].json, 1);
    cJSON_AddItemToObject(o, "best", best ? best : cJSON_CreateNull());
    if (!brief) {
        cJSON *arr = cJSON_AddArrayToObject(o, "trials");
        for (int k = 0; k < row->ntrials; k++) {
            cJSON_AddItemToArray(arr, rows[k].json);
            rows[k].json = NULL;
        }
        cJSON *ra = cJSON_AddArrayToObject(o, "rungs");
        for (size_t i = 0; i < nrungs; i++) {
            cJSON *g = cJSON_CreateObject();
            cJSON_AddNumberToObject(g, "seq", (double)rungs[i].seq);
            cJSON_AddNumberToObject(g, "step", (double)rungs[i].step);
            cJSON_AddNumberToObject(g, "trial", rungs[i].trial);
            cJSON_AddItemToObject(g, "value", num_or_null(rungs[i].value));
            cJSON_AddBoolToObject(g, "continues", rungs[i].continues);
            cJSON_AddItemToArray(ra, g);
        }
        cJSON_AddItemToObject(o, "spec", body);
        body = NULL;
    }
    /* Every number as it reads back (a drawn lr is compared bit for bit with the job's). */
    if (json_make_exact(o->child) != 0)
        rc = an_failc(err, -ENOMEM, NULL, "out of memory");
out:
    for (int k = 0; rows && k < row->ntrials; k++)
        cJSON_Delete(rows[k].json);
    free(rows);
    free(rungs);
    store_sweep_trial_errors_free(stored_errors, row->ntrials);
    free(retry);
    store_job_list_free(jobs, njobs);
    sweep_free(&spec);
    cJSON_Delete(body);
    cJSON_Delete(params);
    if (rc) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

void api_sweep_answer(http_req *r, store_t *st, const char *id, unsigned status)
{
    store_sweep row;
    an_err e;
    an_err_clear(&e);
    int rc = store_sweep_get(st, id, &row, &e);
    if (rc == -ENOENT) {
        http_set_pending_error(r, 404, "not_found", "id", "no sweep with id '%.64s'", id);
        return;
    }
    cJSON *o = rc ? NULL : sweep_json(st, &row, r->ctx, 0, &e);
    store_sweep_free(&row);
    if (!o) {
        http_set_pending_error(r, 503, "unavailable", NULL, "the sweep cannot be read: %s",
                               e.message);
        return;
    }
    http_set_pending_json(r, status, o);
}

/* ---- POST /v1/sweeps --------------------------------------------------------------------- */

static void create_work(http_req *r, store_t *st)
{
    sweep_q *q = r->ctx;
    an_err e;
    cJSON *body = NULL;
    if (http_body_read(r, &body, &e)) {
        api_spec_errors(r, &e, 1);
        return;
    }
    sweep_spec spec;
    if (sweep_parse(body, &spec, &e) != 0) {
        cJSON_Delete(body);
        api_spec_errors(r, &e, 1);
        return;
    }
    /* Every trial is proposed now and stored with the sweep: what it runs is fixed. */
    cJSON *trials = cJSON_CreateArray();
    int rc = trials ? 0 : -ENOMEM;
    for (int k = 0; !rc && k < spec.trials; k++) {
        cJSON *p = NULL;
        rc = sweep_trial_params(&spec, k, &p, &e);
        if (!rc)
            cJSON_AddItemToArray(trials, p);
    }
    char *spec_text = rc ? NULL : json_print_exact(body);
    char *trials_text = rc ? NULL : json_print_exact(trials);
    char id[STORE_ID_LEN];
    if (!rc && (!spec_text || !trials_text))
        rc = an_failc(&e, -ENOMEM, NULL, "out of memory");
    if (!rc)
        rc = store_sweep_create(st, spec.name, spec_text, trials_text, spec.trials, id, &e);
    cJSON_free(spec_text);
    cJSON_free(trials_text);
    cJSON_Delete(trials);
    cJSON_Delete(body);
    sweep_free(&spec);
    if (!rc)
        rc = sweeps_load(st, id, &q->made, &e);
    if (rc) {
        http_set_pending_store_error(r, rc, "the sweep could not be stored", &e);
        return;
    }
    snprintf(r->work_id, sizeof r->work_id, "%.31s", id);
    api_sweep_answer(r, st, id, 201);
}

/* Loop thread: the stored sweep starts its first trials. */
static void create_done(http_req *r)
{
    sweep_q *q = r->ctx;
    if (!q->made)
        return;
    sweeps_adopt(&r->api->sv->sweeps, q->made);
    q->made = NULL;
}

void api_sweeps_create(http_req *r)
{
    if (http_body_blank(r)) {
        http_error(r, 400, "invalid_argument", "body",
                   "a sweep (JSON object with base and parameters) was expected, got an empty "
                   "body");
        return;
    }
    if (!api_sweep_q_new(r, NULL))
        return;
    r->loop_fn = create_done;
    http_defer(r, create_work);
}

/* ---- GET /v1/sweeps, GET /v1/sweeps/{id} ------------------------------------------------- */

static void list_work(http_req *r, store_t *st)
{
    store_sweep *rows = NULL;
    size_t n = 0;
    an_err e;
    an_err_clear(&e);
    int rc = store_sweep_list(st, 0, &rows, &n, &e);
    cJSON *o = rc ? NULL : cJSON_CreateObject();
    cJSON *arr = o ? cJSON_AddArrayToObject(o, "sweeps") : NULL;
    for (size_t i = 0; arr && i < n; i++) {
        cJSON *s = sweep_json(st, &rows[i], r->ctx, 1, &e);
        if (s)
            cJSON_AddItemToArray(arr, s);
    }
    store_sweep_list_free(rows, n);
    if (!arr) {
        cJSON_Delete(o);
        http_set_pending_error(r, 503, "unavailable", NULL, "sweeps cannot be listed: %s",
                               e.message);
        return;
    }
    cJSON_AddNumberToObject(o, "total", (double)cJSON_GetArraySize(arr));
    http_set_pending_json(r, 200, o);
}

void api_sweeps_list(http_req *r)
{
    if (!api_sweep_q_new(r, NULL))
        return;
    http_defer(r, list_work);
}

static void get_work(http_req *r, store_t *st)
{
    api_sweep_answer(r, st, r->m.params[0], 200);
}

void api_sweeps_get(http_req *r)
{
    if (!api_sweep_q_new(r, r->m.params[0]))
        return;
    http_defer(r, get_work);
}

/* ---- POST /v1/sweeps/{id}/cancel --------------------------------------------------------- */

static void cancel_work(http_req *r, store_t *st)
{
    const char *id = r->m.params[0];
    store_sweep row;
    an_err e;
    int rc = store_sweep_get(st, id, &row, &e);
    if (rc == -ENOENT) {
        http_set_pending_error(r, 404, "not_found", "id", "no sweep with id '%.64s'", id);
        return;
    }
    if (rc == 0 && r->work_id[0] == '\0') {
        /* Not driven by this process: it had already ended. */
        http_set_pending_error(r, 409, "conflict", "state",
                               "sweep %s is %s; cancel needs a running sweep", id, row.state);
        store_sweep_free(&row);
        return;
    }
    store_sweep_free(&row);
    /* Written here, so that the answer and every request after it see the sweep cancelled. */
    if (rc == 0)
        rc = store_sweep_set_state(st, id, "cancelled", &e);
    if (rc) {
        http_set_pending_store_error(r, rc, NULL, &e);
        return;
    }
    api_sweep_answer(r, st, id, 200);
}

void api_sweeps_cancel(http_req *r)
{
    if (http_body_none(r, "a sweep's cancel"))
        return;
    const char *id = r->m.params[0];
    char (*jobs)[STORE_ID_LEN] = NULL;
    size_t n = 0;
    int rc = sweeps_cancel(&r->api->sv->sweeps, id, &jobs, &n);
    if (rc == -ENOMEM) {
        http_error(r, 503, "unavailable", NULL, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        int c = jobs_cancel_nowait(&r->api->sv->jobs, jobs[i]);
        if (c < 0)
            util_log(LOG_WARN, "sweep %s: trial %s could not be cancelled: %s", id, jobs[i],
                       store_strerror(c));
    }
    free(jobs);
    if (!api_sweep_q_new(r, id))
        return;
    r->work_id[0] = '\0';
    if (rc == 0)
        snprintf(r->work_id, sizeof r->work_id, "%.31s", id);
    http_defer(r, cancel_work);
}

/* ---- DELETE /v1/sweeps/{id} -------------------------------------------------------------- */

/* The trial jobs a delete removed, for the loop thread to end their streams. */
typedef struct sweep_del {
    char (*ids)[STORE_ID_LEN];
    size_t n;
} sweep_del;

static void sweep_del_free(void *p)
{
    sweep_del *d = p;
    free(d->ids);
    free(d);
}

static void delete_work(http_req *r, store_t *st)
{
    const char *id = r->m.params[0];
    sweep_del *d = r->ctx;
    an_err e;
    an_err_clear(&e);
    int rc = store_sweep_delete(st, id, &d->ids, &d->n, &e);
    if (rc == -ENOENT) {
        http_set_pending_error(r, 404, "not_found", "id", "no sweep with id '%.64s'", id);
    } else if (rc == STORE_ESTATE) {
        http_set_pending_error(r, 409, "conflict", "state", "%s", e.message);
    } else if (rc) {
        http_set_pending_store_error(r, rc, NULL, &e);
    } else {
        snprintf(r->work_id, sizeof r->work_id, "%.31s", id);
        http_resume_pending(r, 204, MHD_create_response_from_buffer(0, (void *)"",
                                                                    MHD_RESPMEM_PERSISTENT));
    }
}

/* Loop thread: the sweep and its trials are gone from the store; their streams end with a
 * `deleted` event, as a deleted job's do, and their cached models go. */
static void delete_done(http_req *r)
{
    if (!r->work_id[0])
        return;
    sweeps_forget(&r->api->sv->sweeps, r->work_id);
    sweep_del *d = r->ctx;
    for (size_t i = 0; i < d->n; i++)
        jobs_deleted(&r->api->sv->jobs, d->ids[i]);
    api_events_deleted(r->api, r->work_id);
}

void api_sweeps_delete(http_req *r)
{
    /* A trial whose final state is stored may still be held by its worker for a moment: its
     * rows are not deleted under it (the store's check sees only the final state). */
    jobmgr *m = &r->api->sv->jobs;
    jobs_poll(m);
    const sweep_run *sr = sweeps_find_run(&r->api->sv->sweeps, r->m.params[0]);
    for (int k = 0; sr && sr->done && k < sr->ntrials; k++)
        if (sr->trials[k].job[0] && jobs_find(m, sr->trials[k].job)) {
            http_error(r, 409, "conflict", "state", "sweep %s: trial %s has ended but its "
                       "worker has not let go of it yet; try again in a moment", sr->id,
                       sr->trials[k].job);
            return;
        }
    sweep_del *d = calloc(1, sizeof *d);
    if (!d) {
        http_error(r, 503, "unavailable", NULL, "out of memory");
        return;
    }
    r->ctx = d;
    r->ctx_free = sweep_del_free;
    r->work_id[0] = '\0';
    r->loop_fn = delete_done;
    http_defer(r, delete_work);
}
