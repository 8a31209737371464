/* upload_check — an uploaded data set checked piece by piece. */
#include "core/upload_check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/csv.h"
#include "core/csv_rows.h"
#include "core/jsonstrict.h"
#include "core/text.h"

void upload_check_init(upload_check *u, int kind)
{
    memset(u, 0, sizeof *u);
    u->kind = kind;
    u->line = 1;
    u->col = 1;
    u->ncols = -1;
    u->carry_line = 1;
}

void upload_check_free(upload_check *u)
{
    for (int c = 0; u->hdr && c < u->ncols; c++)
        free(u->hdr[c]);
    free(u->hdr);
    cJSON_Delete(u->names);
    free(u->carry);
    free(u->seen);
    memset(u, 0, sizeof *u);
}

static int fail_code(upload_check *u, int rc)
{
    u->failed = 1;
    return rc;
}

/* ---- UTF-8 ------------------------------------------------------------------------------ */

/* Length of the sequence a lead byte starts (0: not a lead byte). */
static int seq_len(unsigned char c)
{
    return c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 :
           (c & 0xF8) == 0xF0 ? 4 : 0;
}

/* Notes the code points of checked bytes (whole sequences: utf8_feed keeps an unfinished one
 * back) in the text's vocabulary. */
static void note_code_points(upload_check *u, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        int l = seq_len(p[i]);
        if (!l || i + (size_t)l > n) { /* cannot be: the bytes were checked */
            i++;
            continue;
        }
        uint32_t cp = l == 1 ? p[i] : (uint32_t)(p[i] & (0x7F >> l));
        for (int k = 1; k < l; k++)
            cp = (cp << 6) | (p[i + k] & 0x3F);
        if (cp < 0x110000)
            u->seen[cp >> 6] |= (uint64_t)1 << (cp & 63);
        i += (size_t)l;
    }
}

/* Counts lines, columns and characters over checked bytes. */
static void advance(upload_check *u, const unsigned char *p, size_t n)
{
    if (u->seen)
        note_code_points(u, p, n);
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n') {
            u->line++;
            u->col = 1;
        } else if ((p[i] & 0xC0) != 0x80) {
            u->col++;
        }
        u->chars += (p[i] & 0xC0) != 0x80;
    }
    u->off += n;
}

/* The bad byte is `upto` bytes into p, which starts at u->off. */
static int bad_utf8(upload_check *u, const unsigned char *p, size_t upto, an_err *err)
{
    advance(u, p, upto); /* line and column of the bad byte */
    return fail_code(u, an_fail(err, "body", "the body is not valid UTF-8 text or holds a NUL "
                                "byte: byte %llu (line %lld, column %llu)",
                                (unsigned long long)u->off, u->line,
                                (unsigned long long)u->col));
}

/* Checks n more bytes; an unfinished sequence at the end waits in u->seq. */
static int utf8_feed(upload_check *u, const unsigned char *p, size_t n, an_err *err)
{
    size_t i = 0;
    if (u->nseq) { /* complete the sequence the last piece ended in */
        int want = seq_len(u->seq[0]);
        while (u->nseq < want && i < n)
            u->seq[u->nseq++] = p[i++];
        if (u->nseq < want)
            return 0;
        size_t bad;
        if (!utf8_valid((const char *)u->seq, (size_t)want, &bad))
            return bad_utf8(u, u->seq, 0, err);
        advance(u, u->seq, (size_t)want);
        u->nseq = 0;
    }
    /* The tail that may be an unfinished sequence: from the last lead byte in the last 3. */
    size_t end = n;
    for (size_t k = 1; k <= 3 && k <= n - i; k++) {
        unsigned char c = p[n - k];
        if ((c & 0xC0) == 0x80)
            continue;
        int l = seq_len(c);
        if (l > (int)k)
            end = n - k;
        break;
    }
    size_t bad;
    if (!utf8_valid((const char *)p + i, end - i, &bad))
        return bad_utf8(u, p + i, bad, err);
    advance(u, p + i, end - i);
    for (size_t k = end; k < n; k++)
        u->seq[u->nseq++] = p[k];
    return 0;
}

/* ---- CSV -------------------------------------------------------------------------------- */

static int header(upload_check *u, const csv_reader *rd, an_err *e)
{
    u->ncols = rd->nfields;
    if (u->ncols > CSV_MAX_COLS)
        return an_fail(e, "csv", "the header has %d columns; at most %d are supported", u->ncols,
                       CSV_MAX_COLS);
    u->hdr = calloc((size_t)u->ncols, sizeof *u->hdr);
    u->names = cJSON_CreateArray();
    int rc = 0;
    for (int c = 0; u->hdr && u->names && c < u->ncols; c++) {
        const char *f = csv_field(rd, c);
        while (*f == ' ' || *f == '\t')
            f++;
        size_t k = strlen(f);
        while (k && (f[k - 1] == ' ' || f[k - 1] == '\t'))
            k--;
        u->hdr[c] = strndup(f, k);
        if (!u->hdr[c] || !cJSON_AddItemToArray(u->names, cJSON_CreateString(u->hdr[c])))
            rc = -ENOMEM;
    }
    if (!u->hdr || !u->names || rc)
        return an_failc(e, -ENOMEM, "csv", "out of memory for the header");
    return csv_check_header((const char *const *)u->hdr, u->ncols, "csv", e);
}

