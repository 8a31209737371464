/* train_fixtures — the fixed jobs whose checkpoint blobs fuzz_train restores, shared with
 * seed_state.c, which writes real blobs of them as its corpus. Header-only (static). */
#ifndef ANNEALD_FUZZ_TRAIN_FIXTURES_H
#define ANNEALD_FUZZ_TRAIN_FIXTURES_H

#include <string.h>

#include "core/config.h"
#include "core/train.h"

/* Small jobs that differ in every part of the blob's layout: model shape, optimizer state,
 * scheduler state, param groups, validation split. */
static const char *const fx_train_specs[] = {
    "{\"seed\":3,\"model\":{\"type\":\"linear\",\"inputs\":3,\"outputs\":1},"
    "\"data\":{\"type\":\"synthetic\",\"task\":\"regression\",\"samples\":24,\"features\":3},"
    "\"steps\":20,\"ds_config\":{\"train_batch_size\":4,"
    "\"optimizer\":{\"type\":\"Adam\",\"params\":{\"lr\":0.01}},"
    "\"scheduler\":{\"type\":\"WarmupLR\",\"params\":{\"warmup_num_steps\":5}}}}",

    "{\"seed\":5,\"model\":{\"type\":\"mlp\",\"inputs\":2,\"hidden\":[4],\"outputs\":3,"
    "\"activation\":\"relu\",\"dropout\":0.2},\"loss\":\"cross_entropy\","
    "\"data\":{\"type\":\"synthetic\",\"task\":\"classification\",\"generator\":\"blobs\","
    "\"samples\":30,\"features\":2,\"classes\":3},\"validation\":{\"fraction\":0.2,"
    "\"every_steps\":2},\"param_groups\":[{\"match\":[\"*.bias\"],\"lr\":0.001}],"
    "\"steps\":20,\"ds_config\":{\"train_micro_batch_size_per_gpu\":2,"
    "\"gradient_accumulation_steps\":3,"
    "\"optimizer\":{\"type\":\"SGD\",\"params\":{\"lr\":0.05,\"momentum\":0.9}},"
    "\"scheduler\":{\"type\":\"ReduceLROnPlateau\",\"params\":{\"patience\":1}}}}",

    "{\"seed\":7,\"model\":{\"type\":\"mlp\",\"inputs\":2,\"hidden\":[3,3],\"outputs\":1,"
    "\"activation\":\"tanh\"},\"loss\":\"mse\",\"data\":{\"type\":\"inline\","
    "\"x\":[[0,0],[0,1],[1,0],[1,1],[0.5,0.5]],\"y\":[[0],[1],[1],[0],[0.5]]},"
    "\"epochs\":4,\"ds_config\":{\"train_batch_size\":2,"
    "\"optimizer\":{\"type\":\"Lamb\",\"params\":{\"lr\":0.01}},"
    "\"scheduler\":{\"type\":\"MultiPhase\",\"params\":{\"phases\":[{\"steps\":3,"
    "\"type\":\"WarmupLR\",\"params\":{\"warmup_num_steps\":3}},{\"steps\":10,"
    "\"type\":\"OneCycle\",\"params\":{\"cycle_min_lr\":0.001,\"cycle_max_lr\":0.01,"
    "\"cycle_first_step_size\":2}}]}}}}",
};
#define FX_NTRAIN (sizeof fx_train_specs / sizeof fx_train_specs[0])

/* Parses fixture k and builds its training state; *spec must outlive *t. */
static int fx_train(int k, job_spec *spec, train **t)
{
    an_err err;
    memset(spec, 0, sizeof *spec);
    int rc = job_spec_parse_text(fx_train_specs[k], strlen(fx_train_specs[k]), spec, &err);
    if (!rc && (rc = train_create(t, spec, NULL, 0, &err)) != 0)
        job_spec_free(spec);
    if (rc)
        fprintf(stderr, "train fixture %d: %s: %s\n", k, err.field, err.message);
    return rc;
}

#endif
