/* datasets.c — uploaded data sets: metadata rows plus the text in a table of its own (an
 * upload streamed in pieces keeps them as they came, in dataset_parts: uploads.c).
 * A data set is found by id ("d_000003") or by its unique name, the two ways a job spec can
 * refer to it; deleting one that an unfinished job refers to either way is refused. */
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "store/internal.h"

#define DATASET_MAX_BYTES ((size_t)STORE_DATASET_MAX_BYTES)

#define DS_COLS "num, id, name, rows, columns, bytes, created_at"
#define DS_READ DS_COLS ", vocab" /* vocab: schema 8 on, NULL for CSV and older uploads */

static int row_to_dataset(sqlite3_stmt *st, store_dataset *d)
{
    int oom = 0;
    memset(d, 0, sizeof *d);
    st_col_copy(st, 1, d->id, sizeof d->id);
    d->name = st_col_strdup(st, 2, &oom);
    d->rows = sqlite3_column_int64(st, 3);
    d->columns_json = st_col_strdup(st, 4, &oom);
    d->bytes = sqlite3_column_int64(st, 5);
    st_col_copy(st, 6, d->created_at, sizeof d->created_at);
    d->vocab_json = st_col_strdup(st, 7, &oom);
    if (oom) {
        store_dataset_free(d);
        return -ENOMEM;
    }
    return 0;
}

void store_dataset_free(store_dataset *d)
{
    if (!d)
        return;
    free(d->name);
    free(d->columns_json);
    free(d->vocab_json);
    d->name = d->columns_json = d->vocab_json = NULL;
}

void store_dataset_list_free(store_dataset *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        store_dataset_free(&list[i]);
    free(list);
}

int st_dataset_insert(store_t *s, int64_t num, const char *name, int64_t rows,
                      const char *columns_json, int64_t bytes, char id[STORE_ID_LEN],
                      an_err *err)
{
    sqlite3_stmt *st = NULL;
    char now[24];
    int rc = st_prepare(s, "SELECT 1 FROM datasets WHERE name=?", &st, err);
    if (!rc) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        int r = sqlite3_step(st);
        if (r == SQLITE_ROW)
            rc = an_failc(err, -EEXIST, "name", "a data set named \"%s\" already exists", name);
        else if (r != SQLITE_DONE)
            rc = st_fail(s, r, "checking the data set name", err);
        sqlite3_finalize(st);
    }
    /* The id's number comes with the row, in its transaction: an upload refused on the way
     * (its pieces already numbered by `num`) leaves no gap in the ids. The counter starts at
     * the number of the upload that first uses it, above every id the upload counter gave
     * before it (d_<num>), so no id is ever reused. */
    int64_t idn = 0;
    if (!rc && !(rc = st_prepare(s, "INSERT INTO seq(name, next) VALUES('dataset_id', "
                                    "(SELECT coalesce(max(next), 2) FROM seq WHERE "
                                    "name = 'dataset')) ON CONFLICT(name) DO UPDATE SET "
                                    "next = next + 1 RETURNING next - 1", &st, err))) {
        int r = sqlite3_step(st);
        if (r == SQLITE_ROW) {
            idn = sqlite3_column_int64(st, 0);
            r = sqlite3_step(st);
        }
        if (r != SQLITE_DONE)
            rc = st_fail(s, r, "allocating a data set id", err);
        sqlite3_finalize(st);
    }
    if (!rc) {
        snprintf(id, STORE_ID_LEN, "d_%06" PRId64, idn);
        st_now(now);
        rc = st_prepare(s, "INSERT INTO datasets(" DS_COLS ") VALUES(?,?,?,?,?,?,?)", &st, err);
    }
    if (!rc) {
        sqlite3_bind_int64(st, 1, num);
        sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, rows);
        sqlite3_bind_text(st, 5, columns_json, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 6, bytes);
        sqlite3_bind_text(st, 7, now, -1, SQLITE_STATIC);
        int r = sqlite3_step(st);
        if (r != SQLITE_DONE)
            rc = st_fail(s, r, "inserting a data set", err);
        sqlite3_finalize(st);
    }
    return rc;
}

