/* lock — one daemon per store.
 *
 * DESIGN ("One store, one daemon")
 * Two daemons on one database would each re-queue the other's running jobs at start and
 * train them twice. The daemon takes a POSIX write lock (fcntl F_SETLK) on a lock file beside
 * the database, "<db>.lock", before it opens the store, and holds it for its whole life; a
 * second daemon fails to take it and exits at once naming the holder's pid (F_GETLK, and the
 * pid written into the file).
 * Why a lock file and not SQLite's locking_mode=EXCLUSIVE: the daemon itself uses several
 * connections to the database (the loop's, one per worker, the request pool's), which an
 * exclusive connection would lock out, and an exclusive lock would also keep `sqlite3` and
 * backups from reading a live store. The kernel drops the lock when the process ends, even by
 * kill -9, so a stale file never blocks a restart; the file is left in place (removing it
 * would let a starting daemon lock a file that is no longer the one others open).
 * A hard or symbolic link to the database has a lock file of its own, so the database file is
 * locked too, with flock (by inode; independent of SQLite's POSIX locks on it): a daemon that
 * reaches the same file under another name is refused as well.
 * Release only after every connection to the store is closed (see lock.c). */
#ifndef ANNEALD_STORE_LOCK_H
#define ANNEALD_STORE_LOCK_H

#include <stddef.h>

#include "core/err.h"

typedef struct store_lock {
    int fd;   /* the lock file's; -1 when not held */
    int dbfd; /* the database file's (its BSD lock, by inode); -1 when not held */
    long links; /* names the database file has: above 1, opened by another name after a crash
                   its write-ahead log (found by name) would be missed */
} store_lock;

/* Takes the lock of the store at `db_path`. 0; -EBUSY when another process holds it (the
 * message names its pid); another negative errno when the lock file cannot be made. */
int store_lock_take(store_lock *l, const char *db_path, an_err *err);

/* Whether `db_path` still names the file whose lock this process holds. 0 when it does, or
 * when the process holds no lock of that path (*held says which, may be NULL); -ESTALE with
 * a message saying what to do when the file was deleted or another file was put in its
 * place since the lock was taken. store_open checks it, so no connection of the daemon opens
 * (or creates) a different file than the one its other connections and its WAL belong to. */
int store_lock_verify(const char *db_path, int *held, an_err *err);

/* What the latest store_lock_verify of the held store found, without looking at the disk
 * (for the loop thread): 1 with its message in msg (n bytes, may be NULL) when the file was
 * deleted or replaced, 0 when it was in place or nothing was checked yet. */
int store_lock_moved(char *msg, size_t n);

/* After the daemon's last connection closed: when `db_path` no longer names the locked file,
 * renames its "-wal" and "-shm" files (which SQLite, seeing the file moved, does not copy
 * and remove at the last close) to "<name>.of-a-replaced-store", so the file now at the path
 * (or a fresh one created there) is never read with another database's log: that corrupts
 * it. Returns how many were renamed. */
int store_lock_set_aside(const char *db_path);

/* Lets go of the lock (the process ending does the same). */
void store_lock_release(store_lock *l);

#endif
