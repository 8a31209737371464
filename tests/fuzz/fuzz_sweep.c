/* fuzz_sweep — the sweep parser (core/sweep.h) on arbitrary bytes: the body of POST /v1/sweeps.
 *
 * The input is parsed as the API parses a body (json_parse_text). sweep_parse must either
 * fail with a message and a terminated field, leaving the body as it was, or give a sweep
 * whose every proposed trial is what the service will run:
 *  - its counts within their limits (trials, parameters, max_concurrent, ASHA's eta and rungs);
 *  - each trial's parameters the ones it declared, a choice from its list, a draw inside its
 *    range; grid search walks every combination, the last parameter fastest;
 *  - each drawn value a valid job with the base's other settings (as each listed value is);
 *    a trial's job spec (the base with its values set) a valid job when it has one
 *    parameter (values that do not fit together fail their trial when it starts, as
 *    documented), and a valid trial measures the metric (validation for val_loss and
 *    val_acc, accuracy for val_acc);
 *  - no two parameters set the same value: the trial's spec does not depend on the order they
 *    are applied in;
 *  - the stored form (exact JSON text, read back by sweep_parse_stored) proposes the same
 *    trials, so a restarted daemon runs what was proposed. */
#include "tests/fuzz/fuzz.h"

#include <math.h>
#include <string.h>

#include "core/config.h"
#include "core/jsonnum.h"
#include "core/jsontext.h"
#include "core/loss.h"
#include "core/sweep.h"

/* At most this many trials of a sweep are turned into jobs per input (the first, the last and
 * some between): each is a full job-spec parse. */
#define CHECK_TRIALS 6

static int measures_accuracy(const job_spec *js)
{
    return js->model.type != MODEL_GPT && loss_is_classification(js->loss);
}

/* The parameters of a trial applied in the reverse order. */
static cJSON *reversed(const cJSON *params)
{
    cJSON *r = cJSON_CreateObject();
    FUZZ_CHECK(r != NULL);
    for (const cJSON *p = params->child ? params->child->prev : NULL; p;
         p = p == params->child ? NULL : p->prev)
        FUZZ_CHECK(cJSON_AddItemToObject(r, p->string, cJSON_Duplicate(p, 1)));
    return r;
}

