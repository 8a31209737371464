/* assets — files built into the binary at build time (tools/mkassets.sh): the builtin data
 * sets (data/iris.csv, …) and the dashboard (web/…). Read-only; no I/O. */
#ifndef ANNEALD_ASSETS_H
#define ANNEALD_ASSETS_H
#include <stddef.h>

/* The embedded file called `name` (e.g. "data/iris.csv", "web/index.html"), NUL-terminated
 * for convenience; its length (without the NUL) goes to *len. NULL if there is none. */
const unsigned char *assets_get(const char *name, size_t *len);

/* The i-th embedded file's name, or NULL past the end (for listings and tests). */
const char *assets_name(size_t i);

#endif
