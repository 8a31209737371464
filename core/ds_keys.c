/* ds_keys — the top-level keys of DeepSpeed's JSON configuration.
 *
 * Source: the keys DeepSpeed 0.14.x reads at the top level of its config (DeepSpeedConfig in
 * deepspeed/runtime/config.py and the config models it builds: zero, fp16/bf16, monitors,
 * autotuning, compression, data efficiency, …), together with keys of earlier releases that
 * real config files still carry (amp, fp32_allreduce, vocabulary_size, …). Update the list
 * and DS_KEYS_VERSION together. */
#include "core/ds_keys.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/cfgval.h"
#include "core/err.h"

#define DS_KEYS_VERSION "0.14"

static const char *const ds_keys[] = {
    "activation_checkpointing",
    "aio",
    "amp",
    "autotuning",
    "bf16",
    "bfloat16",
    "checkpoint",
    "comet",
    "communication_data_type",
    "comms_logger",
    "compile",
    "compression_training",
    "csv_monitor",
    "curriculum_learning",
    "data_efficiency",
    "data_types",
    "dataloader_drop_last",
    "disable_allgather",
    "dump_state",
    "eigenvalue",
    "elasticity",
    "flops_profiler",
    "fp16",
    "fp32_allreduce",
    "gradient_accumulation_dtype",
    "gradient_accumulation_steps",
    "gradient_clipping",
    "gradient_predivide_factor",
    "graph_harvesting",
    "hybrid_engine",
    "load_universal_checkpoint",
    "memory_breakdown",
    "mics_hierarchical_params_gather",
    "mics_shard_size",
    "nebula",
    "optimizer",
    "pipeline",
    "prescale_gradients",
    "progressive_layer_drop",
    "quantize_training",
    "scheduler",
    "seq_parallel_communication_data_type",
    "sequence_parallel_size",
    "sparse_attention",
    "sparse_gradients",
    "steps_per_print",
    "tensorboard",
    "timers",
    "train_batch_size",
    "train_micro_batch_size_per_gpu",
    "use_data_before_expert_parallelism",
    "use_node_local_storage",
    "vocabulary_size",
    "wall_clock_breakdown",
    "wandb",
    "weight_quantization",
    "zero_allow_untested_optimizer",
    "zero_force_ds_cpu_optimizer",
    "zero_optimization",
    NULL,
};

int ds_key_known(const char *key)
{
    for (const char *const *k = ds_keys; *k; k++)
        if (strcmp(*k, key) == 0)
            return 1;
    return 0;
}

const char *ds_key_nearest(const char *key)
{
    const char *best = NULL;
    int best_d = strlen(key) <= 4 ? 2 : 3; /* suggest only within this many edits (exclusive) */
    for (const char *const *k = ds_keys; *k; k++) {
        int d = cfg_edit_distance(*k, key);
        if (d < best_d) {
            best_d = d;
            best = *k;
        }
    }
    return best;
}

const char *ds_keys_version(void)
{
    return DS_KEYS_VERSION;
}

int ds_keys_count(void)
{
    return (int)(sizeof ds_keys / sizeof ds_keys[0]) - 1;
}

int ds_key_unknown_note(const char *prefix, const char *key, char *buf, size_t size)
{
    if (ds_key_known(key))
        return 0;
    char path[300], near_path[300];
    an_path(path, sizeof path, prefix, key);
    const char *near = ds_key_nearest(key);
    if (near)
        snprintf(buf, size, "%s is not a DeepSpeed key: did you mean %s? (ignored)", path,
                 an_path(near_path, sizeof near_path, prefix, near));
    else
        snprintf(buf, size, "%s is not a DeepSpeed key (ignored; DeepSpeed %s knows %d "
                 "top-level keys)", path, DS_KEYS_VERSION, ds_keys_count());
    return 1;
}
