/* test_optim_parse — the optimizer block: names and case rules, defaults, and every kind of
 * bad value with the path it is reported at. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <cjson/cJSON.h>

#include "core/optim.h"

static int parse(const char *json, optim_cfg *cfg, an_err *err, cJSON *warnings)
{
    cJSON *b = cJSON_Parse(json);
    assert_non_null(b);
    an_err_clear(err);
    int rc = optim_parse(b, "ds_config.optimizer", cfg, err, warnings);
    cJSON_Delete(b);
    return rc;
}

static void test_names_and_case(void **state)
{
    (void)state;
    static const struct { const char *type; int want; } ok[] = {
        {"Adam", OPTIM_ADAM},       {"adam", OPTIM_ADAM},       {"ADAM", OPTIM_ADAM},
        {"AdamW", OPTIM_ADAMW},     {"adamw", OPTIM_ADAMW},     {"Lamb", OPTIM_LAMB},
        {"LAMB", OPTIM_LAMB},       {"Lion", OPTIM_LION},       {"lion", OPTIM_LION},
        {"Adagrad", OPTIM_ADAGRAD}, {"adagrad", OPTIM_ADAGRAD}, {"SGD", OPTIM_SGD},
        {"RMSprop", OPTIM_RMSPROP},
    };
    for (size_t k = 0; k < sizeof ok / sizeof ok[0]; k++) {
        char json[200];
        optim_cfg cfg;
        an_err err;
        snprintf(json, sizeof json, "{\"type\":\"%s\",\"params\":{\"lr\":0.1}}", ok[k].type);
        if (parse(json, &cfg, &err, NULL))
            fail_msg("%s: %s", ok[k].type, err.message);
        assert_int_equal(cfg.type, ok[k].want);
        assert_true(cfg.lr == 0.1);
    }
    assert_string_equal(optim_type_name(OPTIM_ADAM), "Adam");
    assert_string_equal(optim_type_name(OPTIM_RMSPROP), "RMSprop");
    assert_string_equal(optim_type_name(OPTIM_SGD), "SGD");
    assert_string_equal(optim_type_name(99), "unknown");
}

static void test_defaults(void **state)
{
    (void)state;
    optim_cfg c;
    an_err err;
    assert_int_equal(parse("{\"type\":\"Adam\",\"params\":{}}", &c, &err, NULL), 0);
    assert_true(c.lr == 1e-3 && c.beta1 == 0.9 && c.beta2 == 0.999 && c.eps == 1e-8);
    assert_true(c.weight_decay == 0 && c.bias_correction == 1 && c.adam_w_mode == 1);
    assert_true(c.torch_adam == 0 && c.amsgrad == 0 && optim_has_betas(&c));
    assert_int_equal(parse("{\"type\":\"Adam\",\"params\":{\"adam_w_mode\":false}}", &c, &err,
                           NULL), 0);
    assert_int_equal(c.adam_w_mode, 0);
    /* AdamW is always decoupled */
    cJSON *w = cJSON_CreateArray();
    assert_int_equal(parse("{\"type\":\"AdamW\",\"params\":{\"adam_w_mode\":false}}", &c, &err, w),
                     0);
    assert_int_equal(c.adam_w_mode, 1);
    assert_int_equal(cJSON_GetArraySize(w), 1);
    cJSON_Delete(w);
    /* torch_adam: torch AdamW and its 0.01 decay, unless adam_w_mode is false */
    assert_int_equal(parse("{\"type\":\"Adam\",\"params\":{\"torch_adam\":true}}", &c, &err, NULL),
                     0);
    assert_true(c.torch_adam == 1 && c.weight_decay == 0.01);
    assert_int_equal(parse("{\"type\":\"Adam\",\"params\":{\"torch_adam\":true,"
                           "\"adam_w_mode\":false}}", &c, &err, NULL), 0);
    assert_true(c.weight_decay == 0.0);
    assert_int_equal(parse("{\"type\":\"AdamW\",\"params\":{\"torch_adam\":true,"
                           "\"weight_decay\":0.2,\"amsgrad\":true}}", &c, &err, NULL), 0);
    assert_true(c.weight_decay == 0.2 && c.amsgrad == 1);
    assert_int_equal(parse("{\"type\":\"Lamb\",\"params\":{}}", &c, &err, NULL), 0);
    assert_true(c.max_coeff == 10.0 && c.min_coeff == 0.01 && c.eps_inside_sqrt == 0);
    assert_true(c.lr == 1e-3 && c.bias_correction == 1 && c.beta2 == 0.999);
    assert_int_equal(parse("{\"type\":\"Lion\",\"params\":{}}", &c, &err, NULL), 0);
    assert_true(c.beta1 == 0.9 && c.beta2 == 0.999 && c.lr == 1e-3 && optim_has_betas(&c));
    assert_int_equal(parse("{\"type\":\"Adagrad\",\"params\":{}}", &c, &err, NULL), 0);
    assert_true(c.lr == 1e-2 && c.eps == 1e-10 && c.lr_decay == 0 && !optim_has_betas(&c));
    assert_int_equal(parse("{\"type\":\"SGD\",\"params\":{\"lr\":0.05,\"momentum\":0.9}}", &c,
                           &err, NULL), 0);
    assert_true(c.lr == 0.05 && c.momentum == 0.9 && c.nesterov == 0 && !optim_has_betas(&c));
    assert_int_equal(parse("{\"type\":\"RMSprop\",\"params\":{}}", &c, &err, NULL), 0);
    assert_true(c.lr == 1e-2 && c.alpha == 0.99 && c.eps == 1e-8 && c.centered == 0);
    /* params may be left out */
    assert_int_equal(parse("{\"type\":\"Adam\"}", &c, &err, NULL), 0);
    assert_true(c.lr == 1e-3);
}

