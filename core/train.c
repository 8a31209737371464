/* train — one job's training state and its optimizer step (its checkpoint blob: train_blob.c).
 *
 * A step follows DeepSpeed's engine (DEEPSPEED.md §1): the scheduler's current values are
 * written into the optimizer groups (the constructor's values for the first step), then
 * gradient_accumulation_steps micro-batches run forward, loss and backward, their gradients
 * are summed in a fixed pairwise tree and scaled once by 1/gas, the global norm is clipped,
 * the optimizer steps, a validation may run, and the scheduler steps once.
 *
 * The pairwise tree is core/gradtree.c, shared with the gpt's trainer.
 *
 * The checkpoint blob (framing in blob.h) is written and read in train_blob.c. */
#include "core/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/blob.h"
#include "core/data.h"
#include "core/gemm.h"
#include "core/loss.h"
#include "core/lrfind.h"
#include "core/model.h"
#include "core/optim.h"
#include "core/train_gpt.h"
#include "core/train_internal.h"


/* ------------------------------------------------------------------------------------------
 * Construction */

static uint64_t hash_layout(const train *t)
{
    uint64_t h = blob_fnv_i64(t->model_hash, t->opt.cfg.type);
    h = blob_fnv_i64(h, t->opt.dtype);
    h = blob_fnv_i64(h, t->opt.ngroups);
    for (int i = 0; i < t->opt.ntensors; i++)
        h = blob_fnv_i64(h, t->opt.tensors[i].group);
    return h;
}

/* Writes the scheduler's values for the next step into the optimizer groups. */
static void apply_sched(train *t)
{
    optim_set_sched(&t->opt, sched_lr(t->sch), sched_mom(t->sch), sched_beta2(t->sch),
                    t->has_betas);
}

/* oneDNN's thread count is a per-thread setting and the worker that steps a job may change
 * (pause, resume); setting it costs a symbol lookup, so each thread remembers what it set. */
static _Thread_local int thread_count_set;

static void use_threads(int n)
{
    if (thread_count_set != n && gemm_set_threads(n) == 0)
        thread_count_set = n;
}

static int ilog2(int v)
{
    int l = 0;
    while (v >>= 1)
        l++;
    return l;
}

