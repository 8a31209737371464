/* lrfind — the smoothed loss of a learning-rate sweep and its suggestions (rules in lrfind.h). */
#include "core/lrfind.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/cfgval.h"
#include "core/config.h"
#include "core/jsonnum.h"

void lrfind_watch_init(lrfind_watch *w, double beta, double stop_factor)
{
    *w = (lrfind_watch){.beta = beta, .stop_factor = stop_factor, .bpow = 1, .best = INFINITY};
}

int lrfind_watch_step(lrfind_watch *w, double loss)
{
    w->avg = w->beta * w->avg + (1 - w->beta) * loss;
    w->bpow *= w->beta;
    double s = w->smoothed = w->avg / (1 - w->bpow);
    if (!isfinite(s))
        return 1;
    /* For a negative minimum (a loss such as "mean" can go below zero) the threshold is
     * above it by the same proportion of its size. */
    double limit = w->best >= 0 ? w->stop_factor * w->best
                                : w->best + (w->stop_factor - 1) * -w->best;
    int diverged = w->n > 0 && s > limit;
    if (s < w->best)
        w->best = s;
    w->n++;
    return diverged;
}

void lrfind_smooth(const double *loss, size_t n, double beta, double *smoothed)
{
    lrfind_watch w;
    lrfind_watch_init(&w, beta, 2);
    for (size_t i = 0; i < n; i++) {
        lrfind_watch_step(&w, loss[i]);
        smoothed[i] = w.smoothed;
    }
}

size_t lrfind_diverged(const double *smoothed, size_t n, double stop_factor)
{
    /* the rule of lrfind_watch_step applied to values already smoothed: beta 0 passes them
     * through unchanged */
    lrfind_watch w;
    lrfind_watch_init(&w, 0, stop_factor);
    for (size_t i = 0; i < n; i++)
        if (lrfind_watch_step(&w, smoothed[i]))
            return i;
    return n;
}

/* The longest strictly decreasing subsequence of s[0..n): its first and last index; among
 * several of the longest length, the one that reaches that length first (so a descent ends at
 * its bottom, not at a later point of the rise that happens to sit just above it). Patience
 * sorting: tail[k] is the index ending the best subsequence of length k+1 found so far (the
 * one with the largest last value, so it is easiest to extend); prev links each index to the
 * one before it in its subsequence. */
static int longest_descent(const double *s, size_t n, size_t *first, size_t *last)
{
    size_t *tail = malloc(n * sizeof *tail), *prev = malloc(n * sizeof *prev);
    if (!tail || !prev) {
        free(tail);
        free(prev);
        return -ENOMEM;
    }
    size_t len = 0, end = 0;
    for (size_t i = 0; i < n; i++) {
        /* first k with s[tail[k]] <= s[i]: s[i] cannot follow it (not strictly below) */
        size_t lo = 0, hi = len;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (s[tail[mid]] > s[i])
                lo = mid + 1;
            else
                hi = mid;
        }
        prev[i] = lo > 0 ? tail[lo - 1] : i;
        tail[lo] = i;
        if (lo == len) {
            len++;
            end = i;
        }
    }
    size_t k = end;
    *last = k;
    while (prev[k] != k)
        k = prev[k];
    *first = k;
    free(tail);
    free(prev);
    return 0;
}

int lrfind_analyze(const double *lr, const double *loss, size_t n, double beta,
                   double stop_factor, double *smoothed, lrfind_result *out)
{
    if (!lr || !loss || !smoothed || !out || n == 0 || !(beta >= 0 && beta < 1) ||
        !(stop_factor > 1))
        return -EINVAL;
    *out = (lrfind_result){.steepest = NAN, .valley = NAN, .minimum_div_10 = NAN};
    lrfind_smooth(loss, n, beta, smoothed);
    size_t m = lrfind_diverged(smoothed, n, stop_factor);
    out->diverged_at = m;
    out->stopped_early = m < n;
    /* Steps with a non-positive lr have no place on a log axis: trailing ones are dropped,
     * and the analysis starts after the last one before them (a warm-up from 0, a cyclic
     * schedule's zero), on the longest run of usable steps that ends the range. */
    while (m > 0 && !(lr[m - 1] > 0))
        m--;
    size_t s0 = 0;
    for (size_t i = 0; i < m; i++)
        if (!(lr[i] > 0) || !isfinite(lr[i]))
            s0 = i + 1;
    if (m - s0 < LRFIND_MIN_POINTS)
        return 0;

    size_t imin = s0;
    for (size_t i = s0 + 1; i < m; i++)
        if (smoothed[i] < smoothed[imin])
            imin = i;
    out->minimum_at = imin;
    out->minimum_div_10 = lr[imin] / 10;

    /* The fall is steepest on the way down: after the minimum the curve only rises, and the
     * dips that noise makes there (a spike decaying in the average) are no advice. */
    double steepest = INFINITY;
    for (size_t i = s0; i <= imin; i++) {
        size_t a = i > s0 ? i - 1 : s0, b = i + 1 < m ? i + 1 : m - 1;
        double dx = log(lr[b]) - log(lr[a]);
        if (!(dx > 0))
            continue; /* the lr did not grow here: no slope */
        double d = (smoothed[b] - smoothed[a]) / dx;
        if (d < steepest) {
            steepest = d;
            out->steepest_at = i;
        }
    }
    if (steepest < INFINITY)
        out->steepest = lr[out->steepest_at];

    size_t first, last;
    int rc = longest_descent(smoothed + s0, m - s0, &first, &last);
    if (rc)
        return rc;
    out->valley_at = s0 + first + (last - first) / 2;
    out->valley = lr[out->valley_at];
    out->has_suggestions = 1;
    return 0;
}

