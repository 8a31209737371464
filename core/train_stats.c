/* train_stats — the input statistics of a job as JSON, for /weights and --weights-json. */
#include <errno.h>

#include "core/jsonnum.h"
#include "core/train.h"

int train_input_stats_json(const train *t, cJSON *w)
{
    const double *mean, *sd;
    int d = train_input_stats(t, &mean, &sd);
    if (!d)
        return cJSON_AddNullToObject(w, "input_stats") ? 0 : -ENOMEM;
    cJSON *o = cJSON_AddObjectToObject(w, "input_stats");
    cJSON *m = o ? cJSON_AddArrayToObject(o, "mean") : NULL;
    cJSON *v = o ? cJSON_AddArrayToObject(o, "std") : NULL;
    if (!m || !v)
        return -ENOMEM;
    for (int k = 0; k < d; k++)
        if (!cJSON_AddItemToArray(m, json_number(mean[k])) ||
            !cJSON_AddItemToArray(v, json_number(sd[k])))
            return -ENOMEM;
    return 0;
}
