/* migrate.c — the metric-block schema migrations: 1 -> 2 packs one SQL row per step into
 * blocks, 2 -> 3 adds the column that marks compressed blocks; and a column added by any
 * migration step. */
#include "store/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "store/internal.h"

int st_add_column(store_t *s, const char *table, const char *column, const char *decl,
                  an_err *err)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pragma_table_info('%s') WHERE name='%s'",
             table, column);
    sqlite3_stmt *st;
    int rc = st_prepare(s, sql, &st, err);
    if (rc)
        return rc;
    int r = sqlite3_step(st), has = r == SQLITE_ROW && sqlite3_column_int(st, 0) > 0;
    if (r != SQLITE_ROW)
        rc = st_fail(s, r, "reading a table's columns", err);
    sqlite3_finalize(st);
    if (rc || has)
        return rc;
    snprintf(sql, sizeof sql, "ALTER TABLE %s ADD COLUMN %s %s", table, column, decl);
    return st_exec(s, sql, "adding a column", err);
}

int st_migrate_blocks_raw(store_t *s, an_err *err)
{
    int rc = st_add_column(s, "metric_blocks", "raw", "INTEGER", err);
    /* Block summaries (summary.c): small rows of their own, so walking them never reads a
     * block's blob; a block's summary goes with it. */
    if (!rc)
        rc = st_exec(s,
                     "CREATE TABLE IF NOT EXISTS metric_sums("
                     "  job INTEGER NOT NULL REFERENCES jobs(num) ON DELETE CASCADE,"
                     "  first_step INTEGER NOT NULL,"
                     "  last_step INTEGER NOT NULL,"
                     "  nrows INTEGER NOT NULL,"
                     "  ngroups INTEGER NOT NULL,"
                     "  rows BLOB NOT NULL,"
                     "  PRIMARY KEY(job, first_step)"
                     ") WITHOUT ROWID;"
                     "CREATE TRIGGER IF NOT EXISTS metric_sums_follow AFTER DELETE ON metric_blocks"
                     " BEGIN DELETE FROM metric_sums WHERE job=old.job"
                     " AND first_step=old.first_step; END;",
                     "creating metric_sums", err);
    return rc;
}

int st_migrate_metric_blocks(store_t *s, an_err *err)
{
    sqlite3_stmt *st;
    int rc = st_migrate_blocks_raw(s, err);
    if (rc)
        return rc;
    rc = st_prepare(s, "SELECT job, step, loss, grad_norm, time, wall, lr FROM metrics"
                           " ORDER BY job, step", &st, err);
    if (rc)
        return rc;
    store_metric *buf = malloc(ST_BLOCK_CAP * sizeof *buf);
    const store_metric **p = malloc(ST_BLOCK_CAP * sizeof *p);
    if (!buf || !p)
        rc = an_failc(err, -ENOMEM, NULL, "out of memory converting metric rows");
    for (size_t i = 0; !rc && i < ST_BLOCK_CAP; i++)
        p[i] = &buf[i];
    size_t k = 0;
    int64_t job = 0;
    int r = SQLITE_DONE;
    while (!rc && (r = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t j = sqlite3_column_int64(st, 0);
        if (k > 0 && (j != job || k == ST_BLOCK_CAP)) {
            rc = st_blocks_write(s, job, p, k, err);
            k = 0;
        }
        job = j;
        store_metric *m = &buf[k++];
        m->step = sqlite3_column_int64(st, 1);
        m->loss = st_col_num(st, 2);
        m->grad_norm = st_col_num(st, 3);
        m->time = st_col_num(st, 4);
        m->wall = st_col_num(st, 5);
        m->n_lr = st_col_lr(st, 6, m->lr, STORE_MAX_LR);
    }
    if (!rc && r != SQLITE_DONE)
        rc = st_fail(s, r, "reading metric rows to convert", err);
    if (!rc && k > 0)
        rc = st_blocks_write(s, job, p, k, err);
    sqlite3_finalize(st);
    free(buf);
    free(p);
    if (!rc)
        rc = st_exec(s, "DROP TABLE metrics", "dropping the per-step metrics table", err);
    return rc;
}
