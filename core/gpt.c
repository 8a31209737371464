/* gpt — the GPT model: parameter layout, initialisation, the activation arena, and the
 * forward and backward passes over the layers of gpt_layers.c (see gpt.h). */
#include "core/gpt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/actckpt.h"
#include "core/gemm.h"
#include "core/gpt_simd.h"
#include "core/rng.h"

#define NONE ((size_t)-1)

/* The per-layer tensors in state_dict order; is_bias marks those absent without bias. */
static const struct {
    const char *suffix;
    int rows_mult;  /* rows as a multiple of C (0: 1-D of C·cols_mult... see shape below) */
    int cols_mult;  /* 2-D: columns as a multiple of C; 0 for a 1-D tensor */
    int is_bias;
} LAYER_T[GPT_TENSORS_PER_LAYER] = {
    {"ln_1.weight", 1, 0, 0},      {"ln_1.bias", 1, 0, 1},
    {"attn.c_attn.weight", 3, 1, 0}, {"attn.c_attn.bias", 3, 0, 1},
    {"attn.c_proj.weight", 1, 1, 0}, {"attn.c_proj.bias", 1, 0, 1},
    {"ln_2.weight", 1, 0, 0},      {"ln_2.bias", 1, 0, 1},
    {"mlp.c_fc.weight", 4, 1, 0},  {"mlp.c_fc.bias", 4, 0, 1},
    {"mlp.c_proj.weight", 1, 4, 0}, {"mlp.c_proj.bias", 1, 0, 1},
};

enum { T_LN1W, T_LN1B, T_QKVW, T_QKVB, T_APW, T_APB, T_LN2W, T_LN2B, T_FCW, T_FCB, T_FPW, T_FPB };

int gpt_shape_check(const gpt_shape *s, an_err *err)
{
    if (s->block_size < 1 || s->block_size > 65536)
        return an_fail(err, "model.block_size", "block_size must be an integer in 1..65536, got %d",
                       s->block_size);
    if (s->n_layer < 1 || s->n_layer > GPT_MAX_LAYERS)
        return an_fail(err, "model.n_layer", "n_layer must be an integer in 1..%d, got %d",
                       GPT_MAX_LAYERS, s->n_layer);
    if (s->n_embd < 1 || s->n_embd > 16384)
        return an_fail(err, "model.n_embd", "n_embd must be an integer in 1..16384, got %d",
                       s->n_embd);
    if (s->n_head < 1 || s->n_head > s->n_embd)
        return an_fail(err, "model.n_head", "n_head must be an integer in 1..n_embd (%d), got %d",
                       s->n_embd, s->n_head);
    if (s->n_embd % s->n_head != 0)
        return an_fail(err, "model.n_head",
                       "n_head (%d) must divide n_embd (%d): each head gets n_embd/n_head "
                       "channels", s->n_head, s->n_embd);
    if (s->vocab_size < 1 || s->vocab_size > 1 << 20)
        return an_fail(err, "model.vocab_size", "vocab_size must be an integer in 1..%d, got %d",
                       1 << 20, s->vocab_size);
    if (s->gelu != GPT_GELU_TANH && s->gelu != GPT_GELU_ERF)
        return an_fail(err, "model.gelu", "gelu must be \"tanh\" or \"erf\"");
    if (!(s->dropout >= 0.0f && s->dropout < 1.0f))
        return an_fail(err, "model.dropout", "dropout must be a probability in [0, 1), got %g",
                       (double)s->dropout);
    return 0;
}

size_t gpt_param_count(const gpt_shape *s)
{
    size_t C = (size_t)s->n_embd, n = (size_t)s->vocab_size * C + (size_t)s->block_size * C;
    for (int t = 0; t < GPT_TENSORS_PER_LAYER; t++) {
        if (LAYER_T[t].is_bias && !s->bias)
            continue;
        size_t rows = (size_t)LAYER_T[t].rows_mult * C;
        n += (size_t)s->n_layer * (LAYER_T[t].cols_mult ? rows * LAYER_T[t].cols_mult * C : rows);
    }
    return n + C * (s->bias ? 2 : 1);
}

