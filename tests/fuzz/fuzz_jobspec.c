/* fuzz_jobspec — the job spec parser (core/config.h) on arbitrary bytes.
 *
 * The input is the body of POST /v1/jobs. Whatever it is, job_spec_parse_text returns (no
 * crash, leak or undefined behaviour) with either an error that names a path or a spec.
 * An accepted spec must also be usable by what consumes it next: its run length, split,
 * scheduler env and tensor list, and its normalized form (what GET /v1/jobs/{id} shows and a
 * client may submit again) must parse to the same run. */
#include "tests/fuzz/fuzz.h"

#include <string.h>

#include "core/config.h"
#include "core/config_gpt.h"
#include "core/sched.h"

/* Fields of two parses of the same job that must agree. */
static void same_run(const job_spec *a, const job_spec *b)
{
    FUZZ_CHECK(a->model.type == b->model.type);
    FUZZ_CHECK(a->model.inputs == b->model.inputs && a->model.outputs == b->model.outputs);
    FUZZ_CHECK(model_spec_params(&a->model) == model_spec_params(&b->model));
    FUZZ_CHECK(a->loss == b->loss && a->data.type == b->data.type);
    FUZZ_CHECK(a->steps == b->steps && a->epochs == b->epochs);
    FUZZ_CHECK(a->train_batch_size == b->train_batch_size && a->micro_batch == b->micro_batch &&
               a->grad_accum == b->grad_accum);
    FUZZ_CHECK(a->optim.type == b->optim.type && a->ngroups == b->ngroups);
    FUZZ_CHECK((a->scheduler == NULL) == (b->scheduler == NULL));
}

static void use_spec(const job_spec *s)
{
    int64_t rows = job_spec_data_samples(s);
    FUZZ_CHECK(rows == -1 || rows >= 1);
    int64_t probe[] = {1, 2, 7, 1000, rows > 0 ? rows : 1, CFG_MAX_SAMPLES};
    for (size_t i = 0; i < sizeof probe / sizeof probe[0]; i++) {
        int64_t val = -1;
        int64_t train = job_spec_train_samples(s, probe[i], &val);
        FUZZ_CHECK(train >= 0 && val >= 0 && train + val == probe[i]);
        int64_t total = job_spec_total_steps(s, probe[i]);
        FUZZ_CHECK(s->steps ? total == s->steps : total >= 0);
        if (train >= 1)
            FUZZ_CHECK(total >= 1);
        sched_env env;
        job_spec_sched_env(s, train, &env);
        FUZZ_CHECK(env.ngroups >= 1 && env.ngroups <= SCHED_MAX_GROUPS);
    }
    if (s->model.type == MODEL_GPT) {
        /* a gpt trains on text, within the parameter limit once its vocabulary is known */
        gpt_shape g;
        cfg_gpt_shape(&s->model, &g);
        FUZZ_CHECK(s->data.type == DATA_TEXT && s->loss == LOSS_CROSS_ENTROPY);
        FUZZ_CHECK(g.vocab_size == 0 || gpt_param_count(&g) <= CFG_MAX_PARAMS);
        FUZZ_CHECK(gpt_shape_check(&(gpt_shape){.vocab_size = g.vocab_size ? g.vocab_size : 1,
                                                .block_size = g.block_size, .n_layer = g.n_layer,
                                                .n_head = g.n_head, .n_embd = g.n_embd,
                                                .bias = g.bias, .gelu = g.gelu}, NULL) == 0);
        FUZZ_CHECK(cJSON_IsArray(s->warnings) && cJSON_IsObject(s->normalized));
        return;
    }
    spec_tensor t[CFG_MAX_TENSORS];
    int nt = model_spec_tensors(&s->model, t);
    FUZZ_CHECK(nt >= 2 && nt <= CFG_MAX_TENSORS);
    int64_t params = 0;
    for (int i = 0; i < nt; i++)
        params += (int64_t)t[i].shape[0] * (t[i].rank == 2 ? t[i].shape[1] : 1);
    FUZZ_CHECK(params == model_spec_params(&s->model) && params <= CFG_MAX_PARAMS);
    FUZZ_CHECK(cJSON_IsArray(s->warnings) && cJSON_IsObject(s->normalized));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    job_spec s;
    an_err err;
    memset(&s, 0, sizeof s);
    if (job_spec_parse_text((const char *)data, size, &s, &err) != 0) {
        /* The error is there to be shown: a terminated message, never empty. */
        FUZZ_CHECK(memchr(err.message, 0, sizeof err.message) && err.message[0]);
        FUZZ_CHECK(memchr(err.field, 0, sizeof err.field) != NULL);
        job_spec_free(&s); /* freed already; must stay safe */
        return 0;
    }
    use_spec(&s);

    char *text = cJSON_PrintUnformatted(s.normalized);
    FUZZ_CHECK(text != NULL);
    job_spec again;
    memset(&again, 0, sizeof again);
    int rc = job_spec_parse_text(text, strlen(text), &again, &err);
    if (rc)
        fprintf(stderr, "normalized spec rejected: %s: %s\n%s\n", err.field, err.message, text);
    FUZZ_CHECK(rc == 0);
    same_run(&s, &again);
    job_spec_free(&again);
    free(text);
    job_spec_free(&s);
    job_spec_free(&s);
    return 0;
}
