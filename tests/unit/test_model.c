/* Tests of core/model: gradients of every layer type and activation (with and without
 * dropout) against central differences, tensor names and offsets, initialisation (bounds,
 * determinism), init JSON, parameter-group globs, weight JSON, and the iris reference step. */
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
#include "core/config.h"
#include "core/loss.h"
#include "core/model.h"
#include "core/rng.h"

static model_spec mlp_spec(int in, int h1, int h2, int out, int act, double dropout)
{
    model_spec s = {.type = MODEL_MLP, .inputs = in, .outputs = out, .activation = act,
                    .dropout = dropout};
    s.hidden[s.nhidden++] = h1;
    if (h2)
        s.hidden[s.nhidden++] = h2;
    return s;
}

static double batch_loss(model *m, const float *x, int B, const float *y, int loss, int training)
{
    assert_int_equal(model_forward(m, x, B, training, 7, 1), 0);
    return loss_compute(loss, model_output(m), y, B, m->dims[m->nlayers], NULL);
}

/* Analytic gradients of every parameter against central differences of the double loss. */
static void grad_check(const model_spec *spec, int loss, int training)
{
    enum { B = 6 };
    model *m;
    an_err e;
    assert_int_equal(model_create(&m, spec, 11, B, &e), 0);
    int I = spec->inputs, O = spec->outputs;
    float *x = malloc(sizeof(float) * B * I), *y = malloc(sizeof(float) * B * O);
    float *dout = malloc(sizeof(float) * B * O);
    rng r;
    rng_init(&r, 5, 77, 0);
    for (int i = 0; i < B * I; i++)
        x[i] = (float)rng_normal(&r);
    for (int i = 0; i < B * O; i++)
        y[i] = loss == LOSS_CROSS_ENTROPY ? (float)rng_below(&r, O) : (float)rng_normal(&r);
    assert_int_equal(model_forward(m, x, B, training, 7, 1), 0);
    loss_compute(loss, model_output(m), y, B, O, dout);
    float *g = calloc(m->nparams, sizeof *g);
    assert_int_equal(model_backward(m, dout, g, 0), 0);
    double num2 = 0, den2 = 0, worst = 0;
    for (size_t i = 0; i < m->nparams; i++) {
        float keep = m->params[i];
        float hp = keep + 1e-2f, hm = keep - 1e-2f;
        m->params[i] = hp;
        double lp = batch_loss(m, x, B, y, loss, training);
        m->params[i] = hm;
        double lm = batch_loss(m, x, B, y, loss, training);
        m->params[i] = keep;
        double fd = (lp - lm) / ((double)hp - (double)hm);
        num2 += (fd - g[i]) * (fd - g[i]);
        den2 += fd * fd;
        double d = fabs(fd - g[i]) / (fabs(fd) + 1e-3);
        worst = d > worst ? d : worst;
    }
    /* Float forward passes and a step of 1e-2 (second-order error for smooth activations):
     * a few parts in a thousand. */
    double rel = sqrt(num2 / den2);
    if (rel > 5e-3 || worst > 5e-2)
        fail_msg("relative gradient error %g (worst element %g)", rel, worst);
    assert_true(den2 > 0);
    /* accumulate = 1 adds the same gradient again. */
    float *g2 = malloc(m->nparams * sizeof *g2);
    memcpy(g2, g, m->nparams * sizeof *g);
    assert_int_equal(model_forward(m, x, B, training, 7, 1), 0);
    assert_int_equal(model_backward(m, dout, g2, 1), 0);
    for (size_t i = 0; i < m->nparams; i++)
        assert_float_equal(g2[i], 2 * g[i], 1e-6 + 1e-6 * fabs(g[i]));
    free(g2);
    free(g);
    free(x);
    free(y);
    free(dout);
    model_free(m);
}

static void test_grad_linear(void **state)
{
    (void)state;
    model_spec s = {.type = MODEL_LINEAR, .inputs = 5, .outputs = 3};
    grad_check(&s, LOSS_MSE, 1);
    grad_check(&s, LOSS_CROSS_ENTROPY, 1);
    grad_check(&s, LOSS_MEAN, 0);
}

static void test_grad_mlp_activations(void **state)
{
    (void)state;
    for (int act = ACT_RELU; act <= ACT_SILU; act++) {
        model_spec s = mlp_spec(4, 7, 5, 3, act, 0.0);
        grad_check(&s, LOSS_MSE, 1);
        grad_check(&s, LOSS_BCE, 1);
    }
}

