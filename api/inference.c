/* inference — a trained job's model: GET weights (streamed) and POST predict. Both load the
 * model through the shared loader (jobs/loader.h: the spec and one checkpoint's tensors,
 * cached per job and step) on the libuv thread pool, never the data set or optimizer state,
 * so a finished job answers after its data set is deleted. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "api/http.h"
#include "api/routes.h"
#include "core/jsonnum.h"
#include "api/api.h"

#define PREDICT_MAX_ROWS 100000

/* Longest float_text: "-1.23456789e-38" and room to spare. */
#define FLOAT_TEXT 24
/* Longest double printed by json_number_text ("-2.2250738585072014e-308"), with room. */
#define DOUBLE_TEXT 28

/* A float in the fewest of 6..9 significant digits that read back to it; null when it is
 * not finite (JSON has no inf/nan). Returns the length. */
static size_t float_text(char *o, float v)
{
    if (!isfinite(v)) {
        memcpy(o, "null", 4);
        return 4;
    }
    int n = 0;
    for (int prec = 6; prec <= 9; prec++) {
        n = snprintf(o, FLOAT_TEXT, "%.*g", prec, (double)v);
        if (strtof(o, NULL) == v)
            break;
    }
    return (size_t)n;
}

static void store_fail(http_req *r, int rc, const an_err *e, const char *id)
{
    const char *code;
    unsigned st = http_status_of_store(rc, &code);
    if (rc == -ENOENT)
        http_set_pending_error(r, 404, "not_found", "id", "no job with id '%.64s'", id);
    else
        http_set_pending_error(r, st, code, NULL, "%s", e->message);
}

/* Job `id`'s model at checkpoint `step` (< 0 = latest), from the shared loader: the spec and
 * the checkpoint's parameters only, never the data set. On failure sets the pending error
 * and returns NULL; hand a model back with model_cache_release. */
static model_ref *load_model(http_req *r, store_t *s, const char *id, int64_t step,
                             int want_gpt);

model_ref *api_model_load_gpt(http_req *r, store_t *s, const char *id, int64_t step)
{
    return load_model(r, s, id, step, 1);
}

/* Whether a stored spec's model is a gpt (its normalised text names the type). */
static int spec_is_gpt(const char *spec_json)
{
    cJSON *j = spec_json ? cJSON_Parse(spec_json) : NULL;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "model");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(m, "type");
    int is = cJSON_IsString(t) && strcmp(t->valuestring, "gpt") == 0;
    cJSON_Delete(j);
    return is;
}

/* The job's model at `step`; with want_gpt 1, a job that is not a gpt is a 400 naming
 * `model` before any checkpoint is looked for (it would be that once one exists). */
static model_ref *load_model(http_req *r, store_t *s, const char *id, int64_t step,
                             int want_gpt)
{
    an_err e;
    an_err_clear(&e);
    store_job row;
    memset(&row, 0, sizeof row);
    int rc = store_job_get(s, id, &row, &e);
    if (rc) {
        store_job_free(&row);
        store_fail(r, rc, &e, id);
        return NULL;
    }
    model_ref *ref = NULL;
    rc = loader_model(&r->api->sv->models, s, &row, step, &ref, &e);
    /* not a gpt: said so, also before the job has a checkpoint (the spec is read only then) */
    if (want_gpt && (rc == 0 ? !ref->f->g : rc == -ENOENT && !spec_is_gpt(row.spec_json))) {
        if (rc == 0)
            model_cache_release(&r->api->sv->models, ref);
        store_job_free(&row);
        http_set_pending_error(r, 400, "invalid_argument", "model", "job %s is not a gpt: "
                               "generation samples text from a language model (use predict)",
                               id);
        return NULL;
    }
    store_job_free(&row);
    if (rc == -ENOENT)
        http_set_pending_error(r, 404, "not_found", "step", "%s", e.message);
    else if (rc == -EAGAIN)
        http_set_pending_error(r, 503, "unavailable", NULL, "%s", e.message);
    else if (rc == -ENOMEM)
        http_set_pending_error(r, 503, "unavailable", NULL, "out of memory loading the model: %s",
                               e.message);
    else if (rc)
        http_set_pending_error(r, 500, "internal", e.field[0] ? e.field : NULL,
                               "the checkpoint cannot be loaded: %s", e.message);
    return rc ? NULL : ref;
}

