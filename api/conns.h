/* conns — the connection gate: who may hold a connection, for how long, and its figures.
 *
 * DESIGN (connection hygiene)
 * The daemon owns its listening socket; libmicrohttpd runs without one (MHD_USE_NO_LISTEN_
 * SOCKET) and only gets connections whose request head has fully arrived and is sound.
 * A new connection waits in the gate, which peeks at its bytes (MSG_PEEK, with SO_RCVLOWAT
 * raised so a trickle of bytes costs one wake-up per byte at most) until the head is complete:
 *   - the whole head must arrive within CONNS_HEAD_SECONDS of the accept, however slowly its
 *     bytes trickle (slowloris): else 408 and close. A kept-alive connection gets the same
 *     time for its next head after each answer (else it is shut down): between requests it
 *     is idle at most that long;
 *   - a client that shuts its side (FIN) before its head ended gets 400 and is closed at once:
 *     the peek leaves its bytes in the socket, so recv never reads the end of stream there,
 *     and the poll asks for UV_DISCONNECT to learn of it;
 *   - at most CONNS_PENDING_MAX connections wait in the gate; when a new one comes beyond
 *     that, the one that has waited longest is closed (408) if it has waited CONNS_EVICT_AGE
 *     or more (a real client's head arrives in milliseconds, so it is never that old), else
 *     the newcomer gets 503;
 *   - at most CONNS_PER_IP connections (waiting or in MHD) per client address: beyond, 503;
 *   - a malformed head is answered by the gate with the API's JSON error (400, 414, 431,
 *     505; see api/httphead.h), never with MHD's HTML page;
 *   - a reserve: when MHD holds CONNS_MAX - CONNS_RESERVE connections, only GET /healthz and
 *     requests with the right bearer token are let in (others 503), so those always get
 *     through a flood of connections that did send whole heads.
 * SSE streams are capped at CONNS_SSE_MAX in all and CONNS_SSE_PER_IP per address (503
 * beyond: conns_sse_admit). Accepted sockets get TCP_USER_TIMEOUT, so a peer that vanished
 * without a FIN is dropped once a heartbeat goes unacknowledged for CONNS_USER_TIMEOUT_MS;
 * a stream whose reader stops taking bytes is closed by MHD's idle timeout once its socket
 * buffers are full. A request whose client closed while its body was arriving is shut down
 * by the sweep within a quarter of a second: MHD alone can miss that end until its idle
 * timeout (conns_sweep_live in connslive.c says why). A body must come at CONNS_BODY_RATE on
 * average after its first CONNS_BODY_GRACE seconds (time suspended not counted), else 408:
 * MHD's idle timeout alone restarts with every byte. Everything here runs on the loop
 * thread. */
#ifndef ANNEALD_CONNS_H
#define ANNEALD_CONNS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <microhttpd.h>
#include <uv.h>

#define CONNS_MAX 1024             /* connections MHD holds (MHD_OPTION_CONNECTION_LIMIT) */
#define CONNS_RESERVE 64           /* of those, kept for /healthz and token holders */
#define CONNS_PENDING_MAX 512      /* connections whose head has not arrived yet */
#define CONNS_EVICT_AGE 0.5        /* only a head older than this (s) is closed for a newcomer */
#define CONNS_PER_IP 128           /* connections per client address */
#define CONNS_HEAD_SECONDS 10.0    /* time for the whole request head */
#define CONNS_SSE_MAX 256          /* SSE streams in all */
#define CONNS_SSE_PER_IP 32        /* SSE streams per client address */
#define CONNS_USER_TIMEOUT_MS 60000
#define CONNS_BODY_GRACE 10.0      /* a body's first seconds, at any pace… */
#define CONNS_BODY_RATE 16384.0    /* …then at least this many bytes a second on average */

struct api;
struct sse_hub;
typedef struct gate_conn gate_conn;
typedef struct mhd_conn mhd_conn;

