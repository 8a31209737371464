/* Tests for api/httphead: request heads the connection gate lets through to MHD, and the
 * JSON-answered statuses of those it does not (framing headers included). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "api/httphead.h"

static int check(const char *head, head_info *hi, char *msg)
{
    size_t n = strlen(head);
    size_t end = head_end(head, n);
    assert_int_equal(end, n); /* every case here is one complete head */
    return head_check(head, end, hi, msg, 256);
}

static void test_end(void **state)
{
    (void)state;
    assert_int_equal(head_end("GET / HTTP/1.1\r\nHost: x\r\n", 25), 0);
    assert_int_equal(head_end("GET / HTTP/1.1\r\nHost: x\r\n\r\nbody", 31), 27);
    assert_int_equal(head_end("GET / HTTP/1.1\nHost: x\n\nbody", 28), 24);
    assert_int_equal(head_end("\r\n\r\nGET / HTTP/1.1\r\n\r\n", 22), 22); /* leading blank lines */
    assert_int_equal(head_end("", 0), 0);
}

static void test_good(void **state)
{
    (void)state;
    head_info hi;
    char msg[256];
    assert_int_equal(check("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", &hi, msg), 0);
    assert_true(hi.healthz);
    assert_null(hi.bearer);
    assert_int_equal(check("HEAD /healthz?x=1 HTTP/1.0\r\n\r\n", &hi, msg), 0);
    assert_true(hi.healthz);
    assert_int_equal(check("POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length:  12 \r\n\r\n",
                           &hi, msg), 0);
    assert_false(hi.healthz);
    assert_int_equal(check("GET /healthzz HTTP/1.1\r\nhost: x\r\nTransfer-Encoding: Chunked\r\n\r\n",
                           &hi, msg), 0);
    assert_false(hi.healthz);
    assert_int_equal(check("GET /v1/jobs HTTP/1.1\r\nHost: x\r\nauthorization:  Bearer  tok-1 \r\nX: \t y\r\n\r\n",
                           &hi, msg), 0);
    assert_non_null(hi.bearer);
    assert_int_equal(hi.bearer_len, 5);
    assert_memory_equal(hi.bearer, "tok-1", 5);
}

static void test_bad(void **state)
{
    (void)state;
    head_info hi;
    char msg[256];
    struct { const char *head; int status; const char *says; } bad[] = {
        {"GARBAGE\r\n\r\n", 400, "request line"},
        {"GET /\r\n\r\n", 400, "request line"},
        {"GET  / HTTP/1.1\r\n\r\n", 400, "empty target"},
        {"GET / HTTP/2.0\r\n\r\n", 505, "HTTP/2.0"},
        {"GET / HTTP/1.1x\r\n\r\n", 505, "not supported"},
        {"GET / FTP/1.1\r\n\r\n", 400, "request line"},
        {"GET /a\x01 HTTP/1.1\r\n\r\n", 400, "control character"},
        {"GET / HTTP/1.1\r\nNo colon here\r\n\r\n", 400, "malformed header"},
        {"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400, "malformed header"},
        {"GET / HTTP/1.1\r\nName : v\r\n\r\n", 400, "malformed header"},
        {"GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n", 400, "control character"},
        {"G\xc3\xa9T / HTTP/1.1\r\n\r\n", 400, "request line"},
        /* framing the library would answer with its own page */
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400, "(digits only), got 'abc'"},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, "Content-Length"},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1 2\r\n\r\n", 400, "Content-Length"},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", 400, "Content-Length"},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551616\r\n\r\n", 413,
         "20 digits"},
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "'gzip'"},
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501,
         "not supported"},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
         400, "not both"},
        {"GET / HTTP/1.1\r\nX: y\r\n\r\n", 400, "needs a Host"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        msg[0] = '\0';
        assert_int_equal(check(bad[i].head, &hi, msg), bad[i].status);
        if (!strstr(msg, bad[i].says))
            fail_msg("case %zu: '%s' does not say '%s'", i, msg, bad[i].says);
    }
}

static void test_sizes(void **state)
{
    (void)state;
    head_info hi;
    char msg[256];
    size_t n = HEAD_URI_MAX + 64;
    char *h = malloc(n + 64);
    assert_non_null(h);
    /* A target of exactly HEAD_URI_MAX bytes passes; one more is 414. */
    for (int extra = 0; extra <= 1; extra++) {
        size_t t = HEAD_URI_MAX + (size_t)extra;
        memcpy(h, "GET /", 5);
        memset(h + 5, 'a', t - 1);
        strcpy(h + 4 + t, " HTTP/1.0\r\n\r\n");
        assert_int_equal(check(h, &hi, msg), extra ? 414 : 0);
    }
    free(h);
    /* A head over HEAD_MAX is 431, whatever it holds. */
    h = malloc(HEAD_MAX + 64);
    assert_non_null(h);
    strcpy(h, "GET / HTTP/1.1\r\nX: ");
    size_t l = strlen(h);
    memset(h + l, 'b', HEAD_MAX);
    strcpy(h + l + HEAD_MAX, "\r\n\r\n");
    assert_int_equal(check(h, &hi, msg), 431);
    free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_end),
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
