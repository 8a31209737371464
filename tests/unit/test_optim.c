/* test_optim — the optimizer kernels against recorded torch / numpy trajectories
 * (tests/refdata/torch-optim), plus clipping, Lion's sign at zero, multi-tensor groups,
 * changing betas, exact save/restore, and every rejected input of optim_init / optim_load. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "tests/unit/testutil.h"
#include "core/optim.h"
#include "util/util.h"

#define REFDIR "tests/refdata/torch-optim/"

/* Reference cases of optimizers anneald offers. The rest of the directory is listed in
 * SKIPPED with the reason; test_every_case_accounted_for fails on any file in neither list. */
static const char *const COVERED[] = {
    "adagrad", "adagrad_init_acc", "adagrad_lr_decay", "adagrad_wd",
    "adam_amsgrad", "adam_betas_eps", "adam_default", "adam_l2_wd", "adam_lr1e-2",
    "adamw", "adamw_amsgrad", "adamw_wd0.1",
    "lamb", "lamb_clamp_max", "lamb_clamp_min", "lamb_deepspeed_kernel", "lamb_wd0",
    "lion", "lion_wd",
    "rmsprop", "rmsprop_centered", "rmsprop_centered_momentum_wd", "rmsprop_momentum",
    "sgd_momentum", "sgd_momentum_dampening", "sgd_momentum_wd_nesterov", "sgd_nesterov",
    "sgd_plain", "sgd_weight_decay",
};
/* Adadelta, Adamax, NAdam, RAdam and Rprop are not optimizer types of anneald (DeepSpeed
 * passes them to torch.optim; anneald's job spec rejects them). */
static const char *const SKIPPED[] = {
    "adadelta", "adamax", "nadam_torch113", "nadam_torch2", "radam", "radam_wd", "rprop",
};

/* ---- reading a trace ------------------------------------------------------------------- */

static double num(const cJSON *obj, const char *key)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(obj, key);
    assert_non_null(x);
    if (cJSON_IsBool(x))
        return cJSON_IsTrue(x) ? 1.0 : 0.0;
    assert_true(cJSON_IsNumber(x));
    return x->valuedouble;
}

static double beta(const cJSON *hp, int i)
{
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(hp, "betas");
    assert_non_null(b);
    assert_int_equal(cJSON_GetArraySize(b), 2);
    return cJSON_GetArrayItem(b, i)->valuedouble;
}

/* Reads an array of n numbers into dst (float or double as dtype says). */
static void read_vec(const cJSON *arr, size_t n, int dtype, void *dst)
{
    assert_non_null(arr);
    assert_int_equal(cJSON_GetArraySize(arr), (int)n);
    size_t i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, arr)
    {
        assert_true(cJSON_IsNumber(x));
        if (dtype == OPTIM_F32)
            ((float *)dst)[i++] = (float)x->valuedouble;
        else
            ((double *)dst)[i++] = x->valuedouble;
    }
}

static double at(const void *v, int dtype, size_t i)
{
    return dtype == OPTIM_F32 ? (double)((const float *)v)[i] : ((const double *)v)[i];
}

/* Relative difference of got vs want in the max norm: max|got - want| / max|want|. Rounding
 * errors are absolute at the scale of the terms a value is computed from, so a parameter that
 * passes near zero carries them too; measuring it against its own tiny size would mean
 * nothing. */
static double max_rel(const void *got, const void *want, size_t n, int dtype)
{
    double scale = 0, worst = 0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(at(want, dtype, i)));
    for (size_t i = 0; i < n; i++) {
        double w = at(want, dtype, i), g = at(got, dtype, i);
        double d = fabs(g - w) / (scale + 1e-300);
        if (!(d <= worst))
            worst = isnan(d) ? INFINITY : d;
    }
    return worst;
}

/* The optim_cfg that reproduces a reference case. */
static optim_cfg cfg_for(const char *case_name, const cJSON *j, int deepspeed_adam)
{
    const cJSON *hp = cJSON_GetObjectItemCaseSensitive(j, "hyperparameters");
    const char *opt = cJSON_GetObjectItemCaseSensitive(j, "optimizer")->valuestring;
    optim_cfg c;
    memset(&c, 0, sizeof c);
    c.lr = num(hp, "lr");
    if (!strcmp(opt, "Adam") || !strcmp(opt, "AdamW")) {
        int w = !strcmp(opt, "AdamW");
        /* torch AdamW is DeepSpeed's default "Adam" (adam_w_mode true) and "AdamW";
         * torch Adam (coupled L2 decay) is "Adam" with adam_w_mode false. */
        c.type = w && !deepspeed_adam ? OPTIM_ADAMW : OPTIM_ADAM;
        c.adam_w_mode = w;
        c.beta1 = beta(hp, 0);
        c.beta2 = beta(hp, 1);
        c.eps = num(hp, "eps");
        c.weight_decay = num(hp, "weight_decay");
        c.bias_correction = 1;
        c.amsgrad = (int)num(hp, "amsgrad");
        c.torch_adam = c.amsgrad; /* amsgrad exists only on DeepSpeed's torch_adam path */
    } else if (!strncmp(case_name, "lamb", 4)) {
        c.type = OPTIM_LAMB;
        c.beta1 = beta(hp, 0);
        c.beta2 = beta(hp, 1);
        c.eps = num(hp, "eps");
        c.weight_decay = num(hp, "weight_decay");
        c.max_coeff = num(hp, "max_coeff");
        c.min_coeff = num(hp, "min_coeff");
        c.bias_correction = (int)num(hp, "bias_correction");
        c.eps_inside_sqrt = (int)num(hp, "eps_inside_sqrt");
        c.lamb_corrected_update = strcmp(case_name, "lamb_deepspeed_kernel") != 0;
    } else if (!strncmp(case_name, "lion", 4)) {
        c.type = OPTIM_LION;
        c.beta1 = beta(hp, 0);
        c.beta2 = beta(hp, 1);
        c.weight_decay = num(hp, "weight_decay");
    } else if (!strcmp(opt, "Adagrad")) {
        c.type = OPTIM_ADAGRAD;
        c.eps = num(hp, "eps");
        c.weight_decay = num(hp, "weight_decay");
        c.lr_decay = num(hp, "lr_decay");
        c.initial_accumulator_value = num(hp, "initial_accumulator_value");
    } else if (!strcmp(opt, "SGD")) {
        c.type = OPTIM_SGD;
        c.momentum = num(hp, "momentum");
        c.dampening = num(hp, "dampening");
        c.nesterov = (int)num(hp, "nesterov");
        c.weight_decay = num(hp, "weight_decay");
    } else if (!strcmp(opt, "RMSprop")) {
        c.type = OPTIM_RMSPROP;
        c.momentum = num(hp, "momentum");
        c.alpha = num(hp, "alpha");
        c.eps = num(hp, "eps");
        c.centered = (int)num(hp, "centered");
        c.weight_decay = num(hp, "weight_decay");
    } else {
        fail_msg("case %s: optimizer %s is not one anneald offers", case_name, opt);
    }
    return c;
}

