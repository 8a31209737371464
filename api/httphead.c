/* httphead — request heads checked before MHD (see httphead.h). */
#include "api/httphead.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

size_t head_end(const char *buf, size_t n)
{
    size_t i = 0;
    while (i < n && (buf[i] == '\r' || buf[i] == '\n')) /* blank lines before a request */
        i++;
    for (; i < n; i++) {
        if (buf[i] != '\n')
            continue;
        if (i + 1 < n && buf[i + 1] == '\n')
            return i + 2;
        if (i + 2 < n && buf[i + 1] == '\r' && buf[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

static int tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* One line of buf starting at *pos, without its CRLF/LF; *pos moves past it. */
static const char *line_at(const char *buf, size_t len, size_t *pos, size_t *n)
{
    const char *s = buf + *pos;
    const char *nl = memchr(s, '\n', len - *pos);
    size_t l = nl ? (size_t)(nl - s) : len - *pos;
    *pos += l + (nl ? 1 : 0);
    if (l > 0 && s[l - 1] == '\r')
        l--;
    *n = l;
    return s;
}

int head_check(const char *buf, size_t len, head_info *hi, char *msg, size_t msgsz)
{
    memset(hi, 0, sizeof *hi);
    if (len > HEAD_MAX) {
        snprintf(msg, msgsz, "the request head is over %d bytes", HEAD_MAX);
        return 431;
    }
    size_t pos = 0;
    while (pos < len && (buf[pos] == '\r' || buf[pos] == '\n'))
        pos++;
    size_t n;
    const char *l = line_at(buf, len, &pos, &n);
    /* METHOD SP target SP HTTP/x.y */
    size_t m = 0;
    while (m < n && tchar((unsigned char)l[m]))
        m++;
    if (m == 0 || m > 16 || m >= n || l[m] != ' ') {
        snprintf(msg, msgsz, "malformed request line (expected METHOD SP target SP HTTP/1.1)");
        return 400;
    }
    const char *target = l + m + 1;
    const char *sp = memchr(target, ' ', n - m - 1);
    if (!sp) {
        snprintf(msg, msgsz, "malformed request line (expected METHOD SP target SP HTTP/1.1)");
        return 400;
    }
    size_t tlen = (size_t)(sp - target);
    if (tlen > HEAD_URI_MAX) {
        snprintf(msg, msgsz, "the request target is %zu bytes; at most %d are accepted", tlen,
                 HEAD_URI_MAX);
        return 414;
    }
    if (tlen == 0) {
        snprintf(msg, msgsz, "malformed request line: empty target");
        return 400;
    }
    for (size_t i = 0; i < tlen; i++) {
        unsigned char c = (unsigned char)target[i];
        if (c <= 0x20 || c == 0x7F) {
            snprintf(msg, msgsz, "the request target holds a control character or space");
            return 400;
        }
    }
    const char *ver = sp + 1;
    size_t vlen = n - (size_t)(ver - l);
    if (vlen == 8 && (memcmp(ver, "HTTP/1.1", 8) == 0 || memcmp(ver, "HTTP/1.0", 8) == 0)) {
        /* fine */
    } else if (vlen >= 6 && memcmp(ver, "HTTP/", 5) == 0) {
        snprintf(msg, msgsz, "HTTP version '%.*s' is not supported (HTTP/1.1 and 1.0 are)",
                 (int)(vlen > 16 ? 16 : vlen), ver);
        return 505;
    } else {
        snprintf(msg, msgsz, "malformed request line (expected METHOD SP target SP HTTP/1.1)");
        return 400;
    }
    int v11 = ver[7] == '1';
    if ((m == 3 && memcmp(l, "GET", 3) == 0) || (m == 4 && memcmp(l, "HEAD", 4) == 0))
        hi->healthz = (tlen == 8 && memcmp(target, "/healthz", 8) == 0) ||
                      (tlen > 8 && memcmp(target, "/healthz?", 9) == 0);
    /* Headers: "Name: value"; no obsolete line folding, no control characters. The framing
     * ones are checked here too, as the library would answer a malformed one with its own
     * HTML page: Content-Length digits only, Transfer-Encoding chunked only, not both. */
    int has_host = 0, has_length = 0, has_te = 0;
    while (pos < len) {
        const char *h = line_at(buf, len, &pos, &n);
        if (n == 0)
            break;
        size_t k = 0;
        while (k < n && tchar((unsigned char)h[k]))
            k++;
        if (k == 0 || k >= n || h[k] != ':') {
            snprintf(msg, msgsz, "malformed header line '%.*s'", (int)(n > 40 ? 40 : n), h);
            for (char *p = msg; *p; p++)
                if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7F)
                    *p = '?';
            return 400;
        }
        for (size_t i = k + 1; i < n; i++) {
            unsigned char c = (unsigned char)h[i];
            if ((c < 0x20 && c != '\t') || c == 0x7F) {
                snprintf(msg, msgsz, "the header %.*s holds a control character", (int)(k > 40 ? 40 : k), h);
                return 400;
            }
        }
        const char *v = h + k + 1;
        size_t vn = n - k - 1;
        while (vn > 0 && (*v == ' ' || *v == '\t'))
            v++, vn--;
        while (vn > 0 && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
            vn--;
        if (k == 4 && strncasecmp(h, "Host", 4) == 0)
            has_host = 1;
        if (k == 14 && strncasecmp(h, "Content-Length", 14) == 0) {
            has_length = 1;
            size_t d = 0;
            while (d < vn && v[d] >= '0' && v[d] <= '9')
                d++;
            if (d == 0 || d < vn) {
                snprintf(msg, msgsz, "the Content-Length header must be the body's length in "
                         "bytes (digits only), got '%.*s'", (int)(vn > 32 ? 32 : vn), v);
                for (char *p = msg; *p; p++)
                    if ((unsigned char)*p >= 0x7F)
                        *p = '?';
                return 400;
            }
            if (d > 18) {
                snprintf(msg, msgsz, "a Content-Length of %zu digits is larger than any body "
                         "this daemon takes", d);
                return 413;
            }
        }
        if (k == 17 && strncasecmp(h, "Transfer-Encoding", 17) == 0) {
            has_te = 1;
            if (vn != 7 || strncasecmp(v, "chunked", 7) != 0) {
                snprintf(msg, msgsz, "the Transfer-Encoding '%.*s' is not supported: send the "
                         "body as it is (Content-Length) or chunked",
                         (int)(vn > 32 ? 32 : vn), v);
                for (char *p = msg; *p; p++)
                    if ((unsigned char)*p >= 0x7F)
                        *p = '?';
                return 501;
            }
        }
        if (k == 13 && strncasecmp(h, "Authorization", 13) == 0 && vn > 7 &&
            strncasecmp(v, "Bearer ", 7) == 0) {
            const char *b = v + 7;
            size_t bn = vn - 7;
            while (bn > 0 && *b == ' ')
                b++, bn--;
            hi->bearer = b;
            hi->bearer_len = bn;
        }
    }
    if (has_length && has_te) {
        snprintf(msg, msgsz, "a request may carry Content-Length or Transfer-Encoding, not both");
        return 400;
    }
    if (v11 && !has_host) {
        snprintf(msg, msgsz, "an HTTP/1.1 request needs a Host header");
        return 400;
    }
    return 0;
}
