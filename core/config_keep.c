/* config_keep — checkpoint.keep_best of a job spec. */
#include "core/config_keep.h"

#include <errno.h>
#include <string.h>

#include "core/cfgval.h"
#include "core/config.h"

static const char *const metric_names[] = {"loss", "val_loss", "val_acc", NULL};
static const char *const mode_names[] = {"min", "max", NULL};

int cfg_keep_best_parse(const cJSON *c, int has_val, cfg_keep_best *out, an_err *err)
{
    static const char *const keys[] = {"metric", "mode", "k", NULL};
    memset(out, 0, sizeof *out);
    const cJSON *kb = c ? cfg_get(c, "keep_best") : NULL;
    if (!kb)
        return 0;
    const char *path = "checkpoint.keep_best";
    int rc, metric, mode;
    int64_t k;
    if ((rc = cfg_want_object(kb, path, err)) || (rc = cfg_check_keys(kb, path, keys, err)) ||
        (rc = cfg_enum(kb, path, "metric", metric_names, -1, &metric, err)))
        return rc;
    if (metric != KEEP_LOSS && !has_val)
        return an_fail(err, "checkpoint.keep_best.metric", "%s needs validation: give "
                       "\"validation\": {\"fraction\": 0.1} or use metric \"loss\"",
                       metric_names[metric]);
    /* The natural direction by default: losses down, accuracy up. */
    if ((rc = cfg_enum(kb, path, "mode", mode_names, metric == KEEP_VAL_ACC ? 1 : 0, &mode,
                       err)) ||
        (rc = cfg_int(kb, path, "k", 1, 1, CFG_MAX_KEEP, &k, err)))
        return rc;
    out->k = (int)k;
    out->metric = metric;
    out->maximize = mode;
    return 0;
}

int cfg_keep_best_json(const cfg_keep_best *kb, cJSON *c)
{
    if (kb->k <= 0)
        return 0;
    cJSON *o = cJSON_AddObjectToObject(c, "keep_best");
    int ok = o && cJSON_AddStringToObject(o, "metric", metric_names[kb->metric]) &&
             cJSON_AddStringToObject(o, "mode", mode_names[kb->maximize ? 1 : 0]) &&
             cJSON_AddNumberToObject(o, "k", kb->k);
    return ok ? 0 : -ENOMEM;
}

void cfg_keep_best_of_spec(const char *spec_json, cfg_keep_best *out)
{
    memset(out, 0, sizeof *out);
    cJSON *j = spec_json ? cJSON_Parse(spec_json) : NULL;
    if (!j)
        return;
    an_err e;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "checkpoint");
    if (cJSON_IsObject(c) && cfg_keep_best_parse(c, 1, out, &e) != 0)
        memset(out, 0, sizeof *out);
    cJSON_Delete(j);
}
