/* walcopy — see walcopy.h. */
#include "store/walcopy.h"

#include <sqlite3.h>

#include "store/internal.h"

/* The longest a commit that restarts the WAL waits for the readers and writers in its way. */
#define ST_RESTART_WAIT_MS 200

/* Runs after every commit of an AFTER_SMALL connection with the WAL's size in pages. */
static int after_commit(void *arg, sqlite3 *db, const char *name, int pages)
{
    store_t *s = arg;
    if (pages >= ST_WAL_MAX_PAGES) {
        /* Whatever the commit: the WAL has to start over. The copy itself first, without the
         * write lock, so other connections write on meanwhile; then a RESTART for what came
         * since, which holds the lock only for that and waits for readers at most
         * ST_RESTART_WAIT_MS. If one holds on longer, a later commit tries again. */
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        sqlite3_busy_timeout(db, ST_RESTART_WAIT_MS);
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_RESTART, NULL, NULL);
        sqlite3_busy_timeout(db, ST_BUSY_MS);
    } else if (pages >= ST_WAL_COPY_PAGES && !s->big_commit)
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    /* A busy or failed copy is harmless: the next commit or the housekeeping thread retries. */
    return SQLITE_OK;
}

void store_wal_copy_now(store_t *s)
{
    if (!s->db)
        return;
    int log = 0, copied = 0;
    if (sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &copied) !=
        SQLITE_OK)
        return;
    /* SQLite syncs the database only after a copy that finds nothing appended meanwhile;
     * behind a fast job's writer no copy does, and the pages they wrote stayed with the
     * kernel until the writer's own copy at the threshold synced them all, 40-80 ms with the
     * worker's batches piling up behind it. Synced here, off the writer, that copy syncs only
     * what came since. Through SQLite's own handle: another descriptor of the file, once
     * closed, would drop every POSIX lock this process holds on it. */
    int fresh = copied > 0 && copied != s->wal_copied;
    s->wal_copied = copied;
    if (!fresh)
        return;
    sqlite3_file *f = NULL;
    if (sqlite3_file_control(s->db, "main", SQLITE_FCNTL_FILE_POINTER, &f) == SQLITE_OK && f &&
        f->pMethods)
        f->pMethods->xSync(f, SQLITE_SYNC_NORMAL); /* a failure: SQLite's own sync retries */
}

void store_wal_copy_mode(store_t *s, store_wal_copy mode)
{
    if (!s->db)
        return;
    switch (mode) {
    case STORE_WAL_NEVER:
        sqlite3_wal_autocheckpoint(s->db, 0); /* removes the hook */
        break;
    case STORE_WAL_AFTER_SMALL:
        sqlite3_wal_hook(s->db, after_commit, s);
        break;
    default:
        sqlite3_wal_autocheckpoint(s->db, 1000);
        break;
    }
}
