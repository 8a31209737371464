/* Tests for core/jsonstrict: the strict-number and UTF-8/NUL checks that run before cJSON,
 * and json_parse_text refusing what cJSON alone would accept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/jsonstrict.h"
#include "core/jsontext.h"

static int check(const char *text, an_err *e)
{
    an_err_clear(e);
    return json_strict_check(text, strlen(text), e);
}

static void test_numbers(void **state)
{
    (void)state;
    an_err e;
    const char *good[] = {"{\"a\":0}", "{\"a\":-0}", "{\"a\":10}", "{\"a\":1.5}", "{\"a\":-0.25e-3}",
                          "{\"a\":1E+9}", "{\"a\":[1,2,3]}", "{\"a\":\"01 is fine in a string\"}",
                          "{\"a\":true,\"b\":null}",
                          /* integers a double holds exactly, however long */
                          "{\"seed\":9007199254740992}", "{\"a\":-9007199254740992}",
                          "{\"a\":9007199254740994}", "{\"a\":1000000000000000000}",
                          "{\"a\":9007199254740993.5}", "{\"a\":100000000000000000000001}"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        assert_int_equal(check(good[i], &e), 0);
    struct { const char *text, *field, *why; } bad[] = {
        {"{\"steps\": 01}", "steps", "leading zeros"},
        {"{\"a\": {\"lr\": 1.}}", "a.lr", "decimal point"},
        {"{\"a\": [1, 1.e5]}", "a[1]", "decimal point"},
        {"{\"a\": -}", "a", "minus"},
        {"{\"a\": 1e}", "a", "exponent"},
        {"{\"a\": 1e+}", "a", "exponent"},
        {"{\"a\": -01.5}", "a", "leading zeros"},
        {"{\"a\": 1-2}", "a", "unexpected"},
        {"{\"a\": [{\"b\": [0, 00]}]}", "a[0].b[1]", "leading zeros"},
        {"{\"seed\": 9007199254740993}", "seed", "cannot hold this integer exactly"},
        {"{\"a\": [-9007199254740995]}", "a[0]", "2^53"},
        {"{\"a\": 1234567890123456789}", "a", "exactly"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = check(bad[i].text, &e);
        assert_int_equal(rc, -EINVAL);
        assert_string_equal(e.field, bad[i].field);
        if (bad[i].why)
            assert_non_null(strstr(e.message, bad[i].why));
        assert_non_null(strstr(e.message, "line 1, column"));
    }
}

/* Deep nesting is named as such, at the place it goes too deep; 512 levels still parse. */
static void test_nesting(void **state)
{
    (void)state;
    char text[2100];
    an_err e;
    for (int depth = 512; depth <= 513; depth++) {
        memset(text, '[', (size_t)depth);
        memset(text + depth, ']', (size_t)depth);
        text[2 * depth] = '\0';
        int rc = check(text, &e);
        if (depth == 512) {
            assert_int_equal(rc, 0);
        } else {
            assert_int_equal(rc, -EINVAL);
            assert_non_null(strstr(e.message, "nested more than 512 levels deep"));
            assert_non_null(strstr(e.message, "line 1, column 513"));
        }
    }
}

