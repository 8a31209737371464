/* config_metrics — "metrics": {"max_bytes": B} of a job spec. */
#include "core/config_metrics.h"

#include "core/cfgval.h"

int cfg_metrics_max_bytes(const cJSON *j, int64_t *out, an_err *err)
{
    char got[80];
    *out = 0;
    const cJSON *m = cfg_get(j, "metrics");
    if (!m)
        return 0;
    if (!cJSON_IsObject(m))
        return an_fail(err, "metrics", "metrics must be an object such as {\"max_bytes\": "
                       "100000000}, got %s", cfg_describe(m, got, sizeof got));
    /* a misspelt key would otherwise leave the bound off without a word */
    static const char *const keys[] = {"max_bytes", NULL};
    int rc = cfg_check_keys(m, "metrics", keys, err);
    if (rc)
        return rc;
    if (!cfg_get(m, "max_bytes"))
        return 0;
    /* The smallest useful cap holds one row of one group. */
    return cfg_int(m, "metrics", "max_bytes", 0, METRICS_ROW_BYTES(1), METRICS_MAX_BYTES_MAX,
                   out, err);
}

cJSON *cfg_metrics_json(int64_t max_bytes)
{
    if (max_bytes <= 0)
        return NULL;
    cJSON *o = cJSON_CreateObject();
    if (o && !cJSON_AddNumberToObject(o, "max_bytes", (double)max_bytes)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

int64_t cfg_metrics_row_limit(int64_t max_bytes, int groups)
{
    return max_bytes > 0 ? max_bytes / METRICS_ROW_BYTES(groups) : 0;
}
