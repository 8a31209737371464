/* loader — jobs out of the store for training and for inference; the model cache. */
#include "jobs/loader.h"

#include "core/blob_pick.h"
#include "core/data_idx.h"
#include "core/generate.h"
#include "jobs/fashion.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int model_cache_init(model_cache *c, size_t cap)
{
    memset(c, 0, sizeof *c);
    c->cap = cap;
    return pthread_mutex_init(&c->mu, NULL) ? -ENOMEM : 0;
}

static void ref_free(model_ref *r)
{
    if (r->budget && r->charge)
        budget_release(r->budget, r->charge);
    infer_free(r->f);
    pthread_mutex_destroy(&r->run);
    free(r);
}

/* Takes slot k out of the table (cache lock held); frees it unless someone uses it. */
static void evict(model_cache *c, int k)
{
    model_ref *r = c->slot[k];
    c->slot[k] = NULL;
    c->bytes -= infer_bytes(r->f);
    r->cached = 0;
    if (r->refs == 0)
        ref_free(r);
}

void model_cache_free(model_cache *c)
{
    for (int k = 0; k < MODEL_CACHE_ENTRIES; k++)
        if (c->slot[k])
            evict(c, k);
    pthread_mutex_destroy(&c->mu);
}

void model_cache_drop(model_cache *c, const char *id)
{
    pthread_mutex_lock(&c->mu);
    for (int k = 0; k < MODEL_CACHE_ENTRIES; k++)
        if (c->slot[k] && strcmp(c->slot[k]->id, id) == 0)
            evict(c, k);
    pthread_mutex_unlock(&c->mu);
}

void model_cache_job_deleted(model_cache *c, const char *id)
{
    model_cache_drop(c, id);
    pthread_mutex_lock(&c->mu);
    uint64_t n = atomic_load(&c->deletions);
    snprintf(c->gone[n % MODEL_CACHE_GONE], STORE_ID_LEN, "%s", id);
    atomic_store(&c->deletions, n + 1);
    pthread_mutex_unlock(&c->mu);
}

uint64_t model_cache_deletions(model_cache *c)
{
    return atomic_load(&c->deletions);
}

int model_cache_deleted(model_cache *c, const char *id, uint64_t *seen)
{
    if (atomic_load(&c->deletions) == *seen)
        return 0;
    int hit = 0;
    pthread_mutex_lock(&c->mu);
    uint64_t n = atomic_load(&c->deletions);
    /* more deletions than the ring holds since the last look: the oldest are not seen (a
     * look comes every token, so that takes 64 deletions within one) */
    for (uint64_t k = n - *seen > MODEL_CACHE_GONE ? n - MODEL_CACHE_GONE : *seen; k < n && !hit;
         k++)
        hit = strcmp(c->gone[k % MODEL_CACHE_GONE], id) == 0;
    *seen = n;
    pthread_mutex_unlock(&c->mu);
    return hit;
}

int model_cache_shrink(model_cache *c)
{
    int n = 0;
    pthread_mutex_lock(&c->mu);
    for (int k = 0; k < MODEL_CACHE_ENTRIES; k++)
        if (c->slot[k] && c->slot[k]->refs == 0) {
            evict(c, k);
            n++;
        }
    pthread_mutex_unlock(&c->mu);
    return n;
}

int loader_spec(const store_job *row, job_spec *spec, an_err *err)
{
    if (!row->spec_json)
        return an_failc(err, -EPROTO, "spec", "job %s has no stored spec", row->id);
    int rc = job_spec_parse_stored(row->spec_json, strlen(row->spec_json), spec, err);
    if (rc && rc != -ENOMEM) {
        an_err inner = *err;
        an_failc(err, -EPROTO, inner.field, "the stored spec of job %s is unreadable: %s",
                 row->id, inner.message);
        return -EPROTO;
    }
    return rc;
}

const char *loader_dataset_ref(const job_spec *spec, const char *ref)
{
    if (ref && ref[0])
        return ref;
    return spec->data.dataset_id[0] ? spec->data.dataset_id : spec->data.name;
}

