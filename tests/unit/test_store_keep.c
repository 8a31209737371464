/* test_store_keep — checkpoint retention beyond keep_last: keep_best by a metric, pins, and
 * retention committing while another connection reads a checkpoint (a resume). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <cjson/cJSON.h>

#include "store_fixture.h"

/* The steps of the job's checkpoints, as "s1,s2,…". */
static void steps_of(store_t *s, const char *id, char *buf, size_t size)
{
    store_checkpoint_info *l = NULL;
    size_t n = 0;
    an_err e;
    assert_int_equal(store_checkpoint_list(s, id, &l, &n, &e), 0);
    size_t k = 0;
    buf[0] = 0;
    for (size_t i = 0; i < n; i++)
        k += (size_t)snprintf(buf + k, size - k, "%s%" PRId64, i ? "," : "", l[i].step);
    free(l);
}

static void commit(store_t *s, const char *id, int64_t step, double loss, const store_keep *k)
{
    an_err e;
    char blob[64];
    snprintf(blob, sizeof blob, "state at %" PRId64, step);
    int rc = store_checkpoint_commit_kept(s, id, NULL, 0, NULL, 0, step, loss, blob,
                                          strlen(blob), k, NULL, &e);
    if (rc)
        fail_msg("commit at %" PRId64 ": %s", step, e.message);
}

static void test_keep_best_by_loss(void **state)
{
    fixture *f = *state;
    char id[STORE_ID_LEN], got[200];
    assert_int_equal(make_job(&f->s, "a", NULL, id), 0);
    store_keep k = {.keep_last = 1, .best_k = 1, .best_metric = 0};
    double loss[5] = {5, 1, 3, 4, 2};
    for (int i = 0; i < 5; i++)
        commit(&f->s, id, (i + 1) * 10, loss[i], &k);
    steps_of(&f->s, id, got, sizeof got);
    assert_string_equal(got, "20,50"); /* the best (loss 1) and the newest */
    store_checkpoint_info *l = NULL;
    size_t n = 0;
    an_err e;
    assert_int_equal(store_checkpoint_list(&f->s, id, &l, &n, &e), 0);
    assert_int_equal(store_checkpoint_marks(&f->s, id, &k, l, n, &e), 0);
    assert_int_equal(l[0].best, 1);
    assert_int_equal(l[1].best, 0);
    assert_int_equal(l[0].pinned + l[1].pinned, 0);
    free(l);
    /* k = 2, mode max: the two largest losses are kept (ties: the newer) */
    char id2[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "b", NULL, id2), 0);
    store_keep k2 = {.keep_last = 1, .best_k = 2, .best_metric = 0, .best_max = 1};
    double loss2[5] = {5, 1, 5, 4, 2};
    for (int i = 0; i < 5; i++)
        commit(&f->s, id2, (i + 1) * 10, loss2[i], &k2);
    steps_of(&f->s, id2, got, sizeof got);
    assert_string_equal(got, "10,30,50");
}

static void test_keep_best_by_val_loss(void **state)
{
    fixture *f = *state;
    char id[STORE_ID_LEN], got[200];
    assert_int_equal(make_job(&f->s, "v", NULL, id), 0);
    store_keep k = {.keep_last = 1, .best_k = 1, .best_metric = 1};
    an_err e;
    /* validations at 10 (0.9), 20 (0.2), 40 (0.5); checkpoints at 5 (no validation yet), 15,
     * 25, 45: the value of 25 is that of the validation at 20. */
    store_metric rows[50];
    for (int i = 0; i < 50; i++)
        rows[i] = (store_metric){.step = i + 1, .loss = 1.0, .n_lr = 1, .lr = {0.1}};
    store_val_metric v[3] = {{10, 0.9, NAN}, {20, 0.2, NAN}, {40, 0.5, NAN}};
    assert_int_equal(store_metrics_append_with_val(&f->s, id, rows, 50, v, 3, NULL, &e), 0);
    commit(&f->s, id, 5, 0.0, &k); /* the smallest loss, but no validation */
    commit(&f->s, id, 15, 1.0, &k);
    commit(&f->s, id, 25, 1.0, &k);
    commit(&f->s, id, 45, 1.0, &k);
    steps_of(&f->s, id, got, sizeof got);
    assert_string_equal(got, "25,45");
}

