/* Who copies the WAL into the database file (store/walcopy.h): observed through the database
 * file's size, which grows only when pages are copied out of the WAL, and through the syncs
 * of the database file (counted by a VFS that is SQLite's own with xSync counted). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "store/walcopy.h"
#include "store_fixture.h"

/* ---- the counting VFS: files are the default VFS's own; only their xSync is wrapped ---- */
static sqlite3_vfs counting_vfs;
static sqlite3_io_methods counted_methods;
static const sqlite3_io_methods *plain_methods;
static int db_syncs; /* syncs of main database files */

static int counting_sync(sqlite3_file *f, int flags)
{
    db_syncs++;
    return plain_methods->xSync(f, flags);
}

static int counting_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags,
                         int *out)
{
    sqlite3_vfs *real = vfs->pAppData;
    int rc = real->xOpen(real, name, f, flags, out);
    if (rc != SQLITE_OK || !(flags & SQLITE_OPEN_MAIN_DB) || !f->pMethods)
        return rc;
    if (!plain_methods) {
        plain_methods = f->pMethods;
        counted_methods = *plain_methods;
        counted_methods.xSync = counting_sync;
    }
    if (f->pMethods == plain_methods)
        f->pMethods = &counted_methods;
    return rc;
}

static int counting_vfs_install(void)
{
    sqlite3_vfs *real = sqlite3_vfs_find(NULL);
    if (!real)
        return -1;
    counting_vfs = *real;
    counting_vfs.zName = "counting";
    counting_vfs.pAppData = real;
    counting_vfs.xOpen = counting_open;
    return sqlite3_vfs_register(&counting_vfs, 1) == SQLITE_OK ? 0 : -1;
}

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
        blob[i] = (unsigned char)((i * 2654435761u >> 13) + (size_t)step); /* each its own */
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

/* Two workers committing large checkpoints back to back, with no small commit between and no
 * housekeeping copy: the WAL passes ST_WAL_MAX_PAGES, and the commit that takes it there copies
 * it whole, so the next commit starts it over (truncated back to journal_size_limit). It used
 * to grow by every commit: five of these left a 400 MB WAL. */
static void big_commits_alone_keep_the_wal_bounded(void **state)
{
    fixture *f = *state;
    store_t other;
    an_err e;
    assert_int_equal(store_open(&other, f->path, &e), 0);
    store_wal_copy_mode(&f->s, STORE_WAL_AFTER_SMALL);
    store_wal_copy_mode(&other, STORE_WAL_AFTER_SMALL);
    char a[STORE_ID_LEN], b[STORE_ID_LEN];
    new_job(&f->s, a);
    new_job(&other, b);
    char wal[4200];
    snprintf(wal, sizeof wal, "%s-wal", f->path);
    int64_t most = 0;
    for (int i = 1; i <= 5; i++) {
        commit_big(i % 2 ? &f->s : &other, i % 2 ? a : b, i);
        int64_t w = file_bytes(wal);
        most = w > most ? w : most;
    }
    /* at most the bound and one commit more, and then back to about one commit */
    int64_t bound = (int64_t)ST_WAL_MAX_PAGES * 16384 + (int64_t)BIG + ((int64_t)BIG >> 4);
    assert_true(most <= bound);
    assert_true(file_bytes(wal) < 2 * (int64_t)BIG);
    /* copied into the database: each job's one checkpoint (keep_last 1) */
    assert_true(file_bytes(f->path) >= 2 * (int64_t)BIG);
    store_close(&other);
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

/* A reader's snapshot keeps the housekeeping copy short of the WAL's end, as a writer that
 * never pauses does; SQLite then leaves the database file unsynced, and the copy syncs it
 * itself, once per copy that moved frames it had not moved before. */
static void housekeeping_copy_syncs_the_database(void **state)
{
    fixture *f = *state;
    store_wal_copy_mode(&f->s, STORE_WAL_NEVER);
    char id[STORE_ID_LEN];
    new_job(&f->s, id);
    for (int i = 1; i <= 20; i++)
        commit_small(&f->s, id, i);
    sqlite3 *reader = NULL;
    assert_int_equal(sqlite3_open_v2(f->path, &reader, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM jobs;", NULL, NULL, NULL),
                     SQLITE_OK);
    for (int i = 21; i <= 40; i++)
        commit_small(&f->s, id, i);
    db_syncs = 0;
    store_wal_copy_now(&f->s);
    assert_true(f->s.wal_copied > 0);
    assert_int_equal(db_syncs, 1);
    store_wal_copy_now(&f->s); /* nothing more can be copied: no sync */
    assert_int_equal(db_syncs, 1);
    /* the reader gone, the next copy reaches the WAL's end: SQLite's sync, and this one */
    assert_int_equal(sqlite3_exec(reader, "COMMIT;", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(reader);
    int before = f->s.wal_copied;
    store_wal_copy_now(&f->s);
    assert_true(f->s.wal_copied > before);
    assert_true(db_syncs >= 2);
}

int main(void)
{
    if (counting_vfs_install() != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(default_copies_in_the_commit, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(after_small_defers_the_big_commit, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(big_commits_alone_keep_the_wal_bounded, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(never_leaves_it_to_housekeeping, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(housekeeping_copy_syncs_the_database, fixture_setup,
                                        fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
