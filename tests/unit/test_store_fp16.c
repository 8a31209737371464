/* test_store_fp16 — fp16 loss-scale events: stored with metric batches and checkpoints in one
 * transaction, read back by range (led by the event in force at `from`), cut by a rewind,
 * gone with the job, bad events refused. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store_fixture.h"
#include "store/fp16.h"

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

static void rows_of(store_metric *rows, int64_t first, size_t n)
{
    memset(rows, 0, n * sizeof *rows);
    for (size_t i = 0; i < n; i++) {
        rows[i].step = first + (int64_t)i;
        rows[i].loss = 1.0;
        rows[i].grad_norm = NAN;
    }
}

/* Steps 1..100 in two batches; events at 1 (65536), 2 (skipped, 32768), 3 (skipped, 16384),
 * 50 (32768), 80 (skipped, 16384). The second batch commits with a checkpoint at 100. */
static void fill(store_t *s, const char *id)
{
    an_err e;
    store_metric rows[50];
    store_fp16_event a[] = {{1, 65536, 0}, {2, 32768, 1}, {3, 16384, 1}};
    rows_of(rows, 1, 50);
    store_fp16_event a2[] = {{50, 32768, 0}};
    store_fp16_event all[4] = {a[0], a[1], a[2], a2[0]};
    assert_int_equal(store_metrics_append_fp16(s, id, rows, 50, NULL, 0, all, 4, NULL, &e), 0);
    rows_of(rows, 51, 50);
    store_fp16_event b[] = {{80, 16384, 1}};
    store_keep keep = {.keep_last = 3};
    char blob[16] = "state";
    assert_int_equal(store_checkpoint_commit_fp16(s, id, rows, 50, NULL, 0, b, 1, 100, 1.0,
                                                  blob, sizeof blob, &keep, NULL, &e), 0);
}

static void test_events_range(void **state)
{
    fixture *f = *state;
    an_err e;
    char id[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "fp", NULL, id), 0);
    store_fp16_event *ev = NULL;
    size_t n = 99;
    /* A job without events: none, no error. */
    assert_int_equal(store_fp16_events(&f->s, id, 0, -1, &ev, &n, &e), 0);
    assert_int_equal(n, 0);
    free(ev);
    fill(&f->s, id);
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM fp16_events"), 5);

    assert_int_equal(store_fp16_events(&f->s, id, 0, -1, &ev, &n, &e), 0);
    assert_int_equal(n, 5);
    assert_int_equal(ev[0].step, 1);
    assert_true(ev[0].loss_scale == 65536 && !ev[0].skipped);
    assert_int_equal(ev[2].step, 3);
    assert_true(ev[2].loss_scale == 16384 && ev[2].skipped);
    assert_int_equal(ev[4].step, 80);
    assert_true(ev[4].skipped);
    free(ev);

    /* From 10 to 79: the event in force at 10 (step 3's scale) leads, then step 50's. */
    assert_int_equal(store_fp16_events(&f->s, id, 10, 79, &ev, &n, &e), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ev[0].step, 3);
    assert_true(ev[0].loss_scale == 16384);
    assert_int_equal(ev[1].step, 50);
    free(ev);

    /* From exactly an event's step: that one, not the one before. */
    assert_int_equal(store_fp16_events(&f->s, id, 50, 50, &ev, &n, &e), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ev[0].step, 50);
    free(ev);

    assert_int_equal(store_fp16_events(&f->s, "nope", 0, -1, &ev, &n, &e), -ENOENT);
}

static void test_rewind_and_delete(void **state)
{
    fixture *f = *state;
    an_err e;
    char id[STORE_ID_LEN], other[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "fp", NULL, id), 0);
    assert_int_equal(make_job(&f->s, "fp2", NULL, other), 0);
    fill(&f->s, id);
    fill(&f->s, other);
    /* A rewind to step 60 drops step 80's event and keeps the rest. */
    assert_int_equal(store_job_rewind(&f->s, id, 60, STORE_QUEUED, &e), 0);
    store_fp16_event *ev = NULL;
    size_t n = 0;
    assert_int_equal(store_fp16_events(&f->s, id, 0, -1, &ev, &n, &e), 0);
    assert_int_equal(n, 4);
    assert_int_equal(ev[3].step, 50);
    free(ev);
    /* Rewound to 0: none. */
    assert_int_equal(store_job_rewind(&f->s, id, 0, STORE_QUEUED, &e), 0);
    assert_int_equal(store_fp16_events(&f->s, id, 0, -1, &ev, &n, &e), 0);
    assert_int_equal(n, 0);
    free(ev);
    /* Deleting the other job removes its events. */
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM fp16_events"), 5);
    assert_int_equal(store_job_set_state(&f->s, other, STORE_MASK_ALL, STORE_CANCELLED, NULL,
                                         NULL, &e), 0);
    assert_int_equal(store_job_delete(&f->s, other, &e), 0);
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM fp16_events"), 0);
}

static void test_bad_events(void **state)
{
    fixture *f = *state;
    an_err e;
    char id[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "fp", NULL, id), 0);
    store_metric rows[2];
    rows_of(rows, 1, 2);
    store_fp16_event bad[] = {{1, 1024, 0}, {2, 0, 1}};
    assert_int_equal(store_metrics_append_fp16(&f->s, id, rows, 2, NULL, 0, bad, 2, NULL, &e),
                     -EINVAL);
    assert_string_equal(e.field, "loss_scale");
    store_fp16_event nan[] = {{1, NAN, 0}};
    assert_int_equal(store_metrics_append_fp16(&f->s, id, rows, 2, NULL, 0, nan, 1, NULL, &e),
                     -EINVAL);
    store_fp16_event neg[] = {{-1, 2, 0}};
    assert_int_equal(store_metrics_append_fp16(&f->s, id, rows, 2, NULL, 0, neg, 1, NULL, &e),
                     -EINVAL);
    assert_string_equal(e.field, "step");
    assert_int_equal(store_metrics_append_fp16(&f->s, id, rows, 2, NULL, 0, NULL, 1, NULL, &e),
                     -EINVAL);
    /* Nothing stored: neither the rows nor the events. */
    int64_t c = -1;
    assert_int_equal(store_metrics_count(&f->s, id, &c, &e), 0);
    assert_int_equal(c, 0);
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM fp16_events"), 0);
}

/* A database made before the table (schema one step back) gets it on open. */
static void test_migration(void **state)
{
    fixture *f = *state;
    an_err e;
    assert_int_equal(sqlite3_exec(f->s.db, "DROP TABLE fp16_events;", NULL, NULL, NULL),
                     SQLITE_OK);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version=%d", store_schema_version() - 1);
    assert_int_equal(sqlite3_exec(f->s.db, sql, NULL, NULL, NULL), SQLITE_OK);
    store_close(&f->s);
    assert_int_equal(store_open(&f->s, f->path, &e), 0);
    assert_int_equal(scalar(&f->s, "PRAGMA user_version"), store_schema_version());
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM fp16_events"), 0);
    /* Idempotent: running it on a file that has the table already is no error. */
    assert_int_equal(sqlite3_exec(f->s.db, sql, NULL, NULL, NULL), SQLITE_OK);
    store_close(&f->s);
    assert_int_equal(store_open(&f->s, f->path, &e), 0);
    assert_int_equal(scalar(&f->s, "PRAGMA user_version"), store_schema_version());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_events_range, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_rewind_and_delete, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_bad_events, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_migration, fixture_setup, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
