/* readpool — read-only connections to the store, opened once and lent out.
 *
 * A GET that reads metrics, checkpoints or data sets must never wait for a worker's write
 * (a multi-second checkpoint commit): in WAL mode a read-only connection reads the last
 * committed snapshot without taking any lock a writer holds. Opening a connection per request
 * also cost a schema check each time; these are opened once, after the daemon's own
 * connection has migrated the schema, and never write. */
#ifndef ANNEALD_READPOOL_H
#define ANNEALD_READPOOL_H

#include "core/err.h"
#include "store/store.h"

typedef struct store_pool store_pool;

/* Opens `n` (1..64) read-only connections to the existing store at `path`. */
int store_pool_open(store_pool **out, const char *path, int n, an_err *err);

/* Lends a connection, waiting while all are lent. The caller reads with it on its own thread
 * and gives it back with store_pool_put. Never NULL. */
store_t *store_pool_get(store_pool *p);
void store_pool_put(store_pool *p, store_t *s);

/* Connections lent right now (for /metrics and tests). */
int store_pool_busy(store_pool *p);

/* Closes every connection; none may be lent. Safe on NULL. */
void store_pool_close(store_pool *p);

/* Opens one read-only connection (no schema check: the store must exist and be migrated). */
int store_open_readonly(store_t *s, const char *path, an_err *err);

#endif
