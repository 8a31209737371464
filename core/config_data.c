/* config_data — the `data` section of a job spec. */
#include "core/config_data.h"

#include <stdio.h>
#include <string.h>

#include "core/cfgval.h"
#include "core/config_gpt.h"

static const char *const data_types[] = {"synthetic", "inline", "dataset", "builtin", "text",
                                         NULL};
static const char *const tasks[] = {"regression", "classification", NULL};
static const char *const generators[] = {"blobs", "spirals", "xor", NULL};

/* The classic data sets shipped with the daemon (scikit-learn's copies). */
static const struct {
    const char *name;
    int64_t rows;
    int features, classes;
} builtins[] = {
    {"iris", 150, 4, 3},
    {"wine", 178, 13, 3},
    {"digits", 1797, 64, 10},
    {"fashion-mnist", 60000, 784, 10}, /* the training split; jobs/fashion.c reads it */
};

int cfg_builtin_shape(const char *name, int64_t *rows, int *features, int *classes)
{
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++)
        if (strcmp(builtins[i].name, name) == 0) {
            *rows = builtins[i].rows, *features = builtins[i].features;
            *classes = builtins[i].classes;
            return 1;
        }
    return 0;
}

/* Class-labelled data (`what` has `classes` classes) against the model and the loss. */
static int check_labels(int classes, const model_spec *m, int loss, const char *what,
                        an_err *err)
{
    switch (loss) {
    case LOSS_CROSS_ENTROPY:
        if (m->outputs != classes)
            return an_fail(err, "model.outputs",
                           "model.outputs is %d but %s has %d classes: cross_entropy needs one "
                           "output per class",
                           m->outputs, what, classes);
        return 0;
    case LOSS_BCE:
        if (classes != 2 || m->outputs != 1)
            return an_fail(err, "loss",
                           "loss bce needs 2 classes and model.outputs 1, but %s has %d classes "
                           "and model.outputs is %d: use cross_entropy",
                           what, classes, m->outputs);
        return 0;
    case LOSS_MSE:
        return an_fail(err, "loss",
                       "loss mse needs real-valued targets, but %s has class labels: use "
                       "cross_entropy (or bce for 2 classes)",
                       what);
    default:
        return 0;
    }
}

static int check_features_list(const cJSON *d, const model_spec *m, data_spec *out,
                               an_err *err)
{
    char p[CFG_PATH], got[80];
    const cJSON *f = cfg_get(d, "features");
    if (!f)
        return 0;
    if (!cJSON_IsArray(f) || cJSON_GetArraySize(f) < 1)
        return an_fail(err, "data.features",
                       "data.features must be a non-empty list of column names, got %s",
                       cfg_describe(f, got, sizeof got));
    int i = 0;
    for (const cJSON *e = f->child; e; e = e->next, i++) {
        an_path_index(p, sizeof p, "data.features", i);
        if (!cJSON_IsString(e) || !e->valuestring[0] || strlen(e->valuestring) >= CFG_MAX_NAME)
            return an_fail(err, p, "%s must be a column name (1 to %d characters), got %s", p,
                           CFG_MAX_NAME - 1, cfg_describe(e, got, sizeof got));
        for (const cJSON *x = f->child; x != e; x = x->next)
            if (strcmp(x->valuestring, e->valuestring) == 0)
                return an_fail(err, p, "%s repeats column \"%s\"", p, e->valuestring);
        if (out->target[0] && strcmp(out->target, e->valuestring) == 0)
            return an_fail(err, p, "%s is the target column \"%s\": a column cannot be both", p,
                           e->valuestring);
    }
    if (i != m->inputs)
        return an_fail(err, "data.features",
                       "data.features lists %d columns but model.inputs is %d: they must be "
                       "equal",
                       i, m->inputs);
    out->features_sel = cJSON_Duplicate(f, 1);
    if (!out->features_sel)
        return an_failc(err, -ENOMEM, "data.features", "out of memory copying data.features");
    return 0;
}