static optim_group group_of(const optim_cfg *c)
{
    optim_group g = {c->lr, c->weight_decay, c->beta1, c->beta2, c->momentum, 0, 0};
    return g;
}

/* Runs one reference file: recorded grads in, every step's params and the final state
 * compared. */
static void run_trace(const char *case_name, int dtype, int deepspeed_adam)
{
    char path[256];
    snprintf(path, sizeof path, REFDIR "%s.%s.json", case_name,
             dtype == OPTIM_F32 ? "float32" : "float64");
    cJSON *j = tu_load_json(path);
    size_t n = (size_t)num(j, "n");
    int steps = (int)num(j, "steps");
    size_t es = dtype == OPTIM_F32 ? sizeof(float) : sizeof(double);
    double tol = dtype == OPTIM_F32 ? 1e-5 : 1e-12;

    optim_cfg c = cfg_for(case_name, j, deepspeed_adam);
    optim_group g = group_of(&c);
    optim_tensor t = {0, n, 0};
    optim o;
    an_err err;
    assert_int_equal(optim_init(&o, &c, dtype, n, &t, 1, &g, 1, &err), 0);

    void *p = malloc(n * es), *gr = malloc(n * es), *want = malloc(n * es);
    read_vec(cJSON_GetObjectItemCaseSensitive(j, "p0"), n, dtype, p);
    const cJSON *grads = cJSON_GetObjectItemCaseSensitive(j, "grads");
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(j, "params");
    assert_int_equal(cJSON_GetArraySize(grads), steps);
    double worst = 0;
    for (int s = 0; s < steps; s++) {
        read_vec(cJSON_GetArrayItem(grads, s), n, dtype, gr);
        optim_step(&o, p, gr);
        read_vec(cJSON_GetArrayItem(params, s), n, dtype, want);
        double e = max_rel(p, want, n, dtype);
        worst = fmax(worst, e);
        if (!(e <= tol))
            fail_msg("%s %s step %d: params differ by %.3g relative (tolerance %g)", case_name,
                     dtype == OPTIM_F32 ? "float32" : "float64", s + 1, e, tol);
    }
    assert_int_equal(o.groups[0].step, steps);

    /* Final state: every buffer the reference names must exist here and agree. */
    const cJSON *fs = cJSON_GetObjectItemCaseSensitive(j, "final_state");
    const cJSON *x;
    int compared = 0;
    cJSON_ArrayForEach(x, fs)
    {
        if (!strcmp(x->string, "step")) {
            assert_int_equal((int64_t)x->valuedouble, o.groups[0].step);
            continue;
        }
        void *buf = optim_buffer(&o, x->string);
        if (cJSON_IsString(x)) { /* "None": torch kept no buffer (SGD without momentum) */
            assert_null(buf);
            continue;
        }
        if (!buf)
            fail_msg("%s: no state buffer %s", case_name, x->string);
        read_vec(x, n, dtype, want);
        double e = max_rel(buf, want, n, dtype);
        if (!(e <= tol))
            fail_msg("%s %s final %s differs by %.3g relative", case_name,
                     dtype == OPTIM_F32 ? "float32" : "float64", x->string, e);
        compared++;
    }
    if (c.type != OPTIM_SGD || c.momentum != 0)
        assert_true(compared > 0);
    if (getenv("OPTIM_TEST_VERBOSE"))
        print_message("%-30s %s worst %.3g\n", case_name,
                      dtype == OPTIM_F32 ? "f32" : "f64", worst);
    free(p);
    free(gr);
    free(want);
    optim_free(&o);
    cJSON_Delete(j);
}

static void test_reference_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof COVERED / sizeof *COVERED; i++) {
        run_trace(COVERED[i], OPTIM_F32, 0);
        run_trace(COVERED[i], OPTIM_F64, 0);
    }
}

/* DeepSpeed's "Adam" with its default adam_w_mode true must reproduce torch AdamW. */
static void test_deepspeed_adam_is_adamw(void **state)
{
    (void)state;
    run_trace("adamw", OPTIM_F32, 1);
    run_trace("adamw", OPTIM_F64, 1);
    run_trace("adamw_wd0.1", OPTIM_F64, 1);
}

