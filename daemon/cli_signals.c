/* cli_signals — a stop signal during the offline trainer's start-up (cli_signals.h). */
#include "daemon/cli_signals.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_t watcher;
static int watching;          /* the watcher runs (the main thread's to read and write) */
static int over;              /* start-up is over (under mu) */
static const char *command;
#define WAKE 0x57414b45 /* the value of cli_startup_over's signal to the watcher */

static void stop_set(sigset_t *s)
{
    sigemptyset(s);
    sigaddset(s, SIGINT);
    sigaddset(s, SIGTERM);
}

void cli_signals_block(void)
{
    sigset_t s;
    stop_set(&s);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
}

static void *watch(void *arg)
{
    (void)arg;
    prctl(PR_SET_NAME, "cli-signals", 0, 0, 0);
    sigset_t s;
    stop_set(&s);
    siginfo_t info;
    int sig;
    while ((sig = sigwaitinfo(&s, &info)) < 0 && errno == EINTR)
        ;
    if (sig < 0)
        return NULL;
    pthread_mutex_lock(&mu);
    if (!over) {
        /* Nothing is written before start-up is over, so nothing is left half done; the lock
         * is kept, so that the trainer does not go on while the process ends. */
        char msg[200];
        int n = snprintf(msg, sizeof msg, "anneald %s: interrupted by %s during start-up, "
                         "before the first step: nothing was trained or written\n", command,
                         sig == SIGINT ? "Ctrl-C (SIGINT)" : "SIGTERM");
        ssize_t w = write(2, msg, (size_t)n);
        (void)w; /* nothing more to do when stderr is gone */
        _exit(130);
    }
    pthread_mutex_unlock(&mu);
    /* Not the wake of cli_startup_over (queued by this process with WAKE) but a signal that
     * came as start-up ended: it is the command's, which takes it between steps. */
    if (!(info.si_code == SI_QUEUE && info.si_pid == getpid() && info.si_value.sival_int == WAKE))
        kill(getpid(), sig);
    return NULL;
}

int cli_startup_watch(const char *cmd)
{
    command = cmd;
    int rc = pthread_create(&watcher, NULL, watch, NULL);
    watching = rc == 0;
    return -rc;
}

void cli_startup_hold(int hold)
{
    if (hold)
        pthread_mutex_lock(&mu);
    else
        pthread_mutex_unlock(&mu);
}

void cli_startup_over(void)
{
    if (!watching)
        return;
    pthread_mutex_lock(&mu);
    over = 1;
    pthread_mutex_unlock(&mu);
    /* A signal directed at the watcher is taken before one pending for the process: it
     * wakes it and leaves a real one pending. */
    pthread_sigqueue(watcher, SIGTERM, (union sigval){.sival_int = WAKE});
    pthread_join(watcher, NULL);
    watching = 0;
}
