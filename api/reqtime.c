/* reqtime — see reqtime.h. */
#include "api/reqtime.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "api/api.h"

/* Upper bounds, in seconds: the 100 ms a read must stay under during a checkpoint commit,
 * and the 5 s store busy timeout a read stuck behind a write would wait out, are edges. */
static const double bounds[HTTP_LATENCY_BUCKETS] = {0.001, 0.005, 0.01, 0.025, 0.05,
                                                    0.1,   0.25,  1,    5};

/* The daemon's share of an answer's time runs from the request's head to the answer queued
 * on the loop (deferred work and the trip back included; what the network and the client add
 * is not). A client that saw a slow answer can tell from it whether the daemon was the slow
 * part. */
void reqtime_note(http_req *r, struct MHD_Response *resp)
{
    double s = (double)(uv_hrtime() - r->began_ns) / 1e9;
    char v[48];
    snprintf(v, sizeof v, "app;dur=%.3f", s * 1e3);
    if (!MHD_get_response_header(resp, "Server-Timing"))
        MHD_add_response_header(resp, "Server-Timing", v);
    api_t *a = r->api;
    int b = 0;
    while (b < HTTP_LATENCY_BUCKETS && s > bounds[b])
        b++;
    a->http_latency[b]++;
    a->http_latency_sum += s;
}

char *reqtime_metrics_text(const struct api *api)
{
    size_t cap = 2048, len = 0;
    char *t = malloc(cap);
    if (!t)
        return NULL;
    len += (size_t)snprintf(t + len, cap - len,
                            "# HELP anneald_http_request_duration_seconds Time from a request's "
                            "head to its answer queued (the Server-Timing header's app).\n"
                            "# TYPE anneald_http_request_duration_seconds histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i < HTTP_LATENCY_BUCKETS; i++) {
        cum += api->http_latency[i];
        len += (size_t)snprintf(t + len, cap - len,
                                "anneald_http_request_duration_seconds_bucket{le=\"%g\"} %" PRIu64
                                "\n", bounds[i], cum);
    }
    cum += api->http_latency[HTTP_LATENCY_BUCKETS];
    snprintf(t + len, cap - len,
             "anneald_http_request_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n"
             "anneald_http_request_duration_seconds_sum %.6f\n"
             "anneald_http_request_duration_seconds_count %" PRIu64 "\n",
             cum, api->http_latency_sum, cum);
    return t;
}
