/* gradtree — the pairwise sum of a step's micro-batch gradients (DESIGN.md, "State and
 * determinism"), shared by the mlp/linear trainer (train.c) and the gpt's (train_gpt.c).
 *
 * It works like a binary counter: slot k holds the sum of 2^k leaves; a finished leaf merges
 * into slot k while that slot is taken (earlier + later) and moves up; at the end the slots
 * left are added from the highest down. So any power-of-two run of micro-batches is one
 * subtree, the same on every rank count (core/ddp.h), and floor(log2(leaves)) + 1 buffers,
 * handed between slots by pointer, hold the tree at its fullest: nothing is copied. */
#ifndef ANNEALD_CORE_GRADTREE_H
#define ANNEALD_CORE_GRADTREE_H

#include <stddef.h>
#include <stdint.h>

#define GRADTREE_MAX 40 /* leaves per step < 2^40 */

typedef struct gradtree {
    size_t n;                      /* floats per buffer */
    int nbuf;                      /* buffers in the pool */
    float *pool[GRADTREE_MAX];     /* pool[0] is the caller's (the model's grads); the rest ours */
    float *slot[GRADTREE_MAX];     /* slot k: the sum of 2^k leaves, or NULL */
    float *free_[GRADTREE_MAX];    /* buffers in no slot */
    int nfree;
} gradtree;

/* A tree for up to `leaves` leaves of n floats, `first` being its first buffer. 0, or -ENOMEM
 * (nothing left allocated). */
int gradtree_init(gradtree *t, float *first, size_t n, int64_t leaves);
void gradtree_free(gradtree *t);

/* Starts a step: every buffer free, every slot empty. */
void gradtree_reset(gradtree *t);
/* A free buffer for the next leaf (gradtree_reset and the pool's size guarantee one). */
float *gradtree_leaf(gradtree *t);
/* Puts a finished leaf into the tree. */
void gradtree_push(gradtree *t, float *leaf);
/* The sum of the step's leaves, in one of the pool's buffers; the tree is empty after. */
float *gradtree_finish(gradtree *t);

#endif