int train_create(train **out, const job_spec *spec, const char *csv, size_t csv_len,
                 an_err *err)
{
    *out = NULL;
    if (spec->micro_batch < 1 || spec->micro_batch > (1 << 24) || spec->grad_accum < 1 ||
        spec->grad_accum > (1 << 24))
        return an_fail(err, "ds_config.train_micro_batch_size_per_gpu",
                       "expected a micro-batch of 1..2^24 rows and 1..2^24 accumulation "
                       "steps, got %lld and %lld", (long long)spec->micro_batch,
                       (long long)spec->grad_accum);
    if (spec->ngroups + 1 > SCHED_MAX_GROUPS)
        return an_fail(err, "param_groups", "expected at most %d param groups, got %d",
                       SCHED_MAX_GROUPS - 1, spec->ngroups);
    train *t = calloc(1, sizeof *t);
    if (!t)
        return an_failc(err, -ENOMEM, "", "out of memory");
    if (spec->model.type == MODEL_GPT) {
        int grc = gtrain_create(&t->gt, spec, csv, csv_len, err);
        if (grc)
            free(t);
        else
            *out = t;
        return grc;
    }
    t->clip = spec->gradient_clipping;
    t->threads = spec->threads > 0 ? spec->threads : 1;
    t->val_every = spec->val_every_steps;
    t->micro = (int)spec->micro_batch;
    t->gas = (int)spec->grad_accum;
    t->loss = spec->loss;
    int rc = data_load(spec, csv, csv_len, &t->train_ds, &t->val_ds, err);
    if (rc) {
        free(t);
        return rc;
    }
    if ((rc = data_loader_init(&t->loader, &t->train_ds, spec->seed, spec->data.shuffle, err)))
        goto fail;
    /* Validation and predictions run in batches of up to VAL_BATCH rows (or a micro-batch,
     * if larger). */
    int vb = t->val_ds.n < VAL_BATCH ? (int)t->val_ds.n : VAL_BATCH;
    int max_batch = t->micro > vb ? t->micro : vb;
    if ((rc = model_create_ckpt(&t->m, &spec->model, spec->seed, max_batch, spec->act_ckpt,
                                err)))
        goto fail;
    model *m = t->m;

    /* Optimizer: group 0 is the optimizer block's, group k+1 is param_groups[k]. */
    optim_tensor tensors[MODEL_MAX_TENSORS];
    int nt = model_optim_tensors(m, spec->groups, spec->ngroups, tensors);
    t->ngroups = spec->ngroups + 1;
    t->has_betas = optim_has_betas(&spec->optim);
    sched_env env;
    int64_t total = job_spec_total_steps(spec, t->train_ds.n);
    job_spec_sched_env(spec, t->train_ds.n, &env);
    t->total_steps = total;
    if (spec->lrfind_stop > 0) {
        t->finder = 1;
        lrfind_watch_init(&t->watch, LRFIND_BETA, spec->lrfind_stop);
    }
    optim_group groups[SCHED_MAX_GROUPS];
    for (int g = 0; g < t->ngroups; g++) {
        const param_group_spec *ps = g ? &spec->groups[g - 1] : NULL;
        groups[g] = (optim_group){
            .lr = env.base_lr[g],
            .weight_decay = ps && ps->has_weight_decay ? ps->weight_decay
                                                       : spec->optim.weight_decay,
            .beta1 = spec->optim.beta1,
            .beta2 = spec->optim.beta2,
            .momentum = spec->optim.momentum,
        };
    }
    if ((rc = optim_init(&t->opt, &spec->optim, OPTIM_F32, m->nparams, tensors, nt, groups,
                         t->ngroups, err)))
        goto fail;
    if ((rc = sched_create(&t->sch, spec->scheduler, "ds_config.scheduler", &env, err, NULL)))
        goto fail;
    if (sched_ngroups(t->sch) != t->ngroups) {
        rc = an_fail(err, "ds_config.scheduler", "expected a schedule over %d groups, got %d",
                     t->ngroups, sched_ngroups(t->sch));
        goto fail;
    }
    apply_sched(t);

    /* Step buffers. */
    t->x = malloc((size_t)t->micro * (size_t)m->dims[0] * sizeof *t->x);
    t->y = malloc((size_t)t->micro * (size_t)(t->train_ds.ydim > 0 ? t->train_ds.ydim : 1) *
                  sizeof *t->y);
    t->dout = malloc((size_t)max_batch * (size_t)m->dims[m->nlayers] * sizeof *t->dout);
    if (!t->x || !t->y || !t->dout) {
        rc = an_failc(err, -ENOMEM, "", "out of memory");
        goto fail;
    }
    if (gradtree_init(&t->tree, m->grads, m->nparams, t->gas) != 0) {
        rc = an_failc(err, -ENOMEM, "", "out of memory: %d gradient buffers of %zu floats",
                      ilog2(t->gas) + 1, m->nparams);
        goto fail;
    }
    t->model_hash = blob_model_hash(m);
    t->layout_hash = hash_layout(t);
    use_threads(t->threads);
    *out = t;
    return 0;
fail:
    train_free(t);
    return rc;
}

int train_set_ranks(train *t, int world, int rank, train_reduce_fn fn, void *ctx)
{
    if (t->gt)
        return gtrain_set_ranks(t->gt, world, rank, fn, ctx);
    if (world < 1 || rank < 0 || rank >= world || !fn ||
        (int64_t)world * t->gas > (1 << 20))
        return -EINVAL;
    double *l = NULL;
    if (world > 1 && !(l = calloc((size_t)(world + 1) * (size_t)t->gas, sizeof *l)))
        return -ENOMEM;
    free(t->losses);
    t->losses = l; /* [world·gas] global, then [gas] this rank's */
    t->world = world, t->rank = rank, t->reduce = fn, t->reduce_ctx = ctx;
    return 0;
}

size_t train_nparams(const train *t)
{
    return t->gt ? gtrain_nparams(t->gt) : t->m->nparams;
}

void train_free(train *t)
{
    if (!t)
        return;
    free(t->losses);
    gtrain_free(t->gt);
    gradtree_free(&t->tree);
    free(t->x);
    free(t->y);
    free(t->dout);
    sched_free(t->sch);
    train_shard_free(t);
    optim_free(&t->opt);
    model_free(t->m);
    data_loader_free(&t->loader);
    data_free(&t->train_ds);
    data_free(&t->val_ds);
    free(t);
}

int64_t train_steps_done(const train *t) { return t->gt ? gtrain_steps_done(t->gt) : t->steps; }
int64_t train_total_steps(const train *t)
{
    return t->gt ? gtrain_total_steps(t->gt) : t->total_steps;
}
int train_inputs(const train *t) { return t->gt ? gtrain_block_size(t->gt) : t->m->dims[0]; }
int train_outputs(const train *t)
{
    return t->gt ? gtrain_vocab_size(t->gt) : t->m->dims[t->m->nlayers];
}
gtrain *train_gpt(train *t) { return t->gt; }

