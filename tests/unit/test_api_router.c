/* Tests of api/router.c: path patterns, parameters, 404 versus 405 with Allow, (pure matching, on a table
 * of its own). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "api/router.h"

static void h_a(struct http_req *r) { (void)r; }
static void h_b(struct http_req *r) { (void)r; }
static void h_c(struct http_req *r) { (void)r; }

static const route table[] = {
    {"GET", "/v1/jobs", h_a, BODY_NONE, 0, NULL},
    {"POST", "/v1/jobs", h_b, BODY_JSON, 0, NULL},
    {"GET", "/v1/jobs/{id}", h_c, BODY_NONE, 0, NULL},
    {"DELETE", "/v1/jobs/{id}", h_a, BODY_NONE, 0, NULL},
    {"GET", "/v1/jobs/{id}/metrics", h_b, BODY_NONE, 0, NULL},
};
#define N (sizeof table / sizeof table[0])

static void literal_paths_match_by_method(void **state)
{
    (void)state;
    route_match m;
    assert_int_equal(router_match(table, N, "GET", "/v1/jobs", &m), 0);
    assert_ptr_equal(m.route, &table[0]);
    assert_int_equal(router_match(table, N, "POST", "/v1/jobs", &m), 0);
    assert_ptr_equal(m.route, &table[1]);
    assert_int_equal(m.nparams, 0);
}

static void placeholders_capture_one_segment(void **state)
{
    (void)state;
    route_match m;
    assert_int_equal(router_match(table, N, "GET", "/v1/jobs/j_000017", &m), 0);
    assert_ptr_equal(m.route, &table[2]);
    assert_int_equal(m.nparams, 1);
    assert_string_equal(m.params[0], "j_000017");
    assert_int_equal(router_match(table, N, "GET", "/v1/jobs/j_1/metrics", &m), 0);
    assert_ptr_equal(m.route, &table[4]);
    assert_string_equal(m.params[0], "j_1");
}

static void unknown_paths_are_404(void **state)
{
    (void)state;
    route_match m;
    assert_int_equal(router_match(table, N, "GET", "/v1/job", &m), -ENOENT);
    assert_int_equal(router_match(table, N, "GET", "/v1/jobs/", &m), -ENOENT); /* empty segment */
    assert_int_equal(router_match(table, N, "GET", "/v1/jobs/a/b", &m), -ENOENT);
    assert_int_equal(router_match(table, N, "GET", "/v1/jobs/a/metricsx", &m), -ENOENT);
    assert_int_equal(router_match(table, N, "GET", "", &m), -ENOENT);
    assert_null(m.route);
}

static void wrong_method_is_405_with_allow(void **state)
{
    (void)state;
    route_match m;
    assert_int_equal(router_match(table, N, "PUT", "/v1/jobs", &m), -EPERM);
    assert_string_equal(m.allow, "GET, POST");
    assert_int_equal(router_match(table, N, "POST", "/v1/jobs/x", &m), -EPERM);
    assert_string_equal(m.allow, "GET, DELETE");
}

static void head_matches_get(void **state)
{
    (void)state;
    route_match m;
    assert_int_equal(router_match(table, N, "HEAD", "/v1/jobs/x/metrics", &m), 0);
    assert_ptr_equal(m.route, &table[4]);
}

static void overlong_segment_does_not_match(void **state)
{
    (void)state;
    char path[ROUTE_PARAM_LEN + 32];
    strcpy(path, "/v1/jobs/");
    memset(path + 9, 'x', ROUTE_PARAM_LEN);
    path[9 + ROUTE_PARAM_LEN] = '\0';
    route_match m;
    assert_int_equal(router_match(table, N, "GET", path, &m), -ENOENT);
    path[9 + ROUTE_PARAM_LEN - 1] = '\0'; /* exactly the longest that fits */
    assert_int_equal(router_match(table, N, "GET", path, &m), 0);
    assert_int_equal((int)strlen(m.params[0]), ROUTE_PARAM_LEN - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(literal_paths_match_by_method),
        cmocka_unit_test(placeholders_capture_one_segment),
        cmocka_unit_test(unknown_paths_are_404),
        cmocka_unit_test(wrong_method_is_405_with_allow),
        cmocka_unit_test(head_matches_get),
        cmocka_unit_test(overlong_segment_does_not_match),
    };
    return cmocka_run_group_tests_name("api_router", tests, NULL, NULL);
}
