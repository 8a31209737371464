/* sched_ds — DeepSpeed's schedulers with DeepSpeed's formulas, defaults and quirks.
 *
 * i is DeepSpeed's last_batch_iteration: -1 after construction, k-1 after k steps (plus any
 * last_batch_iteration given in params). Every expression keeps the reference's order of
 * operations so results match bit for bit. */
#include "core/sched_ds.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/sched_param.h"

static void warn(cJSON *warnings, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(cJSON *warnings, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    if (!warnings)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    cJSON_AddItemToArray(warnings, cJSON_CreateString(buf));
}

int ds_kind(const char *type)
{
    static const struct { const char *name; int kind; } t[] = {
        {"WarmupLR", SK_WARMUP},         {"WarmupDecayLR", SK_WARMUP_DECAY},
        {"WarmupCosineLR", SK_WARMUP_COSINE}, {"OneCycle", SK_ONECYCLE},
        {"LRRangeTest", SK_LRRANGE},
    };
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++)
        if (strcmp(type, t[k].name) == 0)
            return t[k].kind;
    return 0;
}

/* warmup_num_steps (int > 0, then max(2, ·)) and warmup_type, shared by the warmup family. */
static int read_warmup(sched *s, const cJSON *params, const char *ppath, an_err *err,
                       cJSON *warnings)
{
    int64_t w;
    const char *type;
    char p[256];
    int rc = sp_int(params, ppath, "warmup_num_steps", 1000, 0, 1, &w, err);
    if (rc)
        return rc;
    if ((rc = sp_str(params, ppath, "warmup_type", "log", &type, err)))
        return rc;
    s->warmup = (double)(w < 2 ? 2 : w);
    s->inv_log_w = 1.0 / log(s->warmup);
    if (strcmp(type, "linear") == 0) {
        s->log_warmup = 0;
    } else {
        s->log_warmup = 1;
        if (strcmp(type, "log") != 0)
            warn(warnings, "%s: unknown warmup_type \"%s\"; using \"log\" as DeepSpeed does",
                 an_path(p, sizeof p, ppath, "warmup_type"), type);
    }
    if (w < 2)
        warn(warnings, "%s: warmup_num_steps %lld acts as 2 (DeepSpeed's minimum)",
             an_path(p, sizeof p, ppath, "warmup_num_steps"), (long long)w);
    return 0;
}

/* total_num_steps: a number, or "auto" for the job's steps. */
static int read_total(sched *s, const cJSON *params, const char *ppath, an_err *err,
                      cJSON *warnings)
{
    char p[256];
    an_path(p, sizeof p, ppath, "total_num_steps");
    if (sp_is_auto(params, "total_num_steps")) {
        if (s->env.total_steps <= 0)
            return an_fail(err, p, "total_num_steps is \"auto\" but the job's step count is not "
                           "known; give a number");
        s->total_num = (double)s->env.total_steps;
        /* A stand-in is checked against but never reported as the job's length. */
        if (s->env.total_steps_unknown)
            warn(warnings, "%s: \"auto\" resolves to the job's steps (its total_steps), "
                 "worked out from the uploaded data when the job is submitted", p);
        else
            warn(warnings, "%s: \"auto\" resolved to %lld (the job's steps)", p,
                 (long long)s->env.total_steps);
        return 0;
    }
    return sp_num(params, ppath, "total_num_steps", 0, 1, &s->total_num, err);
}

/* warmup_min_lr / warmup_max_lr with their "auto" rules. */
static int read_minmax(sched *s, const cJSON *params, const char *ppath, const double *max_def,
                       an_err *err, cJSON *warnings)
{
    char p[256];
    double zero[SCHED_MAX_GROUPS] = {0};
    int n = s->ngroups, rc;
    if (sp_is_auto(params, "warmup_min_lr")) {
        memcpy(s->min_lr, zero, sizeof zero);
        warn(warnings, "%s: \"auto\" resolved to 0", an_path(p, sizeof p, ppath, "warmup_min_lr"));
    } else if ((rc = sp_groups(params, ppath, "warmup_min_lr", zero, 0, n, s->min_lr, err))) {
        return rc;
    }
    if (sp_is_auto(params, "warmup_max_lr")) {
        memcpy(s->max_lr, s->env.base_lr, sizeof s->max_lr);
        warn(warnings, "%s: \"auto\" resolved to the optimizer's lr (%.17g)",
             an_path(p, sizeof p, ppath, "warmup_max_lr"), s->env.base_lr[0]);
    } else if ((rc = sp_groups(params, ppath, "warmup_max_lr", max_def, 0, n, s->max_lr, err))) {
        return rc;
    }
    if ((rc = sp_groups_min(params, ppath, "warmup_min_lr", s->min_lr, n, 0.0, err)) ||
        (rc = sp_groups_min(params, ppath, "warmup_max_lr", s->max_lr, n, 0.0, err)))
        return rc;
    for (int g = 0; g < n; g++)
        s->delta[g] = s->max_lr[g] - s->min_lr[g];
    return 0;
}

