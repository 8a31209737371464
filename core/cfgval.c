/* cfgval — typed, range-checked JSON values with JSON-path errors. */
#include "core/cfgval.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/jsonnum.h"

const char *cfg_describe(const cJSON *v, char *buf, size_t size)
{
    if (!v)
        snprintf(buf, size, "nothing");
    else if (cJSON_IsString(v)) {
        const char *s = v->valuestring;
        if (strlen(s) > 40) {
            int cut = 40; /* back to the start of a UTF-8 sequence: never half a character */
            while (cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80)
                cut--;
            snprintf(buf, size, "\"%.*s…\"", cut, s);
        } else
            snprintf(buf, size, "\"%s\"", s);
    } else if (cJSON_IsNumber(v))
        json_number_text(buf, size, v->valuedouble, 0); /* 0.05, not 0.050000000000000003 */
    else if (cJSON_IsTrue(v))
        snprintf(buf, size, "true");
    else if (cJSON_IsFalse(v))
        snprintf(buf, size, "false");
    else if (cJSON_IsNull(v))
        snprintf(buf, size, "null");
    else if (cJSON_IsArray(v))
        snprintf(buf, size, "an array of %d", cJSON_GetArraySize(v));
    else if (cJSON_IsObject(v))
        snprintf(buf, size, "an object");
    else
        snprintf(buf, size, "an unreadable value");
    return buf;
}

int cfg_edit_distance(const char *a, const char *b)
{
    /* Optimal string alignment over short keys; longer inputs are simply "far". */
    enum { N = 48 };
    size_t la = strlen(a), lb = strlen(b);
    if (la >= N || lb >= N)
        return 1000;
    int d[N][N];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            int cost = a[i - 1] != b[j - 1];
            int best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < best)
                best = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

int cfg_want_object(const cJSON *v, const char *path, an_err *err)
{
    char got[80];
    if (!cJSON_IsObject(v))
        return an_fail(err, path, "%s must be an object, got %s", path,
                       cfg_describe(v, got, sizeof got));
    return 0;
}

int cfg_check_keys(const cJSON *obj, const char *path, const char *const *allowed, an_err *err)
{
    char p[CFG_PATH];
    int rc = cfg_want_object(obj, path, err);
    if (rc)
        return rc;
    for (const cJSON *c = obj->child; c; c = c->next) {
        an_path(p, sizeof p, path, c->string);
        for (const cJSON *e = obj->child; e != c; e = e->next)
            if (strcmp(e->string, c->string) == 0)
                return an_fail(err, p, "duplicate key '%s'%s%s: give each key once", c->string,
                               path[0] ? " in " : "", path);
        int known = 0;
        const char *near = NULL;
        int near_d = 3; /* suggest only within two edits */
        for (const char *const *k = allowed; *k; k++) {
            if (strcmp(*k, c->string) == 0) {
                known = 1;
                break;
            }
            int dist = cfg_edit_distance(*k, c->string);
            if (dist < near_d && (size_t)dist < strlen(*k)) {
                near_d = dist;
                near = *k;
            }
        }
        if (known)
            continue;
        if (near)
            return an_fail(err, p, "unknown key '%s'%s%s (did you mean '%s'?)", c->string,
                           path[0] ? " in " : "", path, near);
        char list[400];
        size_t n = 0;
        list[0] = '\0';
        for (const char *const *k = allowed; *k && n < sizeof list; k++)
            n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", k == allowed ? "" : ", ", *k);
        return an_fail(err, p, "unknown key '%s'%s%s (expected one of: %s)", c->string,
                       path[0] ? " in " : "", path, list);
    }
    return 0;
}

const cJSON *cfg_get(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

int cfg_require(const cJSON *obj, const char *path, const char *key, an_err *err)
{
    char p[CFG_PATH];
    if (cfg_get(obj, key))
        return 0;
    an_path(p, sizeof p, path, key);
    return an_fail(err, p, "%s is required", p);
}

static int is_auto(const cJSON *v)
{
    return cJSON_IsString(v) && strcmp(v->valuestring, "auto") == 0;
}

int cfg_int_value(const cJSON *v, const char *path, int64_t lo, int64_t hi, int64_t *out,
                  an_err *err)
{
    char got[80];
    if (is_auto(v))
        return an_fail(err, path,
                       "%s is \"auto\", which cannot be worked out here: give an integer from "
                       "%lld to %lld",
                       path, (long long)lo, (long long)hi);
    if (!cJSON_IsNumber(v))
        return an_fail(err, path, "%s must be an integer from %lld to %lld, got %s", path,
                       (long long)lo, (long long)hi, cfg_describe(v, got, sizeof got));
    double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d))
        return an_fail(err, path, "%s must be an integer from %lld to %lld, got %s", path,
                       (long long)lo, (long long)hi, cfg_describe(v, got, sizeof got));
    if (d < (double)lo || d > (double)hi)
        return an_fail(err, path, "%s must be an integer from %lld to %lld, got %s", path,
                       (long long)lo, (long long)hi, cfg_describe(v, got, sizeof got));
    *out = (int64_t)d;
    return 0;
}

int cfg_int(const cJSON *obj, const char *path, const char *key, int64_t def, int64_t lo,
            int64_t hi, int64_t *out, an_err *err)
{
    char p[CFG_PATH];
    const cJSON *v = cfg_get(obj, key);
    if (!v) {
        *out = def;
        return 0;
    }
    return cfg_int_value(v, an_path(p, sizeof p, path, key), lo, hi, out, err);
}

