/* rng — Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11)
 * and the samplers built on it. */
#include "core/rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static inline void mulhilo(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo)
{
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}

void rng_philox(const uint32_t key[2], const uint32_t ctr[4], uint32_t out[4])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint32_t hi0, lo0, hi1, lo1;
        mulhilo(PHILOX_M0, c0, &hi0, &lo0);
        mulhilo(PHILOX_M1, c2, &hi1, &lo1);
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

void rng_block(uint64_t seed, uint64_t stream, uint64_t counter, uint32_t out[4])
{
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t ctr[4] = {(uint32_t)counter, (uint32_t)(counter >> 32), (uint32_t)stream,
                       (uint32_t)(stream >> 32)};
    rng_philox(key, ctr, out);
}

/* SplitMix64's finaliser: a bijection on 64 bits with good avalanche. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t rng_stream_id(uint32_t purpose, uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t h = mix64(0x9E3779B97F4A7C15ull * ((uint64_t)purpose + 1));
    h = mix64(h ^ a);
    h = mix64((h + 0x9E3779B97F4A7C15ull) ^ b);
    h = mix64((h + 0x3C6EF372FE94F82Aull) ^ c);
    return h;
}

void rng_init(rng *r, uint64_t seed, uint64_t stream, uint64_t counter)
{
    r->key[0] = (uint32_t)seed;
    r->key[1] = (uint32_t)(seed >> 32);
    r->stream = stream;
    r->ctr = counter;
    r->left = 0;
}

uint32_t rng_u32(rng *r)
{
    if (r->left == 0) {
        uint32_t ctr[4] = {(uint32_t)r->ctr, (uint32_t)(r->ctr >> 32), (uint32_t)r->stream,
                           (uint32_t)(r->stream >> 32)};
        rng_philox(r->key, ctr, r->buf);
        r->ctr++;
        r->left = 4;
    }
    return r->buf[4 - r->left--];
}

uint64_t rng_u64(rng *r)
{
    uint64_t hi = rng_u32(r);
    return hi << 32 | rng_u32(r);
}

float rng_uniform_f(rng *r)
{
    return (float)(rng_u32(r) >> 8) * 0x1.0p-24f;
}

double rng_uniform(rng *r)
{
    return (double)(rng_u64(r) >> 11) * 0x1.0p-53;
}

double rng_range(rng *r, double lo, double hi)
{
    return lo + (hi - lo) * rng_uniform(r);
}

double rng_normal(rng *r)
{
    /* 1 - u is in (0, 1], so the log is finite. */
    double u1 = 1.0 - rng_uniform(r);
    double u2 = rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

uint64_t rng_below(rng *r, uint64_t n)
{
    if (n <= 1)
        return 0;
    if (n <= UINT32_MAX) {
        uint32_t n32 = (uint32_t)n;
        uint32_t limit = (uint32_t)(-n32) % n32; /* 2^32 mod n: values below are rejected */
        for (;;) {
            uint32_t v = rng_u32(r);
            if (v >= limit)
                return v % n32;
        }
    }
    uint64_t limit = (0 - n) % n;
    for (;;) {
        uint64_t v = rng_u64(r);
        if (v >= limit)
            return v % n;
    }
}

void rng_permutation(uint32_t *perm, uint32_t n, uint64_t seed, uint64_t epoch)
{
    rng r;
    rng_init(&r, seed, rng_stream_id(RNG_SHUFFLE, epoch, 0, 0), 0);
    for (uint32_t i = 0; i < n; i++)
        perm[i] = i;
    for (uint32_t i = n; i > 1; i--) {
        uint32_t j = (uint32_t)rng_below(&r, i);
        uint32_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}

uint32_t rng_drop_threshold(double p)
{
    double t = p > 0 ? ldexp(p, 16) + 0.5 : 0.0;
    return t >= 65535.0 ? 65535u : (uint32_t)t;
}

/* Blocks per call of philox_lanes. */
#define KEEP_LANES 32

#if defined(__AVX2__)
#include <immintrin.h>

/* hi:lo = a·m in each of eight 32-bit lanes: vpmuludq multiplies the even lanes, and the odd
 * ones shifted down; blends put the halves back in their lanes. */
static inline void mulhilo8(__m256i a, __m256i m, __m256i *hi, __m256i *lo)
{
    __m256i ev = _mm256_mul_epu32(a, m);
    __m256i od = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);
    *lo = _mm256_blend_epi32(ev, _mm256_slli_epi64(od, 32), 0xAA);
    *hi = _mm256_blend_epi32(_mm256_srli_epi64(ev, 32), od, 0xAA);
}

