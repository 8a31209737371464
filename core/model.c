/* model — linear and mlp networks over one flat parameter buffer (llm.c's layout): creation
 * and initialisation, forward/backward pairs per layer, tensor lists and weight JSON. */
#include "core/model.h"

#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/actckpt.h"
#include "core/gemm.h"
#include "core/rng.h"

#define MODEL_MAX_WIDTH (1 << 20)     /* a layer's inputs or outputs */
#define MODEL_MAX_PARAMS (1ull << 31) /* parameters in all */

const char *model_act_name(int act)
{
    switch (act) {
    case ACT_RELU: return "relu";
    case ACT_GELU: return "gelu";
    case ACT_TANH: return "tanh";
    case ACT_SIGMOID: return "sigmoid";
    case ACT_SILU: return "silu";
    default: return "?";
    }
}

/* ------------------------------------------------------------------------------------------
 * Creation */

static int check_spec(const model_spec *s, int max_batch, an_err *err)
{
    if (s->type != MODEL_LINEAR && s->type != MODEL_MLP)
        return an_fail(err, "model.type", "expected \"linear\" or \"mlp\", got type %d", s->type);
    if (s->inputs < 1 || s->inputs > MODEL_MAX_WIDTH)
        return an_fail(err, "model.inputs", "expected an integer in 1..%d, got %d",
                       MODEL_MAX_WIDTH, s->inputs);
    if (s->outputs < 1 || s->outputs > MODEL_MAX_WIDTH)
        return an_fail(err, "model.outputs", "expected an integer in 1..%d, got %d",
                       MODEL_MAX_WIDTH, s->outputs);
    if (s->type == MODEL_MLP) {
        if (s->nhidden < 0 || s->nhidden > CFG_MAX_HIDDEN)
            return an_fail(err, "model.hidden", "expected at most %d hidden layers, got %d",
                           CFG_MAX_HIDDEN, s->nhidden);
        for (int i = 0; i < s->nhidden; i++)
            if (s->hidden[i] < 1 || s->hidden[i] > MODEL_MAX_WIDTH) {
                char path[64];
                return an_fail(err, an_path_index(path, sizeof path, "model.hidden", i),
                               "expected a width in 1..%d, got %d", MODEL_MAX_WIDTH,
                               s->hidden[i]);
            }
        if (s->nhidden > 0 && (s->activation < ACT_RELU || s->activation > ACT_SILU))
            return an_fail(err, "model.activation",
                           "expected relu, gelu, tanh, sigmoid or silu, got activation %d",
                           s->activation);
        if (!(s->dropout >= 0.0 && s->dropout < 1.0))
            return an_fail(err, "model.dropout", "expected a probability in [0, 1), got %g",
                           s->dropout);
    }
    if (max_batch < 1)
        return an_fail(err, "ds_config.train_micro_batch_size_per_gpu",
                       "expected a batch size of at least 1, got %d", max_batch);
    return 0;
}

int model_create(model **out, const model_spec *spec, uint64_t seed, int max_batch, an_err *err)
{
    return model_create_ckpt(out, spec, seed, max_batch, 0, err);
}

