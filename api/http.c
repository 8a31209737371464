/* http — one HTTP request's life on the loop thread, and the JSON answers of the API. */
#include "api/http.h"

#include "core/jsonstrict.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "api/conns.h"
#include "api/reqguard.h"
#include "api/reqtime.h"
#include "api/routes.h"
#include "core/config.h"
#include "api/api.h"
#include "store/store.h"

static const char JSON_TYPE[] = "application/json; charset=utf-8";

/* A large body already in memory, handed to MHD a block at a time. */
typedef struct big_body {
    char *s;
    size_t n;
} big_body;

static ssize_t big_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    big_body *b = cls;
    if (pos >= b->n)
        return MHD_CONTENT_READER_END_OF_STREAM;
    size_t c = b->n - (size_t)pos < max ? b->n - (size_t)pos : max;
    memcpy(buf, b->s + pos, c);
    return (ssize_t)c;
}

static void big_free(void *cls)
{
    big_body *b = cls;
    cJSON_free(b->s);
    free(b);
}

/* A body of n bytes (taken over). Past HTTP_BIG_BODY it is sent in blocks of HTTP_BLOCK,
 * one per connection per turn of the loop: writing megabytes to a socket in one go costs the
 * loop thread milliseconds of copying per megabyte while every other request waits. */
static struct MHD_Response *body_response(char *s, size_t n)
{
    if (n > HTTP_BIG_BODY) {
        big_body *b = malloc(sizeof *b);
        struct MHD_Response *resp = NULL;
        if (b) {
            b->s = s;
            b->n = n;
            resp = MHD_create_response_from_callback(n, HTTP_BLOCK, big_read, b, big_free);
        }
        if (!resp) {
            free(b);
            cJSON_free(s);
        }
        return resp;
    }
    /* MHD frees with free(); cJSON's default allocator is malloc. */
    struct MHD_Response *resp = MHD_create_response_from_buffer(n, s, MHD_RESPMEM_MUST_FREE);
    if (!resp)
        cJSON_free(s);
    return resp;
}

struct MHD_Response *http_json_response(cJSON *json)
{
    char *s = json ? cJSON_PrintUnformatted(json) : NULL;
    cJSON_Delete(json);
    if (!s)
        return NULL;
    size_t n = strlen(s);
    /* An answer is UTF-8 as its Content-Type says, even where a message echoes bytes of a
     * request that were never checked or cuts a name at a byte count (%.64s). */
    if (!utf8_valid(s, n, NULL)) {
        char *fixed = utf8_repair(s, n, &n);
        cJSON_free(s);
        if (!fixed)
            return NULL;
        s = fixed;
    }
    /* A newline ends every JSON answer, so `curl` output does not run into the prompt. */
    char *nl = realloc(s, n + 2);
    if (!nl) {
        cJSON_free(s);
        return NULL;
    }
    s = nl;
    s[n++] = '\n';
    s[n] = '\0';
    struct MHD_Response *resp = body_response(s, n);
    if (!resp)
        return NULL;
    MHD_add_response_header(resp, "Content-Type", JSON_TYPE);
    return resp;
}

struct MHD_Response *http_error_response(const char *code, const char *field,
                                         const char *message)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", message);
    if (field && field[0])
        cJSON_AddStringToObject(e, "field", field);
    else
        cJSON_AddNullToObject(e, "field");
    return http_json_response(o);
}

/* A header that marks a streamed answer until http_queue takes it off. */
#define STREAM_MARK "X-Anneald-Streamed"

struct MHD_Response *http_stream_response(size_t block, MHD_ContentReaderCallback read,
                                          void *cls, MHD_ContentReaderFreeCallback release)
{
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, block, read, cls, release);
    if (resp)
        MHD_add_response_header(resp, STREAM_MARK, "1");
    return resp;
}

