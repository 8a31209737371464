/* runindex — the job manager's runs by id, and the lists a run is in (jobs/jobmgr.h): every
 * run, the runs workers have taken, the queued runs whose JSON says more than "queued".
 *
 * DESIGN
 * A queue of many thousand jobs must not make each request walk it: a look-up by id is a hash
 * table of chains (FNV-1a of the id, a power of two of buckets, doubled when the runs
 * outnumber them, so a chain stays about one run long), and what the loop does on every tick
 * (jobs_poll, the watchdog, preemption) walks only the taken runs, at most a few a worker.
 * The table and the taken list change under the manager mutex, so that a request thread
 * holding it may look a job up (jobs/qorder.c); the loop, the only thread that changes the
 * table, reads it without. Without memory to grow, the table keeps its size and its chains
 * grow longer: a look-up gets slower, never wrong. jobs_init makes the first buckets. */
#include "jobs/jobmgr.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/jobmgr_internal.h"

#define INDEX_MIN 1024

static size_t hash_id(const char *id)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = (h ^ *p) * 0x100000001b3u;
    return (size_t)h;
}

job_run *jobs_find(jobmgr *m, const char *id)
{
    for (job_run *r = m->index[hash_id(id) & (m->nindex - 1)]; r; r = r->hnext)
        if (strcmp(r->id, id) == 0)
            return r;
    return NULL;
}

/* Twice the buckets, the runs spread again (manager mutex held); nothing without memory. */
static void grow(jobmgr *m)
{
    size_t n = m->nindex ? 2 * m->nindex : INDEX_MIN;
    job_run **b = calloc(n, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < m->nindex; i++)
        for (job_run *r = m->index[i], *next; r; r = next) {
            next = r->hnext;
            size_t k = hash_id(r->id) & (n - 1);
            r->hnext = b[k];
            b[k] = r;
        }
    free(m->index);
    m->index = b;
    m->nindex = n;
}

void jobs_link_run(jobmgr *m, job_run *r)
{
    r->prev = NULL;
    r->next = m->runs;
    if (m->runs)
        m->runs->prev = r;
    m->runs = r;
    uv_mutex_lock(&m->mu);
    if (m->nruns >= m->nindex)
        grow(m);
    size_t k = hash_id(r->id) & (m->nindex - 1);
    r->hnext = m->index[k];
    m->index[k] = r;
    m->nruns++;
    uv_mutex_unlock(&m->mu);
}

void jobs_unlink_run(jobmgr *m, job_run *run)
{
    if (run->prev)
        run->prev->next = run->next;
    else if (m->runs == run)
        m->runs = run->next;
    if (run->next)
        run->next->prev = run->prev;
    run->next = run->prev = NULL;
    if (run->noted) {
        job_run **pp = &m->noted;
        while (*pp && *pp != run)
            pp = &(*pp)->nnext;
        if (*pp)
            *pp = run->nnext;
        run->noted = 0;
    }
    uv_mutex_lock(&m->mu);
    job_run **pp = &m->index[hash_id(run->id) & (m->nindex - 1)];
    while (*pp && *pp != run)
        pp = &(*pp)->hnext;
    if (*pp) {
        *pp = run->hnext;
        m->nruns--;
    }
    if (run->taken) {
        if (run->tprev)
            run->tprev->tnext = run->tnext;
        else if (m->taken == run)
            m->taken = run->tnext;
        if (run->tnext)
            run->tnext->tprev = run->tprev;
        run->tnext = run->tprev = NULL;
        m->ntaken--;
    }
    uv_mutex_unlock(&m->mu);
}

void jobs_note_run(jobmgr *m, job_run *run)
{
    if (run->noted)
        return;
    run->noted = 1;
    run->nnext = m->noted;
    m->noted = run;
}

int jobs_index_init(jobmgr *m)
{
    grow(m);
    return m->nindex ? 0 : -ENOMEM;
}

void jobs_index_free(jobmgr *m)
{
    free(m->index);
    m->index = NULL;
    m->nindex = m->nruns = 0;
}
