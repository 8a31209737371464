/* test_store — the SQLite store: schema and migrations, job rows, data sets, errors,
 * concurrent writers from two threads, a full database. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "api/jobjson.h"
#include "store_fixture.h"

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

static int is_iso_utc(const char *t)
{
    /* YYYY-MM-DDTHH:MM:SSZ */
    if (strlen(t) != 20 || t[4] != '-' || t[7] != '-' || t[10] != 'T' || t[13] != ':' ||
        t[16] != ':' || t[19] != 'Z')
        return 0;
    return 1;
}

static void test_migrations_fresh_and_reopen(void **state)
{
    fixture *f = *state;
    assert_int_equal(scalar(&f->s, "PRAGMA user_version"), store_schema_version());
    assert_true(store_schema_version() >= 1);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(f->s.db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    assert_int_equal(scalar(&f->s, "PRAGMA foreign_keys"), 1);
    assert_int_equal(scalar(&f->s, "PRAGMA synchronous"), 1); /* NORMAL */
    /* the connections whose writes clients are told are done: FULL */
    an_err de;
    assert_int_equal(store_durable(&f->s, 1, &de), 0);
    assert_int_equal(scalar(&f->s, "PRAGMA synchronous"), 2);
    assert_int_equal(store_durable(&f->s, 0, &de), 0); /* and back, for the workers */
    assert_int_equal(scalar(&f->s, "PRAGMA synchronous"), 1);

    char id[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "a", NULL, id), 0);
    store_close(&f->s);
    store_close(&f->s); /* twice is harmless */

    an_err e;
    assert_int_equal(store_open(&f->s, f->path, &e), 0);
    assert_int_equal(scalar(&f->s, "PRAGMA user_version"), store_schema_version());
    store_job j;
    assert_int_equal(store_job_get(&f->s, id, &j, &e), 0);
    assert_string_equal(j.name, "a");
    store_job_free(&j);

    /* A database from a newer schema is refused, not misread. */
    assert_int_equal(sqlite3_exec(f->s.db, "PRAGMA user_version=999", NULL, NULL, NULL), SQLITE_OK);
    store_close(&f->s);
    assert_int_equal(store_open(&f->s, f->path, &e), -EPROTO);
    assert_non_null(strstr(e.message, "999"));
    assert_null(f->s.db);
    /* Put it back for teardown. */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version=%d", store_schema_version());
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(store_open(&f->s, f->path, &e), 0);
}

static void test_open_bad_path(void **state)
{
    (void)state;
    store_t s;
    an_err e;
    assert_int_not_equal(store_open(&s, "/nonexistent-dir/x/y.db", &e), 0);
    assert_null(s.db);
    assert_int_equal(store_open(&s, "", &e), -EINVAL);
    store_close(&s);
}

static void test_not_a_database(void **state)
{
    fixture *f = *state;
    char p[128];
    snprintf(p, sizeof p, "%s/junk.db", f->dir);
    FILE *fp = fopen(p, "wb");
    assert_non_null(fp);
    for (int i = 0; i < 4096; i++)
        fputc('x', fp);
    fclose(fp);
    store_t s;
    an_err e;
    assert_int_equal(store_open(&s, p, &e), -EPROTO);
    assert_null(s.db);
}

