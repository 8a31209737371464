/* sched_torch — PyTorch's schedulers with torch 1.13's formulas.
 *
 * Chainable schedulers use torch's recursive get_lr (the new lr from the current one), the
 * others their closed forms, exactly as torch's step() does, so traces match bit for bit. */
#include "core/sched_torch.h"

#include <math.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/sched_param.h"

enum { CYC_TRI = 1, CYC_TRI2 = 2, CYC_EXP = 3 };

int torch_kind(const char *type)
{
    static const struct { const char *name; int kind; } t[] = {
        {"StepLR", SK_STEP},         {"MultiStepLR", SK_MULTISTEP},
        {"ExponentialLR", SK_EXP},   {"CosineAnnealingLR", SK_COSINE},
        {"CosineAnnealingWarmRestarts", SK_CAWR}, {"CyclicLR", SK_CYCLIC},
        {"OneCycleLR", SK_ONECYCLELR}, {"LinearLR", SK_LINEAR},
        {"ConstantLR", SK_CONSTANT}, {"PolynomialLR", SK_POLY},
        {"ReduceLROnPlateau", SK_PLATEAU},
    };
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++)
        if (strcmp(type, t[k].name) == 0)
            return t[k].kind;
    return 0;
}

int sched_kind_chainable(int kind)
{
    return kind >= SK_STEP && kind <= SK_POLY;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* A list of non-negative integers into s->milestones, sorted. */
static int read_milestones(sched *s, const cJSON *params, const char *ppath, an_err *err)
{
    char p[256], pi[300];
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(params, "milestones");
    an_path(p, sizeof p, ppath, "milestones");
    if (!m)
        return an_fail(err, p, "milestones is required");
    if (!cJSON_IsArray(m))
        return an_fail(err, p, "milestones must be a list of integers, got %s", sp_kind(m));
    int n = cJSON_GetArraySize(m);
    if (n > SCHED_MAX_MILESTONES)
        return an_fail(err, p, "milestones may have at most %d entries, got %d",
                       SCHED_MAX_MILESTONES, n);
    const cJSON *it;
    int k = 0;
    cJSON_ArrayForEach(it, m) {
        an_path_index(pi, sizeof pi, p, k);
        if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) ||
            it->valuedouble < 0 || it->valuedouble > 9e15)
            return an_fail(err, pi, "milestones must be non-negative integers, got %s",
                           cJSON_IsNumber(it) ? "a fraction or negative number" : sp_kind(it));
        s->milestones[k++] = (int64_t)it->valuedouble;
    }
    s->nmilestones = n;
    qsort(s->milestones, (size_t)n, sizeof s->milestones[0], cmp_i64);
    return 0;
}

static int range_fail(an_err *err, const char *ppath, const char *key, const char *what,
                      double got)
{
    char p[256];
    return an_fail(err, an_path(p, sizeof p, ppath, key), "%s must be %s, got %.17g", key, what,
                   got);
}

static int create_cyclic(sched *s, const cJSON *params, const char *ppath, an_err *err)
{
    static const char *const keys[] = {"base_lr", "max_lr", "step_size_up", "step_size_down",
                                       "mode", "gamma", "cycle_momentum", "base_momentum",
                                       "max_momentum", NULL};
    double d08[SCHED_MAX_GROUPS], d09[SCHED_MAX_GROUPS], up, down;
    const char *mode;
    char p[256];
    int n = s->ngroups, rc;
    for (int g = 0; g < n; g++) {
        d08[g] = 0.8;
        d09[g] = 0.9;
    }
    if ((rc = sp_check_keys(params, ppath, keys, "CyclicLR", err)) ||
        (rc = sp_groups(params, ppath, "base_lr", NULL, 1, n, s->min_lr, err)) ||
        (rc = sp_groups(params, ppath, "max_lr", NULL, 1, n, s->max_lr, err)) ||
        (rc = sp_groups_min(params, ppath, "base_lr", s->min_lr, n, 0.0, err)) ||
        (rc = sp_groups_min(params, ppath, "max_lr", s->max_lr, n, 0.0, err)) ||
        (rc = sp_num(params, ppath, "step_size_up", 2000, 0, &up, err)) ||
        (rc = sp_num(params, ppath, "step_size_down", up, 0, &down, err)) ||
        (rc = sp_str(params, ppath, "mode", "triangular", &mode, err)) ||
        (rc = sp_num(params, ppath, "gamma", 1.0, 0, &s->gamma, err)) ||
        (rc = sp_bool(params, ppath, "cycle_momentum", 1, &s->cycles_mom, err)) ||
        (rc = sp_groups(params, ppath, "base_momentum", d08, 0, n, s->base_mom, err)) ||
        (rc = sp_groups(params, ppath, "max_momentum", d09, 0, n, s->max_momv, err)))
        return rc;
    if (!(up > 0))
        return range_fail(err, ppath, "step_size_up", "> 0", up);
    if (!(down >= 0))
        return range_fail(err, ppath, "step_size_down", ">= 0", down);
    if (strcmp(mode, "triangular") == 0)
        s->cyc_mode = CYC_TRI;
    else if (strcmp(mode, "triangular2") == 0)
        s->cyc_mode = CYC_TRI2;
    else if (strcmp(mode, "exp_range") == 0)
        s->cyc_mode = CYC_EXP;
    else
        return an_fail(err, an_path(p, sizeof p, ppath, "mode"),
                       "mode must be \"triangular\", \"triangular2\" or \"exp_range\", got \"%s\"",
                       mode);
    s->total_size = up + down;
    s->step_ratio = up / s->total_size;
    return 0;
}

