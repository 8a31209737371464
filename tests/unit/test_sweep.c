/* test_sweep — sweep bodies (every bad one names its field), the trials grid and random
 * search propose, and ASHA's rung rule. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/sweep.h"

#define BASE                                                                                     \
    "{\"seed\": 7, \"steps\": 500, \"model\": {\"type\": \"mlp\", \"inputs\": 4, \"hidden\": "  \
    "[8], \"outputs\": 3}, \"loss\": \"cross_entropy\", \"data\": {\"type\": \"builtin\", "     \
    "\"name\": \"iris\"}, \"validation\": {\"fraction\": 0.2, \"every_steps\": 50}, "           \
    "\"ds_config\": {\"train_batch_size\": 16, \"optimizer\": {\"type\": \"AdamW\", "           \
    "\"params\": {\"lr\": 0.001}}}}"

static int parse(const char *text, sweep_spec *s, an_err *err)
{
    cJSON *j = cJSON_Parse(text);
    assert_non_null(j);
    an_err_clear(err);
    int rc = sweep_parse(j, s, err);
    cJSON_Delete(j);
    return rc;
}

static double num_at(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

static void test_grid_order(void **state)
{
    (void)state;
    sweep_spec s;
    an_err err;
    int rc = parse("{\"base\": " BASE ", \"parameters\": {"
                   "\"ds_config.optimizer.params.lr\": [0.1, 0.01],"
                   "\"model.hidden[0]\": [4, 8, 16]}}", &s, &err);
    if (rc)
        fail_msg("%s: %s", err.field, err.message);
    assert_int_equal(s.search, SWEEP_GRID); /* every parameter a list: grid by default */
    assert_int_equal(s.trials, 6);
    const double lr[6] = {0.1, 0.1, 0.1, 0.01, 0.01, 0.01};
    const double h[6] = {4, 8, 16, 4, 8, 16};
    for (int i = 0; i < 6; i++) {
        cJSON *p, *spec;
        assert_int_equal(sweep_trial_params(&s, i, &p, &err), 0);
        assert_true(num_at(p, "ds_config.optimizer.params.lr") == lr[i]);
        assert_true(num_at(p, "model.hidden[0]") == h[i]);
        /* the trial's spec is the base with both set, and a valid job */
        assert_int_equal(sweep_apply(s.base, p, &spec, &err), 0);
        job_spec js;
        assert_int_equal(job_spec_parse(spec, &js, &err), 0);
        assert_true(js.optim.lr == lr[i]);
        assert_int_equal(js.model.hidden[0], (int)h[i]);
        job_spec_free(&js);
        cJSON_Delete(spec);
        cJSON_Delete(p);
    }
    cJSON *p;
    assert_int_not_equal(sweep_trial_params(&s, 6, &p, &err), 0);
    sweep_free(&s);
}

