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
#include "core/memest.h"
#include "core/csv_rows.h"
#include "core/text.h"
#include "core/upload_check.h"
#include "api/api.h"
#include "util/log.h"

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

/* A text corpus's "vocabulary" as jobs on it show it (spec.data.vocabulary): the stored one,
 * whole, or for a list only its tokenizer and size (a corpus may have thousands of distinct
 * characters, and a list has every data set). JSON null for a corpus stored before schema 8,
 * whose vocabulary was never worked out. NULL when out of memory. */
static cJSON *vocabulary_json(const store_dataset *ds, int whole)
{
    cJSON *v = ds->vocab_json ? cJSON_Parse(ds->vocab_json) : NULL;
    if (!v)
        return ds->vocab_json ? NULL : cJSON_CreateNull();
    if (!whole)
        cJSON_DeleteItemFromObjectCaseSensitive(v, "tokens");
    return v;
}

/* A data set's object (API.md): id, name, rows (null for a text corpus), columns, bytes,
 * created_at, kind, and for a text corpus its characters and vocabulary (`whole`: with its tokens). NULL when out of
 * memory. */
static cJSON *dataset_json(const store_dataset *ds, int whole)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON *cols = ds->columns_json ? cJSON_Parse(ds->columns_json) : NULL;
    int text = ds->columns_json && strcmp(ds->columns_json, "[]") == 0;
    int ok = cJSON_AddItemToObject(o, "id", cJSON_CreateString(ds->id));
    ok &= cJSON_AddItemToObject(o, "name", cJSON_CreateString(ds->name ? ds->name : ""));
    /* a corpus has characters, not rows (the store keeps its count in the same column) */
    ok &= cJSON_AddItemToObject(o, "rows", text ? cJSON_CreateNull()
                                                : cJSON_CreateNumber((double)ds->rows));
    ok &= cJSON_AddItemToObject(o, "columns", cols ? cols : cJSON_CreateArray());
    ok &= cJSON_AddItemToObject(o, "bytes", cJSON_CreateNumber((double)ds->bytes));
    ok &= cJSON_AddItemToObject(o, "created_at", cJSON_CreateString(ds->created_at));
    ok &= cJSON_AddStringToObject(o, "kind", text ? "text" : "csv") != NULL;
    if (ok && text)
        ok &= cJSON_AddNumberToObject(o, "characters", (double)ds->rows) != NULL;
    if (ok && text)
        ok &= cJSON_AddItemToObject(o, "vocabulary", vocabulary_json(ds, whole));
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* ---- POST /v1/datasets: the body streamed to the store ---------------------------------- *
 * The body is taken in pieces of UPLOAD_PIECE bytes. Each full piece is checked and stored
 * on the slow queue while the connection waits (suspended, so MHD reads no more of the
 * socket: the client is held back at the store's pace); the last piece, the end of the
 * check and the data set's row come with the answer. An upload holds one piece and the
 * checker's state (the header, one unfinished record), charged to the memory budget, never
 * the whole body. A refused upload's parts are deleted at once, those of an abandoned one
 * when its connection ends, and any a stop cut short at the next start. */

#define UPLOAD_PIECE ((size_t)4 << 20)
#define UPLOAD_CHARGE (UPLOAD_PIECE + ((uint64_t)1 << 20)) /* the piece + the checker */

typedef struct upload {
    struct api *api;
    char name[72];
    upload_check chk;
    int64_t num;                 /* the data set number reserved in the store; 0 = not yet */
    int64_t idx;                 /* the next part */
    uint64_t total;              /* body bytes taken */
    char *piece;                 /* bytes not stored yet */
    size_t npiece;
    int too_large;               /* the body passed the limit: the rest is discarded */
    int done;                    /* the data set exists */
    uint64_t charge;             /* reserved in the memory budget */
} upload;

static void abort_task(void *arg, store_t *s)
{
    int64_t *num = arg;
    an_err e;
    if (s && store_upload_abort(s, *num, &e) != 0)
        util_log(LOG_WARN, "an abandoned upload's parts could not be deleted yet (tried again "
                 "every second): %s", e.message);
    free(num);
}

/* Loop thread, as the request ends. */
static void upload_free(void *p)
{
    upload *up = p;
    if (!up)
        return;
    if (up->num && !up->done) { /* parts of an upload that did not finish */
        int64_t *num = malloc(sizeof *num);
        if (num) {
            *num = up->num;
            if (http_store_task(up->api, abort_task, num) != 0)
                free(num); /* swept at the next start */
        }
    }
    if (up->charge)
        budget_release(&up->api->sv->mem, up->charge);
    upload_check_free(&up->chk);
    free(up->piece);
    free(up);
}

/* Queue thread: a piece checked and stored; an error becomes the pending answer and the
 * upload's parts go. */
static int store_piece(http_req *r, store_t *s)
{
    upload *up = r->ctx;
    an_err e;
    an_err_clear(&e);
    int rc = 0;
    if (!up->num)
        rc = store_upload_open(s, &up->num, &e);
    if (rc) {
        http_set_pending_store_error(r, rc, "the upload could not be stored", &e);
        return rc;
    }
    /* Like training (--min-free-disk), an upload stops before the disk is that full: one that
     * filled it would leave its committed parts in a WAL that can be neither copied into the
     * database nor deleted from it, until something else frees space. */
    const daemon_opts *o = r->api->sv->opts;
    uint64_t avail = 0;
    if (o->min_free_disk && util_free_disk(o->db, &avail) == 0 &&
        avail < o->min_free_disk + up->npiece) {
        char a[32], m[32];
        http_set_pending_error(r, 503, "unavailable", NULL, "the upload could not be stored: "
                               "the store's file system has %s free, and an upload stops before "
                               "it leaves less than --min-free-disk %s; free some space there, "
                               "then upload again", mem_bytes_text(avail, a, sizeof a),
                               mem_bytes_text(o->min_free_disk, m, sizeof m));
        rc = -ENOSPC;
    } else if ((rc = upload_check_feed(&up->chk, up->piece, up->npiece, &e)) != 0) {
        if (rc == -ENOMEM)
            http_set_pending_error(r, 503, "unavailable", e.field, "%s", e.message);
        else
            http_set_pending_error(r, 400, "invalid_argument", e.field, "%s", e.message);
    } else if ((rc = store_upload_part(s, up->num, up->idx, up->piece, up->npiece, &e)) != 0) {
        http_set_pending_store_error(r, rc, "the upload could not be stored", &e);
    }
    if (rc) {
        an_err ae;
        if (store_upload_abort(s, up->num, &ae) == 0)
            up->num = 0;
        return rc;
    }
    up->idx++;
    up->npiece = 0;
    return 0;
}

static void piece_work(http_req *r, store_t *s)
{
    store_piece(r, s);
}

/* Queue thread: the last piece, the end of the check, and the data set. */
static void finish_work(http_req *r, store_t *s)
{
    upload *up = r->ctx;
    if (up->npiece && store_piece(r, s) != 0)
        return;
    an_err e;
    an_err_clear(&e);
    int64_t rows = 0;
    cJSON *cols = NULL;
    int rc = upload_check_finish(&up->chk, &rows, &cols, &e);
    char *cols_text = NULL;
    if (rc == -ENOMEM || (!rc && !(cols_text = cJSON_PrintUnformatted(cols)))) {
        http_set_pending_error(r, 503, "unavailable", e.field, "%s",
                               rc ? e.message : "out of memory");
        rc = -ENOMEM;
    } else if (rc) {
        http_set_pending_error(r, 400, "invalid_argument", e.field, "%s", e.message);
    }
    cJSON_Delete(cols);
    /* A text's vocabulary goes with it: jobs on it are checked against it at submission. */
    char *vocab_text = NULL;
    if (!rc && up->chk.kind == UPLOAD_TEXT) {
        cJSON *v = upload_check_vocab(&up->chk);
        vocab_text = v ? cJSON_PrintUnformatted(v) : NULL;
        cJSON_Delete(v);
        if (!vocab_text) {
            http_set_pending_error(r, 503, "unavailable", NULL, "out of memory");
            rc = -ENOMEM;
        }
    }
    char id[STORE_ID_LEN];
    if (!rc) {
        rc = store_upload_finish(s, up->num, up->name, (int64_t)up->total, rows, cols_text,
                                 vocab_text, id, &e);
        if (rc == -EEXIST)
            http_set_pending_error(r, 409, "conflict", "name",
                                   "a data set named '%s' exists already", up->name);
        else if (rc)
            http_set_pending_store_error(r, rc, NULL, &e);
    }
    cJSON_free(cols_text);
    cJSON_free(vocab_text);
    if (rc) {
        an_err ae;
        if (store_upload_abort(s, up->num, &ae) == 0)
            up->num = 0;
        return;
    }
    up->done = 1;
    store_dataset ds;
    memset(&ds, 0, sizeof ds);
    if (store_dataset_get(s, id, &ds, &e) != 0) {
        http_set_pending_error(r, 500, "internal", NULL, "%s", e.message);
        return;
    }
    http_set_pending_json(r, 201, dataset_json(&ds, 1));
    store_dataset_free(&ds);
}

int api_upload_begin(http_req *r)
{
    const char *name = http_query(r, "name");
    if (!name || !*name) {
        http_error(r, 400, "invalid_argument", "name",
                   "a data set name is required: POST /v1/datasets?name=NAME");
        return 1;
    }
    size_t n = strlen(name);
    int ok = n <= 64;
    for (size_t i = 0; ok && i < n; i++)
        ok = isalnum((unsigned char)name[i]) || name[i] == '_' || name[i] == '-' || name[i] == '.';
    if (!ok) {
        http_error(r, 400, "invalid_argument", "name",
                   "name must be 1 to 64 letters, digits, '_', '-' or '.', got '%.80s'", name);
        return 1;
    }
    /* A data set is found by its id or by its name (GET /v1/datasets/{id}, a job's data.name):
     * a name of an id's form could hide another data set, or be hidden by it. */
    size_t digits = n > 2 ? strspn(name + 2, "0123456789") : 0;
    if (name[0] == 'd' && name[1] == '_' && digits > 0 && digits == n - 2) {
        http_error(r, 400, "invalid_argument", "name",
                   "'%s' has the form of a data set id (d_ and digits); choose another name", name);
        return 1;
    }
    if (budget_try(&r->api->sv->mem, UPLOAD_CHARGE) != 0) {
        http_error(r, 503, "unavailable", NULL,
                   "the daemon's memory budget (--max-memory) cannot take an upload now; try "
                   "again when jobs or requests have finished");
        return 1;
    }
    upload *up = calloc(1, sizeof *up);
    char *piece = malloc(UPLOAD_PIECE);
    if (!up || !piece) {
        free(up);
        free(piece);
        budget_release(&r->api->sv->mem, UPLOAD_CHARGE);
        http_error(r, 503, "unavailable", NULL, "out of memory");
        return 1;
    }
    up->api = r->api;
    up->charge = UPLOAD_CHARGE;
    up->piece = piece;
    snprintf(up->name, sizeof up->name, "%s", name);
    upload_check_init(&up->chk, upload_kind(r) == 't' ? UPLOAD_TEXT : UPLOAD_CSV);
    r->ctx = up;
    r->ctx_free = upload_free;
    return 0;
}

void api_upload_data(http_req *r, const char *data, size_t *size)
{
    upload *up = r->ctx;
    size_t n = *size;
    if (n == 0) { /* the end of the body: the route's handler answers */
        api_datasets_create(r);
        return;
    }
    if (up->too_large || up->total + n > r->limit) { /* answered 413 at the end */
        up->too_large = 1;
        *size = 0;
        return;
    }
    size_t take = UPLOAD_PIECE - up->npiece < n ? UPLOAD_PIECE - up->npiece : n;
    memcpy(up->piece + up->npiece, data, take);
    up->npiece += take;
    up->total += take;
    *size = n - take; /* MHD hands the rest again once the piece is stored */
    if (up->npiece == UPLOAD_PIECE && http_defer_step(r, piece_work) != 0)
        http_resume_pending(r, 503, http_error_response(
            "unavailable", NULL, "the daemon is busy: the slow request queue is full; try the "
            "upload again shortly"));
}

void api_datasets_create(http_req *r)
{
    upload *up = r->ctx;
    if (up->too_large) {
        http_error(r, 413, "too_large", NULL,
                   "the body is larger than the %zu bytes this endpoint takes", r->limit);
        return;
    }
    if (up->total == 0) {
        if (up->chk.kind == UPLOAD_TEXT)
            http_error(r, 400, "invalid_argument", "text",
                       "a text body (the corpus, UTF-8) was expected, got an empty body");
        else
            http_error(r, 400, "invalid_argument", "csv",
                       "a CSV body with a header row was expected, got an empty body");
        return;
    }
    http_defer_slow(r, finish_work);
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
        cJSON_AddItemToArray(arr, dataset_json(&list[i], 0));
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
    http_reply_json(r, 200, dataset_json(&ds, 1));
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
    if (rc == STORE_EINUSE) { /* the store's message names the job that still uses the set */
        http_error(r, 409, "conflict", "id", "%s", e.message);
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
