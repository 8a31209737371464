/* config_groups — the param_groups of a job spec (config_groups.h). */
#include "core/config_groups.h"

#include <fnmatch.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/cfgval.h"
#include "core/config_model.h"


/* The first group (0-based entry of param_groups) whose globs match `name`, or -1. */
static int first_group(const job_spec *s, const char *name)
{
    for (int i = 0; i < s->ngroups; i++) {
        const cJSON *x;
        cJSON_ArrayForEach(x, s->groups[i].match)
            if (fnmatch(x->valuestring, name, 0) == 0)
                return i;
    }
    return -1;
}

/* A tensor belongs to the first group that matches it (model_optim_tensors), so a group
 * whose globs match only tensors an earlier group took trains nothing: its lr and
 * weight_decay would silently apply to no parameter. */
static int warn_shadowed(job_spec *s, const spec_tensor *t, int nt, an_err *err)
{
    int owned[CFG_MAX_GROUPS] = {0};
    for (int k = 0; k < nt; k++) {
        int i = first_group(s, t[k].name);
        if (i >= 0)
            owned[i] = 1;
    }
    for (int i = 0; i < s->ngroups; i++) {
        if (owned[i])
            continue;
        for (int k = 0; k < nt; k++) {
            int by = first_group(s, t[k].name);
            const cJSON *x;
            int mine = 0;
            cJSON_ArrayForEach(x, s->groups[i].match)
                mine |= fnmatch(x->valuestring, t[k].name, 0) == 0;
            if (!mine || by < 0 || by >= i)
                continue;
            int rc = cfg_warn(s->warnings, err, "param_groups[%d] gets no tensor: every tensor it "
                          "matches is taken by an earlier group (%s by param_groups[%d]); a "
                          "tensor belongs to the first group that matches it", i, t[k].name, by);
            if (rc)
                return rc;
            break;
        }
    }
    return 0;
}

int cfg_groups_parse(const cJSON *g, job_spec *s, an_err *err)
{
    static const char *const keys[] = {"match", "lr", "weight_decay", NULL};
    char p[CFG_PATH], q[CFG_PATH], r[CFG_PATH], got[80];
    int rc;
    if (!cJSON_IsArray(g) || cJSON_GetArraySize(g) > CFG_MAX_GROUPS)
        return an_fail(err, "param_groups", "param_groups must be a list of at most %d groups, "
                       "got %s", CFG_MAX_GROUPS, cfg_describe(g, got, sizeof got));
    spec_tensor t[CFG_MAX_TENSORS];
    int nt = model_spec_tensors(&s->model, t);
    int i = 0;
    for (const cJSON *e = g->child; e; e = e->next, i++) {
        param_group_spec *pg = &s->groups[i];
        an_path_index(p, sizeof p, "param_groups", i);
        if ((rc = cfg_check_keys(e, p, keys, err)) || (rc = cfg_require(e, p, "match", err)))
            return rc;
        const cJSON *m = cfg_get(e, "match");
        an_path(q, sizeof q, p, "match");
        if (!cJSON_IsArray(m) || cJSON_GetArraySize(m) < 1 || cJSON_GetArraySize(m) > 64)
            return an_fail(err, q, "%s must be a list of 1 to 64 tensor-name globs (e.g. "
                           "[\"*.bias\"]), got %s", q, cfg_describe(m, got, sizeof got));
        int j = 0;
        for (const cJSON *x = m->child; x; x = x->next, j++) {
            an_path_index(r, sizeof r, q, j);
            if (!cJSON_IsString(x) || !x->valuestring[0] || strlen(x->valuestring) > 127)
                return an_fail(err, r, "%s must be a glob of 1 to 127 characters, got %s", r,
                               cfg_describe(x, got, sizeof got));
            int hits = 0;
            for (int k = 0; k < nt; k++)
                hits += fnmatch(x->valuestring, t[k].name, 0) == 0;
            if (!hits && s->model.type != MODEL_GPT &&
                (rc = cfg_warn(s->warnings, err, "%s \"%s\" matches no tensor of the model", r,
                           x->valuestring)))
                return rc;
        }
        pg->match = cJSON_Duplicate(m, 1);
        if (!pg->match)
            return an_failc(err, -ENOMEM, q, "out of memory");
        s->ngroups = i + 1;
        pg->has_lr = cfg_get(e, "lr") != NULL;
        pg->has_weight_decay = cfg_get(e, "weight_decay") != NULL;
        if ((rc = cfg_num(e, p, "lr", 0.0, 0.0, OPTIM_MAX_LR, CFG_LO_OPEN, &pg->lr, err)) ||
            (rc = cfg_num(e, p, "weight_decay", 0.0, 0.0, INFINITY, CFG_CLOSED,
                          &pg->weight_decay, err)))
            return rc;
    }
    return warn_shadowed(s, t, nt, err);
}
