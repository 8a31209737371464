/* Tests for core/jsonnum: doubles printed into JSON read back to the same bits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonnum.h"

static void test_round_trip(void **state)
{
    (void)state;
    /* values cJSON's own printer shortens to 15 digits and so changes */
    const double v[] = {0.009999999999999998, 0.010000000000000002, 0.0031470456462384809,
                        1.0 / 3.0, 0.1, 1e-300, -2.5e300, 5e-324, 123456789.0, 0.0};
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        cJSON *a = cJSON_CreateArray();
        cJSON_AddItemToArray(a, json_number(v[i]));
        char *text = cJSON_PrintUnformatted(a);
        cJSON *back = cJSON_Parse(text);
        assert_non_null(back);
        double got = cJSON_GetArrayItem(back, 0)->valuedouble;
        assert_memory_equal(&got, &v[i], sizeof got);
        assert_true(json_is_number(cJSON_GetArrayItem(a, 0)));
        free(text);
        cJSON_Delete(a);
        cJSON_Delete(back);
    }
    char buf[40];
    json_number_text(buf, sizeof buf, 0.1, 1);
    assert_string_equal(buf, "0.1"); /* the fewest digits, not always 17 */
    json_number_text(buf, sizeof buf, 0.009999999999999998, 1);
    assert_string_equal(buf, "0.009999999999999998");
}

static void test_non_finite(void **state)
{
    (void)state;
    cJSON *n = json_number(NAN);
    assert_true(cJSON_IsNull(n));
    assert_false(json_is_number(n));
    cJSON_Delete(n);
    n = json_number(INFINITY);
    assert_true(cJSON_IsNull(n));
    cJSON_Delete(n);
    char buf[16];
    json_number_text(buf, sizeof buf, -INFINITY, 0);
    assert_string_equal(buf, "-inf");
    json_number_text(buf, sizeof buf, NAN, 0);
    assert_string_equal(buf, "nan");
    json_number_text(buf, sizeof buf, INFINITY, 1);
    assert_string_equal(buf, "null");
    n = cJSON_CreateRaw("null");
    assert_false(json_is_number(n));
    cJSON_Delete(n);
}

/* A whole tree printed exactly reads back bit for bit, where cJSON's printer rounds. */
static void test_print_exact(void **state)
{
    (void)state;
    const char *in = "{\"a\":0.30000000000000004,\"b\":[1.7976931348623157e+308,2,-0.1],"
                     "\"c\":{\"d\":0.009999999999999998,\"s\":\"x\",\"t\":true}}";
    cJSON *j = cJSON_Parse(in);
    assert_non_null(j);
    char *plain = cJSON_PrintUnformatted(j);
    assert_null(strstr(plain, "0.30000000000000004")); /* the loss this guards against */
    cJSON_free(plain);
    char *text = json_print_exact(j);
    assert_non_null(text);
    assert_string_equal(text, in);
    cJSON *back = cJSON_Parse(text);
    assert_true(cJSON_GetObjectItem(back, "a")->valuedouble == 0.30000000000000004);
    assert_true(cJSON_GetArrayItem(cJSON_GetObjectItem(back, "b"), 0)->valuedouble ==
                1.7976931348623157e308);
    /* The source tree is left as it was. */
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(j, "a")));
    cJSON_Delete(back);
    cJSON_free(text);
    cJSON_Delete(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_non_finite),
        cmocka_unit_test(test_print_exact),
    };
    return cmocka_run_group_tests_name("jsonnum", tests, NULL, NULL);
}
