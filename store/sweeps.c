/* sweeps.c — sweep rows, the link from a trial job to its sweep, and ASHA's rung records. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "store/internal.h"
#include "store/sweeps.h"

int st_migrate_sweeps(store_t *s, an_err *err)
{
    return st_exec(s,
                   "CREATE TABLE IF NOT EXISTS sweeps("
                   "  num INTEGER PRIMARY KEY,"      /* from seq 'sweep' */
                   "  id TEXT NOT NULL UNIQUE,"
                   "  name TEXT NOT NULL,"
                   "  spec TEXT NOT NULL,"
                   "  trials TEXT NOT NULL,"         /* JSON array of parameter objects */
                   "  ntrials INTEGER NOT NULL,"
                   "  state TEXT NOT NULL,"
                   "  created_at TEXT NOT NULL,"
                   "  finished_at TEXT"
                   ");"
                   /* A job is a trial of at most one sweep; a sweep's trial at most one job.
                    * Deleting the job unlinks it (its sweep shows the trial as not run). */
                   "CREATE TABLE IF NOT EXISTS sweep_jobs("
                   "  job INTEGER PRIMARY KEY REFERENCES jobs(num) ON DELETE CASCADE,"
                   "  sweep INTEGER NOT NULL REFERENCES sweeps(num) ON DELETE CASCADE,"
                   "  trial INTEGER NOT NULL,"
                   "  UNIQUE(sweep, trial)"
                   ");"
                   "CREATE TABLE IF NOT EXISTS sweep_rungs("
                   "  sweep INTEGER NOT NULL REFERENCES sweeps(num) ON DELETE CASCADE,"
                   "  trial INTEGER NOT NULL,"
                   "  step INTEGER NOT NULL,"
                   "  value REAL,"
                   "  seq INTEGER NOT NULL,"
                   "  continues INTEGER NOT NULL,"
                   "  PRIMARY KEY(sweep, trial, step)"
                   ") WITHOUT ROWID;",
                   "creating the sweep tables", err);
}

int st_sweep_write_done(store_t *s, sqlite3_stmt *st, const char *id, const char *what,
                        an_err *err)
{
    int r = sqlite3_step(st), rc = 0;
    if (r != SQLITE_DONE)
        rc = st_fail(s, r, what, err);
    else if (sqlite3_changes(s->db) == 0)
        rc = an_failc(err, -ENOENT, "id", "no sweep with id '%.64s'", id);
    sqlite3_finalize(st);
    return rc;
}

int st_sweep_num(store_t *s, const char *id, int64_t *num, an_err *err)
{
    sqlite3_stmt *st;
    int rc = st_prepare(s, "SELECT num FROM sweeps WHERE id=?", &st, err);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW)
        *num = sqlite3_column_int64(st, 0);
    else if (r == SQLITE_DONE)
        rc = an_failc(err, -ENOENT, "id", "no sweep with id '%.64s'", id);
    else
        rc = st_fail(s, r, "reading a sweep", err);
    sqlite3_finalize(st);
    return rc;
}

int st_sweep_link(store_t *s, const char *sweep_id, int trial, int64_t job_num, an_err *err)
{
    int64_t num = 0;
    int rc = st_sweep_num(s, sweep_id, &num, err);
    if (rc)
        return rc;
    sqlite3_stmt *st;
    rc = st_prepare(s, "INSERT INTO sweep_jobs(job, sweep, trial) VALUES(?,?,?)", &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, job_num);
    sqlite3_bind_int64(st, 2, num);
    sqlite3_bind_int(st, 3, trial);
    int r = sqlite3_step(st);
    if (r == SQLITE_CONSTRAINT || (r & 0xff) == SQLITE_CONSTRAINT)
        rc = an_failc(err, -EEXIST, "trial", "trial %d of sweep %s already has a job", trial,
                      sweep_id);
    else if (r != SQLITE_DONE)
        rc = st_fail(s, r, "linking a trial to its sweep", err);
    sqlite3_finalize(st);
    /* A trial that starts has no start error any more (one it had before a retry). */
    if (!rc)
        rc = st_prepare(s, "DELETE FROM sweep_trial_errors WHERE sweep=? AND trial=?", &st, err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, num);
        sqlite3_bind_int(st, 2, trial);
        r = sqlite3_step(st);
        if (r != SQLITE_DONE)
            rc = st_fail(s, r, "clearing a started trial's error", err);
        sqlite3_finalize(st);
    }
    return rc;
}

