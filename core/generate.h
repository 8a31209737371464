/* generate — sampling text from a gpt (API.md, "Generation"): the prompt encoded with the
 * job's vocabulary, then max_tokens tokens drawn one at a time from the model's distribution
 * at the last position of the newest block_size tokens, with temperature (0: greedy) and
 * top-k. Token i's draw is the counter-based RNG of (seed, i): the same seed, checkpoint and
 * request give the same text. Pure: the caller gets each token through a callback. */
#ifndef ANNEALD_GENERATE_H
#define ANNEALD_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/err.h"
#include "core/gpt.h"
#include "core/text.h"

#define GEN_MAX_TOKENS 100000
#define GEN_MAX_PROMPT 65536 /* bytes */

typedef struct gen_params {
    int max_tokens;       /* 1..GEN_MAX_TOKENS (default 200) */
    double temperature;   /* 0 (greedy) .. 100 (default 1) */
    int top_k;            /* 0 = every token; else 1..vocab size */
    uint64_t seed;        /* default 0 */
    int64_t step;         /* checkpoint; -1 = latest */
    const char *prompt;   /* points into the parsed JSON */
} gen_params;

/* Reads {"prompt", "max_tokens", "temperature", "top_k", "seed", "step"} (all but prompt
 * optional; unknown keys are errors naming them). The prompt's characters are checked against
 * the vocabulary by gen_state_init. */
int gen_parse(const cJSON *body, gen_params *out, an_err *err);

/* A generation in progress: the context tokens (the prompt, then each new token). */
typedef struct gen_state {
    gpt *g;
    const text_vocab *vocab;
    gen_params p;
    int32_t *ctx;         /* [prompt tokens + max_tokens] */
    size_t n;             /* tokens in ctx */
    size_t nprompt;
    int made;             /* tokens generated so far */
    double *prob;         /* [V] scratch */
} gen_state;

/* 0 when every weight of g is finite; else fails naming "step" (a run that diverged can have
 * saved such weights, and no token can be drawn from their NaN logits). A pass over every
 * weight: 0.7 ms for the README's 0.8M-parameter gpt, 5 ms for 6.4M, 70 ms for 85M, so a
 * caller that keeps a model checks it once (jobs/loader.h, loader_gpt_check). */
int gen_weights_check(const gpt *g, an_err *err);

/* Encodes the prompt (a character outside the vocabulary fails naming "prompt" and it; an
 * empty prompt starts from token 0) and checks top_k against the vocabulary; gen_state_start
 * for weights already checked, gen_state_init checks them first (gen_weights_check). */
int gen_state_start(gen_state *s, gpt *g, const text_vocab *v, const gen_params *p,
                    an_err *err);
int gen_state_init(gen_state *s, gpt *g, const text_vocab *v, const gen_params *p, an_err *err);
void gen_state_free(gen_state *s);

/* Makes the next token: its UTF-8 text goes to out (NUL-terminated); returns its byte count,
 * 0 when max_tokens are done, < 0 on a failed forward pass. */
int gen_next(gen_state *s, char out[5]);

#endif
