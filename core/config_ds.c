/* config_ds — the ds_config section of a job spec: batch sizes, gradient clipping, the
 * optimizer, and every key DeepSpeed knows but this daemon does not use.
 *
 * Every independent error is reported at once: a real DeepSpeed config written for the
 * Hugging Face Trainer holds "auto" in many places, and a user should see all of them in one
 * answer. A block with errors (the optimizer, the scheduler) is checked again with each bad
 * value removed, until it passes or an error cannot be removed; the scheduler is then checked
 * against the optimizer so repaired, since its own mistakes do not depend on the lr's value. */
#include "core/config_ds.h"
#include "core/config_world.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cfgval.h"
#include "core/config_gpt.h"
#include "core/ds_keys.h"
#include "core/sched.h"


int cfg_record(cfg_errlist *l, int rc, const an_err *e)
{
    if (!rc)
        return 0;
    if (l->n < l->max)
        l->e[l->n] = *e;
    l->n++;
    if (!l->rc)
        l->rc = rc;
    return 1;
}

static const char *const batch_keys[3] = {"train_batch_size", "train_micro_batch_size_per_gpu",
                                          "gradient_accumulation_steps"};

/* Batch sizes per DeepSpeed's rule (DEEPSPEED.md §2) with W = s->world_size ranks: any
 * missing piece follows from the others by floor division, then train_batch_size = micro ×
 * gas × W is checked. "auto" counts as missing and is reported in `warnings` with the number
 * it became. */
static int parse_batch(const cJSON *ds, job_spec *s, an_err *err)
{
    char p[CFG_PATH];
    int64_t v[3] = {0, 0, 0}; /* tbs, micro, gas; 0 = not given */
    int is_auto[3] = {0, 0, 0};
    int rc;
    const int64_t W = s->world_size > 0 ? s->world_size : 1;
    for (int i = 0; i < 3; i++) {
        const cJSON *x = cfg_get(ds, batch_keys[i]);
        if (!x)
            continue;
        if (cJSON_IsString(x) && strcmp(x->valuestring, "auto") == 0) {
            is_auto[i] = 1;
            continue;
        }
        rc = cfg_int_value(x, an_path(p, sizeof p, "ds_config", batch_keys[i]), 1, CFG_MAX_BATCH,
                           &v[i], err);
        if (rc)
            return rc;
    }
    int64_t tbs = v[0], mb = v[1], gas = v[2];
    if (!tbs && !mb) {
        int k = is_auto[0] ? 0 : is_auto[1] ? 1 : -1;
        if (k >= 0)
            return an_fail(err, an_path(p, sizeof p, "ds_config", batch_keys[k]),
                           "ds_config.%s is \"auto\" but cannot be worked out: give "
                           "train_batch_size or train_micro_batch_size_per_gpu as a number",
                           batch_keys[k]);
        return an_fail(err, "ds_config.train_batch_size",
                       "ds_config needs train_batch_size or train_micro_batch_size_per_gpu "
                       "(a positive integer); %s",
                       gas ? "gradient_accumulation_steps alone does not give a batch size"
                           : "neither is given");
    }
    if (tbs && mb && gas) {
        /* only checked */
    } else if (tbs && mb) {
        gas = tbs / mb / W;
    } else if (tbs && gas) {
        mb = tbs / W / gas;
    } else if (mb && gas) {
        tbs = mb * gas * W;
        if (tbs > CFG_MAX_BATCH)
            return an_fail(err, "ds_config.train_batch_size",
                           "train_micro_batch_size_per_gpu %lld x gradient_accumulation_steps "
                           "%lld x world_size %lld gives train_batch_size %lld, more than the "
                           "limit of %lld", (long long)mb, (long long)gas, (long long)W,
                           (long long)tbs, (long long)CFG_MAX_BATCH);
    } else if (tbs) {
        gas = 1, mb = tbs / W;
    } else {
        gas = 1, tbs = mb * W;
        if (tbs > CFG_MAX_BATCH)
            return an_fail(err, "ds_config.train_batch_size",
                           "train_micro_batch_size_per_gpu %lld x world_size %lld gives "
                           "train_batch_size %lld, more than the limit of %lld", (long long)mb,
                           (long long)W, (long long)tbs, (long long)CFG_MAX_BATCH);
    }
    /* mb or gas can floor to 0 (train_batch_size smaller than world_size): the product check
     * names the numbers */
    if (tbs != mb * gas * W || mb < 1 || gas < 1)
        return an_fail(err, "ds_config.train_batch_size",
                       "ds_config batch sizes do not multiply up: train_batch_size %lld != "
                       "train_micro_batch_size_per_gpu %lld × gradient_accumulation_steps "
                       "%lld × world_size %lld%s",
                       (long long)tbs, (long long)mb, (long long)gas, (long long)W,
                       W == 1 ? " (one process; the top-level world_size sets the ranks)" : "");
    s->train_batch_size = tbs, s->micro_batch = mb, s->grad_accum = gas;
    const int64_t got[3] = {tbs, mb, gas};
    for (int i = 0; i < 3; i++)
        if (is_auto[i] &&
            (rc = cfg_warn(s->warnings, err,
                       "ds_config.%s \"auto\" resolved to %lld (train_batch_size %lld = "
                       "micro-batch %lld × accumulation %lld × world_size %lld)",
                       batch_keys[i], (long long)got[i], (long long)tbs, (long long)mb,
                       (long long)gas, (long long)W)))
            return rc;
    return 0;
}

