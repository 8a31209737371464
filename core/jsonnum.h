/* jsonnum — doubles in JSON that read back to the same bits.
 *
 * cJSON prints a double with 15 significant digits whenever they come within an epsilon of
 * the value, which loses the last bits of numbers such as 0.009999999999999998 (DeepSpeed's
 * WarmupLR at the end of warmup). Users compare our learning rates and losses with
 * DeepSpeed's bit for bit, so every float the API returns goes through here instead. */
#ifndef ANNEALD_JSONNUM_H
#define ANNEALD_JSONNUM_H

#include <stddef.h>

#include <cjson/cJSON.h>

/* Writes v in the fewest significant digits (15 to 17) that strtod reads back exactly.
 * Non-finite values: "null" when `json` is set (JSON has no inf/nan), else "inf", "-inf" or
 * "nan", which strtod reads back. Returns the length, as snprintf. */
int json_number_text(char *buf, size_t size, double v, int json);

/* A cJSON item printing v exactly (a raw item whose valuedouble is v), or null for NaN/Inf.
 * Readers of the tree see it with cJSON_IsRaw, not cJSON_IsNumber: use json_is_number. */
cJSON *json_number(double v);

/* 1 for a number item or one made by json_number. */
int json_is_number(const cJSON *item);

/* Turns every number of the tree under `item` (and its following siblings) into a raw item
 * that prints exactly (json_number_text); their valuedouble stays. -1 out of memory, the tree
 * then partly converted but still valid. */
int json_make_exact(cJSON *item);

/* cJSON_PrintUnformatted of a copy of `item` with every number printed exactly, so that
 * parsing the text gives back the same bits (cJSON's own printer rounds 0.30000000000000004 to
 * 0.3 and 1.7976931348623157e308 to a text that reads back as infinity). cJSON_free it. */
char *json_print_exact(const cJSON *item);

#endif