static void test_errors(void **state)
{
    (void)state;
    static const struct { const char *json; const char *field; const char *says; } bad[] = {
        {"[]", "ds_config.optimizer", "object"},
        {"{\"params\":{}}", "ds_config.optimizer.type", "required"},
        {"{\"type\":3}", "ds_config.optimizer.type", "string"},
        {"{\"type\":\"OneBitAdam\",\"params\":{}}", "ds_config.optimizer.type", "\"Adam\""},
        {"{\"type\":\"zerooneadam\",\"params\":{}}", "ds_config.optimizer.type", "\"Adam\""},
        {"{\"type\":\"OneBitLamb\",\"params\":{}}", "ds_config.optimizer.type", "\"Lamb\""},
        {"{\"type\":\"sgd\",\"params\":{\"lr\":0.1}}", "ds_config.optimizer.type", "SGD"},
        {"{\"type\":\"rmsprop\",\"params\":{}}", "ds_config.optimizer.type", "RMSprop"},
        {"{\"type\":\"Adamax\",\"params\":{}}", "ds_config.optimizer.type", "unknown"},
        {"{\"type\":\"MuAdam\",\"params\":{}}", "ds_config.optimizer.type", "not offered"},
        {"{\"type\":\"Adam\",\"params\":[]}", "ds_config.optimizer.params", "object"},
        {"{\"type\":\"Adam\",\"params\":{},\"x\":1}", "ds_config.optimizer.x", "x"},
        {"{\"type\":\"Adam\",\"params\":{\"lr\":\"0.1\"}}", "ds_config.optimizer.params.lr",
         "number"},
        {"{\"type\":\"Adam\",\"params\":{\"lr\":\"auto\"}}", "ds_config.optimizer.params.lr",
         "auto"},
        {"{\"type\":\"Adam\",\"params\":{\"lr\":-0.1}}", "ds_config.optimizer.params.lr", ">= 0"},
        {"{\"type\":\"Adam\",\"params\":{\"betas\":0.9}}", "ds_config.optimizer.params.betas",
         "two numbers"},
        {"{\"type\":\"Adam\",\"params\":{\"betas\":[0.9]}}", "ds_config.optimizer.params.betas",
         "two numbers"},
        {"{\"type\":\"Adam\",\"params\":{\"betas\":[0.9,1.0]}}",
         "ds_config.optimizer.params.betas[1]", "[0, 1)"},
        {"{\"type\":\"Adam\",\"params\":{\"betas\":[-0.1,0.9]}}",
         "ds_config.optimizer.params.betas[0]", "[0, 1)"},
        {"{\"type\":\"Adam\",\"params\":{\"betas\":[0.9,\"x\"]}}",
         "ds_config.optimizer.params.betas[1]", "numbers"},
        {"{\"type\":\"Adam\",\"params\":{\"betas\":\"auto\"}}", "ds_config.optimizer.params.betas",
         "auto"},
        {"{\"type\":\"Adam\",\"params\":{\"max_grad_norm\":1.0}}",
         "ds_config.optimizer.params.max_grad_norm", "gradient_clipping"},
        {"{\"type\":\"Lamb\",\"params\":{\"max_grad_norm\":0}}",
         "ds_config.optimizer.params.max_grad_norm", "gradient_clipping"},
        {"{\"type\":\"Adam\",\"params\":{\"momentum\":0.9}}", "ds_config.optimizer.params.momentum",
         "momentum"},
        {"{\"type\":\"Adam\",\"params\":{\"amsgrad\":true}}", "ds_config.optimizer.params.amsgrad",
         "torch_adam"},
        {"{\"type\":\"Adam\",\"params\":{\"bias_correction\":1}}",
         "ds_config.optimizer.params.bias_correction", "true or false"},
        {"{\"type\":\"Adam\",\"params\":{\"eps\":-1e-8}}", "ds_config.optimizer.params.eps",
         ">= 0"},
        {"{\"type\":\"Adam\",\"params\":{\"weight_decay\":-1}}",
         "ds_config.optimizer.params.weight_decay", ">= 0"},
        {"{\"type\":\"Lamb\",\"params\":{\"amsgrad\":false}}", "ds_config.optimizer.params.amsgrad",
         "amsgrad"},
        {"{\"type\":\"Lamb\",\"params\":{\"min_coeff\":20}}", "ds_config.optimizer.params.min_coeff",
         "max_coeff"},
        {"{\"type\":\"Lion\",\"params\":{\"eps\":1e-8}}", "ds_config.optimizer.params.eps", "eps"},
        {"{\"type\":\"SGD\",\"params\":{}}", "ds_config.optimizer.params.lr", "required"},
        {"{\"type\":\"SGD\",\"params\":{\"lr\":0.1,\"nesterov\":true}}",
         "ds_config.optimizer.params.nesterov", "momentum"},
        {"{\"type\":\"SGD\",\"params\":{\"lr\":0.1,\"betas\":[0.9,0.99]}}",
         "ds_config.optimizer.params.betas", "betas"},
        {"{\"type\":\"RMSprop\",\"params\":{\"alpha\":\"x\"}}", "ds_config.optimizer.params.alpha",
         "number"},
        {"{\"type\":\"Adagrad\",\"params\":{\"lr_decay\":-1}}",
         "ds_config.optimizer.params.lr_decay", ">= 0"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        optim_cfg c;
        an_err err;
        int rc = parse(bad[k].json, &c, &err, NULL);
        if (rc == 0)
            fail_msg("accepted: %s", bad[k].json);
        assert_int_equal(rc, -EINVAL);
        if (strcmp(err.field, bad[k].field) != 0)
            fail_msg("%s: field %s, want %s (%s)", bad[k].json, err.field, bad[k].field,
                     err.message);
        if (!strstr(err.message, bad[k].says))
            fail_msg("%s: message \"%s\" does not say \"%s\"", bad[k].json, err.message,
                     bad[k].says);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_case),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
