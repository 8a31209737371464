/* sweep_path — a sweep parameter's JSON path into a job spec: setting a value there, and
 * whether two paths reach the same place (see sweep.h). */
#include "core/sweep.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One step of a path: an object key, or a list index (key[0] == '\0'). */
typedef struct step {
    char key[CFG_PATH];
    int index;
} step;

/* Splits "a.b[2].c" into steps; -1 on a malformed path (empty key, bad index). */
static int split_path(const char *path, step *steps, int max)
{
    int n = 0;
    const char *p = path;
    if (!*p)
        return -1;
    while (*p) {
        if (n == max)
            return -1;
        step *s = &steps[n++];
        if (*p == '[') {
            char *end;
            long i = strtol(p + 1, &end, 10);
            if (end == p + 1 || *end != ']' || i < 0 || i > 1000000)
                return -1;
            s->key[0] = '\0';
            s->index = (int)i;
            p = end + 1;
            if (*p == '.')
                p++;
            continue;
        }
        size_t k = strcspn(p, ".[");
        if (k == 0 || k >= sizeof s->key)
            return -1;
        memcpy(s->key, p, k);
        s->key[k] = '\0';
        s->index = -1;
        p += k;
        if (*p == '.' && p[1] && p[1] != '.' && p[1] != '[')
            p++;
        else if (*p == '.')
            return -1;
    }
    return n;
}

/* A copy of `value` without the key it had in its own object (a parameter's copy carries the
 * parameter's path as its name otherwise). */
static cJSON *bare_copy(const cJSON *value)
{
    cJSON *v = cJSON_Duplicate(value, 1);
    if (v && v->string && !(v->type & cJSON_StringIsConst)) {
        cJSON_free(v->string);
        v->string = NULL;
    }
    return v;
}

static int set_at(cJSON *root, const char *path, const cJSON *value, an_err *err)
{
    char field[CFG_PATH + 16];
    snprintf(field, sizeof field, "parameters.%s", path);
    step steps[32];
    int n = split_path(path, steps, 32);
    if (n < 0)
        return an_fail(err, field, "a parameter is a JSON path such as "
                       "\"ds_config.optimizer.params.lr\" or \"model.hidden[0]\"");
    cJSON *at = root;
    for (int i = 0; i < n; i++) {
        int last = i == n - 1;
        cJSON *next;
        if (steps[i].key[0]) {
            if (!cJSON_IsObject(at))
                return an_fail(err, field, "cannot set %s: what holds \"%s\" is not an object",
                               path, steps[i].key);
            next = cJSON_GetObjectItemCaseSensitive(at, steps[i].key);
            if (!next && !last)
                return an_fail(err, field, "cannot set %s: the base spec has no \"%s\" there",
                               path, steps[i].key);
            if (last) {
                cJSON *v = bare_copy(value);
                if (!v)
                    return an_failc(err, -ENOMEM, field, "out of memory");
                if (next)
                    cJSON_ReplaceItemInObjectCaseSensitive(at, steps[i].key, v);
                else
                    cJSON_AddItemToObject(at, steps[i].key, v);
                return 0;
            }
        } else {
            if (!cJSON_IsArray(at))
                return an_fail(err, field, "cannot set %s: [%d] indexes something that is not "
                               "a list", path, steps[i].index);
            next = cJSON_GetArrayItem(at, steps[i].index);
            if (!next)
                return an_fail(err, field, "cannot set %s: index %d is past the end of a list "
                               "of %d", path, steps[i].index, cJSON_GetArraySize(at));
            if (last) {
                cJSON *v = bare_copy(value);
                if (!v)
                    return an_failc(err, -ENOMEM, field, "out of memory");
                cJSON_ReplaceItemViaPointer(at, next, v);
                return 0;
            }
        }
        at = next;
    }
    return 0;
}

int sweep_apply(const cJSON *base, const cJSON *params, cJSON **out, an_err *err)
{
    cJSON *spec = cJSON_Duplicate(base, 1);
    if (!spec)
        return an_failc(err, -ENOMEM, "base", "out of memory");
    const cJSON *p;
    cJSON_ArrayForEach(p, params) {
        int rc = set_at(spec, p->string, p, err);
        if (rc) {
            cJSON_Delete(spec);
            return rc;
        }
    }
    *out = spec;
    return 0;
}

int sweep_paths_overlap(const char *a, const char *b)
{
    step sa[32], sb[32];
    int na = split_path(a, sa, 32), nb = split_path(b, sb, 32);
    if (na < 0 || nb < 0)
        return -1;
    int n = na < nb ? na : nb;
    for (int i = 0; i < n; i++)
        if (strcmp(sa[i].key, sb[i].key) != 0 || (!sa[i].key[0] && sa[i].index != sb[i].index))
            return 0;
    return na == nb ? 2 : 1;
}
