/* generate — POST /v1/jobs/{id}/generate (API.md, "Generation"): text sampled from a gpt
 * job's checkpoint, as one JSON answer or, with Accept: text/event-stream, one `token` event
 * per token as it is made and a `done` event. The model comes from the shared cache
 * (jobs/loader.h); forward passes on it are serialised by its lock, one token at a time, so
 * a long stream does not hold other requests on the same model for its whole length.
 *
 * Every token is a forward pass of the model (milliseconds to seconds for a large one), so
 * none is made on the loop thread: the JSON answer is made on a slow queue thread, and the
 * event stream in pieces there too (api/pieces.h), each piece the events of the tokens made
 * in about GEN_PIECE_NS, at least one. */
#include <errno.h>
#include <pthread.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "api/pieces.h"
#include "api/routes.h"
#include "core/generate.h"
#include "api/api.h"
#include "util/util.h"

#define GEN_PIECE (64 * 1024)
#define GEN_PIECE_NS (10 * 1000000ull)
/* A JSON answer's tokens are made in turns of about this long on a slow queue thread, each
 * queued behind the requests waiting there: a generation of 100,000 tokens (minutes) would
 * otherwise hold a thread of the two that metrics exports, weights and uploads share. */
#define GEN_TURN_S 0.2

typedef struct gen_req {
    cJSON *body;            /* the parsed request (the prompt points into it) */
    gen_params p;
    int sse;
    /* the stream */
    api_t *api;
    model_ref *ref;
    gen_state st;
    char *text;             /* what has been generated (for done / the JSON answer) */
    size_t len, cap;
    int finished;
    int started;            /* the model is loaded and the prompt read (the first turn) */
    int more;               /* a turn ended with tokens still to make */
    int fd;                 /* the client's socket: a turn looks whether it is still there */
    uint64_t deletions;     /* jobs deleted before the model was loaded (model_cache_deleted) */
    unsigned char pend[4];  /* a byte vocabulary's UTF-8 character not yet complete */
    int npend;
    char *frame;            /* the event being copied into pieces (it may span several) */
    size_t frame_len, frame_off;
} gen_req;

static void gen_req_free(void *p)
{
    gen_req *g = p;
    if (!g)
        return;
    gen_state_free(&g->st);
    if (g->ref)
        model_cache_release(&g->api->sv->models, g->ref);
    cJSON_Delete(g->body);
    free(g->text);
    free(g->frame);
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

/* Bytes of the UTF-8 sequence at s[0..n): its length when whole and valid, 0 when it may
 * still become valid with more bytes, -1 when it cannot (the rules JSON parsers hold text to:
 * no overlong forms, no surrogates, nothing above U+10FFFF). */
static int utf8_seq(const unsigned char *s, int n)
{
    unsigned c = s[0];
    int len = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3
            : c >= 0xF0 && c <= 0xF4 ? 4 : -1;
    if (len < 0)
        return -1;
    for (int i = 1; i < len && i < n; i++) {
        unsigned lo = 0x80, hi = 0xBF;
        if (i == 1 && c == 0xE0)
            lo = 0xA0;
        else if (i == 1 && c == 0xED)
            hi = 0x9F;
        else if (i == 1 && c == 0xF0)
            lo = 0x90;
        else if (i == 1 && c == 0xF4)
            hi = 0x8F;
        if (s[i] < lo || s[i] > hi)
            return -1;
    }
    return n >= len ? len : 0;
}

/* A byte vocabulary makes bytes, not characters: they are passed on once they form a whole
 * UTF-8 character, and a byte that cannot start or continue one becomes U+FFFD, so every
 * answer is valid JSON text. Writes what is ready into out (NUL-terminated). */
static void ready_text(gen_req *g, const char *tok, int n, char out[16])
{
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        g->pend[g->npend++] = (unsigned char)tok[i];
        for (;;) {
            int k = utf8_seq(g->pend, g->npend);
            if (k == 0)
                break;
            if (k < 0) { /* the first byte is lost: U+FFFD, and the rest is looked at again */
                memcpy(out + o, "\xEF\xBF\xBD", 3);
                o += 3;
                k = 1;
            } else {
                memcpy(out + o, g->pend, (size_t)k);
                o += (size_t)k;
            }
            memmove(g->pend, g->pend + k, (size_t)(g->npend - k));
            g->npend -= k;
            if (!g->npend)
                break;
        }
    }
    out[o] = '\0';
}

