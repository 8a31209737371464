/* memest — a job's memory estimated from its spec. */
#include "core/memest.h"

#include "core/config_gpt.h"
#include "core/data_idx.h"
#include "core/gemm.h"
#include "core/gpt.h"
#include "core/loss.h"
#include "core/model.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Mirrors train.c's VAL_BATCH: validation and predictions run in batches of up to this many
 * rows. */
#define MEM_VAL_BATCH 256
/* Mirrors optim.c's LAMB_STORE_BYTES: Lamb keeps one tensor's update direction up to this. */
#define MEM_LAMB_STORE ((uint64_t)4 << 20)

/* Bytes malloc takes for one cJSON node: the struct, glibc's size word, 16-byte chunks. */
static uint64_t json_node_bytes(void)
{
    uint64_t b = (sizeof(cJSON) + sizeof(size_t) + 15) / 16 * 16;
    return b < 32 ? 32 : b;
}

/* Nodes of a JSON tree (strings' texts are not counted: inline data are numbers). */
static uint64_t json_nodes(const cJSON *j)
{
    uint64_t n = 0;
    for (; j; j = j->next)
        n += 1 + json_nodes(j->child);
    return n;
}

/* Data given in the spec itself (inline rows, an inline corpus) are held as JSON: while the
 * spec is parsed, in the parsed tree, the data spec's copy and the normalized spec's, and
 * two of them for the whole run (core/config.c). */
#define MEM_SPEC_COPIES 3

static uint64_t spec_data_bytes(const data_spec *d)
{
    uint64_t nodes = 0, text = 0;
    if (d->x)
        nodes += json_nodes(d->x->child) + 1;
    if (d->y)
        nodes += json_nodes(d->y->child) + 1;
    if (d->text && cJSON_IsString(d->text))
        text = strlen(d->text->valuestring) + 1;
    return MEM_SPEC_COPIES * (nodes * json_node_bytes() + text);
}

/* The packed Fashion-MNIST files (jobs/fashion.c: the four IDX files decompressed after a
 * 40-byte header), held while the images are converted to float32. */
#define MEM_FASHION_PACKED                                                                     \
    (40 + (16 + (uint64_t)FASHION_ROWS * FASHION_FEATURES) + (8 + (uint64_t)FASHION_ROWS) +      \
     (16 + (uint64_t)FASHION_TEST_ROWS * FASHION_FEATURES) + (8 + (uint64_t)FASHION_TEST_ROWS))

/* The data set at its peak (core/data.c, data_split.c, data_idx.c): every row's features and
 * targets in float32 (class indices one float), for CSV sources also the features in double
 * until they are standardised; the copy of the validation rows taken while the set is split;
 * the split's or the loader's 4-byte row order. Fashion-MNIST holds its packed files while it
 * is converted, and its test split when validation uses it. */
static uint64_t table_data_bytes(const job_spec *s, int64_t rows, int64_t val)
{
    const model_spec *m = &s->model;
    int fashion = data_is_fashion(&s->data);
    int csv = !fashion && (s->data.type == DATA_DATASET || s->data.type == DATA_BUILTIN);
    uint64_t yd = (uint64_t)(s->loss == LOSS_MEAN ? m->outputs
                                                  : loss_target_width(s->loss, m->outputs));
    uint64_t row = 4 * (uint64_t)m->inputs + 4 * yd + (csv ? 8 * (uint64_t)m->inputs : 0);
    uint64_t r = (uint64_t)rows, b = r * row + 4 * r;
    if (fashion && s->val_split_test)
        b += (uint64_t)FASHION_TEST_ROWS * row;
    else
        b += (uint64_t)val * row;
    if (fashion)
        b += MEM_FASHION_PACKED;
    return b;
}

static const char *optim_name(int type)
{
    switch (type) {
    case OPTIM_ADAM: return "Adam";
    case OPTIM_ADAMW: return "AdamW";
    case OPTIM_LAMB: return "Lamb";
    case OPTIM_LION: return "Lion";
    case OPTIM_ADAGRAD: return "Adagrad";
    case OPTIM_SGD: return "SGD";
    case OPTIM_RMSPROP: return "RMSprop";
    default: return "optimizer";
    }
}

