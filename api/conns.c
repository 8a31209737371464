/* conns — the connection gate (see conns.h). */
#include "api/conns.h"
#include "api/conns_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "api/http.h"
#include "api/httphead.h"
#include "api/api.h"
#include "util/util.h"
#include "util/log.h"

struct gate_conn {
    uv_poll_t poll;                /* on fd, readable */
    api_t *api;
    int fd;
    double t0;                     /* accepted at (monotonic s) */
    struct sockaddr_storage addr;
    socklen_t alen;
    char ip[48];
    gate_conn *prev, *next;
};


/* ---- per-address counts ---- */

static int ip_find(const conns_t *cs, const char *ip)
{
    for (int i = 0; i < cs->nips; i++)
        if (strcmp(cs->ips[i].ip, ip) == 0)
            return i;
    return -1;
}

/* Counts one more connection from ip; returns the new count, or -1 on out of memory. */
static int ip_inc(conns_t *cs, const char *ip)
{
    int i = ip_find(cs, ip);
    if (i < 0) {
        if (cs->nips == cs->capips) {
            int nc = cs->capips ? cs->capips * 2 : 64;
            conn_ip *n = realloc(cs->ips, (size_t)nc * sizeof *n);
            if (!n)
                return -1;
            cs->ips = n;
            cs->capips = nc;
        }
        i = cs->nips++;
        snprintf(cs->ips[i].ip, sizeof cs->ips[i].ip, "%s", ip);
        cs->ips[i].n = 0;
    }
    return ++cs->ips[i].n;
}

void conns_ip_dec(conns_t *cs, const char *ip)
{
    int i = ip_find(cs, ip);
    if (i < 0)
        return;
    if (--cs->ips[i].n <= 0)
        cs->ips[i] = cs->ips[--cs->nips];
}

static void addr_text(const struct sockaddr *sa, char ip[48])
{
    ip[0] = '\0';
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, 48);
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a))
            inet_ntop(AF_INET, &a->s6_addr[12], ip, 48);
        else
            inet_ntop(AF_INET6, a, ip, 48);
    }
    if (!ip[0])
        snprintf(ip, 48, "?");
}

void conns_peer(struct MHD_Connection *c, char ip[48])
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr)
        addr_text(ci->client_addr, ip);
    else
        snprintf(ip, 48, "?");
}

/* ---- answers from the gate ---- */

static const char *reason_of(int status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    case 501: return "Not Implemented";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

/* Writes a complete JSON error answer to fd, best effort (the socket is non-blocking and
 * about to be closed; a client that does not read simply misses it). */
void conns_raw_reply(int fd, int status, const char *code, const char *message)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", message);
    cJSON_AddNullToObject(e, "field");
    char *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!body)
        return;
    /* the headers and the closing newline every answer of the API has (http.c) */
    char head[768];
    int hn = snprintf(head, sizeof head,
                      "HTTP/1.1 %d %s\r\nContent-Type: application/json; charset=utf-8\r\n"
                      "Content-Length: %zu\r\nCache-Control: no-store\r\nConnection: close\r\n"
                      "X-Frame-Options: DENY\r\nContent-Security-Policy: " HTTP_CSP "\r\n"
                      "X-Content-Type-Options: nosniff\r\n%s\r\n",
                      status, reason_of(status), strlen(body) + 1,
                      status == 503 ? "Retry-After: 1\r\n" : "");
    struct iovec iov[3] = {{head, (size_t)hn}, {body, strlen(body)}, {"\n", 1}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 3};
    if (sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        /* the client is gone or not reading: nothing more to do */
    }
    cJSON_free(body);
}

/* Reads and drops what the client sent, so closing does not reset the connection before
 * the answer is read. */
static void drain(int fd)
{
    char buf[4096];
    for (int i = 0; i < 16; i++)
        if (recv(fd, buf, sizeof buf, MSG_DONTWAIT) <= 0)
            break;
}

/* ---- the gate ---- */

static void unlink_gate(conns_t *cs, gate_conn *g)
{
    if (g->prev)
        g->prev->next = g->next;
    else
        cs->head = g->next;
    if (g->next)
        g->next->prev = g->prev;
    else
        cs->tail = g->prev;
    g->prev = g->next = NULL;
    cs->pending--;
}

static void free_gate(uv_handle_t *h)
{
    free(h->data);
}

/* Closes a waiting connection, answering `status` first when it is not 0. */
static void gate_close(gate_conn *g, int status, const char *code, const char *message)
{
    conns_t *cs = &g->api->gate;
    uv_poll_stop(&g->poll);
    unlink_gate(cs, g);
    if (status) {
        drain(g->fd);
        conns_raw_reply(g->fd, status, code, message);
    }
    close(g->fd);
    conns_ip_dec(cs, g->ip);
    uv_close((uv_handle_t *)&g->poll, free_gate);
}

