/* mpirun — what the daemon knows of Open MPI for jobs with world_size > 1: its options
 * (--mpirun, --mpi-hosts), finding the launcher and the rank program, and whether a job with
 * W ranks can run here (checked at submit, so a job that cannot run is refused at once).
 *
 * The daemon never links MPI: it only starts Open MPI's launcher, which starts the rank
 * program (anneald-rank, built with mpicc) on every rank. */
#ifndef ANNEALD_MPIRUN_H
#define ANNEALD_MPIRUN_H

#include <stddef.h>

#include "jobs/settings.h"

/* The rank program's file name, looked for next to the daemon's own executable. */
#define MPIRUN_RANK_PROGRAM "anneald-rank"

/* Parses --mpirun PATH and --mpi-hosts FILE|LIST into `o`. Returns 1 when `name` was one of
 * them and its value is good, 0 when `name` is another flag, -EINVAL with a one-line message
 * in `msg` for a bad value. */
int mpirun_option(const char *name, const char *val, daemon_opts *o, char *msg, size_t msgsz);

/* Finds the launcher `mpirun` (a path, or a name looked up on $PATH) as an executable file:
 * 0 with its path in `out`, or -ENOENT. */
int mpirun_find(const char *mpirun, char *out, size_t outsz);

/* Finds the rank program next to the executable at `self` (the daemon's own path): 0 with
 * its path in `out`, or -ENOENT. */
int mpirun_find_rank(const char *self, char *out, size_t outsz);

/* Whether a job of `world_size` ranks can run under the options `o`: 0 (always for one rank),
 * or -ENOENT with a message for the job's "world_size" field that says what is missing and
 * how to get it. */
int mpirun_job_check(const daemon_opts *o, int world_size, char *msg, size_t msgsz);

/* `anneald rank ARGS…`: replaces this process with the rank program next to the daemon's
 * executable, given ARGS (argv[1..argc)), so `mpirun -n W anneald rank SPEC.json …` works
 * like `mpirun -n W anneald-rank SPEC.json …`. Returns 1 with a message on stderr only when
 * the rank program is missing or cannot be started. */
int mpirun_exec_rank(int argc, char **argv);

#endif