/* ---- GET weights: streamed ------------------------------------------------------------- */

/* The body of GET weights, written as MHD asks for it: {"step":S,"tensors":[{"name",
 * "shape","data"}…]} with every float in the fewest digits that read back to its bits. The
 * state is a position (tensor, element) in the model the stream holds a reference to, so a
 * body of any size takes a few hundred bytes of memory beyond the (cached) model. */
typedef struct wstream {
    api_t *api;
    model_ref *ref;
    int t;              /* tensor; -1 before the head */
    size_t k;           /* element of tensor t */
    int done;
    char pend[256];     /* a token that did not fit the last buffer */
    size_t plen, poff;
} wstream;

/* Tensor i of the streamed model (an mlp/linear or a gpt) in gpt_tensor's terms (its names
 * are the longer); returns the tensor count. */
static int stream_tensor(const infer *f, int i, gpt_tensor *out)
{
    if (f->g) {
        *out = f->g->tensors[i < f->g->ntensors ? i : 0];
        return f->g->ntensors;
    }
    const model_tensor *t = &f->m->tensors[i < f->m->ntensors ? i : 0];
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", t->name);
    out->off = t->off, out->n = t->n, out->ndim = t->ndim;
    out->shape[0] = t->shape[0], out->shape[1] = t->shape[1];
    return f->m->ntensors;
}

/* Writes the next token into o (256 bytes); 0 at the end. */
static size_t next_token(wstream *w, char *o)
{
    gpt_tensor cur;
    const int ntensors = stream_tensor(w->ref->f, w->t > 0 ? w->t : 0, &cur);
    const float *params = w->ref->f->g ? w->ref->f->g->params : w->ref->f->m->params;
    if (w->t < 0) {
        w->t = 0;
        w->k = 0;
        return (size_t)snprintf(o, 256, "{\"step\":%lld,\"tensors\":[",
                                (long long)w->ref->f->step);
    }
    if (w->t >= ntensors) {
        /* then "input_stats": {"mean": […], "std": […]} (null without), a number a token */
        const infer *f = w->ref->f;
        int api = f->nstats;
        if (w->done == 0) {
            w->done = 1;
            w->k = 0;
            return (size_t)snprintf(o, 256, api ? "],\"input_stats\":{\"mean\":["
                                              : "],\"input_stats\":null}\n");
        }
        if (!api || w->k > 2 * (size_t)api)
            return 0;
        size_t n = 0, k = w->k++;
        if (k == 2 * (size_t)api)
            return (size_t)snprintf(o, 256, "]}}\n");
        if (k == (size_t)api)
            n = (size_t)snprintf(o, 256, "],\"std\":[");
        else if (k > 0)
            o[n++] = ',';
        double v = k < (size_t)api ? f->mean[k] : f->std[k - (size_t)api];
        n += (size_t)json_number_text(o + n, DOUBLE_TEXT, v, 1);
        return n;
    }
    const gpt_tensor *mt = &cur;
    int two = mt->ndim == 2;
    size_t cols = two ? (size_t)mt->shape[1] : mt->n, n = 0;
    if (w->k == 0) {
        if (two)
            n = (size_t)snprintf(o, 256, "%s{\"name\":\"%s\",\"shape\":[%d,%d],\"data\":[[",
                                 w->t ? "," : "", mt->name, mt->shape[0], mt->shape[1]);
        else
            n = (size_t)snprintf(o, 256, "%s{\"name\":\"%s\",\"shape\":[%d],\"data\":[",
                                 w->t ? "," : "", mt->name, mt->shape[0]);
    } else if (two && cols && w->k % cols == 0) {
        memcpy(o, "],[", 3);
        n = 3;
    } else {
        o[n++] = ',';
    }
    if (mt->n > 0)
        n += float_text(o + n, params[mt->off + w->k]);
    if (++w->k >= mt->n) {
        memcpy(o + n, two ? "]]}" : "]}", two ? 3 : 2);
        n += two ? 3 : 2;
        w->t++;
        w->k = 0;
    }
    return n;
}

static ssize_t weights_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    wstream *w = cls;
    /* A stop cuts the stream: chunked encoding without its terminating chunk, so the client
     * sees a truncated body rather than a short one that looks whole. */
    if (w->api->sv->phase == PHASE_CLOSING)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t n = 0;
    while (n < max) {
        if (w->poff == w->plen) {
            w->plen = next_token(w, w->pend);
            w->poff = 0;
            if (w->plen == 0)
                break;
        }
        size_t c = w->plen - w->poff < max - n ? w->plen - w->poff : max - n;
        memcpy(buf + n, w->pend + w->poff, c);
        w->poff += c;
        n += c;
    }
    if (n == 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    return (ssize_t)n;
}