static int create_warmup(sched *s, const cJSON *params, const char *ppath, an_err *err,
                         cJSON *warnings)
{
    static const char *const keys[] = {"warmup_min_lr", "warmup_max_lr", "warmup_num_steps",
                                       "warmup_type", "last_batch_iteration", NULL};
    static const char *const keys_decay[] = {"total_num_steps", "warmup_min_lr",
                                             "warmup_max_lr", "warmup_num_steps", "warmup_type",
                                             "last_batch_iteration", NULL};
    int decay = s->kind == SK_WARMUP_DECAY, rc;
    double def_max[SCHED_MAX_GROUPS];
    if ((rc = sp_check_keys(params, ppath, decay ? keys_decay : keys,
                            decay ? "WarmupDecayLR" : "WarmupLR", err)))
        return rc;
    /* WarmupLR inherits each group's own lr; WarmupDecayLR keeps the old 0.001. */
    for (int g = 0; g < s->ngroups; g++)
        def_max[g] = decay ? 0.001 : s->env.base_lr[g];
    if (decay && (rc = read_total(s, params, ppath, err, warnings)))
        return rc;
    if ((rc = read_minmax(s, params, ppath, def_max, err, warnings)) ||
        (rc = read_warmup(s, params, ppath, err, warnings)))
        return rc;
    if (decay && s->total_num < s->warmup)
        warn(warnings, "%s: total_num_steps %.17g is less than warmup_num_steps %.17g",
             ppath, s->total_num, s->warmup);
    return 0;
}

static int create_cosine(sched *s, const cJSON *params, const char *ppath, an_err *err,
                         cJSON *warnings)
{
    static const char *const keys[] = {"total_num_steps", "warmup_min_ratio",
                                       "warmup_num_steps", "cos_min_ratio", "warmup_type",
                                       "last_batch_iteration", NULL};
    int rc;
    if ((rc = sp_check_keys(params, ppath, keys, "WarmupCosineLR", err)) ||
        (rc = read_total(s, params, ppath, err, warnings)) ||
        (rc = sp_num(params, ppath, "warmup_min_ratio", 0.0, 0, &s->wmr, err)) ||
        (rc = sp_num(params, ppath, "cos_min_ratio", 0.0001, 0, &s->cmr, err)) ||
        (rc = read_warmup(s, params, ppath, err, warnings)))
        return rc;
    return 0;
}

