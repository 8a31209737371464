/* util — the clock and the file reader every layer shares. */
#include "util/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

double util_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int util_read_file(const char *path, char **buf, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f)
        return -errno;
    /* fopen opens a directory for reading on Linux and only the read fails, so it is named
     * here rather than left to that read. */
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        if (f != stdin)
            fclose(f);
        return -EISDIR;
    }
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap + 1);
    int rc = b ? 0 : -ENOMEM;
    int read_errno = 0; /* the read's own reason: errno may be changed before it is reported */
    while (!rc) {
        if (n == cap) { /* doubling: a file of any size in O(size) copies */
            char *nb = realloc(b, cap * 2 + 1);
            if (!nb) {
                rc = -ENOMEM;
                break;
            }
            b = nb;
            cap *= 2;
        }
        errno = 0;
        size_t r = fread(b + n, 1, cap - n, f);
        n += r;
        if (r == 0) {
            read_errno = errno;
            break;
        }
    }
    if (!rc && ferror(f))
        rc = read_errno ? -read_errno : -EIO;
    if (f != stdin)
        fclose(f);
    if (rc) {
        free(b);
        return rc;
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return 0;
}
