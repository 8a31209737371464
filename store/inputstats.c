/* inputstats — the input statistics a job standardised its features with (the mean and std
 * of every feature over its training rows), kept with the job so that inference can apply
 * them without reading the job's data again.
 *
 * The table is created on first use, and rows of jobs that no longer exist are removed
 * whenever a row is written, so the rest of the schema is untouched. */
#include "store/store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

static const char CREATE[] = "CREATE TABLE IF NOT EXISTS input_stats("
                             "  job TEXT PRIMARY KEY,"
                             "  stats TEXT NOT NULL)";

int store_input_stats_put(store_t *s, const char *job_id, const char *json, an_err *err)
{
    int rc = st_exec(s, CREATE, "creating input_stats", err);
    if (rc)
        return rc;
    sqlite3_stmt *st;
    rc = st_prepare(s, "INSERT OR REPLACE INTO input_stats(job, stats) VALUES (?, ?)", &st, err);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, job_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, json, -1, SQLITE_STATIC);
    int r = sqlite3_step(st);
    sqlite3_finalize(st);
    if (r != SQLITE_DONE)
        return st_fail(s, r, "storing the input statistics", err);
    return st_exec(s, "DELETE FROM input_stats WHERE job NOT IN (SELECT id FROM jobs)",
                   "pruning input_stats", err);
}

int store_input_stats_get(store_t *s, const char *job_id, char **json, an_err *err)
{
    *json = NULL;
    sqlite3_stmt *st;
    int rc = st_prepare(s, "SELECT stats FROM input_stats WHERE job = ?", &st, NULL);
    if (rc) /* no such table yet: nothing was stored */
        return -ENOENT;
    sqlite3_bind_text(st, 1, job_id, -1, SQLITE_STATIC);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        *json = t ? strdup(t) : NULL;
        rc = *json ? 0 : -ENOMEM;
    } else {
        rc = r == SQLITE_DONE ? -ENOENT : st_fail(s, r, "reading the input statistics", err);
    }
    sqlite3_finalize(st);
    return rc;
}