/* ---- the finder as a job ------------------------------------------------------------------ */

/* Sets obj[key] to item (replacing any), taking ownership; -ENOMEM when item is NULL. */
static int put(cJSON *obj, const char *key, cJSON *item)
{
    if (!item)
        return -ENOMEM;
    if (cJSON_GetObjectItemCaseSensitive(obj, key))
        cJSON_ReplaceItemInObjectCaseSensitive(obj, key, item);
    else
        cJSON_AddItemToObject(obj, key, item);
    return 0;
}

/* The object at obj[key], created when absent; NULL when it is there but not an object. */
static cJSON *object_at(cJSON *obj, const char *key)
{
    cJSON *o = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!o) {
        o = cJSON_CreateObject();
        if (o)
            cJSON_AddItemToObject(obj, key, o);
    }
    return cJSON_IsObject(o) ? o : NULL;
}

/* Numbers go in as plain cJSON numbers: the job parser reads them as such, and the service
 * stores specs with its exact printer. */
static int rewrite_spec(cJSON *spec, const lrfind_req *q, an_err *err)
{
    cJSON_DeleteItemFromObjectCaseSensitive(spec, "epochs");
    cJSON *lf = cJSON_CreateObject();
    if (!lf || !cJSON_AddNumberToObject(lf, "stop_factor", q->stop_factor)) {
        cJSON_Delete(lf);
        return an_failc(err, -ENOMEM, "", "out of memory");
    }
    if (put(spec, "steps", cJSON_CreateNumber((double)q->steps)) || put(spec, "lr_finder", lf))
        return an_failc(err, -ENOMEM, "", "out of memory");
    cJSON *ds = object_at(spec, "ds_config");
    if (!ds)
        return an_fail(err, "job.ds_config", "ds_config must be an object");
    cJSON *opt = object_at(ds, "optimizer");
    cJSON *op = opt ? object_at(opt, "params") : NULL;
    if (!op)
        return an_fail(err, "job.ds_config.optimizer", "the finder needs the job's optimizer "
                       "block ({\"type\": …, \"params\": {…}})");
    cJSON *sch = cJSON_CreateObject();
    int rc = !sch ||
             !cJSON_AddStringToObject(sch, "type", q->linear ? "LRRangeTest" : "ExponentialLR");
    cJSON *sp = rc ? NULL : cJSON_AddObjectToObject(sch, "params");
    rc = rc || !sp;
    if (q->linear) {
        /* LRRangeTest: lr = min (1 + rate (i+1)/size), and step s trains at i = s - 2, so
         * size = steps - 1 with rate = max/min - 1 reaches max at the last step. */
        rc = rc || put(sp, "lr_range_test_min_lr", cJSON_CreateNumber(q->min_lr)) ||
             put(sp, "lr_range_test_step_size", cJSON_CreateNumber((double)(q->steps - 1))) ||
             put(sp, "lr_range_test_step_rate", cJSON_CreateNumber(q->max_lr / q->min_lr - 1)) ||
             put(sp, "lr_range_test_staircase", cJSON_CreateFalse());
        rc = rc || put(op, "lr", cJSON_CreateNumber(q->min_lr));
    } else {
        double gamma = pow(q->max_lr / q->min_lr, 1.0 / (double)(q->steps - 1));
        rc = rc || put(sp, "gamma", cJSON_CreateNumber(gamma)) || put(op, "lr", cJSON_CreateNumber(q->min_lr));
    }
    if (rc) {
        cJSON_Delete(sch);
        return an_failc(err, -ENOMEM, "", "out of memory");
    }
    if (put(ds, "scheduler", sch))
        return an_failc(err, -ENOMEM, "", "out of memory");
    return 0;
}