static void test_pins(void **state)
{
    fixture *f = *state;
    char id[STORE_ID_LEN], got[200];
    assert_int_equal(make_job(&f->s, "p", NULL, id), 0);
    store_keep k = {.keep_last = 2};
    an_err e;
    commit(&f->s, id, 10, 1, &k);
    commit(&f->s, id, 20, 1, &k);
    assert_int_equal(store_checkpoint_pin(&f->s, id, 10, 1, &e), 0);
    assert_int_equal(store_checkpoint_pin(&f->s, id, 10, 1, &e), 0); /* twice is fine */
    assert_int_equal(store_checkpoint_pin(&f->s, id, 15, 1, &e), -ENOENT);
    assert_string_equal(e.field, "step");
    assert_int_equal(store_checkpoint_pin(&f->s, "j_999999", 10, 1, &e), -ENOENT);
    for (int s = 30; s <= 60; s += 10)
        commit(&f->s, id, s, 1, &k);
    steps_of(&f->s, id, got, sizeof got);
    assert_string_equal(got, "10,50,60"); /* the pinned one survives retention */
    store_checkpoint_info *l = NULL;
    size_t n = 0;
    assert_int_equal(store_checkpoint_list(&f->s, id, &l, &n, &e), 0);
    assert_int_equal(store_checkpoint_marks(&f->s, id, NULL, l, n, &e), 0);
    assert_int_equal(l[0].pinned, 1);
    assert_int_equal(l[1].pinned, 0);
    free(l);
    /* unpinned, it goes with the next commit */
    assert_int_equal(store_checkpoint_pin(&f->s, id, 10, 0, &e), 0);
    commit(&f->s, id, 70, 1, &k);
    steps_of(&f->s, id, got, sizeof got);
    assert_string_equal(got, "60,70");
    /* a pin goes with its checkpoint: a rewind that deletes it leaves no pin behind */
    assert_int_equal(store_checkpoint_pin(&f->s, id, 70, 1, &e), 0);
    assert_int_equal(store_job_rewind(&f->s, id, 60, STORE_QUEUED, &e), 0);
    commit(&f->s, id, 70, 1, &k);
    commit(&f->s, id, 80, 1, &k);
    steps_of(&f->s, id, got, sizeof got);
    assert_string_equal(got, "70,80");
    commit(&f->s, id, 90, 1, &k);
    steps_of(&f->s, id, got, sizeof got);
    assert_string_equal(got, "80,90");
}

/* ---- retention while a resume reads ----------------------------------------------------- */

#define RACE_BLOB 3000 /* bytes; with 256-byte chunks, 12 chunks per checkpoint */
#define RACE_STEPS 150

static void fill(unsigned char *b, int64_t step)
{
    for (size_t i = 0; i < RACE_BLOB; i++)
        b[i] = (unsigned char)((uint64_t)step * 131u + i * 7u);
}

typedef struct race {
    const char *path;
    char id[STORE_ID_LEN];
    store_keep keep;
    volatile int done;
    int reads_ok, reads_gone, bad;
    char msg[700];
} race;

static void *race_writer(void *p)
{
    race *r = p;
    store_t s;
    an_err e;
    if (store_open(&s, r->path, &e) != 0) {
        r->bad++;
        return NULL;
    }
    s.chunk_size = 256;
    unsigned char blob[RACE_BLOB];
    for (int64_t step = 2; step <= RACE_STEPS; step++) {
        fill(blob, step);
        if (store_checkpoint_commit_kept(&s, r->id, NULL, 0, NULL, 0, step,
                                         (double)(RACE_STEPS - step), blob, sizeof blob,
                                         &r->keep, NULL, &e) != 0) {
            r->bad++;
            snprintf(r->msg, sizeof r->msg, "commit: %s", e.message);
            break;
        }
    }
    r->done = 1;
    store_close(&s);
    return NULL;
}

static void *race_reader(void *p)
{
    race *r = p;
    store_t s;
    an_err e;
    if (store_open(&s, r->path, &e) != 0) {
        r->bad++;
        return NULL;
    }
    unsigned char want[RACE_BLOB];
    while (!r->done && !r->bad) {
        /* the latest (a restart), then a step listed just before (resume_from a step) */
        void *buf = NULL;
        size_t len = 0;
        int64_t at = -1;
        int rc = store_checkpoint_read(&s, r->id, -1, &buf, &len, &at, &e);
        if (rc == 0) {
            fill(want, at);
            if (len != RACE_BLOB || memcmp(buf, want, len) != 0) {
                r->bad++;
                snprintf(r->msg, sizeof r->msg, "latest (step %" PRId64 ") read back wrong", at);
            } else {
                r->reads_ok++;
            }
            free(buf);
        } else {
            r->bad++;
            snprintf(r->msg, sizeof r->msg, "latest: rc %d %s", rc, e.message);
        }
        store_checkpoint_info *l = NULL;
        size_t n = 0;
        if (store_checkpoint_list(&s, r->id, &l, &n, &e) == 0 && n > 0) {
            int64_t step = l[0].step;
            rc = store_checkpoint_read(&s, r->id, step, &buf, &len, NULL, &e);
            if (rc == 0) {
                fill(want, step);
                if (len != RACE_BLOB || memcmp(buf, want, len) != 0) {
                    r->bad++;
                    snprintf(r->msg, sizeof r->msg, "step %" PRId64 " read back wrong", step);
                } else {
                    r->reads_ok++;
                }
                free(buf);
            } else if (rc == -ENOENT) {
                r->reads_gone++; /* retired before this read began: never half read */
            } else {
                r->bad++;
                snprintf(r->msg, sizeof r->msg, "step %" PRId64 ": rc %d %s", step, rc,
                         e.message);
            }
        }
        free(l);
    }
    store_close(&s);
    return NULL;
}

