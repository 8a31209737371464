/* config_metrics — "metrics": {"max_bytes": B, "full_resolution_steps": N} of a job spec. */
#include "core/config_metrics.h"

#include <stdarg.h>
#include <stdio.h>

#include "core/cfgval.h"
#include "core/config.h"
#include "core/sched.h"

int cfg_metrics_parse(const cJSON *j, int64_t *out, int64_t *full_res, an_err *err)
{
    char got[80];
    *out = 0;
    *full_res = 0;
    const cJSON *m = cfg_get(j, "metrics");
    if (!m)
        return 0;
    if (!cJSON_IsObject(m))
        return an_fail(err, "metrics", "metrics must be an object such as {\"max_bytes\": "
                       "100000000}, got %s", cfg_describe(m, got, sizeof got));
    /* a misspelt key would otherwise leave the bound off without a word */
    static const char *const keys[] = {"max_bytes", "full_resolution_steps", NULL};
    int rc = cfg_check_keys(m, "metrics", keys, err);
    /* The smallest useful cap holds one row of one group. */
    if (!rc && cfg_get(m, "max_bytes"))
        rc = cfg_int(m, "metrics", "max_bytes", 0, METRICS_ROW_BYTES(1), METRICS_MAX_BYTES_MAX,
                     out, err);
    if (!rc && cfg_get(m, "full_resolution_steps"))
        rc = cfg_int(m, "metrics", "full_resolution_steps", 0, 1, METRICS_FULL_RES_MAX,
                     full_res, err);
    return rc;
}

cJSON *cfg_metrics_json(int64_t max_bytes, int64_t full_res)
{
    if (max_bytes <= 0 && full_res <= 0)
        return NULL;
    cJSON *o = cJSON_CreateObject();
    int ok = o != NULL;
    if (ok && max_bytes > 0)
        ok = cJSON_AddNumberToObject(o, "max_bytes", (double)max_bytes) != NULL;
    if (ok && full_res > 0)
        ok = cJSON_AddNumberToObject(o, "full_resolution_steps", (double)full_res) != NULL;
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

int64_t cfg_metrics_row_limit(int64_t max_bytes, int groups)
{
    return max_bytes > 0 ? max_bytes / METRICS_ROW_BYTES(groups) : 0;
}

/* snprintf after the *n bytes written so far; *n grows as one snprintf of the whole would. */
static void append(char *buf, size_t size, int *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void append(char *buf, size_t size, int *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t at = (size_t)*n;
    int k = vsnprintf(at < size ? buf + at : NULL, at < size ? size - at : 0, fmt, ap);
    va_end(ap);
    *n += k > 0 ? k : 0;
}

int job_spec_metrics_header(const job_spec *s, int with_time, char *buf, size_t size)
{
    sched_env env;
    job_spec_sched_env(s, job_spec_data_samples(s), &env);
    int n = 0;
    append(buf, size, &n, "step,loss");
    for (int g = 0; g < env.ngroups; g++)
        append(buf, size, &n, ",lr%d", g);
    int validates = s->val_fraction > 0 || s->val_split_test;
    append(buf, size, &n, ",grad_norm%s%s%s\n", with_time ? ",time" : "",
           validates ? ",val_loss,val_acc" : "", s->fp16 ? ",loss_scale,skipped" : "");
    return n;
}