/* Removes the value at JSON path `field` from `root` (whose own path is `root_path`); a path
 * ending in an index ("betas[1]") removes the whole list. 1 if something was removed. */
static int remove_at(cJSON *root, const char *root_path, const char *field)
{
    size_t rl = strlen(root_path);
    if (strncmp(field, root_path, rl) != 0 || field[rl] != '.')
        return 0;
    char rest[CFG_PATH];
    snprintf(rest, sizeof rest, "%s", field + rl + 1);
    size_t n = strlen(rest);
    while (n > 0 && rest[n - 1] == ']') { /* drop trailing [i] */
        char *b = strrchr(rest, '[');
        if (!b)
            return 0;
        *b = '\0';
        n = strlen(rest);
    }
    cJSON *cur = root;
    char *p = rest;
    for (;;) {
        size_t k = strcspn(p, ".[");
        char key[CFG_PATH];
        snprintf(key, sizeof key, "%.*s", (int)k, p);
        p += k;
        if (!*p) {
            cJSON *gone = cJSON_DetachItemFromObjectCaseSensitive(cur, key);
            cJSON_Delete(gone);
            return gone != NULL;
        }
        cur = cJSON_GetObjectItemCaseSensitive(cur, key);
        while (cur && *p == '[') {
            cur = cJSON_GetArrayItem(cur, atoi(p + 1));
            p = strchr(p, ']');
            if (!p)
                return 0;
            p++;
        }
        if (!cur || !*p)
            return 0;
        if (*p == '.')
            p++;
    }
}

typedef int (*block_check)(const cJSON *block, void *ctx, an_err *err, cJSON *warnings);

/* Checks `block` (at `path`) with fn; while it fails on a value inside the block, records the
 * error, removes the value from a copy and checks again. Returns 1 when the block (maybe so
 * repaired) passes in the end: a block that depends on it can be checked. Warnings are added
 * only when the block passed as given. */