void http_queue(http_req *r, unsigned status, struct MHD_Response *resp)
{
    /* No page may frame the dashboard (or any answer): a framed dashboard's clicks are
     * same-origin requests, which the Origin and Host checks let through, so a hostile site
     * could line its bait up with Delete or Cancel. The policy (HTTP_CSP) also keeps any
     * script but the dashboard's own files from running in its pages. */
    if (resp && !MHD_get_response_header(resp, "X-Frame-Options")) {
        MHD_add_response_header(resp, "X-Frame-Options", "DENY");
        MHD_add_response_header(resp, "Content-Security-Policy", HTTP_CSP);
        MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    }
    if (r->in_work) { /* deferred work: the answer is queued when the request resumes */
        http_resume_pending(r, resp ? status : 503,
                            resp ? resp : http_error_response("unavailable", NULL, "out of memory"));
        return;
    }
    if (!resp) { /* out of memory: the connection is closed by MHD */
        r->answered = 1;
        r->status = 500;
        return;
    }
    if (!MHD_get_response_header(resp, "Cache-Control"))
        MHD_add_response_header(resp, "Cache-Control", "no-store");
    /* The library ends a streamed (chunked) answer to HEAD with its last chunk all the same:
     * five bytes a kept-alive connection would read as the start of its next answer. Such an
     * answer closes its connection instead. */
    if (MHD_get_response_header(resp, STREAM_MARK)) {
        MHD_del_response_header(resp, STREAM_MARK, "1");
        if (r->method && strcmp(r->method, "HEAD") == 0 &&
            !MHD_get_response_header(resp, MHD_HTTP_HEADER_CONNECTION))
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    }
    reqtime_note(r, resp);
    if (MHD_queue_response(r->conn, status, resp) == MHD_YES) {
        r->answered = 1;
        r->status = status;
    }
    MHD_destroy_response(resp);
}

void http_reply_json(http_req *r, unsigned status, cJSON *json)
{
    http_queue(r, status, http_json_response(json));
}

void http_reply_data(http_req *r, unsigned status, const char *ctype, const void *data,
                     size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (resp)
        MHD_add_response_header(resp, "Content-Type", ctype);
    http_queue(r, status, resp);
}

void http_reply_owned(http_req *r, unsigned status, const char *ctype, char *data, size_t len)
{
    struct MHD_Response *resp = body_response(data, len);
    if (resp)
        MHD_add_response_header(resp, "Content-Type", ctype);
    http_queue(r, status, resp);
}

void http_error(http_req *r, unsigned status, const char *code, const char *field,
                const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    http_queue(r, status, http_error_response(code, field, msg));
}

void http_error_err(http_req *r, unsigned status, const char *code, const an_err *e)
{
    http_queue(r, status ? status : 400,
               http_error_response(code ? code : "invalid_argument", e->field,
                                   e->message[0] ? e->message : "invalid request"));
}

void http_suspend(http_req *r)
{
    r->handed_off = 1;
    if (!r->suspended) {
        r->suspended = 1;
        MHD_suspend_connection(r->conn);
    }
}

void http_resume_with(http_req *r, unsigned status, struct MHD_Response *resp)
{
    if (r->pending)
        MHD_destroy_response(r->pending);
    r->pending = resp;
    r->pending_status = status;
    if (r->suspended) {
        r->suspended = 0;
        MHD_resume_connection(r->conn);
    }
}

void http_set_pending_json(http_req *r, unsigned status, cJSON *json)
{
    if (r->pending)
        MHD_destroy_response(r->pending);
    r->pending = http_json_response(json);
    r->pending_status = status;
}

void http_set_pending_owned(http_req *r, unsigned status, const char *ctype, char *data,
                            size_t len)
{
    struct MHD_Response *resp = body_response(data, len);
    if (resp)
        MHD_add_response_header(resp, "Content-Type", ctype);
    http_resume_pending(r, resp ? status : 503,
                        resp ? resp : http_error_response("unavailable", NULL, "out of memory"));
}