typedef struct conn_ip {
    char ip[48];
    int n;                         /* connections from this address (gate + MHD) */
} conn_ip;

typedef struct conns_t {
    int fd;                        /* the listening socket, -1 when closed */
    uv_poll_t poll;
    int polling;
    gate_conn *head, *tail;        /* waiting for their head, oldest first */
    int pending;
    conn_ip *ips;                  /* addresses with connections (dense, unordered) */
    int nips, capips;
    int mhd_open;                  /* connections MHD holds */
    mhd_conn *live;                /* those connections */
    int peak;                      /* most connections open since the last malloc_trim */
    uint64_t trims;
    const char *handoff_ip;        /* the address of the connection being handed to MHD */
    int handoff_reserve;           /* …and whether it takes a slot of the reserve */
    /* counters for /metrics */
    uint64_t accepted, handed, refused_per_ip, refused_reserve, refused_pending, head_timeout,
        head_evicted, idle_closed, body_abandoned, body_slow,
        bad_head, sse_refused_total, sse_refused_ip;
} conns_t;

/* Binds the listening socket to `sa` (port 0 = any free); *port gets the port bound. 0 or
 * -errno. Done first at start-up, before the store is touched: a port in use fails the start
 * before it creates anything. */
int conns_bind(struct api *api, const struct sockaddr *sa, socklen_t salen, int *port);

/* Listens on the bound socket and starts taking connections (api->loop set). 0 or -errno. */
int conns_start(struct api *api);

/* Stops accepting (shutdown): closes the listening socket. */
void conns_stop_listening(struct api *api);

/* Closes connections whose head is overdue, and requests whose client went away in the
 * middle of their body (call a few times a second). */
void conns_sweep(struct api *api, double now);

/* Closes every connection still in the gate and frees the gate (shutdown). */
void conns_close(struct api *api);

/* MHD_OPTION_NOTIFY_CONNECTION callback (cls = struct api *). */
void conns_mhd_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                      enum MHD_ConnectionNotificationCode toe);

/* MHD_OPTION_URI_LOG_CALLBACK: sees each request's target before MHD decodes it, for
 * conns_request_begins (its raw length; a path with an encoded '/' or NUL). Returns NULL. */
void *conns_mhd_uri(void *cls, const char *uri, struct MHD_Connection *c);

/* Frees the address table (after the loop ended). */
void conns_free(struct api *api);

/* The access handler's first call for a request on `c` / the request's completion: between
 * the two the connection is busy, outside it waits for its next head (same deadline).
 * A later request of a kept-alive connection never passed the gate: its head gets the
 * gate's size limits again, and a connection the reserve let in serves only what the
 * reserve admits. Any request whose path encodes '/' or NUL is refused (400). Returns 0, or
 * the status to refuse the request with (400, 414, 431, 503; the message in msg), after
 * which the connection is to be closed. */
int conns_request_begins(struct api *api, struct MHD_Connection *c, const char *method,
                         const char *url, char *msg, size_t msgsz);
void conns_request_ends(struct MHD_Connection *c);

/* Whether the request on `c` is amid its body (from a head that announces one to the
 * access handler's call that ends it), and `bytes` more of it arrived: a client gone in the
 * middle of one, or before it began, and one whose body trickles, are found by the sweep
 * (conns_sweep). */
void conns_body_arriving(struct MHD_Connection *c, int arriving, size_t bytes);

/* The client address of an MHD connection, as text ("127.0.0.2", "::1"), into ip[48]. */
void conns_peer(struct MHD_Connection *c, char ip[48]);

/* 0 when another SSE stream may open for `ip`; else the 503 message in `msg`. */
int conns_sse_admit(struct api *api, const struct sse_hub *hub, const char *ip, char *msg,
                    size_t msgsz);

/* The text of the connection metrics for /metrics (malloc'd; NULL on out of memory). */
char *conns_metrics_text(const struct api *api);

#endif
