/* http — one HTTP request's life on the loop thread, and the JSON answers of the API.
 *
 * DESIGN
 * libmicrohttpd runs in external epoll mode inside the libuv loop (daemon/loop.c), so every
 * function here runs on the loop thread. http_access is MHD's access handler:
 *   call 1: the route is looked up (404/405 answered at once), the token checked (401), the
 *           Content-Length compared with the route's limit (413) and the media type (415);
 *   middle calls: the body is appended up to the limit; beyond it the rest is discarded and
 *           413 is answered at the end;
 *   last call (*upload_data_size == 0): the route's handler runs. It answers at once
 *           (http_reply_*), or suspends the connection (http_defer: work on the libuv thread
 *           pool; http_suspend/http_resume_with: wait for a worker) and answers when MHD
 *           calls again after the resume.
 * A handler answers exactly once. Errors are {"error":{"code","message","field"}}. */
#ifndef ANNEALD_HTTP_H
#define ANNEALD_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <uv.h>

#include "api/router.h"
#include "core/err.h"

struct api;
struct store_t;

typedef struct http_req {
    struct api *api;
    struct MHD_Connection *conn;
    const char *method;               /* MHD's string, valid for the request */
    char path[512];                   /* decoded path (no query) */
    char authority[256];              /* host[:port] of an absolute-form target, else "" */
    route_match m;                    /* the matched route and its parameters */
    char *body;                       /* request body, NUL-terminated; NULL when empty */
    size_t len, cap;                  /* body bytes, allocation */
    size_t limit;                     /* largest accepted body */
    long long declared;               /* the head's Content-Length; -1 without one */
    int too_large;                    /* the body passed `limit`: the rest is discarded */
    uint64_t began_ns;                /* uv_hrtime() when its head had arrived */
    int early;                        /* a response was queued on the first call */
    int suspended;                    /* MHD_suspend_connection is in force */
    int handed_off;                   /* answered later by a worker or the thread pool */
    int answered;                     /* a response was queued */
    unsigned status;                  /* status queued (for /metrics) */
    struct MHD_Response *pending;     /* answer made while suspended, queued on the next call */
    unsigned pending_status;
    /* deferred work (http_defer) */
    uv_work_t work;
    void (*work_fn)(struct http_req *r, struct store_t *s);
    int in_work;                      /* on a queue thread: answers become the pending one */
    void (*loop_fn)(struct http_req *r); /* runs on the loop after the work, before resuming */
    struct workq *work_q;             /* the queue the work runs on */
    int parsed;                       /* ROUTE_PARSED: the body was parsed off the loop… */
    cJSON *json;                      /* …into this (http_body_json takes it), */
    an_err json_err;                  /* …or failed with this */
    int requeued;                     /* loop_fn queued the work again (http_defer_again) */
    char work_id[32];                 /* an id the work hands to loop_fn */
    uint64_t mem_charge;              /* bytes reserved in the memory budget until the request
                                       * ends (a body and its parsed tree, an upload, a
                                       * downsampled metrics answer) */
    uint64_t no_memory;               /* a body buffer of this size did not fit the budget:
                                       * the rest is discarded, the answer is 503 */
    int tree_charged;                 /* the parse of the body is in mem_charge */
    void *ctx;                        /* handler state for deferred work */
    void (*ctx_free)(void *ctx);
    struct http_req *next_waiter;     /* in a job's list of requests waiting for a worker */
} http_req;

/* MHD access handler (cls = struct api *). */
enum MHD_Result http_access(void *cls, struct MHD_Connection *c, const char *url,
                            const char *method, const char *version, const char *upload,
                            size_t *upload_size, void **con_cls);

/* MHD_OPTION_NOTIFY_COMPLETED callback: counts the status, frees the request. */
void http_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                    enum MHD_RequestTerminationCode toe);

/* Answers with `json` (consumed) and `status`. */
void http_reply_json(http_req *r, unsigned status, cJSON *json);

