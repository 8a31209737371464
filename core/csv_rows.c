/* csv_rows — one CSV record at a time. */
#include "core/csv_rows.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/csv.h"

int csv_reader_init(csv_reader *r, const char *text, size_t len, const char *field,
                    an_err *err)
{
    memset(r, 0, sizeof *r);
    r->text = text;
    r->len = len;
    r->line = 1;
    r->field = field;
    const char *nul = len ? memchr(text, '\0', len) : NULL;
    if (nul) {
        long long line = 1;
        for (const char *p = text; p < nul; p++)
            line += *p == '\n';
        return an_fail(err, field, "the CSV text contains a NUL byte (line %lld): expected text",
                       line);
    }
    return 0;
}

void csv_reader_free(csv_reader *r)
{
    free(r->row);
    free(r->starts);
    memset(r, 0, sizeof *r);
}

/* Room for n more bytes in the row buffer. */
static int row_room(csv_reader *r, size_t n)
{
    if (r->row_len + n <= r->row_cap)
        return 0;
    size_t cap = r->row_cap ? r->row_cap : 256;
    while (cap < r->row_len + n)
        cap *= 2;
    char *p = realloc(r->row, cap);
    if (!p)
        return -ENOMEM;
    r->row = p;
    r->row_cap = cap;
    return 0;
}

static int push_start(csv_reader *r)
{
    if (r->nfields == r->starts_cap) {
        int cap = r->starts_cap ? 2 * r->starts_cap : 16;
        size_t *p = realloc(r->starts, (size_t)cap * sizeof *p);
        if (!p)
            return -ENOMEM;
        r->starts = p;
        r->starts_cap = cap;
    }
    r->starts[r->nfields++] = r->row_len;
    return 0;
}

/* Appends one byte of a field: 1 once the field is longer than CSV_MAX_FIELD. */
static int put(csv_reader *r, size_t fstart, char c)
{
    if (row_room(r, 1))
        return -ENOMEM;
    r->row[r->row_len++] = c;
    return r->row_len - fstart > CSV_MAX_FIELD;
}

int csv_next(csv_reader *r, an_err *err)
{
    const char *text = r->text, *field = r->field;
    size_t len = r->len;
    r->row_len = 0;
    r->nfields = 0;
    /* At the start of a record. Skip empty lines. */
    while (r->i < len && (text[r->i] == '\n' || text[r->i] == '\r')) {
        if (text[r->i] == '\r' && r->i + 1 < len && text[r->i + 1] == '\n')
            r->i++;
        r->i++;
        r->line++;
    }
    if (r->i >= len)
        return 0;
    r->rec_line = r->line;
    size_t i = r->i;
    int rc = 0;
    for (;;) { /* one field */
        size_t fstart = r->row_len;
        if (push_start(r))
            goto nomem;
        int over = 0;
        if (i < len && text[i] == '"') {
            long long qline = r->line;
            i++;
            for (;;) {
                if (i >= len) {
                    r->i = i;
                    return an_fail(err, field, "unterminated quoted field: the quote opened on "
                                   "line %lld is never closed", qline);
                }
                if (text[i] == '"') {
                    if (i + 1 < len && text[i + 1] == '"') {
                        if ((over = put(r, fstart, '"')) != 0)
                            break;
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                r->line += text[i] == '\n';
                if ((over = put(r, fstart, text[i++])) != 0)
                    break;
            }
            if (over < 0)
                goto nomem;
            if (!over && i < len && text[i] != ',' && text[i] != '\n' && text[i] != '\r') {
                r->i = i;
                return an_fail(err, field, "line %lld: expected a comma or a line end after a "
                               "closing quote, got '%c'", r->line,
                               isprint((unsigned char)text[i]) ? text[i] : '?');
            }
        } else {
            while (i < len && text[i] != ',' && text[i] != '\n' && text[i] != '\r') {
                if (text[i] == '"') {
                    r->i = i;
                    return an_fail(err, field, "line %lld: a quote inside an unquoted field; "
                                   "quote the whole field and double the quote (\"\")",
                                   r->line);
                }
                if ((over = put(r, fstart, text[i++])) != 0)
                    break;
            }
            if (over < 0)
                goto nomem;
        }
        if (over) {
            r->i = i;
            return an_fail(err, field, "line %lld: a field longer than %d bytes", r->line,
                           CSV_MAX_FIELD);
        }
        if (row_room(r, 1))
            goto nomem;
        r->row[r->row_len++] = '\0';
        if (i < len && text[i] == ',') {
            i++;
            continue;
        }
        break; /* line end or end of text */
    }
    if (i < len) { /* consume the line end */
        if (text[i] == '\r' && i + 1 < len && text[i + 1] == '\n')
            i++;
        i++;
        r->line++;
    }
    r->i = i;
    r->nrecords++;
    return 1;
nomem:
    rc = an_failc(err, -ENOMEM, field, "out of memory reading a CSV row of %zu bytes",
                  r->row_len);
    return rc;
}

int csv_cell_number(const char *cell, long long row, long long line, const char *col,
                    double *v, const char *field, an_err *err)
{
    const char *s = cell;
    while (*s == ' ' || *s == '\t')
        s++;
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    const char *e = end;
    while (*e == ' ' || *e == '\t')
        e++;
    /* decimal only: strtod would read 0x10 as 16 */
    int hex = 0;
    for (const char *p = s; p < end; p++)
        hex |= *p == 'x' || *p == 'X';
    if (hex) {
        char shown[40];
        snprintf(shown, sizeof shown, "%.32s%s", cell, strlen(cell) > 32 ? "…" : "");
        return an_fail(err, field, "row %lld (line %lld), column '%s': '%s' is not a decimal "
                       "number", row, line, col, shown);
    }
    if (end == s || *e || !isfinite(d) || errno == ERANGE) {
        /* the cell as shown, cut short */
        char shown[40];
        size_t n = strlen(cell);
        snprintf(shown, sizeof shown, "%.32s%s", cell, n > 32 ? "…" : "");
        return an_fail(err, field, "row %lld (line %lld), column '%s': '%s' is %s", row, line,
                       col, shown,
                       end == s || *e ? (n ? "not a number" : "empty; expected a number")
                                      : "not a finite number");
    }
    *v = d;
    return 0;
}
