/* jsonscan — a JSON syntax check that reports the first offending byte. */
#include "core/jsonscan.h"

#define SCAN_MAX_DEPTH 1000

typedef struct scan {
    const char *t;
    size_t len, pos;
    int depth;
} scan;

#define FAIL ((size_t)-1)

static void skip_ws(scan *s)
{
    while (s->pos < s->len && (s->t[s->pos] == ' ' || s->t[s->pos] == '\t' ||
                               s->t[s->pos] == '\n' || s->t[s->pos] == '\r'))
        s->pos++;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Each parser returns 0 and leaves pos after the item, or -1 with pos at the offending byte
 * (len when the text ended). */
static int value(scan *s);

static int string(scan *s)
{
    if (s->pos >= s->len || s->t[s->pos] != '"')
        return -1;
    s->pos++;
    while (s->pos < s->len) {
        unsigned char c = (unsigned char)s->t[s->pos];
        if (c == '"') {
            s->pos++;
            return 0;
        }
        if (c < 0x20)
            return -1;
        if (c == '\\') {
            s->pos++;
            if (s->pos >= s->len)
                return -1;
            char e = s->t[s->pos];
            if (e == 'u') {
                for (int k = 0; k < 4; k++) {
                    s->pos++;
                    if (s->pos >= s->len || !is_hex(s->t[s->pos]))
                        return -1;
                }
            } else if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' &&
                       e != 'r' && e != 't') {
                return -1;
            }
        }
        s->pos++;
    }
    return -1;
}

static int number(scan *s)
{
    if (s->pos < s->len && s->t[s->pos] == '-')
        s->pos++;
    if (s->pos >= s->len || !is_digit(s->t[s->pos]))
        return -1;
    if (s->t[s->pos] == '0')
        s->pos++;
    else
        while (s->pos < s->len && is_digit(s->t[s->pos]))
            s->pos++;
    if (s->pos < s->len && s->t[s->pos] == '.') {
        s->pos++;
        if (s->pos >= s->len || !is_digit(s->t[s->pos]))
            return -1;
        while (s->pos < s->len && is_digit(s->t[s->pos]))
            s->pos++;
    }
    if (s->pos < s->len && (s->t[s->pos] == 'e' || s->t[s->pos] == 'E')) {
        s->pos++;
        if (s->pos < s->len && (s->t[s->pos] == '+' || s->t[s->pos] == '-'))
            s->pos++;
        if (s->pos >= s->len || !is_digit(s->t[s->pos]))
            return -1;
        while (s->pos < s->len && is_digit(s->t[s->pos]))
            s->pos++;
    }
    return 0;
}

/* A misspelt literal ("tru") is reported at its first byte: the word is what is wrong. */
static int literal(scan *s, const char *word)
{
    size_t start = s->pos;
    for (const char *w = word; *w; w++, s->pos++)
        if (s->pos >= s->len || s->t[s->pos] != *w) {
            s->pos = s->pos >= s->len ? s->len : start;
            return -1;
        }
    return 0;
}

/* An object or array after its opening bracket. */
static int members(scan *s, int object)
{
    char close = object ? '}' : ']';
    if (++s->depth > SCAN_MAX_DEPTH) {
        s->pos--;
        return -1;
    }
    skip_ws(s);
    if (s->pos < s->len && s->t[s->pos] == close) {
        s->pos++;
        s->depth--;
        return 0;
    }
    for (;;) {
        skip_ws(s);
        if (object) {
            if (string(s))
                return -1;
            skip_ws(s);
            if (s->pos >= s->len || s->t[s->pos] != ':')
                return -1;
            s->pos++;
        }
        if (value(s))
            return -1;
        skip_ws(s);
        if (s->pos >= s->len)
            return -1;
        if (s->t[s->pos] == close) {
            s->pos++;
            s->depth--;
            return 0;
        }
        if (s->t[s->pos] != ',')
            return -1;
        s->pos++;
    }
}

static int value(scan *s)
{
    skip_ws(s);
    if (s->pos >= s->len)
        return -1;
    switch (s->t[s->pos]) {
    case '{': s->pos++; return members(s, 1);
    case '[': s->pos++; return members(s, 0);
    case '"': return string(s);
    case 't': return literal(s, "true");
    case 'f': return literal(s, "false");
    case 'n': return literal(s, "null");
    default: return number(s);
    }
}

size_t json_scan_error(const char *text, size_t len)
{
    scan s = {.t = text, .len = len};
    if (value(&s))
        return s.pos < len ? s.pos : len;
    skip_ws(&s);
    return s.pos < len ? s.pos : FAIL;
}
