/* test_lrfind — the learning-rate finder's rules on hand-made curves, and its suggestions on
 * real sweeps of problems whose good range is known analytically.
 *
 * The analytic problems: linear regression (model linear, loss mse, full-batch plain SGD) on
 * inline data, without gradient clipping. The loss is a quadratic with Hessian H = (2/n) A^T A, A = [X 1] (bias
 * included); gradient descent converges for lr < 2/λmax(H) and diverges above it, and below
 * 1/100 of that it makes next to no progress in a sweep. So every suggestion must fall in
 * [0.01 · 2/λmax, 2/λmax). λmax is computed here from the data by power iteration. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/lrfind.h"
#include "core/train.h"

/* ---- the rules on hand-made curves ------------------------------------------------------ */

static void test_smoothing_is_debiased_ema(void **state)
{
    (void)state;
    double loss[3] = {2, 4, 8}, s[3];
    lrfind_smooth(loss, 3, 0.5, s);
    /* avg: 1, 2.5, 5.25; debiased by 1-0.5, 1-0.25, 1-0.125 */
    assert_true(s[0] == 2.0);
    assert_true(s[1] == 2.5 / 0.75);
    assert_true(s[2] == 5.25 / 0.875);
    /* a constant loss smooths to itself from the first step: that is what debiasing is for */
    double c[50], cs[50];
    for (int i = 0; i < 50; i++)
        c[i] = 3.0;
    lrfind_smooth(c, 50, 0.98, cs);
    for (int i = 0; i < 50; i++)
        assert_true(fabs(cs[i] - 3.0) < 1e-12);
}

static void test_divergence_rule(void **state)
{
    (void)state;
    double s[6] = {10, 5, 2, 7.9, 8.1, 100};
    assert_int_equal(lrfind_diverged(s, 6, 4.0), 4); /* 8.1 > 4 × 2, 7.9 is not */
    assert_int_equal(lrfind_diverged(s, 4, 4.0), 4); /* never: n */
    double nan[3] = {1, NAN, 0.5};
    assert_int_equal(lrfind_diverged(nan, 3, 4.0), 1);
    double neg[4] = {-1, -2, -0.5, 4.5}; /* minimum -2: limit -2 + 3·2 = 4 */
    assert_int_equal(lrfind_diverged(neg, 4, 4.0), 3);
}

/* A U-shaped curve against log lr: down from 10 to a minimum at lr 1e-2, then up. */
static void test_suggestions_on_a_valley(void **state)
{
    (void)state;
    enum { N = 61 };
    double lr[N], loss[N], s[N];
    for (int i = 0; i < N; i++) {
        lr[i] = pow(10, -5 + i * 0.1); /* 1e-5 .. 1e1 */
        double x = log10(lr[i]) + 2;   /* 0 at 1e-2 */
        loss[i] = x < 0 ? 1 + 9 / (1 + exp(4 * (x + 1.5))) : 1 + x * x * x * x;
    }
    lrfind_result r;
    assert_int_equal(lrfind_analyze(lr, loss, N, 0.0, 4.0, s, &r), 0);
    assert_true(r.has_suggestions);
    /* beta 0: smoothed is the loss itself */
    for (int i = 0; i < N; i++)
        assert_true(s[i] == loss[i]);
    assert_true(r.stopped_early);            /* 1 + x^4 passes 4 × min near x = 1.32 */
    assert_true(fabs(log10(lr[r.diverged_at]) + 2 - 1.4) < 0.11);
    assert_true(fabs(log10(r.minimum_div_10) - (-3)) < 0.11);  /* 1e-2 / 10 */
    assert_true(fabs(log10(r.steepest) - (-3.5)) < 0.11);      /* the sigmoid's middle */
    assert_true(r.valley >= 1e-5 && r.valley < 1e-2);          /* inside the descent */
    assert_int_equal(r.valley_at, r.minimum_at / 2);           /* halfway through it */
}

/* After the lowest point, a spike that falls back makes the steepest slope of the whole curve;
 * it is no advice, and steepest stays on the way down. */
