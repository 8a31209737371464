/* test_config_checks_optim — checks of a job spec that span its sections: independent errors
 * reported together, the run's length against the step limit and against the schedule,
 * ReduceLROnPlateau's need of validation, momentum a scheduler cycles (against PyTorch's
 * trajectories in tests/refdata/torch-optim-sched), and param_groups left without tensors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <math.h>

#include "tests/unit/testutil.h"
#include "core/config.h"
#include "core/optim.h"
#include "core/sched.h"

/* A valid job every test patches. */
static const char *const base =
    "{\"model\": {\"type\": \"linear\", \"inputs\": 2, \"outputs\": 1},"
    " \"data\": {\"type\": \"synthetic\", \"task\": \"regression\", \"samples\": 64,"
    " \"features\": 2},"
    " \"steps\": 100,"
    " \"ds_config\": {\"train_batch_size\": 8,"
    " \"optimizer\": {\"type\": \"SGD\", \"params\": {\"lr\": 0.1}}}}";

/* The base job with `patch` applied (caller deletes). */
static cJSON *patched(const char *patch)
{
    return tu_patched(base, patch);
}

/* Parses the patched job collecting every error; returns how many. */
static int errors_of(const char *patch, an_err *errs, int max)
{
    cJSON *j = patched(patch);
    job_spec s;
    int n = 0;
    int rc = job_spec_parse_all(j, &s, errs, max, &n);
    cJSON_Delete(j);
    if (!rc)
        job_spec_free(&s);
    return n;
}

/* Parses the patched job, which must be accepted. */
static void accepted(const char *patch, job_spec *s)
{
    cJSON *j = patched(patch);
    an_err e;
    int rc = job_spec_parse(j, s, &e);
    cJSON_Delete(j);
    if (rc)
        fail_msg("refused: %s: %s (patch %s)", e.field, e.message, patch);
}

/* Fails unless the errors are exactly the fields `want` (in order). */
static void expect_fields(const char *patch, const char *const *want, int nwant)
{
    an_err errs[16];
    int n = errors_of(patch, errs, 16);
    int same = n == nwant;
    for (int k = 0; same && k < nwant; k++)
        same = strcmp(errs[k].field, want[k]) == 0;
    if (!same)
        for (int k = 0; k < n && k < 16; k++)
            print_message("  got %s: %s\n", errs[k].field, errs[k].message);
    assert_int_equal(n, nwant);
    for (int k = 0; k < nwant; k++)
        assert_string_equal(errs[k].field, want[k]);
}

/* ---- 1. independent errors ------------------------------------------------------------- */

/* A run given in steps has a scheduler that depends on neither the model nor the data. */
static void test_scheduler_error_beside_model_and_data_errors(void **state)
{
    (void)state;
    static const char *const blk =
        "\"scheduler\": {\"type\": \"WarmupLR\", \"params\": {\"warmup_num_steps\": 0}}";
    char patch[512];
    snprintf(patch, sizeof patch, "{\"model\": {\"inputs\": 0}, \"ds_config\": {%s}}", blk);
    const char *const a[] = {"model.inputs", "ds_config.scheduler.params.warmup_num_steps"};
    expect_fields(patch, a, 2);
    snprintf(patch, sizeof patch, "{\"data\": {\"samples\": -5}, \"ds_config\": {%s}}", blk);
    const char *const b[] = {"data.samples", "ds_config.scheduler.params.warmup_num_steps"};
    expect_fields(patch, b, 2);
    /* an epochs run takes its length from the data: with bad data the scheduler waits */
    snprintf(patch, sizeof patch, "{\"steps\": null, \"epochs\": 2, \"data\": {\"samples\": -5}, "
             "\"ds_config\": {%s}}", blk);
    const char *const c[] = {"data.samples"};
    expect_fields(patch, c, 1);
}

/* fp16/bf16 and activation checkpointing are checked beside other ds_config errors. */
static void test_numerics_beside_other_ds_config_errors(void **state)
{
    (void)state;
    const char *const a[] = {"ds_config.gradient_clipping",
                             "ds_config.activation_checkpointing.number_checkpoints"};
    expect_fields("{\"ds_config\": {\"gradient_clipping\": -1, "
                  "\"activation_checkpointing\": {\"number_checkpoints\": 0}}}", a, 2);
    const char *const b[] = {"ds_config.gradient_clipping", "ds_config.bf16"};
    expect_fields("{\"ds_config\": {\"gradient_clipping\": -1, \"fp16\": {\"enabled\": true}, "
                  "\"bf16\": {\"enabled\": true}}}", b, 2);
    /* a model with errors has no layer count: number_checkpoints is not measured against one */
    const char *const c[] = {"model.hidden"};
    expect_fields("{\"model\": {\"type\": \"mlp\", \"hidden\": []}, \"ds_config\": "
                  "{\"activation_checkpointing\": {\"number_checkpoints\": 3}}}", c, 1);
}