static void test_grad_mlp_dropout(void **state)
{
    (void)state;
    for (int act = ACT_RELU; act <= ACT_SILU; act++) {
        model_spec s = mlp_spec(4, 8, 6, 2, act, 0.3);
        grad_check(&s, LOSS_CROSS_ENTROPY, 1);
    }
}

static void test_dropout_behaviour(void **state)
{
    (void)state;
    model_spec s = mlp_spec(3, 400, 0, 1, ACT_RELU, 0.25);
    model *m;
    an_err e;
    assert_int_equal(model_create(&m, &s, 1, 2, &e), 0);
    float x[6] = {0.5f, -1, 2, 1, 1, 1};
    /* eval: no mask; training: about a quarter zeroed, the rest scaled by 4/3 */
    assert_int_equal(model_forward(m, x, 2, 0, 0, 0), 0);
    float eval_post[800];
    memcpy(eval_post, m->post[0], sizeof eval_post);
    assert_int_equal(model_forward(m, x, 2, 1, 3, 0), 0);
    int zeroed = 0, nonzero = 0;
    for (int i = 0; i < 800; i++) {
        if (eval_post[i] == 0.0f)
            continue;
        nonzero++;
        if (m->post[0][i] == 0.0f)
            zeroed++;
        else
            assert_float_equal(m->post[0][i], eval_post[i] / 0.75f, 1e-5 * fabs(eval_post[i]));
    }
    assert_in_range(zeroed * 100 / nonzero, 17, 33);
    float first[800];
    memcpy(first, m->post[0], sizeof first);
    assert_int_equal(model_forward(m, x, 2, 1, 3, 0), 0); /* same step, micro: same mask */
    assert_memory_equal(first, m->post[0], sizeof first);
    assert_int_equal(model_forward(m, x, 2, 1, 3, 1), 0); /* another micro-batch */
    assert_true(memcmp(first, m->post[0], sizeof first) != 0);
    assert_int_equal(model_forward(m, x, 2, 1, 4, 0), 0); /* another step */
    assert_true(memcmp(first, m->post[0], sizeof first) != 0);
    model_free(m);
}

static void test_tensor_layout(void **state)
{
    (void)state;
    model *m;
    an_err e;
    model_spec lin = {.type = MODEL_LINEAR, .inputs = 10, .outputs = 2};
    assert_int_equal(model_create(&m, &lin, 0, 8, &e), 0);
    assert_int_equal(m->ntensors, 2);
    assert_string_equal(m->tensors[0].name, "fc.weight");
    assert_string_equal(m->tensors[1].name, "fc.bias");
    assert_int_equal(m->tensors[0].off, 0);
    assert_int_equal(m->tensors[0].n, 20);
    assert_int_equal(m->tensors[0].shape[0], 2);
    assert_int_equal(m->tensors[0].shape[1], 10);
    assert_int_equal(m->tensors[1].off, 20);
    assert_int_equal(m->tensors[1].ndim, 1);
    assert_int_equal(m->nparams, 22);
    model_free(m);

    model_spec s = mlp_spec(4, 16, 8, 3, ACT_GELU, 0);
    assert_int_equal(model_create(&m, &s, 0, 8, &e), 0);
    static const char *names[] = {"fc1.weight", "fc1.bias", "fc2.weight",
                                  "fc2.bias",   "fc3.weight", "fc3.bias"};
    static const size_t offs[] = {0, 64, 80, 208, 216, 240}, ns[] = {64, 16, 128, 8, 24, 3};
    assert_int_equal(m->ntensors, 6);
    for (int t = 0; t < 6; t++) {
        assert_string_equal(m->tensors[t].name, names[t]);
        assert_int_equal(m->tensors[t].off, offs[t]);
        assert_int_equal(m->tensors[t].n, ns[t]);
        assert_ptr_equal(model_find(m, names[t]), &m->tensors[t]);
    }
    assert_int_equal(m->nparams, 243);
    assert_null(model_find(m, "fc.weight"));
    assert_null(model_find(m, "fc4.bias"));
    model_free(m);
}

