/* preview — the learning rates (and momentum) a config would use, step by step, without
 * training: POST /v1/schedules/preview and `anneald preview`. Built with the same
 * optim_parse and sched_create a job uses, so the preview is what a job would do. */
#include "core/sched.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/cfgval.h"
#include "core/config_gpt.h"
#include "core/jsonnum.h"
#include "core/optim.h"
#include "core/sched_param.h"

#define PREVIEW_MAX_STEPS 10000000LL  /* steps in one answer */
#define PREVIEW_DEFAULT_STEPS 1000

/* Which steps an answer shows. Without thinning, all of them. With `every` N (or `max_points`,
 * which picks N), step 1, every N-th step after it, the last step, and the steps where the lr
 * of group 0 changes direction (rising, flat, falling), the first `turn_cap` of them: a
 * schedule's corners survive thinning, and the answer's size stays bounded. The choice depends
 * only on the schedule, so every pass over it (one per column of the JSON form) keeps the same
 * steps. */
typedef struct preview_plan {
    int64_t steps;
    int64_t every;     /* 1 = every step */
    int64_t turn_cap;  /* direction changes kept at most */
} preview_plan;

/* The run length of a job spec given in epochs, when its data tells the row count. */
static int epochs_steps(const cJSON *job, int64_t *steps, an_err *err)
{
    job_spec spec;
    an_err e;
    /* the preview's own keys are not the job's */
    cJSON *copy = cJSON_Duplicate(job, 1);
    if (!copy)
        return an_failc(err, -ENOMEM, "", "out of memory");
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "every");
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "max_points");
    int rc = job_spec_parse(copy, &spec, &e);
    cJSON_Delete(copy);
    if (rc != 0)
        return an_fail(err, e.field, "the job spec must be valid to preview its epochs: %s",
                       e.message);
    int64_t rows = job_spec_data_samples(&spec), ntok = cfg_text_tokens(&spec.data);
    if (ntok >= 0) {
        /* a text's rows are the windows of its training tokens, as the job splits them */
        text_split sp;
        rc = cfg_text_split(&spec, ntok, &sp, err);
        rows = (int64_t)sp.ktrain;
    } else if (rows < 0) {
        rc = an_fail(err, "epochs", "the run is given in epochs over an uploaded data set, "
                     "whose row count the spec does not tell: give steps (anneald preview "
                     "--steps N) to preview it");
    } else {
        rows = job_spec_train_samples(&spec, rows, NULL);
    }
    if (!rc)
        *steps = job_spec_total_steps(&spec, rows);
    job_spec_free(&spec);
    return rc;
}

/* Reads "every" and "max_points" of a preview body into the plan for `steps` steps. */
static int read_thinning(const cJSON *holder, preview_plan *pl, an_err *err)
{
    int64_t every = 0, maxp = 0;
    int rc;
    pl->every = 1;
    pl->turn_cap = 0;
    if (holder && (rc = sp_int(holder, "", "every", 0, 0, 1, &every, err)))
        return rc;
    if (holder && (rc = sp_int(holder, "", "max_points", 0, 0, 2, &maxp, err)))
        return rc;
    if (every && maxp)
        return an_fail(err, "every", "give every or max_points, not both");
    if (maxp > PREVIEW_MAX_STEPS)
        return an_fail(err, "max_points", "max_points must be at most %lld, got %lld",
                       PREVIEW_MAX_STEPS, (long long)maxp);
    if (every) {
        /* About steps/every stride points; direction changes fill the answer's size at most. */
        int64_t n = (pl->steps + every - 1) / every + 1;
        if (n > PREVIEW_MAX_STEPS / 2)
            return an_fail(err, "every", "every %lld leaves %lld of the %lld steps, more than "
                           "the %lld an answer holds: give a larger every", (long long)every,
                           (long long)n, (long long)pl->steps, PREVIEW_MAX_STEPS / 2);
        pl->every = every;
        pl->turn_cap = PREVIEW_MAX_STEPS - n;
    } else if (maxp && maxp < pl->steps) {
        /* Half of the points for the stride, the rest for direction changes. */
        int64_t half = maxp / 2 - 1 > 0 ? maxp / 2 - 1 : 1;
        pl->every = (pl->steps + half - 1) / half;
        int64_t stride_pts = (pl->steps + pl->every - 1) / pl->every + 1;
        pl->turn_cap = maxp - stride_pts > 0 ? maxp - stride_pts : 0;
    }
    if (pl->every == 1 && pl->steps > PREVIEW_MAX_STEPS)
        return an_fail(err, "steps", "steps %lld is more than the %lld an answer holds: give "
                       "max_points (anneald preview --max-points N) or every (--every N) to "
                       "thin the answer", (long long)pl->steps, PREVIEW_MAX_STEPS);
    return 0;
}

