/* iolog.c — an LD_PRELOAD shim that logs every change the daemon makes to its store's files,
 * so that tests/powerloss/replay.mjs can rebuild what a power loss at any moment could leave.
 *
 *   IOLOG_DB=/abs/path/store.db IOLOG_DIR=/some/dir LD_PRELOAD=iolog.so anneald --db ...
 *
 * Files logged: the store itself, its -wal and its -journal. Not the -shm: SQLite maps it and
 * rebuilds it from the WAL at the first open after a crash, so a power loss just loses it.
 *
 * IOLOG_DIR/ops holds fixed-size records (struct iolog_rec, little-endian), IOLOG_DIR/data
 * the bytes of each write, IOLOG_DIR/files one path a line (a record's `file` is its line
 * number, from 0). The record count (the size of ops / 48) is the log's clock: a test that
 * reads it after an answer knows every write and sync the answer waited for came before.
 *
 * A write or truncate is logged under one lock together with the call itself, so the log's
 * order is the order the kernel saw them in. A sync is logged when it returns, with `cover`
 * the record count when it began: the writes to that file logged before `cover` are on the
 * disk, those after may or may not be (they ran while the sync did). */
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

enum { OP_WRITE = 1, OP_TRUNC = 2, OP_SYNC = 3, OP_UNLINK = 4, OP_RENAME = 5, OP_CREATE = 6 };

struct iolog_rec {
    uint32_t op;
    uint32_t file;     /* OP_RENAME: the file renamed; `off` is the file it becomes */
    int64_t off;       /* OP_WRITE: offset; OP_TRUNC: the new size */
    int64_t len;       /* OP_WRITE: bytes */
    int64_t data;      /* OP_WRITE: where its bytes start in IOLOG_DIR/data */
    int64_t cover;     /* OP_SYNC: the record count when the sync began */
    int64_t pad;
};

#define MAX_FD 65536
#define MAX_FILES 64

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int fd_file[MAX_FD];          /* file id + 1 of a logged descriptor, 0 for others */
static char *files[MAX_FILES];
static int nfiles;
static int log_ops = -1, log_data = -1, log_files = -1;
static int64_t nrec, data_off;
static char db[4096];

static int (*real_open)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static int (*real_ftruncate)(int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_close)(int);
static int (*real_unlink)(const char *);
static int (*real_rename)(const char *, const char *);

static void setup(void)
{
    real_open = dlsym(RTLD_NEXT, "open64");
    real_openat = dlsym(RTLD_NEXT, "openat64");
    real_write = dlsym(RTLD_NEXT, "write");
    real_pwrite = dlsym(RTLD_NEXT, "pwrite64");
    real_writev = dlsym(RTLD_NEXT, "writev");
    real_ftruncate = dlsym(RTLD_NEXT, "ftruncate64");
    real_fsync = dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
    real_close = dlsym(RTLD_NEXT, "close");
    real_unlink = dlsym(RTLD_NEXT, "unlink");
    real_rename = dlsym(RTLD_NEXT, "rename");
    const char *d = getenv("IOLOG_DB"), *dir = getenv("IOLOG_DIR");
    if (!d || !dir || strlen(d) >= sizeof db - 16)
        return;
    snprintf(db, sizeof db, "%s", d);
    char p[4200];
    snprintf(p, sizeof p, "%s/ops", dir);
    log_ops = real_open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    snprintf(p, sizeof p, "%s/data", dir);
    log_data = real_open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    snprintf(p, sizeof p, "%s/files", dir);
    log_files = real_open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_ops < 0 || log_data < 0 || log_files < 0) {
        fprintf(stderr, "iolog: cannot open the log in %s\n", dir);
        abort();
    }
}

/* Writes all of buf to a log descriptor; a log that cannot be written ends the process, since
 * a test reading a log with a hole would judge states the daemon never made. */
