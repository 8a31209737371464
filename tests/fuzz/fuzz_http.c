/* fuzz_http — the daemon's HTTP request path, driven through a real socket.
 *
 * The handlers are written against libmicrohttpd (connections, suspend/resume, deferred work
 * on the libuv thread pool), so they are reached the way a client reaches them: one daemon
 * (daemon_run) runs in a thread of this process on 127.0.0.1 with a port the kernel picks and
 * a store in a temporary directory, and every input is one request on a new connection. This
 * target therefore keeps state between inputs (the daemon and its store) on purpose; each
 * input's request stands alone. The daemon has no worker threads, so a queued job never runs
 * and the stored data changes only through requests.
 *
 * Input: METHOD \0 TARGET \0 HEADERS \0 BODY (missing parts: GET, /, none, empty). HEADERS are
 * lines "Name: value" separated by \n. The request sent is
 *   METHOD TARGET HTTP/1.1, Host, the headers, Content-Length of BODY (unless the headers give
 *   Content-Length or Transfer-Encoding), Connection: close, BODY.
 * The token is FUZZ_TOKEN (tests/fuzz/http.dict and the corpus carry it).
 *
 * Properties, for a well-framed request (token characters in the method, a target of visible
 * characters starting with '/', headers "Name: value" with no framing header of their own):
 *   - a complete response comes within the time limit, with status 2xx, 4xx or 5xx;
 *   - every 4xx/5xx body is JSON {"error":{"code","message","field"}}, code and message
 *     non-empty strings, field a string or null;
 *   - a JSON 2xx body parses; an event stream holds only SSE lines;
 *   - the stored jobs and data sets change only on a 2xx answer to POST or DELETE.
 * For any other request a response, if one comes, still has a 2xx/4xx/5xx status, and the
 * store does not change. Sanitizer reports in the daemon's thread fail the input too. */
#include "tests/fuzz/fuzz.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "daemon/daemon.h"
#include "daemon/options.h"

#define FUZZ_TOKEN "fuzz-token"
/* Small body limits keep the oversize cases (413) within a fuzzer-sized input. */
#define FUZZ_MAX_JSON 16384
#define FUZZ_MAX_DATASET 4096
/* Bytes of a response read at most (a long preview is cut off and the connection dropped). */
#define FUZZ_MAX_RESPONSE (1 << 20)
/* How long an answer may take: a well-framed request must be answered within it (it stays
 * under libFuzzer's -timeout=10 of `make fuzz`, so a hang is reported as what it is); for
 * any other request the connection is half-closed at once and waited on at most the short
 * time, since the daemon may rightly wait for the rest of a body that never comes. */
#define FUZZ_WAIT_MS 8000
#define FUZZ_WAIT_ILL_MS 1000
/* How long an event stream is listened to after its headers. */
#define FUZZ_SSE_MS 30

static struct {
    pthread_once_t once;
    pthread_t thread;
    daemon_opts opts;
    char dir[256];
    int port;
    sqlite3 *db; /* a read-only view of the store, for the state property */
} G = {.once = PTHREAD_ONCE_INIT};

static void *daemon_thread(void *arg)
{
    (void)arg;
    daemon_run(&G.opts);
    return NULL;
}

/* The daemon's listening port: the one listening TCP socket of this process. */
static int find_port(void)
{
    for (int fd = 3; fd < 4096; fd++) {
        int on = 0;
        socklen_t l = sizeof on;
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &l) != 0 || !on)
            continue;
        struct sockaddr_in a;
        l = sizeof a;
        if (getsockname(fd, (struct sockaddr *)&a, &l) == 0 && a.sin_family == AF_INET)
            return ntohs(a.sin_port);
    }
    return 0;
}

static void remove_dir(void)
{
    static const char *files[] = {"anneald.db", "anneald.db-wal", "anneald.db-shm",
                                  "anneald.db.lock"};
    char p[320];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", G.dir, files[i]);
        unlink(p);
    }
    rmdir(G.dir);
}

/* At exit: the daemon is stopped as systemd stops it (SIGTERM, caught by its loop), so its
 * shutdown path runs too and the leak check sees a stopped daemon. */
