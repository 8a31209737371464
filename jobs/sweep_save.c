/* sweep_save — a sweep's state written to the store off the loop, in the order it changed. */
#include <stdio.h>
#include <stdlib.h>

#include "jobs/service.h"
#include "jobs/sweeps.h"
#include "store/sweeps.h"
#include "util/log.h"

typedef struct state_save {
    sweeps *w;
    char id[STORE_ID_LEN];
    char state[16];
    struct state_save *next;     /* in save_wait */
} state_save;

static void save_work(void *arg)
{
    state_save *s = arg;
    an_err e;
    uv_mutex_lock(&s->w->dbmu);
    int rc = store_sweep_set_state(&s->w->db, s->id, s->state, &e);
    uv_mutex_unlock(&s->w->dbmu);
    if (rc)
        util_log(LOG_ERROR, "sweep %s: cannot record state %s: %s", s->id, s->state,
                   e.message);
}

static void save_after(void *arg)
{
    state_save *s = arg;
    sweeps *w = s->w;
    w->save_out = NULL;
    free(s);
    sweeps_save_retry(w);
}

/* Hands the oldest save that waits to the request queue, unless one is out: one at a time,
 * so that a sweep's states land in the order they came (the queue has two threads). */
void sweeps_save_retry(sweeps *w)
{
    if (w->save_out || !w->save_wait || w->d->phase == PHASE_CLOSING) /* stopped queue */
        return;
    if (workq_push(&w->d->quick, save_work, save_after, w->save_wait) != 0)
        return; /* full: the next pump tries again */
    w->save_out = w->save_wait;
    w->save_wait = w->save_wait->next;
    if (!w->save_wait)
        w->save_wait_tail = NULL;
}

/* Saves that a full request queue refused until the end (sweeps_free): written here, once
 * nothing else writes. */
void sweeps_save_drain(sweeps *w)
{
    free(w->save_out); /* written: the stopped queue ran it but called no save_after */
    w->save_out = NULL;
    while (w->save_wait) {
        state_save *s = w->save_wait;
        w->save_wait = s->next;
        if (w->db_open)
            save_work(s);
        free(s);
    }
    w->save_wait_tail = NULL;
}

/* Records a sweep's state on a request thread. One out at a time; a full request queue keeps
 * it (and every later one, in order) for the next pump: the loop thread never writes. */
void sweeps_save_state(sweeps *w, const char *id, const char *state)
{
    state_save *s = calloc(1, sizeof *s);
    if (!s) {
        util_log(LOG_ERROR, "sweep %s: out of memory recording state %s", id, state);
        return;
    }
    s->w = w;
    snprintf(s->id, sizeof s->id, "%s", id);
    snprintf(s->state, sizeof s->state, "%s", state);
    if (w->save_wait_tail)
        w->save_wait_tail->next = s;
    else
        w->save_wait = s;
    w->save_wait_tail = s;
    sweeps_save_retry(w);
}
