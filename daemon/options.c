/* options — the daemon's command-line flags. */
#include "daemon/options.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/cfgval.h"
#include "core/memest.h"
#include "jobs/mpirun.h"
#include "store/store.h"

void options_defaults(daemon_opts *o)
{
    memset(o, 0, sizeof *o);
    snprintf(o->host, sizeof o->host, "127.0.0.1");
    o->port = 8470;
    snprintf(o->db, sizeof o->db, "anneald.db");
    snprintf(o->mpirun, sizeof o->mpirun, "mpirun");
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    o->workers = n > 0 ? (int)n : 1;
    o->log_level = LOG_INFO;
    o->max_body_json = (size_t)1 << 20;
    o->max_body_dataset = (size_t)256 << 20;
    /* Half the machine: the daemon, the page cache and a second job need the rest. */
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    o->max_job_memory = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz / 2 : 0;
    /* The whole daemon: 70 % of the machine leaves the kernel and page cache their share;
     * under an address-space limit (ulimit -v), 70 % of what the limit leaves after the
     * daemon's own code, thread stacks and allocator arenas (OPT_BASE_VM). */
    uint64_t ram = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : 0;
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        uint64_t as = (uint64_t)rl.rlim_cur;
        uint64_t usable = as > OPT_BASE_VM ? as - OPT_BASE_VM : as / 4;
        if (ram == 0 || usable < ram)
            ram = usable;
    }
    o->max_memory = ram / 10 * 7;
    o->min_free_disk = (uint64_t)256 << 20;
    o->max_queued = 10000;
}

static int parse_long(const char *s, long long lo, long long hi, long long *out);

/* The flags that bound what the daemon takes on (memory, disk, queue). 1 when `name` is one
 * of them (parsed into o, or -EINVAL with msg), 0 when it is another flag. */
static int parse_bound(const char *name, const char *val, daemon_opts *o, char *msg,
                       size_t msgsz)
{
    uint64_t *size = strcmp(name, "--max-memory") == 0      ? &o->max_memory
                     : strcmp(name, "--min-free-disk") == 0 ? &o->min_free_disk
                                                            : NULL;
    if (size) {
        if (mem_parse_size(val, size)) {
            snprintf(msg, msgsz, "%s expects a size in bytes with an optional K, M, G or T "
                     "suffix (e.g. 512M, 4G; 0 = off), got '%s'", name, val);
            return -EINVAL;
        }
        /* a budget that no job, upload or request body could fit in is a typo (4G → 4) */
        if (size == &o->max_memory && *size > 0 && *size < ((uint64_t)1 << 20)) {
            snprintf(msg, msgsz, "--max-memory %s is less than 1M, too little for any job or "
                     "request (0 lifts the budget)", val);
            return -EINVAL;
        }
        return 1;
    }
    if (strcmp(name, "--max-queued") == 0) {
        long long v;
        if (parse_long(val, 1, 1000000, &v)) {
            snprintf(msg, msgsz, "--max-queued expects a whole number in 1..1000000, got '%s'",
                     val);
            return -EINVAL;
        }
        o->max_queued = (int)v;
        return 1;
    }
    return 0;
}

