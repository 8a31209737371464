/* train_gpt — a gpt job's training state and its step (train_gpt.h); the checkpoint blob is
 * in train_gpt_blob.c. */
#include "core/train_gpt_internal.h"

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


static _Thread_local int threads_set;

static void use_threads(int n)
{
    if (threads_set != n && gemm_set_threads(n) == 0)
        threads_set = n;
}

void gtrain_apply_sched(gtrain *t)
{
    optim_set_sched(&t->opt, sched_lr(t->sch), sched_mom(t->sch), sched_beta2(t->sch),
                    t->has_betas);
}

/* Tokens of the corpus, the vocabulary checked against the spec's, the split into windows. */
static int load_text(gtrain *t, const job_spec *spec, const char *up, size_t uplen, an_err *err)
{
    size_t len = 0;
    const char *text = cfg_text_corpus(&spec->data, &len);
    const char *field = cfg_text_field(&spec->data);
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
    /* the split a job's submission was checked with (cfg_text_split) */
    text_split sp;
    rc = text_split_check(t->ntok, t->T, spec->val_fraction, field, &sp, err);
    t->ntrain = sp.ntrain;
    t->ktrain = sp.ktrain;
    t->kval = sp.kval;
    if (rc)
        return rc;
    if (t->ktrain > UINT32_MAX)
        return an_fail(err, field, "the text has more than 2^32 windows");
    t->val_windows = t->kval;
    if (spec->val_batches > 0 && (uint64_t)spec->val_batches * spec->micro_batch < t->kval)
        t->val_windows = (size_t)spec->val_batches * (size_t)spec->micro_batch;
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
    gtrain_apply_sched(t);
    t->perm = malloc(t->ktrain * sizeof *t->perm);
    t->idx = malloc((size_t)t->micro * (size_t)t->T * sizeof *t->idx);
    t->tgt = malloc((size_t)t->micro * (size_t)t->T * sizeof *t->tgt);
    if (!t->perm || !t->idx || !t->tgt) {
        rc = an_failc(err, -ENOMEM, "", "out of memory for %zu windows", t->ktrain);
        goto fail;
    }
    t->model_hash = gtrain_model_hash(g);
    t->layout_hash = blob_fnv_i64(lh, (int64_t)t->model_hash);
    t->world = 1;
    if (gradtree_init(&t->tree, g->grads, g->nparams, t->gas) != 0) {
        rc = an_failc(err, -ENOMEM, "", "out of memory for the gradient buffers of %d "
                      "micro-batches (%zu floats each)", t->gas, g->nparams);
        goto fail;
    }
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
    gradtree_free(&t->tree);
    free(t->losses);
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
        *epoch = (int64_t)((double)(step + 1) * t->micro * t->gas * t->world /
                           (double)t->ktrain);
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
    /* Every window, or (validation.batches) n of them spread evenly over the split: window
     * ⌊i·kval/n⌋ for i < n, the same ones each time, so that validations compare. */
    size_t n = t->val_windows;
    for (size_t k = 0; k < n; k += (size_t)t->micro) {
        int B = n - k < (size_t)t->micro ? (int)(n - k) : t->micro;
        for (int r = 0; r < B; r++) {
            size_t i = k + (size_t)r;
            size_t w = n == t->kval ? i : (size_t)((unsigned __int128)i * t->kval / n);
            text_window(vt, w, T, t->idx + (size_t)r * T, t->tgt + (size_t)r * T);
        }
        double l = 0;
        gpt_forward(t->g, t->idx, t->tgt, B, T, &l);
        sum += l * B;
    }
    gemm_set_bf16(was);
    *loss = sum / (double)n;
    return 0;
}

/* fp16: the summed gradients as IEEE half precision holds them (values beyond 65504 become
 * infinities: the overflow the loss scaler watches for). */
static void to_half(float *g, size_t n)
{
    for (size_t i = 0; i < n; i++)
        g[i] = lossscale_half(g[i]);
}

/* fp16 with several micro-batches: DeepSpeed holds each micro-batch's gradient in half
 * precision (scaled by the loss scale over the accumulation steps, as this leaf is), so one
 * micro-batch that overflows makes the whole step overflow, whatever the others add. Such
 * elements become infinities, which the sum, the exchange between ranks and to_half keep.
 * Finite values are left as they are: the sum is rounded once, at the end. With several
 * ranks the leaves are those of one process with all their micro-batches (the scale over
 * W·gas), so a run gives the same bits at any world size. */
static void mark_overflow(float *leaf, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (isinf(lossscale_half(leaf[i])))
            leaf[i] = leaf[i] > 0 ? INFINITY : -INFINITY;
}

int gtrain_set_ranks(gtrain *t, int world, int rank, train_reduce_fn fn, void *ctx)
{
    if (world < 1 || rank < 0 || rank >= world || !fn || (int64_t)world * t->gas > (1 << 20))
        return -EINVAL;
    double *l = NULL;
    if (world > 1 && !(l = calloc((size_t)(world + 1) * (size_t)t->gas, sizeof *l)))
        return -ENOMEM;
    free(t->losses);
    t->losses = l;
    t->world = world, t->rank = rank, t->reduce = fn, t->reduce_ctx = ctx;
    return 0;
}