static void test_job_lifecycle(void **state)
{
    fixture *f = *state;
    an_err e;
    char id[STORE_ID_LEN];
    store_job_new in = {.name = "warmup-demo",
                        .spec_json = "{\"a\":1}",
                        .total_steps = 1000,
                        .resume_from_json = "{\"job\":\"j_000001\",\"step\":4}"};
    assert_int_equal(store_job_create(&f->s, &in, id, &e), 0);
    assert_string_equal(id, "j_000001");

    store_job j;
    assert_int_equal(store_job_get(&f->s, id, &j, &e), 0);
    assert_int_equal(j.state, STORE_QUEUED);
    assert_true(is_iso_utc(j.created_at));
    assert_string_equal(j.started_at, "");
    assert_string_equal(j.finished_at, "");
    assert_true(isnan(j.loss));
    assert_int_equal(j.last_checkpoint_step, -1);
    assert_int_equal(j.total_steps, 1000);
    assert_string_equal(j.warnings_json, "[]");
    assert_null(j.error);
    store_job_free(&j);

    store_job_state prev;
    assert_int_equal(store_job_set_state(&f->s, id, STORE_MASK(STORE_QUEUED), STORE_RUNNING, NULL,
                                         &prev, &e), 0);
    assert_int_equal(prev, STORE_QUEUED);
    /* Not queued any more: a conditional transition from queued fails and changes nothing. */
    assert_int_equal(store_job_set_state(&f->s, id, STORE_MASK(STORE_QUEUED), STORE_PAUSED, NULL,
                                         NULL, &e), STORE_ESTATE);

    store_progress p = {.step = 420, .epoch = 3, .loss = 0.0214, .n_lr = 2,
                        .lr = {0.0023, 0.001}, .samples_per_sec = 81234.5};
    assert_int_equal(store_job_progress(&f->s, id, &p, &e), 0);
    assert_int_equal(store_job_get(&f->s, id, &j, &e), 0);
    assert_int_equal(j.state, STORE_RUNNING);
    assert_true(is_iso_utc(j.started_at));
    assert_int_equal(j.step, 420);
    assert_int_equal(j.epoch, 3);
    assert_true(j.loss == 0.0214);
    assert_int_equal(j.n_lr, 2);
    assert_true(j.lr[0] == 0.0023 && j.lr[1] == 0.001);
    assert_true(j.samples_per_sec == 81234.5);

    cJSON *o = api_job_json(&j);
    assert_non_null(o);
    assert_string_equal(cJSON_GetObjectItem(o, "id")->valuestring, id);
    assert_string_equal(cJSON_GetObjectItem(o, "state")->valuestring, "running");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "finished_at")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "last_checkpoint_step")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "error")));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "lr")), 2);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "spec"), "a")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "resume_from"), "step")->valueint, 4);
    assert_true(cJSON_IsArray(cJSON_GetObjectItem(o, "warnings")));
    assert_int_equal(cJSON_GetObjectItem(o, "step")->valueint, 420);
    cJSON_Delete(o);
    store_job_free(&j);

    assert_int_equal(store_job_set_state(&f->s, id, STORE_MASK_ALL, STORE_FAILED,
                                         "loss became NaN at step 421", NULL, &e), 0);
    assert_int_equal(store_job_get(&f->s, id, &j, &e), 0);
    assert_int_equal(j.state, STORE_FAILED);
    assert_true(is_iso_utc(j.finished_at));
    assert_string_equal(j.error, "loss became NaN at step 421");
    store_job_free(&j);

    /* Resuming a failed job clears finished_at and the error. */
    assert_int_equal(store_job_set_state(&f->s, id, STORE_MASK_FINISHED, STORE_QUEUED, NULL,
                                         NULL, &e), 0);
    assert_int_equal(store_job_get(&f->s, id, &j, &e), 0);
    assert_string_equal(j.finished_at, "");
    assert_null(j.error);
    assert_true(is_iso_utc(j.started_at)); /* kept from the first run */
    store_job_free(&j);

    assert_int_equal(store_job_set_state(&f->s, id, STORE_MASK_ALL, (store_job_state)9, NULL,
                                         NULL, &e), -EINVAL);
}

static void test_create_rejects_bad_input(void **state)
{
    fixture *f = *state;
    an_err e;
    store_job_new in = {.name = "x", .spec_json = "[1,2]", .total_steps = 1};
    assert_int_equal(store_job_create(&f->s, &in, NULL, &e), -EINVAL);
    assert_string_equal(e.field, "spec");
    in.spec_json = "{\"a\":";
    assert_int_equal(store_job_create(&f->s, &in, NULL, &e), -EINVAL);
    in.spec_json = NULL;
    assert_int_equal(store_job_create(&f->s, &in, NULL, &e), -EINVAL);
    in.spec_json = "{}";
    in.warnings_json = "{}";
    assert_int_equal(store_job_create(&f->s, &in, NULL, &e), -EINVAL);
    in.warnings_json = NULL;
    in.total_steps = -5;
    assert_int_equal(store_job_create(&f->s, &in, NULL, &e), -EINVAL);
    in.total_steps = 5;
    in.resume_from_json = "7";
    assert_int_equal(store_job_create(&f->s, &in, NULL, &e), -EINVAL);
    assert_int_equal(store_job_create(&f->s, NULL, NULL, &e), -EINVAL);

    store_job *jobs;
    size_t n;
    int64_t total;
    assert_int_equal(store_job_list(&f->s, STORE_MASK_ALL, -1, 0, &jobs, &n, &total, &e), 0);
    assert_int_equal(total, 0);
    assert_int_equal(n, 0);
    store_job_list_free(jobs, n);

    store_job_state st;
    assert_int_equal(store_state_parse("paused", &st, &e), 0);
    assert_int_equal(st, STORE_PAUSED);
    assert_int_equal(store_state_parse("Paused", &st, &e), -EINVAL);
    assert_int_equal(store_state_parse(NULL, &st, &e), -EINVAL);
    assert_null(store_state_name((store_job_state)STORE_NSTATES));
}