const char *options_usage(void)
{
    return "usage: anneald [--listen HOST:PORT] [--db PATH] [--workers N] [--token-file PATH]\n"
           "               [--log-level error|warn|info|debug] [--web-root DIR]\n"
           "               [--max-body-json BYTES] [--max-body-dataset BYTES]\n"
           "               [--max-job-memory BYTES] [--max-memory BYTES]\n"
           "               [--min-free-disk BYTES] [--max-queued N] [--allow-host NAMES]\n"
           "               [--mpirun PATH] [--mpi-hosts FILE|LIST]\n"
           "       anneald check FILE|- [--max-job-memory BYTES]\n"
           "       anneald preview FILE|- [--steps N] [--every N | --max-points N]\n"
           "                              [--param-group-lr X]... [--format json|csv]\n"
           "       anneald train JOB.json|- [--steps N] [--metrics-csv F] [--weights-json F]\n"
           "                              [--save F] [--resume F]\n"
           "       anneald lr-find FILE|- [--min-lr X] [--max-lr X] [--steps N] [--stop-factor F]\n"
           "                              [--mode exponential|linear] [--csv F] [--job]\n"
           "       anneald generate JOB.json --resume F [--prompt TEXT] [--max-tokens N]\n"
           "                              [--temperature T] [--top-k K] [--seed S]\n"
           "       mpirun -n W anneald rank JOB.json [--steps N] [--weights-json F]\n"
           "                              [--metrics-csv F] [--save F] [--resume F]\n"
           "       anneald --help | --version\n"
           "       anneald check|preview|train|lr-find|generate --help   (each command's own options)\n"
           "\n"
           "  --listen HOST:PORT   address to serve on (default 127.0.0.1:8470; port 0 = any free)\n"
           "  --db PATH            SQLite store, created if missing (default anneald.db)\n"
           "  --workers N          jobs trained at once (default: number of cores)\n"
           "  --token-file PATH    require 'Authorization: Bearer <token>' (required off loopback)\n"
           "  --allow-host NAMES   host names (comma-separated) the Host header may carry besides\n"
           "                       the listening address and localhost (e.g. a proxy's name)\n"
           "  --log-level LEVEL    error, warn, info (default) or debug\n"
           "  --web-root DIR       serve the dashboard from DIR instead of the built-in copy\n"
           "                       (its files only: no symlink out of DIR is followed)\n"
           "  --max-body-json N    largest JSON request body in bytes (suffixes K, M, G, T;\n"
           "                       default 1M)\n"
           "  --max-body-dataset N largest dataset upload in bytes (suffixes K, M, G, T; default\n"
           "                       and most 256M)\n"
           "  --max-job-memory N   reject jobs estimated to need more memory (suffixes K, M, G, T;\n"
           "                       default half the physical memory; 0 = no cap)\n"
           "  --max-memory N       memory budget of the whole daemon: running jobs, checkpoints,\n"
           "                       restores and requests (default 70 % of physical memory; 0 = off)\n"
           "  --min-free-disk N    pause training when the store's file system has less free\n"
           "                       (default 256M; 0 = off); /healthz warns below twice that\n"
           "  --max-queued N       jobs waiting at most; more get 503 (default 10000)\n"
           "  --mpirun PATH        Open MPI's launcher for jobs with world_size > 1 (default:\n"
           "                       mpirun on PATH)\n"
           "  --mpi-hosts FILE|LIST  where ranks run: an Open MPI hostfile, or host[:slots]\n"
           "                       names separated by commas (default: this machine)\n";
}

int options_is_loopback(const char *host)
{
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
           strcmp(host, "localhost") == 0;
}

/* Parses a whole decimal number in [lo, hi]: digits and an optional sign, nothing around
 * them (strtoll alone would take leading blanks). */
static int parse_long(const char *s, long long lo, long long hi, long long *out)
{
    if (!s || !*s || !(isdigit((unsigned char)s[0]) || s[0] == '-' || s[0] == '+'))
        return -EINVAL;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -EINVAL;
    *out = v;
    return 0;
}

static int parse_listen(const char *s, daemon_opts *o)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s)
        return -EINVAL;
    size_t hl = (size_t)(colon - s);
    const char *h = s;
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') { /* [::1]:8470 */
        h++;
        hl -= 2;
    } else if (memchr(h, ':', hl)) {
        /* "::1:8470" is also the address ::1:8470 with no port: IPv6 takes brackets */
        return -EINVAL;
    }
    if (hl == 0 || hl >= sizeof o->host)
        return -EINVAL;
    long long port;
    if (parse_long(colon + 1, 0, 65535, &port))
        return -EINVAL;
    /* The daemon binds a numeric address (or "localhost", bound as 127.0.0.1), and names are
     * not resolved: anything else is refused here, before the store is created and threads
     * started, rather than by the bind after them. */
    char host[sizeof o->host];
    unsigned char addr[sizeof(struct in6_addr)];
    memcpy(host, h, hl);
    host[hl] = '\0';
    if (strcmp(host, "localhost") != 0 && inet_pton(AF_INET, host, addr) != 1 &&
        inet_pton(AF_INET6, host, addr) != 1)
        return -EINVAL;
    memcpy(o->host, host, hl + 1);
    o->port = (int)port;
    return 0;
}

static int read_token(daemon_opts *o, char *msg, size_t msgsz)
{
    FILE *f = fopen(o->token_file, "rb");
    if (!f) {
        snprintf(msg, msgsz, "--token-file %s: %s", o->token_file, strerror(errno));
        return -EINVAL;
    }
    /* A directory opens for reading and only the read fails; either is said as such, not
     * taken for an empty file. */
    struct stat st;
    errno = 0;
    int dir = fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode);
    size_t n = dir ? 0 : fread(o->token, 1, sizeof o->token - 1, f);
    int more = !dir && !ferror(f) && fgetc(f) != EOF;
    int err = dir ? EISDIR : ferror(f) ? (errno ? errno : EIO) : 0;
    fclose(f);
    if (err) {
        snprintf(msg, msgsz, "--token-file %s: cannot read it: %s", o->token_file, strerror(err));
        return -EINVAL;
    }
    if (more) {
        snprintf(msg, msgsz, "--token-file %s: a token of at most %zu bytes was expected",
                 o->token_file, sizeof o->token - 1);
        return -EINVAL;
    }
    while (n > 0 && (o->token[n - 1] == '\n' || o->token[n - 1] == '\r' ||
                     o->token[n - 1] == ' ' || o->token[n - 1] == '\t'))
        n--;
    o->token[n] = '\0';
    if (n == 0) {
        snprintf(msg, msgsz, "--token-file %s: the file is empty; a token was expected",
                 o->token_file);
        return -EINVAL;
    }
    /* A header carries no control character, and a space would end the token there. */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)o->token[i];
        if (c <= ' ' || c == 0x7f) {
            snprintf(msg, msgsz, "--token-file %s: the token holds a space or a control "
                     "character (byte %zu): a client could not send it in an Authorization "
                     "header", o->token_file, i + 1);
            return -EINVAL;
        }
    }
    return 0;
}

