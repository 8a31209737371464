/* testutil — small helpers shared by the unit tests: reading reference files. Include after
 * <cmocka.h>. Every helper fails the running test (never returns NULL) when a file is
 * missing or malformed, so a test cannot pass on data it never read. */
#ifndef ANNEALD_TESTUTIL_H
#define ANNEALD_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>

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

#endif