void http_resume_pending(http_req *r, unsigned status, struct MHD_Response *resp)
{
    if (r->pending)
        MHD_destroy_response(r->pending);
    r->pending = resp;
    r->pending_status = status;
}

void http_set_pending_error(http_req *r, unsigned status, const char *code, const char *field,
                            const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r->pending)
        MHD_destroy_response(r->pending);
    r->pending = http_error_response(code, field, msg);
    r->pending_status = status;
}

int http_token_equal(const char *given, size_t given_len, const char *want)
{
    size_t wl = strlen(want);
    /* Compare every byte of the wanted token whatever the input, so timing reveals at most
     * the token's length. */
    unsigned char diff = (unsigned char)(given_len != wl);
    for (size_t i = 0; i < wl; i++) {
        unsigned char g = i < given_len ? (unsigned char)given[i] : 0;
        diff |= (unsigned char)(g ^ (unsigned char)want[i]);
    }
    return diff == 0;
}

unsigned http_status_of_store(int rc, const char **code)
{
    switch (rc) {
    case -ENOENT: *code = "not_found"; return 404;
    case -EINVAL: *code = "invalid_argument"; return 400;
    case -EEXIST: *code = "conflict"; return 409;
    case STORE_ESTATE: *code = "conflict"; return 409;
    case STORE_EINUSE: *code = "conflict"; return 409;
    case -E2BIG: *code = "too_large"; return 413;
    case -EBUSY: *code = "unavailable"; return 503;
    case -ENOSPC: *code = "unavailable"; return 503;
    case -EROFS: *code = "unavailable"; return 503;
    case -ESTALE: *code = "unavailable"; return 503;
    default: *code = "internal"; return 500;
    }
}

void http_set_pending_store_error(http_req *r, int rc, const char *what, const an_err *e)
{
    const char *code;
    unsigned st = http_status_of_store(rc, &code);
    const char *field = e->field[0] ? e->field : NULL; /* the request's part it names */
    /* SQLite's "database or disk is full" says neither which nor what to do */
    const char *hint = rc == -ENOSPC ? " (the store's disk is full: free some space on it, "
                                       "then try again)" : "";
    if (what)
        http_set_pending_error(r, st, code, field, "%s: %s%s", what, e->message, hint);
    else
        http_set_pending_error(r, st, code, field, "%s%s", e->message, hint);
}

void http_store_error(http_req *r, int rc, const char *what, const an_err *e)
{
    const char *code;
    unsigned st = http_status_of_store(rc, &code);
    const char *field = e->field[0] ? e->field : NULL;
    /* SQLite's "database or disk is full" says neither which nor what to do */
    const char *hint = rc == -ENOSPC ? " (the store's disk is full: free some space on it, "
                                       "then try again)" : "";
    if (what)
        http_error(r, st, code, field, "%s: %s%s", what, e->message, hint);
    else
        http_error(r, st, code, field, "%s%s", e->message, hint);
}

const char *http_bearer(struct MHD_Connection *c)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    return h;
}

/* 1 if the request carries the right token (header, or ?access_token= where allowed). */
static int authorized(http_req *r)
{
    const char *want = r->api->sv->opts->token;
    if (!want[0])
        return 1;
    if (r->m.route && (r->m.route->flags & ROUTE_OPEN))
        return 1;
    const char *t = http_bearer(r->conn);
    if (t)
        return http_token_equal(t, strlen(t), want);
    if (r->m.route && (r->m.route->flags & ROUTE_QUERY_TOKEN)) {
        const char *q = http_query(r, "access_token");
        if (q)
            return http_token_equal(q, strlen(q), want);
    }
    return 0;
}

static void queue_pending(http_req *r)
{
    struct MHD_Response *resp = r->pending;
    r->pending = NULL;
    http_queue(r, r->pending_status, resp);
}

