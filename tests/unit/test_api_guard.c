/* Tests for api/guard: which Host, Origin and Content-Type values a request may carry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "api/guard.h"
#include "api/router.h"

static const char allow[2][GUARD_NAME_MAX] = {"train.example", "proxy.internal"};

static void test_host(void **state)
{
    (void)state;
    guard_cfg g = {"127.0.0.1", allow, 2};
    const char *ok[] = {"127.0.0.1:8470", "127.0.0.1", "localhost:8470", "LOCALHOST", "localhost.:1",
                        "train.example", "Train.Example:443", "proxy.internal:8443", NULL};
    for (int i = 0; ok[i]; i++)
        assert_int_equal(guard_host(&g, ok[i]), 0);
    assert_int_equal(guard_host(&g, NULL), 0); /* HTTP/1.0 without Host: no browser */
    const char *bad[] = {"evil.example", "evil.example:8470", "127.0.0.1.evil.example:8470",
                         "localhost.evil.example", "127.0.0.2:8470", "[::1]:8470", "", ":8470",
                         "127.0.0.1:84x0", "127.0.0.1:", "train.example.evil", "[::1", NULL};
    for (int i = 0; bad[i]; i++)
        assert_int_equal(guard_host(&g, bad[i]), -1);

    guard_cfg v6 = {"::1", NULL, 0};
    assert_int_equal(guard_host(&v6, "[::1]:8470"), 0);
    assert_int_equal(guard_host(&v6, "[0:0::1]"), 0);
    assert_int_equal(guard_host(&v6, "127.0.0.1:8470"), -1);
    assert_int_equal(guard_host(&v6, "[::1]x"), -1);

    /* Listening on every address: any IP literal (a literal cannot be rebound), no names. */
    guard_cfg any = {"0.0.0.0", NULL, 0};
    assert_int_equal(guard_host(&any, "192.168.1.20:8470"), 0);
    assert_int_equal(guard_host(&any, "[fe80::1]:8470"), 0);
    assert_int_equal(guard_host(&any, "trainer.lan:8470"), -1);
}

static void test_origin(void **state)
{
    (void)state;
    guard_cfg g = {"127.0.0.1", allow, 2};
    assert_int_equal(guard_origin(&g, NULL, "127.0.0.1:8470"), 0);
    assert_int_equal(guard_origin(&g, "http://127.0.0.1:8470", "127.0.0.1:8470"), 0);
    assert_int_equal(guard_origin(&g, "HTTP://LOCALHOST:8470", "localhost:8470"), 0);
    assert_int_equal(guard_origin(&g, "https://train.example", "127.0.0.1:8470"), 0);
    const char *bad[] = {"http://evil.example", "null", "http://localhost:3000",
                         "http://127.0.0.1:8471", "file://", "http://127.0.0.1:8470/x",
                         "http://user@127.0.0.1:8470", "ftp://127.0.0.1:8470", "", NULL};
    for (int i = 0; bad[i]; i++)
        assert_int_equal(guard_origin(&g, bad[i], "127.0.0.1:8470"), -1);
    /* The Origin must match the Host the request was sent to, not just any good name. */
    assert_int_equal(guard_origin(&g, "http://localhost:8470", "127.0.0.1:8470"), -1);
}

static void test_media(void **state)
{
    (void)state;
    char want[48];
    assert_int_equal(guard_media(BODY_JSON, "application/json", 1, want, sizeof want), 0);
    assert_int_equal(guard_media(BODY_JSON, "Application/JSON; charset=utf-8", 1, want, sizeof want), 0);
    /* bodies are read as UTF-8: another charset is refused rather than misread */
    assert_int_equal(guard_media(BODY_CSV, "text/plain; charset=\"UTF-8\"", 1, want, sizeof want), 0);
    assert_int_equal(guard_media(BODY_CSV, "text/plain;charset=us-ascii", 1, want, sizeof want), 0);
    assert_int_equal(guard_media(BODY_CSV, "text/plain; charset=latin1", 1, want, sizeof want), -1);
    assert_string_equal(want, "in UTF-8 (charset=utf-8)");
    assert_int_equal(guard_media(BODY_CSV, "text/csv; charset=iso-8859-1", 1, want, sizeof want), -1);
    assert_int_equal(guard_media(BODY_JSON, "application/json; charset=utf-16", 1, want, sizeof want), -1);
    assert_int_equal(guard_media(BODY_JSON, "application/json; charset", 1, want, sizeof want), -1);
    assert_int_equal(guard_media(BODY_JSON, NULL, 0, want, sizeof want), 0); /* POST …/pause */
    assert_int_equal(guard_media(BODY_JSON, NULL, 1, want, sizeof want), -1);
    assert_string_equal(want, "application/json");
    const char *simple[] = {"text/plain", "application/x-www-form-urlencoded",
                            "multipart/form-data; boundary=x", "application/jsonx", "text/json", NULL};
    for (int i = 0; simple[i]; i++) {
        assert_int_equal(guard_media(BODY_JSON, simple[i], 1, want, sizeof want), -1);
        assert_int_equal(guard_media(BODY_JSON, simple[i], 0, want, sizeof want), -1);
    }
    assert_int_equal(guard_media(BODY_CSV, "text/csv", 1, want, sizeof want), 0);
    assert_int_equal(guard_media(BODY_CSV, "text/plain; charset=utf-8", 1, want, sizeof want), 0);
    assert_int_equal(guard_media(BODY_CSV, "application/x-www-form-urlencoded", 1, want, sizeof want), -1);
    assert_int_equal(guard_media(BODY_CSV, "application/octet-stream", 1, want, sizeof want), -1);
    assert_int_equal(guard_media(BODY_CSV, NULL, 1, want, sizeof want), -1);
}

static void test_redact(void **state)
{
    (void)state;
    char out[256];
    guard_redact("/v1/events?access_token=s3cret&x=1", out, sizeof out);
    assert_string_equal(out, "/v1/events?access_token=[redacted]&x=1");
    guard_redact("GET /v1/jobs/j_1/events?last_event_id=4&ACCESS_TOKEN=a%20b HTTP/1.1", out,
                 sizeof out);
    assert_string_equal(out, "GET /v1/jobs/j_1/events?last_event_id=4&ACCESS_TOKEN=[redacted] HTTP/1.1");
    guard_redact("error at access_token=xyz\nnext", out, sizeof out);
    assert_string_equal(out, "error at access_token=[redacted]\nnext");
    guard_redact("?my_access_token=keep&access_token=", out, sizeof out);
    assert_string_equal(out, "?my_access_token=keep&access_token=[redacted]");
    /* Truncation never leaves a prefix of the token behind. */
    size_t n = guard_redact("?access_token=abcdefghijkl", out, 20);
    assert_int_equal(n, 19);
    assert_null(strstr(out, "abc"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host),
        cmocka_unit_test(test_origin),
        cmocka_unit_test(test_media),
        cmocka_unit_test(test_redact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
