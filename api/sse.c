/* sse — Server-Sent Events: frames, the ring of recent events, and the streams of clients. */
#include "api/sse.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "api/http.h"

size_t sse_frame(char *buf, size_t cap, const char *event, uint64_t id, const char *data)
{
    int n = snprintf(buf, cap, "event: %s\nid: %" PRIu64 "\ndata: %s\n\n", event, id, data);
    return n < 0 ? 0 : (size_t)n;
}

int sse_hub_init(sse_hub *h, size_t ring_cap, uint64_t first_id)
{
    memset(h, 0, sizeof *h);
    h->ring = calloc(ring_cap ? ring_cap : 1, sizeof *h->ring);
    if (!h->ring)
        return -ENOMEM;
    h->ring_cap = ring_cap ? ring_cap : 1;
    h->next_id = first_id ? first_id : 1;
    return 0;
}

void sse_hub_close(sse_hub *h)
{
    for (size_t i = 0; i < h->ring_cap && h->ring; i++)
        free(h->ring[i].frame);
    free(h->ring);
    h->ring = NULL;
    h->ring_len = h->ring_head = 0;
}

uint64_t sse_last_id(const sse_hub *h)
{
    return h->next_id - 1;
}

static int wants(const char *want, const char *job)
{
    return !want || want[0] == '\0' || strcmp(want, job) == 0;
}

int sse_can_replay(const sse_hub *h, const char *job, uint64_t last_id)
{
    if (last_id > sse_last_id(h))
        return 0; /* not an id we issued */
    if (last_id == sse_last_id(h))
        return 1; /* nothing missed */
    if (h->ring_len == 0)
        return 0;
    uint64_t oldest = h->ring[h->ring_head].id;
    if (last_id + 1 < oldest)
        return 0;
    /* A replay that would not fit in half a client's buffer is refused too: the client
     * would be dropped as soon as it opened, and reconnect with the same id forever. It gets
     * the snapshot instead. Only the events its stream takes count. */
    size_t bytes = 0;
    for (size_t k = h->ring_len; k-- > 0;) {
        const sse_event *e = &h->ring[(h->ring_head + k) % h->ring_cap];
        if (e->id <= last_id)
            break;
        if (e->frame && wants(job, e->job) && (bytes += e->len) > SSE_MAX_BUFFER / 2)
            return 0;
    }
    return 1;
}

static void client_wake(sse_client *c)
{
    if (c->suspended) {
        c->suspended = 0;
        MHD_resume_connection(c->conn);
    }
}

/* Appends bytes to a client's pending buffer; drops the client's stream when it falls too far
 * behind (it will reconnect and replay). */
static void client_append(sse_client *c, const char *s, size_t n)
{
    if (c->ending)
        return;
    if (c->off > 0 && c->off == c->len)
        c->off = c->len = 0;
    if (c->len - c->off + n > SSE_MAX_BUFFER) {
        /* A reader this far behind is dropped at once, its buffer freed now rather than
         * drained: with many readers that stopped reading, drained buffers would add up. */
        free(c->buf);
        c->buf = NULL;
        c->off = c->len = c->cap = 0;
        c->ending = c->dropped = 1;
        client_wake(c);
        return;
    }
    if (c->len + n > c->cap) {
        if (c->off > 0) { /* compact first */
            memmove(c->buf, c->buf + c->off, c->len - c->off);
            c->len -= c->off;
            c->off = 0;
        }
        if (c->len + n > c->cap) {
            size_t nc = c->cap ? c->cap : 4096;
            while (nc < c->len + n)
                nc *= 2;
            char *nb = realloc(c->buf, nc);
            if (!nb) {
                c->ending = 1;
                return;
            }
            c->buf = nb;
            c->cap = nc;
        }
    }
    memcpy(c->buf + c->len, s, n);
    c->len += n;
}

static int client_wants(const sse_client *c, const char *job)
{
    return wants(c->job, job);
}

char *sse_format(const char *event, uint64_t id, const cJSON *data, size_t *len)
{
    char *js = cJSON_PrintUnformatted(data);
    if (!js)
        return NULL;
    size_t need = sse_frame(NULL, 0, event, id, js) + 1;
    char *f = malloc(need);
    if (f)
        *len = sse_frame(f, need, event, id, js);
    cJSON_free(js);
    return f;
}

