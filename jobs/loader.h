/* loader — one way to load a job from the store, for the worker that trains it and for the
 * requests that read its model (weights, predict).
 *
 * Training needs the spec and the data; a request on a trained model needs the spec and one
 * checkpoint's parameters only (core/infer.h), never the data set or the optimizer state, so
 * a finished job keeps its weights and predictions after its data set is deleted. The
 * checkpoint is read 1 MiB at a time through core/blob_pick.h, which keeps the parameters and
 * the small sections inference needs and checks the checksum over every byte: a load holds
 * the model and its parameters once more, never the whole checkpoint (three times the
 * parameters for Adam), and charges the daemon's budget for what it holds as it grows. Loaded
 * models stay in a small cache keyed by (job, step, job creation time) and bounded both in
 * entries and in bytes; an entry in use is never freed under its user. Retention and rewinds
 * delete checkpoints without telling the cache, so a hit first asks the store whether the
 * checkpoint is still there (two indexed reads): a model never answers for one that is gone. */
#ifndef ANNEALD_LOADER_H
#define ANNEALD_LOADER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/err.h"
#include "core/infer.h"
#include "jobs/budget.h"
#include "store/store.h"

#define MODEL_CACHE_ENTRIES 4

typedef struct model_ref {
    char id[STORE_ID_LEN];
    char created_at[24];
    int64_t step;
    infer *f;
    int refs;                 /* users holding it (cache lock) */
    int cached;               /* still in the cache's table */
    uint64_t used;            /* LRU stamp */
    membudget *budget;        /* where charge is reserved (NULL: nowhere) */
    uint64_t charge;          /* bytes reserved in the budget while it lives */
    pthread_mutex_t run;      /* serialises forward passes (shared activations) */
    int finite;               /* a gpt's weights were found finite (under run) */
} model_ref;

#define MODEL_CACHE_GONE 64   /* deleted jobs remembered for the models in use */

typedef struct model_cache {
    pthread_mutex_t mu;
    model_ref *slot[MODEL_CACHE_ENTRIES];
    size_t bytes, cap;        /* bytes of the cached models, at most cap */
    uint64_t clock;
    uint64_t hits, misses;
    membudget *budget;        /* models are admitted against it (NULL: no budget) */
    /* The latest deleted jobs (a ring, under mu), so that a user of one of their models,
     * cached or not, learns of it: deletions counts them, read without the lock. */
    char gone[MODEL_CACHE_GONE][STORE_ID_LEN];
    atomic_uint_fast64_t deletions;
} model_cache;

/* cap: the most bytes the cached models may hold together (a larger model is loaded for its
 * request and freed after it). */
int model_cache_init(model_cache *c, size_t cap);
void model_cache_free(model_cache *c);

/* Frees every cached model nobody is using (giving their memory back to the budget);
 * returns how many. */
int model_cache_shrink(model_cache *c);

/* Forgets every cached model of job `id` (deleted or rewound); users keep theirs. */
void model_cache_drop(model_cache *c, const char *id);

/* Job `id` was deleted: model_cache_drop, and it is remembered for model_cache_deleted. */
void model_cache_job_deleted(model_cache *c, const char *id);

/* Deletions so far (to start model_cache_deleted's count from, before loading a model). */
uint64_t model_cache_deletions(model_cache *c);

/* 1 when job `id` was deleted after the first *seen deletions (*seen becomes the count now):
 * a user of its model stops. An atomic load while nothing is deleted. */
int model_cache_deleted(model_cache *c, const char *id, uint64_t *seen);

/* The parsed spec of a stored job; a spec that does not parse fails naming its field. */
int loader_spec(const store_job *row, job_spec *spec, an_err *err);

/* The CSV text of the job's uploaded data set (NULL for other data types): the one stored as
 * `ref` (the job row's dataset_ref, the set's id since it was submitted; NULL or a name from
 * an older store: the spec's name). A data set that is gone, or deleted and uploaded again
 * under its name, fails with -ENOENT, field "data", naming it and what to do. */
int loader_data(store_t *s, const job_spec *spec, const char *ref, char **csv, size_t *len,
                an_err *err);

/* The data set a job uses: `ref` (its row's dataset_ref) when given, else the spec's id or
 * name. */
const char *loader_dataset_ref(const job_spec *spec, const char *ref);

/* The model of job `row` at checkpoint `step` (< 0: its latest), from the cache or loaded.
 * -ENOENT (field "step") without such a checkpoint (also for a cached model whose checkpoint
 * was deleted since: it leaves the cache); -EPROTO for a corrupt one; -ENOMEM;
 * -EAGAIN when the memory budget cannot take the model now.
 * Hand it back with model_cache_release. */
int loader_model(model_cache *c, store_t *s, const store_job *row, int64_t step,
                 model_ref **out, an_err *err);
void model_cache_release(model_cache *c, model_ref *ref);

/* A generation's check of the gpt's weights (gen_weights_check), made once per loaded model:
 * its weights never change while it lives, and the pass over them costs a request 5 ms for
 * 6.4M parameters. The caller holds ref->run. 0, or fails naming "step". */
int loader_gpt_check(model_ref *ref, an_err *err);

#endif
