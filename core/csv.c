/* csv — one pass over the text, unquoting into a buffer no longer than the input. */
#include "core/csv.h"

#include "core/csv_rows.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

/* Grows an array to hold n + 1 elements of `size` bytes. */
static int grow(void **p, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return 0;
    size_t nc = *cap ? 2 * *cap : 256;
    void *q = realloc(*p, nc * size);
    if (!q)
        return -ENOMEM;
    *p = q;
    *cap = nc;
    return 0;
}

void csv_skip_bom(const char **text, size_t *len)
{
    if (*len >= 3 && memcmp(*text, "\xEF\xBB\xBF", 3) == 0) {
        *text += 3;
        *len -= 3;
    }
}

int csv_parse(const char *text, size_t len, csv_table *out, const char *field, an_err *err)
{
    memset(out, 0, sizeof *out);
    csv_skip_bom(&text, &len);
    csv_reader rd;
    int rc = csv_reader_init(&rd, text, len, field, err);
    if (rc)
        return rc;
    /* Unquoting only shortens and each separator becomes a NUL: len + 1 bytes hold it all. */
    char *buf = malloc(len + 1);
    size_t *starts = NULL, nstarts = 0, scap = 0, lcap = 0, o = 0;
    long long *lines = NULL;
    size_t nlines = 0;
    int ncols = -1;
    if (!buf)
        rc = -ENOMEM;
    while (!rc && (rc = csv_next(&rd, err)) == 1) {
        rc = 0;
        if (ncols < 0) {
            if (rd.nfields > CSV_MAX_COLS) {
                rc = an_fail(err, field, "the header has %d columns; at most %d are supported",
                             rd.nfields, CSV_MAX_COLS);
                break;
            }
            ncols = rd.nfields;
        } else if (rd.nfields != ncols) {
            rc = an_fail(err, field, "row %lld (line %lld) has %d fields; the header has %d",
                         (long long)nlines, rd.rec_line, rd.nfields, ncols);
            break;
        }
        for (int k = 0; !rc && k < rd.nfields; k++) {
            rc = grow((void **)&starts, &scap, nstarts, sizeof *starts);
            if (!rc)
                starts[nstarts++] = o + rd.starts[k];
        }
        if (!rc)
            rc = grow((void **)&lines, &lcap, nlines, sizeof *lines);
        if (rc)
            break;
        lines[nlines++] = rd.rec_line;
        memcpy(buf + o, rd.row, rd.row_len);
        o += rd.row_len;
    }
    csv_reader_free(&rd);
    if (rc == -ENOMEM)
        an_failc(err, rc, field, "out of memory parsing %zu bytes of CSV", len);
    if (!rc && ncols < 0)
        rc = an_fail(err, field, "the CSV text is empty: expected a header row and data rows");
    if (!rc && nlines < 2)
        rc = an_fail(err, field, "the CSV text has a header but no data rows");
    if (rc) {
        free(buf);
        free(starts);
        free(lines);
        return rc;
    }
    out->ncols = ncols;
    out->nrows = (long long)nlines - 1;
    out->buf = buf;
    out->names = malloc((size_t)ncols * sizeof *out->names);
    out->cells = malloc((size_t)out->nrows * ncols * sizeof *out->cells + 1);
    out->lines = malloc((size_t)out->nrows * sizeof *out->lines + 1);
    if (!out->names || !out->cells || !out->lines) {
        free(starts);
        free(lines);
        csv_free(out);
        return an_failc(err, -ENOMEM, field, "out of memory for the CSV table");
    }
    for (int c = 0; c < ncols; c++)
        out->names[c] = trim(buf + starts[c]);
    for (size_t k = (size_t)ncols; k < nstarts; k++)
        out->cells[k - (size_t)ncols] = buf + starts[k];
    for (long long r = 0; r < out->nrows; r++)
        out->lines[r] = lines[r + 1];
    free(starts);
    free(lines);
    return csv_check_header(out->names, ncols, field, err) ? (csv_free(out), -EINVAL) : 0;
}

int csv_check_header(const char *const *names, int ncols, const char *field, an_err *err)
{
    for (int c = 0; c < ncols; c++) {
        if (!names[c][0])
            return an_fail(err, field, "header column %d has no name", c + 1);
        for (int d = 0; d < c; d++)
            if (strcmp(names[c], names[d]) == 0)
                return an_fail(err, field, "the header names column '%s' twice (columns %d "
                               "and %d)", names[c], d + 1, c + 1);
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
    return csv_cell_number(t->cells[row * t->ncols + col], row + 1, t->lines[row],
                           t->names[col], v, field, err);
}
