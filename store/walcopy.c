/* walcopy — see walcopy.h. */
#include "store/walcopy.h"

#include <sqlite3.h>

/* Runs after every commit of an AFTER_SMALL connection with the WAL's size in pages. */
static int after_commit(void *arg, sqlite3 *db, const char *name, int pages)
{
    store_t *s = arg;
    if (pages >= ST_WAL_COPY_PAGES && !s->big_commit)
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    /* A busy or failed copy is harmless: the next commit or the housekeeping thread retries. */
    return SQLITE_OK;
}

void store_wal_copy_now(store_t *s)
{
    if (s->db)
        sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
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