static int token_ok(const api_t *api, const head_info *hi)
{
    return api->sv->opts->token[0] && hi->bearer &&
           http_token_equal(hi->bearer, hi->bearer_len, api->sv->opts->token);
}

/* The head is complete and sound: the connection goes to MHD. */
static void gate_handoff(gate_conn *g)
{
    api_t *api = g->api;
    conns_t *cs = &api->gate;
    int one = 1;
    setsockopt(g->fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof one);
    uv_poll_stop(&g->poll);
    unlink_gate(cs, g);
    int opened = cs->mhd_open;
    cs->handoff_ip = g->ip;
    cs->handoff_reserve = opened >= CONNS_MAX - CONNS_RESERVE; /* let in as privileged */
    enum MHD_Result ok = api->mhd ? MHD_add_connection(api->mhd, g->fd, (struct sockaddr *)&g->addr,
                                                     g->alen)
                                : MHD_NO;
    cs->handoff_ip = NULL;
    if (ok == MHD_YES) {
        cs->handed++;
    } else {
        /* MHD closes the socket when it cannot take it; without MHD it is ours to close. */
        if (!api->mhd)
            close(g->fd);
        if (cs->mhd_open == opened) /* its NOTIFY_STARTED never came: uncount it here */
            conns_ip_dec(cs, g->ip);
    }
    uv_close((uv_handle_t *)&g->poll, free_gate);
    api_pump(api);
}

static void gate_on_read(uv_poll_t *p, int status, int events)
{
    gate_conn *g = p->data;
    api_t *api = g->api;
    conns_t *cs = &api->gate;
    if (status < 0) {
        gate_close(g, 0, NULL, NULL);
        return;
    }
    static char buf[HEAD_MAX + 1]; /* loop thread only */
    ssize_t n = recv(g->fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        gate_close(g, 0, NULL, NULL); /* gone before its head was complete */
        return;
    }
    if (n < 0)
        return;
    size_t end = head_end(buf, (size_t)n);
    if (!end) {
        if ((size_t)n > HEAD_MAX) {
            cs->bad_head++;
            gate_close(g, 431, "too_large", "the request head is over 16384 bytes");
            return;
        }
        /* The client closed its side with the head unfinished: the rest can never come. The
         * peek above leaves the bytes that did come in the socket, so recv never says 0
         * here, and the socket stays readable: without this the loop would spin on it until
         * the head timeout. */
        if (events & UV_DISCONNECT) {
            cs->bad_head++;
            gate_close(g, 400, "invalid_argument",
                       "the connection was shut before the request head ended (a blank line)");
            return;
        }
        /* Wake again only when more than what is here has arrived. */
        int lowat = (int)n + 1;
        setsockopt(g->fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat);
        return;
    }
    head_info hi;
    char msg[256];
    int st = head_check(buf, end, &hi, msg, sizeof msg);
    if (st) {
        cs->bad_head++;
        gate_close(g, st, st == 413 || st == 414 || st == 431 ? "too_large"
                          : st == 501                          ? "not_implemented"
                                                               : "invalid_argument", msg);
        return;
    }
    int privileged = hi.healthz || token_ok(api, &hi);
    if (cs->mhd_open >= CONNS_MAX || (cs->mhd_open >= CONNS_MAX - CONNS_RESERVE && !privileged)) {
        cs->refused_reserve++;
        gate_close(g, 503, "unavailable",
                   "the daemon has too many open connections; try again shortly");
        return;
    }
    gate_handoff(g);
}

static void accept_one(api_t *api, int cfd, const struct sockaddr_storage *ss, socklen_t len)
{
    conns_t *cs = &api->gate;
    char ip[48];
    addr_text((const struct sockaddr *)ss, ip);
    int n = ip_inc(cs, ip);
    if (n < 0 || n > CONNS_PER_IP) {
        if (n > 0)
            conns_ip_dec(cs, ip);
        cs->refused_per_ip++;
        conns_raw_reply(cfd, 503, "unavailable", "too many connections from this address");
        close(cfd);
        return;
    }
    /* A peer that vanished without a FIN: unacknowledged data (a heartbeat at the latest)
     * ends the connection after this long. */
    unsigned ut = CONNS_USER_TIMEOUT_MS;
    setsockopt(cfd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ut, sizeof ut);
    if (cs->pending >= CONNS_PENDING_MAX && cs->head) {
        if (util_now() - cs->head->t0 < CONNS_EVICT_AGE) {
            conns_ip_dec(cs, ip);
            cs->refused_pending++;
            conns_raw_reply(cfd, 503, "unavailable", "too many connections are starting at once");
            close(cfd);
            return;
        }
        cs->head_evicted++;
        gate_close(cs->head, 408, "timeout",
                   "the request head did not arrive in time (the daemon is busy with slow "
                   "connections)");
    }
    gate_conn *g = calloc(1, sizeof *g);
    if (!g || uv_poll_init(api->loop, &g->poll, cfd) != 0) {
        free(g);
        conns_ip_dec(cs, ip);
        close(cfd);
        return;
    }
    g->poll.data = g;
    g->api = api;
    g->fd = cfd;
    g->t0 = util_now();
    memcpy(&g->addr, ss, sizeof g->addr);
    g->alen = len;
    memcpy(g->ip, ip, sizeof g->ip);
    g->prev = cs->tail;
    if (cs->tail)
        cs->tail->next = g;
    else
        cs->head = g;
    cs->tail = g;
    cs->pending++;
    cs->accepted++;
    uv_poll_start(&g->poll, UV_READABLE | UV_DISCONNECT, gate_on_read);
}

