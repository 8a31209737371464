/* test_config_checks_data — checks of a job spec's data that once let a job be accepted and
 * then fail: the validation split of a text, a feature that is the label column, the class
 * checks of a label named as data.target, "auto" total_num_steps of an epochs run, and values
 * beyond float32. */
#include <float.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/unit/testutil.h"

#include "core/config.h"
#include "core/config_data.h"
#include "core/config_metrics.h"
#include "core/config_gpt.h"
#include "core/text.h"

/* 84 characters: at block_size 8, ⌊83/8⌋ = 10 windows. */
#define HAMLET "To be, or not to be, that is the question: whether tis nobler in the mind to suffer."

static int parse(const char *text, job_spec *s, an_err *e)
{
    return job_spec_parse_text(text, strlen(text), s, e);
}

/* A gpt job on HAMLET with `extra` top-level keys (each ending in a comma). */
static char *gpt_spec(const char *extra, const char *scheduler)
{
    char *t = malloc(2048);
    assert_non_null(t);
    snprintf(t, 2048,
             "{\"model\": {\"type\": \"gpt\", \"block_size\": 8, \"n_layer\": 1, \"n_head\": 1, "
             "\"n_embd\": 8}, \"data\": {\"type\": \"text\", \"text\": \"" HAMLET "\"}, %s "
             "\"ds_config\": {\"train_batch_size\": 2, \"optimizer\": {\"type\": \"AdamW\", "
             "\"params\": {\"lr\": 0.001}}%s}}",
             extra, scheduler ? scheduler : "");
    return t;
}

/* The split arithmetic training uses: the tail of the tokens validates, each part in its own
 * windows. A fraction whose tail has no window is refused, naming validation.fraction. */
static void test_text_split(void **state)
{
    (void)state;
    text_split sp;
    an_err e;
    /* the review's case: ⌊84·0.95⌋ = 79 train, 5 validate, fewer than 9 */
    assert_int_not_equal(text_split_check(84, 8, 0.05, "data.text", &sp, &e), 0);
    assert_string_equal(e.field, "validation.fraction");
    assert_non_null(strstr(e.message, "leaves 5 tokens for validation"));
    assert_int_equal(sp.ntrain, 79);
    assert_int_equal(sp.ktrain, 9);
    assert_int_equal(sp.kval, 0);
    /* 89 tokens at 0.09: 80 train, 9 validate, one window each side (a split of the 11
     * windows as rows would leave ⌊11·0.09⌋ = 0 for validation: the split is of tokens) */
    assert_int_equal(text_split_check(89, 8, 0.09, "data.text", &sp, &e), 0);
    assert_int_equal(sp.ntrain, 80);
    assert_int_equal(sp.ktrain, 9);
    assert_int_equal(sp.kval, 1);
    /* no validation: every token trains */
    assert_int_equal(text_split_check(84, 8, 0, "data.text", &sp, &e), 0);
    assert_int_equal(sp.ktrain, 10);
    assert_int_equal(sp.kval, 0);
    /* too short as a whole: the text's own path */
    assert_int_not_equal(text_split_check(8, 8, 0, "data.dataset", &sp, &e), 0);
    assert_string_equal(e.field, "data.dataset");
    /* random sampling needs a window's tokens, as windows sampling does: one start then */
    assert_int_not_equal(text_split_check(8, 8, 0, "data.text", &sp, &e), 0);
    assert_int_equal(text_split_check(9, 8, 0, "data.text", &sp, &e), 0);
    assert_int_equal(text_random_start(1, 5, 0, 0, 9, 8), 0);
    /* tokens counted without tokenizing: code points for char, bytes for byte */
    assert_int_equal(text_count_tokens("h\xc3\xa9llo \xe2\x82\xac", 10, TEXT_CHAR), 7);
    assert_int_equal(text_count_tokens("h\xc3\xa9llo \xe2\x82\xac", 10, TEXT_BYTE), 10);
}

/* The parse checks the split of inline text (so a sweep's base and each of its values are
 * checked too), and cfg_text_split gives the windows of each part. */
static void test_text_split_of_spec(void **state)
{
    (void)state;
    job_spec s;
    an_err e;
    char *t = gpt_spec("\"steps\": 10, \"validation\": {\"fraction\": 0.05},", NULL);
    assert_int_not_equal(parse(t, &s, &e), 0); /* 84 tokens: 5 validate, fewer than a window */
    free(t);
    assert_string_equal(e.field, "validation.fraction");
    assert_non_null(strstr(e.message, "window"));
    text_split sp;

    t = gpt_spec("\"steps\": 10, \"validation\": {\"fraction\": 0.2},", NULL);
    assert_int_equal(parse(t, &s, &e), 0);
    free(t);
    assert_int_equal(cfg_text_split(&s, cfg_text_tokens(&s.data), &sp, &e), 0);
    assert_int_equal(sp.ktrain, 8); /* ⌊84·0.8⌋ = 67 tokens: ⌊66/8⌋ windows */
    assert_int_equal(sp.kval, 2);
    job_spec_free(&s);
}

