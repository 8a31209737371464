/* lrfind — reading a learning-rate range test: the smoothed loss of a sweep and the learning
 * rates it suggests.
 *
 * Input: the lr and the training loss of every step of a run whose lr grows step by step (an
 * exponential sweep through ExponentialLR, or DeepSpeed's LRRangeTest); any run works, the
 * suggestions only mean something when the lr grows.
 *
 * The rules (docs and API: GET /v1/jobs/{id}/lr_finder):
 *  - smoothed: an exponential moving average of the loss with debiasing,
 *      avg_i = beta * avg_{i-1} + (1 - beta) * loss_i   (avg_{-1} = 0)
 *      smoothed_i = avg_i / (1 - beta^(i+1)).
 *  - divergence: the first step whose smoothed loss exceeds stop_factor × the lowest smoothed
 *    loss before it (and at least 0 — a negative minimum is scaled toward zero the other
 *    way). A sweep stops there when it is run with early stopping; everything from that step on
 *    is left out of the suggestions. A non-finite loss diverges at once.
 *  - minimum_div_10: the lr of the lowest smoothed loss, divided by 10 — the lowest point
 *    already has a rate that is about to be too large.
 *  - steepest: the lr where the smoothed loss falls fastest against log(lr) (the most negative
 *    central difference d smoothed / d log lr), on the way down: among the steps up to the
 *    lowest smoothed loss.
 *  - valley: the lr halfway through the longest descent of the smoothed loss: the longest
 *    strictly decreasing subsequence of the smoothed losses (first index a, last index b),
 *    and the step a + (b - a) / 2 in it.
 * Only steps with a positive, finite lr count (a log axis has no place for others): the
 * suggestions come from the steps after the last unusable one before the divergence (a
 * warm-up from lr 0 costs its first step, not the report). A suggestion needs a few points:
 * with fewer than LRFIND_MIN_POINTS usable steps none is made (has_suggestions = 0). */
#ifndef ANNEALD_LRFIND_H
#define ANNEALD_LRFIND_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/err.h"

#define LRFIND_MIN_POINTS 5
#define LRFIND_BETA 0.98
#define LRFIND_STOP_FACTOR 4.0
/* The largest stop factor a job's lr_finder.stop_factor (and a request's) takes. */
#define LRFIND_STOP_MAX 1e6

typedef struct lrfind_result {
    int has_suggestions;
    double steepest, valley, minimum_div_10;
    size_t steepest_at, valley_at, minimum_at; /* indices of the steps they come from */
    int stopped_early;                         /* the sweep diverged at step index `diverged_at` */
    size_t diverged_at;                        /* first excluded index (n when it never diverged) */
} lrfind_result;

/* The rules one step at a time, for a sweep that is running: feed each step's loss; returns
 * 1 from the step that diverges on (the same rule as lrfind_diverged). Its state is the
 * fields below, so a resumed sweep rebuilds it by feeding the recorded losses again. */
typedef struct lrfind_watch {
    double beta, stop_factor;
    double avg, bpow, best, smoothed;
    long long n;
} lrfind_watch;

void lrfind_watch_init(lrfind_watch *w, double beta, double stop_factor);
int lrfind_watch_step(lrfind_watch *w, double loss);

/* Smoothed loss of n steps into smoothed[n] (beta in [0, 1)). */
void lrfind_smooth(const double *loss, size_t n, double beta, double *smoothed);

/* The index of the first step that diverges by the rule above, or n. */
size_t lrfind_diverged(const double *smoothed, size_t n, double stop_factor);

/* Smooths the loss (into `smoothed`, n entries, the caller's) and makes the suggestions from
 * the steps before divergence. Returns 0, or -EINVAL for bad arguments (n = 0, a NULL
 * array, beta outside [0, 1), stop_factor <= 1). Runs in O(n log n) time and O(n) extra
 * memory, allocated here; -ENOMEM when that fails. */
int lrfind_analyze(const double *lr, const double *loss, size_t n, double beta,
                   double stop_factor, double *smoothed, lrfind_result *out);