/* Group lrs: a preview body's param_groups are every group; a job spec's are groups 1.. with
 * group 0 holding the remaining tensors at the optimizer's lr. */
static int read_groups(const cJSON *pg, const char *path, int job_form, double opt_lr,
                       sched_env *env, an_err *err)
{
    char p[300];
    env->ngroups = 1;
    env->base_lr[0] = opt_lr;
    if (!pg)
        return 0;
    if (!cJSON_IsArray(pg))
        return an_fail(err, path, "param_groups must be a list of {\"lr\": x} objects, got %s",
                       sp_kind(pg));
    int n = cJSON_GetArraySize(pg);
    int first = job_form ? 1 : 0;
    if (n + first < 1)
        return 0;
    if (n + first > SCHED_MAX_GROUPS)
        return an_fail(err, path, "at most %d param groups, got %d", SCHED_MAX_GROUPS, n + first);
    int k = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, pg) {
        an_path_index(p, sizeof p, path, k);
        if (!cJSON_IsObject(it))
            return an_fail(err, p, "a param group must be an object like {\"lr\": 0.01}, got %s",
                           sp_kind(it));
        double lr;
        int rc = sp_num(it, p, "lr", opt_lr, 0, &lr, err);
        if (rc)
            return rc;
        if (!(lr >= 0)) {
            char pl[340];
            return an_fail(err, an_path(pl, sizeof pl, p, "lr"), "lr must be >= 0, got %.17g", lr);
        }
        env->base_lr[first + k] = lr;
        k++;
    }
    env->ngroups = first + n;
    return 0;
}

/* A preview body's keys beside ds_config, and the thinning keys a whole job spec may add to
 * its own. */
static const char *const PREVIEW_KEYS[] = {"ds_config", "steps", "param_groups", "max_points",
                                           "every", NULL};

/* Refuses a key beside ds_config that a preview would silently ignore: any the body's form
 * does not have. (ds_config's own unknown keys are a job's warnings, which the dashboard's
 * previews of a submitted job must not fail on.) */
static int check_keys(const cJSON *body, int job_form, an_err *err)
{
    if (!job_form)
        return cfg_check_keys(body, "", PREVIEW_KEYS, err);
    const char *keys[64];
    size_t n = 0;
    for (const char *const *k = JOB_SPEC_KEYS; *k && n < 61; k++)
        keys[n++] = *k;
    keys[n++] = "max_points";
    keys[n++] = "every";
    keys[n] = NULL;
    return cfg_check_keys(body, "", keys, err);
}

/* Reads a preview body (see sched.h), creates its scheduler and says how many steps and
 * groups to show. Shared by the tree and the streaming forms. */
