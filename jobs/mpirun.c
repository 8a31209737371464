/* mpirun — Open MPI's launcher and the rank program, as the daemon sees them (mpirun.h). */
#include "jobs/mpirun.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int is_executable_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* host[:slots] names separated by commas: letters, digits, '.', '-', '_' and a ':N' count. */
static int valid_hostlist(const char *s)
{
    if (!*s)
        return 0;
    const char *p = s;
    while (*p) {
        size_t n = 0;
        while (p[n] && p[n] != ',' && p[n] != ':') {
            char c = p[n];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || c == '_'))
                return 0;
            n++;
        }
        if (n == 0)
            return 0;
        p += n;
        if (*p == ':') {
            p++;
            size_t d = 0;
            while (p[d] >= '0' && p[d] <= '9')
                d++;
            if (d == 0 || d > 4 || (*p == '0'))
                return 0;
            p += d;
        }
        if (*p == ',') {
            p++;
            if (!*p)
                return 0;
        } else if (*p) {
            return 0;
        }
    }
    return 1;
}

int mpirun_option(const char *name, const char *val, daemon_opts *o, char *msg, size_t msgsz)
{
    if (strcmp(name, "--mpirun") == 0) {
        if (!*val || strlen(val) >= sizeof o->mpirun) {
            snprintf(msg, msgsz, "--mpirun expects the path of Open MPI's mpirun (or a name on "
                     "PATH), got '%s'", val);
            return -EINVAL;
        }
        snprintf(o->mpirun, sizeof o->mpirun, "%s", val);
        return 1;
    }
    if (strcmp(name, "--mpi-hosts") != 0)
        return 0;
    o->mpi_hostfile[0] = o->mpi_hostlist[0] = '\0';
    /* a path (it has a '/' or names a file) is a hostfile; anything else a list of names */
    struct stat st;
    if (strchr(val, '/') || stat(val, &st) == 0) {
        if (strlen(val) >= sizeof o->mpi_hostfile || access(val, R_OK) != 0) {
            snprintf(msg, msgsz, "--mpi-hosts: cannot read the hostfile '%s': %s", val,
                     strlen(val) >= sizeof o->mpi_hostfile ? "path too long" : strerror(errno));
            return -EINVAL;
        }
        snprintf(o->mpi_hostfile, sizeof o->mpi_hostfile, "%s", val);
        return 1;
    }
    if (strlen(val) >= sizeof o->mpi_hostlist || !valid_hostlist(val)) {
        snprintf(msg, msgsz, "--mpi-hosts expects an Open MPI hostfile or host names with an "
                 "optional slot count separated by commas (e.g. node1:4,node2:4), got '%s'",
                 val);
        return -EINVAL;
    }
    snprintf(o->mpi_hostlist, sizeof o->mpi_hostlist, "%s", val);
    return 1;
}

int mpirun_find(const char *mpirun, char *out, size_t outsz)
{
    if (!mpirun || !*mpirun)
        return -ENOENT;
    if (strchr(mpirun, '/')) {
        if (!is_executable_file(mpirun) || strlen(mpirun) >= outsz)
            return -ENOENT;
        snprintf(out, outsz, "%s", mpirun);
        return 0;
    }
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        size_t n = strcspn(path, ":");
        char cand[PATH_MAX];
        int len = snprintf(cand, sizeof cand, "%.*s/%s", (int)(n ? n : 1), n ? path : ".",
                           mpirun);
        if (len > 0 && (size_t)len < sizeof cand && (size_t)len < outsz &&
            is_executable_file(cand)) {
            snprintf(out, outsz, "%s", cand);
            return 0;
        }
        path += n;
        if (*path == ':')
            path++;
    }
    return -ENOENT;
}

int mpirun_find_rank(const char *self, char *out, size_t outsz)
{
    if (!self || !*self)
        return -ENOENT;
    const char *slash = strrchr(self, '/');
    int dirlen = slash ? (int)(slash - self) : 1;
    const char *dir = slash ? self : ".";
    char cand[PATH_MAX];
    int len = snprintf(cand, sizeof cand, "%.*s/%s", dirlen, dir, MPIRUN_RANK_PROGRAM);
    if (len < 0 || (size_t)len >= sizeof cand || (size_t)len >= outsz ||
        !is_executable_file(cand))
        return -ENOENT;
    snprintf(out, outsz, "%s", cand);
    return 0;
}

int mpirun_job_check(const daemon_opts *o, int world_size, char *msg, size_t msgsz)
{
    if (world_size <= 1)
        return 0;
    char found[PATH_MAX];
    if (mpirun_find(o->mpirun, found, sizeof found) != 0) {
        snprintf(msg, msgsz, "world_size %d needs Open MPI's launcher, and '%s' is not an "
                 "executable file%s: install openmpi-bin or start the daemon with --mpirun PATH "
                 "(world_size 1 runs without it)", world_size, o->mpirun,
                 strchr(o->mpirun, '/') ? "" : " on PATH");
        return -ENOENT;
    }
    char self[PATH_MAX], rank[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = '\0';
    if (mpirun_find_rank(self, rank, sizeof rank) != 0) {
        snprintf(msg, msgsz, "world_size %d needs the rank program %s next to the daemon "
                 "(%s), which this installation does not have: build it with `make rank` "
                 "(and `make install` again for an installed daemon); until then multi-rank "
                 "jobs cannot run here (world_size 1 runs without it)", world_size,
                 MPIRUN_RANK_PROGRAM,
                 n > 0 ? self : "its directory is unknown");
        return -ENOENT;
    }
    return 0;
}

int mpirun_exec_rank(int argc, char **argv)
{
    char self[PATH_MAX], rank[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = '\0';
    if (mpirun_find_rank(self, rank, sizeof rank) != 0) {
        fprintf(stderr, "anneald rank: the rank program %s is not next to %s: build it with "
                "`make rank` (needs Open MPI's mpicc, libopenmpi-dev)\n", MPIRUN_RANK_PROGRAM,
                n > 0 ? self : "the daemon");
        return 1;
    }
    char **args = calloc((size_t)argc + 1, sizeof *args);
    if (!args) {
        fprintf(stderr, "anneald rank: out of memory\n");
        return 1;
    }
    args[0] = rank;
    for (int i = 1; i < argc; i++)
        args[i] = argv[i];
    execv(rank, args);
    fprintf(stderr, "anneald rank: cannot start %s: %s\n", rank, strerror(errno));
    free(args);
    return 1;
}
