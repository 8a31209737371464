/* jsontext — JSON text parsed with errors that say where: line, column and what is wrong. */
#include "core/jsontext.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cfgval.h"
#include "core/jsonscan.h"
#include "core/jsonstrict.h"

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Line and column (both from 1, column in bytes) of offset `pos` in text. */
static void line_col(const char *text, size_t pos, int *line, int *col)
{
    int l = 1, c = 1;
    for (size_t i = 0; i < pos; i++) {
        if (text[i] == '\n')
            l++, c = 1;
        else
            c++;
    }
    *line = l, *col = c;
}

static int fail_at(const char *text, size_t len, size_t pos, const char *what, an_err *err)
{
    int line, col;
    if (pos > len)
        pos = len;
    line_col(text, pos, &line, &col);
    if (what)
        return an_fail(err, "", "malformed JSON at line %d, column %d: %s", line, col, what);
    unsigned char c = (unsigned char)text[pos];
    if (c >= 0x20 && c < 0x7f)
        return an_fail(err, "", "malformed JSON at line %d, column %d: unexpected '%c'", line,
                       col, c);
    return an_fail(err, "", "malformed JSON at line %d, column %d: unexpected byte 0x%02x", line,
                   col, c);
}

/* 1 if the parse of text[0, len) fails only because the text stops: the same text with one
 * more (invalid) byte fails at that byte. */
static int ends_early(const char *text, size_t len)
{
    char *buf = malloc(len + 2);
    if (!buf)
        return 0;
    memcpy(buf, text, len);
    buf[len] = '\x01';
    buf[len + 1] = '\0';
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(buf, len + 1, &end, 0);
    int early = !j && end && (size_t)(end - buf) >= len;
    cJSON_Delete(j);
    free(buf);
    return early;
}

/* Says where and why cJSON failed. cJSON's error position is where it gave up, which is not
 * always the offending byte (one past a closing brace, or inside an open string), so the
 * common mistakes are recognised first: a trailing comma, a comment, an unterminated string,
 * and a text that simply stops. */
