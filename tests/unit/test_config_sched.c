/* test_config_sched — the scheduling keys of a job spec, the PATCH of a job's labels, and the
 * queue's order by priority. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/config_sched.h"
#include "jobs/jobmgr.h"

static cJSON *js(const char *text)
{
    cJSON *j = cJSON_Parse(text);
    assert_non_null(j);
    return j;
}

static void test_defaults(void **state)
{
    (void)state;
    cJSON *j = js("{}");
    cfg_sched s;
    an_err e;
    assert_int_equal(cfg_sched_parse(j, &s, &e), 0);
    assert_int_equal(s.priority, 0);
    assert_int_equal(s.preemptible, 1);
    assert_true(s.max_runtime_s == 0);
    assert_true(s.stall_timeout_s == 600);
    assert_int_equal(s.max_restarts, 3);
    assert_int_equal(s.ntags, 0);
    assert_string_equal(s.notes, "");
    cJSON *o = cJSON_CreateObject();
    assert_int_equal(cfg_sched_json(&s, o), 0);
    char *txt = cJSON_PrintUnformatted(o);
    assert_string_equal(txt, "{\"priority\":0,\"preemptible\":true,\"stall_timeout_s\":600,"
                             "\"max_restarts\":3,\"tags\":[],\"notes\":\"\"}");
    free(txt);
    cJSON_Delete(o);
    cJSON_Delete(j);
}

static void test_values_round_trip(void **state)
{
    (void)state;
    cJSON *j = js("{\"priority\": -7, \"preemptible\": false, \"max_runtime_s\": 2.5,"
                  " \"stall_timeout_s\": 0.25, \"max_restarts\": 0, \"tags\": [\"a\", \"b c\"],"
                  " \"notes\": \"n\"}");
    cfg_sched s, s2;
    an_err e;
    assert_int_equal(cfg_sched_parse(j, &s, &e), 0);
    assert_int_equal(s.priority, -7);
    assert_int_equal(s.preemptible, 0);
    assert_true(s.max_runtime_s == 2.5);
    assert_true(s.stall_timeout_s == 0.25);
    assert_int_equal(s.max_restarts, 0);
    assert_int_equal(s.ntags, 2);
    assert_string_equal(s.tags[1], "b c");
    assert_true(cfg_sched_has_tag(&s, "a"));
    assert_false(cfg_sched_has_tag(&s, "b"));
    /* the normalized keys parse back to the same values */
    cJSON *o = cJSON_CreateObject();
    assert_int_equal(cfg_sched_json(&s, o), 0);
    assert_int_equal(cfg_sched_parse(o, &s2, &e), 0);
    assert_memory_equal(&s, &s2, sizeof s);
    cJSON_Delete(o);
    cJSON_Delete(j);
}

static void expect_error(const char *text, const char *field, int patch)
{
    cJSON *j = js(text);
    cfg_sched s;
    an_err e;
    an_err_clear(&e);
    int rc = patch ? cfg_sched_patch_check(j, &e) : cfg_sched_parse(j, &s, &e);
    if (rc == 0 || strcmp(e.field, field) != 0)
        fail_msg("%s: rc %d, field '%s' (want '%s'): %s", text, rc, e.field, field, e.message);
    cJSON_Delete(j);
}

static void test_bad_values_name_the_key(void **state)
{
    (void)state;
    expect_error("{\"priority\": 1.5}", "priority", 0);
    expect_error("{\"priority\": 1000001}", "priority", 0);
    expect_error("{\"priority\": \"1\"}", "priority", 0);
    expect_error("{\"preemptible\": 0}", "preemptible", 0);
    expect_error("{\"max_runtime_s\": 0}", "max_runtime_s", 0);
    expect_error("{\"max_runtime_s\": null}", "max_runtime_s", 0);
    expect_error("{\"stall_timeout_s\": -1}", "stall_timeout_s", 0);
    expect_error("{\"stall_timeout_s\": 2e9}", "stall_timeout_s", 0);
    expect_error("{\"max_restarts\": 1001}", "max_restarts", 0);
    expect_error("{\"tags\": \"a\"}", "tags", 0);
    expect_error("{\"tags\": [\"a\", 2]}", "tags[1]", 0);
    expect_error("{\"tags\": [\"\"]}", "tags[0]", 0);
    expect_error("{\"tags\": [\"a\\u0001\"]}", "tags[0]", 0);
    expect_error("{\"tags\": [\"x\", \"y\", \"x\"]}", "tags[2]", 0);
    expect_error("{\"notes\": 1}", "notes", 0);
    char big[5000 + 20];
    snprintf(big, sizeof big, "{\"notes\": \"%04096d\"}", 0);
    expect_error(big, "notes", 0);
    char many[600] = "{\"tags\": [";
    for (int i = 0; i < 33; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%s\"t%d\"", i ? "," : "", i);
    strcat(many, "]}");
    expect_error(many, "tags", 0);
}