static void test_every_case_accounted_for(void **state)
{
    (void)state;
    cJSON *idx = tu_load_json(REFDIR "index.json");
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(idx, "cases"), *c;
    int seen = 0;
    cJSON_ArrayForEach(c, cases)
    {
        const char *name = cJSON_GetObjectItemCaseSensitive(c, "case")->valuestring;
        int found = 0;
        for (size_t i = 0; i < sizeof COVERED / sizeof *COVERED; i++)
            found |= !strcmp(name, COVERED[i]);
        for (size_t i = 0; i < sizeof SKIPPED / sizeof *SKIPPED; i++)
            found |= !strcmp(name, SKIPPED[i]);
        if (!found)
            fail_msg("reference case %s is neither tested nor listed as skipped", name);
        seen++;
    }
    assert_int_equal(seen, 2 * (int)(sizeof COVERED / sizeof *COVERED + sizeof SKIPPED /
                                                                        sizeof *SKIPPED));
    cJSON_Delete(idx);
}

/* ---- clipping ---------------------------------------------------------------------------- */

static void test_clip_scales_every_grad(void **state)
{
    (void)state;
    float g[4] = {3, 0, -4, 0};
    double norm = optim_clip_grad_norm(g, 4, OPTIM_F32, 1.0);
    assert_float_equal(norm, 5.0, 1e-12);
    float coef = (float)(1.0 / (5.0 + 1e-6));
    assert_true(g[0] == 3 * coef && g[2] == -4 * coef && g[1] == 0);
    double after = sqrt((double)g[0] * g[0] + (double)g[2] * g[2]);
    assert_true(after < 1.0 && after > 1.0 - 1e-5);

    double d[3] = {1e-3, 2e-3, -2e-3}; /* norm 3e-3 < max: coef 1, values unchanged */
    double d0[3];
    memcpy(d0, d, sizeof d);
    norm = optim_clip_grad_norm(d, 3, OPTIM_F64, 0.5);
    assert_float_equal(norm, 3e-3, 1e-15);
    assert_memory_equal(d, d0, sizeof d);
}

static void test_clip_off_only_measures(void **state)
{
    (void)state;
    enum { N = 1001 }; /* not a multiple of the 8-wide blocks */
    double g[N], g0[N], ss = 0;
    for (int i = 0; i < N; i++) {
        g[i] = g0[i] = sin(0.1 * i) * 10;
        ss += g[i] * g[i];
    }
    double norm = optim_clip_grad_norm(g, N, OPTIM_F64, 0.0);
    assert_true(fabs(norm - sqrt(ss)) <= 1e-12 * sqrt(ss));
    assert_memory_equal(g, g0, sizeof g);
    assert_true(optim_clip_grad_norm(g, N, OPTIM_F64, 1.0) == norm);
    double coef = 1.0 / (norm + 1e-6);
    for (int i = 0; i < N; i++)
        assert_true(g[i] == g0[i] * coef);
}

/* ---- semantics beyond the traces ------------------------------------------------------- */

static void test_lion_zero_grad_moves_by_lr(void **state)
{
    (void)state;
    optim_cfg c = {.type = OPTIM_LION, .lr = 0.125, .beta1 = 0.9, .beta2 = 0.99};
    optim_group g = group_of(&c);
    optim_tensor t = {0, 5, 0};
    optim o;
    assert_int_equal(optim_init(&o, &c, OPTIM_F32, 5, &t, 1, &g, 1, NULL), 0);
    float p[5] = {1, -1, 0, 0.5f, 2}, z[5] = {0};
    for (int s = 1; s <= 3; s++) {
        optim_step(&o, p, z);
        /* sign(+0) is -copysign: every weight moves by -lr, even at exactly zero. */
        assert_true(p[0] == 1 - 0.125f * s);
        assert_true(p[2] == -0.125f * s);
        assert_true(p[4] == 2 - 0.125f * s);
    }
    optim_free(&o);
}

/* Two tensors in two groups with different lr / wd behave like two separate optimizers;
 * Lamb's trust ratio is per tensor. */
static void check_split(int type)
{
    enum { N = 300, A = 117 };
    optim_cfg c = {.type = type, .lr = 0.01, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                   .bias_correction = 1, .adam_w_mode = 1, .max_coeff = 10, .min_coeff = 0.01,
                   .momentum = 0.9, .alpha = 0.99};
    optim_group gs[2] = {{0.01, 0.0, 0.9, 0.999, 0.9, 0, 0}, {0.003, 0.1, 0.9, 0.999, 0.9, 0, 0}};
    optim_tensor ts[2] = {{A, N - A, 1}, {0, A, 0}}; /* listed out of order on purpose */
    optim both, o0, o1;
    assert_int_equal(optim_init(&both, &c, OPTIM_F64, N, ts, 2, gs, 2, NULL), 0);
    optim_tensor t0 = {0, A, 0}, t1 = {0, N - A, 0};
    assert_int_equal(optim_init(&o0, &c, OPTIM_F64, A, &t0, 1, &gs[0], 1, NULL), 0);
    assert_int_equal(optim_init(&o1, &c, OPTIM_F64, N - A, &t1, 1, &gs[1], 1, NULL), 0);
    double p[N], q[N], g[N];
    for (int i = 0; i < N; i++)
        p[i] = q[i] = cos(0.3 * i);
    for (int s = 1; s <= 7; s++) {
        for (int i = 0; i < N; i++)
            g[i] = sin(0.2 * i + s) * (i < A ? 1.0 : 3.0);
        optim_step(&both, p, g);
        optim_step(&o0, q, g);
        optim_step(&o1, q + A, g + A);
    }
    assert_memory_equal(p, q, sizeof p);
    if (type == OPTIM_LAMB) {
        assert_true(optim_lamb_coeff(&both, 1) == optim_lamb_coeff(&o0, 0));
        assert_true(optim_lamb_coeff(&both, 0) == optim_lamb_coeff(&o1, 0));
        assert_true(optim_lamb_coeff(&both, 0) != optim_lamb_coeff(&both, 1));
    }
    optim_free(&both);
    optim_free(&o0);
    optim_free(&o1);
}

