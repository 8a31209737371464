/* Tests of the job manager's transitions (jobs/jobmgr.c): their outcomes, the waiters that a
 * worker's letting go answers, and the events they emit, where a request meets a worker that
 * is letting go of its job.
 *
 * The worker is played by the test: it takes the run off the queue (jobs_take), writes the
 * job's states to the store as jobs/workers.c does, and reports with jobs_done. Events go
 * through the sink the daemon uses (api_events_sink) into the SSE hub's ring, read back
 * here. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "api/http.h"
#include "api/routes.h"
#include "api/api.h"
#include "daemon/options.h"
#include "jobs/jobmgr_internal.h"
#include "tests/unit/store_fixture.h"

typedef struct env {
    void *fix;                 /* store_fixture.h: the temporary directory and its database */
    service sv;                /* the manager's side, with the loop thread's store connection */
    api_t api;                 /* the HTTP side: its SSE hub takes the events */
    uv_loop_t loop;
    daemon_opts opts;
} env;

/* The loop's wake-up: the state thread's finished writes are answered here. */
static void on_async(uv_async_t *a)
{
    service *d = a->data;
    jobs_tasks_complete(&d->jobs);
}

/* Runs the loop until every state write handed to the state thread has been answered. */
static void settle(env *v)
{
    while (v->sv.jobs.tasks_out > 0)
        uv_run(&v->loop, UV_RUN_ONCE);
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
    v->sv.opts = &v->opts;
    v->api.sv = &v->sv;
    if (store_open(&v->sv.store, ((fixture *)v->fix)->path, &e) != 0 ||
        uv_loop_init(&v->loop) != 0 || uv_async_init(&v->loop, &v->sv.wake, on_async) != 0 ||
        sse_hub_init(&v->api.hub, 64, 1) != 0 || jobs_init(&v->sv.jobs, &v->sv) != 0 ||
        model_cache_init(&v->sv.models, 1 << 20) != 0 ||
        jobs_tasks_start(&v->sv.jobs, ((fixture *)v->fix)->path, &v->sv.wake) != 0)
        return -1;
    v->sv.wake.data = &v->sv;
    api_events_sink(&v->api, &v->sv.jobs.sink);
    *state = v;
    return 0;
}

static int env_teardown(void **state)
{
    env *v = *state;
    jobs_close(&v->sv.jobs);
    model_cache_free(&v->sv.models);
    sse_hub_close(&v->api.hub);
    uv_close((uv_handle_t *)&v->sv.wake, NULL);
    uv_run(&v->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&v->loop), 0);
    store_close(&v->sv.store);
    fixture_teardown(&v->fix);
    free(v);
    return 0;
}

/* A queued job in the store and in the manager's queue; its id to `id`. */
static void new_job(env *v, char id[STORE_ID_LEN])
{
    assert_int_equal(make_job(&v->sv.store, "t", NULL, id), 0);
    assert_int_equal(jobs_enqueue(&v->sv.jobs, id, NULL), 0);
}

static store_job_state state_of(env *v, const char *id)
{
    store_job row;
    memset(&row, 0, sizeof row);
    an_err e;
    assert_int_equal(store_job_get(&v->sv.store, id, &row, &e), 0);
    store_job_state st = row.state;
    store_job_free(&row);
    return st;
}

/* The worker's side: takes the run, marks the job running. */
static job_run *worker_takes(env *v, const char *id)
{
    job_run *run = jobs_take(&v->sv.jobs);
    assert_non_null(run);
    assert_string_equal(run->id, id);
    an_err e;
    assert_int_equal(store_job_set_state(&v->sv.store, id, STORE_MASK(STORE_QUEUED),
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
    assert_int_equal(store_job_set_state(&v->sv.store, run->id,
                                         STORE_MASK(STORE_RUNNING) | STORE_MASK(STORE_QUEUED), st,
                                         NULL, NULL, &e), 0);
    uv_mutex_lock(&run->mu);
    run->snap.final = st;
    uv_mutex_unlock(&run->mu);
    jobs_done(&v->sv.jobs, run);
}

/* The data of the newest event in the hub's ring, parsed (caller deletes). */
static cJSON *last_event(env *v, char event[16])
{
    sse_hub *h = &v->api.hub;
    assert_true(h->ring_len > 0);
    const sse_event *ev = &h->ring[(h->ring_head + h->ring_len - 1) % h->ring_cap];
    assert_int_equal(sscanf(ev->frame, "event: %15s", event), 1);
    const char *data = strstr(ev->frame, "data: ");
    assert_non_null(data);
    cJSON *j = cJSON_Parse(data + 6);
    assert_non_null(j);
    return j;
}

/* A caller waiting on a run: what its callback got. */
typedef struct waiter {
    job_waiter w;
    int called;
    job_outcome o;
} waiter;

static void waiter_done(job_waiter *w, const job_outcome *o)
{
    waiter *x = (waiter *)w;
    x->called++;
    x->o = *o;
}

static void waiter_init(waiter *x)
{
    memset(x, 0, sizeof *x);
    x->w.done = waiter_done;
}

/* The waiter was answered once, with success and `st`. */
static void assert_answered(const waiter *x, store_job_state st)
{
    assert_int_equal(x->called, 1);
    assert_int_equal(x->o.result, JOB_OK);
    assert_int_equal(x->o.state, st);
}

static void assert_last_state(env *v, const char *state)
{
    char ev[16];
    cJSON *j = last_event(v, ev);
    assert_string_equal(ev, "state");
    assert_string_equal(cJSON_GetObjectItem(j, "state")->valuestring, state);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "error")));
    cJSON_Delete(j);
}

/* Another connection holds the store's write lock, as a worker committing a large checkpoint
 * does for seconds (the caller commits it). */
static sqlite3 *hold_write_lock(env *v)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(((fixture *)v->fix)->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    return db;
}