/* One token under the model's lock: its text (maybe "" while a byte vocabulary's character is
 * incomplete) goes to out; returns 1, 0 at the end, < 0 on failure. */
static int next(gen_req *g, char out[16])
{
    char tok[5];
    if (model_cache_deleted(&g->api->sv->models, g->ref->id, &g->deletions))
        return -ENOENT; /* the job was deleted meanwhile */
    pthread_mutex_lock(&g->ref->run);
    int n = gen_next(&g->st, tok);
    pthread_mutex_unlock(&g->ref->run);
    if (n <= 0) {
        if (n == 0 && g->npend) { /* an unfinished character at the end */
            g->npend = 0;
            if (append(g, "\xEF\xBF\xBD", 3))
                return -ENOMEM;
        }
        return n;
    }
    ready_text(g, tok, n, out);
    if (append(g, out, strlen(out)))
        return -ENOMEM;
    return 1;
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

/* Why a generation under way stops (a failure of next(), not the end); NULL for a failure
 * with no more to say than its error number. */
static const char *why_stopped(const gen_req *g, int n, char *buf, size_t size, int *status,
                               const char **code)
{
    if (n == -ENOENT) {
        *status = 404, *code = "not_found";
        snprintf(buf, size, "job %s was deleted; the generation stopped after %d tokens",
                 g->ref->id, g->st.made);
    } else if (n == -EDOM) {
        *status = 422, *code = "unprocessable";
        snprintf(buf, size, "the model's next-token scores are not finite after %d tokens "
                 "(this checkpoint's weights overflow): nothing to draw from; generate from "
                 "an earlier step", g->st.made);
    } else {
        return NULL;
    }
    return buf;
}

/* The next event (a token, `done` after the last one, or `error` when it cannot go on) into
 * g->frame. */
static int next_event(gen_req *g, an_err *e)
{
    char tok[16];
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
        char why[300];
        int status;
        const char *code;
        if (!why_stopped(g, n, why, sizeof why, &status, &code))
            return an_failc(e, n, NULL, "generation failed (error %d)", n);
        /* the stream ends with the error, as a JSON answer would have been it */
        ev = "error";
        o = cJSON_CreateObject();
        cJSON *err = o ? cJSON_AddObjectToObject(o, "error") : NULL;
        if (err && (!cJSON_AddStringToObject(err, "code", code) ||
                    !cJSON_AddStringToObject(err, "message", why))) {
            cJSON_Delete(o);
            o = NULL;
        }
        g->finished = 1;
    }
    char *data = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    size_t need = data ? strlen(ev) + strlen(data) + 17 : 0; /* "event: " "\ndata: " "\n\n" NUL */
    g->frame = data ? malloc(need) : NULL;
    if (g->frame)
        g->frame_len = (size_t)snprintf(g->frame, need, "event: %s\ndata: %s\n\n", ev, data);
    cJSON_free(data);
    if (!g->frame)
        return an_failc(e, -ENOMEM, NULL, "out of memory for the answer");
    g->frame_off = 0;
    return 0;
}

/* A piece of the event stream (pieces_make_fn), on a slow queue thread: the events of the
 * tokens made in about GEN_PIECE_NS (at least one), so a small model's stream is not a trip
 * through the queue per token and a large model's tokens go out one by one as they come. */
