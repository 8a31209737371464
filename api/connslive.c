/* connslive — the connections MHD holds (api/conns.h): their deadlines between requests and
 * while a body arrives, and the gate's checks again for each later request of a kept-alive
 * connection, which reaches MHD without passing the gate. Loop thread. */
#include "api/conns.h"
#include "api/conns_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "api/api.h"
#include "api/http.h"
#include "api/httphead.h"
#include "util/util.h"

/* One connection MHD holds: its address (for the per-address count) and whether it is
 * between requests, since when (for the keep-alive head deadline). */
struct mhd_conn {
    char ip[48];
    int fd;
    struct MHD_Connection *conn;
    int in_request;   /* from the first call of the access handler to the completion */
    int in_body;      /* the request's head announced a body that has not ended */
    int closing;      /* shut down by the sweep; MHD closes it on its next turn */
    int reserve;      /* let in by the gate into the reserve (as /healthz or a token holder) */
    unsigned requests; /* requests begun on it */
    size_t target;    /* the raw length of its current request's target (0: not seen) */
    char escaped;     /* '/' or '\0' when its current request's path encodes one, else 'x' */
    double since;     /* start of the current wait for a request head */
    double body_s;    /* seconds the current body has been arriving (not counting suspension) */
    double swept;     /* the sweep's last look at it */
    uint64_t body_bytes; /* bytes of the current body so far */
    mhd_conn *prev, *next;
};

void conns_mhd_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                      enum MHD_ConnectionNotificationCode toe)
{
    api_t *api = cls;
    conns_t *cs = &api->gate;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        mhd_conn *m = calloc(1, sizeof *m);
        if (m) {
            if (cs->handoff_ip)
                snprintf(m->ip, sizeof m->ip, "%s", cs->handoff_ip);
            else
                conns_peer(c, m->ip);
            const union MHD_ConnectionInfo *ci =
                MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
            m->fd = ci ? ci->connect_fd : -1;
            m->conn = c;
            m->reserve = cs->handoff_reserve;
            m->since = util_now();
            m->next = cs->live;
            if (cs->live)
                cs->live->prev = m;
            cs->live = m;
        }
        *socket_context = m;
        cs->mhd_open++;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        mhd_conn *m = *socket_context;
        if (m) {
            conns_ip_dec(cs, m->ip);
            if (m->prev)
                m->prev->next = m->next;
            else
                cs->live = m->next;
            if (m->next)
                m->next->prev = m->prev;
            free(m);
        }
        *socket_context = NULL;
        cs->mhd_open--;
    }
}

static mhd_conn *conn_of(struct MHD_Connection *c)
{
    if (!c)
        return NULL;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* The bytes of a request's headers as MHD holds them ("key: value" and CRLF)… */
static enum MHD_Result add_len(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *value)
{
    (void)kind;
    *(size_t *)cls += strlen(key) + (value ? strlen(value) : 0) + 4;
    return MHD_YES;
}

/* …and of its query's arguments ("key=value" and '&'). */
static enum MHD_Result add_arg_len(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    (void)kind;
    *(size_t *)cls += strlen(key) + (value ? strlen(value) : 0) + 2;
    return MHD_YES;
}

/* GET or HEAD of /healthz, or the right bearer token: what the reserve lets in. */
static int privileged(const api_t *api, struct MHD_Connection *c, const char *method,
                      const char *url)
{
    if ((strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) &&
        strcmp(url, "/healthz") == 0)
        return 1;
    const char *given = http_bearer(c);
    const char *token = api->sv->opts->token;
    return token[0] && given && http_token_equal(given, strlen(given), token);
}

void *conns_mhd_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    (void)cls;
    mhd_conn *m = conn_of(c);
    if (!m)
        return NULL;
    size_t path = strcspn(uri, "?");
    m->target = strlen(uri);
    m->escaped = 'x';
    for (size_t i = 0; i + 2 < path; i++)
        if (uri[i] == '%') {
            if (uri[i + 1] == '0' && uri[i + 2] == '0')
                m->escaped = '\0';
            else if (uri[i + 1] == '2' && (uri[i + 2] == 'f' || uri[i + 2] == 'F'))
                m->escaped = '/';
        }
    return NULL; /* the access handler's request context starts empty, as without this */
}

