/* jobrows — job rows: create, read, list, state changes, progress, delete, restart recovery,
 * rewind, and the API's job object. */
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonnum.h"
#include "store/internal.h"

static const char *const state_names[STORE_NSTATES] = {
    "queued", "running", "paused", "completed", "failed", "cancelled", "stopped",
};

const char *store_state_name(store_job_state st)
{
    return ((unsigned)st < STORE_NSTATES) ? state_names[st] : NULL;
}

int store_state_parse(const char *name, store_job_state *st, an_err *err)
{
    for (int i = 0; name && i < STORE_NSTATES; i++) {
        if (strcmp(name, state_names[i]) == 0) {
            *st = (store_job_state)i;
            return 0;
        }
    }
    return an_fail(err, "state",
                   "expected one of queued, running, paused, completed, failed, cancelled, stopped; "
                   "got \"%s\"", name ? name : "(null)");
}

/* A column of the job's latest validation row: one seek in val_metrics' (job, step) key. */
#define VAL_LATEST(col)                                                                       \
    "(SELECT " col " FROM val_metrics v WHERE v.job = jobs.num ORDER BY v.step DESC LIMIT 1)"

/* Column list read into a store_job, in the order row_to_job expects. */
#define JOB_COLS                                                                              \
    "id, name, state, spec, warnings, created_at, started_at, finished_at, step, total_steps, " \
    "epoch, loss, lr, samples_per_sec, last_checkpoint_step, error, dataset_ref, resume_from, " \
    VAL_LATEST("step") ", " VAL_LATEST("val_loss") ", " VAL_LATEST("val_acc") ", "          \
    "(SELECT s.id FROM sweep_jobs t JOIN sweeps s ON s.num = t.sweep WHERE t.job = jobs.num), " \
    "(SELECT t.trial FROM sweep_jobs t WHERE t.job = jobs.num)"

static int row_to_job(sqlite3_stmt *st, store_job *j)
{
    int oom = 0;
    memset(j, 0, sizeof *j);
    st_col_copy(st, 0, j->id, sizeof j->id);
    j->name = st_col_strdup(st, 1, &oom);
    j->state = (store_job_state)sqlite3_column_int(st, 2);
    j->spec_json = st_col_strdup(st, 3, &oom);
    j->warnings_json = st_col_strdup(st, 4, &oom);
    st_col_copy(st, 5, j->created_at, sizeof j->created_at);
    st_col_copy(st, 6, j->started_at, sizeof j->started_at);
    st_col_copy(st, 7, j->finished_at, sizeof j->finished_at);
    j->step = sqlite3_column_int64(st, 8);
    j->total_steps = sqlite3_column_int64(st, 9);
    j->epoch = sqlite3_column_int64(st, 10);
    j->loss = st_col_num(st, 11);
    j->n_lr = st_col_lr(st, 12, j->lr, STORE_MAX_LR);
    j->samples_per_sec = st_col_num(st, 13);
    j->last_checkpoint_step =
        sqlite3_column_type(st, 14) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 14);
    j->error = st_col_strdup(st, 15, &oom);
    j->dataset_ref = st_col_strdup(st, 16, &oom);
    j->resume_from_json = st_col_strdup(st, 17, &oom);
    j->val_step = sqlite3_column_type(st, 18) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 18);
    j->val_loss = st_col_num(st, 19);
    j->val_acc = st_col_num(st, 20);
    st_col_copy(st, 21, j->sweep, sizeof j->sweep);
    j->trial = sqlite3_column_type(st, 22) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 22);
    if (oom) {
        store_job_free(j);
        return -ENOMEM;
    }
    return 0;
}

void store_job_free(store_job *j)
{
    if (!j)
        return;
    free(j->name);
    free(j->spec_json);
    free(j->warnings_json);
    free(j->error);
    free(j->dataset_ref);
    free(j->resume_from_json);
    j->name = j->spec_json = j->warnings_json = j->error = j->dataset_ref = NULL;
    j->resume_from_json = NULL;
}

