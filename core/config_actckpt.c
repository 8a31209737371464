/* config_actckpt — ds_config.activation_checkpointing (config_actckpt.h). */
#include "core/config_actckpt.h"

#include <stdio.h>
#include <string.h>

#include "core/cfgval.h"

/* DeepSpeed's keys of the block that only mean something on GPUs (partitioning across model
 * parallel ranks, copies to host memory, CUDA synchronisation, profiling). */
static const char *const gpu_keys[] = {"partition_activations", "cpu_checkpointing",
                                       "contiguous_memory_optimization",
                                       "synchronize_checkpoint_boundary", "profile", NULL};

static void warn(cJSON *warnings, const char *msg)
{
    if (warnings)
        cJSON_AddItemToArray(warnings, cJSON_CreateString(msg));
}

int cfg_actckpt_layers(const model_spec *m)
{
    switch (m->type) {
    case MODEL_GPT: return m->n_layer;
    case MODEL_MLP: return m->nhidden + 1;
    case MODEL_LINEAR: return 1;
    default: return 0; /* type 0: the model had errors, its layers are unknown */
    }
}

int cfg_actckpt_parse(const cJSON *ds, job_spec *s, an_err *err)
{
    static const char *const path = "ds_config.activation_checkpointing";
    s->act_ckpt = 0;
    const cJSON *ac = cJSON_IsObject(ds) ? cfg_get(ds, "activation_checkpointing") : NULL;
    if (!ac)
        return 0;
    int rc = cfg_want_object(ac, path, err);
    if (rc)
        return rc;
    char msg[300];
    for (const cJSON *c = ac->child; c; c = c->next) {
        if (strcmp(c->string, "number_checkpoints") == 0)
            continue;
        int gpu = 0;
        for (const char *const *k = gpu_keys; *k && !gpu; k++)
            gpu = strcmp(*k, c->string) == 0;
        snprintf(msg, sizeof msg, gpu ? "%s.%s is for GPUs: accepted, not used by this daemon"
                                      : "%s.%s is not a DeepSpeed key (ignored)", path, c->string);
        warn(s->warnings, msg);
    }
    int L = cfg_actckpt_layers(&s->model);
    const cJSON *nc = cfg_get(ac, "number_checkpoints");
    int64_t k = L;
    if (nc && !cJSON_IsNull(nc)) { /* DeepSpeed's default is null: one per layer here */
        if ((rc = cfg_int_value(nc, "ds_config.activation_checkpointing.number_checkpoints", 1,
                                1 << 20, &k, err)))
            return rc;
        if (L >= 1 && k > L) /* L < 1: the model had errors of its own */
            return an_fail(err, "ds_config.activation_checkpointing.number_checkpoints",
                           "ds_config.activation_checkpointing.number_checkpoints is %lld but "
                           "the model has %d layer%s%s: give 1 to %d (or leave it out: one "
                           "per layer)", (long long)k, L, L == 1 ? "" : "s",
                           s->model.type == MODEL_MLP ? " (hidden layers and the output layer)"
                                                      : "", L);
    }
    if (s->model.type != MODEL_GPT && s->model.type != MODEL_MLP) {
        if (s->model.type != MODEL_LINEAR)
            return 0;
        snprintf(msg, sizeof msg, "%s is not used for a linear model (one layer: nothing to "
                 "recompute)", path);
        warn(s->warnings, msg);
        return 0;
    }
    s->act_ckpt = (int)k;
    return 0;
}
