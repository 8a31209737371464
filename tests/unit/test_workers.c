/* Tests of a worker's parts that do not train: the recent pace and the checkpoint token bucket
 * (jobs/pace.c), and the writer's ring (jobs/writer.c) on a real store: batches commit in
 * step order, the drain waits for all of them, row times are spread between clock reads, and
 * after a failure everything queued behind it is dropped and the failure reported. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "jobs/service.h"
#include "jobs/wctx.h"
#include "tests/unit/store_fixture.h"
#include "util/util.h"

/* ---- pace ---------------------------------------------------------------------------- */

static void pace_rate_is_over_the_points_held(void **state)
{
    (void)state;
    pace p;
    memset(&p, 0, sizeof p);
    assert_true(isnan(pace_rate(&p, 1.0, 10)));
    pace_add(&p, 0.0, 0);
    assert_true(isnan(pace_rate(&p, 0.0, 0))); /* no time gone by */
    assert_true(pace_rate(&p, 2.0, 100) == 50.0);
    /* PACE_N points at 1 s apart, 10 steps each, then a faster stretch: the oldest points
     * drop out and the rate follows the recent pace. */
    for (int k = 1; k < PACE_N; k++)
        pace_add(&p, (double)k, 10 * k);
    assert_int_equal(p.n, PACE_N);
    assert_true(pace_rate(&p, (double)PACE_N, 10 * PACE_N) == 10.0);
    for (int k = 0; k < PACE_N; k++)
        pace_add(&p, (double)(PACE_N + k), 10 * PACE_N + 100 * k);
    double now = (double)(2 * PACE_N), at = 10 * PACE_N + 100 * PACE_N;
    assert_true(pace_rate(&p, now, (int64_t)at) == 100.0);
}

static void pace_tick_adds_a_point_per_interval(void **state)
{
    (void)state;
    pace p;
    memset(&p, 0, sizeof p);
    pace_add(&p, 10.0, 0);
    pace_tick(&p, 10.0 + PACE_EVERY_S / 2, 5);
    assert_int_equal(p.n, 1);
    pace_tick(&p, 10.0 + PACE_EVERY_S, 10);
    assert_int_equal(p.n, 2);
}

/* ---- checkpoint token bucket ---------------------------------------------------------- */

static void bucket_allows_a_burst_then_one_per_gap(void **state)
{
    (void)state;
    ckpt_bucket b = {CKPT_BURST, 100.0};
    int taken = 0;
    for (int k = 0; k < 100; k++)
        taken += ckpt_take(&b, 100.0);
    assert_int_equal(taken, (int)CKPT_BURST);
    assert_int_equal(ckpt_take(&b, 100.0 + CKPT_GAP_S / 2), 0);
    assert_int_equal(ckpt_take(&b, 100.0 + CKPT_GAP_S * 1.01), 1);
    assert_int_equal(ckpt_take(&b, 100.0 + CKPT_GAP_S * 1.01), 0);
    /* A long quiet spell refills to the burst, never beyond it. */
    taken = 0;
    for (int k = 0; k < 100; k++)
        taken += ckpt_take(&b, 1000.0);
    assert_int_equal(taken, (int)CKPT_BURST);
}

/* ---- the writer's ring ---------------------------------------------------------------- */

typedef struct ring_env {
    fixture *f;
    jobmgr m;
    job_run run;
    wctx *w;
    char id[STORE_ID_LEN];
} ring_env;

static int ring_setup(void **state)
{
    void *fs = NULL;
    if (fixture_setup(&fs) != 0)
        return -1;
    ring_env *v = calloc(1, sizeof *v);
    v->f = fs;
    v->w = calloc(1, sizeof *v->w);
    an_err e;
    if (!v->w || make_job(&v->f->s, "ring", NULL, v->id) != 0 ||
        store_open(&v->w->store, v->f->path, &e) != 0 || jobs_init(&v->m, NULL) != 0 ||
        uv_mutex_init(&v->run.mu) != 0)
        return -1;
    snprintf(v->run.id, sizeof v->run.id, "%s", v->id);
    v->w->jobs = &v->m;
    v->w->run = &v->run;
    v->w->batch_samples = 4;
    if (writer_start(v->w) != 0)
        return -1;
    wctx_run_begin(v->w, 0);
    *state = v;
    return 0;
}

static int ring_teardown(void **state)
{
    ring_env *v = *state;
    writer_stop(v->w);
    store_close(&v->w->store);
    free(v->w);
    uv_mutex_destroy(&v->run.mu);
    jobs_close(&v->m);
    void *fs = v->f;
    free(v);
    return fixture_teardown(&fs);
}

