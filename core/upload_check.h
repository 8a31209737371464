/* upload_check — the check of an uploaded data set, fed piece by piece as the body arrives.
 *
 * An upload is stored as it comes (a few MiB at a time), so it is never held whole; this
 * checks it on the way with the rules and the messages of a whole-body check: the body is
 * UTF-8 without NUL bytes (the byte, line and column of the first bad one); a CSV data set
 * has a header of unique names and, in every row, as many fields as the header and a number
 * in every cell (row, line and column named); a text corpus has at least two characters.
 * Memory: the header, one record not yet complete (at most UPLOAD_MAX_RECORD bytes) and a
 * few bytes of an unfinished UTF-8 sequence, whatever the size of the body. */
#ifndef ANNEALD_UPLOAD_CHECK_H
#define ANNEALD_UPLOAD_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/err.h"

#define UPLOAD_MAX_RECORD ((size_t)16 << 20) /* bytes of one CSV record */

enum upload_kind { UPLOAD_CSV = 'c', UPLOAD_TEXT = 't' };

typedef struct upload_check {
    int kind;                    /* enum upload_kind */
    int failed;
    /* UTF-8, over the whole body */
    uint64_t off;                /* bytes checked */
    long long line;              /* line and column of the next byte */
    uint64_t col;
    unsigned char seq[4];        /* an unfinished multi-byte sequence at a piece's end */
    int nseq;
    uint64_t chars;              /* characters (text) */
    /* CSV */
    char *carry;                 /* the record not yet complete, then the next piece */
    size_t ncarry, capcarry;
    long long carry_line;        /* line where carry starts */
    int ncols;                   /* -1 until the header */
    char **hdr;
    cJSON *names;
    long long rows;
} upload_check;

void upload_check_init(upload_check *u, int kind);
void upload_check_free(upload_check *u);

/* The next n bytes of the body. An error (with its field, "body", "csv" or "text") sticks. */
int upload_check_feed(upload_check *u, const char *data, size_t n, an_err *err);

/* After the last byte: the rows (CSV data rows, or characters of a text) and the columns (a
 * JSON array of the header names, [] for text; the caller's to delete). */
int upload_check_finish(upload_check *u, int64_t *rows, cJSON **columns, an_err *err);

#endif
