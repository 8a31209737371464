/* ds_keys — the top-level keys of a DeepSpeed configuration, kept as data, so that an unknown
 * key of ds_config can be told apart: a DeepSpeed feature this daemon does not have, or a
 * misspelling (with the nearest real key). */
#ifndef ANNEALD_DS_KEYS_H
#define ANNEALD_DS_KEYS_H

#include <stddef.h>

/* 1 if `key` is a top-level DeepSpeed config key. */
int ds_key_known(const char *key);

/* The DeepSpeed key nearest to `key` (within two edits, or one for keys of up to four
 * characters), or NULL. */
const char *ds_key_nearest(const char *key);

/* When `key` (of the ds_config at JSON path `prefix`, "" for the top level) is not a
 * DeepSpeed key: writes the note that says so, with the nearest key that is, and returns 1.
 * Returns 0 for a DeepSpeed key. */
int ds_key_unknown_note(const char *prefix, const char *key, char *buf, size_t size);

/* The DeepSpeed release the list was taken from, and its length. */
const char *ds_keys_version(void);
int ds_keys_count(void);

#endif
