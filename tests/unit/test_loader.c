/* test_loader — a model loaded for inference reads its checkpoint through the picker: it
 * needs memory for the model and the parameters, not for the whole checkpoint (an Adam
 * checkpoint holds the parameters three times), charges the daemon's budget for what it
 * holds and gives it all back, and refuses a corrupt checkpoint naming it; a gpt's weights
 * are checked for generation once per loaded model. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/blob.h"
#include "core/config.h"
#include "core/infer.h"
#include "core/train.h"
#include "jobs/loader.h"
#include "tests/unit/store_fixture.h"

#define SPEC                                                                                     \
    "{\"seed\": 3, \"steps\": 2, \"model\": {\"type\": \"mlp\", \"inputs\": 4, \"hidden\": "     \
    "[512, 512], \"outputs\": 3}, \"loss\": \"cross_entropy\", \"data\": {\"type\": "           \
    "\"builtin\", \"name\": \"iris\"}, \"ds_config\": {\"train_batch_size\": 16, "              \
    "\"optimizer\": {\"type\": \"Adam\", \"params\": {\"lr\": 0.01}}}}"

typedef struct env {
    void *fix;
    job_spec spec;
    void *blob;
    size_t len;
    size_t params_bytes;
    char id[STORE_ID_LEN];
} env;

static int setup(void **state)
{
    env *v = calloc(1, sizeof *v);
    an_err e;
    train *t = NULL;
    if (!v || fixture_setup(&v->fix) || job_spec_parse_text(SPEC, strlen(SPEC), &v->spec, &e) ||
        train_create(&t, &v->spec, NULL, 0, &e))
        return -1;
    train_report rep;
    while (train_steps_done(t) < train_total_steps(t))
        if (train_step(t, &rep, &e))
            return -1;
    if (train_save(t, &v->blob, &v->len, &e))
        return -1;
    blob_view bv;
    if (blob_parse(v->blob, v->len, &bv, &e))
        return -1;
    v->params_bytes = (size_t)bv.len[SEC_PARAMS];
    train_free(t);
    store_t *s = &((fixture *)v->fix)->s;
    store_job_new in = {.name = "wide", .spec_json = SPEC, .warnings_json = "[]",
                        .total_steps = 2};
    if (store_job_create(s, &in, v->id, &e) ||
        store_checkpoint_commit(s, v->id, 2, 1.0, v->blob, v->len, 0, NULL, &e))
        return -1;
    *state = v;
    return 0;
}

static int teardown(void **state)
{
    env *v = *state;
    free(v->blob);
    job_spec_free(&v->spec);
    fixture_teardown(&v->fix);
    free(v);
    return 0;
}

/* Loads the job's model under a budget of `cap` bytes; the loader's code and message. */
static int load(env *v, uint64_t cap, membudget *b, an_err *e, int check_params)
{
    store_t *s = &((fixture *)v->fix)->s;
    assert_int_equal(budget_init(b, cap), 0);
    model_cache c;
    assert_int_equal(model_cache_init(&c, 1 << 30), 0);
    c.budget = b;
    store_job row;
    memset(&row, 0, sizeof row);
    assert_int_equal(store_job_get(s, v->id, &row, e), 0);
    model_ref *r = NULL;
    int rc = loader_model(&c, s, &row, -1, &r, e);
    if (rc == 0) {
        assert_int_equal(r->step, 2);
        if (check_params) {
            blob_view bv;
            assert_int_equal(blob_parse(v->blob, v->len, &bv, e), 0);
            assert_memory_equal(r->f->m->params, bv.sec[SEC_PARAMS], v->params_bytes);
        }
        assert_true(b->used > 0); /* the model is charged while it lives */
        model_cache_release(&c, r);
    }
    store_job_free(&row);
    model_cache_free(&c);
    assert_int_equal(b->used, 0); /* every charge given back */
    budget_free(b);
    return rc;
}

static void the_whole_checkpoint_is_never_held(void **state)
{
    env *v = *state;
    uint64_t mbytes = infer_bytes_estimate(&v->spec);
    /* Room for the model, its parameters once more and a 1 MiB read: less than the model and
     * the whole checkpoint together, which is what a load needed before. */
    uint64_t cap = mbytes + v->params_bytes + (1u << 20) + 4096;
    assert_true(mbytes + v->len > cap);
    membudget b;
    an_err e;
    int rc = load(v, cap, &b, &e, 1);
    if (rc)
        fail_msg("%s", e.message);
}