/* Floats that hold n one-byte masks (each mask starts on a float). */
static size_t u8_floats(size_t n)
{
    return (n + sizeof(float) - 1) / sizeof(float);
}

/* Per layer per row: ln1 C + 2, qkv 3C, atty C, res2 C, ln2 C + 2, fch 4C, fch_gelu 4C,
 * res3 C; per layer per sequence NH·T·T attention weights. Dropout's masks: a byte per
 * attention weight and per element of the two branches' outputs. */
static size_t layer_floats(const gpt_shape *s, size_t N, size_t B)
{
    size_t C = (size_t)s->n_embd, T = (size_t)s->block_size, A = B * (size_t)s->n_head * T * T;
    size_t masks = s->dropout > 0 ? u8_floats(A) + 2 * u8_floats(N * C) : 0;
    return N * (16 * C + 4) + A + masks;
}

size_t gpt_arena_floats(const gpt_shape *s, int max_batch)
{
    return gpt_arena_floats_ex(s, max_batch, 0);
}

size_t gpt_arena_floats_ex(const gpt_shape *s, int max_batch, int checkpoint)
{
    size_t C = (size_t)s->n_embd, T = (size_t)s->block_size, B = (size_t)max_batch;
    size_t N = B * T, V = (size_t)s->vocab_size, L = (size_t)s->n_layer;
    size_t K = checkpoint > s->n_layer ? L : (size_t)(checkpoint > 0 ? checkpoint : 0);
    /* Checkpointing (carve): the largest segment's layers' activations (dropout's masks
     * included) shared by all segments, every segment's output (the next one's input) kept. */
    size_t S = K ? (size_t)actckpt_max_segment(s->n_layer, (int)K) : 0;
    size_t layers = K ? S * (layer_floats(s, N, B) - N * C) + (S - 1) * N * C + K * N * C
                      : L * layer_floats(s, N, B);
    size_t acts = layers + N * C /* encoded */ +
                  N * (C + 2) /* ln_f */ + N * V /* logits */;
    size_t scratch = N * C /* dres */ + N * 4 * C /* dbuf */ + N * 4 * C /* dbuf4 */ +
                     N * 3 * C /* dqkv */ + T * T /* attention */;
    /* Dropout: the embedding's mask, and a second T·T for the dropped attention weights. */
    size_t drop = s->dropout > 0 ? u8_floats(N * C) + T * T : 0;
    return acts + scratch + drop;
}

gpt_memory gpt_memory_estimate(const gpt_shape *s, int max_batch, int checkpoint,
                               int optim_floats_per_param)
{
    gpt_memory m;
    size_t np = gpt_param_count(s), f = sizeof(float);
    m.params = np * f;
    m.grads = np * f;
    m.optim = np * (size_t)optim_floats_per_param * f;
    m.activations = gpt_arena_floats_ex(s, max_batch, checkpoint) * f;
    m.saved = checkpoint ? gpt_arena_floats_ex(s, max_batch, 0) * f - m.activations : 0;
    m.total = m.params + m.grads + m.optim + m.activations;
    return m;
}