int store_job_create(store_t *s, const store_job_new *in, char id_out[STORE_ID_LEN], an_err *err)
{
    if (!in || !st_json_is(in->spec_json, cJSON_Object))
        return an_fail(err, "spec", "expected the job spec as a JSON object text, got %s",
                       (in && in->spec_json) ? "something else" : "nothing");
    if (in->warnings_json && !st_json_is(in->warnings_json, cJSON_Array))
        return an_fail(err, "warnings", "expected warnings as a JSON array text");
    if (in->resume_from_json && !st_json_is(in->resume_from_json, cJSON_Object))
        return an_fail(err, "resume_from", "expected resume_from as a JSON object text");
    if (in->total_steps < 0)
        return an_fail(err, "total_steps", "expected total_steps >= 0, got %" PRId64,
                       in->total_steps);

    int rc = st_begin(s, err);
    if (rc)
        return rc;
    int64_t num = 0;
    char id[STORE_ID_LEN], now[24];
    sqlite3_stmt *st = NULL;
    rc = st_seq_next(s, "job", &num, err);
    if (!rc) {
        snprintf(id, sizeof id, "j_%06" PRId64, num);
        st_now(now);
        rc = st_prepare(s,
                        "INSERT INTO jobs(num, id, name, state, spec, warnings, created_at, "
                        "total_steps, dataset_ref, resume_from) VALUES(?,?,?,?,?,?,?,?,?,?)",
                        &st, err);
    }
    if (!rc) {
        sqlite3_bind_int64(st, 1, num);
        sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, in->name ? in->name : "", -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 4, STORE_QUEUED);
        sqlite3_bind_text(st, 5, in->spec_json, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, in->warnings_json ? in->warnings_json : "[]", -1,
                          SQLITE_STATIC);
        sqlite3_bind_text(st, 7, now, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 8, in->total_steps);
        if (in->dataset_ref)
            sqlite3_bind_text(st, 9, in->dataset_ref, -1, SQLITE_STATIC);
        if (in->resume_from_json)
            sqlite3_bind_text(st, 10, in->resume_from_json, -1, SQLITE_STATIC);
        int r = sqlite3_step(st);
        if (r != SQLITE_DONE)
            rc = st_fail(s, r, "inserting a job", err);
        sqlite3_finalize(st);
    }
    if (!rc && in->sweep_id)
        rc = st_sweep_link(s, in->sweep_id, in->trial, num, err);
    rc = st_end(s, rc, err);
    if (rc)
        return rc;
    if (id_out)
        snprintf(id_out, STORE_ID_LEN, "%s", id);
    return 0;
}

int store_job_get(store_t *s, const char *id, store_job *out, an_err *err)
{
    sqlite3_stmt *st;
    memset(out, 0, sizeof *out);
    if (!id)
        return an_failc(err, -EINVAL, NULL, "expected a job id, got NULL");
    int rc = st_prepare(s, "SELECT " JOB_COLS " FROM jobs WHERE id=?", &st, err);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        rc = row_to_job(st, out);
        if (rc)
            an_failc(err, rc, NULL, "out of memory reading job %s", id);
    } else if (r == SQLITE_DONE) {
        rc = an_failc(err, -ENOENT, NULL, "no job with id \"%s\"", id);
    } else {
        rc = st_fail(s, r, "reading a job", err);
    }
    sqlite3_finalize(st);
    return rc;
}

void store_job_list_free(store_job *jobs, size_t n)
{
    for (size_t i = 0; jobs && i < n; i++)
        store_job_free(&jobs[i]);
    free(jobs);
}

/* "(0,1,2)" style IN-list of the states in mask; the mask is a small integer, so this is
 * safe to print into SQL. */
static void mask_sql(unsigned mask, char *buf, size_t size)
{
    size_t k = (size_t)snprintf(buf, size, "(-1");
    for (int i = 0; i < STORE_NSTATES; i++)
        if (mask & STORE_MASK(i))
            k += (size_t)snprintf(buf + k, size - k, ",%d", i);
    snprintf(buf + k, size - k, ")");
}

