/* optim_cfg — the optimizer block of ds_config: names, case rules, defaults, validation
 * (DEEPSPEED.md §2 and §4), and the groups' hyper-parameters a scheduler sets each step. The
 * kernels that use them live in optim.c. */
#include "core/optim.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/sched_param.h"

const char *optim_type_name(int type)
{
    switch (type) {
    case OPTIM_ADAM: return "Adam";
    case OPTIM_ADAMW: return "AdamW";
    case OPTIM_LAMB: return "Lamb";
    case OPTIM_LION: return "Lion";
    case OPTIM_ADAGRAD: return "Adagrad";
    case OPTIM_SGD: return "SGD";
    case OPTIM_RMSPROP: return "RMSprop";
    default: return "unknown";
    }
}

int optim_has_betas(const optim_cfg *cfg)
{
    return cfg->type == OPTIM_ADAM || cfg->type == OPTIM_ADAMW || cfg->type == OPTIM_LAMB ||
           cfg->type == OPTIM_LION;
}

int optim_has_momentum(const optim_cfg *cfg)
{
    return cfg->type == OPTIM_SGD || cfg->type == OPTIM_RMSPROP;
}

static void warn(cJSON *warnings, const char *msg)
{
    if (warnings)
        cJSON_AddItemToArray(warnings, cJSON_CreateString(msg));
}

/* The type: DeepSpeed's own names case-insensitively, torch's case-sensitively. */
static int parse_type(const cJSON *t, const char *tpath, an_err *err)
{
    static const struct { const char *name; int type; } ds[] = {
        {"adam", OPTIM_ADAM}, {"adamw", OPTIM_ADAMW}, {"lamb", OPTIM_LAMB},
        {"lion", OPTIM_LION}, {"adagrad", OPTIM_ADAGRAD},
    };
    if (!t)
        return an_fail(err, tpath, "type is required (Adam, AdamW, Lamb, Lion, Adagrad, SGD or "
                       "RMSprop)");
    if (!cJSON_IsString(t) || !t->valuestring)
        return an_fail(err, tpath, "type must be a string, got %s", sp_kind(t));
    const char *s = t->valuestring;
    for (size_t k = 0; k < sizeof ds / sizeof ds[0]; k++)
        if (strcasecmp(s, ds[k].name) == 0)
            return ds[k].type;
    if (strcasecmp(s, "onebitadam") == 0 || strcasecmp(s, "zerooneadam") == 0)
        return an_fail(err, tpath, "%s compresses communication between machines and anneald "
                       "trains on one; use \"Adam\"", s);
    if (strcasecmp(s, "onebitlamb") == 0)
        return an_fail(err, tpath, "%s compresses communication between machines and anneald "
                       "trains on one; use \"Lamb\"", s);
    if (strcasecmp(s, "muadam") == 0 || strcasecmp(s, "muadamw") == 0 ||
        strcasecmp(s, "musgd") == 0 || strcasecmp(s, "muon") == 0)
        return an_fail(err, tpath, "optimizer \"%s\" is not offered; use Adam, AdamW, Lamb, "
                       "Lion, Adagrad, SGD or RMSprop", s);
    if (strcmp(s, "SGD") == 0)
        return OPTIM_SGD;
    if (strcmp(s, "RMSprop") == 0)
        return OPTIM_RMSPROP;
    if (strcasecmp(s, "sgd") == 0 || strcasecmp(s, "rmsprop") == 0)
        return an_fail(err, tpath, "PyTorch optimizer names are case-sensitive: write \"%s\", "
                       "got \"%s\"", strcasecmp(s, "sgd") == 0 ? "SGD" : "RMSprop", s);
    return an_fail(err, tpath, "unknown optimizer type \"%s\"; expected Adam, AdamW, Lamb, Lion, "
                   "Adagrad, SGD or RMSprop", s);
}

static int read_betas(const cJSON *params, const char *ppath, optim_cfg *out, an_err *err)
{
    char p[256], pi[300];
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(params, "betas");
    an_path(p, sizeof p, ppath, "betas");
    if (!b)
        return 0;
    if (sp_is_auto(params, "betas"))
        return an_fail(err, p, "\"auto\" cannot be worked out for betas; give two numbers, "
                       "e.g. [0.9, 0.999]");
    if (!cJSON_IsArray(b) || cJSON_GetArraySize(b) != 2)
        return an_fail(err, p, "betas must be a list of two numbers, got %s%s", sp_kind(b),
                       cJSON_IsArray(b) ? " of another length" : "");
    double v[2];
    for (int k = 0; k < 2; k++) {
        const cJSON *x = cJSON_GetArrayItem(b, k);
        an_path_index(pi, sizeof pi, p, k);
        if (!cJSON_IsNumber(x))
            return an_fail(err, pi, "betas must be numbers, got %s", sp_kind(x));
        if (!(x->valuedouble >= 0 && x->valuedouble < 1))
            return an_fail(err, pi, "each beta must be in [0, 1), got %.17g", x->valuedouble);
        v[k] = x->valuedouble;
    }
    out->beta1 = v[0];
    out->beta2 = v[1];
    return 0;
}