static int check_repairing(const cJSON *block, const char *path, block_check fn, void *ctx,
                           cfg_errlist *l, cJSON *warnings)
{
    an_err e;
    cJSON *w = cJSON_CreateArray();
    cJSON *copy = cJSON_Duplicate(block, 1);
    if (!w || !copy) {
        cJSON_Delete(w);
        cJSON_Delete(copy);
        cfg_record(l, an_failc(&e, -ENOMEM, path, "out of memory"), &e);
        return 0;
    }
    int found = 0, passed = 0;
    char seen[16][CFG_PATH];
    for (int round = 0; round < 16; round++) {
        int rc = fn(copy, ctx, &e, w);
        if (!rc) {
            passed = 1;
            break;
        }
        int again = 0;
        for (int k = 0; k < found && !again; k++)
            again = strcmp(seen[k], e.field) == 0;
        if (again) /* the value's absence is an error too: nothing more to learn */
            break;
        cfg_record(l, rc, &e);
        snprintf(seen[found++], CFG_PATH, "%s", e.field);
        if (rc == -ENOMEM || !remove_at(copy, path, e.field))
            break;
        cJSON_Delete(w);
        w = cJSON_CreateArray();
        if (!w)
            break;
    }
    if (passed && !found && warnings) {
        cJSON *x;
        while (w && (x = cJSON_DetachItemFromArray(w, 0)))
            cJSON_AddItemToArray(warnings, x);
    }
    cJSON_Delete(w);
    cJSON_Delete(copy);
    return passed;
}

static int check_optimizer(const cJSON *block, void *ctx, an_err *err, cJSON *warnings)
{
    return optim_parse(block, "ds_config.optimizer", ctx, err, warnings);
}

typedef struct sched_ctx {
    const sched_env *env;
} sched_ctx;

static int check_scheduler(const cJSON *block, void *ctx, an_err *err, cJSON *warnings)
{
    const sched_ctx *c = ctx;
    return sched_validate(block, "ds_config.scheduler", c->env, err, warnings);
}

/* The message for an unknown key of ds_config: a DeepSpeed key that does nothing here, or a
 * key DeepSpeed does not have either, with the nearest one it does. */
static int unknown_key(const char *key, job_spec *s, an_err *err)
{
    char note[400];
    if (ds_key_unknown_note("ds_config", key, note, sizeof note))
        return cfg_warn(s->warnings, err, "%s", note);
    return cfg_warn(s->warnings, err, "ds_config.%s is not used by this daemon", key);
}

/* The unknown keys of ds_config near `want` ("optimiser" for "optimizer"), for the error
 * that `want` is missing. Writes "" if none. */
static void near_keys(const cJSON *ds, const char *want, char *buf, size_t size)
{
    buf[0] = '\0';
    for (const cJSON *c = ds->child; c; c = c->next)
        if (strcmp(c->string, want) != 0 && cfg_edit_distance(c->string, want) <= 2) {
            snprintf(buf, size, " (ds_config has \"%s\": did you mean \"%s\"?)", c->string, want);
            return;
        }
}