static void test_steepest_is_on_the_way_down(void **state)
{
    (void)state;
    enum { N = 30 };
    double lr[N], loss[N], s[N];
    for (int i = 0; i < N; i++) {
        lr[i] = pow(10, -4 + i * 0.2);
        loss[i] = i <= 15 ? 5 - 0.2 * i : 2 + 0.1 * (i - 15); /* down to 2 at i = 15, then up */
    }
    loss[20] = 9; /* the spike; falling back from it is the steepest slope of all */
    lrfind_result r;
    assert_int_equal(lrfind_analyze(lr, loss, N, 0.0, 100.0, s, &r), 0);
    assert_false(r.stopped_early);
    assert_int_equal(r.minimum_at, 15);
    assert_true(r.steepest_at <= r.minimum_at);
    assert_true(r.steepest < lr[15]);
}

/* A warm-up from lr 0 (and a zero in the middle) costs the steps up to it, not the report:
 * the suggestions come from the steps after the last lr of 0, and give the same answer as
 * the same sweep without them. */
static void test_zero_lr_steps_are_left_out(void **state)
{
    (void)state;
    enum { N = 40, Z = 3 };
    double lr[N + Z], loss[N + Z], s[N + Z], s2[N];
    for (int i = 0; i < N; i++) {
        lr[Z + i] = pow(10, -4 + i * 0.1);
        loss[Z + i] = i <= 25 ? 5 - 0.1 * i : 2.5 + 0.3 * (i - 25);
    }
    lr[0] = 0; /* the warm-up's first step */
    lr[1] = 1e-5;
    lr[2] = 0; /* a cyclic schedule's zero */
    loss[0] = loss[1] = loss[2] = 5;
    lrfind_result r, plain;
    assert_int_equal(lrfind_analyze(lr, loss, N + Z, 0.0, 100.0, s, &r), 0);
    assert_true(r.has_suggestions);
    assert_int_equal(lrfind_analyze(lr + Z, loss + Z, N, 0.0, 100.0, s2, &plain), 0);
    assert_true(plain.has_suggestions);
    assert_int_equal(r.minimum_at, plain.minimum_at + Z);
    assert_int_equal(r.steepest_at, plain.steepest_at + Z);
    assert_int_equal(r.valley_at, plain.valley_at + Z);
    assert_true(r.steepest == plain.steepest && r.valley == plain.valley &&
                r.minimum_div_10 == plain.minimum_div_10);
    /* zeros at the end are dropped; a run of usable steps too short gives none */
    lr[N + Z - 1] = 0;
    assert_int_equal(lrfind_analyze(lr, loss, N + Z, 0.0, 100.0, s, &r), 0);
    assert_true(r.has_suggestions);
    lr[N + Z - 5] = 0;
    assert_int_equal(lrfind_analyze(lr, loss, N + Z, 0.0, 100.0, s, &r), 0);
    assert_false(r.has_suggestions); /* 3 usable steps after the last zero */
}

static void test_bad_arguments_and_short_sweeps(void **state)
{
    (void)state;
    double lr[4] = {1e-3, 1e-2, 1e-1, 1}, loss[4] = {1, 0.5, 0.25, 0.2}, s[4];
    lrfind_result r;
    assert_int_equal(lrfind_analyze(lr, loss, 0, 0.9, 4, s, &r), -EINVAL);
    assert_int_equal(lrfind_analyze(NULL, loss, 4, 0.9, 4, s, &r), -EINVAL);
    assert_int_equal(lrfind_analyze(lr, loss, 4, 1.0, 4, s, &r), -EINVAL);
    assert_int_equal(lrfind_analyze(lr, loss, 4, 0.9, 1.0, s, &r), -EINVAL);
    assert_int_equal(lrfind_analyze(lr, loss, 4, 0.9, 4, s, &r), 0);
    assert_false(r.has_suggestions); /* 4 < LRFIND_MIN_POINTS */
    assert_true(isnan(r.steepest) && isnan(r.valley) && isnan(r.minimum_div_10));
}

/* ---- real sweeps -------------------------------------------------------------------------- */

enum { ROWS = 64, MAXF = 4 };

