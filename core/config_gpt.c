/* config_gpt — the `gpt` model and the `text` data of a job spec (JOBSPEC.md, "Additions
 * (second round)"), and the checks that tie them together (vocabulary, loss, init). */
#include "core/config_gpt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assets.h"
#include "core/cfgval.h"
#include "core/config_actckpt.h"
#include "core/gpt.h"
#include "core/text.h"

static const char *const gelu_names[] = {"tanh", "erf", NULL};
static const char *const tokenizer_names[] = {"char", "byte", NULL};
static const char *const sampling_names[] = {"windows", "random", NULL};

void cfg_gpt_shape(const model_spec *m, gpt_shape *s)
{
    *s = (gpt_shape){.vocab_size = m->vocab_size, .block_size = m->block_size,
                     .n_layer = m->n_layer, .n_head = m->n_head, .n_embd = m->n_embd,
                     .bias = m->bias, .gelu = m->gelu, .dropout = (float)m->dropout};
}

int cfg_gpt_parse(const cJSON *m, model_spec *out, an_err *err)
{
    static const char *const keys[] = {"type",  "block_size", "n_layer", "n_head", "n_embd",
                                       "vocab_size", "dropout", "bias", "gelu", "init", NULL};
    int64_t v;
    int t, rc;
    if ((rc = cfg_check_keys(m, "model", keys, err)))
        return rc;
    static const char *const req[] = {"block_size", "n_layer", "n_head", "n_embd"};
    int64_t his[] = {65536, GPT_MAX_LAYERS, 16384, 16384};
    int *dst[] = {&out->block_size, &out->n_layer, &out->n_head, &out->n_embd};
    for (int i = 0; i < 4; i++) {
        if ((rc = cfg_require(m, "model", req[i], err)) ||
            (rc = cfg_int(m, "model", req[i], 0, 1, his[i], &v, err)))
            return rc;
        *dst[i] = (int)v;
    }
    if ((rc = cfg_int(m, "model", "vocab_size", 0, 1, 1 << 20, &v, err)))
        return rc;
    out->vocab_size = (int)v;
    if ((rc = cfg_num(m, "model", "dropout", 0.0, 0.0, 1.0, CFG_HI_OPEN, &out->dropout, err)))
        return rc;
    if ((rc = cfg_bool(m, "model", "bias", 1, &out->bias, err)) ||
        (rc = cfg_enum(m, "model", "gelu", gelu_names, 0, &t, err)))
        return rc;
    out->gelu = t; /* enum gpt_gelu: 0 tanh, 1 erf */
    gpt_shape s;
    cfg_gpt_shape(out, &s);
    if (!s.vocab_size)
        s.vocab_size = 1; /* the data gives it; everything else is checked now */
    if ((rc = gpt_shape_check(&s, err)))
        return rc;
    const cJSON *init = cfg_get(m, "init");
    if (init) {
        if ((rc = cfg_want_object(init, "model.init", err)))
            return rc;
        out->init = cJSON_Duplicate(init, 1);
        if (!out->init)
            return an_failc(err, -ENOMEM, "model.init", "out of memory copying model.init");
    }
    return 0;
}

int cfg_gpt_resolve(model_spec *m, const data_spec *d, an_err *err)
{
    int size = 0;
    if (d->tokenizer == 1) /* TEXT_BYTE: every byte value is a token */
        size = 256;
    else if (d->vocab)
        size = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(d->vocab, "size")) > 0
                   ? (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(d->vocab, "size"))
                   : 0;
    if (size && m->vocab_size && m->vocab_size != size)
        return an_fail(err, "model.vocab_size", "model.vocab_size is %d but the data's "
                       "vocabulary (tokenizer %s) has %d tokens: leave vocab_size out or set "
                       "it to %d", m->vocab_size, tokenizer_names[d->tokenizer], size, size);
    if (size)
        m->vocab_size = size;
    m->outputs = m->vocab_size;
    gpt_shape s;
    cfg_gpt_shape(m, &s);
    if (s.vocab_size && (int64_t)gpt_param_count(&s) > CFG_MAX_PARAMS)
        return an_fail(err, "model", "model has %zu parameters, more than the limit of %d",
                       gpt_param_count(&s), CFG_MAX_PARAMS);
    if (!m->init)
        return 0;
    if (!s.vocab_size)
        return an_fail(err, "model.init", "model.init needs model.vocab_size when the data's "
                       "vocabulary is only known at training (an uploaded text data set)");
    /* Built once with room for one sequence: gpt_set_init checks names, shapes and numbers
     * exactly as training will apply them. */
    gpt *g;
    int rc = gpt_create(&g, &s, 0, 1, err);
    if (rc)
        return rc;
    rc = gpt_set_init(g, m->init, err);
    gpt_free(g);
    return rc;
}