static void release_write_lock(sqlite3 *db)
{
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* Cancel asked while the worker was already stopping for a pause: the worker leaves the job
 * paused, and the cancel must still happen; both callers hear `cancelled`. The cancel is
 * written on the state thread: the loop does not wait for a write lock another connection
 * holds (it used to, for the busy timeout, and then answered with the store still saying
 * paused), and the callers are answered once the write has landed. */
static void cancel_after_pause_cancels(void **state)
{
    env *v = *state;
    char id[STORE_ID_LEN];
    new_job(v, id);
    job_run *run = worker_takes(v, id);
    waiter p, c;
    waiter_init(&p);
    waiter_init(&c);
    job_outcome o;
    assert_int_equal(jobs_pause(&v->sv.jobs, id, &p.w, &o), 1);
    assert_int_equal(atomic_load(&run->stop), STOP_PAUSE); /* the worker reads it here */
    assert_int_equal(jobs_cancel(&v->sv.jobs, id, &c.w, &o), 1);
    assert_int_equal(atomic_load(&run->stop), STOP_CANCEL); /* too late for the worker */
    assert_int_equal(p.called + c.called, 0);
    worker_ends(v, run, STORE_PAUSED);
    sqlite3 *db = hold_write_lock(v);
    jobs_poll(&v->sv.jobs);
    uv_run(&v->loop, UV_RUN_NOWAIT);
    assert_int_equal(p.called + c.called, 0); /* the write waits on its own thread */
    assert_non_null(jobs_find(&v->sv.jobs, id)); /* listed until then */
    assert_false(jobs_idle(&v->sv.jobs));
    jobs_poll(&v->sv.jobs); /* a second look starts no second write */
    assert_int_equal(v->sv.jobs.tasks_out, 1);
    assert_int_equal(state_of(v, id), STORE_PAUSED);
    release_write_lock(db);
    settle(v);
    assert_null(jobs_find(&v->sv.jobs, id));
    assert_int_equal(state_of(v, id), STORE_CANCELLED);
    assert_int_equal(p.called, 1);
    assert_int_equal(c.called, 1);
    assert_int_equal(c.o.result, JOB_OK);
    assert_int_equal(c.o.state, STORE_CANCELLED);
    assert_int_equal(p.o.state, STORE_CANCELLED);
    assert_last_state(v, "cancelled");
}

/* A pause that ends as a pause stays one (the cancel rule touches only cancels). */
static void pause_stays_paused(void **state)
{
    env *v = *state;
    char id[STORE_ID_LEN];
    new_job(v, id);
    job_run *run = worker_takes(v, id);
    waiter p;
    waiter_init(&p);
    job_outcome o;
    assert_int_equal(jobs_pause(&v->sv.jobs, id, &p.w, &o), 1);
    worker_ends(v, run, STORE_PAUSED);
    jobs_poll(&v->sv.jobs);
    assert_int_equal(state_of(v, id), STORE_PAUSED);
    assert_int_equal(p.called, 1);
    assert_int_equal(p.o.result, JOB_OK);
    assert_int_equal(p.o.state, STORE_PAUSED);
    assert_last_state(v, "paused");
}

/* A queued job no worker has taken is paused by the state thread alone: the run leaves the
 * queue at once, the caller hears `paused` once the store has it. */
static void pause_of_a_queued_job_needs_no_worker(void **state)
{
    env *v = *state;
    char id[STORE_ID_LEN];
    new_job(v, id);
    waiter p;
    waiter_init(&p);
    job_outcome o;
    assert_int_equal(jobs_pause(&v->sv.jobs, id, &p.w, &o), 1);
    assert_null(jobs_find(&v->sv.jobs, id)); /* no worker can take it any more */
    settle(v);
    assert_int_equal(p.called, 1);
    assert_int_equal(p.o.result, JOB_OK);
    assert_int_equal(p.o.state, STORE_PAUSED);
    assert_int_equal(state_of(v, id), STORE_PAUSED);
    assert_last_state(v, "paused");
}

/* One transition through the state thread; the outcome its waiter got. */
static job_outcome via_state_thread(env *v, int (*fn)(jobmgr *, const char *, job_waiter *,
                                                      job_outcome *), const char *id)
{
    waiter w;
    waiter_init(&w);
    job_outcome o;
    assert_int_equal(fn(&v->sv.jobs, id, &w.w, &o), 1);
    settle(v);
    assert_int_equal(w.called, 1);
    return w.o;
}

/* Refusals name what is wrong and change nothing. */
static void refusals_change_nothing(void **state)
{
    env *v = *state;
    char id[STORE_ID_LEN];
    new_job(v, id);
    job_run *run = worker_takes(v, id);
    worker_ends(v, run, STORE_COMPLETED);
    jobs_poll(&v->sv.jobs);
    size_t events = v->api.hub.ring_len;
    job_outcome o = via_state_thread(v, jobs_pause, "j_nosuchjob");
    assert_int_equal(o.result, JOB_NOT_FOUND);
    assert_string_equal(o.field, "id");
    o = via_state_thread(v, jobs_pause, id);
    assert_int_equal(o.result, JOB_CONFLICT);
    assert_int_equal(o.state, STORE_COMPLETED);
    assert_string_equal(o.field, "state");
    assert_non_null(strstr(o.message, "completed"));
    o = via_state_thread(v, jobs_cancel, id);
    assert_int_equal(o.result, JOB_CONFLICT);
    o = via_state_thread(v, jobs_resume, id);
    assert_int_equal(o.result, JOB_CONFLICT);
    assert_non_null(strstr(o.message, "resume"));
    assert_int_equal(state_of(v, id), STORE_COMPLETED);
    assert_int_equal(v->api.hub.ring_len, events);
    /* A resume of a job a worker holds is refused from memory, without the store. */
    char busy[STORE_ID_LEN];
    new_job(v, busy);
    job_run *held = worker_takes(v, busy);
    waiter w;
    waiter_init(&w);
    assert_int_equal(jobs_resume(&v->sv.jobs, busy, &w.w, &o), 0);
    assert_int_equal(o.result, JOB_CONFLICT);
    assert_int_equal(o.state, STORE_RUNNING);
    assert_non_null(strstr(o.message, "running"));
    assert_int_equal(w.called, 0);
    worker_ends(v, held, STORE_COMPLETED);
    jobs_poll(&v->sv.jobs);
}

/* While another connection holds the store's write lock (as a worker does for seconds while
 * it commits a large checkpoint), a resume and a pause return at once, waiting on the state
 * thread; they land when the lock is released. Made on the loop, each would wait out the
 * busy timeout and then fail. */
static void transitions_do_not_wait_for_the_write_lock(void **state)
{
    env *v = *state;
    char a[STORE_ID_LEN], b[STORE_ID_LEN];
    new_job(v, a);
    job_outcome o = via_state_thread(v, jobs_pause, a);
    assert_int_equal(o.state, STORE_PAUSED);
    new_job(v, b);
    sqlite3 *db = hold_write_lock(v);
    waiter wa, wb;
    waiter_init(&wa);
    waiter_init(&wb);
    assert_int_equal(jobs_resume(&v->sv.jobs, a, &wa.w, &o), 1);
    assert_int_equal(jobs_pause(&v->sv.jobs, b, &wb.w, &o), 1);
    uv_run(&v->loop, UV_RUN_NOWAIT);
    assert_int_equal(wa.called + wb.called, 0); /* still waiting for the lock */
    assert_int_equal(state_of(v, a), STORE_PAUSED);
    release_write_lock(db);
    settle(v);
    assert_answered(&wa, STORE_QUEUED);
    assert_non_null(jobs_find(&v->sv.jobs, a)); /* queued for the workers again */
    assert_int_equal(wb.o.result, JOB_OK);
    assert_int_equal(wb.o.state, STORE_PAUSED);
    assert_int_equal(state_of(v, a), STORE_QUEUED);
    assert_int_equal(state_of(v, b), STORE_PAUSED);
}

/* A pause of a queued job whose write the store refuses (the job was cancelled meanwhile by
 * another writer) puts nothing back in the queue; one still queued goes back. */
static void refused_write_leaves_the_queue_right(void **state)
{
    env *v = *state;
    char id[STORE_ID_LEN];
    new_job(v, id);
    an_err e;
    assert_int_equal(store_job_set_state(&v->sv.store, id, STORE_MASK_ALL, STORE_CANCELLED, NULL,
                                         NULL, &e), 0);
    job_outcome o = via_state_thread(v, jobs_pause, id);
    assert_int_equal(o.result, JOB_CONFLICT);
    assert_int_equal(o.state, STORE_CANCELLED);
    assert_null(jobs_find(&v->sv.jobs, id));
}

/* A job that completed before the worker saw a cancel stays completed, and says so. */
static void cancel_too_late_for_a_completed_job(void **state)
{
    env *v = *state;
    char id[STORE_ID_LEN];
    new_job(v, id);
    job_run *run = worker_takes(v, id);
    waiter c;
    waiter_init(&c);
    job_outcome o;
    assert_int_equal(jobs_cancel(&v->sv.jobs, id, &c.w, &o), 1);
    worker_ends(v, run, STORE_COMPLETED);
    jobs_poll(&v->sv.jobs);
    assert_int_equal(state_of(v, id), STORE_COMPLETED);
    assert_int_equal(c.called, 1);
    assert_int_equal(c.o.state, STORE_COMPLETED);
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
    waiter wa, wb;
    waiter_init(&wa);
    waiter_init(&wb);
    job_outcome o;
    assert_int_equal(jobs_cancel(&v->sv.jobs, a, &wa.w, &o), 1);
    assert_int_equal(jobs_pause(&v->sv.jobs, b, &wb.w, &o), 1);
    jobs_shutdown(&v->sv.jobs);
    assert_int_equal(atomic_load(&ra->stop), STOP_CANCEL);
    assert_int_equal(atomic_load(&rb->stop), STOP_PAUSE);
    assert_int_equal(atomic_load(&rc->stop), STOP_SHUTDOWN);
    worker_ends(v, ra, STORE_CANCELLED);
    worker_ends(v, rb, STORE_PAUSED);
    worker_ends(v, rc, STORE_QUEUED);
    jobs_poll(&v->sv.jobs);
    assert_true(jobs_idle(&v->sv.jobs));
    assert_int_equal(state_of(v, a), STORE_CANCELLED);
    assert_int_equal(state_of(v, b), STORE_PAUSED);
    assert_int_equal(state_of(v, c), STORE_QUEUED);
    assert_int_equal(wa.o.state, STORE_CANCELLED);
    assert_int_equal(wb.o.state, STORE_PAUSED);
}

/* A client that saw `completed` and deletes at once must not get a conflict because the loop
 * has not yet reaped the run the worker already let go of. */
static void delete_right_after_completion(void **state)
{
    env *v = *state;
    char id[STORE_ID_LEN];
    new_job(v, id);
    job_run *run = worker_takes(v, id);
    worker_ends(v, run, STORE_COMPLETED);
    job_outcome o;
    waiter dw;
    waiter_init(&dw);
    assert_int_equal(jobs_delete_check(&v->sv.jobs, id, &dw.w, &o), 0);
    assert_int_equal(o.result, JOB_OK);
    assert_int_equal(dw.called, 0);
    jobs_delete_store(&v->sv.store, id, &o);
    assert_int_equal(o.result, JOB_OK);
    store_job row;
    memset(&row, 0, sizeof row);
    an_err e;
    assert_int_equal(store_job_get(&v->sv.store, id, &row, &e), -ENOENT);
    jobs_delete_store(&v->sv.store, id, &o);
    assert_int_equal(o.result, JOB_NOT_FOUND);
    assert_string_equal(o.field, "id");
}

/* The worker stored `completed` (a client may see it) but has not let go yet: the delete
 * waits for it instead of answering a conflict, and goes through once it has. */
static void delete_while_the_worker_lets_go(void **state)
{
    env *v = *state;
    char id[STORE_ID_LEN];
    new_job(v, id);
    job_run *run = worker_takes(v, id);
    an_err e;
    assert_int_equal(store_job_set_state(&v->sv.store, id, STORE_MASK(STORE_RUNNING),
                                         STORE_COMPLETED, NULL, NULL, &e), 0);
    uv_mutex_lock(&run->mu);
    run->snap.final = STORE_COMPLETED;
    uv_mutex_unlock(&run->mu);
    waiter dw;
    waiter_init(&dw);
    job_outcome o;
    assert_int_equal(jobs_delete_check(&v->sv.jobs, id, &dw.w, &o), 1);
    assert_int_equal(dw.called, 0);
    jobs_done(&v->sv.jobs, run);
    jobs_poll(&v->sv.jobs);
    assert_int_equal(dw.called, 1);
    assert_int_equal(dw.o.result, JOB_OK);
    assert_null(jobs_find(&v->sv.jobs, id));
    jobs_delete_store(&v->sv.store, id, &o);
    assert_int_equal(o.result, JOB_OK);
}

/* A job still held by its worker is not deleted: the check refuses it, and the store's half
 * alone refuses an unfinished job too. */
static void delete_of_a_held_job_changes_nothing(void **state)
{
    env *v = *state;
    char id[STORE_ID_LEN];
    new_job(v, id);
    job_run *run = worker_takes(v, id);
    job_outcome o;
    waiter dw;
    waiter_init(&dw);
    assert_int_equal(jobs_delete_check(&v->sv.jobs, id, &dw.w, &o), 0);
    assert_int_equal(o.result, JOB_CONFLICT);
    assert_string_equal(o.field, "state");
    jobs_delete_store(&v->sv.store, id, &o);
    assert_int_equal(o.result, JOB_CONFLICT);
    assert_int_equal(o.state, STORE_RUNNING);
    assert_int_equal(state_of(v, id), STORE_RUNNING);
    assert_non_null(jobs_find(&v->sv.jobs, id));
    worker_ends(v, run, STORE_COMPLETED);
    jobs_poll(&v->sv.jobs);
}

/* Resume right after the pause landed in the store (the worker has let go, the loop has not
 * reaped the run yet) queues the job again. */
static void resume_right_after_pause(void **state)
{
    env *v = *state;
    char id[STORE_ID_LEN];
    new_job(v, id);
    job_run *run = worker_takes(v, id);
    waiter p;
    waiter_init(&p);
    job_outcome o;
    assert_int_equal(jobs_pause(&v->sv.jobs, id, &p.w, &o), 1);
    worker_ends(v, run, STORE_PAUSED);
    o = via_state_thread(v, jobs_resume, id);
    assert_int_equal(o.result, JOB_OK);
    assert_int_equal(o.state, STORE_QUEUED);
    assert_int_equal(p.called, 1); /* the pause was answered when its run was reaped */
    assert_int_equal(state_of(v, id), STORE_QUEUED);
    job_run *again = jobs_find(&v->sv.jobs, id);
    assert_non_null(again);
    assert_int_equal(atomic_load(&again->stop), STOP_NONE);
    assert_last_state(v, "queued");
}

/* A resume whose state write ends after SIGTERM: the job is queued in the store for the
 * next start, and no run is queued for the workers, which would train it with no stop asked
 * for while the daemon waits for them to let go. */
static void resume_landing_after_shutdown_queues_no_run(void **state)
{
    env *v = *state;
    char id[STORE_ID_LEN];
    new_job(v, id);
    job_run *run = worker_takes(v, id);
    waiter p, r;
    waiter_init(&p);
    waiter_init(&r);
    job_outcome o;
    assert_int_equal(jobs_pause(&v->sv.jobs, id, &p.w, &o), 1);
    worker_ends(v, run, STORE_PAUSED);
    jobs_poll(&v->sv.jobs);
    assert_int_equal(p.called, 1);
    assert_int_equal(jobs_resume(&v->sv.jobs, id, &r.w, &o), 1); /* the write is under way */
    jobs_shutdown(&v->sv.jobs);
    settle(v);
    assert_int_equal(r.called, 1);
    assert_int_equal(r.o.result, JOB_OK);
    assert_int_equal(state_of(v, id), STORE_QUEUED);
    assert_null(jobs_find(&v->sv.jobs, id));
    assert_true(jobs_idle(&v->sv.jobs));
}

/* A resume, then a pause or a cancel, both asked before the store has taken the first: the
 * writes land in that order, so the job ends stopped, and the run the resume's outcome queued
 * goes with the stop's, or a cancelled job would sit in the queue, shown as queued and not
 * deletable. */
static void stop_right_after_resume_leaves_no_run(void **state)
{
    env *v = *state;
    const store_job_state ends[] = {STORE_CANCELLED, STORE_PAUSED};
    for (int k = 0; k < 2; k++) {
        char id[STORE_ID_LEN];
        new_job(v, id);
        job_outcome o;
        waiter p, r, c;
        waiter_init(&p);
        waiter_init(&r);
        waiter_init(&c);
        assert_int_equal(jobs_pause(&v->sv.jobs, id, &p.w, &o), 1); /* queued: unqueued */
        settle(v);
        assert_int_equal(state_of(v, id), STORE_PAUSED);
        assert_int_equal(jobs_resume(&v->sv.jobs, id, &r.w, &o), 1);
        int rc = ends[k] == STORE_CANCELLED ? jobs_cancel(&v->sv.jobs, id, &c.w, &o)
                                            : jobs_pause(&v->sv.jobs, id, &c.w, &o);
        assert_int_equal(rc, 1); /* no run yet: a write, after the resume's */
        settle(v);
        assert_int_equal(r.o.result, JOB_OK);
        assert_int_equal(c.o.result, JOB_OK);
        assert_int_equal(state_of(v, id), ends[k]);
        assert_null(jobs_find(&v->sv.jobs, id));
        assert_true(jobs_idle(&v->sv.jobs));
        job_outcome d;
        waiter dw;
        waiter_init(&dw);
        assert_int_equal(jobs_delete_check(&v->sv.jobs, id, &dw.w, &d), 0);
        assert_int_equal(d.result, JOB_OK);
    }
}

/* A stalled job with no restart left fails through the state thread: the loop thread does
 * not wait for the write lock another connection holds (it used to, for the busy timeout,
 * and then left the job queued). */
static void giving_up_on_a_stalled_job_waits_for_no_lock(void **state)
{
    env *v = *state;
    char id[STORE_ID_LEN];
    new_job(v, id);
    job_run *run = worker_takes(v, id);
    run->max_restarts = 0;
    atomic_store(&run->stop, STOP_STALL);
    worker_ends(v, run, STORE_QUEUED); /* a stalled run lets go queued, for its restart */
    sqlite3 *db = hold_write_lock(v);
    jobs_poll(&v->sv.jobs);
    assert_null(jobs_find(&v->sv.jobs, id)); /* not queued for a restart */
    assert_int_equal(state_of(v, id), STORE_QUEUED); /* the write waits on its own thread */
    release_write_lock(db);
    settle(v);
    assert_int_equal(state_of(v, id), STORE_FAILED);
    char event[16];
    cJSON *ev = last_event(v, event);
    assert_string_equal(event, "state");
    assert_string_equal(cJSON_GetObjectItem(ev, "state")->valuestring, "failed");
    assert_non_null(strstr(cJSON_GetObjectItem(ev, "error")->valuestring, "max_restarts 0"));
    cJSON_Delete(ev);
    assert_true(jobs_idle(&v->sv.jobs));
}

/* A cancel without a waiter (a sweep's) while the scheduler stops the run to preempt it or to
 * restart it after a stall: the cancel wins, or the worker would end the run queued and the
 * scheduler queue it again, a trial of a cancelled sweep training on. */
static void cancel_nowait_beats_the_scheduler(void **state)
{
    env *v = *state;
    const int scheduler_stops[] = {STOP_PREEMPT, STOP_STALL};
    for (int k = 0; k < 2; k++) {
        char id[STORE_ID_LEN];
        new_job(v, id);
        job_run *run = worker_takes(v, id);
        atomic_store(&run->stop, scheduler_stops[k]);
        assert_int_equal(jobs_cancel_nowait(&v->sv.jobs, id), 1);
        assert_int_equal(atomic_load(&run->stop), STOP_CANCEL);
        worker_ends(v, run, STORE_CANCELLED);
        jobs_poll(&v->sv.jobs);
        assert_null(jobs_find(&v->sv.jobs, id));
        assert_int_equal(state_of(v, id), STORE_CANCELLED);
    }
}

/* A job whose run the scheduler was preempting when `p` asked for a pause: the worker let go
 * of it queued, and the write lock is held (returned) when the loop sees that. The pause's
 * write is then on its way to the state thread. */
static sqlite3 *paused_during_preemption(env *v, char id[STORE_ID_LEN], waiter *p)
{
    new_job(v, id);
    job_run *run = worker_takes(v, id);
    atomic_store(&run->stop, STOP_PREEMPT);
    waiter_init(p);
    job_outcome o;
    assert_int_equal(jobs_pause(&v->sv.jobs, id, &p->w, &o), 1);
    assert_int_equal(atomic_load(&run->stop), STOP_PAUSE);
    worker_ends(v, run, STORE_QUEUED); /* it was letting go for the preemption already */
    sqlite3 *db = hold_write_lock(v);
    jobs_poll(&v->sv.jobs);
    return db;
}

/* The pause is written on the state thread, without the loop waiting for the lock (it used
 * to wait out the busy timeout and then answer `queued`). */
static void pause_during_preemption_waits_for_no_lock(void **state)
{
    env *v = *state;
    char id[STORE_ID_LEN];
    waiter p;
    sqlite3 *db = paused_during_preemption(v, id, &p);
    uv_run(&v->loop, UV_RUN_NOWAIT);
    assert_int_equal(p.called, 0);
    assert_int_equal(state_of(v, id), STORE_QUEUED);
    release_write_lock(db);
    settle(v);
    assert_answered(&p, STORE_PAUSED);
    assert_int_equal(state_of(v, id), STORE_PAUSED);
    assert_last_state(v, "paused");
    assert_null(jobs_find(&v->sv.jobs, id)); /* not queued again */
    assert_null(jobs_queue_head(&v->sv.jobs));
}

/* The pause's write fails (the lock held past the busy timeout): its caller still hears
 * paused, and the store gets it from jobs_settle, instead of the job being left queued with
 * no run to take it. */
static void a_failed_late_pause_is_settled_later(void **state)
{
    env *v = *state;
    char id[STORE_ID_LEN];
    waiter p;
    sqlite3 *db = paused_during_preemption(v, id, &p);
    settle(v); /* the write waits out the busy timeout and fails */
    release_write_lock(db);
    assert_answered(&p, STORE_PAUSED);
    assert_non_null(jobs_find_fix(&v->sv.jobs, id));
    assert_null(jobs_find(&v->sv.jobs, id));
    assert_int_equal(state_of(v, id), STORE_QUEUED);
    assert_int_equal(jobs_settle(&v->sv.jobs), 1);
    settle(v);
    assert_null(jobs_find_fix(&v->sv.jobs, id));
    assert_int_equal(state_of(v, id), STORE_PAUSED);
}

/* A cancel that arrives while that pause is being written: the pause lands, then the cancel;
 * both callers hear `cancelled`. */
static void cancel_while_the_late_pause_is_written(void **state)
{
    env *v = *state;
    char id[STORE_ID_LEN];
    waiter p, c;
    sqlite3 *db = paused_during_preemption(v, id, &p);
    waiter_init(&c);
    job_outcome o;
    assert_int_equal(jobs_cancel(&v->sv.jobs, id, &c.w, &o), 1);
    release_write_lock(db);
    settle(v);
    assert_int_equal(state_of(v, id), STORE_CANCELLED);
    assert_int_equal(p.called, 1);
    assert_int_equal(c.called, 1);
    assert_int_equal(p.o.state, STORE_CANCELLED);
    assert_int_equal(c.o.state, STORE_CANCELLED);
    assert_true(jobs_idle(&v->sv.jobs));
}

/* When the state thread takes no more work, a late pause or cancel is not lost: its callers
 * hear the state asked for, which is recorded for jobs_settle, and the job is neither left
 * queued without a run nor queued again. */
static void late_stops_without_the_state_thread_are_settled_later(void **state)
{
    env *v = *state;
    char a[STORE_ID_LEN], b[STORE_ID_LEN];
    waiter p, c, pc;
    sqlite3 *db = paused_during_preemption(v, a, &p); /* the pause's write goes to the thread */
    release_write_lock(db);
    settle(v);
    new_job(v, b);
    job_run *run = worker_takes(v, b);
    waiter_init(&pc);
    waiter_init(&c);
    job_outcome o;
    assert_int_equal(jobs_pause(&v->sv.jobs, b, &pc.w, &o), 1);
    assert_int_equal(jobs_cancel(&v->sv.jobs, b, &c.w, &o), 1);
    char q[STORE_ID_LEN];
    waiter qp;
    new_job(v, q);
    job_run *qrun = worker_takes(v, q);
    atomic_store(&qrun->stop, STOP_PREEMPT);
    waiter_init(&qp);
    assert_int_equal(jobs_pause(&v->sv.jobs, q, &qp.w, &o), 1);
    jobs_tasks_stop(&v->sv.jobs); /* as when the daemon stops it */
    worker_ends(v, run, STORE_PAUSED);
    worker_ends(v, qrun, STORE_QUEUED);
    jobs_poll(&v->sv.jobs);
    assert_answered(&c, STORE_CANCELLED);
    assert_answered(&pc, STORE_CANCELLED);
    assert_answered(&qp, STORE_PAUSED);
    assert_null(jobs_find(&v->sv.jobs, b));
    assert_null(jobs_find(&v->sv.jobs, q));
    assert_null(jobs_queue_head(&v->sv.jobs)); /* not queued again */
    assert_non_null(jobs_find_fix(&v->sv.jobs, b));
    assert_non_null(jobs_find_fix(&v->sv.jobs, q));
    assert_int_equal(jobs_tasks_start(&v->sv.jobs, ((fixture *)v->fix)->path, &v->sv.wake), 0);
    assert_int_equal(jobs_settle(&v->sv.jobs), 2);
    settle(v);
    assert_null(v->sv.jobs.fixes);
    assert_int_equal(state_of(v, b), STORE_CANCELLED);
    assert_int_equal(state_of(v, q), STORE_PAUSED);
    assert_int_equal(state_of(v, a), STORE_PAUSED);
}

/* A final state the store refused (a full disk) is tried again on the state thread, so the
 * loop's retry does not wait for the write lock; it lands once the lock is free. */
static void settling_a_refused_state_waits_for_no_lock(void **state)
{
    env *v = *state;
    char id[STORE_ID_LEN];
    new_job(v, id);
    job_run *run = worker_takes(v, id);
    uv_mutex_lock(&run->mu);
    run->snap.final = STORE_FAILED;
    run->snap.unsaved = 1; /* the worker could not write it */
    snprintf(run->snap.error, sizeof run->snap.error, "out of memory");
    uv_mutex_unlock(&run->mu);
    jobs_done(&v->sv.jobs, run);
    sqlite3 *db = hold_write_lock(v);
    jobs_poll(&v->sv.jobs);
    assert_non_null(jobs_find_fix(&v->sv.jobs, id));
    assert_int_equal(jobs_settle(&v->sv.jobs), 1);
    assert_int_equal(jobs_settle(&v->sv.jobs), 1); /* still one write on its way, not two */
    assert_int_equal(v->sv.jobs.tasks_out, 1);
    /* A resume meanwhile waits behind that write on the state thread, and then finds the
     * state it left (failed: resumable), as after a full disk got room again. */
    job_outcome o;
    waiter r;
    waiter_init(&r);
    assert_int_equal(jobs_resume(&v->sv.jobs, id, &r.w, &o), 1);
    assert_int_equal(state_of(v, id), STORE_RUNNING);
    release_write_lock(db);
    settle(v);
    assert_null(jobs_find_fix(&v->sv.jobs, id));
    assert_null(v->sv.jobs.fixes);
    assert_answered(&r, STORE_QUEUED);
    assert_int_equal(state_of(v, id), STORE_QUEUED);
    assert_non_null(jobs_find(&v->sv.jobs, id));
    assert_int_equal(jobs_settle(&v->sv.jobs), 0);
}

/* The loop thread reads no store while it serves: a job resumed, or put back after a refused
 * pause, is queued with the priority its stored spec gives, read by the state thread (or kept
 * from the run that left the queue). The loop's own connection is pointed at an empty store
 * meanwhile, where such a read would find nothing and queue the job at priority 0. */
static void queueing_reads_no_store_on_the_loop(void **state)
{
    env *v = *state;
    char id[STORE_ID_LEN], low[STORE_ID_LEN];
    store_job_new in = {.name = "urgent", .total_steps = 100,
                        .spec_json = "{\"model\":{\"type\":\"mlp\"},\"steps\":100,\"priority\":7}"};
    an_err e;
    assert_int_equal(store_job_create(&v->sv.store, &in, id, NULL), 0);
    assert_int_equal(make_job(&v->sv.store, "t", NULL, low), 0);
    void *fix2 = NULL;
    assert_int_equal(fixture_setup(&fix2), 0);
    store_t empty, loop_store = v->sv.store;
    assert_int_equal(store_open(&empty, ((fixture *)fix2)->path, &e), 0);
    v->sv.store = empty;
    assert_int_equal(jobs_enqueue(&v->sv.jobs, low, &JOBS_SCHED_DEFAULTS), 0);
    job_outcome o;
    waiter p, r;
    waiter_init(&p);
    assert_int_equal(jobs_pause(&v->sv.jobs, id, &p.w, &o), 1); /* queued in the store only */
    settle(v);
    assert_answered(&p, STORE_PAUSED);
    waiter_init(&r);
    assert_int_equal(jobs_resume(&v->sv.jobs, id, &r.w, &o), 1);
    settle(v);
    assert_answered(&r, STORE_QUEUED);
    job_run *run = jobs_find(&v->sv.jobs, id);
    assert_non_null(run);
    assert_int_equal(run->priority, 7);
    assert_ptr_equal(jobs_queue_head(&v->sv.jobs), run); /* before the older job of priority 0 */
    /* A pause the state thread cannot take puts the run back with the numbers it had. */
    jobs_tasks_stop(&v->sv.jobs);
    waiter_init(&p);
    assert_int_equal(jobs_pause(&v->sv.jobs, id, &p.w, &o), 0);
    assert_int_equal(o.result, JOB_BUSY);
    run = jobs_find(&v->sv.jobs, id);
    assert_non_null(run);
    assert_int_equal(run->priority, 7);
    assert_ptr_equal(jobs_queue_head(&v->sv.jobs), run);
    v->sv.store = loop_store;
    store_close(&empty);
    fixture_teardown(&fix2);
}

/* A run made ahead of its queueing (by a submit's request thread, so that queueing on the
 * loop cannot fail for memory) joins the queue with its numbers; one made for a job already
 * live, or while the daemon stops, is discarded and leaves the queue as it was. */
static void a_run_made_ahead_joins_the_queue(void **state)
{
    env *v = *state;
    char id[STORE_ID_LEN], late[STORE_ID_LEN];
    assert_int_equal(make_job(&v->sv.store, "t", NULL, id), 0);
    job_run *r = jobs_run_new(id);
    assert_non_null(r);
    store_job_sched js = JOBS_SCHED_DEFAULTS;
    js.priority = 5;
    jobs_enqueue_run(&v->sv.jobs, r, &js);
    assert_ptr_equal(jobs_find(&v->sv.jobs, id), r);
    assert_ptr_equal(jobs_queue_head(&v->sv.jobs), r);
    assert_int_equal(r->priority, 5);
    job_run *twin = jobs_run_new(id);
    assert_non_null(twin);
    jobs_enqueue_run(&v->sv.jobs, twin, &JOBS_SCHED_DEFAULTS); /* freed: ASan would see a leak */
    assert_ptr_equal(jobs_find(&v->sv.jobs, id), r);
    assert_ptr_equal(jobs_queue_head(&v->sv.jobs), r);
    assert_int_equal(qtree_count(&v->sv.jobs.queue), 1);
    job_run *run = worker_takes(v, id);
    assert_ptr_equal(run, r);
    assert_int_equal(make_job(&v->sv.store, "t", NULL, late), 0);
    v->sv.jobs.shutting_down = 1;
    jobs_enqueue_run(&v->sv.jobs, jobs_run_new(late), &JOBS_SCHED_DEFAULTS);
    assert_null(jobs_find(&v->sv.jobs, late));
    assert_null(jobs_queue_head(&v->sv.jobs));
    v->sv.jobs.shutting_down = 0;
    worker_ends(v, run, STORE_COMPLETED);
}

/* A PATCH of the priority that lands while a resume's write is on the state thread (which
 * read the numbers before it) is not lost: the run is queued with the PATCHed priority. The
 * store keeps the old one here, as the state thread's read saw it. */
static void a_priority_patched_during_a_resume_is_kept(void **state)
{
    env *v = *state;
    char id[STORE_ID_LEN];
    new_job(v, id);
    job_outcome o;
    waiter p, r;
    waiter_init(&p);
    assert_int_equal(jobs_pause(&v->sv.jobs, id, &p.w, &o), 1);
    settle(v);
    assert_answered(&p, STORE_PAUSED);
    waiter_init(&r);
    assert_int_equal(jobs_resume(&v->sv.jobs, id, &r.w, &o), 1);
    jobs_sched_reprioritize(&v->sv.jobs, id, 5); /* no run yet: kept for the queueing */
    settle(v);
    assert_answered(&r, STORE_QUEUED);
    job_run *run = jobs_find(&v->sv.jobs, id);
    assert_non_null(run);
    assert_int_equal(run->priority, 5);
    int prio = 0;
    assert_int_equal(jobs_sched_patched(&v->sv.jobs, id, &prio), 1);
    assert_int_equal(prio, 5);
    assert_int_equal(jobs_sched_patched(&v->sv.jobs, "j_999999", &prio), 0);
}

/* A job whose worker could not write its final state (failed) to the store: a fix. */
static void unsaved_final_state(env *v, char id[STORE_ID_LEN])
{
    new_job(v, id);
    job_run *run = worker_takes(v, id);
    uv_mutex_lock(&run->mu);
    run->snap.final = STORE_FAILED;
    run->snap.unsaved = 1;
    snprintf(run->snap.error, sizeof run->snap.error, "out of memory");
    uv_mutex_unlock(&run->mu);
    jobs_done(&v->sv.jobs, run);
    jobs_poll(&v->sv.jobs);
    assert_non_null(jobs_find_fix(&v->sv.jobs, id));
}

/* A final state the store still owes when the daemon stops is tried again before it stops,
 * instead of being lost with the process (the next start would queue the job again). */
static void stopping_settles_the_states_still_owed(void **state)
{
    env *v = *state;
    char id[STORE_ID_LEN];
    unsaved_final_state(v, id);
    jobs_shutdown(&v->sv.jobs);
    assert_true(jobs_idle(&v->sv.jobs));
    assert_int_equal(jobs_drained(&v->sv.jobs), 0); /* the write is on its way */
    assert_int_equal(v->sv.jobs.tasks_out, 1);
    assert_int_equal(jobs_drained(&v->sv.jobs), 0);
    settle(v);
    assert_int_equal(jobs_drained(&v->sv.jobs), 1);
    assert_null(v->sv.jobs.fixes);
    assert_int_equal(state_of(v, id), STORE_FAILED);
}

/* A store that cannot take it does not hold up the stop: a few tries, then the daemon may
 * stop with the fix left (logged), the job's stored state unchanged. */
static void stopping_gives_up_on_a_store_that_refuses(void **state)
{
    env *v = *state;
    char id[STORE_ID_LEN];
    unsaved_final_state(v, id);
    jobs_tasks_stop(&v->sv.jobs); /* every write is refused at once */
    jobs_shutdown(&v->sv.jobs);
    int calls = 1;
    while (!jobs_drained(&v->sv.jobs)) {
        assert_true(calls < 10);
        calls++;
    }
    assert_true(calls > 1);
    assert_non_null(jobs_find_fix(&v->sv.jobs, id));
    assert_int_equal(state_of(v, id), STORE_RUNNING);
}

/* Nor does a store whose writes each wait out the busy timeout: no try starts two seconds
 * after the first, however few were made. */
static void stopping_tries_for_two_seconds_at_most(void **state)
{
    env *v = *state;
    char id[STORE_ID_LEN];
    unsaved_final_state(v, id);
    jobs_tasks_stop(&v->sv.jobs);
    jobs_shutdown(&v->sv.jobs);
    assert_int_equal(jobs_drained(&v->sv.jobs), 0); /* the first try */
    assert_int_equal(v->sv.jobs.drain_settles, 1);
    v->sv.jobs.drain_settle_t0 -= 2.5;              /* as if it had waited that long */
    assert_int_equal(jobs_drained(&v->sv.jobs), 1);
    assert_int_equal(v->sv.jobs.drain_settles, 1);  /* no second try */
    assert_non_null(jobs_find_fix(&v->sv.jobs, id));
}

/* Job `id`'s place asked of the manager through the overlay `o`: {pos, len}, or {0, 0}. */
static void place_of(job_overlay *o, const char *id, size_t want_pos, size_t want_len)
{
    size_t pos = 0, len = 0;
    int known = jobs_queue_place(o, id, &pos, &len);
    assert_int_equal(known, want_pos != 0);
    assert_int_equal(pos, want_pos);
    assert_int_equal(len, want_len);
}

/* Three thousand runs (more than the index's first buckets): each is found by id, counted,
 * and placed by priority then age; an answer's own PATCH or submit shows the place it gives
 * without moving anything yet; a taken run not started counts first; a list's places are of
 * one moment; a run unlinked is gone from the index and the queue. */
static void many_runs_are_indexed_and_placed(void **state)
{
    env *v = *state;
    jobmgr *m = &v->sv.jobs;
    enum { N = 3000 };
    static char ids[N][STORE_ID_LEN];
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof ids[i], "j_%06d", i + 1);
        store_job_sched js = JOBS_SCHED_DEFAULTS;
        js.priority = i % 3;
        jobs_enqueue_run(m, jobs_run_new(ids[i]), &js);
    }
    for (int i = 0; i < N; i++)
        assert_string_equal(jobs_find(m, ids[i])->id, ids[i]);
    assert_null(jobs_find(m, "j_009999"));
    int queued, running;
    jobs_counts(m, &queued, &running);
    assert_int_equal(queued, N);
    assert_int_equal(running, 0);
    /* priority 2 (i = 2, 5, …: 1000 jobs) first, then 1, then 0, each oldest first */
    job_overlay o;
    assert_int_equal(jobs_overlay_capture(m, &o), 0);
    place_of(&o, ids[2], 1, N);
    place_of(&o, ids[N - 1], 1000, N);  /* i = 2999: priority 2, the youngest of them */
    place_of(&o, ids[1], 1001, N);
    place_of(&o, ids[0], 2001, N);
    place_of(&o, ids[N - 3], N, N);     /* i = 2997: priority 0, the youngest */
    /* the PATCH this answer is for: priority 5 puts the youngest first, moving nothing yet */
    jobs_queue_place_at(&o, ids[N - 3], 5, 0);
    place_of(&o, ids[N - 3], 1, N);
    place_of(&o, ids[2], 1, N);
    jobs_overlay_free(&o);
    assert_int_equal(jobs_overlay_capture(m, &o), 0);
    place_of(&o, ids[N - 3], N, N);
    /* lowered below the others of its priority: last of them, though older */
    jobs_queue_place_at(&o, ids[0], -1, 0);
    place_of(&o, ids[0], N, N);
    /* a submit's answer: a new job not queued yet goes after its priority's elders */
    jobs_queue_place_at(&o, "j_009999", 1, 1);
    place_of(&o, "j_009999", 2001, N + 1);
    jobs_overlay_free(&o);
    /* a run taken but not started counts first; the head moves up behind it */
    job_run *head = jobs_take(m);
    assert_ptr_equal(head, jobs_find(m, ids[2]));
    assert_int_equal(qtree_count(&m->queue), N - 1);
    assert_int_equal(jobs_overlay_capture(m, &o), 0);
    place_of(&o, ids[2], 1, N);
    place_of(&o, ids[5], 2, N);
    /* a list's places, fixed at one moment: a run leaving afterwards changes none of them */
    const char *list[] = {ids[5], ids[0], "j_009999", ids[2]};
    assert_int_equal(jobs_queue_fix(&o, list, 4), 0);
    job_run *r5 = jobs_find(m, ids[5]);
    assert_int_equal(jobs_unqueue(m, r5), 1);
    jobs_unlink_run(m, r5);
    jobs_run_free(r5);
    assert_null(jobs_find(m, ids[5]));
    place_of(&o, ids[5], 2, N);
    place_of(&o, ids[0], 2001, N);
    place_of(&o, "j_009999", 0, 0);
    jobs_overlay_free(&o);
    /* asked again: ids[5] is not queued, ids[8] took its place */
    assert_int_equal(jobs_overlay_capture(m, &o), 0);
    place_of(&o, ids[5], 0, 0);
    place_of(&o, ids[8], 2, N - 1);
    jobs_overlay_free(&o);
    jobs_counts(m, &queued, &running);
    assert_int_equal(queued, N - 2);
    assert_int_equal(running, 1);
    int prio[4], count[4];
    assert_int_equal(jobs_queue_by_priority(m, prio, count, 4), 3);
    assert_int_equal(prio[0], 2);
    assert_int_equal(count[0], 998);
    assert_int_equal(prio[2], 0);
    assert_int_equal(count[2], 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(cancel_after_pause_cancels, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(pause_stays_paused, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(pause_of_a_queued_job_needs_no_worker, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(refusals_change_nothing, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(transitions_do_not_wait_for_the_write_lock, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(refused_write_leaves_the_queue_right, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(cancel_too_late_for_a_completed_job, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(shutdown_keeps_an_asked_stop, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(delete_right_after_completion, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(delete_while_the_worker_lets_go, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(delete_of_a_held_job_changes_nothing, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(resume_right_after_pause, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(resume_landing_after_shutdown_queues_no_run, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(cancel_nowait_beats_the_scheduler, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(stop_right_after_resume_leaves_no_run, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(pause_during_preemption_waits_for_no_lock, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(a_failed_late_pause_is_settled_later, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(cancel_while_the_late_pause_is_written, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(late_stops_without_the_state_thread_are_settled_later,
                                        env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(settling_a_refused_state_waits_for_no_lock, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(queueing_reads_no_store_on_the_loop, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(a_run_made_ahead_joins_the_queue, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(many_runs_are_indexed_and_placed, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(a_priority_patched_during_a_resume_is_kept, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(stopping_settles_the_states_still_owed, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(stopping_gives_up_on_a_store_that_refuses, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(stopping_tries_for_two_seconds_at_most, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(giving_up_on_a_stalled_job_waits_for_no_lock, env_setup,
                                        env_teardown),
    };
    return cmocka_run_group_tests_name("jobmgr", tests, NULL, NULL);
}
