/* train_gpt — a gpt job's training state, its step and its checkpoint blob (train_gpt.h). */
#include "core/train_gpt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/blob.h"
#include "core/config_gpt.h"
#include "core/gemm.h"
#include "core/gpt.h"
#include "core/lossscale.h"
#include "core/model.h"
#include "core/optim.h"
#include "core/rng.h"
#include "core/text.h"
#include "util/util.h"

struct gtrain {
    double clip;
    int threads;
    int64_t val_every;
    int micro, gas, T;
    int64_t total_steps, steps, samples;
    uint64_t seed;
    int shuffle, random;
    text_vocab vocab;
    int32_t *tokens;            /* the whole corpus */
    size_t ntok, ntrain;        /* tokens; the first ntrain train */
    size_t ktrain, kval;        /* windows of each part */
    uint32_t *perm;             /* [ktrain] the order of perm_epoch */
    int64_t perm_epoch;
    int64_t epoch, pos;         /* cursor over training windows */
    gpt *g;
    optim opt;
    int ngroups, has_betas;
    sched *sch;
    int32_t *idx, *tgt;         /* [micro·T] */
    int fp16, bf16;             /* ds_config numerics */
    lossscale ls;
    uint64_t layout_hash, model_hash;
};

static _Thread_local int threads_set;

static void use_threads(int n)
{
    if (threads_set != n && gemm_set_threads(n) == 0)
        threads_set = n;
}

static void apply_sched(gtrain *t)
{
    const double *lr = sched_lr(t->sch), *mom = sched_mom(t->sch), *b2 = sched_beta2(t->sch);
    for (int g = 0; g < t->ngroups; g++) {
        optim_group *og = &t->opt.groups[g];
        og->lr = lr[g];
        if (mom) {
            if (t->has_betas)
                og->beta1 = mom[g];
            else
                og->momentum = mom[g];
        }
        if (b2)
            og->beta2 = b2[g];
    }
}

/* Tokens of the corpus, the vocabulary checked against the spec's, the split into windows. */
static int load_text(gtrain *t, const job_spec *spec, const char *up, size_t uplen, an_err *err)
{
    size_t len = 0;
    const char *text = cfg_text_corpus(&spec->data, &len);
    const char *field = spec->data.text ? "data.text" : spec->data.text_builtin ? "data.name"
                                                                                : "data.dataset";
    if (!text) {
        text = up;
        len = uplen;
    }
    if (!text)
        return an_fail(err, field, "the text data set '%s' has no text", spec->data.name);
    if (spec->data.vocab || !spec->data.text) {
        cJSON *v = NULL;
        int rc = cfg_text_vocab_check(&spec->data, text, len, t->T, &v, err);
        cJSON_Delete(v);
        if (rc)
            return rc;
    }
    int rc = text_tokenize(text, len, spec->data.tokenizer, (size_t)t->T + 1, field, &t->vocab,
                           &t->tokens, &t->ntok, err);
    if (rc)
        return rc;
    if (spec->model.vocab_size && spec->model.vocab_size != t->vocab.size)
        return an_fail(err, "model.vocab_size", "model.vocab_size is %d but the text's "
                       "vocabulary has %d tokens", spec->model.vocab_size, t->vocab.size);
    t->ntrain = spec->val_fraction > 0 ? text_train_tokens(t->ntok, spec->val_fraction)
                                       : t->ntok;
    t->ktrain = text_windows(t->ntrain, t->T);
    t->kval = spec->val_fraction > 0 ? text_windows(t->ntok - t->ntrain, t->T) : 0;
    if (t->ktrain < 1 || (t->random && t->ntrain <= (size_t)t->T + 1))
        return an_fail(err, "validation.fraction", "%zu training tokens are too few for one "
                       "window of block_size + 1 = %d tokens", t->ntrain, t->T + 1);
    if (spec->val_fraction > 0 && t->kval < 1)
        return an_fail(err, "validation.fraction", "validation.fraction %g leaves %zu tokens "
                       "for validation, fewer than one window of %d", spec->val_fraction,
                       t->ntok - t->ntrain, t->T + 1);
    if (t->ktrain > UINT32_MAX)
        return an_fail(err, field, "the text has more than 2^32 windows");
    return 0;
}