static void test_patch_check(void **state)
{
    (void)state;
    an_err e;
    cJSON *ok = js("{\"priority\": 4, \"tags\": [], \"notes\": \"\", \"name\": \"x\"}");
    assert_int_equal(cfg_sched_patch_check(ok, &e), 0);
    cJSON_Delete(ok);
    expect_error("{}", "", 1);
    expect_error("[1]", "", 1);
    expect_error("{\"steps\": 10}", "steps", 1);
    expect_error("{\"preemptible\": false}", "preemptible", 1); /* not a label */
    expect_error("{\"priority\": 2.5}", "priority", 1);
    expect_error("{\"name\": \"\"}", "name", 1);
    expect_error("{\"name\": null}", "name", 1);
    expect_error("{\"tags\": [\"a\", \"a\"]}", "tags[1]", 1);
    expect_error("{\"priority\": 1, \"priority\": 2}", "priority", 1);
}

static void test_patch_apply_changes_only_its_keys(void **state)
{
    (void)state;
    cJSON *spec = js("{\"name\": \"a\", \"steps\": 5, \"priority\": 0, \"tags\": [\"x\"],"
                     " \"notes\": \"\"}");
    cJSON *p = js("{\"priority\": 9, \"notes\": \"hello\"}");
    assert_int_equal(cfg_sched_patch_apply(spec, p), 0);
    char *t = cJSON_PrintUnformatted(spec);
    assert_string_equal(t, "{\"name\":\"a\",\"steps\":5,\"priority\":9,\"tags\":[\"x\"],"
                           "\"notes\":\"hello\"}");
    free(t);
    /* a spec stored before these keys existed gets them added */
    cJSON *old = js("{\"name\": \"a\"}");
    cJSON *p2 = js("{\"tags\": [\"t\"], \"name\": \"b\"}");
    assert_int_equal(cfg_sched_patch_apply(old, p2), 0);
    t = cJSON_PrintUnformatted(old);
    assert_string_equal(t, "{\"name\":\"b\",\"tags\":[\"t\"]}");
    free(t);
    cJSON_Delete(spec);
    cJSON_Delete(p);
    cJSON_Delete(old);
    cJSON_Delete(p2);
}

/* The queue: higher priority first, equal priorities by job number, whatever the order the
 * runs come in. */
static void test_queue_order(void **state)
{
    (void)state;
    jobmgr m;
    memset(&m, 0, sizeof m);
    job_run r[6];
    memset(r, 0, sizeof r);
    int prio[6] = {0, 5, 0, 5, -1, 9};
    for (int i = 0; i < 6; i++) {
        r[i].priority = prio[i];
        r[i].seq = i + 1;
        jobs_sched_insert(&m, &r[i]);
    }
    int want[6] = {5, 1, 3, 0, 2, 4};
    for (int i = 0; i < 6; i++)
        assert_ptr_equal(jobs_run_of(qtree_at(&m.queue, (size_t)i)), &r[want[i]]);
    assert_null(qtree_at(&m.queue, 6));
    /* an old job inserted late still goes before younger ones of its priority */
    job_run old;
    memset(&old, 0, sizeof old);
    old.priority = 5;
    old.seq = 0;
    jobs_sched_insert(&m, &old);
    assert_ptr_equal(jobs_run_of(qtree_at(&m.queue, 1)), &old);
    assert_ptr_equal(jobs_run_of(qtree_at(&m.queue, 6)), &r[4]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_values_round_trip),
        cmocka_unit_test(test_bad_values_name_the_key),
        cmocka_unit_test(test_patch_check),
        cmocka_unit_test(test_patch_apply_changes_only_its_keys),
        cmocka_unit_test(test_queue_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