int store_sweep_create(store_t *s, const char *name, const char *spec_json,
                       const char *trials_json, int ntrials, char id_out[STORE_ID_LEN],
                       an_err *err)
{
    if (!st_json_is(spec_json, cJSON_Object))
        return an_fail(err, "spec", "expected the sweep as a JSON object text");
    if (!st_json_is(trials_json, cJSON_Array))
        return an_fail(err, "trials", "expected the trials as a JSON array text");
    int rc = st_begin(s, err);
    if (rc)
        return rc;
    int64_t num = 0;
    char id[STORE_ID_LEN], now[24];
    sqlite3_stmt *st = NULL;
    rc = st_seq_next(s, "sweep", &num, err);
    if (!rc) {
        snprintf(id, sizeof id, "s_%06" PRId64, num);
        st_now(now);
        rc = st_prepare(s,
                        "INSERT INTO sweeps(num, id, name, spec, trials, ntrials, state, "
                        "created_at) VALUES(?,?,?,?,?,?,'running',?)",
                        &st, err);
    }
    if (!rc) {
        sqlite3_bind_int64(st, 1, num);
        sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, name ? name : "", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, spec_json, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, trials_json, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 6, ntrials);
        sqlite3_bind_text(st, 7, now, -1, SQLITE_STATIC);
        int r = sqlite3_step(st);
        if (r != SQLITE_DONE)
            rc = st_fail(s, r, "inserting a sweep", err);
        sqlite3_finalize(st);
    }
    rc = st_end(s, rc, err);
    if (!rc && id_out)
        snprintf(id_out, STORE_ID_LEN, "%s", id);
    return rc;
}

#define SWEEP_COLS "id, name, spec, trials, ntrials, state, created_at, finished_at"

static int row_to_sweep(sqlite3_stmt *st, store_sweep *w)
{
    int oom = 0;
    memset(w, 0, sizeof *w);
    st_col_copy(st, 0, w->id, sizeof w->id);
    w->name = st_col_strdup(st, 1, &oom);
    w->spec_json = st_col_strdup(st, 2, &oom);
    w->trials_json = st_col_strdup(st, 3, &oom);
    w->ntrials = sqlite3_column_int(st, 4);
    st_col_copy(st, 5, w->state, sizeof w->state);
    st_col_copy(st, 6, w->created_at, sizeof w->created_at);
    st_col_copy(st, 7, w->finished_at, sizeof w->finished_at);
    if (oom) {
        store_sweep_free(w);
        return -ENOMEM;
    }
    return 0;
}

void store_sweep_free(store_sweep *w)
{
    if (!w)
        return;
    free(w->name);
    free(w->spec_json);
    free(w->trials_json);
    w->name = w->spec_json = w->trials_json = NULL;
}

void store_sweep_list_free(store_sweep *w, size_t n)
{
    for (size_t i = 0; w && i < n; i++)
        store_sweep_free(&w[i]);
    free(w);
}

int store_sweep_get(store_t *s, const char *id, store_sweep *out, an_err *err)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    int rc = st_prepare(s, "SELECT " SWEEP_COLS " FROM sweeps WHERE id=?", &st, err);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW)
        rc = row_to_sweep(st, out) ? an_failc(err, -ENOMEM, NULL, "out of memory") : 0;
    else if (r == SQLITE_DONE)
        rc = an_failc(err, -ENOENT, "id", "no sweep with id '%.64s'", id);
    else
        rc = st_fail(s, r, "reading a sweep", err);
    sqlite3_finalize(st);
    return rc;
}

