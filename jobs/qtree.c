/* qtree — the queue's order as a treap with subtree sizes: see jobs/qtree.h. */
#include "jobs/qtree.h"

#include "jobs/jobmgr.h"

static size_t size_of(const qnode *n)
{
    return n ? n->size : 0;
}

static void fix_size(qnode *n)
{
    n->size = 1 + size_of(n->left) + size_of(n->right);
}

/* splitmix64's finaliser: job numbers 1, 2, 3 … become heap keys in no order. */
static uint64_t mix(int64_t seq)
{
    uint64_t z = (uint64_t)seq + 0x9e3779b97f4a7c15u;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static int ahead(const qnode *a, int priority, int64_t seq)
{
    return jobs_sched_ahead(a->priority, a->seq, priority, seq);
}

/* Splits t into the nodes ahead of (priority, seq) (*l) and the others (*r). */
static void split(qnode *t, int priority, int64_t seq, qnode **l, qnode **r)
{
    if (!t) {
        *l = *r = NULL;
    } else if (ahead(t, priority, seq)) {
        split(t->right, priority, seq, &t->right, r);
        fix_size(t);
        *l = t;
    } else {
        split(t->left, priority, seq, l, &t->left);
        fix_size(t);
        *r = t;
    }
}

/* The union of l and r, every node of l ahead of every node of r. */
static qnode *merge(qnode *l, qnode *r)
{
    if (!l || !r)
        return l ? l : r;
    if (l->heap > r->heap) {
        l->right = merge(l->right, r);
        fix_size(l);
        return l;
    }
    r->left = merge(l, r->left);
    fix_size(r);
    return r;
}

static qnode *insert(qnode *t, qnode *n)
{
    if (!t)
        return n;
    if (n->heap > t->heap) {
        split(t, n->priority, n->seq, &n->left, &n->right);
        fix_size(n);
        return n;
    }
    if (ahead(n, t->priority, t->seq))
        t->left = insert(t->left, n);
    else
        t->right = insert(t->right, n);
    fix_size(t);
    return t;
}

void qtree_insert(qtree *t, qnode *n)
{
    n->left = n->right = NULL;
    n->size = 1;
    n->heap = mix(n->seq);
    n->in = 1;
    t->root = insert(t->root, n);
}

static qnode *remove_node(qnode *t, qnode *n)
{
    if (t == n)
        return merge(n->left, n->right);
    if (!t) /* not reached: n is in the tree */
        return NULL;
    if (ahead(n, t->priority, t->seq))
        t->left = remove_node(t->left, n);
    else
        t->right = remove_node(t->right, n);
    fix_size(t);
    return t;
}

void qtree_remove(qtree *t, qnode *n)
{
    if (!n->in)
        return;
    t->root = remove_node(t->root, n);
    n->left = n->right = NULL;
    n->in = 0;
}

size_t qtree_count(const qtree *t)
{
    return size_of(t->root);
}

qnode *qtree_at(const qtree *t, size_t k)
{
    qnode *n = t->root;
    while (n) {
        size_t l = size_of(n->left);
        if (k < l) {
            n = n->left;
        } else if (k == l) {
            return n;
        } else {
            k -= l + 1;
            n = n->right;
        }
    }
    return NULL;
}

size_t qtree_rank(const qtree *t, int priority, int64_t seq)
{
    size_t r = 0;
    for (const qnode *n = t->root; n;) {
        if (ahead(n, priority, seq)) {
            r += size_of(n->left) + 1;
            n = n->right;
        } else {
            n = n->left;
        }
    }
    return r;
}
