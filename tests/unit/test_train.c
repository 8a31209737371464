/* test_train — one job's training loop against reference runs, bit-for-bit resume, the
 * checkpoint blob's defences, and divergence.
 *
 * The e2e cases (tests/refdata/e2e) are rebuilt as job specs: the file's data inline in the
 * file's batch order with shuffling off, its initial weights as "init", its optimizer and
 * schedule, and gradient_clipping 0. The "formula" runs apply lr f(s) at step s (0-based)
 * instead of the engine's f(s-1): they are driven by WarmupLR with "last_batch_iteration": 0,
 * whose constructor leaves the optimizer's own lr (0.001 = f(0)) for the first step and whose
 * k-th step() gives f(k) to the next step. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>

#include "tests/unit/testutil.h"
#include "core/config.h"
#include "core/data.h"
#include "core/loss.h"
#include "core/model.h"
#include "core/train.h"

/* ------------------------------------------------------------------------------------------
 * Helpers */

static void parse_spec(const char *text, job_spec *s)
{
    an_err err = {0};
    int rc = job_spec_parse_text(text, strlen(text), s, &err);
    if (rc)
        fail_msg("spec rejected: %s: %s\n%s", err.field, err.message, text);
}

static train *create(const job_spec *s)
{
    train *t = NULL;
    an_err err = {0};
    int rc = train_create(&t, s, NULL, 0, &err);
    if (rc)
        fail_msg("train_create: %s: %s", err.field, err.message);
    return t;
}

static void step_ok(train *t, train_report *r)
{
    an_err err = {0};
    int rc = train_step(t, r, &err);
    if (rc)
        fail_msg("train_step: %d %s", rc, err.message);
}

static void save_ok(const train *t, void **buf, size_t *len)
{
    an_err err = {0};
    int rc = train_save(t, buf, len, &err);
    if (rc)
        fail_msg("train_save: %s", err.message);
}

/* Relative agreement; a value crossing zero is judged against 0.01 (weights here are of order
 * 0.1-1, so that floor is the tensor's scale, not a loosening). */
static int close_rel(double a, double b, double rel)
{
    return fabs(a - b) <= rel * fmax(fabs(b), 1e-2);
}

/* The flat parameters from a blob: section 3 follows the header (40 bytes) and the two
 * 16-byte sections, each behind its 16-byte section header. */
#define PARAMS_OFF (40 + 32 + 32 + 16)

static const float *blob_params(const void *blob) { return (const float *)((const char *)blob + PARAMS_OFF); }

static uint64_t fnv(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Rewrites the trailing checksum after a deliberate edit, so the deeper checks are reached. */
static void reseal(unsigned char *b, size_t len)
{
    uint64_t h = fnv(b, len - 8);
    for (int i = 0; i < 8; i++)
        b[len - 8 + i] = (unsigned char)(h >> (8 * i));
}

static uint64_t get64(const unsigned char *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | b[i];
    return v;
}

static void put64(unsigned char *b, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}

/* ------------------------------------------------------------------------------------------
 * e2e reference runs */

/* Appends `key`: duplicate of ref's array to obj. */
static void dup_into(cJSON *obj, const char *key, const cJSON *src)
{
    assert_non_null(src);
    cJSON_AddItemToObject(obj, key, cJSON_Duplicate(src, 1));
}

/* Leave data.y out of the spec (the mean loss reads no targets). */
static int omit_y;

static char *linear_spec(const cJSON *ref, const char *loss, int formula)
{
    const cJSON *data = cJSON_GetObjectItem(ref, "data");
    const cJSON *init = cJSON_GetObjectItem(ref, "init");
    cJSON *s = cJSON_CreateObject();
    cJSON_AddNumberToObject(s, "seed", 1);
    cJSON *m = cJSON_AddObjectToObject(s, "model");
    cJSON_AddStringToObject(m, "type", "linear");
    cJSON_AddNumberToObject(m, "inputs", 10);
    cJSON_AddNumberToObject(m, "outputs", 1);
    cJSON *in = cJSON_AddObjectToObject(m, "init");
    cJSON *w = cJSON_CreateArray();
    cJSON_AddItemToArray(w, cJSON_Duplicate(cJSON_GetObjectItem(init, "weight"), 1));
    cJSON_AddItemToObject(in, "fc.weight", w);
    dup_into(in, "fc.bias", cJSON_GetObjectItem(init, "bias"));
    cJSON_AddStringToObject(s, "loss", loss);
    cJSON *d = cJSON_AddObjectToObject(s, "data");
    cJSON_AddStringToObject(d, "type", "inline");
    dup_into(d, "x", cJSON_GetObjectItem(data, "x"));
    cJSON *y = omit_y ? cJSON_CreateArray() : cJSON_AddArrayToObject(d, "y");
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(data, "y")) {
        cJSON *row = cJSON_CreateArray();
        cJSON_AddItemToArray(row, cJSON_CreateNumber(e->valuedouble));
        cJSON_AddItemToArray(y, row);
    }
    if (omit_y)
        cJSON_Delete(y);
    cJSON_AddFalseToObject(d, "shuffle");
    cJSON_AddNumberToObject(s, "steps", 300);
    char *ds = NULL;
    cJSON_AddItemToObject(
        s, "ds_config",
        cJSON_Parse(formula
                        ? "{\"train_batch_size\": 8, \"gradient_clipping\": 0,"
                          " \"optimizer\": {\"type\": \"Adam\", \"params\": {\"lr\": 0.001}},"
                          " \"scheduler\": {\"type\": \"WarmupLR\", \"params\": {"
                          "\"warmup_min_lr\": 0.001, \"warmup_max_lr\": 0.01,"
                          " \"warmup_num_steps\": 100, \"last_batch_iteration\": 0}}}"
                        : "{\"train_batch_size\": 8, \"gradient_clipping\": 0,"
                          " \"optimizer\": {\"type\": \"Adam\", \"params\": {\"lr\": 0.01}},"
                          " \"scheduler\": {\"type\": \"WarmupLR\", \"params\": {"
                          "\"warmup_min_lr\": 0.001, \"warmup_max_lr\": 0.01,"
                          " \"warmup_num_steps\": 100}}}"));
    ds = cJSON_PrintUnformatted(s);
    cJSON_Delete(s);
    return ds;
}