int store_job_list(store_t *s, unsigned state_mask, int64_t limit, int64_t offset,
                   store_job **jobs, size_t *n, int64_t *total, an_err *err)
{
    char in[64], sql[1024];
    sqlite3_stmt *st;
    *jobs = NULL;
    *n = 0;
    if (offset < 0)
        return an_fail(err, "offset", "expected offset >= 0, got %" PRId64, offset);
    mask_sql(state_mask, in, sizeof in);

    if (total) {
        snprintf(sql, sizeof sql, "SELECT count(*) FROM jobs WHERE state IN %s", in);
        int rc = st_prepare(s, sql, &st, err);
        if (rc)
            return rc;
        int r = sqlite3_step(st);
        if (r == SQLITE_ROW)
            *total = sqlite3_column_int64(st, 0);
        else
            rc = st_fail(s, r, "counting jobs", err);
        sqlite3_finalize(st);
        if (rc)
            return rc;
    }
    snprintf(sql, sizeof sql,
             "SELECT " JOB_COLS " FROM jobs WHERE state IN %s ORDER BY num DESC LIMIT ? OFFSET ?",
             in);
    int rc = st_prepare(s, sql, &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, limit < 0 ? -1 : limit);
    sqlite3_bind_int64(st, 2, offset);
    size_t cap = 0;
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        void *grown = st_grow(*jobs, &cap, *n, sizeof **jobs, 16);
        if (!grown) {
            rc = an_failc(err, -ENOMEM, NULL, "out of memory listing jobs");
            break;
        }
        *jobs = grown;
        rc = row_to_job(st, &(*jobs)[*n]);
        if (rc) {
            an_failc(err, rc, NULL, "out of memory listing jobs");
            break;
        }
        (*n)++;
    }
    if (!rc && r != SQLITE_DONE)
        rc = st_fail(s, r, "listing jobs", err);
    sqlite3_finalize(st);
    if (rc) {
        store_job_list_free(*jobs, *n);
        *jobs = NULL;
        *n = 0;
    }
    return rc;
}

int store_job_counts(store_t *s, int64_t counts[STORE_NSTATES], an_err *err)
{
    sqlite3_stmt *st;
    for (int i = 0; i < STORE_NSTATES; i++)
        counts[i] = 0;
    int rc = st_prepare(s, "SELECT state, count(*) FROM jobs GROUP BY state", &st, err);
    if (rc)
        return rc;
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        int k = sqlite3_column_int(st, 0);
        if (k >= 0 && k < STORE_NSTATES)
            counts[k] = sqlite3_column_int64(st, 1);
    }
    if (r != SQLITE_DONE)
        rc = st_fail(s, r, "counting jobs", err);
    sqlite3_finalize(st);
    return rc;
}

