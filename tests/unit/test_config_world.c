/* test_config_world — world_size in DeepSpeed's batch arithmetic (train_batch_size = micro ×
 * gas × W, every derivation order), ds_config.zero_optimization (stages 0..3, bad values,
 * keys that change nothing), and bad world_size values naming the field. */
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

/* A small valid job; `top` is spliced in at the top level and `ds` into ds_config. */
static int parse(const char *top, const char *ds, job_spec *s, an_err *e)
{
    char text[2048];
    snprintf(text, sizeof text,
             "{\"model\": {\"type\": \"linear\", \"inputs\": 2, \"outputs\": 1},"
             "\"data\": {\"type\": \"synthetic\", \"task\": \"regression\", \"samples\": 256,"
             "\"features\": 2}, \"steps\": 10%s%s,"
             "\"ds_config\": {\"optimizer\": {\"type\": \"Adam\", \"params\": {\"lr\": 0.01}}%s%s}}",
             top[0] ? ", " : "", top, ds[0] ? ", " : "", ds);
    return job_spec_parse_text(text, strlen(text), s, e);
}

/* Every derivation order of DeepSpeed's rule, at W = 1, 2 and 4. */
static void test_batch_arithmetic(void **state)
{
    (void)state;
    static const struct {
        const char *top, *ds;
        int64_t tbs, mb, gas;
        int w;
    } ok[] = {
        {"", "\"train_batch_size\": 8", 8, 8, 1, 1},
        {"\"world_size\": 1", "\"train_batch_size\": 8", 8, 8, 1, 1},
        {"\"world_size\": 2", "\"train_batch_size\": 8", 8, 4, 1, 2},
        {"\"world_size\": 4", "\"train_micro_batch_size_per_gpu\": 3", 12, 3, 1, 4},
        {"\"world_size\": 2", "\"train_micro_batch_size_per_gpu\": 4, "
         "\"gradient_accumulation_steps\": 2", 16, 4, 2, 2},
        {"\"world_size\": 4", "\"train_batch_size\": 32, \"train_micro_batch_size_per_gpu\": 2", 32,
         2, 4, 4},
        {"\"world_size\": 2", "\"train_batch_size\": 32, \"gradient_accumulation_steps\": 4", 32, 4,
         4, 2},
        {"\"world_size\": 2", "\"train_batch_size\": 16, \"train_micro_batch_size_per_gpu\": 2, "
         "\"gradient_accumulation_steps\": 4", 16, 2, 4, 2},
        {"\"world_size\": 4", "\"train_batch_size\": \"auto\", \"train_micro_batch_size_per_gpu\": 2",
         8, 2, 1, 4},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        job_spec s;
        an_err e;
        if (parse(ok[i].top, ok[i].ds, &s, &e))
            fail_msg("case %zu: %s: %s", i, e.field, e.message);
        assert_int_equal(s.train_batch_size, ok[i].tbs);
        assert_int_equal(s.micro_batch, ok[i].mb);
        assert_int_equal(s.grad_accum, ok[i].gas);
        assert_int_equal(s.world_size, ok[i].w);
        assert_int_equal(s.train_batch_size, s.micro_batch * s.grad_accum * s.world_size);
        /* the normalized spec carries the resolved numbers and world_size */
        const cJSON *ws = cJSON_GetObjectItemCaseSensitive(s.normalized, "world_size");
        assert_true(cJSON_IsNumber(ws));
        assert_int_equal(ws->valueint, ok[i].w);
        job_spec_free(&s);
    }
    /* "auto" is reported with the world_size it used */
    job_spec s;
    an_err e;
    assert_int_equal(parse("\"world_size\": 4", "\"train_batch_size\": \"auto\", "
                           "\"train_micro_batch_size_per_gpu\": 2", &s, &e), 0);
    assert_true(tu_has_text(s.warnings, "\"auto\" resolved to 8 (train_batch_size 8 = micro-batch 2 × "
                               "accumulation 1 × world_size 4)"));
    job_spec_free(&s);
}