static void on_listen(uv_poll_t *p, int status, int events)
{
    (void)events;
    api_t *api = p->data;
    if (status < 0)
        return;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int cfd = accept4(api->gate.fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                /* Out of descriptors: drop the longest-waiting head to make room. */
                if (api->gate.head) {
                    api->gate.head_evicted++;
                    gate_close(api->gate.head, 408, "timeout", "the request head did not arrive in time");
                    continue;
                }
                util_log(LOG_WARN, "accept: %s", strerror(errno));
            }
            return;
        }
        accept_one(api, cfd, &ss, len);
    }
}

int conns_bind(api_t *api, const struct sockaddr *sa, socklen_t salen, int *port)
{
    conns_t *cs = &api->gate;
    cs->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (cs->fd < 0)
        return -errno;
    int one = 1;
    setsockopt(cs->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    /* bound only: listen() waits for conns_start, so that no client's handshake completes
     * while the store opens (it would hang unanswered rather than be refused) */
    if (bind(cs->fd, sa, salen) != 0) {
        int e = errno;
        close(cs->fd);
        cs->fd = -1;
        return -e;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    getsockname(cs->fd, (struct sockaddr *)&ss, &len);
    *port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                           : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

int conns_start(api_t *api)
{
    conns_t *cs = &api->gate;
    if (listen(cs->fd, 511) != 0)
        return -errno;
    uv_poll_init(api->loop, &cs->poll, cs->fd);
    cs->poll.data = api;
    uv_poll_start(&cs->poll, UV_READABLE, on_listen);
    cs->polling = 1;
    return 0;
}

void conns_stop_listening(api_t *api)
{
    conns_t *cs = &api->gate;
    if (cs->polling) {
        uv_poll_stop(&cs->poll);
        uv_close((uv_handle_t *)&cs->poll, NULL);
        cs->polling = 0;
    }
    if (cs->fd >= 0) {
        close(cs->fd);
        cs->fd = -1;
    }
}

void conns_sweep(api_t *api, double now)
{
    conns_t *cs = &api->gate;
    while (cs->head && now - cs->head->t0 >= CONNS_HEAD_SECONDS) {
        cs->head_timeout++;
        gate_close(cs->head, 408, "timeout", "the request head did not arrive within 10 s");
    }
    conns_sweep_live(api, now);
    /* After a crowd of connections has gone, give the memory their buffers held back to the
     * system: malloc keeps freed heap pages otherwise, and the daemon would stay as large
     * as the biggest flood it ever saw. */
    int open = cs->pending + cs->mhd_open;
    if (open > cs->peak)
        cs->peak = open;
    if (cs->peak >= 64 && open <= cs->peak / 4) {
        malloc_trim(0);
        cs->peak = open;
        cs->trims++;
    }
}

void conns_close(api_t *api)
{
    conns_t *cs = &api->gate;
    conns_stop_listening(api);
    while (cs->head)
        gate_close(cs->head, 503, "unavailable", "the daemon is shutting down");
}

void conns_free(api_t *api)
{
    free(api->gate.ips);
    api->gate.ips = NULL;
    api->gate.nips = api->gate.capips = 0;
}

int conns_sse_admit(api_t *api, const sse_hub *hub, const char *ip, char *msg, size_t msgsz)
{
    conns_t *cs = &api->gate;
    if (hub->nclients >= CONNS_SSE_MAX) {
        cs->sse_refused_total++;
        snprintf(msg, msgsz, "too many event streams are open (%d); try again later", CONNS_SSE_MAX);
        return -1;
    }
    int mine = 0;
    for (const sse_client *c = hub->clients; c; c = c->next)
        mine += strcmp(c->ip, ip) == 0;
    if (mine >= CONNS_SSE_PER_IP) {
        cs->sse_refused_ip++;
        snprintf(msg, msgsz, "too many event streams from this address (%d); close one first",
                 CONNS_SSE_PER_IP);
        return -1;
    }
    return 0;
}
