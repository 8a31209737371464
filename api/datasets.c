/* datasets — POST/GET/DELETE /v1/datasets: uploaded CSV data sets. The upload is checked and
 * stored on the libuv thread pool (a 256 MiB file must not stall the loop). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "api/routes.h"
#include "core/csv.h"
#include "core/csv_rows.h"
#include "core/text.h"
#include "daemon/daemon.h"

/* Checks the upload in one pass, a row at a time (memory for one row and the header, not a
 * table of every cell): the CSV grammar, the same number of fields in every row, and a
 * number in every cell (the API takes numeric columns); errors name the row, line and
 * column. */
static int csv_check(const char *text, size_t len, int64_t *rows, cJSON **cols, an_err *e)
{
    csv_reader rd;
    int rc = csv_reader_init(&rd, text, len, "csv", e);
    if (rc)
        return rc;
    cJSON *names = NULL;
    char **hdr = NULL;
    int ncols = -1;
    long long n = 0;
    while ((rc = csv_next(&rd, e)) == 1) {
        rc = 0;
        if (ncols < 0) {
            ncols = rd.nfields;
            if (ncols > CSV_MAX_COLS) {
                rc = an_fail(e, "csv", "the header has %d columns; at most %d are supported",
                             ncols, CSV_MAX_COLS);
                break;
            }
            hdr = calloc((size_t)ncols, sizeof *hdr);
            names = cJSON_CreateArray();
            for (int c = 0; hdr && names && c < ncols; c++) {
                const char *f = csv_field(&rd, c);
                while (*f == ' ' || *f == '\t')
                    f++;
                size_t k = strlen(f);
                while (k && (f[k - 1] == ' ' || f[k - 1] == '\t'))
                    k--;
                hdr[c] = strndup(f, k);
                if (!hdr[c] || !cJSON_AddItemToArray(names, cJSON_CreateString(hdr[c])))
                    rc = -ENOMEM;
            }
            if (!hdr || !names || rc) {
                rc = an_failc(e, -ENOMEM, "csv", "out of memory for the header");
                break;
            }
            if ((rc = csv_check_header((const char *const *)hdr, ncols, "csv", e)))
                break;
            continue;
        }
        n++;
        if (rd.nfields != ncols) {
            rc = an_fail(e, "csv", "row %lld (line %lld) has %d fields; the header has %d", n,
                         rd.rec_line, rd.nfields, ncols);
            break;
        }
        for (int c = 0; c < ncols && !rc; c++) {
            double v;
            char field[128];
            snprintf(field, sizeof field, "csv[%lld].%.40s", n, hdr[c]);
            rc = csv_cell_number(csv_field(&rd, c), n, rd.rec_line, hdr[c], &v, field, e);
        }
        if (rc)
            break;
    }
    csv_reader_free(&rd);
    for (int c = 0; hdr && c < ncols; c++)
        free(hdr[c]);
    free(hdr);
    if (!rc && ncols < 0)
        rc = an_fail(e, "csv", "the CSV text is empty: expected a header row and data rows");
    if (!rc && n < 1)
        rc = an_fail(e, "csv", "the CSV text has a header but no data rows");
    if (rc) {
        cJSON_Delete(names);
        return rc;
    }
    *rows = n;
    *cols = names;
    return 0;
}

/* ---- text corpora (API.md, "Datasets as text") ----------------------------------------- *
 * A body sent as text/plain is a corpus for {"type": "text", "dataset": …}: it must be UTF-8
 * without NUL (what the char tokenizer takes). It is stored as a data set with no columns
 * (no CSV has none) and its character count as rows; the answers say "kind": "text". */

/* The upload's kind, read on the loop thread: 't' for text/plain, 'c' for CSV. */
static char upload_kind(http_req *r)
{
    const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
    if (!ct)
        return 'c';
    while (*ct == ' ')
        ct++;
    return strncasecmp(ct, "text/plain", 10) == 0 && (ct[10] == 0 || ct[10] == ';' ||
                                                     ct[10] == ' ') ? 't' : 'c';
}

/* A data set's object (API.md): id, name, rows, columns, bytes, created_at, kind, and for a
 * text corpus its characters. NULL when out of memory. */
static cJSON *dataset_json(const store_dataset *ds)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON *cols = ds->columns_json ? cJSON_Parse(ds->columns_json) : NULL;
    int text = ds->columns_json && strcmp(ds->columns_json, "[]") == 0;
    int ok = cJSON_AddItemToObject(o, "id", cJSON_CreateString(ds->id));
    ok &= cJSON_AddItemToObject(o, "name", cJSON_CreateString(ds->name ? ds->name : ""));
    ok &= cJSON_AddItemToObject(o, "rows", cJSON_CreateNumber((double)ds->rows));
    ok &= cJSON_AddItemToObject(o, "columns", cols ? cols : cJSON_CreateArray());
    ok &= cJSON_AddItemToObject(o, "bytes", cJSON_CreateNumber((double)ds->bytes));
    ok &= cJSON_AddItemToObject(o, "created_at", cJSON_CreateString(ds->created_at));
    ok &= cJSON_AddStringToObject(o, "kind", text ? "text" : "csv") != NULL;
    if (ok && text)
        ok &= cJSON_AddNumberToObject(o, "characters", (double)ds->rows) != NULL;
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static int text_check(const char *body, size_t len, int64_t *chars, an_err *e)
{
    text_vocab v;
    int32_t *tok = NULL;
    size_t n = 0;
    int rc = text_tokenize(body, len, TEXT_CHAR, 2, "text", &v, &tok, &n, e);
    if (rc)
        return rc;
    free(tok);
    text_vocab_free(&v);
    *chars = (int64_t)n;
    return 0;
}