static void run_linear_case(const char *path, const char *loss, int formula)
{
    cJSON *ref = tu_load_json(path);
    char *text = linear_spec(ref, loss, formula);
    job_spec s = {0};
    parse_spec(text, &s);
    free(text);
    train *t = create(&s);
    assert_int_equal(train_total_steps(t), 300);
    const cJSON *lr = cJSON_GetObjectItem(ref, "lr"), *lo = cJSON_GetObjectItem(ref, "loss");
    const cJSON *wt = cJSON_GetObjectItem(ref, "weight"), *bi = cJSON_GetObjectItem(ref, "bias");
    double worst_loss = 0, worst_w = 0;
    for (int k = 0; k < 300; k++) {
        train_report r;
        step_ok(t, &r);
        assert_int_equal(r.step, k + 1);
        assert_int_equal(r.epoch, (k * 8 + 7) / 400);
        double want_lr = cJSON_GetArrayItem(lr, k)->valuedouble;
        if (fabs(r.lr[0] - want_lr) > 1e-15 * want_lr)
            fail_msg("%s step %d: lr %.17g, reference %.17g", path, k, r.lr[0], want_lr);
        double want = cJSON_GetArrayItem(lo, k)->valuedouble;
        worst_loss = fmax(worst_loss, fabs(r.loss - want) / fmax(fabs(want), 1e-2));
        if (!close_rel(r.loss, want, 1e-5))
            fail_msg("%s step %d: loss %.9g, reference %.9g", path, k, r.loss, want);
        void *blob;
        size_t len;
        save_ok(t, &blob, &len);
        const float *p = blob_params(blob);
        const cJSON *wrow = cJSON_GetArrayItem(wt, k);
        for (int j = 0; j < 10; j++) {
            double w = cJSON_GetArrayItem(wrow, j)->valuedouble;
            worst_w = fmax(worst_w, fabs(p[j] - w) / fmax(fabs(w), 1e-2));
            if (!close_rel(p[j], w, 1e-5))
                fail_msg("%s step %d: weight[%d] %.9g, reference %.9g", path, k, j, p[j], w);
        }
        double b = cJSON_GetArrayItem(bi, k)->valuedouble;
        if (!close_rel(p[10], b, 1e-5))
            fail_msg("%s step %d: bias %.9g, reference %.9g", path, k, p[10], b);
        free(blob);
    }
    print_message("  %s: worst relative loss error %.3g, weight error %.3g\n", path, worst_loss,
                  worst_w);
    train_free(t);
    job_spec_free(&s);
    cJSON_Delete(ref);
}

static void test_e2e_linear_engine(void **state)
{
    (void)state;
    run_linear_case("tests/refdata/e2e/linear10_mse_deepspeed_engine.float32.json", "mse", 0);
}

static void test_e2e_linear_mse_formula(void **state)
{
    (void)state;
    run_linear_case("tests/refdata/e2e/linear10_mse_formula.float32.json", "mse", 1);
}

static void test_e2e_linear_mean_formula(void **state)
{
    (void)state;
    run_linear_case("tests/refdata/e2e/linear10_mean_formula.float32.json", "mean", 1);
}

/* The mean loss needs no targets: the same run with data.y left out of the spec. */
static void test_e2e_linear_mean_without_y(void **state)
{
    (void)state;
    omit_y = 1;
    run_linear_case("tests/refdata/e2e/linear10_mean_formula.float32.json", "mean", 1);
    omit_y = 0;
}

/* The iris MLP: rows in the file's fixed permutation, shuffling off, so step s takes rows
 * perm[30 s .. 30 s + 29] (mod 150) exactly as the reference did. */
