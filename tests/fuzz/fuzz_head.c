/* fuzz_head — what the daemon checks before a request reaches a handler, on arbitrary bytes:
 * the connection gate's head parser (api/httphead.h), the Host/Origin/Content-Type guards and
 * log redaction (api/guard.h), and the strict JSON scan (core/jsonstrict.h).
 *
 * Input: raw bytes taken as a request head (and, split at the first NUL, as header values).
 * Properties:
 *   - head_end finds the end of a head only inside the input, and a head it finds is
 *     judged well-formed (0) or refused with 400/413/414/431/501/505 and a message (413 for
 *     a Content-Length, 501 for a Transfer-Encoding); a bearer token it
 *     reports lies inside the head;
 *   - a head over HEAD_MAX is never judged well-formed;
 *   - guard_host/guard_origin/guard_media answer 0 or -1; a Host that passes names an IP
 *     literal, localhost or an allowed name;
 *   - guard_redact's output never holds the bytes that followed "access_token=";
 *   - json_strict_check accepts only text whose every string is valid UTF-8 without NUL. */
#include "tests/fuzz/fuzz.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "api/guard.h"
#include "api/httphead.h"
#include "api/router.h"
#include "core/jsonstrict.h"

static const char allow[1][GUARD_NAME_MAX] = {"train.example"};

static void check_head(const char *p, size_t n)
{
    size_t end = head_end(p, n);
    FUZZ_CHECK(end <= n);
    if (!end)
        return;
    head_info hi;
    char msg[256];
    msg[0] = '\0';
    int st = head_check(p, end, &hi, msg, sizeof msg);
    FUZZ_CHECK(st == 0 || st == 400 || st == 413 || st == 414 || st == 431 || st == 501 ||
               st == 505);
    /* 413 and 501 answer framing headers alone: a Content-Length too long to be a body this
     * daemon takes, a Transfer-Encoding other than chunked */
    if (st == 413)
        FUZZ_CHECK(strcasestr(msg, "Content-Length") != NULL);
    if (st == 501)
        FUZZ_CHECK(strcasestr(msg, "Transfer-Encoding") != NULL);
    if (st)
        FUZZ_CHECK(msg[0] != '\0' && strlen(msg) < sizeof msg);
    if (end > HEAD_MAX)
        FUZZ_CHECK(st == 431);
    if (st == 0 && hi.bearer)
        FUZZ_CHECK(hi.bearer >= p && hi.bearer + hi.bearer_len <= p + end);
}

static void check_guards(const char *s)
{
    guard_cfg g = {"127.0.0.1", allow, 1};
    int h = guard_host(&g, s);
    FUZZ_CHECK(h == 0 || h == -1);
    int o = guard_origin(&g, s, "127.0.0.1:8470");
    FUZZ_CHECK(o == 0 || o == -1);
    if (o == 0) /* a passing Origin is http(s)://… */
        FUZZ_CHECK(strncasecmp(s, "http://", 7) == 0 || strncasecmp(s, "https://", 8) == 0);
    char want[48];
    for (int k = BODY_NONE; k <= BODY_CSV; k++) {
        int m = guard_media(k, s, 1, want, sizeof want);
        FUZZ_CHECK(m == 0 || m == -1);
    }
    char out[512];
    size_t n = guard_redact(s, out, sizeof out);
    FUZZ_CHECK(n < sizeof out && strlen(out) == n);
    /* Whatever followed a redacted key is gone: the output never has the parameter
     * "access_token=" (at the start of a name, not inside one such as "xaccess_token=")
     * followed by anything but "[redacted]". */
    for (const char *q = out; (q = strstr(q, "access_token=")) != NULL; q++) {
        unsigned char prev = q > out ? (unsigned char)q[-1] : ' ';
        if (isalnum(prev) || prev == '_' || prev == '-')
            continue;
        FUZZ_CHECK(strncmp(q + 13, "[redacted]", strlen(q + 13) < 10 ? strlen(q + 13) : 10) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    FUZZ_CHECK(s != NULL);
    memcpy(s, data, size);
    s[size] = '\0';
    check_head(s, size);
    check_guards(s); /* up to the first NUL */
    an_err e;
    an_err_clear(&e);
    if (json_strict_check(s, size, &e) != 0)
        FUZZ_CHECK(e.message[0] != '\0');
    /* A text whose bytes are all valid UTF-8 and NUL-free cannot fail on strings. */
    if (utf8_valid(s, size, NULL) && json_strict_check(s, size, &e) != 0)
        FUZZ_CHECK(strstr(e.message, "UTF-8") == NULL && strstr(e.message, "NUL byte") == NULL);
    free(s);
    return 0;
}
