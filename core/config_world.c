/* config_world — "world_size" and ds_config.zero_optimization of a job spec. */
#include "core/config_world.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/cfgval.h"

static int add_warning(cJSON *warnings, an_err *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int add_warning(cJSON *warnings, an_err *err, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!warnings)
        return 0;
    cJSON *s = cJSON_CreateString(msg);
    if (!s || !cJSON_AddItemToArray(warnings, s)) {
        cJSON_Delete(s);
        return an_failc(err, -ENOMEM, "", "out of memory");
    }
    return 0;
}

int cfg_world_parse(const cJSON *j, int *out, an_err *err)
{
    int64_t v = 1;
    *out = 1;
    int rc = cfg_int(j, "", "world_size", 1, 1, CFG_MAX_WORLD, &v, err);
    if (rc)
        return rc;
    *out = (int)v;
    return 0;
}

int cfg_zero_parse(const cJSON *zo, int world_size, int *stage, cJSON *warnings, an_err *err)
{
    char got[80];
    *stage = 0;
    if (!zo)
        return 0;
    if (!cJSON_IsObject(zo))
        return an_fail(err, "ds_config.zero_optimization",
                       "ds_config.zero_optimization must be an object such as {\"stage\": 1}, "
                       "got %s", cfg_describe(zo, got, sizeof got));
    for (const cJSON *c = zo->child; c; c = c->next)
        for (const cJSON *x = zo->child; x != c; x = x->next)
            if (strcmp(x->string, c->string) == 0)
                return an_fail(err, "ds_config.zero_optimization",
                               "duplicate key '%s' in ds_config.zero_optimization: give each "
                               "key once", c->string);
    int64_t v = 0;
    int rc = cfg_int(zo, "ds_config.zero_optimization", "stage", 0, 0, 3, &v, err);
    if (rc)
        return rc;
    for (const cJSON *c = zo->child; c; c = c->next) {
        if (strcmp(c->string, "stage") == 0)
            continue;
        /* bucket sizes, offload, overlap: they tune GPU memory traffic, which ranks of CPU
         * processes do not have; the arithmetic is the same without them */
        rc = add_warning(warnings, err, "ds_config.zero_optimization.%s is not used by this "
                         "daemon (ignored)", c->string);
        if (rc)
            return rc;
    }
    if (v >= 2) {
        rc = add_warning(warnings, err,
                         "ds_config.zero_optimization.stage %d runs as stage 1 here: the "
                         "optimizer state is sharded across the %d rank%s, gradients%s and "
                         "parameters are kept whole on every rank", (int)v, world_size,
                         world_size == 1 ? "" : "s", v == 3 ? "" : " (stage 2's partition)");
        if (rc)
            return rc;
        v = 1;
    }
    *stage = (int)v;
    return 0;
}

int cfg_world_one_process(job_spec *s)
{
    int w = s->world_size;
    if (w > 1) {
        s->grad_accum *= w;
        s->world_size = 1;
    }
    return w;
}