static void test_e2e_iris_mlp(void **state)
{
    (void)state;
    cJSON *ref = tu_load_json("tests/refdata/e2e/iris_mlp_4_16_3_sgd_momentum.float32.json");
    const cJSON *data = cJSON_GetObjectItem(ref, "data");
    const cJSON *x = cJSON_GetObjectItem(data, "x"), *labels = cJSON_GetObjectItem(data, "labels");
    const cJSON *perm = cJSON_GetObjectItem(data, "perm");
    const cJSON *init = cJSON_GetObjectItem(ref, "init");
    cJSON *s = cJSON_CreateObject();
    cJSON *m = cJSON_AddObjectToObject(s, "model");
    cJSON_AddStringToObject(m, "type", "mlp");
    cJSON_AddNumberToObject(m, "inputs", 4);
    cJSON_AddItemToObject(m, "hidden", cJSON_Parse("[16]"));
    cJSON_AddNumberToObject(m, "outputs", 3);
    cJSON_AddStringToObject(m, "activation", "relu");
    cJSON *in = cJSON_AddObjectToObject(m, "init");
    dup_into(in, "fc1.weight", cJSON_GetObjectItem(init, "W1"));
    dup_into(in, "fc1.bias", cJSON_GetObjectItem(init, "b1"));
    dup_into(in, "fc2.weight", cJSON_GetObjectItem(init, "W2"));
    dup_into(in, "fc2.bias", cJSON_GetObjectItem(init, "b2"));
    cJSON_AddStringToObject(s, "loss", "cross_entropy");
    cJSON *d = cJSON_AddObjectToObject(s, "data");
    cJSON_AddStringToObject(d, "type", "inline");
    cJSON *dx = cJSON_AddArrayToObject(d, "x"), *dy = cJSON_AddArrayToObject(d, "y");
    const cJSON *e;
    cJSON_ArrayForEach(e, perm) {
        int row = e->valueint;
        cJSON_AddItemToArray(dx, cJSON_Duplicate(cJSON_GetArrayItem(x, row), 1));
        cJSON_AddItemToArray(dy, cJSON_CreateNumber(cJSON_GetArrayItem(labels, row)->valuedouble));
    }
    cJSON_AddFalseToObject(d, "shuffle");
    cJSON_AddNumberToObject(s, "steps", 200);
    cJSON_AddItemToObject(s, "ds_config",
                          cJSON_Parse("{\"train_batch_size\": 30, \"gradient_clipping\": 0,"
                                      " \"optimizer\": {\"type\": \"SGD\", \"params\":"
                                      " {\"lr\": 0.05, \"momentum\": 0.9}}}"));
    char *text = cJSON_PrintUnformatted(s);
    cJSON_Delete(s);
    job_spec spec = {0};
    parse_spec(text, &spec);
    free(text);
    train *t = create(&spec);
    const cJSON *lo = cJSON_GetObjectItem(ref, "loss_per_step");
    double worst = 0;
    for (int k = 0; k < 200; k++) {
        train_report r;
        step_ok(t, &r);
        assert_true(fabs(r.lr[0] - 0.05) == 0);
        double want = cJSON_GetArrayItem(lo, k)->valuedouble;
        worst = fmax(worst, fabs(r.loss - want) / want);
        if (!close_rel(r.loss, want, 1e-5))
            fail_msg("iris step %d: loss %.9g, reference %.9g", k, r.loss, want);
    }
    /* Final weights, tensor by tensor in the flat order fc1.weight, fc1.bias, fc2.weight,
     * fc2.bias. */
    void *blob;
    size_t len;
    save_ok(t, &blob, &len);
    const float *p = blob_params(blob);
    const cJSON *fin = cJSON_GetObjectItem(ref, "final");
    const char *names[] = {"W1", "b1", "W2", "b2"};
    size_t i = 0;
    double worst_w = 0;
    for (int n = 0; n < 4; n++) {
        const cJSON *tns = cJSON_GetObjectItem(fin, names[n]), *row;
        cJSON_ArrayForEach(row, tns) {
            if (cJSON_IsArray(row)) {
                const cJSON *v;
                cJSON_ArrayForEach(v, row) {
                    worst_w = fmax(worst_w, fabs(p[i] - v->valuedouble) / fmax(fabs(v->valuedouble), 1e-2));
                    if (!close_rel(p[i], v->valuedouble, 1e-5))
                        fail_msg("iris final %s element %zu: %.9g, reference %.9g", names[n], i,
                                 p[i], v->valuedouble);
                    i++;
                }
            } else {
                if (!close_rel(p[i], row->valuedouble, 1e-5))
                    fail_msg("iris final %s element %zu: %.9g, reference %.9g", names[n], i,
                             p[i], row->valuedouble);
                i++;
            }
        }
    }
    assert_int_equal(i, 4 * 16 + 16 + 16 * 3 + 3);
    free(blob);
    /* Accuracy on the whole data set with the final weights. */
    float xin[150 * 4], out[150 * 3];
    int correct = 0;
    for (int r = 0; r < 150; r++)
        for (int f = 0; f < 4; f++)
            xin[r * 4 + f] = (float)cJSON_GetArrayItem(cJSON_GetArrayItem(x, r), f)->valuedouble;
    an_err err = {0};
    assert_int_equal(train_predict(t, xin, 150, out, &err), 0);
    for (int r = 0; r < 150; r++) {
        int best = 0;
        for (int c = 1; c < 3; c++)
            if (out[r * 3 + c] > out[r * 3 + best])
                best = c;
        correct += best == cJSON_GetArrayItem(labels, r)->valueint;
    }
    assert_true(fabs(correct / 150.0 - cJSON_GetObjectItem(fin, "full_dataset_accuracy")->valuedouble) < 1e-12);
    print_message("  iris: worst relative loss error %.3g, final weight error %.3g\n", worst, worst_w);
    train_free(t);
    job_spec_free(&spec);
    cJSON_Delete(ref);
}

/* ------------------------------------------------------------------------------------------
 * Bit-for-bit resume */

static const char *const MODELS[] = {
    "{\"type\": \"linear\", \"inputs\": 4, \"outputs\": 2}",
    "{\"type\": \"mlp\", \"inputs\": 4, \"hidden\": [6, 5], \"outputs\": 2, \"activation\": \"relu\"}",
    "{\"type\": \"mlp\", \"inputs\": 4, \"hidden\": [6], \"outputs\": 2, \"activation\": \"gelu\"}",
    "{\"type\": \"mlp\", \"inputs\": 4, \"hidden\": [6], \"outputs\": 2, \"activation\": \"tanh\"}",
    "{\"type\": \"mlp\", \"inputs\": 4, \"hidden\": [6], \"outputs\": 2, \"activation\": \"sigmoid\"}",
    "{\"type\": \"mlp\", \"inputs\": 4, \"hidden\": [6], \"outputs\": 2, \"activation\": \"silu\"}",
    "{\"type\": \"mlp\", \"inputs\": 4, \"hidden\": [8, 6], \"outputs\": 2, \"activation\": \"relu\", \"dropout\": 0.3}",
};

static const char *const OPTIMS[] = {
    "{\"type\": \"Adam\", \"params\": {\"lr\": 0.01, \"weight_decay\": 0.01}}",
    "{\"type\": \"AdamW\", \"params\": {\"lr\": 0.01}}",
    "{\"type\": \"Lamb\", \"params\": {\"lr\": 0.01}}",
    "{\"type\": \"Lion\", \"params\": {\"lr\": 0.001}}",
    "{\"type\": \"Adagrad\", \"params\": {\"lr\": 0.05}}",
    "{\"type\": \"SGD\", \"params\": {\"lr\": 0.05, \"momentum\": 0.9}}",
    "{\"type\": \"RMSprop\", \"params\": {\"lr\": 0.01, \"momentum\": 0.5}}",
};

