/* sweeps.h — a sweep in the store (sweeps.c; its trials' start errors and their retries:
 * sweep_errors.c).
 *
 * A sweep row keeps the sweep's body as given (normalised JSON) and the parameters of every
 * trial it proposes (a JSON array, trial k at index k), so what it will run is fixed when it
 * is made. A trial that has started is an ordinary job linked to the sweep (store_job.sweep
 * and .trial); one that could not start keeps why in a trial error row; ASHA's decisions are
 * rung rows, numbered in the order they were taken. */
#ifndef ANNEALD_STORE_SWEEPS_H
#define ANNEALD_STORE_SWEEPS_H

#include "store/store.h"

typedef struct store_sweep {
    char id[STORE_ID_LEN];         /* "s_000003" */
    char *name;
    char *spec_json;               /* the sweep body */
    char *trials_json;             /* [{path: value, …}, …] one object per trial */
    int ntrials;
    char state[16];                /* "running", "completed", "cancelled" */
    char created_at[24];
    char finished_at[24];          /* "" = null */
} store_sweep;

typedef struct store_sweep_rung {
    int trial;
    int64_t step;                  /* the rung: steps trained when the decision was taken */
    double value;                  /* the trial's metric there (NAN: none, ranks last) */
    int64_t seq;                   /* order of the decisions in the sweep, from 1 */
    int continues;                 /* 1 went on, 0 stopped */
} store_sweep_rung;

int store_sweep_create(store_t *s, const char *name, const char *spec_json,
                       const char *trials_json, int ntrials, char id_out[STORE_ID_LEN],
                       an_err *err);
/* -ENOENT for an unknown id. */
int store_sweep_get(store_t *s, const char *id, store_sweep *out, an_err *err);
void store_sweep_free(store_sweep *w);
/* Every sweep, newest first; `to_drive`: those a daemon drives, oldest first: the running
 * ones, and the ended ones with a trial that is queued, running, or can be resumed (paused,
 * failed, stopped), whose ASHA rungs and place among max_concurrent still count. */
int store_sweep_list(store_t *s, int to_drive, store_sweep **out, size_t *n, an_err *err);
void store_sweep_list_free(store_sweep *w, size_t n);
/* Sets the state ("completed", "cancelled" stamp finished_at). */
int store_sweep_set_state(store_t *s, const char *id, const char *state, an_err *err);
/* Deletes a sweep with its rung rows and its trial jobs, in one transaction; STORE_ESTATE
 * (nothing deleted) while one of its trials is queued, running or paused. The deleted trial
 * jobs' ids go to *ids (malloc'd, *nids of them) when `ids` is not NULL. */
int store_sweep_delete(store_t *s, const char *id, char (**ids)[STORE_ID_LEN], size_t *nids,
                       an_err *err);
/* The sweep's trial jobs, by trial index. */
int store_sweep_jobs(store_t *s, const char *id, store_job **jobs, size_t *n, an_err *err);
/* Records why trial `trial` could not start (a trial that never started has no job to hold
 * its error); a second record replaces the first. */
int store_sweep_trial_error_set(store_t *s, const char *id, int trial, const char *error,
                                an_err *err);
/* The recorded start errors: *out is a malloc'd array of ntrials strings, each malloc'd or
 * NULL (none); store_sweep_trial_errors_free frees it. `retry` (may be NULL): a malloc'd
 * array of ntrials flags, 1 for a trial whose retry was asked for (store_sweep_retry) and
 * which has not started since; its error is the one it had. */
int store_sweep_trial_errors(store_t *s, const char *id, int ntrials, char ***out, int **retry,
                             an_err *err);
void store_sweep_trial_errors_free(char **errors, int ntrials);
/* Asks for every trial that could not start (a start error, no job) to be started again, in
 * one transaction: marks their error rows (kept, and shown, until each starts: starting
 * deletes the row, failing again replaces it unmarked) and makes the sweep running again
 * (*reopened: it had completed). *marked: the rows marked; `also`: trials the caller retries
 * besides (errors it could not record). -ENOENT unknown id; STORE_ESTATE (nothing changed)
 * for a cancelled sweep, or when there is nothing to retry (marked + also is 0). */
int store_sweep_retry(store_t *s, const char *id, int also, int *marked, int *reopened,
                      an_err *err);
/* Records a rung decision (its seq is given by the caller, who orders them). */
int store_sweep_rung_add(store_t *s, const char *id, const store_sweep_rung *r, an_err *err);
/* The rung decisions in the order they were taken. */
int store_sweep_rungs(store_t *s, const char *id, store_sweep_rung **out, size_t *n,
                      an_err *err);


#endif
