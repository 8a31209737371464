/* The pairwise sum of micro-batch gradients (core/gradtree.c): its order, its buffers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/gradtree.h"

/* Sums `n` one-float leaves with the tree. */
static float tree_sum(gradtree *t, const float *v, int n)
{
    gradtree_reset(t);
    for (int i = 0; i < n; i++) {
        assert_true(t->nfree > 0); /* the pool always has a buffer for the next leaf */
        float *leaf = gradtree_leaf(t);
        leaf[0] = v[i];
        gradtree_push(t, leaf);
    }
    return gradtree_finish(t)[0];
}

/* Five leaves sum as ((a + b) + (c + d)) + e, which in float differs from a running sum. */
static void pairs_in_order(void **state)
{
    (void)state;
    float first = 0;
    gradtree t;
    assert_int_equal(gradtree_init(&t, &first, 1, 5), 0);
    assert_int_equal(t.nbuf, 3);
    const float v[5] = {16777216.0f, 1.0f, 1.0f, -16777216.0f, 1.0f};
    float got = tree_sum(&t, v, 5);
    float pairwise = ((v[0] + v[1]) + (v[2] + v[3])) + v[4];
    float running = (((v[0] + v[1]) + v[2]) + v[3]) + v[4];
    assert_true(pairwise != running); /* the test can tell the two orders apart */
    assert_true(memcmp(&got, &pairwise, sizeof got) == 0);
    /* A second step on the same tree gives the same bits. */
    float again = tree_sum(&t, v, 5);
    assert_true(memcmp(&again, &pairwise, sizeof got) == 0);
    gradtree_free(&t);
}

/* One leaf needs no buffer of the tree's own; 1..100 leaves never run out of buffers and
 * sum small integers exactly. */
static void buffers_suffice(void **state)
{
    (void)state;
    float v[100];
    for (int i = 0; i < 100; i++)
        v[i] = (float)(i + 1);
    for (int n = 1; n <= 100; n++) {
        float *first = &(float){0};
        gradtree t;
        assert_int_equal(gradtree_init(&t, first, 1, n), 0);
        int log2n = 0;
        while ((2 << log2n) <= n)
            log2n++;
        assert_int_equal(t.nbuf, log2n + 1);
        assert_true(tree_sum(&t, v, n) == (float)(n * (n + 1) / 2));
        gradtree_free(&t);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pairs_in_order),
        cmocka_unit_test(buffers_suffice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
