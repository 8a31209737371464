/* settings — what the service runs with: its flags once parsed (daemon/options.c parses them,
 * API.md "Command line"). A plain struct every part of the service reads and none writes
 * after start. */
#ifndef ANNEALD_SETTINGS_H
#define ANNEALD_SETTINGS_H

#include <stddef.h>
#include <stdint.h>

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

#endif