static void test_list_filters_paging_order(void **state)
{
    fixture *f = *state;
    an_err e;
    char ids[6][STORE_ID_LEN];
    for (int i = 0; i < 6; i++)
        assert_int_equal(make_job(&f->s, "job", NULL, ids[i]), 0);
    /* jobs 2 and 5 (index 1, 4) run; job 6 completes */
    assert_int_equal(store_job_set_state(&f->s, ids[1], STORE_MASK_ALL, STORE_RUNNING, NULL, NULL, &e), 0);
    assert_int_equal(store_job_set_state(&f->s, ids[4], STORE_MASK_ALL, STORE_RUNNING, NULL, NULL, &e), 0);
    assert_int_equal(store_job_set_state(&f->s, ids[5], STORE_MASK_ALL, STORE_COMPLETED, NULL, NULL, &e), 0);

    store_job *jobs;
    size_t n;
    int64_t total;
    assert_int_equal(store_job_list(&f->s, STORE_MASK_ALL, 2, 1, &jobs, &n, &total, &e), 0);
    assert_int_equal(total, 6);
    assert_int_equal(n, 2);
    assert_string_equal(jobs[0].id, ids[4]); /* newest first, one skipped */
    assert_string_equal(jobs[1].id, ids[3]);
    store_job_list_free(jobs, n);

    assert_int_equal(store_job_list(&f->s, STORE_MASK(STORE_RUNNING), 50, 0, &jobs, &n, &total, &e), 0);
    assert_int_equal(total, 2);
    assert_int_equal(n, 2);
    assert_string_equal(jobs[0].id, ids[4]);
    assert_string_equal(jobs[1].id, ids[1]);
    assert_int_equal(jobs[0].state, STORE_RUNNING);
    store_job_list_free(jobs, n);

    assert_int_equal(store_job_list(&f->s, STORE_MASK_ALL, 10, 100, &jobs, &n, &total, &e), 0);
    assert_int_equal(n, 0);
    assert_int_equal(total, 6);
    store_job_list_free(jobs, n);
    assert_int_equal(store_job_list(&f->s, STORE_MASK_ALL, 10, -1, &jobs, &n, &total, &e), -EINVAL);

    int64_t counts[STORE_NSTATES];
    assert_int_equal(store_job_counts(&f->s, counts, &e), 0);
    assert_int_equal(counts[STORE_QUEUED], 3);
    assert_int_equal(counts[STORE_RUNNING], 2);
    assert_int_equal(counts[STORE_COMPLETED], 1);
    assert_int_equal(counts[STORE_FAILED], 0);

    /* Restart recovery: running jobs become queued. */
    char(*rid)[STORE_ID_LEN];
    assert_int_equal(store_job_ids(&f->s, STORE_MASK(STORE_RUNNING), &rid, &n, &e), 0);
    assert_int_equal(n, 2);
    assert_string_equal(rid[0], ids[1]); /* oldest first */
    assert_string_equal(rid[1], ids[4]);
    free(rid);
    size_t moved = 0;
    assert_int_equal(store_job_requeue_running(&f->s, &moved, &e), 0);
    assert_int_equal(moved, 2);
    assert_int_equal(store_job_counts(&f->s, counts, &e), 0);
    assert_int_equal(counts[STORE_QUEUED], 5);
    assert_int_equal(counts[STORE_RUNNING], 0);
}

static void test_ids_never_reused(void **state)
{
    fixture *f = *state;
    an_err e;
    char a[STORE_ID_LEN], b[STORE_ID_LEN], c[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "a", NULL, a), 0);
    assert_int_equal(make_job(&f->s, "b", NULL, b), 0);
    assert_int_equal(store_job_set_state(&f->s, b, STORE_MASK_ALL, STORE_CANCELLED, NULL, NULL, &e), 0);
    assert_int_equal(store_job_delete(&f->s, b, &e), 0);
    assert_int_equal(make_job(&f->s, "c", NULL, c), 0);
    assert_string_equal(a, "j_000001");
    assert_string_equal(b, "j_000002");
    assert_string_equal(c, "j_000003");
}

