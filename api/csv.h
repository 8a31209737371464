/* csv — checking an uploaded data set: a header row of column names, then rows of numbers.
 *
 * Pure (no I/O). The daemon stores the text as it came; this check decides whether it is
 * accepted and describes it (rows, column names). A bad file is rejected with the row and
 * column of the first problem: rows count from 1 for the first data row (the header is row
 * 0), columns from 1. */
#ifndef ANNEALD_CSV_H
#define ANNEALD_CSV_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/err.h"

#define CSV_MAX_COLUMNS 4096

/* Checks `text`. On success *rows is the number of data rows and *columns a new cJSON array
 * of the column names (the caller deletes it). Fails with -EINVAL and an error whose field is
 * "csv[ROW][COLUMN]" (or "csv[0]" for the header) and whose message names the column. Empty
 * lines at the end are ignored; \r\n line ends are accepted; a header name may be quoted. */
int csv_check(const char *text, size_t len, int64_t *rows, cJSON **columns, an_err *err);

#endif
