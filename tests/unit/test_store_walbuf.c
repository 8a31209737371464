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

/* ---- a VFS under the store's, as the default one: it passes everything on, and fails the
 * WAL writes a test arms it for, as a full disk would ---- */

static sqlite3_vfs spy_vfs, *spy_real;
static int fail_pages;        /* WAL writes of 4 KiB or more fail */
static int fail_commit_hdrs;  /* 24-byte WAL writes with a database size (commit frames) fail */
static int failed_writes;

typedef struct spy_file {
    sqlite3_file base;
    sqlite3_file *real;
    int wal;
} spy_file;

#define REAL(p) (((spy_file *)(p))->real)

static int spy_write(sqlite3_file *p, const void *b, int n, sqlite3_int64 off)
{
    const unsigned char *h = b;
    if (((spy_file *)p)->wal &&
        ((fail_pages && n >= 4096) || (fail_commit_hdrs && n == 24 && (h[4] | h[5] | h[6] | h[7])))) {
        failed_writes++;
        return SQLITE_FULL;
    }
    return REAL(p)->pMethods->xWrite(REAL(p), b, n, off);
}

static int spy_close(sqlite3_file *p) { return REAL(p)->pMethods->xClose(REAL(p)); }
static int spy_read(sqlite3_file *p, void *b, int n, sqlite3_int64 o)
{
    return REAL(p)->pMethods->xRead(REAL(p), b, n, o);
}
static int spy_truncate(sqlite3_file *p, sqlite3_int64 n)
{
    return REAL(p)->pMethods->xTruncate(REAL(p), n);
}
static int spy_sync(sqlite3_file *p, int fl) { return REAL(p)->pMethods->xSync(REAL(p), fl); }
static int spy_size(sqlite3_file *p, sqlite3_int64 *n)
{
    return REAL(p)->pMethods->xFileSize(REAL(p), n);
}
static int spy_lock(sqlite3_file *p, int l) { return REAL(p)->pMethods->xLock(REAL(p), l); }
static int spy_unlock(sqlite3_file *p, int l) { return REAL(p)->pMethods->xUnlock(REAL(p), l); }
static int spy_reserved(sqlite3_file *p, int *o)
{
    return REAL(p)->pMethods->xCheckReservedLock(REAL(p), o);
}
static int spy_fcntl(sqlite3_file *p, int op, void *a)
{
    return REAL(p)->pMethods->xFileControl(REAL(p), op, a);
}
static int spy_sector(sqlite3_file *p) { return REAL(p)->pMethods->xSectorSize(REAL(p)); }
static int spy_device(sqlite3_file *p) { return REAL(p)->pMethods->xDeviceCharacteristics(REAL(p)); }
static int spy_shm_map(sqlite3_file *p, int pg, int sz, int ext, void volatile **pp)
{
    return REAL(p)->pMethods->xShmMap(REAL(p), pg, sz, ext, pp);
}
static int spy_shm_lock(sqlite3_file *p, int off, int n, int fl)
{
    return REAL(p)->pMethods->xShmLock(REAL(p), off, n, fl);
}
static void spy_shm_barrier(sqlite3_file *p) { REAL(p)->pMethods->xShmBarrier(REAL(p)); }
static int spy_shm_unmap(sqlite3_file *p, int del)
{
    return REAL(p)->pMethods->xShmUnmap(REAL(p), del);
}
static int spy_fetch(sqlite3_file *p, sqlite3_int64 o, int n, void **pp)
{
    return REAL(p)->pMethods->xFetch(REAL(p), o, n, pp);
}
static int spy_unfetch(sqlite3_file *p, sqlite3_int64 o, void *pp)
{
    return REAL(p)->pMethods->xUnfetch(REAL(p), o, pp);
}

static const sqlite3_io_methods spy_methods = {
    .iVersion = 3, .xClose = spy_close, .xRead = spy_read, .xWrite = spy_write,
    .xTruncate = spy_truncate, .xSync = spy_sync, .xFileSize = spy_size, .xLock = spy_lock,
    .xUnlock = spy_unlock, .xCheckReservedLock = spy_reserved, .xFileControl = spy_fcntl,
    .xSectorSize = spy_sector, .xDeviceCharacteristics = spy_device, .xShmMap = spy_shm_map,
    .xShmLock = spy_shm_lock, .xShmBarrier = spy_shm_barrier, .xShmUnmap = spy_shm_unmap,
    .xFetch = spy_fetch, .xUnfetch = spy_unfetch,
};

static int spy_open(sqlite3_vfs *v, const char *name, sqlite3_file *p, int flags, int *out)
{
    (void)v;
    spy_file *f = (spy_file *)p;
    memset(f, 0, sizeof *f);
    f->real = (sqlite3_file *)(f + 1);
    int rc = spy_real->xOpen(spy_real, name, f->real, flags, out);
    if (rc != SQLITE_OK)
        return rc;
    f->wal = (flags & SQLITE_OPEN_WAL) != 0;
    f->base.pMethods = &spy_methods;
    return SQLITE_OK;
}