static void test_init_bounds_and_determinism(void **state)
{
    (void)state;
    model_spec s = mlp_spec(25, 100, 0, 4, ACT_TANH, 0);
    model *a, *b, *c;
    an_err e;
    assert_int_equal(model_create(&a, &s, 42, 4, &e), 0);
    assert_int_equal(model_create(&b, &s, 42, 4, &e), 0);
    assert_int_equal(model_create(&c, &s, 43, 4, &e), 0);
    assert_memory_equal(a->params, b->params, a->nparams * sizeof(float));
    assert_true(memcmp(a->params, c->params, a->nparams * sizeof(float)) != 0);
    for (int t = 0; t < a->ntensors; t++) {
        const model_tensor *mt = &a->tensors[t];
        double bound = 1.0 / sqrt(mt->layer == 0 ? 25.0 : 100.0), mx = 0, sum = 0;
        for (size_t i = 0; i < mt->n; i++) {
            double v = a->params[mt->off + i];
            assert_true(fabs(v) <= bound);
            mx = fabs(v) > mx ? fabs(v) : mx;
            sum += v;
        }
        /* Uniform over the whole range: the largest value comes near the bound. */
        if (mt->n >= 100) {
            assert_true(mx > 0.95 * bound);
            assert_true(fabs(sum / mt->n) < 0.15 * bound);
        }
    }
    /* Re-initialising with the same seed gives the same bits. */
    memset(c->params, 0, c->nparams * sizeof(float));
    model_init_default(c, 42);
    assert_memory_equal(a->params, c->params, a->nparams * sizeof(float));
    model_free(a);
    model_free(b);
    model_free(c);
}

static void test_bad_specs(void **state)
{
    (void)state;
    model *m = (model *)1;
    an_err e;
    model_spec s = {.type = 9, .inputs = 1, .outputs = 1};
    assert_int_equal(model_create(&m, &s, 0, 1, &e), -EINVAL);
    assert_null(m);
    assert_string_equal(e.field, "model.type");
    s = (model_spec){.type = MODEL_LINEAR, .inputs = 0, .outputs = 1};
    assert_int_equal(model_create(&m, &s, 0, 1, &e), -EINVAL);
    assert_string_equal(e.field, "model.inputs");
    s = mlp_spec(3, 4, 0, 2, ACT_RELU, 1.0);
    assert_int_equal(model_create(&m, &s, 0, 1, &e), -EINVAL);
    assert_string_equal(e.field, "model.dropout");
    s = mlp_spec(3, 4, -2, 2, ACT_RELU, 0);
    assert_int_equal(model_create(&m, &s, 0, 1, &e), -EINVAL);
    assert_string_equal(e.field, "model.hidden[1]");
    s = mlp_spec(3, 4, 0, 2, 77, 0);
    assert_int_equal(model_create(&m, &s, 0, 1, &e), -EINVAL);
    assert_string_equal(e.field, "model.activation");
    s = mlp_spec(3, 4, 0, 2, ACT_RELU, 0);
    assert_int_equal(model_create(&m, &s, 0, 0, &e), -EINVAL);
    assert_int_equal(model_create(&m, &s, 0, 2, &e), 0);
    float x[3 * 3] = {0};
    assert_int_equal(model_forward(m, x, 3, 0, 0, 0), -EINVAL); /* more than max_batch */
    assert_int_equal(model_forward(m, x, 0, 0, 0, 0), -EINVAL);
    float g[32];
    assert_int_equal(model_backward(m, x, g, 0), -EINVAL); /* no forward yet */
    model_free(m);
}

