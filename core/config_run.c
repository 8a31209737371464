/* config_run — what a parsed job spec tells its run: its length in steps, its data's rows,
 * and the environment its scheduler is built in. */
#include <math.h>
#include <string.h>

#include "core/config.h"
#include "core/config_data.h"
#include "core/sched.h"

int64_t job_spec_total_steps(const job_spec *s, int64_t train_samples)
{
    if (s->steps > 0)
        return s->steps;
    if (train_samples < 1 || s->train_batch_size < 1)
        return 0;
    int64_t samples = s->epochs * train_samples;
    return (samples + s->train_batch_size - 1) / s->train_batch_size;
}

int64_t job_spec_data_samples(const job_spec *s)
{
    return cfg_data_rows(&s->data);
}

int64_t job_spec_train_samples(const job_spec *s, int64_t rows, int64_t *val_rows)
{
    int64_t val = rows > 0 ? (int64_t)floor((double)rows * s->val_fraction) : 0;
    if (val_rows)
        *val_rows = val;
    return rows - val;
}

void job_spec_sched_env(const job_spec *s, int64_t train_samples, sched_env *env)
{
    memset(env, 0, sizeof *env);
    env->ngroups = 1 + s->ngroups;
    env->base_lr[0] = s->optim.lr;
    for (int k = 0; k < s->ngroups; k++)
        env->base_lr[k + 1] = s->groups[k].has_lr ? s->groups[k].lr : s->optim.lr;
    env->has_betas = optim_has_betas(&s->optim);
    env->has_momentum = optim_has_momentum(&s->optim);
    env->stored = s->stored;
    env->beta1 = s->optim.beta1;
    env->beta2 = s->optim.beta2;
    env->momentum = s->optim.momentum;
    env->train_batch_size = s->train_batch_size;
    if (s->steps > 0)
        env->total_steps = s->steps;
    else if (train_samples >= 1)
        env->total_steps = job_spec_total_steps(s, train_samples);
    else
        env->total_steps = s->epochs * CFG_UNKNOWN_STEPS_PER_EPOCH;
}
