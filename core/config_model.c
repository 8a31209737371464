/* config_model — the `model` section of a job spec. */
#include "core/config_model.h"

#include <stdio.h>
#include <string.h>

#include "core/cfgval.h"
#include "core/config_gpt.h"

const char *const cfg_act_names[] = {"", "relu", "gelu", "tanh", "sigmoid", "silu", NULL};

int model_spec_tensors(const model_spec *m, spec_tensor *t)
{
    int n = 0;
    if (m->type == MODEL_LINEAR) {
        snprintf(t[0].name, sizeof t[0].name, "fc.weight");
        t[0].rank = 2, t[0].shape[0] = m->outputs, t[0].shape[1] = m->inputs;
        snprintf(t[1].name, sizeof t[1].name, "fc.bias");
        t[1].rank = 1, t[1].shape[0] = m->outputs, t[1].shape[1] = 0;
        return 2;
    }
    if (m->type != MODEL_MLP)
        return 0;
    int fan_in = m->inputs;
    for (int l = 0; l <= m->nhidden; l++) {
        int fan_out = l < m->nhidden ? m->hidden[l] : m->outputs;
        snprintf(t[n].name, sizeof t[n].name, "fc%d.weight", l + 1);
        t[n].rank = 2, t[n].shape[0] = fan_out, t[n].shape[1] = fan_in;
        n++;
        snprintf(t[n].name, sizeof t[n].name, "fc%d.bias", l + 1);
        t[n].rank = 1, t[n].shape[0] = fan_out, t[n].shape[1] = 0;
        n++;
        fan_in = fan_out;
    }
    return n;
}

int64_t model_spec_params(const model_spec *m)
{
    spec_tensor t[CFG_MAX_TENSORS];
    int n = model_spec_tensors(m, t);
    int64_t total = 0;
    for (int i = 0; i < n; i++)
        total += t[i].rank == 2 ? (int64_t)t[i].shape[0] * t[i].shape[1] : t[i].shape[0];
    return total;
}

static const char *shape_text(char *buf, size_t size, const int *dims, int nd)
{
    size_t n = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < nd && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s%d", i ? ", " : "", dims[i]);
    if (n < size)
        snprintf(buf + n, size - n, "]");
    return buf;
}

/* One tensor of `init`: nested arrays whose shape is exactly t's, numbers only. */
static int check_tensor(const cJSON *v, const char *path, const spec_tensor *t, an_err *err)
{
    char p[CFG_PATH], q[CFG_PATH], want[64], have[64], got[80];
    int dims[4], nd = 0;
    const cJSON *cur = v;
    if (!cJSON_IsArray(v))
        return an_fail(err, path, "%s must be %s of numbers with shape %s, got %s", path,
                       t->rank == 2 ? "a list of rows" : "a list",
                       shape_text(want, sizeof want, t->shape, t->rank),
                       cfg_describe(v, got, sizeof got));
    while (cJSON_IsArray(cur) && nd < 4) {
        dims[nd++] = cJSON_GetArraySize(cur);
        cur = cur->child;
        if (!cur)
            break;
    }
    int same = nd == t->rank;
    for (int i = 0; same && i < nd; i++)
        same = dims[i] == t->shape[i];
    if (!same)
        return an_fail(err, path, "%s has shape %s, expected %s", path,
                       shape_text(have, sizeof have, dims, nd),
                       shape_text(want, sizeof want, t->shape, t->rank));
    int i = 0;
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        an_path_index(p, sizeof p, path, i);
        if (t->rank == 1) {
            int rc = cfg_float_value(e, p, err);
            if (rc)
                return rc;
            continue;
        }
        if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != t->shape[1])
            return an_fail(err, p, "%s must be a row of %d numbers, got %s", p, t->shape[1],
                           cfg_describe(e, got, sizeof got));
        int j = 0;
        for (const cJSON *x = e->child; x; x = x->next, j++) {
            int rc = cfg_float_value(x, an_path_index(q, sizeof q, p, j), err);
            if (rc)
                return rc;
        }
    }
    return 0;
}

