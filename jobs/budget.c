/* budget — the daemon's memory budget: reservations against --max-memory. */
#include "jobs/budget.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int budget_init(membudget *b, uint64_t cap)
{
    memset(b, 0, sizeof *b);
    b->cap = cap;
    if (uv_mutex_init(&b->mu))
        return -ENOMEM;
    if (uv_cond_init(&b->cond)) {
        uv_mutex_destroy(&b->mu);
        return -ENOMEM;
    }
    return 0;
}

void budget_free(membudget *b)
{
    uv_cond_destroy(&b->cond);
    uv_mutex_destroy(&b->mu);
}

int budget_try(membudget *b, uint64_t bytes)
{
    uv_mutex_lock(&b->mu);
    int ok = b->cap == 0 || (bytes <= b->cap && b->used <= b->cap - bytes);
    if (ok)
        b->used += bytes;
    else
        b->refused++;
    uv_mutex_unlock(&b->mu);
    return ok ? 0 : -EAGAIN;
}

void budget_release(membudget *b, uint64_t bytes)
{
    uv_mutex_lock(&b->mu);
    b->used = bytes > b->used ? 0 : b->used - bytes;
    uv_cond_broadcast(&b->cond);
    uv_mutex_unlock(&b->mu);
}

uint64_t budget_job_charge(const mem_estimate *m)
{
    uint64_t blob = m->params + m->optim + 4096;
    /* a restore: the blob and an undo copy; with ranks here, the daemon's copy and each
     * rank's, which rank 0 broadcasts */
    uint64_t restore = (m->ranks > 1 ? (uint64_t)m->ranks + 1 : 2) * blob;
    uint64_t ckpt = BUDGET_CKPT_COPIES * blob;
    return m->total + (restore > ckpt ? restore : ckpt);
}

char *budget_wait_text(membudget *b, uint64_t need, const mem_estimate *m, char *buf,
                       size_t size)
{
    char t_need[32], t_steady[32], t_trans[32], t_used[32], t_cap[32];
    uv_mutex_lock(&b->mu);
    uint64_t used = b->used, cap = b->cap;
    uv_mutex_unlock(&b->mu);
    snprintf(buf, size, "waiting for memory: the job needs %s (steady state %s, checkpoint and "
             "restore copies %s); %s of the %s budget (--max-memory) is in use",
             mem_bytes_text(need, t_need, sizeof t_need),
             mem_bytes_text(m->total, t_steady, sizeof t_steady),
             mem_bytes_text(need - m->total, t_trans, sizeof t_trans),
             mem_bytes_text(used, t_used, sizeof t_used), mem_bytes_text(cap, t_cap, sizeof t_cap));
    return buf;
}