static void test_random_is_seeded_and_in_range(void **state)
{
    (void)state;
    const char *body = "{\"base\": " BASE ", \"search\": \"random\", \"trials\": 400, "
                       "\"parameters\": {\"ds_config.optimizer.params.lr\": "
                       "{\"log_uniform\": [1e-4, 1e-1]}, "
                       "\"ds_config.optimizer.params.weight_decay\": {\"uniform\": [0, 0.2]}, "
                       "\"model.activation\": [\"relu\", \"tanh\"]}}";
    sweep_spec a, b;
    an_err err;
    if (parse(body, &a, &err))
        fail_msg("%s: %s", err.field, err.message);
    assert_int_equal(parse(body, &b, &err), 0);
    int below_gm = 0, low_wd = 0, relu = 0;
    for (int i = 0; i < a.trials; i++) {
        cJSON *pa, *pb;
        assert_int_equal(sweep_trial_params(&a, i, &pa, &err), 0);
        assert_int_equal(sweep_trial_params(&b, i, &pb, &err), 0);
        /* the same sweep proposes the same trials */
        assert_true(cJSON_Compare(pa, pb, 1));
        double lr = num_at(pa, "ds_config.optimizer.params.lr");
        double wd = num_at(pa, "ds_config.optimizer.params.weight_decay");
        assert_true(lr >= 1e-4 && lr <= 1e-1);
        assert_true(wd >= 0 && wd <= 0.2);
        below_gm += lr < sqrt(1e-4 * 1e-1); /* log-uniform: half below the geometric mean */
        low_wd += wd < 0.1;
        const cJSON *act = cJSON_GetObjectItemCaseSensitive(pa, "model.activation");
        relu += strcmp(act->valuestring, "relu") == 0;
        cJSON_Delete(pa);
        cJSON_Delete(pb);
    }
    /* 400 draws: a fair half lies within ±15 % of 200 with overwhelming probability */
    assert_in_range(below_gm, 170, 230);
    assert_in_range(low_wd, 170, 230);
    assert_in_range(relu, 170, 230);
    sweep_free(&b);

    /* another seed proposes other trials */
    char other[2048];
    snprintf(other, sizeof other, "%.*s, \"seed\": 99}", (int)strlen(body) - 1, body);
    assert_int_equal(parse(other, &b, &err), 0);
    cJSON *pa, *pb;
    assert_int_equal(sweep_trial_params(&a, 0, &pa, &err), 0);
    assert_int_equal(sweep_trial_params(&b, 0, &pb, &err), 0);
    assert_false(cJSON_Compare(pa, pb, 1));
    cJSON_Delete(pa);
    cJSON_Delete(pb);
    sweep_free(&a);
    sweep_free(&b);
}

/* A gpt job on 84 characters of inline text, windows of 8, validating `fraction` of it. */
#define GPT_BASE(fraction)                                                                     \
    "{\"model\": {\"type\": \"gpt\", \"block_size\": 8, \"n_layer\": 1, \"n_head\": 1, "         \
    "\"n_embd\": 8}, \"data\": {\"type\": \"text\", \"text\": \"to be, or not to be, that is the "   \
    "question: whether tis nobler in the mind to suffer the slings\"}, \"steps\": 10, "           \
    "\"validation\": {\"fraction\": " fraction ", \"every_steps\": 5}, \"ds_config\": "          \
    "{\"train_batch_size\": 2, \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.001}}}}"

/* Inline data whose targets suit mse (no accuracy) and bce (accuracy) alike. */
#define INLINE(loss)                                                                             \
    "{\"model\": {\"type\": \"linear\", \"inputs\": 2, \"outputs\": 1}, \"loss\": \"" loss "\", "  \
    "\"data\": {\"type\": \"inline\", \"x\": [[0,0],[0,1],[1,0],[1,1],[0,0],[0,1],[1,0],[1,1]], "  \
    "\"y\": [[0],[1],[1],[1],[0],[1],[1],[1]]}, \"steps\": 10, \"validation\": {\"fraction\": "   \
    "0.25, \"every_steps\": 5}, \"ds_config\": {\"train_batch_size\": 2, \"optimizer\": "        \
    "{\"type\": \"SGD\", \"params\": {\"lr\": 0.1}}}}"

