/* Tests of the job manager's transitions (daemon/jobs.c) and DELETE /v1/jobs/{id} (api/jobs.c)
 * where a request meets a worker that is letting go of its job.
 *
 * The worker is played by the test: it takes the run off the queue (jobs_take), writes the
 * job's states to the store as daemon/workers.c does, and reports with jobs_done. Handlers
 * run with no MHD connection (MHD refuses to queue on a NULL connection and looks nothing up
 * on it), so what they did is read back from the store and from the SSE hub's ring. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "api/http.h"
#include "api/routes.h"
#include "daemon/daemon.h"
#include "tests/unit/store_fixture.h"

typedef struct env {
    void *fix;                 /* store_fixture.h: the temporary directory and its database */
    daemon_t d;                /* the loop thread's state, with its own store connection */
    daemon_opts opts;
} env;

static void on_async(uv_async_t *a)
{
    (void)a;
}

static int env_setup(void **state)
{
    env *v = calloc(1, sizeof *v);
    if (!v || fixture_setup(&v->fix) != 0) {
        free(v);
        return -1;
    }
    an_err e;
    options_defaults(&v->opts);
    v->d.opts = &v->opts;
    if (store_open(&v->d.store, ((fixture *)v->fix)->path, &e) != 0 ||
        uv_loop_init(&v->d.loop) != 0 || uv_async_init(&v->d.loop, &v->d.wake, on_async) != 0 ||
        sse_hub_init(&v->d.hub, 64, 1) != 0 || jobs_init(&v->d.jobs, &v->d) != 0)
        return -1;
    *state = v;
    return 0;
}

static int env_teardown(void **state)
{
    env *v = *state;
    jobs_close(&v->d.jobs);
    sse_hub_close(&v->d.hub);
    uv_close((uv_handle_t *)&v->d.wake, NULL);
    uv_run(&v->d.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&v->d.loop), 0);
    store_close(&v->d.store);
    fixture_teardown(&v->fix);
    free(v);
    return 0;
}

/* A queued job in the store and in the manager's queue; its id to `id`. */
static void new_job(env *v, char id[STORE_ID_LEN])
{
    assert_int_equal(make_job(&v->d.store, "t", NULL, id), 0);
    assert_int_equal(jobs_enqueue(&v->d.jobs, id), 0);
}

static store_job_state state_of(env *v, const char *id)
{
    store_job row;
    memset(&row, 0, sizeof row);
    an_err e;
    assert_int_equal(store_job_get(&v->d.store, id, &row, &e), 0);
    store_job_state st = row.state;
    store_job_free(&row);
    return st;
}

/* The worker's side: takes the run, marks the job running. */
static job_run *worker_takes(env *v, const char *id)
{
    job_run *run = jobs_take(&v->d.jobs);
    assert_non_null(run);
    assert_string_equal(run->id, id);
    an_err e;
    assert_int_equal(store_job_set_state(&v->d.store, id, STORE_MASK(STORE_QUEUED),
                                         STORE_RUNNING, NULL, NULL, &e), 0);
    uv_mutex_lock(&run->mu);
    run->snap.started = 1;
    uv_mutex_unlock(&run->mu);
    return run;
}

/* The worker's side: records the final state and lets go of the run. */
static void worker_ends(env *v, job_run *run, store_job_state st)
{
    an_err e;
    assert_int_equal(store_job_set_state(&v->d.store, run->id,
                                         STORE_MASK(STORE_RUNNING) | STORE_MASK(STORE_QUEUED), st,
                                         NULL, NULL, &e), 0);
    uv_mutex_lock(&run->mu);
    run->snap.final = st;
    uv_mutex_unlock(&run->mu);
    jobs_done(&v->d.jobs, run);
}

/* The data of the newest event in the hub's ring, parsed (caller deletes). */
static cJSON *last_event(env *v, char event[16])
{
    sse_hub *h = &v->d.hub;
    assert_true(h->ring_len > 0);
    const sse_event *ev = &h->ring[(h->ring_head + h->ring_len - 1) % h->ring_cap];
    assert_int_equal(sscanf(ev->frame, "event: %15s", event), 1);
    const char *data = strstr(ev->frame, "data: ");
    assert_non_null(data);
    cJSON *j = cJSON_Parse(data + 6);
    assert_non_null(j);
    return j;
}

/* A request as MHD would hand it to a handler, with the route's parameter. */
static void request_for(http_req *r, env *v, const char *id)
{
    memset(r, 0, sizeof *r);
    r->d = &v->d;
    r->m.nparams = 1;
    snprintf(r->m.params[0], sizeof r->m.params[0], "%s", id);
}

/* Cancel asked while the worker was already stopping for a pause: the worker leaves the job
 * paused, and the cancel must still happen (its request is answered with the job's state). */
static void cancel_after_pause_cancels(void **state)
{
    env *v = *state;
    char id[STORE_ID_LEN];
    new_job(v, id);
    job_run *run = worker_takes(v, id);
    atomic_store(&run->stop, STOP_PAUSE);
    /* The worker read STOP_PAUSE between steps; then the cancel came (stop_job turns a pause
     * into a cancel), too late for the worker to see it. */
    atomic_store(&run->stop, STOP_CANCEL);
    worker_ends(v, run, STORE_PAUSED);
    jobs_poll(&v->d.jobs);
    assert_null(jobs_find(&v->d.jobs, id));
    assert_int_equal(state_of(v, id), STORE_CANCELLED);
    char ev[16];
    cJSON *j = last_event(v, ev);
    assert_string_equal(ev, "state");
    assert_string_equal(cJSON_GetObjectItem(j, "state")->valuestring, "cancelled");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "error")));
    cJSON_Delete(j);
}

