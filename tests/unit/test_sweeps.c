/* Tests of the sweeps driver (jobs/sweeps.c) where it meets the request queue and a stop:
 * the loop thread never writes a sweep's store rows itself. A save or a trial's job to take
 * back that a full request queue refuses waits for the next pump (or the end), and a trial
 * whose job was stored while the daemon stops stays queued for the restart.
 *
 * The quick request queue here has one thread and room for one waiting item, so the test can
 * fill it: a blocker holds the thread on a semaphore and a no-op takes the one place. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <unistd.h>

#include <cjson/cJSON.h>
#include "daemon/options.h"
#include "jobs/service.h"
#include "tests/unit/store_fixture.h"

typedef struct env {
    void *fix;
    service sv;
    daemon_opts opts;
    uv_loop_t loop;
    uv_sem_t hold;             /* the blocker waits on it */
    int blocked;               /* a blocker and a filler are in the queue */
} env;

static void on_async(uv_async_t *a)
{
    service *d = a->data;
    workq_complete(&d->quick);
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
    snprintf(v->opts.db, sizeof v->opts.db, "%s", ((fixture *)v->fix)->path);
    v->sv.opts = &v->opts;
    if (store_open(&v->sv.store, v->opts.db, &e) != 0 || uv_loop_init(&v->loop) != 0 ||
        uv_async_init(&v->loop, &v->sv.wake, on_async) != 0 ||
        workq_init(&v->sv.quick, "quick", 1, 1, &v->sv.wake) != 0 ||
        jobs_init(&v->sv.jobs, &v->sv) != 0 || sweeps_init(&v->sv.sweeps, &v->sv) != 0 ||
        uv_sem_init(&v->hold, 0) != 0)
        return -1;
    v->sv.wake.data = &v->sv;
    *state = v;
    return 0;
}

static int env_teardown(void **state)
{
    env *v = *state;
    if (v->blocked)
        uv_sem_post(&v->hold);
    workq_stop(&v->sv.quick);
    v->sv.phase = PHASE_CLOSING;
    sweeps_free(&v->sv.sweeps);
    jobs_close(&v->sv.jobs);
    uv_close((uv_handle_t *)&v->sv.wake, NULL);
    uv_run(&v->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&v->loop), 0);
    uv_sem_destroy(&v->hold);
    store_close(&v->sv.store);
    fixture_teardown(&v->fix);
    free(v);
    return 0;
}

/* ---- the request queue, held full --------------------------------------------------------- */

static void blocker_work(void *arg)
{
    uv_sem_wait(&((env *)arg)->hold);
}

static void noop_work(void *arg)
{
    (void)arg;
}

static void noop_after(void *arg)
{
    (void)arg;
}

