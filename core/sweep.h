/* sweep — a hyperparameter sweep's spec, the trials it proposes, and ASHA's stopping rule.
 *
 * A sweep is a base job spec and a set of parameters, each a JSON path into the spec
 * ("ds_config.optimizer.params.lr", "model.hidden[0]") with the values to try: a list (a
 * choice), {"uniform": [lo, hi]} or {"log_uniform": [lo, hi]}. Grid search takes every
 * combination of lists (in the order the parameters are given, the last one changing
 * fastest); random search draws `trials` combinations. Draws are counter-based (Philox keyed
 * by the sweep's seed, the trial's index and the parameter's index), so the same sweep spec
 * proposes the same trials, and trial k does not depend on how many were drawn before it.
 *
 * ASHA (asynchronous successive halving): rungs at min_steps × eta^k steps (k = 0, 1, …,
 * below the trials' total steps). When a trial reaches a rung, its metric is ranked among
 * every trial that has reached that rung so far, itself included (ties go to the trial that
 * got there first); it goes on if its rank is within ceil(count / eta), and is stopped
 * otherwise. The first trial at a rung always goes on; later ones must beat the field.
 *
 * Pure: no I/O. The service turns trials into jobs and feeds the rule the metrics it records. */
#ifndef ANNEALD_SWEEP_H
#define ANNEALD_SWEEP_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/cfgval.h"
#include "core/err.h"

#define SWEEP_MAX_PARAMS 16
#define SWEEP_MAX_TRIALS 1000
#define SWEEP_MAX_RUNGS 32

enum sweep_dist { SWEEP_CHOICE, SWEEP_UNIFORM, SWEEP_LOG_UNIFORM };
enum sweep_search { SWEEP_GRID, SWEEP_RANDOM };

typedef struct sweep_param {
    char path[CFG_PATH];  /* JSON path in the job spec */
    int dist;             /* enum sweep_dist */
    double lo, hi;        /* uniform / log_uniform bounds */
    const cJSON *values;  /* choice: the list (points into the sweep's JSON) */
    int nvalues;
} sweep_param;

typedef struct sweep_spec {
    char name[CFG_PATH];
    cJSON *base;          /* the base job spec (owned copy) */
    int nparams;
    sweep_param params[SWEEP_MAX_PARAMS];
    int search;           /* enum sweep_search */
    int trials;           /* how many trials (grid: every combination) */
    char metric[32];      /* "val_loss", "val_acc" or "loss" */
    int maximize;         /* mode "max" */
    int max_concurrent;   /* trials running at once (default 2) */
    int asha;             /* early_stopping given */
    int64_t min_steps;    /* ASHA's first rung */
    int eta;              /* ASHA's reduction factor (default 3) */
    uint64_t seed;        /* draws of random search (default: the base spec's seed) */
    cJSON *json;          /* the sweep body (owned copy; params point into it) */
} sweep_spec;

/* Parses and checks a sweep body (POST /v1/sweeps). Every error names its field
 * ("parameters.ds_config.optimizer.params.lr.log_uniform"). The base spec itself and each
 * parameter's path are checked against the job-spec parser: a path it does not know, or a
 * value it refuses, fails naming "parameters.<path>". */
int sweep_parse(const cJSON *body, sweep_spec *out, an_err *err);

/* The same for a body this daemon stored (a sweep read back from the store): the base and
 * the values are not checked as job specs again, so that a parser made stricter since (a
 * check moved from run time to the parse) does not leave a stored sweep unreadable; each
 * trial's spec is still checked when its job is submitted. */
int sweep_parse_stored(const cJSON *body, sweep_spec *out, an_err *err);
void sweep_free(sweep_spec *s);

/* Trial `index`'s parameters: an object {path: value, …} in the parameters' order. */
int sweep_trial_params(const sweep_spec *s, int index, cJSON **out, an_err *err);

/* The job spec of a trial: a copy of the base with each value set at its path (creating the
 * last key where the parent exists). Fails naming "parameters.<path>" when a path cannot be
 * set (a missing parent, an index out of range, a parent that is not an object or list). */
int sweep_apply(const cJSON *base, const cJSON *params, cJSON **out, an_err *err);

/* Whether two parameter paths reach the same place of a spec, step by step (so "a[0]b",
 * "a[00].b" and "a[0].b" are one path): 2 the same place, 1 one holds the other ("a.b" and
 * "a.b.c"), 0 neither, -1 a malformed path. */
int sweep_paths_overlap(const char *a, const char *b);

/* ASHA's rungs below total_steps: rungs[0..n) (at most max); returns n. */
int sweep_rungs(const sweep_spec *s, int64_t total_steps, int64_t *rungs, int max);

/* ASHA's decision for the trial that reached a rung with `value`, given the values of the
 * trials that reached it before (earlier[0..count)). 1 = goes on, 0 = stopped. A NaN value
 * (a metric that diverged) ranks last. */
int sweep_asha_continues(const double *earlier, int count, double value, int maximize, int eta);

#endif
