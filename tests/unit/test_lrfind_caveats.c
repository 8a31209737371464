/* The finder's caveats (core/lrfind_caveats.c) on curves made to order: a sweep of 100 steps
 * from lr 1e-4 to 1, analysed as the service analyses it. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/lrfind.h"

#define N 100

typedef struct sweep {
    double lr[N], loss[N], sm[N];
    lrfind_result r;
    lrfind_caveats c;
} sweep;

static double lr_at(int i) { return 1e-4 * pow(10, 4.0 * i / (N - 1)); }

/* A bowl: falls from 1 to 0.1 around lr 1e-2, then rises past 4 times its minimum. */
static double bowl(int i)
{
    double x = lr_at(i);
    return 0.1 + 0.9 / (1 + (x / 1e-2) * (x / 1e-2)) + (x / 0.1) * (x / 0.1);
}

static void judge(sweep *s, int no_floor)
{
    for (int i = 0; i < N; i++)
        s->lr[i] = lr_at(i);
    assert_int_equal(lrfind_analyze(s->lr, s->loss, N, LRFIND_BETA, LRFIND_STOP_FACTOR, s->sm,
                                    &s->r), 0);
    assert_int_equal(s->r.has_suggestions, 1);
    assert_int_equal(lrfind_caveats_find(s->loss, s->sm, N, &s->r, no_floor, &s->c), 0);
}

static void test_a_clean_bowl_has_none(void **state)
{
    (void)state;
    sweep s;
    for (int i = 0; i < N; i++)
        s.loss[i] = bowl(i);
    judge(&s, 0);
    assert_true(s.r.stopped_early);
    assert_true(s.r.diverged_at > 50 && s.r.diverged_at < N);
    assert_false(s.c.unbounded || s.c.open_end || s.c.noisy);
    assert_true(s.c.fall > 0.25); /* the smoothed curve lags the bowl's 0.9 */
    /* the same curve from a loss called `mean` has no floor, whatever its shape */
    judge(&s, 1);
    assert_true(s.c.unbounded && s.c.mean_loss && !s.c.below_zero);
    assert_false(s.c.open_end || s.c.noisy);
}

static void test_noise_at_the_start(void **state)
{
    (void)state;
    sweep s;
    /* the bowl raised, under a fixed pattern of ±0.6: jumps of about a whole fall */
    for (int i = 0; i < N; i++)
        s.loss[i] = bowl(i) + 0.6 + 0.6 * sin(i * 2.3);
    judge(&s, 0);
    assert_true(s.c.noisy);
    assert_true(s.c.jump >= LRFIND_NOISY_RATIO * s.c.fall);
    assert_false(s.c.unbounded || s.c.open_end);
    /* a tenth of that noise is no longer judged noise */
    for (int i = 0; i < N; i++)
        s.loss[i] = bowl(i) + 0.06 + 0.06 * sin(i * 2.3);
    judge(&s, 0);
    assert_false(s.c.noisy);
}

static void test_a_sweep_that_ends_falling(void **state)
{
    (void)state;
    sweep s;
    for (int i = 0; i < N; i++)
        s.loss[i] = 1.0 - (double)i / N;
    judge(&s, 0);
    assert_false(s.r.stopped_early);
    assert_true(s.c.open_end);
    assert_false(s.c.unbounded || s.c.noisy);
    /* the same ramp below zero: no floor, which says more than where it ended */
    for (int i = 0; i < N; i++)
        s.loss[i] -= 0.5;
    judge(&s, 0);
    assert_true(s.c.unbounded && s.c.below_zero && !s.c.mean_loss);
    assert_false(s.c.open_end);
    /* a curve that turns at step 60 and rises slowly (never diverging): its smoothed minimum
     * lags, but not to the last steps */
    for (int i = 0; i < N; i++)
        s.loss[i] = fabs((double)i - 60) / N + 0.1;
    judge(&s, 0);
    assert_false(s.r.stopped_early);
    assert_false(s.c.open_end);
}

static void test_report_json(void **state)
{
    (void)state;
    sweep s;
    for (int i = 0; i < N; i++)
        s.loss[i] = 1.0 - (double)i / N - 0.5 + 0.4 * sin(i * 2.3);
    judge(&s, 1);
    cJSON *o = cJSON_CreateObject();
    assert_int_equal(lrfind_caveats_json(&s.c, o), 0);
    const cJSON *a = cJSON_GetObjectItem(o, "caveats");
    assert_true(cJSON_IsArray(a));
    assert_int_equal(cJSON_GetArraySize(a), 1 + s.c.noisy);
    const cJSON *c = cJSON_GetArrayItem(a, 0);
    assert_string_equal(cJSON_GetObjectItem(c, "code")->valuestring, "unbounded");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(c, "affects")), 3);
    assert_non_null(strstr(cJSON_GetObjectItem(c, "message")->valuestring,
                           "the loss \"mean\" has no floor"));
    cJSON_Delete(o);
    /* none: an empty array, not an absent key */
    lrfind_caveats none = {0};
    o = cJSON_CreateObject();
    assert_int_equal(lrfind_caveats_json(&none, o), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "caveats")), 0);
    cJSON_Delete(o);
    /* open_end affects the valley and minimum/10, noisy the steepest and the valley */
    lrfind_caveats two = {.open_end = 1, .noisy = 1, .jump = 0.5, .fall = 0.75};
    o = cJSON_CreateObject();
    assert_int_equal(lrfind_caveats_json(&two, o), 0);
    a = cJSON_GetObjectItem(o, "caveats");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(a, 0), "code")->valuestring,
                        "open_end");
    const cJSON *n = cJSON_GetArrayItem(a, 1);
    assert_string_equal(cJSON_GetObjectItem(n, "code")->valuestring, "noisy");
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(n, "affects"), 0)->valuestring,
                        "steepest");
    assert_non_null(strstr(cJSON_GetObjectItem(n, "message")->valuestring, "jumps by 0.5"));
    assert_non_null(strstr(cJSON_GetObjectItem(n, "message")->valuestring, "67%"));
    cJSON_Delete(o);
}

static void test_short_sweeps(void **state)
{
    (void)state;
    double loss[1] = {-1}, sm[1] = {-1};
    lrfind_result r = {.stopped_early = 0};
    lrfind_caveats c;
    assert_int_equal(lrfind_caveats_find(loss, sm, 1, &r, 1, &c), 0);
    assert_false(c.unbounded || c.open_end || c.noisy);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_clean_bowl_has_none),
        cmocka_unit_test(test_noise_at_the_start),
        cmocka_unit_test(test_a_sweep_that_ends_falling),
        cmocka_unit_test(test_report_json),
        cmocka_unit_test(test_short_sweeps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