/* Fills the batch being filled with rows first..first+n-1 and queues it. */
static int queue_rows(wctx *w, int64_t first, size_t n, an_err *e)
{
    train_report last;
    memset(&last, 0, sizeof last);
    for (size_t k = 0; k < n; k++) {
        store_metric *m = &w->batch[w->nbatch++];
        memset(m, 0, sizeof *m);
        m->step = first + (int64_t)k;
        m->loss = 1.0 / (double)m->step;
        m->n_lr = 1;
        m->lr[0] = 1e-3;
        m->grad_norm = NAN;
    }
    last.step = first + (int64_t)n - 1;
    last.loss = 1.0 / (double)last.step;
    last.ngroups = 1;
    last.lr[0] = 1e-3;
    return wctx_flush(w, &last, e);
}

/* The ring's job has exactly steps 1..n stored, in order, loss 1/step, its time never going
 * backwards. */
static void assert_steps_stored(ring_env *v, int64_t n)
{
    an_err e;
    store_series ser;
    memset(&ser, 0, sizeof ser);
    assert_int_equal(store_metrics_query(&v->f->s, v->id, 1, -1, 0, &ser, &e), 0);
    assert_int_equal(ser.n, (size_t)n);
    for (size_t i = 0; i < ser.n; i++) {
        assert_int_equal(ser.step[i], (int64_t)i + 1);
        assert_true(ser.loss[i] == 1.0 / (double)(i + 1));
        if (i > 0)
            assert_true(ser.time[i] >= ser.time[i - 1]);
    }
    store_series_free(&ser);
}

static void batches_commit_in_order_and_drain_waits(void **state)
{
    ring_env *v = *state;
    an_err e;
    /* More batches than slots: the worker waits for the writer, never overwrites a slot. */
    int64_t step = 1;
    for (int b = 0; b < 4 * WIDE_SLOTS; b++) {
        size_t n = 100 + 37 * (size_t)b;
        assert_int_equal(queue_rows(v->w, step, n, &e), 0);
        step += (int64_t)n;
    }
    assert_int_equal(wctx_drain(v->w, &e), 0);
    assert_int_equal(v->w->wr.queued, 0);
    int64_t count = 0;
    assert_int_equal(store_metrics_count(&v->f->s, v->id, &count, &e), 0);
    assert_int_equal(count, step - 1);
    assert_int_equal(atomic_load(&v->m.steps_trained), (uint64_t)(step - 1));
    assert_int_equal(atomic_load(&v->m.samples_trained), (uint64_t)(step - 1) * 4);
    assert_steps_stored(v, step - 1);
}

static void rows_between_clock_reads_get_spread_times(void **state)
{
    ring_env *v = *state;
    wctx *w = v->w;
    w->t0 = util_now();
    w->time_base = 5.0;
    w->t_last = 5.0;
    for (int k = 0; k < 8; k++)
        w->batch[w->nbatch++].step = k + 1;
    double now = wctx_stamp(w, 8);
    double t = 5.0 + (now - w->t0);
    assert_int_equal(w->nstamped, 8);
    for (int k = 0; k < 8; k++) /* evenly from the last stamp to now, the last one at now */
        assert_true(fabs(w->batch[k].time - (5.0 + (t - 5.0) * (k + 1) / 8.0)) < 1e-12);
    assert_true(w->batch[7].time == t);
    w->nbatch = w->nstamped = 0;
}

/* A run with one learning rate records compact steps (wslot.crow) and clock reads; the
 * writer writes them into whole rows before it commits: every value back as recorded, and
 * the times those of wctx_stamp's even spread (an empty read between moves the base), over
 * more than one slot. */
/* Starts a compact run on the ring, its clock at 0 now. */
static wctx *begin_compact(ring_env *v)
{
    wctx_run_begin(v->w, 1);
    v->w->t0 = util_now();
    return v->w;
}

