/* fuzz_dsconfig — the schedule preview and the scheduler's life cycle on arbitrary bytes.
 *
 * The input is the body of POST /v1/schedules/preview: {"ds_config": {…}, "steps": N,
 * "param_groups": [{"lr": x}, …]} (or a job spec, or a bare ds_config). sched_preview runs
 * on it (at most FUZZ_MAX_STEPS steps, so an input takes milliseconds). When the scheduler
 * block builds, the scheduler is stepped, saved, restored into a second scheduler built from
 * the same block, and both must then step to the same bits: the checkpoint contract. A
 * truncated state must be refused. The streaming preview must give exactly the tree's JSON,
 * and its CSV form one line per step after the header. */
#include "tests/fuzz/fuzz.h"

#include <math.h>
#include <string.h>

#include "core/config.h"
#include "core/optim.h"
#include "core/sched.h"

#define FUZZ_MAX_STEPS 2000
#define FUZZ_LIFE_STEPS 40 /* steps before and after the save */

/* The preview's own environment, worked out again from the body: the optimizer's lr, betas
 * and momentum, and each param group's lr. Anything malformed falls back to a fixed value:
 * the point is to reach sched_create with many blocks, not to validate the body twice. */
static void env_of(const cJSON *body, const cJSON *ds, int64_t steps, sched_env *env)
{
    memset(env, 0, sizeof *env);
    optim_cfg cfg;
    if (optim_parse(cJSON_GetObjectItemCaseSensitive(ds, "optimizer"), "optimizer", &cfg, NULL,
                    NULL) != 0) {
        memset(&cfg, 0, sizeof cfg);
        cfg.type = OPTIM_ADAM;
        cfg.lr = 0.001;
        cfg.beta1 = 0.9;
        cfg.beta2 = 0.999;
    }
    env->ngroups = 1;
    env->base_lr[0] = cfg.lr;
    const cJSON *pg = ds != body ? cJSON_GetObjectItemCaseSensitive(body, "param_groups") : NULL;
    const cJSON *g, *list = cJSON_IsArray(pg) ? pg : NULL;
    int n = 0;
    cJSON_ArrayForEach(g, list) {
        if (n == SCHED_MAX_GROUPS)
            break;
        const cJSON *lr = cJSON_GetObjectItemCaseSensitive(g, "lr");
        env->base_lr[n++] = cJSON_IsNumber(lr) && lr->valuedouble >= 0 ? lr->valuedouble : cfg.lr;
    }
    if (n)
        env->ngroups = n;
    env->has_betas = optim_has_betas(&cfg);
    env->has_momentum = optim_has_momentum(&cfg);
    env->beta1 = cfg.beta1;
    env->beta2 = cfg.beta2;
    env->momentum = cfg.momentum;
    env->total_steps = steps;
    env->train_batch_size = 8;
}

/* A validation loss for step k that rises and falls, with gaps, so ReduceLROnPlateau both
 * waits and reduces. */
static double metric_at(int k)
{
    if (k % 3 == 2)
        return NAN;
    return 1.0 / (1 + k % 7) + 0.01 * (k % 5);
}

static void same_values(const sched *a, const sched *b)
{
    int n = sched_ngroups(a);
    FUZZ_CHECK(n == sched_ngroups(b) && sched_steps(a) == sched_steps(b));
    FUZZ_CHECK(memcmp(sched_lr(a), sched_lr(b), (size_t)n * sizeof(double)) == 0);
    FUZZ_CHECK((sched_mom(a) == NULL) == (sched_mom(b) == NULL));
    if (sched_mom(a))
        FUZZ_CHECK(memcmp(sched_mom(a), sched_mom(b), (size_t)n * sizeof(double)) == 0);
    FUZZ_CHECK((sched_beta2(a) == NULL) == (sched_beta2(b) == NULL));
    if (sched_beta2(a))
        FUZZ_CHECK(memcmp(sched_beta2(a), sched_beta2(b), (size_t)n * sizeof(double)) == 0);
}

static void life_cycle(const cJSON *block, const sched_env *env)
{
    sched *a, *b;
    an_err err;
    cJSON *warnings = cJSON_CreateArray();
    if (sched_create(&a, block, "ds_config.scheduler", env, &err, warnings) != 0) {
        FUZZ_CHECK(err.message[0] != 0);
        cJSON_Delete(warnings);
        return;
    }
    FUZZ_CHECK(sched_ngroups(a) == env->ngroups);
    for (int k = 0; k < FUZZ_LIFE_STEPS; k++)
        sched_step(a, metric_at(k));
    FUZZ_CHECK(sched_steps(a) == FUZZ_LIFE_STEPS);

    size_t len = sched_state_size(a);
    unsigned char *buf = malloc(len + 1);
    FUZZ_CHECK(buf != NULL);
    FUZZ_CHECK(sched_save(a, buf, len) == 0);
    if (len > 0)
        FUZZ_CHECK(sched_save(a, buf, len - 1) != 0);
    FUZZ_CHECK(sched_create(&b, block, "ds_config.scheduler", env, &err, NULL) == 0);
    if (len > 0)
        FUZZ_CHECK(sched_load(b, buf, len - 1, &err) != 0);
    FUZZ_CHECK(sched_load(b, buf, len, &err) == 0);
    same_values(a, b);
    for (int k = FUZZ_LIFE_STEPS; k < 2 * FUZZ_LIFE_STEPS; k++) {
        sched_step(a, metric_at(k));
        sched_step(b, metric_at(k));
        same_values(a, b);
    }
    free(buf);
    sched_free(a);
    sched_free(b);
    cJSON_Delete(warnings);
}