static int malformed(const char *text, size_t len, size_t pos, an_err *err)
{
    if (pos >= len)
        pos = len - 1;
    for (size_t q = pos + 1; q-- > 0 && q + 2 > pos;) {
        if (text[q] != '}' && text[q] != ']')
            continue;
        size_t c = q;
        while (c > 0 && is_space(text[c - 1]))
            c--;
        if (c > 0 && text[c - 1] == ',')
            return fail_at(text, len, c - 1,
                           "trailing comma (JSON allows no comma before a closing bracket)", err);
    }
    for (size_t q = pos + 1; q-- > 0 && q + 2 > pos;)
        if (text[q] == '/' && q + 1 < len && (text[q + 1] == '/' || text[q + 1] == '*'))
            return fail_at(text, len, q, "comments are not JSON", err);
    if (pos > 0 && text[pos - 1] == '"') {
        size_t q = pos;
        while (q < len && text[q] != '"')
            q += text[q] == '\\' ? 2 : 1;
        if (q >= len)
            return fail_at(text, len, pos - 1, "string never closed", err);
    }
    if (ends_early(text, len))
        return fail_at(text, len, len, "the text ends before the JSON value is complete", err);
    /* cJSON's position can be one byte late (a bad key, a second comma): find the byte. */
    size_t at = json_scan_error(text, len);
    if (at < len)
        pos = at;
    if (text[pos] == '\'')
        return fail_at(text, len, pos, "single quotes are not JSON: strings and keys take "
                       "double quotes", err);
    if (pos > 0 && (text[pos - 1] == '{' || text[pos - 1] == ',' || is_space(text[pos - 1]))) {
        /* an object key is expected here when the innermost open bracket is a brace */
        int depth = 0, in_str = 0, obj = 0;
        for (size_t q = pos; q-- > 0 && !obj;) {
            char c = text[q];
            if (c == '"' && (q == 0 || text[q - 1] != '\\'))
                in_str = !in_str;
            if (in_str)
                continue;
            if (c == '}' || c == ']')
                depth++;
            else if ((c == '{' || c == '[') && depth-- == 0)
                obj = c == '{' ? 1 : -1;
        }
        size_t b = pos;
        while (b > 0 && is_space(text[b - 1]))
            b--;
        if (obj == 1 && b > 0 && (text[b - 1] == '{' || text[b - 1] == ',') && text[pos] != '"') {
            char what[96];
            snprintf(what, sizeof what, "unexpected '%c': an object key must be a string in "
                     "double quotes", text[pos] >= 0x20 && text[pos] < 0x7f ? text[pos] : '?');
            return fail_at(text, len, pos, what, err);
        }
    }
    return fail_at(text, len, pos, NULL, err);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* An object in j (itself or one nested) that has a key twice, with that key in *key; NULL if
 * none. Objects of many keys are sorted, so a body of 100,000 keys costs k log k, not k². */
static const cJSON *find_dup(const cJSON *j, const char **key)
{
    if (cJSON_IsObject(j)) {
        size_t k = 0;
        for (const cJSON *c = j->child; c; c = c->next)
            k++;
        if (k > 1 && k <= 8) {
            for (const cJSON *c = j->child; c; c = c->next)
                for (const cJSON *e = c->next; e; e = e->next)
                    if (strcmp(c->string, e->string) == 0) {
                        *key = c->string;
                        return j;
                    }
        } else if (k > 8) {
            const char **names = malloc(k * sizeof *names);
            if (names) {
                size_t i = 0;
                for (const cJSON *c = j->child; c; c = c->next)
                    names[i++] = c->string;
                qsort(names, k, sizeof *names, by_name);
                for (i = 1; i < k && strcmp(names[i - 1], names[i]) != 0; i++)
                    ;
                *key = i < k ? names[i] : NULL;
                free(names);
                if (*key)
                    return j;
            }
        }
    }
    if (!cJSON_IsObject(j) && !cJSON_IsArray(j))
        return NULL;
    for (const cJSON *c = j->child; c; c = c->next)
        if ((cJSON_IsObject(c) || cJSON_IsArray(c))) {
            const cJSON *d = find_dup(c, key);
            if (d)
                return d;
        }
    return NULL;
}

/* The path of `target` in j ("ds_config.optimizer.params", "data.x[3]"): 1 when found. */
static int path_to(const cJSON *j, const cJSON *target, char *buf, size_t size)
{
    if (j == target)
        return 1;
    int k = 0;
    for (const cJSON *c = j->child; c; c = c->next, k++) {
        if (!cJSON_IsObject(c) && !cJSON_IsArray(c))
            continue;
        char here[CFG_PATH];
        if (cJSON_IsArray(j))
            an_path_index(here, sizeof here, buf, k);
        else
            an_path(here, sizeof here, buf, c->string);
        char below[CFG_PATH];
        snprintf(below, sizeof below, "%s", here);
        if (path_to(c, target, below, sizeof below)) {
            snprintf(buf, size, "%s", below);
            return 1;
        }
    }
    return 0;
}

int json_parse_text(const char *text, size_t len, cJSON **out, an_err *err)
{
    *out = NULL;
    if (!text)
        len = 0;
    size_t start = 0;
    while (start < len && is_space(text[start]))
        start++;
    if (start == len)
        return an_fail(err, "", "empty body: expected a JSON object");
    if (json_strict_check(text, len, err)) /* what cJSON is lax about (jsonstrict.h) */
        return -EINVAL;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!j)
        return malformed(text, len, end && end >= text ? (size_t)(end - text) : start, err);
    size_t pos = (size_t)(end - text);
    while (pos < len && is_space(text[pos]))
        pos++;
    if (pos < len) {
        cJSON_Delete(j);
        if (text[pos] == '/' && pos + 1 < len && (text[pos + 1] == '/' || text[pos + 1] == '*'))
            return fail_at(text, len, pos, "comments are not JSON", err);
        return fail_at(text, len, pos, "text after the JSON value", err);
    }
    if (!cJSON_IsObject(j)) {
        char got[80];
        cfg_describe(j, got, sizeof got);
        cJSON_Delete(j);
        return an_fail(err, "", "expected a JSON object at the top level, got %s", got);
    }
    /* A key given twice: parsers disagree on which one counts (cJSON reads the first, most
     * others the last), so the daemon would train on a value the user's tools do not show. */
    const char *key = NULL;
    const cJSON *dup = find_dup(j, &key);
    if (dup) {
        char where[CFG_PATH] = "", field[CFG_PATH];
        path_to(j, dup, where, sizeof where);
        an_path(field, sizeof field, where, key);
        an_fail(err, field, "duplicate key '%s'%s%s: give each key once", key,
                where[0] ? " in " : "", where);
        cJSON_Delete(j);
        return -EINVAL;
    }
    *out = j;
    return 0;
}

uint64_t json_parse_cost(const char *text, size_t len)
{
    /* A value is a 64-byte cJSON node and, for a string or a number (whose text is kept for
     * its exact bits), a copy of its text; a member's key is one more copy. glibc's malloc
     * takes 80 bytes for the node and at least 32 for a copy. */
    uint64_t starts = 1, keys = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        starts += c == ',' || c == '[' || c == '{';
        keys += c == ':';
    }
    return starts * (80 + 32) + keys * 32 + (uint64_t)len;
}
