/* Tests of core/rng: Philox known answers, purity in (seed, stream, counter), samplers'
 * ranges and moments, permutations. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/rng.h"

/* Known-answer vectors of Random123's kat_vectors for philox4x32_10. */
static void test_philox_kat(void **state)
{
    (void)state;
    static const struct {
        uint32_t ctr[4], key[2], out[4];
    } kat[] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
         {0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
         {0xa4093822, 0x299f31d0},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (size_t i = 0; i < sizeof kat / sizeof kat[0]; i++) {
        uint32_t out[4];
        rng_philox(kat[i].key, kat[i].ctr, out);
        for (int j = 0; j < 4; j++)
            assert_int_equal(out[j], kat[i].out[j]);
    }
}

static void test_cursor_is_pure(void **state)
{
    (void)state;
    uint64_t s = rng_stream_id(RNG_DROPOUT, 5, 1, 2);
    rng a, b;
    rng_init(&a, 42, s, 0);
    uint32_t seq[40];
    for (int i = 0; i < 40; i++)
        seq[i] = rng_u32(&a);
    /* Block k of the stream is words 4k..4k+3 of the sequence. */
    for (uint64_t k = 0; k < 10; k++) {
        uint32_t blk[4];
        rng_block(42, s, k, blk);
        assert_memory_equal(blk, seq + 4 * k, sizeof blk);
        rng_init(&b, 42, s, k);
        for (int j = 0; j < 4; j++)
            assert_int_equal(rng_u32(&b), seq[4 * k + j]);
    }
    /* Different seed, stream or counter: different numbers. */
    uint32_t x[4], y[4];
    rng_block(42, s, 0, x);
    rng_block(43, s, 0, y);
    assert_true(memcmp(x, y, sizeof x) != 0);
    rng_block(42, rng_stream_id(RNG_DROPOUT, 5, 1, 3), 0, y);
    assert_true(memcmp(x, y, sizeof x) != 0);
    rng_block(42, rng_stream_id(RNG_DROPOUT, 5, 2, 1), 0, y);
    assert_true(memcmp(x, y, sizeof x) != 0);
    rng_block(42, rng_stream_id(RNG_INIT, 5, 1, 2), 0, y);
    assert_true(memcmp(x, y, sizeof x) != 0);
}

static void test_stream_ids_distinct(void **state)
{
    (void)state;
    enum { N = 4 * 16 * 16 * 16 };
    uint64_t *ids = malloc(N * sizeof *ids);
    int k = 0;
    for (uint32_t p = 1; p <= 4; p++)
        for (uint64_t a = 0; a < 16; a++)
            for (uint64_t b = 0; b < 16; b++)
                for (uint64_t c = 0; c < 16; c++)
                    ids[k++] = rng_stream_id(p, a, b, c);
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            assert_true(ids[i] != ids[j]);
    free(ids);
}

static void test_uniform_and_normal_moments(void **state)
{
    (void)state;
    rng r;
    rng_init(&r, 7, rng_stream_id(RNG_DATA, 0, 0, 0), 0);
    enum { N = 200000 };
    double su = 0, suu = 0, sf = 0, sn = 0, snn = 0;
    for (int i = 0; i < N; i++) {
        double u = rng_uniform(&r);
        float f = rng_uniform_f(&r);
        assert_true(u >= 0.0 && u < 1.0);
        assert_true(f >= 0.0f && f < 1.0f);
        double n = rng_normal(&r);
        assert_true(isfinite(n));
        su += u;
        suu += u * u;
        sf += f;
        sn += n;
        snn += n * n;
    }
    assert_float_equal(su / N, 0.5, 0.005);
    assert_float_equal(suu / N - (su / N) * (su / N), 1.0 / 12, 0.002);
    assert_float_equal(sf / N, 0.5, 0.005);
    assert_float_equal(sn / N, 0.0, 0.01);
    assert_float_equal(snn / N, 1.0, 0.02);
    for (int i = 0; i < 1000; i++) {
        double v = rng_range(&r, -3.0, 2.0);
        assert_true(v >= -3.0 && v < 2.0);
    }
}

static void test_below_unbiased(void **state)
{
    (void)state;
    rng r;
    rng_init(&r, 1, 99, 0);
    int counts[7] = {0};
    for (int i = 0; i < 70000; i++) {
        uint64_t v = rng_below(&r, 7);
        assert_true(v < 7);
        counts[v]++;
    }
    for (int i = 0; i < 7; i++)
        assert_in_range(counts[i], 9500, 10500);
    assert_int_equal(rng_below(&r, 1), 0);
    uint64_t big = (1ull << 40) + 3;
    for (int i = 0; i < 100; i++)
        assert_true(rng_below(&r, big) < big);
}

static void test_permutation(void **state)
{
    (void)state;
    enum { N = 1000 };
    uint32_t p[N], q[N], e[N];
    char seen[N];
    rng_permutation(p, N, 42, 3);
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < N; i++) {
        assert_true(p[i] < N);
        assert_int_equal(seen[p[i]], 0);
        seen[p[i]] = 1;
    }
    rng_permutation(q, N, 42, 3);
    assert_memory_equal(p, q, sizeof p);
    rng_permutation(e, N, 42, 4);
    assert_true(memcmp(p, e, sizeof p) != 0);
    rng_permutation(e, N, 43, 3);
    assert_true(memcmp(p, e, sizeof p) != 0);
    /* Not the identity: a shuffle moves most elements. */
    int fixed = 0;
    for (int i = 0; i < N; i++)
        fixed += p[i] == (uint32_t)i;
    assert_true(fixed < 20);
    /* Every position is equally likely to receive element 0 (n = 4, many epochs). */
    int pos0[4] = {0};
    for (uint64_t ep = 0; ep < 8000; ep++) {
        uint32_t s[4];
        rng_permutation(s, 4, 5, ep);
        for (int i = 0; i < 4; i++)
            if (s[i] == 0)
                pos0[i]++;
    }
    for (int i = 0; i < 4; i++)
        assert_in_range(pos0[i], 1800, 2200);
    rng_permutation(p, 0, 1, 1); /* n = 0 is a no-op */
    rng_permutation(p, 1, 1, 1);
    assert_int_equal(p[0], 0);
}