static const char *const SCHEDS[] = {
    "{\"type\": \"WarmupLR\", \"params\": {\"warmup_min_lr\": 0.001, \"warmup_num_steps\": 5}}",
    "{\"type\": \"WarmupDecayLR\", \"params\": {\"total_num_steps\": 20, \"warmup_num_steps\": 4}}",
    "{\"type\": \"WarmupCosineLR\", \"params\": {\"total_num_steps\": 20, \"warmup_num_steps\": 4}}",
    "{\"type\": \"OneCycle\", \"params\": {\"cycle_min_lr\": 0.001, \"cycle_max_lr\": 0.01, \"cycle_first_step_size\": 4}}",
    "{\"type\": \"LRRangeTest\", \"params\": {\"lr_range_test_min_lr\": 0.001, \"lr_range_test_step_size\": 3}}",
    "{\"type\": \"StepLR\", \"params\": {\"step_size\": 3, \"gamma\": 0.5}}",
    "{\"type\": \"MultiPhase\", \"params\": {\"phases\": [{\"steps\": 5, \"type\": \"WarmupLR\", \"params\": {\"warmup_num_steps\": 5}}, {\"steps\": 20, \"type\": \"CosineAnnealingLR\", \"params\": {\"T_max\": 15}}]}}",
    "{\"type\": \"ReduceLROnPlateau\", \"params\": {\"patience\": 1, \"factor\": 0.5}}",
};

#define NMODELS (int)(sizeof MODELS / sizeof *MODELS)
#define NOPTIMS (int)(sizeof OPTIMS / sizeof *OPTIMS)
#define NSCHEDS (int)(sizeof SCHEDS / sizeof *SCHEDS)

typedef struct variant {
    int gas;         /* gradient accumulation steps */
    int shuffle;
    int val;         /* validation every 3 steps on a 20% split */
    int groups;      /* a second param group for biases */
    double clip;
} variant;

static char *resume_spec(int mi, int oi, int si, const variant *v)
{
    char *b = malloc(8192);
    snprintf(b, 8192,
             "{\"seed\": %d, \"model\": %s, \"loss\": \"mse\","
             " \"data\": {\"type\": \"synthetic\", \"task\": \"regression\", \"samples\": 47,"
             " \"features\": 4, \"outputs\": 2, \"noise\": 0.1, \"shuffle\": %s},"
             " \"steps\": 16%s%s,"
             " \"ds_config\": {\"train_micro_batch_size_per_gpu\": 5,"
             " \"gradient_accumulation_steps\": %d, \"gradient_clipping\": %g,"
             " \"optimizer\": %s, \"scheduler\": %s}}",
             7 + mi * 3 + oi, MODELS[mi], v->shuffle ? "true" : "false",
             v->val ? ", \"validation\": {\"fraction\": 0.2, \"every_steps\": 3}" : "",
             v->groups ? ", \"param_groups\": [{\"match\": [\"*.bias\"], \"lr\": 0.002, "
                         "\"weight_decay\": 0}]" : "",
             v->gas, v->clip, OPTIMS[oi], SCHEDS[si]);
    return b;
}

/* N steps straight against k steps, save, free everything, create, restore, N - k steps. */
static void check_resume(const char *text, int N, int k)
{
    job_spec s = {0};
    parse_spec(text, &s);
    train_report ra[32], rb[32];
    memset(ra, 0, sizeof ra);
    memset(rb, 0, sizeof rb);
    train *a = create(&s);
    for (int i = 0; i < N; i++)
        step_ok(a, &ra[i]);
    void *fa, *mid, *fb;
    size_t la, lm, lb;
    save_ok(a, &fa, &la);
    train_free(a);

    train *b = create(&s);
    for (int i = 0; i < k; i++)
        step_ok(b, &rb[i]);
    save_ok(b, &mid, &lm);
    /* the same state saved into a kept buffer of the wrong size, as a worker reuses its
     * last checkpoint's: the same bytes */
    void *kept = malloc(lm / 2 + 1);
    size_t cap = lm / 2 + 1, lk = 0;
    an_err kerr = {0};
    if (train_save_into(b, &kept, &cap, &lk, &kerr))
        fail_msg("train_save_into: %s", kerr.message);
    assert_int_equal(lk, lm);
    assert_memory_equal(kept, mid, lm);
    free(kept);
    train_free(b);
    job_spec_free(&s);

    job_spec s2 = {0};
    parse_spec(text, &s2);
    train *c = create(&s2);
    an_err err = {0};
    if (train_restore(c, mid, lm, &err))
        fail_msg("restore: %s", err.message);
    assert_int_equal(train_steps_done(c), k);
    for (int i = k; i < N; i++)
        step_ok(c, &rb[i]);
    save_ok(c, &fb, &lb);
    train_free(c);
    job_spec_free(&s2);

    for (int i = 0; i < N; i++)
        if (memcmp(&ra[i], &rb[i], sizeof ra[i]))
            fail_msg("report of step %d differs after resuming at %d (loss %.17g vs %.17g, lr "
                     "%.17g vs %.17g)\n%s", i + 1, k, ra[i].loss, rb[i].loss, ra[i].lr[0],
                     rb[i].lr[0], text);
    assert_int_equal(la, lb);
    if (memcmp(fa, fb, la))
        fail_msg("final state differs after resuming at %d\n%s", k, text);
    /* The run did something: the parameters moved and every loss is finite. */
    assert_true(memcmp(blob_params(fa), blob_params(mid), 8) != 0 || k == N);
    for (int i = 0; i < N; i++)
        assert_true(isfinite(ra[i].loss));
    free(fa);
    free(mid);
    free(fb);
}

static void test_resume_matrix(void **state)
{
    (void)state;
    static const variant vs[] = {
        {1, 0, 0, 0, 0.0}, {3, 1, 0, 1, 1.0}, {4, 1, 1, 0, 0.5}, {2, 0, 1, 1, 0.0},
    };
    int cases = 0;
    for (int mi = 0; mi < NMODELS; mi++)
        for (int oi = 0; oi < NOPTIMS; oi++)
            for (int si = 0; si < NSCHEDS; si++) {
                variant v = vs[(mi + oi + si) % 4];
                if (si == NSCHEDS - 1)
                    v.val = 1; /* ReduceLROnPlateau watches the validation loss */
                char *text = resume_spec(mi, oi, si, &v);
                check_resume(text, 10, 1 + (mi + 2 * oi + si) % 9);
                free(text);
                cases++;
            }
    print_message("  %d resume cases\n", cases);
}

/* Resuming at every step of a run with accumulation, shuffling and validation. */
static void test_resume_every_step(void **state)
{
    (void)state;
    variant v = {3, 1, 1, 1, 1.0};
    char *text = resume_spec(6, 0, 3, &v);
    for (int k = 0; k <= 12; k++)
        check_resume(text, 12, k);
    free(text);
    v.gas = 4;
    text = resume_spec(1, 2, 7, &v);
    for (int k = 0; k <= 12; k += 3)
        check_resume(text, 12, k);
    free(text);
}

