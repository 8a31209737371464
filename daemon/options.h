/* options — the daemon's command-line flags (API.md, "Command line"), parsed into one struct.
 *
 * Parsing only: no I/O beyond reading the token file, no exit(). main.c decides what a bad
 * flag means (exit status 2). */
#ifndef ANNEALD_OPTIONS_H
#define ANNEALD_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

#include "util/log.h"

#define OPT_PATH_MAX 1024

/* Address space the daemon takes besides what its budget counts (code, libraries, thread
 * stacks, allocator arenas), subtracted from an address-space limit for the default
 * --max-memory. */
#define OPT_BASE_VM ((uint64_t)384 << 20)


typedef struct daemon_opts {
    char host[256];              /* address to bind, numeric IPv4 or IPv6 ("127.0.0.1") */
    int port;                    /* TCP port; 0 = let the kernel pick a free one */
    char db[OPT_PATH_MAX];       /* SQLite store path */
    int workers;                 /* jobs trained at once (>= 1) */
    char token_file[OPT_PATH_MAX]; /* "" = no token */
    char token[512];             /* bearer token read from token_file ("" = none) */
    int log_level;               /* enum log_level */
    char web_root[OPT_PATH_MAX]; /* "" = serve the embedded dashboard */
    size_t max_body_json;        /* bytes; larger JSON bodies get 413 */
    size_t max_body_dataset;     /* bytes; larger dataset uploads get 413 */
    char allow_hosts[16][256];   /* --allow-host: more names the Host header may carry */
    int nallow_hosts;
    uint64_t max_job_memory;     /* bytes a job may need (core/memest.h); larger specs get 422;
                                    0 = no cap */
    uint64_t max_memory;         /* bytes the whole daemon may commit to jobs and requests;
                                    0 = no budget */
    uint64_t min_free_disk;      /* bytes; training pauses below this; 0 = off */
    int max_queued;              /* jobs waiting at most; more are refused with 503 */
    char mpirun[OPT_PATH_MAX];   /* --mpirun: Open MPI's launcher for world_size > 1 jobs, a
                                    path or a name looked up on PATH (default "mpirun") */
    char mpi_hostfile[OPT_PATH_MAX]; /* --mpi-hosts FILE: mpirun --hostfile; "" = none */
    char mpi_hostlist[1024];     /* --mpi-hosts H[:N],…: mpirun --host; "" = this machine */
} daemon_opts;

/* Fills `o` with the defaults: 127.0.0.1:8470, anneald.db, one worker per core, info logs,
 * 1 MiB JSON bodies, 256 MiB datasets, jobs of up to half the physical memory. */
void options_defaults(daemon_opts *o);

/* Parses the service flags in argv[1..argc-1] into `o` (which holds the defaults). Returns 0,
 * 1 when --help or --version was asked for (`*what` = "help" / "version"), or -EINVAL with a
 * one-line message in `msg`. Reads the token file when one is named (trailing whitespace is
 * dropped; an empty or unreadable file is an error). */
int options_parse(int argc, char **argv, daemon_opts *o, const char **what, char *msg,
                  size_t msgsz);

/* 1 when `host` is a loopback address (127.0.0.0/8, ::1, "localhost"). */
int options_is_loopback(const char *host);

/* The usage text printed by --help. */
const char *options_usage(void);

#endif
