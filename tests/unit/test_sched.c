/* test_sched — every scheduler against the reference traces, validation paths, state
 * save/restore, and the schedule preview. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <cjson/cJSON.h>

#include "tests/unit/testutil.h"
#include "core/sched.h"
#include "core/sched_node.h"

static int g_total; /* reference values compared, every one bit for bit */

/* "Reproduces the trace" means the same double: got == want, no tolerance. */
static void check_exact(double got, double want, const char *what, const char *name, int step,
                        int g)
{
    g_total++;
    if (!(got == want))
        fail_msg("%s: %s at step %d group %d: got %.17g, want %.17g (differs by %.3g)", name,
                 what, step, g, got, want, got - want);
}

/* ---------------- DeepSpeed traces ---------------- */

static void ds_env(const cJSON *trace, const cJSON *lrs, sched_env *env)
{
    memset(env, 0, sizeof *env);
    env->ngroups = cJSON_GetArraySize(lrs);
    for (int g = 0; g < env->ngroups; g++)
        env->base_lr[g] = cJSON_GetArrayItem(lrs, g)->valuedouble;
    const cJSON *opt = cJSON_GetObjectItem(trace, "optimizer");
    const cJSON *type = cJSON_GetObjectItem(opt, "type");
    const cJSON *op = cJSON_GetObjectItem(opt, "params");
    env->has_betas = !(type && strcmp(type->valuestring, "SGD") == 0);
    env->has_momentum = !env->has_betas;
    env->beta1 = 0.9;
    env->beta2 = 0.999;
    const cJSON *b = cJSON_GetObjectItem(op, "betas");
    if (b) {
        env->beta1 = cJSON_GetArrayItem(b, 0)->valuedouble;
        env->beta2 = cJSON_GetArrayItem(b, 1)->valuedouble;
    }
    const cJSON *m = cJSON_GetObjectItem(op, "momentum");
    env->momentum = m ? m->valuedouble : 0.0;
    env->total_steps = 1000;
    env->train_batch_size = 8;
}

/* Compares the scheduler's current values with one trace record. */
static void ds_check_record(const sched *s, const sched_env *env, const cJSON *rec,
                            const char *name, int step)
{
    const cJSON *lr = cJSON_GetObjectItem(rec, "lr");
    const cJSON *betas = cJSON_GetObjectItem(rec, "betas");
    const cJSON *mom = cJSON_GetObjectItem(rec, "momentum");
    const double *l = sched_lr(s), *m = sched_mom(s), *b2 = sched_beta2(s);
    assert_int_equal(cJSON_GetArraySize(lr), sched_ngroups(s));
    for (int g = 0; g < sched_ngroups(s); g++) {
        check_exact(l[g], cJSON_GetArrayItem(lr, g)->valuedouble, "lr", name, step, g);
        if (betas) {
            const cJSON *bg = cJSON_GetArrayItem(betas, g);
            check_exact(m ? m[g] : env->beta1, cJSON_GetArrayItem(bg, 0)->valuedouble, "beta1",
                        name, step, g);
            check_exact(b2 ? b2[g] : env->beta2, cJSON_GetArrayItem(bg, 1)->valuedouble, "beta2",
                        name, step, g);
        }
        if (mom)
            check_exact(m ? m[g] : env->momentum, cJSON_GetArrayItem(mom, g)->valuedouble,
                        "momentum", name, step, g);
    }
}

/* A resume_* trace: run to resume_after, save, free, build anew, load, continue. */
static void ds_resume_trace(cJSON *tr, const char *name)
{
    {
        sched_env env;
        ds_env(tr, cJSON_GetObjectItem(tr, "optimizer_lr"), &env);
        const cJSON *block = cJSON_GetObjectItem(tr, "scheduler");
        const cJSON *un = cJSON_GetObjectItem(tr, "uninterrupted");
        int after = cJSON_GetObjectItem(tr, "resume_after")->valueint;
        int cont = cJSON_GetObjectItem(tr, "continue_for")->valueint;
        assert_int_equal(cJSON_GetArraySize(un), after + cont);
        sched *s;
        an_err err;
        assert_int_equal(sched_create(&s, block, "ds_config.scheduler", &env, &err, NULL), 0);
        for (int k = 0; k < after; k++) {
            sched_step(s, NAN);
            ds_check_record(s, &env, cJSON_GetArrayItem(un, k), name, k + 1);
        }
        /* The saved group state is what the next step uses. */
        const cJSON *saved = cJSON_GetObjectItem(tr, "group_state_when_saved");
        check_exact(sched_lr(s)[0], cJSON_GetArrayItem(cJSON_GetObjectItem(saved, "lr"), 0)->valuedouble,
                    "saved lr", name, after, 0);
        size_t len = sched_state_size(s);
        unsigned char *buf = malloc(len);
        assert_int_equal(sched_save(s, buf, len), 0);
        sched_free(s);
        assert_int_equal(sched_create(&s, block, "ds_config.scheduler", &env, &err, NULL), 0);
        assert_int_equal(sched_load(s, buf, len, &err), 0);
        assert_int_equal(sched_steps(s), after);
        for (int k = after; k < after + cont; k++) {
            sched_step(s, NAN);
            ds_check_record(s, &env, cJSON_GetArrayItem(un, k), name, k + 1);
        }
        free(buf);
        sched_free(s);
    }
    {
        /* DeepSpeed's own resume path: last_batch_iteration in params. The constructor writes
         * nothing (the optimizer keeps its lr and betas) and the next step continues. */
        cJSON *blk = cJSON_Duplicate(cJSON_GetObjectItem(tr, "scheduler"), 1);
        cJSON *params = cJSON_GetObjectItem(blk, "params");
        int after = cJSON_GetObjectItem(tr, "resume_after")->valueint;
        const cJSON *un = cJSON_GetObjectItem(tr, "uninterrupted");
        const cJSON *var = cJSON_GetObjectItem(cJSON_GetObjectItem(tr, "variants"),
                                               "constructor_last_batch_iteration");
        const cJSON *gs = cJSON_GetObjectItem(var, "group_state_after_constructor");
        cJSON_AddNumberToObject(params, "last_batch_iteration", after - 1);
        sched_env env;
        ds_env(tr, cJSON_GetObjectItem(tr, "optimizer_lr"), &env);
        sched *s;
        an_err err;
        assert_int_equal(sched_create(&s, blk, "ds_config.scheduler", &env, &err, NULL), 0);
        ds_check_record(s, &env, gs, name, after);
        int n = cJSON_GetArraySize(un);
        for (int k = after; k < n; k++) {
            sched_step(s, NAN);
            ds_check_record(s, &env, cJSON_GetArrayItem(un, k), name, k + 1);
        }
        sched_free(s);
        cJSON_Delete(blk);
    }
}

