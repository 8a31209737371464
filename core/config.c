/* config — a job spec parsed and validated: the top level, ds_config, the normalized spec,
 * and the normalized spec. The model and data sections are in config_model.c and
 * config_data.c; JSON text with line/column errors in jsontext.c. */
#include "core/config.h"
#include "core/lrfind.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config_metrics.h"
#include "core/cfgval.h"
#include "core/config_data.h"
#include "core/config_ds.h"
#include "core/config_world.h"
#include "core/config_gpt.h"
#include "core/config_groups.h"
#include "core/config_model.h"
#include "core/jsonscan.h"
#include "core/jsonstrict.h"
#include "core/sched.h"

/* sched_env carries group 0 plus every param_groups entry. */
_Static_assert(CFG_MAX_GROUPS + 1 <= SCHED_MAX_GROUPS, "sched_env must hold every group");

static const char *const loss_names[] = {"mse", "cross_entropy", "bce", "mean", NULL};

/* ---- helpers --------------------------------------------------------------------------- */


/* ---- the normalized spec ---------------------------------------------------------------- */

static int set_number(cJSON *o, const char *key, double v)
{
    cJSON *n = cJSON_CreateNumber(v);
    if (!n)
        return 0;
    if (cfg_get(o, key))
        return cJSON_ReplaceItemInObjectCaseSensitive(o, key, n);
    return cJSON_AddItemToObject(o, key, n);
}

static int add_item(cJSON *o, const char *key, cJSON *item)
{
    if (item && cJSON_AddItemToObject(o, key, item))
        return 1;
    cJSON_Delete(item);
    return 0;
}

