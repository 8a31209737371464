/* gpt_math — exp and erf in straight-line float code (no calls, no branches), so that loops
 * over them vectorise; libm's expf/erff are scalar calls and were the largest element-wise
 * cost of a training step. Accuracy is that of float (checked against libm in test_gpt).
 * The polynomial steps are written as fmaf: the build is ISO C (-std=c11, which turns off
 * floating-point contraction), so a plain p*r + c is a multiply and an add; with FMA in the
 * target (x86-64-v3) fmaf is one vectorisable instruction, one rounding instead of two, and
 * the same bits on every machine that has it (-fno-math-errno keeps it inline). */
#ifndef ANNEALD_GPT_MATH_H
#define ANNEALD_GPT_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* e^x for x in float range: x = n·ln2 + r, |r| <= ln2/2, e^r by a degree-6 Taylor
 * polynomial (error below 2e-8 relative on that interval), 2^n put into the exponent bits.
 * Inputs are clamped to [-87.3, 88.3] (2^n stays a normal exponent), so the result is always
 * a finite normal float; a NaN is taken as -87.3 (whose n converts to an int: a NaN's would not). */
static inline float gpt_expf(float x)
{
    x = x >= -87.3f ? x : -87.3f;
    x = x > 88.3f ? 88.3f : x;
    const float magic = 12582912.0f; /* 1.5·2^23: adding it rounds to an integer */
    float n = (x * 1.44269504088896341f + magic) - magic;
    float r = fmaf(n, -0.693359375f, x); /* ln2 split in a part exact in float */
    r = fmaf(n, 2.12194440e-4f, r);      /* and the rest */
    float p = 1.0f / 720.0f;
    p = fmaf(p, r, 1.0f / 120.0f);
    p = fmaf(p, r, 1.0f / 24.0f);
    p = fmaf(p, r, 1.0f / 6.0f);
    p = fmaf(p, r, 0.5f);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    int32_t e = ((int32_t)n + 127) << 23;
    float s;
    memcpy(&s, &e, sizeof s);
    return p * s;
}

/* erf(x): odd rational approximation x·P(x²)/Q(x²) on [-4, 4] (erf is ±1 in float beyond). */
static inline float gpt_erff(float x)
{
    x = x < -4.0f ? -4.0f : x;
    x = x > 4.0f ? 4.0f : x;
    float x2 = x * x;
    float p = -2.72614225801306e-10f;
    p = fmaf(p, x2, 2.77068142495902e-08f);
    p = fmaf(p, x2, -2.10102402082508e-06f);
    p = fmaf(p, x2, -5.69250639462346e-05f);
    p = fmaf(p, x2, -7.34990630326855e-04f);
    p = fmaf(p, x2, -2.95459980854025e-03f);
    p = fmaf(p, x2, -1.60960333262415e-02f);
    float q = -1.45660718464996e-05f;
    q = fmaf(q, x2, -2.13374055278905e-04f);
    q = fmaf(q, x2, -1.68282697438203e-03f);
    q = fmaf(q, x2, -7.37332916720468e-03f);
    q = fmaf(q, x2, -1.42647390514189e-02f);
    return x * p / q;
}

#endif
