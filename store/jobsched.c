/* jobsched — the store's side of scheduling: jobs listed by tag and text, and the PATCH of a
 * job's labels (name and the spec's priority, tags and notes). The labels live in the stored
 * spec (JSON), so these need no column of their own: SQLite's JSON functions read them. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "store/internal.h"

/* The WHERE clause of a filtered list; ?1 = tag (or NULL), ?2 = LIKE pattern (or NULL). */
#define FILTER_SQL                                                                           \
    " AND (?1 IS NULL OR EXISTS (SELECT 1 FROM json_each(jobs.spec, '$.tags')"                \
    "                            WHERE json_each.value = ?1))"                                \
    " AND (?2 IS NULL OR name LIKE ?2 ESCAPE '\\'"                                            \
    "      OR coalesce(json_extract(jobs.spec, '$.notes'), '') LIKE ?2 ESCAPE '\\')"

/* "%text%" with LIKE's wildcards in `q` escaped, so that q matches as plain text. */
static char *like_pattern(const char *q)
{
    size_t n = strlen(q);
    char *p = malloc(2 * n + 3);
    if (!p)
        return NULL;
    size_t k = 0;
    p[k++] = '%';
    for (size_t i = 0; i < n; i++) {
        if (q[i] == '%' || q[i] == '_' || q[i] == '\\')
            p[k++] = '\\';
        p[k++] = q[i];
    }
    p[k++] = '%';
    p[k] = 0;
    return p;
}

static void bind_filter(sqlite3_stmt *st, const char *tag, const char *like)
{
    if (tag)
        sqlite3_bind_text(st, 1, tag, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 1);
    if (like)
        sqlite3_bind_text(st, 2, like, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 2);
}

int store_job_list_filtered(store_t *s, unsigned state_mask, const char *tag, const char *q,
                            int64_t limit, int64_t offset, store_job **jobs, size_t *n,
                            int64_t *total, an_err *err)
{
    char in[64], sql[1024];
    sqlite3_stmt *st;
    *jobs = NULL;
    *n = 0;
    if (offset < 0)
        return an_fail(err, "offset", "expected offset >= 0, got %" PRId64, offset);
    size_t k = (size_t)snprintf(in, sizeof in, "(-1");
    for (int i = 0; i < STORE_NSTATES; i++)
        if (state_mask & STORE_MASK(i))
            k += (size_t)snprintf(in + k, sizeof in - k, ",%d", i);
    snprintf(in + k, sizeof in - k, ")");
    char *like = q && q[0] ? like_pattern(q) : NULL;
    if (q && q[0] && !like)
        return an_failc(err, -ENOMEM, NULL, "out of memory listing jobs");
    if (tag && !tag[0])
        tag = NULL;
    int rc = 0;
    if (total) {
        snprintf(sql, sizeof sql, "SELECT count(*) FROM jobs WHERE state IN %s" FILTER_SQL, in);
        rc = st_prepare(s, sql, &st, err);
        if (rc)
            goto out;
        bind_filter(st, tag, like);
        int r = sqlite3_step(st);
        if (r == SQLITE_ROW)
            *total = sqlite3_column_int64(st, 0);
        else
            rc = st_fail(s, r, "counting jobs", err);
        sqlite3_finalize(st);
        if (rc)
            goto out;
    }
    snprintf(sql, sizeof sql,
             "SELECT id FROM jobs WHERE state IN %s" FILTER_SQL
             " ORDER BY num DESC LIMIT ?3 OFFSET ?4", in);
    rc = st_prepare(s, sql, &st, err);
    if (rc)
        goto out;
    bind_filter(st, tag, like);
    sqlite3_bind_int64(st, 3, limit < 0 ? -1 : limit);
    sqlite3_bind_int64(st, 4, offset);
    char(*ids)[STORE_ID_LEN] = NULL;
    size_t nid = 0, cap = 0;
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        void *grown = st_grow(ids, &cap, nid, sizeof *ids, 16);
        if (!grown) {
            rc = an_failc(err, -ENOMEM, NULL, "out of memory listing jobs");
            break;
        }
        ids = grown;
        snprintf(ids[nid++], STORE_ID_LEN, "%s", (const char *)sqlite3_column_text(st, 0));
    }
    if (!rc && r != SQLITE_DONE)
        rc = st_fail(s, r, "listing jobs", err);
    sqlite3_finalize(st);
    if (!rc && nid) {
        *jobs = calloc(nid, sizeof **jobs);
        if (!*jobs)
            rc = an_failc(err, -ENOMEM, NULL, "out of memory listing jobs");
    }
    /* One read of each listed job: the rows themselves come from store_job_get, so that the
     * list and the single job never differ. A job deleted between the two reads is left out. */
    for (size_t i = 0; !rc && i < nid; i++) {
        int g = store_job_get(s, ids[i], &(*jobs)[*n], err);
        if (g == 0)
            (*n)++;
        else if (g != -ENOENT)
            rc = g;
    }
    free(ids);
    if (rc) {
        store_job_list_free(*jobs, *n);
        *jobs = NULL;
        *n = 0;
    }