static void add_tensor(gpt *g, const char *name, size_t *off, int r, int c)
{
    gpt_tensor *t = &g->tensors[g->ntensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->off = *off;
    t->ndim = c ? 2 : 1;
    t->shape[0] = r;
    t->shape[1] = c;
    t->n = (size_t)r * (c ? (size_t)c : 1);
    *off += t->n;
}

static void layout(gpt *g)
{
    const gpt_shape *s = &g->s;
    int C = s->n_embd;
    size_t off = 0;
    char name[48];
    g->off_wte = off;
    add_tensor(g, "transformer.wte.weight", &off, s->vocab_size, C);
    g->off_wpe = off;
    add_tensor(g, "transformer.wpe.weight", &off, s->block_size, C);
    for (int l = 0; l < s->n_layer; l++)
        for (int t = 0; t < GPT_TENSORS_PER_LAYER; t++) {
            if (LAYER_T[t].is_bias && !s->bias) {
                g->loff[l][t] = NONE;
                continue;
            }
            snprintf(name, sizeof name, "transformer.h.%d.%s", l, LAYER_T[t].suffix);
            g->loff[l][t] = off;
            add_tensor(g, name, &off, LAYER_T[t].rows_mult * C, LAYER_T[t].cols_mult * C);
        }
    g->off_lnfw = off;
    add_tensor(g, "transformer.ln_f.weight", &off, C, 0);
    g->off_lnfb = NONE;
    if (s->bias) {
        g->off_lnfb = off;
        add_tensor(g, "transformer.ln_f.bias", &off, C, 0);
    }
    g->nparams = off;
}

static float *at(float *base, size_t off)
{
    return off == NONE ? NULL : base + off;
}

static gpt_layer_params layer_ptrs(const gpt *g, float *base, int l)
{
    const size_t *o = g->loff[l];
    return (gpt_layer_params){at(base, o[T_LN1W]), at(base, o[T_LN1B]), at(base, o[T_QKVW]),
                              at(base, o[T_QKVB]), at(base, o[T_APW]),  at(base, o[T_APB]),
                              at(base, o[T_LN2W]), at(base, o[T_LN2B]), at(base, o[T_FCW]),
                              at(base, o[T_FCB]),  at(base, o[T_FPW]),  at(base, o[T_FPB])};
}

/* One layer's activation buffers from *p onwards (res3 only if with_res3), with dropout's
 * masks when the shape has dropout (layer_floats counts the same). */
static void take_layer(gpt_layer_acts *a, float **p, const gpt_shape *s, size_t B,
                       int with_res3)
{
    size_t C = (size_t)s->n_embd, T = (size_t)s->block_size, N = B * T;
    size_t A = B * (size_t)s->n_head * T * T;
#define TAKE(ptr, count) do { (ptr) = *p; *p += (count); } while (0)
#define TAKE_U8(ptr, count) do { (ptr) = (uint8_t *)*p; *p += u8_floats(count); } while (0)
    TAKE(a->ln1, N * C);
    TAKE(a->ln1_mean, N);
    TAKE(a->ln1_rstd, N);
    TAKE(a->qkv, N * 3 * C);
    TAKE(a->att, A);
    TAKE(a->atty, N * C);
    TAKE(a->res2, N * C);
    TAKE(a->ln2, N * C);
    TAKE(a->ln2_mean, N);
    TAKE(a->ln2_rstd, N);
    TAKE(a->fch, N * 4 * C);
    TAKE(a->fch_gelu, N * 4 * C);
    a->res3 = NULL;
    if (with_res3)
        TAKE(a->res3, N * C);
    a->keep_att = a->keep_attn = a->keep_mlp = NULL;
    if (s->dropout > 0) {
        TAKE_U8(a->keep_att, A);
        TAKE_U8(a->keep_attn, N * C);
        TAKE_U8(a->keep_mlp, N * C);
    }
#undef TAKE_U8
#undef TAKE
}

static void carve(gpt *g)
{
    const gpt_shape *s = &g->s;
    size_t C = (size_t)s->n_embd, T = (size_t)s->block_size, B = (size_t)g->max_batch;
    size_t N = B * T;
    float *p = g->arena;
    int drop = s->dropout > 0;
    int L = s->n_layer, K = g->checkpoint;
    if (!K) {
        for (int l = 0; l < L; l++)
            take_layer(&g->la[l], &p, s, B, 1);
    } else {
        /* Checkpointing: place i of a segment (its i-th layer) has one set of buffers that
         * every segment's i-th layer uses, dropout's masks included (a recomputation draws
         * them again); a segment's output (the next one's input) is its own, kept for the
         * backward. Inner outputs lie in the place's set. */
        int S = actckpt_max_segment(L, K);
        gpt_layer_acts place[GPT_MAX_LAYERS];
        for (int i = 0; i < S; i++)
            take_layer(&place[i], &p, s, B, i < S - 1);
        for (int l = 0; l < L; l++) {
            int sg = actckpt_segment(l, L, K);
            g->la[l] = place[l - actckpt_start(sg, L, K)];
            if (l + 1 == actckpt_start(sg + 1, L, K)) {
                g->la[l].res3 = p;
                p += N * C;
            }
        }
    }
#define TAKE(ptr, count) do { (ptr) = p; p += (count); } while (0)
#define TAKE_U8(ptr, count) do { (ptr) = (uint8_t *)p; p += u8_floats(count); } while (0)
    TAKE(g->encoded, N * C);
    TAKE(g->lnf, N * C);
    TAKE(g->lnf_mean, N);
    TAKE(g->lnf_rstd, N);
    TAKE(g->logits, N * (size_t)s->vocab_size);
    TAKE(g->dres, N * C);
    TAKE(g->dbuf, N * 4 * C);
    TAKE(g->dbuf4, N * 4 * C);
    TAKE(g->dqkv, N * 3 * C);
    TAKE(g->scratch, T * T * (drop ? 2 : 1));
    if (drop)
        TAKE_U8(g->keep_emb, N * C);
#undef TAKE_U8
#undef TAKE
}

void gpt_init_default(gpt *g, uint64_t seed)
{
    float proj_std = 0.02f / sqrtf(2.0f * (float)g->s.n_layer);
    for (int i = 0; i < g->ntensors; i++) {
        const gpt_tensor *t = &g->tensors[i];
        float *p = g->params + t->off;
        if (t->ndim == 1) {
            /* LayerNorm weights 1, every bias 0. */
            float v = strstr(t->name, ".weight") ? 1.0f : 0.0f;
            for (size_t k = 0; k < t->n; k++)
                p[k] = v;
            continue;
        }
        float sd = strstr(t->name, "c_proj.weight") ? proj_std : 0.02f;
        rng r;
        rng_init(&r, seed, rng_stream_id(RNG_INIT, (uint64_t)i, 0, 0), 0);
        for (size_t k = 0; k < t->n; k++)
            p[k] = (float)(sd * rng_normal(&r));
    }
}

int gpt_create(gpt **out, const gpt_shape *s, uint64_t seed, int max_batch, an_err *err)
{
    return gpt_create_ex(out, s, seed, max_batch, 0, err);
}

int gpt_create_ex(gpt **out, const gpt_shape *s, uint64_t seed, int max_batch, int checkpoint,
                  an_err *err)
{
    *out = NULL;
    int rc = gpt_shape_check(s, err);
    if (rc)
        return rc;
    if (max_batch < 1)
        return an_fail(err, "batch_size", "batch size must be at least 1, got %d", max_batch);
    gpt *g = calloc(1, sizeof *g);
    if (!g)
        return an_failc(err, -ENOMEM, "", "out of memory for the model");
    g->s = *s;
    g->max_batch = max_batch;
    g->seed = seed;
    g->drop_thr = rng_drop_threshold(s->dropout);
    g->drop_scale = s->dropout > 0 ? 1.0f / (1.0f - s->dropout) : 1.0f;
    g->checkpoint = checkpoint < 0 ? 0 : checkpoint > s->n_layer ? s->n_layer : checkpoint;
    layout(g);
    g->arena_floats = gpt_arena_floats_ex(s, max_batch, g->checkpoint);
    g->params = calloc(g->nparams, sizeof(float));
    g->grads = calloc(g->nparams, sizeof(float));
    g->arena = calloc(g->arena_floats, sizeof(float));
    if (!g->params || !g->grads || !g->arena) {
        gpt_free(g);
        return an_failc(err, -ENOMEM, "", "out of memory for the model (%zu parameters, %zu "
                        "activation floats)", gpt_param_count(s),
                        gpt_arena_floats_ex(s, max_batch, checkpoint));
    }
    carve(g);
    gpt_init_default(g, seed);
    *out = g;
    return 0;
}

void gpt_free(gpt *g)
{
    if (!g)
        return;
    free(g->params);
    free(g->grads);
    free(g->arena);
    free(g->team_scratch);
    free(g);
}

const gpt_tensor *gpt_find(const gpt *g, const char *name)
{
    for (int i = 0; i < g->ntensors; i++)
        if (strcmp(g->tensors[i].name, name) == 0)
            return &g->tensors[i];
    return NULL;
}

/* The dropout mask of n elements at `place` (0 the embedding, 1 + 3·layer + 0 attention
 * weights, 1 attention output, 2 MLP output) for the last forward's (step, micro-batch). */
static void drop_mask(gpt *g, uint8_t *keep, size_t n, int place)
{
    /* On one thread of a team (the others wait at the end of the single). */
#pragma omp single
    rng_keep_mask(keep, n, g->seed,
                  rng_stream_id(RNG_GPT_DROPOUT, g->drop_step, g->drop_micro, (uint64_t)place),
                  g->drop_thr);
}

/* How many threads run a pass of N rows as one team (see gpt_layers.h): the job's threads
 * when the pass is large enough to share, else 1. bf16 jobs keep to 1: their products keep
 * per-thread state in gemm.c that only the calling thread should build up. */
static int team_threads(gpt *g, int N)
{
    int k = omp_get_max_threads();
    if (k < 2 || gemm_bf16() || (long)N * g->s.n_embd < SPAN_MIN)
        return 1;
    if (k != g->team_k) {
        size_t T = (size_t)g->s.block_size;
        float *s = realloc(g->team_scratch, (size_t)k * 2 * T * T * sizeof *s);
        if (!s)
            return 1;
        g->team_scratch = s;
        g->team_k = k;
    }
    return k;
}

/* The attention's scratch (a slice per thread in a team). */
static float *head_scratch(gpt *g)
{
    return gpt_in_team ? g->team_scratch : g->scratch;
}

/* Zeroes n floats, on the team when in one. */
static void zero(float *p, size_t n)
{
    size_t i0 = 0, i1 = n;
    if (gpt_in_team)
        span_blocks(n, 1024, &i0, &i1);
    memset(p + i0, 0, (i1 - i0) * sizeof *p);
    if (gpt_in_team) {
#pragma omp barrier
    }
}

/* Layer l from its input res into g->la[l] (g->dbuf and g->scratch are scratch), with the
 * masks of the last forward if it had dropout: activation checkpointing's recomputation
 * draws them again. */
static void layer_forward(gpt *g, int l, const float *res, int B, int T)
{
    int C = g->s.n_embd, NH = g->s.n_head, N = B * T, drop = g->last_drop;
    size_t NC = (size_t)N * C;
    gpt_layer_params w = layer_ptrs(g, g->params, l);
    gpt_layer_acts *a = &g->la[l];
    gpt_layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, res, w.ln1w, w.ln1b, N, C);
    gpt_linear_forward(a->qkv, a->ln1, w.qkvw, w.qkvb, N, C, 3 * C);
    /* att has room for a full block; for T < block_size it is used as [B,NH,T,T]. */
    if (drop) {
        drop_mask(g, a->keep_att, (size_t)B * NH * T * T, 1 + 3 * l);
        gpt_attention_forward_drop(a->atty, a->att, head_scratch(g), a->keep_att,
                                   g->drop_scale, a->qkv, B, T, C, NH);
    } else {
        gpt_attention_forward(a->atty, a->att, a->qkv, B, T, C, NH);
    }
    gpt_linear_forward(g->dbuf, a->atty, w.attprojw, w.attprojb, N, C, C);
    if (drop) {
        drop_mask(g, a->keep_attn, NC, 2 + 3 * l);
        gpt_dropout(g->dbuf, g->dbuf, a->keep_attn, g->drop_scale, NC);
    }
    gpt_residual_forward(a->res2, res, g->dbuf, N * C);
    gpt_layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->res2, w.ln2w, w.ln2b, N, C);
    gpt_linear_forward(a->fch, a->ln2, w.fcw, w.fcb, N, C, 4 * C);
    /* fch is needed later only for GELU's derivative: it is replaced by it. */
    gpt_gelu_forward_d(a->fch_gelu, a->fch, a->fch, N * 4 * C, g->s.gelu);
    gpt_linear_forward(g->dbuf, a->fch_gelu, w.fcprojw, w.fcprojb, N, 4 * C, C);
    if (drop) {
        drop_mask(g, a->keep_mlp, NC, 3 + 3 * l);
        gpt_dropout(g->dbuf, g->dbuf, a->keep_mlp, g->drop_scale, NC);
    }
    gpt_residual_forward(a->res3, a->res2, g->dbuf, N * C);
}

