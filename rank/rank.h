/* rank — what the rank program's files share (rank/rank.c: the command line and the
 * standalone run; rank/comm.c: the MPI exchange; rank/rankd.c: a run the daemon supervises
 * over its Unix socket). Built with mpicc only. */
#ifndef ANNEALD_RANK_H
#define ANNEALD_RANK_H

#include <stddef.h>

typedef struct comm_ctx {
    int world, rank;
    int *scounts, *sdispls, *rcounts, *rdispls, *gcounts, *gdispls;
    float *recv;      /* [world × own slice] */
    float **parts;    /* [world] pointers into recv */
    size_t n;         /* gradient length the arrays are for */
    double comm_s;    /* seconds spent in the exchange */
} comm_ctx;

/* Sizes the exchange buffers for a flat gradient of n elements. 0 or -ENOMEM/-EOVERFLOW. */
int comm_prepare(comm_ctx *c, size_t n);
void comm_free(comm_ctx *c);

/* core/train.h's train_reduce_fn and train_gather_fn over MPI_COMM_WORLD. */
int comm_reduce(void *ctx, float *grad, size_t n, const double *mine, int gas, double *losses);
int comm_gather(void *ctx, const float *mine, float *full, size_t n, int to_all);

/* A job the daemon supervises: `anneald-rank --job ID --socket PATH` (rank/rankd.c). Rank 0
 * connects to the daemon's socket; returns the process's exit code. */
int rankd_run(int rank, int world, const char *job, const char *sock);

#endif