static int preview_setup(const cJSON *body, int64_t steps_override, sched **out_s,
                         preview_plan *plan, int *out_groups, an_err *err)
{
    *out_s = NULL;
    if (!cJSON_IsObject(body))
        return an_fail(err, "", "the body must be a JSON object with ds_config, got %s",
                       sp_kind(body));
    const cJSON *ds = cJSON_GetObjectItemCaseSensitive(body, "ds_config");
    const char *prefix = "ds_config";
    int job_form = 0;
    const cJSON *holder = body; /* where steps and param_groups are */
    if (ds) {
        if (!cJSON_IsObject(ds))
            return an_fail(err, "ds_config", "ds_config must be an object, got %s", sp_kind(ds));
        job_form = cJSON_GetObjectItemCaseSensitive(body, "model") != NULL;
    } else {
        ds = body;
        prefix = "";
        holder = NULL;
    }
    int krc = holder ? check_keys(body, job_form, err) : 0;
    if (krc)
        return krc;
    int64_t steps = PREVIEW_DEFAULT_STEPS;
    if (holder && cJSON_GetObjectItemCaseSensitive(holder, "steps")) {
        int rc = sp_int(holder, "", "steps", PREVIEW_DEFAULT_STEPS, 0, 1, &steps, err);
        if (rc)
            return rc;
    } else if (job_form && steps_override <= 0 &&
               cJSON_GetObjectItemCaseSensitive(holder, "epochs")) {
        int rc = epochs_steps(body, &steps, err);
        if (rc)
            return rc;
    }
    if (steps_override > 0)
        steps = steps_override;
    /* Any length a job may have; read_thinning bounds the answer's size. */
    if (steps > CFG_MAX_STEPS)
        return an_fail(err, "steps", "steps must be at most %lld (the longest job), got %lld",
                       CFG_MAX_STEPS, (long long)steps);
    plan->steps = steps;
    int trc = read_thinning(holder, plan, err);
    if (trc)
        return trc;

    char op[64], sp[64];
    an_path(op, sizeof op, prefix, "optimizer");
    an_path(sp, sizeof sp, prefix, "scheduler");
    const cJSON *oblock = cJSON_GetObjectItemCaseSensitive(ds, "optimizer");
    if (!oblock)
        return an_fail(err, op, "an optimizer block is required: the schedule's base lr and "
                       "momentum come from it");
    optim_cfg cfg;
    int rc = optim_parse(oblock, op, &cfg, err, NULL);
    if (rc)
        return rc;

    sched_env env;
    memset(&env, 0, sizeof env);
    rc = read_groups(holder ? cJSON_GetObjectItemCaseSensitive(holder, "param_groups") : NULL,
                     "param_groups", job_form, cfg.lr, &env, err);
    if (rc)
        return rc;
    env.has_betas = optim_has_betas(&cfg);
    env.beta1 = cfg.beta1;
    env.beta2 = cfg.beta2;
    env.momentum = cfg.momentum;
    env.total_steps = steps;
    const cJSON *tbs = cJSON_GetObjectItemCaseSensitive(ds, "train_batch_size");
    /* Only ReduceLROnPlateau's metric quirk reads it; a number no batch can be (negative,
     * fractional or beyond 2^53, where the cast to int64_t would be undefined) counts as
     * not given, as in a preview without it. */
    double tb = cJSON_IsNumber(tbs) ? tbs->valuedouble : 0;
    env.train_batch_size = tb >= 1 && tb <= 9007199254740992.0 && tb == floor(tb) ? (int64_t)tb : 0;

    sched *s;
    rc = sched_create(&s, cJSON_GetObjectItemCaseSensitive(ds, "scheduler"), sp, &env, err,
                      NULL);
    if (rc)
        return rc;
    *out_s = s;
    *out_groups = env.ngroups;
    return 0;
}

/* ---- the steps an answer shows ---------------------------------------------------------
 *
 * A cursor runs the scheduler one step ahead of the step it looks at, so that it can tell
 * whether the lr changes direction there. */
typedef struct cursor {
    sched *s;
    const preview_plan *pl;
    int ngroups;
    int64_t pos;                      /* step index whose values are in cur */
    int64_t k;                        /* the step index last kept */
    int dprev;                        /* direction into pos: -1, 0, 1 */
    int64_t turns;                    /* direction changes kept so far */
    double cur[SCHED_MAX_GROUPS], curm[SCHED_MAX_GROUPS];
    double lr[SCHED_MAX_GROUPS], mom[SCHED_MAX_GROUPS]; /* values of step k */
} cursor;

