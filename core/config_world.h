/* config_world — the data-parallel part of a job spec: the top-level "world_size" (ranks of
 * one job, which enters DeepSpeed's batch arithmetic) and ds_config.zero_optimization (ZeRO
 * stage 0 or 1; 2 and 3 run as stage 1). */
#ifndef ANNEALD_CONFIG_WORLD_H
#define ANNEALD_CONFIG_WORLD_H

#include <cjson/cJSON.h>

#include "core/config.h"

/* Reads the top-level "world_size" of spec `j` into *out (1 when absent). A value that is
 * not an integer in 1..CFG_MAX_WORLD fails naming the field; *out is then 1. */
int cfg_world_parse(const cJSON *j, int *out, an_err *err);

/* Reads ds_config.zero_optimization (`zo`, may be NULL) into *stage: the stage that runs
 * (0 or 1). Stages 2 and 3 are accepted and a warning in `warnings` says that stage 1 runs
 * instead; keys of the block that change nothing here are warned about too. */
int cfg_zero_parse(const cJSON *zo, int world_size, int *stage, cJSON *warnings, an_err *err);

/* Makes a job of several ranks a job of one process that trains the same global batch: each
 * step takes world_size × gradient_accumulation_steps micro-batches, the ones its ranks
 * would share out (bit for bit the ranks' result when gradient_accumulation_steps is a power
 * of two: README, "Several ranks"). The offline trainer runs a spec this way. Returns the
 * world_size it had (1: nothing changed). */
int cfg_world_one_process(job_spec *s);

#endif
