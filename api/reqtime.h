/* reqtime — the daemon's own time over each answer: a Server-Timing header on the answer and
 * a histogram in /metrics. */
#ifndef ANNEALD_REQTIME_H
#define ANNEALD_REQTIME_H

#include <microhttpd.h>

#include "api/http.h"

/* On the loop, as `resp` is queued for `r`: adds its Server-Timing header and counts it. */
void reqtime_note(http_req *r, struct MHD_Response *resp);

/* The histogram as Prometheus text (malloc'd; NULL when out of memory). Loop thread. */
char *reqtime_metrics_text(const struct api *api);

#endif
