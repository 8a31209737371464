/* lrfind — the smoothed loss of a learning-rate sweep and its suggestions (rules in lrfind.h). */
#include "core/lrfind.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

void lrfind_smooth(const double *loss, size_t n, double beta, double *smoothed)
{
    double avg = 0, bpow = 1;
    for (size_t i = 0; i < n; i++) {
        avg = beta * avg + (1 - beta) * loss[i];
        bpow *= beta;
        smoothed[i] = avg / (1 - bpow);
    }
}

size_t lrfind_diverged(const double *smoothed, size_t n, double stop_factor)
{
    double best = INFINITY;
    for (size_t i = 0; i < n; i++) {
        double s = smoothed[i];
        if (!isfinite(s))
            return i;
        /* For a negative minimum (a loss such as "mean" can go below zero) the threshold is
         * above it by the same proportion of its size. */
        double limit = best >= 0 ? stop_factor * best : best + (stop_factor - 1) * -best;
        if (i > 0 && s > limit)
            return i;
        if (s < best)
            best = s;
    }
    return n;
}

/* The longest strictly decreasing subsequence of s[0..n): its first and last index; among
 * several of the longest length, the one that reaches that length first (so a descent ends at
 * its bottom, not at a later point of the rise that happens to sit just above it). Patience
 * sorting: tail[k] is the index ending the best subsequence of length k+1 found so far (the
 * one with the largest last value, so it is easiest to extend); prev links each index to the
 * one before it in its subsequence. */
static int longest_descent(const double *s, size_t n, size_t *first, size_t *last)
{
    size_t *tail = malloc(n * sizeof *tail), *prev = malloc(n * sizeof *prev);
    if (!tail || !prev) {
        free(tail);
        free(prev);
        return -ENOMEM;
    }
    size_t len = 0, end = 0;
    for (size_t i = 0; i < n; i++) {
        /* first k with s[tail[k]] <= s[i]: s[i] cannot follow it (not strictly below) */
        size_t lo = 0, hi = len;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (s[tail[mid]] > s[i])
                lo = mid + 1;
            else
                hi = mid;
        }
        prev[i] = lo > 0 ? tail[lo - 1] : i;
        tail[lo] = i;
        if (lo == len) {
            len++;
            end = i;
        }
    }
    size_t k = end;
    *last = k;
    while (prev[k] != k)
        k = prev[k];
    *first = k;
    free(tail);
    free(prev);
    return 0;
}

int lrfind_analyze(const double *lr, const double *loss, size_t n, double beta,
                   double stop_factor, double *smoothed, lrfind_result *out)
{
    if (!lr || !loss || !smoothed || !out || n == 0 || !(beta >= 0 && beta < 1) ||
        !(stop_factor > 1))
        return -EINVAL;
    *out = (lrfind_result){.steepest = NAN, .valley = NAN, .minimum_div_10 = NAN};
    lrfind_smooth(loss, n, beta, smoothed);
    size_t m = lrfind_diverged(smoothed, n, stop_factor);
    out->diverged_at = m;
    out->stopped_early = m < n;
    /* Steps with a non-positive lr have no place on a log axis. */
    while (m > 0 && !(lr[m - 1] > 0))
        m--;
    if (m < LRFIND_MIN_POINTS)
        return 0;
    for (size_t i = 0; i < m; i++)
        if (!(lr[i] > 0) || !isfinite(lr[i]))
            return 0;

    size_t imin = 0;
    for (size_t i = 1; i < m; i++)
        if (smoothed[i] < smoothed[imin])
            imin = i;
    out->minimum_at = imin;
    out->minimum_div_10 = lr[imin] / 10;

    double steepest = INFINITY;
    for (size_t i = 0; i < m; i++) {
        size_t a = i > 0 ? i - 1 : 0, b = i + 1 < m ? i + 1 : m - 1;
        double dx = log(lr[b]) - log(lr[a]);
        if (!(dx > 0))
            continue; /* the lr did not grow here: no slope */
        double d = (smoothed[b] - smoothed[a]) / dx;
        if (d < steepest) {
            steepest = d;
            out->steepest_at = i;
        }
    }
    if (steepest < INFINITY)
        out->steepest = lr[out->steepest_at];

    size_t first, last;
    int rc = longest_descent(smoothed, m, &first, &last);
    if (rc)
        return rc;
    out->valley_at = first + (last - first) / 2;
    out->valley = lr[out->valley_at];
    out->has_suggestions = 1;
    return 0;
}
