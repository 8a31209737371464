/* Unit tests of store/sweeps.c: sweep rows, trial links, rung records in order, and a delete
 * that refuses while a trial lives and takes the trials' jobs with it otherwise. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "api/jobjson.h"
#include "store/sweeps.h"
#include "store_fixture.h"

static const char *SPEC = "{\"model\":{\"type\":\"linear\",\"inputs\":1,\"outputs\":1}}";

static int64_t scalar(store_t *s, const char *sql)
{
    sqlite3_stmt *st;
    int64_t v = -1;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return -2;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void make_trial(fixture *f, const char *sweep, int trial, char id[STORE_ID_LEN])
{
    an_err e;
    store_job_new in = {.name = "t", .spec_json = SPEC, .total_steps = 10, .sweep_id = sweep,
                        .trial = trial};
    assert_int_equal(store_job_create(&f->s, &in, id, &e), 0);
}

static void test_create_get_list(void **state)
{
    fixture *f = *state;
    an_err e;
    char a[STORE_ID_LEN], b[STORE_ID_LEN];
    assert_int_equal(store_sweep_create(&f->s, "first", "{\"x\":1}", "[{},{}]", 2, a, &e), 0);
    assert_int_equal(store_sweep_create(&f->s, "second", "{\"x\":2}", "[{}]", 1, b, &e), 0);
    assert_string_equal(a, "s_000001");
    assert_string_equal(b, "s_000002");
    store_sweep w;
    assert_int_equal(store_sweep_get(&f->s, a, &w, &e), 0);
    assert_string_equal(w.name, "first");
    assert_string_equal(w.state, "running");
    assert_int_equal(w.ntrials, 2);
    assert_string_equal(w.trials_json, "[{},{}]");
    assert_string_equal(w.finished_at, "");
    store_sweep_free(&w);
    assert_int_equal(store_sweep_set_state(&f->s, a, "completed", &e), 0);
    assert_int_equal(store_sweep_get(&f->s, a, &w, &e), 0);
    assert_string_equal(w.state, "completed");
    assert_true(w.finished_at[0] != '\0');
    store_sweep_free(&w);

    store_sweep *all;
    size_t n;
    assert_int_equal(store_sweep_list(&f->s, 0, &all, &n, &e), 0);
    assert_int_equal(n, 2);
    assert_string_equal(all[0].id, b); /* newest first */
    store_sweep_list_free(all, n);
    assert_int_equal(store_sweep_list(&f->s, 1, &all, &n, &e), 0);
    assert_int_equal(n, 1); /* only the running one */
    assert_string_equal(all[0].id, b);
    store_sweep_list_free(all, n);
    /* an ended sweep is driven while one of its trials may run again: not when its trials
     * completed or were cancelled, but when one is stopped, paused or failed */
    char t0[STORE_ID_LEN], t1[STORE_ID_LEN];
    make_trial(f, a, 0, t0);
    make_trial(f, a, 1, t1);
    assert_int_equal(store_job_set_state(&f->s, t0, STORE_MASK_ALL, STORE_COMPLETED, NULL, NULL,
                                         &e), 0);
    static const store_job_state states[] = {STORE_CANCELLED, STORE_STOPPED, STORE_PAUSED,
                                             STORE_FAILED, STORE_QUEUED};
    for (size_t i = 0; i < sizeof states / sizeof *states; i++) {
        assert_int_equal(store_job_set_state(&f->s, t1, STORE_MASK_ALL, states[i], NULL, NULL,
                                             &e), 0);
        assert_int_equal(store_sweep_list(&f->s, 1, &all, &n, &e), 0);
        assert_int_equal(n, i == 0 ? 1 : 2);
        assert_string_equal(all[0].id, i == 0 ? b : a); /* oldest first */
        store_sweep_list_free(all, n);
    }

    assert_int_equal(store_sweep_get(&f->s, "s_000009", &w, &e), -ENOENT);
    assert_int_equal(store_sweep_set_state(&f->s, "s_000009", "cancelled", &e), -ENOENT);
    assert_int_not_equal(store_sweep_create(&f->s, "x", "[1]", "[]", 0, a, &e), 0);
    assert_string_equal(e.field, "spec");
}