int loader_data(store_t *s, const job_spec *spec, const char *ref, char **csv, size_t *len,
                an_err *err)
{
    *csv = NULL;
    *len = 0;
    if (data_is_fashion(&spec->data))
        return fashion_read(csv, len, err);
    if (spec->data.type != DATA_DATASET &&
        (spec->data.type != DATA_TEXT || spec->data.text || spec->data.text_builtin))
        return 0;
    const char *named = loader_dataset_ref(spec, NULL);
    ref = loader_dataset_ref(spec, ref);
    int rc = store_dataset_text(s, ref, csv, len, err);
    if (rc == -ENOENT)
        return an_failc(err, -ENOENT, "data", "the job's data set '%s' (%s) has been deleted%s; "
                        "this job cannot go on with other data: submit a new job naming the "
                        "data set (POST /v1/datasets?name=… to upload it)", named, ref,
                        strcmp(named, ref) ? " (a set uploaded since under its name is another "
                                             "one)" : "");
    return rc;
}

/* The slot of (id, step, created), or -1 (cache lock held). */
static int find(model_cache *c, const char *id, int64_t step, const char *created)
{
    for (int k = 0; k < MODEL_CACHE_ENTRIES; k++) {
        model_ref *r = c->slot[k];
        if (r && r->step == step && strcmp(r->id, id) == 0 && strcmp(r->created_at, created) == 0)
            return k;
    }
    return -1;
}

/* Puts r in the table when it fits, evicting the least recently used (cache lock held). */
static void insert(model_cache *c, model_ref *r)
{
    size_t b = infer_bytes(r->f);
    if (b > c->cap)
        return;
    for (;;) {
        int empty = -1, lru = -1;
        for (int k = 0; k < MODEL_CACHE_ENTRIES; k++) {
            if (!c->slot[k])
                empty = empty < 0 ? k : empty;
            else if (lru < 0 || c->slot[k]->used < c->slot[lru]->used)
                lru = k;
        }
        if (empty >= 0 && c->bytes + b <= c->cap) {
            c->slot[empty] = r;
            c->bytes += b;
            r->cached = 1;
            return;
        }
        if (lru < 0)
            return;
        evict(c, lru);
    }
}

/* A checkpoint read for inference: each chunk goes through the picker; what it holds (the
 * chunk being read, the sections kept so far) is charged to the budget as it grows. */
typedef struct pick_ctx {
    blob_picker p;
    membudget *budget;
    uint64_t charged;            /* reserved in the budget so far */
    uint64_t piece;              /* the largest chunk read */
} pick_ctx;

static int pick_charge(pick_ctx *pc, uint64_t want, an_err *err)
{
    if (!pc->budget || want <= pc->charged)
        return 0;
    if (budget_try(pc->budget, want - pc->charged) != 0) {
        char t[32];
        return an_failc(err, -EAGAIN, "", "the daemon's memory budget (--max-memory) cannot "
                        "take %s more to read the checkpoint now; try again later",
                        mem_bytes_text(want - pc->charged, t, sizeof t));
    }
    pc->charged = want;
    return 0;
}

static int pick_sink(void *ctx, const void *data, size_t n, an_err *err)
{
    pick_ctx *pc = ctx;
    if (n > pc->piece) /* the store's buffer of one chunk */
        pc->piece = n;
    int rc = pick_charge(pc, pc->piece + pc->p.kept_bytes, err);
    if (!rc)
        rc = blob_pick_feed(&pc->p, data, n, err);
    if (!rc) /* the sections this chunk began to keep */
        rc = pick_charge(pc, pc->piece + pc->p.kept_bytes, err);
    return rc;
}

/* The error of a step without a checkpoint, naming the steps that have one. */
static int no_checkpoint(store_t *s, const char *id, int64_t at, an_err *err)
{
    char have[240];
    store_checkpoint_steps_text(s, id, have, sizeof have);
    return an_failc(err, -ENOENT, "step", "job %s has no checkpoint at step %lld%s%s%s", id,
                    (long long)at, have[0] ? " (" : "", have, have[0] ? ")" : "");
}

/* A cached model of (row, at), held for the caller, when the store still has its checkpoint:
 * retention (keep_last, keep_best) or a rewind deletes checkpoints without telling the cache,
 * and a model must answer only for a checkpoint a load would find. 1 with *out set, 0 when
 * nothing is cached, or the error (its entry then leaves the cache). */