/* Per-parameter state buffers of the optimizer (as optim.c's plan lays them out). */
static int optim_buffers(const job_spec *s)
{
    const optim_cfg *c = &s->optim;
    /* every param group takes the optimizer's momentum, or the scheduler's */
    int momentum = c->momentum != 0 || c->momentum_cycled;
    switch (c->type) {
    case OPTIM_ADAM:
    case OPTIM_ADAMW: return 2 + (c->amsgrad && c->torch_adam);
    case OPTIM_LAMB: return 2;
    case OPTIM_LION: return 1;
    case OPTIM_ADAGRAD: return 1;
    case OPTIM_SGD: return momentum;
    case OPTIM_RMSPROP: return 1 + (c->centered != 0) + momentum;
    default: return 2;
    }
}

static int ilog2i(int64_t v)
{
    int k = 0;
    while (v > 1) {
        v >>= 1;
        k++;
    }
    return k;
}

/* bf16 products (core/gemm.c) keep on the job's thread what they need between calls. A gpt
 * pass multiplies through five linear layers (in → out: qkv C → 3C, the attention's
 * projection C → C, the MLP's C → 4C and 4C → C, the tied head C → V), each a forward (N·in
 * and out·in operands), an input gradient (N·out, out·in) and a weight gradient (N·out,
 * N·in), and per head the attention's T·T weights by a T·hs slice of a row of 3C (or C).
 * Where oneDNN has a bf16 matmul, the largest product's two operands rounded and packed (2
 * bytes an element) and a primitive per product shape, up to GEMM_BF16_CACHE; elsewhere the
 * rounded operands as float32, each as long as it lies in memory (a head's slice spans its
 * rows of 3C), the two buffers each grown to its largest. */
#define MEM_BF16_SHAPES 21 /* the primitives a gpt step makes: 15 linear, 6 attention */
/* A primitive's own memory (its descriptor, kernels' state) and its scratchpad, which oneDNN
 * sizes per thread. Measured on oneDNN 2.6's AVX512-BF16 matmul: 1.2 to 5.7 MiB for the 21 at
 * one thread (n_embd 64 to 768), 0.5 to 3.8 MiB more a thread; these are in the middle. */
#define MEM_BF16_PRIM ((uint64_t)64 << 10)
#define MEM_BF16_PRIM_THREAD ((uint64_t)96 << 10)

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

uint64_t mem_gpt_bf16_operands(const gpt_shape *g, int batch, int native)
{
    uint64_t C = (uint64_t)g->n_embd, T = (uint64_t)g->block_size, N = (uint64_t)batch * T;
    uint64_t hs = C / (uint64_t)g->n_head, V = (uint64_t)g->vocab_size;
    uint64_t slice = native ? T * hs : (T - 1) * 3 * C + hs;
    const uint64_t in[] = {C, C, C, 4 * C, C}, out[] = {3 * C, C, 4 * C, C, V};
    /* each product's first and second operand: the attention's two, then per layer 3 */
    uint64_t opa[2 + 3 * 5] = {slice, T * T}, opb[2 + 3 * 5] = {slice, slice};
    int n = 2;
    for (int i = 0; i < 5; i++, n += 3) {
        opa[n] = N * in[i], opb[n] = out[i] * in[i];
        opa[n + 1] = N * out[i], opb[n + 1] = out[i] * in[i];
        opa[n + 2] = N * out[i], opb[n + 2] = N * in[i];
    }
    uint64_t most = 0, a = 0, b = 0;
    for (int i = 0; i < n; i++) {
        most = max_u64(most, opa[i] + opb[i]);
        a = max_u64(a, opa[i]);
        b = max_u64(b, opb[i]);
    }
    return native ? 2 * most : 4 * (a + b);
}

static uint64_t gpt_bf16_bytes(const gpt_shape *g, int batch, int threads)
{
    int native = gemm_bf16_native();
    uint64_t prims = MEM_BF16_SHAPES < GEMM_BF16_CACHE ? MEM_BF16_SHAPES : GEMM_BF16_CACHE;
    uint64_t per = MEM_BF16_PRIM + MEM_BF16_PRIM_THREAD * (uint64_t)(threads > 0 ? threads : 1);
    return mem_gpt_bf16_operands(g, batch, native) + (native ? prims * per : 0);
}

/* A gpt job: the model's own estimate by part (gpt_memory_estimate: it is what gpt_create
 * allocates, dropout's masks and activation checkpointing included: the shape carries
 * model.dropout), the corpus as int32 tokens when the spec holds it. An uploaded corpus whose
 * vocabulary is not known yet counts 256 tokens. */