static void put(int fd, const void *buf, size_t n)
{
    const char *b = buf;
    while (n) {
        ssize_t w = real_write(fd, b, n);
        if (w <= 0) {
            fprintf(stderr, "iolog: cannot write the log\n");
            abort();
        }
        b += w;
        n -= (size_t)w;
    }
}

static void record(uint32_t op, int file, int64_t off, int64_t len, int64_t data, int64_t cover)
{
    struct iolog_rec r = {op, (uint32_t)file, off, len, data, cover, 0};
    put(log_ops, &r, sizeof r);
    nrec++;
}

/* The id of a store file by path, registering it on first sight; -1 for other paths. Call
 * with mu held. */
static int file_id(const char *path)
{
    if (log_ops < 0 || !path)
        return -1;
    size_t n = strlen(db);
    if (strncmp(path, db, n) != 0)
        return -1;
    const char *rest = path + n;
    if (*rest && strcmp(rest, "-wal") != 0 && strcmp(rest, "-journal") != 0)
        return -1;
    for (int i = 0; i < nfiles; i++)
        if (strcmp(files[i], path) == 0)
            return i;
    if (nfiles == MAX_FILES)
        abort();
    files[nfiles] = strdup(path);
    put(log_files, path, strlen(path));
    put(log_files, "\n", 1);
    return nfiles++;
}

static int tracked(int fd)
{
    return fd >= 0 && fd < MAX_FD ? fd_file[fd] - 1 : -1;
}

static void opened(const char *path, int fd, int flags)
{
    if (fd < 0 || fd >= MAX_FD)
        return;
    pthread_mutex_lock(&mu);
    int id = file_id(path);
    fd_file[fd] = id + 1;
    if (id >= 0 && (flags & O_CREAT))
        record(OP_CREATE, id, 0, 0, 0, 0);
    if (id >= 0 && (flags & O_TRUNC))
        record(OP_TRUNC, id, 0, 0, 0, 0);
    pthread_mutex_unlock(&mu);
}

static int mode_of(int flags, va_list ap)
{
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(ap, int) : 0;
}

static int open_path(const char *path, int flags, int mode)
{
    int fd = real_open(path, flags, mode);
    opened(path, fd, flags);
    return fd;
}

int open64(const char *path, int flags, ...)
{
    pthread_once(&once, setup);
    va_list ap;
    va_start(ap, flags);
    int mode = mode_of(flags, ap);
    va_end(ap);
    return open_path(path, flags, mode);
}

/* glibc's open and open64 are one function; SQLite calls open64, others may call open. */
int open(const char *path, int flags, ...) __attribute__((alias("open64")));

static int open_at(int dirfd, const char *path, int flags, int mode)
{
    int fd = real_openat(dirfd, path, flags, mode);
    /* Only absolute paths can name the store here; the daemon and SQLite use them. */
    if (path && path[0] == '/')
        opened(path, fd, flags);
    return fd;
}