static int create_onecycle(sched *s, const cJSON *params, const char *ppath, an_err *err,
                           cJSON *warnings)
{
    static const char *const keys[] = {
        "cycle_min_lr", "cycle_max_lr", "decay_lr_rate", "cycle_first_step_size",
        "cycle_second_step_size", "cycle_first_stair_count", "cycle_second_stair_count",
        "decay_step_size", "cycle_momentum", "cycle_min_mom", "cycle_max_mom", "decay_mom_rate",
        "last_batch_iteration", NULL};
    char p[256];
    int n = s->ngroups, rc, cyc;
    double d08[SCHED_MAX_GROUPS], d09[SCHED_MAX_GROUPS];
    int64_t decay_step;
    for (int g = 0; g < n; g++) {
        d08[g] = 0.8;
        d09[g] = 0.9;
    }
    if ((rc = sp_check_keys(params, ppath, keys, "OneCycle", err)) ||
        (rc = sp_groups(params, ppath, "cycle_min_lr", NULL, 1, n, s->min_lr, err)) ||
        (rc = sp_groups(params, ppath, "cycle_max_lr", NULL, 1, n, s->max_lr, err)) ||
        (rc = sp_groups_min(params, ppath, "cycle_min_lr", s->min_lr, n, 0.0, err)) ||
        (rc = sp_groups_min(params, ppath, "cycle_max_lr", s->max_lr, n, 0.0, err)) ||
        (rc = sp_num(params, ppath, "decay_lr_rate", 0.0, 0, &s->decay_lr_rate, err)) ||
        (rc = sp_num(params, ppath, "cycle_first_step_size", 2000, 0, &s->first, err)))
        return rc;
    if (!(s->first > 0))
        return an_fail(err, an_path(p, sizeof p, ppath, "cycle_first_step_size"),
                       "cycle_first_step_size must be > 0, got %.17g", s->first);
    if (cJSON_GetObjectItemCaseSensitive(params, "cycle_second_step_size") &&
        !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(params, "cycle_second_step_size"))) {
        if ((rc = sp_num(params, ppath, "cycle_second_step_size", 0, 1, &s->second, err)))
            return rc;
        if (!(s->second >= 0))
            return an_fail(err, an_path(p, sizeof p, ppath, "cycle_second_step_size"),
                           "cycle_second_step_size must be >= 0, got %.17g", s->second);
    } else {
        s->second = s->first;
    }
    if ((rc = sp_int(params, ppath, "cycle_first_stair_count", 0, 0, 0, &s->stair1, err)))
        return rc;
    if (cJSON_GetObjectItemCaseSensitive(params, "cycle_second_stair_count") &&
        !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(params, "cycle_second_stair_count"))) {
        if ((rc = sp_int(params, ppath, "cycle_second_stair_count", 0, 1, 0, &s->stair2, err)))
            return rc;
    } else {
        s->stair2 = s->stair1;
    }
    if ((rc = sp_int(params, ppath, "decay_step_size", 0, 0, 0, &decay_step, err)) ||
        (rc = sp_bool(params, ppath, "cycle_momentum", 1, &cyc, err)) ||
        (rc = sp_groups(params, ppath, "cycle_min_mom", d08, 0, n, s->min_mom, err)) ||
        (rc = sp_groups(params, ppath, "cycle_max_mom", d09, 0, n, s->max_mom, err)) ||
        (rc = sp_num(params, ppath, "decay_mom_rate", 0.0, 0, &s->decay_mom_rate, err)))
        return rc;
    /* With cycle_second_step_size 0 the falling half and its stairs are never reached
     * (ratio 1, and b mod total <= first), so its stair count is accepted and unused. */
    s->decay_step = (double)decay_step;
    s->total = s->first + s->second;
    s->ratio = s->first / s->total;
    s->skip_lr_decay = decay_step == 0 || s->decay_lr_rate == 0;
    s->skip_mom_decay = decay_step == 0 || s->decay_mom_rate == 0;
    if (cyc && !s->env.has_betas) {
        warn(warnings, "%s: cycle_momentum is disabled because the optimizer has no betas",
             an_path(p, sizeof p, ppath, "cycle_momentum"));
        cyc = 0;
    }
    s->cycles_mom = cyc;
    s->sets_beta2 = cyc;
    return 0;
}

static int create_range(sched *s, const cJSON *params, const char *ppath, an_err *err)
{
    static const char *const keys[] = {"lr_range_test_min_lr", "lr_range_test_step_size",
                                       "lr_range_test_step_rate", "lr_range_test_staircase",
                                       "last_batch_iteration", NULL};
    double def[SCHED_MAX_GROUPS];
    int64_t size;
    int rc;
    for (int g = 0; g < s->ngroups; g++)
        def[g] = 1e-3;
    if ((rc = sp_check_keys(params, ppath, keys, "LRRangeTest", err)) ||
        (rc = sp_groups(params, ppath, "lr_range_test_min_lr", def, 0, s->ngroups, s->min_lr,
                        err)) ||
        (rc = sp_groups_min(params, ppath, "lr_range_test_min_lr", s->min_lr, s->ngroups, 0.0,
                            err)) ||
        (rc = sp_int(params, ppath, "lr_range_test_step_size", 2000, 0, 1, &size, err)) ||
        (rc = sp_num(params, ppath, "lr_range_test_step_rate", 1.0, 0, &s->range_rate, err)) ||
        (rc = sp_bool(params, ppath, "lr_range_test_staircase", 0, &s->staircase, err)))
        return rc;
    s->range_size = (double)size;
    return 0;
}

int ds_create(sched *s, const cJSON *params, const char *ppath, an_err *err, cJSON *warnings)
{
    int rc;
    switch (s->kind) {
    case SK_WARMUP:
    case SK_WARMUP_DECAY: rc = create_warmup(s, params, ppath, err, warnings); break;
    case SK_WARMUP_COSINE: rc = create_cosine(s, params, ppath, err, warnings); break;
    case SK_ONECYCLE: rc = create_onecycle(s, params, ppath, err, warnings); break;
    default: rc = create_range(s, params, ppath, err); break;
    }
    if (rc)
        return rc;
    if ((rc = sp_int(params, ppath, "last_batch_iteration", -1, 0, -1, &s->lbi0, err)))
        return rc;
    for (int g = 0; g < s->ngroups; g++)
        s->base[g] = s->env.base_lr[g];
    ds_apply(s);
    return 0;
}

