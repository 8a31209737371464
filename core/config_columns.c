/* config_columns — the column names a job's data refers to (data.target, data.features),
 * checked against the columns the data set has: the builtin sets' from their embedded CSV
 * header, an uploaded set's from the store (the caller passes them). Checked when the job is
 * submitted, so a wrong name is a 400 there and not a failed job later. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assets.h"
#include "core/cfgval.h"
#include "core/config_data.h"

cJSON *cfg_builtin_columns(const char *name)
{
    char file[CFG_MAX_NAME + 16];
    snprintf(file, sizeof file, "data/%s.csv", name);
    size_t len = 0;
    const unsigned char *t = assets_get(file, &len);
    if (!t)
        return NULL;
    cJSON *cols = cJSON_CreateArray();
    size_t i = 0;
    while (cols && i < len && t[i] != '\n' && t[i] != '\r') {
        size_t j = i;
        while (j < len && t[j] != ',' && t[j] != '\n' && t[j] != '\r')
            j++;
        char col[CFG_MAX_NAME];
        snprintf(col, sizeof col, "%.*s", (int)(j - i), (const char *)t + i);
        cJSON_AddItemToArray(cols, cJSON_CreateString(col));
        i = j < len && t[j] == ',' ? j + 1 : j;
    }
    return cols;
}

void cfg_columns_text(const cJSON *cols, char *buf, size_t size)
{
    size_t n = 0;
    int k = 0, total = cJSON_GetArraySize(cols);
    buf[0] = '\0';
    for (const cJSON *c = cols ? cols->child : NULL; c; c = c->next, k++) {
        const char *s = cJSON_IsString(c) ? c->valuestring : "?";
        /* leave room for the tail that says how many were left out */
        if (n + strlen(s) + 2 + 40 >= size) {
            snprintf(buf + n, size - n, "%s… (%d columns in all)", k ? ", " : "", total);
            return;
        }
        n += (size_t)snprintf(buf + n, size - n, "%s%s", k ? ", " : "", s);
    }
}

static int has_column(const cJSON *cols, const char *name)
{
    for (const cJSON *c = cols ? cols->child : NULL; c; c = c->next)
        if (cJSON_IsString(c) && strcmp(c->valuestring, name) == 0)
            return 1;
    return 0;
}

int cfg_data_check_columns(const data_spec *d, const char *what, const cJSON *cols, an_err *errs,
                           int max, int *n)
{
    char list[360], p[CFG_PATH];
    *n = 0;
    cfg_columns_text(cols, list, sizeof list);
    if (d->target[0] && !has_column(cols, d->target) && *n < max)
        an_fail(&errs[(*n)++], "data.target", "%s has no column \"%s\"; its columns are: %s "
                "(without data.target the last column is the label)", what, d->target, list);
    /* Without data.target the last column is the label: a feature cannot be it (a target
     * given is compared when the spec is parsed). */
    const cJSON *last = cJSON_GetArrayItem(cols, cJSON_GetArraySize(cols) - 1);
    const char *label = !d->target[0] && cJSON_IsString(last) ? last->valuestring : NULL;
    int i = 0;
    for (const cJSON *f = d->features_sel ? d->features_sel->child : NULL; f; f = f->next, i++) {
        if (!cJSON_IsString(f) || *n >= max)
            continue;
        an_path_index(p, sizeof p, "data.features", i);
        if (!has_column(cols, f->valuestring))
            an_fail(&errs[(*n)++], p, "%s has no column \"%s\"; its columns are: %s", what,
                    f->valuestring, list);
        else if (label && strcmp(label, f->valuestring) == 0)
            an_fail(&errs[(*n)++], p, "%s is \"%s\", the label column of %s (its last, as "
                    "data.target is not given): a column cannot be both; give data.target to "
                    "use another label", p, label, what);
    }
    if (!d->target[0] && !d->features_sel && cJSON_GetArraySize(cols) < 2 && *n < max)
        an_fail(&errs[(*n)++], "data", "%s has %d column%s: it needs features and a label",
                what, cJSON_GetArraySize(cols), cJSON_GetArraySize(cols) == 1 ? "" : "s");
    return *n ? -EINVAL : 0;
}
