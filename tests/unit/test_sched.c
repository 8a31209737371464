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

#include "core/sched.h"
#include "core/sched_node.h"

static int g_exact, g_total; /* values compared, and how many matched bit for bit */

static cJSON *load_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    if (!j)
        fail_msg("cannot parse %s", path);
    return j;
}

static void check_close(double got, double want, const char *what, const char *name, int step,
                        int g)
{
    g_total++;
    if (got == want) {
        g_exact++;
        return;
    }
    double tol = 1e-12 * fmax(fabs(want), 1e-300);
    if (!(fabs(got - want) <= tol))
        fail_msg("%s: %s at step %d group %d: got %.17g, want %.17g", name, what, step, g, got,
                 want);
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
        check_close(l[g], cJSON_GetArrayItem(lr, g)->valuedouble, "lr", name, step, g);
        if (betas) {
            const cJSON *bg = cJSON_GetArrayItem(betas, g);
            check_close(m ? m[g] : env->beta1, cJSON_GetArrayItem(bg, 0)->valuedouble, "beta1",
                        name, step, g);
            check_close(b2 ? b2[g] : env->beta2, cJSON_GetArrayItem(bg, 1)->valuedouble, "beta2",
                        name, step, g);
        }
        if (mom)
            check_close(m ? m[g] : env->momentum, cJSON_GetArrayItem(mom, g)->valuedouble,
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
        check_close(sched_lr(s)[0], cJSON_GetArrayItem(cJSON_GetObjectItem(saved, "lr"), 0)->valuedouble,
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
}

static void test_deepspeed_traces(void **state)
{
    (void)state;
    cJSON *idx = load_json("tests/refdata/deepspeed-schedules/index.json");
    const cJSON *f;
    int files = 0, resumes = 0;
    cJSON_ArrayForEach(f, cJSON_GetObjectItem(idx, "files")) {
        char path[512];
        const char *name = cJSON_GetObjectItem(f, "name")->valuestring;
        snprintf(path, sizeof path, "tests/refdata/deepspeed-schedules/%s",
                 cJSON_GetObjectItem(f, "file")->valuestring);
        cJSON *tr = load_json(path);
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
    cJSON *tr = load_json("tests/refdata/deepspeed-schedules/seed_example.json");
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

static void test_torch_traces(void **state)
{
    (void)state;
    cJSON *idx = load_json("tests/refdata/torch-schedules/index.json");
    const cJSON *c;
    int cases = 0, rejected = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(idx, "cases")) {
        char path[512];
        const char *file = cJSON_GetObjectItem(c, "file")->valuestring;
        const char *type = cJSON_GetObjectItem(c, "scheduler")->valuestring;
        snprintf(path, sizeof path, "tests/refdata/torch-schedules/%s", file);
        cJSON *tr = load_json(path);
        cJSON *blk = torch_block(type, cJSON_GetObjectItem(c, "constructor_args"));
        sched_env env = {.ngroups = 2, .base_lr = {0.1, 0.05}, .has_betas = 0,
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
                check_close(sched_lr(s)[g], cJSON_GetArrayItem(row, g)->valuedouble, "lr", file, k,
                            g);
                if (mom) {
                    const double *m = sched_mom(s);
                    check_close(m ? m[g] : env.momentum,
                                cJSON_GetArrayItem(cJSON_GetArrayItem(mom, k), g)->valuedouble,
                                "momentum", file, k, g);
                }
            }
            if (plateau && k > 0) {
                const cJSON *ps = cJSON_GetArrayItem(plateau, k - 1);
                check_close(s->best, cJSON_GetObjectItem(ps, "best")->valuedouble, "best", file,
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
    assert_int_equal(cases, 42);
    assert_int_equal(rejected, 2);
    cJSON_Delete(idx);
}

static void test_report_exact(void **state)
{
    (void)state;
    printf("reference values compared: %d, bit-exact: %d (%.2f%%)\n", g_total, g_exact,
           g_total ? 100.0 * g_exact / g_total : 0.0);
    assert_true(g_total > 10000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deepspeed_traces),
        cmocka_unit_test(test_seed_example),
        cmocka_unit_test(test_torch_traces),
        cmocka_unit_test(test_report_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
