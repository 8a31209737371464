/* lock — the store's lock file (see lock.h). */
#include "store/lock.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* The store this process holds the lock of, by name and by file: connections opened later
 * (a request thread's first one, a worker restarted) must open that same file. */
static struct {
    char path[4200];
    dev_t dev;
    ino_t ino;
    int dbfd;
    int held;
    char moved[600]; /* store_lock_verify's last finding of a moved file ("" = none) */
} g_held;
static pthread_mutex_t g_held_mu = PTHREAD_MUTEX_INITIALIZER;

/* The pid in the lock file, as the holder wrote it (0 when unreadable). */
static long pid_in_file(int fd)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    return strtol(buf, NULL, 10);
}

int store_lock_take(store_lock *l, const char *db_path, an_err *err)
{
    l->fd = -1;
    l->dbfd = -1;
    char path[4200];
    if (snprintf(path, sizeof path, "%s.lock", db_path) >= (int)sizeof path)
        return an_failc(err, -ENAMETOOLONG, "", "the store's path is too long");
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        return an_failc(err, -e, "", "cannot open the lock file %s: %s", path, strerror(e));
    }
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fcntl(fd, F_SETLK, &fl) != 0) {
        int e = errno;
        if (e != EACCES && e != EAGAIN) {
            close(fd);
            return an_failc(err, -e, "", "cannot lock %s: %s", path, strerror(e));
        }
        struct flock who = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
        long pid = 0;
        if (fcntl(fd, F_GETLK, &who) == 0 && who.l_type != F_UNLCK)
            pid = (long)who.l_pid;
        if (pid <= 0)
            pid = pid_in_file(fd);
        close(fd);
        if (pid > 0)
            return an_failc(err, -EBUSY, "",
                            "the store %s is in use by another anneald (pid %ld, lock file %s)",
                            db_path, pid, path);
        return an_failc(err, -EBUSY, "", "the store %s is in use by another process (lock file %s)",
                        db_path, path);
    }
    /* The database file itself, by its inode: a hard or symbolic link to it has a lock file
     * of its own. A BSD lock (flock) is separate from the POSIX locks SQLite takes on the
     * file. The descriptor stays open until every connection is closed: closing a descriptor
     * of a file drops the process's POSIX locks on it, SQLite's included. */
    int dbfd = open(db_path, O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
    if (dbfd < 0) {
        int e = errno;
        close(fd);
        return an_failc(err, -e, "", "cannot open the store %s: %s", db_path, strerror(e));
    }
    if (flock(dbfd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(dbfd);
        close(fd);
        if (e == EWOULDBLOCK)
            return an_failc(err, -EBUSY, "", "the store %s is in use by another anneald, "
                            "which opened it under another name (a hard or symbolic link to "
                            "the same file)", db_path);
        return an_failc(err, -e, "", "cannot lock the store %s: %s", db_path, strerror(e));
    }
    l->dbfd = dbfd;
    struct stat st;
    l->links = fstat(dbfd, &st) == 0 ? (long)st.st_nlink : 1;
    pthread_mutex_lock(&g_held_mu);
    snprintf(g_held.path, sizeof g_held.path, "%s", db_path);
    g_held.dev = st.st_dev;
    g_held.ino = st.st_ino;
    g_held.dbfd = dbfd;
    g_held.held = 1;
    g_held.moved[0] = '\0';
    pthread_mutex_unlock(&g_held_mu);
    /* The pid is for people reading the file; the lock itself is what counts. */
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
        /* The lock is held all the same; a missing pid only makes the message vaguer. */
    }
    l->fd = fd;
    return 0;
}

int store_lock_verify(const char *db_path, int *held, an_err *err)
{
    pthread_mutex_lock(&g_held_mu);
    int mine = g_held.held && db_path && strcmp(db_path, g_held.path) == 0;
    dev_t dev = g_held.dev;
    ino_t ino = g_held.ino;
    int dbfd = g_held.dbfd;
    pthread_mutex_unlock(&g_held_mu);
    if (held)
        *held = mine;
    if (!mine)
        return 0;
    struct stat st;
    const char *how = NULL;
    if (stat(db_path, &st) != 0)
        how = errno == ENOENT ? "deleted" : NULL;
    else if (st.st_dev != dev || st.st_ino != ino)
        how = "replaced by another file";
    char msg[sizeof g_held.moved] = "";
    if (how)
        snprintf(msg, sizeof msg,
                 "the store file %s was %s while this daemon was running: nothing opens it "
                 "again, so the jobs and data sets in it are not mixed with another file's. "
                 "Until the daemon stops, the file it opened can be copied from "
                 "/proc/%ld/fd/%d; then stop the daemon, put the store back and start it again",
                 db_path, how, (long)getpid(), dbfd);
    /* kept for store_lock_moved: whoever asks next need not look at the disk */
    pthread_mutex_lock(&g_held_mu);
    if (g_held.held && g_held.dbfd == dbfd)
        snprintf(g_held.moved, sizeof g_held.moved, "%s", msg);
    pthread_mutex_unlock(&g_held_mu);
    if (!how)
        return 0; /* there, and the file it was (or unreadable: opening says why) */
    return an_failc(err, -ESTALE, "", "%s", msg);
}

int store_lock_moved(char *msg, size_t n)
{
    pthread_mutex_lock(&g_held_mu);
    int moved = g_held.held && g_held.moved[0];
    if (moved && msg && n)
        snprintf(msg, n, "%s", g_held.moved);
    pthread_mutex_unlock(&g_held_mu);
    return moved;
}

int store_lock_set_aside(const char *db_path)
{
    int held = 0;
    if (store_lock_verify(db_path, &held, NULL) == 0)
        return 0;
    int moved = 0;
    static const char *const side[] = {"-wal", "-shm"};
    for (int i = 0; i < 2; i++) {
        char from[4200], to[4300];
        snprintf(from, sizeof from, "%s%s", db_path, side[i]);
        snprintf(to, sizeof to, "%s%s.of-a-replaced-store", db_path, side[i]);
        if (rename(from, to) == 0)
            moved++;
    }
    return moved;
}

void store_lock_release(store_lock *l)
{
    pthread_mutex_lock(&g_held_mu);
    if (l->dbfd >= 0 && g_held.held && g_held.dbfd == l->dbfd)
        g_held.held = 0;
    pthread_mutex_unlock(&g_held_mu);
    if (l->dbfd >= 0) {
        close(l->dbfd);
        l->dbfd = -1;
    }
    if (l->fd >= 0) {
        close(l->fd);
        l->fd = -1;
    }
}