static void compact_steps_are_written_whole_by_the_writer(void **state)
{
    ring_env *v = *state;
    wctx *w = begin_compact(v);
    an_err e;
    w->time_base = 2.0;
    w->t_last = 2.0;
    /* Then a clock read at every step, as a slow job's: a slot is queued before its marks
     * run out, well before METRIC_BATCH rows. */
    enum { EVERY = METRIC_BATCH + 700, N = EVERY + 2 * SLOT_MARKS + 100 };
    static double want_time[N + 1];
    static size_t marks[8 + N - EVERY];
    size_t init[] = {5, 5, 8, 900, METRIC_BATCH - 1, METRIC_BATCH, METRIC_BATCH + 3, EVERY};
    size_t nmarks = 0;
    for (size_t i = 0; i < 8; i++)
        marks[nmarks++] = init[i];
    for (size_t st = EVERY + 1; st <= N; st++)
        marks[nmarks++] = st;
    int64_t step = 0;
    double base = 2.0;
    train_report last;
    memset(&last, 0, sizeof last);
    size_t first = 0; /* the first step of the current stamp interval (0-based) */
    int64_t slots_at_every = -1;
    for (size_t i = 0; i < nmarks; i++) {
        while ((size_t)step < marks[i]) {
            if (wctx_slot_full(w)) { /* as the worker: a full slot is flushed */
                if (step > EVERY)
                    assert_true(w->nbatch < METRIC_BATCH && w->nbatch >= SLOT_MARKS - 3);
                last.step = step;
                assert_int_equal(wctx_flush(w, &last, &e), 0);
                first = (size_t)step;
                base = w->t_last;
            }
            step++;
            wrow *r = &w->crow[w->nbatch++];
            r->step = step;
            r->loss = 1.0 / (double)step;
            r->grad_norm = step % 7 ? (double)step / 3.0 : NAN;
            r->lr = 1e-3 * (double)(step % 5 + 1);
        }
        double t = 2.0 + (wctx_stamp(w, step) - w->t0);
        size_t c = (size_t)step - first;
        for (size_t k = 1; k <= c; k++)
            want_time[first + k] = k == c ? t : base + (t - base) * (double)k / (double)c;
        first = (size_t)step;
        base = t;
        if (step == EVERY)
            slots_at_every = w->wr.head;
    }
    /* two slots' worth of marks past EVERY: at least two more slots */
    assert_true((w->wr.head - slots_at_every + WRITE_SLOTS) % WRITE_SLOTS >= 2);
    last.step = step;
    assert_int_equal(wctx_flush(w, &last, &e), 0);
    assert_int_equal(wctx_drain(w, &e), 0);
    store_series ser;
    memset(&ser, 0, sizeof ser);
    assert_int_equal(store_metrics_query(&v->f->s, v->id, 1, -1, 0, &ser, &e), 0);
    assert_int_equal(ser.n, (size_t)N);
    assert_int_equal(ser.n_lr, 1);
    for (size_t i = 0; i < ser.n; i++) {
        int64_t s1 = (int64_t)i + 1;
        assert_int_equal(ser.step[i], s1);
        assert_true(ser.loss[i] == 1.0 / (double)s1);
        if (s1 % 7)
            assert_true(ser.grad_norm[i] == (double)s1 / 3.0);
        else
            assert_true(isnan(ser.grad_norm[i]));
        assert_true(ser.lr[i] == 1e-3 * (double)(s1 % 5 + 1));
        if (ser.time[i] != want_time[i + 1])
            fail_msg("time of step %lld: %.17g, want %.17g", (long long)s1, ser.time[i],
                     want_time[i + 1]);
    }
    store_series_free(&ser);
}

static void a_failure_drops_what_is_queued_behind_it(void **state)
{
    ring_env *v = *state;
    an_err e;
    an_err_clear(&e);
    /* The first batch starts at step -49, which the store refuses; the good batches queued
     * behind it must not be committed (a checkpoint could otherwise land past missing rows). */
    int rc = queue_rows(v->w, -49, 50, &e);
    for (int b = 1; b < 2 * WIDE_SLOTS && !rc; b++)
        rc = queue_rows(v->w, 50 * b - 49, 50, &e);
    int drc = wctx_drain(v->w, &e);
    assert_int_not_equal(drc, 0);
    assert_string_equal(v->w->fail_what, "metrics");
    assert_int_equal(v->w->fail_step, 0); /* the first batch's last step */
    assert_int_equal(atomic_load(&v->m.steps_trained), 0);
    int64_t count = -1;
    assert_int_equal(store_metrics_count(&v->f->s, v->id, &count, &e), 0);
    assert_int_equal(count, 0);
}

/* Full batches queued behind one the writer is stuck on (another connection holds the write
 * lock) commit together once it is free: fewer transactions, the same rows in order. */