/* λmax of (2/n) A^T A, A = [X 1], by power iteration (the matrix is small and symmetric). */
static double lambda_max(double x[ROWS][MAXF], int f)
{
    int d = f + 1;
    double h[MAXF + 1][MAXF + 1] = {{0}};
    for (int i = 0; i < ROWS; i++)
        for (int a = 0; a < d; a++)
            for (int b = 0; b < d; b++)
                h[a][b] += 2.0 / ROWS * (a < f ? x[i][a] : 1.0) * (b < f ? x[i][b] : 1.0);
    double v[MAXF + 1], w[MAXF + 1], lam = 0;
    for (int a = 0; a < d; a++)
        v[a] = 1.0;
    for (int it = 0; it < 2000; it++) {
        double norm = 0;
        for (int a = 0; a < d; a++) {
            w[a] = 0;
            for (int b = 0; b < d; b++)
                w[a] += h[a][b] * v[b];
            norm += w[a] * w[a];
        }
        norm = sqrt(norm);
        lam = norm;
        for (int a = 0; a < d; a++)
            v[a] = w[a] / norm;
    }
    return lam;
}

/* Sweeps lr exponentially from lo to hi over `steps` steps of full-batch SGD (the finder's
 * exponential mode: ExponentialLR with the optimizer lr at lo), stopping at divergence as the
 * service does, then checks every suggestion against the analytic range. */
static void sweep_problem(const double *scale, int f, double noise)
{
    double x[ROWS][MAXF];
    char *buf = malloc(1 << 16);
    assert_non_null(buf);
    size_t o = 0;
    o += (size_t)snprintf(buf + o, 65536 - o, "{\"seed\": 3, \"steps\": 200, "
                          "\"model\": {\"type\": \"linear\", \"inputs\": %d, \"outputs\": 1}, "
                          "\"loss\": \"mse\", \"data\": {\"type\": \"inline\", \"x\": [", f);
    for (int i = 0; i < ROWS; i++) {
        o += (size_t)snprintf(buf + o, 65536 - o, "%s[", i ? "," : "");
        for (int j = 0; j < f; j++) {
            x[i][j] = scale[j] * sin(1.3 * i + 0.7 * j + 0.2);
            o += (size_t)snprintf(buf + o, 65536 - o, "%s%.9g", j ? "," : "", (float)x[i][j]);
            x[i][j] = (float)x[i][j]; /* the model sees float32 inputs */
        }
        o += (size_t)snprintf(buf + o, 65536 - o, "]");
    }
    o += (size_t)snprintf(buf + o, 65536 - o, "], \"y\": [");
    for (int i = 0; i < ROWS; i++) {
        double y = 0.5 + noise * sin(3.1 * i);
        for (int j = 0; j < f; j++)
            y += (j + 1) * x[i][j] / scale[j];
        o += (size_t)snprintf(buf + o, 65536 - o, "%s[%.9g]", i ? "," : "", y);
    }
    double lmax = lambda_max(x, f), limit = 2 / lmax;
    double lo = limit * 1e-4, hi = limit * 1e2;
    int steps = 200;
    double gamma = pow(hi / lo, 1.0 / (steps - 1));
    o += (size_t)snprintf(buf + o, 65536 - o,
                          "]}, \"ds_config\": {\"train_batch_size\": %d, \"gradient_clipping\": 0, "
                          "\"optimizer\": "
                          "{\"type\": \"SGD\", \"params\": {\"lr\": %.17g}}, \"scheduler\": "
                          "{\"type\": \"ExponentialLR\", \"params\": {\"gamma\": %.17g}}}}",
                          ROWS, lo, gamma);
    assert_true(o < 65536);

    job_spec spec;
    an_err err;
    if (job_spec_parse_text(buf, o, &spec, &err))
        fail_msg("spec: %s: %s", err.field, err.message);
    train *t;
    if (train_create(&t, &spec, NULL, 0, &err))
        fail_msg("train_create: %s: %s", err.field, err.message);
    double lr[200], loss[200], s[200];
    int n = 0;
    for (; n < steps; n++) {
        train_report rep;
        int rc = train_step(t, &rep, &err);
        if (rc) {
            /* the loss became infinite: the finder records that step as diverged */
            assert_int_equal(rc, -EDOM);
            lr[n] = n > 0 ? lr[n - 1] * gamma : lo;
            loss[n++] = INFINITY;
            break;
        }
        lr[n] = rep.lr[0];
        loss[n] = rep.loss;
        lrfind_smooth(loss, (size_t)n + 1, LRFIND_BETA, s);
        if (lrfind_diverged(s, (size_t)n + 1, LRFIND_STOP_FACTOR) <= (size_t)n) {
            n++;
            break;
        }
    }
    train_free(t);
    job_spec_free(&spec);
    free(buf);

    lrfind_result r;
    assert_int_equal(lrfind_analyze(lr, loss, (size_t)n, LRFIND_BETA, LRFIND_STOP_FACTOR, s, &r),
                     0);
    assert_true(r.has_suggestions);
    assert_true(r.stopped_early); /* the sweep went 100× past the limit: it must diverge */
    print_message("lambda_max %.4g, limit 2/lambda %.4g: steepest %.4g, valley %.4g, "
                  "minimum/10 %.4g, diverged at step %zu (lr %.4g)\n",
                  lmax, limit, r.steepest, r.valley, r.minimum_div_10, r.diverged_at + 1,
                  lr[r.diverged_at < (size_t)n ? r.diverged_at : (size_t)n - 1]);
    double sug[3] = {r.steepest, r.valley, r.minimum_div_10};
    const char *name[3] = {"steepest", "valley", "minimum_div_10"};
    for (int k = 0; k < 3; k++)
        if (!(sug[k] >= 0.01 * limit && sug[k] < limit))
            fail_msg("%s %.4g outside the good range [%.4g, %.4g)", name[k], sug[k],
                     0.01 * limit, limit);
}