int train_input_stats(const train *t, const double **mean, const double **std)
{
    if (t->gt || !t->train_ds.mean || !t->train_ds.std)
        return 0;
    *mean = t->train_ds.mean;
    *std = t->train_ds.std;
    return t->train_ds.d;
}

/* ------------------------------------------------------------------------------------------
 * The step */

/* Mean loss (and accuracy) over `ds` in eval mode, batches of up to max_batch rows. */
static void eval_dataset(train *t, const dataset *ds, double *loss, double *acc)
{
    model *m = t->m;
    int O = m->dims[m->nlayers];
    double sum = 0.0;
    long long correct = 0, counted = 0;
    for (long long r = 0; r < ds->n; r += m->max_batch) {
        int B = (int)(ds->n - r < m->max_batch ? ds->n - r : m->max_batch);
        const float *x = ds->x + (size_t)r * (size_t)ds->d;
        const float *y = ds->y + (size_t)r * (size_t)ds->ydim;
        model_forward(m, x, B, 0, 0, 0);
        const float *o = model_output(m);
        sum += loss_compute(t->loss, o, y, B, O, NULL) * B;
        correct += loss_correct(t->loss, o, y, B, O);
        counted += loss_accuracy_count(t->loss, B, O);
    }
    *loss = sum / (double)ds->n;
    if (acc)
        *acc = loss_is_classification(t->loss) && counted ? (double)correct / (double)counted
                                                           : NAN;
}

int train_validate(train *t, double *loss, double *acc)
{
    if (t->gt) {
        *acc = NAN;
        return gtrain_validate(t->gt, loss);
    }
    if (t->val_ds.n < 1)
        return -ENOENT;
    eval_dataset(t, &t->val_ds, loss, acc);
    return 0;
}

/* A sweep whose loss stopped being finite has diverged as far as it can: the step is
 * recorded (loss NaN, the parameters, optimizer and schedule left as they were) and is the
 * sweep's last, instead of failing the job as an ordinary run would. */
static int finder_diverged(train *t, train_report *rep, double loss)
{
    if (rep) {
        memset(rep, 0, sizeof *rep);
        rep->loss_scale = NAN; /* no fp16 for these models */
        rep->ngroups = t->ngroups;
        for (int g = 0; g < t->ngroups; g++)
            rep->lr[g] = t->opt.groups[g].lr;
    }
    t->steps++;
    t->samples += (int64_t)t->micro * t->gas * (t->world > 1 ? t->world : 1);
    t->total_steps = t->steps;
    lrfind_watch_step(&t->watch, INFINITY);
    if (rep) {
        rep->step = t->steps;
        rep->epoch = t->loader.cur.epoch;
        rep->loss = loss;
        rep->grad_norm = NAN;
        rep->val_loss = rep->val_acc = NAN;
    }
    return 0;
}

/* A micro-batch's loss that is not finite: the finder's sweep ends there, any other run
 * fails. With several ranks every rank sees every micro-batch's loss after the exchange and
 * comes here with the same one, so all of them end the step alike. */
static int not_finite(train *t, train_report *rep, double l, int j, const data_cursor *start,
                      an_err *err)
{
    if (t->finder)
        return finder_diverged(t, rep, l);
    data_loader_seek(&t->loader, start->epoch, start->pos);
    return gtrain_loss_not_finite(l, t->steps, j, t->gas * (t->world > 1 ? t->world : 1), err);
}