/* When the suggestions are no advice on their own (lrfind_caveats.c), judged on the steps
 * before the divergence:
 *  - unbounded: a loss with no floor (the job's loss is `mean`, or the loss went below zero)
 *    falls for as long as the weights can grow: its lowest point is where the sweep ended;
 *  - open_end: the smoothed loss was lowest on the last 2 % (at least 2) of the steps of a
 *    sweep that never diverged: the minimum only marks where the sweep stopped;
 *  - noisy: the median step-to-step jump of the loss over the first fifth of the sweep (at
 *    least 5 steps) is LRFIND_NOISY_RATIO or more of the smoothed curve's fall to its minimum,
 *    so the slopes the steepest point and the valley are read from may be noise. */
#define LRFIND_NOISY_RATIO 0.5

typedef struct lrfind_caveats {
    int unbounded, mean_loss, below_zero;
    int open_end;
    int noisy;
    double jump, fall;  /* the noise test's median jump and the curve's fall */
} lrfind_caveats;

/* Finds the caveats of an analysed sweep (lrfind_analyze's loss, smoothed and result, n
 * steps); no_floor: the job's loss is `mean`. 0, or -ENOMEM. */
int lrfind_caveats_find(const double *loss, const double *smoothed, size_t n,
                        const lrfind_result *r, int no_floor, lrfind_caveats *out);

/* Adds "caveats": [{"code": "unbounded" | "open_end" | "noisy", "affects": [suggestion
 * names], "message"}] to a report (in that order; [] when there are none). -1 when out of
 * memory. */
int lrfind_caveats_json(const lrfind_caveats *c, cJSON *report);

/* ---- the finder as a job (POST /v1/lr_finder, `anneald lr-find`) ------------------------
 *
 * A finder request is {"job": {…a job spec…}, "min_lr": 1e-7, "max_lr": 10, "steps": 100,
 * "stop_factor": 4, "mode": "exponential" | "linear"} (all but "job" optional). Its job is the
 * given spec with its length and schedule replaced: `steps` steps (epochs dropped), and
 *  - exponential: the optimizer lr set to min_lr and PyTorch's ExponentialLR with
 *    gamma = (max_lr / min_lr)^(1 / (steps - 1)), so step 1 trains at min_lr and the last at
 *    max_lr (param_groups' own lrs keep their ratio to it);
 *  - linear: DeepSpeed's LRRangeTest from min_lr, continuous, with the step rate that reaches
 *    max_lr at the last step (every group sweeps the same lrs).
 * The spec that comes out is an ordinary job spec with "lr_finder": {"stop_factor": F}: it
 * trains, checkpoints and resumes like any other, and ends itself once the smoothed loss passes
 * F × its minimum (core/train keeps an lrfind_watch for it). */
typedef struct lrfind_req {
    double min_lr, max_lr, stop_factor;
    int64_t steps;
    int linear;
} lrfind_req;

#define LRFIND_MAX_STEPS 100000
/* The least relative rise of the lr from one step of a finder to the next: max_lr / min_lr
 * must leave every step at least this much above the one before (far above rounding). */
#define LRFIND_MIN_RISE 1e-9

/* Reads a finder request and writes the finder's job spec (*spec, the caller's to delete). A
 * body without "job" whose top level looks like a job spec (it has "model") is taken as the
 * job with every option at its default. Errors name their field ("max_lr", "job.model…"): the
 * job part is checked by the job-spec parser after the replacement. */
int lrfind_request(const cJSON *body, lrfind_req *req, cJSON **spec, an_err *err);

/* The answer of GET /v1/jobs/{id}/lr_finder and `anneald lr-find`: {"lr", "loss", "smoothed",
 * "suggestions": {"steepest", "valley", "minimum_div_10"}, "stopped_early", "diverged_at"}
 * (absent suggestions as null; diverged_at: the index in the arrays of the step the loss
 * diverged at, or null). The arrays cover the steps analysed; every number reads back to the
 * same double. NULL when out of memory. */
cJSON *lrfind_report(const double *lr, const double *loss, const double *smoothed, size_t n,
                     const lrfind_result *r);

#endif
