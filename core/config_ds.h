/* config_ds — the ds_config section of a job spec (JOBSPEC.md, ds_config), every independent
 * error of it at once. Used by job_spec_parse_all. */
#ifndef ANNEALD_CONFIG_DS_H
#define ANNEALD_CONFIG_DS_H

#include <cjson/cJSON.h>

#include "core/config.h"

/* Errors found so far while checking a spec: up to max kept in e[], all counted in n (which
 * may exceed max); rc is the first error's code. */
typedef struct cfg_errlist {
    an_err *e;
    int max;
    int n;
    int rc;
} cfg_errlist;

/* Records a failed check (rc != 0) and returns 1; returns 0 for rc 0. */
int cfg_record(cfg_errlist *l, int rc, const an_err *e);

/* Checks ds_config into s (batch sizes, gradient_clipping, s->optim, warnings for keys not
 * used). *batch_ok: the batch sizes are set; *opt_ok: s->optim holds an optimizer the
 * scheduler can be checked against (the given one, or, when it had errors, the one without
 * its bad values). Returns 1 when ds_config had no error. */
int cfg_ds_parse(const cJSON *ds, job_spec *s, cfg_errlist *l, int *batch_ok, int *opt_ok);

/* Checks the scheduler block `sc` against env, recording every independent error. Returns 1
 * when it has none. */
int cfg_ds_scheduler(const cJSON *sc, const sched_env *env, job_spec *s, cfg_errlist *l);

#endif
