/* csv — a strict parser for the CSV text of data sets (builtin and uploaded).
 *
 * Accepts RFC 4180 CSV: a header row of unique names, comma-separated fields, quoted fields
 * ("a,b", doubled quotes for a quote, line breaks inside quotes), LF, CRLF or CR line ends;
 * empty lines are skipped. Everything else is an error that names the line (and row and
 * column where there is one): ragged rows, stray or unterminated quotes, NUL bytes, fields
 * longer than CSV_MAX_FIELD, an empty file, a header without data. Cells stay text until a
 * column is used (csv_number), so unused columns may hold anything. */
#ifndef ANNEALD_CSV_H
#define ANNEALD_CSV_H

#include <stddef.h>

#include "core/err.h"

#define CSV_MAX_FIELD 4096     /* bytes in one field */
#define CSV_MAX_COLS 65536

typedef struct csv_table {
    int ncols;
    long long nrows;          /* data rows, the header not counted */
    const char **names;       /* [ncols]: header names, surrounding spaces trimmed */
    const char **cells;       /* [nrows * ncols]: row-major field texts (unquoted) */
    long long *lines;         /* [nrows]: 1-based line of the file where each row starts */
    char *buf;                /* the unquoted, NUL-separated field texts (owned) */
} csv_table;

/* Parses `len` bytes of `text` into *out (csv_free it). Errors go to `err` with `field` as the
 * path (e.g. "data"). */
int csv_parse(const char *text, size_t len, csv_table *out, const char *field, an_err *err);

/* Steps past a UTF-8 byte order mark at the start of a CSV text (spreadsheets write one),
 * which would otherwise be part of the first column's name. */
void csv_skip_bom(const char **text, size_t *len);
void csv_free(csv_table *t);

/* Header names must be non-empty and unique: an error naming the column otherwise. */
int csv_check_header(const char *const *names, int ncols, const char *field, an_err *err);

/* The index of the column called `name`, or -1. */
int csv_column(const csv_table *t, const char *name);

/* Cell (row, col) (0-based data row) as a finite number, or an error such as
 * "row 17 (line 18), column 'petal_width': 'abc' is not a number". */
int csv_number(const csv_table *t, long long row, int col, double *v, const char *field,
               an_err *err);

#endif
