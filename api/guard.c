/* guard — Host, Origin and Content-Type checks, and UTF-8 validation (see guard.h). */
#include "api/guard.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/router.h"

/* Splits "name[:port]" / "[v6][:port]" into the name (no brackets, no trailing dot).
 * Returns 0, or -1 when it is malformed. */
static int host_name(const char *h, size_t n, char *name, size_t cap)
{
    const char *s = h, *e;
    if (n == 0)
        return -1;
    if (*s == '[') {
        e = memchr(s, ']', n);
        if (!e)
            return -1;
        const char *rest = e + 1;
        size_t rn = n - (size_t)(rest - h);
        if (rn > 0 && *rest != ':')
            return -1;
        s++;
    } else {
        e = memchr(s, ':', n);
        if (!e)
            e = h + n;
    }
    /* The port, if any, is digits only. */
    const char *p = (*h == '[') ? memchr(h, ']', n) + 1 : e;
    if (p < h + n) {
        if (*p != ':' || p + 1 == h + n)
            return -1;
        for (const char *q = p + 1; q < h + n; q++)
            if (*q < '0' || *q > '9')
                return -1;
    }
    size_t len = (size_t)(e - s);
    if (len > 0 && s[len - 1] == '.' && *h != '[')
        len--;
    if (len == 0 || len >= cap)
        return -1;
    memcpy(name, s, len);
    name[len] = '\0';
    return 0;
}

static int is_ip_literal(const char *name)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

static int same_address(const char *a, const char *b)
{
    unsigned char x[16], y[16];
    if (inet_pton(AF_INET, a, x) == 1 && inet_pton(AF_INET, b, y) == 1)
        return memcmp(x, y, 4) == 0;
    if (inet_pton(AF_INET6, a, x) == 1 && inet_pton(AF_INET6, b, y) == 1)
        return memcmp(x, y, 16) == 0;
    return 0;
}

static int is_wildcard(const char *listen)
{
    return strcmp(listen, "0.0.0.0") == 0 || same_address(listen, "::");
}

static int allowed_name(const guard_cfg *g, const char *name)
{
    for (int i = 0; i < g->nallow; i++)
        if (strcasecmp(g->allow[i], name) == 0)
            return 1;
    return 0;
}

int guard_host(const guard_cfg *g, const char *host)
{
    if (!host)
        return 0;
    char name[GUARD_NAME_MAX];
    if (host_name(host, strlen(host), name, sizeof name))
        return -1;
    if (strcasecmp(name, "localhost") == 0 || allowed_name(g, name))
        return 0;
    if (!is_ip_literal(name))
        return -1; /* a DNS name we were not told about: how rebinding looks */
    if (is_wildcard(g->listen) || same_address(name, g->listen))
        return 0;
    /* "localhost" listens on 127.0.0.1; a client may still write the literal. */
    if (strcmp(g->listen, "localhost") == 0 && same_address(name, "127.0.0.1"))
        return 0;
    return -1;
}

int guard_origin(const guard_cfg *g, const char *origin, const char *host)
{
    if (!origin)
        return 0;
    const char *hp;
    if (strncasecmp(origin, "http://", 7) == 0)
        hp = origin + 7;
    else if (strncasecmp(origin, "https://", 8) == 0)
        hp = origin + 8;
    else
        return -1; /* "null" (sandboxed frames, file: pages) or nonsense */
    size_t n = strlen(hp);
    if (n == 0 || strpbrk(hp, "/?#@ "))
        return -1;
    if (host && strcasecmp(hp, host) == 0)
        return 0;
    char name[GUARD_NAME_MAX];
    if (host_name(hp, n, name, sizeof name))
        return -1;
    return allowed_name(g, name) ? 0 : -1;
}

/* 1 when the media type of `ct` (before any ';' parameters) is `type`. */
static int media_is(const char *ct, const char *type)
{
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = strcspn(ct, ";");
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    return n == strlen(type) && strncasecmp(ct, type, n) == 0;
}

/* 1 unless `ct` names a charset other than UTF-8 (or its subset US-ASCII): every body is
 * read as UTF-8, and one labelled latin1 would be decoded as what it is not. */
static int charset_ok(const char *ct)
{
    for (const char *p = strchr(ct, ';'); p; p = strchr(p + 1, ';')) {
        const char *q = p + 1;
        while (*q == ' ' || *q == '\t')
            q++;
        if (strncasecmp(q, "charset", 7) != 0)
            continue;
        q += 7;
        while (*q == ' ' || *q == '\t')
            q++;
        if (*q++ != '=')
            return 0;
        while (*q == ' ' || *q == '\t')
            q++;
        int quoted = *q == '"';
        q += quoted;
        size_t n = strcspn(q, quoted ? "\"" : "; \t");
        if (!((n == 5 && strncasecmp(q, "utf-8", 5) == 0) ||
              (n == 4 && strncasecmp(q, "utf8", 4) == 0) ||
              (n == 8 && strncasecmp(q, "us-ascii", 8) == 0)))
            return 0;
    }
    return 1;
}

int guard_media(int body_kind, const char *ct, int has_body, char *want, size_t wantsz)
{
    if (body_kind == BODY_JSON) {
        snprintf(want, wantsz, "application/json");
        if (!ct || !*ct)
            return has_body ? -1 : 0;
        if (!media_is(ct, "application/json"))
            return -1;
        if (!charset_ok(ct)) {
            snprintf(want, wantsz, "in UTF-8 (charset=utf-8)");
            return -1;
        }
        return 0;
    }
    if (body_kind == BODY_CSV) {
        snprintf(want, wantsz, "text/csv or text/plain");
        if (!ct || !*ct)
            return has_body ? -1 : 0;
        if (!media_is(ct, "text/csv") && !media_is(ct, "text/plain"))
            return -1;
        if (!charset_ok(ct)) {
            snprintf(want, wantsz, "in UTF-8 (charset=utf-8)");
            return -1;
        }
        return 0;
    }
    snprintf(want, wantsz, "no body");
    return 0;
}

size_t guard_redact(const char *in, char *out, size_t cap)
{
    static const char key[] = "access_token=";
    const size_t kl = sizeof key - 1;
    size_t o = 0;
    if (cap == 0)
        return 0;
#define PUT(c)                                                                                     \
    do {                                                                                           \
        if (o + 1 < cap)                                                                           \
            out[o++] = (c);                                                                        \
    } while (0)
    for (size_t i = 0; in[i];) {
        unsigned char prev = i ? (unsigned char)in[i - 1] : ' ';
        int at_arg = !isalnum(prev) && prev != '_' && prev != '-';
        if (at_arg && strncasecmp(in + i, key, kl) == 0) {
            for (size_t k = 0; k < kl; k++)
                PUT(in[i + k]);
            for (const char *r = "[redacted]"; *r; r++)
                PUT(*r);
            i += kl;
            while (in[i] && in[i] != '&' && in[i] != ';' && in[i] != '#' && in[i] != ' ' &&
                   in[i] != '\n')
                i++;
            continue;
        }
        PUT(in[i]);
        i++;
    }
#undef PUT
    out[o] = '\0';
    return o;
}