static int create_onecyclelr(sched *s, const cJSON *params, const char *ppath, an_err *err)
{
    static const char *const keys[] = {"max_lr", "total_steps", "pct_start", "anneal_strategy",
                                       "cycle_momentum", "base_momentum", "max_momentum",
                                       "div_factor", "final_div_factor", "three_phase", NULL};
    double d085[SCHED_MAX_GROUPS], d095[SCHED_MAX_GROUPS], pct, div, fdiv;
    const char *strat;
    char p[256];
    int n = s->ngroups, rc, three;
    for (int g = 0; g < n; g++) {
        d085[g] = 0.85;
        d095[g] = 0.95;
    }
    if ((rc = sp_check_keys(params, ppath, keys, "OneCycleLR", err)) ||
        (rc = sp_groups(params, ppath, "max_lr", NULL, 1, n, s->peak_lr, err)) ||
        (rc = sp_groups_min(params, ppath, "max_lr", s->peak_lr, n, 0.0, err)) ||
        (rc = sp_int(params, ppath, "total_steps", 0, 1, 1, &s->total_steps, err)) ||
        (rc = sp_num(params, ppath, "pct_start", 0.3, 0, &pct, err)) ||
        (rc = sp_str(params, ppath, "anneal_strategy", "cos", &strat, err)) ||
        (rc = sp_bool(params, ppath, "cycle_momentum", 1, &s->cycles_mom, err)) ||
        (rc = sp_groups(params, ppath, "base_momentum", d085, 0, n, s->base_mom, err)) ||
        (rc = sp_groups(params, ppath, "max_momentum", d095, 0, n, s->max_momv, err)) ||
        (rc = sp_num(params, ppath, "div_factor", 25.0, 0, &div, err)) ||
        (rc = sp_num(params, ppath, "final_div_factor", 1e4, 0, &fdiv, err)) ||
        (rc = sp_bool(params, ppath, "three_phase", 0, &three, err)))
        return rc;
    if (!(pct >= 0 && pct <= 1))
        return range_fail(err, ppath, "pct_start", "a number in [0, 1]", pct);
    if (!(div > 0))
        return range_fail(err, ppath, "div_factor", "> 0", div);
    if (!(fdiv > 0))
        return range_fail(err, ppath, "final_div_factor", "> 0", fdiv);
    if (strcmp(strat, "cos") == 0)
        s->anneal_cos = 1;
    else if (strcmp(strat, "linear") == 0)
        s->anneal_cos = 0;
    else
        return an_fail(err, an_path(p, sizeof p, ppath, "anneal_strategy"),
                       "anneal_strategy must be \"cos\" or \"linear\", got \"%s\"", strat);
    double ts = (double)s->total_steps;
    if (three) {
        s->nphases = 3;
        s->phase_end[0] = (pct * ts) - 1;
        s->phase_end[1] = (2 * pct * ts) - 2;
        s->phase_end[2] = ts - 1;
    } else {
        s->nphases = 2;
        s->phase_end[0] = (pct * ts) - 1;
        s->phase_end[1] = ts - 1;
    }
    for (int k = 1; k < s->nphases; k++)
        if (!(s->phase_end[k] > s->phase_end[k - 1]))
            return an_fail(err, an_path(p, sizeof p, ppath, "pct_start"),
                           "pct_start %.17g with total_steps %lld leaves an empty phase", pct,
                           (long long)s->total_steps);
    for (int g = 0; g < n; g++) {
        s->init_lr[g] = s->peak_lr[g] / div;
        s->final_lr[g] = s->init_lr[g] / fdiv;
    }
    return 0;
}