static void test_delete_job_removes_everything(void **state)
{
    fixture *f = *state;
    an_err e;
    char id[STORE_ID_LEN], other[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "a", NULL, id), 0);
    assert_int_equal(make_job(&f->s, "keep", NULL, other), 0);
    store_metric rows[10];
    for (int i = 0; i < 10; i++)
        rows[i] = (store_metric){.step = i + 1, .loss = 1.0 / (i + 1), .n_lr = 1, .lr = {0.1}};
    assert_int_equal(store_metrics_append(&f->s, id, rows, 10, NULL, &e), 0);
    assert_int_equal(store_metrics_append(&f->s, other, rows, 10, NULL, &e), 0);
    store_val_metric v = {.step = 5, .val_loss = 0.5, .val_acc = 0.9};
    assert_int_equal(store_val_append(&f->s, id, &v, 1, &e), 0);
    f->s.chunk_size = 7;
    assert_int_equal(store_checkpoint_commit(&f->s, id, 10, 0.1, "0123456789abcdef", 16, 0, NULL, &e), 0);
    assert_int_equal(store_checkpoint_commit(&f->s, other, 10, 0.1, "0123456789", 10, 0, NULL, &e), 0);

    /* Not finished: refused, nothing deleted. */
    assert_int_equal(store_job_delete(&f->s, id, &e), STORE_ESTATE);
    assert_int_equal(scalar(&f->s, "SELECT coalesce(sum(nrows), 0) FROM metric_blocks WHERE job=1"), 10);

    assert_int_equal(store_job_set_state(&f->s, id, STORE_MASK_ALL, STORE_COMPLETED, NULL, NULL, &e), 0);
    assert_int_equal(store_job_delete(&f->s, id, &e), 0);
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM jobs WHERE num=1"), 0);
    assert_int_equal(scalar(&f->s, "SELECT coalesce(sum(nrows), 0) FROM metric_blocks WHERE job=1"), 0);
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM val_metrics WHERE job=1"), 0);
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM checkpoints WHERE job=1"), 0);
    /* Only the other job's 2 chunks remain. */
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM checkpoint_chunks"), 2);
    assert_int_equal(scalar(&f->s, "SELECT coalesce(sum(nrows), 0) FROM metric_blocks WHERE job=2"), 10);
    store_job j;
    assert_int_equal(store_job_get(&f->s, id, &j, &e), -ENOENT);
    assert_int_equal(store_job_delete(&f->s, id, &e), -ENOENT);
}

static void test_unknown_ids(void **state)
{
    fixture *f = *state;
    an_err e;
    const char *u = "j_999999";
    store_job j;
    store_progress p = {0};
    store_metric m = {.step = 1};
    store_series ser;
    int64_t c;
    void *buf;
    size_t len, n;
    store_checkpoint_info *ci;
    assert_int_equal(store_job_get(&f->s, u, &j, &e), -ENOENT);
    assert_non_null(strstr(e.message, u));
    assert_int_equal(store_job_get(&f->s, NULL, &j, &e), -EINVAL);
    assert_int_equal(store_job_progress(&f->s, u, &p, &e), -ENOENT);
    assert_int_equal(store_job_set_state(&f->s, u, STORE_MASK_ALL, STORE_RUNNING, NULL, NULL, &e), -ENOENT);
    assert_int_equal(store_job_delete(&f->s, u, &e), -ENOENT);
    assert_int_equal(store_job_rewind(&f->s, u, 0, STORE_QUEUED, &e), -ENOENT);
    assert_int_equal(store_metrics_append(&f->s, u, &m, 1, NULL, &e), -ENOENT);
    assert_int_equal(store_metrics_query(&f->s, u, 0, -1, 0, &ser, &e), -ENOENT);
    assert_int_equal(store_metrics_count(&f->s, u, &c, &e), -ENOENT);
    assert_int_equal(store_checkpoint_commit(&f->s, u, 1, 0, "x", 1, 0, NULL, &e), -ENOENT);
    assert_int_equal(store_checkpoint_read(&f->s, u, -1, &buf, &len, NULL, &e), -ENOENT);
    assert_int_equal(store_checkpoint_list(&f->s, u, &ci, &n, &e), -ENOENT);
    store_dataset d;
    char *csv;
    assert_int_equal(store_dataset_get(&f->s, "d_000001", &d, &e), -ENOENT);
    assert_int_equal(store_dataset_text(&f->s, "nope", &csv, &len, &e), -ENOENT);
    assert_int_equal(store_dataset_delete(&f->s, "nope", &e), -ENOENT);
    /* A failed lookup leaves no transaction open: a write still works. */
    char id[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "after", NULL, id), 0);
    assert_string_equal(store_strerror(STORE_EINUSE), "STORE_EINUSE");
    assert_string_equal(store_strerror(-ENOSPC), "ENOSPC");
}

