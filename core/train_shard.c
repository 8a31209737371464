/* train_shard — ZeRO stage 1: each rank keeps the optimizer state of its slice of the flat
 * parameters only.
 *
 * Every rank still receives the whole summed gradient (core/ddp.h's ordered sum), computes
 * the global norm and clips exactly as one process does; then it steps only its slice
 * [lo, hi) of the parameters with the slice's optimizer state, and an all-gather puts every
 * rank's updated slice back on every rank. The optimizers other than Lamb update each element
 * from that element's gradient and state alone, so the slices give the unsharded run's bits.
 * The state of Adam's two moments for 1/world of the parameters is what a rank saves.
 *
 * A checkpoint stays the blob a one-process job writes: for a save, every rank sends its
 * slices of each state buffer to rank 0, which builds the whole optimizer for the time of
 * train_save. A resume restores the whole state first and is sharded after. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/ddp.h"
#include "core/train_internal.h"

/* Per-parameter buffers of an optimizer (each n elements). */
static size_t nbufs(const optim *o)
{
    return o->n ? o->state_elems / o->n : 0;
}

int train_shard_optimizer(train *t, train_gather_fn gather, void *ctx, an_err *err)
{
    if (t->gt)
        return an_failc(err, -ENOTSUP, "ds_config.zero_optimization",
                        "a gpt model keeps its whole optimizer state on every rank here (ZeRO "
                        "stage 1 slices that of mlp and linear models): it runs as stage 0");
    if (t->world < 2 || !gather)
        return an_failc(err, -EINVAL, "ds_config.zero_optimization",
                        "ZeRO stage 1 shards the optimizer across several ranks");
    if (t->sharded)
        return 0;
    if (t->opt.cfg.type == OPTIM_LAMB)
        return an_failc(err, -ENOTSUP, "ds_config.zero_optimization",
                        "Lamb's trust ratio is a norm over each whole tensor, and ZeRO stage 1 "
                        "here slices tensors across ranks: Lamb runs unsharded (stage 0)");
    size_t n = t->m->nparams, lo, hi;
    if (n < (size_t)t->world)
        return an_failc(err, -EINVAL, "world_size", "%zu parameters cannot be sliced over %d "
                        "ranks", n, t->world);
    ddp_shard(n, t->world, t->rank, &lo, &hi);
    const optim *full = &t->opt;
    optim_tensor *mine = malloc((size_t)full->ntensors * sizeof *mine);
    optim_tensor *keep = malloc((size_t)full->ntensors * sizeof *keep);
    if (!mine || !keep) {
        free(mine);
        free(keep);
        return an_failc(err, -ENOMEM, "", "out of memory slicing the optimizer");
    }
    memcpy(keep, full->tensors, (size_t)full->ntensors * sizeof *keep);
    int nm = 0;
    for (int i = 0; i < full->ntensors; i++) { /* each tensor's part inside [lo, hi) */
        size_t a = full->tensors[i].off, b = a + full->tensors[i].n;
        if (b <= lo || a >= hi)
            continue;
        size_t s = a > lo ? a : lo, e = b < hi ? b : hi;
        mine[nm++] = (optim_tensor){.off = s - lo, .n = e - s, .group = full->tensors[i].group};
    }
    optim slice;
    int rc = nm ? optim_init(&slice, &full->cfg, OPTIM_F32, hi - lo, mine, nm, full->groups,
                             full->ngroups, err)
                : an_failc(err, -EINVAL, "", "rank %d's slice holds no tensor", t->rank);
    free(mine);
    if (rc) {
        free(keep);
        return rc;
    }
    /* The state so far (zero, or what train_restore put there) moves into the slice. */
    const float *src = full->state;
    float *dst = slice.state;
    for (size_t b = 0; b < nbufs(full); b++)
        memcpy(dst + b * (hi - lo), src + b * n + lo, (hi - lo) * sizeof(float));
    t->full_tensors = keep;
    t->nfull_tensors = full->ntensors; /* before `full` (t->opt) becomes the slice */
    optim_free(&t->opt);
    t->opt = slice;
    t->shard_lo = lo;
    t->shard_hi = hi;
    t->gather = gather;
    t->gather_ctx = ctx;
    t->sharded = 1;
    return 0;
}

int train_shard_step(train *t, float *params, float *grad, an_err *err)
{
    optim_step(&t->opt, params + t->shard_lo, grad + t->shard_lo);
    int rc = t->gather(t->gather_ctx, params + t->shard_lo, params, t->m->nparams, 1);
    if (rc)
        return an_failc(err, rc, "", "the all-gather of the parameters between ranks failed at "
                        "step %lld", (long long)t->steps + 1);
    return 0;
}

size_t train_optim_bytes(const train *t, size_t *total)
{
    if (t->gt) { /* never sharded */
        size_t b = gtrain_optim_bytes(t->gt);
        if (total)
            *total = b;
        return b;
    }
    size_t mine = t->opt.state_elems * sizeof(float);
    if (total)
        *total = t->sharded ? nbufs(&t->opt) * t->m->nparams * sizeof(float) : mine;
    return mine;
}

int train_unshard_begin(train *t, an_err *err)
{
    if (!t->sharded || t->unsharded)
        return 0;
    size_t n = t->m->nparams, ns = t->shard_hi - t->shard_lo;
    optim whole;
    int root = t->rank == 0, rc = 0;
    memset(&whole, 0, sizeof whole);
    if (root)
        rc = optim_init(&whole, &t->opt.cfg, OPTIM_F32, n, t->full_tensors, t->nfull_tensors,
                        t->opt.groups, t->opt.ngroups, err);
    /* Every rank takes part in every gather, even when rank 0 could not allocate (it then
     * receives into nothing and fails after), so that no rank waits for a gather that never
     * comes. */
    float *scratch = NULL;
    if (root && rc)
        scratch = malloc(n * sizeof *scratch);
    for (size_t b = 0; b < nbufs(&t->opt); b++) {
        float *into = root ? (rc ? scratch : (float *)whole.state + b * n) : NULL;
        int grc = t->gather(t->gather_ctx, (const float *)t->opt.state + b * ns, into, n, 0);
        if (grc && !rc)
            rc = an_failc(err, grc, "", "gathering the optimizer state for a checkpoint "
                          "failed");
    }
    free(scratch);
    if (!root)
        return rc;
    if (rc) {
        optim_free(&whole);
        return rc;
    }
    t->shard_keep = t->opt;
    t->opt = whole;
    t->unsharded = 1;
    return 0;
}

void train_unshard_end(train *t)
{
    if (!t->unsharded)
        return;
    optim_free(&t->opt);
    t->opt = t->shard_keep;
    memset(&t->shard_keep, 0, sizeof t->shard_keep);
    t->unsharded = 0;
}

void train_shard_free(train *t)
{
    train_unshard_end(t);
    free(t->full_tensors);
    t->full_tensors = NULL;
}
