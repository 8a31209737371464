/* routes — the API's route table (API.md). The first matching route wins: the dashboard's
 * catch-all "/{file}" comes last, so /healthz and /metrics are never taken for files. */
#include "api/routes.h"

const route api_routes[] = {
    {"GET", "/healthz", api_healthz, BODY_NONE, ROUTE_OPEN, NULL},
    {"GET", "/metrics", api_prometheus, BODY_NONE, 0, NULL},

    {"POST", "/v1/jobs", api_jobs_create, BODY_JSON, 0, NULL},
    {"GET", "/v1/jobs", api_jobs_list, BODY_NONE, 0, "limit offset state tag q"},
    {"GET", "/v1/jobs/{id}", api_jobs_get, BODY_NONE, 0, NULL},
    {"DELETE", "/v1/jobs/{id}", api_jobs_delete, BODY_NONE, 0, NULL},
    {"PATCH", "/v1/jobs/{id}", api_jobs_patch, BODY_JSON, ROUTE_PARSED | ROUTE_SMALL, NULL},
    {"POST", "/v1/jobs/{id}/pause", api_jobs_pause, BODY_JSON, ROUTE_PARSED | ROUTE_SMALL, NULL},
    {"POST", "/v1/jobs/{id}/resume", api_jobs_resume, BODY_JSON, ROUTE_PARSED | ROUTE_SMALL, NULL},
    {"POST", "/v1/jobs/{id}/cancel", api_jobs_cancel, BODY_JSON, ROUTE_PARSED | ROUTE_SMALL, NULL},
    /* ?access_token=: the dashboard's CSV download is a plain link, which the browser streams
     * to disk (a fetch would hold the whole file in memory) and which carries no header */
    {"GET", "/v1/jobs/{id}/metrics", api_jobs_metrics, BODY_NONE, ROUTE_QUERY_TOKEN, "from to max_points format"},
    {"GET", "/v1/jobs/{id}/checkpoints", api_jobs_checkpoints, BODY_NONE, 0, NULL},
    {"POST", "/v1/jobs/{id}/checkpoints/{step}/pin", api_checkpoint_pin, BODY_JSON, ROUTE_PARSED | ROUTE_SMALL, NULL},
    {"POST", "/v1/jobs/{id}/checkpoints/{step}/unpin", api_checkpoint_unpin, BODY_JSON, ROUTE_PARSED | ROUTE_SMALL, NULL},
    {"GET", "/v1/jobs/{id}/weights", api_jobs_weights, BODY_NONE, 0, "step"},
    {"POST", "/v1/jobs/{id}/predict", api_jobs_predict, BODY_JSON, ROUTE_PARSED, NULL},
    {"POST", "/v1/jobs/{id}/generate", api_jobs_generate, BODY_JSON, ROUTE_PARSED, NULL},
    {"GET", "/v1/jobs/{id}/lr_finder", api_jobs_lr_finder, BODY_NONE, 0, "from to"},
    {"GET", "/v1/jobs/{id}/events", api_events_job, BODY_NONE, ROUTE_QUERY_TOKEN, "last_event_id"},
    {"GET", "/v1/events", api_events_all, BODY_NONE, ROUTE_QUERY_TOKEN, "job last_event_id"},

    {"POST", "/v1/datasets", api_datasets_create, BODY_CSV, 0, "name"},
    {"GET", "/v1/datasets", api_datasets_list, BODY_NONE, 0, NULL},
    {"GET", "/v1/datasets/{id}", api_datasets_get, BODY_NONE, 0, NULL},
    {"DELETE", "/v1/datasets/{id}", api_datasets_delete, BODY_NONE, 0, NULL},

    {"POST", "/v1/schedules/preview", api_schedules_preview, BODY_JSON, 0, "format"},
    {"POST", "/v1/lr_finder", api_lr_finder_create, BODY_JSON, 0, NULL},
    {"POST", "/v1/sweeps", api_sweeps_create, BODY_JSON, 0, NULL},
    {"GET", "/v1/sweeps", api_sweeps_list, BODY_NONE, 0, NULL},
    {"GET", "/v1/sweeps/{id}", api_sweeps_get, BODY_NONE, 0, NULL},
    {"DELETE", "/v1/sweeps/{id}", api_sweeps_delete, BODY_NONE, 0, NULL},
    {"POST", "/v1/sweeps/{id}/cancel", api_sweeps_cancel, BODY_JSON, ROUTE_SMALL, NULL},
    {"POST", "/v1/sweeps/{id}/retry", api_sweeps_retry, BODY_JSON, ROUTE_SMALL, NULL},
    {"GET", "/v1/openapi.json", api_openapi, BODY_NONE, 0, NULL},

    /* The dashboard's own files (index.html, *.js, *.css) load without a token so that the page
     * can show its token prompt; they hold no API data, and every /v1 route still needs it. */
    {"GET", "/", api_static, BODY_NONE, ROUTE_OPEN, "*"},
    {"GET", "/{file}", api_static, BODY_NONE, ROUTE_OPEN, "*"},
};

const size_t api_nroutes = sizeof api_routes / sizeof api_routes[0];