/* ------------------------------------------------------------------------------------------
 * Bad blobs */

static const char *BASE =
    "{\"seed\": 3, \"model\": {\"type\": \"mlp\", \"inputs\": 4, \"hidden\": [5], \"outputs\": 2,"
    " \"activation\": \"tanh\"}, \"data\": {\"type\": \"synthetic\", \"task\": \"regression\","
    " \"samples\": 40, \"features\": 4, \"outputs\": 2}, \"steps\": 10,"
    " \"ds_config\": {\"train_batch_size\": 8, \"optimizer\": {\"type\": \"Adam\", \"params\":"
    " {\"lr\": 0.01}}, \"scheduler\": {\"type\": \"WarmupLR\", \"params\": {\"warmup_num_steps\":"
    " 4}}}}";

typedef struct fixture {
    job_spec spec;
    train *t;
    void *blob;    /* a real blob after 3 steps */
    size_t len;
    void *before;  /* the state of t before a bad restore */
    size_t blen;
} fixture;

static int fx_setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    parse_spec(BASE, &f->spec);
    f->t = create(&f->spec);
    train_report r;
    for (int i = 0; i < 3; i++)
        step_ok(f->t, &r);
    save_ok(f->t, &f->blob, &f->len);
    step_ok(f->t, &r); /* t is now one step further than the blob */
    save_ok(f->t, &f->before, &f->blen);
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    fixture *f = *state;
    train_free(f->t);
    job_spec_free(&f->spec);
    free(f->blob);
    free(f->before);
    free(f);
    return 0;
}

/* A bad restore must fail with a message and leave the state as it was. */
static void expect_rejected(fixture *f, const void *buf, size_t len, const char *needle)
{
    an_err err = {0};
    int rc = train_restore(f->t, buf, len, &err);
    if (rc == 0)
        fail_msg("a bad blob (%zu bytes) was accepted", len);
    assert_true(rc < 0);
    assert_true(strlen(err.message) > 10);
    if (needle && !strstr(err.message, needle))
        fail_msg("error \"%s\" does not mention \"%s\"", err.message, needle);
    void *now;
    size_t nl;
    save_ok(f->t, &now, &nl);
    assert_int_equal(nl, f->blen);
    assert_memory_equal(now, f->before, nl);
    free(now);
}

static void test_blob_good_restores(void **state)
{
    fixture *f = *state;
    an_err err = {0};
    assert_int_equal(train_restore(f->t, f->blob, f->len, &err), 0);
    assert_int_equal(train_steps_done(f->t), 3);
    /* and back to where it was */
    assert_int_equal(train_restore(f->t, f->before, f->blen, &err), 0);
    assert_int_equal(train_steps_done(f->t), 4);
}

static void test_blob_truncations(void **state)
{
    fixture *f = *state;
    for (size_t n = 0; n < f->len; n++) {
        /* a heap copy of exactly n bytes, so a read past the end is caught by ASan */
        unsigned char *c = malloc(n ? n : 1);
        memcpy(c, f->blob, n);
        expect_rejected(f, n ? c : NULL, n, NULL);
        expect_rejected(f, c, n, NULL);
        free(c);
    }
    unsigned char *longer = malloc(f->len + 9);
    memcpy(longer, f->blob, f->len);
    memset(longer + f->len, 0, 9);
    expect_rejected(f, longer, f->len + 9, "bytes");
    free(longer);
}

static void test_blob_bit_flips(void **state)
{
    fixture *f = *state;
    unsigned char *c = malloc(f->len);
    for (size_t i = 0; i < f->len; i++) {
        memcpy(c, f->blob, f->len);
        c[i] ^= (unsigned char)(1u << (i % 8));
        expect_rejected(f, c, f->len, NULL);
    }
    /* a flip in the payload is caught by the checksum */
    memcpy(c, f->blob, f->len);
    c[PARAMS_OFF + 3] ^= 0x40;
    expect_rejected(f, c, f->len, "checksum");
    free(c);
}

static void test_blob_bad_headers(void **state)
{
    fixture *f = *state;
    unsigned char *c = malloc(f->len);
    /* wrong magic, resealed */
    memcpy(c, f->blob, f->len);
    memcpy(c, "PYTORCH", 8);
    reseal(c, f->len);
    expect_rejected(f, c, f->len, "ANNEALD");
    /* future version */
    memcpy(c, f->blob, f->len);
    c[8] = 2;
    reseal(c, f->len);
    expect_rejected(f, c, f->len, "version");
    /* a length field that claims more than there is */
    memcpy(c, f->blob, f->len);
    put64(c + 32, UINT64_MAX);
    reseal(c, f->len);
    expect_rejected(f, c, f->len, "long");
    /* a huge section length: must not wrap around */
    memcpy(c, f->blob, f->len);
    put64(c + 40 + 8, UINT64_MAX - 7);
    reseal(c, f->len);
    expect_rejected(f, c, f->len, "remain");
    memcpy(c, f->blob, f->len);
    put64(c + 40 + 8, 1ull << 62);
    reseal(c, f->len);
    expect_rejected(f, c, f->len, "remain");
    /* a section id repeated */
    memcpy(c, f->blob, f->len);
    c[40 + 32] = 1;
    reseal(c, f->len);
    expect_rejected(f, c, f->len, "once");
    /* an unknown section id */
    memcpy(c, f->blob, f->len);
    c[40] = 99;
    reseal(c, f->len);
    expect_rejected(f, c, f->len, "id");
    /* section count */
    memcpy(c, f->blob, f->len);
    c[12] = 4;
    reseal(c, f->len);
    expect_rejected(f, c, f->len, "sections");
    /* negative step counter */
    memcpy(c, f->blob, f->len);
    put64(c + 40 + 16, (uint64_t)-5);
    reseal(c, f->len);
    expect_rejected(f, c, f->len, "step");
    /* data position past the data */
    memcpy(c, f->blob, f->len);
    put64(c + 40 + 32 + 16 + 8, 1000000);
    reseal(c, f->len);
    expect_rejected(f, c, f->len, "position");
    /* layout hash of another job */
    memcpy(c, f->blob, f->len);
    c[16] ^= 1;
    reseal(c, f->len);
    expect_rejected(f, c, f->len, "optimizer layout");
    /* optimizer bytes changed inside (its own magic), resealed */
    size_t optoff = PARAMS_OFF + (size_t)get64(c + PARAMS_OFF - 8) + 16;
    size_t schedoff = optoff + (size_t)get64(c + optoff - 8) + 16;
    memcpy(c, f->blob, f->len);
    c[optoff] ^= 0xff;
    reseal(c, f->len);
    expect_rejected(f, c, f->len, "optimizer");
    /* scheduler bytes changed inside: the optimizer part loads first, then is put back */
    memcpy(c, f->blob, f->len);
    c[schedoff] ^= 0xff;
    reseal(c, f->len);
    expect_rejected(f, c, f->len, "scheduler");
    free(c);
    an_err err = {0};
    assert_true(train_restore(f->t, "", 0, &err) < 0);
    assert_non_null(strstr(err.message, "empty"));
    assert_true(train_restore_weights(f->t, NULL, 0, &err) < 0);
}

