/* optim — optimizer state, one step over flat buffers, gradient clipping, and the state's
 * byte format. The per-element loops are in optim_kernels.inc (one copy per element type);
 * this file computes each tensor's scalars in double and picks the loop. */
#include "core/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/omp_compat.h"

/* ---- kernels, instantiated for float and double ---------------------------------------- */

#define T float
#define K(x) x##_f32
#define K_F32 1
#define SQRT sqrtf
#define COPYSIGN copysignf
#include "core/optim_kernels.inc"
#undef T
#undef K
#undef K_F32
#undef SQRT
#undef COPYSIGN

#define T double
#define K(x) x##_f64
#define K_F32 0
#define SQRT sqrt
#define COPYSIGN copysign
#include "core/optim_kernels.inc"
#undef T
#undef K
#undef K_F32
#undef SQRT
#undef COPYSIGN

/* ---- state layout ------------------------------------------------------------------------
 * The state is `nbufs` buffers of n elements, back to back; buffer k of tensor t starts at
 * element k*n + t.off. Which buffers exist depends on the type and on options fixed at init. */

enum { BUF_NONE = -1 };

typedef struct layout {
    int nbufs;
    int m, v, vmax;  /* Adam, AdamW, Lamb (m, v); Lion (m) */
    int sum;         /* Adagrad */
    int mom;         /* SGD, RMSprop momentum buffer */
    int sq, gavg;    /* RMSprop */
} layout;

static int uses_amsgrad(const optim_cfg *c)
{
    return (c->type == OPTIM_ADAM || c->type == OPTIM_ADAMW) && c->amsgrad && c->torch_adam;
}

/* `momentum_buf`: whether SGD / RMSprop keeps a momentum buffer (decided once, at init). */
static layout plan(const optim_cfg *c, int momentum_buf)
{
    layout l = {0, BUF_NONE, BUF_NONE, BUF_NONE, BUF_NONE, BUF_NONE, BUF_NONE, BUF_NONE};
    switch (c->type) {
    case OPTIM_ADAM:
    case OPTIM_ADAMW:
        l.m = l.nbufs++;
        l.v = l.nbufs++;
        if (uses_amsgrad(c))
            l.vmax = l.nbufs++;
        break;
    case OPTIM_LAMB:
        l.m = l.nbufs++;
        l.v = l.nbufs++;
        break;
    case OPTIM_LION:
        l.m = l.nbufs++;
        break;
    case OPTIM_ADAGRAD:
        l.sum = l.nbufs++;
        break;
    case OPTIM_SGD:
        if (momentum_buf)
            l.mom = l.nbufs++;
        break;
    case OPTIM_RMSPROP:
        l.sq = l.nbufs++;
        if (c->centered)
            l.gavg = l.nbufs++;
        if (momentum_buf)
            l.mom = l.nbufs++;
        break;
    default:
        break;
    }
    return l;
}

/* The layout of a built optimizer: the momentum buffer exists iff the state holds one more
 * buffer than the type's fixed ones. */
static layout layout_of(const optim *o)
{
    layout l = plan(&o->cfg, 0);
    if ((o->cfg.type == OPTIM_SGD || o->cfg.type == OPTIM_RMSPROP) &&
        o->state_elems / o->n > (size_t)l.nbufs)
        l = plan(&o->cfg, 1);
    return l;
}

static size_t elem_size(int dtype)
{
    return dtype == OPTIM_F64 ? sizeof(double) : sizeof(float);
}

/* Lamb stores each tensor's update direction between its two passes when the tensor holds at
 * most this many bytes, and recomputes it for larger ones (see lamb_apply in
 * optim_kernels.inc). 4 MiB bounds the extra memory per optimizer, and a tensor that size has
 * a working set (p, g, m, v, u: 20 MiB) that still fits in the last-level cache of current
 * server CPUs, where the divider, not memory, limits the step. */
#define LAMB_STORE_BYTES ((size_t)4 << 20)