static void test_groups_and_tensors_independent(void **state)
{
    (void)state;
    check_split(OPTIM_ADAM);
    check_split(OPTIM_LAMB);
    check_split(OPTIM_LION);
    check_split(OPTIM_SGD);
    check_split(OPTIM_RMSPROP);
}

/* When beta1/beta2 change between steps the bias corrections use pow(beta_now, t), as
 * DeepSpeed's CPU Adam and torch do. One element, computed by hand in double. */
static void test_adam_changing_betas(void **state)
{
    (void)state;
    optim_cfg c = {.type = OPTIM_ADAM, .lr = 0.01, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                   .bias_correction = 1, .adam_w_mode = 1, .weight_decay = 0.05};
    optim_group g = group_of(&c);
    optim_tensor t = {0, 1, 0};
    optim o;
    assert_int_equal(optim_init(&o, &c, OPTIM_F64, 1, &t, 1, &g, 1, NULL), 0);
    double p = 0.7, m = 0, v = 0, want = 0.7;
    for (int s = 1; s <= 6; s++) {
        double b1 = 0.85 + 0.01 * s, b2 = 0.99 - 0.001 * s, lr = 0.01 * s, gr = 0.3 - 0.1 * s;
        o.groups[0].beta1 = b1;
        o.groups[0].beta2 = b2;
        o.groups[0].lr = lr;
        optim_step(&o, &p, &gr);
        m = b1 * m + (1 - b1) * gr;
        v = b2 * v + (1 - b2) * gr * gr;
        double bc1 = 1 - pow(b1, s), bc2 = 1 - pow(b2, s);
        want = want * (1 - lr * 0.05) - lr / bc1 * m / (sqrt(v) / sqrt(bc2) + 1e-8);
        assert_true(fabs(p - want) <= 1e-14 * fabs(want));
    }
    optim_free(&o);
}

/* bias_correction false: Adam's first step is lr * g/(sqrt((1-b2)) g + eps) * (1-b1). */
static void test_adam_no_bias_correction(void **state)
{
    (void)state;
    optim_cfg c = {.type = OPTIM_ADAM, .lr = 0.1, .beta1 = 0.9, .beta2 = 0.99, .eps = 0,
                   .bias_correction = 0, .adam_w_mode = 1};
    optim_group g = group_of(&c);
    optim_tensor t = {0, 1, 0};
    optim o;
    assert_int_equal(optim_init(&o, &c, OPTIM_F64, 1, &t, 1, &g, 1, NULL), 0);
    double p = 1.0, gr = 2.0;
    optim_step(&o, &p, &gr);
    double want = 1.0 - 0.1 * (0.1 * 2.0) / sqrt(0.01 * 4.0);
    assert_true(fabs(p - want) < 1e-15);
    optim_free(&o);
}

/* Lamb coefficients: 1 when ||p|| = 0, clamped to max_coeff / min_coeff otherwise. */
static void test_lamb_coeff_edges(void **state)
{
    (void)state;
    optim_cfg c = {.type = OPTIM_LAMB, .lr = 0.01, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                   .bias_correction = 1, .max_coeff = 10, .min_coeff = 0.01};
    optim_group g = group_of(&c);
    optim_tensor ts[3] = {{0, 4, 0}, {4, 4, 0}, {8, 4, 0}};
    optim o;
    assert_int_equal(optim_init(&o, &c, OPTIM_F32, 12, ts, 3, &g, 1, NULL), 0);
    assert_true(optim_lamb_coeff(&o, 0) == 1.0);
    /* tensor 0: zero params; tensor 1: huge params (ratio ≫ 10); tensor 2: tiny (≪ 0.01) */
    float p[12] = {0, 0, 0, 0, 1e3f, 1e3f, -1e3f, 1e3f, 1e-6f, 1e-6f, 1e-6f, 1e-6f};
    float gr[12] = {1, 1, 1, 1, 1, -1, 1, 1, 1, 1, -1, 1};
    optim_step(&o, p, gr);
    assert_true(optim_lamb_coeff(&o, 0) == 1.0);
    assert_true(optim_lamb_coeff(&o, 1) == 10.0);
    assert_true(optim_lamb_coeff(&o, 2) == 0.01);
    assert_true(optim_lamb_coeff(&o, 3) == 0.0);
    assert_true(p[0] < 0); /* moved with coefficient 1 */
    optim_free(&o);
}

/* The clamp of the trust ratio on the path a job gets: the optimizer block is parsed by
 * optim_parse (so the Lamb kernel is the one the product selects, DeepSpeed's: trust ratio on
 * the uncorrected update) with a max_coeff and a min_coeff that bind on this problem (its
 * unclamped ratio stays near 0.1: the uncorrected update is ~3x larger than the corrected one
 * at the start), and 50 steps are checked against a scalar transcription
 * of DEEPSPEED.md 4.2 written here in double, one element at a time. The gradient follows the
 * reference cases' formula, g = 0.1 sin(0.37 i + 0.11 t) + 0.05 p. */