uint64_t sse_publish(sse_hub *h, const char *job, const char *event, const cJSON *data)
{
    uint64_t id = h->next_id++;
    size_t len = 0;
    char *f = sse_format(event, id, data, &len);
    if (!f)
        return id;
    size_t slot;
    if (h->ring_len < h->ring_cap) {
        slot = (h->ring_head + h->ring_len) % h->ring_cap;
        h->ring_len++;
    } else { /* overwrite the oldest */
        slot = h->ring_head;
        h->ring_head = (h->ring_head + 1) % h->ring_cap;
        free(h->ring[slot].frame);
    }
    h->ring[slot].id = id;
    snprintf(h->ring[slot].job, sizeof h->ring[slot].job, "%s", job);
    h->ring[slot].frame = f;
    h->ring[slot].len = len;
    for (sse_client *c = h->clients; c; c = c->next) {
        if (!client_wants(c, job))
            continue;
        client_append(c, f, len);
        h->events_sent++;
        client_wake(c);
    }
    return id;
}

void sse_client_push(sse_client *c, const char *frames, size_t n)
{
    if (n == 0)
        return;
    client_append(c, frames, n);
    client_wake(c);
}

void sse_client_replay(sse_hub *h, sse_client *c, uint64_t after)
{
    for (size_t k = 0; k < h->ring_len; k++) {
        const sse_event *e = &h->ring[(h->ring_head + k) % h->ring_cap];
        if (e->id > after && e->frame && client_wants(c, e->job))
            client_append(c, e->frame, e->len);
    }
    client_wake(c);
}

static ssize_t client_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    sse_client *c = cls;
    if (c->dropped)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (c->len > c->off) {
        size_t n = c->len - c->off;
        if (n > max)
            n = max;
        memcpy(buf, c->buf + c->off, n);
        c->off += n;
        return (ssize_t)n;
    }
    if (c->ending)
        return MHD_CONTENT_READER_END_OF_STREAM;
    /* Nothing to send: suspend until the hub has something (MHD: return 0 only so). */
    if (!c->suspended) {
        c->suspended = 1;
        MHD_suspend_connection(c->conn);
    }
    return 0;
}

static void client_free(void *cls)
{
    sse_client *c = cls;
    sse_hub *h = c->hub;
    if (c->prev)
        c->prev->next = c->next;
    else if (h->clients == c)
        h->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    h->nclients--;
    free(c->buf);
    free(c);
}

struct MHD_Response *sse_client_open(sse_hub *h, struct MHD_Connection *conn, const char *job,
                                     int replay, uint64_t last_id, sse_client **out)
{
    sse_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->hub = h;
    c->conn = conn;
    snprintf(c->job, sizeof c->job, "%s", job ? job : "");
    static const char retry[] = "retry: 2000\n\n";
    client_append(c, retry, sizeof retry - 1);
    if (replay)
        for (size_t k = 0; k < h->ring_len; k++) {
            const sse_event *e = &h->ring[(h->ring_head + k) % h->ring_cap];
            if (e->id > last_id && e->frame && client_wants(c, e->job))
                client_append(c, e->frame, e->len);
        }
    struct MHD_Response *resp =
        http_stream_response(16384, client_read, c, client_free);
    if (!resp) {
        free(c->buf);
        free(c);
        return NULL;
    }
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    c->next = h->clients;
    if (h->clients)
        h->clients->prev = c;
    h->clients = c;
    h->nclients++;
    if (out)
        *out = c;
    return resp;
}

void sse_hub_ping(sse_hub *h)
{
    static const char ping[] = ": ping\n\n";
    for (sse_client *c = h->clients; c; c = c->next) {
        client_append(c, ping, sizeof ping - 1);
        client_wake(c);
    }
}

int sse_hub_check_peers(sse_hub *h)
{
    int gone = 0;
    for (sse_client *c = h->clients; c; c = c->next) {
        if (!c->conn || c->dropped)
            continue;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!ci)
            continue;
        char b;
        ssize_t n = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)))
            continue; /* still connected (a client sends nothing on a stream) */
        free(c->buf);
        c->buf = NULL;
        c->off = c->len = c->cap = 0;
        c->ending = c->dropped = 1;
        client_wake(c);
        gone++;
    }
    return gone;
}

void sse_hub_end(sse_hub *h, const char *job)
{
    for (sse_client *c = h->clients; c; c = c->next) {
        if (job[0] && strcmp(c->job, job) != 0)
            continue;
        c->ending = 1;
        client_wake(c);
    }
}
