/* routes — the API's route table and its handlers, one file per resource:
 * api/jobs.c, api/metrics.c, api/events.c, api/datasets.c, api/schedules.c, api/static.c,
 * api/service.c. Each handler answers its request exactly once (see api/http.h). */
#ifndef ANNEALD_ROUTES_H
#define ANNEALD_ROUTES_H

#include <stddef.h>
#include <stdint.h>

#include "api/router.h"

#include <cjson/cJSON.h>

#include "core/err.h"

struct http_req;
struct store_t;

extern const route api_routes[];
extern const size_t api_nroutes;

/* api/service.c */
void api_healthz(struct http_req *r);
void api_prometheus(struct http_req *r);

/* api/jobs.c */
void api_jobs_create(struct http_req *r);
void api_jobs_list(struct http_req *r);
void api_jobs_patch(struct http_req *r); /* api/jobsched.c */
void api_checkpoint_pin(struct http_req *r);
void api_checkpoint_unpin(struct http_req *r);
/* The retention policy of a job's row (its spec's keep_last and keep_best). */
struct store_job;
struct store_keep api_keep_of(const struct store_job *row);
void api_jobs_get(struct http_req *r);
void api_jobs_pause(struct http_req *r);
void api_jobs_resume(struct http_req *r);
void api_jobs_cancel(struct http_req *r);
void api_jobs_delete(struct http_req *r);

/* api/sweeps.c */
void api_sweeps_create(struct http_req *r);
void api_sweeps_list(struct http_req *r);
void api_sweeps_get(struct http_req *r);
void api_sweeps_cancel(struct http_req *r);
void api_sweeps_delete(struct http_req *r);
/* api/sweepretry.c */
void api_sweeps_retry(struct http_req *r);

/* api/metrics.c */
void api_jobs_metrics(struct http_req *r);
void api_jobs_checkpoints(struct http_req *r);
void api_jobs_weights(struct http_req *r);
void api_jobs_predict(struct http_req *r);
void api_jobs_lr_finder(struct http_req *r);
void api_lr_finder_create(struct http_req *r);
void api_openapi(struct http_req *r);
/* POST /v1/jobs made by `work` on a queue thread, which reads the request into a job spec
 * and hands it to api_jobs_submit (or sets the answer): POST /v1/lr_finder. The queue's
 * limit is checked first; the answer is api_jobs_create's. */
struct store_t;
void api_jobs_create_by(struct http_req *r, void (*work)(struct http_req *r, struct store_t *st));
/* From such work: checks and stores the spec (taken over and freed). */
void api_jobs_submit(struct http_req *r, struct store_t *st, cJSON *spec);
/* Answers 400 listing every spec error: {"error": {code, message, field}, "errors": […]}. */
void api_spec_errors(struct http_req *r, const an_err *errs, int n);
struct submit_outcome;
/* Answers a job_submit that did not store the job (400/422/5xx). */
void api_submit_error(struct http_req *r, const struct submit_outcome *out);

/* api/inference.c: gpt job `id`'s model at checkpoint `step` (< 0 = latest) from the shared
 * cache, or NULL with the pending error set (400 naming `model` for a job that is not a gpt,
 * 404, 503, 500); model_cache_release it. */
struct model_ref;
struct model_ref *api_model_load_gpt(struct http_req *r, struct store_t *s, const char *id,
                                     int64_t step);

/* api/generate.c */
void api_jobs_generate(struct http_req *r);

/* api/events.c */
void api_events_job(struct http_req *r);
void api_events_all(struct http_req *r);
/* The job manager's event sink: its state, progress and checkpoint events as SSE frames on
 * the daemon's hub (daemon/loop.c wires it). */
struct api;
struct job_sink;
void api_events_sink(struct api *api, struct job_sink *out);
/* A job or sweep `id` is gone: lists watching /v1/events drop it, and its own streams end
 * after this last `deleted` event (nothing more will come for it). Loop thread. */
void api_events_deleted(struct api *api, const char *id);
/* The sweeps' event sink: `sweep` events as SSE frames (daemon/loop.c wires it). */
struct sweep_sink;
void api_sweeps_sink(struct api *api, struct sweep_sink *out);

/* POST /v1/datasets streams its body to the store (api/datasets.c): api_upload_begin on the
 * first call (the name, the memory budget; 1 when it answered), api_upload_data for each piece
 * of the body MHD hands over and at its end (*size 0). */
int api_upload_begin(struct http_req *r);
void api_upload_data(struct http_req *r, const char *data, size_t *size);

/* api/datasets.c */
void api_datasets_create(struct http_req *r);
void api_datasets_list(struct http_req *r);
void api_datasets_get(struct http_req *r);
void api_datasets_delete(struct http_req *r);

/* api/schedules.c */
void api_schedules_preview(struct http_req *r);

/* api/static.c */
void api_static(struct http_req *r);

#endif