static void full_batches_queued_behind_commit_together(void **state)
{
    ring_env *v = *state;
    an_err e;
    assert_int_equal(sqlite3_exec(v->f->s.db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    int64_t step = 1;
    /* one slot fewer than the ring: the worker never has to wait for the stuck writer */
    for (int b = 0; b < WIDE_SLOTS - 1; b++) {
        assert_int_equal(queue_rows(v->w, step, METRIC_BATCH, &e), 0);
        step += METRIC_BATCH;
    }
    assert_int_equal(sqlite3_exec(v->f->s.db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(wctx_drain(v->w, &e), 0);
    assert_true(v->w->wr.commits < (uint64_t)(WIDE_SLOTS - 1));
    assert_int_equal(atomic_load(&v->m.steps_trained), (uint64_t)(step - 1));
    store_series ser;
    memset(&ser, 0, sizeof ser);
    assert_int_equal(store_metrics_query(&v->f->s, v->id, 1, -1, 0, &ser, &e), 0);
    assert_int_equal(ser.n, (size_t)(step - 1));
    for (size_t i = 0; i < ser.n; i++)
        assert_int_equal(ser.step[i], (int64_t)i + 1);
    store_series_free(&ser);
}

/* Fills the compact slot being filled with steps first..first+n-1, reads the clock once and
 * queues it. */
static int queue_steps(wctx *w, int64_t first, size_t n, an_err *e)
{
    for (size_t k = 0; k < n; k++) {
        wrow *r = &w->crow[w->nbatch++];
        r->step = first + (int64_t)k;
        r->loss = 1.0 / (double)r->step;
        r->grad_norm = 0.5;
        r->lr = 1e-3;
    }
    train_report last;
    memset(&last, 0, sizeof last);
    last.step = first + (int64_t)n - 1;
    last.loss = 1.0 / (double)last.step;
    last.lr[0] = 1e-3;
    wctx_stamp(w, last.step);
    return wctx_flush(w, &last, e);
}

/* A compact run's ring holds WRITE_SLOTS batches: with the writer stuck behind another
 * connection's write lock (as behind its own copy of the WAL), the worker queues all but one
 * of them without waiting; then the writer catches up in commits of at most MERGE_MAX
 * batches, around the ring's end, every row in order. */
static void compact_ring_holds_more_than_the_wide_one(void **state)
{
    ring_env *v = *state;
    wctx *w = begin_compact(v);
    an_err e;
    int64_t step = 1;
    for (int b = 0; b < WRITE_SLOTS / 2; b++) { /* the ring's head half way round first */
        assert_int_equal(queue_steps(w, step, METRIC_BATCH, &e), 0);
        step += METRIC_BATCH;
    }
    assert_int_equal(wctx_drain(w, &e), 0);
    uint64_t commits0 = w->wr.commits;
    assert_int_equal(sqlite3_exec(v->f->s.db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    double t0 = util_now();
    for (int b = 0; b < WRITE_SLOTS - 1; b++) {
        assert_int_equal(queue_steps(w, step, METRIC_BATCH, &e), 0);
        step += METRIC_BATCH;
    }
    /* queued while the writer could commit none of them (its busy timeout is 5 s) */
    assert_true(util_now() - t0 < 4.0);
    assert_int_equal(w->wr.queued, WRITE_SLOTS - 1);
    assert_int_equal(sqlite3_exec(v->f->s.db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(queue_steps(w, step, 123, &e), 0); /* a partial one after them */
    step += 123;
    assert_int_equal(wctx_drain(w, &e), 0);
    uint64_t commits = w->wr.commits - commits0;
    assert_true(commits >= (uint64_t)((WRITE_SLOTS - 1 + MERGE_MAX - 1) / MERGE_MAX));
    assert_true(commits < (uint64_t)(WRITE_SLOTS - 1));
    assert_int_equal(atomic_load(&v->m.steps_trained), (uint64_t)(step - 1));
    assert_steps_stored(v, step - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pace_rate_is_over_the_points_held),
        cmocka_unit_test(pace_tick_adds_a_point_per_interval),
        cmocka_unit_test(bucket_allows_a_burst_then_one_per_gap),
        cmocka_unit_test_setup_teardown(batches_commit_in_order_and_drain_waits, ring_setup,
                                        ring_teardown),
        cmocka_unit_test_setup_teardown(rows_between_clock_reads_get_spread_times, ring_setup,
                                        ring_teardown),
        cmocka_unit_test_setup_teardown(compact_steps_are_written_whole_by_the_writer,
                                        ring_setup, ring_teardown),
        cmocka_unit_test_setup_teardown(a_failure_drops_what_is_queued_behind_it, ring_setup,
                                        ring_teardown),
        cmocka_unit_test_setup_teardown(full_batches_queued_behind_commit_together, ring_setup,
                                        ring_teardown),
        cmocka_unit_test_setup_teardown(compact_ring_holds_more_than_the_wide_one, ring_setup,
                                        ring_teardown),
    };
    return cmocka_run_group_tests_name("workers", tests, NULL, NULL);
}