/* Without data.target the label is the last column: a feature naming it is refused when the
 * spec is parsed (builtin) or submitted (an uploaded set's columns). */
static void test_feature_is_label(void **state)
{
    (void)state;
    job_spec s;
    an_err e;
    const char *iris =
        "{\"model\": {\"type\": \"mlp\", \"inputs\": 4, \"hidden\": [8], \"outputs\": 3}, "
        "\"loss\": \"cross_entropy\", \"data\": {\"type\": \"builtin\", \"name\": \"iris\", "
        "\"features\": [\"sepal_length\", \"sepal_width\", \"petal_length\", \"species\"]}, "
        "\"ds_config\": {\"train_batch_size\": 16, \"optimizer\": {\"type\": \"Adam\"}}}";
    assert_int_not_equal(parse(iris, &s, &e), 0);
    assert_string_equal(e.field, "data.features[3]");
    assert_non_null(strstr(e.message, "label column"));

    cJSON *cols = cJSON_Parse("[\"a\", \"b\", \"label\"]");
    data_spec d;
    memset(&d, 0, sizeof d);
    d.features_sel = cJSON_Parse("[\"a\", \"label\"]");
    an_err errs[4];
    int n = 0;
    assert_int_not_equal(cfg_data_check_columns(&d, "data set x", cols, errs, 4, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(errs[0].field, "data.features[1]");
    /* with another target the last column is an ordinary feature */
    snprintf(d.target, sizeof d.target, "b");
    assert_int_equal(cfg_data_check_columns(&d, "data set x", cols, errs, 4, &n), 0);
    cJSON_Delete(d.features_sel);
    cJSON_Delete(cols);
}

/* data.target naming the label column is the label: the class checks apply as without it. */
static void test_target_is_label(void **state)
{
    (void)state;
    job_spec s;
    an_err e;
    char t[1024];
    const char *fmt =
        "{\"model\": {\"type\": \"mlp\", \"inputs\": 4, \"hidden\": [8], \"outputs\": %d}, "
        "\"loss\": \"%s\", \"data\": {\"type\": \"builtin\", \"name\": \"iris\", "
        "\"target\": \"%s\"}, "
        "\"ds_config\": {\"train_batch_size\": 16, \"optimizer\": {\"type\": \"Adam\"}}}";
    snprintf(t, sizeof t, fmt, 5, "cross_entropy", "species");
    assert_int_not_equal(parse(t, &s, &e), 0);
    assert_string_equal(e.field, "model.outputs");
    snprintf(t, sizeof t, fmt, 3, "mse", "species");
    assert_int_not_equal(parse(t, &s, &e), 0);
    assert_string_equal(e.field, "loss");
    snprintf(t, sizeof t, fmt, 3, "cross_entropy", "species");
    assert_int_equal(parse(t, &s, &e), 0);
    job_spec_free(&s);
    /* another column as target is a regression target: mse is right for it */
    snprintf(t, sizeof t, fmt, 1, "mse", "petal_width");
    assert_int_equal(parse(t, &s, &e), 0);
    job_spec_free(&s);
}

/* "auto" total_num_steps of an epochs run: a text's windows give the length; an uploaded set's
 * rows are not known yet, so no number is reported as the job's. */
static void test_auto_total_steps(void **state)
{
    (void)state;
    static const char *const cosine =
        ", \"scheduler\": {\"type\": \"WarmupCosineLR\", \"params\": {\"total_num_steps\": "
        "\"auto\", \"warmup_num_steps\": 2}}";
    job_spec s;
    an_err e;
    char *t = gpt_spec("\"epochs\": 2,", cosine);
    assert_int_equal(parse(t, &s, &e), 0);
    free(t);
    assert_true(tu_has_text(s.warnings, "\"auto\" resolved to 10 (the job's steps)")); /* 2·10/2 */
    job_spec_free(&s);
    t = gpt_spec("\"epochs\": 2, \"validation\": {\"fraction\": 0.2},", cosine);
    assert_int_equal(parse(t, &s, &e), 0);
    free(t);
    assert_true(tu_has_text(s.warnings, "\"auto\" resolved to 8 (the job's steps)")); /* 2·8/2 */
    job_spec_free(&s);

    char u[1024];
    snprintf(u, sizeof u,
             "{\"model\": {\"type\": \"linear\", \"inputs\": 2, \"outputs\": 1}, "
             "\"data\": {\"type\": \"dataset\", \"name\": \"up\"}, \"epochs\": 3, "
             "\"ds_config\": {\"train_batch_size\": 4, \"optimizer\": {\"type\": \"Adam\"}%s}}",
             cosine);
    assert_int_equal(parse(u, &s, &e), 0);
    assert_true(tu_has_text(s.warnings, "total_num_steps: \"auto\" resolves to the job's steps"));
    assert_false(tu_has_text(s.warnings, "resolved to"));
    job_spec_free(&s);
}

/* Tensors and data are float32: a number beyond FLT_MAX is refused with its path. */
static void test_float32_range(void **state)
{
    (void)state;
    job_spec s;
    an_err e;
    char t[1024];
    const char *fmt =
        "{\"model\": {\"type\": \"linear\", \"inputs\": 2, \"outputs\": 1, \"init\": "
        "{\"fc.weight\": [[%s, 0]]}}, \"data\": {\"type\": \"inline\", \"x\": [[1, %s], [3, 4]], "
        "\"y\": [[1], [%s]]}, \"steps\": 5, \"ds_config\": {\"train_batch_size\": 2, "
        "\"optimizer\": {\"type\": \"SGD\", \"params\": {\"lr\": 0.01}}}}";
    snprintf(t, sizeof t, fmt, "1e39", "2", "2");
    assert_int_not_equal(parse(t, &s, &e), 0);
    assert_string_equal(e.field, "model.init.fc.weight[0][0]");
    assert_non_null(strstr(e.message, "float32"));
    snprintf(t, sizeof t, fmt, "1", "-1e39", "2");
    assert_int_not_equal(parse(t, &s, &e), 0);
    assert_string_equal(e.field, "data.x[0][1]");
    snprintf(t, sizeof t, fmt, "1", "2", "1e39");
    assert_int_not_equal(parse(t, &s, &e), 0);
    assert_string_equal(e.field, "data.y[1][0]");
    /* FLT_MAX itself is a float */
    snprintf(t, sizeof t, fmt, "3.4028234663852886e38", "-3.4028234663852886e38", "2");
    assert_int_equal(parse(t, &s, &e), 0);
    job_spec_free(&s);
    /* an mlp's init goes through the same check */
    const char *mlp =
        "{\"model\": {\"type\": \"mlp\", \"inputs\": 1, \"hidden\": [1], \"outputs\": 1, "
        "\"init\": {\"fc2.bias\": [-1e300]}}, \"data\": {\"type\": \"inline\", \"x\": [[1]], "
        "\"y\": [[1]]}, \"ds_config\": {\"train_batch_size\": 1, \"optimizer\": {\"type\": "
        "\"Adam\"}}}";
    assert_int_not_equal(parse(mlp, &s, &e), 0);
    assert_string_equal(e.field, "model.init.fc2.bias[0]");
}

/* The offline commands' metrics header: the API's columns, from the spec alone. */
static void test_metrics_header(void **state)
{
    (void)state;
    job_spec s;
    an_err e;
    char *t = gpt_spec("\"steps\": 10,", NULL);
    assert_int_equal(parse(t, &s, &e), 0);
    free(t);
    char buf[256];
    assert_int_equal(job_spec_metrics_header(&s, 1, buf, sizeof buf),
                     (int)strlen("step,loss,lr0,grad_norm,time\n"));
    assert_string_equal(buf, "step,loss,lr0,grad_norm,time\n");
    job_spec_free(&s);
    t = gpt_spec("\"steps\": 10, \"validation\": {\"fraction\": 0.2},",
                 ", \"fp16\": {\"enabled\": true}");
    assert_int_equal(parse(t, &s, &e), 0);
    free(t);
    job_spec_metrics_header(&s, 0, buf, sizeof buf);
    assert_string_equal(buf, "step,loss,lr0,grad_norm,val_loss,val_acc,loss_scale,skipped\n");
    /* a short buffer holds what fits, and the length is still the whole line's */
    char small[12];
    assert_int_equal(job_spec_metrics_header(&s, 0, small, sizeof small), (int)strlen(buf));
    assert_string_equal(small, "step,loss,l");
    job_spec_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_split),
        cmocka_unit_test(test_text_split_of_spec),
        cmocka_unit_test(test_feature_is_label),
        cmocka_unit_test(test_target_is_label),
        cmocka_unit_test(test_auto_total_steps),
        cmocka_unit_test(test_float32_range),
        cmocka_unit_test(test_metrics_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
