/* readpool — read-only store connections opened once and lent to reader threads. */
#include "store/readpool.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

struct store_pool {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int n, nfree;
    store_t *conns;   /* n connections */
    store_t **free_;  /* stack of the ones not lent */
};

int store_open_readonly(store_t *s, const char *path, an_err *err)
{
    memset(s, 0, sizeof *s);
    s->chunk_size = STORE_CHUNK_SIZE;
    if (!path || !path[0])
        return an_failc(err, -EINVAL, NULL, "expected a database path, got an empty one");
    int r = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (r != SQLITE_OK) {
        int rc = st_fail(s, r, "opening the database to read", err);
        store_close(s);
        return rc;
    }
    sqlite3_extended_result_codes(s->db, 0);
    /* Readers of a WAL database wait only while a checkpoint resets the log, briefly. */
    sqlite3_busy_timeout(s->db, 5000);
    int rc = st_exec(s, "PRAGMA query_only=1; PRAGMA temp_store=MEMORY;",
                     "configuring the read connection", err);
    if (rc)
        store_close(s);
    return rc;
}

int store_pool_open(store_pool **out, const char *path, int n, an_err *err)
{
    *out = NULL;
    if (n < 1 || n > 64)
        return an_failc(err, -EINVAL, NULL, "a read pool holds 1 to 64 connections, got %d", n);
    store_pool *p = calloc(1, sizeof *p);
    if (!p || !(p->conns = calloc((size_t)n, sizeof *p->conns)) ||
        !(p->free_ = calloc((size_t)n, sizeof *p->free_))) {
        if (p) {
            free(p->conns);
            free(p);
        }
        return an_failc(err, -ENOMEM, NULL, "out of memory for the read pool");
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cond, NULL);
    for (int i = 0; i < n; i++) {
        int rc = store_open_readonly(&p->conns[i], path, err);
        if (rc) {
            p->n = i;
            store_pool_close(p);
            return rc;
        }
        p->free_[p->nfree++] = &p->conns[i];
    }
    p->n = n;
    *out = p;
    return 0;
}

store_t *store_pool_get(store_pool *p)
{
    pthread_mutex_lock(&p->mu);
    while (p->nfree == 0)
        pthread_cond_wait(&p->cond, &p->mu);
    store_t *s = p->free_[--p->nfree];
    pthread_mutex_unlock(&p->mu);
    return s;
}

void store_pool_put(store_pool *p, store_t *s)
{
    /* A read left open (a statement not reset) would pin an old snapshot: end it here. */
    if (s->db && !sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    pthread_mutex_lock(&p->mu);
    p->free_[p->nfree++] = s;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->mu);
}

int store_pool_busy(store_pool *p)
{
    pthread_mutex_lock(&p->mu);
    int busy = p->n - p->nfree;
    pthread_mutex_unlock(&p->mu);
    return busy;
}

void store_pool_close(store_pool *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n; i++)
        store_close(&p->conns[i]);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->mu);
    free(p->conns);
    free(p->free_);
    free(p);
}