/* Checks the complete records in text[0, len) (it starts at a record, and ends after one). */
static int records(upload_check *u, const char *text, size_t len, an_err *e)
{
    if (u->ncols < 0) /* the header's records: a byte order mark is not part of its name */
        csv_skip_bom(&text, &len);
    csv_reader rd;
    int rc = csv_reader_init(&rd, text, len, "csv", e);
    if (rc)
        return rc;
    rd.line = u->carry_line;
    while ((rc = csv_next(&rd, e)) == 1) {
        rc = 0;
        if (u->ncols < 0) {
            if ((rc = header(u, &rd, e)))
                break;
            continue;
        }
        long long n = ++u->rows;
        if (rd.nfields != u->ncols) {
            rc = an_fail(e, "csv", "row %lld (line %lld) has %d fields; the header has %d", n,
                         rd.rec_line, rd.nfields, u->ncols);
            break;
        }
        for (int c = 0; c < u->ncols && !rc; c++) {
            double v;
            char field[128];
            snprintf(field, sizeof field, "csv[%lld].%.40s", n, u->hdr[c]);
            rc = csv_cell_number(csv_field(&rd, c), n, rd.rec_line, u->hdr[c], &v, field, e);
        }
        if (rc)
            break;
    }
    u->carry_line = rd.line;
    csv_reader_free(&rd);
    return rc;
}

/* Where the complete records of text[0, n) end: after the last line end outside quotes (a
 * CR counts only when the byte after it is known and is not the LF of a CRLF). */
static size_t boundary(const char *t, size_t n, int *open_quote)
{
    int quoted = 0;
    size_t b = 0;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (c == '"')
            quoted = !quoted;
        else if (!quoted && (c == '\n' || (c == '\r' && i + 1 < n && t[i + 1] != '\n')))
            b = i + 1;
    }
    *open_quote = quoted;
    return b;
}

static int csv_feed(upload_check *u, const char *data, size_t n, an_err *e)
{
    if (u->ncarry + n > u->capcarry) {
        size_t cap = u->capcarry ? u->capcarry : 1 << 16;
        while (cap < u->ncarry + n)
            cap *= 2;
        char *p = realloc(u->carry, cap);
        if (!p)
            return an_failc(e, -ENOMEM, "csv", "out of memory checking the CSV");
        u->carry = p;
        u->capcarry = cap;
    }
    memcpy(u->carry + u->ncarry, data, n);
    u->ncarry += n;
    int quoted;
    size_t b = boundary(u->carry, u->ncarry, &quoted);
    int rc = b ? records(u, u->carry, b, e) : 0;
    if (rc)
        return rc;
    memmove(u->carry, u->carry + b, u->ncarry - b);
    u->ncarry -= b;
    if (u->ncarry > UPLOAD_MAX_RECORD) {
        /* A record this long is either malformed (a quote left open: named as the reader
         * names it) or beyond what is taken. */
        rc = quoted ? records(u, u->carry, u->ncarry, e) : 0;
        if (!rc)
            rc = an_fail(e, "csv", "the record starting at line %lld is longer than %zu bytes",
                         u->carry_line, UPLOAD_MAX_RECORD);
        return rc;
    }
    return 0;
}

/* ---- both --------------------------------------------------------------------------------- */

int upload_check_feed(upload_check *u, const char *data, size_t n, an_err *err)
{
    if (u->failed)
        return an_fail(err, "body", "the upload was already found invalid");
    if (u->kind == UPLOAD_TEXT && !u->seen &&
        !(u->seen = calloc(UPLOAD_SEEN_WORDS, sizeof *u->seen)))
        return an_failc(err, -ENOMEM, "text", "out of memory for the vocabulary");
    int rc = utf8_feed(u, (const unsigned char *)data, n, err);
    if (!rc && u->kind == UPLOAD_CSV)
        rc = csv_feed(u, data, n, err);
    return rc ? fail_code(u, rc) : 0;
}

int upload_check_finish(upload_check *u, int64_t *rows, cJSON **columns, an_err *err)
{
    *columns = NULL;
    if (u->failed)
        return an_fail(err, "body", "the upload was already found invalid");
    if (u->nseq) /* the body ends inside a sequence */
        return fail_code(u, bad_utf8(u, u->seq, 0, err));
    if (u->kind == UPLOAD_TEXT) {
        if (u->chars < 2)
            return fail_code(u, an_fail(err, "text", "the text has %llu character%s; a corpus "
                                        "needs at least 2 (a job on it, a window of its "
                                        "block_size + 1)", (unsigned long long)u->chars,
                                        u->chars == 1 ? "" : "s"));
        *rows = (int64_t)u->chars;
        *columns = cJSON_CreateArray();
        return *columns ? 0 : fail_code(u, an_failc(err, -ENOMEM, "text", "out of memory"));
    }
    int rc = u->ncarry ? records(u, u->carry, u->ncarry, err) : 0;
    u->ncarry = 0;
    if (!rc && u->ncols < 0)
        rc = an_fail(err, "csv", "the CSV text is empty: expected a header row and data rows");
    if (!rc && u->rows < 1)
        rc = an_fail(err, "csv", "the CSV text has a header but no data rows");
    if (rc)
        return fail_code(u, rc);
    *rows = u->rows;
    *columns = u->names;
    u->names = NULL;
    return 0;
}

cJSON *upload_check_vocab(const upload_check *u)
{
    if (u->kind != UPLOAD_TEXT || u->failed)
        return NULL;
    text_vocab v = {.tokenizer = TEXT_CHAR};
    size_t n = 0;
    for (size_t w = 0; u->seen && w < UPLOAD_SEEN_WORDS; w++)
        n += (size_t)__builtin_popcountll(u->seen[w]);
    if (!n || !(v.cps = malloc(n * sizeof *v.cps)))
        return NULL;
    for (uint32_t cp = 0; cp < 0x110000; cp++)
        if (u->seen[cp >> 6] >> (cp & 63) & 1)
            v.cps[v.size++] = cp;
    cJSON *j = text_vocab_json(&v);
    free(v.cps);
    return j;
}