static void test_deepspeed_traces(void **state)
{
    (void)state;
    cJSON *idx = tu_load_json("tests/refdata/deepspeed-schedules/index.json");
    const cJSON *f;
    int files = 0, resumes = 0;
    cJSON_ArrayForEach(f, cJSON_GetObjectItem(idx, "files")) {
        char path[512];
        const char *name = cJSON_GetObjectItem(f, "name")->valuestring;
        snprintf(path, sizeof path, "tests/refdata/deepspeed-schedules/%s",
                 cJSON_GetObjectItem(f, "file")->valuestring);
        cJSON *tr = tu_load_json(path);
        files++;
        if (cJSON_GetObjectItem(tr, "uninterrupted")) {
            ds_resume_trace(tr, name);
            resumes++;
            cJSON_Delete(tr);
            continue;
        }
        sched_env env;
        ds_env(tr, cJSON_GetObjectItem(f, "optimizer_lr"), &env);
        sched *s;
        an_err err;
        cJSON *warnings = cJSON_CreateArray();
        int rc = sched_create(&s, cJSON_GetObjectItem(tr, "scheduler"), "ds_config.scheduler",
                              &env, &err, warnings);
        if (rc)
            fail_msg("%s: %s (%s)", name, err.message, err.field);
        /* DeepSpeed warned at construction exactly when we do. */
        int ds_warned = cJSON_GetArraySize(cJSON_GetObjectItem(tr, "warnings_at_construction")) > 0;
        if (strstr(name, "unknown_type") || strstr(name, "sgd_no_betas") ||
            strstr(name, "lt_warmup"))
            assert_true(ds_warned && cJSON_GetArraySize(warnings) > 0);
        const cJSON *steps = cJSON_GetObjectItem(tr, "steps");
        int n = cJSON_GetArraySize(steps);
        assert_int_equal(n, cJSON_GetObjectItem(f, "steps")->valueint + 1);
        int k = 0;
        const cJSON *rec;
        cJSON_ArrayForEach(rec, steps) {
            assert_int_equal(sched_steps(s), k);
            ds_check_record(s, &env, rec, name, k);
            sched_step(s, NAN);
            k++;
        }
        sched_free(s);
        cJSON_Delete(warnings);
        cJSON_Delete(tr);
    }
    assert_int_equal(files, 36);
    assert_int_equal(resumes, 5);
    cJSON_Delete(idx);
}

static void test_seed_example(void **state)
{
    (void)state;
    cJSON *tr = tu_load_json("tests/refdata/deepspeed-schedules/seed_example.json");
    const cJSON *ds = cJSON_GetObjectItem(tr, "ds_config");
    sched_env env = {.ngroups = 1, .base_lr = {0.01}, .has_betas = 1, .beta1 = 0.9,
                     .beta2 = 0.999, .total_steps = 200};
    sched *s;
    an_err err;
    assert_int_equal(sched_create(&s, cJSON_GetObjectItem(ds, "scheduler"), "ds_config.scheduler",
                                  &env, &err, NULL), 0);
    const cJSON *used = cJSON_GetObjectItem(tr, "lr_used_by_optimizer_step");
    int checked = 0;
    for (int step = 1; step <= 102; step++) {
        char key[16];
        snprintf(key, sizeof key, "%d", step);
        const cJSON *want = cJSON_GetObjectItem(used, key);
        if (want) {
            assert_true(sched_lr(s)[0] == want->valuedouble);
            checked++;
        }
        sched_step(s, NAN);
    }
    assert_int_equal(checked, 6);
    sched_free(s);
    cJSON_Delete(tr);
}

/* ---------------- PyTorch traces ---------------- */

/* {"cls": T, k: v…} -> {"type": T, "params": {k: v…}} */
static cJSON *torch_child(const cJSON *c)
{
    cJSON *blk = cJSON_CreateObject(), *params = cJSON_CreateObject();
    const cJSON *it;
    cJSON_ArrayForEach(it, c) {
        if (strcmp(it->string, "cls") == 0)
            cJSON_AddStringToObject(blk, "type", it->valuestring);
        else
            cJSON_AddItemToObject(params, it->string, cJSON_Duplicate(it, 1));
    }
    cJSON_AddItemToObject(blk, "params", params);
    return blk;
}

static cJSON *torch_block(const char *type, const cJSON *args)
{
    cJSON *blk = cJSON_CreateObject();
    const char *colon = strchr(type, ':');
    cJSON_AddStringToObject(blk, "type", colon ? colon + 1 : type);
    cJSON *params = cJSON_Duplicate(args, 1);
    cJSON *list = cJSON_GetObjectItem(params, "schedulers");
    if (list) {
        cJSON *conv = cJSON_CreateArray();
        const cJSON *c;
        cJSON_ArrayForEach(c, list)
            cJSON_AddItemToArray(conv, torch_child(c));
        cJSON_ReplaceItemInObject(params, "schedulers", conv);
    }
    cJSON_AddItemToObject(blk, "params", params);
    return blk;
}

