#include "jobs/thread.h"

#include <pthread.h>
#include <signal.h>

int thread_start(uv_thread_t *t, size_t stack, uv_thread_cb fn, void *arg)
{
    /* A new thread inherits its creator's mask: blocking them around the creation leaves no
     * moment in which the new thread could take one. */
    sigset_t all, old;
    sigfillset(&all);
    /* A fault's signal stays deliverable: blocked, the kernel would kill the process without
     * the handler (a sanitizer's report, a core dump's backtrace). */
    static const int faults[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT};
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++)
        sigdelset(&all, faults[i]);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    uv_thread_options_t opt = {stack ? UV_THREAD_HAS_STACK_SIZE : UV_THREAD_NO_FLAGS, stack};
    int rc = uv_thread_create_ex(t, &opt, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}
