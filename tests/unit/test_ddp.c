/* test_ddp — the ordered cross-rank sum continues the engine's pairwise tree (so W ranks of
 * gas micro-batches each sum exactly as one process over W·gas micro-batches whenever gas is
 * a power of two), and the shard ranges cover the buffer once, in rank order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/ddp.h"
#include "core/rng.h"

#define N 257

/* The engine's binary counter (core/train.c: tree_push / tree_finish) over `count` leaves. */
static void tree_sum(float leaves[][N], int count, float *out)
{
    float *slot[32] = {0};
    static float buf[64][N];
    for (int i = 0; i < count; i++) {
        float *leaf = buf[i];
        memcpy(leaf, leaves[i], sizeof buf[i]);
        int k = 0;
        while (slot[k]) {
            for (int e = 0; e < N; e++)
                slot[k][e] = slot[k][e] + leaf[e];
            leaf = slot[k];
            slot[k] = NULL;
            k++;
        }
        slot[k] = leaf;
    }
    float *acc = NULL;
    for (int k = 31; k >= 0; k--) {
        if (!slot[k])
            continue;
        if (!acc)
            acc = slot[k];
        else
            for (int e = 0; e < N; e++)
                acc[e] = acc[e] + slot[k][e];
    }
    memcpy(out, acc, sizeof(float) * N);
}

static float leaves[64][N];

static void fill(uint64_t seed)
{
    rng r;
    rng_init(&r, seed, 1, 0);
    for (int i = 0; i < 64; i++)
        for (int e = 0; e < N; e++) /* magnitudes far apart, so the order shows in the bits */
            leaves[i][e] = (float)((rng_uniform(&r) - 0.5) * (e % 7 == 0 ? 1e6 : 1.0));
}

static void test_same_bits_as_one_process(void **state)
{
    (void)state;
    static const int gas_list[] = {1, 2, 4, 8};
    int differs_somewhere = 0;
    for (uint64_t seed = 1; seed <= 3; seed++) {
        fill(seed);
        for (size_t gi = 0; gi < 4; gi++) {
            for (int W = 1; W <= 8; W++) {
                int gas = gas_list[gi];
                if (W * gas > 64)
                    continue;
                float want[N], parts_buf[8][N];
                float *parts[8];
                tree_sum(leaves, W * gas, want);
                for (int r = 0; r < W; r++) {
                    tree_sum(&leaves[r * gas], gas, parts_buf[r]);
                    parts[r] = parts_buf[r];
                }
                ddp_ordered_sum(parts, W, N);
                if (memcmp(parts[0], want, sizeof want) != 0)
                    fail_msg("seed %llu gas %d W %d: not the one-process sum",
                             (unsigned long long)seed, gas, W);
            }
        }
        /* the order matters: summing all leaves left to right differs in some bits */
        float lr[N], tree[N];
        memcpy(lr, leaves[0], sizeof lr);
        for (int i = 1; i < 8; i++)
            for (int e = 0; e < N; e++)
                lr[e] = lr[e] + leaves[i][e];
        tree_sum(leaves, 8, tree);
        differs_somewhere |= memcmp(lr, tree, sizeof lr) != 0;
    }
    assert_true(differs_somewhere);
}

static void test_shards(void **state)
{
    (void)state;
    static const size_t ns[] = {0, 1, 2, 3, 7, 100, 257, 1000003};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        for (int W = 1; W <= 9; W++) {
            size_t next = 0, mn = (size_t)-1, mx = 0;
            for (int r = 0; r < W; r++) {
                size_t lo, hi;
                ddp_shard(ns[i], W, r, &lo, &hi);
                assert_int_equal(lo, next);
                assert_true(hi >= lo);
                next = hi;
                mn = hi - lo < mn ? hi - lo : mn;
                mx = hi - lo > mx ? hi - lo : mx;
            }
            assert_int_equal(next, ns[i]);
            assert_true(mx - mn <= 1);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_bits_as_one_process),
        cmocka_unit_test(test_shards),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
