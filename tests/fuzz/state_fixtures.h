/* state_fixtures — the fixed optimizers and schedulers whose saved states fuzz_optim_state
 * restores, shared with seed_state.c, which writes real saved states of them as its corpus.
 * Header-only (static), included by exactly those two programs. */
#ifndef ANNEALD_FUZZ_STATE_FIXTURES_H
#define ANNEALD_FUZZ_STATE_FIXTURES_H

#include <string.h>

#include "core/config.h"
#include "core/optim.h"
#include "core/sched.h"

/* Optimizer blocks: every type, and the options that add state buffers. */
static const char *const fx_optim_blocks[] = {
    "{\"type\":\"Adam\",\"params\":{\"lr\":0.01,\"weight_decay\":0.1}}",
    "{\"type\":\"Adam\",\"params\":{\"lr\":0.01,\"torch_adam\":true,\"amsgrad\":true}}",
    "{\"type\":\"AdamW\",\"params\":{\"lr\":0.01}}",
    "{\"type\":\"Lamb\",\"params\":{\"lr\":0.01,\"weight_decay\":0.01}}",
    "{\"type\":\"Lion\",\"params\":{\"lr\":0.001}}",
    "{\"type\":\"Adagrad\",\"params\":{\"lr\":0.1,\"initial_accumulator_value\":0.5}}",
    "{\"type\":\"SGD\",\"params\":{\"lr\":0.1,\"momentum\":0.9,\"nesterov\":true}}",
    "{\"type\":\"SGD\",\"params\":{\"lr\":0.1}}",
    "{\"type\":\"RMSprop\",\"params\":{\"lr\":0.01,\"momentum\":0.5,\"centered\":true}}",
};
#define FX_NOPTIM (sizeof fx_optim_blocks / sizeof fx_optim_blocks[0])

/* Scheduler blocks for a two-group Adam env (fx_env): stateless closed forms, cycling
 * momentum, plateau tracking and phases. */
static const char *const fx_sched_blocks[] = {
    "{\"type\":\"WarmupLR\",\"params\":{\"warmup_num_steps\":10}}",
    "{\"type\":\"OneCycle\",\"params\":{\"cycle_min_lr\":0.001,\"cycle_max_lr\":0.01,"
    "\"cycle_first_step_size\":5}}",
    "{\"type\":\"ReduceLROnPlateau\",\"params\":{\"patience\":1}}",
    "{\"type\":\"CyclicLR\",\"params\":{\"base_lr\":0.001,\"max_lr\":0.01,\"step_size_up\":4,"
    "\"mode\":\"exp_range\",\"cycle_momentum\":false}}",
    "{\"type\":\"CosineAnnealingWarmRestarts\",\"params\":{\"T_0\":3,\"T_mult\":2}}",
    "{\"type\":\"MultiPhase\",\"params\":{\"phases\":[{\"steps\":5,\"type\":\"WarmupLR\","
    "\"params\":{\"warmup_num_steps\":5}},{\"steps\":100,\"type\":\"ReduceLROnPlateau\","
    "\"params\":{\"patience\":0}}]}}",
};
#define FX_NSCHED (sizeof fx_sched_blocks / sizeof fx_sched_blocks[0])

/* Seven parameters in two tensors, one per group. */
#define FX_N 7
static const optim_tensor fx_tensors[2] = {{0, 4, 0}, {4, 3, 1}};

static int fx_optim(optim *o, int k, int dtype)
{
    cJSON *block = cJSON_Parse(fx_optim_blocks[k]);
    optim_cfg cfg;
    int rc = optim_parse(block, "optimizer", &cfg, NULL, NULL);
    cJSON_Delete(block);
    if (rc)
        return rc;
    optim_group g[2];
    memset(g, 0, sizeof g);
    for (int i = 0; i < 2; i++) {
        g[i].lr = cfg.lr / (i + 1);
        g[i].weight_decay = cfg.weight_decay;
        g[i].beta1 = cfg.beta1;
        g[i].beta2 = cfg.beta2;
        g[i].momentum = cfg.momentum;
    }
    return optim_init(o, &cfg, dtype, FX_N, fx_tensors, 2, g, 2, NULL);
}

static void fx_env(sched_env *env)
{
    memset(env, 0, sizeof *env);
    env->ngroups = 2;
    env->base_lr[0] = 0.01;
    env->base_lr[1] = 0.005;
    env->has_betas = 1;
    env->beta1 = 0.9;
    env->beta2 = 0.999;
    env->total_steps = 100;
    env->train_batch_size = 8;
}

static int fx_sched(sched **s, int k)
{
    sched_env env;
    fx_env(&env);
    cJSON *block = cJSON_Parse(fx_sched_blocks[k]);
    int rc = sched_create(s, block, "scheduler", &env, NULL, NULL);
    cJSON_Delete(block);
    return rc;
}

/* Gradients that differ per element and step, with both signs. */
static void fx_grads(void *g, int dtype, int step)
{
    for (int i = 0; i < FX_N; i++) {
        double v = (i % 3 - 1) * 0.5 + 0.01 * (step + 1) * (i + 1);
        if (dtype == OPTIM_F32)
            ((float *)g)[i] = (float)v;
        else
            ((double *)g)[i] = v;
    }
}

#endif