/* ---- 2. an epochs run within the steps limit ------------------------------------------- */

static void test_epochs_within_step_limit(void **state)
{
    (void)state;
    an_err errs[4];
    int n = errors_of("{\"steps\": null, \"epochs\": 1000000, \"data\": {\"samples\": 16777216}, "
                      "\"ds_config\": {\"train_batch_size\": 1}}", errs, 4);
    assert_int_equal(n, 1);
    assert_string_equal(errs[0].field, "epochs");
    assert_non_null(strstr(errs[0].message, "= 16777216000000 steps, more than the limit of "
                                            "1000000000"));
    /* exactly the limit is a run a job may have; one more row is not */
    job_spec s;
    accepted("{\"steps\": null, \"epochs\": 1000000, \"data\": {\"samples\": 1000}, "
             "\"ds_config\": {\"train_batch_size\": 1}}", &s);
    assert_int_equal(job_spec_total_steps(&s, 1000), CFG_MAX_STEPS);
    job_spec_free(&s);
    n = errors_of("{\"steps\": null, \"epochs\": 1000000, \"data\": {\"samples\": 1001}, "
                  "\"ds_config\": {\"train_batch_size\": 1}}", errs, 4);
    assert_int_equal(n, 1);
    assert_string_equal(errs[0].field, "epochs");
}

/* ---- 4. ReduceLROnPlateau needs validation ------------------------------------------- */

static void test_plateau_needs_validation(void **state)
{
    (void)state;
    static const char *const plateau =
        "{\"type\": \"ReduceLROnPlateau\", \"params\": {\"patience\": 2}}";
    char patch[512];
    snprintf(patch, sizeof patch, "{\"ds_config\": {\"scheduler\": %s}}", plateau);
    an_err errs[4];
    assert_int_equal(errors_of(patch, errs, 4), 1);
    assert_string_equal(errs[0].field, "ds_config.scheduler.type");
    assert_non_null(strstr(errs[0].message, "needs validation"));
    job_spec s;
    snprintf(patch, sizeof patch, "{\"validation\": {\"fraction\": 0.25, \"every_steps\": 10}, "
             "\"ds_config\": {\"scheduler\": %s}}", plateau);
    accepted(patch, &s);
    job_spec_free(&s);
    /* a phase of a MultiPhase schedule is named by its own path */
    snprintf(patch, sizeof patch, "{\"ds_config\": {\"scheduler\": {\"type\": \"MultiPhase\", "
             "\"params\": {\"phases\": [{\"steps\": 10, \"type\": \"WarmupLR\", \"params\": "
             "{\"warmup_num_steps\": 10}}, %s]}}}}", plateau);
    const char *const a[] = {"ds_config.scheduler.params.phases[1].type"};
    expect_fields(patch, a, 1);
    /* a validation block with errors of its own is not reported twice */
    snprintf(patch, sizeof patch, "{\"validation\": {\"fraction\": 2}, \"ds_config\": "
             "{\"scheduler\": %s}}", plateau);
    const char *const b[] = {"validation.fraction"};
    expect_fields(patch, b, 1);
}

/* ---- 6. OneCycleLR's total_steps covers the run ------------------------------------------ */

static void onecycle(char *buf, size_t size, const char *length, int64_t total)
{
    snprintf(buf, size, "{%s, \"ds_config\": {\"scheduler\": {\"type\": \"OneCycleLR\", "
             "\"params\": {\"max_lr\": 0.1, \"total_steps\": %lld}}}}", length, (long long)total);
}