int store_dataset_create(store_t *s, const char *name, const char *csv, size_t len,
                         int64_t rows, const char *columns_json, char id_out[STORE_ID_LEN],
                         an_err *err)
{
    if (!name || !name[0] || strlen(name) > 200)
        return an_fail(err, "name", "expected a data set name of 1..200 characters, got %s",
                       name && name[0] ? "a longer one" : "none");
    if (!st_json_is(columns_json, cJSON_Array))
        return an_fail(err, "columns", "expected the columns as a JSON array text");
    if (len > DATASET_MAX_BYTES)
        return an_failc(err, -E2BIG, NULL, "data set is %zu bytes; the limit is %zu bytes", len,
                        DATASET_MAX_BYTES);
    if (len && !csv)
        return an_failc(err, -EINVAL, NULL, "expected %zu bytes of CSV, got NULL", len);
    if (rows < 0)
        return an_fail(err, "rows", "expected rows >= 0, got %" PRId64, rows);

    int rc = st_begin(s, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    int64_t num = 0;
    char id[STORE_ID_LEN];
    rc = st_seq_next(s, "dataset", &num, err);
    if (!rc)
        rc = st_dataset_insert(s, num, name, rows, columns_json, (int64_t)len, id, err);
    if (!rc)
        rc = st_prepare(s, "INSERT INTO dataset_text(dataset, text) VALUES(?,?)", &st, err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, num);
        sqlite3_bind_blob64(st, 2, len ? csv : "", len, SQLITE_STATIC);
        int r = sqlite3_step(st);
        if (r != SQLITE_DONE)
            rc = st_fail(s, r, "storing the data set text", err);
        sqlite3_finalize(st);
    }
    rc = st_end(s, rc, err);
    if (rc)
        return rc;
    if (id_out)
        snprintf(id_out, STORE_ID_LEN, "%s", id);
    return 0;
}

/* Runs one statement bound with ?1 = num to completion. */
static int run_num(store_t *s, const char *sql, int64_t num, an_err *err)
{
    sqlite3_stmt *st;
    int rc = st_prepare(s, sql, &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, num);
    int r = sqlite3_step(st);
    if (r != SQLITE_DONE)
        rc = st_fail(s, r, "deleting a data set", err);
    sqlite3_finalize(st);
    return rc;
}

/* Finds a data set row by id or name; *num receives its row number. */
static int find(store_t *s, const char *key, int64_t *num, store_dataset *out, an_err *err)
{
    if (!key)
        return an_failc(err, -EINVAL, NULL, "expected a data set id or name, got NULL");
    sqlite3_stmt *st;
    int rc = st_prepare(s,
                        "SELECT " DS_READ " FROM datasets WHERE id=?1 OR name=?1"
                        " ORDER BY id=?1 DESC LIMIT 1",
                        &st, err);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        *num = sqlite3_column_int64(st, 0);
        if (out && row_to_dataset(st, out))
            rc = an_failc(err, -ENOMEM, NULL, "out of memory reading data set %s", key);
    } else if (r == SQLITE_DONE) {
        rc = an_failc(err, -ENOENT, NULL, "no data set with id or name \"%s\"", key);
    } else {
        rc = st_fail(s, r, "looking up a data set", err);
    }
    sqlite3_finalize(st);
    return rc;
}

int store_dataset_get(store_t *s, const char *id_or_name, store_dataset *out, an_err *err)
{
    int64_t num;
    memset(out, 0, sizeof *out);
    return find(s, id_or_name, &num, out, err);
}

int store_dataset_list(store_t *s, store_dataset **list, size_t *n, an_err *err)
{
    *list = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = st_prepare(s, "SELECT " DS_READ " FROM datasets ORDER BY num", &st, err);
    if (rc)
        return rc;
    size_t cap = 0;
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        void *grown = st_grow(*list, &cap, *n, sizeof **list, 8);
        if (!grown) {
            rc = an_failc(err, -ENOMEM, NULL, "out of memory listing data sets");
            break;
        }
        *list = grown;
        if (row_to_dataset(st, &(*list)[*n])) {
            rc = an_failc(err, -ENOMEM, NULL, "out of memory listing data sets");
            break;
        }
        (*n)++;
    }
    if (!rc && r != SQLITE_DONE)
        rc = st_fail(s, r, "listing data sets", err);
    sqlite3_finalize(st);
    if (rc) {
        store_dataset_list_free(*list, *n);
        *list = NULL;
        *n = 0;
    }
    return rc;
}

/* An uploaded data set's text, put together from its parts in order (uploads.c). */
static int read_parts(store_t *s, int64_t num, int64_t bytes, char **out, size_t *len,
                      an_err *err)
{
    if (bytes < 0 || (uint64_t)bytes > DATASET_MAX_BYTES)
        return an_failc(err, -EPROTO, NULL, "data set records an impossible size %" PRId64,
                        bytes);
    char *c = malloc((size_t)bytes + 1);
    if (!c)
        return an_failc(err, -ENOMEM, NULL, "out of memory for %" PRId64 " bytes of data", bytes);
    sqlite3_stmt *st;
    int rc = st_prepare(s, "SELECT data FROM dataset_parts WHERE dataset=? ORDER BY idx", &st,
                        err);
    size_t off = 0;
    int r = SQLITE_DONE;
    if (!rc) {
        sqlite3_bind_int64(st, 1, num);
        while ((r = sqlite3_step(st)) == SQLITE_ROW) {
            size_t n = (size_t)sqlite3_column_bytes(st, 0);
            if (n > (size_t)bytes - off) {
                rc = an_failc(err, -EPROTO, NULL, "data set parts exceed its recorded %" PRId64
                              " bytes", bytes);
                break;
            }
            if (n)
                memcpy(c + off, sqlite3_column_blob(st, 0), n);
            off += n;
        }
        if (!rc && r != SQLITE_DONE)
            rc = st_fail(s, r, "reading a data set", err);
        sqlite3_finalize(st);
    }
    if (!rc && off != (size_t)bytes)
        rc = an_failc(err, -EPROTO, NULL, "data set parts hold %zu of its %" PRId64 " bytes",
                      off, bytes);
    if (rc) {
        free(c);
        return rc;
    }
    c[off] = '\0';
    *out = c;
    *len = off;
    return 0;
}

