/* router — matching a method and a path against the route table.
 *
 * A pattern is a path whose segments are literals or "{name}" placeholders, each matching one
 * non-empty segment ("/v1/jobs/{id}/metrics"). Matching is pure (no I/O, no MHD), so the
 * distinction between "no such path" (404) and "path exists, other method" (405 with Allow)
 * is decided in one place and unit-tested. */
#ifndef ANNEALD_ROUTER_H
#define ANNEALD_ROUTER_H

#include <stddef.h>

#define ROUTE_MAX_PARAMS 4
#define ROUTE_PARAM_LEN 128

struct http_req;
typedef void (*route_handler)(struct http_req *r);

/* What a route's request body is, which decides its size limit and accepted media types. */
enum route_body { BODY_NONE = 0, BODY_JSON = 1, BODY_CSV = 2 };

/* Flags of a route. */
enum route_flags {
    ROUTE_OPEN = 1,       /* no token needed (GET /healthz) */
    ROUTE_QUERY_TOKEN = 2, /* ?access_token= is accepted (SSE: EventSource sets no headers; a
                             download link) */
    ROUTE_PARSED = 4,     /* the handler reads its JSON body with http_body_json on the loop
                             thread: a large body is parsed on a request thread first */
    ROUTE_SMALL = 8       /* its body is a few fields (pause, PATCH): at most ROUTE_SMALL_BODY
                             bytes, so that no megabyte of junk is parsed and freed for it */
};
#define ROUTE_SMALL_BODY (64 * 1024)

typedef struct route {
    const char *method;   /* "GET", "POST", "DELETE" */
    const char *pattern;  /* "/v1/jobs/{id}" */
    route_handler handler;
    int body;             /* enum route_body */
    int flags;            /* enum route_flags */
    const char *query;    /* the query arguments it reads, space-separated ("limit offset");
                             NULL none, "*" any. Any other is a 400 naming it; access_token
                             goes by ROUTE_QUERY_TOKEN instead. */
} route;

typedef struct route_match {
    const route *route;                            /* NULL when nothing matched */
    int nparams;
    char params[ROUTE_MAX_PARAMS][ROUTE_PARAM_LEN]; /* values of the placeholders, in order */
    int path_known;                                /* some route has this path (so 405) */
    char allow[64];                                /* "GET, DELETE": methods of this path */
} route_match;

/* Matches `path` against `n` routes. Returns 0 and fills m->route on a match; -ENOENT when
 * no pattern matches the path (404); -EPERM when the path matches but not with this method
 * (405; m->allow lists the methods). A segment longer than ROUTE_PARAM_LEN-1 does not match
 * a placeholder. HEAD matches GET routes. Trailing slashes are not ignored. */
int router_match(const route *table, size_t n, const char *method, const char *path,
                 route_match *m);

/* 1 if `pattern` matches `path` (placeholders fill `params`, at most ROUTE_MAX_PARAMS). */
int router_pattern_match(const char *pattern, const char *path,
                         char params[][ROUTE_PARAM_LEN], int *nparams);

#endif