static void test_init_json(void **state)
{
    (void)state;
    model *m;
    an_err e;
    model_spec s = {.type = MODEL_LINEAR, .inputs = 3, .outputs = 2};
    assert_int_equal(model_create(&m, &s, 0, 4, &e), 0);
    cJSON *init = cJSON_Parse("{\"fc.weight\": [[1, 2, 3], [4, 5, 6]], \"fc.bias\": [0.5, -0.5]}");
    assert_int_equal(model_set_init(m, init, &e), 0);
    static const float want[8] = {1, 2, 3, 4, 5, 6, 0.5f, -0.5f};
    assert_memory_equal(m->params, want, sizeof want);
    float x[3] = {1, 1, 1};
    assert_int_equal(model_forward(m, x, 1, 0, 0, 0), 0);
    assert_true(model_output(m)[0] == 6.5f && model_output(m)[1] == 14.5f);
    cJSON_Delete(init);

    static const struct {
        const char *json, *field;
    } bad[] = {
        {"{\"fc.weights\": [1]}", "model.init.fc.weights"},
        {"{\"fc.bias\": [1, 2, 3]}", "model.init.fc.bias"},
        {"{\"fc.bias\": [1, \"x\"]}", "model.init.fc.bias[1]"},
        {"{\"fc.weight\": [[1, 2, 3]]}", "model.init.fc.weight"},
        {"{\"fc.weight\": [[1, 2, 3], [4, 5]]}", "model.init.fc.weight[1]"},
        {"{\"fc.weight\": [[1, 2, 3], 4]}", "model.init.fc.weight[1]"},
        {"{\"fc.weight\": 3}", "model.init.fc.weight"},
        {"[1]", "model.init"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        init = cJSON_Parse(bad[i].json);
        assert_non_null(init);
        assert_int_equal(model_set_init(m, init, &e), -EINVAL);
        assert_string_equal(e.field, bad[i].field);
        assert_true(strlen(e.message) > 10);
        cJSON_Delete(init);
        assert_memory_equal(m->params, want, sizeof want); /* unchanged */
    }
    /* Through model_create: a bad init fails the creation. */
    s.init = cJSON_Parse("{\"fc.bias\": [1]}");
    model *m2 = NULL;
    assert_int_equal(model_create(&m2, &s, 0, 4, &e), -EINVAL);
    assert_null(m2);
    cJSON_Delete(s.init);
    model_free(m);
}

static void test_param_groups(void **state)
{
    (void)state;
    model *m;
    an_err e;
    model_spec s = mlp_spec(4, 5, 6, 2, ACT_RELU, 0);
    assert_int_equal(model_create(&m, &s, 0, 4, &e), 0);
    param_group_spec g[2] = {{.match = cJSON_Parse("[\"*.bias\"]")},
                             {.match = cJSON_Parse("[\"nothing\", \"fc[23].weight\"]")}};
    optim_tensor ot[MODEL_MAX_TENSORS];
    assert_int_equal(model_optim_tensors(m, g, 2, ot), 6);
    static const int want[6] = {0, 1, 2, 1, 2, 1};
    for (int t = 0; t < 6; t++) {
        assert_int_equal(ot[t].group, want[t]);
        assert_int_equal(ot[t].off, m->tensors[t].off);
        assert_int_equal(ot[t].n, m->tensors[t].n);
    }
    assert_int_equal(model_optim_tensors(m, NULL, 0, ot), 6);
    assert_int_equal(ot[3].group, 0);
    assert_true(model_glob_match("fc?.weight", "fc1.weight"));
    assert_false(model_glob_match("fc?.weight", "fc.weight"));
    cJSON_Delete(g[0].match);
    cJSON_Delete(g[1].match);
    model_free(m);
}

static void test_weights_json_roundtrip(void **state)
{
    (void)state;
    model *m, *m2;
    an_err e;
    model_spec s = mlp_spec(3, 4, 0, 2, ACT_SILU, 0);
    assert_int_equal(model_create(&m, &s, 5, 4, &e), 0);
    assert_int_equal(model_create(&m2, &s, 6, 4, &e), 0);
    cJSON *w = model_weights_json(m, m->params);
    assert_non_null(w);
    assert_int_equal(cJSON_GetArraySize(w), 4);
    cJSON *t0 = cJSON_GetArrayItem(w, 0);
    assert_string_equal(cJSON_GetObjectItem(t0, "name")->valuestring, "fc1.weight");
    cJSON *shape = cJSON_GetObjectItem(t0, "shape");
    assert_int_equal(cJSON_GetArrayItem(shape, 0)->valueint, 4);
    assert_int_equal(cJSON_GetArrayItem(shape, 1)->valueint, 3);
    /* Printed and parsed back, then used as init: the same bits. */
    char *text = cJSON_PrintUnformatted(w);
    cJSON *back = cJSON_Parse(text), *init = cJSON_CreateObject(), *t;
    cJSON_ArrayForEach(t, back)
    {
        cJSON_AddItemReferenceToObject(init, cJSON_GetObjectItem(t, "name")->valuestring,
                                       cJSON_GetObjectItem(t, "data"));
    }
    assert_true(memcmp(m->params, m2->params, m->nparams * sizeof(float)) != 0);
    assert_int_equal(model_set_init(m2, init, &e), 0);
    assert_memory_equal(m->params, m2->params, m->nparams * sizeof(float));
    /* Shortest forms: no 17-digit noise. */
    assert_null(strstr(text, "00000"));
    free(text);
    cJSON_Delete(init);
    cJSON_Delete(back);
    cJSON_Delete(w);
    model_free(m);
    model_free(m2);
}

/* ---- iris reference (tests/refdata/e2e/iris_mlp_4_16_3_sgd_momentum.float32.json) ---- */

static void assert_close(double got, double want, double rel)
{
    if (fabs(got - want) > rel * fmax(fabs(want), 1e-3))
        fail_msg("got %.9g, want %.9g", got, want);
}

static void check_matrix(const float *p, const cJSON *a, int rows, int cols, double rel)
{
    assert_int_equal(cJSON_GetArraySize(a), rows);
    for (int r = 0; r < rows; r++) {
        const cJSON *row = cols ? cJSON_GetArrayItem(a, r) : a;
        for (int c = 0; c < (cols ? cols : 1); c++) {
            const cJSON *v = cols ? cJSON_GetArrayItem(row, c) : cJSON_GetArrayItem(a, r);
            assert_close(p[r * (cols ? cols : 1) + c], v->valuedouble, rel);
        }
    }
}

static void test_iris_reference_step(void **state)
{
    (void)state;
    cJSON *ref = tu_load_json("tests/refdata/e2e/iris_mlp_4_16_3_sgd_momentum.float32.json");
    assert_non_null(ref);
    cJSON *data = cJSON_GetObjectItem(ref, "data"), *ini = cJSON_GetObjectItem(ref, "init");
    cJSON *fs = cJSON_GetObjectItem(ref, "first_step");
    model_spec s = mlp_spec(4, 16, 0, 3, ACT_RELU, 0);
    s.init = cJSON_CreateObject();
    cJSON_AddItemReferenceToObject(s.init, "fc1.weight", cJSON_GetObjectItem(ini, "W1"));
    cJSON_AddItemReferenceToObject(s.init, "fc1.bias", cJSON_GetObjectItem(ini, "b1"));
    cJSON_AddItemReferenceToObject(s.init, "fc2.weight", cJSON_GetObjectItem(ini, "W2"));
    cJSON_AddItemReferenceToObject(s.init, "fc2.bias", cJSON_GetObjectItem(ini, "b2"));
    model *m;
    an_err e;
    assert_int_equal(model_create(&m, &s, 0, 30, &e), 0);
    cJSON_Delete(s.init);
    float x[30 * 4], y[30], dout[30 * 3];
    cJSON *rows = cJSON_GetObjectItem(fs, "rows");
    for (int r = 0; r < 30; r++) {
        int row = cJSON_GetArrayItem(rows, r)->valueint;
        cJSON *xr = cJSON_GetArrayItem(cJSON_GetObjectItem(data, "x"), row);
        for (int f = 0; f < 4; f++)
            x[r * 4 + f] = (float)cJSON_GetArrayItem(xr, f)->valuedouble;
        y[r] = (float)cJSON_GetArrayItem(cJSON_GetObjectItem(data, "labels"), row)->valueint;
    }
    assert_int_equal(model_forward(m, x, 30, 1, 0, 0), 0);
    check_matrix(model_output(m), cJSON_GetObjectItem(fs, "logits"), 30, 3, 1e-5);
    double L = loss_compute(LOSS_CROSS_ENTROPY, model_output(m), y, 30, 3, dout);
    assert_close((float)L, cJSON_GetObjectItem(fs, "loss")->valuedouble, 1e-6);
    assert_int_equal(model_backward(m, dout, m->grads, 0), 0);
    check_matrix(m->grads + m->tensors[0].off, cJSON_GetObjectItem(fs, "grad_W1"), 16, 4, 1e-5);
    check_matrix(m->grads + m->tensors[1].off, cJSON_GetObjectItem(fs, "grad_b1"), 16, 0, 1e-5);
    check_matrix(m->grads + m->tensors[2].off, cJSON_GetObjectItem(fs, "grad_W2"), 3, 16, 1e-5);
    check_matrix(m->grads + m->tensors[3].off, cJSON_GetObjectItem(fs, "grad_b2"), 3, 0, 1e-5);
    model_free(m);
    cJSON_Delete(ref);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grad_linear),
        cmocka_unit_test(test_grad_mlp_activations),
        cmocka_unit_test(test_grad_mlp_dropout),
        cmocka_unit_test(test_dropout_behaviour),
        cmocka_unit_test(test_tensor_layout),
        cmocka_unit_test(test_init_bounds_and_determinism),
        cmocka_unit_test(test_bad_specs),
        cmocka_unit_test(test_init_json),
        cmocka_unit_test(test_param_groups),
        cmocka_unit_test(test_weights_json_roundtrip),
        cmocka_unit_test(test_iris_reference_step),
    };
    return cmocka_run_group_tests_name("model", tests, NULL, NULL);
}