/* Elements of the Lamb direction buffer: the largest tensor that is stored, or 0. */
static size_t lamb_work_elems(const optim_cfg *c, int dtype, const optim_tensor *tensors,
                              int ntensors)
{
    size_t w = 0;
    if (c->type != OPTIM_LAMB)
        return 0;
    for (int i = 0; i < ntensors; i++)
        if (tensors[i].n <= LAMB_STORE_BYTES / elem_size(dtype) && tensors[i].n > w)
            w = tensors[i].n;
    return w;
}

/* ---- init / free ------------------------------------------------------------------------ */

static int valid_type(int t)
{
    return t >= OPTIM_ADAM && t <= OPTIM_RMSPROP;
}

static int cmp_off(const void *a, const void *b)
{
    const optim_tensor *x = a, *y = b;
    return (x->off > y->off) - (x->off < y->off);
}

int optim_init(optim *o, const optim_cfg *cfg, int dtype, size_t n, const optim_tensor *tensors,
               int ntensors, const optim_group *groups, int ngroups, an_err *err)
{
    char path[64], idx[48];
    memset(o, 0, sizeof *o);
    if (!cfg)
        return an_fail(err, "optimizer", "expected an optimizer config, got none");
    if (!valid_type(cfg->type))
        return an_fail(err, "optimizer.type",
                       "expected an optimizer type between %d and %d, got %d", OPTIM_ADAM,
                       OPTIM_RMSPROP, cfg->type);
    if (dtype != OPTIM_F32 && dtype != OPTIM_F64)
        return an_fail(err, "dtype", "expected float32 (%d) or float64 (%d), got %d", OPTIM_F32,
                       OPTIM_F64, dtype);
    if (n == 0)
        return an_fail(err, "params", "expected at least one parameter, got 0");
    if (ntensors <= 0 || !tensors)
        return an_fail(err, "tensors", "expected at least one tensor, got %d", ntensors);
    if (ngroups <= 0 || !groups)
        return an_fail(err, "param_groups", "expected at least one parameter group, got %d",
                       ngroups);
    if (n > SIZE_MAX / 8 / elem_size(dtype))
        return an_fail(err, "params", "expected a parameter count that fits in memory, got %zu",
                       n);
    for (int i = 0; i < ntensors; i++) {
        const optim_tensor *t = &tensors[i];
        if (t->group < 0 || t->group >= ngroups)
            return an_fail(err, an_path(path, sizeof path,
                                        an_path_index(idx, sizeof idx, "tensors", i), "group"),
                           "expected a group index in [0, %d), got %d", ngroups, t->group);
        if (t->off > n || t->n > n - t->off)
            return an_fail(err, an_path_index(path, sizeof path, "tensors", i),
                           "expected a range inside the %zu parameters, got [%zu, +%zu)", n,
                           t->off, t->n);
    }
    for (int i = 0; i < ngroups; i++) {
        if (groups[i].step < 0)
            return an_fail(err,
                           an_path(path, sizeof path,
                                   an_path_index(idx, sizeof idx, "param_groups", i), "step"),
                           "expected a step count >= 0, got %lld", (long long)groups[i].step);
    }

    /* Overlapping tensors would update some parameters twice per step. */
    optim_tensor *sorted = malloc((size_t)ntensors * sizeof *sorted);
    if (!sorted)
        return an_failc(err, -ENOMEM, "tensors", "out of memory for %d tensors", ntensors);
    memcpy(sorted, tensors, (size_t)ntensors * sizeof *sorted);
    qsort(sorted, (size_t)ntensors, sizeof *sorted, cmp_off);
    for (int i = 1; i < ntensors; i++) {
        if (sorted[i - 1].off + sorted[i - 1].n > sorted[i].off) {
            size_t a = sorted[i - 1].off, b = sorted[i].off;
            free(sorted);
            return an_fail(err, "tensors",
                           "expected disjoint tensor ranges, got overlapping ranges starting "
                           "at %zu and %zu", a, b);
        }
    }
    free(sorted);

    int momentum_buf = cfg->momentum != 0 || cfg->momentum_cycled;
    for (int i = 0; i < ngroups; i++)
        momentum_buf |= groups[i].momentum != 0;
    layout l = plan(cfg, momentum_buf);

    o->cfg = *cfg;
    if (cfg->type == OPTIM_ADAMW)
        o->cfg.adam_w_mode = 1;
    o->dtype = dtype;
    o->n = n;
    o->ntensors = ntensors;
    o->ngroups = ngroups;
    o->state_elems = (size_t)l.nbufs * n;
    size_t es = elem_size(dtype);
    o->tensors = malloc((size_t)ntensors * sizeof *o->tensors);
    o->groups = malloc((size_t)ngroups * sizeof *o->groups);
    /* scratch: ntensors trust ratios, then Lamb's direction buffer (8-byte aligned). */
    o->scratch = malloc((size_t)ntensors * sizeof *o->scratch +
                        lamb_work_elems(cfg, dtype, tensors, ntensors) * es);
    o->state = o->state_elems ? calloc(o->state_elems, es) : NULL;
    if (!o->tensors || !o->groups || !o->scratch || (o->state_elems && !o->state)) {
        optim_free(o);
        return an_failc(err, -ENOMEM, "params",
                        "out of memory for the optimizer state of %zu parameters (%zu bytes)",
                        n, o->state_elems * es);
    }
    memcpy(o->tensors, tensors, (size_t)ntensors * sizeof *o->tensors);
    memcpy(o->groups, groups, (size_t)ngroups * sizeof *o->groups);
    for (int i = 0; i < ntensors; i++)
        o->scratch[i] = 1.0;
    if (cfg->type == OPTIM_ADAGRAD && cfg->initial_accumulator_value != 0) {
        if (dtype == OPTIM_F32) {
            float *s = (float *)o->state + (size_t)l.sum * n, a = (float)cfg->initial_accumulator_value;
            for (size_t i = 0; i < n; i++)
                s[i] = a;
        } else {
            double *s = (double *)o->state + (size_t)l.sum * n;
            for (size_t i = 0; i < n; i++)
                s[i] = cfg->initial_accumulator_value;
        }
    }
    return 0;
}

