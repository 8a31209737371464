/* The gpt model against an independent PyTorch implementation (tests/refdata/gpt/, made by
 * make_gpt_ref.py there): the same explicit initial tensors, the same inline text through the
 * char tokenizer, AdamW (lr 1e-3, betas (0.9, 0.99), weight decay 0.1 on 2-D tensors only,
 * clip 1.0) over the windows in order. Every step's loss must agree within 1e-4 and every
 * weight after the last step within 2e-3. Also: model.init errors name their path and change
 * nothing. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/unit/testutil.h"
#include "core/gpt.h"
#include "core/optim.h"
#include "core/text.h"

static int jint(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    assert_true(cJSON_IsNumber(v));
    return v->valueint;
}

static void run_case(const char *file)
{
    cJSON *ref = tu_load_json(file);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(ref, "model");
    const char *text = cJSON_GetObjectItemCaseSensitive(ref, "text")->valuestring;
    gpt_shape s = {.vocab_size = jint(m, "vocab_size"), .block_size = jint(m, "block_size"),
                   .n_layer = jint(m, "n_layer"), .n_head = jint(m, "n_head"),
                   .n_embd = jint(m, "n_embd"),
                   .bias = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "bias")),
                   .gelu = strcmp(cJSON_GetObjectItemCaseSensitive(m, "gelu")->valuestring,
                                  "erf") == 0 ? GPT_GELU_ERF : GPT_GELU_TANH};
    int steps = jint(ref, "steps"), B = jint(ref, "batch"), T = s.block_size;

    text_vocab v;
    int32_t *tok;
    size_t n;
    an_err err;
    assert_int_equal(text_tokenize(text, strlen(text), TEXT_CHAR, (size_t)T + 1, "data.text", &v,
                                   &tok, &n, &err), 0);
    assert_int_equal(v.size, s.vocab_size);
    size_t K = text_windows(n, T);

    gpt *g;
    assert_int_equal(gpt_create(&g, &s, 0, B, &err), 0);
    if (gpt_set_init(g, cJSON_GetObjectItemCaseSensitive(ref, "init"), &err))
        fail_msg("init: %s: %s", err.field, err.message);

    cJSON *blk = cJSON_Parse("{\"type\":\"AdamW\",\"params\":{\"lr\":1e-3,\"betas\":[0.9,0.99],"
                             "\"eps\":1e-8,\"weight_decay\":0.1}}");
    optim_cfg oc;
    assert_int_equal(optim_parse(blk, "ds_config.optimizer", &oc, &err, NULL), 0);
    cJSON_Delete(blk);
    optim_tensor ts[GPT_MAX_TENSORS];
    for (int i = 0; i < g->ntensors; i++)
        ts[i] = (optim_tensor){g->tensors[i].off, g->tensors[i].n, g->tensors[i].ndim == 1};
    optim_group groups[2] = {{.lr = 1e-3, .weight_decay = 0.1, .beta1 = 0.9, .beta2 = 0.99},
                             {.lr = 1e-3, .weight_decay = 0.0, .beta1 = 0.9, .beta2 = 0.99}};
    optim o;
    assert_int_equal(optim_init(&o, &oc, OPTIM_F32, g->nparams, ts, g->ntensors, groups, 2,
                                &err), 0);

    int32_t *idx = malloc((size_t)B * T * sizeof *idx), *tg = malloc((size_t)B * T * sizeof *tg);
    const cJSON *losses = cJSON_GetObjectItemCaseSensitive(ref, "losses");
    assert_int_equal(cJSON_GetArraySize(losses), steps);
    for (int st = 0; st < steps; st++) {
        for (int r = 0; r < B; r++)
            text_window(tok, ((size_t)st * B + r) % K, T, idx + (size_t)r * T, tg + (size_t)r * T);
        double loss;
        assert_int_equal(gpt_forward(g, idx, tg, B, T, &loss), 0);
        double want = cJSON_GetArrayItem(losses, st)->valuedouble;
        if (fabs(loss - want) > 1e-4)
            fail_msg("%s step %d: loss %.7f, torch %.7f", file, st, loss, want);
        assert_int_equal(gpt_backward(g, g->grads, 0, 1.0f), 0);
        optim_clip_grad_norm(g->grads, g->nparams, OPTIM_F32, 1.0);
        optim_step(&o, g->params, g->grads);
    }
    /* Final weights: the reference's final tensors loaded into a second model. */
    gpt *want;
    assert_int_equal(gpt_create(&want, &s, 0, 1, &err), 0);
    assert_int_equal(gpt_set_init(want, cJSON_GetObjectItemCaseSensitive(ref, "final"), &err), 0);
    double maxd = 0, moved = 0;
    gpt *init;
    assert_int_equal(gpt_create(&init, &s, 0, 1, &err), 0);
    assert_int_equal(gpt_set_init(init, cJSON_GetObjectItemCaseSensitive(ref, "init"), &err), 0);
    for (size_t i = 0; i < g->nparams; i++) {
        maxd = fmax(maxd, fabs((double)g->params[i] - want->params[i]));
        moved = fmax(moved, fabs((double)want->params[i] - init->params[i]));
    }
    if (maxd > 2e-3)
        fail_msg("%s: weights differ from torch's by up to %g", file, maxd);
    /* The comparison is meaningful only if training moved the weights well beyond it. */
    assert_true(moved > 4e-3);
    gpt_free(init);
    gpt_free(want);
    free(idx);
    free(tg);
    optim_free(&o);
    gpt_free(g);
    free(tok);
    text_vocab_free(&v);
    cJSON_Delete(ref);
}

