/* memest — how much memory a job will take, worked out from its spec before it is accepted.
 *
 * The estimate follows what train_create allocates (core/train.c, model.c, optim.c, data.c):
 * float32 parameters and gradients, the optimizer's per-parameter state (Adam/AdamW/Lamb two
 * buffers, AMSGrad three, Lion one, Adagrad one, SGD one with momentum, RMSprop one to three),
 * the gradient-accumulation tree (log2 of the accumulation steps extra gradient buffers), the
 * forward/backward buffers of the largest batch (a micro-batch or a validation batch), and
 * the data set at its peak while it is loaded (features and targets as float32, class indices
 * one float a row; CSV sources also the features in double until they are standardised; the
 * validation rows' copy taken while it is split; the row order; Fashion-MNIST's packed files;
 * data given inline in the spec as the three JSON copies the parse holds), and for a bf16 gpt
 * job what its products keep (the largest product's operands in bf16, oneDNN's primitives and
 * their per-thread scratchpads). It is an estimate
 * of the peak, not an exact count: fixed parts (a few MiB: oneDNN's kernels, the runtime) are
 * left out. */
#ifndef ANNEALD_MEMEST_H
#define ANNEALD_MEMEST_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/gpt.h"

/* A job's memory, in bytes, by part. */
typedef struct mem_estimate {
    uint64_t params;              /* parameters (float32) */
    uint64_t grads;               /* gradients (float32) */
    uint64_t optim;               /* optimizer state */
    uint64_t accum;               /* extra gradient-accumulation buffers */
    uint64_t activations;         /* forward/backward and step buffers of the largest batch */
    uint64_t scratch;             /* a bf16 gpt job's products: their bf16 operands and
                                     oneDNN primitives (0 otherwise) */
    uint64_t data;                /* the data set in memory; 0 when its size is unknown */
    uint64_t total;               /* the sum */
    uint64_t act_saved;           /* activation memory that activation checkpointing saves
                                     (activations are counted with it; 0 without it) */
    const char *optim_name;       /* "Adam", "SGD", … (names the optimizer-state part) */
    /* A job of several ranks (mem_estimate_ranks): the parts above are one rank's, `exchange`
     * its buffers of the gradient exchange, and `total` covers `ranks` of them. */
    uint64_t exchange;
    int ranks;                    /* ranks counted in total (0 or 1: one process) */
    uint64_t rank_total;          /* one rank's bytes */
} mem_estimate;

/* Estimates the memory of a job with a validated spec. `rows` is the data set's row count
 * when the caller knows it (an uploaded data set), or -1 to take it from the spec (synthetic,
 * inline, builtin; an uploaded data set then counts 0 for data). Never fails. */
void job_spec_memory(const job_spec *s, int64_t rows, mem_estimate *out);

/* The same with the uploaded data set's size in bytes (a CSV or a text corpus; 0 when it is
 * unknown or there is none): a CSV is held as its text, its parsed fields and a pointer to
 * each while it is read, a corpus as its text and its tokens. */
void job_spec_memory_sized(const job_spec *s, int64_t rows, uint64_t bytes, mem_estimate *out);

/* A job of several ranks (world_size > 1): each rank holds what job_spec_memory counted (its
 * share of the batch, the whole model and data) and receives a slice of the gradient from
 * every rank (as many bytes as the gradient). `here` of them run on this machine (all of them
 * unless the ranks go to other hosts): total becomes theirs. Nothing changes at world_size 1. */
void mem_estimate_ranks(const job_spec *s, int here, mem_estimate *m);

/* The bf16 operand scratch of a gpt's products for `batch` sequences (core/gemm.c): where
 * oneDNN has a bf16 matmul (native), two bytes an element of the largest product's two
 * operands; elsewhere the largest first and largest second operand as float32. Part of
 * `scratch`. */
uint64_t mem_gpt_bf16_operands(const gpt_shape *g, int batch, int native);

/* Writes `bytes` for people: "512 B", "3.1 KiB", "37.2 GiB", "12 GiB" (one decimal unless it is
 * a whole number). Returns buf. */
char *mem_bytes_text(uint64_t bytes, char *buf, size_t size);

/* Writes "about 37.2 GiB (parameters 3.1 GiB, gradients 3.1 GiB, Adam state 6.2 GiB, …)" —
 * the parts that are not zero, largest first, then, with activation checkpointing, "; activation
 * checkpointing saves 1.2 GiB" before the ")". Returns buf. */
char *mem_estimate_text(const mem_estimate *m, char *buf, size_t size);

/* Parses a size: a whole number of bytes with an optional binary suffix K, M, G or T (also
 * KiB/KB, MiB/MB, …: all powers of 1024), e.g. "512M", "4G", "1073741824". -EINVAL for
 * anything else, a fraction, or a value above 2^62. */
int mem_parse_size(const char *text, uint64_t *out);

#endif
