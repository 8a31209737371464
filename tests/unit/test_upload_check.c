/* test_upload_check — an upload checked piece by piece gives what one whole piece gives: the
 * same rows and columns, and for a bad body the same error (field and message naming the
 * row, line, byte or column), wherever the pieces are cut — inside a UTF-8 sequence, between
 * the CR and LF of a line end, inside a quoted field with a line break. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/text.h"
#include "core/upload_check.h"

typedef struct result {
    int rc;
    int64_t rows;
    char cols[256];
    char field[256];
    char message[512];
    char vocab[512];             /* a text's vocabulary JSON */
} result;

/* Checks text cut into pieces of `piece` bytes (0: the pieces of `cuts`, a 0-ended list). */
static result check(int kind, const char *text, size_t len, size_t piece, const size_t *cuts)
{
    result out;
    memset(&out, 0, sizeof out);
    upload_check u;
    upload_check_init(&u, kind);
    an_err e;
    an_err_clear(&e);
    size_t off = 0, k = 0;
    while (off < len && !out.rc) {
        size_t n = piece ? piece : (cuts[k] ? cuts[k++] : len - off);
        if (n > len - off)
            n = len - off;
        out.rc = upload_check_feed(&u, text + off, n, &e);
        off += n;
    }
    cJSON *cols = NULL;
    if (!out.rc)
        out.rc = upload_check_finish(&u, &out.rows, &cols, &e);
    cJSON *v = out.rc ? NULL : upload_check_vocab(&u);
    if (v) {
        char *p = cJSON_PrintUnformatted(v);
        snprintf(out.vocab, sizeof out.vocab, "%s", p);
        cJSON_free(p);
        cJSON_Delete(v);
    }
    if (cols) {
        char *p = cJSON_PrintUnformatted(cols);
        snprintf(out.cols, sizeof out.cols, "%s", p);
        cJSON_free(p);
        cJSON_Delete(cols);
    }
    if (out.rc) {
        snprintf(out.field, sizeof out.field, "%s", e.field);
        snprintf(out.message, sizeof out.message, "%s", e.message);
    }
    upload_check_free(&u);
    return out;
}

/* Every piece size from 1 to len gives the whole-body result. */
static result same_for_every_cut(int kind, const char *text)
{
    size_t len = strlen(text);
    result whole = check(kind, text, len, len ? len : 1, NULL);
    for (size_t p = 1; p <= len; p++) {
        result r = check(kind, text, len, p, NULL);
        if (r.rc != whole.rc || r.rows != whole.rows || strcmp(r.cols, whole.cols) ||
            strcmp(r.field, whole.field) || strcmp(r.message, whole.message) ||
            strcmp(r.vocab, whole.vocab))
            fail_msg("pieces of %zu bytes: rc %d rows %lld '%s' %s: %s\nwhole: rc %d rows %lld "
                     "'%s' %s: %s", p, r.rc, (long long)r.rows, r.cols, r.field, r.message,
                     whole.rc, (long long)whole.rows, whole.cols, whole.field, whole.message);
    }
    return whole;
}

static void good_csv(void **state)
{
    (void)state;
    result r = same_for_every_cut(UPLOAD_CSV, "a, b ,\"c,d\"\r\n1,2,3\r\n\r\n4,5,\"6\"\r\n7,8,9");
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.rows, 3);
    assert_string_equal(r.cols, "[\"a\",\"b\",\"c,d\"]");
    /* a quoted field with line breaks and doubled quotes; CR-only line ends */
    r = same_for_every_cut(UPLOAD_CSV, "\"x\ny\",\"q\"\"r\"\r1,2\r3,4\r");
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.rows, 2);
    assert_string_equal(r.cols, "[\"x\\ny\",\"q\\\"r\"]");
    /* a spreadsheet's byte order mark is not part of the first column's name */
    r = same_for_every_cut(UPLOAD_CSV, "\xEF\xBB\xBF" "a,b\n1,2\n");
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.rows, 1);
    assert_string_equal(r.cols, "[\"a\",\"b\"]");
}

