/* infer — a model with a checkpoint's parameters, for predictions and weights only. */
#include "core/infer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/blob.h"
#include "core/config_gpt.h"
#include "core/train_gpt.h"

/* A gpt: the shape from the spec, vocab_size from the checkpoint's vocabulary. */
static int infer_gpt(infer *f, const job_spec *spec, const blob_view *v, an_err *err)
{
    if (!v->sec[SEC_VOCAB])
        return an_failc(err, -EPROTO, "checkpoint", "the checkpoint holds no vocabulary");
    cJSON *j = cJSON_ParseWithLength((const char *)v->sec[SEC_VOCAB], (size_t)v->len[SEC_VOCAB]);
    int rc = j ? text_vocab_from_json(j, "checkpoint", &f->vocab, err)
               : an_failc(err, -EPROTO, "checkpoint", "the checkpoint's vocabulary is malformed");
    cJSON_Delete(j);
    if (rc)
        return rc < 0 ? rc : -EPROTO;
    model_spec ms = spec->model;
    ms.vocab_size = f->vocab.size;
    gpt_shape s;
    cfg_gpt_shape(&ms, &s);
    s.dropout = 0; /* inference never drops: no masks in the arena */
    if ((rc = gpt_create(&f->g, &s, spec->seed, 1, err)))
        return rc;
    if (v->model_hash != gtrain_model_hash(f->g) ||
        v->len[SEC_PARAMS] != f->g->nparams * sizeof(float))
        return an_failc(err, -EPROTO, "checkpoint", "the checkpoint is of another model (this "
                        "job's is a gpt with %zu parameters)", f->g->nparams);
    memcpy(f->g->params, v->sec[SEC_PARAMS], (size_t)v->len[SEC_PARAMS]);
    return 0;
}

_Static_assert(INFER_SECTIONS == ((1u << SEC_COUNTERS) | (1u << SEC_PARAMS) |
                                  (1u << SEC_INPUT_STATS) | (1u << SEC_VOCAB)),
               "INFER_SECTIONS names the sections infer_create_view reads");

int infer_create(infer **out, const job_spec *spec, const void *blob, size_t len, an_err *err)
{
    *out = NULL;
    blob_view v;
    int rc = blob_parse(blob, len, &v, err);
    if (rc)
        return rc;
    return infer_create_view(out, spec, &v, err);
}

int infer_create_view(infer **out, const job_spec *spec, const blob_view *vp, an_err *err)
{
    *out = NULL;
    const blob_view v = *vp;
    int rc;
    int64_t steps = blob_steps(&v);
    if (steps < 0)
        return an_failc(err, -EPROTO, "checkpoint", "the checkpoint's step counter is "
                        "malformed (%llu bytes)", (unsigned long long)v.len[SEC_COUNTERS]);
    infer *f = calloc(1, sizeof *f);
    if (!f)
        return an_failc(err, -ENOMEM, "", "out of memory");
    if (spec->model.type == MODEL_GPT) {
        f->step = steps;
        rc = infer_gpt(f, spec, &v, err);
        if (rc) {
            infer_free(f);
            return rc;
        }
        *out = f;
        return 0;
    }
    /* The parameters are overwritten below: the default initialisation model_create draws
     * is the only work spent on weights the checkpoint replaces. */
    rc = model_create(&f->m, &spec->model, spec->seed, INFER_BATCH, err);
    if (rc) {
        free(f);
        return rc;
    }
    if (v.model_hash != blob_model_hash(f->m) ||
        v.len[SEC_PARAMS] != f->m->nparams * sizeof(float)) {
        rc = an_failc(err, -EPROTO, "checkpoint", "the checkpoint is of another model (shape "
                      "or activation differs from this job's model with %zu parameters)",
                      f->m->nparams);
        infer_free(f);
        return rc;
    }
    memcpy(f->m->params, v.sec[SEC_PARAMS], (size_t)v.len[SEC_PARAMS]);
    f->step = steps;
    f->standardises = spec->data.normalize &&
                      (spec->data.type == DATA_DATASET || spec->data.type == DATA_BUILTIN);
    if (v.sec[SEC_INPUT_STATS]) {
        const unsigned char *r = v.sec[SEC_INPUT_STATS];
        uint64_t d = v.len[SEC_INPUT_STATS] >= 8 ? le_get_u64(r) : 0;
        int inputs = f->m->dims[0];
        if (d != (uint64_t)inputs || v.len[SEC_INPUT_STATS] != 8 + 16 * d) {
            infer_free(f);
            return an_failc(err, -EPROTO, "checkpoint", "the checkpoint's input statistics "
                            "are malformed (%llu bytes for %d inputs)",
                            (unsigned long long)v.len[SEC_INPUT_STATS], inputs);
        }
        f->mean = malloc(d * sizeof *f->mean);
        f->std = malloc(d * sizeof *f->std);
        if (!f->mean || !f->std) {
            infer_free(f);
            return an_failc(err, -ENOMEM, "", "out of memory");
        }
        for (uint64_t k = 0; k < d; k++) {
            uint64_t a = le_get_u64(r + 8 + 8 * k), b = le_get_u64(r + 8 + 8 * (d + k));
            memcpy(&f->mean[k], &a, 8);
            memcpy(&f->std[k], &b, 8);
        }
        f->nstats = (int)d;
    }
    *out = f;
    return 0;
}