int lrfind_request(const cJSON *body, lrfind_req *req, cJSON **spec, an_err *err)
{
    static const char *const keys[] = {"job", "min_lr", "max_lr", "steps", "stop_factor",
                                       "mode", NULL};
    static const char *const modes[] = {"exponential", "linear", NULL};
    *spec = NULL;
    int rc;
    if ((rc = cfg_want_object(body, "", err)))
        return rc;
    const cJSON *job = cfg_get(body, "job");
    const cJSON *opts = body;
    if (!job && cfg_get(body, "model")) { /* a bare job spec: every option at its default */
        job = body;
        opts = NULL;
    }
    if (opts && ((rc = cfg_check_keys(opts, "", keys, err)) ||
                 (rc = cfg_require(opts, "", "job", err))))
        return rc;
    const cJSON *none = NULL;
    if (!opts)
        opts = none = cJSON_CreateObject();
    if (!opts)
        return an_failc(err, -ENOMEM, "", "out of memory");
    int mode = 0;
    /* The rates an optimizer takes (float32 parameters) */
    if ((rc = cfg_num(opts, "", "min_lr", 1e-7, 0, OPTIM_MAX_LR, CFG_LO_OPEN, &req->min_lr,
                      err)) ||
        (rc = cfg_num(opts, "", "max_lr", 10, 0, OPTIM_MAX_LR, CFG_LO_OPEN, &req->max_lr,
                      err)) ||
        (rc = cfg_int(opts, "", "steps", 100, LRFIND_MIN_POINTS, LRFIND_MAX_STEPS, &req->steps,
                      err)) ||
        (rc = cfg_num(opts, "", "stop_factor", LRFIND_STOP_FACTOR, 1, LRFIND_STOP_MAX, CFG_LO_OPEN,
                      &req->stop_factor, err)) ||
        (rc = cfg_enum(opts, "", "mode", modes, 0, &mode, err))) {
        cJSON_Delete((cJSON *)none);
        return rc;
    }
    cJSON_Delete((cJSON *)none);
    req->linear = mode == 1;
    if (!(req->min_lr < req->max_lr))
        return an_fail(err, "max_lr", "max_lr (%g) must be above min_lr (%g)", req->max_lr,
                       req->min_lr);
    /* the sweep's step factor (max_lr / min_lr) must be a number the scheduler can take */
    if (!isfinite(req->max_lr / req->min_lr))
        return an_fail(err, "max_lr", "max_lr / min_lr (%g / %g) is beyond a double: give a "
                       "narrower range", req->max_lr, req->min_lr);
    /* every step must train at a larger lr than the one before: a range so narrow that a
     * step's rise is lost in rounding sweeps nothing (ExponentialLR's gamma rounds to 1).
     * (r - 1) / r / (steps - 1) is the smallest relative rise of a step in either mode. */
    double r = req->max_lr / req->min_lr;
    if ((r - 1) / r / (double)(req->steps - 1) < LRFIND_MIN_RISE)
        return an_fail(err, "max_lr", "max_lr (%.17g) is too close to min_lr (%.17g) to sweep "
                       "in %lld steps: each step must raise the lr by at least %g of itself; "
                       "give a wider range or fewer steps", req->max_lr, req->min_lr,
                       (long long)req->steps, LRFIND_MIN_RISE);
    if (!cJSON_IsObject(job))
        return an_fail(err, "job", "job must be a job spec (an object)");
    cJSON *s = cJSON_Duplicate(job, 1);
    if (!s)
        return an_failc(err, -ENOMEM, "job", "out of memory");
    if ((rc = rewrite_spec(s, req, err))) {
        cJSON_Delete(s);
        return rc;
    }
    /* The finder's job must be a valid job; its errors are named under "job." (not when the
     * body is the job spec itself). */
    job_spec js;
    an_err e;
    if ((rc = job_spec_parse(s, &js, &e))) {
        cJSON_Delete(s);
        char f[CFG_PATH + 8];
        if (job == body)
            snprintf(f, sizeof f, "%s", e.field);
        else
            snprintf(f, sizeof f, "job%s%s", e.field[0] ? "." : "", e.field);
        return an_failc(err, rc, f, "%s", e.message);
    }
    job_spec_free(&js);
    *spec = s;
    return 0;
}

cJSON *lrfind_report(const double *lr, const double *loss, const double *smoothed, size_t n,
                     const lrfind_result *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *a[3] = {cJSON_CreateArray(), cJSON_CreateArray(), cJSON_CreateArray()};
    const double *src[3] = {lr, loss, smoothed};
    const char *names[3] = {"lr", "loss", "smoothed"};
    int ok = o != NULL;
    for (int k = 0; k < 3; k++) {
        ok = ok && a[k];
        for (size_t i = 0; ok && i < n; i++) {
            cJSON *x = json_number(src[k][i]);
            ok = x != NULL;
            if (ok)
                cJSON_AddItemToArray(a[k], x);
        }
        if (ok) {
            cJSON_AddItemToObject(o, names[k], a[k]);
            a[k] = NULL;
        }
    }
    cJSON *sug = ok ? cJSON_AddObjectToObject(o, "suggestions") : NULL;
    const double v[3] = {r->steepest, r->valley, r->minimum_div_10};
    const char *sn[3] = {"steepest", "valley", "minimum_div_10"};
    ok = ok && sug;
    for (int k = 0; ok && k < 3; k++) {
        cJSON *x = r->has_suggestions ? json_number(v[k]) : cJSON_CreateNull();
        ok = x != NULL;
        if (ok)
            cJSON_AddItemToObject(sug, sn[k], x);
    }
    ok = ok && cJSON_AddBoolToObject(o, "stopped_early", r->stopped_early);
    ok = ok && (r->stopped_early ? cJSON_AddNumberToObject(o, "diverged_at", (double)r->diverged_at)
                                 : cJSON_AddNullToObject(o, "diverged_at"));
    for (int k = 0; k < 3; k++)
        cJSON_Delete(a[k]);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}
