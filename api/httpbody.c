/* httpbody — a request's JSON body for its handler (http.h: http_body_json), parsed on a
 * request thread first when it is large. */
#include "api/http.h"

#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "core/jsontext.h"

/* Bodies up to this size are parsed on the loop thread (well under a millisecond); larger
 * ones of ROUTE_PARSED routes on a request thread first (a megabyte of JSON takes a tenth
 * of a second, which every other request and stream would wait). */
#define PARSE_ON_LOOP_MAX (16 * 1024)

static void parse_work(http_req *r, struct store_t *s)
{
    (void)s;
    an_err_clear(&r->json_err);
    if (json_parse_text(r->body, r->len, &r->json, &r->json_err) != 0)
        r->json = NULL;
}

int http_body_parse_ahead(http_req *r)
{
    if (!(r->m.route->flags & ROUTE_PARSED) || r->parsed || r->len <= PARSE_ON_LOOP_MAX)
        return 0;
    r->parsed = 1;
    if (http_defer_step_on(r, &r->api->sv->quick, parse_work) != 0)
        http_error(r, 503, "unavailable", NULL, "the daemon is busy: its request queue is "
                   "full; try again shortly");
    return 1;
}

int http_body_read(http_req *r, cJSON **out, an_err *e)
{
    an_err_clear(e);
    if (json_parse_text(r->body, r->len, out, e) == 0)
        return 0;
    if (!e->field[0]) /* malformed JSON: the body as a whole */
        snprintf(e->field, sizeof e->field, "body");
    return -1;
}

cJSON *http_body_json(http_req *r)
{
    if (!r->body || r->len == 0) {
        http_error(r, 400, "invalid_argument", NULL, "a JSON body was expected, got an empty body");
        return NULL;
    }
    cJSON *j = NULL;
    an_err e;
    an_err_clear(&e);
    if (r->parsed) { /* on a request thread already (parse_work) */
        j = r->json;
        r->json = NULL;
        e = r->json_err;
    }
    if ((!r->parsed && json_parse_text(r->body, r->len, &j, &e) != 0) || !j) {
        if (!e.field[0])
            snprintf(e.field, sizeof e.field, "body");
        http_error_err(r, 400, "invalid_argument", &e);
        return NULL;
    }
    return j;
}

