/* input_stats — a job's input statistics (the standardisation of its features) kept in the
 * store when it starts training, and read back for predict and /weights, so inference needs
 * the model's tensors and these numbers, not the job's data. */
#ifndef ANNEALD_INPUT_STATS_H
#define ANNEALD_INPUT_STATS_H

#include <cjson/cJSON.h>

#include "core/train.h"
#include "store/store.h"

/* Stores t's input statistics for job `id` (nothing when the job trains on raw inputs). A
 * failure is logged and otherwise ignored: inference then works them out from the data. */
void input_stats_keep(store_t *s, const char *id, const train *t);

/* The job's input statistics as JSON ({"mean": […], "std": […]}, or a JSON null when its
 * inputs are not standardised): the stored ones, else t's (t may be NULL). NULL when out of
 * memory; the caller owns the result. */
cJSON *input_stats_json(store_t *s, const char *id, const train *t);

/* Standardises rows x[rows][d] in place with the statistics of input_stats_json (`stats`);
 * nothing when stats is null. -EINVAL when they do not have d features. */
int input_stats_apply(const cJSON *stats, const double *raw, float *x, long rows, int d);

#endif
