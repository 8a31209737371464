/* sched — building, stepping and serialising schedulers; the composite types.
 *
 * A block's "type" picks DeepSpeed's (sched_ds.c) or PyTorch's (sched_torch.c) scheduler, or
 * a composite: SequentialLR and ChainedScheduler (PyTorch's, over chainable children that
 * share one lr array) and MultiPhase (anneald's: phases run one after another).
 *
 * MultiPhase seeds every phase from the job's base lrs (the same env as a lone scheduler
 * gets), not from where the previous phase ended: each phase is exactly the schedule its
 * block describes, with its own step count starting at 0, so a phase reads the same whether
 * it comes first or third. The last phase keeps running past its "steps". Where a phase
 * does not cycle momentum, the optimizer's configured beta1/momentum (and beta2) are
 * reported for it. */
#include "core/sched.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/sched_ds.h"
#include "core/sched_node.h"
#include "core/sched_param.h"
#include "core/sched_torch.h"
#include "util/util.h"

#define SCHED_MAX_DEPTH 4

static const char KNOWN_TYPES[] =
    "WarmupLR, WarmupDecayLR, WarmupCosineLR, OneCycle, LRRangeTest, StepLR, MultiStepLR, "
    "ExponentialLR, CosineAnnealingLR, CosineAnnealingWarmRestarts, CyclicLR, OneCycleLR, "
    "LinearLR, ConstantLR, PolynomialLR, ReduceLROnPlateau, SequentialLR, ChainedScheduler, "
    "MultiPhase";

static double default_mom(const sched_env *env)
{
    return env->has_betas ? env->beta1 : env->momentum;
}

static void reset_arrays(sched *s)
{
    for (int g = 0; g < s->ngroups; g++) {
        s->lr[g] = s->env.base_lr[g];
        s->mom[g] = default_mom(&s->env);
        s->beta2[g] = s->env.beta2;
    }
}

/* MultiPhase reports the running phase's values. */
static void phase_sync(sched *s)
{
    const sched *c = s->child[s->cur];
    for (int g = 0; g < s->ngroups; g++) {
        s->lr[g] = c->lr[g];
        s->mom[g] = c->cycles_mom ? c->mom[g] : default_mom(&s->env);
        s->beta2[g] = c->sets_beta2 ? c->beta2[g] : s->env.beta2;
    }
}

static int build(sched **out, const cJSON *block, const char *path, const sched_env *env,
                 an_err *err, cJSON *warnings, int depth, int chainable_only);