int gtrain_create(gtrain **out, const job_spec *spec, const char *up, size_t uplen,
                  an_err *err)
{
    *out = NULL;
    if (spec->micro_batch < 1 || spec->micro_batch > (1 << 20) || spec->grad_accum < 1 ||
        spec->grad_accum > (1 << 24))
        return an_fail(err, "ds_config.train_micro_batch_size_per_gpu", "expected a micro-batch "
                       "of 1..2^20 sequences and 1..2^24 accumulation steps");
    if (spec->ngroups + 1 > SCHED_MAX_GROUPS)
        return an_fail(err, "param_groups", "expected at most %d param groups",
                       SCHED_MAX_GROUPS - 1);
    gtrain *t = calloc(1, sizeof *t);
    if (!t)
        return an_failc(err, -ENOMEM, "", "out of memory");
    t->clip = spec->gradient_clipping;
    t->threads = spec->threads > 0 ? spec->threads : 1;
    t->val_every = spec->val_every_steps;
    t->micro = (int)spec->micro_batch;
    t->gas = (int)spec->grad_accum;
    t->T = spec->model.block_size;
    t->seed = spec->seed;
    t->shuffle = spec->data.shuffle;
    t->random = spec->data.sampling_random;
    t->perm_epoch = -1;
    t->fp16 = spec->fp16;
    t->bf16 = spec->bf16;
    lossscale_init(&t->ls, &spec->loss_scale);
    int rc = load_text(t, spec, up, uplen, err);
    if (rc)
        goto fail;
    model_spec ms = spec->model;
    ms.vocab_size = t->vocab.size;
    gpt_shape s;
    cfg_gpt_shape(&ms, &s);
    if ((rc = gpt_create_ex(&t->g, &s, spec->seed, t->micro, spec->act_ckpt, err)))
        goto fail;
    if (spec->model.init && (rc = gpt_set_init(t->g, spec->model.init, err)))
        goto fail;
    gpt *g = t->g;
    optim_tensor *ts = malloc((size_t)g->ntensors * sizeof *ts);
    if (!ts) {
        rc = an_failc(err, -ENOMEM, "", "out of memory");
        goto fail;
    }
    for (int i = 0; i < g->ntensors; i++) {
        ts[i] = (optim_tensor){.off = g->tensors[i].off, .n = g->tensors[i].n, .group = 0};
        for (int k = 0; k < spec->ngroups && !ts[i].group; k++) {
            const cJSON *m;
            cJSON_ArrayForEach(m, spec->groups[k].match)
                if (cJSON_IsString(m) && model_glob_match(m->valuestring, g->tensors[i].name)) {
                    ts[i].group = k + 1;
                    break;
                }
        }
    }
    t->ngroups = spec->ngroups + 1;
    t->has_betas = optim_has_betas(&spec->optim);
    sched_env env;
    t->total_steps = job_spec_total_steps(spec, (int64_t)t->ktrain);
    job_spec_sched_env(spec, (int64_t)t->ktrain, &env);
    optim_group groups[SCHED_MAX_GROUPS];
    for (int k = 0; k < t->ngroups; k++) {
        const param_group_spec *ps = k ? &spec->groups[k - 1] : NULL;
        groups[k] = (optim_group){
            .lr = env.base_lr[k],
            .weight_decay = ps && ps->has_weight_decay ? ps->weight_decay
                                                       : spec->optim.weight_decay,
            .beta1 = spec->optim.beta1, .beta2 = spec->optim.beta2,
            .momentum = spec->optim.momentum,
        };
    }
    rc = optim_init(&t->opt, &spec->optim, OPTIM_F32, g->nparams, ts, g->ntensors, groups,
                    t->ngroups, err);
    uint64_t lh = blob_fnv_i64(FNV_OFFSET, spec->optim.type);
    for (int i = 0; i < g->ntensors; i++)
        lh = blob_fnv_i64(lh, ts[i].group);
    free(ts);
    if (rc)
        goto fail;
    if ((rc = sched_create(&t->sch, spec->scheduler, "ds_config.scheduler", &env, err, NULL)))
        goto fail;
    if (sched_ngroups(t->sch) != t->ngroups) {
        rc = an_fail(err, "ds_config.scheduler", "expected a schedule over %d groups",
                     t->ngroups);
        goto fail;
    }
    apply_sched(t);
    t->perm = malloc(t->ktrain * sizeof *t->perm);
    t->idx = malloc((size_t)t->micro * (size_t)t->T * sizeof *t->idx);
    t->tgt = malloc((size_t)t->micro * (size_t)t->T * sizeof *t->tgt);
    if (!t->perm || !t->idx || !t->tgt) {
        rc = an_failc(err, -ENOMEM, "", "out of memory for %zu windows", t->ktrain);
        goto fail;
    }
    t->model_hash = gtrain_model_hash(g);
    t->layout_hash = blob_fnv_i64(lh, (int64_t)t->model_hash);
    use_threads(t->threads);
    *out = t;
    return 0;
fail:
    gtrain_free(t);
    return rc;
}