static void weights_free(void *cls)
{
    wstream *w = cls;
    model_cache_release(&w->api->sv->models, w->ref);
    free(w);
}

static void weights_work(http_req *r, store_t *s)
{
    int64_t *step = r->ctx;
    model_ref *ref = load_model(r, s, r->m.params[0], *step, 0);
    if (!ref)
        return;
    wstream *w = calloc(1, sizeof *w);
    struct MHD_Response *resp = NULL;
    if (w) {
        w->api = r->api;
        w->ref = ref;
        w->t = -1;
        resp = http_stream_response(64 * 1024, weights_read, w, weights_free);
    }
    if (!resp) {
        free(w);
        model_cache_release(&r->api->sv->models, ref);
        http_set_pending_error(r, 503, "unavailable", NULL, "out of memory for the answer");
        return;
    }
    MHD_add_response_header(resp, "Content-Type", "application/json; charset=utf-8");
    http_resume_pending(r, 200, resp);
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
    http_defer_slow(r, weights_work);
}

typedef struct predict_in {
    cJSON *body;     /* the request's body until predict_work has read it */
    double *x;       /* the inputs as sent */
    int rows, cols;
    int normalized;  /* 1: the caller standardised them already */
} predict_in;

static void predict_free(void *p)
{
    predict_in *in = p;
    if (in) {
        cJSON_Delete(in->body);
        free(in->x);
    }
    free(in);
}

/* Checks the body's inputs and copies them into in->x: 0, or -1 with the answer set. A body
 * of 100,000 rows is a tree of millions of items: walking and freeing it takes tens of
 * milliseconds, so this runs on a queue thread, not on the loop. */
static int read_inputs(http_req *r, const cJSON *body, predict_in *in)
{
    cJSON *inputs = cJSON_IsObject(body) ? cJSON_GetObjectItemCaseSensitive(body, "inputs") : NULL;
    if (!cJSON_IsObject(body)) {
        http_error(r, 400, "invalid_argument", NULL, "a JSON object {\"inputs\": [[…], …]} was expected");
        return -1;
    }
    if (!cJSON_IsArray(inputs) || cJSON_GetArraySize(inputs) == 0) {
        http_error(r, 400, "invalid_argument", "inputs",
                   "inputs must be a non-empty array of rows (arrays of numbers)");
        return -1;
    }
    int rows = cJSON_GetArraySize(inputs);
    if (rows > PREDICT_MAX_ROWS) {
        http_error(r, 400, "invalid_argument", "inputs", "at most %d rows per request, got %d",
                   PREDICT_MAX_ROWS, rows);
        return -1;
    }
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(body, "normalized");
    if (norm && !cJSON_IsBool(norm)) {
        http_error(r, 400, "invalid_argument", "normalized",
                   "normalized must be true (the inputs are standardised already) or false "
                   "(the default: raw inputs, standardised as the job's training data was)");
        return -1;
    }
    for (const cJSON *k = body->child; k; k = k->next)
        if (strcmp(k->string, "inputs") != 0 && strcmp(k->string, "normalized") != 0) {
            http_error(r, 400, "invalid_argument", k->string,
                       "unknown key '%.64s': predict takes inputs and normalized", k->string);
            return -1;
        }
    int cols = cJSON_GetArraySize(inputs->child);
    double *x = cols > 0 ? malloc((size_t)rows * (size_t)cols * sizeof *x) : NULL;
    if (!x) {
        http_error(r, 400, "invalid_argument", "inputs[0]", "each row must be a non-empty array of numbers");
        return -1;
    }
    in->x = x;
    in->rows = rows;
    in->cols = cols;
    in->normalized = cJSON_IsTrue(norm);
    int i = 0;
    for (cJSON *row = inputs->child; row; row = row->next, i++) {
        if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != cols) {
            char field[32];
            snprintf(field, sizeof field, "inputs[%d]", i);
            http_error(r, 400, "invalid_argument", field, "%s must be an array of %d numbers",
                       field, cols);
            return -1;
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
                return -1;
            }
            x[(size_t)i * (size_t)cols + (size_t)k] = v->valuedouble;
        }
    }
    return 0;
}