static void check_trial(const sweep_spec *s, int k, const cJSON *params)
{
    FUZZ_CHECK(cJSON_IsObject(params) && cJSON_GetArraySize(params) == s->nparams);
    int rest = k;
    int pick[SWEEP_MAX_PARAMS];
    for (int i = s->nparams - 1; i >= 0; i--) {
        pick[i] = s->params[i].nvalues ? rest % s->params[i].nvalues : 0;
        rest = s->params[i].nvalues ? rest / s->params[i].nvalues : rest;
    }
    int i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, params) {
        const sweep_param *p = &s->params[i];
        FUZZ_CHECK(strcmp(v->string, p->path) == 0);
        if (p->dist == SWEEP_CHOICE) {
            int found = 0;
            if (s->search == SWEEP_GRID)
                found = cJSON_Compare(v, cJSON_GetArrayItem(p->values, pick[i]), 1);
            for (const cJSON *c = p->values->child; c && !found; c = c->next)
                found = cJSON_Compare(v, c, 1);
            FUZZ_CHECK(found);
        } else {
            FUZZ_CHECK(cJSON_IsNumber(v) && v->valuedouble >= p->lo && v->valuedouble <= p->hi);
        }
        i++;
    }

    /* the job the trial runs */
    an_err e;
    cJSON *spec = NULL, *spec2 = NULL, *rev = reversed(params);
    FUZZ_CHECK(sweep_apply(s->base, params, &spec, &e) == 0);
    FUZZ_CHECK(sweep_apply(s->base, rev, &spec2, &e) == 0);
    if (!cJSON_Compare(spec, spec2, 1)) {
        fprintf(stderr, "trial %d: two parameters set the same value\n", k);
        FUZZ_CHECK(!"a trial's spec depends on the order of its parameters");
    }
    /* a drawn value alone must make a valid job (the parse checked every listed value) */
    for (i = 0; i < s->nparams; i++)
        if (s->params[i].dist != SWEEP_CHOICE) {
            cJSON *one = cJSON_CreateObject(), *alone = NULL;
            FUZZ_CHECK(one && cJSON_AddItemToObject(
                                  one, s->params[i].path,
                                  cJSON_Duplicate(cJSON_GetArrayItem(params, i), 1)));
            FUZZ_CHECK(sweep_apply(s->base, one, &alone, &e) == 0);
            job_spec js;
            if (job_spec_parse(alone, &js, &e) != 0) {
                fprintf(stderr, "trial %d, %s = %.17g: %s: %s\n", k, s->params[i].path,
                        cJSON_GetArrayItem(params, i)->valuedouble, e.field, e.message);
                FUZZ_CHECK(!"a drawn value makes a valid job");
            }
            job_spec_free(&js);
            cJSON_Delete(alone);
            cJSON_Delete(one);
        }
    /* Values that do not fit together fail their trial when it starts (docs/EXPERIMENTS.md);
     * a trial of one parameter has nothing to fit, and a valid trial measures the metric. */
    job_spec js;
    if (job_spec_parse(spec, &js, &e) != 0) {
        if (s->nparams > 1) {
            cJSON_Delete(spec);
            cJSON_Delete(spec2);
            cJSON_Delete(rev);
            return;
        }
        char *t = cJSON_PrintUnformatted(params);
        fprintf(stderr, "trial %d %s: %s: %s\n", k, t ? t : "?", e.field, e.message);
        cJSON_free(t);
        FUZZ_CHECK(!"a proposed trial of one parameter is a valid job");
    }
    if (strcmp(s->metric, "loss") != 0 && !(js.val_fraction > 0 || js.val_split_test)) {
        fprintf(stderr, "trial %d: metric %s without validation\n", k, s->metric);
        FUZZ_CHECK(!"a trial validates when the metric needs it");
    }
    if (strcmp(s->metric, "val_acc") == 0 && !measures_accuracy(&js)) {
        fprintf(stderr, "trial %d: metric val_acc without accuracy\n", k);
        FUZZ_CHECK(!"a trial measures accuracy when the metric is val_acc");
    }
    job_spec_free(&js);
    cJSON_Delete(spec);
    cJSON_Delete(spec2);
    cJSON_Delete(rev);
}

static void check_sweep(const sweep_spec *s)
{
    FUZZ_CHECK(s->nparams >= 1 && s->nparams <= SWEEP_MAX_PARAMS);
    FUZZ_CHECK(s->trials >= 1 && s->trials <= SWEEP_MAX_TRIALS);
    FUZZ_CHECK(s->max_concurrent >= 1 && s->max_concurrent <= 64);
    FUZZ_CHECK(memchr(s->name, 0, sizeof s->name) && memchr(s->metric, 0, sizeof s->metric));
    FUZZ_CHECK(s->maximize == 0 || s->maximize == 1);
    if (s->search == SWEEP_GRID) {
        double combos = 1;
        for (int i = 0; i < s->nparams; i++) {
            FUZZ_CHECK(s->params[i].dist == SWEEP_CHOICE);
            combos *= s->params[i].nvalues;
        }
        FUZZ_CHECK(combos == s->trials);
    }
    for (int i = 0; i < s->nparams; i++) {
        const sweep_param *p = &s->params[i];
        if (p->dist == SWEEP_CHOICE)
            FUZZ_CHECK(p->nvalues >= 1 && p->nvalues == cJSON_GetArraySize(p->values));
        else
            FUZZ_CHECK(isfinite(p->lo) && isfinite(p->hi) && p->lo < p->hi &&
                       (p->dist == SWEEP_UNIFORM || p->lo > 0));
    }
    if (s->asha) {
        FUZZ_CHECK(s->min_steps >= 1 && s->eta >= 2 && s->eta <= 100);
        int64_t rungs[SWEEP_MAX_RUNGS];
        const int64_t totals[] = {1, s->min_steps, s->min_steps + 1, 1000000, CFG_INT_MAX};
        for (size_t t = 0; t < sizeof totals / sizeof totals[0]; t++) {
            int n = sweep_rungs(s, totals[t], rungs, SWEEP_MAX_RUNGS);
            FUZZ_CHECK(n >= 0 && n <= SWEEP_MAX_RUNGS);
            FUZZ_CHECK(n == 0 || rungs[0] == s->min_steps);
            for (int r = 0; r < n; r++)
                FUZZ_CHECK(rungs[r] < totals[t] && (r == 0 || rungs[r] > rungs[r - 1]));
        }
    }
}

