/* util — the few helpers every layer may use (core, store, api, daemon, the rank program):
 * the monotonic clock, reading a whole file, and little-endian bytes. One copy of each, so
 * that a checkpoint's byte order or a duration means the same everywhere. */
#ifndef ANNEALD_UTIL_H
#define ANNEALD_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Seconds on the monotonic clock (for durations; never a wall-clock time). */
double util_now(void);

/* Reads a whole file ("-" = standard input) into a malloc'd buffer with a NUL after its *len
 * bytes. 0, or -errno: the open's or the read's own (-EISDIR for a directory, -ENOMEM; -EIO
 * only when the read gave no reason). */
int util_read_file(const char *path, char **buf, size_t *len);

/* Replaces the file at `path` whole or not at all: write(f, arg) fills a temporary file next
 * to it (PATH.tmp; returns 0 or -errno), which is flushed, fsync'd and renamed over PATH, so a
 * failed write (a full disk) or a kill on the way leaves the old file as it was. A symlink has
 * its target replaced, and an existing file keeps its mode. A path that is not a regular file
 * (a device such as /dev/stdout or /dev/full, a pipe) is written in place: a rename would
 * replace the node. 0, or -errno of the step that failed. */
int util_write_atomic(const char *path, int (*write)(FILE *f, void *arg), void *arg);

/* Whether util_write_atomic(path) can be expected to succeed, found before long work: the
 * directory takes a new file (a probe PATH.tmp, removed at once; one already there is left as
 * it is) and an existing file is writable. Leaves nothing behind. 0, or -errno. */
int util_check_writable(const char *path);

/* Little-endian integers and doubles at b, whatever the machine's byte order (stored formats:
 * checkpoint blobs, scheduler and optimizer states, metric blocks and summaries). On a
 * little-endian machine each is one unaligned load or store. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define UTIL_LE_HOST 1
#else
#define UTIL_LE_HOST 0
#endif

static inline void le_put_u32(unsigned char *b, uint32_t v)
{
    if (UTIL_LE_HOST) {
        memcpy(b, &v, 4);
        return;
    }
    for (int i = 0; i < 4; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}

static inline void le_put_u64(unsigned char *b, uint64_t v)
{
    if (UTIL_LE_HOST) {
        memcpy(b, &v, 8);
        return;
    }
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}

static inline uint32_t le_get_u32(const unsigned char *b)
{
    uint32_t v = 0;
    if (UTIL_LE_HOST) {
        memcpy(&v, b, 4);
        return v;
    }
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | b[i];
    return v;
}

static inline uint64_t le_get_u64(const unsigned char *b)
{
    uint64_t v = 0;
    if (UTIL_LE_HOST) {
        memcpy(&v, b, 8);
        return v;
    }
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | b[i];
    return v;
}

/* A double's bits, little-endian (NaN payloads and signed zeros kept). */
static inline void le_put_f64(unsigned char *b, double d)
{
    uint64_t v;
    memcpy(&v, &d, 8);
    le_put_u64(b, v);
}

static inline double le_get_f64(const unsigned char *b)
{
    uint64_t v = le_get_u64(b);
    double d;
    memcpy(&d, &v, 8);
    return d;
}

#endif
