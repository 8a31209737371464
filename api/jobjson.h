/* jobjson — a job's JSON, the object every job endpoint and `job` event carries. */
#ifndef ANNEALD_JOBJSON_H
#define ANNEALD_JOBJSON_H

#include <cjson/cJSON.h>

#include "jobs/service.h"
#include "store/store.h"

/* The job as its store row tells it (a job no worker has touched). NULL on out of memory. */
cJSON *api_job_json(const store_job *row);

/* The job as its store row tells it, with this process's overlay on top (`ov` may be NULL:
 * then a queued job's place is null too). A queued job's place is asked of the manager
 * (jobs_queue_place: its mutex, O(log n)) unless jobs_queue_fix fixed it. NULL on out of
 * memory. */
cJSON *api_job_json_overlay(job_overlay *ov, const store_job *row);

#endif
