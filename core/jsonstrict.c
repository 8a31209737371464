/* jsonstrict — strict strings and numbers in JSON texts (see jsonstrict.h). */
#include "core/jsonstrict.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64
/* Containers open at once that a text may have: far beyond any request of the API, and below
 * cJSON's own limit (1000), which would fail the parse with a bare "unexpected '['". */
#define MAX_NESTING 512

int utf8_valid(const char *s, size_t n, size_t *bad)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        size_t len;
        unsigned cp, min;
        if (c == 0)
            goto fail;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xE0) == 0xC0) {
            len = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            goto fail;
        }
        if (n - i < len)
            goto fail;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                goto fail;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            goto fail;
        i += len;
    }
    return 1;
fail:
    if (bad)
        *bad = i;
    return 0;
}

char *utf8_repair(const char *s, size_t n, size_t *outn)
{
    char *o = malloc(3 * n + 1); /* every byte may become the three of U+FFFD */
    if (!o)
        return NULL;
    size_t w = 0, i = 0, bad = 0;
    while (i < n) {
        if (utf8_valid(s + i, n - i, &bad)) {
            memcpy(o + w, s + i, n - i);
            w += n - i;
            break;
        }
        memcpy(o + w, s + i, bad);
        w += bad;
        memcpy(o + w, "\xEF\xBF\xBD", 3);
        w += 3;
        i += bad + 1;
    }
    o[w] = '\0';
    *outn = w;
    return o;
}

/* The scanner's view of where it is: a path string and one frame per open container. */
typedef struct scan {
    const char *t;
    size_t len, pos;
    char path[256];
    size_t plen;
    int depth;          /* open containers; frames past MAX_DEPTH keep the path as it is */
    struct {
        char kind;      /* '{' or '[' */
        int index;      /* array element */
        int want_key;   /* object: the next string is a key */
        size_t base;    /* path length at the container */
    } f[MAX_DEPTH];
} scan;

static void set_path_key(scan *s, const char *k, size_t kn)
{
    int d = s->depth - 1;
    size_t base = s->f[d].base;
    int n = snprintf(s->path + base, sizeof s->path - base, "%s%.*s", base ? "." : "",
                     (int)kn, k);
    s->plen = base + (n < 0 ? 0 : (size_t)n);
    if (s->plen >= sizeof s->path)
        s->plen = sizeof s->path - 1;
}

static void set_path_index(scan *s)
{
    int d = s->depth - 1;
    size_t base = s->f[d].base;
    int n = snprintf(s->path + base, sizeof s->path - base, "[%d]", s->f[d].index);
    s->plen = base + (n < 0 ? 0 : (size_t)n);
    if (s->plen >= sizeof s->path)
        s->plen = sizeof s->path - 1;
}

