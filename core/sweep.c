/* sweep — a sweep's spec, its trials and ASHA's rule (see sweep.h). */
#include "core/sweep.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/jsonnum.h"
#include "core/loss.h"
#include "core/rng.h"

/* Stream purpose of the random search's draws (apart from the job's own streams). */
#define RNG_SWEEP_DRAW 0x5357u

/* ---- parsing ------------------------------------------------------------------------------ */

/* Whether a job measures accuracy (val_acc): a classification loss on a model other than gpt,
 * whose validation reports its loss alone. */
static int measures_accuracy(const job_spec *js)
{
    return js->model.type != MODEL_GPT && loss_is_classification(js->loss);
}

/* Checks that the base with `value` at `path` is still a valid job spec that uses the value:
 * an error of the spec parser, or a warning the base did not have (a key it ignores), is the
 * parameter's fault, and so is a job without the validation the metric reads (val_loss,
 * val_acc): its trial would have nothing to rank. *acc: whether that job measures accuracy. */
static int check_value(const sweep_spec *s, const char *path, const cJSON *value, int base_warn,
                       int *acc, an_err *err)
{
    char field[CFG_PATH + 16];
    snprintf(field, sizeof field, "parameters.%s", path);
    cJSON *one = cJSON_CreateObject();
    if (!one || !cJSON_AddItemToObject(one, path, cJSON_Duplicate(value, 1))) {
        cJSON_Delete(one);
        return an_failc(err, -ENOMEM, field, "out of memory");
    }
    cJSON *spec = NULL;
    int rc = sweep_apply(s->base, one, &spec, err);
    cJSON_Delete(one);
    if (rc)
        return rc;
    job_spec js;
    an_err e;
    rc = job_spec_parse(spec, &js, &e);
    cJSON_Delete(spec);
    char vbuf[64];
    if (rc)
        return an_fail(err, field, "the base spec with %s = %s is not a valid job: %s%s%s",
                       path, cfg_describe(value, vbuf, sizeof vbuf), e.field,
                       e.field[0] ? ": " : "", e.message);
    *acc = measures_accuracy(&js);
    int nw = cJSON_GetArraySize(js.warnings);
    if (strcmp(s->metric, "loss") != 0 && !(js.val_fraction > 0 || js.val_split_test))
        rc = an_fail(err, field, "metric %s needs validation; with %s = %s the trial's job has "
                     "none (use \"loss\", or keep validation on)", s->metric, path,
                     cfg_describe(value, vbuf, sizeof vbuf));
    else if (nw > base_warn) {
        const cJSON *w = cJSON_GetArrayItem(js.warnings, nw - 1);
        rc = an_fail(err, field, "%s is not a setting the job uses: %s", path,
                     cJSON_IsString(w) ? w->valuestring : "it is ignored");
    }
    job_spec_free(&js);
    return rc;
}

static int parse_param(const cJSON *v, const char *path, sweep_param *p, an_err *err)
{
    char field[CFG_PATH + 32];
    snprintf(field, sizeof field, "parameters.%s", path);
    snprintf(p->path, sizeof p->path, "%s", path);
    if (strlen(path) >= sizeof p->path)
        return an_fail(err, "parameters", "a parameter path is at most %d bytes",
                       (int)sizeof p->path - 1);
    if (cJSON_IsArray(v)) {
        p->dist = SWEEP_CHOICE;
        p->values = v;
        p->nvalues = cJSON_GetArraySize(v);
        if (p->nvalues < 1 || p->nvalues > SWEEP_MAX_TRIALS)
            return an_fail(err, field, "a list of values to try needs 1 to %d entries, got %d",
                           SWEEP_MAX_TRIALS, p->nvalues);
        return 0;
    }
    static const char *const keys[] = {"uniform", "log_uniform", NULL};
    int rc;
    if (!cJSON_IsObject(v) || cJSON_GetArraySize(v) != 1)
        return an_fail(err, field, "give a list of values, {\"uniform\": [lo, hi]} or "
                       "{\"log_uniform\": [lo, hi]}");
    if ((rc = cfg_check_keys(v, field, keys, err)))
        return rc;
    const cJSON *r = v->child;
    p->dist = strcmp(r->string, "uniform") == 0 ? SWEEP_UNIFORM : SWEEP_LOG_UNIFORM;
    snprintf(field, sizeof field, "parameters.%s.%s", path, r->string);
    if (!cJSON_IsArray(r) || cJSON_GetArraySize(r) != 2)
        return an_fail(err, field, "a range is [lo, hi]");
    double b[2];
    for (int i = 0; i < 2; i++) {
        char f[CFG_PATH + 48];
        an_path_index(f, sizeof f, field, i);
        if ((rc = cfg_num_value(cJSON_GetArrayItem(r, i), f, -INFINITY, INFINITY, CFG_CLOSED,
                                &b[i], err)))
            return rc;
    }
    char lo[40], hi[40];
    json_number_text(lo, sizeof lo, b[0], 1);
    json_number_text(hi, sizeof hi, b[1], 1);
    if (!(b[0] < b[1]))
        return an_fail(err, field, "the range's low end %s must be below its high end %s", lo,
                       hi);
    if (p->dist == SWEEP_LOG_UNIFORM && !(b[0] > 0))
        return an_fail(err, field, "a log-uniform range must be above 0, got low end %s", lo);
    p->lo = b[0];
    p->hi = b[1];
    return 0;
}

