/* pyrtab — the summary pyramid's entries and their table (metric_pyramid): what
 * store/pyramid.c (appends, rebuilds, queries) and nothing else builds on. */
#ifndef ANNEALD_PYRTAB_H
#define ANNEALD_PYRTAB_H

#include <stdint.h>

#include "store/internal.h"

/* One bucket: its rows (first, last, smallest loss, largest loss), lr groups beyond a row's
 * own read NaN. nrows 0 = empty. */
typedef struct pyr_ent {
    int64_t bucket;
    int64_t nrows;
    int ng;
    st_row r[4];
} pyr_ent;

enum { R_FIRST = 0, R_LAST, R_LO, R_HI };

/* The entry of each level an append of this connection stored last (the open bucket that the
 * next append merges into), so that a run's appends, which come in step order, read no
 * entry back from SQLite. Valid only for the job `num` while appends continue at
 * last_step + 1: any other append (another connection's in between, a resume from an
 * earlier step), a rebuild, a cut or a rolled-back transaction starts it over. */
typedef struct pyr_cache {
    int64_t num;                   /* 0: empty */
    int64_t last_step;
    unsigned char have[ST_PYR_LMAX + 1];
    pyr_ent e[ST_PYR_LMAX + 1];
} pyr_cache;

/* Entries from rows, and the exact merge of two disjoint entries (pyrtab.c says more). */
double pyr_canon(double v);
void pyr_row_from_metric(const store_metric *m, st_row *r);
void pyr_row_from_block(const st_block *b, size_t i, st_row *r);
int pyr_better(const st_row *a, const st_row *b, int hi);
void pyr_merge(pyr_ent *acc, const pyr_ent *e);
/* The stored form of an entry, and reading and writing one (with the cache of open buckets
 * when `c` is given). */
size_t pyr_row_bytes(int ng);
int pyr_decode(const unsigned char *p, size_t len, int64_t ng, int64_t nrows, pyr_ent *e);
int pyr_damaged(an_err *err, int level, int64_t bucket);
int pyr_get(store_t *s, int64_t num, int level, int64_t bucket, pyr_ent *e, const pyr_cache *c,
            an_err *err);
int pyr_put(store_t *s, int64_t num, int level, const pyr_ent *e, pyr_cache *c, an_err *err);

#endif
