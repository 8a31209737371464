/* reqguard — the checks of api/guard.h applied to one MHD request, plus the header and
 * argument hygiene every request gets before its route runs:
 *   - a framing or credential header given twice (Host, Content-Length, Transfer-Encoding,
 *     Authorization, Content-Type, Origin) is refused: two parsers in a chain (a proxy and
 *     us) could each take a different one;
 *   - query arguments must be valid UTF-8 without NUL (a %00 would cut a stored name), given
 *     once each, and among those the route reads;
 * and the handlers' readers of query arguments (http_query, http_query_int). */
#include "api/reqguard.h"

#include "core/cfgval.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/guard.h"
#include "core/jsonstrict.h"
#include "api/api.h"
#include "util/log.h"

static const char *const single[] = {"Host", "Content-Length", "Transfer-Encoding",
                                     "Authorization", "Content-Type", "Origin"};
#define NSINGLE (sizeof single / sizeof single[0])

typedef struct hdr_count {
    int n[NSINGLE];
} hdr_count;

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    (void)kind;
    (void)value;
    hdr_count *c = cls;
    for (size_t i = 0; i < NSINGLE; i++)
        if (key && strcasecmp(key, single[i]) == 0)
            c->n[i]++;
    return MHD_YES;
}

typedef struct arg_check {
    char bad[64];
} arg_check;

static enum MHD_Result check_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                 size_t key_size, const char *value, size_t value_size)
{
    (void)kind;
    arg_check *a = cls;
    if (!utf8_valid(key, key_size, NULL) || (value && !utf8_valid(value, value_size, NULL))) {
        snprintf(a->bad, sizeof a->bad, "%.*s", (int)(key_size > 40 ? 40 : key_size), key);
        /* The name itself may be the bad part: keep only printable ASCII of it. */
        for (char *p = a->bad; *p; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7F)
                *p = '?';
        return MHD_NO;
    }
    return MHD_YES;
}

int reqguard_has_body(struct MHD_Connection *c)
{
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Transfer-Encoding"))
        return 1;
    return cl && strspn(cl, " 0") != strlen(cl);
}

static guard_cfg cfg_of(const api_t *api)
{
    guard_cfg g = {api->sv->opts->host, (const char (*)[GUARD_NAME_MAX])api->sv->opts->allow_hosts,
                   api->sv->opts->nallow_hosts};
    return g;
}

const char *reqguard_origin_form(const char *url, char *authority, size_t size)
{
    authority[0] = '\0';
    const char *p = strncasecmp(url, "http://", 7) == 0    ? url + 7
                    : strncasecmp(url, "https://", 8) == 0 ? url + 8
                                                           : NULL;
    if (!p)
        return url;
    size_t n = strcspn(p, "/");
    snprintf(authority, size, "%.*s", (int)n, p);
    return p[n] ? p + n : "/";
}

int reqguard_head(http_req *r)
{
    struct MHD_Connection *c = r->conn;
    hdr_count hc;
    memset(&hc, 0, sizeof hc);
    MHD_get_connection_values(c, MHD_HEADER_KIND, count_header, &hc);
    for (size_t i = 0; i < NSINGLE; i++) {
        if (hc.n[i] > 1) {
            r->api->refused_headers++;
            http_error(r, 400, "invalid_argument", single[i],
                       "the %s header was sent %d times; it may be sent once", single[i],
                       hc.n[i]);
            return 1;
        }
    }
    guard_cfg g = cfg_of(r->api);
    /* An absolute-form target names the host the request is for, whatever Host says. */
    if (r->authority[0] && guard_host(&g, r->authority)) {
        r->api->refused_host++;
        http_error(r, 421, "misdirected", "Host",
                   "this daemon does not answer to the host '%.128s' that the request target "
                   "names (it answers to its listening address and localhost; add names with "
                   "--allow-host)", r->authority);
        return 1;
    }
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
    if (guard_host(&g, host)) {
        r->api->refused_host++;
        http_error(r, 421, "misdirected", "Host",
                   "this daemon does not answer to the host '%.128s' (it answers to its "
                   "listening address and localhost; add names with --allow-host)", host);
        return 1;
    }
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    if (guard_origin(&g, origin, host)) {
        r->api->refused_origin++;
        http_error(r, 403, "forbidden", "Origin",
                   "requests from the web origin '%.128s' are refused: only the daemon's own "
                   "pages may call the API from a browser", origin);
        return 1;
    }
    arg_check ac;
    ac.bad[0] = '\0';
    MHD_get_connection_values_n(c, MHD_GET_ARGUMENT_KIND, check_arg, &ac);
    if (ac.bad[0]) {
        http_error(r, 400, "invalid_argument", ac.bad,
                   "the query argument '%s' is not valid UTF-8 or holds a NUL byte", ac.bad);
        return 1;
    }
    return 0;
}

typedef struct arg_names {
    const char *allowed;       /* the route's list (route.query) */
    char bad[64];              /* the first argument not in it */
    const char *near;          /* the allowed name nearest to it, or NULL */
    size_t near_len;
} arg_names;

static enum MHD_Result name_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value)
{
    (void)kind;
    (void)value;
    arg_names *a = cls;
    if (strcasecmp(key, "access_token") == 0) /* the token's own rules (http.c) */
        return MHD_YES;
    size_t kl = strlen(key);
    int best = 3; /* suggest within two edits */
    for (const char *p = a->allowed; p && *p;) {
        size_t n = strcspn(p, " ");
        char name[32];
        snprintf(name, sizeof name, "%.*s", (int)n, p);
        if (n == kl && strncmp(p, key, n) == 0)
            return MHD_YES;
        int d = cfg_edit_distance(name, key);
        if (d < best && (size_t)d < n) {
            best = d;
            a->near = p;
            a->near_len = n;
        }
        p += n;
        p += strspn(p, " ");
    }
    snprintf(a->bad, sizeof a->bad, "%.40s", key);
    return MHD_NO;
}