static int parse_synthetic(const cJSON *d, const model_spec *m, int loss, data_spec *out,
                           an_err *err)
{
    static const char *const reg_keys[] = {"type",  "task",    "samples", "features",
                                           "outputs", "noise", "shuffle", NULL};
    static const char *const cls_keys[] = {"type",    "task",  "generator", "samples",
                                           "features", "classes", "noise", "shuffle", NULL};
    int t, rc;
    int64_t v;
    if ((rc = cfg_enum(d, "data", "task", tasks, 0, &t, err)))
        return rc;
    out->task = t + 1;
    if ((rc = cfg_check_keys(d, "data", out->task == TASK_REGRESSION ? reg_keys : cls_keys, err)))
        return rc;
    if ((rc = cfg_int(d, "data", "samples", 1024, 1, CFG_MAX_SAMPLES, &v, err)))
        return rc;
    out->samples = v;
    if ((rc = cfg_int(d, "data", "features", m->inputs, 1, CFG_MAX_WIDTH, &v, err)))
        return rc;
    out->features = (int)v;
    if (out->features != m->inputs)
        return an_fail(err, "data.features",
                       "data.features is %d but model.inputs is %d: they must be equal",
                       out->features, m->inputs);
    if (out->samples * out->features > CFG_MAX_CELLS)
        return an_fail(err, "data.samples",
                       "data.samples %lld x data.features %d is %lld values, more than the "
                       "limit of %d",
                       (long long)out->samples, out->features,
                       (long long)out->samples * out->features, CFG_MAX_CELLS);
    if ((rc = cfg_num(d, "data", "noise", 0.1, 0.0, 1e6, CFG_CLOSED, &out->noise, err)))
        return rc;
    if (out->task == TASK_REGRESSION) {
        if ((rc = cfg_int(d, "data", "outputs", m->outputs, 1, CFG_MAX_WIDTH, &v, err)))
            return rc;
        out->outputs = (int)v;
        if (out->outputs != m->outputs)
            return an_fail(err, "data.outputs",
                           "data.outputs is %d but model.outputs is %d: they must be equal",
                           out->outputs, m->outputs);
        if (loss == LOSS_CROSS_ENTROPY)
            return an_fail(err, "loss",
                           "loss cross_entropy needs class-index targets, but data.task "
                           "regression gives real-valued targets: use task classification");
        if (loss == LOSS_BCE)
            return an_fail(err, "loss",
                           "loss bce needs targets in [0, 1], but data.task regression gives "
                           "real-valued targets: use task classification with 2 classes");
        return 0;
    }
    if ((rc = cfg_enum(d, "data", "generator", generators, 0, &t, err)))
        return rc;
    out->generator = t + 1;
    int def_classes = m->outputs >= 2 ? m->outputs : 2;
    if (out->generator == GEN_XOR)
        def_classes = 2;
    if ((rc = cfg_int(d, "data", "classes", def_classes, 2, CFG_MAX_CLASSES, &v, err)))
        return rc;
    out->classes = (int)v;
    if (out->generator == GEN_XOR && out->classes != 2)
        return an_fail(err, "data.classes", "data.classes must be 2 for generator xor, got %d",
                       out->classes);
    if (out->generator != GEN_BLOBS && out->features < 2)
        return an_fail(err, "data.features",
                       "generator %s needs at least 2 features, but data.features is %d",
                       generators[out->generator - 1], out->features);
    out->outputs = m->outputs;
    return check_labels(out->classes, m, loss, "the synthetic data", err);
}

static int parse_inline(const cJSON *d, const model_spec *m, int loss, data_spec *out,
                        an_err *err)
{
    static const char *const keys[] = {"type", "x", "y", "shuffle", NULL};
    char p[CFG_PATH], q[CFG_PATH], got[80];
    int rc;
    if ((rc = cfg_check_keys(d, "data", keys, err)) || (rc = cfg_require(d, "data", "x", err)))
        return rc;
    const cJSON *x = cfg_get(d, "x"), *y = cfg_get(d, "y");
    if (!cJSON_IsArray(x) || cJSON_GetArraySize(x) < 1 ||
        cJSON_GetArraySize(x) > CFG_MAX_SAMPLES)
        return an_fail(err, "data.x", "data.x must be a list of 1 to %d rows, got %s",
                       CFG_MAX_SAMPLES, cfg_describe(x, got, sizeof got));
    int i = 0;
    for (const cJSON *r = x->child; r; r = r->next, i++) {
        an_path_index(p, sizeof p, "data.x", i);
        if (!cJSON_IsArray(r) || cJSON_GetArraySize(r) != m->inputs)
            return an_fail(err, p, "%s must be a row of %d numbers (model.inputs), got %s", p,
                           m->inputs, cfg_describe(r, got, sizeof got));
        int j = 0;
        for (const cJSON *e = r->child; e; e = e->next, j++)
            if ((rc = cfg_float_value(e, an_path_index(q, sizeof q, p, j), err)))
                return rc;
    }
    int rows = i;
    out->samples = rows;
    out->features = m->inputs;
    out->outputs = m->outputs;
    if (!y && loss == LOSS_MEAN)
        goto copy; /* the mean loss reads no targets */
    if ((rc = cfg_require(d, "data", "y", err)))
        return rc;
    if (!cJSON_IsArray(y) || cJSON_GetArraySize(y) != rows)
        return an_fail(err, "data.y", "data.y must be a list of %d targets (one per row of "
                       "data.x), got %s", rows, cfg_describe(y, got, sizeof got));
    i = 0;
    for (const cJSON *r = y->child; r; r = r->next, i++) {
        an_path_index(p, sizeof p, "data.y", i);
        if (loss == LOSS_CROSS_ENTROPY) {
            int64_t c;
            if (cJSON_IsArray(r))
                return an_fail(err, p,
                               "%s must be a class index from 0 to %d (loss cross_entropy takes "
                               "class indices, not rows), got %s",
                               p, m->outputs - 1, cfg_describe(r, got, sizeof got));
            if ((rc = cfg_int_value(r, p, 0, m->outputs - 1, &c, err)))
                return rc;
            continue;
        }
        if (!cJSON_IsArray(r) || cJSON_GetArraySize(r) != m->outputs)
            return an_fail(err, p, "%s must be a row of %d numbers (model.outputs), got %s", p,
                           m->outputs, cfg_describe(r, got, sizeof got));
        int j = 0;
        for (const cJSON *e = r->child; e; e = e->next, j++) {
            double v;
            an_path_index(q, sizeof q, p, j);
            if (loss == LOSS_BCE)
                rc = cfg_num_value(e, q, 0.0, 1.0, CFG_CLOSED, &v, err);
            else
                rc = cfg_float_value(e, q, err);
            if (rc)
                return rc;
        }
    }
    out->y = cJSON_Duplicate(y, 1);
    if (!out->y)
        return an_failc(err, -ENOMEM, "data.y", "out of memory copying data.y");
copy:
    out->x = cJSON_Duplicate(x, 1);
    if (!out->x)
        return an_failc(err, -ENOMEM, "data.x", "out of memory copying data.x");
    return 0;
}

