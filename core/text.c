/* text — tokenizers, vocabulary and windows for language-model data (see text.h). */
#include "core/text.h"

#include <stdlib.h>
#include <string.h>

#include "core/rng.h"

/* One past the largest code point UTF-8 encodes. */
#define TEXT_CP_LIMIT 0x110000u

/* Decodes one UTF-8 sequence at s[i..len): the code point to *cp, its length returned, or 0
 * if it is not well-formed (overlong forms, surrogates and values past U+10FFFF included). */
static int utf8_next(const unsigned char *s, size_t i, size_t len, uint32_t *cp)
{
    unsigned c = s[i];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int n;
    uint32_t v, min;
    if ((c & 0xE0) == 0xC0) {
        n = 2, v = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3, v = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (i + (size_t)n > len)
        return 0;
    for (int k = 1; k < n; k++) {
        if ((s[i + k] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i + k] & 0x3F);
    }
    if (v < min || v >= TEXT_CP_LIMIT || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return n;
}

static int utf8_put(uint32_t cp, char out[5])
{
    unsigned char *o = (unsigned char *)out;
    int n;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp, n = 1;
    } else if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6)), o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        o[0] = (unsigned char)(0xF0 | (cp >> 18));
        o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[3] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    out[n] = '\0';
    return n;
}

void text_vocab_free(text_vocab *v)
{
    if (!v)
        return;
    free(v->cps);
    v->cps = NULL;
    v->size = 0;
}

/* Index of cp in the sorted vocabulary, or -1. */
static int32_t lookup(const text_vocab *v, uint32_t cp)
{
    int lo = 0, hi = v->size - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (v->cps[mid] == cp)
            return mid;
        if (v->cps[mid] < cp)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

static int too_short(size_t n, size_t min_tokens, const char *field, an_err *err)
{
    return an_fail(err, field, "the text has %zu token%s; at least %zu are needed (one window of "
                   "block_size + 1)", n, n == 1 ? "" : "s", min_tokens);
}

int text_tokenize(const char *s, size_t len, int tokenizer, size_t min_tokens, const char *field,
                  text_vocab *vocab, int32_t **tokens, size_t *ntok, an_err *err)
{
    const unsigned char *u = (const unsigned char *)s;
    memset(vocab, 0, sizeof *vocab);
    *tokens = NULL;
    *ntok = 0;
    int32_t *tok = malloc((len ? len : 1) * sizeof *tok);
    if (!tok)
        return an_failc(err, -ENOMEM, field, "out of memory for %zu tokens", len);
    size_t n = 0;
    if (tokenizer == TEXT_BYTE) {
        for (size_t i = 0; i < len; i++)
            tok[n++] = u[i];
        vocab->tokenizer = TEXT_BYTE;
        vocab->size = 256;
    } else {
        /* First pass: code points into tok (as uint32), and which ones occur. */
        for (size_t i = 0; i < len;) {
            uint32_t cp;
            int k = utf8_next(u, i, len, &cp);
            if (!k) {
                free(tok);
                return an_fail(err, field, "the text is not valid UTF-8 at byte %zu (use "
                               "\"tokenizer\": \"byte\" for binary data)", i);
            }
            /* NUL cannot be a vocabulary entry: the vocabulary is stored as JSON strings,
             * which end at it. Text with NULs is binary data. */
            if (cp == 0) {
                free(tok);
                return an_fail(err, field, "the text contains a NUL character at byte %zu (use "
                               "\"tokenizer\": \"byte\" for binary data)", i);
            }
            tok[n++] = (int32_t)cp;
            i += (size_t)k;
        }
        /* The distinct code points, in order: a presence bit per code point (136 KiB) read
         * back in order, where sorting a copy of a 1 MB corpus took a quarter of a second. */
        uint64_t *seen = calloc(TEXT_CP_LIMIT / 64, sizeof *seen);
        if (!seen) {
            free(tok);
            return an_failc(err, -ENOMEM, field, "out of memory for the vocabulary");
        }
        size_t d = 0;
        for (size_t i = 0; i < n; i++) {
            uint32_t cp = (uint32_t)tok[i];
            uint64_t bit = (uint64_t)1 << (cp & 63);
            d += !(seen[cp >> 6] & bit);
            seen[cp >> 6] |= bit;
        }
        uint32_t *cps = malloc((d ? d : 1) * sizeof *cps);
        if (!cps) {
            free(seen);
            free(tok);
            return an_failc(err, -ENOMEM, field, "out of memory for the vocabulary");
        }
        size_t k = 0;
        for (uint32_t w = 0; w < TEXT_CP_LIMIT / 64; w++)
            for (uint64_t m = seen[w]; m; m &= m - 1)
                cps[k++] = w * 64 + (uint32_t)__builtin_ctzll(m);
        free(seen);
        vocab->tokenizer = TEXT_CHAR;
        vocab->cps = cps;
        vocab->size = (int)d;
        for (size_t i = 0; i < n; i++)
            tok[i] = lookup(vocab, (uint32_t)tok[i]);
    }
    if (n < min_tokens) {
        free(tok);
        text_vocab_free(vocab);
        return too_short(n, min_tokens, field, err);
    }
    *tokens = tok;
    *ntok = n;
    return 0;
}

int text_encode(const text_vocab *v, const char *s, size_t len, const char *field, int32_t *out,
                size_t *n, an_err *err)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t k = 0;
    for (size_t i = 0; i < len;) {
        if (v->tokenizer == TEXT_BYTE) {
            out[k++] = u[i++];
            continue;
        }
        uint32_t cp;
        int m = utf8_next(u, i, len, &cp);
        if (!m)
            return an_fail(err, field, "not valid UTF-8 at byte %zu", i);
        int32_t t = lookup(v, cp);
        if (t < 0) {
            char c[5];
            utf8_put(cp, c);
            return an_fail(err, field, "character '%s' (U+%04X) at byte %zu is not in the "
                           "model's vocabulary of %d characters", cp >= 0x20 ? c : "?", cp, i,
                           v->size);
        }
        out[k++] = t;
        i += (size_t)m;
    }
    *n = k;
    return 0;
}