/* Two parameter paths where one holds the other ("a.b" and "a.b.c", "model.hidden" and
 * "model.hidden[0]", or the same place twice, however written: "[0]" and "[00]") would set
 * the same value twice, the later one undoing the earlier: the newest parameter is checked
 * against those before it. */
static int check_overlap(const sweep_spec *s, an_err *err)
{
    const char *b = s->params[s->nparams - 1].path;
    for (int i = 0; i < s->nparams - 1; i++) {
        const char *a = s->params[i].path;
        int o = sweep_paths_overlap(a, b);
        if (o <= 0) /* a malformed path is refused naming itself, by check_value */
            continue;
        char f[CFG_PATH + 16];
        snprintf(f, sizeof f, "parameters.%s", b);
        if (o == 2 && strcmp(a, b) == 0)
            return an_fail(err, f, "%s is given twice", b);
        if (o == 2)
            return an_fail(err, f, "%s is the place parameter %s sets, so a trial would set it "
                           "twice; sweep one of them", b, a);
        return an_fail(err, f, "%s overlaps parameter %s: one is part of the other, so a trial "
                       "would set it twice; sweep one of them", b, a);
    }
    return 0;
}

/* A value that makes a job without accuracy, for metric val_acc. */
static int no_accuracy(const char *path, const cJSON *value, an_err *err)
{
    char field[CFG_PATH + 16], vbuf[64];
    snprintf(field, sizeof field, "parameters.%s", path);
    return an_fail(err, field, "metric val_acc needs a job that measures accuracy (a "
                   "classification loss, cross_entropy or bce, on a linear or mlp model); "
                   "with %s = %s the trial's job measures none", path,
                   cfg_describe(value, vbuf, sizeof vbuf));
}

static int parse_early_stopping(const cJSON *es, sweep_spec *s, an_err *err)
{
    static const char *const keys[] = {"type", "min_steps", "reduction_factor", NULL};
    static const char *const types[] = {"asha", NULL};
    int t, rc;
    int64_t v;
    if ((rc = cfg_want_object(es, "early_stopping", err)) ||
        (rc = cfg_check_keys(es, "early_stopping", keys, err)) ||
        (rc = cfg_enum(es, "early_stopping", "type", types, 0, &t, err)) ||
        (rc = cfg_require(es, "early_stopping", "min_steps", err)) ||
        (rc = cfg_int(es, "early_stopping", "min_steps", 0, 1, CFG_INT_MAX, &s->min_steps,
                      err)) ||
        (rc = cfg_int(es, "early_stopping", "reduction_factor", 3, 2, 100, &v, err)))
        return rc;
    s->asha = 1;
    s->eta = (int)v;
    return 0;
}

