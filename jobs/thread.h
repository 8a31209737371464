/* thread — how the daemon starts its threads: workers, writers, request queues, the state
 * thread and the housekeeper.
 *
 * Every one starts with the asynchronous signals blocked, so that only the loop thread takes
 * SIGTERM and SIGINT (libuv's handler, daemon/loop.c). oneDNN 2.x's JIT matrix kernels point
 * rsp into the heap while they run (fixed upstream in oneDNN 3.11.2; Debian ships 2.6), so a
 * handler run on a thread inside one writes its signal frame over heap memory, and the
 * daemon aborts later in free(). The threads OpenMP starts for a job's products inherit the
 * mask of the worker that starts them. */
#ifndef ANNEALD_THREAD_H
#define ANNEALD_THREAD_H

#include <stddef.h>

#include <uv.h>

/* uv_thread_create_ex with `stack` bytes of stack (0: libuv's default) and every
 * asynchronous signal blocked in the new thread (a fault's signal, SIGSEGV and the like, is
 * not). 0 or a libuv error. */
int thread_start(uv_thread_t *t, size_t stack, uv_thread_cb fn, void *arg);

#endif