static void gpt_job_memory(const job_spec *s, uint64_t bytes, mem_estimate *out)
{
    gpt_shape g;
    cfg_gpt_shape(&s->model, &g);
    if (!g.vocab_size)
        g.vocab_size = 256;
    int checkpoint = s->act_ckpt;
    int micro = (int)(s->micro_batch > 0 ? s->micro_batch : 1);
    gpt_memory m = gpt_memory_estimate(&g, micro, checkpoint, optim_buffers(s));
    out->params = m.params;
    out->grads = m.grads;
    out->optim = m.optim;
    /* the accumulation tree's extra gradient buffers (train_gpt.c, as train.c's) */
    out->accum = m.grads * (uint64_t)ilog2i(s->grad_accum);
    out->activations = m.activations;
    out->act_saved = m.saved;
    if (s->bf16)
        out->scratch = gpt_bf16_bytes(&g, micro, s->threads);
    size_t len = 0;
    if (cfg_text_corpus(&s->data, &len))
        out->data = 4 * (uint64_t)len + 4 * (uint64_t)len / (uint64_t)g.block_size;
    else if (bytes) /* an uploaded corpus: its text, and at most a token a byte */
        out->data = bytes + 4 * bytes + 4 * bytes / (uint64_t)g.block_size;
    out->data += spec_data_bytes(&s->data);
    out->total = out->params + out->grads + out->optim + out->accum + out->activations +
                 out->scratch + out->data;
}

void job_spec_memory(const job_spec *s, int64_t rows, mem_estimate *out)
{
    job_spec_memory_sized(s, rows, 0, out);
}

void job_spec_memory_sized(const job_spec *s, int64_t rows, uint64_t bytes, mem_estimate *out)
{
    memset(out, 0, sizeof *out);
    const model_spec *m = &s->model;
    if (m->type == MODEL_GPT) {
        out->optim_name = optim_name(s->optim.type);
        gpt_job_memory(s, bytes, out);
        return;
    }
    uint64_t n = (uint64_t)model_spec_params(m);
    out->params = 4 * n;
    out->grads = 4 * n;
    out->optim_name = optim_name(s->optim.type);
    out->optim = 4 * n * (uint64_t)optim_buffers(s);
    if (s->optim.type == OPTIM_LAMB) {
        spec_tensor t[CFG_MAX_TENSORS];
        int nt = model_spec_tensors(m, t);
        uint64_t widest = 0;
        for (int i = 0; i < nt; i++) {
            uint64_t e = (uint64_t)t[i].shape[0] * (uint64_t)(t[i].rank == 2 ? t[i].shape[1] : 1);
            if (4 * e <= MEM_LAMB_STORE && e > widest)
                widest = e;
        }
        out->optim += 4 * widest;
    }
    out->accum = 4 * n * (uint64_t)ilog2i(s->grad_accum);

    if (rows < 0)
        rows = job_spec_data_samples(s);
    int64_t val = 0;
    if (rows > 0)
        job_spec_train_samples(s, rows, &val);

    /* Activations of the largest batch, the arena model.c allocates (model_arena.c: pre- and
     * post-activation and the dropout mask per hidden layer, or with checkpointing only the
     * kept ones and one segment's, the output layer's pre, two backward buffers and a
     * bias-gradient row of the widest layer); then train.c's step buffers (a micro-batch of
     * inputs and targets, the output gradient). */
    uint64_t micro = (uint64_t)(s->micro_batch > 0 ? s->micro_batch : 1);
    uint64_t vb = (uint64_t)(val < MEM_VAL_BATCH ? val : MEM_VAL_BATCH);
    uint64_t B = micro > vb ? micro : vb;
    int dims[CFG_MAX_HIDDEN + 2], nl = 0;
    dims[nl++] = m->inputs;
    for (int h = 0; m->type == MODEL_MLP && h < m->nhidden; h++)
        dims[nl++] = m->hidden[h];
    dims[nl++] = m->outputs;
    uint64_t act = model_act_floats(dims, nl - 1, (int)B, m->dropout > 0, s->act_ckpt);
    if (s->act_ckpt)
        out->act_saved = 4 * (model_act_floats(dims, nl - 1, (int)B, m->dropout > 0, 0) - act);
    act += micro * (uint64_t)m->inputs + micro * (uint64_t)m->outputs + B * (uint64_t)m->outputs;
    out->activations = 4 * act;

    if (rows > 0)
        out->data = table_data_bytes(s, rows, val);
    /* An uploaded CSV while it is read (core/csv.c), its text held throughout: the parse
     * holds the unquoted copy of the fields, each field's offset and then its pointer (8
     * bytes each, the model's columns at least) and a line number a row (two while the
     * offsets become pointers); then the pointers and line numbers stay until the rows are
     * built. The peak is the larger of that and the rows' own. */
    if (rows > 0 && bytes && s->data.type == DATA_DATASET) {
        uint64_t r = (uint64_t)rows, fields = r * ((uint64_t)m->inputs + 1);
        uint64_t parse = 2 * bytes + 16 * fields + 16 * r;
        uint64_t build = 2 * bytes + 8 * fields + 8 * r + out->data;
        uint64_t split = bytes + out->data;
        out->data = parse > build ? parse : build;
        if (split > out->data)
            out->data = split;
    }
    out->data += spec_data_bytes(&s->data);
    out->total = out->params + out->grads + out->optim + out->accum + out->activations +
                 out->data;
}

