/* Tests of api/routes.c: the daemon's route table has every endpoint of API.md, with the
 * right body kinds and access flags. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "api/router.h"
#include "api/routes.h"

static void daemon_table_has_the_api(void **state)
{
    (void)state;
    route_match m;
    static const char *ok[][2] = {
        {"GET", "/healthz"}, {"GET", "/metrics"}, {"POST", "/v1/jobs"}, {"GET", "/v1/jobs"},
        {"GET", "/v1/jobs/j_1"}, {"DELETE", "/v1/jobs/j_1"}, {"PATCH", "/v1/jobs/j_1"}, {"POST", "/v1/jobs/j_1/pause"},
        {"POST", "/v1/jobs/j_1/resume"}, {"POST", "/v1/jobs/j_1/cancel"},
        {"GET", "/v1/jobs/j_1/metrics"}, {"GET", "/v1/jobs/j_1/checkpoints"},
        {"GET", "/v1/jobs/j_1/weights"}, {"POST", "/v1/jobs/j_1/predict"},
        {"GET", "/v1/jobs/j_1/events"}, {"GET", "/v1/events"}, {"POST", "/v1/datasets"},
        {"GET", "/v1/datasets"}, {"GET", "/v1/datasets/d_1"}, {"DELETE", "/v1/datasets/d_1"},
        {"POST", "/v1/schedules/preview"}, {"GET", "/"}, {"GET", "/app.js"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        assert_int_equal(router_match(api_routes, api_nroutes, ok[i][0], ok[i][1], &m), 0);
    /* healthz is the only open API route; SSE takes ?access_token= */
    router_match(api_routes, api_nroutes, "GET", "/healthz", &m);
    assert_true(m.route->flags & ROUTE_OPEN);
    router_match(api_routes, api_nroutes, "GET", "/v1/jobs", &m);
    assert_false(m.route->flags & ROUTE_OPEN);
    /* /metrics is service data: it needs the token although "/{file}" would match it too */
    assert_int_equal(router_match(api_routes, api_nroutes, "GET", "/metrics", &m), 0);
    assert_ptr_equal(m.route->handler, api_prometheus);
    assert_false(m.route->flags & ROUTE_OPEN);
    assert_int_equal(router_match(api_routes, api_nroutes, "GET", "/healthz", &m), 0);
    assert_ptr_equal(m.route->handler, api_healthz);
    /* the dashboard shell is open, one segment deep only */
    assert_int_equal(router_match(api_routes, api_nroutes, "GET", "/index.html", &m), 0);
    assert_ptr_equal(m.route->handler, api_static);
    assert_true(m.route->flags & ROUTE_OPEN);
    assert_int_equal(router_match(api_routes, api_nroutes, "GET", "/web/app.js", &m), -ENOENT);
    assert_int_equal(router_match(api_routes, api_nroutes, "POST", "/app.js", &m), -EPERM);
    /* every /v1 route needs the token */
    for (size_t i = 0; i < api_nroutes; i++)
        if (strncmp(api_routes[i].pattern, "/v1/", 4) == 0)
            assert_false(api_routes[i].flags & ROUTE_OPEN);
    router_match(api_routes, api_nroutes, "GET", "/v1/events", &m);
    assert_true(m.route->flags & ROUTE_QUERY_TOKEN);
    router_match(api_routes, api_nroutes, "POST", "/v1/datasets", &m);
    assert_int_equal(m.route->body, BODY_CSV);
    assert_int_equal(router_match(api_routes, api_nroutes, "PUT", "/v1/jobs/j_1", &m), -EPERM);
    assert_string_equal(m.allow, "GET, DELETE, PATCH");
    assert_int_equal(router_match(api_routes, api_nroutes, "GET", "/v1/nothing", &m), -ENOENT);
    assert_int_equal(router_match(api_routes, api_nroutes, "GET", "/v1/jobs/", &m), -ENOENT);
    /* HEAD is answered like GET */
    assert_int_equal(router_match(api_routes, api_nroutes, "HEAD", "/v1/jobs/j_7", &m), 0);
    assert_ptr_equal(m.route->handler, api_jobs_get);
    assert_string_equal(m.params[0], "j_7");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(daemon_table_has_the_api),
    };
    return cmocka_run_group_tests_name("api_routes", tests, NULL, NULL);
}