int text_decode_token(const text_vocab *v, int32_t tok, char out[5])
{
    out[0] = '\0';
    if (tok < 0 || tok >= v->size)
        return 0;
    if (v->tokenizer == TEXT_BYTE) {
        out[0] = (char)tok;
        out[1] = '\0';
        return 1;
    }
    return utf8_put(v->cps[tok], out);
}

cJSON *text_vocab_json(const text_vocab *v)
{
    cJSON *j = cJSON_CreateObject();
    if (!j)
        return NULL;
    cJSON_AddStringToObject(j, "tokenizer", v->tokenizer == TEXT_BYTE ? "byte" : "char");
    cJSON_AddNumberToObject(j, "size", v->size);
    if (v->tokenizer == TEXT_CHAR) {
        cJSON *arr = cJSON_AddArrayToObject(j, "tokens");
        for (int i = 0; arr && i < v->size; i++) {
            char c[5];
            utf8_put(v->cps[i], c);
            cJSON_AddItemToArray(arr, cJSON_CreateString(c));
        }
        if (!arr || cJSON_GetArraySize(arr) != v->size) {
            cJSON_Delete(j);
            return NULL;
        }
    }
    return j;
}

int text_vocab_from_json(const cJSON *j, const char *field, text_vocab *v, an_err *err)
{
    memset(v, 0, sizeof *v);
    const cJSON *tk = cJSON_GetObjectItemCaseSensitive(j, "tokenizer");
    if (!cJSON_IsString(tk))
        return an_fail(err, field, "the vocabulary has no tokenizer");
    if (strcmp(tk->valuestring, "byte") == 0) {
        v->tokenizer = TEXT_BYTE;
        v->size = 256;
        return 0;
    }
    if (strcmp(tk->valuestring, "char") != 0)
        return an_fail(err, field, "unknown tokenizer \"%s\"", tk->valuestring);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "tokens");
    int n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : -1;
    if (n < 1)
        return an_fail(err, field, "a char vocabulary needs a non-empty \"tokens\" array");
    v->tokenizer = TEXT_CHAR;
    v->cps = malloc((size_t)n * sizeof *v->cps);
    if (!v->cps)
        return an_failc(err, -ENOMEM, field, "out of memory");
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        uint32_t cp;
        const char *s = cJSON_IsString(e) ? e->valuestring : NULL;
        size_t len = s ? strlen(s) : 0;
        if (!s || !len || utf8_next((const unsigned char *)s, 0, len, &cp) != (int)len ||
            (i && cp <= v->cps[i - 1])) {
            text_vocab_free(v);
            return an_fail(err, field, "tokens[%d] must be one character, after the one before "
                           "it in code-point order", i);
        }
        v->cps[i++] = cp;
    }
    v->size = n;
    return 0;
}

size_t text_windows(size_t n, int T)
{
    return n < 1 || T < 1 ? 0 : (n - 1) / (size_t)T;
}

size_t text_train_tokens(size_t n, double fraction)
{
    return (size_t)((double)n * (1.0 - fraction));
}

int text_split_check(size_t n, int T, double fraction, const char *field,
                     text_split *out, an_err *err)
{
    out->ntrain = fraction > 0 ? text_train_tokens(n, fraction) : n;
    out->nval = n - out->ntrain;
    out->ktrain = text_windows(out->ntrain, T);
    out->kval = fraction > 0 ? text_windows(out->nval, T) : 0;
    if (n < (size_t)T + 1)
        return too_short(n, (size_t)T + 1, field, err);
    /* random sampling draws starts from 0 … ntrain−T−1 (text_random_start): one window's
     * tokens give the one start 0, as windows sampling gives its one window */
    if (out->ktrain < 1)
        return an_fail(err, fraction > 0 ? "validation.fraction" : field, "%zu training tokens "
                       "are too few for one window of block_size + 1 = %d tokens", out->ntrain,
                       T + 1);
    if (fraction > 0 && out->kval < 1)
        return an_fail(err, "validation.fraction", "validation.fraction %g leaves %zu tokens "
                       "for validation, fewer than one window of %d", fraction, out->nval, T + 1);
    return 0;
}

size_t text_count_tokens(const char *s, size_t len, int tokenizer)
{
    if (tokenizer == TEXT_BYTE)
        return len;
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80; /* every byte but a continuation starts one */
    return n;
}

void text_window(const int32_t *tokens, size_t k, int T, int32_t *idx, int32_t *targets)
{
    const int32_t *w = tokens + k * (size_t)T;
    memcpy(idx, w, (size_t)T * sizeof *idx);
    memcpy(targets, w + 1, (size_t)T * sizeof *targets);
}

size_t text_random_start(uint64_t seed, uint64_t step, uint64_t micro, uint64_t row,
                         size_t n_train, int T)
{
    uint32_t b[4];
    rng_block(seed, rng_stream_id(RNG_SAMPLE, step, micro, row), 0, b);
    uint64_t u = ((uint64_t)b[0] << 32) | b[1];
    uint64_t count = (uint64_t)(n_train - (size_t)T);
    /* Multiply-shift maps 64 random bits onto 0..count-1 without the modulo's skew. */
    return (size_t)(((unsigned __int128)u * count) >> 64);
}