static void test_suggestions_in_the_analytic_range(void **state)
{
    (void)state;
    const double iso[2] = {1, 1}, skewed[3] = {1, 10, 0.3}, wide[4] = {3, 2, 1, 0.5};
    sweep_problem(iso, 2, 0.0);     /* well conditioned, exact fit possible */
    sweep_problem(skewed, 3, 0.1);  /* λmax set by the large feature, noisy targets */
    sweep_problem(wide, 4, 0.3);    /* four scales, noisier targets */
}

/* ---- the finder's job ----------------------------------------------------------------------- */

#define REG_JOB                                                                                  \
    "{\"seed\": 1, \"epochs\": 3, \"model\": {\"type\": \"linear\", \"inputs\": 3, "           \
    "\"outputs\": 1}, \"loss\": \"mse\", \"data\": {\"type\": \"synthetic\", \"task\": "       \
    "\"regression\", \"samples\": 256, \"features\": 3}, \"ds_config\": {\"train_batch_size\": " \
    "32, \"optimizer\": {\"type\": \"SGD\", \"params\": {\"lr\": 0.5, \"momentum\": 0.9}}, "   \
    "\"scheduler\": {\"type\": \"WarmupLR\", \"params\": {\"warmup_num_steps\": 10}}}}"

static int request(const char *text, lrfind_req *q, cJSON **spec, an_err *err)
{
    cJSON *b = cJSON_Parse(text);
    assert_non_null(b);
    an_err_clear(err);
    int rc = lrfind_request(b, q, spec, err);
    cJSON_Delete(b);
    return rc;
}

/* Trains the finder's job and checks the lr it sweeps: min_lr at step 1, max_lr at the last,
 * growing every step, the spec's other settings kept. */
