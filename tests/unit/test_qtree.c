/* Unit tests of jobs/qtree.c: the queue's order (higher priority first, then the smaller job
 * number), ties, a priority changed in place, removal anywhere, the n-th job and a job's
 * place, checked against a sorted array under random work; and the tree's depth when jobs
 * come oldest first (the order that makes a plain search tree a list). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "jobs/jobmgr.h"
#include "jobs/qtree.h"

static qnode *node(qnode *n, int priority, int64_t seq)
{
    memset(n, 0, sizeof *n);
    n->priority = priority;
    n->seq = seq;
    return n;
}

/* Every node of t in order equals want[0..n), and each one's place is its index. */
static void assert_order(const qtree *t, qnode *const *want, size_t n)
{
    assert_int_equal(qtree_count(t), n);
    for (size_t i = 0; i < n; i++) {
        assert_ptr_equal(qtree_at(t, i), want[i]);
        assert_int_equal(qtree_rank(t, want[i]->priority, want[i]->seq), i);
    }
    assert_null(qtree_at(t, n));
}

static void test_order_and_ties(void **state)
{
    (void)state;
    qtree t = {0};
    qnode a, b, c, d, e;
    qtree_insert(&t, node(&a, 0, 5));
    qtree_insert(&t, node(&b, 0, 2));  /* older, same priority: ahead */
    qtree_insert(&t, node(&c, 3, 9));  /* higher priority: ahead of all */
    qtree_insert(&t, node(&d, -2, 1)); /* lowest: last, old as it is */
    qtree_insert(&t, node(&e, 3, 4));
    qnode *want[] = {&e, &c, &b, &a, &d};
    assert_order(&t, want, 5);
    /* the place of a job not in the tree: where it would go */
    assert_int_equal(qtree_rank(&t, 0, 3), 3);  /* after b (seq 2), before a (seq 5) */
    assert_int_equal(qtree_rank(&t, 9, 100), 0);
    assert_int_equal(qtree_rank(&t, -5, 0), 5);
    /* every job of priority >= 0 */
    assert_int_equal(qtree_rank(&t, 0, INT64_MAX), 4);
    assert_int_equal(qtree_rank(&t, 0, INT64_MIN), 2);
}

static void test_remove_and_reprioritize(void **state)
{
    (void)state;
    qtree t = {0};
    qnode n[5];
    for (int i = 0; i < 5; i++)
        qtree_insert(&t, node(&n[i], 0, i + 1));
    qtree_remove(&t, &n[0]); /* the head */
    qtree_remove(&t, &n[2]); /* the middle */
    qtree_remove(&t, &n[2]); /* twice: nothing */
    assert_int_equal(n[2].in, 0);
    qnode *want[] = {&n[1], &n[3], &n[4]};
    assert_order(&t, want, 3);
    /* the youngest raised: out, new key, in again: now the head */
    qtree_remove(&t, &n[4]);
    n[4].priority = 1;
    qtree_insert(&t, &n[4]);
    qnode *want2[] = {&n[4], &n[1], &n[3]};
    assert_order(&t, want2, 3);
    /* lowered back below its elders' priority: last, though the oldest is older */
    qtree_remove(&t, &n[1]);
    n[1].priority = -1;
    qtree_insert(&t, &n[1]);
    qnode *want3[] = {&n[4], &n[3], &n[1]};
    assert_order(&t, want3, 3);
    for (int i = 0; i < 5; i++)
        qtree_remove(&t, &n[i]);
    assert_int_equal(qtree_count(&t), 0);
    assert_null(qtree_at(&t, 0));
    assert_null(t.root);
}

static int cmp_nodes(const void *x, const void *y)
{
    const qnode *a = *(qnode *const *)x, *b = *(qnode *const *)y;
    return jobs_sched_ahead(a->priority, a->seq, b->priority, b->seq) ? -1 : 1;
}

/* Random inserts, removals and priority changes, against a sorted array after each batch. */
static void test_random_against_sorted(void **state)
{
    (void)state;
    enum { N = 3000 };
    static qnode n[N];
    qnode **ref = malloc(N * sizeof *ref);
    assert_non_null(ref);
    qtree t = {0};
    srand(7);
    for (int i = 0; i < N; i++)
        node(&n[i], rand() % 5 - 2, i + 1);
    for (int round = 0; round < 40; round++) {
        for (int k = 0; k < 200; k++) {
            qnode *x = &n[rand() % N];
            int op = rand() % 3;
            if (op == 0 && !x->in) {
                qtree_insert(&t, x);
            } else if (op == 1) {
                qtree_remove(&t, x);
            } else if (x->in) {
                qtree_remove(&t, x);
                x->priority = rand() % 5 - 2;
                qtree_insert(&t, x);
            }
        }
        size_t m = 0;
        for (int i = 0; i < N; i++)
            if (n[i].in)
                ref[m++] = &n[i];
        qsort(ref, m, sizeof *ref, cmp_nodes);
        assert_order(&t, ref, m);
    }
    free(ref);
}

static size_t depth(const qnode *n)
{
    if (!n)
        return 0;
    size_t l = depth(n->left), r = depth(n->right);
    return 1 + (l > r ? l : r);
}

/* Jobs come oldest first, all of one priority: each new one goes last. The tree stays
 * shallow (a treap's expected depth is about 2.9 log2 n; 60 for 100,000 leaves room), and
 * the head is the oldest. */
static void test_stays_shallow_in_submit_order(void **state)
{
    (void)state;
    enum { N = 100000 };
    qnode *n = calloc(N, sizeof *n);
    assert_non_null(n);
    qtree t = {0};
    for (int i = 0; i < N; i++)
        qtree_insert(&t, node(&n[i], 0, i + 1));
    assert_true(depth(t.root) <= 60);
    assert_ptr_equal(qtree_at(&t, 0), &n[0]);
    assert_ptr_equal(qtree_at(&t, N - 1), &n[N - 1]);
    assert_int_equal(qtree_rank(&t, 0, N / 2), N / 2 - 1);
    free(n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_ties),
        cmocka_unit_test(test_remove_and_reprioritize),
        cmocka_unit_test(test_random_against_sorted),
        cmocka_unit_test(test_stays_shallow_in_submit_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
