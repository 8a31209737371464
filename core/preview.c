/* preview — the learning rates (and momentum) a config would use, step by step, without
 * training: POST /v1/schedules/preview and `anneald preview`. Built with the same
 * optim_parse and sched_create a job uses, so the preview is what a job would do. */
#include "core/sched.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonnum.h"
#include "core/optim.h"
#include "core/sched_param.h"

#define PREVIEW_MAX_STEPS 10000000LL
#define PREVIEW_DEFAULT_STEPS 1000

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

/* Reads a preview body (see sched.h), creates its scheduler and says how many steps and
 * groups to show. Shared by the tree and the streaming forms. */
static int preview_setup(const cJSON *body, int64_t steps_override, sched **out_s,
                         int64_t *out_steps, int *out_groups, an_err *err)
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
    int64_t steps = PREVIEW_DEFAULT_STEPS;
    if (holder && cJSON_GetObjectItemCaseSensitive(holder, "steps")) {
        int rc = sp_int(holder, "", "steps", PREVIEW_DEFAULT_STEPS, 0, 1, &steps, err);
        if (rc)
            return rc;
    }
    if (steps_override > 0)
        steps = steps_override;
    if (steps > PREVIEW_MAX_STEPS)
        return an_fail(err, "steps", "steps must be at most %lld, got %lld", PREVIEW_MAX_STEPS,
                       (long long)steps);

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
    *out_steps = steps;
    *out_groups = env.ngroups;
    return 0;
}