static void lamb_clamp_case(double max_coeff, double min_coeff, double want_coeff)
{
    enum { N = 64, STEPS = 50 };
    char json[256];
    snprintf(json, sizeof json,
             "{\"type\": \"Lamb\", \"params\": {\"lr\": 0.01, \"weight_decay\": 0.01, "
             "\"max_coeff\": %.17g, \"min_coeff\": %.17g}}", max_coeff, min_coeff);
    cJSON *b = cJSON_Parse(json);
    assert_non_null(b);
    optim_cfg c;
    an_err err;
    an_err_clear(&err);
    assert_int_equal(optim_parse(b, "ds_config.optimizer", &c, &err, NULL), 0);
    cJSON_Delete(b);
    assert_int_equal(c.type, OPTIM_LAMB);
    assert_int_equal(c.lamb_corrected_update, 0);

    optim_group g = group_of(&c);
    optim_tensor t = {0, N, 0};
    optim o;
    assert_int_equal(optim_init(&o, &c, OPTIM_F64, N, &t, 1, &g, 1, NULL), 0);
    double p[N], q[N], gr[N], m[N] = {0}, v[N] = {0}, u[N];
    for (int i = 0; i < N; i++)
        p[i] = q[i] = 0.5 * sin(0.7 * i + 0.3) + 0.01 * (i - 32);
    int clamped = 0;
    for (int step = 1; step <= STEPS; step++) {
        for (int i = 0; i < N; i++)
            gr[i] = 0.1 * sin(0.37 * i + 0.11 * step) + 0.05 * q[i];
        optim_step(&o, p, gr);
        /* the reference: moments uncorrected, ratio of ||q|| to ||u||, clamped, step size
         * with the bias correction folded in */
        double w2 = 0, r2 = 0;
        for (int i = 0; i < N; i++) {
            m[i] = 0.9 * m[i] + (1 - 0.9) * gr[i];
            v[i] = 0.999 * v[i] + (1 - 0.999) * gr[i] * gr[i];
            u[i] = m[i] / (sqrt(v[i]) + 1e-8) + 0.01 * q[i];
            w2 += q[i] * q[i];
            r2 += u[i] * u[i];
        }
        double coeff = sqrt(w2) / sqrt(r2);
        coeff = fmin(fmax(coeff, min_coeff), max_coeff);
        double size = 0.01 * sqrt(1 - pow(0.999, step)) / (1 - pow(0.9, step));
        for (int i = 0; i < N; i++)
            q[i] -= size * coeff * u[i];
        if (fabs(optim_lamb_coeff(&o, 0) - coeff) > 1e-12)
            fail_msg("step %d: coefficient %.17g, reference %.17g", step,
                     optim_lamb_coeff(&o, 0), coeff);
        clamped += coeff == want_coeff;
        double e = max_rel(p, q, N, OPTIM_F64);
        if (!(e <= 1e-12))
            fail_msg("step %d: params differ from the reference by %.3g relative", step, e);
    }
    /* the clamp is what these cases test: it must have bound on most steps */
    if (want_coeff > 0)
        assert_true(clamped >= STEPS / 2);
    else
        assert_int_equal(clamped, 0);
    optim_free(&o);
}

static void test_lamb_clamp_product_path(void **state)
{
    (void)state;
    lamb_clamp_case(0.05, 0.01, 0.05); /* max_coeff binds */
    lamb_clamp_case(10.0, 1.0, 1.0);   /* min_coeff binds (lamb_clamp_min's clamp) */
    lamb_clamp_case(10.0, 0.01, -1);   /* neither: the ratio itself, never equal to -1 */
}

/* SGD's first step sets the buffer to the gradient, with no dampening. */
static void test_sgd_first_step_buffer(void **state)
{
    (void)state;
    optim_cfg c = {.type = OPTIM_SGD, .lr = 0.5, .momentum = 0.9, .dampening = 0.5};
    optim_group g = group_of(&c);
    optim_tensor t = {0, 2, 0};
    optim o;
    assert_int_equal(optim_init(&o, &c, OPTIM_F64, 2, &t, 1, &g, 1, NULL), 0);
    double p[2] = {1, 2}, gr[2] = {0.25, -4};
    optim_step(&o, p, gr);
    double *buf = optim_buffer(&o, "momentum_buffer");
    assert_non_null(buf);
    assert_true(buf[0] == 0.25 && buf[1] == -4);
    optim_step(&o, p, gr);
    assert_true(buf[0] == 0.9 * 0.25 + 0.5 * 0.25);
    optim_free(&o);
}

/* ---- save / load --------------------------------------------------------------------------- */

static optim_cfg any_cfg(int type)
{
    optim_cfg c = {.type = type, .lr = 0.01, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                   .bias_correction = 1, .adam_w_mode = 1, .weight_decay = 0.01,
                   .max_coeff = 10, .min_coeff = 0.01, .momentum = 0.9, .alpha = 0.99,
                   .centered = 1, .initial_accumulator_value = 0.1, .lr_decay = 0.01};
    if (type == OPTIM_ADAMW) {
        c.torch_adam = 1;
        c.amsgrad = 1;
    }
    return c;
}