int cfg_ds_parse(const cJSON *ds, job_spec *s, cfg_errlist *l, int *batch_ok, int *opt_ok)
{
    static const char *const used[] = {"train_batch_size", "train_micro_batch_size_per_gpu",
                                       "gradient_accumulation_steps", "gradient_clipping",
                                       "optimizer", "scheduler", "zero_optimization", NULL};
    char p[CFG_PATH];
    an_err e;
    int n0 = l->n;
    *batch_ok = *opt_ok = 0;
    if (cfg_record(l, cfg_want_object(ds, "ds_config", &e), &e))
        return 0;
    for (const cJSON *c = ds->child; c; c = c->next) {
        an_path(p, sizeof p, "ds_config", c->string);
        for (const cJSON *x = ds->child; x != c; x = x->next)
            if (strcmp(x->string, c->string) == 0) {
                cfg_record(l, an_fail(&e, p, "duplicate key '%s' in ds_config: give each key "
                                      "once", c->string), &e);
                return 0;
            }
        int known = 0;
        for (const char *const *k = used; *k && !known; k++)
            known = strcmp(*k, c->string) == 0;
        /* fp16 and bf16 (or its old name bfloat16) are honoured for gpt models
         * (config_gpt.c); activation
         * checkpointing for gpt and mlp, and warned about for linear (config_actckpt.c) */
        if (s->model.type == MODEL_GPT &&
            (strcmp(c->string, "fp16") == 0 || strcmp(c->string, "bf16") == 0 ||
             (strcmp(c->string, "bfloat16") == 0 && !cfg_get(ds, "bf16"))))
            known = 1;
        if (strcmp(c->string, "activation_checkpointing") == 0)
            known = 1;
        if (!known && cfg_record(l, unknown_key(c->string, s, &e), &e))
            return 0;
    }
    *batch_ok = !cfg_record(l, parse_batch(ds, s, &e), &e);
    if (!*batch_ok) {
        /* say which misspelt key was meant, if one is near */
        char hint[200];
        near_keys(ds, "train_batch_size", hint, sizeof hint);
        if (!hint[0])
            near_keys(ds, "train_micro_batch_size_per_gpu", hint, sizeof hint);
        if (hint[0] && l->n - 1 < l->max)
            snprintf(l->e[l->n - 1].message + strlen(l->e[l->n - 1].message),
                     sizeof l->e[0].message - strlen(l->e[l->n - 1].message), "%s", hint);
    }
    cfg_record(l, cfg_zero_parse(cfg_get(ds, "zero_optimization"), s->world_size > 0 ?
                                 s->world_size : 1, &s->zero_stage, s->warnings, &e), &e);
    if (s->zero_stage >= 1 && s->world_size > 1 && s->model.type == MODEL_GPT)
        /* train_shard.c slices the flat state of mlp and linear models only */
        cfg_record(l, cfg_warn(s->warnings, &e, "ds_config.zero_optimization.stage %d: a gpt model "
                           "keeps its whole optimizer state on every rank (it runs as stage 0; "
                           "the results are the same)", s->zero_stage), &e);
    const cJSON *gc = cfg_get(ds, "gradient_clipping");
    if (cJSON_IsString(gc) && strcmp(gc->valuestring, "auto") == 0)
        cfg_record(l, an_fail(&e, "ds_config.gradient_clipping",
                              "ds_config.gradient_clipping is \"auto\", which cannot be worked "
                              "out here: give a number >= 0, e.g. 1.0 (the Trainer's "
                              "max_grad_norm); 0 turns clipping off"), &e);
    else
        cfg_record(l, cfg_num(ds, "ds_config", "gradient_clipping", 1.0, 0.0, INFINITY,
                              CFG_CLOSED, &s->gradient_clipping, &e), &e);
    const cJSON *opt = cfg_get(ds, "optimizer");
    if (!opt) {
        char hint[200];
        near_keys(ds, "optimizer", hint, sizeof hint);
        cfg_record(l, an_fail(&e, "ds_config.optimizer",
                              "ds_config.optimizer is required: anneald builds the optimizer "
                              "from the config, e.g. {\"type\": \"Adam\", \"params\": {\"lr\": "
                              "0.001}}%s", hint), &e);
    } else {
        *opt_ok = check_repairing(opt, "ds_config.optimizer", check_optimizer, &s->optim, l,
                                  s->warnings);
    }
    return l->n == n0;
}

int cfg_ds_scheduler(const cJSON *sc, const sched_env *env, job_spec *s, cfg_errlist *l)
{
    sched_env known = *env;
    if (s->steps == 0) {
        /* An epochs run: job_spec_sched_env knows the rows of row data only. A text's
         * training windows follow from its tokens (the split is of tokens, not rows); data
         * counted only at submission leaves env's stand-in length, which must not be
         * reported as the job's. */
        int64_t ntok = cfg_text_tokens(&s->data);
        text_split sp;
        an_err ignored; /* a bad split is the parse's error (config.c, check_text_split) */
        if (ntok >= 0)
            cfg_text_split(s, ntok, &sp, &ignored);
        if (ntok >= 0 && sp.ktrain >= 1)
            known.total_steps = job_spec_total_steps(s, (int64_t)sp.ktrain);
        else if (job_spec_data_samples(s) < 0)
            known.total_steps_unknown = 1;
    }
    sched_ctx c = {&known};
    int n0 = l->n;
    int ok = check_repairing(sc, "ds_config.scheduler", check_scheduler, &c, l, s->warnings);
    return ok && l->n == n0;
}
