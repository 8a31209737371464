/* jsontext — JSON text parsed with errors that say where. */
#ifndef ANNEALD_JSONTEXT_H
#define ANNEALD_JSONTEXT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/err.h"

/* Parses JSON text, or fails with "malformed JSON at line L, column C: …" (line and column
 * from 1, column in bytes; trailing commas, comments, unterminated strings and cut-off text
 * are named as such). An empty or all-whitespace text and a top level that is not an object
 * are errors too. `text` need not be NUL-terminated: exactly `len` bytes are read. Used for
 * every JSON body and file; *out is the caller's to cJSON_Delete. */
int json_parse_text(const char *text, size_t len, cJSON **out, an_err *err);

/* An upper bound of the heap json_parse_text's tree of `text` takes: a node and a text copy
 * (with the allocator's overhead) for every value that can start there, after each comma
 * and opening bracket, and a copy of every key. A body of small numbers takes about 40
 * times its size (the bound says 57). The memory budget is charged this before a body is
 * parsed. */
uint64_t json_parse_cost(const char *text, size_t len);

#endif