static void test_bias_tanh(void **state)
{
    (void)state;
    run_case("tests/refdata/gpt/gpt_bias_tanh.json");
}

static void test_nobias_erf(void **state)
{
    (void)state;
    run_case("tests/refdata/gpt/gpt_nobias_erf.json");
}

static void test_init_errors(void **state)
{
    (void)state;
    gpt_shape s = {.vocab_size = 5, .block_size = 4, .n_layer = 1, .n_head = 2, .n_embd = 4,
                   .bias = 0, .gelu = GPT_GELU_TANH};
    gpt *g;
    an_err err;
    assert_int_equal(gpt_create(&g, &s, 1, 1, &err), 0);
    float *keep = malloc(g->nparams * sizeof *keep);
    memcpy(keep, g->params, g->nparams * sizeof *keep);
    const char *bad[][2] = {
        {"{\"transformer.h.0.ln_1.bias\":[1,2,3,4]}", "model.init.transformer.h.0.ln_1.bias"},
        {"{\"transformer.ln_f.weight\":[1,2,3]}", "model.init.transformer.ln_f.weight"},
        {"{\"transformer.ln_f.weight\":[1,2,\"x\",4]}", "model.init.transformer.ln_f.weight[2]"},
        {"{\"transformer.wpe.weight\":[[1,2,3,4],[1,2,3,4],[1,2,3,4],[1,2,3]]}",
         "model.init.transformer.wpe.weight[3]"},
        {"{\"transformer.ln_f.weight\":[9,9,9,9],\"transformer.wpe.weight\":[[1]]}",
         "model.init.transformer.wpe.weight"},
        {"[1]", "model.init"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cJSON *j = cJSON_Parse(bad[i][0]);
        assert_int_equal(gpt_set_init(g, j, &err), -EINVAL);
        assert_string_equal(err.field, bad[i][1]);
        assert_memory_equal(g->params, keep, g->nparams * sizeof *keep);
        cJSON_Delete(j);
    }
    cJSON *j = cJSON_Parse("{\"transformer.ln_f.weight\":[9,8,7,6]}");
    assert_int_equal(gpt_set_init(g, j, &err), 0);
    assert_true(g->params[gpt_find(g, "transformer.ln_f.weight")->off + 1] == 8.0f);
    cJSON_Delete(j);
    free(keep);
    gpt_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bias_tanh),
        cmocka_unit_test(test_nobias_erf),
        cmocka_unit_test(test_init_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
