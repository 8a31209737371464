/* rankproc — the processes of a multi-rank job's run: the private directory with the Unix
 * socket rank 0 connects to and mpirun's output, mpirun started in a session of its own, and
 * the end of every process of that session (Open MPI puts each rank in a process group of its
 * own, so the session, not the group, is what holds them all). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "jobs/mpirun.h"
#include "jobs/rankproc.h"
#include "util/log.h"
#include "util/util.h"

extern char **environ;


int rankproc_reap(rank_procs *r, int block)
{
    if (r->pid <= 0)
        return 1;
    pid_t p = waitpid(r->pid, &r->status, block ? 0 : WNOHANG);
    if (p == r->pid || (p < 0 && errno == ECHILD)) {
        r->pid = -r->pid; /* the session's id is still wanted to sweep strays */
        return 1;
    }
    return 0;
}

/* SIGKILL to every process of session `sid` (mpirun, and its ranks in their own groups).
 * Returns how many of them were not yet dead (zombies, which only wait to be reaped, do
 * not count). */
static int kill_session(pid_t sid)
{
    int alive = 0;
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 1)
            continue;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
            continue;
        buf[n] = 0;
        char *rp = strrchr(buf, ')'); /* the command name may hold spaces */
        char state;
        int ppid, pgrp, sess;
        if (rp && sscanf(rp + 1, " %c %d %d %d", &state, &ppid, &pgrp, &sess) == 4 &&
            sess == sid && state != 'Z' && state != 'X') {
            kill((pid_t)pid, SIGKILL);
            alive++;
        }
    }
    closedir(d);
    return alive;
}

/* Ends mpirun and every rank, whatever state they are in (a SIGSTOPped rank included). */
void rankproc_end(rank_procs *r)
{
    pid_t sid = r->pid > 0 ? r->pid : -r->pid;
    if (sid <= 0)
        return;
    kill_session(sid);
    rankproc_reap(r, 1);
    /* Any started while the first sweep ran; and a SIGKILLed rank takes a moment to go (a
     * large one unmapping its memory): the run ends only when none is left, or after 5 s. */
    double t0 = util_now();
    while (kill_session(sid) > 0 && util_now() - t0 < 5.0)
        nanosleep(&(struct timespec){0, 10000000}, NULL);
}

/* The end of mpirun's output, for the log (it says which rank died and how). */
void rankproc_tidy(const char *in, char *out, size_t size)
{
    size_t o = 0;
    if (size == 0)
        return;
    for (const char *line = in; *line;) {
        size_t n = strcspn(line, "\r\n");
        if (strspn(line, "-= \t") < n) { /* not a rule or a blank line: its words */
            for (size_t i = 0; i < n && o + 1 < size; i++) {
                char c = line[i] == '\t' ? ' ' : line[i];
                if (c == ' ' && (o == 0 || out[o - 1] == ' '))
                    continue;
                out[o++] = c;
            }
            if (o > 0 && out[o - 1] != ' ' && o + 1 < size)
                out[o++] = ' ';
        }
        line += n;
        line += strspn(line, "\r\n");
    }
    while (o > 0 && out[o - 1] == ' ')
        o--;
    out[o] = '\0';
}

void rankproc_tail(const rank_procs *r, char *out, size_t size)
{
    out[0] = 0;
    int fd = open(r->log, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char raw[1024];
    size_t want = size - 1 < sizeof raw - 1 ? size - 1 : sizeof raw - 1;
    off_t end = lseek(fd, 0, SEEK_END);
    off_t from = end > (off_t)want ? end - (off_t)want : 0;
    ssize_t n = pread(fd, raw, want, from);
    close(fd);
    raw[n > 0 ? n : 0] = 0;
    rankproc_tidy(raw, out, size);
}

int rankproc_sweep_stale(void)
{
    DIR *d = opendir("/tmp");
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int pid = 0, len = 0;
        if (sscanf(e->d_name, "anneald-ranks-%d-%*6[A-Za-z0-9]%n", &pid, &len) != 1 ||
            e->d_name[len] || pid <= 0 || pid == getpid())
            continue;
        if (kill(pid, 0) == 0 || errno != ESRCH) /* that daemon (or something) lives */
            continue;
        char dir[300], f[340];
        snprintf(dir, sizeof dir, "/tmp/%s", e->d_name);
        struct stat st;
        if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
            continue;
        snprintf(f, sizeof f, "%s/daemon.sock", dir);
        unlink(f);
        snprintf(f, sizeof f, "%s/mpirun.log", dir);
        unlink(f);
        n += rmdir(dir) == 0;
    }
    closedir(d);
    return n;
}

int rankproc_socket(rank_procs *r)
{
    /* named with this daemon's pid, so that the next start can tell a directory left by one
     * that was killed (rankproc_sweep_stale) */
    snprintf(r->dir, sizeof r->dir, "/tmp/anneald-ranks-%d-XXXXXX", (int)getpid());
    if (!mkdtemp(r->dir)) {
        r->dir[0] = 0;
        return -errno;
    }
    snprintf(r->sock, sizeof r->sock, "%s/daemon.sock", r->dir);
    snprintf(r->log, sizeof r->log, "%s/mpirun.log", r->dir);
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof a.sun_path, "%s", r->sock);
    r->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (r->lfd < 0 || bind(r->lfd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(r->lfd, 1) != 0)
        return -errno;
    return 0;
}

