/* input_stats — see input_stats.h. */
#include "daemon/input_stats.h"

#include <errno.h>
#include <stdlib.h>

#include "core/jsonnum.h"
#include "daemon/daemon.h"
#include "daemon/options.h"

void input_stats_keep(store_t *s, const char *id, const train *t)
{
    cJSON *w = cJSON_CreateObject();
    if (!w || train_input_stats_json(t, w) != 0) {
        cJSON_Delete(w);
        return;
    }
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(w, "input_stats");
    char *text = cJSON_IsObject(st) ? cJSON_PrintUnformatted(st) : NULL;
    an_err e;
    an_err_clear(&e);
    if (text && store_input_stats_put(s, id, text, &e) != 0)
        daemon_log(LOG_WARN, "job %s: the input statistics were not stored: %s", id, e.message);
    cJSON_free(text);
    cJSON_Delete(w);
}

cJSON *input_stats_json(store_t *s, const char *id, const train *t)
{
    char *text = NULL;
    if (store_input_stats_get(s, id, &text, NULL) == 0) {
        cJSON *j = cJSON_Parse(text);
        free(text);
        /* Numbers again as json_number items: cJSON would print some of them 1 ulp off. */
        cJSON *o = cJSON_IsObject(j) ? cJSON_CreateObject() : NULL;
        int ok = o != NULL;
        for (int k = 0; ok && k < 2; k++) {
            const char *key = k ? "std" : "mean";
            const cJSON *src = cJSON_GetObjectItemCaseSensitive(j, key), *x;
            cJSON *dst = cJSON_AddArrayToObject(o, key);
            ok = cJSON_IsArray(src) && dst;
            cJSON_ArrayForEach(x, src)
                ok = ok && cJSON_IsNumber(x) && cJSON_AddItemToArray(dst, json_number(x->valuedouble));
        }
        cJSON_Delete(j);
        if (ok)
            return o;
        cJSON_Delete(o);
    }
    cJSON *w = cJSON_CreateObject();
    if (!w)
        return NULL;
    if (!t || train_input_stats_json(t, w) != 0) {
        cJSON_Delete(w);
        return t ? NULL : cJSON_CreateNull();
    }
    cJSON *st = cJSON_DetachItemFromObjectCaseSensitive(w, "input_stats");
    cJSON_Delete(w);
    return st;
}

int input_stats_apply(const cJSON *stats, const double *raw, float *x, long rows, int d)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(stats, "mean");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(stats, "std");
    int on = cJSON_IsObject(stats);
    if (on && (cJSON_GetArraySize(m) != d || cJSON_GetArraySize(v) != d))
        return -EINVAL;
    double *mean = on ? malloc((size_t)d * 2 * sizeof *mean) : NULL;
    if (on && !mean)
        return -ENOMEM;
    double *sd = mean ? mean + d : NULL;
    for (int k = 0; on && k < d; k++) {
        mean[k] = cJSON_GetArrayItem(m, k)->valuedouble;
        sd[k] = cJSON_GetArrayItem(v, k)->valuedouble;
    }
    /* as training computed it: in double, rounded to float once */
    for (long i = 0; i < rows; i++)
        for (int k = 0; k < d; k++) {
            double r = raw[(size_t)i * (size_t)d + (size_t)k];
            x[(size_t)i * (size_t)d + (size_t)k] = (float)(on ? (r - mean[k]) / sd[k] : r);
        }
    free(mean);
    return 0;
}