char *mem_bytes_text(uint64_t bytes, char *buf, size_t size)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    int u = 0;
    double v = (double)bytes;
    while (v >= 1024 && u < 6) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, size, "%llu B", (unsigned long long)bytes);
    else if (v == (double)(uint64_t)v)
        snprintf(buf, size, "%.0f %s", v, units[u]);
    else if (v < 9.95)
        snprintf(buf, size, "%.1f %s", v, units[u]);
    else
        snprintf(buf, size, "%.0f %s", v, units[u]);
    return buf;
}

void mem_estimate_ranks(const job_spec *s, int here, mem_estimate *m)
{
    if (s->world_size <= 1)
        return;
    m->exchange = m->grads;
    m->rank_total = m->total + m->exchange;
    m->ranks = here < 1 ? 1 : here;
    m->total = m->rank_total * (uint64_t)m->ranks;
}

char *mem_estimate_text(const mem_estimate *m, char *buf, size_t size)
{
    char state[48];
    snprintf(state, sizeof state, "%s state", m->optim_name ? m->optim_name : "optimizer");
    typedef struct { const char *name; uint64_t v; } mem_part;
    mem_part part[] = {
        {"parameters", m->params},           {"gradients", m->grads},
        {state, m->optim},                   {"gradient accumulation", m->accum},
        {"activations", m->activations},     {"bf16 product scratch", m->scratch},
        {"data", m->data},
        {"exchange buffers", m->exchange},
    };
    int np = (int)(sizeof part / sizeof part[0]);
    /* Largest first; a stable insertion sort keeps the order above among equals. */
    for (int i = 1; i < np; i++)
        for (int j = i; j > 0 && part[j].v > part[j - 1].v; j--) {
            mem_part t = part[j];
            part[j] = part[j - 1];
            part[j - 1] = t;
        }
    char num[32], one[32];
    size_t off = (size_t)snprintf(buf, size, "about %s (", mem_bytes_text(m->total, num, sizeof num));
    if (m->ranks > 1 && off < size)
        off += (size_t)snprintf(buf + off, size - off, "%d ranks on this machine, each about %s: ",
                                m->ranks, mem_bytes_text(m->rank_total, one, sizeof one));
    else if (m->exchange && off < size) /* the ranks run on other hosts: one is counted */
        off += (size_t)snprintf(buf + off, size - off, "one rank: ");
    int first = 1;
    for (int i = 0; i < np && off < size; i++) {
        if (!part[i].v)
            continue;
        off += (size_t)snprintf(buf + off, size - off, "%s%s %s", first ? "" : ", ", part[i].name,
                                mem_bytes_text(part[i].v, num, sizeof num));
        first = 0;
    }
    if (m->act_saved && off < size)
        off += (size_t)snprintf(buf + off, size - off, "; activation checkpointing saves %s",
                                mem_bytes_text(m->act_saved, num, sizeof num));
    if (off < size)
        snprintf(buf + off, size - off, ")");
    return buf;
}

int mem_parse_size(const char *text, uint64_t *out)
{
    if (!text || !isdigit((unsigned char)text[0]))
        return -EINVAL;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno)
        return -EINVAL;
    int shift = 0;
    if (*end) {
        const char *u = "KMGT", *p = strchr(u, toupper((unsigned char)*end));
        if (!p || !*p)
            return -EINVAL;
        shift = 10 * (int)(p - u + 1);
        end++;
        if (strcmp(end, "") != 0 && strcmp(end, "B") != 0 && strcmp(end, "iB") != 0 &&
            strcmp(end, "b") != 0 && strcmp(end, "ib") != 0)
            return -EINVAL;
    }
    if (v > ((unsigned long long)1 << 62) >> shift)
        return -EINVAL;
    *out = (uint64_t)v << shift;
    return 0;
}