static int create_plateau(sched *s, const cJSON *params, const char *ppath, an_err *err)
{
    static const char *const keys[] = {"mode", "factor", "patience", "threshold",
                                       "threshold_mode", "cooldown", "min_lr", "eps", NULL};
    double zero[SCHED_MAX_GROUPS] = {0};
    const char *mode, *tmode;
    char p[256];
    int rc;
    if ((rc = sp_check_keys(params, ppath, keys, "ReduceLROnPlateau", err)) ||
        (rc = sp_str(params, ppath, "mode", "min", &mode, err)) ||
        (rc = sp_num(params, ppath, "factor", 0.1, 0, &s->factor, err)) ||
        (rc = sp_int(params, ppath, "patience", 10, 0, 0, &s->patience, err)) ||
        (rc = sp_num(params, ppath, "threshold", 1e-4, 0, &s->threshold, err)) ||
        (rc = sp_str(params, ppath, "threshold_mode", "rel", &tmode, err)) ||
        (rc = sp_int(params, ppath, "cooldown", 0, 0, 0, &s->cooldown, err)) ||
        (rc = sp_groups(params, ppath, "min_lr", zero, 0, s->ngroups, s->plateau_min_lr, err)) ||
        (rc = sp_groups_min(params, ppath, "min_lr", s->plateau_min_lr, s->ngroups, 0.0, err)) ||
        (rc = sp_num(params, ppath, "eps", 1e-8, 0, &s->eps, err)))
        return rc;
    if (!(s->factor < 1.0 && s->factor >= 0))
        return range_fail(err, ppath, "factor", "in [0, 1)", s->factor);
    if (strcmp(mode, "min") == 0)
        s->mode_max = 0;
    else if (strcmp(mode, "max") == 0)
        s->mode_max = 1;
    else
        return an_fail(err, an_path(p, sizeof p, ppath, "mode"),
                       "mode must be \"min\" or \"max\", got \"%s\"", mode);
    if (strcmp(tmode, "rel") == 0)
        s->thr_abs = 0;
    else if (strcmp(tmode, "abs") == 0)
        s->thr_abs = 1;
    else
        return an_fail(err, an_path(p, sizeof p, ppath, "threshold_mode"),
                       "threshold_mode must be \"rel\" or \"abs\", got \"%s\"", tmode);
    s->best = s->mode_max ? -INFINITY : INFINITY;
    return 0;
}