static void predict_work(http_req *r, store_t *s)
{
    predict_in *in = r->ctx;
    int bad = read_inputs(r, in->body, in);
    cJSON_Delete(in->body);
    in->body = NULL;
    if (bad)
        return;
    model_ref *ref = load_model(r, s, r->m.params[0], -1, 0);
    if (!ref)
        return;
    int ni = infer_inputs(ref->f), no = infer_outputs(ref->f);
    if (ref->f->g) {
        http_set_pending_error(r, 400, "invalid_argument", "inputs", "job %s is a gpt: it "
                               "predicts tokens, use POST /v1/jobs/%s/generate", r->m.params[0],
                               r->m.params[0]);
        model_cache_release(&r->api->sv->models, ref);
        return;
    }
    if (in->cols != ni) {
        http_set_pending_error(r, 400, "invalid_argument", "inputs[0]",
                               "each input row must have %d numbers (the model's inputs), got %d",
                               ni, in->cols);
        model_cache_release(&r->api->sv->models, ref);
        return;
    }
    float *out = malloc((size_t)in->rows * (size_t)no * sizeof *out);
    float *x = malloc((size_t)in->rows * (size_t)ni * sizeof *x);
    an_err e;
    an_err_clear(&e);
    int prc = -ENOMEM;
    if (out && x) {
        /* Raw inputs go through the job's standardisation, as training applied it. */
        if (in->normalized) {
            for (size_t c = 0; c < (size_t)in->rows * (size_t)ni; c++)
                x[c] = (float)in->x[c];
            prc = 0;
        } else {
            prc = infer_prepare(ref->f, in->x, in->rows, x, &e);
        }
        if (prc == 0) {
            pthread_mutex_lock(&ref->run);
            prc = infer_predict(ref->f, x, in->rows, out, &e);
            pthread_mutex_unlock(&ref->run);
        }
    }
    model_cache_release(&r->api->sv->models, ref);
    free(x);
    if (prc != 0) {
        if (prc == -ENOMEM)
            http_set_pending_error(r, 503, "unavailable", NULL, "out of memory for the outputs");
        else if (prc == -ENOENT)
            http_set_pending_error(r, 409, "conflict", e.field, "%s", e.message);
        else
            http_set_pending_error(r, 500, "internal", e.field, "prediction failed: %s", e.message);
        free(out);
        return;
    }
    /* The answer is printed in one buffer of known bound (at most FLOAT_TEXT bytes a
     * value): running out of memory is a 503, never a 200 with part of the outputs. */
    size_t cap = 32 + (size_t)in->rows * ((size_t)no * (DOUBLE_TEXT + 1) + 3);
    char *text = malloc(cap);
    if (!text) {
        free(out);
        http_set_pending_error(r, 503, "unavailable", NULL,
                               "out of memory for %d rows of outputs", in->rows);
        return;
    }
    size_t n = (size_t)snprintf(text, cap, "{\"outputs\":[");
    for (int i = 0; i < in->rows; i++) {
        text[n++] = i ? ',' : '[';
        if (i)
            text[n++] = '[';
        for (int k = 0; k < no; k++) {
            if (k)
                text[n++] = ',';
            /* As before: the float's exact value as a double, in the fewest digits. */
            n += (size_t)json_number_text(text + n, DOUBLE_TEXT,
                                          (double)out[(size_t)i * (size_t)no + (size_t)k], 1);
        }
        text[n++] = ']';
    }
    n += (size_t)snprintf(text + n, cap - n, "]}\n");
    free(out);
    struct MHD_Response *resp = MHD_create_response_from_buffer(n, text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        http_set_pending_error(r, 503, "unavailable", NULL, "out of memory for the answer");
        return;
    }
    MHD_add_response_header(resp, "Content-Type", "application/json; charset=utf-8");
    http_resume_pending(r, 200, resp);
}

void api_jobs_predict(http_req *r)
{
    cJSON *body = http_body_json(r);
    if (!body)
        return;
    predict_in *in = calloc(1, sizeof *in);
    if (!in) {
        cJSON_Delete(body);
        http_error(r, 503, "unavailable", NULL, "out of memory");
        return;
    }
    in->body = body;
    r->ctx = in;
    r->ctx_free = predict_free;
    http_defer_slow(r, predict_work);
}
