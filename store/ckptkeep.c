/* ckptkeep — checkpoint retention beyond keep_last: pins and the best by a metric (and the
 * migration 3 -> 4 that adds the tables of this and of store/jobsched.c).
 *
 * Pins are rows of `checkpoint_pins` (job, step), kept in step with `checkpoints` by
 * triggers: a checkpoint that is deleted, or whose row is reused for another step, loses its
 * pin. A job that has a pin or a keep_best policy takes the careful path of a commit
 * (checkpoints.c): the new checkpoint gets a row of its own (never the oldest one's), then
 * every checkpoint that is neither among the keep_last newest, nor among the k best, nor
 * pinned is deleted — all inside the commit's transaction. Readers (a resume, weights) read a
 * checkpoint inside one read transaction, so a retention that commits meanwhile never takes
 * a checkpoint away from a read that has started: the read sees the snapshot it began with. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

/* The scheduling keys of each job's spec, copied out by triggers when the spec is written
 * (off the loop), so that queueing a job reads four numbers instead of parsing its spec,
 * which may hold megabytes of inline data (store/jobsched.c reads them). */
#define SCHED_COLS(spec)                                                                     \
    "CASE WHEN json_valid(" spec ") THEN json_extract(" spec ", '$.priority') END,"          \
    "CASE WHEN json_valid(" spec ") THEN json_extract(" spec ", '$.preemptible') END,"       \
    "CASE WHEN json_valid(" spec ") THEN json_extract(" spec ", '$.stall_timeout_s') END,"   \
    "CASE WHEN json_valid(" spec ") THEN json_extract(" spec ", '$.max_restarts') END"

int st_migrate_checkpoint_pins(store_t *s, an_err *err)
{
    int rc = st_exec(s,
                     "CREATE TABLE IF NOT EXISTS job_sched("
                     "  job INTEGER PRIMARY KEY REFERENCES jobs(num) ON DELETE CASCADE,"
                     "  priority INTEGER, preemptible INTEGER, stall_timeout_s REAL,"
                     "  max_restarts INTEGER);"
                     "INSERT OR REPLACE INTO job_sched SELECT num, " SCHED_COLS("spec")
                     " FROM jobs;"
                     "CREATE TRIGGER IF NOT EXISTS job_sched_insert AFTER INSERT ON jobs BEGIN"
                     " INSERT OR REPLACE INTO job_sched VALUES(new.num, " SCHED_COLS("new.spec")
                     "); END;"
                     "CREATE TRIGGER IF NOT EXISTS job_sched_update AFTER UPDATE OF spec ON jobs"
                     " BEGIN INSERT OR REPLACE INTO job_sched VALUES(new.num, "
                     SCHED_COLS("new.spec") "); END;",
                     "creating job_sched", err);
    if (rc)
        return rc;
    return st_exec(s,
                   "CREATE TABLE IF NOT EXISTS checkpoint_pins("
                   "  job INTEGER NOT NULL REFERENCES jobs(num) ON DELETE CASCADE,"
                   "  step INTEGER NOT NULL,"
                   "  PRIMARY KEY(job, step)"
                   ") WITHOUT ROWID;"
                   "CREATE TRIGGER IF NOT EXISTS checkpoint_pins_delete AFTER DELETE ON checkpoints"
                   " BEGIN DELETE FROM checkpoint_pins WHERE job=old.job AND step=old.step; END;"
                   "CREATE TRIGGER IF NOT EXISTS checkpoint_pins_move AFTER UPDATE OF step"
                   " ON checkpoints WHEN old.step <> new.step"
                   " BEGIN DELETE FROM checkpoint_pins WHERE job=old.job AND step=old.step; END;",
                   "creating checkpoint_pins", err);
}

/* The SQL value of checkpoint `c` for metric m (enum keep_metric of core/config_keep.h). */
static const char *value_sql(int metric)
{
    switch (metric) {
    case 1:
        return "(SELECT v.val_loss FROM val_metrics v WHERE v.job=c.job AND v.step<=c.step"
               " ORDER BY v.step DESC LIMIT 1)";
    case 2:
        return "(SELECT v.val_acc FROM val_metrics v WHERE v.job=c.job AND v.step<=c.step"
               " ORDER BY v.step DESC LIMIT 1)";
    default:
        return "c.loss";
    }
}

/* "SELECT id … the k best" for job ?1 (ties: the newer first). */
static void best_sql(const store_keep *k, char *buf, size_t size)
{
    const char *v = value_sql(k->best_metric);
    snprintf(buf, size,
             "SELECT c.id FROM checkpoints c WHERE c.job=?1 AND %s IS NOT NULL"
             " ORDER BY %s %s, c.step DESC LIMIT %d",
             v, v, k->best_max ? "DESC" : "ASC", k->best_k > 0 ? k->best_k : 0);
}