/* --allow-host NAME[,NAME…]: host names (no port, no scheme) the daemon answers to besides
 * its own address and "localhost", e.g. the name a reverse proxy forwards. */
static int add_allow_hosts(daemon_opts *o, const char *val, char *msg, size_t msgsz)
{
    const char *p = val;
    for (;;) {
        size_t n = strcspn(p, ",");
        int ok = n > 0 && n < sizeof o->allow_hosts[0];
        for (size_t i = 0; ok && i < n; i++) {
            char c = p[i];
            ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '-' || c == '_' || c == ':';
        }
        if (!ok) {
            snprintf(msg, msgsz, "--allow-host expects host names separated by commas (letters, "
                     "digits, '.', '-', '_', and ':' in an IPv6 address; no port or scheme), "
                     "got '%s'", val);
            return -EINVAL;
        }
        if (o->nallow_hosts >= (int)(sizeof o->allow_hosts / sizeof o->allow_hosts[0])) {
            snprintf(msg, msgsz, "--allow-host: at most %d names",
                     (int)(sizeof o->allow_hosts / sizeof o->allow_hosts[0]));
            return -EINVAL;
        }
        memcpy(o->allow_hosts[o->nallow_hosts], p, n);
        o->allow_hosts[o->nallow_hosts][n] = '\0';
        o->nallow_hosts++;
        if (!p[n])
            return 0;
        p += n + 1;
    }
}