static int build_children(sched *s, const cJSON *params, const char *ppath, an_err *err,
                          cJSON *warnings, int depth)
{
    char p[256], pi[300];
    const int multiphase = s->kind == SK_MULTIPHASE;
    const char *key = multiphase ? "phases" : "schedulers";
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(params, key);
    an_path(p, sizeof p, ppath, key);
    if (!list)
        return an_fail(err, p, "%s is required", key);
    if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) < 1)
        return an_fail(err, p, "%s must be a non-empty list of scheduler blocks, got %s", key,
                       cJSON_IsArray(list) ? "an empty list" : sp_kind(list));
    int n = cJSON_GetArraySize(list);
    if (n > SCHED_MAX_CHILDREN)
        return an_fail(err, p, "%s may have at most %d entries, got %d", key, SCHED_MAX_CHILDREN,
                       n);
    const cJSON *it;
    int k = 0;
    cJSON_ArrayForEach(it, list) {
        an_path_index(pi, sizeof pi, p, k);
        if (!cJSON_IsObject(it))
            return an_fail(err, pi, "a %s entry must be an object {\"type\", \"params\"%s}, got %s",
                           key, multiphase ? ", \"steps\"" : "", sp_kind(it));
        cJSON *copy = NULL;
        const cJSON *blk = it;
        if (multiphase) {
            const cJSON *st = cJSON_GetObjectItemCaseSensitive(it, "steps");
            int64_t steps = 0;
            int rc;
            if (st || k < n - 1) {
                if ((rc = sp_int(it, pi, "steps", 0, 1, 1, &steps, err)))
                    return rc;
            }
            s->bounds[k] = steps;
            /* The phase's own block is the entry without "steps". */
            copy = cJSON_Duplicate(it, 1);
            if (!copy)
                return an_failc(err, -ENOMEM, pi, "out of memory");
            cJSON_DeleteItemFromObjectCaseSensitive(copy, "steps");
            blk = copy;
        }
        int rc = build(&s->child[k], blk, pi, &s->env, err, warnings, depth + 1, !multiphase);
        cJSON_Delete(copy);
        if (rc)
            return rc;
        s->nchild = ++k;
        if (!multiphase)
            s->cycles_mom |= s->child[k - 1]->cycles_mom;
        else {
            s->cycles_mom |= s->child[k - 1]->cycles_mom;
            s->sets_beta2 |= s->child[k - 1]->sets_beta2;
        }
    }
    if (s->kind == SK_SEQUENTIAL) {
        static const char *const keys[] = {"schedulers", "milestones", NULL};
        int rc = sp_check_keys(params, ppath, keys, "SequentialLR", err);
        if (rc)
            return rc;
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(params, "milestones");
        an_path(p, sizeof p, ppath, "milestones");
        if (!m)
            return an_fail(err, p, "milestones is required");
        if (!cJSON_IsArray(m) || cJSON_GetArraySize(m) != n - 1)
            return an_fail(err, p, "milestones must be a list of %d integers (one fewer than "
                           "schedulers), got %s%s", n - 1, sp_kind(m),
                           cJSON_IsArray(m) ? " of another length" : "");
        int j = 0;
        cJSON_ArrayForEach(it, m) {
            an_path_index(pi, sizeof pi, p, j);
            if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) ||
                it->valuedouble < 1 || it->valuedouble > 9e15)
                return an_fail(err, pi, "milestones must be positive integers, got %s",
                               cJSON_IsNumber(it) ? "a fraction or a number below 1" : sp_kind(it));
            s->bounds[j] = (int64_t)it->valuedouble;
            if (j > 0 && s->bounds[j] <= s->bounds[j - 1])
                return an_fail(err, pi, "milestones must increase, got %lld after %lld",
                               (long long)s->bounds[j], (long long)s->bounds[j - 1]);
            j++;
        }
    } else {
        static const char *const keys_c[] = {"schedulers", NULL};
        static const char *const keys_m[] = {"phases", NULL};
        int rc = sp_check_keys(params, ppath, multiphase ? keys_m : keys_c,
                               multiphase ? "MultiPhase" : "ChainedScheduler", err);
        if (rc)
            return rc;
    }
    return 0;
}

/* A OneCycleLR keeps its lrs and momenta in the optimizer's groups (initial_lr, max_lr,
 * min_lr, max_momentum, base_momentum) and reads them from there at every step, so inside a
 * composite the last one built, once every child is built, speaks for all of them; the
 * momenta are written only by one that cycles momentum. */
static void onecycle_share(sched *s)
{
    const sched *lr_from = NULL, *mom_from = NULL;
    for (int k = 0; k < s->nchild; k++)
        if (s->child[k]->kind == SK_ONECYCLELR) {
            lr_from = s->child[k];
            if (lr_from->cycles_mom)
                mom_from = lr_from;
        }
    for (int k = 0; k < s->nchild; k++) {
        sched *c = s->child[k];
        if (c->kind != SK_ONECYCLELR)
            continue;
        memcpy(c->init_lr, lr_from->init_lr, sizeof c->init_lr);
        memcpy(c->peak_lr, lr_from->peak_lr, sizeof c->peak_lr);
        memcpy(c->final_lr, lr_from->final_lr, sizeof c->final_lr);
        if (c->cycles_mom) {
            memcpy(c->max_momv, mom_from->max_momv, sizeof c->max_momv);
            memcpy(c->base_mom, mom_from->base_mom, sizeof c->base_mom);
        }
    }
}