static int parse_table(const cJSON *d, const model_spec *m, int loss, data_spec *out,
                       an_err *err)
{
    static const char *const ds_keys[] = {"type",      "id",        "name",    "target",
                                          "features",  "normalize", "shuffle", NULL};
    static const char *const bi_keys[] = {"type",     "name",      "target", "features",
                                          "normalize", "shuffle", NULL};
    static const char *const bi_names[] = {"iris", "digits", "wine", "tinyshakespeare",
                                         "fashion-mnist", NULL};
    int rc, t;
    if ((rc = cfg_check_keys(d, "data", out->type == DATA_DATASET ? ds_keys : bi_keys, err)))
        return rc;
    if ((rc = cfg_str(d, "data", "target", "", out->target, sizeof out->target, err)))
        return rc;
    if ((rc = cfg_bool(d, "data", "normalize", 1, &out->normalize, err)))
        return rc;
    if (out->type == DATA_DATASET) {
        const cJSON *id = cfg_get(d, "id"), *name = cfg_get(d, "name");
        if (id && name)
            return an_fail(err, "data.name", "give data.id or data.name, not both");
        if (!id && !name)
            return an_fail(err, "data.id", "data.id or data.name is required for type dataset");
        if (id && (rc = cfg_str(d, "data", "id", NULL, out->dataset_id, sizeof out->dataset_id,
                                err)))
            return rc;
        if (name && (rc = cfg_str(d, "data", "name", NULL, out->name, sizeof out->name, err)))
            return rc;
        return check_features_list(d, m, out, err);
    }
    if ((rc = cfg_enum(d, "data", "name", bi_names, -1, &t, err)))
        return rc;
    snprintf(out->name, sizeof out->name, "%s", bi_names[t]);
    int64_t rows = 0;
    int features = 0, classes = 0;
    cfg_builtin_shape(out->name, &rows, &features, &classes);
    if (strcmp(out->name, "fashion-mnist") == 0) {
        /* images: no columns to pick; the label is the class */
        static const char *const fm_keys[] = {"type", "name", "normalize", "shuffle", NULL};
        if ((rc = cfg_check_keys(d, "data", fm_keys, err)))
            return rc;
        if (m->inputs != features)
            return an_fail(err, "model.inputs", "model.inputs is %d but builtin fashion-mnist "
                           "has %d features (28x28 pixels): set model.inputs to %d", m->inputs,
                           features, features);
        out->samples = rows;
        out->features = m->inputs;
        out->outputs = m->outputs;
        out->classes = classes;
        return check_labels(classes, m, loss, "builtin fashion-mnist", err);
    }
    if ((rc = check_features_list(d, m, out, err)))
        return rc;
    /* The builtin sets' columns are known now: a wrong name fails here, not at training. */
    cJSON *cols = cfg_builtin_columns(out->name);
    if (!cols)
        return an_failc(err, -ENOMEM, "data.name", "out of memory");
    char what[CFG_MAX_NAME + 16];
    snprintf(what, sizeof what, "builtin %s", out->name);
    int nbad = 0;
    rc = cfg_data_check_columns(out, what, cols, err, 1, &nbad);
    /* The label column (the last) holds class indices whether data.target names it or not. */
    const cJSON *last = cJSON_GetArrayItem(cols, cJSON_GetArraySize(cols) - 1);
    int class_target = !out->target[0] ||
                       (cJSON_IsString(last) && strcmp(out->target, last->valuestring) == 0);
    cJSON_Delete(cols);
    if (rc)
        return rc;
    if (!out->features_sel && features != m->inputs)
        return an_fail(err, "model.inputs",
                       "model.inputs is %d but builtin %s has %d features: set model.inputs to "
                       "%d or list data.features",
                       m->inputs, out->name, features, features);
    out->samples = rows;
    out->features = m->inputs;
    out->outputs = m->outputs;
    if (class_target) {
        out->classes = classes;
        return check_labels(classes, m, loss, what, err);
    }
    return 0;
}