int options_parse(int argc, char **argv, daemon_opts *o, const char **what, char *msg,
                  size_t msgsz)
{
    *what = NULL;
    msg[0] = '\0';
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            *what = "help";
            return 1;
        }
        if (strcmp(a, "--version") == 0) {
            *what = "version";
            return 1;
        }
        /* Accept both "--flag value" and "--flag=value". */
        char name[64];
        const char *val = NULL;
        const char *eq = strchr(a, '=');
        if (strncmp(a, "--", 2) != 0) {
            /* a mistyped command (the commands themselves never get here) */
            static const char *const cmds[] = {"check", "preview", "train", "lr-find",
                                               "generate", "rank"};
            const char *near = NULL;
            for (size_t k = 0; k < sizeof cmds / sizeof *cmds && i == 1; k++)
                if (cfg_edit_distance(cmds[k], a) <= 2)
                    near = cmds[k];
            if (i == 1 && a[0] != '-')
                snprintf(msg, msgsz, "unknown command '%s'%s%s%s; the commands are check, "
                         "preview, train, lr-find, generate and rank%s", a,
                         near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "",
                         near ? "" : " (the daemon takes --flags only)");
            else
                snprintf(msg, msgsz, "unexpected argument '%s'", a);
            return -EINVAL;
        }
        if (eq) {
            size_t nl = (size_t)(eq - a);
            if (nl >= sizeof name)
                nl = sizeof name - 1;
            memcpy(name, a, nl);
            name[nl] = '\0';
            val = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", a);
        }
        /* An unknown flag is named as such, before its value is looked for. */
        static const char *const known[] = {"--listen", "--db", "--workers", "--token-file",
                                            "--log-level", "--web-root", "--max-body-json",
                                            "--max-body-dataset", "--max-job-memory",
                                            "--max-memory", "--min-free-disk", "--max-queued",
                                            "--allow-host", "--mpirun", "--mpi-hosts", NULL};
        int is_known = 0;
        for (const char *const *k = known; *k && !is_known; k++)
            is_known = strcmp(*k, name) == 0;
        if (!is_known) {
            snprintf(msg, msgsz, "unknown flag '%s' (see anneald --help)", name);
            return -EINVAL;
        }
        if (!eq && i + 1 < argc)
            val = argv[++i];
        if (!val) {
            snprintf(msg, msgsz, "%s needs a value", name);
            return -EINVAL;
        }
        long long v;
        if (strcmp(name, "--listen") == 0) {
            if (parse_listen(val, o)) {
                snprintf(msg, msgsz, "--listen expects HOST:PORT, HOST a numeric IPv4 or IPv6 "
                         "address (or localhost; IPv6 in brackets: [::1]:8470) and PORT in "
                         "0..65535, got '%s'", val);
                return -EINVAL;
            }
        } else if (strcmp(name, "--db") == 0) {
            if (!*val || strlen(val) >= sizeof o->db) {
                snprintf(msg, msgsz, "--db expects a path, got '%s'", val);
                return -EINVAL;
            }
            snprintf(o->db, sizeof o->db, "%s", val);
        } else if (strcmp(name, "--workers") == 0) {
            if (parse_long(val, 1, 1024, &v)) {
                snprintf(msg, msgsz, "--workers expects a whole number in 1..1024, got '%s'", val);
                return -EINVAL;
            }
            o->workers = (int)v;
        } else if (strcmp(name, "--token-file") == 0) {
            if (!*val || strlen(val) >= sizeof o->token_file) {
                snprintf(msg, msgsz, "--token-file expects a path, got '%s'", val);
                return -EINVAL;
            }
            snprintf(o->token_file, sizeof o->token_file, "%s", val);
        } else if (strcmp(name, "--log-level") == 0) {
            static const char *lv[] = {"error", "warn", "info", "debug"};
            int found = -1;
            for (int k = 0; k < 4; k++)
                if (strcmp(val, lv[k]) == 0)
                    found = k;
            if (found < 0) {
                snprintf(msg, msgsz, "--log-level expects error, warn, info or debug, got '%s'", val);
                return -EINVAL;
            }
            o->log_level = found;
        } else if (strcmp(name, "--web-root") == 0) {
            if (!*val || strlen(val) >= sizeof o->web_root) {
                snprintf(msg, msgsz, "--web-root expects a directory, got '%s'", val);
                return -EINVAL;
            }
            /* checked now: a mistyped root would start and answer every page with a 404 */
            struct stat st;
            char index[sizeof o->web_root + 16];
            snprintf(index, sizeof index, "%s/index.html", val);
            int there = stat(val, &st) == 0;
            int why = there ? 0 : errno;
            if (!there || !S_ISDIR(st.st_mode)) {
                snprintf(msg, msgsz, "--web-root expects a directory, and '%s' is %s", val,
                         there ? "not one" : why == ENOENT || why == ENOTDIR ? "not there"
                                                                             : strerror(why));
                return -EINVAL;
            }
            if (stat(index, &st) != 0 || !S_ISREG(st.st_mode)) {
                snprintf(msg, msgsz, "--web-root '%s' has no index.html: it should hold the "
                         "dashboard's files (web/ of the source tree)", val);
                return -EINVAL;
            }
            snprintf(o->web_root, sizeof o->web_root, "%s", val);
        } else if (strcmp(name, "--max-body-json") == 0 || strcmp(name, "--max-body-dataset") == 0) {
            uint64_t size = 0;
            if (mem_parse_size(val, &size) || size < 1 || size > ((uint64_t)1 << 40)) {
                snprintf(msg, msgsz, "%s expects a size in bytes (>= 1) with an optional K, M, "
                         "G or T suffix (e.g. 64M), got '%s'", name, val);
                return -EINVAL;
            }
            v = (long long)size;
            /* a larger upload would be received whole, then refused by the store */
            if (strcmp(name, "--max-body-dataset") == 0 && v > STORE_DATASET_MAX_BYTES) {
                snprintf(msg, msgsz, "--max-body-dataset %s is more than the %lld bytes "
                         "(256M) of the largest data set the store keeps", val,
                         (long long)STORE_DATASET_MAX_BYTES);
                return -EINVAL;
            }
            if (strcmp(name, "--max-body-json") == 0)
                o->max_body_json = (size_t)v;
            else
                o->max_body_dataset = (size_t)v;
        } else if (strcmp(name, "--allow-host") == 0) {
            if (add_allow_hosts(o, val, msg, msgsz))
                return -EINVAL;
        } else if ((v = mpirun_option(name, val, o, msg, msgsz)) != 0) {
            if (v < 0)
                return -EINVAL;
        } else if ((v = parse_bound(name, val, o, msg, msgsz)) != 0) {
            if (v < 0)
                return -EINVAL;
        } else if (strcmp(name, "--max-job-memory") == 0) {
            if (mem_parse_size(val, &o->max_job_memory)) {
                snprintf(msg, msgsz, "--max-job-memory expects a size in bytes with an optional "
                         "K, M, G or T suffix (e.g. 512M, 4G), got '%s'", val);
                return -EINVAL;
            }
        } else {
            snprintf(msg, msgsz, "unknown flag '%s' (see anneald --help)", name);
            return -EINVAL;
        }
    }
    if (o->token_file[0] && read_token(o, msg, msgsz))
        return -EINVAL;
    return 0;
}