static void stop_daemon(void)
{
    if (G.db)
        sqlite3_close(G.db);
    G.db = NULL;
    kill(getpid(), SIGTERM);
    pthread_join(G.thread, NULL);
    remove_dir();
}

static void start_daemon(void)
{
    options_defaults(&G.opts);
    snprintf(G.opts.host, sizeof G.opts.host, "127.0.0.1");
    G.opts.port = 0;
    G.opts.workers = 0;
    G.opts.log_level = LOG_ERROR;
    G.opts.max_body_json = FUZZ_MAX_JSON;
    G.opts.max_body_dataset = FUZZ_MAX_DATASET;
    snprintf(G.opts.token, sizeof G.opts.token, "%s", FUZZ_TOKEN);
    const char *tmp = getenv("TMPDIR");
    snprintf(G.dir, sizeof G.dir, "%s/anneald-fuzz-http-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    FUZZ_CHECK(mkdtemp(G.dir) != NULL);
    snprintf(G.opts.db, sizeof G.opts.db, "%s/anneald.db", G.dir);
    FUZZ_CHECK(pthread_create(&G.thread, NULL, daemon_thread, NULL) == 0);
    for (int i = 0; i < 2000 && !(G.port = find_port()); i++)
        usleep(5000);
    FUZZ_CHECK(G.port > 0);
    FUZZ_CHECK(sqlite3_open_v2(G.opts.db, &G.db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
    sqlite3_busy_timeout(G.db, 5000);
    atexit(stop_daemon);
}

/* What the stored data looks like, as one string (jobs with their states, data sets,
 * checkpoints): equal strings mean nothing visible changed. */
static void store_print(char *out, size_t size)
{
    static const char q[] =
        "SELECT (SELECT count(*) || ':' || coalesce(sum(num * 7 + state), 0) || ':' || "
        "        coalesce(max(num), 0) || ':' || coalesce(sum(length(spec)), 0) FROM jobs)"
        " || '/' || (SELECT count(*) || ':' || coalesce(sum(num), 0) || ':' || "
        "        coalesce(sum(rows), 0) FROM datasets)"
        " || '/' || (SELECT count(*) FROM checkpoints)";
    sqlite3_stmt *st = NULL;
    out[0] = '\0';
    FUZZ_CHECK(sqlite3_prepare_v2(G.db, q, -1, &st, NULL) == SQLITE_OK);
    FUZZ_CHECK(sqlite3_step(st) == SQLITE_ROW);
    snprintf(out, size, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
}

/* ---- the request ---- */

typedef struct span {
    const char *p;
    size_t n;
} span;

/* The next field up to a NUL (or the end); *more says whether a NUL ended it. */
static span next_field(const uint8_t **pos, const uint8_t *end, int *more)
{
    span s = {(const char *)*pos, 0};
    const uint8_t *z = memchr(*pos, 0, (size_t)(end - *pos));
    *more = z != NULL;
    if (!z)
        z = end;
    s.n = (size_t)(z - *pos);
    *pos = z < end ? z + 1 : end;
    return s;
}

static int is_tchar(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int all_tchars(span s)
{
    if (!s.n)
        return 0;
    for (size_t i = 0; i < s.n; i++)
        if (!is_tchar((unsigned char)s.p[i]))
            return 0;
    return 1;
}

typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *d, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 1024;
        while (c < b->n + n + 1)
            c *= 2;
        b->p = realloc(b->p, c);
        FUZZ_CHECK(b->p != NULL);
        b->cap = c;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void puts_(buf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* Appends the header lines; returns 1 when they are all well-formed "Name: value" lines that
 * leave the framing to us, and sets *framing when they give Content-Length or
 * Transfer-Encoding themselves. */
static int put_headers(buf *b, span h, int *framing)
{
    int ok = 1;
    size_t i = 0;
    *framing = 0;
    while (i < h.n) {
        const char *line = h.p + i;
        const char *nl = memchr(line, '\n', h.n - i);
        size_t len = nl ? (size_t)(nl - line) : h.n - i;
        i += len + (nl ? 1 : 0);
        if (len && line[len - 1] == '\r')
            len--;
        if (!len)
            continue;
        const char *colon = memchr(line, ':', len);
        span name = {line, colon ? (size_t)(colon - line) : 0};
        if (!colon || !all_tchars(name))
            ok = 0;
        for (size_t k = 0; k < len; k++) {
            unsigned char c = (unsigned char)line[k];
            if ((c < 0x20 && c != '\t') || c == 0x7f || c == '\r')
                ok = 0;
        }
        static const char *framing_names[] = {"content-length", "transfer-encoding"};
        static const char *ours[] = {"host", "connection", "upgrade", "expect", "te", "trailer"};
        for (size_t k = 0; colon && k < 2; k++)
            if (name.n == strlen(framing_names[k]) && !strncasecmp(name.p, framing_names[k], name.n))
                *framing = 1;
        for (size_t k = 0; colon && k < sizeof ours / sizeof ours[0]; k++)
            if (name.n == strlen(ours[k]) && !strncasecmp(name.p, ours[k], name.n))
                ok = 0;
        put(b, line, len);
        puts_(b, "\r\n");
    }
    return ok;
}

/* ---- the response ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct response {
    int status;        /* final status; 0 = none */
    int complete;      /* the whole body arrived */
    const char *body;  /* decoded body (into `dechunked` or the raw buffer) */
    size_t body_len;
    char ctype[128];
    int sse;
    int by_close;      /* no Content-Length nor chunks: the body ends with the connection */
    buf dechunked;
} response;

/* A header's value in a header block (case-insensitive name), copied into out. */
static int header_value(const char *head, size_t head_len, const char *name, char *out,
                        size_t size)
{
    size_t nl = strlen(name);
    const char *p = head, *end = head + head_len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        if ((size_t)(eol - p) > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            size_t n = (size_t)(eol - v);
            while (n && (v[n - 1] == '\r' || v[n - 1] == ' '))
                n--;
            snprintf(out, size, "%.*s", (int)n, v);
            return 1;
        }
        p = eol + 1;
    }
    return 0;
}

/* Decodes a chunked body; returns 1 when its last chunk arrived. */
static int dechunk(const char *p, size_t n, buf *out)
{
    size_t i = 0;
    for (;;) {
        const char *eol = memchr(p + i, '\n', n - i);
        if (!eol)
            return 0;
        char *end = NULL;
        unsigned long long len = strtoull(p + i, &end, 16);
        if (end == p + i)
            return 0;
        i = (size_t)(eol - p) + 1;
        if (len == 0)
            return 1;
        if (len > n - i || n - i - len < 2)
            return 0;
        put(out, p + i, (size_t)len);
        i += (size_t)len + 2;
    }
}

/* Parses what arrived: interim 1xx answers are skipped. Returns 1 once the response is whole
 * (or, for an event stream, once its headers are in). */
static int parse_response(buf *raw, int head_only, response *r)
{
    const char *p = raw->p;
    size_t n = raw->n;
    for (;;) {
        const char *eoh = p ? memmem(p, n, "\r\n\r\n", 4) : NULL;
        if (!eoh)
            return 0;
        size_t hl = (size_t)(eoh - p) + 4;
        FUZZ_CHECK(n >= 12 && memcmp(p, "HTTP/1.", 7) == 0 && p[8] == ' ');
        int st = atoi(p + 9);
        if (st >= 100 && st < 200) {
            p += hl;
            n -= hl;
            continue;
        }
        r->status = st;
        r->ctype[0] = '\0';
        header_value(p, hl, "Content-Type", r->ctype, sizeof r->ctype);
        r->sse = strncmp(r->ctype, "text/event-stream", 17) == 0;
        const char *b = p + hl;
        size_t bl = n - hl;
        char v[64];
        if (head_only || st == 204 || st == 304) {
            r->body = b;
            r->body_len = 0;
            r->complete = 1;
            return 1;
        }
        if (header_value(p, hl, "Transfer-Encoding", v, sizeof v) && !strcasecmp(v, "chunked")) {
            r->dechunked.n = 0;
            r->complete = dechunk(b, bl, &r->dechunked);
            r->body = r->dechunked.p ? r->dechunked.p : "";
            r->body_len = r->dechunked.n;
            return r->complete || r->sse;
        }
        if (header_value(p, hl, "Content-Length", v, sizeof v)) {
            unsigned long long want = strtoull(v, NULL, 10);
            r->body = b;
            r->body_len = bl < want ? bl : (size_t)want;
            r->complete = bl >= want;
            return r->complete || r->sse;
        }
        r->body = b;
        r->body_len = bl;
        r->by_close = 1;
        return r->sse;
    }
}

/* connect() to the daemon, through what is this harness's and not the server's:
 * - EADDRNOTAVAIL: the daemon closes first on many answers, so its side of each connection
 *   waits in TIME_WAIT for a minute holding our port, and at hundreds of inputs a second the
 *   loopback's 28,000 ports run out until some are released;
 * - EINTR: libFuzzer's timer (SIGALRM, -timeout) interrupts a connect that waits for a place
 *   in the listen queue; the connection goes on, and its outcome is read once it is writable.
 * Any other failure (a refusal: the daemon stopped listening) is the server's, reported. */
static int connect_loopback(int fd, const struct sockaddr_in *a)
{
    for (int tries = 0; tries < 12000; tries++) {
        if (connect(fd, (const struct sockaddr *)a, sizeof *a) == 0)
            return 0;
        if (errno == EADDRNOTAVAIL) {
            usleep(10000);
            continue;
        }
        if (errno == EINTR || errno == EALREADY || errno == EINPROGRESS) {
            struct pollfd pf = {fd, POLLOUT, 0};
            int pr = poll(&pf, 1, FUZZ_WAIT_MS);
            if (pr < 0 && errno == EINTR)
                continue; /* connect() again says EALREADY, or EISCONN once done */
            if (pr <= 0) {
                if (pr == 0)
                    errno = ETIMEDOUT;
                break;
            }
            int err = 0;
            socklen_t el = sizeof err;
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
                break;
            if (err == 0)
                return 0;
            errno = err;
            break;
        }
        if (errno == EISCONN)
            return 0;
        break;
    }
    fprintf(stderr, "connect: %s\n", strerror(errno));
    return -1;
}

/* Sends the request and reads the answer until it is whole, the server closes, the size cap
 * or the deadline. Returns 1 when the deadline passed with the response incomplete. */
static int exchange(const buf *req, int half_close, int head_only, buf *raw, response *r)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    FUZZ_CHECK(fd >= 0);
    /* Closing with a reset leaves no TIME_WAIT behind: thousands of connections a second
     * would otherwise use up the loopback's ports. */
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)G.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    FUZZ_CHECK(connect_loopback(fd, &a) == 0);
    int64_t deadline = now_ms() + (half_close ? FUZZ_WAIT_ILL_MS : FUZZ_WAIT_MS), sse_end = 0;
    size_t sent = 0;
    int timed_out = 0;
    while (sent < req->n) { /* the server may answer and close before reading it all */
        ssize_t w = send(fd, req->p + sent, req->n - sent, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        sent += (size_t)w;
    }
    if (half_close)
        shutdown(fd, SHUT_WR);
    for (;;) {
        if (parse_response(raw, head_only, r)) {
            if (!r->sse || r->complete)
                break;
            if (!sse_end)
                sse_end = now_ms() + FUZZ_SSE_MS;
        }
        int64_t left = (sse_end ? sse_end : deadline) - now_ms();
        if (left <= 0) {
            timed_out = !sse_end;
            break;
        }
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, (int)left) <= 0)
            continue;
        char chunk[65536];
        ssize_t got = recv(fd, chunk, sizeof chunk, 0);
        if (got <= 0) {
            parse_response(raw, head_only, r);
            if (r->status && r->by_close)
                r->complete = 1; /* a body delimited by the close ends here */
            break;
        }
        put(raw, chunk, (size_t)got);
        if (raw->n > FUZZ_MAX_RESPONSE) {
            parse_response(raw, head_only, r);
            r->complete = 0;
            break;
        }
    }
    if (r->sse) { /* an ordinary close, so the daemon does not log a reset stream */
        struct linger soft = {0, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &soft, sizeof soft);
    }
    close(fd);
    return timed_out;
}

/* ---- properties ---- */

static void check_error_body(const response *r)
{
    FUZZ_CHECK(strncmp(r->ctype, "application/json", 16) == 0);
    cJSON *j = cJSON_ParseWithLength(r->body, r->body_len);
    FUZZ_CHECK(j != NULL);
    cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    FUZZ_CHECK(cJSON_IsObject(e));
    cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
    cJSON *msg = cJSON_GetObjectItemCaseSensitive(e, "message");
    cJSON *field = cJSON_GetObjectItemCaseSensitive(e, "field");
    FUZZ_CHECK(cJSON_IsString(code) && code->valuestring[0]);
    FUZZ_CHECK(cJSON_IsString(msg) && msg->valuestring[0]);
    FUZZ_CHECK(field && (cJSON_IsString(field) || cJSON_IsNull(field)));
    cJSON_Delete(j);
}

static void check_sse(const response *r)
{
    const char *p = r->body, *end = r->body + r->body_len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            break; /* a line still arriving when we stopped listening */
        size_t n = (size_t)(nl - p);
        FUZZ_CHECK(n == 0 || p[0] == ':' || !strncmp(p, "data:", 5) || !strncmp(p, "id:", 3) ||
                   !strncmp(p, "event:", 6) || !strncmp(p, "retry:", 6));
        p = nl + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pthread_once(&G.once, start_daemon);
    const uint8_t *pos = data, *end = data + size;
    int more = 1;
    span method = {"GET", 3}, target = {"/", 1}, headers = {"", 0}, body = {"", 0};
    span f = next_field(&pos, end, &more);
    if (f.n)
        method = f;
    if (more) {
        f = next_field(&pos, end, &more);
        if (f.n)
            target = f;
    }
    if (more)
        headers = next_field(&pos, end, &more);
    if (more)
        body = (span){(const char *)pos, (size_t)(end - pos)};

    int framing = 0;
    buf req = {0};
    put(&req, method.p, method.n);
    puts_(&req, " ");
    put(&req, target.p, target.n);
    puts_(&req, " HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    int good = all_tchars(method) && target.p[0] == '/';
    for (size_t i = 0; i < target.n; i++)
        if ((unsigned char)target.p[i] <= 0x20 || (unsigned char)target.p[i] >= 0x7f)
            good = 0;
    good &= put_headers(&req, headers, &framing);
    good &= !framing;
    if (!framing) {
        char cl[64];
        snprintf(cl, sizeof cl, "Content-Length: %zu\r\n", body.n);
        puts_(&req, cl);
    }
    puts_(&req, "Connection: close\r\n\r\n");
    put(&req, body.p, body.n);

    int head_only = method.n == 4 && memcmp(method.p, "HEAD", 4) == 0;
    char before[256], after[256];
    store_print(before, sizeof before);
    buf raw = {0};
    response r;
    memset(&r, 0, sizeof r);
    int timed_out = exchange(&req, !good, head_only, &raw, &r);
    store_print(after, sizeof after);

    if (r.status)
        FUZZ_CHECK((r.status >= 200 && r.status < 300) || (r.status >= 400 && r.status < 600));
    if (good) {
        FUZZ_CHECK(!timed_out);
        FUZZ_CHECK(r.status != 0);
        if (r.status >= 400 && r.complete && !head_only)
            check_error_body(&r);
        if (r.status < 300 && r.complete && !head_only &&
            strncmp(r.ctype, "application/json", 16) == 0) {
            cJSON *j = cJSON_ParseWithLength(r.body, r.body_len);
            FUZZ_CHECK(j != NULL);
            cJSON_Delete(j);
        }
        if (r.sse)
            check_sse(&r);
    }
    int changes = r.status >= 200 && r.status < 300 &&
                  ((method.n == 4 && !memcmp(method.p, "POST", 4)) ||
                   (method.n == 6 && !memcmp(method.p, "DELETE", 6)));
    if (!changes)
        FUZZ_CHECK(strcmp(before, after) == 0);
    free(req.p);
    free(raw.p);
    free(r.dechunked.p);
    return 0;
}
