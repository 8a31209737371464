/* csv_rows — the CSV grammar of csv.h read one record at a time.
 *
 * A reader holds one record's unquoted fields (O(columns + record bytes)), so a pass over a
 * file of any length costs memory for its widest row only: the upload check runs on it, and
 * csv_parse builds its table from it. Same rules and errors as csv.h. */
#ifndef ANNEALD_CSV_ROWS_H
#define ANNEALD_CSV_ROWS_H

#include <stddef.h>

#include "core/err.h"

typedef struct csv_reader {
    const char *text;
    size_t len, i;            /* the text, the next byte to read */
    long long line;           /* 1-based line of byte i */
    const char *field;        /* path for errors ("csv", "data") */
    char *row;                /* the record's fields, unquoted, each NUL-terminated */
    size_t row_len, row_cap;
    size_t *starts;           /* [nfields]: offsets of the fields in row */
    int nfields, starts_cap;
    long long rec_line;       /* line where the record starts */
    long long nrecords;       /* records read so far (the header counts) */
} csv_reader;

/* Starts reading `len` bytes (a NUL byte anywhere is an error naming its line). */
int csv_reader_init(csv_reader *r, const char *text, size_t len, const char *field,
                    an_err *err);
void csv_reader_free(csv_reader *r);

/* Reads the next record: 1 (its fields at r->row + r->starts[k], k < r->nfields), 0 at the
 * end of the text, or a negative errno with err set (quotes, field length, NUL). Empty lines
 * are skipped. Field counts are not compared here: the caller knows the header. */
int csv_next(csv_reader *r, an_err *err);

/* Field k of the current record. */
static inline const char *csv_field(const csv_reader *r, int k)
{
    return r->row + r->starts[k];
}

/* Reads a cell text as a finite number (spaces around it allowed), or fails as csv_number:
 * "row 17 (line 18), column 'petal_width': 'abc' is not a number". */
int csv_cell_number(const char *cell, long long row, long long line, const char *col,
                    double *v, const char *field, an_err *err);

#endif