static int gen_piece(void *ctx, store_t *s, char *buf, size_t cap, size_t *len, int *last,
                     an_err *e)
{
    (void)s;
    gen_req *g = ctx;
    size_t n = 0;
    uint64_t t0 = uv_hrtime();
    while (n < cap) {
        if (g->frame) {
            size_t k = g->frame_len - g->frame_off;
            if (k > cap - n)
                k = cap - n;
            memcpy(buf + n, g->frame + g->frame_off, k);
            n += k;
            g->frame_off += k;
            if (g->frame_off == g->frame_len) {
                free(g->frame);
                g->frame = NULL;
            }
            continue;
        }
        if (g->finished) {
            *last = 1;
            break;
        }
        if (n > 0 && uv_hrtime() - t0 >= GEN_PIECE_NS)
            break;
        int rc = next_event(g, e);
        if (rc)
            return rc;
    }
    *len = n;
    return 0;
}

/* 1 when the client closed its side of the connection (nothing it sent is left unread). */
static int client_gone(int fd)
{
    char b;
    ssize_t n = fd >= 0 ? recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) : -1;
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* A turn of a JSON answer's tokens (see GEN_TURN_S). */
static void gen_turn(http_req *r, gen_req *g)
{
    char tok[16];
    int n;
    double t0 = util_now();
    while ((n = next(g, tok)) > 0) {
        if (util_now() - t0 < GEN_TURN_S)
            continue;
        if (client_gone(g->fd)) { /* nobody to answer: the model is free for others */
            http_set_pending_error(r, 503, "unavailable", NULL, "the client went away; the "
                                   "generation stopped after %d tokens", g->st.made);
            return;
        }
        g->more = 1; /* no answer yet: gen_again queues the next turn */
        return;
    }
    if (n < 0) {
        char why[300];
        int status;
        const char *code;
        if (why_stopped(g, n, why, sizeof why, &status, &code))
            http_set_pending_error(r, status, code, NULL, "%s", why);
        else
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

/* Loop thread, after each turn: the next one, behind what waits in the queue; a daemon that
 * is stopping answers instead of making the rest. */
static void gen_again(http_req *r)
{
    gen_req *g = r->ctx;
    if (!g || !g->more)
        return;
    g->more = 0;
    if (r->api->sv->phase != PHASE_SERVING) {
        http_set_pending_error(r, 503, "unavailable", NULL, "the daemon is stopping; the "
                               "generation stopped after %d tokens", g->st.made);
        return;
    }
    if (http_defer_again(r) != 0)
        http_set_pending_error(r, 503, "unavailable", NULL, "the daemon is busy: the "
                               "generation stopped after %d tokens; try again", g->st.made);
}

static void gen_work(http_req *r, store_t *s)
{
    gen_req *g = r->ctx;
    if (g->started) {
        gen_turn(r, g);
        return;
    }
    g->started = 1;
    g->api = r->api;
    g->deletions = model_cache_deletions(&r->api->sv->models); /* a delete while it loads */
    g->ref = api_model_load_gpt(r, s, r->m.params[0], g->p.step);
    if (!g->ref)
        return;
    an_err e;
    an_err_clear(&e);
    pthread_mutex_lock(&g->ref->run);
    int rc = loader_gpt_check(g->ref, &e);
    if (!rc)
        rc = gen_state_start(&g->st, g->ref->f->g, &g->ref->f->vocab, &g->p, &e);
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
        r->ctx = NULL; /* the stream owns it now */
        pieces_spec sp = {.piece = GEN_PIECE, .make = gen_piece, .free_ctx = gen_req_free,
                          .ctx = g, .what = "a generation stream",
                          .content_type = "text/event-stream"};
        struct MHD_Response *resp = NULL;
        int prc = pieces_open(r, s, &sp, &resp, &e);
        if (prc) {
            http_set_pending_error(r, prc == -ENOMEM ? 503 : 500,
                                   prc == -ENOMEM ? "unavailable" : "internal", NULL, "%s",
                                   e.message);
            return;
        }
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        http_resume_pending(r, 200, resp);
        return;
    }
    gen_turn(r, g);
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
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    g->fd = ci ? ci->connect_fd : -1;
    r->loop_fn = gen_again;
    http_defer_slow(r, gen_work);
}