uint64_t gtrain_model_hash(const gpt *g)
{
    /* A tag no mlp/linear type has, then the shape. */
    const gpt_shape *s = &g->s;
    uint64_t h = blob_fnv_i64(FNV_OFFSET, 1000 + MODEL_GPT);
    const int shape[] = {s->vocab_size, s->block_size, s->n_layer, s->n_head, s->n_embd, s->bias,
                         s->gelu};
    for (size_t i = 0; i < sizeof shape / sizeof shape[0]; i++)
        h = blob_fnv_i64(h, shape[i]);
    return blob_fnv_i64(h, (int64_t)g->nparams);
}

void gtrain_free(gtrain *t)
{
    if (!t)
        return;
    free(t->idx);
    free(t->tgt);
    free(t->perm);
    sched_free(t->sch);
    optim_free(&t->opt);
    gpt_free(t->g);
    free(t->tokens);
    text_vocab_free(&t->vocab);
    free(t);
}

int64_t gtrain_steps_done(const gtrain *t) { return t->steps; }
int64_t gtrain_total_steps(const gtrain *t) { return t->total_steps; }
int gtrain_block_size(const gtrain *t) { return t->T; }
int gtrain_vocab_size(const gtrain *t) { return t->vocab.size; }
struct gpt *gtrain_model(gtrain *t) { return t->g; }
const struct text_vocab *gtrain_vocab(const gtrain *t) { return &t->vocab; }
cJSON *gtrain_vocab_json(const gtrain *t) { return text_vocab_json(&t->vocab); }

/* The micro-batch j of step `step` into t->idx / t->tgt; *epoch gets its last row's epoch. */
static void next_batch(gtrain *t, int64_t step, int j, int64_t *epoch)
{
    const int T = t->T;
    for (int r = 0; r < t->micro; r++) {
        int32_t *x = t->idx + (size_t)r * T, *y = t->tgt + (size_t)r * T;
        if (t->random) {
            size_t s = text_random_start(t->seed, (uint64_t)step, (uint64_t)j, (uint64_t)r,
                                         t->ntrain, T);
            memcpy(x, t->tokens + s, (size_t)T * sizeof *x);
            memcpy(y, t->tokens + s + 1, (size_t)T * sizeof *y);
            continue;
        }
        size_t k = (size_t)t->pos;
        if (t->shuffle) {
            if (t->perm_epoch != t->epoch) {
                rng_permutation(t->perm, (uint32_t)t->ktrain, t->seed, (uint64_t)t->epoch);
                t->perm_epoch = t->epoch;
            }
            k = t->perm[t->pos];
        }
        text_window(t->tokens, k, T, x, y);
        *epoch = t->epoch;
        if ((size_t)++t->pos == t->ktrain) {
            t->pos = 0;
            t->epoch++;
        }
    }
    if (t->random)
        *epoch = (int64_t)((double)(step + 1) * t->micro * t->gas / (double)t->ktrain);
}