/* The forward's layers (on the calling thread, or by each thread of a team); returns the
 * mean loss when there are targets (each row's in g->dbuf, backward's scratch: N·4C floats). */
static double forward_pass(gpt *g, const int32_t *idx, const int32_t *targets, int B, int T)
{
    const gpt_shape *s = &g->s;
    int C = s->n_embd, V = s->vocab_size, N = B * T, drop = g->last_drop;
    float *P = g->params;
    gpt_encoder_forward(g->encoded, idx, P + g->off_wte, P + g->off_wpe, B, T, C);
    if (drop) {
        drop_mask(g, g->keep_emb, (size_t)N * C, 0);
        gpt_dropout(g->encoded, g->encoded, g->keep_emb, g->drop_scale, (size_t)N * C);
    }
    const float *res = g->encoded;
    for (int l = 0; l < s->n_layer; l++) {
        layer_forward(g, l, res, B, T);
        res = g->la[l].res3;
    }
    gpt_layernorm_forward(g->lnf, g->lnf_mean, g->lnf_rstd, res, P + g->off_lnfw,
                          at(P, g->off_lnfb), N, C);
    gpt_linear_forward(g->logits, g->lnf, P + g->off_wte, NULL, N, C, V);
    return targets ? gpt_crossentropy_forward(g->logits, targets, N, V, g->dbuf) : 0.0;
}