/* Construction of a composite, as torch's constructors leave the optimizer. */
static void composite_init(sched *s)
{
    reset_arrays(s);
    if (s->kind == SK_MULTIPHASE) {
        s->cur = 0;
        s->phase_steps = 0;
        phase_sync(s);
        return;
    }
    /* Every child is constructed in order on the shared optimizer, whose groups carry an
     * initial_lr: the first scheduler built sets it to the lr it finds (a CyclicLR to its
     * base_lr, which it writes first), a OneCycleLR to its max_lr / div_factor, and each
     * scheduler takes it as its base lrs (the closed forms, CosineAnnealingLR's and the
     * restarts' base). A CyclicLR's first step still reads that initial_lr; it uses its own
     * base_lr from then on. */
    double init[SCHED_MAX_GROUPS];
    int have_init = 0;
    for (int k = 0; k < s->nchild; k++) {
        sched *c = s->child[k];
        if (c->kind == SK_ONECYCLELR || !have_init) {
            const double *from = c->kind == SK_ONECYCLELR ? c->init_lr
                                 : c->kind == SK_CYCLIC   ? c->min_lr
                                                          : s->lr;
            memcpy(init, from, sizeof init);
            have_init = 1;
        }
        memcpy(c->base, init, sizeof c->base);
        torch_init(c, s->lr, s->mom);
        if (c->kind == SK_CYCLIC)
            memcpy(s->lr, init, (size_t)s->ngroups * sizeof s->lr[0]);
    }
    onecycle_share(s);
    if (s->kind == SK_SEQUENTIAL) {
        /* SequentialLR resets the lrs to the groups' initial_lr, undoes the children's
         * initial steps, and redoes the first child's alone. */
        memcpy(s->lr, init, (size_t)s->ngroups * sizeof s->lr[0]);
        for (int k = 0; k < s->nchild; k++)
            s->child[k]->last_epoch -= 1;
        torch_step(s->child[0], s->lr, s->mom, NAN);
        s->last_epoch = 0;
    }
}

