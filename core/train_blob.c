/* train_blob — a job's training state as a checkpoint blob (framing in core/blob.h) and back:
 * train_save, train_restore (bit for bit, or nothing changed), train_restore_weights. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/blob.h"
#include "core/train_internal.h"
#include "util/util.h"

#define LRFIND_BYTES 48u /* f64 avg, bpow, best, smoothed; i64 n; i64 total steps */

/* The input statistics section (with its header), or 0 for a job that does not standardise. */
static size_t stats_bytes(const train *t)
{
    if (!t->train_ds.mean || !t->train_ds.std)
        return 0;
    return SECTION_HEADER + 8 + 2 * (size_t)t->train_ds.d * 8;
}

static size_t blob_size(const train *t)
{
    return BLOB_HEADER + SEC_REQUIRED * SECTION_HEADER + 16 + 16 + t->m->nparams * sizeof(float) +
           optim_state_size(&t->opt) + sched_state_size(t->sch) +
           (t->finder ? SECTION_HEADER + LRFIND_BYTES : 0) + stats_bytes(t) + BLOB_TRAILER;
}

int train_save(const train *t, void **buf, size_t *len, an_err *err)
{
    size_t cap = 0;
    *buf = NULL;
    int rc = train_save_into(t, buf, &cap, len, err);
    if (rc) {
        free(*buf);
        *buf = NULL;
    }
    return rc;
}

int train_save_into(const train *t, void **buf, size_t *cap, size_t *len, an_err *err)
{
    if (t->gt)
        return gtrain_save_into(t->gt, buf, cap, len, err);
    *len = 0;
    size_t total = blob_size(t);
    unsigned char *b = blob_reserve(buf, cap, total);
    if (!b)
        return an_failc(err, -ENOMEM, "", "out of memory for a %zu-byte checkpoint", total);
    unsigned char *w = b;
    memcpy(w, BLOB_MAGIC, 8);
    le_put_u32(w + 8, BLOB_VERSION);
    le_put_u32(w + 12, SEC_REQUIRED + (t->finder ? 1 : 0) + (stats_bytes(t) ? 1 : 0));
    le_put_u64(w + 16, t->layout_hash);
    le_put_u64(w + 24, t->model_hash);
    le_put_u64(w + 32, total);
    w += BLOB_HEADER;
    w = blob_put_section(w, SEC_COUNTERS, 16);
    le_put_u64(w, (uint64_t)t->steps);
    le_put_u64(w + 8, (uint64_t)t->samples);
    w += 16;
    w = blob_put_section(w, SEC_CURSOR, 16);
    le_put_u64(w, (uint64_t)t->loader.cur.epoch);
    le_put_u64(w + 8, (uint64_t)t->loader.cur.pos);
    w += 16;
    size_t pn = t->m->nparams * sizeof(float);
    w = blob_put_section(w, SEC_PARAMS, pn);
    memcpy(w, t->m->params, pn);
    w += pn;
    size_t on = optim_state_size(&t->opt);
    w = blob_put_section(w, SEC_OPTIM, on);
    int rc = optim_save(&t->opt, w, on);
    w += on;
    size_t sn = sched_state_size(t->sch);
    w = blob_put_section(w, SEC_SCHED, sn);
    if (!rc)
        rc = sched_save(t->sch, w, sn);
    w += sn;
    if (t->finder) {
        w = blob_put_section(w, SEC_LRFIND, LRFIND_BYTES);
        le_put_f64(w, t->watch.avg);
        le_put_f64(w + 8, t->watch.bpow);
        le_put_f64(w + 16, t->watch.best);
        le_put_f64(w + 24, t->watch.smoothed);
        le_put_u64(w + 32, (uint64_t)t->watch.n);
        le_put_u64(w + 40, (uint64_t)t->total_steps);
        w += LRFIND_BYTES;
    }
    if (stats_bytes(t)) {
        int d = t->train_ds.d;
        w = blob_put_section(w, SEC_INPUT_STATS, 8 + 16 * (uint64_t)d);
        le_put_u64(w, (uint64_t)d);
        w += 8;
        for (int k = 0; k < d; k++, w += 8)
            le_put_f64(w, t->train_ds.mean[k]);
        for (int k = 0; k < d; k++, w += 8)
            le_put_f64(w, t->train_ds.std[k]);
    }
    if (rc)
        return an_failc(err, rc, "", "could not serialise the optimizer or scheduler state");
    le_put_u64(w, blob_fnv1a(FNV_OFFSET, b, (size_t)(w - b)));
    *len = total;
    return 0;
}