static int parse_init(const cJSON *init, model_spec *out, an_err *err)
{
    spec_tensor t[CFG_MAX_TENSORS];
    const char *names[CFG_MAX_TENSORS + 1];
    char p[CFG_PATH];
    int n = model_spec_tensors(out, t);
    for (int i = 0; i < n; i++)
        names[i] = t[i].name;
    names[n] = NULL;
    int rc = cfg_check_keys(init, "model.init", names, err);
    if (rc)
        return rc;
    for (int i = 0; i < n; i++) {
        const cJSON *v = cfg_get(init, t[i].name);
        if (v && (rc = check_tensor(v, an_path(p, sizeof p, "model.init", t[i].name), &t[i], err)))
            return rc;
    }
    out->init = cJSON_Duplicate(init, 1);
    if (!out->init)
        return an_failc(err, -ENOMEM, "model.init", "out of memory copying model.init");
    return 0;
}

int cfg_model_parse(const cJSON *m, model_spec *out, an_err *err)
{
    static const char *const types[] = {"linear", "mlp", "gpt", NULL};
    static const char *const linear_keys[] = {"type", "inputs", "outputs", "init", NULL};
    static const char *const mlp_keys[] = {"type",       "inputs",  "hidden", "outputs",
                                           "activation", "dropout", "init",   NULL};
    char p[CFG_PATH], got[80];
    int64_t v;
    int t, rc;

    if ((rc = cfg_want_object(m, "model", err)) || (rc = cfg_enum(m, "model", "type", types, -1, &t, err)))
        return rc;
    out->type = t + 1;
    if (out->type == MODEL_GPT)
        return cfg_gpt_parse(m, out, err);
    rc = cfg_check_keys(m, "model", out->type == MODEL_LINEAR ? linear_keys : mlp_keys, err);
    if (rc)
        return rc;
    if ((rc = cfg_require(m, "model", "inputs", err)) ||
        (rc = cfg_int(m, "model", "inputs", 0, 1, CFG_MAX_WIDTH, &v, err)))
        return rc;
    out->inputs = (int)v;
    if ((rc = cfg_require(m, "model", "outputs", err)) ||
        (rc = cfg_int(m, "model", "outputs", 0, 1, CFG_MAX_WIDTH, &v, err)))
        return rc;
    out->outputs = (int)v;
    out->activation = ACT_RELU;
    if (out->type == MODEL_MLP) {
        const cJSON *h = cfg_get(m, "hidden");
        if ((rc = cfg_require(m, "model", "hidden", err)))
            return rc;
        if (!cJSON_IsArray(h) || cJSON_GetArraySize(h) < 1 ||
            cJSON_GetArraySize(h) > CFG_MAX_HIDDEN)
            return an_fail(err, "model.hidden",
                           "model.hidden must be a list of 1 to %d layer widths, got %s",
                           CFG_MAX_HIDDEN, cfg_describe(h, got, sizeof got));
        int i = 0;
        for (const cJSON *e = h->child; e; e = e->next, i++) {
            rc = cfg_int_value(e, an_path_index(p, sizeof p, "model.hidden", i), 1,
                               CFG_MAX_WIDTH, &v, err);
            if (rc)
                return rc;
            out->hidden[i] = (int)v;
        }
        out->nhidden = i;
        if ((rc = cfg_enum(m, "model", "activation", cfg_act_names + 1, 0, &t, err)))
            return rc;
        out->activation = t + 1;
        if ((rc = cfg_num(m, "model", "dropout", 0.0, 0.0, 1.0, CFG_HI_OPEN, &out->dropout, err)))
            return rc;
    }
    int64_t params = model_spec_params(out);
    if (params > CFG_MAX_PARAMS)
        return an_fail(err, "model", "model has %lld parameters, more than the limit of %d",
                       (long long)params, CFG_MAX_PARAMS);
    const cJSON *init = cfg_get(m, "init");
    if (init && (rc = parse_init(init, out, err)))
        return rc;
    return 0;
}