/* The first call: route, auth, size and media checks. Returns 1 when a response was queued. */
static int first_call(http_req *r)
{
    api_t *api = r->api;
    if (reqguard_head(r))
        return 1;
    int rc = router_match(api_routes, api_nroutes, r->method, r->path, &r->m);
    if (rc == -ENOENT) {
        http_error(r, 404, "not_found", NULL, "no such path: %.256s", r->path);
        return 1;
    }
    if (rc == -EPERM) {
        struct MHD_Response *resp = http_error_response(
            "method_not_allowed", NULL, "this path does not take this method");
        if (resp) {
            char msg[160];
            snprintf(msg, sizeof msg, "%s", r->m.allow);
            MHD_add_response_header(resp, "Allow", msg);
        }
        http_queue(r, 405, resp);
        return 1;
    }
    if (!authorized(r)) {
        struct MHD_Response *resp = http_error_response(
            "unauthorized", NULL, "a valid bearer token is required (Authorization: Bearer <token>)");
        if (resp)
            MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
        http_queue(r, 401, resp);
        return 1;
    }
    if (api->sv->phase != PHASE_SERVING && strcmp(r->path, "/healthz") != 0) {
        http_error(r, 503, "unavailable", NULL, "the daemon is shutting down");
        return 1;
    }
    if (reqguard_args(r))
        return 1;
    r->limit = r->m.route->body == BODY_CSV ? api->sv->opts->max_body_dataset : api->sv->opts->max_body_json;
    if ((r->m.route->flags & ROUTE_SMALL) && r->limit > ROUTE_SMALL_BODY)
        r->limit = ROUTE_SMALL_BODY;
    if (r->m.route->body != BODY_NONE && reqguard_media(r))
        return 1;
    if (r->declared >= 0 && (unsigned long long)r->declared > r->limit) {
        http_error(r, 413, "too_large", NULL, "the body is %lld bytes; this endpoint takes at most %zu",
                   r->declared, r->limit);
        return 1;
    }
    /* An upload goes to the store piece by piece as it arrives (api/datasets.c): its own
     * buffers are what it holds, whatever the size of the body. */
    if (r->m.route->body == BODY_CSV)
        return api_upload_begin(r);
    return 0;
}

/* The body buffer for at least `need` bytes: the declared Content-Length (within the limit)
 * at once, so a large upload is held once and never copied into a buffer twice its size;
 * without one, steps of a quarter (at most 1.25 times the body, plus a copy while
 * realloc moves it). */
static size_t body_capacity(http_req *r, size_t need)
{
    if (r->declared >= 0 && r->cap == 0 && (size_t)r->declared + 1 >= need &&
        (size_t)r->declared <= r->limit)
        return (size_t)r->declared + 1;
    size_t nc = r->cap ? r->cap + r->cap / 4 : 4096;
    if (nc < need)
        nc = need + need / 4;
    return nc > r->limit + 1 && need <= r->limit + 1 ? r->limit + 1 : nc;
}

/* The head's Content-Length, or -1 without one. MHD answers a malformed one with 400 before
 * the access handler runs; anything but plain digits is taken as none all the same, and a
 * length past LLONG_MAX as LLONG_MAX (over every limit: a 413). */
static long long head_length(struct MHD_Connection *c)
{
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (!cl || *cl < '0' || *cl > '9')
        return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(cl, &end, 10);
    if (*end)
        return -1;
    return errno == ERANGE || v > (unsigned long long)LLONG_MAX ? LLONG_MAX : (long long)v;
}

/* 1 when the request's head announces a body (a length above 0, or chunks). */
static int declares_body(const http_req *r)
{
    return r->declared > 0 ||
           MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Transfer-Encoding") != NULL;
}

