/* metrics_stream — GET /v1/jobs/{id}/metrics as a streamed body (metrics_stream.c). */
#ifndef ANNEALD_API_METRICS_STREAM_H
#define ANNEALD_API_METRICS_STREAM_H

#include <stdint.h>

#include "api/http.h"
#include "store/store.h"

/* On a queue thread with store s: opens the rows of job `id` with from <= step <= to (to < 0:
 * no bound) as CSV or as the columnar JSON (max_points > 0 and fewer than the range's steps:
 * downsampled) and makes the first piece. *out is the response to queue (200); an error
 * (-ENOENT unknown job, a store error) comes back before anything is sent. */
int metrics_stream_open(http_req *r, store_t *s, const char *id, int64_t from, int64_t to,
                        int64_t max_points, int csv, struct MHD_Response **out, an_err *e);

#endif
