/* walbuf.h — the store's VFS: the default one, with each connection's WAL appends gathered
 * into large writes (walbuf.c says why, and why nothing is lost or seen early). */
#ifndef ANNEALD_STORE_WALBUF_H
#define ANNEALD_STORE_WALBUF_H

#include <sqlite3.h>

#define WALBUF_VFS "anneald-walbuf"

/* Registers the VFS on first use (not as the default) and returns its name, or NULL when
 * the default VFS cannot be wrapped (the store then opens with the default VFS). */
const char *walbuf_vfs(void);

/* Process-wide counts since start: WAL writes taken into a buffer, and the writes that
 * passed buffered bytes on to the default VFS. */
void walbuf_stats(long long *appends, long long *flushes);

#endif
