/* reqguard — Host/Origin/Content-Type checks (api/guard.h) and header/argument hygiene,
 * applied to one request on its first call (api/http.c). Each function answers the request
 * itself and returns 1 when it refused it, 0 when the request may go on. */
#ifndef ANNEALD_REQGUARD_H
#define ANNEALD_REQGUARD_H

#include <stdarg.h>

#include "api/http.h"

/* The path of a request target in absolute form ("http://host:port/path", which HTTP/1.1
 * servers must accept, RFC 9112 3.2.2): what follows the authority, or "/" when nothing does;
 * the authority is copied to `authority` (cut to `size`). Any other target is returned as it
 * is, with `authority` "". */
const char *reqguard_origin_form(const char *url, char *authority, size_t size);

/* Before routing: a duplicated framing/auth header (400), a foreign Host (421), a foreign
 * Origin (403), a query argument that is not UTF-8 or holds a NUL (400). */
int reqguard_head(http_req *r);

/* Query arguments the route does not read (route.query): 400 naming the first, with the
 * nearest name it takes and the list. Returns 1 when it answered. */
int reqguard_args(http_req *r);

/* After routing: the body's media type against the route's (415). */
int reqguard_media(http_req *r);

/* 1 when the request announces a body (Content-Length > 0 or Transfer-Encoding). */
int reqguard_has_body(struct MHD_Connection *c);

/* MHD_OPTION_EXTERNAL_LOGGER: MHD's own messages go to the daemon's log as warnings, with
 * any access_token value redacted. */
void reqguard_mhd_log(void *cls, const char *fmt, va_list ap);

/* At --log-level debug, one line per answered request: method, path and query (access_token
 * redacted), status. */
void reqguard_access_log(http_req *r);

#endif