int model_create_ckpt(model **out, const model_spec *spec, uint64_t seed, int max_batch,
                      int checkpoints, an_err *err)
{
    *out = NULL;
    int rc = check_spec(spec, max_batch, err);
    if (rc)
        return rc;
    model *m = calloc(1, sizeof *m);
    if (!m)
        return an_failc(err, -ENOMEM, "model", "out of memory for the model");
    m->type = spec->type;
    m->seed = seed;
    m->max_batch = max_batch;
    m->dims[0] = spec->inputs;
    if (spec->type == MODEL_MLP) {
        for (int i = 0; i < spec->nhidden; i++)
            m->dims[i + 1] = spec->hidden[i];
        m->nlayers = spec->nhidden + 1;
        m->act = spec->activation;
        m->dropout = (float)spec->dropout;
    } else {
        m->nlayers = 1;
    }
    m->dims[m->nlayers] = spec->outputs;

    /* Tensor table: weight then bias per layer, packed in order. */
    size_t off = 0;
    for (int l = 0; l < m->nlayers; l++) {
        int in = m->dims[l], o = m->dims[l + 1];
        model_tensor *w = &m->tensors[2 * l], *b = &m->tensors[2 * l + 1];
        *w = (model_tensor){.off = off, .n = (size_t)o * in, .ndim = 2, .shape = {o, in},
                            .layer = l};
        if (m->type == MODEL_LINEAR) {
            snprintf(w->name, sizeof w->name, "fc.weight");
            snprintf(b->name, sizeof b->name, "fc.bias");
        } else {
            snprintf(w->name, sizeof w->name, "fc%d.weight", l + 1);
            snprintf(b->name, sizeof b->name, "fc%d.bias", l + 1);
        }
        off += w->n;
        b->off = off;
        b->n = (size_t)o;
        b->ndim = 1;
        b->shape[0] = o;
        b->shape[1] = 0;
        b->layer = l;
        off += b->n;
    }
    m->ntensors = 2 * m->nlayers;
    m->nparams = off;
    if (off > MODEL_MAX_PARAMS) {
        free(m);
        return an_fail(err, "model", "the model has %zu parameters; at most %llu are supported",
                       off, MODEL_MAX_PARAMS);
    }

    /* Activations (model_arena.c): pre and post (and mask with dropout) per hidden layer, pre
     * for the output layer, two backward buffers, the bias-gradient scratch; with
     * checkpointing most of them share one region. */
    m->ckpt = checkpoints > m->nlayers ? m->nlayers : checkpoints;
    m->arena_floats = model_act_floats(m->dims, m->nlayers, max_batch, m->dropout > 0, m->ckpt);
    size_t act = m->arena_floats;
    m->params = calloc(m->nparams, sizeof *m->params);
    m->grads = calloc(m->nparams, sizeof *m->grads);
    m->arena = malloc(act * sizeof *m->arena);
    if (!m->params || !m->grads || !m->arena) {
        model_free(m);
        return an_failc(err, -ENOMEM, "model",
                        "out of memory for %zu parameters and %zu activations", off, act);
    }
    model_arena_carve(m);

    model_init_default(m, seed);
    if (spec->init) {
        rc = model_set_init(m, spec->init, err);
        if (rc) {
            model_free(m);
            return rc;
        }
    }
    *out = m;
    return 0;
}

void model_free(model *m)
{
    if (!m)
        return;
    free(m->params);
    free(m->grads);
    free(m->arena);
    free(m);
}

void model_init_default(model *m, uint64_t seed)
{
    m->seed = seed;
    for (int t = 0; t < m->ntensors; t++) {
        const model_tensor *mt = &m->tensors[t];
        /* nn.Linear: kaiming_uniform_(a=sqrt(5)) for the weight and U(±1/sqrt(fan_in)) for
         * the bias; both bounds come to 1/sqrt(fan_in). */
        double bound = 1.0 / sqrt((double)m->dims[mt->layer]);
        rng r;
        rng_init(&r, seed, rng_stream_id(RNG_INIT, (uint64_t)t, 0, 0), 0);
        float *p = m->params + mt->off;
        for (size_t i = 0; i < mt->n; i++)
            p[i] = (float)rng_range(&r, -bound, bound);
    }
}

const model_tensor *model_find(const model *m, const char *name)
{
    for (int t = 0; t < m->ntensors; t++)
        if (strcmp(m->tensors[t].name, name) == 0)
            return &m->tensors[t];
    return NULL;
}

