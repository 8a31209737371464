/* preview_body — reading a preview body: see core/preview_body.h. */
#include "core/preview_body.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/cfgval.h"
#include "core/config_gpt.h"
#include "core/ds_keys.h"
#include "core/optim.h"
#include "core/sched_param.h"

/* The run length of a job spec given in epochs, when its data tells the row count. */
static int epochs_steps(const cJSON *job, int64_t *steps, an_err *err)
{
    job_spec spec;
    an_err e;
    /* the preview's own keys are not the job's */
    cJSON *copy = cJSON_Duplicate(job, 1);
    if (!copy)
        return an_failc(err, -ENOMEM, "", "out of memory");
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "every");
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "max_points");
    int rc = job_spec_parse(copy, &spec, &e);
    cJSON_Delete(copy);
    if (rc != 0)
        return an_fail(err, e.field, "the job spec must be valid to preview its epochs: %s",
                       e.message);
    int64_t rows = job_spec_data_samples(&spec), ntok = cfg_text_tokens(&spec.data);
    if (ntok >= 0) {
        /* a text's rows are the windows of its training tokens, as the job splits them */
        text_split sp;
        rc = cfg_text_split(&spec, ntok, &sp, err);
        rows = (int64_t)sp.ktrain;
    } else if (rows < 0) {
        rc = an_fail(err, "epochs", "the run is given in epochs over an uploaded data set, "
                     "whose row count the spec does not tell: give steps (anneald preview "
                     "--steps N) to preview it");
    } else {
        rows = job_spec_train_samples(&spec, rows, NULL);
    }
    if (!rc)
        *steps = job_spec_total_steps(&spec, rows);
    job_spec_free(&spec);
    return rc;
}

/* Reads "every" and "max_points" of a preview body into the plan for `steps` steps. */
static int read_thinning(const cJSON *holder, preview_plan *pl, an_err *err)
{
    int64_t every = 0, maxp = 0;
    int rc;
    pl->every = 1;
    pl->turn_cap = 0;
    if (holder && (rc = sp_int(holder, "", "every", 0, 0, 1, &every, err)))
        return rc;
    if (holder && (rc = sp_int(holder, "", "max_points", 0, 0, 2, &maxp, err)))
        return rc;
    if (every && maxp)
        return an_fail(err, "every", "give every or max_points, not both");
    if (maxp > PREVIEW_MAX_STEPS)
        return an_fail(err, "max_points", "max_points must be at most %lld, got %lld",
                       PREVIEW_MAX_STEPS, (long long)maxp);
    if (every > 1) {
        /* The strided steps (the first, every every-th, the last) take half the answer at
         * most; the direction changes between them fill the rest. */
        int64_t n = (pl->steps + every - 1) / every + 1;
        if (n > PREVIEW_MAX_STEPS / 2)
            return an_fail(err, "every", "every %lld keeps about %lld of the %lld steps, more "
                           "than the %lld strided points an answer holds (half of its %lld, the "
                           "rest for turns of the schedule): give a larger every",
                           (long long)every, (long long)n, (long long)pl->steps,
                           PREVIEW_MAX_STEPS / 2, PREVIEW_MAX_STEPS);
        pl->every = every;
        pl->turn_cap = PREVIEW_MAX_STEPS - n;
    } else if (maxp && maxp < pl->steps) {
        /* Half of the points for the stride, the rest for direction changes. */
        int64_t half = maxp / 2 - 1 > 0 ? maxp / 2 - 1 : 1;
        pl->every = (pl->steps + half - 1) / half;
        int64_t stride_pts = (pl->steps + pl->every - 1) / pl->every + 1;
        pl->turn_cap = maxp - stride_pts > 0 ? maxp - stride_pts : 0;
    }
    if (pl->every == 1 && pl->steps > PREVIEW_MAX_STEPS)
        return an_fail(err, "steps", "steps %lld is more than the %lld an answer holds: give "
                       "max_points (anneald preview --max-points N) or every (--every N) to "
                       "thin the answer", (long long)pl->steps, PREVIEW_MAX_STEPS);
    return 0;
}

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
    /* a job's own limit for a job spec, the schedules' for a bare list */
    int most = job_form ? CFG_MAX_GROUPS : SCHED_MAX_GROUPS;
    if (n > most)
        return an_fail(err, path, "param_groups must be a list of at most %d groups, got %d",
                       most, n);
    /* A group's keys as a job's groups have them (match and weight_decay change no lr, but a
     * misspelt key must not pass for the default without a word). */
    static const char *const keys[] = {"match", "lr", "weight_decay", NULL};
    int k = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, pg) {
        an_path_index(p, sizeof p, path, k);
        if (!cJSON_IsObject(it))
            return an_fail(err, p, "a param group must be an object like {\"lr\": 0.01}, got %s",
                           sp_kind(it));
        int rc = cfg_check_keys(it, p, keys, err);
        if (rc)
            return rc;
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(it, "match");
        if (m) { /* the form a job's match has (which tensors it finds needs the model) */
            char pm[340], got[80];
            an_path(pm, sizeof pm, p, "match");
            int ok = cJSON_IsArray(m) && cJSON_GetArraySize(m) >= 1 && cJSON_GetArraySize(m) <= 64;
            for (const cJSON *x = ok ? m->child : NULL; x; x = x->next)
                ok &= cJSON_IsString(x) && x->valuestring[0] && strlen(x->valuestring) <= 127;
            if (!ok)
                return an_fail(err, pm, "%s must be a list of 1 to 64 tensor-name globs of 1 to "
                               "127 characters (e.g. [\"*.bias\"]), got %s", pm,
                               cfg_describe(m, got, sizeof got));
        }
        double lr, wd;
        rc = sp_num(it, p, "lr", opt_lr, 0, &lr, err);
        if (rc)
            return rc;
        if (!(lr >= 0)) {
            char pl[340];
            return an_fail(err, an_path(pl, sizeof pl, p, "lr"), "lr must be >= 0, got %.17g", lr);
        }
        rc = cfg_num(it, p, "weight_decay", 0.0, 0.0, INFINITY, CFG_CLOSED, &wd, err);
        if (rc)
            return rc;
        env->base_lr[first + k] = lr;
        k++;
    }
    env->ngroups = first + n;
    return 0;
}