static sched_env one_group_env(void);

/* Every trace of a directory in torch-schedules' layout; returns the number of cases and
 * counts the refused ones (Python callables) in *rejected. */
static int torch_trace_dir(const char *dir, int *rejected_out)
{
    char ipath[512];
    snprintf(ipath, sizeof ipath, "%s/index.json", dir);
    cJSON *idx = tu_load_json(ipath);
    const cJSON *c;
    int cases = 0, rejected = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(idx, "cases")) {
        char path[512];
        const char *file = cJSON_GetObjectItem(c, "file")->valuestring;
        const char *type = cJSON_GetObjectItem(c, "scheduler")->valuestring;
        snprintf(path, sizeof path, "%s/%s", dir, file);
        cJSON *tr = tu_load_json(path);
        cJSON *blk = torch_block(type, cJSON_GetObjectItem(c, "constructor_args"));
        sched_env env = {.ngroups = 2, .base_lr = {0.1, 0.05}, .has_betas = 0, .has_momentum = 1,
                         .momentum = 0.9, .beta1 = 0.9, .beta2 = 0.999, .total_steps = 300};
        sched *s;
        an_err err;
        int rc = sched_create(&s, blk, "ds_config.scheduler", &env, &err, NULL);
        cases++;
        if (strcmp(type, "LambdaLR") == 0 || strcmp(type, "MultiplicativeLR") == 0) {
            /* Python callables have no JSON form: refused, naming the type. */
            assert_int_not_equal(rc, 0);
            assert_string_equal(err.field, "ds_config.scheduler.type");
            rejected++;
            cJSON_Delete(blk);
            cJSON_Delete(tr);
            continue;
        }
        if (rc)
            fail_msg("%s: %s (%s)", file, err.message, err.field);
        const cJSON *lr = cJSON_GetObjectItem(tr, "lr");
        const cJSON *mom = cJSON_GetObjectItem(tr, "momentum");
        const cJSON *metrics = cJSON_GetObjectItem(tr, "metrics");
        const cJSON *plateau = cJSON_GetObjectItem(tr, "plateau_state_after_step");
        int n = cJSON_GetArraySize(lr);
        assert_int_equal(n, cJSON_GetObjectItem(c, "steps")->valueint + 1);
        for (int k = 0; k < n; k++) {
            if (k > 0)
                sched_step(s, metrics ? cJSON_GetArrayItem(metrics, k - 1)->valuedouble : NAN);
            const cJSON *row = cJSON_GetArrayItem(lr, k);
            for (int g = 0; g < 2; g++) {
                check_exact(sched_lr(s)[g], cJSON_GetArrayItem(row, g)->valuedouble, "lr", file, k,
                            g);
                if (mom) {
                    const double *m = sched_mom(s);
                    check_exact(m ? m[g] : env.momentum,
                                cJSON_GetArrayItem(cJSON_GetArrayItem(mom, k), g)->valuedouble,
                                "momentum", file, k, g);
                }
            }
            if (plateau && k > 0) {
                const cJSON *ps = cJSON_GetArrayItem(plateau, k - 1);
                check_exact(s->best, cJSON_GetObjectItem(ps, "best")->valuedouble, "best", file,
                            k, 0);
                assert_int_equal(s->num_bad, cJSON_GetObjectItem(ps, "num_bad_epochs")->valueint);
                assert_int_equal(s->cooldown_counter,
                                 cJSON_GetObjectItem(ps, "cooldown_counter")->valueint);
            }
        }
        sched_free(s);
        cJSON_Delete(blk);
        cJSON_Delete(tr);
    }
    cJSON_Delete(idx);
    *rejected_out = rejected;
    return cases;
}

static void test_torch_traces(void **state)
{
    (void)state;
    int rejected;
    assert_int_equal(torch_trace_dir("tests/refdata/torch-schedules", &rejected), 42);
    assert_int_equal(rejected, 2);
}

/* SequentialLR and ChainedScheduler whose children share the groups' initial_lr, CyclicLR's
 * first lr and OneCycleLR's lrs and momenta (tests/refdata/torch-composites). */
static void test_torch_composite_traces(void **state)
{
    (void)state;
    int rejected;
    assert_int_equal(torch_trace_dir("tests/refdata/torch-composites", &rejected), 8);
    assert_int_equal(rejected, 0);
}

/* OneCycle with stairs and cycle_second_step_size 0: the cycle only rises, so the second
 * stair count is never used and the config is accepted (DEEPSPEED.md §3: ci = b mod total,
 * pos = ci*n/first, s = floor(pos)/n; after the cycle the lr stays at the minimum). */
static void test_onecycle_stairs_without_second_half(void **state)
{
    (void)state;
    sched_env env = one_group_env();
    cJSON *b = cJSON_Parse("{\"type\":\"OneCycle\",\"params\":{\"cycle_min_lr\":0.001,"
                           "\"cycle_max_lr\":0.01,\"cycle_first_step_size\":10,"
                           "\"cycle_second_step_size\":0,\"cycle_first_stair_count\":5}}");
    sched *s;
    an_err err;
    if (sched_create(&s, b, "ds_config.scheduler", &env, &err, NULL))
        fail_msg("%s (%s)", err.message, err.field);
    int rises = 0;
    for (int e = 0; e < 16; e++) {
        double want = 0.001;
        if (e >= 1 && e < 10)
            want = 0.001 + (0.01 - 0.001) * (floor((double)(e % 10) * 5 / 10) / 5);
        check_exact(sched_lr(s)[0], want, "lr", "onecycle stairs, second 0", e, 0);
        rises += e > 0 && sched_lr(s)[0] > want - 1e-12 && want > 0.001;
        sched_step(s, NAN);
    }
    assert_int_equal(rises, 8); /* 0.0028 … 0.0082, each held two steps */
    sched_free(s);
    cJSON_Delete(b);
}

