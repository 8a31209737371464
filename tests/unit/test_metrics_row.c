/* Tests for core/metrics_row: a step's row of the offline commands' metrics table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "core/config_metrics.h"
#include "core/metrics_row.h"

static job_spec spec_of(const char *text)
{
    job_spec s;
    an_err e;
    if (job_spec_parse_text(text, strlen(text), &s, &e) != 0)
        fail_msg("%s: %s", e.field, e.message);
    return s;
}

static train_report report(void)
{
    train_report r;
    memset(&r, 0, sizeof r);
    r.step = 12;
    r.loss = 0.1;
    r.ngroups = 2;
    r.lr[0] = 0.009999999999999998;
    r.lr[1] = 1e-3;
    r.grad_norm = 1.0 / 3.0;
    r.val_loss = r.val_acc = r.loss_scale = NAN;
    return r;
}

#define OPTIM "\"optimizer\":{\"type\":\"SGD\",\"params\":{\"lr\":0.1}}"
#define PLAIN "{\"model\":{\"type\":\"linear\",\"inputs\":2,\"outputs\":1}," \
              "\"data\":{\"type\":\"synthetic\",\"task\":\"regression\",\"samples\":64," \
              "\"features\":2},\"steps\":20,\"ds_config\":{\"train_batch_size\":8," OPTIM "}}"

/* Numbers in their shortest exact form, the time column only when given, and the row under
 * the header's columns. */
static void test_plain_rows(void **state)
{
    (void)state;
    job_spec s = spec_of(PLAIN);
    train_report r = report();
    r.ngroups = 1;
    char row[METRICS_ROW_MAX], head[256];
    int n = metrics_row(&s, &r, NULL, row, sizeof row);
    assert_string_equal(row, "12,0.1,0.009999999999999998,0.3333333333333333\n");
    assert_int_equal(n, (int)strlen(row));
    job_spec_metrics_header(&s, 0, head, sizeof head);
    assert_string_equal(head, "step,loss,lr0,grad_norm\n");
    double t = 2.5;
    metrics_row(&s, &r, &t, row, sizeof row);
    assert_string_equal(row, "12,0.1,0.009999999999999998,0.3333333333333333,2.5\n");
    r.grad_norm = INFINITY; /* an overflowed step's norm is printed, not left out */
    metrics_row(&s, &r, NULL, row, sizeof row);
    assert_string_equal(row, "12,0.1,0.009999999999999998,inf\n");
    r.grad_norm = NAN; /* none measured (an fp16 step skipped): empty, as in the daemon's CSV */
    r.loss = NAN;      /* a diverged finder step's */
    metrics_row(&s, &r, NULL, row, sizeof row);
    assert_string_equal(row, "12,,0.009999999999999998,\n");
    job_spec_free(&s);
}

/* Validation columns are empty where the step did not validate; fp16's loss scale and
 * skipped flag close the row. */
static void test_optional_columns(void **state)
{
    (void)state;
    job_spec s = spec_of("{\"model\":{\"type\":\"mlp\",\"inputs\":4,\"hidden\":[8],\"outputs\":3},"
                         "\"loss\":\"cross_entropy\",\"data\":{\"type\":\"builtin\",\"name\":"
                         "\"iris\"},\"validation\":{\"fraction\":0.2},\"steps\":20,"
                         "\"ds_config\":{\"train_batch_size\":8," OPTIM "}}");
    s.fp16 = 1; /* as a gpt job with ds_config.fp16 enabled has it */
    train_report r = report();
    r.ngroups = 1;
    r.loss_scale = 65536;
    char row[METRICS_ROW_MAX];
    metrics_row(&s, &r, NULL, row, sizeof row);
    assert_string_equal(row, "12,0.1,0.009999999999999998,0.3333333333333333,,,65536,0\n");
    r.has_val = 1;
    r.val_loss = 0.25;
    r.val_acc = 0.9;
    r.skipped = 1;
    metrics_row(&s, &r, NULL, row, sizeof row);
    assert_string_equal(row,
                        "12,0.1,0.009999999999999998,0.3333333333333333,0.25,0.9,65536,1\n");
    job_spec_free(&s);
}

/* Like snprintf: a short buffer gets a terminated prefix, and the length of the whole row. */
static void test_short_buffer(void **state)
{
    (void)state;
    job_spec s = spec_of(PLAIN);
    train_report r = report();
    char row[METRICS_ROW_MAX], small[10];
    int whole = metrics_row(&s, &r, NULL, row, sizeof row);
    assert_string_equal(row, "12,0.1,0.009999999999999998,0.001,0.3333333333333333\n");
    memset(small, 'x', sizeof small);
    assert_int_equal(metrics_row(&s, &r, NULL, small, sizeof small), whole);
    assert_string_equal(small, "12,0.1,0.");
    assert_int_equal(metrics_row(&s, &r, NULL, NULL, 0), whole);
    job_spec_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_rows),
        cmocka_unit_test(test_optional_columns),
        cmocka_unit_test(test_short_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