/* Blobs of other jobs: another model shape, another optimizer, another schedule. */
static void test_blob_foreign(void **state)
{
    fixture *f = *state;
    struct {
        const char *from, *to, *needle;
    } subs[] = {
        {"\"hidden\": [5]", "\"hidden\": [6]", "another model"},
        {"\"activation\": \"tanh\"", "\"activation\": \"relu\"", "another model"},
        {"\"type\": \"Adam\"", "\"type\": \"Lamb\"", "optimizer"},
        {"\"WarmupLR\", \"params\": {\"warmup_num_steps\": 4}",
         "\"OneCycle\", \"params\": {\"cycle_min_lr\": 0.001, \"cycle_max_lr\": 0.01, "
         "\"cycle_first_step_size\": 4}", "schedul"},
    };
    for (size_t i = 0; i < sizeof subs / sizeof *subs; i++) {
        char text[2048];
        const char *at = strstr(BASE, subs[i].from);
        assert_non_null(at);
        snprintf(text, sizeof text, "%.*s%s%s", (int)(at - BASE), BASE, subs[i].to,
                 at + strlen(subs[i].from));
        job_spec s = {0};
        parse_spec(text, &s);
        train *o = create(&s);
        train_report r;
        step_ok(o, &r);
        void *b;
        size_t l;
        save_ok(o, &b, &l);
        expect_rejected(f, b, l, subs[i].needle);
        an_err err = {0};
        int rc = train_restore_weights(f->t, b, l, &err);
        if (i < 2) {
            assert_true(rc < 0);
            assert_non_null(strstr(err.message, "another model"));
        } else {
            /* same model: the weights carry over (resume_from with a new ds_config) */
            assert_int_equal(rc, 0);
            void *now;
            size_t nl;
            save_ok(f->t, &now, &nl);
            assert_memory_equal(blob_params(now), blob_params(b), 4 * 10);
            assert_int_equal(train_steps_done(f->t), 4);
            free(now);
            assert_int_equal(train_restore(f->t, f->before, f->blen, &err), 0);
        }
        free(b);
        train_free(o);
        job_spec_free(&s);
    }
}

/* ------------------------------------------------------------------------------------------
 * The rest of the contract */

static void test_divergence_names_step(void **state)
{
    (void)state;
    job_spec s = {0};
    parse_spec("{\"model\": {\"type\": \"linear\", \"inputs\": 3, \"outputs\": 1},"
               " \"data\": {\"type\": \"synthetic\", \"task\": \"regression\", \"samples\": 64,"
               " \"features\": 3}, \"steps\": 500, \"ds_config\": {\"train_batch_size\": 8,"
               " \"gradient_clipping\": 0, \"optimizer\": {\"type\": \"SGD\", \"params\":"
               " {\"lr\": 1000}}}}", &s);
    train *t = create(&s);
    an_err err = {0};
    train_report r;
    int rc = 0;
    int64_t done = 0;
    while (done < 500 && (rc = train_step(t, &r, &err)) == 0)
        done = r.step;
    assert_int_equal(rc, -EDOM);
    assert_true(done < 500);
    char want[64];
    snprintf(want, sizeof want, "at step %lld", (long long)done + 1);
    if (!strstr(err.message, want) || (!strstr(err.message, "NaN") && !strstr(err.message, "Inf")))
        fail_msg("expected \"%s\" and NaN/Inf in \"%s\"", want, err.message);
    assert_int_equal(train_steps_done(t), done);
    train_free(t);
    job_spec_free(&s);
}

/* Gradient accumulation scales the sum once: with two equal micro-batches (g + g) / 2 is g
 * exactly, so one step of gas 2 over [A, A] must equal one step of gas 1 over [A]. */
static void test_accumulation_scaling(void **state)
{
    (void)state;
    const char *fmt =
        "{\"model\": {\"type\": \"mlp\", \"inputs\": 2, \"hidden\": [3], \"outputs\": 1,"
        " \"activation\": \"tanh\"}, \"data\": {\"type\": \"inline\", \"x\": %s, \"y\": %s,"
        " \"shuffle\": false}, \"steps\": 1, \"ds_config\": {\"train_micro_batch_size_per_gpu\":"
        " 3, \"gradient_accumulation_steps\": %d, \"gradient_clipping\": 0, \"optimizer\":"
        " {\"type\": \"SGD\", \"params\": {\"lr\": 1}}}}";
    char a[1024], b[1024];
    snprintf(a, sizeof a, fmt, "[[0.1,0.2],[0.3,-0.7],[1.5,0.25]]", "[[1],[2],[-1]]", 1);
    snprintf(b, sizeof b, fmt,
             "[[0.1,0.2],[0.3,-0.7],[1.5,0.25],[0.1,0.2],[0.3,-0.7],[1.5,0.25]]",
             "[[1],[2],[-1],[1],[2],[-1]]", 2);
    const char *texts[2] = {a, b};
    void *blob[2];
    size_t len[2];
    train_report r[2];
    for (int i = 0; i < 2; i++) {
        job_spec s = {0};
        parse_spec(texts[i], &s);
        train *t = create(&s);
        step_ok(t, &r[i]);
        save_ok(t, &blob[i], &len[i]);
        train_free(t);
        job_spec_free(&s);
    }
    assert_memory_equal(blob_params(blob[0]), blob_params(blob[1]), 13 * sizeof(float));
    assert_true(r[0].loss == r[1].loss);
    assert_true(r[0].grad_norm == r[1].grad_norm);
    free(blob[0]);
    free(blob[1]);
}

