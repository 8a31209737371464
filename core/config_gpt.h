/* config_gpt — the `gpt` model and `text` data sections of a job spec (JOBSPEC.md, "Additions
 * (second round)"). Part of the job-spec parser (config.h). The vocabulary of inline and
 * builtin text is worked out when the spec is parsed, so a mismatch with model.vocab_size is
 * a 400 at submission and the job object shows it (data.vocabulary in the normalized spec). */
#ifndef ANNEALD_CONFIG_GPT_H
#define ANNEALD_CONFIG_GPT_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "core/config.h"
#include "core/err.h"
#include "core/gpt.h"
#include "core/text.h"

/* Parses a `model` object of type gpt into *out (vocab_size may stay 0: from the data). */
int cfg_gpt_parse(const cJSON *m, model_spec *out, an_err *err);
cJSON *cfg_gpt_json(const model_spec *m);
void cfg_gpt_shape(const model_spec *m, gpt_shape *s);

/* After the data: takes vocab_size from the data's vocabulary (a different explicit one is an
 * error naming model.vocab_size), checks the size limit and model.init. */
int cfg_gpt_resolve(model_spec *m, const data_spec *d, an_err *err);

/* Parses `data` of type text, or builtin tinyshakespeare (out->text_builtin set by the
 * caller). Inline and builtin text is tokenized now for its vocabulary. */
int cfg_text_parse(const cJSON *d, const model_spec *m, int loss, data_spec *out, an_err *err);
cJSON *cfg_text_json(const data_spec *d, const char *type);

/* ds_config.fp16 and ds_config.bf16 (JOBSPEC.md, "Numerics"): DeepSpeed's scaler keys with
 * its defaults; both enabled is an error naming ds_config.bf16. For models other than gpt an
 * enabled block is only warned about (config_ds.c). */
int cfg_numerics_parse(const cJSON *ds, job_spec *s, an_err *err);

/* A gpt job whose micro-batch is too large for one pass (its activations beyond int
 * counts): refused naming the micro-batch. */
int cfg_gpt_check_sizes(const job_spec *s, an_err *err);

/* The corpus of inline or builtin text (NULL for an uploaded data set). */
const char *cfg_text_corpus(const data_spec *d, size_t *len);

/* Tokenizes `text` with d's tokenizer: too short for one window of block_size + 1 tokens, or a
 * vocabulary different from d->vocab (when the spec gives one), is an error. The vocabulary
 * (text_vocab_json) goes to *vocab_out. */
int cfg_text_vocab_check(const data_spec *d, const char *text, size_t len, int block_size,
                         cJSON **vocab_out, an_err *err);

/* The path errors about the text name: data.text, data.name (builtin) or data.dataset. */
const char *cfg_text_field(const data_spec *d);

/* Tokens of inline or builtin text as d's tokenizer counts them; -1 for an uploaded corpus
 * (its count is the store's: jobs/submit.c). */
int64_t cfg_text_tokens(const data_spec *d);

/* The split of a text job's ntok tokens into training and validation windows, checked as
 * training checks it (text_split_check): a part without a window is an error naming
 * validation.fraction. The parse checks inline and builtin text with it (config.c); an
 * uploaded corpus is counted only at submission (jobs/submit.c). */
int cfg_text_split(const job_spec *s, int64_t ntok, text_split *out, an_err *err);

#endif