/* rng_philox on the KEEP_LANES counters base, base + 1, …, word w of each to o[w][lane]:
 * eight counters per vector, four vectors interleaved so that the multiplies' latency
 * overlaps (the compiler's own vectorisation of the scalar loop below was no faster than
 * scalar code, spending its time repacking 64-bit products). */
static void philox_lanes(uint32_t o[4][KEEP_LANES], uint64_t base, uint32_t k0, uint32_t k1,
                         uint32_t s0, uint32_t s1)
{
    enum { NV = KEEP_LANES / 8 };
    __m256i c0[NV], c1[NV], c2[NV], c3[NV];
    const __m256i m0 = _mm256_set1_epi32((int)PHILOX_M0), m1 = _mm256_set1_epi32((int)PHILOX_M1);
    for (int v = 0; v < NV; v++) {
        /* Counters past 2^32 carry into word 1, lane by lane. */
        uint32_t lo[8], hi[8];
        for (int j = 0; j < 8; j++) {
            uint64_t ctr = base + (uint64_t)(8 * v + j);
            lo[j] = (uint32_t)ctr;
            hi[j] = (uint32_t)(ctr >> 32);
        }
        c0[v] = _mm256_loadu_si256((const __m256i *)lo);
        c1[v] = _mm256_loadu_si256((const __m256i *)hi);
        c2[v] = _mm256_set1_epi32((int)s0);
        c3[v] = _mm256_set1_epi32((int)s1);
    }
    uint32_t r0 = k0, r1 = k1;
    for (int round = 0; round < 10; round++) {
        const __m256i kr0 = _mm256_set1_epi32((int)r0), kr1 = _mm256_set1_epi32((int)r1);
        for (int v = 0; v < NV; v++) {
            __m256i h0, l0, h1, l1;
            mulhilo8(c0[v], m0, &h0, &l0);
            mulhilo8(c2[v], m1, &h1, &l1);
            c0[v] = _mm256_xor_si256(_mm256_xor_si256(h1, c1[v]), kr0);
            c1[v] = l1;
            c2[v] = _mm256_xor_si256(_mm256_xor_si256(h0, c3[v]), kr1);
            c3[v] = l0;
        }
        r0 += PHILOX_W0;
        r1 += PHILOX_W1;
    }
    for (int v = 0; v < NV; v++) {
        _mm256_storeu_si256((__m256i *)(o[0] + 8 * v), c0[v]);
        _mm256_storeu_si256((__m256i *)(o[1] + 8 * v), c1[v]);
        _mm256_storeu_si256((__m256i *)(o[2] + 8 * v), c2[v]);
        _mm256_storeu_si256((__m256i *)(o[3] + 8 * v), c3[v]);
    }
}
#else
/* The same in portable C, lane by lane. */
static void philox_lanes(uint32_t o[4][KEEP_LANES], uint64_t base, uint32_t k0, uint32_t k1,
                         uint32_t s0, uint32_t s1)
{
    for (int j = 0; j < KEEP_LANES; j++) {
        uint32_t ctr[4] = {(uint32_t)(base + (uint64_t)j), (uint32_t)((base + (uint64_t)j) >> 32),
                           s0, s1};
        uint32_t key[2] = {k0, k1}, out[4];
        rng_philox(key, ctr, out);
        for (int w = 0; w < 4; w++)
            o[w][j] = out[w];
    }
}
#endif

/* Whether the 16-bit half h (0 low, 1 high) of word w survives. */
static inline uint8_t kept(uint32_t w, int h, uint32_t thr)
{
    return ((w >> (16 * h)) & 0xFFFFu) >= thr;
}

void rng_keep_mask(uint8_t *keep, size_t n, uint64_t seed, uint64_t stream, uint32_t thr)
{
    const uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    const uint32_t s0 = (uint32_t)stream, s1 = (uint32_t)(stream >> 32);
    size_t blocks = n / 8, b = 0;
    for (; b + KEEP_LANES <= blocks; b += KEEP_LANES) {
        uint32_t o[4][KEEP_LANES];
        philox_lanes(o, (uint64_t)b, k0, k1, s0, s1);
        uint8_t *k = keep + 8 * b;
        for (int j = 0; j < KEEP_LANES; j++)
            for (int i = 0; i < 8; i++)
                k[8 * j + i] = kept(o[i / 2][j], i % 2, thr);
    }
    /* The last blocks (and the part of one past n / 8 whole blocks) one at a time. */
    for (size_t i = 8 * b; i < n; i += 8) {
        uint32_t w[4];
        rng_block(seed, stream, (uint64_t)(i / 8), w);
        for (size_t j = 0; j < 8 && i + j < n; j++)
            keep[i + j] = kept(w[j / 2], (int)(j % 2), thr);
    }
}