cJSON *cfg_gpt_json(const model_spec *m)
{
    cJSON *o = cJSON_CreateObject();
    int ok = o && cJSON_AddStringToObject(o, "type", "gpt") &&
             cJSON_AddNumberToObject(o, "block_size", m->block_size) &&
             cJSON_AddNumberToObject(o, "n_layer", m->n_layer) &&
             cJSON_AddNumberToObject(o, "n_head", m->n_head) &&
             cJSON_AddNumberToObject(o, "n_embd", m->n_embd) &&
             (!m->vocab_size || cJSON_AddNumberToObject(o, "vocab_size", m->vocab_size)) &&
             cJSON_AddNumberToObject(o, "dropout", m->dropout) &&
             cJSON_AddBoolToObject(o, "bias", m->bias) &&
             cJSON_AddStringToObject(o, "gelu", gelu_names[m->gelu]);
    if (ok && m->init) {
        cJSON *c = cJSON_Duplicate(m->init, 1);
        ok = c && cJSON_AddItemToObject(o, "init", c);
        if (!ok)
            cJSON_Delete(c);
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

const char *cfg_text_corpus(const data_spec *d, size_t *len)
{
    if (d->text && cJSON_IsString(d->text)) {
        *len = strlen(d->text->valuestring);
        return d->text->valuestring;
    }
    if (d->text_builtin)
        return (const char *)assets_get("data/tinyshakespeare.txt", len);
    *len = 0;
    return NULL;
}

const char *cfg_text_field(const data_spec *d)
{
    return d->text ? "data.text" : d->text_builtin ? "data.name" : "data.dataset";
}

int64_t cfg_text_tokens(const data_spec *d)
{
    size_t len = 0;
    const char *text = d->type == DATA_TEXT ? cfg_text_corpus(d, &len) : NULL;
    return text ? (int64_t)text_count_tokens(text, len, d->tokenizer) : -1;
}

int cfg_text_split(const job_spec *s, int64_t ntok, text_split *out, an_err *err)
{
    return text_split_check(ntok > 0 ? (size_t)ntok : 0, s->model.block_size, s->val_fraction,
                            cfg_text_field(&s->data), out, err);
}

int cfg_text_vocab_check(const data_spec *d, const char *text, size_t len, int block_size,
                         cJSON **vocab_out, an_err *err)
{
    const char *field = cfg_text_field(d);
    text_vocab v;
    int32_t *tok = NULL;
    size_t n = 0;
    int rc = text_tokenize(text, len, d->tokenizer, (size_t)block_size + 1, field, &v, &tok, &n,
                           err);
    if (rc)
        return rc;
    free(tok);
    cJSON *j = text_vocab_json(&v);
    text_vocab_free(&v);
    if (!j)
        return an_failc(err, -ENOMEM, field, "out of memory for the vocabulary");
    if (d->vocab && !cJSON_Compare(d->vocab, j, 1)) {
        cJSON_Delete(j);
        return an_fail(err, "data.vocabulary", "data.vocabulary differs from the vocabulary of "
                       "the text (%s): leave it out, it is worked out from the text", field);
    }
    *vocab_out = j;
    return 0;
}

int cfg_text_parse(const cJSON *d, const model_spec *m, int loss, data_spec *out, an_err *err)
{
    static const char *const text_keys[] = {"type",     "text",    "dataset",    "tokenizer",
                                            "sampling", "shuffle", "vocabulary", NULL};
    static const char *const bi_keys[] = {"type",     "name",    "tokenizer",  "sampling",
                                          "shuffle",  "vocabulary", NULL};
    int rc, t;
    if (m->type != MODEL_GPT)
        return an_fail(err, "data.type", "text data trains a language model: it needs model "
                       "type gpt");
    (void)loss;
    if ((rc = cfg_check_keys(d, "data", out->text_builtin ? bi_keys : text_keys, err)))
        return rc;
    if ((rc = cfg_enum(d, "data", "tokenizer", tokenizer_names, 0, &t, err)))
        return rc;
    out->tokenizer = t;
    if ((rc = cfg_enum(d, "data", "sampling", sampling_names, 0, &t, err)))
        return rc;
    out->sampling_random = t;
    const cJSON *voc = cfg_get(d, "vocabulary");
    if (voc) {
        text_vocab v;
        if ((rc = cfg_want_object(voc, "data.vocabulary", err)) ||
            (rc = text_vocab_from_json(voc, "data.vocabulary", &v, err)))
            return rc;
        text_vocab_free(&v);
        if (!(out->vocab = cJSON_Duplicate(voc, 1)))
            return an_failc(err, -ENOMEM, "data.vocabulary", "out of memory");
    }
    if (!out->text_builtin) {
        const cJSON *tx = cfg_get(d, "text"), *ds = cfg_get(d, "dataset");
        char got[80];
        if (tx && ds)
            return an_fail(err, "data.dataset", "give data.text or data.dataset, not both");
        if (!tx && !ds)
            return an_fail(err, "data.text", "data.text (the corpus) or data.dataset (an "
                           "uploaded text data set) is required for type text");
        if (ds)
            return cfg_str(d, "data", "dataset", NULL, out->name, sizeof out->name, err);
        if (!cJSON_IsString(tx) || !tx->valuestring[0])
            return an_fail(err, "data.text", "data.text must be a non-empty string, got %s",
                           cfg_describe(tx, got, sizeof got));
        if (!(out->text = cJSON_Duplicate(tx, 1)))
            return an_failc(err, -ENOMEM, "data.text", "out of memory");
    }
    size_t len;
    const char *text = cfg_text_corpus(out, &len);
    if (!text)
        return an_fail(err, "data.name", "the builtin corpus is missing from this build");
    cJSON *vocab = NULL;
    if ((rc = cfg_text_vocab_check(out, text, len, m->block_size, &vocab, err)))
        return rc;
    cJSON_Delete(out->vocab);
    out->vocab = vocab;
    return 0;
}

cJSON *cfg_text_json(const data_spec *d, const char *type)
{
    cJSON *o = cJSON_CreateObject();
    int ok = o && cJSON_AddStringToObject(o, "type", type);
    if (ok && d->text_builtin)
        ok = cJSON_AddStringToObject(o, "name", "tinyshakespeare") != NULL;
    else if (ok && d->text)
        ok = cJSON_AddStringToObject(o, "text", d->text->valuestring) != NULL;
    else if (ok)
        ok = cJSON_AddStringToObject(o, "dataset", d->name) != NULL;
    ok = ok && cJSON_AddStringToObject(o, "tokenizer", tokenizer_names[d->tokenizer]) &&
         cJSON_AddStringToObject(o, "sampling", sampling_names[d->sampling_random]) &&
         cJSON_AddBoolToObject(o, "shuffle", d->shuffle);
    if (ok && d->vocab) {
        cJSON *c = cJSON_Duplicate(d->vocab, 1);
        ok = c && cJSON_AddItemToObject(o, "vocabulary", c);
        if (!ok)
            cJSON_Delete(c);
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* An unknown key of an fp16/bf16 block. DeepSpeed knows more keys than the daemon uses
 * (`other`: auto_cast, …), which are warned about as unused; any other key is warned about as
 * not DeepSpeed's, with the nearest known one (a typo such as loss_scale_windows would
 * otherwise read as a key the daemon merely skips). Warned, not fatal. */
static void warn_keys(const cJSON *b, const char *path, const char *const *used,
                      const char *const *other, cJSON *warnings)
{
    if (!warnings)
        return;
    for (const cJSON *c = b->child; c; c = c->next) {
        int k = 0, d_best = strlen(c->string) <= 4 ? 2 : 3; /* suggest within < d_best edits */
        const char *near = NULL;
        for (int list = 0; list < 2 && !k; list++)
            for (const char *const *n = list ? other : used; *n && !k; n++) {
                int d = cfg_edit_distance(*n, c->string);
                k = d == 0;
                if (d < d_best)
                    d_best = d, near = *n;
            }
        int unused = 0;
        for (const char *const *n = other; *n && !unused; n++)
            unused = strcmp(*n, c->string) == 0;
        char msg[320];
        if (k && !unused)
            continue;
        if (unused)
            snprintf(msg, sizeof msg, "%s.%s is not used by this daemon", path, c->string);
        else if (near)
            snprintf(msg, sizeof msg, "%s.%s is not a DeepSpeed key: did you mean %s.%s? "
                     "(ignored)", path, c->string, path, near);
        else
            snprintf(msg, sizeof msg, "%s.%s is not a DeepSpeed key (ignored)", path, c->string);
        cJSON_AddItemToArray(warnings, cJSON_CreateString(msg));
    }
}

int cfg_numerics_parse(const cJSON *ds, job_spec *s, an_err *err)
{
    static const char *const fp16_keys[] = {"enabled", "loss_scale", "initial_scale_power",
                                            "loss_scale_window", "hysteresis",
                                            "consecutive_hysteresis", "min_loss_scale", NULL};
    static const char *const fp16_other[] = {"auto_cast", "fp16_master_weights_and_grads",
                                             NULL};
    static const char *const bf16_keys[] = {"enabled", NULL};
    static const char *const bf16_other[] = {"immediate_grad_update", "check_grad_overflow",
                                             NULL};
    const cJSON *f = cJSON_IsObject(ds) ? cfg_get(ds, "fp16") : NULL;
    const cJSON *b = cJSON_IsObject(ds) ? cfg_get(ds, "bf16") : NULL;
    /* DeepSpeed still reads the block's old name when "bf16" is absent. */
    const char *bpath = "ds_config.bf16";
    if (!b && cJSON_IsObject(ds) && (b = cfg_get(ds, "bfloat16")))
        bpath = "ds_config.bfloat16";
    int rc;
    int64_t v;
    s->fp16 = s->bf16 = s->act_ckpt = 0;
    s->loss_scale = lossscale_defaults();
    if ((rc = cfg_actckpt_parse(ds, s, err)))
        return rc;
    if (s->model.type != MODEL_GPT) {
        /* Not used for these models (warned about in config_ds.c, "auto" included), but two
         * enabled blocks contradict each other all the same. */
        const cJSON *fe = cJSON_IsObject(f) ? cfg_get(f, "enabled") : NULL;
        const cJSON *be = cJSON_IsObject(b) ? cfg_get(b, "enabled") : NULL;
        if (cJSON_IsTrue(fe) && cJSON_IsTrue(be))
            return an_fail(err, bpath, "%s and ds_config.fp16 are both enabled: choose one "
                           "(bf16 needs no loss scaling)", bpath);
        return 0;
    }
    if (f) {
        lossscale_cfg *c = &s->loss_scale;
        if ((rc = cfg_want_object(f, "ds_config.fp16", err)) ||
            (rc = cfg_bool(f, "ds_config.fp16", "enabled", 0, &s->fp16, err)) ||
            (rc = cfg_num(f, "ds_config.fp16", "loss_scale", 0.0, 0.0, 1e38, CFG_CLOSED,
                          &c->loss_scale, err)))
            return rc;
        if ((rc = cfg_int(f, "ds_config.fp16", "initial_scale_power", 16, 0, 120, &v, err)))
            return rc;
        c->initial_scale_power = (int)v;
        if ((rc = cfg_int(f, "ds_config.fp16", "loss_scale_window", 1000, 1, CFG_MAX_STEPS,
                          &c->loss_scale_window, err)) ||
            (rc = cfg_int(f, "ds_config.fp16", "hysteresis", 2, 1, 1000000, &v, err)))
            return rc;
        c->hysteresis = (int)v;
        if ((rc = cfg_bool(f, "ds_config.fp16", "consecutive_hysteresis", 0,
                           &c->consecutive_hysteresis, err)) ||
            (rc = cfg_num(f, "ds_config.fp16", "min_loss_scale", 1.0, 0.0, 1e38, CFG_LO_OPEN,
                          &c->min_loss_scale, err)))
            return rc;
        warn_keys(f, "ds_config.fp16", fp16_keys, fp16_other, s->warnings);
    }
    if (b) {
        if ((rc = cfg_want_object(b, bpath, err)) ||
            (rc = cfg_bool(b, bpath, "enabled", 0, &s->bf16, err)))
            return rc;
        warn_keys(b, bpath, bf16_keys, bf16_other, s->warnings);
    }
    if (s->fp16 && s->bf16)
        return an_fail(err, bpath, "%s and ds_config.fp16 are both enabled: choose one (bf16 "
                       "needs no loss scaling)", bpath);
    return 0;
}

int cfg_gpt_check_sizes(const job_spec *s, an_err *err)
{
    const model_spec *m = &s->model;
    int64_t N = (int64_t)s->micro_batch * m->block_size, C = m->n_embd;
    int64_t T = m->block_size, V = m->vocab_size > 0 ? m->vocab_size : 1;
    /* The engine indexes a pass's activations with int counts: the widest are the MLP's
     * 4C per token, the logits' V per token and the attention's NH·T per token. */
    int64_t widest = 4 * C > V ? 4 * C : V;
    widest = widest > (int64_t)m->n_head * T ? widest : (int64_t)m->n_head * T;
    if (widest > INT32_MAX / N) /* N·widest > INT32_MAX, without overflowing */
        return an_fail(err, "ds_config.train_micro_batch_size_per_gpu", "a micro-batch of %lld "
                       "windows of %lld tokens has %.0f values in its widest activation "
                       "(%lld per token), more than the %d one pass can hold: use a smaller "
                       "micro-batch (and more gradient_accumulation_steps)",
                       (long long)s->micro_batch, (long long)T, (double)N * (double)widest,
                       (long long)widest, INT32_MAX);
    return 0;
}
