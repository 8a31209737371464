/* test_store_readpool — read-only connections lent to readers: they read the last committed
 * snapshot while a writer holds its transaction open (no waiting on the writer), they cannot
 * write, and a reader waits only for a connection to come back. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdatomic.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store/readpool.h"
#include "tests/unit/store_fixture.h"

static void test_reads_the_committed_snapshot_during_a_write(void **state)
{
    fixture *f = *state;
    char id[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "before", NULL, id), 0);
    store_pool *p;
    an_err e;
    assert_int_equal(store_pool_open(&p, f->path, 2, &e), 0);

    /* the writer takes the write lock and changes the name, uncommitted */
    assert_int_equal(sqlite3_exec(f->s.db, "BEGIN IMMEDIATE; UPDATE jobs SET name='during'",
                                  NULL, NULL, NULL), SQLITE_OK);
    store_t *r = store_pool_get(p);
    store_job row;
    memset(&row, 0, sizeof row);
    assert_int_equal(store_job_get(r, id, &row, &e), 0); /* no SQLITE_BUSY, no wait */
    assert_string_equal(row.name, "before");
    store_job_free(&row);
    store_pool_put(p, r);
    assert_int_equal(sqlite3_exec(f->s.db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);

    r = store_pool_get(p);
    memset(&row, 0, sizeof row);
    assert_int_equal(store_job_get(r, id, &row, &e), 0);
    assert_string_equal(row.name, "during"); /* the next read sees the commit */
    store_job_free(&row);
    store_pool_put(p, r);
    store_pool_close(p);
}

static void test_pool_connections_cannot_write(void **state)
{
    fixture *f = *state;
    store_pool *p;
    an_err e;
    assert_int_equal(store_pool_open(&p, f->path, 1, &e), 0);
    store_t *r = store_pool_get(p);
    char id[STORE_ID_LEN];
    store_job_new in = {.name = "x", .spec_json = "{}", .total_steps = 1};
    assert_int_not_equal(store_job_create(r, &in, id, &e), 0);
    store_pool_put(p, r);
    store_pool_close(p);
    /* nothing was written */
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(f->s.db, "SELECT count(*) FROM jobs", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 0);
    sqlite3_finalize(st);
}

static void test_bad_pools(void **state)
{
    fixture *f = *state;
    store_pool *p = (store_pool *)1;
    an_err e;
    assert_int_equal(store_pool_open(&p, f->path, 0, &e), -EINVAL);
    assert_null(p);
    assert_int_not_equal(store_pool_open(&p, "/nonexistent-dir/x.db", 1, &e), 0);
    assert_null(p);
    store_pool_close(NULL);
}

typedef struct waiter {
    store_pool *p;
    atomic_int got;
} waiter;

static void *take(void *arg)
{
    waiter *w = arg;
    store_t *s = store_pool_get(w->p);
    atomic_store(&w->got, 1);
    store_pool_put(w->p, s);
    return NULL;
}

static void test_a_reader_waits_for_a_connection(void **state)
{
    fixture *f = *state;
    waiter w = {.got = 0};
    an_err e;
    assert_int_equal(store_pool_open(&w.p, f->path, 1, &e), 0);
    store_t *s = store_pool_get(w.p);
    assert_int_equal(store_pool_busy(w.p), 1);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, take, &w), 0);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(atomic_load(&w.got), 0); /* still waiting: the only one is lent */
        usleep(1000);
    }
    store_pool_put(w.p, s);
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&w.got), 1);
    assert_int_equal(store_pool_busy(w.p), 0);
    store_pool_close(w.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reads_the_committed_snapshot_during_a_write,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_pool_connections_cannot_write, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_bad_pools, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_a_reader_waits_for_a_connection, fixture_setup,
                                        fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