int store_dataset_text(store_t *s, const char *id_or_name, char **csv, size_t *len,
                       an_err *err)
{
    *csv = NULL;
    *len = 0;
    int rc = st_exec(s, "BEGIN", "starting a read transaction", err);
    if (rc)
        return rc;
    int64_t num;
    store_dataset d;
    memset(&d, 0, sizeof d);
    sqlite3_stmt *st = NULL;
    rc = find(s, id_or_name, &num, &d, err);
    if (!rc)
        rc = st_prepare(s, "SELECT text FROM dataset_text WHERE dataset=?", &st, err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, num);
        int r = sqlite3_step(st);
        if (r == SQLITE_ROW) {
            const void *p = sqlite3_column_blob(st, 0);
            size_t n = (size_t)sqlite3_column_bytes(st, 0);
            char *c = malloc(n + 1);
            if (!c) {
                rc = an_failc(err, -ENOMEM, NULL, "out of memory for %zu bytes of CSV", n);
            } else {
                if (n)
                    memcpy(c, p, n);
                c[n] = '\0';
                *csv = c;
                *len = n;
            }
        } else if (r == SQLITE_DONE) { /* an upload streamed into parts */
            rc = read_parts(s, num, d.bytes, csv, len, err);
        } else {
            rc = st_fail(s, r, "reading a data set", err);
        }
        sqlite3_finalize(st);
    }
    store_dataset_free(&d);
    st_rollback(s);
    return rc;
}

int store_dataset_delete(store_t *s, const char *id_or_name, an_err *err)
{
    int rc = st_begin(s, err);
    if (rc)
        return rc;
    store_dataset d;
    int64_t num = 0;
    sqlite3_stmt *st = NULL;
    memset(&d, 0, sizeof d);
    rc = find(s, id_or_name, &num, &d, err);
    if (!rc)
        rc = st_prepare(s,
                        "SELECT id, state FROM jobs WHERE dataset_ref IN (?1, ?2)"
                        " AND state IN (0, 1, 2) ORDER BY num LIMIT 1",
                        &st, err);
    if (!rc) {
        sqlite3_bind_text(st, 1, d.id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, d.name, -1, SQLITE_STATIC);
        int r = sqlite3_step(st);
        if (r == SQLITE_ROW)
            /* named as the caller named it (id or name), with the job that holds it */
            rc = an_failc(err, STORE_EINUSE, NULL,
                          "data set %s is used by job %s, which has not finished (it is %s)",
                          id_or_name, (const char *)sqlite3_column_text(st, 0),
                          store_state_name((store_job_state)sqlite3_column_int(st, 1)));
        else if (r != SQLITE_DONE)
            rc = st_fail(s, r, "checking data set references", err);
        sqlite3_finalize(st);
    }
    if (!rc)
        rc = run_num(s, "DELETE FROM dataset_parts WHERE dataset=?1", num, err);
    if (!rc) {
        rc = st_prepare(s, "DELETE FROM dataset_text WHERE dataset=?1", &st, err);
        if (!rc) {
            sqlite3_bind_int64(st, 1, num);
            int r = sqlite3_step(st);
            if (r != SQLITE_DONE)
                rc = st_fail(s, r, "deleting a data set", err);
            sqlite3_finalize(st);
        }
    }
    if (!rc) {
        rc = st_prepare(s, "DELETE FROM datasets WHERE num=?1", &st, err);
        if (!rc) {
            sqlite3_bind_int64(st, 1, num);
            int r = sqlite3_step(st);
            if (r != SQLITE_DONE)
                rc = st_fail(s, r, "deleting a data set", err);
            sqlite3_finalize(st);
        }
    }
    store_dataset_free(&d);
    return st_end(s, rc, err);
}

int st_migrate_dataset_vocab(store_t *s, an_err *err)
{
    return st_add_column(s, "datasets", "vocab", "TEXT", err);
}
