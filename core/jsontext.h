/* jsontext — JSON text parsed with errors that say where. */
#ifndef ANNEALD_JSONTEXT_H
#define ANNEALD_JSONTEXT_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "core/err.h"

/* Parses JSON text, or fails with "malformed JSON at line L, column C: …" (line and column
 * from 1, column in bytes; trailing commas, comments, unterminated strings and cut-off text
 * are named as such). An empty or all-whitespace text and a top level that is not an object
 * are errors too. `text` need not be NUL-terminated: exactly `len` bytes are read. Used for
 * every JSON body and file; *out is the caller's to cJSON_Delete. */
int json_parse_text(const char *text, size_t len, cJSON **out, an_err *err);

#endif