int train_step(train *t, train_report *rep, an_err *err)
{
    if (t->gt)
        return gtrain_step(t->gt, rep, err);
    model *m = t->m;
    const int O = m->dims[m->nlayers];
    const size_t n = m->nparams;
    const int64_t step = t->steps; /* 0-based index of this step */
    const data_cursor start = t->loader.cur;
    use_threads(t->threads);

    gradtree_reset(&t->tree);

    double loss_sum = 0.0;
    int64_t epoch = start.epoch;
    const int W = t->world > 1 ? t->world : 1;
    for (int jg = 0; jg < t->gas * W; jg++) {
        /* every rank reads the whole global batch, so the loaders stay in step; rank r
         * trains micro-batches r·gas … r·gas + gas − 1 (j is its global index) */
        data_next(&t->loader, t->micro, t->x, t->y, &epoch);
        if (jg / t->gas != t->rank)
            continue;
        const int j = jg;
        int rc = model_forward(m, t->x, t->micro, 1, (uint64_t)step, (uint64_t)j);
        if (rc) {
            data_loader_seek(&t->loader, start.epoch, start.pos);
            return an_failc(err, rc, "", "forward pass failed at step %lld",
                            (long long)step + 1);
        }
        double l = loss_compute(t->loss, model_output(m), t->y, t->micro, O, t->dout);
        if (!isfinite(l) && W == 1)
            return not_finite(t, rep, l, j, &start, err);
        loss_sum += l;
        if (W > 1)
            t->losses[W * t->gas + (j - t->rank * t->gas)] = l;
        float *leaf = gradtree_leaf(&t->tree);
        if (isfinite(l))
            model_backward(m, t->dout, leaf, 0);
        else /* W > 1: every rank learns of it from the exchange, below, and stops there */
            memset(leaf, 0, n * sizeof *leaf);
        gradtree_push(&t->tree, leaf);
    }
    float *grad = gradtree_finish(&t->tree);
    if (W > 1) {
        int rrc = t->reduce(t->reduce_ctx, grad, n, t->losses + W * t->gas, t->gas, t->losses);
        if (rrc) {
            data_loader_seek(&t->loader, start.epoch, start.pos);
            return an_failc(err, rrc, "", "the exchange of gradients between ranks failed at "
                            "step %lld", (long long)step + 1);
        }
        loss_sum = 0.0; /* in global order, as one process adds them */
        for (int k = 0; k < W * t->gas; k++) {
            if (!isfinite(t->losses[k]))
                return not_finite(t, rep, t->losses[k], k, &start, err);
            loss_sum += t->losses[k];
        }
    }
    if (t->gas * W > 1) {
        /* One scaling after the sum; for a power of two the quotient is exact, so gas 2 gives
         * DeepSpeed's loss/gas per micro-batch bit for bit. */
        const float v = (float)(t->gas * W);
        for (size_t i = 0; i < n; i++)
            grad[i] = grad[i] / v;
    }
    double norm = optim_clip_grad_norm(grad, n, OPTIM_F32, t->clip);

    if (rep) {
        memset(rep, 0, sizeof *rep);
        rep->loss_scale = NAN; /* no fp16 for these models */
        rep->ngroups = t->ngroups;
        for (int g = 0; g < t->ngroups; g++)
            rep->lr[g] = t->opt.groups[g].lr;
    }
    if (t->sharded) {
        int src = train_shard_step(t, m->params, grad, err);
        if (src)
            return src; /* the ranks can no longer agree: the run ends (MPI aborts it) */
    } else {
        optim_step(&t->opt, m->params, grad);
    }
    t->steps++;
    t->samples += (int64_t)t->micro * t->gas * W;

    double metric = NAN, vacc = NAN;
    int has_val = 0;
    if (t->val_ds.n > 0 && t->val_every > 0 &&
        (t->steps % t->val_every == 0 || t->steps == t->total_steps)) {
        eval_dataset(t, &t->val_ds, &metric, &vacc);
        has_val = 1;
    }
    sched_step(t->sch, metric);
    apply_sched(t);

    if (rep) {
        rep->step = t->steps;
        rep->epoch = epoch;
        rep->loss = loss_sum / (t->gas * W);
        rep->grad_norm = norm;
        rep->has_val = has_val;
        rep->val_loss = has_val ? metric : NAN;
        rep->val_acc = has_val ? vacc : NAN;
    }
    if (t->finder && lrfind_watch_step(&t->watch, loss_sum / (t->gas * W)))
        t->total_steps = t->steps; /* the sweep has diverged: this was its last step */
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * Weights and predictions */

int train_weights_json(const train *t, cJSON **out)
{
    if (t->gt)
        return gtrain_weights_json(t->gt, out);
    *out = NULL;
    cJSON *o = cJSON_CreateObject();
    cJSON *tensors = model_weights_json(t->m, t->m->params);
    if (!o || !tensors || !cJSON_AddNumberToObject(o, "step", (double)t->steps)) {
        cJSON_Delete(o);
        cJSON_Delete(tensors);
        return -ENOMEM;
    }
    cJSON_AddItemToObject(o, "tensors", tensors);
    *out = o;
    return 0;
}

int train_predict(train *t, const float *x, int rows, float *out, an_err *err)
{
    if (t->gt)
        return an_fail(err, "model", "a gpt model predicts tokens: use generate (POST "
                       "/v1/jobs/{id}/generate) instead of predict");
    return model_predict(t->m, x, rows, out, err);
}