/* The whole text of a streaming preview, read in small uneven pieces. */
static char *stream_text(const cJSON *body, int64_t override, int csv, size_t *len)
{
    sched_preview_stream *ps;
    an_err err;
    if (sched_preview_open(body, override, csv, &ps, &err) != 0)
        return NULL;
    size_t cap = 1 << 16, n = 0, piece = 1;
    char *text = malloc(cap + 1);
    FUZZ_CHECK(text != NULL);
    for (;;) {
        if (cap - n < 4096) {
            cap *= 2;
            text = realloc(text, cap + 1);
            FUZZ_CHECK(text != NULL);
        }
        size_t got = sched_preview_read(ps, text + n, piece);
        FUZZ_CHECK(got <= piece);
        if (got == 0)
            break;
        n += got;
        piece = piece % 4000 + 7;
    }
    sched_preview_close(ps);
    text[n] = 0;
    *len = n;
    return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *body;
    if (json_parse_text((const char *)data, size, &body, NULL) != 0)
        return 0;
    const cJSON *steps_item = cJSON_GetObjectItemCaseSensitive(body, "steps");
    int64_t steps = FUZZ_MAX_STEPS / 4, override = steps;
    if (cJSON_IsNumber(steps_item) && steps_item->valuedouble >= 1 &&
        steps_item->valuedouble <= FUZZ_MAX_STEPS) {
        steps = (int64_t)steps_item->valuedouble;
        override = 0;
    }

    cJSON *out = NULL;
    an_err err;
    if (sched_preview(body, override, &out, &err) == 0) {
        FUZZ_CHECK(cJSON_IsObject(out));
        const cJSON *jstep = cJSON_GetObjectItemCaseSensitive(out, "step");
        const cJSON *jlr = cJSON_GetObjectItemCaseSensitive(out, "lr");
        FUZZ_CHECK(cJSON_IsArray(jstep) && cJSON_IsArray(jlr));
        int n = cJSON_GetArraySize(jstep);
        FUZZ_CHECK(n >= 1 && n <= FUZZ_MAX_STEPS);
        const cJSON *row;
        cJSON_ArrayForEach(row, jlr) FUZZ_CHECK(cJSON_GetArraySize(row) == n);
        char *text = cJSON_PrintUnformatted(out);
        FUZZ_CHECK(text != NULL);
        /* What the API sends must be JSON: a raw number item printed as "nan" or "inf"
         * would not be. */
        cJSON *back = cJSON_Parse(text);
        if (!back)
            fprintf(stderr, "preview is not JSON: %.300s\n", text);
        FUZZ_CHECK(back != NULL);
        cJSON_Delete(back);

        size_t slen = 0;
        char *streamed = stream_text(body, override, 0, &slen);
        FUZZ_CHECK(streamed != NULL);
        /* The stream is the tree's text and the newline every JSON answer ends with. */
        size_t tl = strlen(text);
        int same = slen == tl + 1 && strncmp(streamed, text, tl) == 0 && streamed[tl] == '\n';
        if (!same)
            fprintf(stderr, "stream differs:\n%.300s\n%.300s\n", streamed, text);
        FUZZ_CHECK(same);
        free(streamed);
        char *csv = stream_text(body, override, 1, &slen);
        FUZZ_CHECK(csv != NULL);
        size_t lines = 0;
        for (size_t i = 0; i < slen; i++)
            lines += csv[i] == '\n';
        FUZZ_CHECK(lines == (size_t)n + 1 && slen > 0 && csv[slen - 1] == '\n');
        free(csv);
        free(text);
        cJSON_Delete(out);
    } else {
        FUZZ_CHECK(out == NULL && err.message[0] != 0);
    }

    const cJSON *ds = cJSON_GetObjectItemCaseSensitive(body, "ds_config");
    if (!cJSON_IsObject(ds))
        ds = body;
    const cJSON *block = cJSON_GetObjectItemCaseSensitive(ds, "scheduler");
    if (block) {
        sched_env env;
        env_of(body, ds, steps, &env);
        life_cycle(block, &env);
    }
    cJSON_Delete(body);
    return 0;
}
