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
#include "daemon/daemon.h"

/* Parses the upload and checks that every cell is a number (the API takes numeric columns);
 * errors name the row, line and column. */
static int csv_check(const char *text, size_t len, int64_t *rows, cJSON **cols, an_err *e)
{
    csv_table t;
    memset(&t, 0, sizeof t);
    int rc = csv_parse(text, len, &t, "csv", e);
    if (rc)
        return rc;
    for (long long i = 0; i < t.nrows; i++)
        for (int c = 0; c < t.ncols; c++) {
            double v;
            char field[128];
            snprintf(field, sizeof field, "csv[%lld].%.40s", i + 1, t.names[c]);
            rc = csv_number(&t, i, c, &v, field, e);
            if (rc) {
                csv_free(&t);
                return rc;
            }
        }
    *rows = t.nrows;
    *cols = cJSON_CreateArray();
    for (int c = 0; c < t.ncols; c++)
        cJSON_AddItemToArray(*cols, cJSON_CreateString(t.names[c]));
    csv_free(&t);
    return 0;
}

static void create_work(http_req *r, store_t *s)
{
    int64_t rows = 0;
    cJSON *cols = NULL;
    const char *name = r->ctx;
    an_err e;
    an_err_clear(&e);
    if (csv_check(r->body, r->len, &rows, &cols, &e) != 0) {
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
        const char *code;
        unsigned st = http_status_of_store(rc, &code);
        http_set_pending_error(r, st, code, NULL, "%s", e.message);
        return;
    }
    store_dataset ds;
    memset(&ds, 0, sizeof ds);
    if (store_dataset_get(s, id, &ds, &e) != 0) {
        http_set_pending_error(r, 500, "internal", NULL, "%s", e.message);
        return;
    }
    http_set_pending_json(r, 201, store_dataset_to_json(&ds));
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
    r->ctx = strdup(name);
    r->ctx_free = free;
    if (!r->ctx) {
        http_error(r, 500, "internal", NULL, "out of memory");
        return;
    }
    http_defer(r, create_work);
}

void api_datasets_list(http_req *r)
{
    store_dataset *list = NULL;
    size_t n = 0;
    an_err e;
    int rc = store_dataset_list(&r->d->store, &list, &n, &e);
    if (rc) {
        const char *code;
        unsigned st = http_status_of_store(rc, &code);
        http_error(r, st, code, NULL, "%s", e.message);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "datasets");
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, store_dataset_to_json(&list[i]));
    store_dataset_list_free(list, n);
    http_reply_json(r, 200, o);
}

void api_datasets_get(http_req *r)
{
    const char *id = r->m.params[0];
    store_dataset ds;
    memset(&ds, 0, sizeof ds);
    an_err e;
    int rc = store_dataset_get(&r->d->store, id, &ds, &e);
    if (rc == -ENOENT) {
        http_error(r, 404, "not_found", "id", "no data set with id or name '%.64s'", id);
        return;
    }
    if (rc) {
        const char *code;
        unsigned st = http_status_of_store(rc, &code);
        http_error(r, st, code, NULL, "%s", e.message);
        return;
    }
    http_reply_json(r, 200, store_dataset_to_json(&ds));
    store_dataset_free(&ds);
}

void api_datasets_delete(http_req *r)
{
    const char *id = r->m.params[0];
    an_err e;
    int rc = store_dataset_delete(&r->d->store, id, &e);
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
        const char *code;
        unsigned st = http_status_of_store(rc, &code);
        http_error(r, st, code, NULL, "%s", e.message);
        return;
    }
    http_queue(r, 204, MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT));
}
