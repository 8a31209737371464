/* admit — the memory budget and free-disk checks of the workers. */
#include "jobs/admit.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "core/config_gpt.h"
#include "core/memest.h"
#include "jobs/service.h"
#include "jobs/loader.h"
#include "util/log.h"

int admit_local_ranks(const daemon_opts *o, const job_spec *spec)
{
    return o->mpi_hostfile[0] || o->mpi_hostlist[0] ? 1 : spec->world_size;
}

void admit_estimate(const daemon_opts *o, store_t *st, const job_spec *spec, const char *ref,
                    mem_estimate *m)
{
    int64_t rows = -1;
    uint64_t bytes = 0;
    /* an uploaded table, or a text job's corpus that is neither inline nor builtin */
    int uploaded = spec->data.type == DATA_DATASET ||
                   (spec->data.type == DATA_TEXT && cfg_text_tokens(&spec->data) < 0);
    if (uploaded) {
        store_dataset ds;
        memset(&ds, 0, sizeof ds);
        if (store_dataset_get(st, loader_dataset_ref(spec, ref), &ds, NULL) == 0) {
            if (spec->data.type == DATA_DATASET)
                rows = ds.rows;
            bytes = ds.bytes > 0 ? (uint64_t)ds.bytes : 0;
        }
        store_dataset_free(&ds);
    }
    job_spec_memory_sized(spec, rows, bytes, m);
    mem_estimate_ranks(spec, admit_local_ranks(o, spec), m);
}

int admit_disk_low(const daemon_opts *o, char *msg, size_t size)
{
    uint64_t avail;
    if (o->min_free_disk == 0 || util_free_disk(o->db, &avail) != 0 || avail >= o->min_free_disk)
        return 0;
    char a[32], m[32];
    snprintf(msg, size, "the store's file system has %s free, less than --min-free-disk %s: "
             "paused before the disk fills, with every checkpoint and row kept; free some space "
             "(delete finished jobs) and resume it", mem_bytes_text(avail, a, sizeof a),
             mem_bytes_text(o->min_free_disk, m, sizeof m));
    return 1;
}

/* The job's charge from its stored spec; 0 when the spec cannot be read. */
static uint64_t job_charge(const struct service *d, store_t *st, const char *id,
                           mem_estimate *m)
{
    an_err e;
    store_job row;
    memset(&row, 0, sizeof row);
    job_spec spec;
    if (store_job_get(st, id, &row, &e) != 0 || loader_spec(&row, &spec, &e) != 0) {
        store_job_free(&row);
        return 0;
    }
    admit_estimate(d->opts, st, &spec, row.dataset_ref, m);
    store_job_free(&row);
    job_spec_free(&spec);
    return budget_job_charge(m);
}

int admit_job(struct service *d, store_t *st, job_run *run, uint64_t *charge, char *why,
              size_t size)
{
    membudget *b = &d->mem;
    *charge = 0;
    if (b->cap == 0)
        return 0;
    mem_estimate m;
    uint64_t need = job_charge(d, st, run->id, &m);
    if (need == 0)
        return 0;
    if (need > b->cap) {
        char t_need[32], t_cap[32];
        snprintf(why, size, "the job needs %s with its checkpoint copies, more than the whole "
                 "%s budget (--max-memory)", mem_bytes_text(need, t_need, sizeof t_need),
                 mem_bytes_text(b->cap, t_cap, sizeof t_cap));
        return -1;
    }
    /* Cached models are the first thing to give way to a job. */
    if (budget_try(b, need) == 0 ||
        (model_cache_shrink(&d->models) > 0 && budget_try(b, need) == 0)) {
        *charge = need;
        return 0;
    }
    char wait[400];
    budget_wait_text(b, need, &m, wait, sizeof wait);
    util_log(LOG_INFO, "job %s %s", run->id, wait);
    uv_mutex_lock(&run->mu);
    snprintf(run->snap.wait_reason, sizeof run->snap.wait_reason, "%s", wait);
    uv_mutex_unlock(&run->mu);
    jobs_wake(&d->jobs);
    int got = 0, shrunk = 0;
    uv_mutex_lock(&b->mu);
    while (!got && atomic_load(&run->stop) == STOP_NONE) {
        if (b->used <= b->cap - need) {
            b->used += need;
            got = 1;
        } else if (!shrunk) {
            /* A model cached by a request while the job waits gives way as well. Evicting
             * releases its charge, which takes the budget's lock: so not under it. */
            uv_mutex_unlock(&b->mu);
            model_cache_shrink(&d->models);
            uv_mutex_lock(&b->mu);
            shrunk = 1;
        } else {
            uv_cond_timedwait(&b->cond, &b->mu, 200u * 1000000u);
            shrunk = 0;
        }
    }
    uv_mutex_unlock(&b->mu);
    uv_mutex_lock(&run->mu);
    run->snap.wait_reason[0] = '\0';
    uv_mutex_unlock(&run->mu);
    if (!got)
        return 1;
    *charge = need;
    return 0;
}
