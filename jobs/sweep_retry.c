/* sweep_retry — the trials of a sweep that could not start, started again (see sweeps.h). */
#include <errno.h>
#include <string.h>

#include "jobs/sweeps.h"
#include "util/log.h"

/* A trial that could not start: it ended without a job, and says why. */
static int could_not_start(const sweep_trial *t)
{
    return t->state == TRIAL_ENDED && !t->job[0] && t->error;
}

int sweeps_retry_count(sweeps *w, const char *id)
{
    const sweep_run *r = sweeps_find_run(w, id);
    if (!r)
        return -ENOENT;
    if (r->cancelled)
        return -ECANCELED;
    int n = 0;
    for (int k = 0; k < r->ntrials; k++)
        n += could_not_start(&r->trials[k]);
    return n;
}

void sweeps_retry(sweeps *w, const char *id, sweep_run *made, int reopened)
{
    sweep_run *r = sweeps_find_run(w, id);
    if (r) {
        sweeps_drop(made); /* driven here meanwhile (another retry): that one goes on */
        reopened = r->done;
    } else if (made) {
        r = made; /* read back with its retried trials pending */
        uv_mutex_lock(&w->mu);
        r->next_run = w->list;
        w->list = r;
        uv_mutex_unlock(&w->mu);
    } else {
        return;
    }
    if (r->cancelled) /* cancelled since the store took the retry: nothing starts */
        return;
    int n = 0;
    uv_mutex_lock(&w->mu);
    for (int k = 0; k < r->ntrials; k++) {
        if (could_not_start(&r->trials[k]))
            r->trials[k].state = TRIAL_PENDING;
        n += r->trials[k].state == TRIAL_PENDING && r->trials[k].error;
    }
    uv_mutex_unlock(&w->mu);
    if (reopened) {
        /* The store has it running already; saved again in the order of its states, so a
         * `completed` still on its way to the store does not land last. */
        r->done = 0;
        sweeps_save_state(w, r->id, "running");
        sweeps_emit(w, r, "running", -1);
    }
    util_log(LOG_INFO, "sweep %s: %d trial%s that could not start wait%s to start again", r->id,
             n, n == 1 ? "" : "s", n == 1 ? "s" : "");
    sweeps_pump(w);
}
