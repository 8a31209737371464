/* httpbody — a request's JSON body for its handler (http.h: http_body_json), parsed on a
 * request thread first when it is large. */
#include "api/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/jsontext.h"
#include "core/memest.h"

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

int http_body_blank(const http_req *r)
{
    for (size_t i = 0; r->body && i < r->len; i++) {
        char c = r->body[i]; /* (strchr would find a NUL byte in the set's own end) */
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
            return 0;
    }
    return 1;
}

cJSON *http_body_json(http_req *r)
{
    if (http_body_blank(r)) {
        http_error(r, 400, "invalid_argument", "body", "a JSON body was expected, got an empty body");
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

int http_body_none(http_req *r, const char *what)
{
    if (http_body_blank(r)) /* whitespace: as empty */
        return 0;
    cJSON *b = http_body_json(r); /* malformed JSON: its 400, naming line and column */
    if (!b)
        return -1;
    int empty = cJSON_IsObject(b) && !b->child;
    cJSON_Delete(b);
    if (!empty) {
        http_error(r, 400, "invalid_argument", "body",
                   "%s takes no parameters: send no body or {}", what);
        return -1;
    }
    return 0;
}

/* Control requests (ROUTE_SMALL: pause, resume, cancel, PATCH, pins) draw on a reserve of
 * their own, so that a budget filled by jobs or by other requests' bodies never keeps an
 * operator from cancelling the job that fills it. A small body (64 KiB at most) and its parse
 * always fit an empty reserve. Loop thread only, like every body charge. */
#define CONTROL_RESERVE ((uint64_t)8 << 20)

static int is_control(const http_req *r)
{
    return r->m.route && (r->m.route->flags & ROUTE_SMALL);
}

static int take(http_req *r, uint64_t bytes)
{
    if (!is_control(r)) {
        if (budget_try(&r->api->sv->mem, bytes) != 0)
            return -1;
    } else if (bytes > CONTROL_RESERVE - r->api->control_reserved) {
        return -1;
    } else {
        r->api->control_reserved += bytes;
    }
    r->mem_charge += bytes;
    return 0;
}

void http_charge_release(http_req *r)
{
    if (!r->mem_charge)
        return;
    if (is_control(r))
        r->api->control_reserved -= r->mem_charge;
    else
        budget_release(&r->api->sv->mem, r->mem_charge);
    r->mem_charge = 0;
}

void http_body_drop(http_req *r)
{
    http_charge_release(r);
    free(r->body);
    r->body = NULL;
    r->len = r->cap = 0;
}

int http_body_charge(http_req *r, size_t cap)
{
    uint64_t more = cap > r->cap ? (uint64_t)(cap - r->cap) : 0;
    if (take(r, more) != 0) {
        r->no_memory = cap;
        return -1;
    }
    return 0;
}

/* 503 with what the budget could not take, and how much of it is in use; 413 when it is
 * more than the whole budget (or the control requests' reserve) could ever take. */
static void refuse(http_req *r, const char *what, uint64_t bytes)
{
    char t_bytes[32], t_used[32], t_cap[32];
    mem_bytes_text(bytes, t_bytes, sizeof t_bytes);
    uint64_t used, cap;
    const char *budget = "the daemon's memory budget (--max-memory)";
    if (is_control(r)) {
        used = r->api->control_reserved;
        cap = CONTROL_RESERVE;
        budget = "the memory reserved for control requests";
    } else {
        membudget *b = &r->api->sv->mem;
        uv_mutex_lock(&b->mu);
        used = b->used;
        cap = b->cap;
        uv_mutex_unlock(&b->mu);
    }
    mem_bytes_text(cap, t_cap, sizeof t_cap);
    if (bytes > cap) {
        http_error(r, 413, "too_large", NULL, "%s (%s) is more than all of %s (%s) could "
                   "hold; send a smaller body", what, t_bytes, budget, t_cap);
        return;
    }
    http_error(r, 503, "unavailable", NULL, "%s cannot take %s (%s) now: %s of %s in use; try "
               "again shortly", budget, what, t_bytes,
               mem_bytes_text(used, t_used, sizeof t_used), t_cap);
}

int http_body_charge_tree(http_req *r)
{
    if (r->no_memory) {
        refuse(r, "this request's body", r->no_memory);
        return 1;
    }
    if (r->tree_charged || !r->body || !r->len || r->m.route->body != BODY_JSON)
        return 0;
    uint64_t cost = json_parse_cost(r->body, r->len);
    if (take(r, cost) != 0) {
        refuse(r, "what this request's JSON body parses into", cost);
        return 1;
    }
    r->tree_charged = 1;
    return 0;
}
