/* Who copies the WAL into the database file (store/walcopy.h): observed through the database
 * file's size, which grows only when pages are copied out of the WAL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <sys/stat.h>

#include "store/walcopy.h"
#include "store_fixture.h"

/* Above ST_WAL_COPY_PAGES pages of 16 KiB once in the WAL. */
#define BIG ((size_t)80 << 20)

static int64_t file_bytes(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (int64_t)st.st_size : -1;
}

static void new_job(store_t *s, char id[STORE_ID_LEN])
{
    store_job_new in = {.name = "w", .spec_json = "{}", .total_steps = 100};
    an_err e;
    assert_int_equal(store_job_create(s, &in, id, &e), 0);
}

static void commit_big(store_t *s, const char *id, int64_t step)
{
    unsigned char *blob = malloc(BIG);
    assert_non_null(blob);
    for (size_t i = 0; i < BIG; i++)
        blob[i] = (unsigned char)(i * 2654435761u >> 13);
    an_err e;
    assert_int_equal(store_checkpoint_commit(s, id, step, 0.5, blob, BIG, 1, NULL, &e), 0);
    free(blob);
}

static void commit_small(store_t *s, const char *id, int64_t step)
{
    store_metric m = {.step = step, .loss = 1.0, .n_lr = 1, .lr = {1e-3}};
    an_err e;
    assert_int_equal(store_metrics_append(s, id, &m, 1, NULL, &e), 0);
}

/* SQLite's default: the big commit copies its pages itself. */
static void default_copies_in_the_commit(void **state)
{
    fixture *f = *state;
    char id[STORE_ID_LEN];
    new_job(&f->s, id);
    commit_big(&f->s, id, 1);
    assert_true(file_bytes(f->path) >= (int64_t)BIG);
}

/* A worker's connection: the checkpoint's commit leaves its pages in the WAL; the next small
 * commit copies them. */
static void after_small_defers_the_big_commit(void **state)
{
    fixture *f = *state;
    store_wal_copy_mode(&f->s, STORE_WAL_AFTER_SMALL);
    char id[STORE_ID_LEN];
    new_job(&f->s, id);
    commit_big(&f->s, id, 1);
    assert_true(file_bytes(f->path) < (int64_t)BIG / 8);
    commit_small(&f->s, id, 1);
    assert_true(file_bytes(f->path) >= (int64_t)BIG);
}

/* The loop's connection never copies, however large the WAL; an explicit housekeeping slice
 * (what the housekeeping thread runs every second) does. */
static void never_leaves_it_to_housekeeping(void **state)
{
    fixture *f = *state;
    store_wal_copy_mode(&f->s, STORE_WAL_NEVER);
    char id[STORE_ID_LEN];
    new_job(&f->s, id);
    commit_big(&f->s, id, 1);
    commit_small(&f->s, id, 1);
    commit_small(&f->s, id, 2);
    assert_true(file_bytes(f->path) < (int64_t)BIG / 8);
    an_err e;
    assert_int_equal(store_housekeep(&f->s, 0, NULL, &e), 0);
    assert_true(file_bytes(f->path) >= (int64_t)BIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(default_copies_in_the_commit, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(after_small_defers_the_big_commit, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(never_leaves_it_to_housekeeping, fixture_setup,
                                        fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