void optim_free(optim *o)
{
    if (!o)
        return;
    free(o->tensors);
    free(o->groups);
    free(o->scratch);
    free(o->state);
    o->tensors = NULL;
    o->groups = NULL;
    o->scratch = NULL;
    o->state = NULL;
    o->state_elems = 0;
    o->ntensors = o->ngroups = 0;
}

double optim_lamb_coeff(const optim *o, int i)
{
    if (!o || o->cfg.type != OPTIM_LAMB || i < 0 || i >= o->ntensors || !o->scratch)
        return 0.0;
    return o->scratch[i];
}

void *optim_buffer(const optim *o, const char *name)
{
    if (!o || !o->state || !name)
        return NULL;
    layout l = layout_of(o);
    int k = BUF_NONE;
    if (!strcmp(name, "exp_avg"))
        k = l.m;
    else if (!strcmp(name, "exp_avg_sq"))
        k = l.v;
    else if (!strcmp(name, "max_exp_avg_sq"))
        k = l.vmax;
    else if (!strcmp(name, "sum"))
        k = l.sum;
    else if (!strcmp(name, "momentum_buffer"))
        k = l.mom;
    else if (!strcmp(name, "square_avg"))
        k = l.sq;
    else if (!strcmp(name, "grad_avg"))
        k = l.gavg;
    if (k == BUF_NONE)
        return NULL;
    return (char *)o->state + (size_t)k * o->n * elem_size(o->dtype);
}

/* ---- one step --------------------------------------------------------------------------- */

/* 1 - b^t, the bias correction of Adam and Lamb. Once b^t is below 2^-60 the difference is
 * exactly 1.0 (half an ulp below 1 is 2^-54, and pow's error is far below the margin), so pow
 * is skipped: late in a long run it would underflow, and glibc's pow takes a slow path for
 * every underflow (a fifth of a tiny model's step). The result is the same bits either way. */