static int forward(gpt *g, const int32_t *idx, const int32_t *targets, int B, int T,
                   double *loss, int drop, uint64_t step, uint64_t micro)
{
    const gpt_shape *s = &g->s;
    int V = s->vocab_size, N = B * T;
    if (B < 1 || B > g->max_batch || T < 1 || T > s->block_size)
        return -EINVAL;
    for (int i = 0; i < N; i++)
        if (idx[i] < 0 || idx[i] >= V || (targets && (targets[i] < 0 || targets[i] >= V)))
            return -EINVAL;
    g->last_drop = drop;
    g->drop_step = step;
    g->drop_micro = micro;
    g->last_idx = idx;
    g->last_targets = targets;
    g->last_B = B;
    g->last_T = T;
    g->ckpt_cur = g->checkpoint - 1; /* the shared buffers hold the last segment */
    double l = 0;
    int k = team_threads(g, N);
    if (k > 1) {
#pragma omp parallel num_threads(k)
        {
            gpt_team_mark(1);
            double mine = forward_pass(g, idx, targets, B, T);
            if (omp_get_thread_num() == 0)
                l = mine;
            gpt_team_mark(0);
        }
    } else {
        l = forward_pass(g, idx, targets, B, T);
    }
    if (targets && loss)
        *loss = l;
    return 0;
}