/* torch 1.13's CyclicLR cycles only a momentum, OneCycleLR a momentum or beta1: without one
 * to cycle (and cycle_momentum left true) the job is refused, naming cycle_momentum. */
static void test_cycled_momentum_needs_one(void **state)
{
    (void)state;
    static const struct { int betas, momentum; const char *json; int ok; } c[] = {
        {1, 0, "{\"type\":\"CyclicLR\",\"params\":{\"base_lr\":0.01,\"max_lr\":0.1}}", 0},
        {0, 0, "{\"type\":\"CyclicLR\",\"params\":{\"base_lr\":0.01,\"max_lr\":0.1}}", 0},
        {0, 1, "{\"type\":\"CyclicLR\",\"params\":{\"base_lr\":0.01,\"max_lr\":0.1}}", 1},
        {1, 0, "{\"type\":\"CyclicLR\",\"params\":{\"base_lr\":0.01,\"max_lr\":0.1,"
               "\"cycle_momentum\":false}}", 1},
        {0, 0, "{\"type\":\"OneCycleLR\",\"params\":{\"max_lr\":0.1,\"total_steps\":9}}", 0},
        {1, 0, "{\"type\":\"OneCycleLR\",\"params\":{\"max_lr\":0.1,\"total_steps\":9}}", 1},
        {0, 1, "{\"type\":\"OneCycleLR\",\"params\":{\"max_lr\":0.1,\"total_steps\":9}}", 1},
        {0, 0, "{\"type\":\"OneCycleLR\",\"params\":{\"max_lr\":0.1,\"total_steps\":9,"
               "\"cycle_momentum\":false}}", 1},
        {1, 0, "{\"type\":\"SequentialLR\",\"params\":{\"milestones\":[3],\"schedulers\":["
               "{\"type\":\"StepLR\",\"params\":{\"step_size\":2}},{\"type\":\"CyclicLR\","
               "\"params\":{\"base_lr\":0.01,\"max_lr\":0.1}}]}}", 0},
    };
    for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
        sched_env env = one_group_env();
        env.has_betas = c[k].betas;
        env.has_momentum = c[k].momentum;
        cJSON *b = cJSON_Parse(c[k].json);
        an_err err;
        int rc = sched_validate(b, "ds_config.scheduler", &env, &err, NULL);
        cJSON_Delete(b);
        if (c[k].ok) {
            if (rc)
                fail_msg("case %zu: %s (%s)", k, err.message, err.field);
            continue;
        }
        assert_int_not_equal(rc, 0);
        assert_non_null(strstr(err.field, "params.cycle_momentum"));
        assert_non_null(strstr(err.message, "\"cycle_momentum\": false"));
    }
}


/* ---------------- validation ---------------- */

static sched_env one_group_env(void)
{
    sched_env env = {.ngroups = 2, .base_lr = {0.01, 0.001}, .has_betas = 1, .beta1 = 0.9,
                     .beta2 = 0.999, .total_steps = 500, .train_batch_size = 8};
    return env;
}