int torch_create(sched *s, const cJSON *params, const char *ppath, an_err *err,
                 cJSON *warnings)
{
    (void)warnings;
    int rc = 0;
    const char *name = "";
    for (int g = 0; g < s->ngroups; g++)
        s->base[g] = s->env.base_lr[g];
    switch (s->kind) {
    case SK_STEP: {
        static const char *const keys[] = {"step_size", "gamma", NULL};
        name = "StepLR";
        if ((rc = sp_check_keys(params, ppath, keys, name, err)) ||
            (rc = sp_int(params, ppath, "step_size", 0, 1, 1, &s->step_size, err)) ||
            (rc = sp_num(params, ppath, "gamma", 0.1, 0, &s->gamma, err)))
            return rc;
        break;
    }
    case SK_MULTISTEP: {
        static const char *const keys[] = {"milestones", "gamma", NULL};
        if ((rc = sp_check_keys(params, ppath, keys, "MultiStepLR", err)) ||
            (rc = read_milestones(s, params, ppath, err)) ||
            (rc = sp_num(params, ppath, "gamma", 0.1, 0, &s->gamma, err)))
            return rc;
        break;
    }
    case SK_EXP: {
        static const char *const keys[] = {"gamma", NULL};
        if ((rc = sp_check_keys(params, ppath, keys, "ExponentialLR", err)) ||
            (rc = sp_num(params, ppath, "gamma", 0, 1, &s->gamma, err)))
            return rc;
        break;
    }
    case SK_COSINE: {
        static const char *const keys[] = {"T_max", "eta_min", NULL};
        if ((rc = sp_check_keys(params, ppath, keys, "CosineAnnealingLR", err)) ||
            (rc = sp_int(params, ppath, "T_max", 0, 1, 1, &s->t_max, err)) ||
            (rc = sp_num(params, ppath, "eta_min", 0, 0, &s->eta_min, err)))
            return rc;
        break;
    }
    case SK_CAWR: {
        static const char *const keys[] = {"T_0", "T_mult", "eta_min", NULL};
        if ((rc = sp_check_keys(params, ppath, keys, "CosineAnnealingWarmRestarts", err)) ||
            (rc = sp_int(params, ppath, "T_0", 0, 1, 1, &s->t_0, err)) ||
            (rc = sp_int(params, ppath, "T_mult", 1, 0, 1, &s->t_mult, err)) ||
            (rc = sp_num(params, ppath, "eta_min", 0, 0, &s->eta_min, err)))
            return rc;
        break;
    }
    case SK_CYCLIC: return create_cyclic(s, params, ppath, err);
    case SK_ONECYCLELR: return create_onecyclelr(s, params, ppath, err);
    case SK_LINEAR: {
        static const char *const keys[] = {"start_factor", "end_factor", "total_iters", NULL};
        if ((rc = sp_check_keys(params, ppath, keys, "LinearLR", err)) ||
            (rc = sp_num(params, ppath, "start_factor", 1.0 / 3, 0, &s->start_factor, err)) ||
            (rc = sp_num(params, ppath, "end_factor", 1.0, 0, &s->end_factor, err)) ||
            (rc = sp_int(params, ppath, "total_iters", 5, 0, 1, &s->total_iters, err)))
            return rc;
        if (!(s->start_factor > 0 && s->start_factor <= 1))
            return range_fail(err, ppath, "start_factor", "in (0, 1]", s->start_factor);
        if (!(s->end_factor >= 0 && s->end_factor <= 1))
            return range_fail(err, ppath, "end_factor", "in [0, 1]", s->end_factor);
        break;
    }
    case SK_CONSTANT: {
        static const char *const keys[] = {"factor", "total_iters", NULL};
        if ((rc = sp_check_keys(params, ppath, keys, "ConstantLR", err)) ||
            (rc = sp_num(params, ppath, "factor", 1.0 / 3, 0, &s->factor, err)) ||
            (rc = sp_int(params, ppath, "total_iters", 5, 0, 0, &s->total_iters, err)))
            return rc;
        /* torch allows 0, but its recursive form then divides by it at total_iters. */
        if (!(s->factor > 0 && s->factor <= 1))
            return range_fail(err, ppath, "factor", "in (0, 1]", s->factor);
        break;
    }
    case SK_POLY: {
        static const char *const keys[] = {"total_iters", "power", NULL};
        if ((rc = sp_check_keys(params, ppath, keys, "PolynomialLR", err)) ||
            (rc = sp_int(params, ppath, "total_iters", 5, 0, 1, &s->total_iters, err)) ||
            (rc = sp_num(params, ppath, "power", 1.0, 0, &s->power, err)))
            return rc;
        break;
    }
    case SK_PLATEAU: return create_plateau(s, params, ppath, err);
    default: break;
    }
    return 0;
}

/* Python's a % b for b > 0. */
static int64_t pymod(int64_t a, int64_t b)
{
    int64_t r = a % b;
    return r < 0 ? r + b : r;
}

static double anneal(const sched *s, double start, double end, double pct)
{
    if (s->anneal_cos) {
        double cos_out = cos(M_PI * pct) + 1;
        return end + (start - end) / 2.0 * cos_out;
    }
    return (end - start) * pct + start;
}

static void cyclic_eval(sched *s, double *lr, double *mom)
{
    double le = (double)s->last_epoch;
    double cycle = floor(1 + le / s->total_size);
    double x = 1. + le / s->total_size - cycle;
    double scale = x <= s->step_ratio ? x / s->step_ratio : (x - 1) / (s->step_ratio - 1);
    double fn;
    switch (s->cyc_mode) {
    case CYC_TRI: fn = 1.; break;
    case CYC_TRI2: fn = 1 / pow(2., cycle - 1); break;
    default: fn = pow(s->gamma, le); break;
    }
    for (int g = 0; g < s->ngroups; g++) {
        double h = (s->max_lr[g] - s->min_lr[g]) * scale;
        lr[g] = s->min_lr[g] + h * fn;
        if (s->cycles_mom) {
            double mh = (s->max_momv[g] - s->base_mom[g]) * scale;
            mom[g] = s->max_momv[g] - mh * fn;
        }
    }
}