/* Before the store's VFS is set up, which wraps whatever is the default then. */
static void spy_install(void)
{
    spy_real = sqlite3_vfs_find(NULL);
    spy_vfs = *spy_real;
    spy_vfs.zName = "walbuf-test-spy";
    spy_vfs.szOsFile = (int)sizeof(spy_file) + spy_real->szOsFile;
    spy_vfs.xOpen = spy_open;
    if (sqlite3_vfs_register(&spy_vfs, 1) != SQLITE_OK)
        abort();
}

static int count_rows(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, "walbuf-test-spy"),
                     SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* A transaction that spills pages and then changes them again: SQLite rewrites those frames
 * in place and, at the commit, their checksums up to the commit frame's header. Returns the
 * COMMIT's result. 2000 rows of 1000 bytes in 16 KiB pages and a cache of 8 pages. */
static int rewritten_commit(sqlite3 *db)
{
    int rc = sqlite3_exec(db, "PRAGMA cache_size=8; BEGIN IMMEDIATE;"
                              " UPDATE scratch SET v = randomblob(1000);"
                              " UPDATE scratch SET v = zeroblob(998);",
                          NULL, NULL, NULL);
    assert_int_equal(rc, SQLITE_OK);
    rc = sqlite3_exec(db, "COMMIT;", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        sqlite3_exec(db, "ROLLBACK;", NULL, NULL, NULL);
    return rc;
}

static void scratch_rows(sqlite3 *db)
{
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE scratch(k INTEGER PRIMARY KEY, v BLOB);"
                                      "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1"
                                      " FROM c WHERE i < 2000)"
                                      " INSERT INTO scratch SELECT i, zeroblob(1000) FROM c;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
}

/* After a commit whose checksums were rewritten, a one-page commit whose page the disk
 * refuses fails, and no connection sees it. (The rewritten commit header must not leave the
 * next transaction's commit looking already flushed.) A reader holds the WAL so that the
 * next commit appends to it rather than starting it over. */
static void commit_after_rewritten_one_still_fails(void **state)
{
    fixture *f = *state;
    sqlite3 *a = f->s.db;
    scratch_rows(a);
    sqlite3 *reader = NULL;
    assert_int_equal(sqlite3_open_v2(f->path, &reader, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM scratch;", NULL, NULL,
                                  NULL),
                     SQLITE_OK);
    assert_int_equal(rewritten_commit(a), SQLITE_OK);

    failed_writes = 0;
    fail_pages = 1;
    int rc = sqlite3_exec(a, "UPDATE scratch SET v = zeroblob(999) WHERE k = 1000;", NULL, NULL,
                          NULL);
    fail_pages = 0;
    assert_int_not_equal(rc, SQLITE_OK);
    assert_true(failed_writes > 0);
    assert_int_equal(sqlite3_exec(reader, "COMMIT;", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(reader);
    assert_int_equal(count_rows(f->path, "SELECT count(*) FROM scratch WHERE length(v) = 999"),
                     0);
    assert_int_equal(count_rows(f->path, "SELECT count(*) FROM scratch WHERE length(v) = 998"),
                     2000);
    integrity_ok(f->path);
}

/* A commit whose rewritten commit-frame header the disk refuses fails: nothing of it is
 * seen, now or after the store is reopened, and the store stays intact. */
static void refused_checksum_rewrite_fails_the_commit(void **state)
{
    fixture *f = *state;
    sqlite3 *a = f->s.db;
    scratch_rows(a);
    failed_writes = 0;
    fail_commit_hdrs = 1;
    int rc = rewritten_commit(a);
    fail_commit_hdrs = 0;
    assert_int_not_equal(rc, SQLITE_OK);
    assert_true(failed_writes > 0);
    assert_int_equal(count_rows(f->path, "SELECT count(*) FROM scratch WHERE length(v) = 1000"),
                     2000);
    store_close(&f->s);
    an_err e;
    assert_int_equal(store_open(&f->s, f->path, &e), 0);
    assert_int_equal(count_rows(f->path, "SELECT count(*) FROM scratch WHERE length(v) = 1000"),
                     2000);
    integrity_ok(f->path);
    /* and the next commit of the same connection goes through */
    assert_int_equal(rewritten_commit(f->s.db), SQLITE_OK);
    assert_int_equal(count_rows(f->path, "SELECT count(*) FROM scratch WHERE length(v) = 998"),
                     2000);
}

int main(void)
{
    spy_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(commit_is_gathered_and_seen_at_once, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(rolled_back_spill_never_lands_later, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(kill_during_commits_keeps_the_last_one, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(commit_that_cannot_be_written_fails, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(commit_after_rewritten_one_still_fails, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(refused_checksum_rewrite_fails_the_commit,
                                        fixture_setup, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