/* Reads a JSON array of `n` numbers into dst, failing with `path` on any mismatch. */
static int read_row(const cJSON *a, float *dst, int n, const char *path, an_err *err)
{
    if (!cJSON_IsArray(a))
        return an_fail(err, path, "expected an array of %d numbers", n);
    int got = cJSON_GetArraySize(a);
    if (got != n)
        return an_fail(err, path, "expected %d numbers, got %d", n, got);
    int i = 0;
    for (const cJSON *v = a->child; v; v = v->next, i++) {
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
            char p2[300];
            return an_fail(err, an_path_index(p2, sizeof p2, path, i),
                           "expected a finite number");
        }
        dst[i] = (float)v->valuedouble;
    }
    return 0;
}

int model_set_init(model *m, const cJSON *init, an_err *err)
{
    if (!cJSON_IsObject(init))
        return an_fail(err, "model.init", "expected an object of tensor name -> nested arrays");
    /* Check everything first so that a failure changes nothing. */
    float *tmp = malloc(m->nparams * sizeof *tmp);
    if (!tmp)
        return an_failc(err, -ENOMEM, "model.init", "out of memory");
    memcpy(tmp, m->params, m->nparams * sizeof *tmp);
    int rc = 0;
    for (const cJSON *e = init->child; e && !rc; e = e->next) {
        char path[256];
        an_path(path, sizeof path, "model.init", e->string ? e->string : "");
        const model_tensor *t = e->string ? model_find(m, e->string) : NULL;
        if (!t) {
            char names[256] = "";
            for (int i = 0; i < m->ntensors; i++) {
                size_t len = strlen(names);
                snprintf(names + len, sizeof names - len, "%s%s", i ? ", " : "",
                         m->tensors[i].name);
            }
            rc = an_fail(err, path, "unknown tensor '%s'; this model has %s",
                         e->string ? e->string : "", names);
            break;
        }
        if (t->ndim == 1) {
            rc = read_row(e, tmp + t->off, t->shape[0], path, err);
            continue;
        }
        if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != t->shape[0]) {
            rc = an_fail(err, path, "expected %d rows of %d numbers (shape [%d, %d]), got %s%d",
                         t->shape[0], t->shape[1], t->shape[0], t->shape[1],
                         cJSON_IsArray(e) ? "" : "no array, size ",
                         cJSON_IsArray(e) ? cJSON_GetArraySize(e) : 0);
            break;
        }
        int r = 0;
        for (const cJSON *row = e->child; row && !rc; row = row->next, r++) {
            char rp[300];
            rc = read_row(row, tmp + t->off + (size_t)r * t->shape[1], t->shape[1],
                          an_path_index(rp, sizeof rp, path, r), err);
        }
    }
    if (!rc)
        memcpy(m->params, tmp, m->nparams * sizeof *tmp);
    free(tmp);
    return rc;
}

int model_glob_match(const char *pattern, const char *name)
{
    return fnmatch(pattern, name, 0) == 0;
}

int model_optim_tensors(const model *m, const param_group_spec *groups, int ngroups,
                        optim_tensor *out)
{
    for (int t = 0; t < m->ntensors; t++) {
        int g = 0;
        for (int k = 0; k < ngroups && !g; k++) {
            const cJSON *pat;
            cJSON_ArrayForEach(pat, groups[k].match)
            {
                if (cJSON_IsString(pat) && model_glob_match(pat->valuestring,
                                                            m->tensors[t].name)) {
                    g = k + 1;
                    break;
                }
            }
        }
        out[t] = (optim_tensor){.off = m->tensors[t].off, .n = m->tensors[t].n, .group = g};
    }
    return m->ntensors;
}

/* ------------------------------------------------------------------------------------------
 * Layers */

/* out[B, O] = in[B, I] · W[O, I]ᵀ + b[O]: the bias is written first and the product added
 * with beta = 1, so the bias costs no extra pass. */
static void linear_forward(float *out, const float *in, const float *W, const float *b, int B,
                           int I, int O)
{
    for (int r = 0; r < B; r++)
        memcpy(out + (size_t)r * O, b, (size_t)O * sizeof *out);
    gemm_f32(0, 1, B, O, I, 1.0f, in, I, W, I, 1.0f, out, O);
}