static cJSON *normalized(const job_spec *s, const cJSON *ds)
{
    cJSON *o = cJSON_CreateObject(), *x = NULL;
    if (!o)
        return NULL;
    int ok = cJSON_AddStringToObject(o, "name", s->name) &&
             cJSON_AddNumberToObject(o, "seed", (double)s->seed) &&
             add_item(o, "model", cfg_model_json(&s->model)) &&
             cJSON_AddStringToObject(o, "loss", loss_names[s->loss - 1]) &&
             add_item(o, "data", cfg_data_json(&s->data));
    if (s->steps)
        ok = ok && cJSON_AddNumberToObject(o, "steps", (double)s->steps);
    else
        ok = ok && cJSON_AddNumberToObject(o, "epochs", (double)s->epochs);
    ok = ok && (x = cJSON_AddObjectToObject(o, "validation")) &&
         (s->val_split_test ? cJSON_AddStringToObject(x, "split", "test") != NULL
                            : cJSON_AddNumberToObject(x, "fraction", s->val_fraction) != NULL) &&
         cJSON_AddNumberToObject(x, "every_steps", (double)s->val_every_steps) &&
         (!s->val_batches || cJSON_AddNumberToObject(x, "batches", (double)s->val_batches));
    ok = ok && (x = cJSON_AddObjectToObject(o, "checkpoint")) &&
         cJSON_AddNumberToObject(x, "every_steps", (double)s->ckpt_every_steps) &&
         cJSON_AddNumberToObject(x, "every_seconds", s->ckpt_every_seconds) &&
         cJSON_AddNumberToObject(x, "keep_last", s->ckpt_keep_last) &&
         cfg_keep_best_json(&s->keep_best, x) == 0;
    ok = ok && cJSON_AddNumberToObject(o, "threads", s->threads);
    ok = ok && cJSON_AddNumberToObject(o, "world_size", s->world_size);
    ok = ok && (x = cJSON_AddArrayToObject(o, "param_groups"));
    for (int i = 0; ok && i < s->ngroups; i++) {
        const param_group_spec *g = &s->groups[i];
        cJSON *e = cJSON_CreateObject();
        ok = e && cJSON_AddItemToArray(x, e);
        if (!ok) {
            cJSON_Delete(e);
            break;
        }
        ok = add_item(e, "match", cJSON_Duplicate(g->match, 1)) &&
             cJSON_AddNumberToObject(e, "lr", g->has_lr ? g->lr : s->optim.lr) &&
             cJSON_AddNumberToObject(e, "weight_decay",
                                     g->has_weight_decay ? g->weight_decay
                                                         : s->optim.weight_decay);
    }
    if (ok && s->lrfind_stop > 0)
        ok = (x = cJSON_AddObjectToObject(o, "lr_finder")) &&
             cJSON_AddNumberToObject(x, "stop_factor", s->lrfind_stop);
    if (ok && s->resume_job[0]) {
        ok = (x = cJSON_AddObjectToObject(o, "resume_from")) &&
             cJSON_AddStringToObject(x, "job", s->resume_job);
        if (ok && s->resume_step >= 0)
            ok = cJSON_AddNumberToObject(x, "step", (double)s->resume_step) != NULL;
    }
    if (ok && (s->metrics_max_bytes > 0 || s->metrics_full_res > 0))
        ok = add_item(o, "metrics", cfg_metrics_json(s->metrics_max_bytes, s->metrics_full_res));
    ok = ok && cfg_sched_json(&s->sched, o) == 0;
    if (ok) {
        x = cJSON_Duplicate(ds, 1);
        ok = x && set_number(x, "train_batch_size", (double)s->train_batch_size) &&
             set_number(x, "train_micro_batch_size_per_gpu", (double)s->micro_batch) &&
             set_number(x, "gradient_accumulation_steps", (double)s->grad_accum) &&
             set_number(x, "gradient_clipping", s->gradient_clipping);
        ok = ok ? add_item(o, "ds_config", x) : (cJSON_Delete(x), 0);
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* ---- the job spec ------------------------------------------------------------------------- */

void job_spec_free(job_spec *s)
{
    if (!s)
        return;
    cJSON_Delete(s->model.init);
    cJSON_Delete(s->data.x);
    cJSON_Delete(s->data.y);
    cJSON_Delete(s->data.features_sel);
    cJSON_Delete(s->data.text);
    cJSON_Delete(s->data.vocab);
    for (int i = 0; i < CFG_MAX_GROUPS; i++)
        cJSON_Delete(s->groups[i].match);
    cJSON_Delete(s->scheduler);
    cJSON_Delete(s->normalized);
    cJSON_Delete(s->warnings);
    memset(s, 0, sizeof *s);
}

static int parse_length(const cJSON *j, job_spec *s, an_err *err)
{
    const cJSON *st = cfg_get(j, "steps"), *ep = cfg_get(j, "epochs");
    int rc;
    if (st && ep)
        return an_fail(err, "epochs", "give steps or epochs, not both");
    if (ep)
        return cfg_int(j, "", "epochs", 0, 1, CFG_MAX_EPOCHS, &s->epochs, err);
    if ((rc = cfg_int(j, "", "steps", 1000, 1, CFG_MAX_STEPS, &s->steps, err)))
        return rc;
    return 0;
}

static int parse_validation(const cJSON *j, job_spec *s, an_err *err)
{
    static const char *const keys[] = {"fraction", "every_steps", "split", "batches", NULL};
    static const char *const splits[] = {"fraction", "test", NULL};
    const cJSON *v = cfg_get(j, "validation");
    int rc, t = 0;
    s->val_fraction = 0.0;
    s->val_every_steps = 100;
    s->val_split_test = 0;
    s->val_batches = 0;
    if (!v)
        return 0;
    if ((rc = cfg_check_keys(v, "validation", keys, err)) ||
        (rc = cfg_enum(v, "validation", "split", splits, 0, &t, err)) ||
        (rc = cfg_int(v, "validation", "batches", 0, 1, CFG_INT_MAX, &s->val_batches, err)))
        return rc;
    s->val_split_test = t == 1;
    if (s->val_split_test && cfg_get(v, "fraction"))
        return an_fail(err, "validation.split", "validation.split \"test\" validates on the "
                       "data set's test split: leave validation.fraction out");
    if (s->val_split_test)
        return cfg_int(v, "validation", "every_steps", 100, 1, CFG_MAX_STEPS,
                       &s->val_every_steps, err);
    if ((rc = cfg_check_keys(v, "validation", keys, err)) ||
        (rc = cfg_num(v, "validation", "fraction", 0.1, 0.0, 1.0, CFG_HI_OPEN, &s->val_fraction,
                      err)) ||
        (rc = cfg_int(v, "validation", "every_steps", 100, 1, CFG_MAX_STEPS, &s->val_every_steps,
                      err)))
        return rc;
    return 0;
}

static int parse_checkpoint(const cJSON *j, job_spec *s, an_err *err)
{
    static const char *const keys[] = {"every_steps", "every_seconds", "keep_last", "keep_best",
                                       NULL};
    const cJSON *c = cfg_get(j, "checkpoint");
    int64_t keep = 3;
    int rc;
    s->ckpt_every_steps = 1000;
    s->ckpt_every_seconds = 60.0;
    if (c && ((rc = cfg_check_keys(c, "checkpoint", keys, err)) ||
              (rc = cfg_int(c, "checkpoint", "every_steps", 1000, 0, CFG_MAX_STEPS,
                            &s->ckpt_every_steps, err)) ||
              (rc = cfg_num(c, "checkpoint", "every_seconds", 60.0, 0.0, 1e9, CFG_CLOSED,
                            &s->ckpt_every_seconds, err)) ||
              (rc = cfg_int(c, "checkpoint", "keep_last", 3, 1, CFG_MAX_KEEP, &keep, err)) ||
              (rc = cfg_keep_best_parse(c, s->val_fraction > 0, &s->keep_best, err))))
        return rc;
    s->ckpt_keep_last = (int)keep;
    return 0;
}

static int parse_resume(const cJSON *j, job_spec *s, an_err *err)
{
    static const char *const keys[] = {"job", "step", NULL};
    const cJSON *r = cfg_get(j, "resume_from");
    int rc;
    s->resume_step = -1;
    if (!r)
        return 0;
    if ((rc = cfg_check_keys(r, "resume_from", keys, err)) ||
        (rc = cfg_str(r, "resume_from", "job", NULL, s->resume_job, sizeof s->resume_job, err)) ||
        (rc = cfg_int(r, "resume_from", "step", -1, 0, CFG_MAX_STEPS, &s->resume_step, err)))
        return rc;
    return 0;
}

/* "lr_finder": {"stop_factor": F} marks a learning-rate sweep: the run ends as soon as its
 * smoothed loss passes F times its lowest (core/lrfind.h). */
static int parse_lrfinder(const cJSON *j, job_spec *s, an_err *err)
{
    static const char *const keys[] = {"stop_factor", NULL};
    const cJSON *f = cfg_get(j, "lr_finder");
    int rc;
    s->lrfind_stop = 0;
    if (!f)
        return 0;
    if ((rc = cfg_want_object(f, "lr_finder", err)) ||
        (rc = cfg_check_keys(f, "lr_finder", keys, err)) ||
        (rc = cfg_num(f, "lr_finder", "stop_factor", LRFIND_STOP_FACTOR, 1.0, LRFIND_STOP_MAX, CFG_LO_OPEN,
                      &s->lrfind_stop, err)))
        return rc;
    return 0;
}

/* Checks that need the data's row count, when the spec tells it. */
static int check_rows(const job_spec *s, an_err *err)
{
    int64_t rows = job_spec_data_samples(s), val;
    if (rows < 0)
        return 0;
    int64_t train = job_spec_train_samples(s, rows, &val);
    if (s->val_fraction > 0 && val < 1)
        return an_fail(err, "validation.fraction",
                       "validation.fraction %g of %lld data rows leaves no validation rows",
                       s->val_fraction, (long long)rows);
    if (train < 1)
        return an_fail(err, "validation.fraction",
                       "validation.fraction %g of %lld data rows leaves no training rows",
                       s->val_fraction, (long long)rows);
    if (s->train_batch_size > train)
        return cfg_warn(s->warnings, err,
                    "ds_config.train_batch_size %lld is larger than the %lld training rows: "
                    "every step uses all of them",
                    (long long)s->train_batch_size, (long long)train);
    return 0;
}

/* An epochs run is held to the limit of `steps` too. Its length needs the data's rows: for
 * data whose rows the spec does not tell (an uploaded data set, a text) this waits for the
 * submission, which knows them. */
static int epoch_limit(const job_spec *s, int64_t train, an_err *err)
{
    int64_t total = job_spec_total_steps(s, train);
    if (total <= CFG_MAX_STEPS)
        return 0;
    return an_fail(err, "epochs", "epochs %lld over %lld training rows in batches of "
                   "train_batch_size %lld is ceil(%lld x %lld / %lld) = %lld steps, more than "
                   "the limit of %lld: give fewer epochs or a larger train_batch_size",
                   (long long)s->epochs, (long long)train, (long long)s->train_batch_size,
                   (long long)s->epochs, (long long)train, (long long)s->train_batch_size,
                   (long long)total, (long long)CFG_MAX_STEPS);
}

/* Each part of a text's validation split must hold a window, as training checks when it
 * starts. The tokens of inline and builtin text are counted here; an uploaded corpus is
 * counted at submission, against the store (jobs/submit.c). */
static int check_text_split(const job_spec *s, an_err *err)
{
    int64_t ntok = s->data.type == DATA_TEXT ? cfg_text_tokens(&s->data) : -1;
    text_split sp;
    int rc = ntok >= 0 ? cfg_text_split(s, ntok, &sp, err) : 0;
    if (!rc && ntok >= 0 && !s->data.sampling_random && s->train_batch_size > (int64_t)sp.ktrain)
        return cfg_warn(s->warnings, err, "ds_config.train_batch_size %lld is larger than the "
                        "%zu training windows: windows repeat within a step",
                        (long long)s->train_batch_size, sp.ktrain);
    return rc;
}

static int check_epoch_steps(const job_spec *s, an_err *err)
{
    int64_t rows = job_spec_data_samples(s);
    if (s->steps > 0 || rows < 0)
        return 0;
    return epoch_limit(s, job_spec_train_samples(s, rows, NULL), err);
}

static int has_string(const cJSON *strings, const char *text)
{
    const cJSON *w;
    cJSON_ArrayForEach(w, strings) {
        if (cJSON_IsString(w) && strcmp(w->valuestring, text) == 0)
            return 1;
    }
    return 0;
}

/* The scheduler's warnings with the run's real length (`fresh`) replace those the parse gave
 * with a stand-in length: the warnings that only the stand-in gave go, the new ones are
 * added, and those both gave stay where they were. */
static void rewarn_scheduler(cJSON *warnings, const cJSON *fresh, const cJSON *stale)
{
    cJSON *w = warnings ? warnings->child : NULL;
    while (w) {
        cJSON *next = w->next;
        if (cJSON_IsString(w) && has_string(stale, w->valuestring) &&
            !has_string(fresh, w->valuestring))
            cJSON_Delete(cJSON_DetachItemViaPointer(warnings, w));
        w = next;
    }
    const cJSON *f;
    cJSON_ArrayForEach(f, fresh) {
        if (cJSON_IsString(f) && warnings && !has_string(warnings, f->valuestring))
            cJSON_AddItemToArray(warnings, cJSON_CreateString(f->valuestring));
    }
}

int job_spec_check_run_length(job_spec *s, int64_t train_samples, an_err *err)
{
    if (s->steps > 0 || train_samples < 1)
        return 0;
    int rc = epoch_limit(s, train_samples, err);
    const cJSON *ds = cfg_get(s->normalized, "ds_config");
    const cJSON *sc = ds ? cfg_get(ds, "scheduler") : NULL;
    if (rc || !sc)
        return rc;
    sched_env env, stand_in;
    job_spec_sched_env(s, train_samples, &env);
    job_spec_sched_env(s, -1, &stand_in); /* what the parse had (config_ds.c) */
    stand_in.total_steps_unknown = 1;
    cJSON *fresh = cJSON_CreateArray(), *stale = cJSON_CreateArray();
    sched *x = NULL, *y = NULL;
    if (!fresh || !stale)
        rc = an_failc(err, -ENOMEM, "ds_config.scheduler", "out of memory");
    else if (!(rc = sched_create(&x, sc, "ds_config.scheduler", &env, err, fresh)))
        rc = sched_check_run(x, "ds_config.scheduler", 1, env.total_steps, err);
    an_err ignored;
    if (!rc && sched_create(&y, sc, "ds_config.scheduler", &stand_in, &ignored, stale) == 0)
        rewarn_scheduler(s->warnings, fresh, stale);
    sched_free(x);
    sched_free(y);
    cJSON_Delete(fresh);
    cJSON_Delete(stale);
    return rc;
}

/* What the scheduler asks of the run (sched_check_run): validation for ReduceLROnPlateau
 * (taken as given when the validation block had errors of its own), and a OneCycleLR long
 * enough for the run when its length is known (`rows` >= 0 for an epochs run). And whether
 * it writes the momentum of an SGD or RMSprop: torch's optimizers then use it though the
 * block says momentum 0, so ours must keep a momentum buffer (optim_cfg.momentum_cycled). */
static int check_sched_run(const cJSON *sc, const sched_env *env, job_spec *s, int val_ok,
                           int64_t rows, an_err *err)
{
    sched *x;
    int rc = sched_create(&x, sc, "ds_config.scheduler", env, err, NULL);
    if (rc)
        return rc;
    int64_t steps = s->steps > 0 ? s->steps : rows >= 0 ? env->total_steps : 0;
    rc = sched_check_run(x, "ds_config.scheduler",
                         !val_ok || s->val_fraction > 0 || s->val_split_test, steps, err);
    s->optim.momentum_cycled = sched_mom(x) != NULL && !optim_has_betas(&s->optim);
    sched_free(x);
    return rc;
}

/* Sections of a spec are checked one after another; a bad section is recorded (cfg_errlist)
 * and checking goes on with the next, so a user sees every mistake at once. A section that
 * depends on a bad one (data on model) is skipped rather than reported again. */
typedef cfg_errlist errlist;

static int failed(errlist *l, int rc, const an_err *e)
{
    return cfg_record(l, rc, e);
}

const char *const JOB_SPEC_KEYS[] = {"name",       "seed",       "model",        "loss",
                                     "data",       "steps",      "epochs",       "validation",
                                     "checkpoint", "threads",    "param_groups", "resume_from",
                                     "ds_config",  "lr_finder",  "metrics",    "world_size",
                                     /* scheduling (config_sched.h) */
                                     "priority", "preemptible", "max_runtime_s",
                                     "stall_timeout_s", "max_restarts", "tags", "notes", NULL};

static void parse_spec(const cJSON *j, job_spec *s, errlist *l)
{
    const char *const *top = JOB_SPEC_KEYS;
    an_err e;
    int64_t v;
    int t;
    s->warnings = cJSON_CreateArray();
    if (!s->warnings) {
        failed(l, an_failc(&e, -ENOMEM, "", "out of memory"), &e);
        return;
    }
    failed(l, cfg_check_keys(j, "", top, &e), &e);
    failed(l, cfg_str(j, "", "name", "job", s->name, sizeof s->name, &e), &e);
    if (!failed(l, cfg_int(j, "", "seed", 0, 0, CFG_INT_MAX, &v, &e), &e))
        s->seed = (uint64_t)v;
    int model_ok = !failed(l, cfg_require(j, "", "model", &e), &e) &&
                   !failed(l, cfg_model_parse(cfg_get(j, "model"), &s->model, &e), &e);
    int is_gpt = model_ok && s->model.type == MODEL_GPT;
    int loss_ok = !failed(l, cfg_enum(j, "", "loss", loss_names, is_gpt ? 1 : 0, &t, &e), &e);
    if (loss_ok)
        s->loss = t + 1;
    if (is_gpt && loss_ok && s->loss != LOSS_CROSS_ENTROPY) {
        failed(l, an_fail(&e, "loss", "model gpt is trained with loss cross_entropy (next-token "
                          "prediction), got %s", loss_names[s->loss - 1]), &e);
        loss_ok = 0;
    }
    if (!is_gpt && model_ok && loss_ok && s->loss == LOSS_CROSS_ENTROPY && s->model.outputs < 2) {
        failed(l, an_fail(&e, "model.outputs",
                          "loss cross_entropy needs model.outputs >= 2 (one output per class), "
                          "got %d",
                          s->model.outputs),
               &e);
        model_ok = 0;
    }
    int data_ok = !failed(l, cfg_require(j, "", "data", &e), &e) && model_ok && loss_ok &&
                  !failed(l, cfg_data_parse(cfg_get(j, "data"), &s->model, s->loss, &s->data, &e),
                          &e);
    if (is_gpt && data_ok && failed(l, cfg_gpt_resolve(&s->model, &s->data, &e), &e))
        data_ok = 0;
    if (is_gpt && data_ok && s->model.vocab_size == 1)
        failed(l, cfg_warn(s->warnings, &e, "data: the text has a single distinct character, so "
                           "every next token is that one: the loss is 0 from the first step and "
                           "nothing is learned"), &e);
    int length_ok = !failed(l, parse_length(j, s, &e), &e);
    int val_ok = !failed(l, parse_validation(j, s, &e), &e);
    failed(l, parse_checkpoint(j, s, &e), &e);
    if (!failed(l, cfg_int(j, "", "threads", 1, 1, CFG_MAX_THREADS, &v, &e), &e))
        s->threads = (int)v;
    const cJSON *g = cfg_get(j, "param_groups");
    int groups_ok = !g || (model_ok && !failed(l, cfg_groups_parse(g, s, &e), &e));
    failed(l, parse_resume(j, s, &e), &e);
    if (!failed(l, parse_lrfinder(j, s, &e), &e) && is_gpt && s->lrfind_stop > 0 && !s->stored)
        failed(l, an_fail(&e, "lr_finder", "the LR finder's sweep runs linear and mlp models; a "
                          "gpt job's would not end itself: sweep its lr with an LRRangeTest "
                          "schedule and read the loss instead"), &e);
    failed(l, cfg_metrics_parse(j, &s->metrics_max_bytes, &s->metrics_full_res, &e), &e);
    failed(l, cfg_sched_parse(j, &s->sched, &e), &e);
    failed(l, cfg_world_parse(j, &s->world_size, &e), &e); /* 1 when bad: the batch check goes on */
    const cJSON *ds = cfg_get(j, "ds_config");
    int ds_ok = 0, batch_ok = 0, opt_ok = 0;
    if (!failed(l, cfg_require(j, "", "ds_config", &e), &e))
        ds_ok = cfg_ds_parse(ds, s, l, &batch_ok, &opt_ok);
    /* fp16/bf16 and activation checkpointing do not depend on the rest of ds_config. With a
     * bad model its layers are unknown (type 0: config_actckpt.c checks no layer count) and
     * only what the blocks say of themselves is checked. */
    if (cJSON_IsObject(ds)) {
        int type = s->model.type;
        if (!model_ok)
            s->model.type = 0;
        if (failed(l, cfg_numerics_parse(ds, s, &e), &e))
            ds_ok = 0;
        s->model.type = type;
        /* DeepSpeed's engine asserts this at start-up: Lamb's trust ratio needs the dynamic
         * scaler. A stored spec accepted before this check runs on as it did. */
        if (opt_ok && s->fp16 && s->loss_scale.loss_scale > 0 && s->optim.type == OPTIM_LAMB &&
            !s->stored &&
            failed(l, an_fail(&e, "ds_config.fp16.loss_scale", "Lamb needs dynamic loss "
                              "scaling: set ds_config.fp16.loss_scale to 0 (the default), or "
                              "use another optimizer with a fixed scale"), &e))
            ds_ok = 0;
    }
    if (data_ok && val_ok && s->val_split_test && strcmp(s->data.name, "fashion-mnist") != 0 &&
        failed(l, an_fail(&e, "validation.split", "validation.split \"test\" needs a data set "
                          "with a test split (builtin fashion-mnist)"), &e))
        val_ok = 0;
    if (model_ok && val_ok && s->val_batches && !is_gpt &&
        failed(l, an_fail(&e, "validation.batches", "validation.batches applies to model gpt "
                          "(a sample of its text windows); other models validate on every row"),
               &e))
        val_ok = 0;
    if (is_gpt && model_ok && batch_ok && failed(l, cfg_gpt_check_sizes(s, &e), &e))
        batch_ok = 0;
    if (data_ok && val_ok && batch_ok && failed(l, check_rows(s, &e), &e))
        data_ok = 0;
    if (data_ok && val_ok && failed(l, check_text_split(s, &e), &e))
        val_ok = 0;
    if (data_ok && val_ok && batch_ok && length_ok && failed(l, check_epoch_steps(s, &e), &e))
        length_ok = 0;
    /* The scheduler needs the optimizer (its lr and betas: a repaired one will do) and the
     * run's length, which for an epochs run depends on the data's rows and the batch size;
     * a run given in steps needs neither. */
    const cJSON *sc = cJSON_IsObject(ds) ? cfg_get(ds, "scheduler") : NULL;
    if (sc && opt_ok && groups_ok && length_ok && (s->steps > 0 || (data_ok && batch_ok))) {
        sched_env env;
        int64_t rows = data_ok ? job_spec_data_samples(s) : -1;
        int64_t tbs = s->train_batch_size;
        if (!batch_ok)
            s->train_batch_size = 1; /* only ReduceLROnPlateau reads it; the spec fails anyway */
        job_spec_sched_env(s, rows < 0 ? -1 : job_spec_train_samples(s, rows, NULL), &env);
        s->train_batch_size = tbs;
        if (cfg_ds_scheduler(sc, &env, s, l) &&
            !failed(l, check_sched_run(sc, &env, s, val_ok, rows, &e), &e) && ds_ok) {
            s->scheduler = cJSON_Duplicate(sc, 1);
            if (!s->scheduler)
                failed(l, an_failc(&e, -ENOMEM, "ds_config.scheduler", "out of memory"), &e);
        }
    }
    if (l->n)
        return;
    s->normalized = normalized(s, ds);
    if (!s->normalized)
        failed(l, an_failc(&e, -ENOMEM, "", "out of memory building the normalized spec"), &e);
}

static int parse_all(const cJSON *json, job_spec *out, an_err *errs, int max, int *nerr,
                     int stored)
{
    char got[80];
    errlist l = {.e = errs, .max = max};
    memset(out, 0, sizeof *out);
    out->stored = stored;
    if (!cJSON_IsObject(json)) {
        an_err e;
        failed(&l, an_fail(&e, "", "a job spec must be a JSON object, got %s",
                           cfg_describe(json, got, sizeof got)),
               &e);
    } else {
        parse_spec(json, out, &l);
    }
    if (nerr)
        *nerr = l.n;
    if (l.rc)
        job_spec_free(out);
    return l.rc;
}

int job_spec_parse_all(const cJSON *json, job_spec *out, an_err *errs, int max, int *nerr)
{
    return parse_all(json, out, errs, max, nerr, 0);
}

static int parse_one(const cJSON *json, job_spec *out, an_err *err, int stored)
{
    an_err_clear(err);
    an_err first;
    int rc = parse_all(json, out, &first, 1, NULL, stored);
    if (rc && err)
        *err = first;
    return rc;
}

int job_spec_parse(const cJSON *json, job_spec *out, an_err *err)
{
    return parse_one(json, out, err, 0);
}

int job_spec_parse_text(const char *text, size_t len, job_spec *out, an_err *err)
{
    cJSON *j;
    memset(out, 0, sizeof *out);
    int rc = json_parse_text(text, len, &j, err);
    if (rc)
        return rc;
    rc = job_spec_parse(j, out, err);
    cJSON_Delete(j);
    return rc;
}

int job_spec_parse_stored(const char *text, size_t len, job_spec *out, an_err *err)
{
    memset(out, 0, sizeof *out);
    cJSON *j = text ? cJSON_ParseWithLength(text, len) : NULL;
    if (!j)
        return an_failc(err, -EINVAL, "", "the stored spec is not JSON");
    int rc = parse_one(j, out, err, 1);
    cJSON_Delete(j);
    return rc;
}
