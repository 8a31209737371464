/* statefile — the --save file's head and its check against a spec (statefile.h). */
#include "core/statefile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#define STATE_MAGIC "anneald train state 1\n"

/* Leaves out of a spec what does not change which run a state belongs to: the job's name,
 * its checkpoint policy, and how the work of a step is shared out over ranks (world_size,
 * the accumulation steps each rank takes, ZeRO's slicing of the optimizer state): a state
 * resumes at any number of ranks, as a daemon's checkpoint does. The global batch
 * (train_batch_size) and the micro-batch size stay: micro-batches are the units the data and
 * dropout masks are drawn for. */
static void strip(cJSON *c)
{
    cJSON_DeleteItemFromObjectCaseSensitive(c, "name");
    cJSON_DeleteItemFromObjectCaseSensitive(c, "checkpoint");
    cJSON_DeleteItemFromObjectCaseSensitive(c, "world_size");
    cJSON *ds = cJSON_GetObjectItemCaseSensitive(c, "ds_config");
    cJSON_DeleteItemFromObjectCaseSensitive(ds, "gradient_accumulation_steps");
    cJSON_DeleteItemFromObjectCaseSensitive(ds, "zero_optimization");
}

/* The spec as the file records it: one line of JSON. */
static char *spec_line(const job_spec *spec)
{
    cJSON *c = cJSON_Duplicate(spec->normalized, 1);
    if (!c)
        return NULL;
    strip(c);
    char *t = cJSON_PrintUnformatted(c);
    cJSON_Delete(c);
    return t;
}

char *statefile_head(const job_spec *spec)
{
    char *line = spec_line(spec);
    if (!line)
        return NULL;
    size_t n = strlen(STATE_MAGIC) + strlen(line) + 2;
    char *head = malloc(n);
    if (head)
        snprintf(head, n, "%s%s\n", STATE_MAGIC, line);
    cJSON_free(line);
    return head;
}

/* Finds the first place where a and b differ; writes its JSON path into path. 1 if they
 * differ, 0 if equal. */
static int first_diff(const cJSON *a, const cJSON *b, char *path, size_t size)
{
    char sub[256];
    if (cJSON_IsObject(a) && cJSON_IsObject(b)) {
        const cJSON *x;
        cJSON_ArrayForEach(x, a) {
            an_path(sub, sizeof sub, path, x->string);
            const cJSON *y = cJSON_GetObjectItemCaseSensitive(b, x->string);
            if (!y || first_diff(x, y, sub, sizeof sub)) {
                snprintf(path, size, "%s", sub);
                return 1;
            }
        }
        cJSON_ArrayForEach(x, b)
            if (!cJSON_GetObjectItemCaseSensitive(a, x->string)) {
                snprintf(path, size, "%s", an_path(sub, sizeof sub, path, x->string));
                return 1;
            }
        return 0;
    }
    if (cJSON_IsArray(a) && cJSON_IsArray(b) && cJSON_GetArraySize(a) == cJSON_GetArraySize(b)) {
        int i = 0;
        for (const cJSON *x = a->child, *y = b->child; x && y; x = x->next, y = y->next, i++) {
            an_path_index(sub, sizeof sub, path, i);
            if (first_diff(x, y, sub, sizeof sub)) {
                snprintf(path, size, "%s", sub);
                return 1;
            }
        }
        return 0;
    }
    return !cJSON_Compare(a, b, 1);
}

/* A value for an error message, cut short when long. */
static void brief(const cJSON *v, char *buf, size_t size)
{
    char *t = v ? cJSON_PrintUnformatted(v) : NULL;
    snprintf(buf, size, "%s", t ? t : "(absent)");
    if (t && strlen(t) >= size && size > 4)
        memcpy(buf + size - 4, "...", 4);
    cJSON_free(t);
}

/* The value at a path made by first_diff ("a.b[2].c"), or NULL. */
static const cJSON *at_path(const cJSON *root, const char *path)
{
    const cJSON *v = root;
    const char *p = path;
    while (v && *p) {
        if (*p == '.') {
            p++;
            continue;
        }
        if (*p == '[') {
            v = cJSON_GetArrayItem(v, atoi(p + 1));
            p = strchr(p, ']');
            p = p ? p + 1 : "";
            continue;
        }
        size_t n = strcspn(p, ".[");
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)(n < 255 ? n : 255), p);
        v = cJSON_GetObjectItemCaseSensitive(v, key);
        p += n;
    }
    return v;
}

int statefile_find_blob(const job_spec *spec, const char *buf, size_t len, const char **blob,
                        size_t *blen, an_err *err)
{
    size_t ml = strlen(STATE_MAGIC);
    *blob = buf;
    *blen = len;
    if (len < ml || memcmp(buf, STATE_MAGIC, ml) != 0)
        return 0;
    const char *line = buf + ml;
    const char *nl = memchr(line, '\n', len - ml);
    cJSON *saved = nl ? cJSON_ParseWithLength(line, (size_t)(nl - line)) : NULL;
    if (!saved)
        return an_failc(err, -EINVAL, "", "the job spec line of the saved state is damaged");
    strip(saved); /* a line written before these were left out of it */
    char *mine_t = spec_line(spec);
    cJSON *mine = mine_t ? cJSON_Parse(mine_t) : NULL;
    cJSON_free(mine_t);
    int rc = 0;
    char where[256] = "";
    if (!mine) {
        rc = an_failc(err, -ENOMEM, "", "out of memory");
    } else if (first_diff(mine, saved, where, sizeof where)) {
        char here[96], there[96];
        brief(at_path(mine, where), here, sizeof here);
        brief(at_path(saved, where), there, sizeof there);
        rc = an_failc(err, -EINVAL, where, "the state was saved by another job spec: %s is %s "
                      "here, %s in the saved state", where[0] ? where : "the spec", here, there);
    } else {
        *blob = nl + 1;
        *blen = len - (size_t)(*blob - buf);
    }
    cJSON_Delete(saved);
    cJSON_Delete(mine);
    return rc;
}