static void check_restore(int type, int dtype)
{
    enum { N = 203, STEPS = 9, K = 4 };
    optim_cfg c = any_cfg(type);
    optim_group gs[2] = {group_of(&c), group_of(&c)};
    gs[1].lr = 0.002;
    optim_tensor ts[2] = {{0, 100, 0}, {100, N - 100, 1}};
    size_t es = dtype == OPTIM_F32 ? 4 : 8;
    unsigned char p[N * 8], q[N * 8], g[N * 8];
    for (int i = 0; i < N; i++) {
        if (dtype == OPTIM_F32)
            ((float *)p)[i] = (float)cos(0.1 * i);
        else
            ((double *)p)[i] = cos(0.1 * i);
    }
    memcpy(q, p, sizeof p);
    optim a, b;
    assert_int_equal(optim_init(&a, &c, dtype, N, ts, 2, gs, 2, NULL), 0);
    assert_int_equal(optim_init(&b, &c, dtype, N, ts, 2, gs, 2, NULL), 0);
    unsigned char *saved = NULL;
    size_t len = 0;
    for (int s = 1; s <= STEPS; s++) {
        for (int i = 0; i < N; i++) {
            double x = sin(0.3 * i + s);
            if (dtype == OPTIM_F32)
                ((float *)g)[i] = (float)x;
            else
                ((double *)g)[i] = x;
        }
        a.groups[0].lr = b.groups[0].lr = 0.01 / s; /* a schedule the restore must carry */
        optim_step(&a, p, g);
        optim_step(&b, q, g);
        if (s == K) {
            len = optim_state_size(&b);
            saved = malloc(len);
            assert_int_equal(optim_save(&b, saved, len - 1), -ENOSPC);
            assert_int_equal(optim_save(&b, saved, len), 0);
            optim_free(&b);
            optim_group fresh[2] = {group_of(&c), group_of(&c)};
            assert_int_equal(optim_init(&b, &c, dtype, N, ts, 2, fresh, 2, NULL), 0);
            an_err err;
            assert_int_equal(optim_load(&b, saved, len, &err), 0);
            assert_int_equal(b.groups[1].step, K);
            assert_true(b.groups[1].lr == 0.002);
        }
    }
    assert_memory_equal(p, q, N * es);
    assert_int_equal(a.state_elems, b.state_elems);
    assert_memory_equal(a.state, b.state, a.state_elems * es);
    for (int k = 0; k < 2; k++) {
        const optim_group *x = &a.groups[k], *y = &b.groups[k];
        assert_true(x->lr == y->lr && x->weight_decay == y->weight_decay &&
                    x->beta1 == y->beta1 && x->beta2 == y->beta2 && x->momentum == y->momentum);
        assert_int_equal(x->step, y->step);
        assert_int_equal(x->mom_started, y->mom_started);
    }
    free(saved);
    optim_free(&a);
    optim_free(&b);
}

static void test_save_load_exact(void **state)
{
    (void)state;
    for (int type = OPTIM_ADAM; type <= OPTIM_RMSPROP; type++) {
        check_restore(type, OPTIM_F32);
        check_restore(type, OPTIM_F64);
    }
}

/* SGD's buffer starts at the first step with momentum, which the state records per group; a
 * state saved before that record (tensor flags 0) started it at the group's first step. */
#define TF_STARTED_ONLY 1u
static void test_momentum_start_is_saved(void **state)
{
    (void)state;
    optim_cfg c = any_cfg(OPTIM_SGD);
    c.momentum = 0;
    c.momentum_cycled = 1; /* a buffer though momentum starts at 0 */
    optim_group g = group_of(&c);
    optim_tensor t = {0, 4, 0};
    float p[4] = {1, 2, 3, 4}, gr[4] = {0.5f, -0.5f, 0.25f, 1};
    optim o;
    an_err err;
    assert_int_equal(optim_init(&o, &c, OPTIM_F32, 4, &t, 1, &g, 1, NULL), 0);
    optim_step(&o, p, gr); /* at momentum 0: the buffer has not started */
    assert_int_equal(o.groups[0].mom_started, 0);
    size_t len = optim_state_size(&o);
    unsigned char *buf = malloc(len);
    assert_int_equal(optim_save(&o, buf, len), 0);
    o.groups[0].mom_started = 1;
    assert_int_equal(optim_load(&o, buf, len, &err), 0);
    assert_int_equal(o.groups[0].mom_started, 0);
    le_put_u32(buf + 48 + 20, TF_STARTED_ONLY); /* a started bit without the flags bit */
    assert_int_equal(optim_load(&o, buf, len, &err), -EINVAL);
    assert_string_equal(err.field, "tensors[0]");
    le_put_u32(buf + 48 + 20, 0); /* as an earlier build saved it */
    assert_int_equal(optim_load(&o, buf, len, &err), 0);
    assert_int_equal(o.groups[0].mom_started, 1); /* step 1 was taken */
    o.groups[0].momentum = 0.9;
    optim_step(&o, p, gr);
    assert_int_equal(o.groups[0].mom_started, 1);
    assert_int_equal(optim_save(&o, buf, len), 0);
    assert_int_equal(le_get_u32(buf + 48 + 20), 3u); /* recorded, and started */
    free(buf);
    optim_free(&o);
}

