/* rng — counter-based random numbers (Philox-4x32-10).
 *
 * Every random number of a job is a pure function of (seed, stream id, counter): there is no
 * hidden generator state to checkpoint, so a resumed run draws exactly what an uninterrupted
 * run would. A stream id names what the numbers are for (rng_stream_id: a purpose plus up to
 * three integers, e.g. (RNG_DROPOUT, step, micro-batch, layer)); the counter walks through
 * that stream, four 32-bit words per Philox block.
 *
 * The `rng` struct is only a cursor over one stream (its position is `ctr`); re-creating it
 * with the same arguments and counter reproduces the same numbers. */
#ifndef ANNEALD_RNG_H
#define ANNEALD_RNG_H

#include <stddef.h>
#include <stdint.h>

/* Purposes of streams. Stored implicitly in every checkpointed run: append only. */
enum rng_purpose {
    RNG_INIT = 1,    /* initial weights: (tensor index) */
    RNG_SHUFFLE = 2, /* per-epoch permutation: (epoch) */
    RNG_DROPOUT = 3, /* dropout masks: (step, micro-batch, layer) */
    RNG_DATA = 4,    /* synthetic data: (part) */
    RNG_SPLIT = 5,   /* train/validation split */
    RNG_SAMPLE = 6,  /* random text windows: (step, micro-batch, row) */
    RNG_GENERATE = 7, /* generation: (token index) */
    RNG_GPT_DROPOUT = 8, /* gpt dropout masks: (step, micro-batch, site) (gpt.c numbers sites) */
};

/* A cursor over one stream. */
typedef struct rng {
    uint32_t key[2];  /* the seed */
    uint64_t stream;  /* stream id (counter words 2..3) */
    uint64_t ctr;     /* next block to generate (counter words 0..1) */
    uint32_t buf[4];  /* the current block */
    int left;         /* words of buf not yet used (taken from the end) */
} rng;

/* One Philox-4x32-10 block: out = philox(key, ctr). */
void rng_philox(const uint32_t key[2], const uint32_t ctr[4], uint32_t out[4]);

/* The block at (seed, stream, counter): the pure function everything else is built on. */
void rng_block(uint64_t seed, uint64_t stream, uint64_t counter, uint32_t out[4]);

/* A 64-bit stream id for a purpose and three integers (unused ones 0). Distinct arguments give
 * distinct ids except with negligible probability (a 64-bit hash). */
uint64_t rng_stream_id(uint32_t purpose, uint64_t a, uint64_t b, uint64_t c);

/* Positions `r` at block `counter` of stream `stream` under `seed`. */
void rng_init(rng *r, uint64_t seed, uint64_t stream, uint64_t counter);

/* Uniform 32 / 64 random bits. */
uint32_t rng_u32(rng *r);
uint64_t rng_u64(rng *r);

/* Uniform float in [0, 1) with 24 random bits; uniform double in [0, 1) with 53. */
float rng_uniform_f(rng *r);
double rng_uniform(rng *r);

/* Uniform double in [lo, hi). */
double rng_range(rng *r, double lo, double hi);

/* Standard normal (Box-Muller; two uniforms per call, no cached second value so that the
 * cursor position alone is the state). */
double rng_normal(rng *r);

/* Unbiased integer in [0, n), n >= 1 (rejection sampling). */
uint64_t rng_below(rng *r, uint64_t n);

/* The threshold of a dropout probability p in [0, 1): an element is dropped when its 16-bit
 * draw is below it, which happens with probability thr / 2^16 (p rounded to a multiple of
 * 2^-16, within 8e-6 of it; 16 bits rather than 32 halve the Philox work of a mask). */
uint32_t rng_drop_threshold(double p);

/* keep[i] = 0 (dropped) or 1 for elements 0..n-1 of stream `stream` under `seed`: element i
 * is the 16-bit half i % 2 (0 the low one) of word (i % 8) / 2 of block i / 8, dropped if
 * below thr. A pure function of (seed, stream, i), so a mask can be regenerated whenever it
 * is needed again (resume, activation checkpointing). 32 blocks at a time, in AVX2 vectors
 * when the build targets them (about 0.4 ns per element here, a fourth of scalar Philox). */
void rng_keep_mask(uint8_t *keep, size_t n, uint64_t seed, uint64_t stream, uint32_t thr);

/* perm[0..n) = a uniformly random permutation of 0..n-1, a pure function of (seed, epoch):
 * Fisher-Yates driven by stream (RNG_SHUFFLE, epoch). */
void rng_permutation(uint32_t *perm, uint32_t n, uint64_t seed, uint64_t epoch);

#endif