static int fail(scan *s, size_t at, const char *what, an_err *err)
{
    int line = 1, col = 1;
    for (size_t i = 0; i < at && i < s->len; i++) {
        if (s->t[i] == '\n') {
            line++;
            col = 1;
        } else if (((unsigned char)s->t[i] & 0xC0) != 0x80) {
            col++;
        }
    }
    s->path[s->plen] = '\0';
    return an_fail(err, s->path, "%s (line %d, column %d)", what, line, col);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A string starting at the opening quote; leaves pos after the closing one. 1 = syntax left
 * to cJSON (stop scanning), 0 = fine, <0 = an error was filled. */
static int scan_string(scan *s, an_err *err)
{
    size_t start = ++s->pos;
    while (s->pos < s->len && s->t[s->pos] != '"') {
        unsigned char c = (unsigned char)s->t[s->pos];
        if (c == '\\') {
            if (s->pos + 1 >= s->len)
                return 1;
            if (s->t[s->pos + 1] == 'u') {
                /* Checked here: cJSON reads bad digits as 0 and takes the string. */
                int v = 0;
                for (int k = 2; k < 6; k++) {
                    int h = s->pos + (size_t)k < s->len ? hexval(s->t[s->pos + (size_t)k]) : -1;
                    if (h < 0)
                        return fail(s, s->pos, "\\u in a string must be followed by four "
                                    "hexadecimal digits", err);
                    v = v * 16 + h;
                }
                if (v == 0)
                    return fail(s, s->pos, "\\u0000 (NUL) is not allowed in a string", err);
                s->pos += 6;
            } else if (s->t[s->pos + 1] != '\0' && strchr("\"\\/bfnrt", s->t[s->pos + 1])) {
                s->pos += 2;
            } else {
                return fail(s, s->pos, "a backslash in a string must start an escape: \\\", "
                            "\\\\, \\/, \\b, \\f, \\n, \\r, \\t or \\uXXXX", err);
            }
            continue;
        }
        if (c == 0)
            return fail(s, s->pos, "a NUL byte is not allowed in a string", err);
        if (c < 0x80) {
            s->pos++;
            continue;
        }
        /* One multi-byte sequence at a time: its length comes from the lead byte. */
        size_t n = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
        if (n > s->len - s->pos || !utf8_valid(s->t + s->pos, n, NULL))
            return fail(s, s->pos, "a string is not valid UTF-8", err);
        s->pos += n;
    }
    if (s->pos >= s->len)
        return 1;
    int d = s->depth - 1;
    if (d >= 0 && d < MAX_DEPTH && s->f[d].kind == '{' && s->f[d].want_key) {
        s->f[d].want_key = 0;
        set_path_key(s, s->t + start, s->pos - start);
    }
    s->pos++;
    return 0;
}

static int digit(char c)
{
    return c >= '0' && c <= '9';
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int scan_number(scan *s, an_err *err)
{
    size_t a = s->pos, i = a, n = s->len;
    const char *t = s->t;
    size_t end = a;
    while (end < n && (digit(t[end]) || t[end] == '-' || t[end] == '+' || t[end] == '.' ||
                       t[end] == 'e' || t[end] == 'E'))
        end++;
    const char *why = NULL;
    if (i < end && t[i] == '-')
        i++;
    if (i >= end || !digit(t[i]))
        why = "a digit must follow the minus sign";
    else if (t[i] == '0' && i + 1 < end && digit(t[i + 1]))
        why = "JSON numbers have no leading zeros";
    else {
        while (i < end && digit(t[i]))
            i++;
        if (i < end && t[i] == '.') {
            i++;
            if (i >= end || !digit(t[i]))
                why = "a digit must follow the decimal point";
            while (i < end && digit(t[i]))
                i++;
        }
        if (!why && i < end && (t[i] == 'e' || t[i] == 'E')) {
            i++;
            if (i < end && (t[i] == '+' || t[i] == '-'))
                i++;
            if (i >= end || !digit(t[i]))
                why = "a digit must follow the exponent";
            while (i < end && digit(t[i]))
                i++;
        }
        if (!why && i < end)
            why = "unexpected character in a number";
        /* An integer that a double cannot hold exactly would be read as another one
         * (9007199254740993 as ...992) without a word: refused. Up to 19 digits are checked;
         * longer ones are beyond every integer field's range, and a float field rounds. */
        size_t d0 = a + (t[a] == '-');
        size_t nd = 0;
        while (d0 + nd < end && digit(t[d0 + nd]))
            nd++;
        if (!why && nd == end - d0 && nd > 15 && nd <= 19) {
            uint64_t v = 0;
            for (size_t k = d0; k < end; k++)
                v = v * 10 + (uint64_t)(t[k] - '0');
            if (v > ((uint64_t)1 << 53) && (uint64_t)(double)v != v)
                why = "a double cannot hold this integer exactly (integers above 2^53 = "
                      "9007199254740992 lose their last digits)";
        }
    }
    if (why) {
        char msg[160];
        snprintf(msg, sizeof msg, "'%.*s' is not a JSON number: %s", (int)(end - a > 40 ? 40 : end - a),
                 t + a, why);
        return fail(s, a, msg, err);
    }
    s->pos = end;
    return 0;
}

int json_strict_check(const char *text, size_t len, an_err *err)
{
    static __thread scan sc; /* ~1.5 KiB: off the (small) worker stacks */
    scan *s = &sc;
    memset(s, 0, sizeof *s);
    s->t = text;
    s->len = text ? len : 0;
    while (s->pos < s->len) {
        char c = s->t[s->pos];
        int d = s->depth - 1;
        int tracked = d >= 0 && d < MAX_DEPTH;
        switch (c) {
        case '{':
        case '[':
            if (s->depth < MAX_DEPTH) {
                s->f[s->depth].kind = c;
                s->f[s->depth].index = 0;
                s->f[s->depth].want_key = c == '{';
                s->f[s->depth].base = s->plen;
            }
            s->depth++;
            if (s->depth > MAX_NESTING) {
                char msg[96];
                snprintf(msg, sizeof msg, "the JSON is nested more than %d levels deep",
                         MAX_NESTING);
                return fail(s, s->pos, msg, err);
            }
            if (c == '[' && s->depth <= MAX_DEPTH)
                set_path_index(s);
            s->pos++;
            break;
        case '}':
        case ']':
            if (s->depth == 0)
                return 0; /* cJSON reports it */
            if (tracked)
                s->plen = s->f[d].base;
            s->depth--;
            s->pos++;
            break;
        case ',':
            if (tracked && s->f[d].kind == '[') {
                s->f[d].index++;
                set_path_index(s);
            } else if (tracked) {
                s->f[d].want_key = 1;
                s->plen = s->f[d].base;
            }
            s->pos++;
            break;
        case '"': {
            int rc = scan_string(s, err);
            if (rc)
                return rc < 0 ? rc : 0;
            break;
        }
        default:
            if (c == '-' || digit(c)) {
                int rc = scan_number(s, err);
                if (rc)
                    return rc;
            } else {
                s->pos++; /* spaces, ':', literals; anything else is cJSON's to report */
            }
        }
    }
    return 0;
}