int gtrain_validate(gtrain *t, double *loss)
{
    if (t->kval < 1)
        return -ENOENT;
    const int T = t->T;
    const int32_t *vt = t->tokens + t->ntrain;
    double sum = 0.0;
    int was = gemm_bf16();
    gemm_set_bf16(t->bf16);
    for (size_t k = 0; k < t->kval; k += (size_t)t->micro) {
        int B = t->kval - k < (size_t)t->micro ? (int)(t->kval - k) : t->micro;
        for (int r = 0; r < B; r++)
            text_window(vt, k + (size_t)r, T, t->idx + (size_t)r * T, t->tgt + (size_t)r * T);
        double l = 0;
        gpt_forward(t->g, t->idx, t->tgt, B, T, &l);
        sum += l * B;
    }
    gemm_set_bf16(was);
    *loss = sum / (double)t->kval;
    return 0;
}

/* fp16: the summed gradients as IEEE half precision holds them (values beyond 65504 become
 * infinities: the overflow the loss scaler watches for). */
static void to_half(float *g, size_t n)
{
    for (size_t i = 0; i < n; i++)
        g[i] = (float)(_Float16)g[i];
}

int gtrain_step(gtrain *t, train_report *rep, an_err *err)
{
    gpt *g = t->g;
    const int64_t step = t->steps;
    const int64_t e0 = t->epoch, p0 = t->pos;
    double t0 = util_now(), loss_sum = 0.0;
    int64_t epoch = t->epoch;
    use_threads(t->threads);
    gemm_set_bf16(t->bf16);
    /* fp16: the loss is multiplied by the scale before backward (DeepSpeed's engine). */
    const double scale = t->fp16 ? lossscale_scale(&t->ls) : 1.0;
    for (int j = 0; j < t->gas; j++) {
        next_batch(t, step, j, &epoch);
        double l = 0;
        int rc = gpt_forward_train(g, t->idx, t->tgt, t->micro, t->T, &l, (uint64_t)step,
                                   (uint64_t)j);
        if (!rc && !isfinite(l))
            rc = -EDOM;
        if (rc) {
            gemm_set_bf16(0);
            t->epoch = e0, t->pos = p0;
            return an_failc(err, rc, "", rc == -EDOM ? "loss is not finite at step %lld: the "
                            "run diverged (try a smaller lr or gradient_clipping)"
                            : "forward pass failed at step %lld", (long long)step + 1);
        }
        loss_sum += l;
        gpt_backward(g, g->grads, j > 0, (float)(scale / t->gas));
    }
    int overflow = 0;
    double norm = NAN;
    if (t->fp16) {
        to_half(g->grads, g->nparams);
        overflow = lossscale_overflow(g->grads, g->nparams);
        if (!overflow) {
            const float inv = (float)(1.0 / scale);
            for (size_t i = 0; i < g->nparams; i++)
                g->grads[i] *= inv;
        }
        /* Checked before anything changes: a run at the minimum scale stops here. */
        lossscale st = t->ls;
        if (lossscale_update(&st, overflow, err)) {
            gemm_set_bf16(0);
            t->epoch = e0, t->pos = p0;
            return -ERANGE;
        }
        t->ls = st;
    }
    if (rep) {
        memset(rep, 0, sizeof *rep);
        rep->ngroups = t->ngroups;
        for (int k = 0; k < t->ngroups; k++)
            rep->lr[k] = t->opt.groups[k].lr;
    }
    /* An overflowed step: no optimizer step and no scheduler step (DeepSpeed). */
    if (!overflow) {
        norm = optim_clip_grad_norm(g->grads, g->nparams, OPTIM_F32, t->clip);
        optim_step(&t->opt, g->params, g->grads);
    }
    t->steps++;
    t->samples += (int64_t)t->micro * t->gas;
    double vloss = NAN;
    int has_val = 0;
    if (t->kval > 0 && t->val_every > 0 &&
        (t->steps % t->val_every == 0 || t->steps == t->total_steps)) {
        gtrain_validate(t, &vloss);
        has_val = 1;
    }
    if (!overflow) {
        sched_step(t->sch, vloss);
        apply_sched(t);
    }
    gemm_set_bf16(0);
    if (rep) {
        double dt = util_now() - t0;
        rep->step = t->steps;
        rep->epoch = epoch;
        rep->loss = loss_sum / t->gas;
        rep->grad_norm = norm;
        rep->samples_per_sec = dt > 0 ? (double)t->micro * t->gas / dt : 0.0;
        rep->has_val = has_val;
        rep->val_loss = vloss;
        rep->val_acc = NAN;
        rep->loss_scale = t->fp16 ? scale : NAN;
        rep->skipped_steps = t->fp16 ? t->ls.skipped : 0;
        rep->skipped = overflow;
    }
    return 0;
}

