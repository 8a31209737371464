/* rankproc — mpirun and the ranks of one run, as processes, and the framed socket to rank 0
 * (rankproc.c). Worker thread. */
#ifndef ANNEALD_RANKPROC_H
#define ANNEALD_RANKPROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/rankwire.h"
#include "jobs/settings.h"

typedef struct rank_procs {
    pid_t pid;                 /* mpirun, leader of its session; negated once reaped; 0 none */
    int status;                /* its wait status once reaped */
    int lfd;                   /* the listening socket; -1 none */
    char dir[64], sock[96], log[96];
} rank_procs;

/* Removes the private directories (their socket and mpirun log) that daemons killed before
 * they could clean up left in /tmp: those named with a pid no process has, owned by this
 * user. Returns how many went. For the daemon's start. */
int rankproc_sweep_stale(void);

/* Makes the private directory (/tmp/anneald-ranks-PID-XXXXXX) and the listening socket
 * (non-blocking). 0 or -errno. */
int rankproc_socket(rank_procs *p);

/* Starts `mpirun -np world … anneald-rank --job id --socket p->sock` in a new session, its
 * output in p->log; as root with Open MPI's allow-run-as-root variables (logged). 0, or a
 * negative errno with the message for the job in msg. */
int rankproc_spawn(rank_procs *p, const daemon_opts *o, int world, const char *id, char *msg,
                   size_t msgsz);

/* 1 once mpirun has exited (reaped, p->status set), else 0; block: wait for it. */
int rankproc_reap(rank_procs *p, int block);

/* Ends mpirun and every rank of its session (SIGKILL: stopped ones too) and reaps mpirun. */
void rankproc_end(rank_procs *p);

/* The end of mpirun's output on one line, for messages (rankproc_tidy). */
void rankproc_tail(const rank_procs *p, char *out, size_t size);

/* mpirun's output `in` as one line into out (size bytes with its NUL): Open MPI frames its
 * messages with rules of dashes and wraps them over lines; the rules and blank lines go,
 * lines are joined with one space, and runs of blanks become one. */
void rankproc_tidy(const char *in, char *out, size_t size);

/* A frame being read from rank 0 (core/rankwire.h). */
typedef struct frame_in {
    unsigned char hdr[RW_HEADER];
    size_t nh;
    int type;
    uint32_t len;
    unsigned char *buf;
    size_t have;
} frame_in;

/* Sends one frame whose payload is a then b (either may be empty): 0, -EPIPE, or -ETIMEDOUT
 * when rank 0 takes nothing for 30 s. */
int rankproc_send(int fd, int type, const void *a, size_t alen, const void *b, size_t blen);

/* Reads what is there of the next frame from rank 0 without waiting: 1 with a whole one in f
 * (the caller takes f->buf), 0 when more is to come, -EPIPE at the end of the stream, -EPROTO
 * (a header that does not parse, or a type only the daemon sends), -ENOMEM. */
int rankproc_read(int fd, frame_in *f);

/* Closes the socket and removes the directory. */
void rankproc_cleanup(rank_procs *p);

#endif