static void test_bad_bodies_name_their_field(void **state)
{
    (void)state;
    static const struct {
        const char *body, *field, *says;
    } cases[] = {
        {"{\"parameters\": {\"seed\": [1]}}", "base", "required"},
        {"{\"base\": " BASE "}", "parameters", "required"},
        {"{\"base\": {\"steps\": 5}, \"parameters\": {\"seed\": [1]}}", "base.model", ""},
        {"{\"base\": " BASE ", \"parameters\": {}}", "parameters", "1 to"},
        {"{\"base\": " BASE ", \"parameters\": {\"ds_config.optimizer.params.lrr\": [1]}}",
         "parameters.ds_config.optimizer.params.lrr", "lrr"},
        {"{\"base\": " BASE ", \"parameters\": {\"ds_config.optimizer.params.lr\": [-1]}}",
         "parameters.ds_config.optimizer.params.lr", "lr"},
        {"{\"base\": " BASE ", \"parameters\": {\"model.hidden[3]\": [4]}}",
         "parameters.model.hidden[3]", "past the end"},
        {"{\"base\": " BASE ", \"parameters\": {\"nosuch.key\": [4]}}",
         "parameters.nosuch.key", "no \"nosuch\""},
        {"{\"base\": " BASE ", \"parameters\": {\"wibble\": [4]}}", "parameters.wibble", ""},
        {"{\"base\": " BASE ", \"parameters\": {\"model..inputs\": [4]}}",
         "parameters.model..inputs", "JSON path"},
        {"{\"base\": " BASE ", \"parameters\": {\"ds_config.optimizer.params.lr\": "
         "{\"log_uniform\": [0, 1]}}}",
         "parameters.ds_config.optimizer.params.lr.log_uniform", "above 0"},
        {"{\"base\": " BASE ", \"parameters\": {\"ds_config.optimizer.params.lr\": "
         "{\"uniform\": [0.1, 0.01]}}}",
         "parameters.ds_config.optimizer.params.lr.uniform", "below"},
        {"{\"base\": " BASE ", \"parameters\": {\"ds_config.optimizer.params.lr\": "
         "{\"normal\": [0.1, 0.01]}}}",
         "parameters.ds_config.optimizer.params.lr", "normal"},
        {"{\"base\": " BASE ", \"search\": \"grid\", \"parameters\": "
         "{\"ds_config.optimizer.params.lr\": {\"uniform\": [0.001, 0.01]}}}",
         "parameters.ds_config.optimizer.params.lr", "grid"},
        {"{\"base\": " BASE ", \"trials\": 3, \"parameters\": {\"seed\": [1, 2]}}", "trials",
         "every combination (2)"},
        {"{\"base\": " BASE ", \"search\": \"random\", \"trials\": 0, \"parameters\": "
         "{\"seed\": [1, 2]}}", "trials", ""},
        {"{\"base\": " BASE ", \"search\": \"sideways\", \"parameters\": {\"seed\": [1]}}",
         "search", ""},
        {"{\"base\": " BASE ", \"metric\": \"accuracy\", \"parameters\": {\"seed\": [1]}}",
         "metric", ""},
        {"{\"base\": " BASE ", \"max_concurrent\": 0, \"parameters\": {\"seed\": [1]}}",
         "max_concurrent", ""},
        {"{\"base\": " BASE ", \"early_stopping\": {\"type\": \"asha\"}, \"parameters\": "
         "{\"seed\": [1]}}", "early_stopping.min_steps", "required"},
        {"{\"base\": " BASE ", \"early_stopping\": {\"min_steps\": 10, \"reduction_factor\": 1}, "
         "\"parameters\": {\"seed\": [1]}}", "early_stopping.reduction_factor", ""},
        {"{\"base\": " BASE ", \"trails\": 3, \"parameters\": {\"seed\": [1]}}", "trails",
         "trials"},
        /* overlapping paths: the second is named, whichever holds the other */
        {"{\"base\": " BASE ", \"parameters\": {\"ds_config.optimizer.params.lr\": [0.1], "
         "\"ds_config.optimizer.params\": [{\"lr\": 0.2}]}}",
         "parameters.ds_config.optimizer.params", "overlaps parameter "
         "ds_config.optimizer.params.lr"},
        {"{\"base\": " BASE ", \"parameters\": {\"model.hidden\": [[4]], "
         "\"model.hidden[0]\": [8]}}", "parameters.model.hidden[0]", "overlaps"},
        {"{\"base\": " BASE ", \"parameters\": {\"seed\": [1], \"seed\": [2]}}",
         "parameters.seed", "twice"},
        /* one place written two ways ("[0]" and "[00]", "[+0]") is one path */
        {"{\"base\": " BASE ", \"parameters\": {\"model.hidden[0]\": [4], "
         "\"model.hidden[00]\": [8]}}", "parameters.model.hidden[00]",
         "the place parameter model.hidden[0] sets"},
        {"{\"base\": " BASE ", \"parameters\": {\"model.hidden[+0]\": [4], "
         "\"model.hidden[0]\": [8]}}", "parameters.model.hidden[0]", "the place parameter"},
        /* a range on an integer setting whose point 0.3721 of the way is an integer */
        {"{\"base\": " BASE ", \"search\": \"random\", \"parameters\": {\"steps\": "
         "{\"uniform\": [1, 10001]}}}", "parameters.steps", "integer"},
        /* val_loss (the default) of a trial whose value turns validation off */
        {"{\"base\": " BASE ", \"parameters\": {\"validation.fraction\": [0.2, 0]}}",
         "parameters.validation.fraction", "metric val_loss needs validation"},
        {"{\"base\": " BASE ", \"metric\": \"val_acc\", \"parameters\": "
         "{\"validation\": [{\"fraction\": 0}]}}", "parameters.validation",
         "metric val_acc needs validation"},
        /* val_acc where a trial cannot measure accuracy: a regression loss in the base, or
         * a value that makes one */
        {"{\"base\": " INLINE("mse") ", \"metric\": \"val_acc\", \"parameters\": "
         "{\"seed\": [1]}}", "metric", "the base spec's job has none"},
        {"{\"base\": " INLINE("bce") ", \"metric\": \"val_acc\", \"parameters\": "
         "{\"loss\": [\"bce\", \"mse\"]}}", "parameters.loss", "loss = \"mse\""},
        {"{\"base\": " INLINE("mse") ", \"metric\": \"val_acc\", \"parameters\": "
         "{\"seed\": [1], \"loss\": [\"bce\", \"mse\"]}}", "parameters.loss", "some"},
        {"{\"base\": " GPT_BASE("0.2") ", \"metric\": \"val_acc\", \"parameters\": "
         "{\"seed\": [1]}}", "metric", "accuracy"},
        /* a text split without a validation window, in the base or from a value */
        {"{\"base\": " GPT_BASE("0.05") ", \"parameters\": {\"seed\": [1]}}",
         "base.validation.fraction", "window"},
        {"{\"base\": " GPT_BASE("0.2") ", \"parameters\": {\"validation.fraction\": "
         "[0.2, 0.05]}}", "parameters.validation.fraction", "window"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sweep_spec s;
        an_err err;
        int rc = parse(cases[i].body, &s, &err);
        if (rc == 0)
            fail_msg("case %zu accepted: %s", i, cases[i].body);
        if (strncmp(err.field, cases[i].field, strlen(cases[i].field)) != 0)
            fail_msg("case %zu: field '%s', want '%s' (%s)", i, err.field, cases[i].field,
                     err.message);
        if (getenv("SWEEP_TEST_VERBOSE"))
            print_message("%-45s %s\n", err.field, err.message);
        if (!strstr(err.message, cases[i].says))
            fail_msg("case %zu: message '%s' does not say '%s'", i, err.message, cases[i].says);
    }

    /* validation turned off by a value is the trials' own business when the metric is loss */
    sweep_spec ok;
    an_err e;
    assert_int_equal(parse("{\"base\": " BASE ", \"metric\": \"loss\", \"parameters\": "
                           "{\"validation.fraction\": [0.2, 0]}}", &ok, &e), 0);
    assert_int_equal(ok.trials, 2);
    sweep_free(&ok);

    /* val_loss (the default metric) needs validation in the base */
    cJSON *b = cJSON_Parse(BASE);
    cJSON_DeleteItemFromObject(b, "validation");
    cJSON *body = cJSON_CreateObject();
    cJSON_AddItemToObject(body, "base", b);
    cJSON_AddItemToObject(body, "parameters", cJSON_Parse("{\"seed\": [1, 2]}"));
    sweep_spec s;
    an_err err;
    assert_int_not_equal(sweep_parse(body, &s, &err), 0);
    assert_string_equal(err.field, "metric");
    cJSON_AddStringToObject(body, "metric", "loss");
    assert_int_equal(sweep_parse(body, &s, &err), 0);
    assert_int_equal(s.maximize, 0);
    sweep_free(&s);
    cJSON_Delete(body);

    /* val_acc on a regression base: a parameter that gives every trial a classification
     * loss makes it measurable */
    if (parse("{\"base\": " INLINE("mse") ", \"metric\": \"val_acc\", \"parameters\": "
              "{\"seed\": [1, 2], \"loss\": [\"bce\"]}}", &s, &err) != 0)
        fail_msg("%s: %s", err.field, err.message);
    assert_int_equal(s.maximize, 1);
    sweep_free(&s);
    /* paths that only share a prefix do not overlap */
    if (parse("{\"base\": " BASE ", \"parameters\": {\"ds_config.optimizer.params.lr\": "
              "[0.1], \"ds_config.optimizer.params.weight_decay\": [0.1], \"seed\": [1]}}", &s,
              &err) != 0)
        fail_msg("%s: %s", err.field, err.message);
    sweep_free(&s);

    /* a data set's own test split is validation too */
    body = cJSON_Parse("{\"base\": {\"model\": {\"type\": \"mlp\", \"inputs\": 784, "
                       "\"hidden\": [8], \"outputs\": 10}, \"loss\": \"cross_entropy\", "
                       "\"data\": {\"type\": \"builtin\", \"name\": \"fashion-mnist\"}, "
                       "\"steps\": 10, \"validation\": {\"split\": \"test\", \"every_steps\": 5}, "
                       "\"ds_config\": {\"train_batch_size\": 8, \"optimizer\": {\"type\": \"SGD\", "
                       "\"params\": {\"lr\": 0.1}}}}, \"parameters\": {\"seed\": [1, 2]}}");
    assert_non_null(body);
    if (sweep_parse(body, &s, &err) != 0)
        fail_msg("%s: %s", err.field, err.message);
    assert_string_equal(s.metric, "val_loss");
    sweep_free(&s);
    cJSON_Delete(body);
}

/* A stored body is read back without its base and values being checked as jobs again: a
 * sweep stored before a check moved into the job parser (here the text split) stays
 * readable, with its trials and seed, while a new one like it is refused. */
static void test_stored_bodies_read_back(void **state)
{
    (void)state;
    cJSON *body = cJSON_Parse("{\"base\": " GPT_BASE("0.2") ", \"search\": \"random\", "
                              "\"trials\": 4, \"seed\": 9, \"parameters\": "
                              "{\"validation.fraction\": [0.2, 0.05]}}");
    assert_non_null(body);
    sweep_spec s;
    an_err err;
    assert_int_not_equal(sweep_parse(body, &s, &err), 0);
    assert_string_equal(err.field, "parameters.validation.fraction");
    assert_int_equal(sweep_parse_stored(body, &s, &err), 0);
    assert_int_equal(s.trials, 4);
    assert_int_equal(s.seed, 9);
    assert_string_equal(s.metric, "val_loss");
    cJSON *p = NULL;
    assert_int_equal(sweep_trial_params(&s, 3, &p, &err), 0);
    assert_non_null(cJSON_GetObjectItem(p, "validation.fraction"));
    cJSON_Delete(p);
    sweep_free(&s);
    cJSON_Delete(body);
    /* the base's own seed when the body gives none; what is not a sweep is still refused */
    body = cJSON_Parse("{\"base\": " GPT_BASE("0.05") ", \"parameters\": {\"seed\": [1, 2]}}");
    assert_int_equal(sweep_parse_stored(body, &s, &err), 0);
    assert_int_equal(s.seed, 0);
    assert_int_equal(s.trials, 2);
    sweep_free(&s);
    cJSON_DeleteItemFromObject(body, "parameters");
    assert_int_not_equal(sweep_parse_stored(body, &s, &err), 0);
    assert_string_equal(err.field, "parameters");
    cJSON_Delete(body);
    /* checks added since (overlapping paths, val_acc without accuracy) strand no stored sweep */
    body = cJSON_Parse("{\"base\": " INLINE("mse") ", \"metric\": \"val_acc\", \"parameters\": "
                       "{\"ds_config.optimizer.params.lr\": [0.1], "
                       "\"ds_config.optimizer.params\": [{\"lr\": 0.2}]}}");
    assert_int_not_equal(sweep_parse(body, &s, &err), 0);
    assert_int_equal(sweep_parse_stored(body, &s, &err), 0);
    assert_int_equal(s.nparams, 2);
    sweep_free(&s);
    cJSON_Delete(body);
}

static void test_rungs(void **state)
{
    (void)state;
    sweep_spec s;
    an_err err;
    assert_int_equal(parse("{\"base\": " BASE ", \"metric\": \"val_acc\", \"parameters\": "
                           "{\"seed\": [1, 2]}, \"early_stopping\": {\"type\": \"asha\", "
                           "\"min_steps\": 100, \"reduction_factor\": 3}}", &s, &err), 0);
    assert_int_equal(s.maximize, 1); /* val_acc: higher is better by default */
    int64_t r[SWEEP_MAX_RUNGS];
    assert_int_equal(sweep_rungs(&s, 2000, r, SWEEP_MAX_RUNGS), 3);
    assert_true(r[0] == 100 && r[1] == 300 && r[2] == 900);
    assert_int_equal(sweep_rungs(&s, 900, r, SWEEP_MAX_RUNGS), 2); /* a rung at the end is none */
    assert_int_equal(sweep_rungs(&s, 100, r, SWEEP_MAX_RUNGS), 0);
    sweep_free(&s);
}

static void test_asha_rule(void **state)
{
    (void)state;
    /* minimising, eta 3; arrivals in order: each decision is made against those before */
    const double v[7] = {0.5, 0.7, 0.4, 0.6, 0.45, NAN, 0.3};
    /* 0.5: first → on. 0.7: rank 2 of 2, keep 1 → off. 0.4: rank 1 of 3, keep 1 → on.
     * 0.6: rank 3 of 4, keep 2 → off. 0.45: rank 2 of 5, keep 2 → on. NaN: last of 6 →
     * off. 0.3: rank 1 of 7 → on. */
    const int want[7] = {1, 0, 1, 0, 1, 0, 1};
    for (int i = 0; i < 7; i++)
        if (sweep_asha_continues(v, i, v[i], 0, 3) != want[i])
            fail_msg("arrival %d (%g): want %s", i, v[i], want[i] ? "on" : "stopped");
    /* ties go to the earlier trial */
    const double tie[2] = {0.5, 0.5};
    assert_int_equal(sweep_asha_continues(tie, 1, tie[1], 0, 2), 0);
    assert_int_equal(sweep_asha_continues(tie, 1, 0.49, 0, 2), 1);
    /* maximising flips the order */
    assert_int_equal(sweep_asha_continues(tie, 1, 0.51, 1, 2), 1);
    assert_int_equal(sweep_asha_continues(tie, 1, 0.49, 1, 2), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grid_order),
        cmocka_unit_test(test_random_is_seeded_and_in_range),
        cmocka_unit_test(test_bad_bodies_name_their_field),
        cmocka_unit_test(test_stored_bodies_read_back),
        cmocka_unit_test(test_rungs),
        cmocka_unit_test(test_asha_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