/* `stored`: a body this daemon accepted before, read back (sweep_parse_stored). */
static int parse_sweep(const cJSON *body, sweep_spec *out, int stored, an_err *err)
{
    static const char *const keys[] = {"name", "base", "parameters", "search", "trials",
                                       "metric", "mode", "max_concurrent", "early_stopping",
                                       "seed", NULL};
    static const char *const searches[] = {"grid", "random", NULL};
    static const char *const metrics[] = {"val_loss", "val_acc", "loss", NULL};
    static const char *const modes[] = {"min", "max", NULL};
    memset(out, 0, sizeof *out);
    int rc;
    if ((rc = cfg_want_object(body, "", err)) || (rc = cfg_check_keys(body, "", keys, err)) ||
        (rc = cfg_str(body, "", "name", "sweep", out->name, sizeof out->name, err)) ||
        (rc = cfg_require(body, "", "base", err)) ||
        (rc = cfg_require(body, "", "parameters", err)))
        return rc;
    /* its trials are jobs named "NAME #k" (k up to 1000), within a job name's bytes */
    if (strlen(out->name) > CFG_MAX_NAME - 1 - 6)
        return an_fail(err, "name", "name must be at most %d bytes (its trials are the jobs "
                       "\"NAME #k\", and a job's name is at most %d), got %zu",
                       CFG_MAX_NAME - 1 - 6, CFG_MAX_NAME - 1, strlen(out->name));
    out->json = cJSON_Duplicate(body, 1);
    if (!out->json)
        return an_failc(err, -ENOMEM, "", "out of memory");
    const cJSON *base = cfg_get(out->json, "base");
    const cJSON *params = cfg_get(out->json, "parameters");

    /* The base must be a valid job by itself: its errors are named under "base." */
    job_spec js;
    an_err e;
    if (!cJSON_IsObject(base)) {
        rc = an_fail(err, "base", "base must be a job spec (an object)");
        goto fail;
    }
    int base_warn = 0, has_val = 1, base_acc = 1;
    if (stored) {
        /* Checked when it was stored; a later, stricter parser must not strand it. */
        int64_t seed;
        an_err ignored;
        out->seed = cfg_int(base, "", "seed", 0, 0, CFG_INT_MAX, &seed, &ignored) == 0
                        ? (uint64_t)seed : 0;
    } else if ((rc = job_spec_parse(base, &js, &e))) {
        char f[CFG_PATH + 8];
        snprintf(f, sizeof f, "base%s%s", e.field[0] ? "." : "", e.field);
        rc = an_failc(err, rc, f, "%s", e.message);
        goto fail;
    } else {
        base_warn = cJSON_GetArraySize(js.warnings);
        has_val = js.val_fraction > 0 || js.val_split_test; /* a fraction or a test split */
        base_acc = measures_accuracy(&js);
        out->seed = js.seed;
        job_spec_free(&js);
    }
    out->base = cJSON_Duplicate(base, 1);
    if (!out->base) {
        rc = an_failc(err, -ENOMEM, "base", "out of memory");
        goto fail;
    }

    if (!cJSON_IsObject(params) || cJSON_GetArraySize(params) < 1 ||
        cJSON_GetArraySize(params) > SWEEP_MAX_PARAMS) {
        rc = an_fail(err, "parameters", "parameters must be an object of 1 to %d JSON paths, "
                     "each with the values to try", SWEEP_MAX_PARAMS);
        goto fail;
    }
    /* The metric first: whether every trial can measure it is checked with the values. */
    int m, mode;
    if ((rc = cfg_enum(out->json, "", "metric", metrics, 0, &m, err)))
        goto fail;
    snprintf(out->metric, sizeof out->metric, "%s", metrics[m]);
    if (m != 2 && !has_val) {
        rc = an_fail(err, "metric", "metric %s needs validation in the base spec (e.g. "
                     "\"validation\": {\"fraction\": 0.1, \"every_steps\": 100}), or use "
                     "\"loss\"", metrics[m]);
        goto fail;
    }
    int wants_acc = m == 1, acc_set = 0; /* acc_set: a parameter gives every trial accuracy */
    const char *acc_some = NULL;         /* one that gives it to some trials only */

    int all_lists = 1;
    const cJSON *p;
    cJSON_ArrayForEach(p, params) {
        sweep_param *sp = &out->params[out->nparams];
        if ((rc = parse_param(p, p->string, sp, err)))
            goto fail;
        all_lists &= sp->dist == SWEEP_CHOICE;
        out->nparams++;
        /* every value that can be proposed must make a valid job (a stored sweep's were
         * checked when it was stored) */
        if (stored)
            continue;
        if ((rc = check_overlap(out, err)))
            goto fail;
        int nacc = 0, nval = 0, acc = 0;
        if (sp->dist == SWEEP_CHOICE) {
            const cJSON *v;
            cJSON_ArrayForEach(v, sp->values) {
                if ((rc = check_value(out, sp->path, v, base_warn, &acc, err)))
                    goto fail;
                nacc += acc;
                nval++;
                if (wants_acc && base_acc && !acc) {
                    rc = no_accuracy(sp->path, v, err);
                    goto fail;
                }
            }
        } else {
            /* the ends, and a value between them that is no integer (as nearly every draw
             * is): an integer setting is refused here, not in every trial. The point 0.3721
             * of the way is an integer in some ranges ([1, 10001]): half a step (or half the
             * way to the high end) past it is not. */
            for (int i = 0; i < 3; i++) {
                double x = i == 0 ? sp->lo : i == 1 ? sp->hi : sp->lo + 0.3721 * (sp->hi - sp->lo);
                if (i == 2 && x == floor(x))
                    x += fmin(0.5, (sp->hi - x) / 2);
                if (i == 2 && (x == floor(x) || sp->hi - sp->lo < 1e-9 * fabs(sp->hi)))
                    break;
                cJSON *v = cJSON_CreateNumber(x);
                rc = v ? check_value(out, sp->path, v, base_warn, &acc, err)
                       : an_failc(err, -ENOMEM, "", "out of memory");
                if (!rc && wants_acc && base_acc && !acc)
                    rc = no_accuracy(sp->path, v, err);
                cJSON_Delete(v);
                if (rc)
                    goto fail;
                nacc += acc;
                nval++;
            }
        }
        acc_set |= nval > 0 && nacc == nval;
        if (nacc > 0 && nacc < nval && !acc_some)
            acc_some = sp->path;
    }
    /* val_acc of a base that measures no accuracy: only a parameter that gives every trial a
     * classification loss makes it a metric (a trial without it would have none to rank). */
    if (wants_acc && !base_acc && !acc_set && !stored) {
        char f[CFG_PATH + 16];
        snprintf(f, sizeof f, "parameters.%s", acc_some ? acc_some : "");
        rc = an_fail(err, acc_some ? f : "metric", "metric val_acc needs a job that measures "
                     "accuracy: a classification loss (cross_entropy or bce) on a linear or mlp "
                     "model; %s would have no val_acc to rank (use val_loss or loss)",
                     acc_some ? "some of these values make a job without one, whose trials"
                              : "the base spec's job has none, so every trial");
        goto fail;
    }

    int def_search = all_lists ? SWEEP_GRID : SWEEP_RANDOM;
    if ((rc = cfg_enum(out->json, "", "search", searches, def_search, &out->search, err)))
        goto fail;
    if (out->search == SWEEP_GRID) {
        if (!all_lists) {
            for (int i = 0; i < out->nparams; i++)
                if (out->params[i].dist != SWEEP_CHOICE) {
                    char f[CFG_PATH + 16];
                    snprintf(f, sizeof f, "parameters.%s", out->params[i].path);
                    rc = an_fail(err, f, "grid search needs a list of values for every "
                                 "parameter (use \"search\": \"random\" for ranges)");
                    goto fail;
                }
        }
        double combos = 1;
        for (int i = 0; i < out->nparams; i++)
            combos *= out->params[i].nvalues;
        if (combos > SWEEP_MAX_TRIALS) {
            rc = an_fail(err, "parameters", "grid search over these lists makes %.0f trials; "
                         "at most %d", combos, SWEEP_MAX_TRIALS);
            goto fail;
        }
        int64_t t;
        if ((rc = cfg_int(out->json, "", "trials", (int64_t)combos, 1, SWEEP_MAX_TRIALS, &t,
                          err)))
            goto fail;
        if (t != (int64_t)combos) {
            rc = an_fail(err, "trials", "grid search runs every combination (%.0f); leave "
                         "trials out or set it to %.0f", combos, combos);
            goto fail;
        }
        out->trials = (int)t;
    } else {
        int64_t t;
        if ((rc = cfg_int(out->json, "", "trials", 10, 1, SWEEP_MAX_TRIALS, &t, err)))
            goto fail;
        out->trials = (int)t;
    }

    if ((rc = cfg_enum(out->json, "", "mode", modes, m == 1 ? 1 : 0, &mode, err)))
        goto fail;
    out->maximize = mode == 1;
    int64_t v;
    if ((rc = cfg_int(out->json, "", "max_concurrent", 2, 1, 64, &v, err)))
        goto fail;
    out->max_concurrent = (int)v;
    const cJSON *es = cfg_get(out->json, "early_stopping");
    if (es && (rc = parse_early_stopping(es, out, err)))
        goto fail;
    if ((rc = cfg_int(out->json, "", "seed", (int64_t)(out->seed & (uint64_t)CFG_INT_MAX), 0,
                      CFG_INT_MAX, &v, err)))
        goto fail;
    if (cfg_get(out->json, "seed"))
        out->seed = (uint64_t)v;
    return 0;
fail:
    sweep_free(out);
    return rc;
}