static int check_params_section(const train *t, const blob_view *v, an_err *err)
{
    if (v->model_hash != t->model_hash)
        return an_failc(err, -EPROTO, "checkpoint", "the checkpoint is of another model (shape "
                        "or activation differs from this job's %s model with %zu parameters)",
                        t->m->type == MODEL_MLP ? "mlp" : "linear", t->m->nparams);
    if (v->len[SEC_PARAMS] != t->m->nparams * sizeof(float))
        return an_failc(err, -EPROTO, "checkpoint", "expected %zu parameter bytes, got %llu",
                        t->m->nparams * sizeof(float), (unsigned long long)v->len[SEC_PARAMS]);
    return 0;
}

int train_restore(train *t, const void *buf, size_t len, an_err *err)
{
    if (t->gt)
        return gtrain_restore(t->gt, buf, len, err);
    blob_view v;
    int rc = blob_parse(buf, len, &v, err);
    if (rc)
        return rc;
    if ((rc = check_params_section(t, &v, err)))
        return rc;
    if (v.layout_hash != t->layout_hash)
        return an_failc(err, -EPROTO, "checkpoint", "the checkpoint is of another optimizer "
                        "layout (type, dtype or param groups differ from this job's %s with %d "
                        "groups)", optim_type_name(t->opt.cfg.type), t->ngroups);
    if (v.len[SEC_COUNTERS] != 16 || v.len[SEC_CURSOR] != 16)
        return an_failc(err, -EPROTO, "checkpoint", "expected 16-byte counter and cursor "
                        "sections, got %llu and %llu", (unsigned long long)v.len[SEC_COUNTERS],
                        (unsigned long long)v.len[SEC_CURSOR]);
    int64_t steps = (int64_t)le_get_u64(v.sec[SEC_COUNTERS]);
    int64_t samples = (int64_t)le_get_u64(v.sec[SEC_COUNTERS] + 8);
    int64_t epoch = (int64_t)le_get_u64(v.sec[SEC_CURSOR]);
    int64_t pos = (int64_t)le_get_u64(v.sec[SEC_CURSOR] + 8);
    if (steps < 0 || samples < 0 || epoch < 0 || pos < 0 || pos >= t->train_ds.n)
        return an_failc(err, -EPROTO, "checkpoint", "expected step, samples, epoch >= 0 and a "
                        "data position in 0..%lld, got %lld, %lld, %lld, %lld",
                        (long long)t->train_ds.n - 1, (long long)steps, (long long)samples,
                        (long long)epoch, (long long)pos);
    if (t->finder != (v.sec[SEC_LRFIND] != NULL) ||
        (t->finder && v.len[SEC_LRFIND] != LRFIND_BYTES))
        return an_failc(err, -EPROTO, "checkpoint", t->finder
                        ? "the checkpoint is not of a learning-rate sweep (no lr_finder state)"
                        : "the checkpoint is of a learning-rate sweep (lr_finder), this job "
                          "is not one");
    if (v.len[SEC_OPTIM] != optim_state_size(&t->opt) ||
        v.len[SEC_SCHED] != sched_state_size(t->sch))
        return an_failc(err, -EPROTO, "checkpoint", "expected %zu optimizer and %zu scheduler "
                        "bytes, got %llu and %llu", optim_state_size(&t->opt),
                        sched_state_size(t->sch), (unsigned long long)v.len[SEC_OPTIM],
                        (unsigned long long)v.len[SEC_SCHED]);

    if ((rc = blob_load_optim_sched(&v, &t->opt, t->sch, err)))
        return rc;
    memcpy(t->m->params, v.sec[SEC_PARAMS], (size_t)v.len[SEC_PARAMS]);
    t->steps = steps;
    t->samples = samples;
    data_loader_seek(&t->loader, epoch, pos);
    if (t->finder) {
        const unsigned char *r = v.sec[SEC_LRFIND];
        t->watch.avg = le_get_f64(r);
        t->watch.bpow = le_get_f64(r + 8);
        t->watch.best = le_get_f64(r + 16);
        t->watch.smoothed = le_get_f64(r + 24);
        t->watch.n = (long long)le_get_u64(r + 32);
        int64_t total = (int64_t)le_get_u64(r + 40);
        if (total >= steps && total < t->total_steps)
            t->total_steps = total; /* it had diverged already */
    }
    return 0;
}

int train_restore_weights(train *t, const void *buf, size_t len, an_err *err)
{
    if (t->gt)
        return gtrain_restore_weights(t->gt, buf, len, err);
    blob_view v;
    int rc = blob_parse(buf, len, &v, err);
    if (rc)
        return rc;
    if ((rc = check_params_section(t, &v, err)))
        return rc;
    memcpy(t->m->params, v.sec[SEC_PARAMS], (size_t)v.len[SEC_PARAMS]);
    return 0;
}