/* Given dz[B, O]: dW[O, I] (+)= dzᵀ · in, db[O] (+)= Σ_rows dz, and, if din is not NULL,
 * din[B, I] = dz · W. */
static void linear_backward(float *din, float *dW, float *db, float *colsum, const float *dz,
                            const float *in, const float *W, int B, int I, int O, int accumulate)
{
    gemm_f32(1, 0, O, I, B, 1.0f, dz, O, in, I, accumulate ? 1.0f : 0.0f, dW, I);
    for (int o = 0; o < O; o++)
        colsum[o] = 0.0f;
    for (int r = 0; r < B; r++) {
        const float *d = dz + (size_t)r * O;
        for (int o = 0; o < O; o++)
            colsum[o] += d[o];
    }
    if (accumulate)
        for (int o = 0; o < O; o++)
            db[o] += colsum[o];
    else
        memcpy(db, colsum, (size_t)O * sizeof *db);
    if (din)
        gemm_f32(0, 0, B, I, O, 1.0f, dz, O, W, I, 0.0f, din, I);
}

static inline float sigmoidf(float z)
{
    return z >= 0 ? 1.0f / (1.0f + expf(-z)) : expf(z) / (1.0f + expf(z));
}

/* post[n] = act(pre[n]) (times mask[n] when mask is not NULL). */
static void act_forward(float *post, const float *pre, const float *mask, size_t n, int act)
{
    switch (act) {
    case ACT_RELU:
        for (size_t i = 0; i < n; i++)
            post[i] = pre[i] > 0.0f ? pre[i] : 0.0f;
        break;
    case ACT_GELU: /* exact: z/2 (1 + erf(z/sqrt 2)), torch's default */
        for (size_t i = 0; i < n; i++)
            post[i] = 0.5f * pre[i] * (1.0f + erff(pre[i] * (float)M_SQRT1_2));
        break;
    case ACT_TANH:
        for (size_t i = 0; i < n; i++)
            post[i] = tanhf(pre[i]);
        break;
    case ACT_SIGMOID:
        for (size_t i = 0; i < n; i++)
            post[i] = sigmoidf(pre[i]);
        break;
    case ACT_SILU:
        for (size_t i = 0; i < n; i++)
            post[i] = pre[i] * sigmoidf(pre[i]);
        break;
    default:
        memcpy(post, pre, n * sizeof *post);
        break;
    }
    if (mask)
        for (size_t i = 0; i < n; i++)
            post[i] *= mask[i];
}

/* d[n] = d[n] (times mask[n]) * act'(pre[n]), in place: from d(loss)/d(post) to
 * d(loss)/d(pre). */
static void act_backward(float *d, const float *pre, const float *mask, size_t n, int act)
{
    if (mask)
        for (size_t i = 0; i < n; i++)
            d[i] *= mask[i];
    switch (act) {
    case ACT_RELU:
        for (size_t i = 0; i < n; i++)
            d[i] = pre[i] > 0.0f ? d[i] : 0.0f;
        break;
    case ACT_GELU: {
        const float inv_sqrt_2pi = 0.3989422804014327f;
        for (size_t i = 0; i < n; i++) {
            float z = pre[i];
            float cdf = 0.5f * (1.0f + erff(z * (float)M_SQRT1_2));
            d[i] *= cdf + z * inv_sqrt_2pi * expf(-0.5f * z * z);
        }
        break;
    }
    case ACT_TANH:
        for (size_t i = 0; i < n; i++) {
            float t = tanhf(pre[i]);
            d[i] *= 1.0f - t * t;
        }
        break;
    case ACT_SIGMOID:
        for (size_t i = 0; i < n; i++) {
            float s = sigmoidf(pre[i]);
            d[i] *= s * (1.0f - s);
        }
        break;
    case ACT_SILU:
        for (size_t i = 0; i < n; i++) {
            float s = sigmoidf(pre[i]);
            d[i] *= s * (1.0f + pre[i] * (1.0f - s));
        }
        break;
    default:
        break;
    }
}