int infer_prepare(const infer *f, const double *x, int rows, float *out, an_err *err)
{
    if (f->g)
        return an_fail(err, "model", "a gpt model predicts tokens: use POST "
                       "/v1/jobs/{id}/generate");
    const int I = f->m->dims[0];
    size_t cells = (size_t)rows * (size_t)I;
    if (f->standardises && f->nstats != I)
        return an_failc(err, -ENOENT, "normalized", "this checkpoint holds no input statistics "
                        "(it was written before they were stored): standardise the inputs "
                        "yourself and send \"normalized\": true");
    for (size_t c = 0; c < cells; c++) {
        size_t k = c % (size_t)I;
        out[c] = (float)(f->standardises ? (x[c] - f->mean[k]) / f->std[k] : x[c]);
    }
    return 0;
}

void infer_free(infer *f)
{
    if (!f)
        return;
    model_free(f->m);
    gpt_free(f->g);
    text_vocab_free(&f->vocab);
    free(f->mean);
    free(f->std);
    free(f);
}

int infer_inputs(const infer *f) { return f->g ? f->g->s.block_size : f->m->dims[0]; }
int infer_outputs(const infer *f)
{
    return f->g ? f->g->s.vocab_size : f->m->dims[f->m->nlayers];
}

static size_t act_floats(const int *dims, int nlayers, int dropout, size_t B)
{
    size_t act = 0, widest = 0;
    for (int l = 0; l < nlayers; l++) {
        int hidden = l < nlayers - 1;
        act += B * (size_t)dims[l + 1] * (hidden ? (dropout ? 3 : 2) : 1);
    }
    for (int l = 0; l <= nlayers; l++)
        if ((size_t)dims[l] > widest)
            widest = (size_t)dims[l];
    return act + 2 * B * widest + widest;
}

size_t infer_bytes(const infer *f)
{
    if (f->g)
        return sizeof *f + sizeof *f->g + (2 * f->g->nparams + f->g->arena_floats) * sizeof(float);
    const model *m = f->m;
    return sizeof *f + sizeof *m + 2 * m->nparams * sizeof(float) +
           act_floats(m->dims, m->nlayers, m->dropout > 0, (size_t)m->max_batch) * sizeof(float);
}

size_t infer_bytes_estimate(const job_spec *spec)
{
    const model_spec *ms = &spec->model;
    if (ms->type == MODEL_GPT) {
        gpt_shape s;
        cfg_gpt_shape(ms, &s);
        if (!s.vocab_size)
            s.vocab_size = 256;
        s.dropout = 0;
        return sizeof(infer) + sizeof(gpt) +
               (2 * gpt_param_count(&s) + gpt_arena_floats(&s, 1)) * sizeof(float);
    }
    int dims[CFG_MAX_HIDDEN + 2], nl = 0;
    dims[nl++] = ms->inputs;
    for (int h = 0; ms->type == MODEL_MLP && h < ms->nhidden; h++)
        dims[nl++] = ms->hidden[h];
    dims[nl++] = ms->outputs;
    int64_t n = model_spec_params(ms);
    return sizeof(infer) + sizeof(model) + 2 * (size_t)(n > 0 ? n : 0) * sizeof(float) +
           act_floats(dims, nl - 1, ms->dropout > 0, INFER_BATCH) * sizeof(float);
}

int infer_predict(infer *f, const float *x, int rows, float *out, an_err *err)
{
    if (f->g)
        return an_fail(err, "model", "a gpt model predicts tokens: use POST "
                       "/v1/jobs/{id}/generate");
    return model_predict(f->m, x, rows, out, err);
}
