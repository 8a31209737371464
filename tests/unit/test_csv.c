/* Tests of core/csv: well-formed variants (quotes, CRLF, empty lines, spaces) and every kind
 * of bad input, each failing with a message that says what and where. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/csv.h"

/* A byte order mark (spreadsheets write one) is not part of the first column's name. */
static void test_byte_order_mark(void **state)
{
    (void)state;
    static const char text[] = "\xEF\xBB\xBF" "x,y\n1,2\n";
    csv_table t;
    an_err e;
    assert_int_equal(csv_parse(text, sizeof text - 1, &t, "data", &e), 0);
    assert_int_equal(t.ncols, 2);
    assert_string_equal(t.names[0], "x");
    assert_int_equal(csv_column(&t, "x"), 0);
    csv_free(&t);
}

static void test_good(void **state)
{
    (void)state;
    static const char text[] = "a, b ,\"c,d\"\r\n1,2,\"x\"\"y\"\r\n\r\n\n3,4,\"multi\nline\"\n5,6,\"\"";
    csv_table t;
    an_err e;
    assert_int_equal(csv_parse(text, sizeof text - 1, &t, "data", &e), 0);
    assert_int_equal(t.ncols, 3);
    assert_int_equal(t.nrows, 3);
    assert_string_equal(t.names[0], "a");
    assert_string_equal(t.names[1], "b");
    assert_string_equal(t.names[2], "c,d");
    assert_string_equal(t.cells[2], "x\"y");
    assert_string_equal(t.cells[5], "multi\nline");
    assert_string_equal(t.cells[8], "");
    assert_int_equal(t.lines[0], 2);
    assert_int_equal(t.lines[1], 5);
    assert_int_equal(t.lines[2], 7);
    assert_int_equal(csv_column(&t, "b"), 1);
    assert_int_equal(csv_column(&t, "c,d"), 2);
    assert_int_equal(csv_column(&t, "z"), -1);
    double v;
    assert_int_equal(csv_number(&t, 1, 0, &v, "data", &e), 0);
    assert_true(v == 3.0);
    /* Non-numeric cells are fine until a column is used as a number. */
    assert_int_equal(csv_number(&t, 0, 2, &v, "data", &e), -EINVAL);
    assert_string_equal(e.message, "row 1 (line 2), column 'c,d': 'x\"y' is not a number");
    assert_string_equal(e.field, "data");
    assert_int_equal(csv_number(&t, 2, 2, &v, "data", &e), -EINVAL);
    assert_non_null(strstr(e.message, "empty"));
    csv_free(&t);

    /* No final newline, lone CR line ends, spaces around numbers. */
    static const char t2[] = "x,y\r 1.5 ,-2e3\r7,8";
    assert_int_equal(csv_parse(t2, sizeof t2 - 1, &t, "data", &e), 0);
    assert_int_equal(t.nrows, 2);
    assert_int_equal(csv_number(&t, 0, 0, &v, "data", &e), 0);
    assert_true(v == 1.5);
    assert_int_equal(csv_number(&t, 0, 1, &v, "data", &e), 0);
    assert_true(v == -2000.0);
    csv_free(&t);

    /* Decimal numbers only: strtod's hexadecimal forms are not numbers here. */
    static const char t3[] = "x,y\n0x10,-0X1p3\n";
    assert_int_equal(csv_parse(t3, sizeof t3 - 1, &t, "data", &e), 0);
    assert_int_equal(csv_number(&t, 0, 0, &v, "data", &e), -EINVAL);
    assert_string_equal(e.message, "row 1 (line 2), column 'x': '0x10' is not a decimal number");
    assert_int_equal(csv_number(&t, 0, 1, &v, "data", &e), -EINVAL);
    csv_free(&t);
}