static void check_sweep(const char *body, double lo, double hi, int steps, int linear)
{
    lrfind_req q;
    cJSON *spec;
    an_err err;
    if (request(body, &q, &spec, &err))
        fail_msg("%s: %s", err.field, err.message);
    assert_int_equal(q.linear, linear);
    assert_int_equal(q.steps, steps);
    assert_null(cJSON_GetObjectItem(spec, "epochs"));
    job_spec js;
    if (job_spec_parse(spec, &js, &err))
        fail_msg("%s: %s", err.field, err.message);
    assert_int_equal(js.steps, steps);
    assert_true(js.optim.momentum == 0.9); /* the rest of the optimizer is the job's */
    train *t;
    assert_int_equal(train_create(&t, &js, NULL, 0, &err), 0);
    double prev = 0, first = 0, last = 0, ratio0 = 0;
    for (int i = 0; i < steps; i++) {
        train_report rep;
        assert_int_equal(train_step(t, &rep, &err), 0);
        double lr = rep.lr[0];
        if (i == 0)
            first = lr;
        else
            assert_true(lr > prev);
        if (i == 1)
            ratio0 = lr / prev;
        if (!linear && i > 1) /* exponential: a constant ratio */
            assert_true(fabs(lr / prev - ratio0) < 1e-9 * ratio0);
        if (linear && i > 1) /* linear: a constant difference */
            assert_true(fabs((lr - prev) - (hi - lo) / (steps - 1)) < 1e-9 * hi);
        prev = last = lr;
    }
    assert_true(first == lo);
    assert_true(fabs(last - hi) < 1e-12 * hi);
    train_free(t);
    job_spec_free(&js);
    cJSON_Delete(spec);
}

static void test_finder_job_sweeps_its_range(void **state)
{
    (void)state;
    check_sweep("{\"job\": " REG_JOB ", \"min_lr\": 1e-6, \"max_lr\": 1e-3, \"steps\": 40}",
                1e-6, 1e-3, 40, 0);
    check_sweep("{\"job\": " REG_JOB ", \"min_lr\": 1e-5, \"max_lr\": 2e-3, \"steps\": 30, "
                "\"mode\": \"linear\"}", 1e-5, 2e-3, 30, 1);
    /* a bare job spec takes every default: 100 steps from 1e-7 to 10 */
    lrfind_req q;
    cJSON *spec;
    an_err err;
    assert_int_equal(request(REG_JOB, &q, &spec, &err), 0);
    assert_true(q.min_lr == 1e-7 && q.max_lr == 10 && q.steps == 100 && !q.linear &&
                q.stop_factor == 4);
    const cJSON *sch = cJSON_GetObjectItem(cJSON_GetObjectItem(spec, "ds_config"), "scheduler");
    assert_string_equal(cJSON_GetObjectItem(sch, "type")->valuestring, "ExponentialLR");
    double gamma = cJSON_GetObjectItem(cJSON_GetObjectItem(sch, "params"), "gamma")->valuedouble;
    assert_true(fabs(gamma - pow(1e8, 1.0 / 99)) < 1e-15);
    cJSON_Delete(spec);
}

