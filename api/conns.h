/* conns — who is connected: counts per client address, the limits that keep a flood of idle
 * or slow connections from taking the service, and their figures for /metrics.
 *
 * DESIGN (connection hygiene)
 * MHD holds every connection; a few hundred idle ones would otherwise fill its table before
 * any token is checked. The defences, outermost first:
 *   - per address: at most CONNS_PER_IP connections from one client address (MHD's per-IP
 *     limit, refused at accept); loopback 127.0.0.1 and ::1 are counted like any other;
 *   - the request head (line and headers) must arrive within CONNS_HEAD_SECONDS of the
 *     connection, however slowly its bytes trickle in (MHD's idle timeout alone is reset by
 *     every byte);
 *   - SSE streams: at most CONNS_SSE_TOTAL in all and CONNS_SSE_PER_IP per address, a 503
 *     with a JSON error beyond either, and a reader that takes no bytes for
 *     CONNS_SSE_STALL_SECONDS while its buffer holds some is closed (heartbeats make sure
 *     every live stream has bytes to take);
 *   - a reserve: when all but CONNS_RESERVE of the connection slots are held, a new request
 *     that is neither GET /healthz nor carries the right token is answered 503 at once and
 *     closed, so those two always find a slot.
 * Everything here runs on the loop thread. */
#ifndef ANNEALD_CONNS_H
#define ANNEALD_CONNS_H

#include <stddef.h>
#include <stdint.h>

struct daemon;

/* The text of the connection metrics for /metrics (malloc'd; NULL on out of memory). */
char *conns_metrics_text(const struct daemon *d);

#endif