static void a_budget_without_room_refuses_and_keeps_nothing(void **state)
{
    env *v = *state;
    membudget b;
    an_err e;
    uint64_t mbytes = infer_bytes_estimate(&v->spec);
    assert_int_equal(load(v, mbytes + 4096, &b, &e, 0), -EAGAIN);
    assert_non_null(strstr(e.message, "--max-memory"));
    assert_int_equal(load(v, mbytes / 2, &b, &e, 0), -EAGAIN);
}

static void a_corrupt_checkpoint_is_refused(void **state)
{
    env *v = *state;
    store_t *s = &((fixture *)v->fix)->s;
    an_err e;
    unsigned char *bad = malloc(v->len);
    assert_non_null(bad);
    memcpy(bad, v->blob, v->len);
    bad[v->len - 100] ^= 1; /* in the optimizer state, which inference does not keep */
    assert_int_equal(store_checkpoint_commit(s, v->id, 3, 1.0, bad, v->len, 0, NULL, &e), 0);
    free(bad);
    membudget b;
    assert_int_equal(load(v, 0, &b, &e, 0), -EPROTO);
    assert_non_null(strstr(e.message, "checksum"));
}

/* A deleted job is seen by a user of its model from the count of deletions it started with,
 * whether or not the model is in the cache (one too large for it never is); other jobs' and
 * earlier deletions are not its. */
static void a_deleted_job_is_seen_by_its_users(void **state)
{
    (void)state;
    model_cache c;
    assert_int_equal(model_cache_init(&c, 1 << 20), 0);
    model_cache_job_deleted(&c, "j_000001"); /* before the user started */
    uint64_t seen = model_cache_deletions(&c);
    assert_int_equal(seen, 1);
    assert_int_equal(model_cache_deleted(&c, "j_000001", &seen), 0);
    model_cache_job_deleted(&c, "j_000002");
    assert_int_equal(model_cache_deleted(&c, "j_000003", &seen), 0);
    assert_int_equal(seen, 2);
    model_cache_job_deleted(&c, "j_000003");
    for (int i = 0; i < MODEL_CACHE_GONE - 1; i++) /* the ring holds them all */
        model_cache_job_deleted(&c, "j_000099");
    assert_int_equal(model_cache_deleted(&c, "j_000003", &seen), 1);
    assert_int_equal(model_cache_deleted(&c, "j_000003", &seen), 0); /* once */
    model_cache_free(&c);
}

#define GPT_SPEC                                                                                 \
    "{\"seed\": 5, \"steps\": 1, \"model\": {\"type\": \"gpt\", \"block_size\": 8, "           \
    "\"n_layer\": 1, \"n_head\": 2, \"n_embd\": 16}, \"data\": {\"type\": \"text\", \"text\": " \
    "\"To be, or not to be, that is the question.\"}, \"validation\": {\"fraction\": 0}, "       \
    "\"ds_config\": {\"train_batch_size\": 2, \"optimizer\": {\"type\": \"AdamW\", "            \
    "\"params\": {\"lr\": 0.001}}}}"

/* The model of job `id` from the cache; with id "", the gpt of GPT_SPEC trained a step and
 * committed first as a new job (its id written to id). */
static model_ref *load_gpt(env *v, model_cache *c, char id[STORE_ID_LEN])
{
    store_t *s = &((fixture *)v->fix)->s;
    an_err e;
    if (!id[0]) {
        job_spec spec;
        train *t = NULL;
        train_report rep;
        void *blob = NULL;
        size_t len = 0;
        if (job_spec_parse_text(GPT_SPEC, strlen(GPT_SPEC), &spec, &e) ||
            train_create(&t, &spec, NULL, 0, &e) || train_step(t, &rep, &e) ||
            train_save(t, &blob, &len, &e))
            fail_msg("%s", e.message);
        train_free(t);
        job_spec_free(&spec);
        store_job_new in = {.name = "gpt", .spec_json = GPT_SPEC, .warnings_json = "[]",
                            .total_steps = 1};
        assert_int_equal(store_job_create(s, &in, id, &e), 0);
        assert_int_equal(store_checkpoint_commit(s, id, 1, 1.0, blob, len, 0, NULL, &e), 0);
        free(blob);
    }
    store_job row;
    memset(&row, 0, sizeof row);
    assert_int_equal(store_job_get(s, id, &row, &e), 0);
    model_ref *r = NULL;
    if (loader_model(c, s, &row, -1, &r, &e))
        fail_msg("%s", e.message);
    store_job_free(&row);
    assert_non_null(r->f->g);
    return r;
}

/* A generation checks a gpt's weights once per loaded model: a cached model's weights never
 * change, and the pass over them cost each request 5 ms for 6.4M parameters. A model loaded
 * again (after its job's models were dropped) is checked again, and one found not finite is
 * refused until it is. */
