/* pieces — a streamed answer made off the loop thread, a piece at a time.
 *
 * Some answers are long or slow to make: a job's metrics (hundreds of millions of rows),
 * generated text (a forward pass of the model per token). Neither may be made on the loop
 * thread, which every other request and stream shares. The body is made in pieces by a
 * producer on the slow request queue's threads (each with its store connection), two pieces
 * at a time: while MHD sends one from the loop thread, the next is being made. The loop
 * thread only copies bytes, and a stream holds two pieces whatever its length.
 *
 * A stop (see pieces_spec.keep_while_draining) or a producer's error after the head was sent
 * cuts the stream: chunked encoding without its terminating chunk, so a client sees a
 * truncated body, never a short one that looks whole. */
#ifndef ANNEALD_API_PIECES_H
#define ANNEALD_API_PIECES_H

#include <stddef.h>

#include "api/http.h"
#include "store/store.h"

/* Makes the next piece into buf (at most cap bytes; 0 bytes is allowed and asks to be called
 * again) on a queue thread with store s; *last = 1 when nothing comes after it. 0, or an
 * error (the stream is cut; its message is logged). */
typedef int (*pieces_make_fn)(void *ctx, store_t *s, char *buf, size_t cap, size_t *len,
                              int *last, an_err *e);

typedef struct pieces_spec {
    size_t piece;                  /* bytes of a piece */
    pieces_make_fn make;
    void (*free_ctx)(void *ctx);   /* frees ctx when the stream ends (or fails to open) */
    void *ctx;
    const char *what;              /* names the stream in the log: "a metrics stream" */
    const char *content_type;
    int keep_while_draining;       /* 0: cut once the daemon drains (SIGTERM); 1: at close */
} pieces_spec;

/* On a queue thread with store s: makes the first piece, then the response that streams the
 * rest (*out, to queue with status 200). Owns ctx from the call on, whatever it returns; an
 * error (the first piece's, or -ENOMEM) comes back before anything is sent. */
int pieces_open(http_req *r, store_t *s, const pieces_spec *spec, struct MHD_Response **out,
                an_err *e);

#endif