/* A preview body's keys beside ds_config, and the thinning keys a whole job spec may add to
 * its own. */
static const char *const PREVIEW_KEYS[] = {"ds_config", "steps", "param_groups", "max_points",
                                           "every", NULL};

/* Refuses a key beside ds_config that a preview would silently ignore: any the body's form
 * does not have. (ds_config's own unknown keys are a job's warnings, which the dashboard's
 * previews of a submitted job must not fail on.) */
static int check_keys(const cJSON *body, int job_form, an_err *err)
{
    if (!job_form)
        return cfg_check_keys(body, "", PREVIEW_KEYS, err);
    const char *keys[64];
    size_t n = 0;
    for (const char *const *k = JOB_SPEC_KEYS; *k && n < 61; k++)
        keys[n++] = *k;
    keys[n++] = "max_points";
    keys[n++] = "every";
    keys[n] = NULL;
    return cfg_check_keys(body, "", keys, err);
}

/* ds_config's keys that DeepSpeed does not have either, as warnings. Keys DeepSpeed has that a
 * preview does not read (train_batch_size, fp16, zero_optimization…) are a job's business and
 * pass without one. */
static int warn_unknown_keys(const cJSON *ds, const char *prefix, cJSON *warnings, an_err *err)
{
    static const char *const read[] = {"optimizer", "scheduler", NULL};
    char msg[400];
    for (const cJSON *c = ds->child; warnings && c; c = c->next) {
        int mine = 0;
        for (const char *const *k = read; *k && !mine; k++)
            mine = strcmp(*k, c->string) == 0;
        if (!mine && ds_key_unknown_note(prefix, c->string, msg, sizeof msg) &&
            cfg_warn(warnings, err, "%s", msg))
            return -ENOMEM;
    }
    return 0;
}

int preview_setup(const cJSON *body, int64_t steps_override, sched **out_s, preview_plan *plan,
                  int *out_groups, cJSON *warnings, an_err *err)
{
    *out_s = NULL;
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
    int krc = holder ? check_keys(body, job_form, err) : 0;
    if (!krc)
        krc = warn_unknown_keys(ds, prefix, warnings, err);
    if (krc)
        return krc;
    int64_t steps = PREVIEW_DEFAULT_STEPS;
    if (holder && cJSON_GetObjectItemCaseSensitive(holder, "steps")) {
        int rc = sp_int(holder, "", "steps", PREVIEW_DEFAULT_STEPS, 0, 1, &steps, err);
        if (rc)
            return rc;
    } else if (job_form && steps_override <= 0 &&
               cJSON_GetObjectItemCaseSensitive(holder, "epochs")) {
        int rc = epochs_steps(body, &steps, err);
        if (rc)
            return rc;
    }
    if (steps_override > 0)
        steps = steps_override;
    /* Any length a job may have; read_thinning bounds the answer's size. */
    if (steps > CFG_MAX_STEPS)
        return an_fail(err, "steps", "steps must be at most %lld (the longest job), got %lld",
                       CFG_MAX_STEPS, (long long)steps);
    plan->steps = steps;
    int trc = read_thinning(holder, plan, err);
    if (trc)
        return trc;

    char op[64], sp[64];
    an_path(op, sizeof op, prefix, "optimizer");
    an_path(sp, sizeof sp, prefix, "scheduler");
    const cJSON *oblock = cJSON_GetObjectItemCaseSensitive(ds, "optimizer");
    if (!oblock)
        return an_fail(err, op, "an optimizer block is required: the schedule's base lr and "
                       "momentum come from it");
    optim_cfg cfg;
    int rc = optim_parse(oblock, op, &cfg, err, warnings);
    if (rc)
        return rc;

    sched_env env;
    memset(&env, 0, sizeof env);
    rc = read_groups(holder ? cJSON_GetObjectItemCaseSensitive(holder, "param_groups") : NULL,
                     "param_groups", job_form, cfg.lr, &env, err);
    if (rc)
        return rc;
    env.has_betas = optim_has_betas(&cfg);
    env.has_momentum = optim_has_momentum(&cfg);
    env.beta1 = cfg.beta1;
    env.beta2 = cfg.beta2;
    env.momentum = cfg.momentum;
    env.total_steps = steps;
    const cJSON *tbs = cJSON_GetObjectItemCaseSensitive(ds, "train_batch_size");
    /* Only ReduceLROnPlateau's metric quirk reads it; a number no batch can be (negative,
     * fractional or beyond 2^53, where the cast to int64_t would be undefined) counts as
     * not given, as in a preview without it. */
    double tb = cJSON_IsNumber(tbs) ? tbs->valuedouble : 0;
    env.train_batch_size = tb >= 1 && tb <= 9007199254740992.0 && tb == floor(tb) ? (int64_t)tb : 0;

    sched *s;
    rc = sched_create(&s, cJSON_GetObjectItemCaseSensitive(ds, "scheduler"), sp, &env, err,
                      warnings);
    if (rc)
        return rc;
    *out_s = s;
    *out_groups = env.ngroups;
    return 0;
}
