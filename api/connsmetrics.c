/* connsmetrics — the connection gate's figures as /metrics text (api/conns.h). */
#include "api/conns.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "api/api.h"

char *conns_metrics_text(const api_t *api)
{
    const conns_t *cs = &api->gate;
    char *s = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&s, &n);
    if (!f)
        return NULL;
    fprintf(f,
            "# HELP anneald_connections Open client connections: waiting for their request "
            "head, or held by the HTTP server.\n# TYPE anneald_connections gauge\n"
            "anneald_connections{state=\"head\"} %d\nanneald_connections{state=\"open\"} %d\n"
            "# HELP anneald_connection_addresses Client addresses with open connections.\n"
            "# TYPE anneald_connection_addresses gauge\nanneald_connection_addresses %d\n"
            "# HELP anneald_connections_accepted_total Connections accepted.\n"
            "# TYPE anneald_connections_accepted_total counter\n"
            "anneald_connections_accepted_total %" PRIu64 "\n"
            "# HELP anneald_connections_body_abandoned_total Requests whose client went away "
            "while their body was arriving, found and closed by the sweep.\n"
            "# TYPE anneald_connections_body_abandoned_total counter\n"
            "anneald_connections_body_abandoned_total %" PRIu64 "\n"
            "# HELP anneald_connections_refused_total Connections closed or refused by a "
            "limit, by reason.\n# TYPE anneald_connections_refused_total counter\n"
            "anneald_connections_refused_total{reason=\"per_ip\"} %" PRIu64 "\n"
            "anneald_connections_refused_total{reason=\"reserve\"} %" PRIu64 "\n"
            "anneald_connections_refused_total{reason=\"head_timeout\"} %" PRIu64 "\n"
            "anneald_connections_refused_total{reason=\"head_evicted\"} %" PRIu64 "\n"
            "anneald_connections_refused_total{reason=\"keepalive_timeout\"} %" PRIu64 "\n"
            "anneald_connections_refused_total{reason=\"gate_full\"} %" PRIu64 "\n"
            "anneald_connections_refused_total{reason=\"bad_head\"} %" PRIu64 "\n"
            "anneald_connections_refused_total{reason=\"sse_total\"} %" PRIu64 "\n"
            "anneald_connections_refused_total{reason=\"sse_per_ip\"} %" PRIu64 "\n"
            "anneald_connections_refused_total{reason=\"body_slow\"} %" PRIu64 "\n",
            cs->pending, cs->mhd_open, cs->nips, cs->accepted, cs->body_abandoned, cs->refused_per_ip,
            cs->refused_reserve, cs->head_timeout, cs->head_evicted, cs->idle_closed,
            cs->refused_pending, cs->bad_head,
            cs->sse_refused_total, cs->sse_refused_ip, cs->body_slow);
    fprintf(f,
            "# HELP anneald_http_refused_total Requests refused before their route ran, by "
            "reason.\n# TYPE anneald_http_refused_total counter\n"
            "anneald_http_refused_total{reason=\"host\"} %" PRIu64 "\n"
            "anneald_http_refused_total{reason=\"origin\"} %" PRIu64 "\n"
            "anneald_http_refused_total{reason=\"media_type\"} %" PRIu64 "\n"
            "anneald_http_refused_total{reason=\"duplicate_header\"} %" PRIu64 "\n",
            api->refused_host, api->refused_origin, api->refused_media, api->refused_headers);
    if (fclose(f) != 0) {
        free(s);
        return NULL;
    }
    return s;
}
