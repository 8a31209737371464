/* config_sched — scheduling keys of a job spec and the PATCH of its labels. */
#include "core/config_sched.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/cfgval.h"
#include "core/config.h"

static int parse_tags(const cJSON *j, cfg_sched *out, an_err *err)
{
    char got[80];
    const cJSON *t = cfg_get(j, "tags");
    out->ntags = 0;
    if (!t)
        return 0;
    if (!cJSON_IsArray(t))
        return an_fail(err, "tags", "tags must be an array of strings such as "
                       "[\"baseline\"], got %s", cfg_describe(t, got, sizeof got));
    int n = cJSON_GetArraySize(t);
    if (n > SCHED_MAX_TAGS)
        return an_fail(err, "tags", "at most %d tags, got %d", SCHED_MAX_TAGS, n);
    int i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, t) {
        char path[32];
        snprintf(path, sizeof path, "tags[%d]", i);
        if (!cJSON_IsString(v))
            return an_fail(err, path, "a tag must be a string, got %s",
                           cfg_describe(v, got, sizeof got));
        size_t len = strlen(v->valuestring);
        if (len == 0 || len >= SCHED_TAG_LEN)
            return an_fail(err, path, "a tag has 1 to %d bytes, got %zu", SCHED_TAG_LEN - 1,
                           len);
        for (size_t k = 0; k < len; k++)
            if ((unsigned char)v->valuestring[k] < 0x20 || v->valuestring[k] == 0x7f)
                return an_fail(err, path, "a tag may not hold control characters");
        for (int k = 0; k < i; k++)
            if (strcmp(out->tags[k], v->valuestring) == 0)
                return an_fail(err, path, "tag '%s' is given twice", v->valuestring);
        memcpy(out->tags[i], v->valuestring, len + 1);
        i++;
    }
    out->ntags = i;
    return 0;
}

static int parse_notes(const cJSON *j, cfg_sched *out, an_err *err)
{
    char got[80];
    const cJSON *n = cfg_get(j, "notes");
    out->notes[0] = 0;
    if (!n)
        return 0;
    if (!cJSON_IsString(n))
        return an_fail(err, "notes", "notes must be a string, got %s",
                       cfg_describe(n, got, sizeof got));
    size_t len = strlen(n->valuestring);
    if (len >= SCHED_NOTES_LEN)
        return an_fail(err, "notes", "notes have at most %d bytes, got %zu",
                       SCHED_NOTES_LEN - 1, len);
    memcpy(out->notes, n->valuestring, len + 1);
    return 0;
}

int cfg_sched_parse(const cJSON *j, cfg_sched *out, an_err *err)
{
    int64_t v;
    int rc;
    memset(out, 0, sizeof *out);
    if ((rc = cfg_int(j, "", "priority", 0, -SCHED_PRIORITY_MAX, SCHED_PRIORITY_MAX, &v, err)))
        return rc;
    out->priority = (int)v;
    if ((rc = cfg_bool(j, "", "preemptible", 1, &out->preemptible, err)))
        return rc;
    if (cfg_get(j, "max_runtime_s") &&
        (rc = cfg_num(j, "", "max_runtime_s", 0, 0, SCHED_SECONDS_MAX, CFG_LO_OPEN,
                      &out->max_runtime_s, err)))
        return rc;
    if ((rc = cfg_num(j, "", "stall_timeout_s", SCHED_STALL_DEFAULT_S, 0, SCHED_SECONDS_MAX,
                      CFG_LO_OPEN, &out->stall_timeout_s, err)))
        return rc;
    if ((rc = cfg_int(j, "", "max_restarts", SCHED_RESTARTS_DEFAULT, 0, SCHED_RESTARTS_MAX, &v,
                      err)))
        return rc;
    out->max_restarts = (int)v;
    if ((rc = parse_tags(j, out, err)))
        return rc;
    return parse_notes(j, out, err);
}

int cfg_sched_json(const cfg_sched *s, cJSON *o)
{
    cJSON *tags = NULL;
    int ok = cJSON_AddNumberToObject(o, "priority", s->priority) &&
             cJSON_AddBoolToObject(o, "preemptible", s->preemptible) &&
             (s->max_runtime_s <= 0 ||
              cJSON_AddNumberToObject(o, "max_runtime_s", s->max_runtime_s)) &&
             cJSON_AddNumberToObject(o, "stall_timeout_s", s->stall_timeout_s) &&
             cJSON_AddNumberToObject(o, "max_restarts", s->max_restarts) &&
             (tags = cJSON_AddArrayToObject(o, "tags"));
    for (int i = 0; ok && i < s->ntags; i++) {
        cJSON *t = cJSON_CreateString(s->tags[i]);
        ok = t && cJSON_AddItemToArray(tags, t);
        if (!ok)
            cJSON_Delete(t);
    }
    ok = ok && cJSON_AddStringToObject(o, "notes", s->notes);
    return ok ? 0 : -ENOMEM;
}

int cfg_sched_patch_check(const cJSON *patch, an_err *err)
{
    static const char *const keys[] = {"priority", "tags", "notes", "name", NULL};
    char got[80];
    if (!cJSON_IsObject(patch))
        return an_fail(err, "", "a PATCH body must be a JSON object with any of priority, "
                       "tags, notes, name; got %s", cfg_describe(patch, got, sizeof got));
    int rc = cfg_check_keys(patch, "", keys, err);
    if (rc)
        return rc;
    if (!patch->child)
        return an_fail(err, "", "nothing to change: give any of priority, tags, notes, name");
    int64_t v;
    cfg_sched tmp;
    char name[CFG_MAX_NAME];
    if (cfg_get(patch, "priority") &&
        (rc = cfg_int(patch, "", "priority", 0, -SCHED_PRIORITY_MAX, SCHED_PRIORITY_MAX, &v,
                      err)))
        return rc;
    if ((rc = parse_tags(patch, &tmp, err)) || (rc = parse_notes(patch, &tmp, err)))
        return rc;
    if (cfg_get(patch, "name") &&
        (rc = cfg_str(patch, "", "name", NULL, name, sizeof name, err)))
        return rc;
    return 0;
}

int cfg_sched_patch_apply(cJSON *spec, const cJSON *patch)
{
    static const char *const keys[] = {"priority", "tags", "notes", "name", NULL};
    for (int i = 0; keys[i]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(patch, keys[i]);
        if (!v)
            continue;
        cJSON *dup = cJSON_Duplicate(v, 1);
        if (!dup)
            return -ENOMEM;
        if (cJSON_GetObjectItemCaseSensitive(spec, keys[i])) {
            if (!cJSON_ReplaceItemInObjectCaseSensitive(spec, keys[i], dup)) {
                cJSON_Delete(dup);
                return -ENOMEM;
            }
        } else if (!cJSON_AddItemToObject(spec, keys[i], dup)) {
            cJSON_Delete(dup);
            return -ENOMEM;
        }
    }
    return 0;
}

int cfg_sched_has_tag(const cfg_sched *s, const char *tag)
{
    for (int i = 0; i < s->ntags; i++)
        if (strcmp(s->tags[i], tag) == 0)
            return 1;
    return 0;
}