int gpt_forward(gpt *g, const int32_t *idx, const int32_t *targets, int B, int T, double *loss)
{
    return forward(g, idx, targets, B, T, loss, 0, 0, 0);
}

int gpt_forward_train(gpt *g, const int32_t *idx, const int32_t *targets, int B, int T,
                      double *loss, uint64_t step, uint64_t micro)
{
    return forward(g, idx, targets, B, T, loss, g->s.dropout > 0, step, micro);
}

/* Checkpointing: makes the shared buffers hold the activations of layer l's segment,
 * recomputed from the segment's input (kept: the previous segment's output, or the encoding)
 * by the same operations on the same values as the forward. */
static void ckpt_need(gpt *g, int l)
{
    int L = g->s.n_layer, K = g->checkpoint;
    if (!K)
        return;
    int sg = actckpt_segment(l, L, K);
    if (sg == g->ckpt_cur)
        return;
    for (int j = actckpt_start(sg, L, K); j < actckpt_start(sg + 1, L, K); j++)
        layer_forward(g, j, j ? g->la[j - 1].res3 : g->encoded, g->last_B, g->last_T);
    /* In a team every thread has read ckpt_cur before the last layer's closing barrier. */
#pragma omp single
    g->ckpt_cur = sg;
}

static void backward_pass(gpt *g, float *grad, int accumulate, float dloss);

int gpt_backward(gpt *g, float *grad, int accumulate, float dloss)
{
    if (!g->last_targets)
        return -EINVAL;
    int k = team_threads(g, g->last_B * g->last_T);
    if (k > 1) {
#pragma omp parallel num_threads(k)
        {
            gpt_team_mark(1);
            backward_pass(g, grad, accumulate, dloss);
            gpt_team_mark(0);
        }
    } else {
        backward_pass(g, grad, accumulate, dloss);
    }
    return 0;
}