double optim_bias_correction(double b, double t)
{
    if (b > 0.0 && b < 1.0 && t * log2(b) < -60.0)
        return 1.0;
    return 1.0 - pow(b, t);
}

/* Pointer to buffer k of tensor t, or NULL when the buffer does not exist; BUFA: at element
 * a of the tensor (optim_step.inc's part of it). */
#define BUF(base, k, t) ((k) == BUF_NONE ? NULL : (base) + (size_t)(k) * o->n + (t)->off)
#define BUFA(base, k, t) ((k) == BUF_NONE ? NULL : (base) + (size_t)(k) * o->n + (t)->off + a)

#define T float
#define K(x) x##_f32
#include "core/optim_step.inc"
#undef T
#undef K

#define T double
#define K(x) x##_f64
#include "core/optim_step.inc"
#include "util/util.h"
#undef T
#undef K

/* The step of elements [lo, hi) of the flat buffers. */
static void step_part(optim *o, const layout *l, void *params, const void *grads, size_t lo,
                      size_t hi)
{
    if (o->dtype == OPTIM_F32)
        step_f32(o, l, params, grads, lo, hi);
    else
        step_f64(o, l, params, grads, lo, hi);
}

/* A large step runs on the job's threads (OpenMP, as the products), each thread on one
 * contiguous part of the flat buffers, in whole blocks of 64 elements. Every optimizer but
 * Lamb is element by element, so the parts give the same bits as one pass; Lamb's trust
 * ratio is a norm over each whole tensor, so it stays on the calling thread, as does a step
 * under OPTIM_SPLIT_MIN elements (waking the threads would cost more). */
#define OPTIM_SPLIT_MIN 65536

void optim_step(optim *o, void *params, const void *grads)
{
    layout l = layout_of(o);
    for (int i = 0; i < o->ngroups; i++)
        o->groups[i].step++;
    int k = o->cfg.type != OPTIM_LAMB && o->n >= OPTIM_SPLIT_MIN ? omp_get_max_threads() : 1;
    if (k < 2) {
        step_part(o, &l, params, grads, 0, o->n);
    } else {
#pragma omp parallel num_threads(k)
        {
            size_t lo, hi;
            span_blocks(o->n, 64, &lo, &hi);
            step_part(o, &l, params, grads, lo, hi);
        }
    }
    /* after the step, which reads it on every thread */
    for (int i = 0; i < o->ngroups; i++)
        o->groups[i].mom_started |= o->groups[i].momentum != 0;
}

/* ---- state bytes -------------------------------------------------------------------------
 * Little-endian, version 1:
 *   header  "anoptim\0", u32 version, type, dtype, ngroups, ntensors, reserved 0,
 *           u64 n, state_elems                                              (48 bytes)
 *   tensors ntensors × (u64 off, u64 n, u32 group, u32 flags)              (24 bytes each)
 *   groups  ngroups × (f64 lr, weight_decay, beta1, beta2, momentum; i64 step) (48 each)
 *   state   state_elems elements of dtype, as stored in memory.
 * The tensors are there so a load can check the layout; the groups carry the live
 * hyperparameters and step counters, so a restore continues bit for bit. */

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "the optimizer state format stores elements in host order; hosts are little-endian");

#define OPTIM_MAGIC "anoptim"
#define OPTIM_VERSION 1u
#define HDR_BYTES 48u
#define TENSOR_BYTES 24u
#define GROUP_BYTES 48u
/* A tensor's flags: its group's mom_started, and that the bit is there at all (a state saved
 * before it has flags 0, and its SGD buffer started at the group's first step). */
#define TF_MOM_STARTED 1u
#define TF_FLAGS 2u

/* Cursors over the state's little-endian fields (util/util.h). */
static void put32(unsigned char **w, uint32_t x)
{
    le_put_u32(*w, x);
    *w += 4;
}

static void put64(unsigned char **w, uint64_t x)
{
    le_put_u64(*w, x);
    *w += 8;
}

