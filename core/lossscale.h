/* lossscale — DeepSpeed's fp16 loss scaler (DEEPSPEED.md, "Additions (second round)"):
 * dynamic (DynamicLossScaler at commit 18fd4c97: the `stable = iters since the last overflow
 * − 1` rule, doubling after loss_scale_window clean steps, halving after `hysteresis`
 * overflows) or fixed (`loss_scale` > 0: never changes). Pure state and arithmetic; the
 * training loop multiplies the loss by lossscale_scale(), checks the gradients with
 * lossscale_overflow(), skips the optimizer and scheduler step on overflow, and calls
 * lossscale_update() once per optimizer step. */
#ifndef ANNEALD_LOSSSCALE_H
#define ANNEALD_LOSSSCALE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/err.h"

/* x as IEEE half precision (binary16) holds it, back as a float: rounded to nearest even,
 * beyond 65504 an infinity (the overflow the scaler watches for), below 2^-14 a multiple of
 * 2^-24 (a subnormal) or zero. In bits, for compilers without _Float16 (clang before 15 on
 * x86: the fuzzing build). */
static inline float lossscale_half_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    uint32_t sign = u & 0x80000000u, a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) /* infinity or NaN */
        return x;
    if (a < 0x38800000u) { /* below 2^-14: x * 2^24 is exact, rintf rounds to even */
        float r = rintf(fabsf(x) * 16777216.0f) * (1.0f / 16777216.0f);
        return sign ? -r : r;
    }
    a += 0x0fffu + ((a >> 13) & 1u); /* 10 mantissa bits, ties to even */
    a &= ~0x1fffu;
    if (a >= 0x47800000u) /* 65520 and up round past 65504 */
        a = 0x7f800000u;
    u = sign | a;
    memcpy(&x, &u, sizeof x);
    return x;
}

static inline float lossscale_half(float x)
{
#ifdef __FLT16_MANT_DIG__
    return (float)(_Float16)x; /* one instruction with F16C */
#else
    return lossscale_half_bits(x);
#endif
}

typedef struct lossscale_cfg {
    double loss_scale;          /* > 0: fixed scale; 0: dynamic */
    int initial_scale_power;    /* 16 */
    int64_t loss_scale_window;  /* 1000 */
    int hysteresis;             /* 2 */
    int consecutive_hysteresis; /* 0 */
    double min_loss_scale;      /* 1 */
} lossscale_cfg;

typedef struct lossscale {
    lossscale_cfg cfg;
    /* The five numbers of DeepSpeed's state (all saved in a checkpoint). */
    double cur_scale;
    int64_t cur_iter;
    int64_t last_overflow_iter;
    int cur_hysteresis;
    int64_t skipped;            /* overflowed (skipped) steps so far */
} lossscale;

/* DeepSpeed's defaults. */
lossscale_cfg lossscale_defaults(void);

void lossscale_init(lossscale *ls, const lossscale_cfg *cfg);

static inline double lossscale_scale(const lossscale *ls)
{
    return ls->cur_scale;
}

/* 1 if any of the n gradients is inf or NaN. */
int lossscale_overflow(const float *grads, size_t n);

/* After a step whose gradients did (overflow = 1) or did not overflow. An overflow at the
 * minimum scale is DeepSpeed's "Current loss scale already at minimum": -ERANGE with err
 * filled, the state unchanged (the run stops). */
int lossscale_update(lossscale *ls, int overflow, an_err *err);

#endif
