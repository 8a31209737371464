/* lrfind_caveats — when the finder's suggestions are no advice on their own (lrfind.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/lrfind.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int lrfind_caveats_find(const double *loss, const double *smoothed, size_t n,
                        const lrfind_result *r, int no_floor, lrfind_caveats *out)
{
    *out = (lrfind_caveats){0};
    /* the steps the suggestions come from: those before the divergence */
    const size_t m = r->stopped_early && r->diverged_at < n ? r->diverged_at : n;
    if (m < 2)
        return 0;
    out->mean_loss = no_floor;
    for (size_t i = 0; i < m && !out->below_zero; i++)
        out->below_zero = isfinite(loss[i]) && loss[i] < 0;
    out->unbounded = no_floor || out->below_zero;

    size_t imin = 0;
    for (size_t i = 1; i < m; i++)
        if (smoothed[i] < smoothed[imin])
            imin = i;
    /* The lowest point on the last steps of a sweep that never diverged marks where the sweep
     * stopped, not where the loss turns; "last": the final 2 % (at least 2 steps). A loss
     * without a floor says more already. */
    size_t tail = m / 50 + (m % 50 != 0);
    tail = tail > 2 ? tail : 2;
    out->open_end = !out->unbounded && !r->stopped_early && imin + tail >= m;

    /* Noise: the median step-to-step jump of the raw loss over the first fifth of the sweep
     * (at least 5 steps; the median, so that one spike is not taken for noise), against the
     * whole fall of the smoothed curve to its minimum. */
    size_t k = (m + 4) / 5;
    k = k > 5 ? k : 5;
    k = k < m ? k : m;
    double *jumps = malloc(k * sizeof *jumps);
    if (!jumps)
        return -ENOMEM;
    size_t nj = 0;
    for (size_t i = 1; i < k; i++)
        if (isfinite(loss[i]) && isfinite(loss[i - 1]))
            jumps[nj++] = fabs(loss[i] - loss[i - 1]);
    qsort(jumps, nj, sizeof *jumps, cmp_double);
    out->jump = nj ? jumps[nj / 2] : 0;
    free(jumps);
    double top = smoothed[0];
    for (size_t i = 0; i <= imin; i++)
        if (smoothed[i] > top)
            top = smoothed[i];
    out->fall = top - smoothed[imin];
    out->noisy = out->fall > 0 && out->jump >= LRFIND_NOISY_RATIO * out->fall;
    return 0;
}

/* One caveat: {"code", "affects": [...], "message"}. */
static int add(cJSON *arr, const char *code, const char *const *affects, int naffects,
               const char *message)
{
    cJSON *c = cJSON_CreateObject();
    cJSON *a = c ? cJSON_AddArrayToObject(c, "affects") : NULL;
    int ok = a && cJSON_AddStringToObject(c, "code", code) &&
             cJSON_AddStringToObject(c, "message", message);
    for (int i = 0; ok && i < naffects; i++) {
        cJSON *s = cJSON_CreateString(affects[i]);
        ok = s != NULL;
        if (ok)
            cJSON_AddItemToArray(a, s);
    }
    if (!ok) {
        cJSON_Delete(c);
        return -1;
    }
    cJSON_AddItemToArray(arr, c);
    return 0;
}

int lrfind_caveats_json(const lrfind_caveats *c, cJSON *report)
{
    cJSON *arr = cJSON_AddArrayToObject(report, "caveats");
    if (!arr)
        return -1;
    static const char *const all[] = {"steepest", "valley", "minimum_div_10"};
    char msg[512];
    if (c->unbounded) {
        snprintf(msg, sizeof msg, "%s: it falls for as long as the weights can grow, so its "
                 "lowest point is only where the sweep ended and these rates are no advice on "
                 "their own. Find a rate with a loss that has a minimum (mse, cross_entropy, bce)",
                 c->mean_loss ? "the loss \"mean\" has no floor"
                              : "the loss goes below zero: it has no floor");
        if (add(arr, "unbounded", all, 3, msg))
            return -1;
    }
    if (c->open_end && add(arr, "open_end", all + 1, 2,
                           "the smoothed loss was still falling when the sweep ended: its lowest "
                           "point, and minimum_div_10 with it, only mark where the sweep stopped. "
                           "Sweep on to a larger max_lr"))
        return -1;
    if (c->noisy) {
        snprintf(msg, sizeof msg, "the loss is noisy at the start of the sweep: it jumps by %.3g "
                 "from step to step, %.0f%% of the whole fall of the smoothed curve (%.3g), so "
                 "the steepest point and the valley may be read from noise. A larger batch, or "
                 "more steps, smooths it", c->jump, 100 * c->jump / c->fall, c->fall);
        if (add(arr, "noisy", all, 2, msg))
            return -1;
    }
    return 0;
}