static void putf(unsigned char **w, double x)
{
    le_put_f64(*w, x);
    *w += 8;
}

static uint32_t get32(const unsigned char **r)
{
    uint32_t x = le_get_u32(*r);
    *r += 4;
    return x;
}

static uint64_t get64(const unsigned char **r)
{
    uint64_t x = le_get_u64(*r);
    *r += 8;
    return x;
}

static double getf(const unsigned char **r)
{
    double x = le_get_f64(*r);
    *r += 8;
    return x;
}

size_t optim_state_size(const optim *o)
{
    return HDR_BYTES + (size_t)o->ntensors * TENSOR_BYTES + (size_t)o->ngroups * GROUP_BYTES +
           o->state_elems * elem_size(o->dtype);
}

int optim_save(const optim *o, void *buf, size_t len)
{
    if (!o || !buf)
        return -EINVAL;
    if (len < optim_state_size(o))
        return -ENOSPC;
    unsigned char *w = buf;
    memcpy(w, OPTIM_MAGIC, 8);
    w += 8;
    put32(&w, OPTIM_VERSION);
    put32(&w, (uint32_t)o->cfg.type);
    put32(&w, (uint32_t)o->dtype);
    put32(&w, (uint32_t)o->ngroups);
    put32(&w, (uint32_t)o->ntensors);
    put32(&w, 0);
    put64(&w, o->n);
    put64(&w, o->state_elems);
    for (int i = 0; i < o->ntensors; i++) {
        put64(&w, o->tensors[i].off);
        put64(&w, o->tensors[i].n);
        put32(&w, (uint32_t)o->tensors[i].group);
        put32(&w, TF_FLAGS | (o->groups[o->tensors[i].group].mom_started ? TF_MOM_STARTED : 0));
    }
    for (int i = 0; i < o->ngroups; i++) {
        const optim_group *g = &o->groups[i];
        putf(&w, g->lr);
        putf(&w, g->weight_decay);
        putf(&w, g->beta1);
        putf(&w, g->beta2);
        putf(&w, g->momentum);
        put64(&w, (uint64_t)g->step);
    }
    if (o->state_elems)
        memcpy(w, o->state, o->state_elems * elem_size(o->dtype));
    return 0;
}

/* Group g's mom_started from the flags of its tensors in a state's tensor table. A state
 * saved before the flag (flags 0) started the buffer at the group's first step. */
static int mom_started_of(const unsigned char *tens, int ntensors, int g, int64_t step)
{
    for (int i = 0; i < ntensors; i++) {
        const unsigned char *t = tens + (size_t)i * TENSOR_BYTES;
        uint32_t flags = le_get_u32(t + 20);
        if (le_get_u32(t + 16) == (uint32_t)g && (flags & TF_FLAGS))
            return (flags & TF_MOM_STARTED) != 0;
    }
    return step >= 1;
}