/* An uploaded text keeps its vocabulary (schema 8: datasets.vocab); a CSV data set has none.
 * Migration 7 -> 8 may run again over a database that has the column (idempotent). */
static void test_dataset_vocab(void **state)
{
    fixture *f = *state;
    an_err e;
    int64_t num;
    char id[STORE_ID_LEN];
    const char *text = "abcab", *vocab = "{\"tokenizer\":\"char\",\"size\":3,\"tokens\":[\"a\",\"b\",\"c\"]}";
    assert_int_equal(store_upload_open(&f->s, &num, &e), 0);
    assert_int_equal(store_upload_part(&f->s, num, 0, text, 5, &e), 0);
    assert_int_equal(store_upload_finish(&f->s, num, "poem", 5, 5, "[]", vocab, id, &e), 0);
    assert_int_equal(store_upload_open(&f->s, &num, &e), 0);
    assert_int_equal(store_upload_part(&f->s, num, 0, "a\n1\n", 4, &e), 0);
    assert_int_equal(store_upload_finish(&f->s, num, "table", 4, 1, "[\"a\"]", NULL, NULL, &e), 0);
    for (int again = 0; again < 2; again++) {
        store_dataset d;
        assert_int_equal(store_dataset_get(&f->s, "poem", &d, &e), 0);
        assert_string_equal(d.id, id);
        assert_non_null(d.vocab_json);
        assert_string_equal(d.vocab_json, vocab);
        store_dataset_free(&d);
        assert_null(d.vocab_json);
        assert_int_equal(store_dataset_get(&f->s, "table", &d, &e), 0);
        assert_null(d.vocab_json);
        store_dataset_free(&d);
        store_dataset *list;
        size_t n;
        assert_int_equal(store_dataset_list(&f->s, &list, &n, &e), 0);
        assert_int_equal(n, 2);
        assert_string_equal(list[0].vocab_json, vocab);
        assert_null(list[1].vocab_json);
        store_dataset_list_free(list, n);
        /* back to schema 7 with the column in place: reopening migrates again */
        assert_int_equal(sqlite3_exec(f->s.db, "PRAGMA user_version=7", NULL, NULL, NULL), SQLITE_OK);
        store_close(&f->s);
        assert_int_equal(store_open(&f->s, f->path, &e), 0);
        assert_int_equal(scalar(&f->s, "PRAGMA user_version"), store_schema_version());
    }
}

static void test_datasets(void **state)
{
    fixture *f = *state;
    an_err e;
    const char *csv = "x,y\n1,2\n3,4\n5,6\n";
    char did[STORE_ID_LEN];
    assert_int_equal(store_dataset_create(&f->s, "tiny", csv, strlen(csv), 3, "[\"x\",\"y\"]", did, &e), 0);
    assert_string_equal(did, "d_000001");
    assert_int_equal(store_dataset_create(&f->s, "tiny", csv, strlen(csv), 3, "[\"x\",\"y\"]", NULL, &e), -EEXIST);
    assert_int_equal(store_dataset_create(&f->s, "", csv, strlen(csv), 3, "[]", NULL, &e), -EINVAL);
    assert_int_equal(store_dataset_create(&f->s, "bad", csv, strlen(csv), 3, "{\"x\":1}", NULL, &e), -EINVAL);
    assert_int_equal(store_dataset_create(&f->s, "huge", csv, ((size_t)256 << 20) + 1, 3, "[]", NULL, &e), -E2BIG);

    store_dataset d;
    assert_int_equal(store_dataset_get(&f->s, "tiny", &d, &e), 0);
    assert_string_equal(d.id, did);
    assert_int_equal(d.rows, 3);
    assert_int_equal(d.bytes, (int64_t)strlen(csv));
    cJSON *o = cJSON_Parse(d.columns_json);
    assert_non_null(o);
    assert_int_equal(cJSON_GetArraySize(o), 2);
    assert_string_equal(d.name, "tiny");
    cJSON_Delete(o);
    store_dataset_free(&d);
    assert_int_equal(store_dataset_get(&f->s, did, &d, &e), 0);
    assert_string_equal(d.name, "tiny");
    store_dataset_free(&d);

    char *text;
    size_t len;
    assert_int_equal(store_dataset_text(&f->s, did, &text, &len, &e), 0);
    assert_int_equal(len, strlen(csv));
    assert_string_equal(text, csv);
    free(text);

    char id2[STORE_ID_LEN];
    assert_int_equal(store_dataset_create(&f->s, "second", "a\n1\n", 4, 1, "[\"a\"]", id2, &e), 0);
    store_dataset *list;
    size_t n;
    assert_int_equal(store_dataset_list(&f->s, &list, &n, &e), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].name, "tiny");
    assert_string_equal(list[1].name, "second");
    store_dataset_list_free(list, n);

    /* A queued job refers to it by name: delete refused by id and by name. */
    char jid[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "uses", "tiny", jid), 0);
    assert_int_equal(store_dataset_delete(&f->s, did, &e), STORE_EINUSE);
    assert_non_null(strstr(e.message, jid));
    assert_int_equal(store_dataset_delete(&f->s, "tiny", &e), STORE_EINUSE);
    assert_int_equal(store_job_set_state(&f->s, jid, STORE_MASK_ALL, STORE_PAUSED, NULL, NULL, &e), 0);
    assert_int_equal(store_dataset_delete(&f->s, "tiny", &e), STORE_EINUSE);
    /* Finished: allowed. */
    assert_int_equal(store_job_set_state(&f->s, jid, STORE_MASK_ALL, STORE_COMPLETED, NULL, NULL, &e), 0);
    assert_int_equal(store_dataset_delete(&f->s, "tiny", &e), 0);
    assert_int_equal(store_dataset_get(&f->s, did, &d, &e), -ENOENT);
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM dataset_text"), 1);

    /* Referenced by id. */
    char jid2[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "uses2", id2, jid2), 0);
    assert_int_equal(store_dataset_delete(&f->s, "second", &e), STORE_EINUSE);
}

