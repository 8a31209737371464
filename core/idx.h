/* idx — the IDX format of MNIST and Fashion-MNIST (a big-endian header: two zero bytes, the
 * element type 0x08 = unsigned byte, the number of dimensions, each dimension as a 32-bit
 * count; then the elements). Parses a file already read into memory (and decompressed: the
 * daemon gunzips the Debian package's .gz files); pure, no I/O. */
#ifndef ANNEALD_IDX_H
#define ANNEALD_IDX_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define IDX_MAX_DIMS 4

typedef struct idx_array {
    int ndims;
    uint32_t dims[IDX_MAX_DIMS];
    const uint8_t *data;   /* points into the parsed buffer: dims[0]·…·dims[ndims-1] bytes */
    size_t count;          /* elements */
} idx_array;

/* Parses buf[0..len). `name` (the file's name) and `field` go into errors: a bad magic, an
 * element type other than unsigned byte, a length that disagrees with the header (truncated or
 * trailing bytes) are each a clear error saying which file is damaged and how. */
int idx_parse(const uint8_t *buf, size_t len, const char *name, const char *field,
              idx_array *out, an_err *err);

/* Checks an images/labels pair as Fashion-MNIST has them: images [n, 28, 28], labels [n] in
 * 0..9, the same n. */
int idx_check_pair(const idx_array *images, const idx_array *labels, const char *names,
                   const char *field, an_err *err);

#endif
