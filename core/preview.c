/* preview — the learning rates (and momentum) a config would use, step by step, without
 * training: POST /v1/schedules/preview and `anneald preview`. Built with the same
 * optim_parse and sched_create a job uses, so the preview is what a job would do. */
#include "core/sched.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/optim.h"
#include "core/sched_param.h"

#define PREVIEW_MAX_STEPS 10000000LL
#define PREVIEW_DEFAULT_STEPS 1000

/* Group lrs: a preview body's param_groups are every group; a job spec's are groups 1.. with
 * group 0 holding the remaining tensors at the optimizer's lr. */
static int read_groups(const cJSON *pg, const char *path, int job_form, double opt_lr,
                       sched_env *env, an_err *err)
{
    char p[300];
    env->ngroups = 1;
    env->base_lr[0] = opt_lr;
    if (!pg)
        return 0;
    if (!cJSON_IsArray(pg))
        return an_fail(err, path, "param_groups must be a list of {\"lr\": x} objects, got %s",
                       sp_kind(pg));
    int n = cJSON_GetArraySize(pg);
    int first = job_form ? 1 : 0;
    if (n + first < 1)
        return 0;
    if (n + first > SCHED_MAX_GROUPS)
        return an_fail(err, path, "at most %d param groups, got %d", SCHED_MAX_GROUPS, n + first);
    int k = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, pg) {
        an_path_index(p, sizeof p, path, k);
        if (!cJSON_IsObject(it))
            return an_fail(err, p, "a param group must be an object like {\"lr\": 0.01}, got %s",
                           sp_kind(it));
        double lr;
        int rc = sp_num(it, p, "lr", opt_lr, 0, &lr, err);
        if (rc)
            return rc;
        if (!(lr >= 0)) {
            char pl[340];
            return an_fail(err, an_path(pl, sizeof pl, p, "lr"), "lr must be >= 0, got %.17g", lr);
        }
        env->base_lr[first + k] = lr;
        k++;
    }
    env->ngroups = first + n;
    return 0;
}

/* A number printed in the fewest digits that read back to the same double. cJSON's own
 * printer settles for 15 digits when they come within an epsilon, which changes the last bits
 * of values like 0.009999999999999998; a raw item prints our text verbatim. valuedouble is
 * set as well, for readers of the tree. */
static cJSON *exact_number(double v)
{
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    cJSON *n = cJSON_CreateRaw(buf);
    if (n) {
        n->valuedouble = v;
        n->valueint = v >= 2147483647.0 ? 2147483647 : v <= -2147483648.0 ? -2147483647 - 1
                                                                           : (int)v;
    }
    return n;
}

int sched_preview(const cJSON *body, int64_t steps_override, cJSON **out, an_err *err)
{
    *out = NULL;
    if (!cJSON_IsObject(body))
        return an_fail(err, "", "the body must be a JSON object with ds_config, got %s",
                       sp_kind(body));
    const cJSON *ds = cJSON_GetObjectItemCaseSensitive(body, "ds_config");
    const char *prefix = "ds_config";
    int job_form = 0;
    const cJSON *holder = body; /* where steps and param_groups are */
    if (ds) {
        if (!cJSON_IsObject(ds))
            return an_fail(err, "ds_config", "ds_config must be an object, got %s", sp_kind(ds));
        job_form = cJSON_GetObjectItemCaseSensitive(body, "model") != NULL;
    } else {
        ds = body;
        prefix = "";
        holder = NULL;
    }
    int64_t steps = PREVIEW_DEFAULT_STEPS;
    if (holder && cJSON_GetObjectItemCaseSensitive(holder, "steps")) {
        int rc = sp_int(holder, "", "steps", PREVIEW_DEFAULT_STEPS, 0, 1, &steps, err);
        if (rc)
            return rc;
    }
    if (steps_override > 0)
        steps = steps_override;
    if (steps > PREVIEW_MAX_STEPS)
        return an_fail(err, "steps", "steps must be at most %lld, got %lld", PREVIEW_MAX_STEPS,
                       (long long)steps);

    char op[64], sp[64];
    an_path(op, sizeof op, prefix, "optimizer");
    an_path(sp, sizeof sp, prefix, "scheduler");
    const cJSON *oblock = cJSON_GetObjectItemCaseSensitive(ds, "optimizer");
    if (!oblock)
        return an_fail(err, op, "an optimizer block is required: the schedule's base lr and "
                       "momentum come from it");
    optim_cfg cfg;
    int rc = optim_parse(oblock, op, &cfg, err, NULL);
    if (rc)
        return rc;

    sched_env env;
    memset(&env, 0, sizeof env);
    rc = read_groups(holder ? cJSON_GetObjectItemCaseSensitive(holder, "param_groups") : NULL,
                     "param_groups", job_form, cfg.lr, &env, err);
    if (rc)
        return rc;
    env.has_betas = optim_has_betas(&cfg);
    env.beta1 = cfg.beta1;
    env.beta2 = cfg.beta2;
    env.momentum = cfg.momentum;
    env.total_steps = steps;
    const cJSON *tbs = cJSON_GetObjectItemCaseSensitive(ds, "train_batch_size");
    env.train_batch_size = cJSON_IsNumber(tbs) ? (int64_t)tbs->valuedouble : 0;

    sched *s;
    rc = sched_create(&s, cJSON_GetObjectItemCaseSensitive(ds, "scheduler"), sp, &env, err,
                      NULL);
    if (rc)
        return rc;

    cJSON *res = cJSON_CreateObject();
    cJSON *jstep = cJSON_AddArrayToObject(res, "step");
    cJSON *jlr = cJSON_AddArrayToObject(res, "lr");
    cJSON *jmom = sched_mom(s) ? cJSON_AddArrayToObject(res, "momentum") : NULL;
    cJSON *lr_rows[SCHED_MAX_GROUPS], *mom_rows[SCHED_MAX_GROUPS];
    int ok = res && jstep && jlr && (jmom || !sched_mom(s));
    for (int g = 0; ok && g < env.ngroups; g++) {
        lr_rows[g] = cJSON_CreateArray();
        ok = lr_rows[g] && cJSON_AddItemToArray(jlr, lr_rows[g]);
        if (ok && jmom) {
            mom_rows[g] = cJSON_CreateArray();
            ok = mom_rows[g] && cJSON_AddItemToArray(jmom, mom_rows[g]);
        }
    }
    /* Entry s-1 is what optimizer step s uses. */
    for (int64_t k = 0; ok && k < steps; k++) {
        ok = cJSON_AddItemToArray(jstep, cJSON_CreateNumber((double)(k + 1)));
        const double *lr = sched_lr(s), *m = sched_mom(s);
        for (int g = 0; ok && g < env.ngroups; g++) {
            ok = cJSON_AddItemToArray(lr_rows[g], exact_number(lr[g]));
            if (ok && jmom)
                ok = cJSON_AddItemToArray(mom_rows[g], exact_number(m[g]));
        }
        sched_step(s, NAN);
    }
    sched_free(s);
    if (!ok) {
        cJSON_Delete(res);
        return an_failc(err, -ENOMEM, "", "out of memory building a preview of %lld steps",
                        (long long)steps);
    }
    *out = res;
    return 0;
}
