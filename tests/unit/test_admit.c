/* test_admit — a worker's memory admission (jobs/admit.c): a job that fits is charged at
 * once; one that could never fit is refused with its size; one that does not fit yet waits
 * with the reason on its run, ends its wait on a stop, and takes the budget as soon as it is
 * there — including the share of a model that a request cached while the job was waiting.
 *
 * The worker is a thread of the test calling admit_job on its own store connection, as
 * jobs/workers.c does; the main thread plays the other users of the budget. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/train.h"
#include "daemon/options.h"
#include "jobs/service.h"
#include "tests/unit/store_fixture.h"

/* A small trained model that /predict would cache, and a larger job that needs the room. */
#define SMALL                                                                                    \
    "{\"seed\": 3, \"steps\": 2, \"model\": {\"type\": \"mlp\", \"inputs\": 4, \"hidden\": "     \
    "[64], \"outputs\": 3}, \"loss\": \"cross_entropy\", \"data\": {\"type\": \"builtin\", "    \
    "\"name\": \"iris\"}, \"ds_config\": {\"train_batch_size\": 16, \"optimizer\": {\"type\": " \
    "\"Adam\", \"params\": {\"lr\": 0.01}}}}"
#define LARGE                                                                                    \
    "{\"seed\": 3, \"steps\": 2, \"model\": {\"type\": \"mlp\", \"inputs\": 4, \"hidden\": "     \
    "[1024, 1024], \"outputs\": 3}, \"loss\": \"cross_entropy\", \"data\": {\"type\": "         \
    "\"builtin\", \"name\": \"iris\"}, \"ds_config\": {\"train_batch_size\": 16, "              \
    "\"optimizer\": {\"type\": \"Adam\", \"params\": {\"lr\": 0.01}}}}"

typedef struct env {
    void *fix;
    daemon_opts opts;
    service sv;
    uv_loop_t loop;
    char small[STORE_ID_LEN];  /* trained, with a checkpoint at step 2 */
    job_run run;               /* the large job's run, as a worker holds it */
    uint64_t need;             /* the large job's charge */
    uint64_t model_bytes;      /* the small model's charge while cached */

    /* the worker thread's outcome */
    uv_thread_t worker;
    uint64_t charge;
    char why[256];
    int rc;
    atomic_int finished;
} env;

static uint64_t spec_charge(const char *text)
{
    job_spec spec;
    an_err e;
    assert_int_equal(job_spec_parse_text(text, strlen(text), &spec, &e), 0);
    mem_estimate m;
    job_spec_memory(&spec, -1, &m);
    job_spec_free(&spec);
    return budget_job_charge(&m);
}

static int setup(void **state)
{
    env *v = calloc(1, sizeof *v);
    if (!v || fixture_setup(&v->fix))
        return -1;
    store_t *s = &((fixture *)v->fix)->s;
    an_err e;
    job_spec spec;
    train *t = NULL;
    if (job_spec_parse_text(SMALL, strlen(SMALL), &spec, &e) ||
        train_create(&t, &spec, NULL, 0, &e))
        return -1;
    train_report rep;
    while (train_steps_done(t) < train_total_steps(t))
        if (train_step(t, &rep, &e))
            return -1;
    void *blob = NULL;
    size_t len = 0;
    if (train_save(t, &blob, &len, &e))
        return -1;
    train_free(t);
    v->model_bytes = infer_bytes_estimate(&spec);
    job_spec_free(&spec);
    store_job_new small = {.name = "small", .spec_json = SMALL, .warnings_json = "[]",
                           .total_steps = 2};
    store_job_new large = {.name = "large", .spec_json = LARGE, .warnings_json = "[]",
                           .total_steps = 2};
    int rc = store_job_create(s, &small, v->small, &e) ||
             store_checkpoint_commit(s, v->small, 2, 1.0, blob, len, 0, NULL, &e) ||
             store_job_create(s, &large, v->run.id, &e);
    free(blob);
    if (rc)
        return -1;
    v->need = spec_charge(LARGE);
    options_defaults(&v->opts);
    v->sv.opts = &v->opts;
    if (uv_loop_init(&v->loop) || uv_async_init(&v->loop, &v->sv.wake, NULL) ||
        jobs_init(&v->sv.jobs, &v->sv) || model_cache_init(&v->sv.models, 1 << 30) ||
        uv_mutex_init(&v->run.mu))
        return -1;
    *state = v;
    return 0;
}

static int teardown(void **state)
{
    env *v = *state;
    model_cache_free(&v->sv.models);
    budget_free(&v->sv.mem);
    uv_mutex_destroy(&v->run.mu);
    jobs_close(&v->sv.jobs);
    uv_close((uv_handle_t *)&v->sv.wake, NULL);
    uv_run(&v->loop, UV_RUN_DEFAULT);
    uv_loop_close(&v->loop);
    fixture_teardown(&v->fix);
    free(v);
    return 0;
}

static void budget(env *v, uint64_t cap)
{
    assert_int_equal(budget_init(&v->sv.mem, cap), 0);
    v->sv.models.budget = &v->sv.mem;
}

