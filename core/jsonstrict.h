/* jsonstrict — what cJSON lets through that RFC 8259 does not, checked before parsing.
 *
 * cJSON reads numbers with strtod, so "01", "1." and "1.e5" pass; it copies string bytes as
 * they come, so invalid UTF-8 reaches the store and is echoed back raw (strict clients then
 * fail to parse the whole answer); and it decodes "\u0000" into a NUL that silently ends the
 * C string. A job name or data set that was cut or mangled on the way in is worse than a 400,
 * so every JSON text the API or the command line parses is scanned once here first.
 *
 * The scan follows the structure only as far as it needs to name the JSON path of the bad
 * value ("name", "model.hidden[1]"); syntax errors are left to cJSON, which reports them
 * with line and column (core/config.c). */
#ifndef ANNEALD_JSONSTRICT_H
#define ANNEALD_JSONSTRICT_H

#include <stddef.h>

#include "core/err.h"

/* 0 when every string of `text` is valid UTF-8 without NUL (raw or as \u0000) and every
 * number follows JSON's grammar; -EINVAL with the path and position in `err` otherwise. */
int json_strict_check(const char *text, size_t len, an_err *err);

/* 1 when `s` (n bytes) is valid UTF-8 without NUL: no overlong forms, surrogates or code
 * points past U+10FFFF. Otherwise 0 and the offset of the first bad byte in *bad. */
int utf8_valid(const char *s, size_t n, size_t *bad);

/* A malloc'd copy of `s` (n bytes) with each byte that starts no valid character (as
 * utf8_valid judges) replaced by U+FFFD, NUL-terminated, its length in *outn; NULL without
 * memory. For text built from input cut at a byte count, or echoing bytes never checked. */
char *utf8_repair(const char *s, size_t n, size_t *outn);

#endif