static void create_work(http_req *r, store_t *s)
{
    int64_t rows = 0;
    cJSON *cols = NULL;
    const char *name = (const char *)r->ctx + 1;
    int text = *(const char *)r->ctx == 't';
    an_err e;
    an_err_clear(&e);
    int crc = text ? text_check(r->body, r->len, &rows, &e)
                   : csv_check(r->body, r->len, &rows, &cols, &e);
    if (!crc && text && !(cols = cJSON_CreateArray()))
        crc = an_failc(&e, -ENOMEM, "text", "out of memory");
    if (crc == -ENOMEM) {
        http_set_pending_error(r, 503, "unavailable", e.field, "%s", e.message);
        return;
    }
    if (crc != 0) {
        http_set_pending_error(r, 400, "invalid_argument", e.field, "%s", e.message);
        return;
    }
    char *cols_text = cJSON_PrintUnformatted(cols);
    cJSON_Delete(cols);
    char id[STORE_ID_LEN];
    int rc = cols_text ? store_dataset_create(s, name, r->body, r->len, rows, cols_text, id, &e)
                       : -ENOMEM;
    cJSON_free(cols_text);
    if (rc == -EEXIST) {
        http_set_pending_error(r, 409, "conflict", "name", "a data set named '%s' exists already",
                               name);
        return;
    }
    if (rc) {
        http_set_pending_store_error(r, rc, NULL, &e);
        return;
    }
    store_dataset ds;
    memset(&ds, 0, sizeof ds);
    if (store_dataset_get(s, id, &ds, &e) != 0) {
        http_set_pending_error(r, 500, "internal", NULL, "%s", e.message);
        return;
    }
    http_set_pending_json(r, 201, dataset_json(&ds));
    store_dataset_free(&ds);
}

void api_datasets_create(http_req *r)
{
    const char *name = http_query(r, "name");
    if (!name || !*name) {
        http_error(r, 400, "invalid_argument", "name",
                   "a data set name is required: POST /v1/datasets?name=NAME");
        return;
    }
    size_t n = strlen(name);
    int ok = n <= 64;
    for (size_t i = 0; ok && i < n; i++)
        ok = isalnum((unsigned char)name[i]) || name[i] == '_' || name[i] == '-' || name[i] == '.';
    if (!ok) {
        http_error(r, 400, "invalid_argument", "name",
                   "name must be 1 to 64 letters, digits, '_', '-' or '.', got '%.80s'", name);
        return;
    }
    if (!r->body || r->len == 0) {
        http_error(r, 400, "invalid_argument", "csv", "a CSV body with a header row was expected, got an empty body");
        return;
    }
    char *ctx = malloc(n + 2);
    if (ctx) {
        ctx[0] = upload_kind(r);
        memcpy(ctx + 1, name, n + 1);
    }
    r->ctx = ctx;
    r->ctx_free = free;
    if (!r->ctx) {
        http_error(r, 500, "internal", NULL, "out of memory");
        return;
    }
    http_defer_slow(r, create_work);
}

static void list_work(http_req *r, store_t *s)
{
    store_dataset *list = NULL;
    size_t n = 0;
    an_err e;
    int rc = store_dataset_list(s, &list, &n, &e);
    if (rc) {
        http_store_error(r, rc, NULL, &e);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "datasets");
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, dataset_json(&list[i]));
    store_dataset_list_free(list, n);
    http_reply_json(r, 200, o);
}

static void get_work(http_req *r, store_t *s)
{
    const char *id = r->m.params[0];
    store_dataset ds;
    memset(&ds, 0, sizeof ds);
    an_err e;
    int rc = store_dataset_get(s, id, &ds, &e);
    if (rc == -ENOENT) {
        http_error(r, 404, "not_found", "id", "no data set with id or name '%.64s'", id);
        return;
    }
    if (rc) {
        http_store_error(r, rc, NULL, &e);
        return;
    }
    http_reply_json(r, 200, dataset_json(&ds));
    store_dataset_free(&ds);
}

static void delete_work(http_req *r, store_t *s)
{
    const char *id = r->m.params[0];
    an_err e;
    int rc = store_dataset_delete(s, id, &e);
    if (rc == -ENOENT) {
        http_error(r, 404, "not_found", "id", "no data set with id or name '%.64s'", id);
        return;
    }
    if (rc == STORE_EINUSE) {
        http_error(r, 409, "conflict", "id", "data set %s is used by a job that has not finished",
                   id);
        return;
    }
    if (rc) {
        http_store_error(r, rc, NULL, &e);
        return;
    }
    http_queue(r, 204, MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT));
}

/* Reads and deletes run on the request queues: the loop never waits on the store. A delete
 * frees up to 256 MiB of text, so it is slow work. */
void api_datasets_list(http_req *r)
{
    http_defer(r, list_work);
}

void api_datasets_get(http_req *r)
{
    http_defer(r, get_work);
}

void api_datasets_delete(http_req *r)
{
    http_defer_slow(r, delete_work);
}
