/* The store's VFS (store/walbuf.c): WAL appends gathered into large writes, and nothing a
 * commit needs left behind in the buffer — for other connections, after a rollback, after
 * kill -9, or when the disk refuses the write. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include <sqlite3.h>

#include "store/walbuf.h"
#include "store/walcopy.h"
#include "store_fixture.h"

#define STATE ((size_t)8 << 20)

static void new_job(store_t *s, char id[STORE_ID_LEN])
{
    store_job_new in = {.name = "w", .spec_json = "{}", .total_steps = 100};
    an_err e;
    assert_int_equal(store_job_create(s, &in, id, &e), 0);
}

/* A state whose every byte depends on `seed`, so two commits never share a page. */
static unsigned char *state_for(uint32_t seed, size_t n)
{
    unsigned char *b = malloc(n);
    assert_non_null(b);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b[i] = (unsigned char)x;
    }
    return b;
}

static int64_t wal_bytes(const char *db)
{
    char p[128];
    snprintf(p, sizeof p, "%s-wal", db);
    struct stat st;
    return stat(p, &st) == 0 ? (int64_t)st.st_size : -1;
}

static void integrity_ok(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* The pages of an 8 MB commit reach the kernel in a few large writes, and a second
 * connection (the default VFS, another store) reads the new state as soon as the commit
 * returns. */
static void commit_is_gathered_and_seen_at_once(void **state)
{
    fixture *f = *state;
    assert_non_null(walbuf_vfs());
    char id[STORE_ID_LEN];
    new_job(&f->s, id);
    unsigned char *blob = state_for(7, STATE);
    long long a0, w0, a1, w1;
    walbuf_stats(&a0, &w0);
    an_err e;
    assert_int_equal(store_checkpoint_commit(&f->s, id, 10, 0.5, blob, STATE, 2, NULL, &e), 0);
    walbuf_stats(&a1, &w1);
    /* two appends (header, page) per 16 KiB page; written in 64 KiB pieces */
    long long appends = a1 - a0, writes = w1 - w0;
    assert_true(appends >= (long long)(2 * STATE / 16384));
    assert_true(writes > 0 && writes * 3 < appends);

    store_t other;
    assert_int_equal(store_open(&other, f->path, &e), 0);
    void *back = NULL;
    size_t len = 0;
    int64_t step = 0;
    assert_int_equal(store_checkpoint_read(&other, id, -1, &back, &len, &step, &e), 0);
    assert_int_equal(step, 10);
    assert_int_equal(len, STATE);
    assert_memory_equal(back, blob, STATE);
    free(back);
    store_close(&other);

    sqlite3 *plain = NULL;
    assert_int_equal(sqlite3_open_v2(f->path, &plain, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(plain, "SELECT sum(length(data)) FROM checkpoint_chunks",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(st, 0), (sqlite3_int64)STATE);
    sqlite3_finalize(st);
    sqlite3_close(plain);
    free(blob);
}

/* A transaction that spilled pages into the WAL and was rolled back: another connection then
 * commits over the same stretch of the WAL (and beyond it), and nothing of the rolled-back
 * frames lands on it later, when the first connection reads and writes again. */
static void rolled_back_spill_never_lands_later(void **state)
{
    fixture *f = *state;
    sqlite3 *a = f->s.db;
    assert_int_equal(sqlite3_exec(a,
                                  "CREATE TABLE scratch(k INTEGER PRIMARY KEY, v BLOB);"
                                  "PRAGMA cache_size=8;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_exec(a, "BEGIN IMMEDIATE;"
                                     "INSERT INTO scratch VALUES(1, randomblob(3000000));",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_true(wal_bytes(f->path) > 0); /* pages spilled before the commit */
    assert_int_equal(sqlite3_exec(a, "ROLLBACK;", NULL, NULL, NULL), SQLITE_OK);

    store_t b;
    an_err e;
    assert_int_equal(store_open(&b, f->path, &e), 0);
    assert_int_equal(sqlite3_exec(b.db, "INSERT INTO scratch VALUES(3, zeroblob(6000000));",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    store_close(&b);
    /* the first connection writes and reads again, then closes */
    assert_int_equal(sqlite3_exec(a, "INSERT INTO scratch VALUES(4, x'01');", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(a, "SELECT count(*), sum(length(v)),"
                                           " max(v = zeroblob(6000000)) FROM scratch",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(st, 0), 2);
    assert_int_equal(sqlite3_column_int64(st, 1), 6000001);
    assert_int_equal(sqlite3_column_int64(st, 2), 1);
    sqlite3_finalize(st);
    integrity_ok(f->path);
}

/* kill -9 at random moments of a child committing 8 MB states: the store reopens intact
 * and its newest checkpoint is exactly the state of its step. */
static void kill_during_commits_keeps_the_last_one(void **state)
{
    fixture *f = *state;
    char id[STORE_ID_LEN];
    new_job(&f->s, id);
    unsigned int seed = (unsigned int)time(NULL);
    for (int round = 0; round < 4; round++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            store_t c;
            an_err ce;
            if (store_open(&c, f->path, &ce) != 0)
                _exit(2);
            store_wal_copy_mode(&c, STORE_WAL_AFTER_SMALL);
            for (int64_t k = 1 + round * 1000;; k++) {
                unsigned char *b = state_for((uint32_t)k, STATE);
                if (store_checkpoint_commit(&c, id, k, 0.5, b, STATE, 2, NULL, &ce) != 0)
                    _exit(3);
                free(b);
            }
        }
        struct timespec pause = {0, (long)(50 + rand_r(&seed) % 400) * 1000 * 1000};
        nanosleep(&pause, NULL);
        kill(pid, SIGKILL);
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));

        store_t r;
        an_err e;
        assert_int_equal(store_open(&r, f->path, &e), 0);
        void *back = NULL;
        size_t len = 0;
        int64_t step = 0;
        int rc = store_checkpoint_read(&r, id, -1, &back, &len, &step, &e);
        if (rc == 0) {
            unsigned char *want = state_for((uint32_t)step, STATE);
            assert_int_equal(len, STATE);
            assert_memory_equal(back, want, STATE);
            free(want);
            free(back);
        } else {
            assert_int_equal(round, 0); /* killed before its first commit */
        }
        store_close(&r);
        integrity_ok(f->path);
    }
}

/* The file size limit stands in for a full disk: the commit whose pages cannot all be
 * written fails, and the store keeps the state committed before it. The new state is small
 * enough that all its frames wait in the buffer until the commit frame, so only that
 * frame's flush can report the failure. Run in a child, so the limit and SIGXFSZ stay
 * there. */
static void commit_that_cannot_be_written_fails(void **state)
{
    fixture *f = *state;
    char id[STORE_ID_LEN];
    new_job(&f->s, id);
    unsigned char *first = state_for(1, STATE);
    an_err e;
    assert_int_equal(store_checkpoint_commit(&f->s, id, 1, 0.5, first, STATE, 5, NULL, &e), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        store_t c;
        an_err ce;
        if (store_open(&c, f->path, &ce) != 0)
            _exit(2);
        store_wal_copy_mode(&c, STORE_WAL_NEVER); /* the database file is not written */
        /* the WAL starts over (the first commit was copied out of it): its header and first
         * frames fit under the limit, the rest of the commit's 300 KB does not */
        struct rlimit lim;
        getrlimit(RLIMIT_FSIZE, &lim);
        lim.rlim_cur = 64 << 10;
        if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
            _exit(2);
        unsigned char *b = state_for(2, 300000);
        int rc = store_checkpoint_commit(&c, id, 2, 0.5, b, 300000, 5, NULL, &ce);
        _exit(rc != 0 ? 0 : 4);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    void *back = NULL;
    size_t len = 0;
    int64_t step = 0;
    assert_int_equal(store_checkpoint_read(&f->s, id, -1, &back, &len, &step, &e), 0);
    assert_int_equal(step, 1);
    assert_memory_equal(back, first, STATE);
    free(back);
    free(first);
    integrity_ok(f->path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(commit_is_gathered_and_seen_at_once, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(rolled_back_spill_never_lands_later, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(kill_during_commits_keeps_the_last_one, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(commit_that_cannot_be_written_fails, fixture_setup,
                                        fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
