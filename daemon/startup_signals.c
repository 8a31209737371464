/* startup_signals — a stop signal during start-up (startup_signals.h). */
#include "daemon/startup_signals.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_t watcher;
static int watching;          /* the watcher runs (the main thread's to read and write) */
static int over;              /* start-up is over (under mu) */
static startup_stop stop_fn;
#define WAKE 0x57414b45 /* the value of startup_over's signal to the watcher */

static void stop_set(sigset_t *s)
{
    sigemptyset(s);
    sigaddset(s, SIGINT);
    sigaddset(s, SIGTERM);
}

void startup_signals_block(void)
{
    sigset_t s;
    stop_set(&s);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
}

void startup_signals_unblock(void)
{
    sigset_t s;
    stop_set(&s);
    pthread_sigmask(SIG_UNBLOCK, &s, NULL);
}

static void *watch(void *arg)
{
    (void)arg;
    prctl(PR_SET_NAME, "startup-signals", 0, 0, 0);
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
        /* The lock is kept, so that the command does not go on while the process ends. */
        stop_fn(sig);
        _exit(1); /* not reached: stop ends the process */
    }
    pthread_mutex_unlock(&mu);
    /* Not the wake of startup_over (queued by this process with WAKE) but a signal that
     * came as start-up ended: it is the command's to take its own way. */
    if (!(info.si_code == SI_QUEUE && info.si_pid == getpid() && info.si_value.sival_int == WAKE))
        kill(getpid(), sig);
    return NULL;
}

int startup_watch(startup_stop stop)
{
    stop_fn = stop;
    int rc = pthread_create(&watcher, NULL, watch, NULL);
    watching = rc == 0;
    return -rc;
}

void startup_hold(int hold)
{
    if (hold)
        pthread_mutex_lock(&mu);
    else
        pthread_mutex_unlock(&mu);
}

void startup_over(void)
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