static void test_trials_link_jobs(void **state)
{
    fixture *f = *state;
    an_err e;
    char s[STORE_ID_LEN], j0[STORE_ID_LEN], j1[STORE_ID_LEN], lone[STORE_ID_LEN];
    assert_int_equal(store_sweep_create(&f->s, "w", "{}", "[{},{},{}]", 3, s, &e), 0);
    make_trial(f, s, 1, j1);
    make_trial(f, s, 0, j0);
    assert_int_equal(make_job(&f->s, "alone", NULL, lone), 0);

    /* the same trial twice, or a sweep that does not exist: nothing is created */
    store_job_new dup = {.spec_json = SPEC, .sweep_id = s, .trial = 1};
    char x[STORE_ID_LEN];
    assert_int_equal(store_job_create(&f->s, &dup, x, &e), -EEXIST);
    store_job_new ghost = {.spec_json = SPEC, .sweep_id = "s_000077", .trial = 0};
    assert_int_equal(store_job_create(&f->s, &ghost, x, &e), -ENOENT);
    int64_t counts[STORE_NSTATES];
    assert_int_equal(store_job_counts(&f->s, counts, &e), 0);
    assert_int_equal(counts[STORE_QUEUED], 3);

    store_job j;
    assert_int_equal(store_job_get(&f->s, j1, &j, &e), 0);
    assert_string_equal(j.sweep, s);
    assert_int_equal(j.trial, 1);
    cJSON *o = api_job_json(&j);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(o, "sweep")), s);
    assert_int_equal(cJSON_GetObjectItem(o, "trial")->valueint, 1);
    cJSON_Delete(o);
    store_job_free(&j);
    assert_int_equal(store_job_get(&f->s, lone, &j, &e), 0);
    assert_string_equal(j.sweep, "");
    assert_int_equal(j.trial, -1);
    o = api_job_json(&j);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "sweep")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "trial")));
    cJSON_Delete(o);
    store_job_free(&j);

    store_job *jobs;
    size_t n;
    assert_int_equal(store_sweep_jobs(&f->s, s, &jobs, &n, &e), 0);
    assert_int_equal(n, 2);
    assert_string_equal(jobs[0].id, j0); /* by trial, not by creation */
    assert_string_equal(jobs[1].id, j1);
    store_job_list_free(jobs, n);
}

static void test_rungs_in_order(void **state)
{
    fixture *f = *state;
    an_err e;
    char s[STORE_ID_LEN];
    assert_int_equal(store_sweep_create(&f->s, "w", "{}", "[{},{}]", 2, s, &e), 0);
    store_sweep_rung r3 = {1, 100, 0.25, 3, 0}, r1 = {0, 100, 0.5, 1, 1}, r2 = {0, 300, NAN, 2, 1};
    assert_int_equal(store_sweep_rung_add(&f->s, s, &r3, &e), 0);
    assert_int_equal(store_sweep_rung_add(&f->s, s, &r1, &e), 0);
    assert_int_equal(store_sweep_rung_add(&f->s, s, &r2, &e), 0);
    assert_int_equal(store_sweep_rung_add(&f->s, "s_000042", &r1, &e), -ENOENT);
    store_sweep_rung *g;
    size_t n;
    assert_int_equal(store_sweep_rungs(&f->s, s, &g, &n, &e), 0);
    assert_int_equal(n, 3);
    assert_int_equal(g[0].seq, 1);
    assert_int_equal(g[0].trial, 0);
    assert_true(g[0].value == 0.5 && g[0].continues == 1);
    assert_int_equal(g[1].step, 300);
    assert_true(isnan(g[1].value)); /* a NaN metric is stored as null and reads back NaN */
    assert_int_equal(g[2].trial, 1);
    assert_true(g[2].value == 0.25 && g[2].continues == 0);
    free(g);
}