enum MHD_Result http_access(void *cls, struct MHD_Connection *c, const char *url,
                            const char *method, const char *version, const char *upload,
                            size_t *upload_size, void **con_cls)
{
    (void)version;
    api_t *api = cls;
    http_req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        *con_cls = r;
        r->api = api;
        r->conn = c;
        r->began_ns = uv_hrtime();
        r->method = method;
        url = reqguard_origin_form(url, r->authority, sizeof r->authority);
        snprintf(r->path, sizeof r->path, "%s", url);
        r->declared = head_length(c);
        char msg[200];
        int refuse = conns_request_begins(api, c, method, url, msg, sizeof msg);
        conns_body_arriving(c, declares_body(r), 0); /* a client gone before its body: swept */
        if (refuse) { /* a later request of a kept-alive connection (api/conns.h) */
            struct MHD_Response *resp = http_error_response(
                refuse == 503 ? "unavailable" : refuse == 400 ? "invalid_argument" : "too_large",
                NULL, msg);
            if (resp)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
            http_queue(r, (unsigned)refuse, resp);
            r->early = 1;
        } else if (first_call(r)) {
            r->early = 1;
        }
        return MHD_YES;
    }
    conns_body_arriving(c, *upload_size > 0, *upload_size); /* until the call ending it */
    if (r->early || r->answered) { /* answered on call 1: discard any body */
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->m.route && r->m.route->body == BODY_CSV) { /* streamed to the store (api/datasets.c) */
        if (r->pending) { /* a piece failed: the answer waits for the end of the body */
            if (*upload_size > 0) {
                *upload_size = 0;
                return MHD_YES;
            }
            queue_pending(r);
            return MHD_YES;
        }
        if (r->suspended)
            return MHD_YES;
        api_upload_data(r, upload, upload_size);
        return MHD_YES;
    }
    if (*upload_size > 0) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (r->too_large || r->no_memory)
            return MHD_YES;
        if (r->len + n > r->limit) { /* what the buffer held is given back now */
            r->too_large = 1;
            http_body_drop(r);
            return MHD_YES;
        }
        if (r->len + n + 1 > r->cap) {
            size_t nc = body_capacity(r, r->len + n + 1);
            if (http_body_charge(r, nc)) { /* answered 503 at the end of the body */
                http_body_drop(r);
                return MHD_YES;
            }
            char *nb = realloc(r->body, nc);
            if (!nb) { /* as a budget that cannot take it: 503 */
                r->no_memory = nc;
                http_body_drop(r);
                return MHD_YES;
            }
            r->body = nb;
            r->cap = nc;
        }
        memcpy(r->body + r->len, upload, n);
        r->len += n;
        r->body[r->len] = '\0';
        return MHD_YES;
    }
    /* Final call (or the call after a resume). */
    if (r->pending) {
        queue_pending(r);
        return MHD_YES;
    }
    if (r->suspended)
        return MHD_YES;
    if (r->handed_off) /* resumed with no answer (none could be made): close it, or MHD
                          * would call again on every turn of the loop */
        return MHD_NO;
    if (r->too_large) {
        http_error(r, 413, "too_large", NULL, "the body is larger than the %zu bytes this endpoint takes",
                   r->limit);
        return MHD_YES;
    }
    if (http_body_charge_tree(r)) /* the memory budget cannot take it: 503 */
        return MHD_YES;
    if (http_body_parse_ahead(r)) /* MHD calls again once it is parsed */
        return MHD_YES;
    r->m.route->handler(r);
    return MHD_YES;
}

void http_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                    enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    api_t *api = cls;
    http_req *r = *con_cls;
    if (!r)
        return;
    if (r->status < 600)
        api->http_by_code[r->status]++;
    reqguard_access_log(r);
    conns_request_ends(c);
    if (r->pending)
        MHD_destroy_response(r->pending);
    http_charge_release(r);
    if (r->ctx_free)
        r->ctx_free(r->ctx);
    cJSON_Delete(r->json);
    free(r->body);
    free(r);
    *con_cls = NULL;
}