static void test_validation_paths(void **state)
{
    (void)state;
    static const struct { const char *json; const char *field; } bad[] = {
        {"{\"type\":\"WarmupLR\"}", "ds_config.scheduler.params"},
        {"{\"type\":\"WarmupLR\",\"params\":[]}", "ds_config.scheduler.params"},
        {"{\"params\":{}}", "ds_config.scheduler.type"},
        {"{\"type\":\"warmuplr\",\"params\":{}}", "ds_config.scheduler.type"},
        {"{\"type\":7,\"params\":{}}", "ds_config.scheduler.type"},
        {"{\"type\":\"WarmupLR\",\"params\":{},\"extra\":1}", "ds_config.scheduler.extra"},
        {"{\"type\":\"WarmupLR\",\"params\":{\"warmup_steps\":10}}",
         "ds_config.scheduler.params.warmup_steps"},
        {"{\"type\":\"WarmupLR\",\"params\":{\"warmup_num_steps\":0}}",
         "ds_config.scheduler.params.warmup_num_steps"},
        {"{\"type\":\"WarmupLR\",\"params\":{\"warmup_num_steps\":-3}}",
         "ds_config.scheduler.params.warmup_num_steps"},
        {"{\"type\":\"WarmupLR\",\"params\":{\"warmup_num_steps\":100.5}}",
         "ds_config.scheduler.params.warmup_num_steps"},
        {"{\"type\":\"WarmupLR\",\"params\":{\"warmup_num_steps\":false}}",
         "ds_config.scheduler.params.warmup_num_steps"},
        {"{\"type\":\"WarmupLR\",\"params\":{\"warmup_num_steps\":\"100\"}}",
         "ds_config.scheduler.params.warmup_num_steps"},
        {"{\"type\":\"WarmupLR\",\"params\":{\"warmup_num_steps\":\"auto\"}}",
         "ds_config.scheduler.params.warmup_num_steps"},
        {"{\"type\":\"WarmupLR\",\"params\":{\"warmup_min_lr\":[0.0]}}",
         "ds_config.scheduler.params.warmup_min_lr"},
        {"{\"type\":\"WarmupLR\",\"params\":{\"warmup_max_lr\":[0.1,\"x\"]}}",
         "ds_config.scheduler.params.warmup_max_lr[1]"},
        {"{\"type\":\"WarmupLR\",\"params\":{\"warmup_max_lr\":-1}}",
         "ds_config.scheduler.params.warmup_max_lr"},
        {"{\"type\":\"WarmupLR\",\"params\":{\"warmup_type\":3}}",
         "ds_config.scheduler.params.warmup_type"},
        {"{\"type\":\"WarmupDecayLR\",\"params\":{}}",
         "ds_config.scheduler.params.total_num_steps"},
        {"{\"type\":\"WarmupCosineLR\",\"params\":{\"total_num_steps\":\"x\"}}",
         "ds_config.scheduler.params.total_num_steps"},
        {"{\"type\":\"WarmupCosineLR\",\"params\":{\"total_num_steps\":10,\"cos_min_ratio\":\"auto\"}}",
         "ds_config.scheduler.params.cos_min_ratio"},
        {"{\"type\":\"OneCycle\",\"params\":{\"cycle_max_lr\":0.1}}",
         "ds_config.scheduler.params.cycle_min_lr"},
        {"{\"type\":\"OneCycle\",\"params\":{\"cycle_min_lr\":0.01,\"cycle_max_lr\":0.1,"
         "\"cycle_first_step_size\":0}}", "ds_config.scheduler.params.cycle_first_step_size"},
        {"{\"type\":\"OneCycle\",\"params\":{\"cycle_min_lr\":0.01,\"cycle_max_lr\":0.1,"
         "\"cycle_second_step_size\":-1}}", "ds_config.scheduler.params.cycle_second_step_size"},
        {"{\"type\":\"OneCycle\",\"params\":{\"cycle_min_lr\":0.01,\"cycle_max_lr\":0.1,"
         "\"cycle_momentum\":1}}", "ds_config.scheduler.params.cycle_momentum"},
        {"{\"type\":\"OneCycle\",\"params\":{\"cycle_min_lr\":0.01,\"cycle_max_lr\":[0.1,0.2,0.3]}}",
         "ds_config.scheduler.params.cycle_max_lr"},
        {"{\"type\":\"LRRangeTest\",\"params\":{\"lr_range_test_step_size\":0}}",
         "ds_config.scheduler.params.lr_range_test_step_size"},
        {"{\"type\":\"LRRangeTest\",\"params\":{\"lr_range_test_staircase\":\"yes\"}}",
         "ds_config.scheduler.params.lr_range_test_staircase"},
        {"{\"type\":\"StepLR\",\"params\":{}}", "ds_config.scheduler.params.step_size"},
        {"{\"type\":\"MultiStepLR\",\"params\":{\"milestones\":[10,\"a\"]}}",
         "ds_config.scheduler.params.milestones[1]"},
        {"{\"type\":\"CosineAnnealingLR\",\"params\":{\"T_max\":0}}",
         "ds_config.scheduler.params.T_max"},
        {"{\"type\":\"CyclicLR\",\"params\":{\"base_lr\":0.01,\"max_lr\":0.1,\"mode\":\"sine\"}}",
         "ds_config.scheduler.params.mode"},
        {"{\"type\":\"OneCycleLR\",\"params\":{\"max_lr\":0.1}}",
         "ds_config.scheduler.params.total_steps"},
        {"{\"type\":\"OneCycleLR\",\"params\":{\"max_lr\":0.1,\"total_steps\":100,"
         "\"anneal_strategy\":\"exp\"}}", "ds_config.scheduler.params.anneal_strategy"},
        {"{\"type\":\"LinearLR\",\"params\":{\"start_factor\":0}}",
         "ds_config.scheduler.params.start_factor"},
        {"{\"type\":\"ReduceLROnPlateau\",\"params\":{\"factor\":1.5}}",
         "ds_config.scheduler.params.factor"},
        {"{\"type\":\"ReduceLROnPlateau\",\"params\":{\"threshold_mode\":\"pct\"}}",
         "ds_config.scheduler.params.threshold_mode"},
        {"{\"type\":\"ReduceLROnPlateau\",\"params\":{\"min_lr\":[0.1]}}",
         "ds_config.scheduler.params.min_lr"},
        {"{\"type\":\"SequentialLR\",\"params\":{\"schedulers\":[{\"type\":\"StepLR\","
         "\"params\":{\"step_size\":5}},{\"type\":\"ExponentialLR\",\"params\":{\"gamma\":0.9}}]}}",
         "ds_config.scheduler.params.milestones"},
        {"{\"type\":\"SequentialLR\",\"params\":{\"schedulers\":[{\"type\":\"WarmupLR\","
         "\"params\":{}}],\"milestones\":[]}}", "ds_config.scheduler.params.schedulers[0].type"},
        {"{\"type\":\"ChainedScheduler\",\"params\":{\"schedulers\":[{\"type\":\"StepLR\","
         "\"params\":{\"step_size\":\"x\"}}]}}",
         "ds_config.scheduler.params.schedulers[0].params.step_size"},
        {"{\"type\":\"MultiPhase\",\"params\":{\"phases\":[{\"type\":\"WarmupLR\",\"params\":{}},"
         "{\"steps\":10,\"type\":\"StepLR\",\"params\":{\"step_size\":3}}]}}",
         "ds_config.scheduler.params.phases[0].steps"},
        {"{\"type\":\"MultiPhase\",\"params\":{\"phases\":[{\"steps\":5,\"type\":\"StepLR\","
         "\"params\":{\"step_size\":3,\"gama\":0.5}}]}}",
         "ds_config.scheduler.params.phases[0].params.gama"},
        {"{\"type\":\"MultiPhase\",\"params\":{\"phases\":[]}}",
         "ds_config.scheduler.params.phases"},
        {"{\"type\":\"LambdaLR\",\"params\":{}}", "ds_config.scheduler.type"},
    };
    sched_env env = one_group_env();
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        cJSON *b = cJSON_Parse(bad[k].json);
        assert_non_null(b);
        an_err err;
        an_err_clear(&err);
        int rc = sched_validate(b, "ds_config.scheduler", &env, &err, NULL);
        if (rc == 0)
            fail_msg("accepted: %s", bad[k].json);
        assert_int_equal(rc, -EINVAL);
        if (strcmp(err.field, bad[k].field) != 0)
            fail_msg("%s: field %s, want %s (%s)", bad[k].json, err.field, bad[k].field,
                     err.message);
        assert_true(strlen(err.message) > 10);
        cJSON_Delete(b);
    }
}