int st_ckpt_careful(store_t *s, int64_t num, const store_keep *k, int *careful, an_err *err)
{
    *careful = k && k->best_k > 0;
    if (*careful)
        return 0;
    int64_t pinned = 0;
    int rc = st_one_int(s, "SELECT EXISTS(SELECT 1 FROM checkpoint_pins WHERE job=?1)", num,
                        &pinned, NULL, "reading checkpoint pins", err);
    *careful = pinned != 0;
    return rc;
}

int st_ckpt_retire_kept(store_t *s, int64_t num, const store_keep *k, an_err *err)
{
    if (!k || k->keep_last <= 0)
        return 0; /* keep_last 0 keeps every checkpoint */
    char best[600], keep[1200], sql[1600];
    best_sql(k, best, sizeof best);
    snprintf(keep, sizeof keep,
             "SELECT id FROM checkpoints WHERE job=?1 AND id NOT IN (SELECT id FROM checkpoints"
             " WHERE job=?1 ORDER BY step DESC LIMIT %d) AND id NOT IN (%s) AND step NOT IN"
             " (SELECT step FROM checkpoint_pins WHERE job=?1)", k->keep_last, best);
    static const char *const what[2] = {"DELETE FROM checkpoint_chunks WHERE ckpt IN (%s)",
                                         "DELETE FROM checkpoints WHERE id IN (%s)"};
    int rc = 0;
    for (int i = 0; !rc && i < 2; i++) {
        snprintf(sql, sizeof sql, what[i], keep);
        sqlite3_stmt *st;
        rc = st_prepare(s, sql, &st, err);
        if (rc)
            break;
        sqlite3_bind_int64(st, 1, num);
        int r = sqlite3_step(st);
        if (r != SQLITE_DONE)
            rc = st_fail(s, r, "deleting old checkpoints", err);
        sqlite3_finalize(st);
    }
    return rc;
}

int store_checkpoint_pin(store_t *s, const char *id, int64_t step, int pin, an_err *err)
{
    int rc = st_begin(s, err);
    if (rc)
        return rc;
    int64_t num;
    rc = st_job_num(s, id, &num, NULL, err);
    sqlite3_stmt *st = NULL;
    if (!rc)
        rc = st_prepare(s, "SELECT 1 FROM checkpoints WHERE job=?1 AND step=?2", &st, err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, num);
        sqlite3_bind_int64(st, 2, step);
        int r = sqlite3_step(st);
        if (r == SQLITE_DONE)
            rc = an_failc(err, -ENOENT, "step", "job %s has no checkpoint at step %" PRId64, id,
                          step);
        else if (r != SQLITE_ROW)
            rc = st_fail(s, r, "finding a checkpoint", err);
        sqlite3_finalize(st);
    }
    if (!rc)
        rc = st_prepare(s, pin ? "INSERT OR IGNORE INTO checkpoint_pins(job, step) VALUES(?1,?2)"
                               : "DELETE FROM checkpoint_pins WHERE job=?1 AND step=?2",
                        &st, err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, num);
        sqlite3_bind_int64(st, 2, step);
        int r = sqlite3_step(st);
        if (r != SQLITE_DONE)
            rc = st_fail(s, r, pin ? "pinning a checkpoint" : "unpinning a checkpoint", err);
        sqlite3_finalize(st);
    }
    return st_end(s, rc, err);
}

int store_checkpoint_marks(store_t *s, const char *id, const store_keep *k,
                           store_checkpoint_info *list, size_t n, an_err *err)
{
    for (size_t i = 0; i < n; i++)
        list[i].pinned = list[i].best = 0;
    int64_t num;
    int rc = st_job_num(s, id, &num, NULL, err);
    if (rc || n == 0)
        return rc;
    char best[600], sql[900];
    if (k && k->best_k > 0)
        best_sql(k, best, sizeof best);
    else
        snprintf(best, sizeof best, "SELECT NULL WHERE 0");
    snprintf(sql, sizeof sql,
             "SELECT c.step, EXISTS(SELECT 1 FROM checkpoint_pins p WHERE p.job=c.job"
             " AND p.step=c.step), c.id IN (%s) FROM checkpoints c WHERE c.job=?1", best);
    sqlite3_stmt *st;
    rc = st_prepare(s, sql, &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, num);
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t step = sqlite3_column_int64(st, 0);
        for (size_t i = 0; i < n; i++)
            if (list[i].step == step) {
                list[i].pinned = sqlite3_column_int(st, 1);
                list[i].best = sqlite3_column_int(st, 2);
                break;
            }
    }
    if (r != SQLITE_DONE)
        rc = st_fail(s, r, "reading checkpoint marks", err);
    sqlite3_finalize(st);
    return rc;
}