static void test_delete(void **state)
{
    fixture *f = *state;
    an_err e;
    char s[STORE_ID_LEN], other[STORE_ID_LEN], j0[STORE_ID_LEN], j1[STORE_ID_LEN],
        k0[STORE_ID_LEN];
    assert_int_equal(store_sweep_create(&f->s, "w", "{}", "[{},{}]", 2, s, &e), 0);
    assert_int_equal(store_sweep_create(&f->s, "v", "{}", "[{}]", 1, other, &e), 0);
    make_trial(f, s, 0, j0);
    make_trial(f, s, 1, j1);
    make_trial(f, other, 0, k0);
    store_sweep_rung r = {0, 10, 1.0, 1, 1};
    assert_int_equal(store_sweep_rung_add(&f->s, s, &r, &e), 0);

    /* running sweep: refused */
    assert_int_equal(store_sweep_delete(&f->s, s, NULL, NULL, &e), STORE_ESTATE);
    assert_string_equal(e.field, "state");
    assert_int_equal(store_sweep_set_state(&f->s, s, "cancelled", &e), 0);
    /* a trial still queued: refused, naming it, and nothing went */
    assert_int_equal(store_sweep_delete(&f->s, s, NULL, NULL, &e), STORE_ESTATE);
    assert_non_null(strstr(e.message, j0));
    store_job j;
    assert_int_equal(store_job_get(&f->s, j0, &j, &e), 0);
    store_job_free(&j);
    assert_int_equal(store_job_set_state(&f->s, j0, STORE_MASK_ALL, STORE_COMPLETED, NULL, NULL,
                                         &e), 0);
    assert_int_equal(store_job_set_state(&f->s, j1, STORE_MASK_ALL, STORE_STOPPED, NULL, NULL,
                                         &e), 0);
    char (*gone)[STORE_ID_LEN] = NULL;
    size_t ngone = 0;
    assert_int_equal(store_sweep_delete(&f->s, s, &gone, &ngone, &e), 0);
    /* the deleted trials are named, for their streams to be ended */
    assert_int_equal(ngone, 2);
    assert_true((strcmp(gone[0], j0) == 0 && strcmp(gone[1], j1) == 0) ||
                (strcmp(gone[0], j1) == 0 && strcmp(gone[1], j0) == 0));
    free(gone);
    assert_int_equal(store_sweep_get(&f->s, s, &(store_sweep){0}, &e), -ENOENT);
    assert_int_equal(store_job_get(&f->s, j0, &j, &e), -ENOENT);
    assert_int_equal(store_job_get(&f->s, j1, &j, &e), -ENOENT);
    store_sweep_rung *g;
    size_t n;
    assert_int_equal(store_sweep_rungs(&f->s, s, &g, &n, &e), 0);
    assert_int_equal(n, 0);
    free(g);
    /* the other sweep and its trial are untouched */
    assert_int_equal(store_job_get(&f->s, k0, &j, &e), 0);
    assert_string_equal(j.sweep, other);
    store_job_free(&j);
    assert_int_equal(store_sweep_delete(&f->s, "s_000099", NULL, NULL, &e), -ENOENT);
}

static void test_stopped_state(void **state)
{
    fixture *f = *state;
    an_err e;
    store_job_state st;
    assert_int_equal(store_state_parse("stopped", &st, &e), 0);
    assert_int_equal(st, STORE_STOPPED);
    assert_string_equal(store_state_name(STORE_STOPPED), "stopped");
    char id[STORE_ID_LEN];
    store_job_new in = {.name = "a", .spec_json = SPEC, .total_steps = 5};
    assert_int_equal(store_job_create(&f->s, &in, id, &e), 0);
    assert_int_equal(store_job_set_state(&f->s, id, STORE_MASK_ALL, STORE_STOPPED, NULL, NULL,
                                         &e), 0);
    store_job j;
    assert_int_equal(store_job_get(&f->s, id, &j, &e), 0);
    assert_int_equal(j.state, STORE_STOPPED);
    assert_true(j.finished_at[0] != '\0');
    store_job_free(&j);
    int64_t counts[STORE_NSTATES];
    assert_int_equal(store_job_counts(&f->s, counts, &e), 0);
    assert_int_equal(counts[STORE_STOPPED], 1);
    assert_int_equal(store_job_delete(&f->s, id, &e), 0); /* deletable like a finished job */
}

/* Why a trial could not start: kept per trial, the last record winning, gone with its
 * sweep; a store from before the table opens with it. */