/* Element i of rng_keep_mask's definition: half i % 2 of word (i % 8) / 2 of block i / 8,
 * kept if >= thr. */
static int keep_def(uint64_t seed, uint64_t stream, size_t i, uint32_t thr)
{
    uint32_t w[4];
    rng_block(seed, stream, i / 8, w);
    return ((w[(i % 8) / 2] >> (16 * (i % 2))) & 0xFFFF) >= thr;
}

/* rng_keep_mask is its definition for lengths around the edges of its groups of 32 blocks
 * (256 elements; the vectorised part) and of single blocks, and far into a long mask; the
 * fraction dropped is p; the threshold is p·2^16 rounded. */
static void test_keep_mask(void **state)
{
    (void)state;
    assert_int_equal(rng_drop_threshold(0.0), 0);
    assert_int_equal(rng_drop_threshold(0.5), 32768);
    assert_int_equal(rng_drop_threshold(0.2), 13107); /* 13107.2 */
    assert_int_equal(rng_drop_threshold(0.99999999), 65535);
    enum { MAX = 1100 };
    uint8_t keep[MAX + 1];
    const uint64_t seed = 0x123456789abcdefull, stream = rng_stream_id(RNG_GPT_DROPOUT, 3, 1, 4);
    const uint32_t thr = rng_drop_threshold(0.4);
    for (size_t n = 0; n <= MAX; n += n < 70 || (n > 240 && n < 270) ? 1 : 13) {
        keep[n] = 0xAA;
        rng_keep_mask(keep, n, seed, stream, thr);
        assert_int_equal(keep[n], 0xAA); /* nothing past n */
        for (size_t i = 0; i < n; i++)
            if (keep[i] != keep_def(seed, stream, i, thr))
                fail_msg("n %zu element %zu: %d", n, i, keep[i]);
    }
    /* p = 0 keeps everything. */
    rng_keep_mask(keep, MAX, seed, stream, rng_drop_threshold(0.0));
    for (size_t i = 0; i < MAX; i++)
        assert_int_equal(keep[i], 1);
    /* The fraction dropped is p (n = 10^6: standard deviation below 5e-4), and another stream
     * gives another mask. */
    const size_t n = 1000000;
    uint8_t *a = malloc(n), *b = malloc(n);
    assert_non_null(a);
    assert_non_null(b);
    const double ps[] = {0.1, 0.5, 0.9};
    for (size_t k = 0; k < 3; k++) {
        rng_keep_mask(a, n, 7, stream, rng_drop_threshold(ps[k]));
        for (size_t i = 0; i < n; i += i < 1000 ? 1 : 997)
            assert_int_equal(a[i], keep_def(7, stream, i, rng_drop_threshold(ps[k])));
        for (size_t i = n - 300; i < n; i++)
            assert_int_equal(a[i], keep_def(7, stream, i, rng_drop_threshold(ps[k])));
        size_t dropped = 0;
        for (size_t i = 0; i < n; i++)
            dropped += !a[i];
        assert_true(fabs((double)dropped / (double)n - ps[k]) < 3e-3);
    }
    rng_keep_mask(a, n, 7, stream, thr);
    rng_keep_mask(b, n, 7, stream + 1, thr);
    assert_true(memcmp(a, b, n) != 0);
    free(a);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_philox_kat),
        cmocka_unit_test(test_cursor_is_pure),
        cmocka_unit_test(test_stream_ids_distinct),
        cmocka_unit_test(test_uniform_and_normal_moments),
        cmocka_unit_test(test_below_unbiased),
        cmocka_unit_test(test_permutation),
        cmocka_unit_test(test_keep_mask),
    };
    return cmocka_run_group_tests_name("rng", tests, NULL, NULL);
}