int cfg_data_parse(const cJSON *d, const model_spec *m, int loss, data_spec *out, an_err *err)
{
    int t, rc;
    if ((rc = cfg_want_object(d, "data", err)) ||
        (rc = cfg_enum(d, "data", "type", data_types, -1, &t, err)))
        return rc;
    out->type = t + 1;
    out->normalize = 1;
    if ((rc = cfg_bool(d, "data", "shuffle", 1, &out->shuffle, err)))
        return rc;
    const cJSON *nm = cfg_get(d, "name");
    if (out->type == DATA_BUILTIN && cJSON_IsString(nm) &&
        strcmp(nm->valuestring, "tinyshakespeare") == 0) {
        out->type = DATA_TEXT;
        out->text_builtin = 1;
        snprintf(out->name, sizeof out->name, "tinyshakespeare");
    }
    if (out->type == DATA_TEXT)
        return cfg_text_parse(d, m, loss, out, err);
    if (m->type == MODEL_GPT && out->type == DATA_BUILTIN)
        /* the data type fits: the name is what is wrong (a misspelt tinyshakespeare) */
        return an_fail(err, "data.name", "model gpt trains on text: the builtin text is "
                       "tinyshakespeare, got \"%.80s\"", cJSON_IsString(nm) ? nm->valuestring : "");
    if (m->type == MODEL_GPT)
        return an_fail(err, "data.type", "model gpt trains on text: use data type text or "
                       "builtin tinyshakespeare, got %s", data_types[out->type - 1]);
    switch (out->type) {
    case DATA_SYNTHETIC:
        return parse_synthetic(d, m, loss, out, err);
    case DATA_INLINE:
        return parse_inline(d, m, loss, out, err);
    default:
        return parse_table(d, m, loss, out, err);
    }
}

int64_t cfg_data_rows(const data_spec *d)
{
    switch (d->type) {
    case DATA_SYNTHETIC:
    case DATA_BUILTIN:
        return d->samples;
    case DATA_INLINE:
        return cJSON_GetArraySize(d->x);
    default:
        return -1;
    }
}

static int add_copy(cJSON *o, const char *key, const cJSON *v)
{
    cJSON *c = cJSON_Duplicate(v, 1);
    if (c && cJSON_AddItemToObject(o, key, c))
        return 1;
    cJSON_Delete(c);
    return 0;
}

cJSON *cfg_data_json(const data_spec *d)
{
    if (d->type == DATA_TEXT)
        return cfg_text_json(d, d->text_builtin ? "builtin" : "text");
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    int ok = cJSON_AddStringToObject(o, "type", data_types[d->type - 1]) != NULL;
    switch (d->type) {
    case DATA_SYNTHETIC:
        ok = ok && cJSON_AddStringToObject(o, "task", tasks[d->task - 1]);
        if (d->task == TASK_CLASSIFICATION)
            ok = ok && cJSON_AddStringToObject(o, "generator", generators[d->generator - 1]);
        ok = ok && cJSON_AddNumberToObject(o, "samples", (double)d->samples) &&
             cJSON_AddNumberToObject(o, "features", d->features);
        if (d->task == TASK_REGRESSION)
            ok = ok && cJSON_AddNumberToObject(o, "outputs", d->outputs);
        else
            ok = ok && cJSON_AddNumberToObject(o, "classes", d->classes);
        ok = ok && cJSON_AddNumberToObject(o, "noise", d->noise);
        break;
    case DATA_INLINE:
        ok = ok && add_copy(o, "x", d->x);
        if (d->y)
            ok = ok && add_copy(o, "y", d->y);
        break;
    default:
        if (d->dataset_id[0])
            ok = ok && cJSON_AddStringToObject(o, "id", d->dataset_id);
        else
            ok = ok && cJSON_AddStringToObject(o, "name", d->name);
        if (d->target[0])
            ok = ok && cJSON_AddStringToObject(o, "target", d->target);
        if (d->features_sel)
            ok = ok && add_copy(o, "features", d->features_sel);
        ok = ok && cJSON_AddBoolToObject(o, "normalize", d->normalize);
        break;
    }
    ok = ok && cJSON_AddBoolToObject(o, "shuffle", d->shuffle);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}