/* Runs the loop until the queue has nothing waiting or running, and every after ran. */
static void drain_queue(env *v)
{
    for (;;) {
        int waiting, running, peak;
        workq_depths(&v->sv.quick, &waiting, &running, &peak);
        uv_mutex_lock(&v->sv.quick.mu);
        int done = v->sv.quick.done != NULL;
        uv_mutex_unlock(&v->sv.quick.mu);
        if (!waiting && !running && !done)
            break;
        uv_run(&v->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    workq_complete(&v->sv.quick);
}

/* Fills the queue: its one thread held by a blocker, its one place taken by a no-op. */
static void fill_queue(env *v)
{
    assert_int_equal(workq_push(&v->sv.quick, blocker_work, noop_after, v), 0);
    for (;;) { /* the thread has taken the blocker */
        int waiting, running, peak;
        workq_depths(&v->sv.quick, &waiting, &running, &peak);
        if (running == 1 && waiting == 0)
            break;
        usleep(1000);
    }
    assert_int_equal(workq_push(&v->sv.quick, noop_work, noop_after, NULL), 0);
    assert_int_equal(workq_push(&v->sv.quick, noop_work, noop_after, NULL), -EAGAIN);
    v->blocked = 1;
}

static void free_queue(env *v)
{
    uv_sem_post(&v->hold);
    v->blocked = 0;
    drain_queue(v);
}

/* ---- sweeps in the store -------------------------------------------------------------- */

#define ONE_TRIAL                                                                            \
    "{\"name\":\"s\",\"base\":{\"model\":{\"type\":\"mlp\",\"inputs\":4,\"hidden\":[4],"     \
    "\"outputs\":3},\"loss\":\"cross_entropy\",\"data\":{\"type\":\"builtin\",\"name\":"     \
    "\"iris\"},\"steps\":10,\"ds_config\":{\"train_batch_size\":8,\"optimizer\":{\"type\":"  \
    "\"SGD\",\"params\":{\"lr\":0.01}}}},\"parameters\":{\"ds_config.optimizer.params.lr\":" \
    "[0.01]},\"metric\":\"loss\"}"

/* ONE_TRIAL on a data set that is not there: its trial cannot start */
#define MISSING_DATA                                                                              \
    "{\"name\":\"s\",\"base\":{\"model\":{\"type\":\"mlp\",\"inputs\":4,\"hidden\":[4],"     \
    "\"outputs\":3},\"loss\":\"cross_entropy\",\"data\":{\"type\":\"dataset\",\"name\":"     \
    "\"nowhere\",\"target\":\"y\"},\"steps\":10,\"ds_config\":{\"train_batch_size\":8,"      \
    "\"optimizer\":{\"type\":\"SGD\",\"params\":{\"lr\":0.01}}}},\"parameters\":"           \
    "{\"ds_config.optimizer.params.lr\":[0.01]},\"metric\":\"loss\"}"

/* Stores a sweep of one trial as POST /v1/sweeps does, and hands it to the driver, which
 * queues its trial's launch. */
static sweep_run *new_sweep_of(env *v, const char *text)
{
    an_err e;
    cJSON *body = cJSON_Parse(text);
    assert_non_null(body);
    sweep_spec spec;
    assert_int_equal(sweep_parse(body, &spec, &e), 0);
    cJSON *trials = cJSON_CreateArray(), *p = NULL;
    for (int k = 0; k < spec.trials; k++) {
        assert_int_equal(sweep_trial_params(&spec, k, &p, &e), 0);
        cJSON_AddItemToArray(trials, p);
    }
    char *spec_text = cJSON_PrintUnformatted(body), *trials_text = cJSON_PrintUnformatted(trials);
    char id[STORE_ID_LEN];
    assert_int_equal(store_sweep_create(&v->sv.store, spec.name, spec_text, trials_text,
                                        spec.trials, id, &e), 0);
    cJSON_free(spec_text);
    cJSON_free(trials_text);
    cJSON_Delete(trials);
    cJSON_Delete(body);
    sweep_free(&spec);
    sweep_run *r = NULL;
    assert_int_equal(sweeps_load(&v->sv.store, id, &r, &e), 0);
    sweeps_adopt(&v->sv.sweeps, r);
    assert_int_equal(r->trials[0].state, TRIAL_LAUNCHING);
    return r;
}

static sweep_run *new_sweep(env *v)
{
    return new_sweep_of(v, ONE_TRIAL);
}

static char *sweep_state(env *v, const char *id, char out[16])
{
    store_sweep row;
    an_err e;
    assert_int_equal(store_sweep_get(&v->sv.store, id, &row, &e), 0);
    snprintf(out, 16, "%s", row.state);
    store_sweep_free(&row);
    return out;
}

/* The sweep's trial jobs in the store (their count; the first one's id and state). */
static size_t trial_jobs(env *v, const char *id, char job[STORE_ID_LEN], store_job_state *st)
{
    store_job *jobs = NULL;
    size_t n = 0;
    an_err e;
    assert_int_equal(store_sweep_jobs(&v->sv.store, id, &jobs, &n, &e), 0);
    if (n) {
        snprintf(job, STORE_ID_LEN, "%s", jobs[0].id);
        *st = jobs[0].state;
    }
    store_job_list_free(jobs, n);
    return n;
}

/* ---- the tests ------------------------------------------------------------------------ */

/* A sweep's state to record while the request queue is full is not written on the loop: it
 * waits, and the next pump hands it to the queue once there is room. */
static void a_state_save_waits_for_room_in_the_queue(void **state)
{
    env *v = *state;
    sweep_run *r = new_sweep(v);
    drain_queue(v); /* the trial's job is made and queued */
    assert_int_equal(r->trials[0].state, TRIAL_ACTIVE);
    char job[STORE_ID_LEN], s[16];
    store_job_state st;
    assert_int_equal(trial_jobs(v, r->id, job, &st), 1);
    assert_string_equal(job, r->trials[0].job);
    assert_non_null(jobs_find(&v->sv.jobs, job));
    fill_queue(v);
    sweeps_job_state(&v->sv.sweeps, job, "completed"); /* the last trial ended */
    assert_true(r->done);
    assert_string_equal(sweep_state(v, r->id, s), "running"); /* not written here */
    assert_non_null(v->sv.sweeps.save_wait);
    sweeps_pump(&v->sv.sweeps); /* still full */
    assert_string_equal(sweep_state(v, r->id, s), "running");
    free_queue(v);
    sweeps_pump(&v->sv.sweeps);
    assert_null(v->sv.sweeps.save_wait);
    drain_queue(v);
    assert_string_equal(sweep_state(v, r->id, s), "completed");
}

/* One still waiting when the daemon ends is written by sweeps_free, once nothing else
 * writes. */
static void a_state_save_still_waiting_at_the_end_is_written(void **state)
{
    env *v = *state;
    sweep_run *r = new_sweep(v);
    drain_queue(v);
    char id[STORE_ID_LEN], job[STORE_ID_LEN], s[16];
    snprintf(id, sizeof id, "%s", r->id);
    snprintf(job, sizeof job, "%s", r->trials[0].job);
    fill_queue(v);
    sweeps_job_state(&v->sv.sweeps, job, "completed");
    assert_string_equal(sweep_state(v, id, s), "running");
    free_queue(v); /* room again, but no pump before the end */
    workq_stop(&v->sv.quick);
    v->sv.phase = PHASE_CLOSING;
    sweeps_free(&v->sv.sweeps);
    assert_string_equal(sweep_state(v, id, s), "completed");
    assert_int_equal(sweeps_init(&v->sv.sweeps, &v->sv), 0); /* for the teardown */
    assert_int_equal(workq_init(&v->sv.quick, "quick", 1, 1, &v->sv.wake), 0);
}

/* A trial's job stored while its sweep was cancelled is taken back on a request thread; with
 * the queue full, at the next pump, and never on the loop. */
static void a_job_to_take_back_waits_for_room_in_the_queue(void **state)
{
    env *v = *state;
    sweep_run *r = new_sweep(v);
    for (;;) { /* the launch's work is done, its after not yet run */
        int waiting, running, peak;
        workq_depths(&v->sv.quick, &waiting, &running, &peak);
        if (!waiting && !running)
            break;
        usleep(1000);
    }
    char (*cancelled)[STORE_ID_LEN] = NULL;
    size_t n = 0;
    assert_int_equal(sweeps_cancel(&v->sv.sweeps, r->id, &cancelled, &n), 0);
    assert_int_equal(n, 0); /* the trial was launching: no job of it to cancel yet */
    free(cancelled);
    fill_queue(v);
    workq_complete(&v->sv.quick); /* launch_after: the sweep is cancelled */
    assert_int_equal(r->trials[0].state, TRIAL_ENDED);
    char job[STORE_ID_LEN];
    store_job_state st;
    assert_int_equal(trial_jobs(v, r->id, job, &st), 1); /* not taken back on the loop */
    assert_null(jobs_find(&v->sv.jobs, job));
    assert_non_null(v->sv.sweeps.undo_wait);
    free_queue(v);
    sweeps_pump(&v->sv.sweeps);
    assert_null(v->sv.sweeps.undo_wait);
    drain_queue(v);
    assert_int_equal(trial_jobs(v, r->id, job, &st), 0);
}

/* A trial whose job is stored while the daemon stops is neither queued for a worker nor taken
 * back: it stays queued in the store, and a restart finds it as the trial's job. */
static void a_trial_stored_while_stopping_waits_for_the_restart(void **state)
{
    env *v = *state;
    sweep_run *r = new_sweep(v);
    v->sv.phase = PHASE_DRAINING;
    drain_queue(v);
    char job[STORE_ID_LEN];
    store_job_state st;
    assert_int_equal(trial_jobs(v, r->id, job, &st), 1);
    assert_int_equal(st, STORE_QUEUED);
    assert_null(jobs_find(&v->sv.jobs, job));
    assert_null(v->sv.sweeps.undo_wait);
    sweep_run *again = NULL;
    an_err e;
    assert_int_equal(sweeps_load(&v->sv.store, r->id, &again, &e), 0);
    assert_int_equal(again->trials[0].state, TRIAL_ACTIVE);
    assert_string_equal(again->trials[0].job, job);
    sweeps_drop(again);
}

/* A sweep's states are recorded one at a time, in the order they came: "completed", then
 * "running" again when a trial resumes; the second waits while the first is out. */
static void state_saves_land_in_order(void **state)
{
    env *v = *state;
    sweep_run *r = new_sweep(v);
    drain_queue(v);
    char job[STORE_ID_LEN], s[16];
    snprintf(job, sizeof job, "%s", r->trials[0].job);
    sweeps_job_state(&v->sv.sweeps, job, "completed");
    assert_non_null(v->sv.sweeps.save_out);
    sweeps_job_state(&v->sv.sweeps, job, "queued"); /* resumed: the sweep runs again */
    assert_false(r->done);
    assert_non_null(v->sv.sweeps.save_wait); /* behind the one out */
    drain_queue(v);
    assert_null(v->sv.sweeps.save_out);
    assert_null(v->sv.sweeps.save_wait);
    assert_string_equal(sweep_state(v, r->id, s), "running");
}

/* A launch still out when the request queue stops (its work run, its after never called) is
 * freed by sweeps_free, with the run it holds: the sanitizer's leak check sees none. */
static void a_launch_out_at_the_stop_is_freed(void **state)
{
    env *v = *state;
    sweep_run *r = new_sweep(v);
    assert_non_null(v->sv.sweeps.launches);
    (void)r; /* the teardown stops the queue, then frees the sweeps */
}

/* A trial that cannot start has no job to keep why: the error is stored with its sweep, so
 * the sweep read back (after a restart) has the trial ended, with its error, not pending. */
static void why_a_trial_cannot_start_outlives_the_process(void **state)
{
    env *v = *state;
    sweep_run *r = new_sweep_of(v, MISSING_DATA);
    drain_queue(v);
    assert_int_equal(r->trials[0].state, TRIAL_ENDED);
    assert_non_null(r->trials[0].error);
    assert_non_null(strstr(r->trials[0].error, "nowhere"));
    assert_true(r->done);
    char job[STORE_ID_LEN];
    store_job_state st;
    assert_int_equal(trial_jobs(v, r->id, job, &st), 0);
    char **errors = NULL;
    an_err e;
    assert_int_equal(store_sweep_trial_errors(&v->sv.store, r->id, 1, &errors, NULL, &e), 0);
    assert_non_null(errors[0]);
    assert_string_equal(errors[0], r->trials[0].error);
    store_sweep_trial_errors_free(errors, 1);
    sweep_run *again = NULL;
    assert_int_equal(sweeps_load(&v->sv.store, r->id, &again, &e), 0);
    assert_int_equal(again->trials[0].state, TRIAL_ENDED);
    assert_non_null(again->trials[0].error);
    assert_string_equal(again->trials[0].error, r->trials[0].error);
    sweeps_drop(again);
}

/* A retry (recorded in the store, then sweeps_retry on the loop) makes a trial that could not
 * start pending again and reopens its completed sweep; read back meanwhile (a restart) it is
 * pending too; failing again, it ends with its new error, unmarked, and the sweep completes
 * again. A sweep not driven here is read back and driven; a cancelled one retries nothing. */
static void a_retried_trial_that_still_cannot_start_ends_again(void **state)
{
    env *v = *state;
    an_err e;
    char id[STORE_ID_LEN], s[16];
    sweep_run *r = new_sweep_of(v, MISSING_DATA);
    snprintf(id, sizeof id, "%s", r->id);
    drain_queue(v);
    assert_true(r->done);
    assert_int_equal(sweeps_retry_count(&v->sv.sweeps, id), 1);
    assert_int_equal(sweeps_retry_count(&v->sv.sweeps, "s_000099"), -ENOENT);
    int marked = 0, reopened = 0;
    assert_int_equal(store_sweep_retry(&v->sv.store, id, 0, &marked, &reopened, &e), 0);
    assert_int_equal(marked, 1);
    assert_int_equal(reopened, 1);
    sweep_run *again = NULL;
    assert_int_equal(sweeps_load(&v->sv.store, id, &again, &e), 0);
    assert_int_equal(again->trials[0].state, TRIAL_PENDING);
    assert_non_null(again->trials[0].error); /* why it last could not, until it starts */
    assert_false(again->done);
    sweeps_drop(again);

    sweeps_retry(&v->sv.sweeps, id, NULL, 0);
    assert_false(r->done);
    /* pending, or launching already (this queue's one place may hold the sweep's save) */
    assert_true(r->trials[0].state == TRIAL_PENDING || r->trials[0].state == TRIAL_LAUNCHING);
    int n = 0;
    char(*errs)[800] = sweeps_trial_errors(&v->sv.sweeps, id, &n);
    assert_int_equal(n, 1);
    assert_string_equal(errs[0], ""); /* it may start yet: no start error in the answers */
    free(errs);
    drain_queue(v);
    sweeps_pump(&v->sv.sweeps); /* the loop's tick */
    drain_queue(v);
    assert_int_equal(r->trials[0].state, TRIAL_ENDED);
    assert_non_null(strstr(r->trials[0].error, "nowhere"));
    assert_true(r->done);
    drain_queue(v);
    assert_string_equal(sweep_state(v, id, s), "completed");
    char **errors = NULL;
    int *retry = NULL;
    assert_int_equal(store_sweep_trial_errors(&v->sv.store, id, 1, &errors, &retry, &e), 0);
    assert_non_null(errors[0]);
    assert_int_equal(retry[0], 0);
    store_sweep_trial_errors_free(errors, 1);
    free(retry);

    /* not driven here (as after a restart): read back, then driven */
    sweeps_forget(&v->sv.sweeps, id);
    assert_int_equal(sweeps_retry_count(&v->sv.sweeps, id), -ENOENT);
    assert_int_equal(store_sweep_retry(&v->sv.store, id, 0, &marked, &reopened, &e), 0);
    assert_int_equal(sweeps_load(&v->sv.store, id, &again, &e), 0);
    sweeps_retry(&v->sv.sweeps, id, again, reopened);
    assert_ptr_equal(sweeps_find_run(&v->sv.sweeps, id), again);
    assert_false(again->done);
    drain_queue(v);
    sweeps_pump(&v->sv.sweeps);
    drain_queue(v);
    assert_true(again->done);
    assert_int_equal(again->trials[0].state, TRIAL_ENDED);

    /* cancelled: nothing of it is retried */
    sweep_run *c = new_sweep(v);
    char (*jobs)[STORE_ID_LEN] = NULL;
    size_t nj = 0;
    assert_int_equal(sweeps_cancel(&v->sv.sweeps, c->id, &jobs, &nj), 0);
    free(jobs);
    assert_int_equal(sweeps_retry_count(&v->sv.sweeps, c->id), -ECANCELED);
    drain_queue(v);
}

/* ONE_TRIAL with ASHA rungs at 2 and 6 of its 10 steps */
#define ASHA_TRIAL                                                                           \
    "{\"name\":\"s\",\"base\":{\"model\":{\"type\":\"mlp\",\"inputs\":4,\"hidden\":[4],"     \
    "\"outputs\":3},\"loss\":\"cross_entropy\",\"data\":{\"type\":\"builtin\",\"name\":"     \
    "\"iris\"},\"steps\":10,\"ds_config\":{\"train_batch_size\":8,\"optimizer\":{\"type\":"  \
    "\"SGD\",\"params\":{\"lr\":0.01}}}},\"parameters\":{\"ds_config.optimizer.params.lr\":" \
    "[0.01]},\"metric\":\"loss\",\"early_stopping\":{\"type\":\"asha\",\"min_steps\":2}}"

/* A completed sweep whose trial was stopped at a rung is driven again after a restart: the
 * trial, resumed, meets its later rungs (it used to run to its end unjudged, as only running
 * sweeps were loaded). A completed sweep whose trials all finished is not loaded. */
static void an_ended_sweep_with_a_resumable_trial_is_driven_after_a_restart(void **state)
{
    env *v = *state;
    an_err e;
    sweep_run *r = new_sweep_of(v, ASHA_TRIAL);
    drain_queue(v);
    char id[STORE_ID_LEN], job[STORE_ID_LEN], s[16];
    snprintf(id, sizeof id, "%s", r->id);
    snprintf(job, sizeof job, "%s", r->trials[0].job);
    assert_int_equal(sweeps_rung_reached(&v->sv.sweeps, job, 2, 9.0, NAN, NAN), 1);
    /* stopped (as ASHA would at rung 6 among better trials): the sweep completes */
    assert_int_equal(store_job_set_state(&v->sv.store, job, STORE_MASK_ALL, STORE_STOPPED, NULL,
                                         NULL, &e), 0);
    sweeps_job_state(&v->sv.sweeps, job, "stopped");
    assert_true(r->done);
    drain_queue(v); /* the queue has one place: the state save first */
    /* a second sweep whose trial completed */
    sweep_run *r2 = new_sweep(v);
    drain_queue(v);
    char id2[STORE_ID_LEN], job2[STORE_ID_LEN];
    snprintf(id2, sizeof id2, "%s", r2->id);
    snprintf(job2, sizeof job2, "%s", r2->trials[0].job);
    assert_int_equal(store_job_set_state(&v->sv.store, job2, STORE_MASK_ALL, STORE_COMPLETED,
                                         NULL, NULL, &e), 0);
    sweeps_job_state(&v->sv.sweeps, job2, "completed");
    drain_queue(v);
    assert_string_equal(sweep_state(v, id, s), "completed");
    assert_string_equal(sweep_state(v, id2, s), "completed");

    /* the restart */
    sweeps_free(&v->sv.sweeps);
    assert_int_equal(sweeps_init(&v->sv.sweeps, &v->sv), 0);
    assert_int_equal(sweeps_recover(&v->sv.sweeps, &e), 0);
    sweep_run *again = sweeps_find_run(&v->sv.sweeps, id);
    assert_non_null(again);
    assert_true(again->done);
    assert_false(again->cancelled);
    assert_int_equal(again->trials[0].state, TRIAL_ENDED);
    assert_int_equal(again->nrungs, 1);
    assert_null(sweeps_find_run(&v->sv.sweeps, id2));
    int64_t rungs[SWEEP_MAX_RUNGS];
    assert_int_equal(sweeps_trial_rungs(&v->sv.sweeps, job, 10, rungs, SWEEP_MAX_RUNGS), 2);
    assert_int_equal(rungs[1], 6);
    /* resumed: the sweep runs again; the rung it met keeps its decision */
    sweeps_job_state(&v->sv.sweeps, job, "queued");
    assert_false(again->done);
    assert_int_equal(sweeps_rung_reached(&v->sv.sweeps, job, 2, 1.0, NAN, NAN), 1);
    assert_int_equal(sweeps_rung_reached(&v->sv.sweeps, job, 6, 1.0, NAN, NAN), 1);
    assert_int_equal(again->nrungs, 2);
    drain_queue(v);
    assert_string_equal(sweep_state(v, id, s), "running");
}

/* The sweep events sent, as "event trial" words, in order. */
static char events_seen[1024];

static void record_event(void *ctx, const sweep_event *ev)
{
    (void)ctx;
    size_t at = strlen(events_seen);
    snprintf(events_seen + at, sizeof events_seen - at, "%s%s %d", at ? ", " : "", ev->event,
             ev->trial);
}

/* ONE_TRIAL with two trials, one at a time */
#define TWO_TRIALS                                                                           \
    "{\"name\":\"s\",\"base\":{\"model\":{\"type\":\"mlp\",\"inputs\":4,\"hidden\":[4],"     \
    "\"outputs\":3},\"loss\":\"cross_entropy\",\"data\":{\"type\":\"builtin\",\"name\":"     \
    "\"iris\"},\"steps\":10,\"ds_config\":{\"train_batch_size\":8,\"optimizer\":{\"type\":"  \
    "\"SGD\",\"params\":{\"lr\":0.01}}}},\"parameters\":{\"ds_config.optimizer.params.lr\":" \
    "[0.01, 0.02]},\"metric\":\"loss\",\"max_concurrent\":1}"

/* A paused trial resumed takes a place among max_concurrent: refused while the other trial
 * holds the only one, held from the resume on (a pending trial cannot take it meanwhile),
 * given back when the resume does not land. The events say what happened to each trial:
 * paused, failed, resumed, and the sweep running again. */
static void a_resumed_trial_holds_max_concurrent_and_the_events_say_what_happened(void **state)
{
    env *v = *state;
    events_seen[0] = '\0';
    v->sv.sweeps.sink.event = record_event;
    sweep_run *r = new_sweep_of(v, TWO_TRIALS);
    drain_queue(v);
    assert_int_equal(r->trials[0].state, TRIAL_ACTIVE);
    assert_int_equal(r->trials[1].state, TRIAL_PENDING);
    char job0[STORE_ID_LEN], why[400];
    snprintf(job0, sizeof job0, "%s", r->trials[0].job);
    assert_int_equal(sweeps_resume_hold(&v->sv.sweeps, job0, why, sizeof why), 0); /* queued */
    sweeps_job_state(&v->sv.sweeps, job0, "paused"); /* its place goes to trial 1 */
    drain_queue(v);
    assert_int_equal(r->trials[1].state, TRIAL_ACTIVE);
    assert_int_equal(sweeps_resume_hold(&v->sv.sweeps, job0, why, sizeof why), -EBUSY);
    assert_non_null(strstr(why, "max_concurrent"));
    assert_non_null(strstr(why, r->id));
    assert_int_equal(r->trials[0].state, TRIAL_ENDED);

    char job1[STORE_ID_LEN];
    snprintf(job1, sizeof job1, "%s", r->trials[1].job);
    sweeps_job_state(&v->sv.sweeps, job1, "failed");
    drain_queue(v);
    assert_true(r->done);
    assert_int_equal(sweeps_resume_hold(&v->sv.sweeps, job0, why, sizeof why), 1);
    assert_int_equal(r->trials[0].state, TRIAL_RESUMING);
    assert_int_equal(sweeps_resume_hold(&v->sv.sweeps, job0, why, sizeof why), -EALREADY);
    /* held: trial 1 resumed now finds no room */
    assert_int_equal(sweeps_resume_hold(&v->sv.sweeps, job1, why, sizeof why), -EBUSY);
    sweeps_resume_undo(&v->sv.sweeps, job0); /* the resume did not land */
    assert_int_equal(r->trials[0].state, TRIAL_ENDED);
    assert_int_equal(sweeps_resume_hold(&v->sv.sweeps, job1, why, sizeof why), 1);
    sweeps_job_state(&v->sv.sweeps, job1, "queued"); /* it landed: the sweep runs again */
    assert_int_equal(r->trials[1].state, TRIAL_ACTIVE);
    assert_false(r->done);
    sweeps_job_state(&v->sv.sweeps, job1, "completed");
    sweeps_job_state(&v->sv.sweeps, job0, "cancelled"); /* a paused trial cancelled */
    drain_queue(v);
    assert_string_equal(events_seen, "trial_started 0, trial_paused 0, trial_started 1, "
                                     "trial_failed 1, completed -1, running -1, "
                                     "trial_resumed 1, trial_ended 1, completed -1, "
                                     "trial_ended 0");
}

/* A trial whose job completed (or was cancelled) cannot be resumed: the job manager says so,
 * not the sweep's max_concurrent, whose message would have the user wait for a place in vain. */
static void a_finished_trial_is_left_to_the_job_manager(void **state)
{
    env *v = *state;
    sweep_run *r = new_sweep_of(v, TWO_TRIALS);
    drain_queue(v);
    char job0[STORE_ID_LEN], why[400] = "";
    snprintf(job0, sizeof job0, "%s", r->trials[0].job);
    sweeps_job_state(&v->sv.sweeps, job0, "completed"); /* its place goes to trial 1 */
    drain_queue(v);
    assert_int_equal(r->trials[1].state, TRIAL_ACTIVE);
    assert_int_equal(sweeps_resume_hold(&v->sv.sweeps, job0, why, sizeof why), 0);
    assert_string_equal(why, "");
    assert_int_equal(r->trials[0].state, TRIAL_ENDED);
    /* a failed one may be resumed: it waits for the place */
    char job1[STORE_ID_LEN];
    snprintf(job1, sizeof job1, "%s", r->trials[1].job);
    sweeps_job_state(&v->sv.sweeps, job1, "failed");
    assert_int_equal(sweeps_resume_hold(&v->sv.sweeps, job1, why, sizeof why), 1);
    sweeps_job_state(&v->sv.sweeps, job1, "cancelled");
    assert_int_equal(sweeps_resume_hold(&v->sv.sweeps, job1, why, sizeof why), 0);
}

/* The request queue's own mechanics this file relies on: a full queue refuses new work, but
 * takes back the next turn of work it already had (workq_requeue: a long generation made in
 * turns is never cut short by the requests that came after it). */
static void a_full_queue_takes_a_turn_back(void **state)
{
    env *v = *state;
    fill_queue(v);
    assert_int_equal(workq_push(&v->sv.quick, noop_work, noop_after, NULL), -EAGAIN);
    assert_int_equal(workq_requeue(&v->sv.quick, noop_work, noop_after, NULL), 0);
    int waiting, running, peak;
    workq_depths(&v->sv.quick, &waiting, &running, &peak);
    assert_int_equal(waiting, 2);
    free_queue(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_state_save_waits_for_room_in_the_queue, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(a_state_save_still_waiting_at_the_end_is_written,
                                        env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(a_job_to_take_back_waits_for_room_in_the_queue,
                                        env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(a_trial_stored_while_stopping_waits_for_the_restart,
                                        env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(state_saves_land_in_order, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(a_full_queue_takes_a_turn_back, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(a_launch_out_at_the_stop_is_freed, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(why_a_trial_cannot_start_outlives_the_process,
                                        env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(a_retried_trial_that_still_cannot_start_ends_again,
                                        env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(
            an_ended_sweep_with_a_resumable_trial_is_driven_after_a_restart, env_setup,
            env_teardown),
        cmocka_unit_test_setup_teardown(
            a_resumed_trial_holds_max_concurrent_and_the_events_say_what_happened, env_setup,
            env_teardown),
        cmocka_unit_test_setup_teardown(a_finished_trial_is_left_to_the_job_manager,
                                        env_setup, env_teardown),
    };
    return cmocka_run_group_tests_name("sweeps", tests, NULL, NULL);
}
