/* log — the service's one log: lines on stderr, each with a UTC time and a level, written
 * whole even when several threads log at once. The CLI and the daemon set the level once at
 * start; every layer above core/ may log (core/ returns errors instead). */
#ifndef ANNEALD_LOG_H
#define ANNEALD_LOG_H

#include <stdint.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* Lines above `level` are dropped (default LOG_INFO). Set before threads start. */
void util_log_set_level(int level);

/* The level in force. */
int util_log_level(void);

/* Logs one line to stderr when `level` is enabled. */
void util_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Bytes free to unprivileged writers on the file system that holds the file `path` (its
 * directory). 0, or a negative errno. */
int util_free_disk(const char *path, uint64_t *avail);

#endif
