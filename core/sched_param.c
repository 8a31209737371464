/* sched_param — reading scheduler params out of JSON with DeepSpeed's rules. */
#include "core/sched_param.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

const char *sp_kind(const cJSON *v)
{
    if (!v)
        return "nothing";
    if (cJSON_IsTrue(v))
        return "true";
    if (cJSON_IsFalse(v))
        return "false";
    if (cJSON_IsNull(v))
        return "null";
    if (cJSON_IsNumber(v))
        return "a number";
    if (cJSON_IsString(v))
        return "a string";
    if (cJSON_IsArray(v))
        return "a list";
    if (cJSON_IsObject(v))
        return "an object";
    return "an unknown value";
}

int sp_check_keys(const cJSON *params, const char *path, const char *const *allowed,
                  const char *type, an_err *err)
{
    char p[256];
    const cJSON *it;
    cJSON_ArrayForEach(it, params) {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            if (it->string && strcmp(it->string, *a) == 0)
                ok = 1;
        if (!ok) {
            char list[200] = "";
            size_t n = 0;
            for (const char *const *a = allowed; *a && n < sizeof list - 40; a++)
                n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", n ? ", " : "", *a);
            return an_fail(err, an_path(p, sizeof p, path, it->string ? it->string : "?"),
                           "%s has no parameter \"%s\"; expected one of: %s", type,
                           it->string ? it->string : "?", n ? list : "(none)");
        }
    }
    return 0;
}

int sp_is_auto(const cJSON *params, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, key);
    return cJSON_IsString(v) && v->valuestring && strcasecmp(v->valuestring, "auto") == 0;
}

static int fail_auto(an_err *err, const char *p, const char *key)
{
    /* The number to give, named as the Hugging Face Trainer (which fills "auto") names it. */
    static const struct { const char *key, *hint; } hints[] = {
        {"lr", "the learning rate, e.g. 0.001 (the Trainer's learning_rate)"},
        {"eps", "e.g. 1e-8 (the Trainer's adam_epsilon)"},
        {"weight_decay", "e.g. 0 (the Trainer's weight_decay)"},
        {"warmup_num_steps", "the warmup length in optimizer steps (the Trainer's warmup_steps)"},
        {"momentum", "e.g. 0.9"},
    };
    for (size_t k = 0; k < sizeof hints / sizeof hints[0]; k++)
        if (strcmp(hints[k].key, key) == 0)
            return an_fail(err, p, "\"auto\" cannot be worked out for %s; give a number: %s",
                           key, hints[k].hint);
    return an_fail(err, p, "\"auto\" cannot be worked out for %s; give a number", key);
}

static int read_number(const cJSON *v, const char *p, const char *key, double *out, an_err *err)
{
    if (cJSON_IsString(v) && v->valuestring && strcasecmp(v->valuestring, "auto") == 0)
        return fail_auto(err, p, key);
    if (!cJSON_IsNumber(v))
        return an_fail(err, p, "%s must be a number, got %s", key, sp_kind(v));
    if (!isfinite(v->valuedouble))
        return an_fail(err, p, "%s must be finite", key);
    *out = v->valuedouble;
    return 0;
}

int sp_num(const cJSON *params, const char *path, const char *key, double def, int required,
           double *out, an_err *err)
{
    char p[256];
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, key);
    an_path(p, sizeof p, path, key);
    if (!v) {
        if (required)
            return an_fail(err, p, "%s is required", key);
        *out = def;
        return 0;
    }
    return read_number(v, p, key, out, err);
}

int sp_int(const cJSON *params, const char *path, const char *key, int64_t def, int required,
           int64_t min, int64_t *out, an_err *err)
{
    char p[256];
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, key);
    an_path(p, sizeof p, path, key);
    if (!v) {
        if (required)
            return an_fail(err, p, "%s is required", key);
        *out = def;
        return 0;
    }
    int64_t x;
    if (cJSON_IsBool(v)) {
        x = cJSON_IsTrue(v) ? 1 : 0;
    } else if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (!isfinite(d) || d != floor(d))
            return an_fail(err, p, "%s must be an integer, got %.17g", key, d);
        if (d > 9.0e15 || d < -9.0e15)
            return an_fail(err, p, "%s must be at most 9e15 in size, got %.17g", key, d);
        x = (int64_t)d;
    } else if (cJSON_IsString(v) && v->valuestring &&
               strcasecmp(v->valuestring, "auto") == 0) {
        return fail_auto(err, p, key);
    } else {
        return an_fail(err, p, "%s must be an integer, got %s", key, sp_kind(v));
    }
    if (x < min) {
        if (min == 1)
            return an_fail(err, p, "%s must be a positive integer, got %lld", key, (long long)x);
        return an_fail(err, p, "%s must be an integer >= %lld, got %lld", key, (long long)min,
                       (long long)x);
    }
    *out = x;
    return 0;
}

int sp_bool(const cJSON *params, const char *path, const char *key, int def, int *out,
            an_err *err)
{
    char p[256];
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsBool(v))
        return an_fail(err, an_path(p, sizeof p, path, key), "%s must be true or false, got %s",
                       key, sp_kind(v));
    *out = cJSON_IsTrue(v);
    return 0;
}

int sp_str(const cJSON *params, const char *path, const char *key, const char *def,
           const char **out, an_err *err)
{
    char p[256];
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsString(v) || !v->valuestring)
        return an_fail(err, an_path(p, sizeof p, path, key), "%s must be a string, got %s", key,
                       sp_kind(v));
    *out = v->valuestring;
    return 0;
}

int sp_groups(const cJSON *params, const char *path, const char *key, const double *def,
              int required, int ngroups, double *out, an_err *err)
{
    char p[256], pi[300];
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, key);
    an_path(p, sizeof p, path, key);
    if (!v) {
        if (required || !def)
            return an_fail(err, p, "%s is required", key);
        for (int g = 0; g < ngroups; g++)
            out[g] = def[g];
        return 0;
    }
    if (cJSON_IsArray(v)) {
        int n = cJSON_GetArraySize(v);
        if (n != ngroups)
            return an_fail(err, p, "%s must have one entry per param group (%d), got %d", key,
                           ngroups, n);
        int g = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, v) {
            int rc = read_number(it, an_path_index(pi, sizeof pi, p, g), key, &out[g], err);
            if (rc)
                return rc;
            g++;
        }
        return 0;
    }
    double x;
    int rc = read_number(v, p, key, &x, err);
    if (rc) {
        if (!cJSON_IsString(v))
            an_fail(err, p, "%s must be a number or a list of %d numbers (one per param group), "
                    "got %s", key, ngroups, sp_kind(v));
        return rc;
    }
    for (int g = 0; g < ngroups; g++)
        out[g] = x;
    return 0;
}

int sp_groups_min(const cJSON *params, const char *path, const char *key, const double *v,
                  int ngroups, double min, an_err *err)
{
    char p[256], pi[300];
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(params, key);
    an_path(p, sizeof p, path, key);
    for (int g = 0; g < ngroups; g++)
        if (!(v[g] >= min)) {
            const char *where = cJSON_IsArray(j) ? an_path_index(pi, sizeof pi, p, g) : p;
            return an_fail(err, where, "%s must be >= %g, got %.17g", key, min, v[g]);
        }
    return 0;
}