/* An abandoned upload whose parts the store refused to delete (here a connection that may not
 * write; in the daemon, a full disk) is deleted by store_upload_retry once the store takes it.
 * The daemon asks twice for a failed piece's upload (the piece, then the request's end): it
 * is still one upload to retry, so the bounded list of them holds each once. */
static void test_abandoned_upload_retried(void **state)
{
    fixture *f = *state;
    an_err e;
    int64_t num = 0;
    assert_int_equal(store_upload_open(&f->s, &num, &e), 0);
    assert_int_equal(store_upload_part(&f->s, num, 0, "x,y\n", 4, &e), 0);
    assert_int_equal(store_upload_part(&f->s, num, 1, "1,2\n", 4, &e), 0);
    assert_int_equal(sqlite3_exec(f->s.db, "PRAGMA query_only=ON", NULL, NULL, NULL), SQLITE_OK);
    assert_int_not_equal(store_upload_abort(&f->s, num, &e), 0);
    assert_int_not_equal(store_upload_abort(&f->s, num, &e), 0);
    int done = -1;
    assert_int_not_equal(store_upload_retry(&f->s, &done, &e), 0); /* still refused */
    assert_int_equal(done, 0);
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM dataset_parts"), 2);
    assert_int_equal(sqlite3_exec(f->s.db, "PRAGMA query_only=OFF", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(store_upload_retry(&f->s, &done, &e), 0);
    assert_int_equal(done, 1);
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM dataset_parts"), 0);
    assert_int_equal(store_upload_retry(&f->s, &done, &e), 0); /* nothing left */
    assert_int_equal(done, 0);
}

/* ---- two writers on two threads ------------------------------------------------------- */

typedef struct writer_arg {
    const char *path;
    int failures;
    int first_rc;
    char msg[512];
    char id[STORE_ID_LEN];
} writer_arg;

static void *writer(void *p)
{
    writer_arg *a = p;
    store_t s;
    an_err e;
    int rc = store_open(&s, a->path, &e);
    if (rc) {
        a->failures++;
        a->first_rc = rc;
        snprintf(a->msg, sizeof a->msg, "%s", e.message);
        return NULL;
    }
    rc = make_job(&s, "w", NULL, a->id);
    if (rc)
        a->failures++;
    store_metric rows[20];
    char blob[4096];
    memset(blob, 'z', sizeof blob);
    for (int b = 0; !rc && b < 100; b++) {
        for (int i = 0; i < 20; i++)
            rows[i] = (store_metric){.step = b * 20 + i + 1, .loss = 1.0, .n_lr = 1, .lr = {0.01}};
        store_progress pr = {.step = b * 20 + 20, .n_lr = 1, .lr = {0.01}, .loss = 1.0};
        int r = store_metrics_append(&s, a->id, rows, 20, &pr, &e);
        if (!r && b % 10 == 9)
            r = store_checkpoint_commit(&s, a->id, b * 20 + 20, 1.0, blob, sizeof blob, 2, &pr, &e);
        if (!r) {
            store_job j;
            r = store_job_get(&s, a->id, &j, &e);
            store_job_free(&j);
        }
        if (r) {
            if (!a->failures++) {
                a->first_rc = r;
                snprintf(a->msg, sizeof a->msg, "%s", e.message);
            }
        }
    }
    store_close(&s);
    return NULL;
}

static void test_two_threads_write_concurrently(void **state)
{
    fixture *f = *state;
    writer_arg a[2] = {{.path = f->path}, {.path = f->path}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, writer, &a[i]), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    for (int i = 0; i < 2; i++) {
        if (a[i].failures)
            fprintf(stderr, "writer %d: rc %d: %s\n", i, a[i].first_rc, a[i].msg);
        assert_int_equal(a[i].failures, 0);
        int64_t c;
        an_err e;
        assert_int_equal(store_metrics_count(&f->s, a[i].id, &c, &e), 0);
        assert_int_equal(c, 2000);
        store_checkpoint_info *ci;
        size_t n;
        assert_int_equal(store_checkpoint_list(&f->s, a[i].id, &ci, &n, &e), 0);
        assert_int_equal(n, 2);
        assert_int_equal(ci[1].step, 2000);
        free(ci);
    }
    assert_string_not_equal(a[0].id, a[1].id);
}

/* Two threads opening the same fresh file at once: one migrates, the other sees it done. */
typedef struct opener_arg {
    const char *path;
    int rc;
    int version;
} opener_arg;

static void *opener(void *p)
{
    opener_arg *a = p;
    store_t s;
    a->rc = store_open(&s, a->path, NULL);
    if (!a->rc) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(s.db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK) {
            if (sqlite3_step(st) == SQLITE_ROW)
                a->version = sqlite3_column_int(st, 0);
            sqlite3_finalize(st);
        }
        a->rc = make_job(&s, "o", NULL, NULL);
    }
    store_close(&s);
    return NULL;
}

static void test_concurrent_open_of_fresh_file(void **state)
{
    fixture *f = *state;
    char path[128];
    snprintf(path, sizeof path, "%s/fresh.db", f->dir);
    opener_arg a[2] = {{.path = path}, {.path = path}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, opener, &a[i]), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(a[i].rc, 0);
        assert_int_equal(a[i].version, store_schema_version());
    }
    store_t s;
    an_err e;
    assert_int_equal(store_open(&s, path, &e), 0);
    int64_t counts[STORE_NSTATES];
    assert_int_equal(store_job_counts(&s, counts, &e), 0);
    assert_int_equal(counts[STORE_QUEUED], 2);
    int64_t bytes = 0;
    assert_int_equal(store_size(&s, &bytes, &e), 0);
    assert_true(bytes >= 16384);
    assert_int_equal(store_maintain(&s, &e), 0);
    store_close(&s);
}