out:
    free(like);
    return rc;
}

int store_job_edit_spec(store_t *s, const char *id,
                        int (*edit)(const char *spec, char **out, void *arg), void *arg,
                        an_err *err)
{
    int rc = st_begin(s, err);
    if (rc)
        return rc;
    int64_t num;
    rc = st_job_num(s, id, &num, NULL, err);
    sqlite3_stmt *st = NULL;
    cJSON *spec = NULL;
    char *text = NULL;
    if (!rc)
        rc = st_prepare(s, "SELECT spec FROM jobs WHERE num=?1", &st, err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, num);
        int r = sqlite3_step(st);
        if (r == SQLITE_ROW) {
            if ((rc = edit((const char *)sqlite3_column_text(st, 0), &text, arg)) != 0)
                an_failc(err, rc, NULL, rc == -ENOMEM ? "out of memory changing job %s"
                                                      : "job %s: its stored spec does not parse", id);
        } else {
            rc = st_fail(s, r == SQLITE_DONE ? SQLITE_CORRUPT : r, "reading a job's spec", err);
        }
        sqlite3_finalize(st);
        st = NULL;
    }
    /* the job's name column follows the new spec's "name" */
    if (!rc && !(spec = cJSON_Parse(text)))
        rc = an_failc(err, -EPROTO, NULL, "job %s: the changed spec does not parse", id);
    const cJSON *name = spec ? cJSON_GetObjectItemCaseSensitive(spec, "name") : NULL;
    if (!rc && !cJSON_IsString(name))
        rc = an_failc(err, -EPROTO, NULL, "job %s: its spec has no name", id);
    if (!rc)
        rc = st_prepare(s, "UPDATE jobs SET name=?1, spec=?2 WHERE num=?3", &st, err);
    if (!rc) {
        sqlite3_bind_text(st, 1, name->valuestring, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, num);
        int r = sqlite3_step(st);
        if (r != SQLITE_DONE)
            rc = st_fail(s, r, "changing a job's labels", err);
        sqlite3_finalize(st);
    }
    free(text);
    cJSON_Delete(spec);
    return st_end(s, rc, err);
}

int store_job_sched_get(store_t *s, const char *id, store_job_sched *out, an_err *err)
{
    *out = (store_job_sched){0, 1, -1, -1};
    sqlite3_stmt *st;
    int rc = st_prepare(s, "SELECT priority, preemptible, stall_timeout_s, max_restarts"
                           " FROM job_sched WHERE job=(SELECT num FROM jobs WHERE id=?1)",
                        &st, err);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        if (sqlite3_column_type(st, 0) == SQLITE_INTEGER)
            out->priority = sqlite3_column_int(st, 0);
        if (sqlite3_column_type(st, 1) == SQLITE_INTEGER)
            out->preemptible = sqlite3_column_int(st, 1) != 0;
        if (sqlite3_column_type(st, 2) != SQLITE_NULL)
            out->stall_timeout_s = sqlite3_column_double(st, 2);
        if (sqlite3_column_type(st, 3) == SQLITE_INTEGER)
            out->max_restarts = sqlite3_column_int(st, 3);
    } else if (r == SQLITE_DONE) {
        rc = an_failc(err, -ENOENT, "id", "no scheduling row for job %s", id);
    } else {
        rc = st_fail(s, r, "reading a job's scheduling keys", err);
    }
    sqlite3_finalize(st);
    return rc;
}