static void copy_vals(const sched *s, int n, double *lr, double *mom)
{
    const double *a = sched_lr(s), *m = sched_mom(s);
    memcpy(lr, a, (size_t)n * sizeof *lr);
    if (m)
        memcpy(mom, m, (size_t)n * sizeof *mom);
}

/* Starts a pass: the scheduler must be in its initial state. */
static void cur_begin(cursor *c)
{
    c->pos = 0;
    c->k = -1;
    c->dprev = 0;
    c->turns = 0;
    copy_vals(c->s, c->ngroups, c->cur, c->curm);
    sched_step(c->s, NAN);
}

static int sign_of(double d)
{
    return d > 0 ? 1 : d < 0 ? -1 : 0;
}

/* Moves to the next step the plan keeps: 1 (its values in lr/mom, its index in k), 0 at the
 * end, -1 when `*budget` scheduler steps have been spent first (call again to go on). */
static int cur_next(cursor *c, int64_t *budget)
{
    const preview_plan *pl = c->pl;
    while (c->pos < pl->steps) {
        if (*budget <= 0)
            return -1;
        (*budget)--;
        int64_t k = c->pos;
        int dnext = k + 1 < pl->steps ? sign_of(sched_lr(c->s)[0] - c->cur[0]) : 0;
        int keep = pl->every == 1 || k == 0 || k == pl->steps - 1 || k % pl->every == 0;
        if (!keep && dnext != c->dprev && c->turns < pl->turn_cap) {
            keep = 1;
            c->turns++;
        }
        if (keep) {
            c->k = k;
            memcpy(c->lr, c->cur, (size_t)c->ngroups * sizeof *c->lr);
            memcpy(c->mom, c->curm, (size_t)c->ngroups * sizeof *c->mom);
        }
        c->dprev = dnext;
        copy_vals(c->s, c->ngroups, c->cur, c->curm);
        sched_step(c->s, NAN);
        c->pos++;
        if (keep)
            return 1;
    }
    return 0;
}

int sched_preview(const cJSON *body, int64_t steps_override, cJSON **out, an_err *err)
{
    *out = NULL;
    sched *s;
    preview_plan pl;
    int ngroups = 0;
    int rc = preview_setup(body, steps_override, &s, &pl, &ngroups, err);
    if (rc)
        return rc;

    cJSON *res = cJSON_CreateObject();
    cJSON *jstep = cJSON_AddArrayToObject(res, "step");
    cJSON *jlr = cJSON_AddArrayToObject(res, "lr");
    cJSON *jmom = sched_mom(s) ? cJSON_AddArrayToObject(res, "momentum") : NULL;
    cJSON *lr_rows[SCHED_MAX_GROUPS], *mom_rows[SCHED_MAX_GROUPS];
    int ok = res && jstep && jlr && (jmom || !sched_mom(s));
    for (int g = 0; ok && g < ngroups; g++) {
        lr_rows[g] = cJSON_CreateArray();
        ok = lr_rows[g] && cJSON_AddItemToArray(jlr, lr_rows[g]);
        if (ok && jmom) {
            mom_rows[g] = cJSON_CreateArray();
            ok = mom_rows[g] && cJSON_AddItemToArray(jmom, mom_rows[g]);
        }
    }
    /* Entry s-1 is what optimizer step s uses. */
    cursor c = {.s = s, .pl = &pl, .ngroups = ngroups};
    cur_begin(&c);
    int64_t budget = INT64_MAX;
    while (ok && cur_next(&c, &budget) == 1) {
        ok = cJSON_AddItemToArray(jstep, cJSON_CreateNumber((double)(c.k + 1)));
        for (int g = 0; ok && g < ngroups; g++) {
            ok = cJSON_AddItemToArray(lr_rows[g], json_number(c.lr[g]));
            if (ok && jmom)
                ok = cJSON_AddItemToArray(mom_rows[g], json_number(c.mom[g]));
        }
    }
    sched_free(s);
    if (!ok) {
        cJSON_Delete(res);
        return an_failc(err, -ENOMEM, "", "out of memory building a preview of %lld steps",
                        (long long)pl.steps);
    }
    *out = res;
    return 0;
}