int conns_request_begins(api_t *api, struct MHD_Connection *c, const char *method,
                         const char *url, char *msg, size_t msgsz)
{
    mhd_conn *m = conn_of(c);
    if (!m)
        return 0;
    m->in_request = 1;
    m->body_s = 0;
    m->body_bytes = 0;
    m->swept = util_now();
    char escaped = m->escaped;
    size_t raw = m->target;
    m->escaped = 'x';
    m->target = 0;
    /* MHD decodes the path before routing: an encoded '/' would become a separator (a proxy
     * that allows /v1/jobs/{id} but not /v1/jobs/{id}/cancel would let the latter through),
     * and an encoded NUL would cut the path short (/v1/jobs/j_1%00x answering for j_1). */
    if (escaped != 'x') {
        snprintf(msg, msgsz, "the request's path holds %s: a path of this API takes no "
                 "percent-encoded %s", escaped == '/' ? "'%2F' (an encoded '/')" :
                 "'%00' (an encoded NUL byte)", escaped == '/' ? "slash" : "NUL");
        return 400;
    }
    if (m->requests++ == 0)
        return 0; /* the gate checked the head that brought it */
    /* A later request's head went straight to MHD: the gate's limits, and the reserve, which
     * a connection let in for /healthz would otherwise open to anything that follows. Its
     * target's raw length was seen before MHD decoded it; failing that, the decoded path and
     * arguments give a little less. */
    size_t target = raw + 1;
    if (!raw) {
        target = strlen(url) + 1;
        MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, add_arg_len, &target);
    }
    if (target > HEAD_URI_MAX) {
        snprintf(msg, msgsz, "the request target is over %d bytes", HEAD_URI_MAX);
        return 414;
    }
    size_t head = strlen(method) + target + 12; /* " HTTP/1.1\r\n" */
    MHD_get_connection_values(c, MHD_HEADER_KIND, add_len, &head);
    if (head > HEAD_MAX) {
        snprintf(msg, msgsz, "the request head is over %d bytes", HEAD_MAX);
        return 431;
    }
    if (m->reserve && !privileged(api, c, method, url)) {
        api->gate.refused_reserve++;
        snprintf(msg, msgsz, "the daemon has too many open connections; this one was let in "
                 "for /healthz or a token holder only: open another");
        return 503;
    }
    return 0;
}

void conns_request_ends(struct MHD_Connection *c)
{
    mhd_conn *m = conn_of(c);
    if (m) {
        m->in_request = 0;
        m->in_body = 0;
        m->since = util_now();
    }
}

void conns_body_arriving(struct MHD_Connection *c, int arriving, size_t bytes)
{
    mhd_conn *m = conn_of(c);
    if (m) {
        m->in_body = arriving;
        m->body_bytes += bytes;
    }
}

/* 1 when the request on m is suspended (its work queued, or an upload waiting for the
 * store): the body is not the client's to send meanwhile. */
static int suspended(const mhd_conn *m)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(m->conn, MHD_CONNECTION_INFO_CONNECTION_SUSPENDED);
    return !ci || ci->suspended;
}

/* 1 when a body arrives slower than the least a client may send: after CONNS_BODY_GRACE
 * seconds, CONNS_BODY_RATE bytes a second on average. MHD's idle timeout starts again with
 * every byte, so a byte every 20 s would hold a connection (and its slot) for good. */
static int body_too_slow(mhd_conn *m, double now)
{
    double dt = now - m->swept;
    m->swept = now;
    if (!m->in_body || suspended(m))
        return 0;
    m->body_s += dt > 0 ? dt : 0;
    return m->body_s > CONNS_BODY_GRACE + (double)m->body_bytes / CONNS_BODY_RATE;
}

/* 1 when the client of a request amid its body has gone: its side closed (or the socket
 * failed) with nothing it sent left unread. A suspended request is left alone: the bytes
 * MHD read before suspending it may hold the rest of the body, and MHD reads the socket
 * again when it resumes (a resumed connection counts as readable), so it sees the end
 * itself or the handler's next call with data makes the request one this sweep watches. */
static int body_abandoned(const mhd_conn *m)
{
    if (!m->in_body || suspended(m))
        return 0;
    char b;
    ssize_t n = recv(m->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* Three kinds of connection are shut down here; MHD, seeing the end of its input on its next
 * turn, closes them.
 *   - A kept-alive connection gets the same deadline for its next head as a new one, so one
 *     quick request cannot buy a slot that a trickled second head then holds for good.
 *   - A request whose body trickles (body_too_slow), answered 408 first.
 *   - A request whose body had not all come when its client went. MHD's edge-triggered
 *     epoll misses that end when the FIN comes with the last bytes (of the body, or of the
 *     head): a read that returns fewer bytes than asked marks the socket drained, and no
 *     further edge comes.
 *     Without this the request (an upload's stored pieces and its memory) would wait out
 *     the 30 s idle timeout. */
void conns_sweep_live(api_t *api, double now)
{
    conns_t *cs = &api->gate;
    int closed = 0;
    for (mhd_conn *m = cs->live; m; m = m->next) {
        if (m->closing || m->fd < 0)
            continue;
        if (m->in_request) {
            if (body_too_slow(m, now)) {
                cs->body_slow++;
                conns_raw_reply(m->fd, 408, "timeout", "the request body arrived too slowly "
                                "(under 16 KiB/s after its first 10 s)");
            } else if (body_abandoned(m)) {
                cs->body_abandoned++;
            } else {
                continue;
            }
        } else {
            if (now - m->since < CONNS_HEAD_SECONDS)
                continue;
            cs->idle_closed++;
        }
        shutdown(m->fd, SHUT_RDWR);
        m->closing = 1;
        closed = 1;
    }
    if (closed)
        api_pump(api);
}

