/* schedules — POST /v1/schedules/preview[?format=json|csv]: a schedule's learning rates
 * without training.
 *
 * Up to 10,000,000 steps make hundreds of megabytes of text, so the answer is never built in
 * memory: the body is read and checked by sched_preview_open on a queue thread (its errors are
 * 400 with `field`, answered before anything is sent) and the text is then produced as MHD
 * asks for it, from the constant-memory stream of core/preview.c. The bytes are those of
 * `anneald preview`.
 *
 * The text is made on the loop thread, in blocks of PREVIEW_BLOCK bytes: the stream makes
 * about 44 MB/s (a 10,000,000-step preview, 289 MB, takes 6.5 s on one core), so a block
 * costs about 0.75 ms, and MHD asks for one block per connection per turn of the loop. Other
 * requests therefore wait at most about a millisecond per preview being streamed, and a
 * client that stops reading costs nothing (MHD asks only when the socket takes more). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "api/http.h"
#include "api/routes.h"
#include "core/sched.h"

/* Bytes produced per call from MHD (see the header comment for the measurement). */
#define PREVIEW_BLOCK (32 * 1024)
/* Scheduler steps computed per call at most: about a millisecond. */
#define PREVIEW_STEPS_PER_CALL (64 * 1024)

/* A preview being streamed (the stream keeps nothing of the body). */
typedef struct preview_resp {
    sched_preview_stream *ps;
    int csv;
} preview_resp;

static ssize_t preview_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    preview_resp *p = cls;
    /* A thinned preview of a long schedule may compute millions of steps per byte: a call
     * computes at most PREVIEW_STEPS_PER_CALL of them, and returns 0 (MHD asks again on a
     * later turn of the loop) while the next bytes are not ready. */
    size_t n = sched_preview_read_some(p->ps, buf, max, PREVIEW_STEPS_PER_CALL);
    if (n)
        return (ssize_t)n;
    return sched_preview_done(p->ps) ? MHD_CONTENT_READER_END_OF_STREAM : 0;
}

static void preview_free(void *cls)
{
    preview_resp *p = cls;
    sched_preview_close(p->ps);
    free(p);
}

/* A CSV has no place for the preview's warnings: each goes in a Warning header (code 299, a
 * persistent note) instead, as printable ASCII (a key name may hold anything) with its quotes
 * escaped. */
static void add_warning_headers(struct MHD_Response *resp, const cJSON *warnings)
{
    const cJSON *w;
    int n = 0;
    cJSON_ArrayForEach(w, warnings) {
        const char *t = cJSON_GetStringValue(w);
        if (!t || n++ == 8)
            break;
        char v[640];
        size_t k = (size_t)snprintf(v, sizeof v, "299 anneald \"");
        for (; *t && k + 4 < sizeof v; t++) {
            unsigned char c = (unsigned char)*t;
            if (c == '"' || c == '\\')
                v[k++] = '\\';
            v[k++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
        }
        v[k++] = '"';
        v[k] = '\0';
        MHD_add_response_header(resp, "Warning", v);
    }
}

/* Reads the body and opens its stream on a queue thread: a job spec given in epochs is read
 * whole to count its steps, and one with megabytes of inline data took the loop over 100 ms.
 * The stream keeps nothing of the body, which is freed here too. */
static void preview_work(http_req *r, struct store_t *s)
{
    (void)s;
    preview_resp *p = r->ctx;
    an_err e;
    cJSON *body = NULL;
    if (http_body_read(r, &body, &e)) {
        http_error_err(r, 400, "invalid_argument", &e);
        return;
    }
    int rc = sched_preview_open(body, 0, p->csv, &p->ps, &e);
    cJSON_Delete(body);
    if (rc != 0) {
        http_error(r, 400, "invalid_argument", e.field, "%s", e.message);
        return;
    }
    struct MHD_Response *resp = http_stream_response(PREVIEW_BLOCK, preview_read, p,
                                                         preview_free);
    if (!resp) {
        http_error(r, 503, "unavailable", NULL, "out of memory");
        return;
    }
    r->ctx = NULL; /* the response owns it now */
    r->ctx_free = NULL;
    MHD_add_response_header(resp, "Content-Type",
                            p->csv ? "text/csv; charset=utf-8" : "application/json; charset=utf-8");
    if (p->csv)
        add_warning_headers(resp, sched_preview_warnings(p->ps));
    http_queue(r, 200, resp);
}

void api_schedules_preview(http_req *r)
{
    const char *fmt = http_query(r, "format");
    if (fmt && strcmp(fmt, "json") != 0 && strcmp(fmt, "csv") != 0) {
        http_error(r, 400, "invalid_argument", "format", "format must be json or csv, got '%.64s'",
                   fmt);
        return;
    }
    if (http_body_blank(r)) {
        http_error(r, 400, "invalid_argument", "body", "a JSON body was expected, got an empty body");
        return;
    }
    preview_resp *p = calloc(1, sizeof *p);
    if (!p) {
        http_error(r, 503, "unavailable", NULL, "out of memory");
        return;
    }
    p->csv = fmt && strcmp(fmt, "csv") == 0;
    r->ctx = p;
    r->ctx_free = preview_free;
    http_defer(r, preview_work);
}