static void test_finder_request_errors(void **state)
{
    (void)state;
    static const struct {
        const char *body, *field;
    } cases[] = {
        {"{\"min_lr\": 1e-3}", "job"},
        {"{\"job\": 5}", "job"},
        {"{\"job\": " REG_JOB ", \"min_lr\": 0}", "min_lr"},
        {"{\"job\": " REG_JOB ", \"min_lr\": 1, \"max_lr\": 0.1}", "max_lr"},
        /* beyond what an optimizer takes, or a step factor beyond a double */
        {"{\"job\": " REG_JOB ", \"max_lr\": 1e300}", "max_lr"},
        {"{\"job\": " REG_JOB ", \"min_lr\": 1e-320, \"max_lr\": 1e30}", "max_lr"},
        {"{\"job\": " REG_JOB ", \"min_lr\": 1e-320, \"max_lr\": 1e30, \"mode\": \"linear\"}",
         "max_lr"},
        /* a range too narrow for every step to raise the lr (gamma would round to 1) */
        {"{\"job\": " REG_JOB ", \"min_lr\": 0.1, \"max_lr\": 0.10000000000000002}",
         "max_lr"},
        {"{\"job\": " REG_JOB ", \"min_lr\": 0.1, \"max_lr\": 0.10000000000000002, "
         "\"mode\": \"linear\"}", "max_lr"},
        {"{\"job\": " REG_JOB ", \"min_lr\": 1, \"max_lr\": 1.00001, \"steps\": 100000}",
         "max_lr"},
        {"{\"job\": " REG_JOB ", \"steps\": 4}", "steps"},
        {"{\"job\": " REG_JOB ", \"steps\": 1e9}", "steps"},
        {"{\"job\": " REG_JOB ", \"stop_factor\": 1}", "stop_factor"},
        /* above what the job's lr_finder.stop_factor takes: named as the request's key */
        {"{\"job\": " REG_JOB ", \"stop_factor\": 1e7}", "stop_factor"},
        /* a bare job spec names its own keys */
        {"{\"model\": {\"type\": \"linear\", \"inputs\": 3, \"outputs\": 1}, \"stepz\": 3}",
         "stepz"},
        {"{\"job\": " REG_JOB ", \"mode\": \"cosine\"}", "mode"},
        {"{\"job\": " REG_JOB ", \"max_lrr\": 1}", "max_lrr"},
        {"{\"job\": {\"model\": {\"type\": \"linear\", \"inputs\": 3, \"outputs\": 1}}}",
         "job.data"},
        {"{\"job\": {\"model\": {\"type\": \"linear\", \"inputs\": 3, \"outputs\": 1}, "
         "\"ds_config\": []}}", "job.ds_config"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        lrfind_req q;
        cJSON *spec = NULL;
        an_err err;
        if (request(cases[i].body, &q, &spec, &err) == 0)
            fail_msg("case %zu accepted", i);
        assert_null(spec);
        if (strcmp(err.field, cases[i].field) != 0)
            fail_msg("case %zu: field '%s' (%s), want '%s'", i, err.field, err.message,
                     cases[i].field);
    }
}

static void test_report_shape(void **state)
{
    (void)state;
    double lr[6] = {1e-4, 1e-3, 1e-2, 1e-1, 1, 10}, loss[6] = {1, 0.9, 0.5, 0.3, 0.6, 40};
    double s[6];
    lrfind_result r;
    assert_int_equal(lrfind_analyze(lr, loss, 6, 0.5, 4, s, &r), 0);
    cJSON *o = lrfind_report(lr, loss, s, 6, &r);
    assert_non_null(o);
    char *text = cJSON_PrintUnformatted(o);
    cJSON *back = cJSON_Parse(text); /* as a client reads it */
    free(text);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(back, "lr")), 6);
    for (int i = 0; i < 6; i++)
        assert_true(cJSON_GetArrayItem(cJSON_GetObjectItem(back, "smoothed"), i)->valuedouble ==
                    s[i]);
    const cJSON *sug = cJSON_GetObjectItem(back, "suggestions");
    assert_true(cJSON_GetObjectItem(sug, "valley")->valuedouble == r.valley);
    assert_true(cJSON_IsBool(cJSON_GetObjectItem(back, "stopped_early")));
    cJSON_Delete(back);
    cJSON_Delete(o);
    /* too few points: suggestions are null */
    assert_int_equal(lrfind_analyze(lr, loss, 3, 0.5, 4, s, &r), 0);
    o = lrfind_report(lr, loss, s, 3, &r);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "suggestions"),
                                                 "steepest")));
    cJSON_Delete(o);
}

/* A sweep saved and restored mid-way ends at the same step with the same weights as one that
 * never stopped; its watch travels in the checkpoint, and a sweep's checkpoint and an
 * ordinary job's do not restore into each other. */
