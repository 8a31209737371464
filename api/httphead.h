/* httphead — checking a raw HTTP/1.x request head before libmicrohttpd sees it.
 *
 * The connection gate (api/conns.c) peeks at the bytes of a new connection until its head is
 * complete, then checks it here. A head that MHD would answer with one of its own HTML pages
 * (400, 413, 414, 431, 501, 505) is answered by the gate instead, with the API's JSON error, and never
 * reaches MHD. The check also says whether the request is GET /healthz and which bearer
 * token it carries, which the gate's reserve needs. Pure: bytes in, verdict out. */
#ifndef ANNEALD_HTTPHEAD_H
#define ANNEALD_HTTPHEAD_H

#include <stddef.h>

#define HEAD_MAX 16384   /* request line and headers, bytes (431 beyond) */
#define HEAD_URI_MAX 8192 /* request target, bytes (414 beyond) */

typedef struct head_info {
    int healthz;          /* GET or HEAD of /healthz */
    const char *bearer;   /* the token of "Authorization: Bearer …" (in the buffer), or NULL */
    size_t bearer_len;
} head_info;

/* The length of the head in buf[0..n) including its blank line, or 0 when it is not complete
 * yet. */
size_t head_end(const char *buf, size_t n);

/* Checks a complete head (buf[0..len), as head_end measured it). Returns 0 when it is
 * well-formed, else the status to answer (400, 413, 414, 431, 501, 505) with a message in
 * `msg`: a malformed request line or header, a Content-Length that is not digits (or has
 * more than 18), a Transfer-Encoding other than chunked, both framing headers, an HTTP/1.1
 * request without Host. */
int head_check(const char *buf, size_t len, head_info *hi, char *msg, size_t msgsz);

#endif
