/* fuzz_lrfind — the LR finder's request (core/lrfind.h lrfind_request) on arbitrary bytes: the
 * body of POST /v1/lr_finder and the input of `anneald lr-find`.
 *
 * The input is parsed as the API parses a body (json_parse_text). lrfind_request must either
 * fail with a message and a terminated field, giving no spec and leaving the body as it was,
 * or give options within their ranges and a job spec that is a valid job of exactly `steps`
 * steps whose schedule sweeps the lr of group 0 from min_lr at the first step, growing every
 * step, to max_lr at the last, with "lr_finder": {"stop_factor"} as asked. */
#include "tests/fuzz/fuzz.h"

#include <math.h>
#include <string.h>

#include "core/config.h"
#include "core/jsontext.h"
#include "core/lrfind.h"
#include "core/sched.h"

/* How far the swept lr may be from the exact one: ExponentialLR multiplies step by step, so
 * its rounding grows with the steps (1e5 steps stay near 1e-11). */
#define LR_TOL 1e-9

static int near(double a, double b)
{
    return fabs(a - b) <= LR_TOL * fabs(b);
}

static void check_sweep(const lrfind_req *q, const cJSON *spec)
{
    job_spec js;
    an_err e;
    if (job_spec_parse(spec, &js, &e) != 0) {
        fprintf(stderr, "the finder's job: %s: %s\n", e.field, e.message);
        FUZZ_CHECK(!"the finder's job spec parses");
    }
    FUZZ_CHECK(js.steps == q->steps && js.epochs == 0);
    const cJSON *lf = cJSON_GetObjectItemCaseSensitive(spec, "lr_finder");
    const cJSON *sf = cJSON_GetObjectItemCaseSensitive(lf, "stop_factor");
    FUZZ_CHECK(cJSON_IsNumber(sf) && sf->valuedouble == q->stop_factor);
    FUZZ_CHECK(js.scheduler != NULL);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(js.scheduler, "type");
    FUZZ_CHECK(cJSON_IsString(type) &&
               strcmp(type->valuestring, q->linear ? "LRRangeTest" : "ExponentialLR") == 0);

    sched_env env;
    int64_t val = 0, rows = job_spec_data_samples(&js);
    job_spec_sched_env(&js, job_spec_train_samples(&js, rows > 0 ? rows : 1000, &val), &env);
    sched *s;
    if (sched_create(&s, js.scheduler, "ds_config.scheduler", &env, &e, NULL) != 0) {
        fprintf(stderr, "the finder's schedule: %s: %s\n", e.field, e.message);
        FUZZ_CHECK(!"the finder's schedule builds");
    }
    double prev = sched_lr(s)[0];
    if (!near(prev, q->min_lr)) {
        fprintf(stderr, "step 1 trains at %.17g, min_lr %.17g\n", prev, q->min_lr);
        FUZZ_CHECK(!"the first step trains at min_lr");
    }
    for (int64_t i = 1; i < q->steps; i++) {
        sched_step(s, NAN);
        double lr = sched_lr(s)[0];
        if (!(lr > prev) || !isfinite(lr)) {
            fprintf(stderr, "step %lld trains at %.17g after %.17g\n", (long long)i + 1, lr,
                    prev);
            FUZZ_CHECK(!"the lr grows every step");
        }
        prev = lr;
    }
    if (!near(prev, q->max_lr)) {
        fprintf(stderr, "step %lld trains at %.17g, max_lr %.17g\n", (long long)q->steps, prev,
                q->max_lr);
        FUZZ_CHECK(!"the last step trains at max_lr");
    }
    sched_free(s);
    job_spec_free(&js);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *body;
    an_err err;
    if (json_parse_text((const char *)data, size, &body, &err) != 0)
        return 0;
    /* as text: cJSON_Compare finds a number that overflowed to inf unequal to itself */
    char *before = cJSON_PrintUnformatted(body);
    FUZZ_CHECK(before != NULL);
    lrfind_req q;
    cJSON *spec = (cJSON *)1;
    an_err_clear(&err);
    int rc = lrfind_request(body, &q, &spec, &err);
    char *after = cJSON_PrintUnformatted(body);
    FUZZ_CHECK(after && strcmp(before, after) == 0); /* the body is only read */
    cJSON_free(before);
    cJSON_free(after);
    if (rc) {
        FUZZ_CHECK(spec == NULL);
        FUZZ_CHECK(memchr(err.message, 0, sizeof err.message) && err.message[0]);
        FUZZ_CHECK(memchr(err.field, 0, sizeof err.field) != NULL);
        cJSON_Delete(body);
        return 0;
    }
    FUZZ_CHECK(spec != NULL);
    FUZZ_CHECK(q.min_lr > 0 && q.min_lr < q.max_lr && isfinite(q.max_lr / q.min_lr));
    FUZZ_CHECK(q.steps >= LRFIND_MIN_POINTS && q.steps <= LRFIND_MAX_STEPS);
    FUZZ_CHECK(q.stop_factor > 1 && q.stop_factor <= LRFIND_STOP_MAX);
    check_sweep(&q, spec);
    cJSON_Delete(spec);
    cJSON_Delete(body);
    return 0;
}
