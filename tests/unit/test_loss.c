/* Tests of core/loss: values against direct formulas, gradients against central differences
 * in double precision, stability at large logits, target checks and accuracy. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/loss.h"
#include "core/rng.h"

enum { B = 5, C = 4 };

static void random_case(int type, float *out, float *y, uint64_t seed)
{
    rng r;
    rng_init(&r, seed, 3, 0);
    for (int i = 0; i < B * C; i++)
        out[i] = (float)rng_range(&r, -3, 3);
    for (int i = 0; i < B * C; i++) {
        if (type == LOSS_CROSS_ENTROPY)
            y[i] = (float)rng_below(&r, C);
        else if (type == LOSS_BCE)
            y[i] = (float)rng_uniform(&r); /* soft labels are allowed */
        else
            y[i] = (float)rng_normal(&r);
    }
}

static void check_grad(int type)
{
    float out[B * C], y[B * C], d[B * C];
    random_case(type, out, y, (uint64_t)type);
    double L = loss_compute(type, out, y, B, C, d);
    assert_true(isfinite(L));
    double num2 = 0, den2 = 0;
    for (int i = 0; i < B * C; i++) {
        float keep = out[i];
        float hp = keep + 1e-2f, hm = keep - 1e-2f;
        out[i] = hp;
        double lp = loss_compute(type, out, y, B, C, NULL);
        out[i] = hm;
        double lm = loss_compute(type, out, y, B, C, NULL);
        out[i] = keep;
        double fd = (lp - lm) / ((double)hp - (double)hm);
        num2 += (fd - d[i]) * (fd - d[i]);
        den2 += fd * fd;
        assert_true(fabs(fd - d[i]) <= 1e-4 * fabs(fd) + 1e-6);
    }
    assert_true(sqrt(num2 / den2) < 1e-4);
}

static void test_grad_mse(void **s) { (void)s; check_grad(LOSS_MSE); }
static void test_grad_ce(void **s) { (void)s; check_grad(LOSS_CROSS_ENTROPY); }
static void test_grad_bce(void **s) { (void)s; check_grad(LOSS_BCE); }
static void test_grad_mean(void **s) { (void)s; check_grad(LOSS_MEAN); }

static void test_values(void **state)
{
    (void)state;
    float out[B * C], y[B * C];
    random_case(LOSS_MSE, out, y, 9);
    double want = 0;
    for (int i = 0; i < B * C; i++)
        want += ((double)out[i] - y[i]) * ((double)out[i] - y[i]);
    assert_float_equal(loss_compute(LOSS_MSE, out, y, B, C, NULL), want / (B * C), 1e-12);

    want = 0;
    for (int i = 0; i < B * C; i++)
        want += out[i];
    assert_float_equal(loss_compute(LOSS_MEAN, out, NULL, B, C, NULL), want / (B * C), 1e-12);

    random_case(LOSS_CROSS_ENTROPY, out, y, 10);
    want = 0;
    for (int b = 0; b < B; b++) {
        double z = 0;
        for (int c = 0; c < C; c++)
            z += exp(out[b * C + c]);
        want += -log(exp(out[b * C + (int)y[b]]) / z);
    }
    assert_float_equal(loss_compute(LOSS_CROSS_ENTROPY, out, y, B, C, NULL), want / B, 1e-12);

    random_case(LOSS_BCE, out, y, 11);
    want = 0;
    for (int i = 0; i < B * C; i++) {
        double p = 1 / (1 + exp(-(double)out[i]));
        want += -(y[i] * log(p) + (1 - y[i]) * log(1 - p));
    }
    assert_float_equal(loss_compute(LOSS_BCE, out, y, B, C, NULL), want / (B * C), 1e-12);
}

static void test_stable_at_large_logits(void **state)
{
    (void)state;
    float out[2 * 3] = {1000, 0, -1000, -1000, 0, 1000}, y[2] = {0, 0}, d[6];
    double L = loss_compute(LOSS_CROSS_ENTROPY, out, y, 2, 3, d);
    assert_float_equal(L, 1000.0, 1e-9); /* row 0 correct (0), row 1 costs 2000 */
    for (int i = 0; i < 6; i++)
        assert_true(isfinite(d[i]));
    assert_float_equal(d[3], -0.5, 1e-7);
    assert_float_equal(d[5], 0.5, 1e-7);
    float yb[6] = {1, 0, 0, 1, 1, 0};
    L = loss_compute(LOSS_BCE, out, yb, 2, 3, d);
    assert_true(isfinite(L));
    assert_float_equal(L, (0 + log(2) + 0 + 1000 + log(2) + 1000) / 6, 1e-9);
    for (int i = 0; i < 6; i++)
        assert_true(isfinite(d[i]));
}

static void test_targets(void **state)
{
    (void)state;
    an_err e;
    float good[3] = {0, 2, 1}, frac[3] = {0, 1.5f, 1}, big[3] = {0, 3, 1}, neg[3] = {-1, 0, 0};
    assert_int_equal(loss_check_targets(LOSS_CROSS_ENTROPY, good, 3, 3, "data", &e), 0);
    assert_int_equal(loss_check_targets(LOSS_CROSS_ENTROPY, frac, 3, 3, "data", &e), -EINVAL);
    assert_non_null(strstr(e.message, "row 2"));
    assert_string_equal(e.field, "data");
    assert_int_equal(loss_check_targets(LOSS_CROSS_ENTROPY, big, 3, 3, "data", &e), -EINVAL);
    assert_non_null(strstr(e.message, "0..2"));
    assert_int_equal(loss_check_targets(LOSS_CROSS_ENTROPY, neg, 3, 3, "data", &e), -EINVAL);
    float nan[2] = {0, NAN};
    assert_int_equal(loss_check_targets(LOSS_MSE, nan, 1, 2, "data", &e), -EINVAL);
    assert_int_equal(loss_check_targets(LOSS_MSE, good, 1, 3, "data", &e), 0);
    assert_int_equal(loss_target_width(LOSS_CROSS_ENTROPY, 7), 1);
    assert_int_equal(loss_target_width(LOSS_MSE, 7), 7);
}

static void test_accuracy(void **state)
{
    (void)state;
    float out[3 * 2] = {1, 2, 5, -1, 0, 0}, y[3] = {1, 1, 0};
    assert_int_equal(loss_correct(LOSS_CROSS_ENTROPY, out, y, 3, 2), 2);
    assert_int_equal(loss_accuracy_count(LOSS_CROSS_ENTROPY, 3, 2), 3);
    float yb[6] = {1, 0, 1, 1, 0, 0};
    assert_int_equal(loss_correct(LOSS_BCE, out, yb, 3, 2), 4);
    assert_int_equal(loss_accuracy_count(LOSS_BCE, 3, 2), 6);
    assert_int_equal(loss_accuracy_count(LOSS_MSE, 3, 2), 0);
    assert_true(loss_is_classification(LOSS_BCE));
    assert_false(loss_is_classification(LOSS_MEAN));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grad_mse),   cmocka_unit_test(test_grad_ce),
        cmocka_unit_test(test_grad_bce),   cmocka_unit_test(test_grad_mean),
        cmocka_unit_test(test_values),     cmocka_unit_test(test_stable_at_large_logits),
        cmocka_unit_test(test_targets),    cmocka_unit_test(test_accuracy),
    };
    return cmocka_run_group_tests_name("loss", tests, NULL, NULL);
}