int sched_preview(const cJSON *body, int64_t steps_override, cJSON **out, an_err *err)
{
    *out = NULL;
    sched *s;
    int64_t steps = 0;
    int ngroups = 0;
    int rc = preview_setup(body, steps_override, &s, &steps, &ngroups, err);
    if (rc)
        return rc;
    sched_env env = {.ngroups = ngroups};

    cJSON *res = cJSON_CreateObject();
    cJSON *jstep = cJSON_AddArrayToObject(res, "step");
    cJSON *jlr = cJSON_AddArrayToObject(res, "lr");
    cJSON *jmom = sched_mom(s) ? cJSON_AddArrayToObject(res, "momentum") : NULL;
    cJSON *lr_rows[SCHED_MAX_GROUPS], *mom_rows[SCHED_MAX_GROUPS];
    int ok = res && jstep && jlr && (jmom || !sched_mom(s));
    for (int g = 0; ok && g < env.ngroups; g++) {
        lr_rows[g] = cJSON_CreateArray();
        ok = lr_rows[g] && cJSON_AddItemToArray(jlr, lr_rows[g]);
        if (ok && jmom) {
            mom_rows[g] = cJSON_CreateArray();
            ok = mom_rows[g] && cJSON_AddItemToArray(jmom, mom_rows[g]);
        }
    }
    /* Entry s-1 is what optimizer step s uses. */
    for (int64_t k = 0; ok && k < steps; k++) {
        ok = cJSON_AddItemToArray(jstep, cJSON_CreateNumber((double)(k + 1)));
        const double *lr = sched_lr(s), *m = sched_mom(s);
        for (int g = 0; ok && g < env.ngroups; g++) {
            ok = cJSON_AddItemToArray(lr_rows[g], json_number(lr[g]));
            if (ok && jmom)
                ok = cJSON_AddItemToArray(mom_rows[g], json_number(m[g]));
        }
        sched_step(s, NAN);
    }
    sched_free(s);
    if (!ok) {
        cJSON_Delete(res);
        return an_failc(err, -ENOMEM, "", "out of memory building a preview of %lld steps",
                        (long long)steps);
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
    int64_t steps;
    int ngroups;
    int has_mom;
    int csv;                 /* 1 = CSV rows, 0 = JSON */
    int phase;               /* PV_* */
    int g;                   /* column group in PV_LR / PV_MOM */
    int64_t k;               /* step index within the current pass */
    char item[SCHED_MAX_GROUPS * 48 + 64]; /* text made but not yet read */
    size_t ilen, ipos;
};

int sched_preview_open(const cJSON *body, int64_t steps_override, int csv,
                       sched_preview_stream **out, an_err *err)
{
    *out = NULL;
    sched_preview_stream *ps = calloc(1, sizeof *ps);
    if (!ps)
        return an_failc(err, -ENOMEM, "", "out of memory");
    int rc = preview_setup(body, steps_override, &ps->s, &ps->steps, &ps->ngroups, err);
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
    *out = ps;
    return 0;
}

int64_t sched_preview_steps(const sched_preview_stream *ps)
{
    return ps->steps;
}

/* Back to the state before the first step, for the next column. */
static void rewind_sched(sched_preview_stream *ps)
{
    sched_load(ps->s, ps->init, ps->init_len, NULL);
    ps->k = 0;
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

/* Makes the next item of text; returns 0 at the end of the stream. */
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
        if (ps->k >= ps->steps) {
            ps->phase = PV_END;
            return 0;
        }
        ps->ilen += (size_t)snprintf(ps->item, sizeof ps->item, "%lld", (long long)(ps->k + 1));
        const double *lr = sched_lr(ps->s), *m = sched_mom(ps->s);
        for (int g = 0; g < ps->ngroups; g++)
            put_num(ps, lr[g], 0);
        for (int g = 0; m && g < ps->ngroups; g++)
            put_num(ps, m[g], 0);
        put_str(ps, "\n");
        sched_step(ps->s, NAN);
        ps->k++;
        return 1;
    }
    case PV_OPEN:
        put_str(ps, "{\"step\":[");
        ps->phase = PV_STEP;
        ps->k = 0;
        return 1;
    case PV_STEP:
        if (ps->k >= ps->steps) {
            put_str(ps, "],\"lr\":[");
            ps->phase = PV_LR_OPEN;
            ps->g = 0;
            return 1;
        }
        /* a run of step numbers per item keeps the call count down */
        for (int i = 0; i < 16 && ps->k < ps->steps; i++, ps->k++)
            ps->ilen += (size_t)snprintf(ps->item + ps->ilen, sizeof ps->item - ps->ilen,
                                         ps->k ? ",%lld" : "%lld", (long long)(ps->k + 1));
        return 1;
    case PV_LR_OPEN:
    case PV_MOM_OPEN: {
        int mom = ps->phase == PV_MOM_OPEN;
        if (ps->g >= ps->ngroups) {
            if (!mom && ps->has_mom) {
                put_str(ps, "],\"momentum\":[");
                ps->phase = PV_MOM_OPEN;
                ps->g = 0;
            } else {
                put_str(ps, "]}");
                ps->phase = PV_CLOSE;
            }
            return 1;
        }
        put_str(ps, ps->g ? ",[" : "[");
        rewind_sched(ps);
        ps->phase = mom ? PV_MOM : PV_LR;
        return 1;
    }
    case PV_LR:
    case PV_MOM: {
        int mom = ps->phase == PV_MOM;
        if (ps->k >= ps->steps) {
            put_str(ps, "]");
            ps->g++;
            ps->phase = mom ? PV_MOM_OPEN : PV_LR_OPEN;
            return 1;
        }
        for (int i = 0; i < 16 && ps->k < ps->steps; i++, ps->k++) {
            const double *v = mom ? sched_mom(ps->s) : sched_lr(ps->s);
            put_num(ps, v[ps->g], ps->k == 0);
            sched_step(ps->s, NAN);
        }
        return 1;
    }
    default:
        ps->phase = PV_END;
        return 0;
    }
}

size_t sched_preview_read(sched_preview_stream *ps, char *buf, size_t max)
{
    size_t n = 0;
    while (n < max) {
        if (ps->ipos == ps->ilen && !next_item(ps))
            break;
        size_t take = ps->ilen - ps->ipos;
        if (take > max - n)
            take = max - n;
        memcpy(buf + n, ps->item + ps->ipos, take);
        ps->ipos += take;
        n += take;
    }
    return n;
}

void sched_preview_close(sched_preview_stream *ps)
{
    if (!ps)
        return;
    sched_free(ps->s);
    free(ps->init);
    free(ps);
}
