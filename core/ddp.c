/* ddp — the ordered cross-rank sum and the shard ranges (ddp.h). */
#include "core/ddp.h"

#define DDP_MAX_SLOTS 32

static void add_into(float *restrict a, const float *restrict b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        a[i] = a[i] + b[i];
}

void ddp_ordered_sum(float *const *parts, int W, size_t n)
{
    float *slot[DDP_MAX_SLOTS] = {0};
    for (int r = 0; r < W; r++) {
        float *leaf = parts[r];
        int k = 0;
        while (slot[k]) { /* earlier + later, as core/train.c's tree_push */
            add_into(slot[k], leaf, n);
            leaf = slot[k];
            slot[k] = 0;
            k++;
        }
        slot[k] = leaf;
    }
    float *acc = 0;
    for (int k = DDP_MAX_SLOTS - 1; k >= 0; k--) {
        if (!slot[k])
            continue;
        if (!acc)
            acc = slot[k];
        else
            add_into(acc, slot[k], n);
    }
    /* the earliest part always holds the running sum: acc == parts[0] */
    (void)acc;
}

void ddp_shard(size_t n, int W, int r, size_t *lo, size_t *hi)
{
    size_t base = n / (size_t)W, extra = n % (size_t)W, R = (size_t)r;
    *lo = R * base + (R < extra ? R : extra);
    *hi = *lo + base + (R < extra ? 1 : 0);
}