/* The backward's layers (on the calling thread, or by each thread of a team). */
static void backward_pass(gpt *g, float *grad, int accumulate, float dloss)
{
    const gpt_shape *s = &g->s;
    int B = g->last_B, T = g->last_T, C = s->n_embd, V = s->vocab_size, NH = s->n_head;
    int N = B * T, drop = g->last_drop;
    size_t NC = (size_t)N * C;
    float sc = g->drop_scale;
    float *P = g->params;
    if (!accumulate)
        zero(grad, g->nparams);
    gpt_crossentropy_backward(g->logits, g->last_targets, N, V, dloss);
    /* Tied output layer: its weight gradient goes to wte. */
    gpt_linear_backward(g->dbuf, 0, grad + g->off_wte, NULL, g->logits, g->lnf, P + g->off_wte,
                        N, C, V);
    const float *last = s->n_layer ? g->la[s->n_layer - 1].res3 : g->encoded;
    zero(g->dres, (size_t)N * C);
    gpt_layernorm_backward(g->dres, grad + g->off_lnfw, at(grad, g->off_lnfb), g->dbuf, last,
                           P + g->off_lnfw, g->lnf_mean, g->lnf_rstd, N, C);
    for (int l = s->n_layer - 1; l >= 0; l--) {
        gpt_layer_params w = layer_ptrs(g, P, l);
        gpt_layer_params d = layer_ptrs(g, grad, l);
        gpt_layer_acts *a = &g->la[l];
        const float *res = l ? g->la[l - 1].res3 : g->encoded;
        /* Checkpointing: the shared buffers must hold this layer's segment, its dropout masks
         * drawn again from the last forward's (step, micro-batch) (dbuf is free). */
        ckpt_need(g, l);
        /* dres is d/d(res3); res3 = res2 + drop(fc_proj(gelu(fc(ln2(res2))))). */
        const float *dmlp = g->dres;
        if (drop) {
            gpt_dropout(g->dbuf, g->dres, a->keep_mlp, sc, NC);
            dmlp = g->dbuf;
        }
        gpt_linear_backward(g->dbuf4, 0, d.fcprojw, d.fcprojb, dmlp, a->fch_gelu, w.fcprojw,
                            N, 4 * C, C);
        gpt_gelu_backward_d(g->dbuf4, a->fch, g->dbuf4, N * 4 * C);
        gpt_linear_backward(g->dbuf, 0, d.fcw, d.fcb, g->dbuf4, a->ln2, w.fcw, N, C, 4 * C);
        gpt_layernorm_backward(g->dres, d.ln2w, d.ln2b, g->dbuf, a->res2, w.ln2w, a->ln2_mean,
                               a->ln2_rstd, N, C);
        /* dres is now d/d(res2); res2 = res + drop(attn_proj(attention(qkv(ln1(res))))). */
        const float *dattn = g->dres;
        if (drop) {
            gpt_dropout(g->dbuf4, g->dres, a->keep_attn, sc, NC);
            dattn = g->dbuf4;
        }
        gpt_linear_backward(g->dbuf, 0, d.attprojw, d.attprojb, dattn, a->atty, w.attprojw, N,
                            C, C);
        if (drop)
            gpt_attention_backward_drop(g->dqkv, head_scratch(g), a->keep_att, sc, g->dbuf,
                                        a->qkv, a->att, B, T, C, NH);
        else
            gpt_attention_backward(g->dqkv, head_scratch(g), g->dbuf, a->qkv, a->att, B, T, C,
                                   NH);
        gpt_linear_backward(g->dbuf, 0, d.qkvw, d.qkvb, g->dqkv, a->ln1, w.qkvw, N, C, 3 * C);
        gpt_layernorm_backward(g->dres, d.ln1w, d.ln1b, g->dbuf, res, w.ln1w, a->ln1_mean,
                               a->ln1_rstd, N, C);
    }
    if (drop)
        gpt_dropout(g->dres, g->dres, g->keep_emb, sc, NC);
    gpt_encoder_backward(grad + g->off_wte, grad + g->off_wpe, g->dres, g->last_idx, B, T, C);
}
