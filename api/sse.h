/* sse — Server-Sent Events: frames, the ring of recent events, and the streams of clients.
 *
 * DESIGN
 * Everything here runs on the loop thread. Events are published by the job manager
 * (state changes, coalesced progress, checkpoints); each gets the next id of one sequence
 * shared by all jobs, so an id means the same thing on the per-job and on the global stream.
 * The sequence starts at the start time in milliseconds × 1000, so ids keep increasing across
 * restarts of the daemon and an old Last-Event-ID is never mistaken for a new one.
 *
 * The hub keeps the last `ring_cap` events (pre-formatted frames). A client that reconnects
 * with Last-Event-ID gets every event after it from the ring; when the id is older than the
 * ring (or not one we issued), the ring cannot say what was missed, and the caller sends a
 * fresh snapshot instead (the job's state and latest progress, from the store): a chart then
 * fetches the gap from /metrics.
 *
 * A client's stream is an MHD response from a callback. The reader copies pending bytes; with
 * nothing pending it suspends its own connection and returns 0 (MHD's contract). Publishing
 * appends the frame to each matching client's buffer and resumes the suspended ones (a
 * per-client flag guards against double suspend/resume). A housekeeping tick writes a
 * ": ping" comment every 15 s, which is also how dead clients are found. A client that falls
 * more than SSE_MAX_BUFFER bytes behind is dropped at once, its buffer freed (its browser
 * reconnects and replays). */
#ifndef ANNEALD_SSE_H
#define ANNEALD_SSE_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define SSE_MAX_BUFFER ((size_t)1 << 20)
#define SSE_JOB_LEN 24

struct MHD_Connection;
struct MHD_Response;

typedef struct sse_event {
    uint64_t id;
    char job[SSE_JOB_LEN];     /* job the event is about */
    char *frame;               /* "event: …\nid: …\ndata: …\n\n" */
    size_t len;
} sse_event;

typedef struct sse_client {
    struct sse_hub *hub;
    struct MHD_Connection *conn;
    char job[SSE_JOB_LEN];     /* only this job's events; "" = every job */
    char ip[48];               /* the client's address (api/conns.h caps streams per address) */
    char *buf;                 /* bytes not yet taken by MHD */
    size_t off, len, cap;      /* buf[off..len) is pending */
    int suspended;             /* the connection is suspended by this client's reader */
    int ending;                /* end the stream once the buffer is drained */
    int dropped;               /* fell SSE_MAX_BUFFER behind: closed without draining */
    struct sse_client *prev, *next;
} sse_client;

typedef struct sse_hub {
    sse_event *ring;           /* circular, ring_cap entries */
    size_t ring_cap, ring_len, ring_head; /* head = index of the oldest */
    uint64_t next_id;          /* id of the next event */
    sse_client *clients;       /* doubly linked */
    int nclients;
    uint64_t events_sent;      /* frames appended to client buffers */
} sse_hub;

/* Formats one frame into buf (at most cap bytes incl. NUL): "event: E\nid: N\ndata: D\n\n".
 * `data` must be one line (compact JSON is). Returns the length, or the length needed when
 * it does not fit (like snprintf). */
size_t sse_frame(char *buf, size_t cap, const char *event, uint64_t id, const char *data);

/* Initialises the hub with room for `ring_cap` events, ids starting at `first_id`. 0/-ENOMEM. */
int sse_hub_init(sse_hub *h, size_t ring_cap, uint64_t first_id);

/* Frees the ring. Clients must have ended (sse_hub_end_all and their MHD free callbacks). */
void sse_hub_close(sse_hub *h);

/* Publishes an event about `job`: data is printed compactly (and not consumed). Returns the
 * event's id. */
uint64_t sse_publish(sse_hub *h, const char *job, const char *event, const cJSON *data);

/* The id the last published event got (next_id - 1). */
uint64_t sse_last_id(const sse_hub *h);

/* 1 when every event after `last_id` is still in the ring (replay is complete) and those a
 * stream of `job` ("" or NULL: every job) takes fit in half of SSE_MAX_BUFFER (a longer
 * replay would drop the client at once). */
int sse_can_replay(const sse_hub *h, const char *job, uint64_t last_id);

/* Makes a client for `job` ("" = all) on `conn`, with "retry:" and, when replay is possible,
 * the events after `last_id` already queued (`replay` = 1). Returns the streaming response
 * (MHD frees the client when the connection ends), or NULL on out of memory. */
struct MHD_Response *sse_client_open(sse_hub *h, struct MHD_Connection *conn, const char *job,
                                     int replay, uint64_t last_id, sse_client **out);

/* A frame as sse_frame lays it out, from JSON printed compactly: malloc'd, its length in *len;
 * NULL when out of memory. Touches no hub state, so snapshots are formatted off the loop. */
char *sse_format(const char *event, uint64_t id, const cJSON *data, size_t *len);

/* Queues ready frames (sse_format's) for one client only: a snapshot made off the loop. */
void sse_client_push(sse_client *c, const char *frames, size_t n);

/* Queues for one client every event in the ring after id `after` (those published while its
 * snapshot was being made); the caller checked sse_can_replay(after). */
void sse_client_replay(sse_hub *h, sse_client *c, uint64_t after);


/* Writes a ": ping" comment to every client (resuming them). */
void sse_hub_ping(sse_hub *h);

/* Finds streams whose client has closed its end (EOF or an error on a peek at the socket)
 * and ends them now: a suspended stream is otherwise noticed only at the next heartbeat.
 * Returns how many were ended. */
int sse_hub_check_peers(sse_hub *h);

/* Ends every stream of `job` ("" = every stream) once its buffer is drained. */
void sse_hub_end(sse_hub *h, const char *job);

#endif
