/* generate — POST /v1/jobs/{id}/generate (API.md, "Generation"): text sampled from a gpt
 * job's checkpoint, as one JSON answer or, with Accept: text/event-stream, one `token` event
 * per token as it is made and a `done` event. The model comes from the shared cache
 * (daemon/loader.h); forward passes on it are serialised by its lock, one token at a time, so
 * a long stream does not hold other requests on the same model for its whole length. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "api/routes.h"
#include "core/generate.h"
#include "daemon/daemon.h"

typedef struct gen_req {
    cJSON *body;            /* the parsed request (the prompt points into it) */
    gen_params p;
    int sse;
    /* the stream */
    daemon_t *d;
    model_ref *ref;
    gen_state st;
    char *text;             /* what has been generated (for done / the JSON answer) */
    size_t len, cap;
    int finished;
} gen_req;

static void gen_req_free(void *p)
{
    gen_req *g = p;
    if (!g)
        return;
    gen_state_free(&g->st);
    if (g->ref)
        model_cache_release(&g->d->models, g->ref);
    cJSON_Delete(g->body);
    free(g->text);
    free(g);
}

static int append(gen_req *g, const char *s, size_t n)
{
    if (g->len + n + 1 > g->cap) {
        size_t cap = (g->cap ? g->cap * 2 : 256) + n;
        char *t = realloc(g->text, cap);
        if (!t)
            return -ENOMEM;
        g->text = t;
        g->cap = cap;
    }
    memcpy(g->text + g->len, s, n);
    g->len += n;
    g->text[g->len] = '\0';
    return 0;
}

/* One token under the model's lock; its byte count, 0 at the end, < 0 on failure. */
static int next(gen_req *g, char tok[5])
{
    pthread_mutex_lock(&g->ref->run);
    int n = gen_next(&g->st, tok);
    pthread_mutex_unlock(&g->ref->run);
    if (n > 0 && append(g, tok, (size_t)n))
        return -ENOMEM;
    return n;
}

static cJSON *answer(const gen_req *g)
{
    cJSON *o = cJSON_CreateObject();
    if (o && (!cJSON_AddNumberToObject(o, "step", (double)g->ref->f->step) ||
              !cJSON_AddStringToObject(o, "text", g->text ? g->text : "") ||
              !cJSON_AddNumberToObject(o, "tokens", g->st.made))) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* The SSE body, an event a call: `token` events, then `done` with the whole answer. */
static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    gen_req *g = cls;
    if (g->d->phase == PHASE_CLOSING)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (g->finished)
        return MHD_CONTENT_READER_END_OF_STREAM;
    char tok[5];
    int n = next(g, tok);
    cJSON *o = NULL;
    const char *ev = "token";
    if (n > 0) {
        o = cJSON_CreateObject();
        if (o && !cJSON_AddStringToObject(o, "token", tok)) {
            cJSON_Delete(o);
            o = NULL;
        }
    } else if (n == 0) {
        ev = "done";
        o = answer(g);
        g->finished = 1;
    } else {
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    char *data = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!data)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    /* An event is at most a few hundred bytes (a done event holds the text: MHD's buffer is
     * sized for max_tokens of it below). */
    int w = snprintf(buf, max, "event: %s\ndata: %s\n\n", ev, data);
    cJSON_free(data);
    if (w < 0 || (size_t)w >= max)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    return w;
}

static void gen_work(http_req *r, store_t *s)
{
    gen_req *g = r->ctx;
    g->d = r->d;
    g->ref = api_model_load(r, s, r->m.params[0], g->p.step);
    if (!g->ref)
        return;
    if (!g->ref->f->g) {
        http_set_pending_error(r, 400, "invalid_argument", "model", "job %s is not a gpt: "
                               "generation samples text from a language model (use predict)",
                               r->m.params[0]);
        return;
    }
    an_err e;
    an_err_clear(&e);
    pthread_mutex_lock(&g->ref->run);
    int rc = gen_state_init(&g->st, g->ref->f->g, &g->ref->f->vocab, &g->p, &e);
    pthread_mutex_unlock(&g->ref->run);
    if (rc == -ENOMEM) {
        http_set_pending_error(r, 503, "unavailable", NULL, "%s", e.message);
        return;
    }
    if (rc) {
        http_set_pending_error(r, 400, "invalid_argument", e.field, "%s", e.message);
        return;
    }
    if (append(g, "", 0)) {
        http_set_pending_error(r, 503, "unavailable", NULL, "out of memory");
        return;
    }
    if (g->sse) {
        size_t block = 1024 + 8 * (size_t)g->p.max_tokens;
        struct MHD_Response *resp =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, block, sse_read, g, gen_req_free);
        if (!resp) {
            http_set_pending_error(r, 503, "unavailable", NULL, "out of memory for the answer");
            return;
        }
        r->ctx = NULL; /* the response owns it now */
        MHD_add_response_header(resp, "Content-Type", "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        http_resume_pending(r, 200, resp);
        return;
    }
    char tok[5];
    int n;
    while ((n = next(g, tok)) > 0)
        ;
    if (n < 0) {
        http_set_pending_error(r, n == -ENOMEM ? 503 : 500, n == -ENOMEM ? "unavailable"
                               : "internal", NULL, "generation failed (error %d)", n);
        return;
    }
    cJSON *o = answer(g);
    if (!o) {
        http_set_pending_error(r, 503, "unavailable", NULL, "out of memory for the answer");
        return;
    }
    http_set_pending_json(r, 200, o);
}

void api_jobs_generate(http_req *r)
{
    cJSON *body = http_body_json(r);
    if (!body)
        return;
    gen_req *g = calloc(1, sizeof *g);
    if (!g) {
        cJSON_Delete(body);
        http_error(r, 503, "unavailable", NULL, "out of memory");
        return;
    }
    g->body = body;
    r->ctx = g;
    r->ctx_free = gen_req_free;
    an_err e;
    an_err_clear(&e);
    if (gen_parse(body, &g->p, &e)) {
        http_error(r, 400, "invalid_argument", e.field[0] ? e.field : NULL, "%s", e.message);
        return;
    }
    const char *acc = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Accept");
    g->sse = acc && strstr(acc, "text/event-stream") != NULL;
    http_defer_slow(r, gen_work);
}