static void onecyclelr_eval(sched *s, double *lr, double *mom)
{
    /* torch raises past total_steps; here the value at total_steps holds. */
    int64_t step = s->last_epoch > s->total_steps ? s->total_steps : s->last_epoch;
    for (int g = 0; g < s->ngroups; g++) {
        double start = 0;
        for (int k = 0; k < s->nphases; k++) {
            double end = s->phase_end[k];
            if ((double)step <= end || k == s->nphases - 1) {
                double pct = ((double)step - start) / (end - start);
                double a, b, ma, mb;
                if (s->nphases == 3) {
                    const double *from[3] = {s->init_lr, s->peak_lr, s->init_lr};
                    const double *to[3] = {s->peak_lr, s->init_lr, s->final_lr};
                    const double *mfrom[3] = {s->max_momv, s->base_mom, s->max_momv};
                    const double *mto[3] = {s->base_mom, s->max_momv, s->max_momv};
                    a = from[k][g], b = to[k][g], ma = mfrom[k][g], mb = mto[k][g];
                } else {
                    const double *from[2] = {s->init_lr, s->peak_lr};
                    const double *to[2] = {s->peak_lr, s->final_lr};
                    const double *mfrom[2] = {s->max_momv, s->base_mom};
                    const double *mto[2] = {s->base_mom, s->max_momv};
                    a = from[k][g], b = to[k][g], ma = mfrom[k][g], mb = mto[k][g];
                }
                lr[g] = anneal(s, a, b, pct);
                if (s->cycles_mom)
                    mom[g] = anneal(s, ma, mb, pct);
                break;
            }
            start = end;
        }
    }
}

static void cawr_eval(sched *s, double *lr)
{
    for (int g = 0; g < s->ngroups; g++)
        lr[g] = s->eta_min + (s->base[g] - s->eta_min) *
                                 (1 + cos(M_PI * (double)s->t_cur / (double)s->t_i)) / 2;
}

/* The recursive get_lr of the chainable schedulers at s->last_epoch. */
static void chain_eval(sched *s, double *lr)
{
    int64_t e = s->last_epoch;
    for (int g = 0; g < s->ngroups; g++) {
        switch (s->kind) {
        case SK_STEP:
            if (e != 0 && e % s->step_size == 0)
                lr[g] = lr[g] * s->gamma;
            break;
        case SK_MULTISTEP: {
            int count = 0;
            for (int k = 0; k < s->nmilestones; k++)
                count += s->milestones[k] == e;
            if (count)
                lr[g] = lr[g] * pow(s->gamma, (double)count);
            break;
        }
        case SK_EXP:
            if (e != 0)
                lr[g] = lr[g] * s->gamma;
            break;
        case SK_COSINE: {
            double tm = (double)s->t_max;
            if (e == 0)
                break;
            if (pymod(e - 1 - s->t_max, 2 * s->t_max) == 0)
                lr[g] = lr[g] + (s->base[g] - s->eta_min) * (1 - cos(M_PI / tm)) / 2;
            else
                lr[g] = (1 + cos(M_PI * (double)e / tm)) /
                            (1 + cos(M_PI * (double)(e - 1) / tm)) * (lr[g] - s->eta_min) +
                        s->eta_min;
            break;
        }
        case SK_LINEAR:
            if (e == 0)
                lr[g] = lr[g] * s->start_factor;
            else if (e <= s->total_iters)
                lr[g] = lr[g] * (1. + (s->end_factor - s->start_factor) /
                                          ((double)s->total_iters * s->start_factor +
                                           (double)(e - 1) * (s->end_factor - s->start_factor)));
            break;
        case SK_CONSTANT:
            if (e == 0)
                lr[g] = lr[g] * s->factor;
            else if (e == s->total_iters)
                lr[g] = lr[g] * (1.0 / s->factor);
            break;
        case SK_POLY:
            if (e != 0 && e <= s->total_iters) {
                double ti = (double)s->total_iters;
                double f = pow((1.0 - (double)e / ti) / (1.0 - (double)(e - 1) / ti), s->power);
                lr[g] = lr[g] * f;
            }
            break;
        default: break;
        }
    }
}