/* gas 2 against DeepSpeed's own order: each micro-batch's backward of loss / 2, the two
 * gradients added into one buffer, then p - lr * g. With lr 1 and plain SGD the update is
 * exact, so the parameters after one step must agree bit for bit. */
static void test_accumulation_matches_deepspeed_gas2(void **state)
{
    (void)state;
    const char *text =
        "{\"seed\": 5, \"model\": {\"type\": \"mlp\", \"inputs\": 3, \"hidden\": [7],"
        " \"outputs\": 2, \"activation\": \"gelu\"}, \"data\": {\"type\": \"synthetic\","
        " \"task\": \"regression\", \"samples\": 10, \"features\": 3, \"outputs\": 2,"
        " \"shuffle\": false}, \"steps\": 1, \"ds_config\": {\"train_micro_batch_size_per_gpu\":"
        " 4, \"gradient_accumulation_steps\": 2, \"gradient_clipping\": 0, \"optimizer\":"
        " {\"type\": \"SGD\", \"params\": {\"lr\": 1}}}}";
    job_spec s = {0};
    parse_spec(text, &s);
    train *t = create(&s);
    void *b0, *b1;
    size_t len;
    save_ok(t, &b0, &len);
    train_report r;
    step_ok(t, &r);
    save_ok(t, &b1, &len);
    /* The same rows (0..7: shuffling off) through a model of the same spec and seed. */
    dataset tr, va;
    an_err err = {0};
    assert_int_equal(data_load(&s, NULL, 0, &tr, &va, &err), 0);
    model *m;
    assert_int_equal(model_create(&m, &s.model, s.seed, 4, &err), 0);
    assert_memory_equal(m->params, blob_params(b0), m->nparams * sizeof(float));
    float *g = calloc(m->nparams, sizeof *g), *gj = calloc(m->nparams, sizeof *gj);
    float dout[4 * 2];
    for (int j = 0; j < 2; j++) {
        assert_int_equal(model_forward(m, tr.x + j * 4 * 3, 4, 1, 0, (uint64_t)j), 0);
        loss_compute(LOSS_MSE, model_output(m), tr.y + j * 4 * 2, 4, 2, dout);
        for (int i = 0; i < 8; i++)
            dout[i] *= 0.5f; /* engine.backward scales the loss by 1/gas */
        assert_int_equal(model_backward(m, dout, gj, 0), 0);
        for (size_t i = 0; i < m->nparams; i++)
            g[i] = g[i] + gj[i];
    }
    size_t differ = 0;
    for (size_t i = 0; i < m->nparams; i++) {
        float want = m->params[i] - g[i];
        differ += memcmp(&want, &blob_params(b1)[i], sizeof want) != 0;
    }
    assert_int_equal(differ, 0);
    assert_true(memcmp(blob_params(b0), blob_params(b1), m->nparams * sizeof(float)) != 0);
    free(g);
    free(gj);
    model_free(m);
    data_free(&tr);
    data_free(&va);
    free(b0);
    free(b1);
    train_free(t);
    job_spec_free(&s);
}

static void test_clipping_and_groups(void **state)
{
    (void)state;
    const char *fmt =
        "{\"model\": {\"type\": \"linear\", \"inputs\": 3, \"outputs\": 1},"
        " \"data\": {\"type\": \"synthetic\", \"task\": \"regression\", \"samples\": 32,"
        " \"features\": 3, \"noise\": 0}, \"steps\": 5, \"param_groups\": [{\"match\":"
        " [\"*.bias\"], \"lr\": 0.5}], \"ds_config\": {\"train_batch_size\": 8,"
        " \"gradient_clipping\": %s, \"optimizer\": {\"type\": \"SGD\", \"params\": {\"lr\":"
        " 0.1}}}}";
    char a[1024];
    snprintf(a, sizeof a, fmt, "1e-4");
    job_spec s = {0};
    parse_spec(a, &s);
    train *t = create(&s);
    void *p0, *p1;
    size_t l;
    save_ok(t, &p0, &l);
    train_report r;
    step_ok(t, &r);
    assert_int_equal(r.ngroups, 2);
    assert_true(r.lr[0] == 0.1 && r.lr[1] == 0.5);
    assert_true(r.grad_norm > 1e-3); /* reported before clipping */
    save_ok(t, &p1, &l);
    /* After clipping to 1e-4 the update's norm is at most lr_max * 1e-4. */
    double sq = 0;
    for (int i = 0; i < 4; i++) {
        double d = (double)blob_params(p1)[i] - blob_params(p0)[i];
        sq += d * d;
    }
    assert_true(sqrt(sq) <= 0.5 * 1e-4 * 1.0001);
    assert_true(sqrt(sq) > 0);
    free(p0);
    free(p1);
    train_free(t);
    job_spec_free(&s);
}