static void test_validation_quirks(void **state)
{
    (void)state;
    sched_env env = one_group_env();
    an_err err;
    sched *s;
    /* true passes as 1 and acts as 2, as in DeepSpeed. */
    cJSON *b = cJSON_Parse("{\"type\":\"WarmupLR\",\"params\":{\"warmup_num_steps\":true,"
                           "\"warmup_type\":\"linear\",\"warmup_max_lr\":1}}");
    assert_int_equal(sched_create(&s, b, "ds_config.scheduler", &env, &err, NULL), 0);
    sched_step(s, NAN);
    sched_step(s, NAN);
    assert_true(sched_lr(s)[0] == 0.5); /* i = 1: 1/W with W = 2 */
    sched_free(s);
    cJSON_Delete(b);
    /* "auto" resolutions come with warnings. */
    cJSON *w = cJSON_CreateArray();
    b = cJSON_Parse("{\"type\":\"WarmupDecayLR\",\"params\":{\"total_num_steps\":\"auto\","
                    "\"warmup_max_lr\":\"auto\",\"warmup_min_lr\":\"auto\",\"warmup_num_steps\":10}}");
    assert_int_equal(sched_create(&s, b, "ds_config.scheduler", &env, &err, w), 0);
    assert_int_equal(cJSON_GetArraySize(w), 3);
    for (int k = 0; k < 11; k++)
        sched_step(s, NAN);
    assert_true(sched_lr(s)[0] == 0.01 && sched_lr(s)[1] == 0.001); /* i = W: peak = group lrs */
    for (int k = 11; k < 500; k++)
        sched_step(s, NAN);
    assert_true(sched_lr(s)[0] > 0.0); /* i = 499 */
    sched_step(s, NAN);
    assert_true(sched_lr(s)[0] == 0.0); /* i = T = 500: min, from the "auto" total */
    sched_free(s);
    cJSON_Delete(b);
    cJSON_Delete(w);
    /* no block: base lrs forever */
    assert_int_equal(sched_create(&s, NULL, "ds_config.scheduler", &env, &err, NULL), 0);
    sched_step(s, NAN);
    assert_true(sched_lr(s)[1] == 0.001 && sched_mom(s) == NULL && sched_beta2(s) == NULL);
    sched_free(s);
    /* bad env */
    sched_env bad = env;
    bad.ngroups = 0;
    assert_int_not_equal(sched_create(&s, NULL, "x", &bad, &err, NULL), 0);
    assert_null(s);
}

/* ---------------- save / restore ---------------- */

static const char *const every_type[] = {
    "{\"type\":\"WarmupLR\",\"params\":{\"warmup_num_steps\":7}}",
    "{\"type\":\"WarmupDecayLR\",\"params\":{\"total_num_steps\":30,\"warmup_num_steps\":5}}",
    "{\"type\":\"WarmupCosineLR\",\"params\":{\"total_num_steps\":30,\"warmup_num_steps\":5}}",
    "{\"type\":\"OneCycle\",\"params\":{\"cycle_min_lr\":0.001,\"cycle_max_lr\":0.01,"
    "\"cycle_first_step_size\":6,\"decay_step_size\":2,\"decay_lr_rate\":0.5,\"decay_mom_rate\":0.1}}",
    "{\"type\":\"LRRangeTest\",\"params\":{\"lr_range_test_step_size\":4}}",
    "{\"type\":\"StepLR\",\"params\":{\"step_size\":4}}",
    "{\"type\":\"MultiStepLR\",\"params\":{\"milestones\":[3,9,9]}}",
    "{\"type\":\"ExponentialLR\",\"params\":{\"gamma\":0.9}}",
    "{\"type\":\"CosineAnnealingLR\",\"params\":{\"T_max\":7}}",
    "{\"type\":\"CosineAnnealingWarmRestarts\",\"params\":{\"T_0\":3,\"T_mult\":2}}",
    "{\"type\":\"CyclicLR\",\"params\":{\"base_lr\":0.001,\"max_lr\":0.01,\"step_size_up\":4,"
    "\"mode\":\"triangular2\",\"cycle_momentum\":false}}",
    "{\"type\":\"OneCycleLR\",\"params\":{\"max_lr\":0.1,\"total_steps\":30,\"three_phase\":true}}",
    "{\"type\":\"LinearLR\",\"params\":{\"total_iters\":9}}",
    "{\"type\":\"ConstantLR\",\"params\":{\"total_iters\":9}}",
    "{\"type\":\"PolynomialLR\",\"params\":{\"total_iters\":20,\"power\":2}}",
    "{\"type\":\"ReduceLROnPlateau\",\"params\":{\"patience\":1,\"cooldown\":1,\"factor\":0.5}}",
    "{\"type\":\"SequentialLR\",\"params\":{\"schedulers\":[{\"type\":\"LinearLR\",\"params\":"
    "{\"start_factor\":0.1,\"total_iters\":5}},{\"type\":\"CosineAnnealingLR\",\"params\":"
    "{\"T_max\":20}}],\"milestones\":[5]}}",
    "{\"type\":\"ChainedScheduler\",\"params\":{\"schedulers\":[{\"type\":\"ConstantLR\",\"params\":"
    "{\"factor\":0.5,\"total_iters\":3}},{\"type\":\"ExponentialLR\",\"params\":{\"gamma\":0.95}}]}}",
    "{\"type\":\"MultiPhase\",\"params\":{\"phases\":[{\"steps\":6,\"type\":\"WarmupLR\",\"params\":"
    "{\"warmup_num_steps\":6}},{\"steps\":8,\"type\":\"OneCycle\",\"params\":{\"cycle_min_lr\":0.001,"
    "\"cycle_max_lr\":0.01,\"cycle_first_step_size\":3}},{\"type\":\"ReduceLROnPlateau\","
    "\"params\":{\"patience\":0}}]}}",
};

