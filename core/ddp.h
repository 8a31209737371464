/* ddp — the arithmetic of data-parallel steps that every rank must do in the same order, so
 * that a job gives the same bits at any world size (DESIGN.md, "State and determinism" and
 * "beyond one machine"). Pure: the exchange itself (MPI) lives in the rank program.
 *
 * Rank r of W trains micro-batches r·gas … r·gas + gas − 1 of every global batch of W·gas
 * micro-batches and sums their gradients in the engine's pairwise tree (a binary counter).
 * When gas is a power of two that local sum is one whole subtree of the tree a single process
 * builds over all W·gas micro-batches, so continuing the same binary counter over the W
 * ranks' sums, in rank order, gives the single process's sum bit for bit. */
#ifndef ANNEALD_DDP_H
#define ANNEALD_DDP_H

#include <stddef.h>

/* Sums parts[0..W) element by element in the binary-counter order (earlier + later while a
 * slot is taken; leftovers from the highest slot down). The sum lands in parts[0]; the other
 * parts are overwritten. W >= 1, at most 2^30. */
void ddp_ordered_sum(float *const *parts, int W, size_t n);

/* The slice [*lo, *hi) of a flat buffer of n elements that rank r of W owns (ZeRO-1's shard
 * of the optimizer state, and the shard each rank sums): contiguous, in rank order, sizes
 * differing by at most one. */
void ddp_shard(size_t n, int W, int r, size_t *lo, size_t *hi);

#endif
