/* Tests of core/lossscale against DeepSpeed's DynamicLossScaler rules (DEEPSPEED.md,
 * "Additions (second round)"). The expected traces below were worked out by hand from those
 * rules, step by step (comments give the reasoning), not produced by the code under test. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/lossscale.h"

static void run(lossscale *ls, const int *ovf, const double *want, int n)
{
    an_err err;
    for (int i = 0; i < n; i++) {
        assert_int_equal(lossscale_update(ls, ovf[i], &err), 0);
        if (ls->cur_scale != want[i])
            fail_msg("step %d: scale %g, expected %g", i, ls->cur_scale, want[i]);
    }
}

/* Power 4 (16), window 3, hysteresis 2, not consecutive.
 *  0-2 clean: stable 0,1,2 → no change.   3 clean: stable 3 = window → ×2 = 32.
 *  4 overflow: hysteresis 2 → 1, scale stays.  5 overflow: hysteresis 1 → ÷2 = 16.
 *  6-8 clean: stable 0,1,2.  9 clean: stable 3 → 32, hysteresis back to 2.
 *  10 overflow: hysteresis → 1.  11 clean: stable 0 (hysteresis stays 1, not consecutive).
 *  12 overflow: hysteresis 1 → 16.  13 overflow: → 8. */
static void test_dynamic(void **state)
{
    (void)state;
    lossscale_cfg c = lossscale_defaults();
    c.initial_scale_power = 4;
    c.loss_scale_window = 3;
    lossscale ls;
    lossscale_init(&ls, &c);
    assert_true(lossscale_scale(&ls) == 16.0);
    const int ovf[14] = {0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 1, 1};
    const double want[14] = {16, 16, 16, 32, 32, 16, 16, 16, 16, 32, 32, 32, 16, 8};
    run(&ls, ovf, want, 14);
    assert_int_equal(ls.skipped, 5);
    assert_int_equal(ls.cur_iter, 14);
    assert_int_equal(ls.last_overflow_iter, 13);
    assert_int_equal(ls.cur_hysteresis, 1);
}

/* Consecutive hysteresis: a clean step restores it, so overflow-clean-overflow never halves.
 *  0 overflow: 2 → 1.  1 clean: back to 2; stable 1-0-1 = 0.  2 overflow: 2 → 1.
 *  3 overflow: 1 → ÷2 = 8.  4 overflow: → 4. */
static void test_consecutive(void **state)
{
    (void)state;
    lossscale_cfg c = lossscale_defaults();
    c.initial_scale_power = 4;
    c.consecutive_hysteresis = 1;
    lossscale ls;
    lossscale_init(&ls, &c);
    const int ovf[5] = {1, 0, 1, 1, 1};
    const double want[5] = {16, 16, 16, 8, 4};
    run(&ls, ovf, want, 5);
}

/* Defaults: 2^16, doubling first after 1000 clean steps (stable = 1000 at iteration 1000,
 * i.e. the 1001st update), hysteresis 1 halves on every overflow, and the minimum stops the
 * run without changing the state. */
static void test_defaults_and_minimum(void **state)
{
    (void)state;
    lossscale_cfg c = lossscale_defaults();
    lossscale ls;
    lossscale_init(&ls, &c);
    an_err err;
    assert_true(ls.cur_scale == 65536.0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(lossscale_update(&ls, 0, &err), 0);
    assert_true(ls.cur_scale == 65536.0);
    assert_int_equal(lossscale_update(&ls, 0, &err), 0);
    assert_true(ls.cur_scale == 131072.0);

    c.initial_scale_power = 1;
    c.hysteresis = 1;
    c.min_loss_scale = 1;
    lossscale_init(&ls, &c);
    assert_int_equal(lossscale_update(&ls, 1, &err), 0);
    assert_true(ls.cur_scale == 1.0);
    lossscale keep = ls;
    assert_int_equal(lossscale_update(&ls, 1, &err), -ERANGE);
    assert_string_equal(err.field, "ds_config.fp16.min_loss_scale");
    assert_non_null(strstr(err.message, "minimum"));
    assert_memory_equal(&keep, &ls, sizeof ls);
}

static void test_fixed_and_overflow(void **state)
{
    (void)state;
    lossscale_cfg c = lossscale_defaults();
    c.loss_scale = 128;
    lossscale ls;
    lossscale_init(&ls, &c);
    an_err err;
    for (int i = 0; i < 5; i++)
        assert_int_equal(lossscale_update(&ls, i & 1, &err), 0);
    assert_true(ls.cur_scale == 128.0);
    assert_int_equal(ls.skipped, 2);
    float g[5] = {1, -2, 3e38f, 0, 5};
    assert_int_equal(lossscale_overflow(g, 5), 0);
    g[3] = INFINITY;
    assert_int_equal(lossscale_overflow(g, 5), 1);
    g[3] = -INFINITY;
    assert_int_equal(lossscale_overflow(g, 5), 1);
    g[3] = NAN;
    assert_int_equal(lossscale_overflow(g, 5), 1);
}

/* The rounding to half precision in bits gives what the compiler's _Float16 gives (gcc has
 * it; the fuzzing build's clang does not): float patterns across the whole range, and around
 * every half value the two floats beside the midpoint and the midpoint itself (the ties). */
static void same_as_float16(float x)
{
    float want = (float)(_Float16)x, got = lossscale_half_bits(x);
    if (isnan(want) && isnan(got))
        return;
    uint32_t a, b;
    memcpy(&a, &want, 4);
    memcpy(&b, &got, 4);
    if (a != b)
        fail_msg("%a: _Float16 gives %a, the bits %a", (double)x, (double)want, (double)got);
}

static void test_half_rounding(void **state)
{
    (void)state;
    for (uint64_t u = 0; u <= 0xffffffffu; u += 257) {
        uint32_t v = (uint32_t)u;
        float x;
        memcpy(&x, &v, 4);
        same_as_float16(x);
    }
    for (uint32_t h = 0; h < 0x7c00u; h++) { /* every finite positive half and the next */
        _Float16 lo, hi;
        uint16_t hb = (uint16_t)h, nb = (uint16_t)(h + 1);
        memcpy(&lo, &hb, 2);
        memcpy(&hi, &nb, 2);
        float mid = ((float)lo + (float)hi) / 2; /* exact: a float has room for it */
        for (int k = -1; k <= 1; k++) {
            float x = k < 0 ? nextafterf(mid, 0) : k > 0 ? nextafterf(mid, INFINITY) : mid;
            same_as_float16(x);
            same_as_float16(-x);
        }
    }
    assert_true(isinf(lossscale_half_bits(65520.0f)));
    assert_true(lossscale_half_bits(65519.0f) == 65504.0f);
    assert_true(lossscale_half_bits(0x1p-25f) == 0.0f);
    assert_true(lossscale_half_bits(0x1.000002p-25f) == 0x1p-24f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dynamic),
        cmocka_unit_test(test_consecutive),
        cmocka_unit_test(test_defaults_and_minimum),
        cmocka_unit_test(test_fixed_and_overflow),
        cmocka_unit_test(test_half_rounding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