static void worker_main(void *arg)
{
    env *v = arg;
    store_t st;
    an_err e;
    if (store_open(&st, ((fixture *)v->fix)->path, &e) != 0) {
        v->rc = -99;
    } else {
        v->rc = admit_job(&v->sv, &st, &v->run, &v->charge, v->why, sizeof v->why);
        store_close(&st);
    }
    atomic_store(&v->finished, 1);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits up to `ms` for the worker to finish; 1 when it did. */
static int finished_within(env *v, long ms)
{
    for (long t = 0; t < ms && !atomic_load(&v->finished); t += 10)
        sleep_ms(10);
    return atomic_load(&v->finished);
}

/* Waits until the worker is in its wait: the reason is on its run. */
static void wait_for_reason(env *v)
{
    for (int t = 0; t < 1000; t++) {
        uv_mutex_lock(&v->run.mu);
        int waiting = v->run.snap.wait_reason[0] != '\0';
        uv_mutex_unlock(&v->run.mu);
        if (waiting)
            return;
        assert_false(atomic_load(&v->finished));
        sleep_ms(10);
    }
    fail_msg("the worker never started waiting");
}

/* Caches the small job's model the way /predict leaves it: loaded, used, handed back. */
static void cache_small_model(env *v)
{
    store_t *s = &((fixture *)v->fix)->s;
    store_job row;
    memset(&row, 0, sizeof row);
    an_err e;
    assert_int_equal(store_job_get(s, v->small, &row, &e), 0);
    model_ref *r = NULL;
    int rc = loader_model(&v->sv.models, s, &row, -1, &r, &e);
    store_job_free(&row);
    if (rc)
        fail_msg("loading the small model: %s", e.message);
    model_cache_release(&v->sv.models, r);
}

static void a_job_that_fits_is_charged_at_once(void **state)
{
    env *v = *state;
    budget(v, v->need + 1);
    char why[64] = "";
    uint64_t charge = 0;
    store_t *s = &((fixture *)v->fix)->s;
    assert_int_equal(admit_job(&v->sv, s, &v->run, &charge, why, sizeof why), 0);
    assert_int_equal(charge, v->need);
    assert_int_equal(v->sv.mem.used, v->need);
}

static void a_job_larger_than_the_budget_is_refused(void **state)
{
    env *v = *state;
    budget(v, v->need - 1);
    char why[256] = "";
    uint64_t charge = 7;
    store_t *s = &((fixture *)v->fix)->s;
    assert_int_equal(admit_job(&v->sv, s, &v->run, &charge, why, sizeof why), -1);
    assert_int_equal(charge, 0);
    assert_non_null(strstr(why, "--max-memory"));
    assert_int_equal(v->sv.mem.used, 0);
}

static void a_waiting_job_ends_its_wait_on_a_stop(void **state)
{
    env *v = *state;
    budget(v, v->need);
    assert_int_equal(budget_try(&v->sv.mem, 1), 0); /* another job holds a byte */
    assert_int_equal(uv_thread_create(&v->worker, worker_main, v), 0);
    wait_for_reason(v);
    assert_non_null(strstr(v->run.snap.wait_reason, "--max-memory"));
    atomic_store(&v->run.stop, STOP_CANCEL);
    int done = finished_within(v, 5000);
    uv_thread_join(&v->worker);
    assert_true(done);
    assert_int_equal(v->rc, 1);
    assert_int_equal(v->charge, 0);
    assert_int_equal(v->sv.mem.used, 1);
    assert_string_equal(v->run.snap.wait_reason, "");
}

/* The budget fits the large job alone, not beside the cached model. The model arrives while
 * the job waits for another job's share; when that share comes back, the model must give
 * way, as it does for a job that finds it already cached. */
static void a_model_cached_while_a_job_waits_gives_way(void **state)
{
    env *v = *state;
    uint64_t room_to_load = v->model_bytes + (4u << 20); /* the model and its reads */
    assert_true(room_to_load < v->need);
    uint64_t cap = v->need + v->model_bytes / 2;
    budget(v, cap);
    uint64_t held = cap - room_to_load;
    assert_int_equal(budget_try(&v->sv.mem, held), 0); /* another job's share */
    assert_int_equal(uv_thread_create(&v->worker, worker_main, v), 0);
    wait_for_reason(v);
    cache_small_model(v);
    assert_int_equal(v->sv.mem.used, held + v->model_bytes);
    budget_release(&v->sv.mem, held); /* the other job ends */
    int done = finished_within(v, 5000);
    if (!done)
        atomic_store(&v->run.stop, STOP_CANCEL);
    uv_thread_join(&v->worker);
    assert_true(done);
    assert_int_equal(v->rc, 0);
    assert_int_equal(v->charge, v->need);
    assert_int_equal(v->sv.mem.used, v->need);
    assert_int_equal(v->sv.models.bytes, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_job_that_fits_is_charged_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(a_job_larger_than_the_budget_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_waiting_job_ends_its_wait_on_a_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(a_model_cached_while_a_job_waits_gives_way, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("admit", tests, NULL, NULL);
}
