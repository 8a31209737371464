/* comm — the ranks' MPI exchange (rank.h): the ordered gradient sum and ZeRO-1's gathers. */
#include <errno.h>
#include <stdlib.h>

#include <mpi.h>

#include "core/ddp.h"
#include "rank/rank.h"

int comm_prepare(comm_ctx *c, size_t n)
{
    int W = c->world;
    c->n = n;
    c->scounts = calloc((size_t)W * 6, sizeof(int));
    c->parts = calloc((size_t)W, sizeof *c->parts);
    if (!c->scounts || !c->parts)
        return -ENOMEM;
    c->sdispls = c->scounts + W, c->rcounts = c->scounts + 2 * W;
    c->rdispls = c->scounts + 3 * W, c->gcounts = c->scounts + 4 * W;
    c->gdispls = c->scounts + 5 * W;
    size_t mylo, myhi;
    ddp_shard(n, W, c->rank, &mylo, &myhi);
    size_t mine = myhi - mylo;
    if (n > (size_t)1 << 30)
        return -EOVERFLOW;
    for (int q = 0; q < W; q++) {
        size_t lo, hi;
        ddp_shard(n, W, q, &lo, &hi);
        c->scounts[q] = (int)(hi - lo), c->sdispls[q] = (int)lo;
        c->gcounts[q] = (int)(hi - lo), c->gdispls[q] = (int)lo;
        c->rcounts[q] = (int)mine, c->rdispls[q] = (int)(mine * (size_t)q);
    }
    c->recv = malloc((mine ? mine : 1) * (size_t)W * sizeof(float));
    if (!c->recv)
        return -ENOMEM;
    for (int q = 0; q < W; q++)
        c->parts[q] = c->recv + mine * (size_t)q;
    return 0;
}

void comm_free(comm_ctx *c)
{
    free(c->scounts);
    free(c->parts);
    free(c->recv);
}

int comm_reduce(void *ctx, float *grad, size_t n, const double *mine, int gas, double *losses)
{
    comm_ctx *c = ctx;
    if (n != c->n)
        return -EINVAL;
    double t0 = MPI_Wtime();
    if (MPI_Alltoallv(grad, c->scounts, c->sdispls, MPI_FLOAT, c->recv, c->rcounts, c->rdispls,
                      MPI_FLOAT, MPI_COMM_WORLD) != MPI_SUCCESS)
        return -EIO;
    ddp_ordered_sum(c->parts, c->world, (size_t)c->rcounts[0]);
    if (MPI_Allgatherv(c->recv, c->rcounts[0], MPI_FLOAT, grad, c->gcounts, c->gdispls,
                       MPI_FLOAT, MPI_COMM_WORLD) != MPI_SUCCESS ||
        MPI_Allgather(mine, gas, MPI_DOUBLE, losses, gas, MPI_DOUBLE, MPI_COMM_WORLD) !=
            MPI_SUCCESS)
        return -EIO;
    c->comm_s += MPI_Wtime() - t0;
    return 0;
}

/* ZeRO stage 1's gathers (core/train.h, train_gather_fn): the slices of a flat buffer of n
 * elements, laid out as ddp_shard lays them out (the gradient's layout, so the same counts). */
int comm_gather(void *ctx, const float *mine, float *full, size_t n, int to_all)
{
    comm_ctx *c = ctx;
    if (n != c->n)
        return -EINVAL;
    double t0 = MPI_Wtime();
    int r;
    if (to_all && full && mine == full + c->gdispls[c->rank])
        r = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, full, c->gcounts, c->gdispls,
                           MPI_FLOAT, MPI_COMM_WORLD);
    else if (to_all)
        r = MPI_Allgatherv(mine, c->gcounts[c->rank], MPI_FLOAT, full, c->gcounts, c->gdispls,
                           MPI_FLOAT, MPI_COMM_WORLD);
    else
        r = MPI_Gatherv(mine, c->gcounts[c->rank], MPI_FLOAT, full, c->gcounts, c->gdispls,
                        MPI_FLOAT, 0, MPI_COMM_WORLD);
    c->comm_s += MPI_Wtime() - t0;
    return r == MPI_SUCCESS ? 0 : -EIO;
}