static void test_strings(void **state)
{
    (void)state;
    an_err e;
    assert_int_equal(check("{\"name\": \"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}", &e), 0);
    assert_int_equal(check("{\"name\": \"a\\\\u0000b\"}", &e), 0); /* an escaped backslash */
    assert_int_equal(check("{\"name\": \"\\u00e9\\\"\\n\"}", &e), 0);

    assert_int_equal(check("{\"name\": \"a\\u0000b\"}", &e), -EINVAL);
    assert_string_equal(e.field, "name");
    assert_non_null(strstr(e.message, "NUL"));

    const char *invalid[] = {"{\"x\": {\"name\": \"\xff\"}}", "{\"x\": {\"name\": \"\xc0\xaf\"}}",
                             "{\"x\": {\"name\": \"\xed\xa0\x80\"}}", "{\"x\": {\"name\": \"\xf4\x90\x80\x80\"}}",
                             "{\"x\": {\"name\": \"\xe2\x82\"}}", "{\"x\": {\"name\": \"\x80\"}}"};
    for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++) {
        assert_int_equal(check(invalid[i], &e), -EINVAL);
        assert_string_equal(e.field, "x.name");
        assert_non_null(strstr(e.message, "UTF-8"));
    }
    /* A key that is not UTF-8 is refused too (its own path is the parent). */
    assert_int_equal(check("{\"a\": {\"\xfe\": 1}}", &e), -EINVAL);
    assert_string_equal(e.field, "a");

    /* Escapes: cJSON reads a \u with bad digits as U+0000 and takes the string, so the
     * check refuses it, and with it anything after (here a key that is not UTF-8). */
    struct { const char *text, *field, *why; } esc[] = {
        {"{\"name\": \"Yaf\\u0*e9\", \"ds\": {\"\xd2x\": 1}}", "name", "four hexadecimal"},
        {"{\"name\": \"a\\u12\"}", "name", "four hexadecimal"},
        {"{\"a\": [\"\\u00G0\"]}", "a[0]", "four hexadecimal"},
        {"{\"name\": \"a\\\xd2\xa1Tn\"}", "name", "escape"}, /* not "UTF-8" */
        {"{\"name\": \"\\x41\"}", "name", "escape"},
    };
    for (size_t i = 0; i < sizeof esc / sizeof *esc; i++) {
        assert_int_equal(check(esc[i].text, &e), -EINVAL);
        assert_string_equal(e.field, esc[i].field);
        assert_non_null(strstr(e.message, esc[i].why));
        assert_null(strstr(e.message, "UTF-8"));
    }

    /* A raw NUL inside a string (length-delimited input). */
    const char raw[] = "{\"name\": \"a\0b\"}";
    an_err_clear(&e);
    assert_int_equal(json_strict_check(raw, sizeof raw - 1, &e), -EINVAL);
    assert_string_equal(e.field, "name");
}

static void test_utf8(void **state)
{
    (void)state;
    size_t bad = 99;
    assert_true(utf8_valid("plain", 5, &bad));
    assert_true(utf8_valid("\xf4\x8f\xbf\xbf", 4, &bad)); /* U+10FFFF */
    assert_false(utf8_valid("ab\xe0\x80\x80", 5, &bad));   /* overlong */
    assert_int_equal(bad, 2);
    assert_false(utf8_valid("a\0b", 3, &bad));
    assert_int_equal(bad, 1);
}

static void test_parse_text_is_strict(void **state)
{
    (void)state;
    cJSON *j = NULL;
    an_err e;
    an_err_clear(&e);
    const char *t = "{\"steps\": 01}";
    assert_int_equal(json_parse_text(t, strlen(t), &j, &e), -EINVAL);
    assert_null(j);
    assert_string_equal(e.field, "steps");
    t = "{\"steps\": 10}";
    assert_int_equal(json_parse_text(t, strlen(t), &j, &e), 0);
    assert_non_null(j);
    cJSON_Delete(j);
    /* Structure errors are still cJSON's to report, with their own message. */
    t = "{\"a\": [1, 2,]}";
    assert_int_equal(json_parse_text(t, strlen(t), &j, &e), -EINVAL);
    assert_non_null(strstr(e.message, "trailing comma"));
}

/* A key given twice anywhere is refused, naming its path: parsers disagree on which one
 * counts. The same name in different objects is fine, and so is an object of many keys. */