/* ---- streaming: the same numbers, written as they are computed ----
 *
 * A preview may ask for 10,000,000 steps: as a cJSON tree that is gigabytes. The stream keeps
 * only the scheduler and its initial state. The JSON form is column-major ("lr" holds one
 * array per group), so the scheduler is rewound to its initial state (sched_load) and run
 * again for each column; a scheduler step costs nanoseconds, so that is cheaper than storing
 * the columns. Text is produced one item at a time into `item` and copied out as the reader
 * asks for it. */

enum { PV_OPEN, PV_STEP, PV_LR_OPEN, PV_LR, PV_MOM_OPEN, PV_MOM, PV_CLOSE, PV_CSV_HEAD, PV_CSV, PV_END };

struct sched_preview_stream {
    sched *s;
    void *init;              /* the scheduler's state before its first step */
    size_t init_len;
    preview_plan pl;
    int ngroups;
    int has_mom;
    int csv;                 /* 1 = CSV rows, 0 = JSON */
    int phase;               /* PV_* */
    int g;                   /* column group in PV_LR / PV_MOM */
    int first;               /* no item written yet in the current array */
    int64_t budget;          /* scheduler steps left in this read */
    cursor c;
    char item[SCHED_MAX_GROUPS * 48 + 64]; /* text made but not yet read */
    size_t ilen, ipos;
};

/* Back to the state before the first step, for the next pass. */
static void rewind_sched(sched_preview_stream *ps)
{
    sched_load(ps->s, ps->init, ps->init_len, NULL);
    cur_begin(&ps->c);
    ps->first = 1;
}

int sched_preview_open(const cJSON *body, int64_t steps_override, int csv,
                       sched_preview_stream **out, an_err *err)
{
    *out = NULL;
    sched_preview_stream *ps = calloc(1, sizeof *ps);
    if (!ps)
        return an_failc(err, -ENOMEM, "", "out of memory");
    int rc = preview_setup(body, steps_override, &ps->s, &ps->pl, &ps->ngroups, err);
    if (rc) {
        free(ps);
        return rc;
    }
    ps->has_mom = sched_mom(ps->s) != NULL;
    ps->csv = csv;
    ps->phase = csv ? PV_CSV_HEAD : PV_OPEN;
    ps->init_len = sched_state_size(ps->s);
    ps->init = malloc(ps->init_len ? ps->init_len : 1);
    if (!ps->init || sched_save(ps->s, ps->init, ps->init_len) != 0) {
        sched_preview_close(ps);
        return an_failc(err, -ENOMEM, "", "out of memory");
    }
    ps->c = (cursor){.s = ps->s, .pl = &ps->pl, .ngroups = ps->ngroups};
    rewind_sched(ps);
    *out = ps;
    return 0;
}

int64_t sched_preview_steps(const sched_preview_stream *ps)
{
    return ps->pl.steps;
}

/* Appends one number to the item, with a separator before it unless it is the first. */
static void put_num(sched_preview_stream *ps, double v, int first)
{
    if (!first)
        ps->item[ps->ilen++] = ',';
    ps->ilen += (size_t)json_number_text(ps->item + ps->ilen, sizeof ps->item - ps->ilen, v, !ps->csv);
}

static void put_str(sched_preview_stream *ps, const char *t)
{
    size_t n = strlen(t);
    memcpy(ps->item + ps->ilen, t, n);
    ps->ilen += n;
}

/* Makes the next item of text: 1 when made (it may be empty), 0 at the end of the stream, -1
 * when this read's budget of scheduler steps is spent. */