/* Inverted dropout: mask[n] = 0 with probability p, else 1/(1-p), from the stream of
 * (step, micro, layer). */
static void dropout_mask(float *mask, size_t n, float p, uint64_t seed, uint64_t step,
                         uint64_t micro, int layer)
{
    rng r;
    rng_init(&r, seed, rng_stream_id(RNG_DROPOUT, step, micro, (uint64_t)layer), 0);
    float keep = 1.0f / (1.0f - p);
    for (size_t i = 0; i < n; i++)
        mask[i] = rng_uniform_f(&r) < p ? 0.0f : keep;
}

/* ------------------------------------------------------------------------------------------
 * Passes */

/* Layer l over its input [B, dims[l]]: pre[l], and for a hidden layer its dropout mask (when
 * masked; a recomputation reads the kept one) and post[l]. */
static void layer_forward(model *m, int l, const float *in, int B, int masked, uint64_t step,
                          uint64_t micro, int recompute)
{
    int I = m->dims[l], O = m->dims[l + 1];
    const float *W = m->params + m->tensors[2 * l].off;
    const float *b = m->params + m->tensors[2 * l + 1].off;
    linear_forward(m->pre[l], in, W, b, B, I, O);   /* pre[l]: [B, O] */
    if (l == m->nlayers - 1)
        return;
    size_t n = (size_t)B * O;
    if (masked && recompute && m->maskbits[l])
        model_mask_unpack(m->mask[l], m->maskbits[l], n, 1.0f / (1.0f - m->dropout));
    else if (masked)
        dropout_mask(m->mask[l], n, m->dropout, m->seed, step, micro, l);
    if (masked && !recompute && m->maskbits[l])
        model_mask_pack(m->maskbits[l], m->mask[l], n);
    act_forward(m->post[l], m->pre[l], masked ? m->mask[l] : NULL, n, m->act);
}

int model_predict(model *m, const float *x, int rows, float *out, an_err *err)
{
    const int I = m->dims[0], O = m->dims[m->nlayers];
    if (rows < 0)
        return an_fail(err, "rows", "expected a row count >= 0, got %d", rows);
    if (rows > 0 && (!x || !out))
        return an_fail(err, "x", "expected input and output buffers, got NULL");
    for (int r = 0; r < rows; r += m->max_batch) {
        int B = rows - r < m->max_batch ? rows - r : m->max_batch;
        int rc = model_forward(m, x + (size_t)r * I, B, 0, 0, 0);
        if (rc)
            return an_failc(err, rc, "x", "forward pass failed on rows %d..%d", r, r + B - 1);
        memcpy(out + (size_t)r * O, model_output(m), (size_t)B * O * sizeof *out);
    }
    return 0;
}

int model_forward(model *m, const float *x, int B, int training, uint64_t step, uint64_t micro)
{
    if (B < 1 || B > m->max_batch)
        return -EINVAL;
    int masked = training && m->dropout > 0.0f;
    for (int l = 0; l < m->nlayers; l++)
        layer_forward(m, l, l ? m->post[l - 1] : x, B, masked, step, micro, 0);
    m->last_x = x;
    m->last_b = B;
    m->last_masked = masked;
    m->last_step = step;
    m->last_micro = micro;
    /* With checkpointing the shared buffers now hold the last segment's activations. */
    m->ckpt_cur = m->ckpt ? m->ckpt - 1 : 0;
    return 0;
}

/* Checkpointing: makes the shared buffers hold the activations of the segment of layer l,
 * recomputed from the segment's input (a kept buffer, or the caller's x) exactly as the last
 * forward computed them. */