cJSON *cfg_model_json(const model_spec *m)
{
    if (m->type == MODEL_GPT)
        return cfg_gpt_json(m);
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    int ok = cJSON_AddStringToObject(o, "type", m->type == MODEL_LINEAR ? "linear" : "mlp") &&
             cJSON_AddNumberToObject(o, "inputs", m->inputs);
    if (ok && m->type == MODEL_MLP) {
        cJSON *h = cJSON_CreateIntArray(m->hidden, m->nhidden);
        ok = h && cJSON_AddItemToObject(o, "hidden", h);
        if (!ok)
            cJSON_Delete(h);
    }
    ok = ok && cJSON_AddNumberToObject(o, "outputs", m->outputs);
    if (ok && m->type == MODEL_MLP)
        ok = cJSON_AddStringToObject(o, "activation", cfg_act_names[m->activation]) &&
             cJSON_AddNumberToObject(o, "dropout", m->dropout);
    if (ok && m->init) {
        cJSON *c = cJSON_Duplicate(m->init, 1);
        ok = c && cJSON_AddItemToObject(o, "init", c);
        if (!ok)
            cJSON_Delete(c);
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* "[16, 8]": an mlp's hidden widths. */
static void widths(const model_spec *m, char *buf, size_t size)
{
    size_t n = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < m->nhidden && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s%d", i ? ", " : "", m->hidden[i]);
    if (n < size)
        snprintf(buf + n, size - n, "]");
}

static const char *type_name(int t)
{
    return t == MODEL_LINEAR ? "linear" : t == MODEL_MLP ? "mlp" : t == MODEL_GPT ? "gpt" : "?";
}

int cfg_model_same_shape(const model_spec *from, const model_spec *to, char *what, size_t size)
{
    if (from->type != to->type) {
        snprintf(what, size, "model.type is %s there and %s here", type_name(from->type),
                 type_name(to->type));
        return 0;
    }
    int is_gpt = from->type == MODEL_GPT;
    /* the dimensions of the type: a gpt's outputs are its vocab_size */
    struct {
        const char *name;
        int a, b;
    } dims[] = {
        {"inputs", from->inputs, to->inputs},
        {"outputs", from->outputs, to->outputs},
        {"vocab_size", from->vocab_size, to->vocab_size},
        {"block_size", from->block_size, to->block_size},
        {"n_layer", from->n_layer, to->n_layer},
        {"n_head", from->n_head, to->n_head},
        {"n_embd", from->n_embd, to->n_embd},
        {"bias", from->bias, to->bias},
    };
    size_t first = is_gpt ? 2 : 0, end = is_gpt ? sizeof dims / sizeof dims[0] : 2;
    for (size_t i = first; i < end; i++) {
        int unknown = i <= 2 && (dims[i].a <= 0 || dims[i].b <= 0);
        if (!unknown && dims[i].a != dims[i].b) {
            snprintf(what, size, "model.%s is %d there and %d here", dims[i].name, dims[i].a,
                     dims[i].b);
            return 0;
        }
    }
    if (is_gpt && from->gelu != to->gelu) {
        snprintf(what, size, "model.gelu is %s there and %s here", from->gelu ? "erf" : "tanh",
                 to->gelu ? "erf" : "tanh");
        return 0;
    }
    if (is_gpt || from->type == MODEL_LINEAR)
        return 1;
    int same = from->nhidden == to->nhidden;
    for (int i = 0; same && i < from->nhidden; i++)
        same = from->hidden[i] == to->hidden[i];
    if (!same) {
        char a[200], b[200];
        widths(from, a, sizeof a);
        widths(to, b, sizeof b);
        snprintf(what, size, "model.hidden is %s there and %s here", a, b);
        return 0;
    }
    if (from->nhidden > 0 && from->activation != to->activation) {
        snprintf(what, size, "model.activation is %s there and %s here",
                 cfg_act_names[from->activation], cfg_act_names[to->activation]);
        return 0;
    }
    return 1;
}
