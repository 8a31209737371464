/* config_metrics — "metrics": {"max_bytes": B, "full_resolution_steps": N} of a job spec. */
#include "core/config_metrics.h"

#include "core/cfgval.h"

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
