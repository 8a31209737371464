/* test_store_fp16 — fp16 loss-scale events: stored with metric batches and checkpoints in one
 * transaction, read back by range (led by the event in force at `from`), cut by a rewind,
 * gone with the job, bad events refused. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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

/* The CSV line of `step` (NULL if none); `csv` is NUL-terminated. */
static const char *csv_line(const char *csv, int64_t step)
{
    char key[32];
    snprintf(key, sizeof key, "\n%lld,", (long long)step);
    const char *p = strstr(csv, key);
    return p ? p + 1 : NULL;
}

/* The last two cells of a CSV line: the scale ("" for none) and the skipped flag. */
static void fp16_cells(const char *line, char *scale, size_t cap, int *skipped)
{
    const char *end = strchr(line, '\n');
    assert_non_null(end);
    const char *c2 = end;
    while (c2 > line && c2[-1] != ',')
        c2--;
    const char *c1 = c2 - 1;
    while (c1 > line && c1[-1] != ',')
        c1--;
    size_t n = (size_t)(c2 - 1 - c1);
    assert_true(n < cap);
    memcpy(scale, c1, n);
    scale[n] = '\0';
    assert_int_equal(end - c2, 1);
    *skipped = c2[0] - '0';
}

/* The CSV of a fp16 job: ",loss_scale,skipped" on every row, the scale in force at the step
 * and 1 on the skipped steps, across more events than a page (256) and rows than a 64 KiB
 * piece; a slice starts with the scale in force before it; a job without events keeps the
 * header it always had. */
static void test_csv_columns(void **state)
{
    fixture *f = *state;
    an_err e;
    char id[STORE_ID_LEN], plain[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "fp", NULL, id), 0);
    assert_int_equal(make_job(&f->s, "plain", NULL, plain), 0);
    enum { N = 6000 };
    store_metric *rows = malloc(N * sizeof *rows);
    store_fp16_event *ev = malloc(N * sizeof *ev);
    double *want = malloc((N + 1) * sizeof *want);
    int *skip = calloc(N + 1, sizeof *skip);
    assert_true(rows && ev && want && skip);
    rows_of(rows, 1, N);
    for (size_t i = 0; i < N; i++) {
        rows[i].n_lr = 1;
        rows[i].lr[0] = 0.001;
    }
    /* An event every 7th step (alternating scales, every third one skipped) and at step 1:
     * about 860 events. */
    size_t nev = 0;
    double scale = 65536;
    for (int64_t s = 1; s <= N; s++) {
        if (s == 1 || s % 7 == 0) {
            scale = scale == 65536 ? 32768 : 65536;
            ev[nev].step = s;
            ev[nev].loss_scale = scale;
            ev[nev].skipped = nev % 3 == 1;
            skip[s] = ev[nev].skipped;
            nev++;
        }
        want[s] = scale;
    }
    assert_true(nev > 256);
    /* In two appends, the second one the checkpoint's: h events are of the first half. */
    size_t h = 0;
    while (ev[h].step <= N / 2)
        h++;
    assert_int_equal(store_metrics_append_fp16(&f->s, id, rows, N / 2, NULL, 0, ev, h, NULL,
                                               &e), 0);
    store_keep keep = {.keep_last = 3};
    char blob[8] = "state";
    assert_int_equal(store_checkpoint_commit_fp16(&f->s, id, rows + N / 2, N - N / 2, NULL, 0,
                                                  ev + h, nev - h, N, 1.0, blob, sizeof blob,
                                                  &keep, NULL, &e), 0);
    assert_int_equal(store_metrics_append(&f->s, plain, rows, 10, NULL, &e), 0);

    char *csv = NULL;
    size_t len = 0;
    assert_int_equal(store_metrics_csv_buf(&f->s, id, 0, -1, &csv, &len, &e), 0);
    assert_true(len > 65536); /* more than one piece */
    assert_memory_equal(csv, "step,loss,lr0,grad_norm,time,loss_scale,skipped\n", 48);
    int lines = 0;
    for (const char *p = csv; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, N + 1);
    const char *l = strchr(csv, '\n') + 1;
    for (int64_t s = 1; s <= N; s++, l = strchr(l, '\n') + 1) {
        assert_int_equal(strtoll(l, NULL, 10), s);
        char sc[40];
        int sk = -1;
        fp16_cells(l, sc, sizeof sc, &sk);
        if (strtod(sc, NULL) != want[s] || sk != skip[s])
            fail_msg("step %lld: scale %s skipped %d, expected %g and %d", (long long)s, sc, sk,
                     want[s], skip[s]);
    }
    free(csv);

    /* A slice: its first row has the scale in force before it, and the same header. */
    assert_int_equal(store_metrics_csv_buf(&f->s, id, 1000, 1100, &csv, &len, &e), 0);
    assert_memory_equal(csv, "step,loss,lr0,grad_norm,time,loss_scale,skipped\n", 48);
    for (int64_t s = 1000; s <= 1100; s++) {
        char sc[40];
        int sk = -1;
        const char *ln = csv_line(csv, s);
        assert_non_null(ln);
        fp16_cells(ln, sc, sizeof sc, &sk);
        assert_true(strtod(sc, NULL) == want[s]);
        assert_int_equal(sk, skip[s]);
    }
    assert_null(csv_line(csv, 999));
    assert_null(csv_line(csv, 1101));
    free(csv);

    /* A job without fp16 events: the header of before. */
    assert_int_equal(store_metrics_csv_buf(&f->s, plain, 0, -1, &csv, &len, &e), 0);
    assert_memory_equal(csv, "step,loss,lr0,grad_norm,time\n1,", 31);
    free(csv);
    free(rows);
    free(ev);
    free(want);
    free(skip);
}

/* A database made before the table (schema 8: migration 8 -> 9 makes it) gets it on open. */
static void test_migration(void **state)
{
    fixture *f = *state;
    an_err e;
    assert_int_equal(sqlite3_exec(f->s.db, "DROP TABLE fp16_events;", NULL, NULL, NULL),
                     SQLITE_OK);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version=%d", 8);
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
        cmocka_unit_test_setup_teardown(test_csv_columns, fixture_setup, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