/* A metric with plateaus, so ReduceLROnPlateau acts. */
static double metric_at(int k) { return k % 5 == 4 ? NAN : 1.0 / (1 + (k / 4)); }

static void test_save_restore_every_type(void **state)
{
    (void)state;
    sched_env env = one_group_env();
    for (size_t t = 0; t < sizeof every_type / sizeof every_type[0]; t++) {
        cJSON *b = cJSON_Parse(every_type[t]);
        assert_non_null(b);
        an_err err;
        sched *ref, *a, *c;
        if (sched_create(&ref, b, "ds_config.scheduler", &env, &err, NULL))
            fail_msg("%s: %s (%s)", every_type[t], err.message, err.field);
        assert_int_equal(sched_create(&a, b, "ds_config.scheduler", &env, &err, NULL), 0);
        int cut = 9; /* MultiPhase: mid second phase */
        for (int k = 0; k < cut; k++) {
            sched_step(ref, metric_at(k));
            sched_step(a, metric_at(k));
        }
        size_t len = sched_state_size(a);
        unsigned char *buf = malloc(len);
        assert_int_equal(sched_save(a, buf, len), 0);
        assert_int_equal(sched_save(a, buf, len - 1), -ENOSPC);
        sched_free(a);
        assert_int_equal(sched_create(&c, b, "ds_config.scheduler", &env, &err, NULL), 0);
        /* short and corrupted buffers are refused and leave the scheduler untouched */
        assert_int_not_equal(sched_load(c, buf, len - 1, &err), 0);
        assert_int_not_equal(sched_load(c, buf, 3, &err), 0);
        buf[0] ^= 0xff;
        assert_int_not_equal(sched_load(c, buf, len, &err), 0);
        buf[0] ^= 0xff;
        assert_int_equal(sched_steps(c), 0);
        assert_int_equal(sched_load(c, buf, len, &err), 0);
        assert_int_equal(sched_steps(c), cut);
        for (int k = cut; k < 40; k++) {
            for (int g = 0; g < env.ngroups; g++) {
                assert_true(sched_lr(c)[g] == sched_lr(ref)[g]);
                assert_true((sched_mom(c) == NULL) == (sched_mom(ref) == NULL));
                if (sched_mom(c))
                    assert_true(sched_mom(c)[g] == sched_mom(ref)[g]);
                if (sched_beta2(c))
                    assert_true(sched_beta2(c)[g] == sched_beta2(ref)[g]);
            }
            sched_step(ref, metric_at(k));
            sched_step(c, metric_at(k));
        }
        /* a state from another type is refused */
        cJSON *o = cJSON_Parse(every_type[(t + 1) % (sizeof every_type / sizeof every_type[0])]);
        sched *other;
        assert_int_equal(sched_create(&other, o, "ds_config.scheduler", &env, &err, NULL), 0);
        assert_int_not_equal(sched_load(other, buf, len, &err), 0);
        sched_free(other);
        cJSON_Delete(o);
        free(buf);
        sched_free(ref);
        sched_free(c);
        cJSON_Delete(b);
    }
}

static void test_multiphase_seeding(void **state)
{
    (void)state;
    sched_env env = one_group_env();
    an_err err;
    sched *s;
    cJSON *b = cJSON_Parse(every_type[sizeof every_type / sizeof every_type[0] - 1]);
    assert_int_equal(sched_create(&s, b, "ds_config.scheduler", &env, &err, NULL), 0);
    assert_true(sched_lr(s)[0] == 0.0); /* WarmupLR starts at min 0 */
    assert_non_null(sched_mom(s));
    assert_true(sched_mom(s)[0] == 0.9); /* a non-cycling phase reports the configured beta1 */
    for (int k = 0; k < 6; k++)
        sched_step(s, NAN);
    /* phase 2 starts fresh: OneCycle's constructor values */
    assert_true(sched_lr(s)[0] == 0.001 && sched_lr(s)[1] == 0.001);
    assert_true(sched_mom(s)[0] == 0.8 && sched_beta2(s)[0] == 0.99);
    for (int k = 0; k < 8; k++)
        sched_step(s, NAN);
    /* phase 3 (ReduceLROnPlateau) starts at the job's base lrs */
    assert_true(sched_lr(s)[0] == 0.01 && sched_lr(s)[1] == 0.001);
    assert_true(sched_beta2(s)[0] == 0.999);
    sched_step(s, 1.0);
    sched_step(s, 2.0); /* worse, patience 0: cut */
    assert_true(sched_lr(s)[0] == 0.01 * 0.1);
    assert_int_equal(sched_steps(s), 16);
    sched_free(s);
    cJSON_Delete(b);
}

/* ---------------- preview ---------------- */

