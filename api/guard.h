/* guard — what a web page in the user's browser must not be able to make the daemon do.
 *
 * DESIGN ("A browser is not a trusted client")
 * On loopback the API needs no token, so any page the user visits could otherwise talk to
 * it. Three checks close that, and they apply with a token as well:
 *   Host     must name the daemon: the address it listens on, "localhost", or a name given
 *            with --allow-host (any IP literal when it listens on 0.0.0.0 or ::). A DNS
 *            rebinding page reaches 127.0.0.1 under its own name, so its Host is that name:
 *            refused with 421 before anything else is looked at;
 *   Origin   when a request carries one, it must be the daemon's own (scheme http or https,
 *            host and port equal to the request's Host, or a --allow-host name): a browser
 *            sends Origin on every cross-origin request that could change state, so a
 *            foreign page's POST/DELETE is refused with 403. Requests without Origin (curl,
 *            scripts) pass;
 *   Content-Type  a JSON body must be sent as application/json, which a CORS "simple
 *            request" (the only kind a foreign page can send without a preflight) cannot
 *            set; data set uploads take text/csv or text/plain (API.md). Otherwise 415.
 * Pure functions over header values, so they are unit-tested without a server. */
#ifndef ANNEALD_GUARD_H
#define ANNEALD_GUARD_H

#include <stddef.h>

#define GUARD_MAX_ALLOW 16
#define GUARD_NAME_MAX 256

typedef struct guard_cfg {
    const char *listen;              /* bound address literal: "127.0.0.1", "::1", "0.0.0.0" */
    const char (*allow)[GUARD_NAME_MAX]; /* --allow-host names */
    int nallow;
} guard_cfg;

/* 0 when `host` (a Host header value, "name[:port]" or "[v6]:port") names the daemon;
 * -1 otherwise. A NULL host (HTTP/1.0 without Host) passes: no browser sends that. */
int guard_host(const guard_cfg *g, const char *host);

/* 0 when `origin` is absent or the daemon's own for a request sent to `host`; -1 otherwise
 * ("null" and anything that is not scheme://host[:port] are foreign). */
int guard_origin(const guard_cfg *g, const char *origin, const char *host);

/* The body kinds of router.h (BODY_JSON, BODY_CSV). 0 when a request with Content-Type `ct`
 * (NULL = none) and a body (`has_body`) may go on; -1 otherwise, with the expected type in
 * `want`. A bodiless request passes unless it names a wrong type. */
int guard_media(int body_kind, const char *ct, int has_body, char *want, size_t wantsz);

/* Copies `in` to `out` (at most cap bytes with the NUL) with the value of every
 * "access_token=" query argument replaced by "[redacted]", so a URL can be logged: the SSE
 * streams take the bearer token there. Returns the length written. */
size_t guard_redact(const char *in, char *out, size_t cap);

#endif
