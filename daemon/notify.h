/* notify — systemd's readiness protocol (sd_notify) without libsystemd.
 *
 * Under `Type=notify` systemd passes NOTIFY_SOCKET (a path, or "@name" for an abstract
 * socket); the service sends datagrams such as "READY=1", "STOPPING=1" or "WATCHDOG=1" to it.
 * Outside systemd NOTIFY_SOCKET is unset and every call is a no-op that succeeds. */
#ifndef ANNEALD_NOTIFY_H
#define ANNEALD_NOTIFY_H

#include <stdint.h>

/* Sends `state` (e.g. "READY=1\nSTATUS=serving") to $NOTIFY_SOCKET. Returns 0 (also when
 * there is no socket) or a negative errno. */
int notify_send(const char *state);

/* The watchdog interval systemd asks for ($WATCHDOG_USEC, when $WATCHDOG_PID is unset or is
 * this process), in microseconds; 0 when there is no watchdog. Ping at half of it. */
uint64_t notify_watchdog_usec(void);

#endif
