/* upload_check — the check of an uploaded data set, fed piece by piece as the body arrives.
 *
 * An upload is stored as it comes (a few MiB at a time), so it is never held whole; this
 * checks it on the way with the rules and the messages of a whole-body check: the body is
 * UTF-8 without NUL bytes (the byte, line and column of the first bad one); a CSV data set
 * has a header of unique names and, in every row, as many fields as the header and a number
 * in every cell (row, line and column named); a text corpus has at least two characters, and
 * its vocabulary is noted on the way. Memory: the header, one record not yet complete (at
 * most UPLOAD_MAX_RECORD bytes), a few bytes of an unfinished UTF-8 sequence and, for text,
 * a bit per code point, whatever the size of the body. */
#ifndef ANNEALD_UPLOAD_CHECK_H
#define ANNEALD_UPLOAD_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/err.h"

#define UPLOAD_MAX_RECORD ((size_t)16 << 20) /* bytes of one CSV record */
#define UPLOAD_SEEN_WORDS (0x110000 / 64)     /* 136 KiB: one bit per Unicode code point */

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
    uint64_t *seen;              /* text: a bit per code point that occurs (its vocabulary;
                                    UPLOAD_SEEN_WORDS words, allocated at the first piece) */
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

/* After a text's upload_check_finish: the vocabulary of its `char` tokenizer (the sorted
 * distinct code points, as text_vocab_json writes it: {"tokenizer": "char", "size": N,
 * "tokens": [...]}), which is the one a job on it will work out. NULL for CSV or out of
 * memory. */
cJSON *upload_check_vocab(const upload_check *u);

#endif
