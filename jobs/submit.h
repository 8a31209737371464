/* submit — checking and storing a new job, for every caller that makes one: POST /v1/jobs,
 * POST /v1/lr_finder and the sweeps' trials.
 *
 * Runs on a thread that may wait on the store (a queue thread, never the loop): it parses the
 * spec, checks what the parser cannot see alone (the uploaded data set and its columns, the
 * memory caps, the job to resume from, that the stored text reads back), computes the job's
 * total steps and stores it `queued`. It answers with an outcome, not with HTTP: the caller
 * maps the kind to its status and queues the job for the workers. */
#ifndef ANNEALD_SUBMIT_H
#define ANNEALD_SUBMIT_H

#include <cjson/cJSON.h>

#include "core/err.h"
#include "jobs/settings.h"
#include "store/store.h"

/* At most this many spec errors are reported for one submission. */
#define SUBMIT_MAX_ERRORS 64

enum submit_kind {
    SUBMIT_OK = 0,          /* stored: id is set */
    SUBMIT_INVALID,         /* the spec is wrong: errs[0..nerr) name every field */
    SUBMIT_UNPROCESSABLE,   /* well-formed but cannot run here (data set, memory, resume) */
    SUBMIT_STORE,           /* the store refused: store_rc is its code */
    SUBMIT_NOMEM,           /* out of memory; nothing stored */
};

typedef struct submit_outcome {
    int kind;                     /* enum submit_kind */
    int store_rc;                 /* SUBMIT_STORE: the store's return code */
    an_err errs[SUBMIT_MAX_ERRORS];
    int nerr;                     /* errors in errs (>= 1 unless SUBMIT_OK) */
    char id[STORE_ID_LEN];        /* SUBMIT_OK: the new job */
} submit_outcome;

/* Where the job belongs (NULL: it stands alone). */
typedef struct submit_link {
    const char *sweep_id;
    int trial;
} submit_link;

/* Checks and stores the job `body` (taken: freed here). Returns out->kind. `out` is large
 * (the error list): allocate it, do not put it on a small stack. */
int job_submit(store_t *st, const daemon_opts *opts, cJSON *body, const submit_link *link,
               submit_outcome *out);

/* Takes a job that job_submit stored back out again (it could not be queued). */
void job_submit_undo(store_t *st, const char *id);

#endif