static void test_onecyclelr_covers_the_run(void **state)
{
    (void)state;
    char patch[512];
    an_err errs[4];
    job_spec s;
    /* torch 1.13 raises in get_lr once last_epoch > total_steps: a run of N optimizer steps
     * steps the scheduler N times after its constructor's step 0, so N <= total_steps */
    onecycle(patch, sizeof patch, "\"steps\": 100", 10);
    assert_int_equal(errors_of(patch, errs, 4), 1);
    assert_string_equal(errs[0].field, "ds_config.scheduler.params.total_steps");
    assert_non_null(strstr(errs[0].message, "less than the 100 steps"));
    onecycle(patch, sizeof patch, "\"steps\": 100", 99);
    assert_int_equal(errors_of(patch, errs, 4), 1);
    onecycle(patch, sizeof patch, "\"steps\": 100", 100);
    accepted(patch, &s);
    job_spec_free(&s);
    /* an epochs run: 2 epochs of 64 rows in batches of 8 are 16 steps */
    onecycle(patch, sizeof patch, "\"steps\": null, \"epochs\": 2", 16);
    accepted(patch, &s);
    job_spec_free(&s);
    onecycle(patch, sizeof patch, "\"steps\": null, \"epochs\": 2", 15);
    assert_int_equal(errors_of(patch, errs, 4), 1);
    assert_string_equal(errs[0].field, "ds_config.scheduler.params.total_steps");
}

/* A phase drives its own steps; the last phase the rest of the run. */
static void test_onecyclelr_phase_covers_its_steps(void **state)
{
    (void)state;
    static const char *const fmt =
        "{\"steps\": 100, \"ds_config\": {\"scheduler\": {\"type\": \"MultiPhase\", \"params\": "
        "{\"phases\": [{\"steps\": 20, \"type\": \"OneCycleLR\", \"params\": {\"max_lr\": 0.1, "
        "\"total_steps\": %d}}, {\"steps\": 30, \"type\": \"StepLR\", \"params\": "
        "{\"step_size\": 5}}, {\"type\": \"OneCycleLR\", \"params\": {\"max_lr\": 0.1, "
        "\"total_steps\": %d}}]}}}}";
    char patch[700];
    job_spec s;
    snprintf(patch, sizeof patch, fmt, 20, 50);
    accepted(patch, &s);
    job_spec_free(&s);
    snprintf(patch, sizeof patch, fmt, 19, 50);
    const char *const a[] = {"ds_config.scheduler.params.phases[0].params.total_steps"};
    expect_fields(patch, a, 1);
    snprintf(patch, sizeof patch, fmt, 20, 49);
    const char *const b[] = {"ds_config.scheduler.params.phases[2].params.total_steps"};
    expect_fields(patch, b, 1);
    /* SequentialLR steps a child up to its milestone - 1 (torch 1.13 accepts milestone 11 and
     * raises at 12 for total_steps 10) */
    static const char *const seq =
        "{\"steps\": 30, \"ds_config\": {\"scheduler\": {\"type\": \"SequentialLR\", \"params\": "
        "{\"milestones\": [%d], \"schedulers\": [{\"type\": \"OneCycleLR\", \"params\": "
        "{\"max_lr\": 0.1, \"total_steps\": 10}}, {\"type\": \"StepLR\", \"params\": "
        "{\"step_size\": 5}}]}}}}";
    snprintf(patch, sizeof patch, seq, 11);
    accepted(patch, &s);
    job_spec_free(&s);
    snprintf(patch, sizeof patch, seq, 12);
    const char *const c[] = {"ds_config.scheduler.params.schedulers[0].params.total_steps"};
    expect_fields(patch, c, 1);
}

/* ---- 3. momentum a scheduler cycles ------------------------------------------------------ */

#define REFDIR "tests/refdata/torch-optim-sched/"

/* Relative difference in the max norm, as test_optim.c measures its references. */
static double max_rel(const double *got, const cJSON *want, int n)
{
    double scale = 0, worst = 0;
    for (int i = 0; i < n; i++)
        scale = fmax(scale, fabs(cJSON_GetArrayItem(want, i)->valuedouble));
    for (int i = 0; i < n; i++) {
        double d = fabs(got[i] - cJSON_GetArrayItem(want, i)->valuedouble) / (scale + 1e-300);
        worst = isnan(d) ? INFINITY : fmax(worst, d);
    }
    return worst;
}

/* One reference: the job spec with its optimizer and scheduler blocks is parsed, and the
 * optimizer and scheduler it describes are driven as the trainer drives them (the
 * scheduler's values written into the group before every step) on the recorded gradients.
 * A reference without a scheduler gives each step's lr and momentum itself, as a
 * multi-phase schedule whose later phase cycles momentum would write them. */
