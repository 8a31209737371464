/* conns_internal — what the connection gate (api/conns.c) and its live connections
 * (api/connslive.c) share, and nothing else calls. Loop thread. */
#ifndef ANNEALD_CONNS_INTERNAL_H
#define ANNEALD_CONNS_INTERNAL_H

#include "api/conns.h"

/* One connection fewer from ip. */
void conns_ip_dec(conns_t *cs, const char *ip);

/* Writes a complete JSON error answer with Connection: close to fd, best effort (the socket
 * is non-blocking and about to be closed; a client that does not read simply misses it). */
void conns_raw_reply(int fd, int status, const char *code, const char *message);

/* Shuts down the connections MHD holds that are overdue: see connslive.c. */
void conns_sweep_live(struct api *api, double now);

#endif
