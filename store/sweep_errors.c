/* sweep_errors — why a sweep's trials could not start, and the retries of them asked for. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"
#include "store/sweeps.h"

/* A trial that could not start has no job to keep why (store_sweep_trial_error_set). */
int st_migrate_sweep_errors(store_t *s, an_err *err)
{
    return st_exec(s,
                   "CREATE TABLE IF NOT EXISTS sweep_trial_errors("
                   "  sweep INTEGER NOT NULL REFERENCES sweeps(num) ON DELETE CASCADE,"
                   "  trial INTEGER NOT NULL,"
                   "  error TEXT NOT NULL,"
                   "  PRIMARY KEY(sweep, trial)"
                   ") WITHOUT ROWID;",
                   "creating the table of trials' start errors", err);
}

/* A retry asked for (store_sweep_retry) is kept with the trial's error until the trial
 * starts, so that a restart in between still starts it and the error still says why it last
 * could not. */
int st_migrate_sweep_retry(store_t *s, an_err *err)
{
    return st_add_column(s, "sweep_trial_errors", "retry", "INTEGER NOT NULL DEFAULT 0", err);
}

int store_sweep_trial_error_set(store_t *s, const char *id, int trial, const char *error,
                                an_err *err)
{
    sqlite3_stmt *st;
    int rc = st_prepare(s,
                        "INSERT OR REPLACE INTO sweep_trial_errors(sweep, trial, error) "
                        "SELECT num, ?, ? FROM sweeps WHERE id=?",
                        &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int(st, 1, trial);
    sqlite3_bind_text(st, 2, error, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
    return st_sweep_write_done(s, st, id, "recording why a trial could not start", err);
}

void store_sweep_trial_errors_free(char **errors, int ntrials)
{
    for (int k = 0; errors && k < ntrials; k++)
        free(errors[k]);
    free(errors);
}

int store_sweep_trial_errors(store_t *s, const char *id, int ntrials, char ***out, int **retry,
                             an_err *err)
{
    *out = calloc((size_t)ntrials + 1, sizeof **out);
    if (retry && !(*retry = calloc((size_t)ntrials + 1, sizeof **retry))) {
        free(*out);
        *out = NULL;
    }
    if (!*out)
        return an_failc(err, -ENOMEM, NULL, "out of memory reading trials' errors");
    sqlite3_stmt *st;
    int rc = st_prepare(s,
                        "SELECT e.trial, e.error, e.retry FROM sweep_trial_errors e"
                        " JOIN sweeps s ON s.num = e.sweep WHERE s.id=?",
                        &st, err);
    int r = SQLITE_DONE;
    if (!rc) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        while ((r = sqlite3_step(st)) == SQLITE_ROW) {
            int k = sqlite3_column_int(st, 0), oom = 0;
            if (k < 0 || k >= ntrials || (*out)[k])
                continue;
            (*out)[k] = st_col_strdup(st, 1, &oom);
            if (retry)
                (*retry)[k] = sqlite3_column_int(st, 2) != 0;
            if (oom) {
                rc = an_failc(err, -ENOMEM, NULL, "out of memory reading trials' errors");
                break;
            }
        }
        if (!rc && r != SQLITE_DONE)
            rc = st_fail(s, r, "reading trials' errors", err);
        sqlite3_finalize(st);
    }
    if (rc) {
        store_sweep_trial_errors_free(*out, ntrials);
        *out = NULL;
        if (retry) {
            free(*retry);
            *retry = NULL;
        }
    }
    return rc;
}

int store_sweep_retry(store_t *s, const char *id, int also, int *marked, int *reopened,
                      an_err *err)
{
    *marked = 0;
    *reopened = 0;
    int rc = st_begin(s, err);
    if (rc)
        return rc;
    int64_t num = 0;
    rc = st_sweep_num(s, id, &num, err);
    sqlite3_stmt *st = NULL;
    char state[16] = "";
    if (!rc)
        rc = st_prepare(s, "SELECT state FROM sweeps WHERE num=?", &st, err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, num);
        if (sqlite3_step(st) == SQLITE_ROW)
            st_col_copy(st, 0, state, sizeof state);
        sqlite3_finalize(st);
        if (strcmp(state, "cancelled") == 0)
            rc = an_failc(err, STORE_ESTATE, "state", "sweep %s was cancelled: its trials "
                          "start no more", id);
    }
    /* the trials without a job that keep an error and wait for no retry yet */
    static const char mark[] = "UPDATE sweep_trial_errors SET retry=1 WHERE sweep=?1 AND "
                               "retry=0 AND trial NOT IN (SELECT trial FROM sweep_jobs "
                               "WHERE sweep=?1)";
    if (!rc)
        rc = st_prepare(s, mark, &st, err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, num);
        int r = sqlite3_step(st);
        if (r != SQLITE_DONE)
            rc = st_fail(s, r, "marking a sweep's trials to retry", err);
        else
            *marked = sqlite3_changes(s->db);
        sqlite3_finalize(st);
    }
    int64_t waiting = 0;
    if (!rc && *marked + also == 0)
        rc = st_one_int(s, "SELECT count(*) FROM sweep_trial_errors WHERE sweep=?1 AND retry",
                        num, &waiting, NULL, "counting a sweep's trials", err);
    if (!rc && *marked + also == 0 && waiting)
        rc = an_failc(err, STORE_ESTATE, "state", "sweep %s has nothing to retry: its %d "
                      "trial%s that could not start wait%s to start already", id, (int)waiting,
                      waiting == 1 ? "" : "s", waiting == 1 ? "s" : "");
    else if (!rc && *marked + also == 0)
        rc = an_failc(err, STORE_ESTATE, "state", "sweep %s has no trial that could not start: "
                      "nothing to retry", id);
    if (!rc && strcmp(state, "running") != 0) {
        rc = store_sweep_set_state(s, id, "running", err);
        *reopened = !rc;
    }
    return st_end(s, rc, err);
}