typedef struct arg_seen {
    const char *keys[64];
    int n;
    int too_many;              /* more distinct arguments than keys holds */
    char twice[64];            /* the first argument given more than once */
} arg_seen;

static enum MHD_Result seen_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value)
{
    (void)kind;
    (void)value;
    arg_seen *a = cls;
    for (int i = 0; i < a->n; i++)
        if (strcasecmp(a->keys[i], key) == 0) { /* as the library looks them up */
            snprintf(a->twice, sizeof a->twice, "%.40s", key);
            return MHD_NO;
        }
    if (a->n == (int)(sizeof a->keys / sizeof a->keys[0])) {
        a->too_many = 1;
        return MHD_NO;
    }
    a->keys[a->n++] = key;
    return MHD_YES;
}

int reqguard_args(http_req *r)
{
    const route *rt = r->m.route;
    /* An argument given twice (?limit=1&limit=2) would be read as its first value without a
     * word, as a JSON key given twice would: refused alike. */
    arg_seen seen = {.n = 0};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, seen_arg, &seen);
    if (seen.twice[0]) {
        http_error(r, 400, "invalid_argument", seen.twice,
                   "the query argument '%s' was given more than once; give it once",
                   seen.twice);
        return 1;
    }
    if (seen.too_many) {
        http_error(r, 400, "invalid_argument", NULL, "more than %d query arguments",
                   (int)(sizeof seen.keys / sizeof seen.keys[0]));
        return 1;
    }
    if (!rt || (rt->query && strcmp(rt->query, "*") == 0))
        return 0;
    arg_names a = {.allowed = rt->query};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, name_arg, &a);
    if (!a.bad[0])
        return 0;
    if (a.near)
        http_error(r, 400, "invalid_argument", a.bad, "unknown query argument '%s' (did you "
                   "mean '%.*s'?); %s %s takes %s", a.bad, (int)a.near_len, a.near, rt->method,
                   rt->pattern, rt->query);
    else
        http_error(r, 400, "invalid_argument", a.bad, "unknown query argument '%s': %s %s "
                   "takes %s", a.bad, rt->method, rt->pattern,
                   rt->query ? rt->query : "none");
    return 1;
}

int reqguard_media(http_req *r)
{
    char want[48];
    const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
    if (guard_media(r->m.route->body, ct, reqguard_has_body(r->conn), want, sizeof want)) {
        r->api->refused_media++;
        http_error(r, 415, "unsupported_media_type", "Content-Type",
                   "Content-Type %s was expected, got '%.64s'", want, ct ? ct : "(none)");
        return 1;
    }
    return 0;
}

void reqguard_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[1024], clean[1100];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    guard_redact(msg, clean, sizeof clean);
    /* A client that went away mid-answer (an SSE reader closing its tab), and a stream the
     * daemon ended itself (its reader hung up, or a stop cut it on purpose), are routine:
     * debug. */
    int gone = strncmp(msg, "Failed to send", 14) == 0 || strstr(msg, "no longer available") ||
               strstr(msg, "application error generating response") ||
               strstr(msg, "reset by peer") || strstr(msg, "closed by remote peer") ||
               strstr(msg, "Broken pipe") || strstr(msg, "closed by the client");
    util_log(gone ? LOG_DEBUG : LOG_WARN, "http: %s", clean);
}

typedef struct query_text {
    char buf[1024];
    size_t len;
} query_text;

static enum MHD_Result add_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *value)
{
    (void)kind;
    query_text *q = cls;
    /* The value is decoded here: a token holding '&' or '#' would end guard_redact's
     * redaction early, so the token's value is never printed at all. */
    if (key && value && strcasecmp(key, "access_token") == 0)
        value = "[redacted]";
    int n = snprintf(q->buf + q->len, sizeof q->buf - q->len, "%c%s%s%s", q->len ? '&' : '?',
                     key ? key : "", value ? "=" : "", value ? value : "");
    if (n < 0 || (size_t)n >= sizeof q->buf - q->len)
        return MHD_NO;
    q->len += (size_t)n;
    return MHD_YES;
}

void reqguard_access_log(http_req *r)
{
    if (!r->api->sv->opts || r->api->sv->opts->log_level < LOG_DEBUG || !r->conn)
        return;
    query_text q;
    q.len = 0;
    q.buf[0] = '\0';
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, add_arg, &q);
    char line[1600], clean[1700];
    snprintf(line, sizeof line, "%s %s%s", r->method ? r->method : "?", r->path, q.buf);
    guard_redact(line, clean, sizeof clean);
    for (char *p = clean; *p; p++) /* one line per request, whatever the path held */
        if ((unsigned char)*p < 0x20)
            *p = '?';
    util_log(LOG_DEBUG, "%s -> %u", clean, r->status);
}

/* ---- query arguments for the handlers (http.h) ---- */

const char *http_query(http_req *r, const char *key)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

int http_query_int(http_req *r, const char *key, int64_t lo, int64_t hi, int64_t def,
                   int64_t *out)
{
    const char *v = http_query(r, key);
    if (!v) {
        *out = def;
        return 0;
    }
    char *end = NULL;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!*v || errno || *end || x < lo || x > hi) {
        http_error(r, 400, "invalid_argument", key,
                   "%s must be a whole number in %lld..%lld, got '%.64s'", key, (long long)lo,
                   (long long)hi, v);
        return -EINVAL;
    }
    *out = x;
    return 0;
}