static void test_duplicate_keys(void **state)
{
    (void)state;
    static const struct {
        const char *text, *field, *msg;
    } cases[] = {
        {"{\"a\": 1, \"a\": 2}", "a", "duplicate key 'a': give each key once"},
        {"{\"ds_config\": {\"optimizer\": {\"params\": {\"lr\": 0.1, \"lr\": 0.5}}}}",
         "ds_config.optimizer.params.lr",
         "duplicate key 'lr' in ds_config.optimizer.params: give each key once"},
        {"{\"x\": [{\"a\": 1}, {\"b\": 1, \"c\": 2, \"b\": 3}]}", "x[1].b",
         "duplicate key 'b' in x[1]: give each key once"},
        {"{\"p\": {\"k1\":1,\"k2\":1,\"k3\":1,\"k4\":1,\"k5\":1,\"k6\":1,\"k7\":1,\"k8\":1,"
         "\"k9\":1,\"k3\":2}}", "p.k3", "duplicate key 'k3' in p"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        cJSON *j = NULL;
        an_err e;
        an_err_clear(&e);
        assert_int_equal(json_parse_text(cases[k].text, strlen(cases[k].text), &j, &e), -EINVAL);
        assert_null(j);
        assert_string_equal(e.field, cases[k].field);
        assert_non_null(strstr(e.message, cases[k].msg));
    }
    const char *ok = "{\"a\": {\"lr\": 1}, \"b\": {\"lr\": 2}, \"c\": [{\"lr\": 3}, {\"lr\": 4}],"
                     " \"d\": {\"k1\":1,\"k2\":1,\"k3\":1,\"k4\":1,\"k5\":1,\"k6\":1,\"k7\":1,"
                     "\"k8\":1,\"k9\":1}}";
    cJSON *j = NULL;
    an_err e;
    assert_int_equal(json_parse_text(ok, strlen(ok), &j, &e), 0);
    cJSON_Delete(j);
}

/* utf8_repair: valid text comes back as it was; each byte that starts no character becomes
 * U+FFFD, and what follows it is kept. */
static void test_utf8_repair(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"caf\xC3\xA9", "caf\xC3\xA9"},
        {"", ""},
        {"aa\xC3", "aa\xEF\xBF\xBD"},                          /* cut after a lead byte */
        {"\xFF\xFEx", "\xEF\xBF\xBD\xEF\xBF\xBDx"},              /* never valid */
        {"a\xE2\x82z", "a\xEF\xBF\xBD\xEF\xBF\xBDz"},           /* a three-byte form cut short */
        {"\xC0\xAF", "\xEF\xBF\xBD\xEF\xBF\xBD"},                /* overlong '/' */
        {"\xED\xA0\x80.", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD."}, /* a surrogate */
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        size_t n = 0;
        char *o = utf8_repair(cases[k].in, strlen(cases[k].in), &n);
        assert_non_null(o);
        assert_int_equal(n, strlen(cases[k].out));
        assert_memory_equal(o, cases[k].out, n);
        assert_int_equal(o[n], '\0');
        assert_true(utf8_valid(o, n, NULL));
        free(o);
    }
}

/* What cJSON allocates, counted through its hooks: the bytes asked for, plus 16 a block for
 * the allocator's header and rounding. */
static size_t hooked_bytes;

static void *counting_malloc(size_t n)
{
    hooked_bytes += n + 16;
    return malloc(n);
}

/* json_parse_cost bounds what the parse allocates, at most half again above it, for trees of
 * numbers, strings and objects: the memory budget charges it before a body is parsed. */
static void test_parse_cost(void **state)
{
    (void)state;
    cJSON_Hooks hooks = {.malloc_fn = counting_malloc, .free_fn = free};
    cJSON_InitHooks(&hooks);
    for (int kind = 0; kind < 3; kind++) {
        size_t n = 50000, p = 0;
        char *t = malloc(n * 12 + 16);
        assert_non_null(t);
        p += (size_t)sprintf(t + p, "{\"a\":[");
        for (size_t i = 0; i < n; i++) {
            const char *sep = i ? "," : "";
            p += (size_t)(kind == 0   ? sprintf(t + p, "%s7", sep)
                          : kind == 1 ? sprintf(t + p, "%s\"abc\"", sep)
                                      : sprintf(t + p, "%s{\"k\":1}", sep));
        }
        p += (size_t)sprintf(t + p, "]}");
        hooked_bytes = 0;
        cJSON *j = NULL;
        an_err e;
        assert_int_equal(json_parse_text(t, p, &j, &e), 0);
        double real = (double)hooked_bytes, cost = (double)json_parse_cost(t, p);
        assert_true(real > (double)n * sizeof(cJSON));
        assert_true(cost >= real);
        assert_true(cost <= 1.5 * real);
        cJSON_Delete(j);
        free(t);
    }
    cJSON_InitHooks(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_nesting),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_utf8_repair),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_parse_text_is_strict),
        cmocka_unit_test(test_parse_cost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