static void run_race(fixture *f, store_keep keep, int pin)
{
    race r = {.path = f->path, .keep = keep};
    assert_int_equal(make_job(&f->s, "race", NULL, r.id), 0);
    unsigned char blob[RACE_BLOB];
    fill(blob, 1);
    an_err e;
    f->s.chunk_size = 256;
    assert_int_equal(store_checkpoint_commit_kept(&f->s, r.id, NULL, 0, NULL, 0, 1, 1e9, blob,
                                                  sizeof blob, &keep, NULL, &e), 0);
    if (pin)
        assert_int_equal(store_checkpoint_pin(&f->s, r.id, 1, 1, &e), 0);
    pthread_t w, rd;
    assert_int_equal(pthread_create(&rd, NULL, race_reader, &r), 0);
    assert_int_equal(pthread_create(&w, NULL, race_writer, &r), 0);
    pthread_join(w, NULL);
    pthread_join(rd, NULL);
    if (r.bad)
        fail_msg("%s", r.msg);
    assert_true(r.reads_ok > 0);
    char got[200];
    steps_of(&f->s, r.id, got, sizeof got);
    char want[64];
    /* keep_last 1 and, with best by loss (falling), the newest is the best too */
    snprintf(want, sizeof want, "%s%d", pin ? "1," : "", RACE_STEPS);
    assert_string_equal(got, want);
}

static void test_retention_never_breaks_a_read_in_place(void **state)
{
    run_race(*state, (store_keep){.keep_last = 1}, 0); /* rows reused in place */
}

static void test_retention_never_breaks_a_read_careful(void **state)
{
    run_race(*state, (store_keep){.keep_last = 1, .best_k = 1}, 1); /* pins and best */
}

/* ---- the scheduling keys the store copies out of a spec -------------------------------- */

static int set_priority(const char *text, char **out, void *arg)
{
    cJSON *spec = cJSON_Parse(text);
    cJSON_DeleteItemFromObject(spec, "priority");
    int rc = cJSON_AddNumberToObject(spec, "priority", *(int *)arg) ? 0 : -ENOMEM;
    *out = cJSON_PrintUnformatted(spec);
    cJSON_Delete(spec);
    return rc;
}

static void test_job_sched_follows_the_spec(void **state)
{
    fixture *f = *state;
    an_err e;
    char a[STORE_ID_LEN], b[STORE_ID_LEN];
    store_job_new in = {.name = "s", .total_steps = 10,
                        .spec_json = "{\"name\":\"s\",\"priority\":5,\"preemptible\":false,"
                                     "\"stall_timeout_s\":2.5,\"max_restarts\":0}"};
    assert_int_equal(store_job_create(&f->s, &in, a, &e), 0);
    assert_int_equal(make_job(&f->s, "old", NULL, b), 0); /* a spec without the keys */
    store_job_sched js;
    assert_int_equal(store_job_sched_get(&f->s, a, &js, &e), 0);
    assert_int_equal(js.priority, 5);
    assert_int_equal(js.preemptible, 0);
    assert_true(js.stall_timeout_s == 2.5);
    assert_int_equal(js.max_restarts, 0);
    assert_int_equal(store_job_sched_get(&f->s, b, &js, &e), 0);
    assert_int_equal(js.priority, 0);
    assert_int_equal(js.preemptible, 1);
    assert_true(js.stall_timeout_s == -1);
    assert_int_equal(js.max_restarts, -1);
    int p = -3;
    assert_int_equal(store_job_edit_spec(&f->s, a, set_priority, &p, &e), 0);
    assert_int_equal(store_job_sched_get(&f->s, a, &js, &e), 0);
    assert_int_equal(js.priority, -3);
    assert_int_equal(js.preemptible, 0);
    assert_int_equal(store_job_sched_get(&f->s, "j_999999", &js, &e), -ENOENT);
    assert_int_equal(store_job_edit_spec(&f->s, "j_999999", set_priority, &p, &e), -ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_keep_best_by_loss, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_keep_best_by_val_loss, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_pins, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_retention_never_breaks_a_read_in_place,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_retention_never_breaks_a_read_careful,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_job_sched_follows_the_spec, fixture_setup,
                                        fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
