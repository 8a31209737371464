/* preview_body — reading a preview body (core/sched.h, sched_preview): which form it has (a
 * bare ds_config, {"ds_config", "steps", …} or a whole job spec), the steps it covers and how
 * they are thinned, its param groups, its scheduler, and the notes a job would give about its
 * ds_config. Shared by the tree and the streaming answers of core/preview.c. */
#ifndef ANNEALD_PREVIEW_BODY_H
#define ANNEALD_PREVIEW_BODY_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/err.h"
#include "core/sched.h"

#define PREVIEW_MAX_STEPS 10000000LL  /* steps in one answer */
#define PREVIEW_DEFAULT_STEPS 1000

/* Which steps an answer shows. Without thinning, all of them. With `every` N (or `max_points`,
 * which picks N), step 1, every N-th step after it, the last step, and the steps where the lr
 * of group 0 changes direction (rising, flat, falling), the first `turn_cap` of them: a
 * schedule's corners survive thinning, and the answer's size stays bounded. The choice depends
 * only on the schedule, so every pass over it (one per column of the JSON form) keeps the same
 * steps. */
typedef struct preview_plan {
    int64_t steps;
    int64_t every;     /* 1 = every step */
    int64_t turn_cap;  /* direction changes kept at most */
} preview_plan;

/* Reads `body`, creates its scheduler (*out_s) and says which steps and how many groups to
 * show. Notes that change nothing but that the user should see go to `warnings` (a cJSON
 * array; may be NULL): a key of ds_config that DeepSpeed does not have either (a misspelt
 * "scheduler" would otherwise preview as a constant lr without a word), and what the
 * optimizer and scheduler blocks note as a job's would. */
int preview_setup(const cJSON *body, int64_t steps_override, sched **out_s, preview_plan *plan,
                  int *out_groups, cJSON *warnings, an_err *err);

#endif