static void a_gpt_is_checked_once_per_loaded_model(void **state)
{
    env *v = *state;
    model_cache c;
    assert_int_equal(model_cache_init(&c, 1 << 30), 0);
    char id[STORE_ID_LEN] = "";
    an_err e;
    model_ref *r = load_gpt(v, &c, id);
    assert_int_equal(loader_gpt_check(r, &e), 0);
    float *w = &r->f->g->params[r->f->g->nparams / 2], keep = *w;
    *w = NAN; /* not seen: the verdict of this loaded model stands */
    assert_int_equal(loader_gpt_check(r, &e), 0);
    *w = keep;
    model_cache_release(&c, r);
    model_ref *again = load_gpt(v, &c, id);
    assert_ptr_equal(again, r); /* the same cached model, the same verdict */
    model_cache_release(&c, again);

    model_cache_drop(&c, id); /* as a deleted job's models are */
    r = load_gpt(v, &c, id);
    w = &r->f->g->params[r->f->g->nparams / 2];
    keep = *w;
    *w = NAN;
    assert_int_equal(loader_gpt_check(r, &e), -EINVAL);
    assert_string_equal(e.field, "step");
    assert_non_null(strstr(e.message, "not finite"));
    assert_int_equal(loader_gpt_check(r, &e), -EINVAL); /* a refusal is not kept */
    *w = keep;
    assert_int_equal(loader_gpt_check(r, &e), 0);
    model_cache_release(&c, r);
    model_cache_free(&c);
}

/* The model of job v->id at `step` from cache c; the loader's code. */
static int load_at(env *v, model_cache *c, int64_t step, model_ref **r, an_err *e)
{
    store_t *s = &((fixture *)v->fix)->s;
    store_job row;
    memset(&row, 0, sizeof row);
    assert_int_equal(store_job_get(s, v->id, &row, e), 0);
    int rc = loader_model(c, s, &row, step, r, e);
    store_job_free(&row);
    return rc;
}

/* Retention deletes checkpoints without telling the cache: a cached model of a checkpoint
 * that is gone answers as a load would (no checkpoint at that step, naming "step") and
 * leaves the cache, while a user who holds it keeps it. */
static void a_cached_model_of_a_retired_checkpoint_is_not_found(void **state)
{
    env *v = *state;
    store_t *s = &((fixture *)v->fix)->s;
    model_cache c;
    assert_int_equal(model_cache_init(&c, 1 << 30), 0);
    an_err e;
    model_ref *held = NULL, *r = NULL;
    assert_int_equal(load_at(v, &c, 2, &held, &e), 0);
    assert_int_equal(load_at(v, &c, 2, &r, &e), 0);
    assert_ptr_equal(r, held); /* cached */
    assert_int_equal(c.hits, 1);
    model_cache_release(&c, r);
    /* keep_last 1: the checkpoint at step 4 retires the one at step 2 */
    assert_int_equal(store_checkpoint_commit(s, v->id, 4, 1.0, v->blob, v->len, 1, NULL, &e), 0);
    r = NULL;
    assert_int_equal(load_at(v, &c, 2, &r, &e), -ENOENT);
    assert_null(r);
    assert_string_equal(e.field, "step");
    char want[128];
    snprintf(want, sizeof want, "job %s has no checkpoint at step 2 (it has checkpoints at "
             "steps 4)", v->id);
    assert_string_equal(e.message, want);
    assert_int_equal(c.hits, 1);
    assert_int_equal(c.bytes, 0); /* out of the cache */
    assert_int_equal(held->step, 2); /* its user still has it */
    model_cache_release(&c, held);
    assert_int_equal(load_at(v, &c, 2, &r, &e), -ENOENT); /* and still gone */
    assert_int_equal(load_at(v, &c, -1, &r, &e), 0);
    assert_int_equal(r->step, 4);
    model_cache_release(&c, r);
    model_cache_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(the_whole_checkpoint_is_never_held, setup, teardown),
        cmocka_unit_test_setup_teardown(a_budget_without_room_refuses_and_keeps_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_corrupt_checkpoint_is_refused, setup, teardown),
        cmocka_unit_test(a_deleted_job_is_seen_by_its_users),
        cmocka_unit_test_setup_teardown(a_gpt_is_checked_once_per_loaded_model, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_cached_model_of_a_retired_checkpoint_is_not_found,
                                        setup, teardown),
    };
    return cmocka_run_group_tests_name("loader", tests, NULL, NULL);
}