static void test_trial_errors(void **state)
{
    fixture *f = *state;
    an_err e;
    char s[STORE_ID_LEN], other[STORE_ID_LEN];
    assert_int_equal(store_sweep_create(&f->s, "w", "{}", "[{},{},{}]", 3, s, &e), 0);
    assert_int_equal(store_sweep_create(&f->s, "v", "{}", "[{}]", 1, other, &e), 0);
    assert_int_equal(store_sweep_trial_error_set(&f->s, s, 1, "data.name: first", &e), 0);
    assert_int_equal(store_sweep_trial_error_set(&f->s, s, 1, "data.name: gone", &e), 0);
    assert_int_equal(store_sweep_trial_error_set(&f->s, s, 2, "x: y", &e), 0);
    assert_int_equal(store_sweep_trial_error_set(&f->s, other, 0, "z", &e), 0);
    assert_int_equal(store_sweep_trial_error_set(&f->s, "s_000099", 0, "z", &e), -ENOENT);
    char **errs = NULL;
    assert_int_equal(store_sweep_trial_errors(&f->s, s, 3, &errs, NULL, &e), 0);
    assert_null(errs[0]);
    assert_string_equal(errs[1], "data.name: gone");
    assert_string_equal(errs[2], "x: y");
    store_sweep_trial_errors_free(errs, 3);
    /* a trial past the count asked for is left out */
    assert_int_equal(store_sweep_trial_errors(&f->s, s, 2, &errs, NULL, &e), 0);
    assert_null(errs[0]);
    assert_non_null(errs[1]);
    store_sweep_trial_errors_free(errs, 2);

    assert_int_equal(store_sweep_set_state(&f->s, s, "completed", &e), 0);
    assert_int_equal(store_sweep_delete(&f->s, s, NULL, NULL, &e), 0);
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM sweep_trial_errors"), 1);
    assert_int_equal(store_sweep_trial_errors(&f->s, other, 1, &errs, NULL, &e), 0);
    assert_string_equal(errs[0], "z");
    store_sweep_trial_errors_free(errs, 1);

    /* schema 10, before the table (and the retries of schema 12) */
    assert_int_equal(sqlite3_exec(f->s.db, "DROP TABLE sweep_trial_errors; PRAGMA "
                                  "user_version=10", NULL, NULL, NULL), SQLITE_OK);
    store_close(&f->s);
    assert_int_equal(store_open(&f->s, f->path, &e), 0);
    assert_int_equal(store_sweep_trial_errors(&f->s, other, 1, &errs, NULL, &e), 0);
    assert_null(errs[0]);
    store_sweep_trial_errors_free(errs, 1);
    assert_int_equal(store_sweep_trial_error_set(&f->s, other, 0, "again", &e), 0);
}

static void assert_retry_flags(store_t *s, const char *id, int n, const int *want)
{
    an_err e;
    char **errs = NULL;
    int *retry = NULL;
    assert_int_equal(store_sweep_trial_errors(s, id, n, &errs, &retry, &e), 0);
    for (int k = 0; k < n; k++)
        assert_int_equal(retry[k], want[k]);
    store_sweep_trial_errors_free(errs, n);
    free(retry);
}

static void assert_sweep_state(store_t *s, const char *id, const char *state)
{
    an_err e;
    store_sweep w;
    assert_int_equal(store_sweep_get(s, id, &w, &e), 0);
    assert_string_equal(w.state, state);
    assert_true((w.finished_at[0] == '\0') == (strcmp(state, "running") == 0));
    store_sweep_free(&w);
}

/* A retry marks the trials that could not start and reopens a completed sweep; a trial that
 * starts loses its error, one that fails again is unmarked; nothing to retry, a cancelled
 * sweep and an unknown one change nothing. */
