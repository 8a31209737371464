/* uploads — a data set stored as its upload arrives, part by part.
 *
 * The upload reserves its data set number first (store_upload_open), stores each piece of the
 * body as one row of dataset_parts as it comes (store_upload_part, one short transaction
 * each, so the loop's readers and the workers' commits interleave with it), and becomes a data
 * set when the last piece has been checked (store_upload_finish: the datasets row, in one
 * transaction; until then no list or job sees it). A failed or abandoned upload's parts are
 * deleted (store_upload_abort), and parts whose data set never came into being — the daemon
 * stopped mid-upload — at the next start (store_upload_sweep). */
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "store/internal.h"

#define DATASET_MAX_BYTES STORE_DATASET_MAX_BYTES

int store_upload_open(store_t *s, int64_t *num, an_err *err)
{
    int rc = st_begin(s, err);
    if (rc)
        return rc;
    rc = st_seq_next(s, "dataset", num, err);
    return st_end(s, rc, err);
}

int store_upload_part(store_t *s, int64_t num, int64_t idx, const void *data, size_t len,
                      an_err *err)
{
    int rc = st_begin(s, err);
    if (rc)
        return rc;
    sqlite3_stmt *st;
    rc = st_prepare(s, "INSERT INTO dataset_parts(dataset, idx, data) VALUES(?,?,?)", &st, err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, num);
        sqlite3_bind_int64(st, 2, idx);
        sqlite3_bind_blob64(st, 3, len ? data : "", len, SQLITE_STATIC);
        int r = sqlite3_step(st);
        if (r != SQLITE_DONE)
            rc = st_fail(s, r, "storing a piece of an upload", err);
        sqlite3_finalize(st);
    }
    return st_end(s, rc, err);
}

int store_upload_finish(store_t *s, int64_t num, const char *name, int64_t bytes, int64_t rows,
                        const char *columns_json, const char *vocab_json,
                        char id_out[STORE_ID_LEN], an_err *err)
{
    if (!name || !name[0] || strlen(name) > 200)
        return an_fail(err, "name", "expected a data set name of 1..200 characters, got %s",
                       name && name[0] ? "a longer one" : "none");
    if (!st_json_is(columns_json, cJSON_Array))
        return an_fail(err, "columns", "expected the columns as a JSON array text");
    if (bytes < 0 || bytes > DATASET_MAX_BYTES)
        return an_failc(err, -E2BIG, NULL, "data set is %" PRId64 " bytes; the limit is %" PRId64
                        " bytes", bytes, DATASET_MAX_BYTES);
    if (rows < 0)
        return an_fail(err, "rows", "expected rows >= 0, got %" PRId64, rows);
    int rc = st_begin(s, err);
    if (rc)
        return rc;
    char id[STORE_ID_LEN];
    rc = st_dataset_insert(s, num, name, rows, columns_json, bytes, id, err);
    if (!rc && vocab_json) {
        sqlite3_stmt *st;
        if (!(rc = st_prepare(s, "UPDATE datasets SET vocab=? WHERE num=?", &st, err))) {
            sqlite3_bind_text(st, 1, vocab_json, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 2, num);
            int r = sqlite3_step(st);
            if (r != SQLITE_DONE)
                rc = st_fail(s, r, "storing a text's vocabulary", err);
            sqlite3_finalize(st);
        }
    }
    rc = st_end(s, rc, err);
    if (!rc && id_out)
        snprintf(id_out, STORE_ID_LEN, "%s", id);
    return rc;
}

/* Deletes parts whose data set row does not exist: of upload `num`, or of all (num < 0). */
static int delete_orphans(store_t *s, int64_t num, int64_t *n, an_err *err)
{
    int rc = st_begin(s, err);
    if (rc)
        return rc;
    sqlite3_stmt *st;
    rc = st_prepare(s,
                    num < 0 ? "DELETE FROM dataset_parts WHERE dataset NOT IN"
                              " (SELECT num FROM datasets)"
                            : "DELETE FROM dataset_parts WHERE dataset=?1 AND dataset NOT IN"
                              " (SELECT num FROM datasets)",
                    &st, err);
    if (!rc) {
        if (num >= 0)
            sqlite3_bind_int64(st, 1, num);
        int r = sqlite3_step(st);
        if (r != SQLITE_DONE)
            rc = st_fail(s, r, "deleting an unfinished upload", err);
        else if (n)
            *n = sqlite3_changes(s->db);
        sqlite3_finalize(st);
    }
    return st_end(s, rc, err);
}

/* Uploads whose parts could not be deleted (a full disk refuses even the delete's commit until
 * the WAL has been copied and can start over): store_upload_retry tries them again, so their
 * space comes back while the daemon runs, not only at its next start. A number left out when
 * the list is full is still swept at the next start. */
#define PENDING_MAX 64
static int64_t g_pending[PENDING_MAX];
static int g_npending;
static pthread_mutex_t g_pending_mu = PTHREAD_MUTEX_INITIALIZER;

int store_upload_abort(store_t *s, int64_t num, an_err *err)
{
    int rc = delete_orphans(s, num, NULL, err);
    if (rc) {
        /* once each: a failed piece's upload is aborted again as its request ends */
        pthread_mutex_lock(&g_pending_mu);
        int i = 0;
        while (i < g_npending && g_pending[i] != num)
            i++;
        if (i == g_npending && g_npending < PENDING_MAX)
            g_pending[g_npending++] = num;
        pthread_mutex_unlock(&g_pending_mu);
    }
    return rc;
}

int store_upload_retry(store_t *s, int *done, an_err *err)
{
    *done = 0;
    int rc = 0;
    pthread_mutex_lock(&g_pending_mu);
    for (int i = 0; i < g_npending;) {
        int64_t num = g_pending[i];
        pthread_mutex_unlock(&g_pending_mu);
        rc = delete_orphans(s, num, NULL, err);
        pthread_mutex_lock(&g_pending_mu);
        if (rc)
            break; /* the disk still refuses: next time */
        g_pending[i] = g_pending[--g_npending];
        (*done)++;
    }
    pthread_mutex_unlock(&g_pending_mu);
    return rc;
}

int store_upload_sweep(store_t *s, int64_t *parts, an_err *err)
{
    int64_t n = 0;
    int rc = delete_orphans(s, -1, &n, err);
    if (parts)
        *parts = n;
    return rc;
}