const lossscale *gtrain_lossscale(const gtrain *t) { return t->fp16 ? &t->ls : NULL; }

/* ------------------------------------------------------------------------------------------
 * Checkpoint blob: the framing of blob.h with the five required sections. */

static unsigned char *put_section(unsigned char *w, uint32_t id, uint64_t len)
{
    le_put_u32(w, id);
    le_put_u32(w + 4, 0);
    le_put_u64(w + 8, len);
    return w + SECTION_HEADER;
}

int gtrain_save(const gtrain *t, void **buf, size_t *len, an_err *err)
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
    unsigned char *b = vt ? malloc(total) : NULL, *w = b;
    *buf = NULL;
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
    w = put_section(w, SEC_COUNTERS, 16);
    le_put_u64(w, (uint64_t)t->steps);
    le_put_u64(w + 8, (uint64_t)t->samples);
    w = put_section(w + 16, SEC_CURSOR, 16);
    le_put_u64(w, (uint64_t)t->epoch);
    le_put_u64(w + 8, (uint64_t)t->pos);
    w = put_section(w + 16, SEC_PARAMS, pn);
    memcpy(w, t->g->params, pn);
    w = put_section(w + pn, SEC_OPTIM, on);
    int rc = optim_save(&t->opt, w, on);
    w = put_section(w + on, SEC_SCHED, sn);
    if (!rc)
        rc = sched_save(t->sch, w, sn);
    w = put_section(w + sn, SEC_VOCAB, vn);
    memcpy(w, vt, vn);
    w += vn;
    if (t->fp16) {
        uint64_t u;
        memcpy(&u, &t->ls.cur_scale, 8);
        w = put_section(w, SEC_LOSSSCALE, 40);
        le_put_u64(w, u);
        le_put_u64(w + 8, (uint64_t)t->ls.cur_iter);
        le_put_u64(w + 16, (uint64_t)t->ls.last_overflow_iter);
        le_put_u64(w + 24, (uint64_t)t->ls.cur_hysteresis);
        le_put_u64(w + 32, (uint64_t)t->ls.skipped);
        w += 40;
    }
    cJSON_free(vt);
    if (rc) {
        free(b);
        return an_failc(err, rc, "", "could not serialise the optimizer or scheduler state");
    }
    le_put_u64(w, blob_fnv1a(FNV_OFFSET, b, (size_t)(w - b)));
    *buf = b;
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
    apply_sched(t);
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
        ok = ok && (data = cJSON_AddArrayToObject(e, "data"));
        int rows = x->ndim == 2 ? x->shape[0] : 1, cols = x->ndim == 2 ? x->shape[1] : x->shape[0];
        for (int r = 0; ok && r < rows; r++) {
            cJSON *row = data;
            if (x->ndim == 2)
                ok = (row = cJSON_CreateArray()) && cJSON_AddItemToArray(data, row);
            for (int c = 0; ok && c < cols; c++) {
                float f = g->params[x->off + (size_t)r * cols + c];
                ok = cJSON_AddItemToArray(row, isfinite(f) ? cJSON_CreateNumber((double)f)
                                                           : cJSON_CreateNull());
            }
        }
        if (!ok) {
            cJSON_Delete(o);
            return -ENOMEM;
        }
    }
    *out = o;
    return 0;
}