static void run_ref(const char *name, int dtype)
{
    char path[256];
    snprintf(path, sizeof path, REFDIR "%s.%s.json", name, dtype == OPTIM_F32 ? "float32" : "float64");
    cJSON *ref = tu_load_json(path);
    int n = cJSON_GetObjectItemCaseSensitive(ref, "n")->valueint;
    int steps = cJSON_GetObjectItemCaseSensitive(ref, "steps")->valueint;
    double tol = dtype == OPTIM_F32 ? 1e-5 : 1e-12; /* test_optim.c's, tests/refdata/README.md */
    cJSON *job = patched("{}");
    cJSON *ds = cJSON_GetObjectItemCaseSensitive(job, "ds_config");
    cJSON_ReplaceItemInObjectCaseSensitive(
        ds, "optimizer", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(ref, "optimizer"), 1));
    const cJSON *sblock = cJSON_GetObjectItemCaseSensitive(ref, "scheduler");
    if (cJSON_IsObject(sblock))
        cJSON_AddItemToObject(ds, "scheduler", cJSON_Duplicate(sblock, 1));
    cJSON_ReplaceItemInObjectCaseSensitive(job, "steps", cJSON_CreateNumber(steps));
    job_spec s;
    an_err e;
    if (job_spec_parse(job, &s, &e))
        fail_msg("%s refused: %s: %s", name, e.field, e.message);
    cJSON_Delete(job);
    assert_true(s.optim.momentum == 0);
    if (!s.scheduler)
        s.optim.momentum_cycled = 1; /* the buffer a cycling phase makes the config keep */

    sched_env env;
    job_spec_sched_env(&s, -1, &env);
    optim_group g = {.lr = s.optim.lr, .weight_decay = s.optim.weight_decay,
                     .beta1 = s.optim.beta1, .beta2 = s.optim.beta2,
                     .momentum = s.optim.momentum};
    optim_tensor t = {0, (size_t)n, 0};
    optim o;
    sched *sc;
    assert_int_equal(optim_init(&o, &s.optim, dtype, (size_t)n, &t, 1, &g, 1, &e), 0);
    sc = NULL;
    if (s.scheduler)
        assert_int_equal(sched_create(&sc, s.scheduler, "ds_config.scheduler", &env, &e, NULL), 0);
    double p[64], gr[64], got[64];
    float pf[64], gf[64];
    assert_true(n <= 64);
    const cJSON *p0 = cJSON_GetObjectItemCaseSensitive(ref, "p0");
    for (int i = 0; i < n; i++) {
        p[i] = cJSON_GetArrayItem(p0, i)->valuedouble;
        pf[i] = (float)p[i]; /* the float32 file holds float32 values */
    }
    for (int k = 0; k < steps; k++) {
        if (sc) {
            o.groups[0].lr = sched_lr(sc)[0];
            assert_non_null(sched_mom(sc));
            o.groups[0].momentum = sched_mom(sc)[0];
        } else {
            o.groups[0].lr = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(ref, "lr"), k)
                                 ->valuedouble;
            o.groups[0].momentum =
                cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(ref, "momentum"), k)->valuedouble;
        }
        const cJSON *gk = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(ref, "grads"), k);
        for (int i = 0; i < n; i++) {
            gr[i] = cJSON_GetArrayItem(gk, i)->valuedouble;
            gf[i] = (float)gr[i];
        }
        if (dtype == OPTIM_F32)
            optim_step(&o, pf, gf);
        else
            optim_step(&o, p, gr);
        if (sc)
            sched_step(sc, NAN);
        if (k == 2) { /* a resume after step 3 goes on as one run: the state carries it all */
            size_t len = optim_state_size(&o);
            unsigned char *buf = malloc(len);
            assert_non_null(buf);
            assert_int_equal(optim_save(&o, buf, len), 0);
            optim_free(&o);
            assert_int_equal(optim_init(&o, &s.optim, dtype, (size_t)n, &t, 1, &g, 1, &e), 0);
            assert_int_equal(optim_load(&o, buf, len, &e), 0);
            free(buf);
        }
        for (int i = 0; i < n; i++)
            got[i] = dtype == OPTIM_F32 ? (double)pf[i] : p[i];
        double d = max_rel(got, cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(ref, "params"), k), n);
        if (!(d <= tol))
            fail_msg("%s %s step %d: params differ by %.3g relative (tolerance %g)", name,
                     dtype == OPTIM_F32 ? "float32" : "float64", k + 1, d, tol);
    }
    sched_free(sc);
    optim_free(&o);
    job_spec_free(&s);
    cJSON_Delete(ref);
}

