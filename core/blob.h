/* blob — the framing of a checkpoint blob, shared by the training state (train.c), which
 * writes and restores it whole, and by inference (infer.c), which reads only the model's
 * parameters out of it.
 *
 * Format (little-endian, all lengths in bytes):
 *   header  "ANNEALD\0", u32 version, u32 section count, u64 layout hash, u64 model hash,
 *           u64 total length of the blob
 *   section u32 id, u32 0, u64 payload length, payload
 *   trailer u64 FNV-1a-64 of every byte before it
 * The layout hash covers what decides the shape of the state (model shape and activation,
 * optimizer type, dtype, groups and which tensor belongs to which group); the model hash only
 * the model. */
#ifndef ANNEALD_BLOB_H
#define ANNEALD_BLOB_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/model.h"
#include "util/util.h"

#define BLOB_MAGIC "ANNEALD"   /* 8 bytes with its NUL */
#define BLOB_VERSION 1u
#define BLOB_HEADER 40u
#define SECTION_HEADER 16u
#define BLOB_TRAILER 8u

/* Stored in checkpoints: append only, never renumber. */
enum section_id {
    SEC_COUNTERS = 1, /* i64 steps done, i64 samples seen */
    SEC_CURSOR = 2,   /* i64 epoch, i64 position */
    SEC_PARAMS = 3,   /* nparams float32 */
    SEC_OPTIM = 4,    /* optim_save */
    SEC_SCHED = 5,    /* sched_save */
    SEC_LRFIND = 6,   /* optional, lr_finder jobs only: f64 avg, bpow, best, smoothed; i64 n */
    SEC_INPUT_STATS = 7, /* optional, jobs that standardise their inputs: u64 d; d f64 means;
                            d f64 standard deviations (what predict applies to raw inputs) */
    SEC_VOCAB = 8,    /* optional, gpt jobs: the vocabulary as JSON text (text_vocab_json),
                         so generation needs nothing but the checkpoint and the spec */
    SEC_LOSSSCALE = 9, /* optional, fp16 jobs: f64 cur_scale; i64 cur_iter,
                          last_overflow_iter, cur_hysteresis, skipped steps */
    SEC_COUNT = 9
};
/* Sections 1..SEC_REQUIRED are in every blob; the others only where the job has them. */
#define SEC_REQUIRED 5

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

/* FNV-1a-64 of n bytes, continuing from h (FNV_OFFSET to start). */
/* Writes a section header (id, reserved 0, length) at w; returns where its bytes go. */
unsigned char *blob_put_section(unsigned char *w, uint32_t id, uint64_t len);

/* A buffer of at least `total` bytes for a blob: the caller's *buf when its *cap holds it,
 * else a new one (the old freed). NULL when out of memory (*buf is then NULL, *cap 0). */
unsigned char *blob_reserve(void **buf, size_t *cap, size_t total);

uint64_t blob_fnv1a(uint64_t h, const void *data, size_t n);
/* The same over the 8 little-endian bytes of v. */
uint64_t blob_fnv_i64(uint64_t h, int64_t v);

/* What identifies a model's parameter layout: type, layer widths, activation, size. */
uint64_t blob_model_hash(const model *m);

/* A checked view of a blob: where each section's payload starts and how long it is. */
typedef struct blob_view {
    const unsigned char *sec[SEC_COUNT + 1];
    uint64_t len[SEC_COUNT + 1];
    uint64_t layout_hash, model_hash;
} blob_view;

/* Checks the framing of a blob (magic, version, length, checksum, sections within bounds,
 * each known section at most once, the required ones present). Reads nothing past buf + len. */
int blob_parse(const void *buf, size_t len, blob_view *v, an_err *err);

struct optim;
struct sched;
/* Restores the optimizer and scheduler sections of a parsed blob, both or neither: each load
 * checks before it changes anything, but the second may fail after the first succeeded, so
 * the present states are kept and put back then. -ENOMEM, or the failing load's code. */
int blob_load_optim_sched(const blob_view *v, struct optim *o, struct sched *s, an_err *err);

/* The steps done recorded in a parsed blob's counters, or -1 when the section is malformed. */
int64_t blob_steps(const blob_view *v);

#endif
