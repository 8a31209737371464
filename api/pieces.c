/* pieces — a streamed answer made off the loop thread, a piece at a time (pieces.h). */
#include "api/pieces.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "util/log.h"

typedef struct pieces {
    pieces_spec sp;
    api_t *api;
    struct MHD_Connection *conn;   /* suspended while it waits for a piece */
    int suspended;
    char *cur, *next;
    size_t clen, coff, nlen;
    int clast, nlast;              /* no piece comes after this one */
    int next_ready;                /* `next` holds a made piece (loop thread) */
    int busy;                      /* a piece is being made on a queue thread */
    int werr;                      /* the piece could not be made (producer) */
    int failed;                    /* cut the stream (loop thread) */
    int abandoned;                 /* MHD let go of it while busy: freed when the piece ends */
} pieces;

static void pieces_free(pieces *p)
{
    if (p->sp.free_ctx)
        p->sp.free_ctx(p->sp.ctx);
    free(p->cur);
    free(p->next);
    free(p);
}

/* Makes the next piece into p->next (a queue thread, or the opening work). */
static int produce(pieces *p, store_t *s, an_err *e)
{
    int last = 0;
    p->nlen = 0;
    int rc = p->sp.make(p->sp.ctx, s, p->next, p->sp.piece, &p->nlen, &last, e);
    p->nlast = !rc && last;
    return rc;
}

static void piece_work(void *arg)
{
    pieces *p = arg;
    an_err e;
    an_err_clear(&e);
    store_t *s = http_thread_store(p->api, &e);
    p->werr = !s || produce(p, s, &e) != 0;
    if (p->werr)
        util_log(LOG_WARN, "%s was cut: %s", p->sp.what, e.message);
}

static void piece_after(void *arg)
{
    pieces *p = arg;
    p->busy = 0;
    p->api->inflight_work--;
    if (p->abandoned) { /* MHD let go of the response: its connection may be gone too */
        pieces_free(p);
        return;
    }
    if (p->werr)
        p->failed = 1;
    else
        p->next_ready = 1;
    if (p->suspended) {
        p->suspended = 0;
        MHD_resume_connection(p->conn);
    }
    api_pump(p->api);
}

/* Starts making the next piece unless one is made or being made. */
static void prefetch(pieces *p)
{
    if (p->busy || p->next_ready || p->clast)
        return;
    /* Counted with the deferred requests, so a stop waits for the piece being made. */
    if (workq_push(&p->api->sv->slow, piece_work, piece_after, p) == 0) {
        p->busy = 1;
        p->api->inflight_work++;
    }
}

/* Waits for the piece being made: MHD (epoll, edge-triggered) does not call a reader again
 * by itself after it returned 0, so the connection sleeps until piece_after resumes it. When
 * the queue is full nothing is being made: MHD's next turn (its timeout) asks again. */
static ssize_t piece_wait(pieces *p)
{
    prefetch(p);
    if (p->busy && !p->suspended) {
        p->suspended = 1;
        MHD_suspend_connection(p->conn);
    }
    return 0;
}

static ssize_t piece_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    pieces *p = cls;
    int phase = p->api->sv->phase;
    if (p->failed || phase == PHASE_CLOSING ||
        (phase != PHASE_SERVING && !p->sp.keep_while_draining))
        return MHD_CONTENT_READER_END_WITH_ERROR;
    while (p->coff == p->clen) {
        if (p->clast)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (!p->next_ready)
            return piece_wait(p);
        char *t = p->cur;
        p->cur = p->next;
        p->next = t;
        p->clen = p->nlen;
        p->coff = 0;
        p->clast = p->nlast;
        p->next_ready = 0;
        prefetch(p); /* an empty piece that is not the last: wait for the one after it */
    }
    size_t n = p->clen - p->coff < max ? p->clen - p->coff : max;
    memcpy(buf, p->cur + p->coff, n);
    p->coff += n;
    return (ssize_t)n;
}

static void piece_release(void *cls)
{
    pieces *p = cls;
    if (p->busy)
        p->abandoned = 1;
    else
        pieces_free(p);
}

int pieces_open(http_req *r, store_t *s, const pieces_spec *spec, struct MHD_Response **out,
                an_err *e)
{
    *out = NULL;
    pieces *p = calloc(1, sizeof *p);
    if (!p) {
        if (spec->free_ctx)
            spec->free_ctx(spec->ctx);
        return an_failc(e, -ENOMEM, NULL, "out of memory for the answer");
    }
    p->sp = *spec;
    p->api = r->api;
    p->conn = r->conn;
    p->cur = malloc(spec->piece);
    p->next = malloc(spec->piece);
    int rc = p->cur && p->next ? 0 : an_failc(e, -ENOMEM, NULL, "out of memory for the answer");
    /* The first piece now: errors before the head are still a plain error answer. */
    if (!rc)
        rc = produce(p, s, e);
    if (rc) {
        pieces_free(p);
        return rc;
    }
    char *t = p->cur;
    p->cur = p->next;
    p->next = t;
    p->clen = p->nlen;
    p->clast = p->nlast;
    struct MHD_Response *resp = http_stream_response(64 * 1024, piece_read, p,
                                                     piece_release);
    if (!resp) {
        pieces_free(p);
        return an_failc(e, -ENOMEM, NULL, "out of memory for the answer");
    }
    MHD_add_response_header(resp, "Content-Type", spec->content_type);
    *out = resp;
    return 0;
}
