/* pool.c — connections for the request threads, opened once and reused: a request never pays
 * for opening a database or checking its schema, and never takes a write lock to read. */
#include "store/store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int store_pool_init(store_pool *p, const char *path, an_err *err)
{
    memset(p, 0, sizeof *p);
    p->path = strdup(path ? path : "");
    if (!p->path)
        return an_failc(err, -ENOMEM, NULL, "out of memory for the connection pool");
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p->path);
        p->path = NULL;
        return an_failc(err, -ENOMEM, NULL, "cannot create the connection pool's lock");
    }
    p->ready = 1;
    return 0;
}

store_t *store_pool_get(store_pool *p, an_err *err)
{
    store_t *s = NULL;
    int counted = 0;
    pthread_mutex_lock(&p->mu);
    if (p->nidle > 0) {
        s = p->idle[--p->nidle];
    } else if (p->nopen < STORE_POOL_MAX) {
        p->nopen++; /* this caller opens it, outside the lock */
        counted = 1;
    }
    pthread_mutex_unlock(&p->mu);
    if (s)
        return s;
    s = calloc(1, sizeof *s);
    int rc = s ? store_open(s, p->path, err)
               : an_failc(err, -ENOMEM, NULL, "out of memory for a store connection");
    if (rc) {
        free(s);
        pthread_mutex_lock(&p->mu);
        if (counted)
            p->nopen--;
        pthread_mutex_unlock(&p->mu);
        return NULL;
    }
    return s;
}

void store_pool_put(store_pool *p, store_t *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&p->mu);
    if (p->nidle < STORE_POOL_MAX) {
        p->idle[p->nidle++] = s;
        s = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    if (s) { /* one opened beyond the max: not kept */
        store_close(s);
        free(s);
    }
}

void store_pool_close(store_pool *p)
{
    if (!p->ready)
        return;
    for (int i = 0; i < p->nidle; i++) {
        store_close(p->idle[i]);
        free(p->idle[i]);
    }
    p->nidle = 0;
    pthread_mutex_destroy(&p->mu);
    free(p->path);
    p->path = NULL;
    p->ready = 0;
}