/* A pause that ends as a pause stays one (the cancel rule touches only cancels). */
static void pause_stays_paused(void **state)
{
    env *v = *state;
    char id[STORE_ID_LEN];
    new_job(v, id);
    job_run *run = worker_takes(v, id);
    atomic_store(&run->stop, STOP_PAUSE);
    worker_ends(v, run, STORE_PAUSED);
    jobs_poll(&v->d.jobs);
    assert_int_equal(state_of(v, id), STORE_PAUSED);
    char ev[16];
    cJSON *j = last_event(v, ev);
    assert_string_equal(cJSON_GetObjectItem(j, "state")->valuestring, "paused");
    cJSON_Delete(j);
}

/* A job that completed before the worker saw a cancel stays completed. */
static void cancel_too_late_for_a_completed_job(void **state)
{
    env *v = *state;
    char id[STORE_ID_LEN];
    new_job(v, id);
    job_run *run = worker_takes(v, id);
    atomic_store(&run->stop, STOP_CANCEL);
    worker_ends(v, run, STORE_COMPLETED);
    jobs_poll(&v->d.jobs);
    assert_int_equal(state_of(v, id), STORE_COMPLETED);
}

/* SIGTERM after a cancel or a pause was asked for: the request's stop must win over the
 * shutdown's (which would put the job back to `queued`, to be trained again at the next
 * start); a run nobody asked anything of is told to stop for the shutdown. */
static void shutdown_keeps_an_asked_stop(void **state)
{
    env *v = *state;
    char a[STORE_ID_LEN], b[STORE_ID_LEN], c[STORE_ID_LEN];
    new_job(v, a);
    job_run *ra = worker_takes(v, a);
    new_job(v, b);
    job_run *rb = worker_takes(v, b);
    new_job(v, c);
    job_run *rc = worker_takes(v, c);
    atomic_store(&ra->stop, STOP_CANCEL);
    atomic_store(&rb->stop, STOP_PAUSE);
    jobs_shutdown(&v->d.jobs);
    assert_int_equal(atomic_load(&ra->stop), STOP_CANCEL);
    assert_int_equal(atomic_load(&rb->stop), STOP_PAUSE);
    assert_int_equal(atomic_load(&rc->stop), STOP_SHUTDOWN);
    worker_ends(v, ra, STORE_CANCELLED);
    worker_ends(v, rb, STORE_PAUSED);
    worker_ends(v, rc, STORE_QUEUED);
    jobs_poll(&v->d.jobs);
    assert_true(jobs_idle(&v->d.jobs));
    assert_int_equal(state_of(v, a), STORE_CANCELLED);
    assert_int_equal(state_of(v, b), STORE_PAUSED);
    assert_int_equal(state_of(v, c), STORE_QUEUED);
}

/* A client that saw `completed` and deletes at once must not get 409 because the loop has not
 * yet reaped the run the worker already let go of. */
static void delete_right_after_completion(void **state)
{
    env *v = *state;
    char id[STORE_ID_LEN];
    new_job(v, id);
    job_run *run = worker_takes(v, id);
    worker_ends(v, run, STORE_COMPLETED);
    http_req r;
    request_for(&r, v, id);
    api_jobs_delete(&r);
    store_job row;
    memset(&row, 0, sizeof row);
    an_err e;
    assert_int_equal(store_job_get(&v->d.store, id, &row, &e), -ENOENT);
}

/* A job still held by its worker is not deleted. */
static void delete_of_a_held_job_changes_nothing(void **state)
{
    env *v = *state;
    char id[STORE_ID_LEN];
    new_job(v, id);
    job_run *run = worker_takes(v, id);
    http_req r;
    request_for(&r, v, id);
    api_jobs_delete(&r);
    assert_int_equal(state_of(v, id), STORE_RUNNING);
    assert_non_null(jobs_find(&v->d.jobs, id));
    worker_ends(v, run, STORE_COMPLETED);
    jobs_poll(&v->d.jobs);
}

/* Resume right after the pause landed in the store (the worker has let go, the loop has not
 * reaped the run yet) queues the job again. */
static void resume_right_after_pause(void **state)
{
    env *v = *state;
    char id[STORE_ID_LEN];
    new_job(v, id);
    job_run *run = worker_takes(v, id);
    atomic_store(&run->stop, STOP_PAUSE);
    worker_ends(v, run, STORE_PAUSED);
    http_req r;
    request_for(&r, v, id);
    jobs_resume(&v->d.jobs, &r, id);
    assert_int_equal(state_of(v, id), STORE_QUEUED);
    job_run *again = jobs_find(&v->d.jobs, id);
    assert_non_null(again);
    assert_int_equal(atomic_load(&again->stop), STOP_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(cancel_after_pause_cancels, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(pause_stays_paused, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(cancel_too_late_for_a_completed_job, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(shutdown_keeps_an_asked_stop, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(delete_right_after_completion, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(delete_of_a_held_job_changes_nothing, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(resume_right_after_pause, env_setup, env_teardown),
    };
    return cmocka_run_group_tests_name("api_jobs", tests, NULL, NULL);
}