static const char *range_text(char *buf, size_t size, double lo, double hi, int ends)
{
    char l[40], h[40];
    if (isinf(lo))
        snprintf(l, sizeof l, "-inf");
    else
        snprintf(l, sizeof l, "%g", lo);
    if (isinf(hi))
        snprintf(h, sizeof h, "inf");
    else
        snprintf(h, sizeof h, "%g", hi);
    snprintf(buf, size, "%c%s, %s%c", (ends & CFG_LO_OPEN) ? '(' : '[', l, h,
             (ends & CFG_HI_OPEN) || isinf(hi) ? ')' : ']');
    return buf;
}

int cfg_num_value(const cJSON *v, const char *path, double lo, double hi, int ends,
                  double *out, an_err *err)
{
    char got[80], range[100];
    range_text(range, sizeof range, lo, hi, ends);
    if (is_auto(v))
        return an_fail(err, path,
                       "%s is \"auto\", which cannot be worked out here: give a number in %s",
                       path, range);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return an_fail(err, path, "%s must be a number in %s, got %s", path, range,
                       cfg_describe(v, got, sizeof got));
    double d = v->valuedouble;
    int below = (ends & CFG_LO_OPEN) ? d <= lo : d < lo;
    int above = (ends & CFG_HI_OPEN) ? d >= hi : d > hi;
    if (below || above)
        return an_fail(err, path, "%s must be a number in %s, got %s", path, range,
                       cfg_describe(v, got, sizeof got));
    *out = d;
    return 0;
}

int cfg_is_float32(const cJSON *v)
{
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) && fabs(v->valuedouble) <= FLT_MAX;
}

int cfg_float_value(const cJSON *v, const char *path, an_err *err)
{
    char got[80];
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return an_fail(err, path, "%s must be a finite number, got %s", path,
                       cfg_describe(v, got, sizeof got));
    if (!cfg_is_float32(v))
        return an_fail(err, path, "%s must be a finite number within float32 range (magnitude "
                       "at most %.9g), got %s", path, (double)FLT_MAX,
                       cfg_describe(v, got, sizeof got));
    return 0;
}

int cfg_num(const cJSON *obj, const char *path, const char *key, double def, double lo,
            double hi, int ends, double *out, an_err *err)
{
    char p[CFG_PATH];
    const cJSON *v = cfg_get(obj, key);
    if (!v) {
        *out = def;
        return 0;
    }
    return cfg_num_value(v, an_path(p, sizeof p, path, key), lo, hi, ends, out, err);
}

int cfg_bool(const cJSON *obj, const char *path, const char *key, int def, int *out,
             an_err *err)
{
    char p[CFG_PATH], got[80];
    const cJSON *v = cfg_get(obj, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsBool(v)) {
        an_path(p, sizeof p, path, key);
        return an_fail(err, p, "%s must be true or false, got %s", p,
                       cfg_describe(v, got, sizeof got));
    }
    *out = cJSON_IsTrue(v);
    return 0;
}

int cfg_str(const cJSON *obj, const char *path, const char *key, const char *def, char *buf,
            size_t size, an_err *err)
{
    char p[CFG_PATH], got[80];
    const cJSON *v = cfg_get(obj, key);
    an_path(p, sizeof p, path, key);
    if (!v) {
        if (!def)
            return an_fail(err, p, "%s is required", p);
        snprintf(buf, size, "%s", def);
        return 0;
    }
    if (!cJSON_IsString(v))
        return an_fail(err, p, "%s must be a string, got %s", p, cfg_describe(v, got, sizeof got));
    size_t n = strlen(v->valuestring);
    if (n == 0 || n >= size) {
        /* The limit is the buffer's, in bytes of UTF-8: a string outside ASCII reaches it with
         * fewer characters, so the message gives both counts where they differ. */
        size_t chars = 0;
        for (size_t i = 0; i < n; i++)
            chars += ((unsigned char)v->valuestring[i] & 0xc0) != 0x80;
        if (chars != n)
            return an_fail(err, p, "%s must be 1 to %zu bytes long, got %zu bytes (%zu characters)",
                           p, size - 1, n, chars);
        return an_fail(err, p, "%s must be 1 to %zu bytes long, got %zu", p, size - 1, n);
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v->valuestring[i] < 0x20 || v->valuestring[i] == 0x7f)
            return an_fail(err, p, "%s must not contain control characters (byte %zu is 0x%02x)",
                           p, i, (unsigned)(unsigned char)v->valuestring[i]);
    memcpy(buf, v->valuestring, n + 1);
    return 0;
}

int cfg_enum(const cJSON *obj, const char *path, const char *key, const char *const *names,
             int def, int *out, an_err *err)
{
    char p[CFG_PATH], got[80], list[300];
    const cJSON *v = cfg_get(obj, key);
    an_path(p, sizeof p, path, key);
    if (!v) {
        if (def < 0)
            return an_fail(err, p, "%s is required", p);
        *out = def;
        return 0;
    }
    size_t n = 0;
    list[0] = '\0';
    for (int i = 0; names[i] && n < sizeof list; i++)
        n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", names[i]);
    if (cJSON_IsString(v))
        for (int i = 0; names[i]; i++)
            if (strcmp(names[i], v->valuestring) == 0) {
                *out = i;
                return 0;
            }
    return an_fail(err, p, "%s must be one of %s, got %s", p, list,
                   cfg_describe(v, got, sizeof got));
}

int cfg_warn(cJSON *warnings, an_err *err, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *s = cJSON_CreateString(msg);
    if (!s || !cJSON_AddItemToArray(warnings, s)) {
        cJSON_Delete(s);
        return an_failc(err, -ENOMEM, "", "out of memory");
    }
    return 0;
}