static void bad_csv_named_alike(void **state)
{
    (void)state;
    const char *bad[] = {
        "a,b\n1,2\n3\n",               /* ragged row 2 (line 3) */
        "a,b\n1,2\n\n\n3,x\n",         /* not a number, line 5 */
        "a,a\n1,2\n",                  /* duplicate header name */
        "a,b\n",                       /* header, no rows */
        "",                            /* empty */
        "a,b\n1,\"2\n3,4\n",           /* unterminated quote */
        "a,b\n1,2\xc3\n",              /* cut UTF-8 sequence */
        "a,b\n1,2\n\xe2\x82\xac,3\n",  /* a euro sign where a number goes, line 3 */
        "a,b\n1,\x00\n",               /* NUL */
        "a,b\n1,2\n0x10,3\n",          /* hexadecimal: not a decimal number */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t len = i == 8 ? 8 : strlen(bad[i]);
        result whole = check(UPLOAD_CSV, bad[i], len, len ? len : 1, NULL);
        assert_int_not_equal(whole.rc, 0);
        for (size_t p = 1; p <= len; p++) {
            result r = check(UPLOAD_CSV, bad[i], len, p, NULL);
            if (r.rc == 0 || strcmp(r.message, whole.message) || strcmp(r.field, whole.field))
                fail_msg("case %zu, pieces of %zu: %s: %s (whole: %s: %s)", i, p, r.field,
                         r.message, whole.field, whole.message);
        }
    }
    result r = check(UPLOAD_CSV, "a,b\n1,2\n3\n", 10, 10, NULL);
    assert_non_null(strstr(r.message, "row 2 (line 3) has 1 fields"));
    r = check(UPLOAD_CSV, "a,b\n1,2\n\n\n3,x\n", 14, 14, NULL);
    assert_non_null(strstr(r.message, "line 5"));
    r = check(UPLOAD_CSV, "a,b\n1,\x00\n", 8, 3, NULL);
    assert_string_equal(r.field, "body");
    assert_non_null(strstr(r.message, "byte 6 (line 2, column 3)"));
}

static void text_corpus(void **state)
{
    (void)state;
    result r = same_for_every_cut(UPLOAD_TEXT, "h\xc3\xa9llo w\xe2\x82\xacrld \xf0\x9f\x98\x80!\n");
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.rows, 15); /* characters */
    assert_string_equal(r.cols, "[]");
    /* The vocabulary, whatever the cuts (sequences split between pieces included), is the one
     * the char tokenizer works out from the whole text. */
    const char *t = "h\xc3\xa9llo w\xe2\x82\xacrld \xf0\x9f\x98\x80!\n";
    text_vocab tv;
    int32_t *tok;
    size_t ntok;
    an_err e;
    assert_int_equal(text_tokenize(t, strlen(t), TEXT_CHAR, 2, "text", &tv, &tok, &ntok, &e), 0);
    cJSON *j = text_vocab_json(&tv);
    char *want = cJSON_PrintUnformatted(j);
    assert_string_equal(r.vocab, want);
    assert_non_null(strstr(r.vocab, "\"size\":12,"));
    cJSON_free(want);
    cJSON_Delete(j);
    free(tok);
    text_vocab_free(&tv);
    r = same_for_every_cut(UPLOAD_TEXT, "x");
    assert_int_not_equal(r.rc, 0);
    assert_string_equal(r.field, "text");
    r = same_for_every_cut(UPLOAD_TEXT, "ab\xf0\x9f\x98");
    assert_string_equal(r.field, "body");
    assert_non_null(strstr(r.message, "byte 2 (line 1, column 3)"));
}

/* A record longer than UPLOAD_MAX_RECORD is refused, naming its line; a quote left open that
 * runs on is named as the reader names it. */
static void long_records(void **state)
{
    (void)state;
    enum { COLS = 8192, W = 2500 }; /* fields of W bytes: a row of ~20 MB */
    size_t n = 16 + (size_t)COLS * 8 + (size_t)COLS * (W + 1) + 1;
    char *t = malloc(n);
    assert_non_null(t);
    size_t k = 0;
    for (int c = 0; c < COLS; c++)
        k += (size_t)sprintf(t + k, "c%d%c", c, c + 1 < COLS ? ',' : '\n');
    size_t row = k;
    for (int c = 0; c < COLS; c++) {
        t[k++] = '0';
        t[k++] = '.';
        memset(t + k, '0', W - 2);
        k += W - 2;
        t[k++] = c + 1 < COLS ? ',' : '\n';
    }
    result r = check(UPLOAD_CSV, t, k, 1 << 20, NULL);
    assert_int_not_equal(r.rc, 0);
    assert_string_equal(r.field, "csv");
    assert_non_null(strstr(r.message, "line 2 is longer than"));
    t[row] = '"'; /* now an open quote that runs past the limit */
    r = check(UPLOAD_CSV, t, k, 1 << 20, NULL);
    assert_int_not_equal(r.rc, 0);
    assert_null(strstr(r.message, "record starting"));
    assert_non_null(strstr(r.message, "a field longer than 4096 bytes")); /* the open quote's */
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good_csv),
        cmocka_unit_test(bad_csv_named_alike),
        cmocka_unit_test(text_corpus),
        cmocka_unit_test(long_records),
    };
    return cmocka_run_group_tests_name("upload_check", tests, NULL, NULL);
}