/* ---- a full database ----------------------------------------------------------------- */

static void test_full_database_enospc(void **state)
{
    fixture *f = *state;
    an_err e;
    char id[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "full", NULL, id), 0);
    store_metric rows[50];
    for (int i = 0; i < 50; i++)
        rows[i] = (store_metric){.step = i + 1, .loss = 2.0 - i * 0.01, .n_lr = 1, .lr = {0.1}};
    assert_int_equal(store_metrics_append(&f->s, id, rows, 50, NULL, &e), 0);
    assert_int_equal(store_checkpoint_commit(&f->s, id, 50, 1.5, "small", 5, 0, NULL, &e), 0);

    /* Freeze the file at its current size: any write needing a new page fails. */
    int64_t pages = scalar(&f->s, "PRAGMA page_count");
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA max_page_count=%lld", (long long)pages);
    assert_int_equal(sqlite3_exec(f->s.db, sql, NULL, NULL, NULL), SQLITE_OK);

    size_t big = (size_t)4 << 20;
    char *blob = malloc(big);
    assert_non_null(blob);
    memset(blob, 7, big);
    store_progress p = {.step = 100, .loss = 1.0};
    assert_int_equal(store_checkpoint_commit(&f->s, id, 100, 1.0, blob, big, 1, &p, &e), -ENOSPC);
    assert_non_null(strstr(e.message, "full"));
    free(blob);

    /* Nothing of the failed transaction is visible; the old data is intact. */
    store_job j;
    assert_int_equal(store_job_get(&f->s, id, &j, &e), 0);
    assert_int_equal(j.last_checkpoint_step, 50);
    assert_int_equal(j.step, 0);
    store_job_free(&j);
    store_checkpoint_info *ci;
    size_t n;
    assert_int_equal(store_checkpoint_list(&f->s, id, &ci, &n, &e), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ci[0].step, 50);
    free(ci);
    void *buf;
    size_t len;
    assert_int_equal(store_checkpoint_read(&f->s, id, -1, &buf, &len, NULL, &e), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(buf, "small", 5);
    free(buf);
    int64_t c;
    assert_int_equal(store_metrics_count(&f->s, id, &c, &e), 0);
    assert_int_equal(c, 50);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(f->s.db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
}

/* Housekeeping gives a deleted job's pages back and reports them. */
static void test_pool_and_housekeeping(void **state)
{
    fixture *f = *state;
    an_err e;
    /* A finished job with 200 KB of checkpoint, deleted: its pages come back in slices. */
    store_job_new jn = {.name = "h", .spec_json = "{}", .total_steps = 10};
    char id[STORE_ID_LEN];
    assert_int_equal(store_job_create(&f->s, &jn, id, &e), 0);
    size_t len = 200000;
    unsigned char *blob = malloc(len);
    assert_non_null(blob);
    for (size_t i = 0; i < len; i++)
        blob[i] = (unsigned char)(i * 2654435761u >> 13);
    assert_int_equal(store_checkpoint_commit(&f->s, id, 5, 1.0, blob, len, 3, NULL, &e), 0);
    free(blob);
    assert_int_equal(store_job_set_state(&f->s, id, STORE_MASK_ALL, STORE_COMPLETED, NULL, NULL, &e), 0);
    store_usage u0, u1, u2;
    assert_int_equal(store_usage_get(&f->s, &u0, &e), 0);
    assert_int_equal(u0.free_pages, 0);
    assert_int_equal(store_job_delete(&f->s, id, &e), 0);
    assert_int_equal(store_usage_get(&f->s, &u1, &e), 0);
    assert_true(u1.free_pages >= 10);
    assert_true(u1.wal_bytes > 0);
    int freed = 0;
    assert_int_equal(store_housekeep(&f->s, 4, &freed, &e), 0);
    assert_int_equal(freed, 4);
    while (freed == 4)
        assert_int_equal(store_housekeep(&f->s, 4, &freed, &e), 0);
    assert_int_equal(store_usage_get(&f->s, &u2, &e), 0);
    assert_int_equal(u2.free_pages, 0);
    assert_int_equal(u2.bytes, u1.bytes - u1.free_pages * u1.page_size);
}

/* Reads never wait for a writer: while another connection holds the write lock (a long
 * checkpoint commit), opening a connection and reading jobs and metrics succeed at once. */
static void test_reads_during_a_write(void **state)
{
    fixture *f = *state;
    an_err e;
    store_job_new jn = {.name = "r", .spec_json = "{}", .total_steps = 10};
    char id[STORE_ID_LEN];
    assert_int_equal(store_job_create(&f->s, &jn, id, &e), 0);
    store_metric m = {.step = 1, .loss = 0.5, .n_lr = 1, .lr = {0.001}};
    assert_int_equal(store_metrics_append(&f->s, id, &m, 1, NULL, &e), 0);
    assert_int_equal(sqlite3_exec(f->s.db, "BEGIN IMMEDIATE; UPDATE jobs SET name='w';", NULL,
                                  NULL, NULL), SQLITE_OK);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    store_t r;
    int orc = store_open(&r, f->path, &e);
    if (orc) fprintf(stderr, "open: %s\n", e.message);
    assert_int_equal(orc, 0);
    store_job j;
    memset(&j, 0, sizeof j);
    assert_int_equal(store_job_get(&r, id, &j, &e), 0);
    assert_string_equal(j.name, "r"); /* the last committed state */
    store_job_free(&j);
    store_series ser;
    assert_int_equal(store_metrics_query(&r, id, 0, -1, 0, &ser, &e), 0);
    assert_int_equal(ser.n, 1);
    store_series_free(&ser);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* Far below the 5 s busy timeout a write lock would have made it wait. */
    assert_true((t1.tv_sec - t0.tv_sec) < 2);
    store_close(&r);
    assert_int_equal(sqlite3_exec(f->s.db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migrations_fresh_and_reopen, fixture_setup, fixture_teardown),
        cmocka_unit_test(test_open_bad_path),
        cmocka_unit_test_setup_teardown(test_not_a_database, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_job_lifecycle, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_create_rejects_bad_input, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_list_filters_paging_order, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_ids_never_reused, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_delete_job_removes_everything, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_unknown_ids, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_datasets, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_dataset_vocab, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_two_threads_write_concurrently, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_open_of_fresh_file, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_full_database_enospc, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_pool_and_housekeeping, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_reads_during_a_write, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_abandoned_upload_retried, fixture_setup, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