static void test_cycled_momentum_against_torch(void **state)
{
    (void)state;
    static const char *const cases[] = {"sgd_cycliclr", "sgd_onecyclelr", "rmsprop_cycliclr",
                                        "rmsprop_onecyclelr", "sgd_late_momentum"};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        run_ref(cases[c], OPTIM_F64);
        run_ref(cases[c], OPTIM_F32);
    }
}

/* A state saved by a build that kept no buffer for the cycled momentum (it ignored it) is
 * refused saying so, rather than as a size that does not match. */
static void test_state_without_the_cycled_momentum_buffer(void **state)
{
    (void)state;
    static const char *const opts[] = {"{\"type\": \"SGD\", \"params\": {\"lr\": 0.1}}",
                                       "{\"type\": \"RMSprop\", \"params\": {\"lr\": 0.1}}"};
    for (int k = 0; k < 2; k++) {
        char patch[400];
        snprintf(patch, sizeof patch, "{\"ds_config\": {\"optimizer\": %s, \"scheduler\": "
                 "{\"type\": \"CyclicLR\", \"params\": {\"base_lr\": 0.01, \"max_lr\": 0.1, "
                 "\"step_size_up\": 5}}}}", opts[k]);
        job_spec s;
        accepted(patch, &s);
        assert_true(s.optim.momentum_cycled);
        optim_cfg old_cfg = s.optim;
        old_cfg.momentum_cycled = 0;
        optim_group g = {.lr = 0.1, .momentum = 0};
        optim_tensor t = {0, 8, 0};
        optim now, old;
        an_err e;
        assert_int_equal(optim_init(&now, &s.optim, OPTIM_F32, 8, &t, 1, &g, 1, &e), 0);
        assert_int_equal(optim_init(&old, &old_cfg, OPTIM_F32, 8, &t, 1, &g, 1, &e), 0);
        size_t len = optim_state_size(&old);
        unsigned char *buf = malloc(len);
        assert_non_null(buf);
        assert_int_equal(optim_save(&old, buf, len), 0);
        assert_int_equal(optim_load(&now, buf, len, &e), -EINVAL);
        assert_non_null(strstr(e.message, "cycle_momentum"));
        free(buf);
        optim_free(&old);
        optim_free(&now);
        job_spec_free(&s);
    }
}

/* ---- 5. param_groups left without tensors ------------------------------------------------ */

static int warns_shadowed(const char *patch)
{
    job_spec s;
    accepted(patch, &s);
    int w = tu_has_text(s.warnings, "gets no tensor");
    job_spec_free(&s);
    return w;
}

static void test_group_shadowed_by_earlier_group(void **state)
{
    (void)state;
    job_spec s;
    accepted("{\"param_groups\": [{\"match\": [\"*\"], \"lr\": 0.1}, "
             "{\"match\": [\"*.bias\"], \"lr\": 5}]}", &s);
    assert_true(tu_has_text(s.warnings, "param_groups[1] gets no tensor: every tensor it matches is "
                                "taken by an earlier group (fc.bias by param_groups[0])"));
    job_spec_free(&s);
    /* disjoint groups, and a group that keeps some of what it matches, train something */
    assert_false(warns_shadowed("{\"param_groups\": [{\"match\": [\"*.weight\"]}, "
                                "{\"match\": [\"*.bias\"]}]}"));
    assert_false(warns_shadowed("{\"model\": {\"type\": \"mlp\", \"hidden\": [4]}, "
                                "\"param_groups\": [{\"match\": [\"fc1.*\"]}, "
                                "{\"match\": [\"*.bias\"]}]}"));
    /* a glob that matches nothing keeps its own warning, not this one */
    assert_false(warns_shadowed("{\"param_groups\": [{\"match\": [\"fc9.*\"]}]}"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scheduler_error_beside_model_and_data_errors),
        cmocka_unit_test(test_numerics_beside_other_ds_config_errors),
        cmocka_unit_test(test_epochs_within_step_limit),
        cmocka_unit_test(test_plateau_needs_validation),
        cmocka_unit_test(test_cycled_momentum_against_torch),
        cmocka_unit_test(test_state_without_the_cycled_momentum_buffer),
        cmocka_unit_test(test_group_shadowed_by_earlier_group),
        cmocka_unit_test(test_onecyclelr_covers_the_run),
        cmocka_unit_test(test_onecyclelr_phase_covers_its_steps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
