/* gradtree — see gradtree.h. */
#include "core/gradtree.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int gradtree_init(gradtree *t, float *first, size_t n, int64_t leaves)
{
    memset(t, 0, sizeof *t);
    t->n = n;
    t->nbuf = 1;
    while (t->nbuf < GRADTREE_MAX && ((int64_t)1 << t->nbuf) <= leaves)
        t->nbuf++;
    t->pool[0] = first;
    for (int k = 1; k < t->nbuf; k++)
        if (!(t->pool[k] = malloc(n * sizeof(float)))) {
            gradtree_free(t);
            return -ENOMEM;
        }
    return 0;
}

void gradtree_free(gradtree *t)
{
    for (int k = 1; k < t->nbuf; k++)
        free(t->pool[k]);
    memset(t, 0, sizeof *t);
}

void gradtree_reset(gradtree *t)
{
    t->nfree = 0;
    for (int k = t->nbuf - 1; k >= 0; k--)
        t->free_[t->nfree++] = t->pool[k];
    memset(t->slot, 0, sizeof t->slot);
}

float *gradtree_leaf(gradtree *t) { return t->free_[--t->nfree]; }

/* a = a + b element by element: the earlier sum first. */
static void add_into(float *restrict a, const float *restrict b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        a[i] = a[i] + b[i];
}

void gradtree_push(gradtree *t, float *leaf)
{
    int k = 0;
    while (t->slot[k]) {
        float *earlier = t->slot[k];
        add_into(earlier, leaf, t->n);
        t->free_[t->nfree++] = leaf;
        t->slot[k] = NULL;
        leaf = earlier;
        k++;
    }
    t->slot[k] = leaf;
}

float *gradtree_finish(gradtree *t)
{
    float *acc = NULL;
    for (int k = t->nbuf - 1; k >= 0; k--) {
        if (!t->slot[k])
            continue;
        if (!acc) {
            acc = t->slot[k];
        } else {
            add_into(acc, t->slot[k], t->n);
            t->free_[t->nfree++] = t->slot[k];
        }
        t->slot[k] = NULL;
    }
    return acc;
}