static int nonneg(const cJSON *params, const char *ppath, const char *key, double def,
                  int required, double *out, an_err *err)
{
    char p[256];
    int rc = sp_num(params, ppath, key, def, required, out, err);
    if (rc)
        return rc;
    if (!(*out >= 0))
        return an_fail(err, an_path(p, sizeof p, ppath, key), "%s must be >= 0, got %.17g", key,
                       *out);
    return 0;
}

int optim_parse(const cJSON *block, const char *path, optim_cfg *out, an_err *err,
                cJSON *warnings)
{
    char tp[256], pp[256], p[256];
    int rc;
    static const char *const bkeys[] = {"type", "params", NULL};
    memset(out, 0, sizeof *out);
    if (!cJSON_IsObject(block))
        return an_fail(err, path, "optimizer must be an object {\"type\": …, \"params\": {…}}, "
                       "got %s", sp_kind(block));
    if ((rc = sp_check_keys(block, path, bkeys, "the optimizer block", err)))
        return rc;
    int type = parse_type(cJSON_GetObjectItemCaseSensitive(block, "type"),
                          an_path(tp, sizeof tp, path, "type"), err);
    if (type < 0)
        return type;
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(block, "params");
    an_path(pp, sizeof pp, path, "params");
    cJSON *empty = NULL;
    if (!params) {
        params = empty = cJSON_CreateObject();
        if (!empty)
            return an_failc(err, -ENOMEM, pp, "out of memory");
    } else if (!cJSON_IsObject(params)) {
        return an_fail(err, pp, "params must be an object, got %s", sp_kind(params));
    }
    if (cJSON_GetObjectItemCaseSensitive(params, "max_grad_norm")) {
        cJSON_Delete(empty);
        return an_fail(err, an_path(p, sizeof p, pp, "max_grad_norm"),
                       "max_grad_norm is not an optimizer parameter; use gradient_clipping at "
                       "the top of ds_config");
    }

    out->type = type;
    out->beta1 = 0.9;
    out->beta2 = 0.999;
    out->eps = 1e-8;
    out->bias_correction = 1;
    out->adam_w_mode = 1;
    out->max_coeff = 10.0;
    out->min_coeff = 0.01;
    out->alpha = 0.99;

    static const char *const k_adam[] = {"lr", "betas", "eps", "weight_decay", "bias_correction",
                                         "adam_w_mode", "torch_adam", "amsgrad", NULL};
    static const char *const k_lamb[] = {"lr", "betas", "eps", "weight_decay", "bias_correction",
                                         "eps_inside_sqrt", "max_coeff", "min_coeff", NULL};
    static const char *const k_lion[] = {"lr", "betas", "weight_decay", NULL};
    static const char *const k_adagrad[] = {"lr", "lr_decay", "weight_decay",
                                            "initial_accumulator_value", "eps", NULL};
    static const char *const k_sgd[] = {"lr", "momentum", "dampening", "weight_decay",
                                        "nesterov", NULL};
    static const char *const k_rms[] = {"lr", "alpha", "eps", "weight_decay", "momentum",
                                        "centered", NULL};
    const char *const *keys = k_adam;
    double lr_def = 1e-3;
    switch (type) {
    case OPTIM_LAMB: keys = k_lamb; break;
    case OPTIM_LION: keys = k_lion; break;
    case OPTIM_ADAGRAD: keys = k_adagrad, lr_def = 1e-2, out->eps = 1e-10; break;
    case OPTIM_SGD: keys = k_sgd; break;
    case OPTIM_RMSPROP: keys = k_rms, lr_def = 1e-2; break;
    default: break;
    }
    rc = sp_check_keys(params, pp, keys, optim_type_name(type), err);
    if (!rc)
        rc = nonneg(params, pp, "lr", lr_def, type == OPTIM_SGD, &out->lr, err);
    if (!rc && out->lr > OPTIM_MAX_LR)
        rc = an_fail(err, an_path(p, sizeof p, pp, "lr"),
                     "lr must be at most %.17g (the largest float32: a larger lr turns the first "
                     "weight update into infinity), got %.17g", OPTIM_MAX_LR, out->lr);
    if (!rc && optim_has_betas(out))
        rc = read_betas(params, pp, out, err);
    if (!rc && type != OPTIM_LION && type != OPTIM_SGD)
        rc = nonneg(params, pp, "eps", out->eps, 0, &out->eps, err);
    if (rc)
        goto done;

    switch (type) {
    case OPTIM_ADAM:
    case OPTIM_ADAMW: {
        int wmode;
        if ((rc = sp_bool(params, pp, "torch_adam", 0, &out->torch_adam, err)) ||
            (rc = sp_bool(params, pp, "adam_w_mode", 1, &wmode, err)) ||
            (rc = sp_bool(params, pp, "bias_correction", 1, &out->bias_correction, err)) ||
            (rc = sp_bool(params, pp, "amsgrad", 0, &out->amsgrad, err)))
            goto done;
        if (type == OPTIM_ADAMW && !wmode)
            warn(warnings, "ds_config.optimizer.params.adam_w_mode: AdamW always decays "
                 "decoupled; false is ignored");
        out->adam_w_mode = type == OPTIM_ADAMW ? 1 : wmode;
        if (out->amsgrad && !out->torch_adam) {
            rc = an_fail(err, an_path(p, sizeof p, pp, "amsgrad"),
                         "amsgrad needs \"torch_adam\": true (DeepSpeed's fused Adam refuses it)");
            goto done;
        }
        /* torch's AdamW (what torch_adam gives unless adam_w_mode is false) decays by 0.01. */
        double wd_def = out->torch_adam && out->adam_w_mode ? 0.01 : 0.0;
        rc = nonneg(params, pp, "weight_decay", wd_def, 0, &out->weight_decay, err);
        break;
    }
    case OPTIM_LAMB:
        if ((rc = sp_bool(params, pp, "bias_correction", 1, &out->bias_correction, err)) ||
            (rc = sp_bool(params, pp, "eps_inside_sqrt", 0, &out->eps_inside_sqrt, err)) ||
            (rc = nonneg(params, pp, "weight_decay", 0, 0, &out->weight_decay, err)) ||
            (rc = nonneg(params, pp, "max_coeff", 10.0, 0, &out->max_coeff, err)) ||
            (rc = nonneg(params, pp, "min_coeff", 0.01, 0, &out->min_coeff, err)))
            goto done;
        if (out->min_coeff > out->max_coeff)
            rc = an_fail(err, an_path(p, sizeof p, pp, "min_coeff"),
                         "min_coeff %.17g is above max_coeff %.17g", out->min_coeff,
                         out->max_coeff);
        break;
    case OPTIM_LION:
        rc = nonneg(params, pp, "weight_decay", 0, 0, &out->weight_decay, err);
        break;
    case OPTIM_ADAGRAD:
        if ((rc = nonneg(params, pp, "lr_decay", 0, 0, &out->lr_decay, err)) ||
            (rc = nonneg(params, pp, "weight_decay", 0, 0, &out->weight_decay, err)) ||
            (rc = nonneg(params, pp, "initial_accumulator_value", 0, 0,
                         &out->initial_accumulator_value, err)))
            goto done;
        break;
    case OPTIM_SGD:
        out->eps = 0;
        if ((rc = nonneg(params, pp, "momentum", 0, 0, &out->momentum, err)) ||
            (rc = nonneg(params, pp, "dampening", 0, 0, &out->dampening, err)) ||
            (rc = nonneg(params, pp, "weight_decay", 0, 0, &out->weight_decay, err)) ||
            (rc = sp_bool(params, pp, "nesterov", 0, &out->nesterov, err)))
            goto done;
        if (out->nesterov && (out->momentum <= 0 || out->dampening != 0))
            rc = an_fail(err, an_path(p, sizeof p, pp, "nesterov"),
                         "nesterov needs momentum > 0 and dampening 0 (got momentum %.17g, "
                         "dampening %.17g)", out->momentum, out->dampening);
        break;
    case OPTIM_RMSPROP:
        if ((rc = nonneg(params, pp, "alpha", 0.99, 0, &out->alpha, err)) ||
            (rc = nonneg(params, pp, "weight_decay", 0, 0, &out->weight_decay, err)) ||
            (rc = nonneg(params, pp, "momentum", 0, 0, &out->momentum, err)) ||
            (rc = sp_bool(params, pp, "centered", 0, &out->centered, err)))
            goto done;
        break;
    default: break;
    }
    if (!rc && (type == OPTIM_ADAGRAD || type == OPTIM_LION || type == OPTIM_SGD ||
                type == OPTIM_RMSPROP)) {
        /* No betas: leave them at 0 so nothing mistakes them for live values. */
        if (!optim_has_betas(out))
            out->beta1 = out->beta2 = 0;
    }
done:
    cJSON_Delete(empty);
    return rc;
}

void optim_set_sched(optim *o, const double *lr, const double *mom, const double *beta2,
                     int has_betas)
{
    for (int g = 0; g < o->ngroups; g++) {
        optim_group *og = &o->groups[g];
        og->lr = lr[g];
        if (mom) {
            if (has_betas)
                og->beta1 = mom[g];
            else
                og->momentum = mom[g];
        }
        if (beta2)
            og->beta2 = beta2[g];
    }
}