static void test_preview_tutorial(void **state)
{
    (void)state;
    cJSON *tr = tu_load_json("tests/refdata/deepspeed-schedules/seed_example.json");
    cJSON *ds = cJSON_DetachItemFromObject(tr, "ds_config");
    /* the bare ds_config form: 1000 steps, one group */
    cJSON *out;
    an_err err;
    assert_int_equal(sched_preview(ds, 0, &out, &err), 0);
    cJSON *step = cJSON_GetObjectItem(out, "step"), *lr = cJSON_GetObjectItem(out, "lr");
    assert_int_equal(cJSON_GetArraySize(step), 1000);
    assert_int_equal(cJSON_GetArraySize(lr), 1);
    assert_null(cJSON_GetObjectItem(out, "momentum"));
    assert_int_equal(cJSON_GetArrayItem(step, 2)->valueint, 3);
    cJSON *g0 = cJSON_GetArrayItem(lr, 0);
    assert_true(cJSON_GetArrayItem(g0, 2)->valuedouble == 0.0023546349804879152);
    assert_true(cJSON_GetArrayItem(g0, 100)->valuedouble == 0.009999999999999998);
    /* printed and read back: every double keeps its bits */
    char *txt = cJSON_PrintUnformatted(out);
    assert_non_null(strstr(txt, "0.0023546349804879152"));
    cJSON *back = cJSON_Parse(txt);
    cJSON *bg = cJSON_GetArrayItem(cJSON_GetObjectItem(back, "lr"), 0);
    for (int k = 0; k < 1000; k++)
        assert_true(cJSON_GetArrayItem(bg, k)->valuedouble ==
                    cJSON_GetArrayItem(g0, k)->valuedouble);
    cJSON_Delete(back);
    free(txt);
    cJSON_Delete(out);
    /* the wrapped form with groups and steps, and the override */
    cJSON *body = cJSON_CreateObject();
    cJSON_AddItemToObject(body, "ds_config", ds);
    cJSON_AddNumberToObject(body, "steps", 5);
    cJSON *pg = cJSON_AddArrayToObject(body, "param_groups");
    cJSON *e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "lr", 0.5);
    cJSON_AddItemToArray(pg, e);
    cJSON_AddItemToArray(pg, cJSON_CreateObject());
    assert_int_equal(sched_preview(body, 0, &out, &err), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(out, "step")), 5);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(out, "lr")), 2);
    cJSON_Delete(out);
    assert_int_equal(sched_preview(body, 12, &out, &err), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(out, "step")), 12);
    cJSON_Delete(out);
    cJSON_Delete(body);
    cJSON_Delete(tr);
}

static void test_preview_momentum_and_job_form(void **state)
{
    (void)state;
    cJSON *job = cJSON_Parse(
        "{\"model\":{\"type\":\"linear\",\"inputs\":2,\"outputs\":1},\"steps\":40,"
        "\"param_groups\":[{\"match\":[\"*.bias\"],\"lr\":0.002}],"
        "\"ds_config\":{\"train_batch_size\":4,\"optimizer\":{\"type\":\"adam\",\"params\":"
        "{\"lr\":0.01}},\"scheduler\":{\"type\":\"OneCycle\",\"params\":{\"cycle_min_lr\":0.001,"
        "\"cycle_max_lr\":0.01,\"cycle_first_step_size\":10}}}}");
    cJSON *out;
    an_err err;
    assert_int_equal(sched_preview(job, 0, &out, &err), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(out, "step")), 40);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(out, "lr")), 2);
    cJSON *m = cJSON_GetObjectItem(out, "momentum");
    assert_non_null(m);
    assert_true(cJSON_GetArrayItem(cJSON_GetArrayItem(m, 0), 0)->valuedouble == 0.8);
    cJSON_Delete(out);
    cJSON_Delete(job);
}

static void test_preview_errors(void **state)
{
    (void)state;
    static const struct { const char *json; int64_t over; const char *field; } bad[] = {
        {"[1,2]", 0, ""},
        {"{\"ds_config\":3}", 0, "ds_config"},
        {"{\"ds_config\":{\"scheduler\":{\"type\":\"WarmupLR\",\"params\":{}}}}", 0,
         "ds_config.optimizer"},
        {"{\"ds_config\":{\"optimizer\":{\"type\":\"Adam\",\"params\":{}}},\"steps\":0}", 0,
         "steps"},
        {"{\"ds_config\":{\"optimizer\":{\"type\":\"Adam\",\"params\":{}}},\"steps\":10000001}", 0,
         "steps"},
        {"{\"ds_config\":{\"optimizer\":{\"type\":\"Adam\",\"params\":{}}}}", 20000000, "steps"},
        {"{\"ds_config\":{\"optimizer\":{\"type\":\"Adam\",\"params\":{}}},\"steps\":\"ten\"}", 0,
         "steps"},
        {"{\"ds_config\":{\"optimizer\":{\"type\":\"Adam\",\"params\":{}}},\"param_groups\":{}}",
         0, "param_groups"},
        {"{\"ds_config\":{\"optimizer\":{\"type\":\"Adam\",\"params\":{}}},"
         "\"param_groups\":[{\"lr\":-1}]}", 0, "param_groups[0].lr"},
        {"{\"ds_config\":{\"optimizer\":{\"type\":\"Adam\",\"params\":{}},\"scheduler\":"
         "{\"type\":\"WarmupLR\",\"params\":{\"warmup_num_steps\":0}}}}", 0,
         "ds_config.scheduler.params.warmup_num_steps"},
        {"{\"optimizer\":{\"type\":\"Adam\",\"params\":{\"lr\":\"x\"}}}", 0, "optimizer.params.lr"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        cJSON *b = cJSON_Parse(bad[k].json);
        cJSON *out = (cJSON *)1;
        an_err err;
        an_err_clear(&err);
        int rc = sched_preview(b, bad[k].over, &out, &err);
        if (rc == 0)
            fail_msg("accepted: %s", bad[k].json);
        assert_null(out);
        if (strcmp(err.field, bad[k].field) != 0)
            fail_msg("%s: field \"%s\", want \"%s\" (%s)", bad[k].json, err.field, bad[k].field,
                     err.message);
        cJSON_Delete(b);
    }
}

static void test_report_exact(void **state)
{
    (void)state;
    printf("reference values compared, every one bit for bit: %d\n", g_total);
    assert_true(g_total > 10000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deepspeed_traces),
        cmocka_unit_test(test_seed_example),
        cmocka_unit_test(test_torch_traces),
        cmocka_unit_test(test_torch_composite_traces),
        cmocka_unit_test(test_cycled_momentum_needs_one),
        cmocka_unit_test(test_onecycle_stairs_without_second_half),
        cmocka_unit_test(test_report_exact),
        cmocka_unit_test(test_validation_paths),
        cmocka_unit_test(test_validation_quirks),
        cmocka_unit_test(test_save_restore_every_type),
        cmocka_unit_test(test_multiphase_seeding),
        cmocka_unit_test(test_preview_tutorial),
        cmocka_unit_test(test_preview_momentum_and_job_form),
        cmocka_unit_test(test_preview_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