static void test_load_rejects(void **state)
{
    (void)state;
    optim_cfg c = any_cfg(OPTIM_ADAM);
    optim_group g = group_of(&c);
    optim_tensor t = {0, 10, 0};
    optim o, other;
    an_err err;
    assert_int_equal(optim_init(&o, &c, OPTIM_F32, 10, &t, 1, &g, 1, NULL), 0);
    size_t len = optim_state_size(&o);
    unsigned char *buf = malloc(len), *bad = malloc(len);
    assert_int_equal(optim_save(&o, buf, len), 0);

    /* Every truncation is an error, and leaves the optimizer untouched. */
    float before = ((float *)o.state)[0] = 42.0f;
    for (size_t l = 0; l < len; l += 7) {
        an_err_clear(&err);
        assert_int_equal(optim_load(&o, buf, l, &err), -EINVAL);
        assert_string_equal(err.field, "optimizer_state");
        assert_non_null(strstr(err.message, "expected"));
    }
    assert_int_equal(optim_load(&o, buf, len - 1, &err), -EINVAL);
    assert_true(((float *)o.state)[0] == before);
    assert_int_equal(optim_load(&o, NULL, len, &err), -EINVAL);

    memcpy(bad, buf, len);
    bad[0] ^= 1;
    assert_int_equal(optim_load(&o, bad, len, &err), -EINVAL);
    assert_non_null(strstr(err.message, "magic"));
    memcpy(bad, buf, len);
    bad[8] = 99; /* version */
    assert_int_equal(optim_load(&o, bad, len, &err), -EINVAL);
    assert_non_null(strstr(err.message, "version"));
    /* two tensors of one group whose flags disagree */
    optim_tensor two[2] = {{0, 5, 0}, {5, 5, 0}};
    optim pair;
    assert_int_equal(optim_init(&pair, &c, OPTIM_F32, 10, two, 2, &g, 1, NULL), 0);
    size_t plen = optim_state_size(&pair);
    unsigned char *pbuf = malloc(plen);
    assert_int_equal(optim_save(&pair, pbuf, plen), 0);
    assert_int_equal(optim_load(&pair, pbuf, plen, &err), 0);
    pbuf[48 + 24 + 20] ^= 1;
    assert_int_equal(optim_load(&pair, pbuf, plen, &err), -EINVAL);
    assert_string_equal(err.field, "tensors[1]");
    free(pbuf);
    optim_free(&pair);
    memcpy(bad, buf, len);
    bad[48 + 20] |= 4; /* the first tensor's flags: a bit this build does not know */
    assert_int_equal(optim_load(&o, bad, len, &err), -EINVAL);
    assert_string_equal(err.field, "tensors[0]");
    assert_non_null(strstr(err.message, "flags"));

    /* A state saved by a different optimizer, dtype, size or layout. */
    optim_cfg lion = any_cfg(OPTIM_LION);
    assert_int_equal(optim_init(&other, &lion, OPTIM_F32, 10, &t, 1, &g, 1, NULL), 0);
    assert_int_equal(optim_load(&other, buf, len, &err), -EINVAL);
    assert_non_null(strstr(err.message, "type"));
    optim_free(&other);
    assert_int_equal(optim_init(&other, &c, OPTIM_F64, 10, &t, 1, &g, 1, NULL), 0);
    assert_int_equal(optim_load(&other, buf, len, &err), -EINVAL);
    assert_non_null(strstr(err.message, "dtype"));
    optim_free(&other);
    optim_tensor t11 = {0, 11, 0};
    assert_int_equal(optim_init(&other, &c, OPTIM_F32, 11, &t11, 1, &g, 1, NULL), 0);
    assert_int_equal(optim_load(&other, buf, len, &err), -EINVAL);
    assert_non_null(strstr(err.message, "parameters"));
    optim_free(&other);
    optim_tensor t2[2] = {{0, 5, 0}, {5, 5, 0}};
    assert_int_equal(optim_init(&other, &c, OPTIM_F32, 10, t2, 2, &g, 1, NULL), 0);
    assert_int_equal(optim_load(&other, buf, len, &err), -EINVAL);
    optim_free(&other);
    optim_tensor t9 = {1, 9, 0};
    assert_int_equal(optim_init(&other, &c, OPTIM_F32, 10, &t9, 1, &g, 1, NULL), 0);
    assert_int_equal(optim_load(&other, buf, len, &err), -EINVAL);
    assert_string_equal(err.field, "tensors[0]");
    optim_free(&other);
    optim_cfg ams = c;
    ams.torch_adam = ams.amsgrad = 1; /* one more state buffer */
    assert_int_equal(optim_init(&other, &ams, OPTIM_F32, 10, &t, 1, &g, 1, NULL), 0);
    assert_int_equal(optim_load(&other, buf, len, &err), -EINVAL);
    assert_non_null(strstr(err.message, "state elements"));
    optim_free(&other);

    /* Trailing bytes are not silently ignored. */
    unsigned char *longer = calloc(1, len + 8);
    memcpy(longer, buf, len);
    assert_int_equal(optim_load(&o, longer, len + 8, &err), -EINVAL);
    free(longer);
    assert_int_equal(optim_load(&o, buf, len, &err), 0);
    assert_true(((float *)o.state)[0] == 0.0f);
    free(buf);
    free(bad);
    optim_free(&o);
}

/* ---- bad init arguments ----------------------------------------------------------------- */

static void expect_init_error(const optim_cfg *c, int dtype, size_t n, const optim_tensor *t,
                              int nt, const optim_group *g, int ng, const char *field,
                              const char *needle)
{
    optim o;
    an_err err;
    an_err_clear(&err);
    assert_int_equal(optim_init(&o, c, dtype, n, t, nt, g, ng, &err), -EINVAL);
    assert_string_equal(err.field, field);
    if (!strstr(err.message, needle))
        fail_msg("message \"%s\" lacks \"%s\"", err.message, needle);
    assert_null(o.state);
    optim_free(&o); /* safe after a failed init */
}