void rankproc_cleanup(rank_procs *r)
{
    if (r->lfd >= 0)
        close(r->lfd);
    if (r->dir[0]) {
        unlink(r->sock);
        unlink(r->log);
        rmdir(r->dir);
    }
}

/* Starts mpirun in a session of its own, its output in the private directory's log. */
int rankproc_spawn(rank_procs *r, const daemon_opts *o, int world, const char *id, char *msg,
                       size_t msgsz)
{
    char mpirun[PATH_MAX], self[PATH_MAX], rank[PATH_MAX], np[16];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = 0;
    if (mpirun_find(o->mpirun, mpirun, sizeof mpirun) || mpirun_find_rank(self, rank, sizeof rank)) {
        mpirun_job_check(o, world, msg, msgsz);
        return -ENOENT;
    }
    snprintf(np, sizeof np, "%d", world);
    const char *argv[24];
    int a = 0;
    argv[a++] = mpirun;
    argv[a++] = "-np";
    argv[a++] = np;
    if (o->mpi_hostfile[0]) {
        argv[a++] = "--hostfile";
        argv[a++] = o->mpi_hostfile;
    } else if (o->mpi_hostlist[0]) {
        argv[a++] = "--host";
        argv[a++] = o->mpi_hostlist;
    }
    argv[a++] = "--mca";
    argv[a++] = "btl";
    /* shared memory between ranks on one host, TCP between hosts */
    argv[a++] = o->mpi_hostfile[0] || o->mpi_hostlist[0] ? "self,vader,tcp" : "self,vader";
    int local = !o->mpi_hostfile[0] && !o->mpi_hostlist[0];
    if (local) {
        argv[a++] = "--oversubscribe"; /* this machine: more ranks than cores still run */
        /* The ranks share the cores with the daemon and its other jobs: a rank waiting in a
         * collective that spins takes the core its peer needs (6x slower at W = 2 on a busy
         * two-core machine; yielding: as fast as one process) */
        argv[a++] = "--mca";
        argv[a++] = "mpi_yield_when_idle";
        argv[a++] = "1";
    }
    argv[a++] = rank;
    argv[a++] = "--job";
    argv[a++] = id;
    argv[a++] = "--socket";
    argv[a++] = r->sock;
    argv[a] = NULL;

    size_t ne = 0;
    while (environ[ne])
        ne++;
    char **envp = calloc(ne + 5, sizeof *envp);
    if (!envp)
        return -ENOMEM;
    memcpy(envp, environ, ne * sizeof *envp);
    int root = geteuid() == 0;
    if (root && !getenv("OMPI_ALLOW_RUN_AS_ROOT")) {
        envp[ne++] = "OMPI_ALLOW_RUN_AS_ROOT=1";
        envp[ne++] = "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1";
    }
    /* Open MPI's hwloc run-time component can crash a starting orted while it shares the
     * topology; nothing here binds processes. */
    if (!getenv("OMPI_MCA_rtc"))
        envp[ne++] = "OMPI_MCA_rtc=^hwloc";
    /* this machine's cores split among the ranks, unless the operator chose */
    char omp[48];
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (local && !getenv("OMP_NUM_THREADS")) {
        snprintf(omp, sizeof omp, "OMP_NUM_THREADS=%ld", cores > world ? cores / world : 1);
        envp[ne++] = omp;
    }
    if (root)
        util_log(LOG_INFO, "job %s: running as root: mpirun is started with "
                 "OMPI_ALLOW_RUN_AS_ROOT=1 and OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1", id);

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, r->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int rc = posix_spawn(&pid, mpirun, &fa, &at, (char *const *)argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    free(envp);
    if (rc) {
        snprintf(msg, msgsz, "world_size: cannot start %s: %s", mpirun, strerror(rc));
        return -rc;
    }
    r->pid = pid;
    util_log(LOG_INFO, "job %s: started %s -np %d (pid %d) for its %d ranks", id, mpirun, world,
             (int)pid, world);
    return 0;
}


/* ---- rank 0's connection ---- */

static int send_all(int fd, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pf = {fd, POLLOUT, 0};
            if (poll(&pf, 1, 30000) <= 0) /* rank 0 reads the job at once */
                return -ETIMEDOUT;
            continue;
        }
        if (n <= 0)
            return -EPIPE;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int rankproc_send(int fd, int type, const void *a, size_t alen, const void *b, size_t blen)
{
    unsigned char h[RW_HEADER];
    rw_header(h, type, (uint32_t)(alen + blen));
    int rc = send_all(fd, h, sizeof h);
    if (!rc && alen)
        rc = send_all(fd, a, alen);
    if (!rc && blen)
        rc = send_all(fd, b, blen);
    return rc;
}

int rankproc_read(int fd, frame_in *f)
{
    for (;;) {
        int hdr = f->nh < RW_HEADER;
        if (!hdr && f->have == f->len)
            break;
        unsigned char *dst = hdr ? f->hdr + f->nh : f->buf + f->have;
        size_t want = hdr ? RW_HEADER - f->nh : f->len - f->have;
        ssize_t n = recv(fd, dst, want, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n <= 0)
            return -EPIPE;
        if (!hdr) {
            f->have += (size_t)n;
            continue;
        }
        f->nh += (size_t)n;
        if (f->nh == RW_HEADER) {
            if (rw_header_parse(f->hdr, &f->type, &f->len) || f->type < RW_METRICS)
                return -EPROTO;
            f->buf = malloc(f->len ? f->len : 1);
            if (!f->buf)
                return -ENOMEM;
            f->have = 0;
        }
    }
    f->nh = 0;
    return 1;
}