static void test_sweep_resumes_bit_for_bit(void **state)
{
    (void)state;
    lrfind_req q;
    cJSON *sj;
    an_err err;
    assert_int_equal(request("{\"job\": " REG_JOB ", \"min_lr\": 1e-4, \"max_lr\": 100, "
                             "\"steps\": 300}", &q, &sj, &err), 0);
    job_spec spec;
    assert_int_equal(job_spec_parse(sj, &spec, &err), 0);
    assert_true(spec.lrfind_stop == 4);
    train *a, *b;
    assert_int_equal(train_create(&a, &spec, NULL, 0, &err), 0);
    train_report rep;
    while (train_steps_done(a) < train_total_steps(a))
        assert_int_equal(train_step(a, &rep, &err), 0);
    int64_t end = train_steps_done(a);
    assert_true(end > 20 && end < 300); /* it diverged and stopped itself */

    for (int64_t cut = 5; cut < end; cut += (end - 5) / 3 + 1) {
        assert_int_equal(train_create(&b, &spec, NULL, 0, &err), 0);
        for (int64_t i = 0; i < cut; i++)
            assert_int_equal(train_step(b, &rep, &err), 0);
        void *blob;
        size_t len;
        assert_int_equal(train_save(b, &blob, &len, &err), 0);
        train_free(b);
        assert_int_equal(train_create(&b, &spec, NULL, 0, &err), 0);
        if (train_restore(b, blob, len, &err))
            fail_msg("restore: %s", err.message);
        free(blob);
        while (train_steps_done(b) < train_total_steps(b))
            assert_int_equal(train_step(b, &rep, &err), 0);
        assert_int_equal(train_steps_done(b), end);
        void *wa, *wb;
        size_t la, lb;
        assert_int_equal(train_save(a, &wa, &la, &err), 0);
        assert_int_equal(train_save(b, &wb, &lb, &err), 0);
        assert_int_equal(la, lb);
        assert_memory_equal(wa, wb, la);
        free(wa);
        free(wb);
        train_free(b);
    }

    /* a sweep's checkpoint into an ordinary job of the same model, and back */
    cJSON *plain = cJSON_Duplicate(sj, 1);
    cJSON_DeleteItemFromObject(plain, "lr_finder");
    job_spec ps;
    assert_int_equal(job_spec_parse(plain, &ps, &err), 0);
    assert_true(ps.lrfind_stop == 0);
    train *c;
    assert_int_equal(train_create(&c, &ps, NULL, 0, &err), 0);
    void *blob;
    size_t len;
    assert_int_equal(train_save(a, &blob, &len, &err), 0);
    assert_int_equal(train_restore(c, blob, len, &err), -EPROTO);
    assert_non_null(strstr(err.message, "sweep"));
    free(blob);
    assert_int_equal(train_save(c, &blob, &len, &err), 0);
    assert_int_equal(train_restore(a, blob, len, &err), -EPROTO);
    assert_non_null(strstr(err.message, "not of a learning-rate sweep"));
    free(blob);
    train_free(c);
    train_free(a);
    job_spec_free(&ps);
    job_spec_free(&spec);
    cJSON_Delete(plain);
    cJSON_Delete(sj);
}

static void test_lr_finder_key_errors(void **state)
{
    (void)state;
    static const char *const bad[][2] = {
        {"{\"stop_factor\": 1}", "lr_finder.stop_factor"},
        {"{\"stop_factor\": \"4\"}", "lr_finder.stop_factor"},
        {"{\"stop\": 4}", "lr_finder"},
        {"4", "lr_finder"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cJSON *j = cJSON_Parse(REG_JOB);
        cJSON_AddItemToObject(j, "lr_finder", cJSON_Parse(bad[i][0]));
        job_spec s;
        an_err err;
        if (job_spec_parse(j, &s, &err) == 0)
            fail_msg("lr_finder %s accepted", bad[i][0]);
        if (strncmp(err.field, bad[i][1], strlen(bad[i][1])) != 0)
            fail_msg("lr_finder %s: field %s (%s)", bad[i][0], err.field, err.message);
        cJSON_Delete(j);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_smoothing_is_debiased_ema),
        cmocka_unit_test(test_divergence_rule),
        cmocka_unit_test(test_suggestions_on_a_valley),
        cmocka_unit_test(test_steepest_is_on_the_way_down),
        cmocka_unit_test(test_zero_lr_steps_are_left_out),
        cmocka_unit_test(test_bad_arguments_and_short_sweeps),
        cmocka_unit_test(test_suggestions_in_the_analytic_range),
        cmocka_unit_test(test_finder_job_sweeps_its_range),
        cmocka_unit_test(test_finder_request_errors),
        cmocka_unit_test(test_report_shape),
        cmocka_unit_test(test_sweep_resumes_bit_for_bit),
        cmocka_unit_test(test_lr_finder_key_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
