/* csv — one pass over the text, unquoting into a buffer no longer than the input. */
#include "core/csv.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A growable array of field starts (offsets into buf) and row lines. */
typedef struct builder {
    size_t *starts;
    size_t nstarts, cap;
    long long *lines;
    long long nlines, lcap;
} builder;

static int push_start(builder *b, size_t off)
{
    if (b->nstarts == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 256;
        size_t *p = realloc(b->starts, cap * sizeof *p);
        if (!p)
            return -ENOMEM;
        b->starts = p;
        b->cap = cap;
    }
    b->starts[b->nstarts++] = off;
    return 0;
}

static int push_line(builder *b, long long line)
{
    if (b->nlines == b->lcap) {
        long long cap = b->lcap ? 2 * b->lcap : 64;
        long long *p = realloc(b->lines, (size_t)cap * sizeof *p);
        if (!p)
            return -ENOMEM;
        b->lines = p;
        b->lcap = cap;
    }
    b->lines[b->nlines++] = line;
    return 0;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

int csv_parse(const char *text, size_t len, csv_table *out, const char *field, an_err *err)
{
    memset(out, 0, sizeof *out);
    if (memchr(text, '\0', len)) {
        size_t at = (size_t)((const char *)memchr(text, '\0', len) - text);
        long long line = 1;
        for (size_t i = 0; i < at; i++)
            line += text[i] == '\n';
        return an_fail(err, field, "the CSV text contains a NUL byte (line %lld): expected text",
                       line);
    }
    char *buf = malloc(len + 1);
    builder b = {0};
    if (!buf)
        return an_failc(err, -ENOMEM, field, "out of memory for %zu bytes of CSV", len);
    size_t o = 0, i = 0;
    long long line = 1;
    int ncols = -1, rc = 0;
    size_t row_first = 0; /* index in b.starts of the current row's first field */
    while (i < len && !rc) {
        /* At the start of a record. Skip empty lines. */
        if (text[i] == '\n' || text[i] == '\r') {
            if (text[i] == '\r' && i + 1 < len && text[i + 1] == '\n')
                i++;
            i++;
            line++;
            continue;
        }
        long long rec_line = line;
        row_first = b.nstarts;
        for (;;) { /* one field */
            size_t fstart = o;
            if ((rc = push_start(&b, fstart)))
                break;
            if (i < len && text[i] == '"') {
                long long qline = line;
                i++;
                for (;;) {
                    if (i >= len) {
                        rc = an_fail(err, field,
                                     "unterminated quoted field: the quote opened on line %lld "
                                     "is never closed",
                                     qline);
                        break;
                    }
                    if (text[i] == '"') {
                        if (i + 1 < len && text[i + 1] == '"') {
                            buf[o++] = '"';
                            i += 2;
                            continue;
                        }
                        i++;
                        break;
                    }
                    line += text[i] == '\n';
                    buf[o++] = text[i++];
                    if (o - fstart > CSV_MAX_FIELD)
                        break;
                }
                if (!rc && i < len && text[i] != ',' && text[i] != '\n' && text[i] != '\r' &&
                    o - fstart <= CSV_MAX_FIELD)
                    rc = an_fail(err, field,
                                 "line %lld: expected a comma or a line end after a closing "
                                 "quote, got '%c'",
                                 line, isprint((unsigned char)text[i]) ? text[i] : '?');
            } else {
                while (i < len && text[i] != ',' && text[i] != '\n' && text[i] != '\r') {
                    if (text[i] == '"') {
                        rc = an_fail(err, field,
                                     "line %lld: a quote inside an unquoted field; quote the "
                                     "whole field and double the quote (\"\")",
                                     line);
                        break;
                    }
                    buf[o++] = text[i++];
                    if (o - fstart > CSV_MAX_FIELD)
                        break;
                }
            }
            if (rc)
                break;
            if (o - fstart > CSV_MAX_FIELD) {
                rc = an_fail(err, field, "line %lld: a field longer than %d bytes", line,
                             CSV_MAX_FIELD);
                break;
            }
            buf[o++] = '\0';
            if (i < len && text[i] == ',') {
                i++;
                continue;
            }
            break; /* line end or end of text */
        }
        if (rc)
            break;
        if (i < len) { /* consume the line end */
            if (text[i] == '\r' && i + 1 < len && text[i + 1] == '\n')
                i++;
            i++;
            line++;
        }
        long long nf = (long long)(b.nstarts - row_first);
        if (ncols < 0) {
            if (nf > CSV_MAX_COLS) {
                rc = an_fail(err, field, "the header has %lld columns; at most %d are supported",
                             nf, CSV_MAX_COLS);
                break;
            }
            ncols = (int)nf;
        } else if (nf != ncols) {
            rc = an_fail(err, field, "row %lld (line %lld) has %lld fields; the header has %d",
                         b.nlines, rec_line, nf, ncols);
            break;
        }
        if ((rc = push_line(&b, rec_line)))
            break;
    }
    if (rc == -ENOMEM)
        an_failc(err, rc, field, "out of memory parsing %zu bytes of CSV", len);
    if (!rc && ncols < 0)
        rc = an_fail(err, field, "the CSV text is empty: expected a header row and data rows");
    if (!rc && b.nlines < 2)
        rc = an_fail(err, field, "the CSV text has a header but no data rows");
    if (rc) {
        free(buf);
        free(b.starts);
        free(b.lines);
        return rc;
    }
    out->ncols = ncols;
    out->nrows = b.nlines - 1;
    out->buf = buf;
    out->names = malloc((size_t)ncols * sizeof *out->names);
    out->cells = malloc((size_t)out->nrows * ncols * sizeof *out->cells + 1);
    out->lines = malloc((size_t)out->nrows * sizeof *out->lines + 1);
    if (!out->names || !out->cells || !out->lines) {
        free(b.starts);
        free(b.lines);
        csv_free(out);
        return an_failc(err, -ENOMEM, field, "out of memory for the CSV table");
    }
    for (int c = 0; c < ncols; c++)
        out->names[c] = trim(buf + b.starts[c]);
    for (size_t k = (size_t)ncols; k < b.nstarts; k++)
        out->cells[k - (size_t)ncols] = buf + b.starts[k];
    for (long long r = 0; r < out->nrows; r++)
        out->lines[r] = b.lines[r + 1];
    free(b.starts);
    free(b.lines);
    for (int c = 0; c < ncols; c++) {
        if (!out->names[c][0]) {
            csv_free(out);
            return an_fail(err, field, "header column %d has no name", c + 1);
        }
        for (int d = 0; d < c; d++)
            if (strcmp(out->names[c], out->names[d]) == 0) {
                rc = an_fail(err, field, "the header names column '%s' twice (columns %d and %d)",
                             out->names[c], d + 1, c + 1);
                csv_free(out);
                return rc;
            }
    }
    return 0;
}

void csv_free(csv_table *t)
{
    free(t->names);
    free(t->cells);
    free(t->lines);
    free(t->buf);
    memset(t, 0, sizeof *t);
}

int csv_column(const csv_table *t, const char *name)
{
    for (int c = 0; c < t->ncols; c++)
        if (strcmp(t->names[c], name) == 0)
            return c;
    return -1;
}

int csv_number(const csv_table *t, long long row, int col, double *v, const char *field,
               an_err *err)
{
    const char *s = t->cells[row * t->ncols + col];
    while (*s == ' ' || *s == '\t')
        s++;
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    const char *e = end;
    while (*e == ' ' || *e == '\t')
        e++;
    if (end == s || *e || !isfinite(d) || errno == ERANGE) {
        /* the cell as shown, cut short */
        char shown[40];
        size_t n = strlen(t->cells[row * t->ncols + col]);
        snprintf(shown, sizeof shown, "%.32s%s", t->cells[row * t->ncols + col],
                 n > 32 ? "…" : "");
        return an_fail(err, field, "row %lld (line %lld), column '%s': '%s' is %s", row + 1,
                       t->lines[row], t->names[col], shown,
                       end == s || *e ? (n ? "not a number" : "empty; expected a number")
                                      : "not a finite number");
    }
    *v = d;
    return 0;
}