void torch_init(sched *s, double *lr, double *mom)
{
    switch (s->kind) {
    case SK_CYCLIC:
        for (int g = 0; g < s->ngroups; g++) {
            lr[g] = s->min_lr[g];
            if (s->cycles_mom)
                mom[g] = s->max_momv[g];
        }
        break;
    case SK_ONECYCLELR:
        for (int g = 0; g < s->ngroups; g++)
            if (s->cycles_mom)
                mom[g] = s->max_momv[g];
        break;
    case SK_PLATEAU:
        s->last_epoch = 0;
        return;
    default: break;
    }
    s->last_epoch = -1;
    if (s->kind == SK_CAWR)
        s->t_cur = -1;
    torch_step(s, lr, mom, NAN);
}

static void plateau_step(sched *s, double *lr, double metric)
{
    if (isnan(metric))
        return;
    s->last_epoch += 1;
    int better;
    if (!s->mode_max && !s->thr_abs)
        better = metric < s->best * (1. - s->threshold);
    else if (!s->mode_max)
        better = metric < s->best - s->threshold;
    else if (!s->thr_abs)
        better = metric > s->best * (s->threshold + 1.);
    else
        better = metric > s->best + s->threshold;
    if (better) {
        s->best = metric;
        s->num_bad = 0;
    } else {
        s->num_bad += 1;
    }
    if (s->cooldown_counter > 0) {
        s->cooldown_counter -= 1;
        s->num_bad = 0;
    }
    if (s->num_bad > s->patience) {
        for (int g = 0; g < s->ngroups; g++) {
            double old = lr[g];
            double nl = fmax(old * s->factor, s->plateau_min_lr[g]);
            if (old - nl > s->eps)
                lr[g] = nl;
        }
        s->cooldown_counter = s->cooldown;
        s->num_bad = 0;
    }
}

void torch_step(sched *s, double *lr, double *mom, double metric)
{
    switch (s->kind) {
    case SK_PLATEAU: plateau_step(s, lr, metric); return;
    case SK_CAWR:
        if (s->last_epoch < 0) {
            s->t_i = s->t_0;
            s->t_cur = 0;
            s->last_epoch = 0;
        } else {
            s->last_epoch += 1;
            s->t_cur += 1;
            if (s->t_cur >= s->t_i) {
                s->t_cur -= s->t_i;
                /* torch's integers do not overflow; a period past INT64_MAX steps is never
                 * reached, and t_cur / t_i rounds to the same double either way. */
                s->t_i = s->t_i > INT64_MAX / s->t_mult ? INT64_MAX : s->t_i * s->t_mult;
            }
        }
        cawr_eval(s, lr);
        return;
    case SK_CYCLIC:
        s->last_epoch += 1;
        cyclic_eval(s, lr, mom);
        return;
    case SK_ONECYCLELR:
        s->last_epoch += 1;
        onecyclelr_eval(s, lr, mom);
        return;
    default:
        s->last_epoch += 1;
        chain_eval(s, lr);
        return;
    }
}

void torch_step_zero(sched *s, double *lr, double *mom)
{
    s->last_epoch = 0;
    switch (s->kind) {
    case SK_CAWR:
        s->t_i = s->t_0;
        s->t_cur = 0;
        cawr_eval(s, lr);
        return;
    case SK_CYCLIC: cyclic_eval(s, lr, mom); return;
    case SK_ONECYCLELR: onecyclelr_eval(s, lr, mom); return;
    default: break;
    }
    /* The closed forms at epoch 0, term by term as torch writes them. */
    for (int g = 0; g < s->ngroups; g++) {
        double b = s->base[g];
        switch (s->kind) {
        case SK_STEP:
        case SK_EXP: lr[g] = b * pow(s->gamma, 0.0); break;
        case SK_MULTISTEP: {
            int passed = 0; /* bisect_right(milestones, 0) */
            for (int k = 0; k < s->nmilestones; k++)
                passed += s->milestones[k] <= 0;
            lr[g] = b * pow(s->gamma, (double)passed);
            break;
        }
        case SK_COSINE: lr[g] = s->eta_min + (b - s->eta_min) * (1 + cos(0.0)) / 2; break;
        case SK_LINEAR:
            lr[g] = b * (s->start_factor + (s->end_factor - s->start_factor) * 0.0 /
                                               (double)s->total_iters);
            break;
        case SK_CONSTANT:
            lr[g] = b * (s->factor + (s->total_iters <= 0 ? 1.0 : 0.0) * (1 - s->factor));
            break;
        case SK_POLY: lr[g] = b * pow(1.0 - 0.0 / (double)s->total_iters, s->power); break;
        default: break;
        }
    }
}