static void test_validation_and_epochs(void **state)
{
    (void)state;
    job_spec s = {0};
    parse_spec("{\"model\": {\"type\": \"mlp\", \"inputs\": 4, \"hidden\": [8], \"outputs\": 3,"
               " \"activation\": \"relu\"}, \"loss\": \"cross_entropy\", \"data\": {\"type\":"
               " \"builtin\", \"name\": \"iris\"}, \"epochs\": 3, \"validation\": {\"fraction\":"
               " 0.2, \"every_steps\": 4}, \"ds_config\": {\"train_batch_size\": 16, \"optimizer\":"
               " {\"type\": \"Adam\", \"params\": {\"lr\": 0.01}}}}", &s);
    train *t = create(&s);
    int64_t total = train_total_steps(t);
    assert_true(total >= 3 * 7 && total <= 3 * 8);
    int vals = 0;
    train_report r;
    for (int64_t k = 1; k <= total; k++) {
        step_ok(t, &r);
        assert_int_equal(r.has_val, k % 4 == 0 || k == total);
        if (r.has_val) {
            vals++;
            assert_true(isfinite(r.val_loss) && r.val_acc >= 0 && r.val_acc <= 1);
        } else {
            assert_true(isnan(r.val_loss));
        }
    }
    assert_true(r.epoch >= 2);
    double l, acc;
    assert_int_equal(train_validate(t, &l, &acc), 0);
    assert_true(l == r.val_loss && acc == r.val_acc);
    assert_int_equal(train_inputs(t), 4);
    assert_int_equal(train_outputs(t), 3);
    train_free(t);
    job_spec_free(&s);

    parse_spec(BASE, &s);
    t = create(&s);
    assert_int_equal(train_validate(t, &l, &acc), -ENOENT);
    train_free(t);
    job_spec_free(&s);
}

static void test_weights_json_and_predict(void **state)
{
    (void)state;
    job_spec s = {0};
    parse_spec(BASE, &s);
    train *t = create(&s);
    train_report r;
    step_ok(t, &r);
    step_ok(t, &r);
    cJSON *j;
    assert_int_equal(train_weights_json(t, &j), 0);
    assert_int_equal(cJSON_GetObjectItem(j, "step")->valueint, 2);
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    void *blob;
    size_t len;
    save_ok(t, &blob, &len);
    const float *p = blob_params(blob);
    /* every float in the text reads back to the parameter's bits, in flat order */
    cJSON *back = cJSON_Parse(text);
    const cJSON *tn;
    size_t i = 0;
    cJSON_ArrayForEach(tn, cJSON_GetObjectItem(back, "tensors")) {
        const cJSON *row, *v;
        cJSON_ArrayForEach(row, cJSON_GetObjectItem(tn, "data")) {
            if (cJSON_IsArray(row)) {
                cJSON_ArrayForEach(v, row) {
                    float fv = (float)v->valuedouble;
                    assert_memory_equal(&fv, &p[i], sizeof fv);
                    i++;
                }
            } else {
                float fv = (float)row->valuedouble;
                assert_memory_equal(&fv, &p[i], sizeof fv);
                i++;
            }
        }
    }
    assert_int_equal(i, 4 * 5 + 5 + 5 * 2 + 2);
    cJSON_Delete(back);
    free(text);
    /* predictions: in one call of 600 rows (several batches) and row by row agree */
    enum { R = 600 };
    float *x = malloc(R * 4 * sizeof *x), *o = malloc(R * 2 * sizeof *o), one[2];
    for (int k = 0; k < R * 4; k++)
        x[k] = (float)sin(0.37 * k);
    an_err err = {0};
    assert_int_equal(train_predict(t, x, R, o, &err), 0);
    for (int k = 0; k < R; k += 37) {
        assert_int_equal(train_predict(t, x + k * 4, 1, one, &err), 0);
        assert_memory_equal(one, o + k * 2, sizeof one);
    }
    /* hand-computed: tanh MLP 4-5-2 from the flat parameters */
    for (int k = 0; k < 3; k++) {
        for (int c = 0; c < 2; c++) {
            double out = p[20 + 5 + 10 + c];
            for (int h = 0; h < 5; h++) {
                double z = p[20 + h];
                for (int f = 0; f < 4; f++)
                    z += (double)p[h * 4 + f] * x[k * 4 + f];
                out += (double)p[25 + c * 5 + h] * tanh(z);
            }
            assert_true(fabs(out - o[k * 2 + c]) < 1e-5);
        }
    }
    assert_true(train_predict(t, x, -1, o, &err) < 0);
    assert_int_equal(train_predict(t, x, 0, o, &err), 0);
    free(x);
    free(o);
    free(blob);
    train_free(t);
    job_spec_free(&s);
}

static void test_create_errors(void **state)
{
    (void)state;
    /* An uploaded data set whose cell is not a number names its place. */
    job_spec s = {0};
    parse_spec("{\"model\": {\"type\": \"linear\", \"inputs\": 2, \"outputs\": 1}, \"data\":"
               " {\"type\": \"dataset\", \"name\": \"d\", \"target\": \"y\"}, \"steps\": 3,"
               " \"ds_config\": {\"train_batch_size\": 2, \"optimizer\": {\"type\": \"SGD\","
               " \"params\": {\"lr\": 0.1}}}}", &s);
    const char csv[] = "a,b,y\n1,2,3\n4,five,6\n7,8,9\n";
    train *t = NULL;
    an_err err = {0};
    assert_true(train_create(&t, &s, csv, sizeof csv - 1, &err) < 0);
    assert_null(t);
    assert_true(strlen(err.message) > 0);
    const char good[] = "a,b,y\n1,2,3\n4,5,6\n7,8,9\n";
    assert_int_equal(train_create(&t, &s, good, sizeof good - 1, &err), 0);
    train_report r;
    step_ok(t, &r);
    assert_true(isfinite(r.loss));
    train_free(t);
    job_spec_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_e2e_linear_engine),
        cmocka_unit_test(test_e2e_linear_mse_formula),
        cmocka_unit_test(test_e2e_linear_mean_formula),
        cmocka_unit_test(test_e2e_linear_mean_without_y),
        cmocka_unit_test(test_e2e_iris_mlp),
        cmocka_unit_test(test_resume_matrix),
        cmocka_unit_test(test_resume_every_step),
        cmocka_unit_test_setup_teardown(test_blob_good_restores, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_blob_truncations, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_blob_bit_flips, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_blob_bad_headers, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_blob_foreign, fx_setup, fx_teardown),
        cmocka_unit_test(test_divergence_names_step),
        cmocka_unit_test(test_accumulation_scaling),
        cmocka_unit_test(test_accumulation_matches_deepspeed_gas2),
        cmocka_unit_test(test_clipping_and_groups),
        cmocka_unit_test(test_validation_and_epochs),
        cmocka_unit_test(test_weights_json_and_predict),
        cmocka_unit_test(test_create_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
