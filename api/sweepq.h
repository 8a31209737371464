/* sweepq — what the sweep endpoints share (api/sweeps.c, api/sweepretry.c): a request's
 * copy of the loop thread's state, and the sweep object as an answer. */
#ifndef ANNEALD_API_SWEEPQ_H
#define ANNEALD_API_SWEEPQ_H

#include "api/http.h"
#include "jobs/service.h"

/* What a sweep's answer needs from the loop thread: running jobs' progress and the trials'
 * start errors, copied before the work goes to a queue thread. */
typedef struct sweep_q {
    job_overlay ov;
    char (*errors)[800];
    int nerrors;
    sweep_run *made;             /* POST: the new sweep, or one a retry reads back, for the
                                    loop to drive */
    int retry_also;              /* retry: the trials that could not start as the loop knows
                                    them (their error may not be stored) */
    int driven;                  /* retry: the loop drives the sweep */
    int reopened;                /* retry: the store had the sweep completed */
} sweep_q;

/* Makes r's sweep_q (loop thread), with the start errors of sweep `id` (NULL: none); NULL
 * (answered 503) when out of memory. */
sweep_q *api_sweep_q_new(http_req *r, const char *id);

/* Answers with the sweep object of `id` (a queue thread); 404 for an unknown id. */
void api_sweep_answer(http_req *r, struct store_t *st, const char *id, unsigned status);

#endif