int store_sweep_list(store_t *s, int to_drive, store_sweep **out, size_t *n, an_err *err)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    /* to drive: running, or with a trial that may run again (queued, running, or resumable:
     * paused, failed, stopped; not completed (3) or cancelled (5)) */
    int rc = st_prepare(s, to_drive
                               ? "SELECT " SWEEP_COLS " FROM sweeps w WHERE state='running'"
                                 " OR EXISTS(SELECT 1 FROM sweep_jobs t JOIN jobs j"
                                 " ON j.num = t.job WHERE t.sweep = w.num"
                                 " AND j.state NOT IN (3, 5)) ORDER BY num"
                               : "SELECT " SWEEP_COLS " FROM sweeps ORDER BY num DESC",
                        &st, err);
    if (rc)
        return rc;
    size_t cap = 0;
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        store_sweep *grown = st_grow(*out, &cap, *n, sizeof **out, 8);
        if (!grown || row_to_sweep(st, &grown[*n]) != 0) {
            if (grown)
                *out = grown;
            rc = an_failc(err, -ENOMEM, NULL, "out of memory listing sweeps");
            break;
        }
        *out = grown;
        (*n)++;
    }
    if (!rc && r != SQLITE_DONE)
        rc = st_fail(s, r, "listing sweeps", err);
    sqlite3_finalize(st);
    if (rc) {
        store_sweep_list_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

int store_sweep_set_state(store_t *s, const char *id, const char *state, an_err *err)
{
    char now[24];
    st_now(now);
    sqlite3_stmt *st;
    int rc = st_prepare(s,
                        "UPDATE sweeps SET state=?1, finished_at = CASE WHEN ?1 = 'running'"
                        " THEN NULL ELSE ?2 END WHERE id=?3",
                        &st, err);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, state, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, now, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
    return st_sweep_write_done(s, st, id, "changing a sweep's state", err);
}

int store_sweep_delete(store_t *s, const char *id, char (**ids)[STORE_ID_LEN], size_t *nids,
                       an_err *err)
{
    if (ids) {
        *ids = NULL;
        *nids = 0;
    }
    int rc = st_begin(s, err);
    if (rc)
        return rc;
    int64_t num = 0;
    rc = st_sweep_num(s, id, &num, err);
    sqlite3_stmt *st = NULL;
    if (!rc) {
        rc = st_prepare(s, "SELECT state FROM sweeps WHERE num=?", &st, err);
        if (!rc) {
            sqlite3_bind_int64(st, 1, num);
            if (sqlite3_step(st) == SQLITE_ROW &&
                strcmp((const char *)sqlite3_column_text(st, 0), "running") == 0)
                rc = an_failc(err, STORE_ESTATE, "state",
                              "sweep %s is running; cancel it first", id);
            sqlite3_finalize(st);
        }
    }
    /* Trials still in the queue or a worker's hands, or paused, would lose their rows. */
    if (!rc)
        rc = st_prepare(s,
                        "SELECT j.id, j.state FROM sweep_jobs t JOIN jobs j ON j.num = t.job"
                        " WHERE t.sweep=? AND j.state IN (0,1,2) LIMIT 1",
                        &st, err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, num);
        int r = sqlite3_step(st);
        if (r == SQLITE_ROW) {
            store_job_state js = (store_job_state)sqlite3_column_int(st, 1);
            /* a paused trial outlives the sweep's cancel: it is the job that is cancelled */
            rc = an_failc(err, STORE_ESTATE, "state", "sweep %s has trial %s %s; cancel %s "
                          "first", id, (const char *)sqlite3_column_text(st, 0),
                          store_state_name(js), js == STORE_PAUSED ? "that job" : "the sweep");
        }
        else if (r != SQLITE_DONE)
            rc = st_fail(s, r, "reading a sweep's trials", err);
        sqlite3_finalize(st);
    }
    if (!rc)
        rc = st_prepare(s, "SELECT t.job, j.id FROM sweep_jobs t JOIN jobs j ON j.num = t.job"
                           " WHERE t.sweep=?", &st, err);
    char (*names)[STORE_ID_LEN] = NULL;
    size_t n = 0;
    if (!rc) {
        /* Rows first, so deleting each job's rows never steps the open cursor over a row it
         * removed. */
        int64_t *jobs = NULL;
        size_t cap = 0, ncap = 0;
        int r;
        sqlite3_bind_int64(st, 1, num);
        while ((r = sqlite3_step(st)) == SQLITE_ROW) {
            int64_t *grown = st_grow(jobs, &cap, n, sizeof *jobs, 16);
            void *ngrown = grown ? st_grow(names, &ncap, n, sizeof *names, 16) : NULL;
            if (grown)
                jobs = grown;
            if (!ngrown) {
                rc = an_failc(err, -ENOMEM, NULL, "out of memory deleting a sweep");
                break;
            }
            names = ngrown;
            jobs[n] = sqlite3_column_int64(st, 0);
            snprintf(names[n], STORE_ID_LEN, "%s", (const char *)sqlite3_column_text(st, 1));
            n++;
        }
        if (!rc && r != SQLITE_DONE)
            rc = st_fail(s, r, "reading a sweep's trials", err);
        sqlite3_finalize(st);
        for (size_t i = 0; !rc && i < n; i++)
            rc = st_job_delete_tx(s, jobs[i], err);
        free(jobs);
    }
    if (!rc)
        rc = st_prepare(s, "DELETE FROM sweeps WHERE num=?", &st, err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, num);
        int r = sqlite3_step(st);
        if (r != SQLITE_DONE)
            rc = st_fail(s, r, "deleting a sweep", err);
        sqlite3_finalize(st);
    }
    rc = st_end(s, rc, err);
    if (!rc && ids) {
        *ids = names;
        *nids = n;
    } else {
        free(names);
    }
    return rc;
}