static int next_item(sched_preview_stream *ps)
{
    ps->ilen = ps->ipos = 0;
    switch (ps->phase) {
    case PV_CSV_HEAD:
        put_str(ps, "step");
        for (int g = 0; g < ps->ngroups; g++)
            ps->ilen += (size_t)snprintf(ps->item + ps->ilen, sizeof ps->item - ps->ilen, ",lr%d", g);
        for (int g = 0; ps->has_mom && g < ps->ngroups; g++)
            ps->ilen += (size_t)snprintf(ps->item + ps->ilen, sizeof ps->item - ps->ilen, ",momentum%d", g);
        put_str(ps, "\n");
        ps->phase = PV_CSV;
        return 1;
    case PV_CSV: {
        int r = cur_next(&ps->c, &ps->budget);
        if (r < 0)
            return -1;
        if (r == 0) {
            ps->phase = PV_END;
            return 0;
        }
        ps->ilen += (size_t)snprintf(ps->item, sizeof ps->item, "%lld", (long long)(ps->c.k + 1));
        for (int g = 0; g < ps->ngroups; g++)
            put_num(ps, ps->c.lr[g], 0);
        for (int g = 0; ps->has_mom && g < ps->ngroups; g++)
            put_num(ps, ps->c.mom[g], 0);
        put_str(ps, "\n");
        return 1;
    }
    case PV_OPEN:
        put_str(ps, "{\"step\":[");
        ps->phase = PV_STEP;
        return 1;
    case PV_LR:
    case PV_MOM:
    case PV_STEP: {
        /* a run of entries per item keeps the call count down */
        int mom = ps->phase == PV_MOM;
        for (int i = 0; i < 16; i++) {
            int r = cur_next(&ps->c, &ps->budget);
            if (r < 0)
                return i ? 1 : -1;
            if (r == 0) {
                if (i)
                    return 1;
                if (ps->phase == PV_STEP) {
                    put_str(ps, "],\"lr\":[");
                    ps->phase = PV_LR_OPEN;
                    ps->g = 0;
                } else {
                    put_str(ps, "]");
                    ps->g++;
                    ps->phase = mom ? PV_MOM_OPEN : PV_LR_OPEN;
                }
                return 1;
            }
            if (ps->phase == PV_STEP)
                ps->ilen += (size_t)snprintf(ps->item + ps->ilen, sizeof ps->item - ps->ilen,
                                             ps->first ? "%lld" : ",%lld",
                                             (long long)(ps->c.k + 1));
            else
                put_num(ps, mom ? ps->c.mom[ps->g] : ps->c.lr[ps->g], ps->first);
            ps->first = 0;
        }
        return 1;
    }
    case PV_LR_OPEN:
    case PV_MOM_OPEN: {
        int mom = ps->phase == PV_MOM_OPEN;
        if (ps->g >= ps->ngroups) {
            if (!mom && ps->has_mom) {
                put_str(ps, "],\"momentum\":[");
                ps->phase = PV_MOM_OPEN;
                ps->g = 0;
            } else {
                put_str(ps, "]}\n");
                ps->phase = PV_CLOSE;
            }
            return 1;
        }
        put_str(ps, ps->g ? ",[" : "[");
        rewind_sched(ps);
        ps->phase = mom ? PV_MOM : PV_LR;
        return 1;
    }
    default:
        ps->phase = PV_END;
        return 0;
    }
}

size_t sched_preview_read_some(sched_preview_stream *ps, char *buf, size_t max, int64_t budget)
{
    size_t n = 0;
    ps->budget = budget;
    while (n < max) {
        if (ps->ipos == ps->ilen) {
            int r = next_item(ps);
            if (r <= 0)
                break;
        }
        size_t take = ps->ilen - ps->ipos;
        if (take > max - n)
            take = max - n;
        memcpy(buf + n, ps->item + ps->ipos, take);
        ps->ipos += take;
        n += take;
    }
    return n;
}

size_t sched_preview_read(sched_preview_stream *ps, char *buf, size_t max)
{
    return sched_preview_read_some(ps, buf, max, INT64_MAX);
}

int sched_preview_done(const sched_preview_stream *ps)
{
    return ps->phase == PV_END && ps->ipos == ps->ilen;
}

void sched_preview_close(sched_preview_stream *ps)
{
    if (!ps)
        return;
    sched_free(ps->s);
    free(ps->init);
    free(ps);
}