int openat64(int dirfd, const char *path, int flags, ...)
{
    pthread_once(&once, setup);
    va_list ap;
    va_start(ap, flags);
    int mode = mode_of(flags, ap);
    va_end(ap);
    return open_at(dirfd, path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...) __attribute__((alias("openat64")));

/* Makes a write (pwrite at off when `at`, else at the descriptor's offset) and logs it, under
 * the lock. */
static ssize_t logged_write(int id, int fd, const struct iovec *iov, int cnt, off_t off, int at)
{
    pthread_mutex_lock(&mu);
    if (!at)
        off = lseek(fd, 0, SEEK_CUR);
    ssize_t w = at ? (cnt == 1 ? real_pwrite(fd, iov[0].iov_base, iov[0].iov_len, off) : -1)
                   : real_writev(fd, iov, cnt);
    if (w > 0) {
        record(OP_WRITE, id, off, w, data_off, 0);
        ssize_t left = w;
        for (int i = 0; i < cnt && left > 0; i++) {
            size_t n = iov[i].iov_len < (size_t)left ? iov[i].iov_len : (size_t)left;
            put(log_data, iov[i].iov_base, n);
            left -= (ssize_t)n;
        }
        data_off += w;
    }
    pthread_mutex_unlock(&mu);
    return w;
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    pthread_once(&once, setup);
    int id = tracked(fd);
    if (id < 0)
        return real_pwrite(fd, buf, n, off);
    struct iovec v = {(void *)buf, n};
    return logged_write(id, fd, &v, 1, off, 1);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    return pwrite64(fd, buf, n, off);
}

ssize_t write(int fd, const void *buf, size_t n)
{
    pthread_once(&once, setup);
    int id = tracked(fd);
    if (id < 0)
        return real_write(fd, buf, n);
    struct iovec v = {(void *)buf, n};
    return logged_write(id, fd, &v, 1, 0, 0);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    pthread_once(&once, setup);
    int id = tracked(fd);
    if (id < 0)
        return real_writev(fd, iov, cnt);
    return logged_write(id, fd, iov, cnt, 0, 0);
}

int ftruncate64(int fd, off_t size)
{
    pthread_once(&once, setup);
    int id = tracked(fd);
    if (id < 0)
        return real_ftruncate(fd, size);
    pthread_mutex_lock(&mu);
    int rc = real_ftruncate(fd, size);
    if (rc == 0)
        record(OP_TRUNC, id, size, 0, 0, 0);
    pthread_mutex_unlock(&mu);
    return rc;
}

int ftruncate(int fd, off_t size)
{
    return ftruncate64(fd, size);
}

static int logged_sync(int fd, int (*call)(int))
{
    pthread_once(&once, setup);
    int id = tracked(fd);
    if (id < 0)
        return call(fd);
    pthread_mutex_lock(&mu);
    int64_t cover = nrec;
    pthread_mutex_unlock(&mu);
    int rc = call(fd);
    if (rc == 0) {
        pthread_mutex_lock(&mu);
        record(OP_SYNC, id, 0, 0, 0, cover);
        pthread_mutex_unlock(&mu);
    }
    return rc;
}

int fsync(int fd)
{
    pthread_once(&once, setup);
    return logged_sync(fd, real_fsync);
}

int fdatasync(int fd)
{
    pthread_once(&once, setup);
    return logged_sync(fd, real_fdatasync);
}

int close(int fd)
{
    pthread_once(&once, setup);
    if (fd >= 0 && fd < MAX_FD && fd_file[fd]) {
        pthread_mutex_lock(&mu);
        fd_file[fd] = 0;
        int rc = real_close(fd);
        pthread_mutex_unlock(&mu);
        return rc;
    }
    return real_close(fd);
}

int unlink(const char *path)
{
    pthread_once(&once, setup);
    pthread_mutex_lock(&mu);
    int id = file_id(path);
    int rc = real_unlink(path);
    if (rc == 0 && id >= 0)
        record(OP_UNLINK, id, 0, 0, 0, 0);
    pthread_mutex_unlock(&mu);
    return rc;
}

int rename(const char *from, const char *to)
{
    pthread_once(&once, setup);
    pthread_mutex_lock(&mu);
    int a = file_id(from), b = file_id(to);
    int rc = real_rename(from, to);
    if (rc == 0 && (a >= 0 || b >= 0)) {
        /* A rename into or out of the logged names: the replay treats the target as a new
         * file that holds the source's bytes (or, renamed away, as removed). */
        if (a >= 0 && b >= 0)
            record(OP_RENAME, a, b, 0, 0, 0);
        else if (a >= 0)
            record(OP_UNLINK, a, 0, 0, 0, 0);
        else
            record(OP_CREATE, b, 0, 0, 0, 0); /* bytes from elsewhere: not modelled */
    }
    pthread_mutex_unlock(&mu);
    return rc;
}
