/* conns — connection limits and their figures (see conns.h). */
#include "api/conns.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "daemon/daemon.h"

char *conns_metrics_text(const daemon_t *d)
{
    char *s = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&s, &n);
    if (!f)
        return NULL;
    fprintf(f,
            "# HELP anneald_http_refused_total Requests refused before their route ran, by "
            "reason.\n# TYPE anneald_http_refused_total counter\n"
            "anneald_http_refused_total{reason=\"host\"} %" PRIu64 "\n"
            "anneald_http_refused_total{reason=\"origin\"} %" PRIu64 "\n"
            "anneald_http_refused_total{reason=\"media_type\"} %" PRIu64 "\n"
            "anneald_http_refused_total{reason=\"duplicate_header\"} %" PRIu64 "\n",
            d->refused_host, d->refused_origin, d->refused_media, d->refused_headers);
    if (fclose(f) != 0) {
        free(s);
        return NULL;
    }
    return s;
}