/* What the service stores (the body as exact JSON text) read back as it reads a stored sweep. */
static void check_stored(const sweep_spec *s)
{
    char *text = json_print_exact(s->json);
    FUZZ_CHECK(text != NULL);
    cJSON *back = cJSON_Parse(text);
    cJSON_free(text);
    FUZZ_CHECK(back != NULL);
    sweep_spec t;
    an_err e;
    if (sweep_parse_stored(back, &t, &e) != 0) {
        fprintf(stderr, "stored sweep refused: %s: %s\n", e.field, e.message);
        FUZZ_CHECK(!"a stored sweep reads back");
    }
    cJSON_Delete(back);
    FUZZ_CHECK(t.nparams == s->nparams && t.trials == s->trials && t.search == s->search);
    FUZZ_CHECK(t.seed == s->seed && t.asha == s->asha && t.maximize == s->maximize);
    FUZZ_CHECK(strcmp(t.metric, s->metric) == 0 && strcmp(t.name, s->name) == 0);
    FUZZ_CHECK(t.max_concurrent == s->max_concurrent);
    FUZZ_CHECK(!s->asha || (t.min_steps == s->min_steps && t.eta == s->eta));
    for (int k = 0; k < s->trials && k < 64; k++) {
        cJSON *a, *b;
        FUZZ_CHECK(sweep_trial_params(s, k, &a, &e) == 0);
        FUZZ_CHECK(sweep_trial_params(&t, k, &b, &e) == 0);
        FUZZ_CHECK(cJSON_Compare(a, b, 1));
        cJSON_Delete(a);
        cJSON_Delete(b);
    }
    sweep_free(&t);
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
    sweep_spec s;
    an_err_clear(&err);
    int rc = sweep_parse(body, &s, &err);
    char *after = cJSON_PrintUnformatted(body);
    FUZZ_CHECK(after && strcmp(before, after) == 0); /* the body is only read */
    cJSON_free(before);
    cJSON_free(after);
    if (rc) {
        FUZZ_CHECK(memchr(err.message, 0, sizeof err.message) && err.message[0]);
        FUZZ_CHECK(memchr(err.field, 0, sizeof err.field) != NULL);
        FUZZ_CHECK(s.base == NULL && s.json == NULL); /* freed on failure */
        cJSON_Delete(body);
        return 0;
    }
    check_sweep(&s);
    int ks[CHECK_TRIALS] = {0, s.trials - 1, s.trials / 2, s.trials / 3, 1, s.trials - 2};
    for (int i = 0; i < CHECK_TRIALS; i++) {
        int k = ks[i];
        int seen = k < 0 || k >= s.trials;
        for (int j = 0; j < i && !seen; j++)
            seen = ks[j] == k;
        if (seen)
            continue;
        cJSON *params;
        FUZZ_CHECK(sweep_trial_params(&s, k, &params, &err) == 0);
        check_trial(&s, k, params);
        cJSON_Delete(params);
    }
    cJSON *none;
    FUZZ_CHECK(sweep_trial_params(&s, s.trials, &none, &err) != 0);
    check_stored(&s);
    sweep_free(&s);
    cJSON_Delete(body);
    return 0;
}
