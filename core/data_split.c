/* data_split — a data set split into training and validation rows (data.h).
 *
 * The validation rows are copied out and the training rows are then moved together inside
 * the whole set's own buffers, which shrink to them: at the peak the process holds the whole
 * set and the validation copy, never a second copy of the training rows (a 2,000,000-row set
 * with 10 % validation rows used to need twice its size while it was split). */
#include "core/data.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Copies the rows rows[0..k) of src into dst (allocated). */
static int take_rows(const dataset *src, const uint32_t *rows, long long k, dataset *dst,
                     an_err *err)
{
    memset(dst, 0, sizeof *dst);
    size_t n = (size_t)(k ? k : 1), d = (size_t)src->d, yd = (size_t)src->ydim;
    dst->n = k;
    dst->d = src->d;
    dst->ydim = src->ydim;
    dst->nclasses = src->nclasses;
    dst->x = malloc(n * d * sizeof *dst->x);
    dst->y = malloc(n * yd * sizeof *dst->y);
    if (src->xd)
        dst->xd = malloc(n * d * sizeof *dst->xd);
    if (!dst->x || !dst->y || (src->xd && !dst->xd)) {
        data_free(dst);
        return an_failc(err, -ENOMEM, "data", "out of memory for %lld rows of %d features", k,
                        src->d);
    }
    for (long long i = 0; i < k; i++) {
        size_t r = rows[i];
        if (src->xd)
            memcpy(dst->xd + (size_t)i * d, src->xd + r * d, d * sizeof *dst->xd);
        memcpy(dst->x + (size_t)i * d, src->x + r * d, d * sizeof *dst->x);
        memcpy(dst->y + (size_t)i * yd, src->y + r * yd, yd * sizeof *dst->y);
    }
    return 0;
}

/* Shrinks a buffer to `bytes`; keeps it as it is when the allocator cannot. */
static void *shrink(void *p, size_t bytes)
{
    void *q = realloc(p, bytes ? bytes : 1);
    return q ? q : p;
}

/* Keeps the rows rows[0..k) of *ds (ascending) in place: row rows[i] moves to i. Since
 * rows[i] >= i, a row is moved before the place it comes from can be written to. */
static void keep_rows(dataset *ds, const uint32_t *rows, long long k)
{
    size_t d = (size_t)ds->d, yd = (size_t)ds->ydim;
    for (long long i = 0; i < k; i++) {
        size_t r = rows[i];
        if (r == (size_t)i)
            continue;
        if (ds->xd)
            memmove(ds->xd + (size_t)i * d, ds->xd + r * d, d * sizeof *ds->xd);
        memmove(ds->x + (size_t)i * d, ds->x + r * d, d * sizeof *ds->x);
        memmove(ds->y + (size_t)i * yd, ds->y + r * yd, yd * sizeof *ds->y);
    }
    ds->n = k;
    ds->x = shrink(ds->x, (size_t)k * d * sizeof *ds->x);
    ds->y = shrink(ds->y, (size_t)k * yd * sizeof *ds->y);
    if (ds->xd)
        ds->xd = shrink(ds->xd, (size_t)k * d * sizeof *ds->xd);
}

int data_split(dataset *all, double fraction, uint64_t seed, dataset *train, dataset *val,
               an_err *err)
{
    memset(val, 0, sizeof *val);
    memset(train, 0, sizeof *train);
    if (!(fraction >= 0 && fraction < 1)) {
        data_free(all);
        return an_fail(err, "validation.fraction", "expected a fraction in [0, 1), got %g",
                       fraction);
    }
    long long n = all->n, nv = (long long)floor(fraction * (double)n);
    if (fraction > 0 && nv < 1)
        nv = 1;
    if (fraction > 0 && n - nv < 1) {
        data_free(all);
        return an_fail(err, "validation.fraction",
                       "%lld rows cannot be split into training and validation rows", n);
    }
    if (nv == 0) {
        *train = *all;
        memset(all, 0, sizeof *all);
        val->d = train->d;
        val->ydim = train->ydim;
        val->nclasses = train->nclasses;
        return 0;
    }
    uint32_t *perm = malloc((size_t)n * sizeof *perm);
    if (!perm) {
        data_free(all);
        return an_failc(err, -ENOMEM, "data", "out of memory");
    }
    /* The split's own stream: RNG_SPLIT, not an epoch's shuffle. */
    rng r;
    rng_init(&r, seed, rng_stream_id(RNG_SPLIT, 0, 0, 0), 0);
    for (long long i = 0; i < n; i++)
        perm[i] = (uint32_t)i;
    for (long long i = n; i > 1; i--) {
        uint32_t j = (uint32_t)rng_below(&r, (uint64_t)i), t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
    qsort(perm, (size_t)nv, sizeof *perm, cmp_u32);
    qsort(perm + nv, (size_t)(n - nv), sizeof *perm, cmp_u32);
    int rc = take_rows(all, perm, nv, val, err);
    if (rc) {
        free(perm);
        data_free(all);
        return rc;
    }
    keep_rows(all, perm + nv, n - nv);
    free(perm);
    *train = *all;
    memset(all, 0, sizeof *all);
    return 0;
}