/* The state change of store_job_set_state inside an open transaction. */
static int set_state_tx(store_t *s, int64_t num, store_job_state to, const char *error,
                        an_err *err)
{
    char now[24];
    sqlite3_stmt *st;
    st_now(now);
    int rc = st_prepare(s,
                        "UPDATE jobs SET state=?1, error=?2,"
                        " started_at = CASE WHEN ?1=1 AND started_at IS NULL THEN ?3"
                        "              ELSE started_at END,"
                        " finished_at = CASE WHEN ?1 IN (3,4,5,6) THEN ?3 ELSE NULL END"
                        " WHERE num=?4",
                        &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int(st, 1, to);
    if (error)
        sqlite3_bind_text(st, 2, error, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, now, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, num);
    int r = sqlite3_step(st);
    if (r != SQLITE_DONE)
        rc = st_fail(s, r, "changing a job's state", err);
    sqlite3_finalize(st);
    return rc;
}

int store_job_set_state(store_t *s, const char *id, unsigned from_mask, store_job_state to,
                        const char *error, store_job_state *prev, an_err *err)
{
    if ((unsigned)to >= STORE_NSTATES)
        return an_fail(err, "state", "expected a job state 0..%d, got %d", STORE_NSTATES - 1, (int)to);
    int rc = st_begin(s, err);
    if (rc)
        return rc;
    int64_t num;
    store_job_state cur;
    rc = st_job_num(s, id, &num, &cur, err);
    if (!rc && prev) /* also for STORE_ESTATE: the caller says what the state was */
        *prev = cur;
    if (!rc && !(from_mask & STORE_MASK(cur)))
        rc = an_failc(err, STORE_ESTATE, "state", "job %s is %s; cannot become %s", id,
                      store_state_name(cur), store_state_name(to));
    if (!rc)
        rc = set_state_tx(s, num, to, error, err);
    return st_end(s, rc, err);
}

int st_write_progress(store_t *s, int64_t num, const store_progress *p, an_err *err)
{
    int rc;
    sqlite3_stmt *st = st_stmt(s, ST_PROGRESS,
                               "UPDATE jobs SET step=?, epoch=?, loss=?, lr=?, samples_per_sec=?"
                               " WHERE num=?",
                               &rc, err);
    if (!st)
        return rc;
    sqlite3_bind_int64(st, 1, p->step);
    sqlite3_bind_int64(st, 2, p->epoch);
    st_bind_num(st, 3, p->loss);
    st_bind_lr(st, 4, p->lr, p->n_lr);
    st_bind_num(st, 5, p->samples_per_sec);
    sqlite3_bind_int64(st, 6, num);
    int r = sqlite3_step(st);
    if (r != SQLITE_DONE)
        rc = st_fail(s, r, "writing job progress", err);
    sqlite3_reset(st);
    return rc;
}

int store_job_progress(store_t *s, const char *id, const store_progress *p, an_err *err)
{
    if (!p || p->n_lr < 0 || p->n_lr > STORE_MAX_LR)
        return an_fail(err, "lr", "expected 0..%d learning-rate groups", STORE_MAX_LR);
    int rc = st_begin(s, err);
    if (rc)
        return rc;
    int64_t num;
    rc = st_job_num(s, id, &num, NULL, err);
    if (!rc)
        rc = st_write_progress(s, num, p, err);
    return st_end(s, rc, err);
}

/* Runs "DELETE … WHERE job=?1 [AND step > ?2]" style statements for one job. */
static int exec_job(store_t *s, const char *sql, int64_t num, int64_t step, an_err *err)
{
    sqlite3_stmt *st;
    int rc = st_prepare(s, sql, &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, num);
    if (sqlite3_bind_parameter_count(st) >= 2)
        sqlite3_bind_int64(st, 2, step);
    int r = sqlite3_step(st);
    if (r != SQLITE_DONE)
        rc = st_fail(s, r, "deleting job data", err);
    sqlite3_finalize(st);
    return rc;
}

int st_job_delete_tx(store_t *s, int64_t num, an_err *err)
{
    static const char *const sql[] = {
        "DELETE FROM checkpoint_chunks WHERE ckpt IN (SELECT id FROM checkpoints WHERE job=?1)",
        "DELETE FROM checkpoints WHERE job=?1",
        "DELETE FROM metric_blocks WHERE job=?1",
        "DELETE FROM val_metrics WHERE job=?1",
        "DELETE FROM fp16_events WHERE job=?1",
        "DELETE FROM jobs WHERE num=?1",
    };
    int rc = 0;
    for (size_t i = 0; !rc && i < sizeof sql / sizeof sql[0]; i++)
        rc = exec_job(s, sql[i], num, 0, err);
    return rc;
}

static int job_delete(store_t *s, const char *id, int trials_too, an_err *err);

int store_job_delete(store_t *s, const char *id, an_err *err)
{
    return job_delete(s, id, 1, err);
}

int store_job_delete_alone(store_t *s, const char *id, an_err *err)
{
    return job_delete(s, id, 0, err);
}

static int job_delete(store_t *s, const char *id, int trials_too, an_err *err)
{
    int rc = st_begin(s, err);
    if (rc)
        return rc;
    int64_t num;
    store_job_state cur;
    rc = st_job_num(s, id, &num, &cur, err);
    if (!rc && !(STORE_MASK_FINISHED & STORE_MASK(cur)))
        rc = an_failc(err, STORE_ESTATE, "state",
                      "job %s is %s; only a completed, failed, stopped or cancelled job can "
                      "be deleted", id, store_state_name(cur));
    /* A sweep's trial goes with its sweep: alone, its sweep would count the trial as not run
     * and run it again. */
    sqlite3_stmt *st;
    if (!rc && !trials_too &&
        !(rc = st_prepare(s, "SELECT w.id, t.trial FROM sweep_jobs t JOIN sweeps w ON "
                                    "w.num = t.sweep WHERE t.job = ?", &st, err))) {
        sqlite3_bind_int64(st, 1, num);
        int r = sqlite3_step(st);
        if (r == SQLITE_ROW)
            rc = an_failc(err, STORE_ESTATE, "state", "job %s is trial %d of sweep %s: delete "
                          "the sweep (DELETE /v1/sweeps/%s), which deletes its trials", id,
                          sqlite3_column_int(st, 1), (const char *)sqlite3_column_text(st, 0),
                          (const char *)sqlite3_column_text(st, 0));
        else if (r != SQLITE_DONE)
            rc = st_fail(s, r, "looking up the job's sweep", err);
        sqlite3_finalize(st);
    }
    if (!rc)
        rc = st_job_delete_tx(s, num, err);
    return st_end(s, rc, err);
}

int store_job_ids(store_t *s, unsigned state_mask, char (**ids)[STORE_ID_LEN], size_t *n,
                  an_err *err)
{
    char in[64], sql[160];
    sqlite3_stmt *st;
    *ids = NULL;
    *n = 0;
    mask_sql(state_mask, in, sizeof in);
    snprintf(sql, sizeof sql, "SELECT id FROM jobs WHERE state IN %s ORDER BY num", in);
    int rc = st_prepare(s, sql, &st, err);
    if (rc)
        return rc;
    size_t cap = 0;
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        void *grown = st_grow(*ids, &cap, *n, sizeof **ids, 16);
        if (!grown) {
            rc = an_failc(err, -ENOMEM, NULL, "out of memory listing job ids");
            break;
        }
        *ids = grown;
        st_col_copy(st, 0, (*ids)[*n], STORE_ID_LEN);
        (*n)++;
    }
    if (!rc && r != SQLITE_DONE)
        rc = st_fail(s, r, "listing job ids", err);
    sqlite3_finalize(st);
    if (rc) {
        free(*ids);
        *ids = NULL;
        *n = 0;
    }
    return rc;
}

