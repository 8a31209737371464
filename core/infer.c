/* infer — a model with a checkpoint's parameters, for predictions and weights only. */
#include "core/infer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/blob.h"

int infer_create(infer **out, const job_spec *spec, const void *blob, size_t len, an_err *err)
{
    *out = NULL;
    blob_view v;
    int rc = blob_parse(blob, len, &v, err);
    if (rc)
        return rc;
    int64_t steps = blob_steps(&v);
    if (steps < 0)
        return an_failc(err, -EPROTO, "checkpoint", "the checkpoint's step counter is "
                        "malformed (%llu bytes)", (unsigned long long)v.len[SEC_COUNTERS]);
    infer *f = calloc(1, sizeof *f);
    if (!f)
        return an_failc(err, -ENOMEM, "", "out of memory");
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
    *out = f;
    return 0;
}

void infer_free(infer *f)
{
    if (!f)
        return;
    model_free(f->m);
    free(f);
}

int infer_inputs(const infer *f) { return f->m->dims[0]; }
int infer_outputs(const infer *f) { return f->m->dims[f->m->nlayers]; }

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
    const model *m = f->m;
    return sizeof *f + sizeof *m + 2 * m->nparams * sizeof(float) +
           act_floats(m->dims, m->nlayers, m->dropout > 0, (size_t)m->max_batch) * sizeof(float);
}

size_t infer_bytes_estimate(const job_spec *spec)
{
    const model_spec *ms = &spec->model;
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
    model *m = f->m;
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
