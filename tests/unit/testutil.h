/* testutil — small helpers shared by the unit tests: reading reference files, patching a JSON
 * spec, finding a warning. Include after
 * <cmocka.h>. Every helper fails the running test (never returns NULL) when a file is
 * missing or malformed, so a test cannot pass on data it never read. */
#ifndef ANNEALD_TESTUTIL_H
#define ANNEALD_TESTUTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

/* The whole file, NUL-terminated (malloc'd); its length to *len when len is not NULL. */
static inline char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    if (len)
        *len = (size_t)n;
    return buf;
}

/* A JSON file, parsed. */
static inline cJSON *tu_load_json(const char *path)
{
    char *text = tu_read_file(path, NULL);
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!j)
        fail_msg("cannot parse %s", path);
    return j;
}

/* RFC 7386 merge patch of `patch` into `target`: objects merge, null deletes, anything else
 * replaces. */
static inline void tu_merge_patch(cJSON *target, const cJSON *patch)
{
    for (const cJSON *p = patch->child; p; p = p->next) {
        cJSON *t = cJSON_GetObjectItemCaseSensitive(target, p->string);
        if (cJSON_IsNull(p)) {
            cJSON_DeleteItemFromObjectCaseSensitive(target, p->string);
        } else if (cJSON_IsObject(p) && cJSON_IsObject(t)) {
            tu_merge_patch(t, p);
        } else {
            cJSON *c = cJSON_Duplicate(p, 1);
            if (t)
                cJSON_ReplaceItemInObjectCaseSensitive(target, p->string, c);
            else
                cJSON_AddItemToObject(target, p->string, c);
        }
    }
}

/* The JSON text `base` with the merge patch `patch` applied (caller deletes). */
static inline cJSON *tu_patched(const char *base, const char *patch)
{
    cJSON *j = cJSON_Parse(base);
    cJSON *p = cJSON_Parse(patch);
    assert_non_null(j);
    if (!p)
        fail_msg("test patch is not JSON: %s", patch);
    tu_merge_patch(j, p);
    cJSON_Delete(p);
    return j;
}

/* Whether an array of strings (a spec's warnings) has one containing `sub`. */
static inline int tu_has_text(const cJSON *strings, const char *sub)
{
    const cJSON *w;
    cJSON_ArrayForEach(w, strings) {
        if (cJSON_IsString(w) && strstr(w->valuestring, sub))
            return 1;
    }
    return 0;
}

/* The process's peak resident size in bytes (VmHWM), after resetting it to the current size
 * (reset = 1) or as it is; 0 when /proc does not say. */
static inline uint64_t tu_peak_rss(int reset)
{
    if (reset) {
        FILE *c = fopen("/proc/self/clear_refs", "w");
        if (!c || fputs("5", c) < 0 || fclose(c) != 0)
            return 0;
    }
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    unsigned long long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %llu kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return (uint64_t)kb * 1024;
}

#endif
