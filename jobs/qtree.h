/* qtree — the job queue's order as a balanced search tree: higher priority first, among equal
 * priorities the smaller job number (the older job) first (API.md, "Scheduling"). Each node
 * counts the nodes below it, so a job's place, the head, the n-th job and the number of jobs
 * of one priority cost O(log n) however long the queue: a queue of a million jobs is as cheap
 * to add to, reorder and ask as one of ten.
 *
 * DESIGN
 * A treap: a search tree by (priority, seq) that is also a heap by a number hashed from seq,
 * so its shape is that of a random insertion order whatever order the jobs come in (they
 * come oldest first, the worst order for a plain search tree), and its depth is O(log n)
 * without rebalancing rules. The hash is fixed, so runs are reproducible. Intrusive: the node
 * lives in its job's run, and the tree allocates nothing, so adding to it cannot fail. The
 * keys are the pair (priority, seq), distinct for distinct jobs. Not thread-safe: the job
 * manager holds its mutex around every call. */
#ifndef ANNEALD_QTREE_H
#define ANNEALD_QTREE_H

#include <stddef.h>
#include <stdint.h>

typedef struct qnode {
    struct qnode *left, *right;
    size_t size;                 /* nodes in this subtree, this one included */
    uint64_t heap;               /* the treap's heap key, from seq */
    int priority;                /* the key: priority (higher first) … */
    int64_t seq;                 /* … then job number (smaller first) */
    int in;                      /* 1 while in a tree */
} qnode;

typedef struct qtree {
    qnode *root;
} qtree;

/* Puts n, with its key (priority, seq) set, into t. n must not be in a tree. */
void qtree_insert(qtree *t, qnode *n);

/* Takes n out of t; nothing when n is in no tree. */
void qtree_remove(qtree *t, qnode *n);

/* The nodes in t. */
size_t qtree_count(const qtree *t);

/* The k-th node in the queue's order (0: the head), or NULL when k >= qtree_count. */
qnode *qtree_at(const qtree *t, size_t k);

/* How many nodes of t go before a job of priority `priority` and number `seq` (whether or
 * not it is in t): its place, counted from 0. */
size_t qtree_rank(const qtree *t, int priority, int64_t seq);

#endif
