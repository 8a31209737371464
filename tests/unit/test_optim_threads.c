/* Tests of the optimizer step on a job's threads (core/optim.c: a step of 65,536 elements or
 * more splits the flat buffers over the threads, each thread stepping its part of every
 * tensor): parameters and state after three steps at 2 and 3 threads have the same bits as
 * at 1 thread, for every optimizer, in float and double, with tensors that a part boundary
 * cuts and tensors that lie wholly in one part; and the comparison can fail. The gradient
 * clipping's norm and scaling, likewise. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <cjson/cJSON.h>

#include "core/gemm.h"
#include "core/optim.h"
#include "core/rng.h"

/* Tensor sizes: small ones on either side of large ones, 200,003 elements in all. */
static const size_t SIZES[] = {5, 100000, 3, 70000, 29995};
enum { NT = 5, STEPS = 3 };

/* The parameters and the state bytes after STEPS steps of `json` at `threads` threads. */
static void run(const char *json, int dtype, int threads, uint64_t seed, void **params_out,
                void **state_out, size_t *state_len)
{
    optim_cfg cfg;
    an_err err;
    cJSON *b = cJSON_Parse(json);
    assert_non_null(b);
    if (optim_parse(b, "ds_config.optimizer", &cfg, &err, NULL) != 0)
        fail_msg("%s: %s", json, err.message);
    cJSON_Delete(b);
    optim_tensor t[NT];
    size_t n = 0;
    for (int i = 0; i < NT; i++) {
        t[i] = (optim_tensor){.off = n, .n = SIZES[i], .group = i % 2};
        n += SIZES[i];
    }
    optim_group g[2] = {{.lr = 1e-2, .weight_decay = 0.1, .beta1 = 0.9, .beta2 = 0.99,
                         .momentum = 0.9},
                        {.lr = 3e-3, .weight_decay = 0.0, .beta1 = 0.8, .beta2 = 0.95,
                         .momentum = 0.5}};
    optim o;
    assert_int_equal(optim_init(&o, &cfg, dtype, n, t, NT, g, 2, &err), 0);
    size_t es = dtype == OPTIM_F64 ? sizeof(double) : sizeof(float);
    char *p = malloc(n * es), *gr = malloc(n * es);
    assert_true(p && gr);
    rng r;
    rng_init(&r, seed, 1, 0);
    for (size_t i = 0; i < n; i++) {
        double pv = rng_range(&r, -1, 1), gv = rng_range(&r, -0.1, 0.1);
        if (dtype == OPTIM_F64) {
            ((double *)p)[i] = pv;
            ((double *)gr)[i] = gv;
        } else {
            ((float *)p)[i] = (float)pv;
            ((float *)gr)[i] = (float)gv;
        }
    }
    assert_int_equal(gemm_set_threads(threads), 0);
    for (int s = 0; s < STEPS; s++)
        optim_step(&o, p, gr);
    gemm_set_threads(1);
    *state_len = optim_state_size(&o);
    *state_out = malloc(*state_len);
    assert_non_null(*state_out);
    assert_int_equal(optim_save(&o, *state_out, *state_len), 0);
    *params_out = p;
    free(gr);
    optim_free(&o);
}

static void same_bits(const char *json, int dtype)
{
    size_t n = 0, es = dtype == OPTIM_F64 ? sizeof(double) : sizeof(float);
    for (int i = 0; i < NT; i++)
        n += SIZES[i];
    void *p1, *s1, *pk, *sk;
    size_t l1, lk;
    run(json, dtype, 1, 7, &p1, &s1, &l1);
    for (int k = 2; k <= 3; k++) {
        run(json, dtype, k, 7, &pk, &sk, &lk);
        assert_int_equal(lk, l1);
        assert_memory_equal(pk, p1, n * es);
        assert_memory_equal(sk, s1, l1);
        free(pk);
        free(sk);
    }
    /* The comparison can fail: other gradients give other parameters. */
    run(json, dtype, 2, 8, &pk, &sk, &lk);
    assert_memory_not_equal(pk, p1, n * es);
    free(pk), free(sk), free(p1), free(s1);
}

static const char *const CONFIGS[] = {
    "{\"type\": \"Adam\", \"params\": {\"lr\": 0.01}}",
    "{\"type\": \"AdamW\", \"params\": {\"lr\": 0.01, \"weight_decay\": 0.1}}",
    "{\"type\": \"Adam\", \"params\": {\"lr\": 0.01, \"amsgrad\": true, "
    "\"torch_adam\": true}}",
    "{\"type\": \"Lamb\", \"params\": {\"lr\": 0.01}}",
    "{\"type\": \"Lion\", \"params\": {\"lr\": 0.001}}",
    "{\"type\": \"Adagrad\", \"params\": {\"lr\": 0.01}}",
    "{\"type\": \"SGD\", \"params\": {\"lr\": 0.01, \"momentum\": 0.9}}",
    "{\"type\": \"SGD\", \"params\": {\"lr\": 0.01, \"momentum\": 0.9, \"nesterov\": true}}",
    "{\"type\": \"SGD\", \"params\": {\"lr\": 0.01}}",
    "{\"type\": \"RMSprop\", \"params\": {\"lr\": 0.01, \"momentum\": 0.9, "
    "\"centered\": true}}",
};

static void test_float(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof CONFIGS / sizeof *CONFIGS; i++)
        same_bits(CONFIGS[i], OPTIM_F32);
}

static void test_double(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof CONFIGS / sizeof *CONFIGS; i++)
        same_bits(CONFIGS[i], OPTIM_F64);
}

/* The clipping norm and the clipped gradients: the same bits at 1, 2 and 3 threads, over
 * several chunks of the sum (and a ragged last one), and the norm a sum in double would
 * give; clipping scales every element. */
static void test_clip(void **state)
{
    (void)state;
    enum { N = 5 * 65536 + 123 };
    float *g1 = malloc(N * sizeof *g1), *gk = malloc(N * sizeof *gk);
    assert_true(g1 && gk);
    rng r;
    rng_init(&r, 3, 1, 0);
    double want = 0;
    for (size_t i = 0; i < N; i++) {
        g1[i] = (float)rng_range(&r, -1, 1);
        want += (double)g1[i] * g1[i];
    }
    memcpy(gk, g1, N * sizeof *g1);
    float x = g1[77];
    assert_int_equal(gemm_set_threads(1), 0);
    double n1 = optim_clip_grad_norm(g1, N, OPTIM_F32, 1.0);
    assert_true(fabs(n1 - sqrt(want)) < 1e-9 * sqrt(want));
    assert_true(g1[77] == x * (float)(1.0 / (n1 + 1e-6)));
    for (int k = 2; k <= 3; k++) {
        float *g = malloc(N * sizeof *g);
        assert_non_null(g);
        memcpy(g, gk, N * sizeof *g);
        assert_int_equal(gemm_set_threads(k), 0);
        double nk = optim_clip_grad_norm(g, N, OPTIM_F32, 1.0);
        assert_memory_equal(&nk, &n1, sizeof n1);
        assert_memory_equal(g, g1, N * sizeof *g);
        free(g);
    }
    gemm_set_threads(1);
    free(g1);
    free(gk);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_float),
        cmocka_unit_test(test_double),
        cmocka_unit_test(test_clip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