static void expect_bad(const char *text, size_t len, const char *needle)
{
    csv_table t;
    an_err e;
    memset(&e, 0, sizeof e);
    int rc = csv_parse(text, len, &t, "data", &e);
    if (rc != -EINVAL)
        fail_msg("expected an error containing \"%s\", got rc %d", needle, rc);
    assert_string_equal(e.field, "data");
    if (!strstr(e.message, needle))
        fail_msg("message \"%s\" lacks \"%s\"", e.message, needle);
}

#define BAD(lit, needle) expect_bad(lit, sizeof lit - 1, needle)

static void test_bad_structure(void **state)
{
    (void)state;
    BAD("a,b\n1,2\n3\n", "row 2 (line 3) has 1 fields; the header has 2");
    BAD("a,b\n1,2,3\n", "row 1 (line 2) has 3 fields");
    BAD("a,b\n1,\"2\n3,4\n", "unterminated quoted field: the quote opened on line 2");
    BAD("", "empty");
    BAD("\n\r\n\n", "empty");
    BAD("a,b,c\n", "header but no data rows");
    BAD("a,b,a\n1,2,3\n", "names column 'a' twice (columns 1 and 3)");
    BAD("a,,c\n1,2,3\n", "header column 2 has no name");
    BAD("a,b\n1,2\0\n", "NUL byte (line 2)");
    BAD("a,b\n1,ab\"c\n", "line 2: a quote inside an unquoted field");
    BAD("a,b\n1,\"ab\"c\n", "line 2: expected a comma or a line end after a closing quote");
}

static void test_huge_field(void **state)
{
    (void)state;
    size_t n = CSV_MAX_FIELD + 100;
    char *text = malloc(n + 16);
    memcpy(text, "a,b\n1,", 6);
    memset(text + 6, '7', n);
    memcpy(text + 6 + n, "\n", 1);
    expect_bad(text, n + 7, "a field longer than 4096 bytes");
    /* also when quoted */
    text[6] = '"';
    text[6 + n - 1] = '"';
    expect_bad(text, n + 7, "a field longer than 4096 bytes");
    /* exactly the limit is fine */
    memset(text + 6, '7', CSV_MAX_FIELD);
    csv_table t;
    an_err e;
    assert_int_equal(csv_parse(text, 6 + CSV_MAX_FIELD, &t, "data", &e), 0);
    double v;
    assert_int_equal(csv_number(&t, 0, 1, &v, "data", &e), -EINVAL); /* overflows to inf */
    assert_non_null(strstr(e.message, "not a finite number"));
    assert_non_null(strstr(e.message, "…")); /* shown cut short */
    csv_free(&t);
    free(text);
}

static void test_bad_numbers(void **state)
{
    (void)state;
    static const char text[] = "petal_length,petal_width\n1,2\n3,abc\n4,nan\n5,inf\n6,1e999\n7,2x\n";
    csv_table t;
    an_err e;
    assert_int_equal(csv_parse(text, sizeof text - 1, &t, "data", &e), 0);
    double v;
    assert_int_equal(csv_number(&t, 1, 1, &v, "data", &e), -EINVAL);
    assert_string_equal(e.message, "row 2 (line 3), column 'petal_width': 'abc' is not a number");
    assert_int_equal(csv_number(&t, 2, 1, &v, "data", &e), -EINVAL);
    assert_non_null(strstr(e.message, "'nan' is not a finite number"));
    assert_int_equal(csv_number(&t, 3, 1, &v, "data", &e), -EINVAL);
    assert_int_equal(csv_number(&t, 4, 1, &v, "data", &e), -EINVAL);
    assert_int_equal(csv_number(&t, 5, 1, &v, "data", &e), -EINVAL);
    assert_non_null(strstr(e.message, "'2x' is not a number"));
    assert_int_equal(csv_number(&t, 5, 0, &v, "data", &e), 0);
    assert_true(v == 7.0);
    csv_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_byte_order_mark),
        cmocka_unit_test(test_bad_structure),
        cmocka_unit_test(test_huge_field),
        cmocka_unit_test(test_bad_numbers),
    };
    return cmocka_run_group_tests_name("csv", tests, NULL, NULL);
}
