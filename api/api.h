/* api — the HTTP side of the service as one struct: libmicrohttpd, the connection gate, the
 * SSE hub and the request counters, with a pointer to the job manager's side (jobs/service.h).
 * api/ reaches the rest of the service only through `sv`; the daemon's wiring owns one api_t,
 * fills `sv`, `loop` and `pump`, and starts MHD. Loop thread only. */
#ifndef ANNEALD_API_H
#define ANNEALD_API_H

#include <stdint.h>

#include <microhttpd.h>
#include <uv.h>

#include "api/conns.h"
#include "api/sse.h"
#include "jobs/service.h"

/* Buckets of the request-time histogram (api/reqtime.c). */
#define HTTP_LATENCY_BUCKETS 9

typedef struct api {
    service *sv;                   /* the job manager's side */
    uv_loop_t *loop;               /* the loop the connection gate polls on */
    struct MHD_Daemon *mhd;
    conns_t gate;                  /* the listening socket and the connection gate */
    sse_hub hub;
    int inflight_work;             /* http_defer work items not yet answered */
    uint64_t control_reserved;     /* bytes of control requests' bodies (api/httpbody.c) */

    /* Runs MHD now and re-arms its timer (the wiring's; after a connection is resumed). */
    void (*pump)(void *arg);
    void *pump_arg;

    /* Stats for /metrics */
    uint64_t http_by_code[600];    /* requests answered, by status code */
    /* Time from a request's head to its answer being queued, as a histogram over
     * reqtime's bounds (api/reqtime.c): each answer counts in the first bucket it fits. */
    uint64_t http_latency[HTTP_LATENCY_BUCKETS + 1]; /* the last: beyond every bound */
    double http_latency_sum;       /* seconds */
    uint64_t refused_host;         /* 421: a Host that does not name the daemon (api/guard.h) */
    uint64_t refused_origin;       /* 403: a foreign Origin */
    uint64_t refused_media;        /* 415: a body of the wrong Content-Type */
    uint64_t refused_headers;      /* 400: a framing or auth header sent twice */
} api_t;

/* Runs MHD now (the wiring's pump). */
static inline void api_pump(api_t *a)
{
    if (a->pump)
        a->pump(a->pump_arg);
}

#endif