static int build(sched **out, const cJSON *block, const char *path, const sched_env *env,
                 an_err *err, cJSON *warnings, int depth, int chainable_only)
{
    char p[256], pp[256];
    int rc;
    *out = NULL;
    if (depth > SCHED_MAX_DEPTH)
        return an_fail(err, path, "schedulers nest at most %d deep", SCHED_MAX_DEPTH);
    if (!cJSON_IsObject(block))
        return an_fail(err, path, "a scheduler must be an object {\"type\": …, \"params\": {…}}, "
                       "got %s", sp_kind(block));
    static const char *const bkeys[] = {"type", "params", NULL};
    if ((rc = sp_check_keys(block, path, bkeys, "a scheduler block", err)))
        return rc;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(block, "type");
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(block, "params");
    an_path(p, sizeof p, path, "type");
    if (!type)
        return an_fail(err, p, "type is required (one of %s)", KNOWN_TYPES);
    if (!cJSON_IsString(type) || !type->valuestring)
        return an_fail(err, p, "type must be a string, got %s", sp_kind(type));
    const char *t = type->valuestring;
    int kind = ds_kind(t);
    if (!kind)
        kind = torch_kind(t);
    if (!kind) {
        if (strcmp(t, "SequentialLR") == 0)
            kind = SK_SEQUENTIAL;
        else if (strcmp(t, "ChainedScheduler") == 0)
            kind = SK_CHAINED;
        else if (strcmp(t, "MultiPhase") == 0)
            kind = SK_MULTIPHASE;
    }
    if (!kind) {
        if (strcmp(t, "LambdaLR") == 0 || strcmp(t, "MultiplicativeLR") == 0)
            return an_fail(err, p, "%s takes a Python function and cannot be given in JSON; "
                           "use ExponentialLR, StepLR or MultiPhase", t);
        return an_fail(err, p, "unknown scheduler type \"%s\" (names are case-sensitive); "
                       "expected one of %s", t, KNOWN_TYPES);
    }
    if (chainable_only && !sched_kind_chainable(kind) && kind != SK_CAWR && kind != SK_CYCLIC &&
        kind != SK_ONECYCLELR)
        return an_fail(err, p, "%s cannot run inside SequentialLR or ChainedScheduler; use "
                       "PyTorch schedulers there, or MultiPhase", t);
    an_path(pp, sizeof pp, path, "params");
    if (!params)
        return an_fail(err, pp, "params is required (DeepSpeed fails without it); give "
                       "\"params\": {} for the defaults");
    if (!cJSON_IsObject(params))
        return an_fail(err, pp, "params must be an object, got %s", sp_kind(params));

    sched *s = calloc(1, sizeof *s);
    if (!s)
        return an_failc(err, -ENOMEM, path, "out of memory");
    s->kind = kind;
    s->ngroups = env->ngroups;
    s->env = *env;
    reset_arrays(s);
    if (kind >= SK_WARMUP && kind <= SK_LRRANGE) {
        rc = ds_create(s, params, pp, err, warnings);
    } else if (kind >= SK_STEP && kind <= SK_PLATEAU) {
        rc = torch_create(s, params, pp, err, warnings);
        /* torch 1.13 refuses to cycle what the optimizer does not have: CyclicLR cycles
         * only a momentum (SGD, RMSprop), OneCycleLR a momentum or beta1. */
        if (!rc && s->cycles_mom && !env->has_momentum && !env->stored &&
            (kind == SK_CYCLIC || (kind == SK_ONECYCLELR && !env->has_betas))) {
            char mp[300];
            rc = an_fail(err, an_path(mp, sizeof mp, pp, "cycle_momentum"),
                         "%s cycles the optimizer's momentum (cycle_momentum defaults to true) "
                         "and this optimizer has no %s to cycle (PyTorch 1.13 refuses it); give "
                         "\"cycle_momentum\": false", t,
                         kind == SK_CYCLIC ? "momentum" : "momentum or betas");
        }
        if (!rc && !chainable_only)
            torch_init(s, s->lr, s->mom);
    } else {
        if (chainable_only)
            rc = an_fail(err, p, "%s cannot run inside SequentialLR or ChainedScheduler", t);
        else
            rc = build_children(s, params, pp, err, warnings, depth);
        if (!rc)
            composite_init(s);
    }
    if (rc) {
        sched_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int sched_create(sched **out, const cJSON *block, const char *path, const sched_env *env,
                 an_err *err, cJSON *warnings)
{
    *out = NULL;
    if (!env || env->ngroups < 1 || env->ngroups > SCHED_MAX_GROUPS)
        return an_fail(err, "", "a scheduler needs 1 to %d param groups, got %d",
                       SCHED_MAX_GROUPS, env ? env->ngroups : 0);
    if (!block || cJSON_IsNull(block)) {
        sched *s = calloc(1, sizeof *s);
        if (!s)
            return an_failc(err, -ENOMEM, path, "out of memory");
        s->kind = SK_CONST;
        s->ngroups = env->ngroups;
        s->env = *env;
        reset_arrays(s);
        *out = s;
        return 0;
    }
    return build(out, block, path ? path : "", env, err, warnings, 0, 0);
}

void sched_free(sched *s)
{
    if (!s)
        return;
    for (int k = 0; k < s->nchild; k++)
        sched_free(s->child[k]);
    free(s);
}

int sched_validate(const cJSON *block, const char *path, const sched_env *env, an_err *err,
                   cJSON *warnings)
{
    sched *s;
    int rc = sched_create(&s, block, path, env, err, warnings);
    sched_free(s);
    return rc;
}

int sched_ngroups(const sched *s) { return s->ngroups; }
const double *sched_lr(const sched *s) { return s->lr; }
const double *sched_mom(const sched *s) { return s->cycles_mom ? s->mom : NULL; }
const double *sched_beta2(const sched *s) { return s->sets_beta2 ? s->beta2 : NULL; }
int64_t sched_steps(const sched *s) { return s->steps; }

void sched_step(sched *s, double metric)
{
    s->steps += 1;
    switch (s->kind) {
    case SK_CONST: return;
    case SK_SEQUENTIAL: {
        s->last_epoch += 1;
        int idx = 0;
        while (idx < s->nchild - 1 && s->bounds[idx] <= s->last_epoch)
            idx++;
        s->cur = idx;
        if (idx > 0 && s->bounds[idx - 1] == s->last_epoch)
            torch_step_zero(s->child[idx], s->lr, s->mom);
        else
            torch_step(s->child[idx], s->lr, s->mom, metric);
        return;
    }
    case SK_CHAINED:
        for (int k = 0; k < s->nchild; k++)
            torch_step(s->child[k], s->lr, s->mom, metric);
        return;
    case SK_MULTIPHASE:
        if (s->cur < s->nchild - 1 && s->phase_steps + 1 >= s->bounds[s->cur]) {
            s->cur += 1;
            s->phase_steps = 0;
        } else {
            s->phase_steps += 1;
            sched_step(s->child[s->cur], metric);
        }
        phase_sync(s);
        return;
    default:
        if (s->kind <= SK_LRRANGE)
            ds_apply(s);
        else
            torch_step(s, s->lr, s->mom, metric);
        return;
    }
}

/* ---- serialisation: little-endian, a header per node, then its children ---- */

#define STATE_MAGIC 0x53534e41u /* "ANSS" */
#define STATE_VERSION 1u
#define NODE_I64 8
#define NODE_HEADER (4 * 5)

static size_t node_size(const sched *s)
{
    size_t n = NODE_HEADER + 8 * NODE_I64 + 8 + 3 * 8 * (size_t)s->ngroups;
    for (int k = 0; k < s->nchild; k++)
        n += node_size(s->child[k]);
    return n;
}

size_t sched_state_size(const sched *s) { return node_size(s); }

static size_t save_node(const sched *s, unsigned char *b)
{
    size_t o = 0;
    const int64_t iv[NODE_I64] = {s->steps, s->last_epoch, s->num_bad, s->cooldown_counter,
                                  s->t_i,   s->t_cur,      s->cur,     s->phase_steps};
    le_put_u32(b + o, STATE_MAGIC), o += 4;
    le_put_u32(b + o, STATE_VERSION), o += 4;
    le_put_u32(b + o, (uint32_t)s->kind), o += 4;
    le_put_u32(b + o, (uint32_t)s->ngroups), o += 4;
    le_put_u32(b + o, (uint32_t)s->nchild), o += 4;
    for (int k = 0; k < NODE_I64; k++)
        le_put_u64(b + o, (uint64_t)iv[k]), o += 8;
    le_put_f64(b + o, s->best), o += 8;
    for (int g = 0; g < s->ngroups; g++)
        le_put_f64(b + o, s->lr[g]), o += 8;
    for (int g = 0; g < s->ngroups; g++)
        le_put_f64(b + o, s->mom[g]), o += 8;
    for (int g = 0; g < s->ngroups; g++)
        le_put_f64(b + o, s->beta2[g]), o += 8;
    for (int k = 0; k < s->nchild; k++)
        o += save_node(s->child[k], b + o);
    return o;
}

int sched_save(const sched *s, void *buf, size_t len)
{
    if (len < node_size(s))
        return -ENOSPC;
    save_node(s, buf);
    return 0;
}

/* Checks (apply = 0) or restores (apply = 1) one node and its children. */
static int load_node(sched *s, const unsigned char *b, size_t len, size_t *off, int apply,
                     an_err *err)
{
    size_t o = *off;
    size_t need = NODE_HEADER + 8 * NODE_I64 + 8 + 3 * 8 * (size_t)s->ngroups;
    if (len - o < need)
        return an_failc(err, -EPROTO, "", "scheduler state is truncated: %zu bytes left, a node "
                        "needs %zu", len - o, need);
    uint32_t magic = le_get_u32(b + o), ver = le_get_u32(b + o + 4), kind = le_get_u32(b + o + 8);
    uint32_t ng = le_get_u32(b + o + 12), nc = le_get_u32(b + o + 16);
    if (magic != STATE_MAGIC)
        return an_failc(err, -EPROTO, "", "not a scheduler state (bad magic 0x%08x)", magic);
    if (ver != STATE_VERSION)
        return an_failc(err, -EPROTO, "", "scheduler state version %u, expected %u", ver,
                        STATE_VERSION);
    if (kind != (uint32_t)s->kind || ng != (uint32_t)s->ngroups || nc != (uint32_t)s->nchild)
        return an_failc(err, -EPROTO, "", "scheduler state is for another schedule (type %u, "
                        "%u groups, %u children; this one is type %d, %d groups, %d children)",
                        kind, ng, nc, s->kind, s->ngroups, s->nchild);
    o += NODE_HEADER;
    int64_t iv[NODE_I64];
    for (int k = 0; k < NODE_I64; k++)
        iv[k] = (int64_t)le_get_u64(b + o), o += 8;
    /* Counters a run can reach: at most one per step (2^53 is far beyond any run), a
     * restart period of at least 1 with the position inside it. Anything else would make a
     * later step overflow, so it is refused here. */
    const int64_t most = (int64_t)1 << 53;
    int bad = iv[0] < 0 || iv[0] > most || iv[1] < -1 || iv[1] > most || iv[2] < 0 ||
              iv[2] > most || iv[3] < 0 || iv[3] > most || iv[6] < 0 ||
              (s->nchild && iv[6] >= s->nchild) || iv[7] < 0 || iv[7] > most;
    if (s->kind == SK_CAWR)
        bad = bad || iv[4] < 1 || iv[5] < 0 || iv[5] >= iv[4];
    if (bad)
        return an_failc(err, -EPROTO, "", "scheduler state holds impossible counters");
    if (apply) {
        s->steps = iv[0];
        s->last_epoch = iv[1];
        s->num_bad = iv[2];
        s->cooldown_counter = iv[3];
        s->t_i = iv[4];
        s->t_cur = iv[5];
        s->cur = iv[6];
        s->phase_steps = iv[7];
        s->best = le_get_f64(b + o);
    }
    o += 8;
    for (int g = 0; g < s->ngroups; g++, o += 8)
        if (apply)
            s->lr[g] = le_get_f64(b + o);
    for (int g = 0; g < s->ngroups; g++, o += 8)
        if (apply)
            s->mom[g] = le_get_f64(b + o);
    for (int g = 0; g < s->ngroups; g++, o += 8)
        if (apply)
            s->beta2[g] = le_get_f64(b + o);
    for (int k = 0; k < s->nchild; k++) {
        int rc = load_node(s->child[k], b, len, &o, apply, err);
        if (rc)
            return rc;
    }
    *off = o;
    return 0;
}

int sched_load(sched *s, const void *buf, size_t len, an_err *err)
{
    size_t off = 0;
    if (!buf)
        return an_failc(err, -EPROTO, "", "no scheduler state");
    int rc = load_node(s, buf, len, &off, 0, err);
    if (rc)
        return rc;
    if (off != len)
        return an_failc(err, -EPROTO, "", "scheduler state has %zu bytes, expected %zu", len, off);
    off = 0;
    return load_node(s, buf, len, &off, 1, err);
}

/* ---- what a scheduler asks of the run it drives ---------------------------------------- */

/* sched_check_run for node s, whose block is at `path` and which drives `len` optimizer
 * steps (0: not known, or never reached). */
static int check_node(const sched *s, const char *path, int64_t len, int has_validation,
                      an_err *err)
{
    char p[256], q[300];
    switch (s->kind) {
    case SK_PLATEAU:
        if (has_validation)
            return 0;
        /* Without validation losses it never moves: a schedule that silently does nothing. */
        return an_fail(err, an_path(p, sizeof p, path, "type"),
                       "ReduceLROnPlateau lowers the lr when the validation loss stops "
                       "improving, so it needs validation (e.g. \"validation\": {\"fraction\": "
                       "0.1, \"every_steps\": 100}); without it the lr never changes");
    case SK_ONECYCLELR:
        if (len <= s->total_steps)
            return 0;
        /* torch's get_lr raises once last_epoch > total_steps: the constructor's step is 0,
         * the step after optimizer step N is N, so N steps need total_steps >= N. Here the
         * lr would rise again instead. */
        an_path(q, sizeof q, an_path(p, sizeof p, path, "params"), "total_steps");
        return an_fail(err, q, "total_steps %lld is less than the %lld steps this OneCycleLR "
                       "runs: PyTorch raises ValueError when it is stepped past total_steps "
                       "(the lr would rise again); give total_steps >= %lld",
                       (long long)s->total_steps, (long long)len, (long long)len);
    case SK_MULTIPHASE:
    case SK_SEQUENTIAL:
    case SK_CHAINED: break;
    default: return 0;
    }
    const int mp = s->kind == SK_MULTIPHASE;
    int64_t start = 0;
    for (int k = 0; k < s->nchild; k++) {
        const int last = k == s->nchild - 1;
        int64_t n = len - start, end = mp ? start + s->bounds[k] : s->bounds[k];
        if (s->kind == SK_CHAINED)
            n = len;
        else if (!last && mp) /* a phase drives its own steps, the last one the rest */
            n = n < s->bounds[k] ? n : s->bounds[k];
        else if (!last) /* SequentialLR steps a child to end - 1, then step(0)s the next */
            n = len < end ? len - start : end - 1 - start;
        an_path(q, sizeof q, an_path(p, sizeof p, path, "params"), mp ? "phases" : "schedulers");
        char c[320];
        an_path_index(c, sizeof c, q, k);
        int rc = check_node(s->child[k], c, len > 0 && n > 0 ? n : 0, has_validation, err);
        if (rc)
            return rc;
        if (s->kind != SK_CHAINED)
            start = end;
    }
    return 0;
}

int sched_check_run(const sched *s, const char *path, int has_validation, int64_t steps,
                    an_err *err)
{
    return check_node(s, path ? path : "", steps > 0 ? steps : 0, has_validation, err);
}