/* Answers with a body of the given content type (copied). */
void http_reply_data(http_req *r, unsigned status, const char *ctype, const void *data,
                     size_t len);

/* Answers with a malloc'd body (ownership passes to MHD). */
void http_reply_owned(http_req *r, unsigned status, const char *ctype, char *data, size_t len);

/* Answers an error: {"error":{"code","message","field"}}; `field` may be NULL or "". */
void http_error(http_req *r, unsigned status, const char *code, const char *field,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* The same from an an_err, with status 400 "invalid_argument" by default. */
void http_error_err(http_req *r, unsigned status, const char *code, const an_err *e);

/* The Content-Security-Policy of every answer (docs/API.md, Access): the dashboard runs its
 * own files only — no inline script or style attribute, nothing from another origin, no
 * framing. Its charts (uPlot) set styles through the CSSOM, which style-src does not govern;
 * the page's icon is an empty data: URL. */
#define HTTP_CSP                                                                                \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "                  \
    "form-action 'self'; frame-ancestors 'none'"

/* Queues a ready response (takes it over) with `status`; extra headers may be added first. */
void http_queue(http_req *r, unsigned status, struct MHD_Response *resp);

/* Builds the error body as a response (for answers made later, off the handler). */
struct MHD_Response *http_error_response(const char *code, const char *field,
                                         const char *message);
struct MHD_Response *http_json_response(cJSON *json);

/* Suspends the connection; some later code on the loop thread calls http_resume_with. */
void http_suspend(http_req *r);

/* Bodies larger than this are sent HTTP_BLOCK bytes per connection per turn of the loop. */
#define HTTP_BIG_BODY (256 * 1024)
#define HTTP_BLOCK (64 * 1024)

/* Resumes a suspended request with a response to queue (takes it over). */
void http_resume_with(http_req *r, unsigned status, struct MHD_Response *resp);

/* Runs fn(r, store) on the libuv thread pool with a store connection of its own; fn sets
 * r->pending/pending_status (http_set_pending*) and the request is resumed and answered. */
void http_defer(http_req *r, void (*fn)(http_req *r, struct store_t *s));

/* Runs fn(r, store) on the slow queue for a step that does not answer (a piece of an upload
 * stored): the request is suspended meanwhile and resumed after, so that MHD goes on with its
 * body; fn may set a pending answer (http_set_pending*), which is queued at the body's end.
 * 0, or the queue's refusal (-EAGAIN full, -ENOMEM): nothing was suspended then. */
int http_defer_step(http_req *r, void (*fn)(http_req *r, struct store_t *s));
/* The same on queue q. */
int http_defer_step_on(http_req *r, struct workq *q, void (*fn)(http_req *r, struct store_t *s));

/* From r->loop_fn (loop thread), after a turn of deferred work that set no answer: the same
 * work runs again, behind what waits in its queue, and the request stays suspended. Long
 * work done in turns so leaves the queue's threads to the requests behind it. A full queue
 * does not refuse it (workq_requeue). 0, or the refusal of a stopping queue or of memory (the
 * caller then sets the answer). */
int http_defer_again(http_req *r);

/* Runs fn(arg, store) on the slow queue with no request (store NULL when the queue thread
 * cannot open one); fn owns arg. 0, or the queue's refusal. */
int http_store_task(struct api *api, void (*fn)(void *arg, struct store_t *s), void *arg);

/* Closes the calling queue thread's store connection (jobs/workq.c calls it as the
 * thread ends). */
void http_thread_end(void);

/* The same on the queue of slow work (exports, models, uploads), so that they cannot hold
 * up quick requests (jobs/workq.h). */
void http_defer_slow(http_req *r, void (*fn)(http_req *r, struct store_t *s));

/* The calling queue thread's own store connection (opened on first use; see http_defer),
 * for work a queue runs outside http_defer (streamed answers). NULL with e filled when it
 * cannot be opened. */
struct store_t *http_thread_store(struct api *api, an_err *e);

/* For deferred work: sets the answer to queue after the resume. */
/* Sets a ready response (taken over) as the pending answer of deferred work. */
void http_resume_pending(http_req *r, unsigned status, struct MHD_Response *resp);

void http_set_pending_json(http_req *r, unsigned status, cJSON *json);
/* The same with a body of ctype (data malloc'd, taken over). */
void http_set_pending_owned(http_req *r, unsigned status, const char *ctype, char *data,
                            size_t len);
void http_set_pending_error(http_req *r, unsigned status, const char *code, const char *field,
                            const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* A query argument, or NULL. */
const char *http_query(http_req *r, const char *key);

/* Reads an integer query argument in [lo, hi]; absent gives `def`. On a bad value answers 400
 * naming `key` and returns -EINVAL. */
int http_query_int(http_req *r, const char *key, int64_t lo, int64_t hi, int64_t def,
                   int64_t *out);

/* Parses the JSON body (or takes it as a request thread parsed it: ROUTE_PARSED); on failure
 * answers 400 (malformed JSON with line and column, or an empty body) and returns NULL. */
cJSON *http_body_json(http_req *r);
/* The body parsed as JSON, for deferred work that reads it itself (on a queue thread): 0, or
 * -1 with the error in *e, its field "body" when the JSON is malformed. Answers nothing. */
int http_body_read(http_req *r, cJSON **out, an_err *e);

/* Before a ROUTE_PARSED route's handler (api/httpbody.c): a body over 16 KiB is parsed on a
 * quick request thread first. 1 when that was queued (or refused, answered 503): the handler
 * runs on MHD's next call; 0 to run it now. */
int http_body_parse_ahead(http_req *r);

/* A JSON body's memory, reserved in the budget (--max-memory) until the request ends, or
 * for control requests (ROUTE_SMALL) in a reserve of their own (api/httpbody.c):
 * http_body_charge takes the growth of its buffer to `cap` bytes as it arrives (0, or -1
 * with r->no_memory set; the caller then drops the buffer); http_body_charge_tree, once the
 * body is whole, takes what its parse will allocate. The latter answers either refusal (503,
 * or 413 when no empty budget could take it) and returns 1; 0 to go on. */
int http_body_charge(http_req *r, size_t cap);
int http_body_charge_tree(http_req *r);
/* 1 when the body is empty or only whitespace (which every route takes as no body). */
int http_body_blank(const http_req *r);

/* For a route that takes no parameters: 0 when the body is empty, whitespace or {}; else
 * answers 400 (malformed JSON with its place, anything else naming `body`: "WHAT takes no
 * parameters") and returns -1. Nothing is changed by a refused request. */
int http_body_none(http_req *r, const char *what);

/* A streamed answer of unknown length (sent chunked): MHD_create_response_from_callback with
 * MHD_SIZE_UNKNOWN, marked so that http_queue closes the connection after it when the request
 * is HEAD (the library sends the last chunk even then). */
struct MHD_Response *http_stream_response(size_t block, MHD_ContentReaderCallback read,
                                          void *cls, MHD_ContentReaderFreeCallback release);

/* Frees the body's buffer and gives back everything the request holds in the budget. */
void http_body_drop(http_req *r);
/* Gives back what the request holds (mem_charge), to the budget or reserve it came from. */
void http_charge_release(http_req *r);

/* Constant-time comparison of a presented token with the configured one. */
int http_token_equal(const char *given, size_t given_len, const char *want);

/* The token of the request's "Authorization: Bearer …" header (spaces after Bearer
 * skipped, as the gate's head check skips them), or NULL. */
const char *http_bearer(struct MHD_Connection *c);

/* Maps a store error code to an HTTP status and error code. */
unsigned http_status_of_store(int rc, const char **code);

/* Answers a store error `rc` with its status and the store's message (after "what: " when
 * `what` is not NULL): as the pending answer of deferred work, or at once. */
void http_set_pending_store_error(http_req *r, int rc, const char *what, const an_err *e);
void http_store_error(http_req *r, int rc, const char *what, const an_err *e);

#endif