static int cached(model_cache *c, store_t *s, const store_job *row, int64_t at,
                  model_ref **out, an_err *err)
{
    pthread_mutex_lock(&c->mu);
    int k = find(c, row->id, at, row->created_at);
    model_ref *r = k >= 0 ? c->slot[k] : NULL;
    if (r)
        r->refs++; /* kept while the store is asked */
    pthread_mutex_unlock(&c->mu);
    if (!r)
        return 0;
    int rc = store_checkpoint_exists(s, row->id, at, err);
    pthread_mutex_lock(&c->mu);
    if (rc == 0) {
        r->used = ++c->clock;
        c->hits++;
    } else if (rc == -ENOENT) {
        c->misses++;
        for (k = 0; k < MODEL_CACHE_ENTRIES; k++)
            if (c->slot[k] == r)
                evict(c, k);
    }
    pthread_mutex_unlock(&c->mu);
    if (rc == 0) {
        *out = r;
        return 1;
    }
    model_cache_release(c, r);
    return rc == -ENOENT ? no_checkpoint(s, row->id, at, err) : rc;
}

int loader_model(model_cache *c, store_t *s, const store_job *row, int64_t step,
                 model_ref **out, an_err *err)
{
    *out = NULL;
    int64_t at = step >= 0 ? step : row->last_checkpoint_step;
    if (at < 0)
        return an_failc(err, -ENOENT, "step", "job %s has no checkpoint yet", row->id);
    int rc = cached(c, s, row, at, out, err);
    if (rc)
        return rc < 0 ? rc : 0;
    pthread_mutex_lock(&c->mu);
    c->misses++;
    pthread_mutex_unlock(&c->mu);

    job_spec spec;
    rc = loader_spec(row, &spec, err);
    if (rc)
        return rc;
    /* The model for as long as it lives; while it loads, one stored chunk of the checkpoint
     * and the sections inference keeps (parameters, input statistics, vocabulary): never the
     * optimizer state, which is most of an Adam checkpoint. */
    uint64_t model_bytes = infer_bytes_estimate(&spec);
    if (c->budget && budget_try(c->budget, model_bytes) != 0 &&
        (model_cache_shrink(c) == 0 || budget_try(c->budget, model_bytes) != 0)) {
        char t[32];
        job_spec_free(&spec);
        return an_failc(err, -EAGAIN, "", "the daemon's memory budget (--max-memory) cannot take "
                        "a %s model now; try again when jobs or requests have finished",
                        mem_bytes_text(model_bytes, t, sizeof t));
    }
    pick_ctx pc = {.budget = c->budget};
    blob_pick_init(&pc.p, INFER_SECTIONS);
    size_t len = 0;
    int64_t got = at;
    rc = store_checkpoint_read_each(s, row->id, at, pick_sink, &pc, &len, &got, err);
    if (rc == -ENOENT)
        rc = no_checkpoint(s, row->id, at, err);
    blob_view v;
    if (rc == 0)
        rc = blob_pick_finish(&pc.p, &v, err);
    model_ref *r = NULL;
    if (rc == 0) {
        r = calloc(1, sizeof *r);
        if (!r)
            rc = an_failc(err, -ENOMEM, "", "out of memory");
    }
    if (rc == 0 && pthread_mutex_init(&r->run, NULL) != 0) {
        free(r);
        r = NULL;
        rc = an_failc(err, -ENOMEM, "", "out of memory");
    }
    if (rc == 0) {
        rc = infer_create_view(&r->f, &spec, &v, err);
        if (rc) {
            pthread_mutex_destroy(&r->run);
            free(r);
            r = NULL;
        }
    }
    blob_pick_free(&pc.p);
    job_spec_free(&spec);
    if (c->budget)
        budget_release(c->budget, pc.charged + (rc ? model_bytes : 0));
    if (rc)
        return rc;
    r->budget = c->budget;
    r->charge = c->budget ? model_bytes : 0;
    snprintf(r->id, sizeof r->id, "%s", row->id);
    snprintf(r->created_at, sizeof r->created_at, "%s", row->created_at);
    r->step = got;
    r->refs = 1;
    pthread_mutex_lock(&c->mu);
    r->used = ++c->clock;
    if (find(c, r->id, r->step, r->created_at) < 0) /* another request may have loaded it */
        insert(c, r);
    pthread_mutex_unlock(&c->mu);
    *out = r;
    return 0;
}

int loader_gpt_check(model_ref *r, an_err *err)
{
    int rc = r->finite ? 0 : gen_weights_check(r->f->g, err);
    r->finite = rc == 0;
    return rc;
}

void model_cache_release(model_cache *c, model_ref *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&c->mu);
    int gone = --r->refs == 0 && !r->cached;
    pthread_mutex_unlock(&c->mu);
    if (gone)
        ref_free(r);
}
