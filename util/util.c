/* util — the clock and the file reader every layer shares. */
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

/* Ends a write through f: the first error of rc, the flush, the fsync (when asked) and the
 * close, each with its own errno. */
static int finish_file(FILE *f, int rc, int sync)
{
    if (!rc && fflush(f) != 0)
        rc = -errno;
    if (!rc && ferror(f))
        rc = -EIO;
    if (!rc && sync && fsync(fileno(f)) != 0)
        rc = -errno;
    if (fclose(f) != 0 && !rc)
        rc = -errno;
    return rc;
}

/* PATH.tmp for the file path names (its target when it is a symlink); malloc'd or NULL. */
static char *tmp_name(const char *path, int exists)
{
    char *real = exists ? realpath(path, NULL) : NULL;
    const char *target = real ? real : path;
    size_t n = strlen(target) + sizeof ".tmp";
    char *tmp = malloc(n);
    if (tmp)
        snprintf(tmp, n, "%s.tmp", target);
    free(real);
    return tmp;
}

int util_write_atomic(const char *path, int (*write)(FILE *f, void *arg), void *arg)
{
    struct stat st;
    int exists = stat(path, &st) == 0;
    if (exists && !S_ISREG(st.st_mode)) {
        FILE *f = fopen(path, "wb");
        if (!f)
            return -errno;
        return finish_file(f, write(f, arg), 0);
    }
    char *tmp = tmp_name(path, exists);
    if (!tmp)
        return -ENOMEM;
    int rc = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        rc = -errno;
        if (fd >= 0)
            close(fd);
    } else {
        if (exists && fchmod(fd, st.st_mode & 07777) != 0)
            rc = -errno;
        /* fsync before the rename: else a crash just after it can leave PATH empty (the
         * rename reaches the disk before the data on some file systems). */
        rc = finish_file(f, rc ? rc : write(f, arg), 1);
    }
    if (!rc) {
        char *target = exists ? realpath(path, NULL) : NULL;
        if (rename(tmp, target ? target : path) != 0)
            rc = -errno;
        free(target);
    }
    if (rc) {
        unlink(tmp);
    } else {
        /* The rename itself made durable: the directory's entry is fsync'd (best effort; a
         * failure here loses nothing that was there before). */
        char *d = strdup(tmp);
        int dfd = d ? open(dirname(d), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        free(d);
    }
    free(tmp);
    return rc;
}

int util_check_writable(const char *path)
{
    struct stat st;
    int exists = stat(path, &st) == 0;
    if (exists && S_ISDIR(st.st_mode))
        return -EISDIR;
    if (exists && !S_ISREG(st.st_mode)) {
        /* A device or a pipe is opened as it will be written; a pipe without a reader yet
         * (ENXIO without blocking) may still get one. */
        int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
            return errno == ENXIO ? 0 : -errno;
        close(fd);
        return 0;
    }
    if (exists && access(path, W_OK) != 0)
        return -errno;
    char *tmp = tmp_name(path, exists);
    if (!tmp)
        return -ENOMEM;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    int rc = fd >= 0 ? 0 : -errno;
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    } else if (rc == -EEXIST) { /* a left-over PATH.tmp: the save will replace it */
        rc = access(tmp, W_OK) == 0 ? 0 : -errno;
    }
    free(tmp);
    return rc;
}