/* Bad values: the field is named, the message says what was wrong, and nothing is kept. */
static void test_bad_values(void **state)
{
    (void)state;
    static const struct {
        const char *top, *ds, *field, *msg;
    } bad[] = {
        {"\"world_size\": 0", "\"train_batch_size\": 8", "world_size", "got 0"},
        {"\"world_size\": -2", "\"train_batch_size\": 8", "world_size", "got -2"},
        {"\"world_size\": 1.5", "\"train_batch_size\": 8", "world_size", "got 1.5"},
        {"\"world_size\": \"2\"", "\"train_batch_size\": 8", "world_size", "got \"2\""},
        {"\"world_size\": 257", "\"train_batch_size\": 8", "world_size", "got 257"},
        {"\"world_size\": null", "\"train_batch_size\": 8", "world_size", ""},
        {"\"world_size\": 2", "\"train_batch_size\": 8, \"train_micro_batch_size_per_gpu\": 8",
         "ds_config.train_batch_size",
         "train_batch_size 8 != train_micro_batch_size_per_gpu 8 × gradient_accumulation_steps 0 "
         "× world_size 2"},
        {"\"world_size\": 2", "\"train_batch_size\": 16, \"train_micro_batch_size_per_gpu\": 4, "
         "\"gradient_accumulation_steps\": 4", "ds_config.train_batch_size",
         "train_batch_size 16 != train_micro_batch_size_per_gpu 4 × gradient_accumulation_steps 4 "
         "× world_size 2"},
        {"\"world_size\": 4", "\"train_batch_size\": 2", "ds_config.train_batch_size",
         "train_micro_batch_size_per_gpu 0"},
        {"\"world_size\": 3", "\"train_batch_size\": 10, \"gradient_accumulation_steps\": 2",
         "ds_config.train_batch_size", "train_micro_batch_size_per_gpu 1 × "
         "gradient_accumulation_steps 2 × world_size 3"},
        {"\"world_size\": 256", "\"train_micro_batch_size_per_gpu\": 16777216",
         "ds_config.train_batch_size", "more than the limit"},
        {"", "\"train_batch_size\": 8, \"zero_optimization\": {\"stage\": 4}", "ds_config.zero_optimization.stage",
         "got 4"},
        {"", "\"train_batch_size\": 8, \"zero_optimization\": {\"stage\": -1}", "ds_config.zero_optimization.stage",
         "got -1"},
        {"", "\"train_batch_size\": 8, \"zero_optimization\": {\"stage\": \"1\"}", "ds_config.zero_optimization.stage",
         "got \"1\""},
        {"", "\"train_batch_size\": 8, \"zero_optimization\": {\"stage\": 1.5}", "ds_config.zero_optimization.stage",
         "got 1.5"},
        {"", "\"train_batch_size\": 8, \"zero_optimization\": 1", "ds_config.zero_optimization", "must be an object"},
        {"", "\"train_batch_size\": 8, \"zero_optimization\": {\"stage\": 1, \"stage\": 2}",
         "ds_config.zero_optimization.stage", "duplicate key 'stage'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        job_spec s;
        an_err e;
        int rc = parse(bad[i].top, bad[i].ds, &s, &e);
        if (rc == 0) {
            job_spec_free(&s);
            fail_msg("case %zu accepted: %s %s", i, bad[i].top, bad[i].ds);
        }
        if (strcmp(e.field, bad[i].field) != 0 || !strstr(e.message, bad[i].msg))
            fail_msg("case %zu\n  want field %s, message containing '%s'\n  got  field %s: %s", i,
                     bad[i].field, bad[i].msg, e.field, e.message);
        assert_null(s.normalized);
        assert_null(s.warnings);
    }
}

/* A bad world_size and a bad batch are both reported in one answer. */
static void test_errors_together(void **state)
{
    (void)state;
    const char *text =
        "{\"model\": {\"type\": \"linear\", \"inputs\": 2, \"outputs\": 1},"
        "\"data\": {\"type\": \"synthetic\", \"task\": \"regression\", \"samples\": 256, "
        "\"features\": 2}, \"steps\": 10, \"world_size\": 0, \"ds_config\": {\"optimizer\": "
        "{\"type\": \"Adam\"}, \"train_batch_size\": 8, \"zero_optimization\": {\"stage\": 9}}}";
    cJSON *j = cJSON_Parse(text);
    assert_non_null(j);
    job_spec s;
    an_err errs[8];
    int n = 0;
    assert_int_not_equal(job_spec_parse_all(j, &s, errs, 8, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(errs[0].field, "world_size");
    assert_string_equal(errs[1].field, "ds_config.zero_optimization.stage");
    cJSON_Delete(j);
}

static void test_zero_stages(void **state)
{
    (void)state;
    static const struct {
        const char *top, *ds;
        int stage;
        const char *warning; /* NULL: none about zero_optimization */
    } c[] = {
        {"", "\"train_batch_size\": 8", 0, NULL},
        {"", "\"train_batch_size\": 8, \"zero_optimization\": {}", 0, NULL},
        {"", "\"train_batch_size\": 8, \"zero_optimization\": {\"stage\": 0}", 0, NULL},
        {"\"world_size\": 2", "\"train_batch_size\": 8, \"zero_optimization\": {\"stage\": 1}", 1,
         NULL},
        {"\"world_size\": 2", "\"train_batch_size\": 8, \"zero_optimization\": {\"stage\": 2}", 1,
         "ds_config.zero_optimization.stage 2 runs as stage 1 here: the optimizer state is "
         "sharded across the 2 ranks"},
        {"\"world_size\": 4", "\"train_batch_size\": 8, \"zero_optimization\": {\"stage\": 3}", 1,
         "ds_config.zero_optimization.stage 3 runs as stage 1 here"},
        {"", "\"train_batch_size\": 8, \"zero_optimization\": {\"stage\": 1, "
         "\"reduce_bucket_size\": 5e8}", 1,
         "ds_config.zero_optimization.reduce_bucket_size is not used by this daemon (ignored)"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        job_spec s;
        an_err e;
        if (parse(c[i].top, c[i].ds, &s, &e))
            fail_msg("case %zu: %s: %s", i, e.field, e.message);
        assert_int_equal(s.zero_stage, c[i].stage);
        if (c[i].warning) {
            if (!tu_has_text(s.warnings, c[i].warning))
                fail_msg("case %zu: no warning '%s'", i, c[i].warning);
        } else {
            assert_false(tu_has_text(s.warnings, "zero_optimization"));
        }
        job_spec_free(&s);
    }
}

/* A gpt keeps its whole optimizer state on every rank: ZeRO stage 1 asked for at W > 1 says
 * so; at W = 1, or at stage 0, nothing is said. */
static void test_zero_gpt(void **state)
{
    (void)state;
    static const char *fmt =
        "{\"model\": {\"type\": \"gpt\", \"block_size\": 8, \"n_layer\": 1, \"n_head\": 2,"
        " \"n_embd\": 16}, \"data\": {\"type\": \"text\", \"text\": \"hello there, hello again\"},"
        " \"steps\": 3, \"world_size\": %d, \"ds_config\": {\"train_batch_size\": 4,"
        " \"train_micro_batch_size_per_gpu\": 1, \"zero_optimization\": {\"stage\": %d},"
        " \"optimizer\": {\"type\": \"Adam\", \"params\": {\"lr\": 0.01}}}}";
    static const struct {
        int world, stage, warned;
    } c[] = {{2, 1, 1}, {4, 3, 1}, {1, 1, 0}, {2, 0, 0}};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char text[1024];
        snprintf(text, sizeof text, fmt, c[i].world, c[i].stage);
        job_spec s;
        an_err e;
        if (job_spec_parse_text(text, strlen(text), &s, &e))
            fail_msg("case %zu: %s: %s", i, e.field, e.message);
        if (tu_has_text(s.warnings, "a gpt model keeps its whole optimizer state on every rank") !=
            c[i].warned)
            fail_msg("case %zu: world_size %d stage %d: expected %s warning", i, c[i].world,
                     c[i].stage, c[i].warned ? "a" : "no");
        job_spec_free(&s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_arithmetic),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_errors_together),
        cmocka_unit_test(test_zero_stages),
        cmocka_unit_test(test_zero_gpt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
