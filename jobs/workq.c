/* workq — deferred work on bounded queues with their own threads. */
#include "jobs/workq.h"
#include "jobs/thread.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void thread_main(void *arg)
{
    workq *q = arg;
    uv_mutex_lock(&q->mu);
    for (;;) {
        while (!q->head && !q->quit)
            uv_cond_wait(&q->cond, &q->mu);
        wq_item *it = q->head;
        if (!it)
            break; /* quit with nothing left */
        q->head = it->next;
        if (!q->head)
            q->tail = NULL;
        q->depth--;
        q->busy++;
        uv_mutex_unlock(&q->mu);
        it->work(it->arg);
        uv_mutex_lock(&q->mu);
        q->busy--;
        it->next = q->done;
        q->done = it;
        uv_async_send(q->wake);
    }
    uv_mutex_unlock(&q->mu);
    if (q->on_exit)
        q->on_exit();
}

int workq_init(workq *q, const char *name, int nthreads, int max_depth, uv_async_t *wake)
{
    memset(q, 0, sizeof *q);
    q->name = name;
    q->max_depth = max_depth;
    q->wake = wake;
    if (uv_mutex_init(&q->mu))
        return -ENOMEM;
    if (uv_cond_init(&q->cond)) {
        uv_mutex_destroy(&q->mu);
        return -ENOMEM;
    }
    q->threads = calloc((size_t)nthreads, sizeof *q->threads);
    if (!q->threads)
        return -ENOMEM;
    for (int i = 0; i < nthreads; i++) {
        int rc = thread_start(&q->threads[i], 2 << 20, thread_main, q);
        if (rc) {
            workq_stop(q);
            return rc;
        }
        q->nthreads++;
    }
    return 0;
}

void workq_stop(workq *q)
{
    if (!q->threads)
        return;
    uv_mutex_lock(&q->mu);
    q->quit = 1;
    uv_cond_broadcast(&q->cond);
    uv_mutex_unlock(&q->mu);
    for (int i = 0; i < q->nthreads; i++)
        uv_thread_join(&q->threads[i]);
    free(q->threads);
    q->threads = NULL;
    while (q->done) {
        wq_item *it = q->done;
        q->done = it->next;
        free(it);
    }
    uv_cond_destroy(&q->cond);
    uv_mutex_destroy(&q->mu);
}

static int push(workq *q, void (*work)(void *), void (*after)(void *), void *arg, int bounded)
{
    wq_item *it = malloc(sizeof *it);
    if (!it)
        return -ENOMEM;
    *it = (wq_item){.work = work, .after = after, .arg = arg};
    uv_mutex_lock(&q->mu);
    if ((bounded && q->depth >= q->max_depth) || q->quit) {
        uv_mutex_unlock(&q->mu);
        free(it);
        atomic_fetch_add(&q->rejected, 1);
        return -EAGAIN;
    }
    if (q->tail)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    q->depth++;
    if (q->depth > q->peak_depth)
        q->peak_depth = q->depth;
    uv_cond_signal(&q->cond);
    uv_mutex_unlock(&q->mu);
    atomic_fetch_add(&q->total, 1);
    return 0;
}

int workq_push(workq *q, void (*work)(void *), void (*after)(void *), void *arg)
{
    return push(q, work, after, arg, 1);
}

int workq_requeue(workq *q, void (*work)(void *), void (*after)(void *), void *arg)
{
    return push(q, work, after, arg, 0);
}

void workq_complete(workq *q)
{
    uv_mutex_lock(&q->mu);
    wq_item *list = q->done;
    q->done = NULL;
    uv_mutex_unlock(&q->mu);
    /* Oldest first: the list was built newest first. */
    wq_item *rev = NULL;
    while (list) {
        wq_item *n = list->next;
        list->next = rev;
        rev = list;
        list = n;
    }
    while (rev) {
        wq_item *n = rev->next;
        rev->after(rev->arg);
        free(rev);
        rev = n;
    }
}

void workq_depths(workq *q, int *waiting, int *running, int *peak)
{
    uv_mutex_lock(&q->mu);
    *waiting = q->depth;
    *running = q->busy;
    *peak = q->peak_depth;
    uv_mutex_unlock(&q->mu);
}
