/* text — token streams for language models (JOBSPEC.md, "Data text"): the `char` and `byte`
 * tokenizers, the vocabulary, the window rows cut from a stream, the tail validation split and
 * counter-based random sampling. Pure: no I/O. */
#ifndef ANNEALD_TEXT_H
#define ANNEALD_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/err.h"

enum text_tokenizer { TEXT_CHAR = 0, TEXT_BYTE = 1 };

/* The vocabulary: token i stands for code point cps[i] (char; sorted ascending) or byte i. */
typedef struct text_vocab {
    int tokenizer;   /* enum text_tokenizer */
    int size;        /* number of tokens */
    uint32_t *cps;   /* [size] code points (char only; NULL for byte) */
} text_vocab;

void text_vocab_free(text_vocab *v);

/* The vocabulary of `s` (len bytes) and its tokens (malloc'd, *ntok of them). Invalid UTF-8
 * under `char` is an error naming `field` and the byte offset, and so is a NUL character (the
 * vocabulary is kept as JSON strings). Text too short for one window
 * of min_tokens is an error too. */
int text_tokenize(const char *s, size_t len, int tokenizer, size_t min_tokens, const char *field,
                  text_vocab *vocab, int32_t **tokens, size_t *ntok, an_err *err);

/* Encodes `s` with an existing vocabulary (a prompt): a character outside it is an error naming
 * `field` and the character. out has room for len tokens; the count goes to *n. */
int text_encode(const text_vocab *v, const char *s, size_t len, const char *field, int32_t *out,
                size_t *n, an_err *err);

/* Writes token `tok` as UTF-8 into out (up to 4 bytes, NUL-terminated); returns the byte
 * count, 0 for a token outside the vocabulary. */
int text_decode_token(const text_vocab *v, int32_t tok, char out[5]);

/* The vocabulary as JSON: {"tokenizer": "char", "size": 65, "tokens": ["\n", " ", …]}
 * (byte: no "tokens"). Read back by text_vocab_from_json. NULL if out of memory. */
cJSON *text_vocab_json(const text_vocab *v);
int text_vocab_from_json(const cJSON *j, const char *field, text_vocab *v, an_err *err);

/* Windows of a stream of n tokens at block size T: K = ⌊(n−1)/T⌋. */
size_t text_windows(size_t n, int T);

/* The first ⌊n·(1−fraction)⌋ tokens train, the rest validate. */
size_t text_train_tokens(size_t n, double fraction);

/* How a job cuts n tokens at block size T with validation `fraction` (0 = none): the first
 * text_train_tokens train, the tail validates, each part in its own windows. */
typedef struct text_split {
    size_t ntrain, nval;  /* tokens of each part */
    size_t ktrain, kval;  /* their windows (text_windows) */
} text_split;

/* Fills *out, then checks what training needs of it: the whole text one window of T + 1
 * tokens (an error naming `field`), and so each part (naming validation.fraction), whatever
 * the sampling (random sampling draws from the windows' starts, of which there is then at
 * least one). The one arithmetic of the split: training (train_gpt.c) and the checks at
 * submission (config_gpt.c) both call it, so a job accepted is never refused for its split
 * when it starts. */
int text_split_check(size_t n, int T, double fraction, const char *field,
                     text_split *out, an_err *err);

/* The tokens `tokenizer` makes of s (len bytes): bytes, or for `char` code points (s must be
 * valid UTF-8, as text_tokenize has checked), counted without tokenizing. */
size_t text_count_tokens(const char *s, size_t len, int tokenizer);

/* Row k: idx = tokens[kT .. kT+T), targets = tokens[kT+1 .. kT+T]. */
void text_window(const int32_t *tokens, size_t k, int T, int32_t *idx, int32_t *targets);

/* `"sampling": "random"`: the start of row `row` of micro-batch `micro` at `step`, uniform in
 * 0 … n_train−T−1, a pure function of (seed, step, micro, row) so a resumed run draws the same
 * rows. n_train must exceed T. */
size_t text_random_start(uint64_t seed, uint64_t step, uint64_t micro, uint64_t row,
                         size_t n_train, int T);

#endif
