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
