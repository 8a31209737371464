/* jsonscan — where exactly a JSON text goes wrong.
 *
 * cJSON stops one byte after some mistakes (a key that is not a double-quoted string, a
 * second comma), so its position is not the offending byte. This scanner follows the JSON
 * grammar (RFC 8259) and stops at the first byte that cannot continue a valid text. */
#ifndef ANNEALD_JSONSCAN_H
#define ANNEALD_JSONSCAN_H

#include <stddef.h>

/* The offset of the first byte of text[0, len) that no valid JSON text could have there, len
 * when the text ends before its value is complete, or (size_t)-1 when the text is valid JSON
 * (one value, surrounded by whitespace only). Nesting deeper than 1000 levels stops at the
 * opening bracket that goes too deep, as cJSON does. */
size_t json_scan_error(const char *text, size_t len);

#endif