int store_sweep_jobs(store_t *s, const char *id, store_job **jobs, size_t *n, an_err *err)
{
    *jobs = NULL;
    *n = 0;
    char (*ids)[STORE_ID_LEN] = NULL;
    size_t nids = 0, cap = 0;
    sqlite3_stmt *st;
    int rc = st_prepare(s,
                        "SELECT j.id FROM sweep_jobs t JOIN sweeps s ON s.num = t.sweep"
                        " JOIN jobs j ON j.num = t.job WHERE s.id=? ORDER BY t.trial",
                        &st, err);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        void *grown = st_grow(ids, &cap, nids, sizeof *ids, 16);
        if (!grown) {
            rc = an_failc(err, -ENOMEM, NULL, "out of memory listing a sweep's trials");
            break;
        }
        ids = grown;
        st_col_copy(st, 0, ids[nids++], STORE_ID_LEN);
    }
    if (!rc && r != SQLITE_DONE)
        rc = st_fail(s, r, "listing a sweep's trials", err);
    sqlite3_finalize(st);
    if (!rc && nids) {
        *jobs = calloc(nids, sizeof **jobs);
        if (!*jobs)
            rc = an_failc(err, -ENOMEM, NULL, "out of memory listing a sweep's trials");
    }
    for (size_t i = 0; !rc && i < nids; i++) {
        rc = store_job_get(s, ids[i], &(*jobs)[i], err);
        if (!rc)
            (*n)++;
    }
    free(ids);
    if (rc) {
        store_job_list_free(*jobs, *n);
        *jobs = NULL;
        *n = 0;
    }
    return rc;
}

int store_sweep_rung_add(store_t *s, const char *id, const store_sweep_rung *g, an_err *err)
{
    sqlite3_stmt *st;
    int rc = st_prepare(s,
                        "INSERT OR REPLACE INTO sweep_rungs(sweep, trial, step, value, seq, "
                        "continues) SELECT num, ?, ?, ?, ?, ? FROM sweeps WHERE id=?",
                        &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int(st, 1, g->trial);
    sqlite3_bind_int64(st, 2, g->step);
    st_bind_num(st, 3, g->value);
    sqlite3_bind_int64(st, 4, g->seq);
    sqlite3_bind_int(st, 5, g->continues ? 1 : 0);
    sqlite3_bind_text(st, 6, id, -1, SQLITE_STATIC);
    return st_sweep_write_done(s, st, id, "recording a rung decision", err);
}

int store_sweep_rungs(store_t *s, const char *id, store_sweep_rung **out, size_t *n,
                      an_err *err)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = st_prepare(s,
                        "SELECT r.trial, r.step, r.value, r.seq, r.continues FROM sweep_rungs r"
                        " JOIN sweeps s ON s.num = r.sweep WHERE s.id=? ORDER BY r.seq",
                        &st, err);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    size_t cap = 0;
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        store_sweep_rung *grown = st_grow(*out, &cap, *n, sizeof **out, 16);
        if (!grown) {
            rc = an_failc(err, -ENOMEM, NULL, "out of memory reading rung decisions");
            break;
        }
        *out = grown;
        store_sweep_rung *g = &grown[(*n)++];
        g->trial = sqlite3_column_int(st, 0);
        g->step = sqlite3_column_int64(st, 1);
        g->value = st_col_num(st, 2);
        g->seq = sqlite3_column_int64(st, 3);
        g->continues = sqlite3_column_int(st, 4);
    }
    if (!rc && r != SQLITE_DONE)
        rc = st_fail(s, r, "reading rung decisions", err);
    sqlite3_finalize(st);
    if (rc) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}