int optim_load(optim *o, const void *buf, size_t len, an_err *err)
{
    const char *f = "optimizer_state";
    if (!buf || len < HDR_BYTES)
        return an_fail(err, f, "expected an optimizer state of at least %u bytes, got %zu",
                       HDR_BYTES, buf ? len : 0);
    const unsigned char *r = buf;
    if (memcmp(r, OPTIM_MAGIC, 8) != 0)
        return an_fail(err, f, "expected an optimizer state (magic \"%s\"), got other bytes",
                       OPTIM_MAGIC);
    r += 8;
    uint32_t version = get32(&r), type = get32(&r), dtype = get32(&r), ngroups = get32(&r),
             ntensors = get32(&r);
    (void)get32(&r);
    uint64_t n = get64(&r), elems = get64(&r);
    if (version != OPTIM_VERSION)
        return an_fail(err, f, "expected optimizer state version %u, got %u", OPTIM_VERSION,
                       version);
    if (type != (uint32_t)o->cfg.type)
        return an_fail(err, f, "expected state of optimizer type %d, got type %u", o->cfg.type,
                       type);
    if (dtype != (uint32_t)o->dtype)
        return an_fail(err, f, "expected state of dtype %d, got dtype %u", o->dtype, dtype);
    if (n != o->n)
        return an_fail(err, f, "expected state for %zu parameters, got %llu", o->n,
                       (unsigned long long)n);
    if (ngroups != (uint32_t)o->ngroups || ntensors != (uint32_t)o->ntensors)
        return an_fail(err, f, "expected %d groups and %d tensors, got %u groups and %u tensors",
                       o->ngroups, o->ntensors, ngroups, ntensors);
    if (o->cfg.momentum == 0 && o->cfg.momentum_cycled && elems + o->n == o->state_elems)
        /* Saved by a build that kept no momentum for SGD or RMSprop at momentum 0 under a
         * scheduler that cycles it, which PyTorch applies: that run cannot go on as one. */
        return an_fail(err, f, "the state has no momentum buffer: it was saved by an earlier "
                       "build that ignored the momentum the scheduler cycles (cycle_momentum) "
                       "for momentum 0; start the job again, or set cycle_momentum false to "
                       "go on as it trained");
    if (elems != o->state_elems)
        return an_fail(err, f,
                       "expected %zu state elements (same optimizer options), got %llu",
                       o->state_elems, (unsigned long long)elems);
    size_t want = optim_state_size(o);
    if (len != want)
        return an_fail(err, f, "expected %zu bytes of optimizer state, got %zu", want, len);
    const unsigned char *tens = r;
    for (int i = 0; i < o->ntensors; i++) {
        uint64_t off = get64(&r), tn = get64(&r);
        uint32_t group = get32(&r), flags = get32(&r);
        /* Flags are given for all tensors or none (an older state), and the tensors of one
         * group agree: `same` is an earlier tensor's of the group, if any. */
        uint32_t same = flags;
        for (int k = 0; k < i; k++) {
            const unsigned char *tk = tens + (size_t)k * TENSOR_BYTES;
            if (le_get_u32(tk + 16) == group) {
                same = le_get_u32(tk + 20);
                break;
            }
        }
        if ((flags & ~(TF_FLAGS | TF_MOM_STARTED)) || (flags && !(flags & TF_FLAGS)) ||
            ((flags ^ le_get_u32(tens + 20)) & TF_FLAGS) || flags != same) {
            char path[64];
            return an_fail(err, an_path_index(path, sizeof path, "tensors", i),
                           "tensor flags 0x%x do not fit the state's others (saved by a newer "
                           "build, or damaged)", flags);
        }
        if (off != o->tensors[i].off || tn != o->tensors[i].n ||
            group != (uint32_t)o->tensors[i].group) {
            char path[64];
            return an_fail(err, an_path_index(path, sizeof path, "tensors", i),
                           "expected tensor [%zu, +%zu) in group %d, got [%llu, +%llu) in "
                           "group %u", o->tensors[i].off, o->tensors[i].n,
                           o->tensors[i].group, (unsigned long long)off,
                           (unsigned long long)tn, group);
        }
    }
    const unsigned char *gr = r;
    for (int i = 0; i < o->ngroups; i++) {
        r += 40;
        int64_t step = (int64_t)get64(&r);
        if (step < 0) {
            char path[64];
            return an_fail(err, an_path_index(path, sizeof path, "param_groups", i),
                           "expected a step count >= 0, got %lld", (long long)step);
        }
    }
    /* Everything checked: only now change the optimizer. */
    r = gr;
    for (int i = 0; i < o->ngroups; i++) {
        optim_group *g = &o->groups[i];
        g->lr = getf(&r);
        g->weight_decay = getf(&r);
        g->beta1 = getf(&r);
        g->beta2 = getf(&r);
        g->momentum = getf(&r);
        g->step = (int64_t)get64(&r);
        g->mom_started = mom_started_of(tens, o->ntensors, i, g->step);
    }
    if (o->state_elems)
        memcpy(o->state, r, o->state_elems * elem_size(o->dtype));
    for (int i = 0; i < o->ntensors; i++)
        o->scratch[i] = 1.0;
    return 0;
}