static void ckpt_need(model *m, int l)
{
    int L = m->nlayers, K = m->ckpt;
    if (!K)
        return;
    int s = actckpt_segment(l, L, K);
    if (s == m->ckpt_cur)
        return;
    int end = actckpt_start(s + 1, L, K);
    for (int j = actckpt_start(s, L, K); j < end && j < L - 1; j++)
        layer_forward(m, j, j ? m->post[j - 1] : m->last_x, m->last_b, m->last_masked,
                      m->last_step, m->last_micro, 1);
    m->ckpt_cur = s;
}

const float *model_output(const model *m)
{
    return m->pre[m->nlayers - 1];
}

int model_backward(model *m, const float *dout, float *grad, int accumulate)
{
    if (!m->last_x)
        return -EINVAL;
    int B = m->last_b;
    const float *dz = dout; /* d(loss)/d(pre[l]): [B, dims[l+1]] */
    ckpt_need(m, m->nlayers - 1);
    for (int l = m->nlayers - 1; l >= 0; l--) {
        int I = m->dims[l], O = m->dims[l + 1];
        const float *in = l ? m->post[l - 1] : m->last_x;
        const float *W = m->params + m->tensors[2 * l].off;
        float *dW = grad + m->tensors[2 * l].off, *db = grad + m->tensors[2 * l + 1].off;
        float *din = l ? m->dbuf[l & 1] : NULL; /* never the buffer dz lives in */
        linear_backward(din, dW, db, m->colsum, dz, in, W, B, I, O, accumulate);
        if (!l)
            break;
        ckpt_need(m, l - 1); /* pre[l-1] and mask[l-1]: a lower segment's, maybe */
        act_backward(din, m->pre[l - 1], m->last_masked ? m->mask[l - 1] : NULL,
                     (size_t)B * I, m->act);
        dz = din;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * JSON */

/* The shortest of %.6g..%.9g that reads back to the same float. */
static cJSON *float_json(float v)
{
    if (!isfinite(v))
        return cJSON_CreateNull();
    char buf[32];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)v);
        if (strtof(buf, NULL) == v)
            break;
    }
    return cJSON_CreateRaw(buf);
}

cJSON *model_row_json(const float *p, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) {
        cJSON *v = float_json(p[i]);
        if (!v || !cJSON_AddItemToArray(a, v)) {
            cJSON_Delete(v);
            cJSON_Delete(a);
            return NULL;
        }
    }
    return a;
}

cJSON *model_weights_json(const model *m, const float *params)
{
    cJSON *arr = cJSON_CreateArray();
    for (int t = 0; arr && t < m->ntensors; t++) {
        const model_tensor *mt = &m->tensors[t];
        cJSON *o = cJSON_CreateObject(), *data;
        int ok = o && cJSON_AddStringToObject(o, "name", mt->name);
        int shape[2] = {mt->shape[0], mt->shape[1]};
        cJSON *sh = cJSON_CreateIntArray(shape, mt->ndim);
        ok = ok && sh && cJSON_AddItemToObject(o, "shape", sh);
        if (!ok)
            cJSON_Delete(sh);
        if (mt->ndim == 1) {
            data = model_row_json(params + mt->off, mt->shape[0]);
        } else {
            data = cJSON_CreateArray();
            for (int r = 0; data && r < mt->shape[0]; r++) {
                cJSON *row = model_row_json(params + mt->off + (size_t)r * mt->shape[1], mt->shape[1]);
                if (!row || !cJSON_AddItemToArray(data, row)) {
                    cJSON_Delete(row);
                    cJSON_Delete(data);
                    data = NULL;
                }
            }
        }
        ok = ok && data && cJSON_AddItemToObject(o, "data", data);
        if (!ok) {
            if (!o || !cJSON_GetObjectItem(o, "data"))
                cJSON_Delete(data);
            cJSON_Delete(o);
            cJSON_Delete(arr);
            return NULL;
        }
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}