static double warm_gamma(const sched *s, double i)
{
    if (s->log_warmup)
        return s->inv_log_w * log(i + 1);
    return i / s->warmup;
}

/* OneCycle's scale factor in [0, 1] for iteration i (with stairs). */
static double onecycle_scale(const sched *s, int64_t i)
{
    int64_t b = i + 1;
    double bd = (double)b;
    double cycle = floor(1 + bd / s->total);
    double x = 1. + bd / s->total - cycle;
    double scale;
    int64_t stairs;
    if (x <= s->ratio) {
        scale = x / s->ratio;
        stairs = s->stair1;
    } else {
        scale = (x - 1) / (s->ratio - 1);
        stairs = s->stair2;
    }
    if (stairs > 0) {
        double n = (double)stairs;
        double ci = fmod(bd, s->total); /* b >= 0, so fmod is Python's % here */
        double pos = ci <= s->first ? ci * n / s->first : (s->total - ci) * n / s->second;
        scale = floor(pos) / n;
    }
    return scale;
}

void ds_apply(sched *s)
{
    int n = s->ngroups;
    if (s->steps == 0) {
        if (s->lbi0 != -1) {
            /* Given a last_batch_iteration, DeepSpeed's constructor writes nothing: the
             * optimizer keeps its own values until the first step. */
            for (int g = 0; g < n; g++) {
                s->lr[g] = s->env.base_lr[g];
                s->mom[g] = s->env.beta1;
                s->beta2[g] = s->env.beta2;
            }
            return;
        }
        for (int g = 0; g < n; g++) {
            switch (s->kind) {
            case SK_WARMUP:
            case SK_WARMUP_DECAY:
            case SK_ONECYCLE: s->lr[g] = s->min_lr[g]; break;
            case SK_WARMUP_COSINE: s->lr[g] = 0.0; break;
            default: s->lr[g] = s->min_lr[g]; break;
            }
            s->mom[g] = s->min_mom[g];
            s->beta2[g] = 0.99;
        }
        s->last_epoch = -1;
        return;
    }
    int64_t i = s->lbi0 + s->steps;
    double di = (double)i;
    s->last_epoch = i;
    switch (s->kind) {
    case SK_WARMUP:
    case SK_WARMUP_DECAY: {
        double gamma;
        if (di < s->warmup)
            gamma = warm_gamma(s, di);
        else if (s->kind == SK_WARMUP)
            gamma = 1.0;
        else
            gamma = fmax(0.0, (s->total_num - di) / fmax(1.0, s->total_num - s->warmup));
        for (int g = 0; g < n; g++)
            s->lr[g] = s->min_lr[g] + s->delta[g] * gamma;
        break;
    }
    case SK_WARMUP_COSINE: {
        double ratio;
        if (i < 0) {
            ratio = 0.0;
        } else if (di < s->warmup) {
            ratio = s->wmr + warm_gamma(s, di) * (1. - s->wmr);
        } else {
            double real_last = di - s->warmup + 1;
            double real_total = s->total_num - s->warmup;
            double progress = fmin(1.0, real_last / fmax(1, real_total));
            double c = (1 + cos(M_PI * progress)) / 2;
            ratio = fmax(0.0, s->cmr + (1. - s->cmr) * c);
        }
        for (int g = 0; g < n; g++)
            s->lr[g] = s->base[g] * ratio;
        break;
    }
    case SK_ONECYCLE: {
        if (di < s->total) {
            double scale = onecycle_scale(s, i);
            for (int g = 0; g < n; g++) {
                s->lr[g] = s->min_lr[g] + (s->max_lr[g] - s->min_lr[g]) * scale;
                s->mom[g] = s->max_mom[g] - (s->max_mom[g] - s->min_mom[g]) * scale;
            }
        } else {
            double d = di - s->total + 1;
            double interval = s->decay_step > 0 ? d / s->decay_step : 0;
            for (int g = 0; g < n; g++) {
                s->lr[g] = s->skip_lr_decay ? s->min_lr[g]
                                            : s->min_lr[g] / (1 + s->decay_lr_rate * interval);
                s->mom[g] = s->skip_mom_decay ? s->max_mom[g]
                                              : s->max_mom[g] * (1 + s->decay_mom_rate * interval);
            }
        }
        for (int g = 0; g < n; g++)
            s->beta2[g] = 0.99;
        break;
    }
    default: {
        double interval = s->staircase ? floor((double)(i + 1) / s->range_size)
                                       : (double)(i + 1) / s->range_size;
        double inc = 1 + s->range_rate * interval;
        for (int g = 0; g < n; g++)
            s->lr[g] = s->min_lr[g] * inc;
        break;
    }
    }
}
