/* budget — one memory budget for the whole daemon (--max-memory).
 *
 * Everything large is admitted against it before it is allocated: a running job (its
 * steady state from core/memest.h, plus the transients of its checkpoints — up to
 * BUDGET_CKPT_COPIES blobs in flight — or of a restore: the blob and an undo copy), a model
 * loaded for weights or predict, an upload body. A job that does not fit waits in the queue
 * with the reason on the job; one that could never fit is refused at submit; a request that
 * does not fit gets 503. Reservations are estimates taken and given back whole, so the sum
 * is exact bookkeeping of the estimates, not a measurement. */
#ifndef ANNEALD_BUDGET_H
#define ANNEALD_BUDGET_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "core/memest.h"

/* Checkpoint blobs a job may have in flight at once (the writer queue's slots). */
#define BUDGET_CKPT_COPIES 3

typedef struct membudget {
    uv_mutex_t mu;
    uv_cond_t cond;             /* broadcast when memory is given back */
    uint64_t cap;               /* 0 = no budget */
    uint64_t used;
    int jobs;                   /* job reservations held */
    uint64_t refused;           /* requests refused for memory */
} membudget;

int budget_init(membudget *b, uint64_t cap);
void budget_free(membudget *b);

/* Takes `bytes` if they fit now: 0, or -EAGAIN (nothing taken). */
int budget_try(membudget *b, uint64_t bytes);
void budget_release(membudget *b, uint64_t bytes);

/* What a job is charged: its steady state plus the larger of a restore (2 blobs) and
 * BUDGET_CKPT_COPIES checkpoints in flight, a blob being its parameters and optimizer state. */
uint64_t budget_job_charge(const mem_estimate *m);

/* "needs 1.2 GiB (steady 400 MiB, checkpoints in flight 800 MiB); 10.5 GiB of the 12 GiB
 * budget (--max-memory) in use by 2 jobs and requests" into buf. */
char *budget_wait_text(membudget *b, uint64_t need, const mem_estimate *m, char *buf,
                       size_t size);

#endif
