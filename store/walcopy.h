/* walcopy — who copies the write-ahead log into the database file (SQLite's "checkpoint" of
 * the WAL; nothing to do with a job's checkpoints).
 *
 * By default a connection whose commit leaves the WAL over 1000 pages does the copy right
 * after that commit (SQLite's autocheckpoint), so the commit takes as long as writing its
 * pages twice. The daemon divides the work instead:
 *   STORE_WAL_NEVER        the loop thread's connection: it must never wait on the disk.
 *   STORE_WAL_AFTER_SMALL  the workers' connections: a commit that leaves the WAL over
 *                          ST_WAL_COPY_PAGES copies it, except the commit of a job's
 *                          checkpoint, which returns once its pages are in the WAL.
 * The housekeeping thread copies what it can every 0.1 s (store_wal_copy_now), so the pages
 * of a checkpoint, like a fast job's stream of metric pages, reach the database off the
 * workers, fsyncs included (the database's too: SQLite syncs it only after a copy that
 * reached the WAL's end, which behind a busy writer none does). A writer's own copy is still
 * needed: one on another thread always trails the frames appended meanwhile, and only a copy
 * that caught up lets the WAL start over; by the time the WAL passes the threshold that copy
 * has little left to do: the newest frames' fsync, 30-60 ms on the test machine's disk
 * (jobs/wctx.h sizes the worker's queue to hide it). */
#ifndef ANNEALD_STORE_WALCOPY_H
#define ANNEALD_STORE_WALCOPY_H

#include "store/store.h"

typedef enum {
    STORE_WAL_DEFAULT,
    STORE_WAL_NEVER,
    STORE_WAL_AFTER_SMALL,
} store_wal_copy;

/* 4096 pages of 16 KiB: 64 MiB of WAL between copies (the journal_size_limit it is truncated
 * back to). */
#define ST_WAL_COPY_PAGES 4096

/* 16384 pages: 256 MiB. A commit that leaves the WAL larger copies it whole and waits for it
 * to start over (a RESTART copy), a checkpoint's commit too. Without it, two jobs committing
 * large checkpoints back to back never let a copy catch up: each commit's own copy is skipped,
 * the other threads' copies always trail the next commit, and the WAL grew to gigabytes. */
#define ST_WAL_MAX_PAGES 16384

/* Sets the policy of s's connection. */
void store_wal_copy_mode(store_t *s, store_wal_copy mode);

/* Copies what it can of the WAL now (a PASSIVE checkpoint: it never waits for readers or
 * writers); errors are left for the next copy. */
void store_wal_copy_now(store_t *s);

#endif
