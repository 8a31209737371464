/* train_gpt_blob — a gpt job's checkpoint blob and its weights as JSON (train_gpt.h): the
 * framing of blob.h with the five required sections, the vocabulary and, for fp16, the loss
 * scaler. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/blob.h"
#include "core/train_gpt_internal.h"

int gtrain_save_into(const gtrain *t, void **buf, size_t *cap, size_t *len, an_err *err)
{
    size_t pn = t->g->nparams * sizeof(float), on = optim_state_size(&t->opt);
    size_t sn = sched_state_size(t->sch);
    cJSON *vj = text_vocab_json(&t->vocab);
    char *vt = vj ? cJSON_PrintUnformatted(vj) : NULL;
    cJSON_Delete(vj);
    size_t vn = vt ? strlen(vt) : 0;
    size_t lsn = t->fp16 ? SECTION_HEADER + 40 : 0;
    size_t total = BLOB_HEADER + (SEC_REQUIRED + 1) * SECTION_HEADER + 32 + pn + on + sn + vn +
                   lsn + BLOB_TRAILER;
    unsigned char *b = vt ? blob_reserve(buf, cap, total) : NULL, *w = b;
    *len = 0;
    if (!b) {
        cJSON_free(vt);
        return an_failc(err, -ENOMEM, "", "out of memory for a %zu-byte checkpoint", total);
    }
    memcpy(w, BLOB_MAGIC, 8);
    le_put_u32(w + 8, BLOB_VERSION);
    le_put_u32(w + 12, SEC_REQUIRED + 1 + (t->fp16 ? 1 : 0));
    le_put_u64(w + 16, t->layout_hash);
    le_put_u64(w + 24, t->model_hash);
    le_put_u64(w + 32, total);
    w += BLOB_HEADER;
    w = blob_put_section(w, SEC_COUNTERS, 16);
    le_put_u64(w, (uint64_t)t->steps);
    le_put_u64(w + 8, (uint64_t)t->samples);
    w = blob_put_section(w + 16, SEC_CURSOR, 16);
    le_put_u64(w, (uint64_t)t->epoch);
    le_put_u64(w + 8, (uint64_t)t->pos);
    w = blob_put_section(w + 16, SEC_PARAMS, pn);
    memcpy(w, t->g->params, pn);
    w = blob_put_section(w + pn, SEC_OPTIM, on);
    int rc = optim_save(&t->opt, w, on);
    w = blob_put_section(w + on, SEC_SCHED, sn);
    if (!rc)
        rc = sched_save(t->sch, w, sn);
    w = blob_put_section(w + sn, SEC_VOCAB, vn);
    memcpy(w, vt, vn);
    w += vn;
    if (t->fp16) {
        uint64_t u;
        memcpy(&u, &t->ls.cur_scale, 8);
        w = blob_put_section(w, SEC_LOSSSCALE, 40);
        le_put_u64(w, u);
        le_put_u64(w + 8, (uint64_t)t->ls.cur_iter);
        le_put_u64(w + 16, (uint64_t)t->ls.last_overflow_iter);
        le_put_u64(w + 24, (uint64_t)t->ls.cur_hysteresis);
        le_put_u64(w + 32, (uint64_t)t->ls.skipped);
        w += 40;
    }
    cJSON_free(vt);
    if (rc)
        return an_failc(err, rc, "", "could not serialise the optimizer or scheduler state");
    le_put_u64(w, blob_fnv1a(FNV_OFFSET, b, (size_t)(w - b)));
    *len = total;
    return 0;
}

static int check_model(const gtrain *t, const blob_view *v, an_err *err)
{
    if (v->model_hash != t->model_hash ||
        v->len[SEC_PARAMS] != t->g->nparams * sizeof(float))
        return an_failc(err, -EPROTO, "checkpoint", "the checkpoint is of another model (this "
                        "job's is a gpt with %zu parameters)", t->g->nparams);
    return 0;
}

int gtrain_restore(gtrain *t, const void *buf, size_t len, an_err *err)
{
    blob_view v;
    int rc = blob_parse(buf, len, &v, err);
    if (rc || (rc = check_model(t, &v, err)))
        return rc;
    if (v.layout_hash != t->layout_hash || v.len[SEC_COUNTERS] != 16 ||
        v.len[SEC_CURSOR] != 16 || v.len[SEC_OPTIM] != optim_state_size(&t->opt) ||
        v.len[SEC_SCHED] != sched_state_size(t->sch))
        return an_failc(err, -EPROTO, "checkpoint", "the checkpoint is of another optimizer, "
                        "schedule or parameter-group layout than this job's");
    if (t->fp16 != (v.sec[SEC_LOSSSCALE] != NULL) ||
        (t->fp16 && v.len[SEC_LOSSSCALE] != 40))
        return an_failc(err, -EPROTO, "checkpoint", t->fp16
                        ? "the checkpoint has no fp16 loss-scaler state (it was not an fp16 run)"
                        : "the checkpoint is of an fp16 run, this job is not one");
    int64_t steps = (int64_t)le_get_u64(v.sec[SEC_COUNTERS]);
    int64_t samples = (int64_t)le_get_u64(v.sec[SEC_COUNTERS] + 8);
    int64_t epoch = (int64_t)le_get_u64(v.sec[SEC_CURSOR]);
    int64_t pos = (int64_t)le_get_u64(v.sec[SEC_CURSOR] + 8);
    if (steps < 0 || samples < 0 || epoch < 0 || pos < 0 || (size_t)pos >= t->ktrain)
        return an_failc(err, -EPROTO, "checkpoint", "expected counters >= 0 and a window "
                        "position in 0..%zu", t->ktrain - 1);
    if ((rc = blob_load_optim_sched(&v, &t->opt, t->sch, err)))
        return rc;
    memcpy(t->g->params, v.sec[SEC_PARAMS], (size_t)v.len[SEC_PARAMS]);
    t->steps = steps;
    t->samples = samples;
    t->epoch = epoch;
    t->pos = pos;
    if (t->fp16) {
        const unsigned char *r = v.sec[SEC_LOSSSCALE];
        uint64_t u = le_get_u64(r);
        memcpy(&t->ls.cur_scale, &u, 8);
        t->ls.cur_iter = (int64_t)le_get_u64(r + 8);
        t->ls.last_overflow_iter = (int64_t)le_get_u64(r + 16);
        t->ls.cur_hysteresis = (int)le_get_u64(r + 24);
        t->ls.skipped = (int64_t)le_get_u64(r + 32);
    }
    gtrain_apply_sched(t);
    return 0;
}

int gtrain_restore_weights(gtrain *t, const void *buf, size_t len, an_err *err)
{
    blob_view v;
    int rc = blob_parse(buf, len, &v, err);
    if (rc || (rc = check_model(t, &v, err)))
        return rc;
    memcpy(t->g->params, v.sec[SEC_PARAMS], (size_t)v.len[SEC_PARAMS]);
    return 0;
}

int gtrain_weights_json(const gtrain *t, cJSON **out)
{
    *out = NULL;
    cJSON *o = cJSON_CreateObject(), *arr = o ? cJSON_AddArrayToObject(o, "tensors") : NULL;
    if (!arr || !cJSON_AddNumberToObject(o, "step", (double)t->steps)) {
        cJSON_Delete(o);
        return -ENOMEM;
    }
    const gpt *g = t->g;
    for (int i = 0; i < g->ntensors; i++) {
        const gpt_tensor *x = &g->tensors[i];
        cJSON *e = cJSON_CreateObject(), *data = NULL;
        int ok = e && cJSON_AddItemToArray(arr, e) && cJSON_AddStringToObject(e, "name", x->name);
        cJSON *shape = ok ? cJSON_CreateIntArray(x->shape, x->ndim) : NULL;
        ok = shape && cJSON_AddItemToObject(e, "shape", shape);
        int rows = x->ndim == 2 ? x->shape[0] : 1, cols = x->ndim == 2 ? x->shape[1] : x->shape[0];
        const float *p = g->params + x->off;
        if (x->ndim != 2 && ok) {
            data = model_row_json(p, cols);
            ok = data && cJSON_AddItemToObject(e, "data", data);
            if (!ok)
                cJSON_Delete(data);
        } else
            ok = ok && (data = cJSON_AddArrayToObject(e, "data"));
        for (int r = 0; ok && x->ndim == 2 && r < rows; r++) {
            cJSON *row = model_row_json(p + (size_t)r * cols, cols);
            ok = row && cJSON_AddItemToArray(data, row);
            if (!ok)
                cJSON_Delete(row);
        }
        if (!ok) {
            cJSON_Delete(o);
            return -ENOMEM;
        }
    }
    *out = o;
    return 0;
}