static void test_trial_retry(void **state)
{
    fixture *f = *state;
    an_err e;
    char s[STORE_ID_LEN], job[STORE_ID_LEN];
    int marked = -1, reopened = -1;
    assert_int_equal(store_sweep_create(&f->s, "w", "{}", "[{},{},{}]", 3, s, &e), 0);
    /* nothing could not start yet: nothing to retry, unless the caller has some */
    assert_int_equal(store_sweep_retry(&f->s, s, 0, &marked, &reopened, &e), STORE_ESTATE);
    assert_string_equal(e.field, "state");
    assert_non_null(strstr(e.message, "no trial that could not start"));
    assert_int_equal(store_sweep_retry(&f->s, s, 1, &marked, &reopened, &e), 0);
    assert_int_equal(marked, 0);
    assert_int_equal(reopened, 0); /* it was running */

    make_trial(f, s, 0, job);
    assert_int_equal(store_sweep_trial_error_set(&f->s, s, 1, "data.name: none", &e), 0);
    assert_int_equal(store_sweep_trial_error_set(&f->s, s, 2, "data.name: none", &e), 0);
    assert_int_equal(store_sweep_set_state(&f->s, s, "completed", &e), 0);
    assert_int_equal(store_sweep_retry(&f->s, s, 0, &marked, &reopened, &e), 0);
    assert_int_equal(marked, 2);
    assert_int_equal(reopened, 1);
    assert_sweep_state(&f->s, s, "running");
    assert_retry_flags(&f->s, s, 3, (const int[]){0, 1, 1});
    /* asked again before they start: nothing new */
    assert_int_equal(store_sweep_retry(&f->s, s, 0, &marked, &reopened, &e), STORE_ESTATE);
    assert_non_null(strstr(e.message, "2 trials that could not start wait"));

    /* trial 1 starts: its error goes; trial 2 fails again: its new error is not marked */
    make_trial(f, s, 1, job);
    assert_int_equal(store_sweep_trial_error_set(&f->s, s, 2, "data.name: still none", &e), 0);
    char **errs = NULL;
    assert_int_equal(store_sweep_trial_errors(&f->s, s, 3, &errs, NULL, &e), 0);
    assert_null(errs[1]);
    assert_string_equal(errs[2], "data.name: still none");
    store_sweep_trial_errors_free(errs, 3);
    assert_retry_flags(&f->s, s, 3, (const int[]){0, 0, 0});
    assert_int_equal(store_sweep_set_state(&f->s, s, "completed", &e), 0);
    assert_int_equal(store_sweep_retry(&f->s, s, 0, &marked, &reopened, &e), 0);
    assert_int_equal(marked, 1);
    assert_retry_flags(&f->s, s, 3, (const int[]){0, 0, 1});

    /* cancelled: refused, nothing changed */
    assert_int_equal(store_sweep_trial_error_set(&f->s, s, 2, "data.name: still none", &e), 0);
    assert_int_equal(store_sweep_set_state(&f->s, s, "cancelled", &e), 0);
    assert_int_equal(store_sweep_retry(&f->s, s, 0, &marked, &reopened, &e), STORE_ESTATE);
    assert_non_null(strstr(e.message, "cancelled"));
    assert_sweep_state(&f->s, s, "cancelled");
    assert_retry_flags(&f->s, s, 3, (const int[]){0, 0, 0});
    assert_int_equal(store_sweep_retry(&f->s, "s_000099", 0, &marked, &reopened, &e), -ENOENT);
}

/* A store of the schema before sweeps opens with the sweep tables and its jobs readable. */
static void test_migration_from_v3(void **state)
{
    fixture *f = *state;
    an_err e;
    char id[STORE_ID_LEN], s[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "old", NULL, id), 0);
    assert_int_equal(sqlite3_exec(f->s.db,
                                  "DROP TABLE sweep_rungs; DROP TABLE sweep_jobs;"
                                  "DROP TABLE sweeps; PRAGMA user_version=3;",
                                  NULL, NULL, NULL), SQLITE_OK);
    store_close(&f->s);
    assert_int_equal(store_open(&f->s, f->path, &e), 0);
    store_job j;
    assert_int_equal(store_job_get(&f->s, id, &j, &e), 0);
    assert_int_equal(j.trial, -1);
    store_job_free(&j);
    assert_int_equal(store_sweep_create(&f->s, "new", "{}", "[{}]", 1, s, &e), 0);
    char t[STORE_ID_LEN];
    make_trial(f, s, 0, t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_get_list, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_trials_link_jobs, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_rungs_in_order, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_delete, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_stopped_state, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_migration_from_v3, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_trial_errors, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_trial_retry, fixture_setup, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