int sweep_parse(const cJSON *body, sweep_spec *out, an_err *err)
{
    return parse_sweep(body, out, 0, err);
}

int sweep_parse_stored(const cJSON *body, sweep_spec *out, an_err *err)
{
    return parse_sweep(body, out, 1, err);
}

void sweep_free(sweep_spec *s)
{
    cJSON_Delete(s->base);
    cJSON_Delete(s->json);
    memset(s, 0, sizeof *s);
}

/* ---- trials ------------------------------------------------------------------------------ */

int sweep_trial_params(const sweep_spec *s, int index, cJSON **out, an_err *err)
{
    if (index < 0 || index >= s->trials)
        return an_fail(err, "", "trial %d does not exist (the sweep has %d)", index, s->trials);
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return an_failc(err, -ENOMEM, "", "out of memory");
    int rest = index; /* grid: mixed-radix digits, the last parameter the fastest */
    int pick[SWEEP_MAX_PARAMS];
    for (int i = s->nparams - 1; i >= 0 && s->search == SWEEP_GRID; i--) {
        pick[i] = rest % s->params[i].nvalues;
        rest /= s->params[i].nvalues;
    }
    for (int i = 0; i < s->nparams; i++) {
        const sweep_param *p = &s->params[i];
        rng r;
        rng_init(&r, s->seed, rng_stream_id(RNG_SWEEP_DRAW, (uint64_t)index, (uint64_t)i, 0), 0);
        cJSON *v;
        if (p->dist == SWEEP_CHOICE) {
            int k = s->search == SWEEP_GRID ? pick[i] : (int)rng_below(&r, (uint64_t)p->nvalues);
            v = cJSON_Duplicate(cJSON_GetArrayItem(p->values, k), 1);
        } else {
            double u = rng_uniform(&r), x;
            if (p->dist == SWEEP_UNIFORM)
                x = p->lo + (p->hi - p->lo) * u;
            else
                x = exp(log(p->lo) + (log(p->hi) - log(p->lo)) * u);
            x = x < p->lo ? p->lo : x > p->hi ? p->hi : x;
            v = cJSON_CreateNumber(x);
        }
        if (!v || !cJSON_AddItemToObject(o, p->path, v)) {
            cJSON_Delete(v);
            cJSON_Delete(o);
            return an_failc(err, -ENOMEM, "", "out of memory");
        }
    }
    *out = o;
    return 0;
}

int sweep_rungs(const sweep_spec *s, int64_t total_steps, int64_t *rungs, int max)
{
    int n = 0;
    if (!s->asha)
        return 0;
    for (double r = (double)s->min_steps; r < (double)total_steps && n < max; r *= s->eta)
        rungs[n++] = (int64_t)r;
    return n;
}

/* a is better than b (NaN is worst) */
static int better(double a, double b, int maximize)
{
    if (isnan(a))
        return 0;
    if (isnan(b))
        return 1;
    return maximize ? a > b : a < b;
}

int sweep_asha_continues(const double *earlier, int count, double value, int maximize, int eta)
{
    /* rank of `value` among earlier arrivals and itself: ties go to the earlier ones */
    int rank = 1;
    for (int i = 0; i < count; i++)
        if (!better(value, earlier[i], maximize))
            rank++;
    int total = count + 1;
    int keep = (total + eta - 1) / eta;
    return rank <= keep;
}
