/* fashion — the Fashion-MNIST files from disk (fashion.h). */
#include "jobs/fashion.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "core/blob.h"
#include "core/data_idx.h"

#define FASHION_MAX_BYTES (64u << 20) /* decompressed, per file (the largest is 47 MB) */

const char *fashion_dir(void)
{
    const char *d = getenv("ANNEALD_FASHION_MNIST_DIR");
    return d && *d ? d : FASHION_DIR;
}

int fashion_check(an_err *err)
{
    char path[1024];
    for (int k = 0; k < 4; k++) {
        snprintf(path, sizeof path, "%s/%s", fashion_dir(), fashion_files[k]);
        if (access(path, R_OK) != 0)
            return an_fail(err, "data.name", "builtin fashion-mnist: %s is %s (install the "
                           "Debian package dataset-fashion-mnist: make deps)", path,
                           errno == ENOENT ? "missing" : "not readable");
    }
    return 0;
}

/* Gunzips one file into *out (malloc'd). */
static int gunzip(const char *path, unsigned char **out, size_t *len, an_err *err)
{
    gzFile f = gzopen(path, "rb");
    if (!f)
        return an_fail(err, "data.name", "builtin fashion-mnist: cannot open %s (%s)", path,
                       errno ? strerror(errno) : "out of memory");
    size_t cap = 1 << 20, n = 0;
    unsigned char *b = malloc(cap);
    int rc = b ? 0 : an_failc(err, -ENOMEM, "data.name", "out of memory reading %s", path);
    while (!rc) {
        if (n == cap) {
            unsigned char *nb = cap < FASHION_MAX_BYTES ? realloc(b, cap * 2) : NULL;
            if (!nb) {
                rc = an_fail(err, "data.name", "builtin fashion-mnist: %s is larger than %u "
                             "bytes decompressed: not a Fashion-MNIST file", path,
                             FASHION_MAX_BYTES);
                break;
            }
            b = nb;
            cap *= 2;
        }
        int got = gzread(f, b + n, (unsigned)(cap - n));
        if (got < 0) {
            int zerr;
            const char *msg = gzerror(f, &zerr);
            rc = an_fail(err, "data.name", "builtin fashion-mnist: %s is damaged (%s)", path,
                         msg ? msg : "gzip error");
        } else if (got == 0) {
            break;
        } else {
            n += (size_t)got;
        }
    }
    /* A gzip stream cut short reads as a clean end in some zlib versions: gzclose_r says. */
    int cr = gzclose_r(f);
    if (!rc && cr != Z_OK)
        rc = an_fail(err, "data.name", "builtin fashion-mnist: %s is damaged (the gzip stream "
                     "is cut off or corrupt)", path);
    if (rc) {
        free(b);
        return rc;
    }
    *out = b;
    *len = n;
    return 0;
}

int fashion_read(char **buf, size_t *len, an_err *err)
{
    *buf = NULL;
    *len = 0;
    int rc = fashion_check(err);
    if (rc)
        return rc;
    unsigned char *part[4] = {0};
    size_t plen[4] = {0}, total = 40;
    char path[1024];
    for (int k = 0; k < 4 && !rc; k++) {
        snprintf(path, sizeof path, "%s/%s", fashion_dir(), fashion_files[k]);
        rc = gunzip(path, &part[k], &plen[k], err);
        total += plen[k];
    }
    unsigned char *b = rc ? NULL : malloc(total);
    if (!rc && !b)
        rc = an_failc(err, -ENOMEM, "data.name", "out of memory for Fashion-MNIST");
    if (!rc) {
        memcpy(b, FASHION_MAGIC, 8);
        size_t off = 40;
        for (int k = 0; k < 4; k++) {
            le_put_u64(b + 8 + 8 * k, plen[k]);
            memcpy(b + off, part[k], plen[k]);
            off += plen[k];
        }
        *buf = (char *)b;
        *len = total;
    }
    for (int k = 0; k < 4; k++)
        free(part[k]);
    return rc;
}