int store_job_requeue_running(store_t *s, size_t *n, an_err *err)
{
    int rc = st_begin(s, err);
    if (rc)
        return rc;
    rc = st_exec(s, "UPDATE jobs SET state=0 WHERE state=1", "re-queueing running jobs", err);
    size_t changed = (size_t)sqlite3_changes(s->db);
    rc = st_end(s, rc, err);
    if (rc)
        return rc;
    if (n)
        *n = changed;
    return 0;
}

/* The row's progress goes back to the checkpoint: the loss and lr of that step's metric row
 * when there is one, null otherwise. */
static int rewind_progress(store_t *s, int64_t num, int64_t step, an_err *err)
{
    store_metric m;
    int found;
    int rc = st_metric_at(s, num, step, &m, &found, err);
    if (rc)
        return rc;
    sqlite3_stmt *st;
    rc = st_prepare(s, "UPDATE jobs SET loss=?2, lr=?3 WHERE num=?1", &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, num);
    if (found) {
        st_bind_num(st, 2, m.loss);
        st_bind_lr(st, 3, m.lr, m.n_lr);
    }
    int r = sqlite3_step(st);
    if (r != SQLITE_DONE)
        rc = st_fail(s, r, "rewinding the job's progress", err);
    sqlite3_finalize(st);
    return rc;
}

int store_job_rewind(store_t *s, const char *id, int64_t step, store_job_state to, an_err *err)
{
    static const char *const sql[] = {
        "DELETE FROM checkpoint_chunks WHERE ckpt IN "
        " (SELECT id FROM checkpoints WHERE job=?1 AND step > ?2)",
        "DELETE FROM checkpoints WHERE job=?1 AND step > ?2",
        "DELETE FROM val_metrics WHERE job=?1 AND step > ?2",
        "DELETE FROM fp16_events WHERE job=?1 AND step > ?2",
        "UPDATE jobs SET step=?2,"
        " last_checkpoint_step=(SELECT max(step) FROM checkpoints WHERE job=?1)"
        " WHERE num=?1",
    };
    if (to != STORE_QUEUED && to != STORE_RUNNING)
        return an_fail(err, "state", "a rewound job becomes queued or running, not %s",
                       store_state_name(to) ? store_state_name(to) : "an unknown state");
    if (step < 0)
        return an_fail(err, "step", "expected a checkpoint step >= 0, got %" PRId64, step);
    int rc = st_begin(s, err);
    if (rc)
        return rc;
    int64_t num;
    rc = st_job_num(s, id, &num, NULL, err);
    for (size_t i = 0; !rc && i < sizeof sql / sizeof sql[0]; i++)
        rc = exec_job(s, sql[i], num, step, err);
    if (!rc)
        rc = st_metrics_truncate(s, num, step, err);
    if (!rc)
        rc = rewind_progress(s, num, step, err);
    if (!rc)
        rc = set_state_tx(s, num, to, NULL, err);
    return st_end(s, rc, err);
}