static void test_init_rejects(void **state)
{
    (void)state;
    optim_cfg c = any_cfg(OPTIM_ADAM);
    optim_group g[2] = {group_of(&c), group_of(&c)};
    optim_tensor t = {0, 8, 0};
    expect_init_error(&c, OPTIM_F32, 8, &t, 0, g, 1, "tensors", "got 0");
    expect_init_error(&c, OPTIM_F32, 8, NULL, 1, g, 1, "tensors", "at least one tensor");
    expect_init_error(&c, OPTIM_F32, 8, &t, 1, g, 0, "param_groups", "got 0");
    optim_tensor bad_group = {0, 8, 2};
    expect_init_error(&c, OPTIM_F32, 8, &bad_group, 1, g, 2, "tensors[0].group", "got 2");
    optim_tensor neg_group = {0, 8, -1};
    expect_init_error(&c, OPTIM_F32, 8, &neg_group, 1, g, 2, "tensors[0].group", "got -1");
    expect_init_error(&c, 3, 8, &t, 1, g, 1, "dtype", "got 3");
    expect_init_error(&c, 0, 8, &t, 1, g, 1, "dtype", "float32");
    expect_init_error(&c, OPTIM_F32, 0, &t, 1, g, 1, "params", "got 0");
    expect_init_error(&c, OPTIM_F32, 7, &t, 1, g, 1, "tensors[0]", "inside the 7 parameters");
    optim_tensor wrap = {SIZE_MAX - 2, 8, 0};
    expect_init_error(&c, OPTIM_F32, 8, &wrap, 1, g, 1, "tensors[0]", "inside");
    optim_tensor overlap[2] = {{4, 4, 0}, {0, 5, 1}};
    expect_init_error(&c, OPTIM_F32, 8, overlap, 2, g, 2, "tensors", "overlapping");
    optim_group negstep = g[0];
    negstep.step = -1;
    expect_init_error(&c, OPTIM_F32, 8, &t, 1, &negstep, 1, "param_groups[0].step", "got -1");
    optim_cfg unknown = c;
    unknown.type = 99;
    expect_init_error(&unknown, OPTIM_F32, 8, &t, 1, g, 1, "optimizer.type", "got 99");
    unknown.type = 0;
    expect_init_error(&unknown, OPTIM_F32, 8, &t, 1, g, 1, "optimizer.type", "got 0");
    expect_init_error(NULL, OPTIM_F32, 8, &t, 1, g, 1, "optimizer", "got none");
    optim o;
    expect_init_error(&c, OPTIM_F32, SIZE_MAX / 2, &t, 1, g, 1, "params", "fits in memory");
    /* A tensor may be empty and parameters may be left out (frozen). */
    optim_tensor parts[2] = {{0, 0, 0}, {2, 3, 1}};
    assert_int_equal(optim_init(&o, &c, OPTIM_F32, 8, parts, 2, g, 2, NULL), 0);
    float p[8] = {1, 1, 1, 1, 1, 1, 1, 1}, gr[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    optim_step(&o, p, gr);
    assert_true(p[0] == 1 && p[1] == 1 && p[5] == 1 && p[2] < 1 && p[4] < 1);
    optim_free(&o);
}

/* The bias correction skips pow once b^t cannot change 1 - b^t: the same bits as 1 - pow for
 * every step of a long run around and beyond that point, for the betas people use. */
static void test_bias_correction_exact(void **state)
{
    (void)state;
    const double betas[] = {0.5, 0.9, 0.95, 0.98, 0.99, 0.999, 0.9999, 0.99999};
    size_t skipped = 0;
    for (size_t k = 0; k < sizeof betas / sizeof betas[0]; k++) {
        double b = betas[k];
        for (double t = 1; t <= 5e6; t += t < 3e6 ? 1 : 997) {
            double want = 1.0 - pow(b, t), got = optim_bias_correction(b, t);
            if (memcmp(&want, &got, sizeof want) != 0)
                fail_msg("beta %.17g step %.0f: %.17g, 1 - pow gives %.17g", b, t, got, want);
            skipped += t * log2(b) < -60.0;
        }
        for (double t = 1e7; t < 1e12; t *= 3.7) /* far beyond: underflowed, still 1 */
            assert_true(optim_bias_correction(b, t) == 1.0 - pow(b, t));
    }
    assert_true(skipped > 0); /* the shortcut was taken, not only pow */
    /* Betas outside (0, 1) go to pow as they are. */
    assert_true(optim_bias_correction(0.0, 5) == 1.0 - pow(0.0, 5));
    assert_true(optim_bias_correction(1.0, 1e9) == 0.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_case_accounted_for),
        cmocka_unit_test(test_reference_cases),
        cmocka_unit_test(test_deepspeed_adam_is_adamw),
        cmocka_unit_test(test_clip_scales_every_grad),
        cmocka_unit_test(test_clip_off_only_measures),
        cmocka_unit_test(test_lion_zero_grad_moves_by_lr),
        cmocka_unit_test(test_groups_and_tensors_independent),
        cmocka_unit_test(test_adam_changing_betas),
        cmocka_unit_test(test_adam_no_bias_correction),
        cmocka_unit_test(test_lamb_coeff_edges),
        cmocka_unit_test(test_lamb_clamp_product_path),
        cmocka_unit_test(test_sgd_first_step_buffer),
        cmocka_unit_test(test_save_load_exact),
        cmocka_unit_test(test_momentum_start_is_saved),
        cmocka_unit_test(test_load_rejects),
        cmocka_unit_test(test_init_rejects),
        cmocka_unit_test(test_bias_correction_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
