/* Tests of api/http.c's request life without a network: the calls MHD makes to the access
 * handler after a suspended request is resumed. MHD queues nothing on a NULL connection, so
 * these run with none, and the suspended/resumed states are set as http_suspend and
 * http_resume_with leave them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/http.h"
#include "api/api.h"

static service SV; /* large: kept off the stack */
static api_t D = {.sv = &SV};

/* A request that was handed off (a worker or the thread pool was to answer it) and resumed
 * with no answer, as when the answer could not be made (out of memory): the handler must end
 * the connection (MHD_NO). Answering MHD_YES with nothing queued makes MHD call it again on
 * every turn of the loop, for ever. */
static void resumed_without_an_answer_closes(void **state)
{
    (void)state;
    http_req *r = calloc(1, sizeof *r);
    assert_non_null(r);
    r->api = &D;
    void *con = r;
    r->handed_off = 1;  /* suspended, then resumed ... */
    r->suspended = 0;
    r->pending = NULL;  /* ... with no response */
    r->pending_status = 200;
    size_t zero = 0;
    assert_int_equal(http_access(&D, NULL, "/v1/jobs/j_1/pause", "POST", "HTTP/1.1", NULL, &zero,
                                 &con),
                     MHD_NO);
    http_completed(&D, NULL, &con, MHD_REQUEST_TERMINATED_WITH_ERROR);
    assert_null(con);
}

/* While still suspended (no resume yet), the handler has nothing to do and says so. */
static void suspended_request_waits(void **state)
{
    (void)state;
    http_req *r = calloc(1, sizeof *r);
    assert_non_null(r);
    r->api = &D;
    void *con = r;
    r->handed_off = 1;
    r->suspended = 1;
    size_t zero = 0;
    assert_int_equal(http_access(&D, NULL, "/v1/jobs/j_1/pause", "POST", "HTTP/1.1", NULL, &zero,
                                 &con),
                     MHD_YES);
    http_completed(&D, NULL, &con, MHD_REQUEST_TERMINATED_WITH_ERROR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(resumed_without_an_answer_closes),
        cmocka_unit_test(suspended_request_waits),
    };
    return cmocka_run_group_tests_name("api_http", tests, NULL, NULL);
}
