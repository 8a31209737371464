/* usage.c — what the store occupies (file, free pages, WAL) and the housekeeping slice that
 * gives free pages back and checkpoints the WAL (run by the daemon's housekeeping thread). */
#include "store/store.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "store/internal.h"

/* An integer pragma's value. */
static int pragma_int(store_t *s, const char *sql, int64_t *v, an_err *err)
{
    sqlite3_stmt *st;
    int rc = st_prepare(s, sql, &st, err);
    if (rc)
        return rc;
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW)
        *v = sqlite3_column_int64(st, 0);
    else
        rc = st_fail(s, r, "reading store usage", err);
    sqlite3_finalize(st);
    return rc;
}

int store_housekeep(store_t *s, int max_pages, int *freed, an_err *err)
{
    int64_t before = 0, after = 0;
    if (freed)
        *freed = 0;
    int rc = pragma_int(s, "PRAGMA freelist_count", &before, err);
    if (!rc && before > 0 && max_pages > 0) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA incremental_vacuum(%d)", max_pages);
        int r = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
        if (r == SQLITE_OK)
            rc = pragma_int(s, "PRAGMA freelist_count", &after, err);
        else if ((r & 0xff) != SQLITE_BUSY && (r & 0xff) != SQLITE_LOCKED)
            rc = st_fail(s, r, "returning free pages", err);
        else
            after = before; /* a writer holds the lock: next time */
        if (!rc && freed)
            *freed = (int)(before - after);
    }
    if (rc)
        return rc;
    int log = 0, ckpt = 0;
    int r = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &ckpt);
    if (r != SQLITE_OK && r != SQLITE_BUSY && r != SQLITE_LOCKED)
        return st_fail(s, r, "checkpointing the WAL", err);
    return 0;
}

int store_usage_get(store_t *s, store_usage *u, an_err *err)
{
    memset(u, 0, sizeof *u);
    int64_t pages = 0;
    int rc = pragma_int(s, "PRAGMA page_count", &pages, err);
    if (!rc)
        rc = pragma_int(s, "PRAGMA page_size", &u->page_size, err);
    if (!rc)
        rc = pragma_int(s, "PRAGMA freelist_count", &u->free_pages, err);
    if (rc)
        return rc;
    u->bytes = pages * u->page_size;
    const char *wal = sqlite3_filename_wal(sqlite3_db_filename(s->db, "main"));
    struct stat stb;
    if (wal && stat(wal, &stb) == 0)
        u->wal_bytes = (int64_t)stb.st_size;
    return 0;
}
