/* util — the few helpers every layer may use (core, store, api, daemon, the rank program):
 * the monotonic clock, reading a whole file, and little-endian bytes. One copy of each, so
 * that a checkpoint's byte order or a duration means the same everywhere. */
#ifndef ANNEALD_UTIL_H
#define ANNEALD_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Seconds on the monotonic clock (for durations; never a wall-clock time). */
double util_now(void);

/* Reads a whole file ("-" = standard input) into a malloc'd buffer with a NUL after its *len
 * bytes. 0, or -errno (-ENOMEM, -EIO for a read error). */
int util_read_file(const char *path, char **buf, size_t *len);

/* Little-endian integers at b, whatever the machine's byte order (stored formats: checkpoint
 * blobs, scheduler and optimizer states, metric blocks). */
static inline void le_put_u32(unsigned char *b, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}

static inline void le_put_u64(unsigned char *b, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}

static inline uint32_t le_get_u32(const unsigned char *b)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | b[i];
    return v;
}

static inline uint64_t le_get_u64(const unsigned char *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | b[i];
    return v;
}

#endif
