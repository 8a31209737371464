/* anneald — entry point: dispatches the offline commands and starts the service. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/cli.h"
#include "daemon/cli_lrfind.h"
#include "daemon/cli_util.h"
#include "daemon/daemon.h"
#include "jobs/mpirun.h"
#include "daemon/options.h"
#include "daemon/startup_signals.h"
#include "util/version.h"

/* oneDNN runs a job's products with more than one thread on OpenMP (libgomp), whose idle
 * threads by default spin between parallel regions for about 3 ms. On a machine whose cores
 * are shared (two jobs, or other work) the spinning thread takes the core from the job's own
 * main thread, and a parallel product waits for a thread that is not running: a "threads": 2
 * gpt job ran 4-5 times slower than with one thread there (100 steps of the shakespeare_char
 * recipe with two other processes busy: 14-19 s against 3.4-3.7 s; passive waiting: 3.3-4.5
 * s). Sleeping at once costs the other way: a gpt step opens about 90 parallel regions, and
 * waking a sleeping thread takes tens of microseconds on this machine class. A short spin
 * (1000 rounds, about 10 µs) catches the next region of a step: 400 steps at threads 2 took
 * 9.9-10.4 s instead of 11.2 s on idle cores, and 5.1 s instead of 4.7-4.8 s for 100 steps
 * with another process busy (a 2000-round spin: 10.1 s and 5.6 s; 20000: 10.0 s and 12.2 s).
 * libgomp reads these once, when it is loaded, before main: so the process runs itself again
 * once with OMP_WAIT_POLICY=passive and GOMP_SPINCOUNT=1000, unless the environment already
 * names a policy or a spin count (kept as given). If that exec fails, it carries on with
 * libgomp's default. */
static void omp_wait_short(char **argv)
{
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT") ||
        setenv("OMP_WAIT_POLICY", "passive", 1) != 0 || setenv("GOMP_SPINCOUNT", "1000", 1) != 0)
        return;
    /* The executable's own path, not /proc/self/exe: the process name (ps, pgrep, the
     * journal) comes from the file executed, and "exe" would name nothing. */
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0 || n >= (ssize_t)sizeof self - 1)
        return;
    self[n] = '\0';
    execv(self, argv);
}

/* A standard descriptor the caller closed (`anneald check x >&-`) would be handed to the next
 * file opened (a --metrics-csv, the store), and the output meant for stdout would land in it.
 * Each closed one gets /dev/null opened the wrong way round (stdout and stderr read-only,
 * stdin write-only), so its number stays taken and every use of it still fails (EBADF), as it
 * would have closed: a command then says it could not write its output. */
static void hold_std_fds(void)
{
    for (int fd = 0; fd <= 2; fd++)
        if (fcntl(fd, F_GETFD) == -1 && errno == EBADF &&
            open("/dev/null", fd == 0 ? O_WRONLY : O_RDONLY) != fd)
            return;
}

int main(int argc, char **argv)
{
    /* Before anything that takes time (startup_signals.h): the mask survives the exec below.
     * For `train` and the daemon (no command: nothing, or an option, first). */
    if (argc < 2 || argv[1][0] == '-' || strcmp(argv[1], "train") == 0)
        startup_signals_block();
    hold_std_fds();
    omp_wait_short(argv);
    if (argc > 1 && strcmp(argv[1], "check") == 0)
        return cli_check(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "preview") == 0)
        return cli_preview(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "train") == 0)
        return cli_train(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "generate") == 0)
        return cli_generate(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "lr-find") == 0)
        return cli_lrfind(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "rank") == 0) /* the MPI rank program (jobs/mpirun.h) */
        return mpirun_exec_rank(argc - 1, argv + 1);

    daemon_opts o;
    options_defaults(&o);
    const char *what;
    char msg[1024];
    int rc = options_parse(argc, argv, &o, &what, msg, sizeof msg);
    if (rc < 0) {
        fprintf(stderr, "anneald: %s\n", msg);
        return 2;
    }
    if (rc == 1 && strcmp(what, "version") == 0) {
        printf("anneald %s\n", ANNEALD_VERSION);
        return cli_stdout_done("the version", 0);
    }
    if (rc == 1) {
        fputs(options_usage(), stdout);
        return cli_stdout_done("the help", 0);
    }
    if (!o.token[0] && !options_is_loopback(o.host)) {
        fprintf(stderr, "anneald: listening on %s (not loopback) needs --token-file\n", o.host);
        return 2;
    }
    return daemon_run(&o);
}