size_t gtrain_nparams(const gtrain *t) { return t->g->nparams; }
size_t gtrain_optim_bytes(const gtrain *t) { return t->opt.state_elems * sizeof(float); }

/* A micro-batch whose loss is not finite ends the run. With several ranks every rank sees
 * every micro-batch's loss after the exchange and fails here with the same one. */
int gtrain_loss_not_finite(double l, int64_t step, int j, int G, an_err *err)
{
    return an_failc(err, -EDOM, "", "loss is %s at step %lld (micro-batch %d of %d): expected a "
                    "finite loss; the run diverged (try a smaller lr or gradient_clipping)",
                    isnan(l) ? "NaN" : "Inf", (long long)step + 1, j + 1, G);
}

/* The forward and backward passes of this rank's micro-batches of the step (all of them
 * alone), summed in the tree. Every rank reads the whole global batch of W·gas micro-batches,
 * so the cursors stay in step and micro-batch j has the data and dropout masks of (step, j)
 * that a single process gives it. Each gradient is of the loss times dloss. */
static int local_grads(gtrain *t, int64_t step, float dloss, double *loss_sum,
                       int64_t *epoch, float **grad, an_err *err)
{
    gpt *g = t->g;
    const int W = t->world, G = t->gas * W;
    gradtree_reset(&t->tree);
    for (int j = 0; j < G; j++) {
        next_batch(t, step, j, epoch);
        if (j / t->gas != t->rank)
            continue;
        double l = 0;
        int rc = gpt_forward_train(g, t->idx, t->tgt, t->micro, t->T, &l, (uint64_t)step,
                                   (uint64_t)j);
        if (!rc && !isfinite(l) && W == 1)
            return gtrain_loss_not_finite(l, step, j, G, err);
        if (rc)
            return an_failc(err, rc, "", "forward pass failed at step %lld",
                            (long long)step + 1);
        *loss_sum += l;
        if (W > 1)
            t->losses[G + (j - t->rank * t->gas)] = l;
        float *leaf = gradtree_leaf(&t->tree);
        if (!isfinite(l)) {
            /* W > 1: every rank learns of it from the exchange, below, and stops there */
            memset(leaf, 0, g->nparams * sizeof *leaf);
        } else {
            gpt_backward(g, leaf, 0, dloss);
            if (t->fp16 && G > 1)
                mark_overflow(leaf, g->nparams);
        }
        gradtree_push(&t->tree, leaf);
    }
    *grad = gradtree_finish(&t->tree);
    if (W > 1) {
        int rc = t->reduce(t->reduce_ctx, *grad, g->nparams, t->losses + G, t->gas, t->losses);
        if (rc)
            return an_failc(err, rc, "", "the exchange of gradients between ranks failed at "
                            "step %lld", (long long)step + 1);
        *loss_sum = 0.0; /* in global order, as one process adds them */
        for (int k = 0; k < G; k++) {
            if (!isfinite(t->losses[k]))
                return gtrain_loss_not_finite(t->losses[k], step, k, G, err);
            *loss_sum += t->losses[k];
        }
    }
    return 0;
}

int gtrain_step(gtrain *t, train_report *rep, an_err *err)
{
    gpt *g = t->g;
    const int64_t step = t->steps;
    const int64_t e0 = t->epoch, p0 = t->pos;
    const int G = t->gas * t->world; /* micro-batches of the global batch */
    double loss_sum = 0.0;
    int64_t epoch = t->epoch;
    use_threads(t->threads);
    gemm_set_bf16(t->bf16);
    /* fp16: the loss is multiplied by the scale before backward (DeepSpeed's engine); each
     * micro-batch's gradient is of loss/G, so the sum is the global batch's mean. */
    const double scale = t->fp16 ? lossscale_scale(&t->ls) : 1.0;
    float *grad = NULL;
    int rc = local_grads(t, step, (float)(scale / G), &loss_sum, &epoch, &grad, err);
    if (rc) {
        gemm_set_bf16(0);
        t->epoch = e0, t->pos = p0;
        return rc;
    }
    int overflow = 0;
    double norm = NAN;
    if (t->fp16) {
        to_half(grad, g->nparams);
        overflow = lossscale_overflow(grad, g->nparams);
        if (!overflow) {
            const float inv = (float)(1.0 / scale);
            for (size_t i = 0; i < g->nparams; i++)
                grad[i] *= inv;
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
        norm = optim_clip_grad_norm(grad, g->nparams, OPTIM_F32, t->clip);
        optim_step(&t->opt, g->params, grad);
    }
    t->steps++;
    t->samples += (int64_t)t->micro * G;
    double vloss = NAN;
    int has_val = 0;
    if (t->kval > 0 && t->val_every > 0 &&
        (t->steps % t->val_every == 0 || t->steps == t->total_steps)) {
        gtrain_validate(t, &vloss);
        has_val = 1;
    }
    if (!overflow) {
        sched_step(t->sch, vloss);
        gtrain_apply_sched(t);
    }
    gemm_set_bf16(0);
    if (rep) {
        rep->step = t->steps;
        rep->epoch = epoch;
        rep->loss = loss_sum / G;
        rep->grad_norm = norm;
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

