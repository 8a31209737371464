/* blocks.c — metric rows packed into blocks (the metric_blocks table; the layout is described
 * in internal.h): encoding a batch, walking the blocks of a step range, replacing steps inside
 * stored blocks, truncating at a step, and the migration from one SQLite row per step.
 *
 * Appending a batch is one INSERT of one blob whatever its size, which is what makes ingest
 * cheap: SQLite's per-row cost (record encoding, b-tree cell, index entry) is paid once per
 * batch instead of once per step. Replacing a stored step is rare (store_job_rewind cuts the
 * history off before a run resumes, so a resumed run appends), so that path simply decodes
 * the affected blocks, merges and writes them again. */
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"
#include "util/util.h"

/* Loss, grad_norm, time and wall were SQL values that stored NaN as null and read back NAN:
 * keep that (every NaN reads back as the same NaN). lr values keep their bits. */
static double canon(double v) { return isnan(v) ? NAN : v; }

/* Bytes of the constant-column mask for ng lr groups. */
static size_t mask_len(int ng) { return (size_t)(4 + ng + 7) / 8; }

/* Lays out b's columns from the mask at the start of its blob of `len` bytes; -1 when the
 * length does not match what the mask and columns call for. */
static int layout(st_block *b, size_t len)
{
    size_t ncol = 4 + (size_t)b->ng, pos = mask_len(b->ng);
    if (len < pos)
        return -1;
    b->steps_off = pos;
    if (b->sparse)
        pos += 8 * b->n;
    for (size_t c = 0; c < ncol; c++) {
        int k = (b->data[c / 8] >> (c % 8)) & 1;
        b->off[c] = pos;
        b->inc[c] = k ? 0 : 8;
        pos += k ? 8 : 8 * b->n;
    }
    return pos == len ? 0 : -1;
}

size_t st_block_lower(const st_block *b, int64_t x)
{
    if (x <= b->first)
        return 0;
    if (x > b->last)
        return b->n;
    if (!b->sparse)
        return (size_t)(x - b->first);
    size_t lo = 0, hi = b->n; /* answer in [lo, hi] */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (st_block_step(b, mid) < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

size_t st_block_upper(const st_block *b, int64_t x)
{
    if (x >= b->last)
        return b->n;
    if (x < b->first)
        return 0;
    if (!b->sparse)
        return (size_t)(x - b->first) + 1;
    size_t lo = 0, hi = b->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (st_block_step(b, mid) <= x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void st_block_row(const st_block *b, size_t i, store_metric *m)
{
    m->step = st_block_step(b, i);
    m->loss = st_block_val(b, ST_COL_LOSS, i);
    m->grad_norm = st_block_val(b, ST_COL_GRAD_NORM, i);
    m->time = st_block_val(b, ST_COL_TIME, i);
    m->wall = st_block_val(b, ST_COL_WALL, i);
    m->n_lr = b->ng;
    for (int g = 0; g < b->ng; g++)
        m->lr[g] = st_block_val(b, ST_COL_LR + g, i);
}

/* ---- iteration ----------------------------------------------------------------------- */

int st_blocks_open(store_t *s, st_block_iter *it, int64_t num, int64_t from, int64_t to,
                   int desc, an_err *err)
{
    int rc;
    memset(it, 0, sizeof *it);
    it->s = s;
    it->desc = desc;
    it->from = from;
    it->to = to;
    if (!desc)
        /* From the block that can hold `from` (the last one starting at or before it), or
         * from `from` itself when no block starts that early. */
        it->st = st_stmt(s, ST_BLOCK_ASC,
                         "SELECT first_step, last_step, nrows, ngroups, data, raw FROM"
                         " metric_blocks WHERE job=?1 AND first_step<=?3 AND first_step>=coalesce("
                         "  (SELECT first_step FROM metric_blocks WHERE job=?1"
                         "   AND first_step<=?2 ORDER BY first_step DESC LIMIT 1), ?2)"
                         " ORDER BY first_step",
                         &rc, err);
    else
        it->st = st_stmt(s, ST_BLOCK_DESC,
                         "SELECT first_step, last_step, nrows, ngroups, data, raw FROM"
                         " metric_blocks WHERE job=?1 AND first_step<=?3"
                         " ORDER BY first_step DESC",
                         &rc, err);
    if (!it->st)
        return rc;
    sqlite3_bind_int64(it->st, 1, num);
    sqlite3_bind_int64(it->st, 2, from);
    sqlite3_bind_int64(it->st, 3, to);
    return 0;
}

int st_blocks_next(st_block_iter *it, st_block *b, int want_data, an_err *err)
{
    for (;;) {
        int r = sqlite3_step(it->st);
        if (r == SQLITE_DONE)
            return 0;
        if (r != SQLITE_ROW)
            return st_fail(it->s, r, "reading metric blocks", err);
        sqlite3_stmt *st = it->st;
        b->first = sqlite3_column_int64(st, 0);
        b->last = sqlite3_column_int64(st, 1);
        int64_t n = sqlite3_column_int64(st, 2);
        int64_t ng = sqlite3_column_int64(st, 3);
        b->data = NULL;
        if (n < 1 || n > ST_BLOCK_CAP || ng < 0 || ng > STORE_MAX_LR || b->last < b->first ||
            (uint64_t)(b->last - b->first) < (uint64_t)(n - 1))
            return an_failc(err, -EPROTO, NULL,
                            "expected a metric block of 1..%d rows with distinct steps, got %"
                            PRId64 " rows over steps %" PRId64 "..%" PRId64 " with %" PRId64
                            " lr groups", ST_BLOCK_CAP, n, b->first, b->last, ng);
        b->n = (size_t)n;
        b->ng = (int)ng;
        b->sparse = (uint64_t)(b->last - b->first) != (uint64_t)(n - 1);
        if (b->last < it->from) {
            if (it->desc)
                return 0; /* every block further down ends before the range too */
            continue;     /* the block before the range */
        }
        if (want_data || b->sparse) {
            const void *p = sqlite3_column_blob(st, 4);
            size_t len = (size_t)sqlite3_column_bytes(st, 4);
            if (!p && sqlite3_errcode(it->s->db) == SQLITE_NOMEM)
                return an_failc(err, -ENOMEM, NULL, "out of memory reading a metric block");
            if (p && sqlite3_column_type(st, 5) != SQLITE_NULL) {
                /* Compressed: decode into the connection's scratch buffer. */
                int64_t raw = sqlite3_column_int64(st, 5);
                unsigned char *dec = NULL;
                int u = raw > 0 && raw <= (int64_t)(8 * (size_t)(5 + STORE_MAX_LR) * ST_BLOCK_CAP)
                            ? st_block_unpack(it->s, p, len, (size_t)raw, mask_len(b->ng), &dec)
                            : -EPROTO;
                if (u == -ENOMEM)
                    return an_failc(err, -ENOMEM, NULL, "out of memory decoding a metric block");
                p = u ? NULL : dec;
                len = u ? 0 : (size_t)raw;
            }
            b->data = p;
            if (!p || layout(b, len) != 0)
                return an_failc(err, -EPROTO, NULL,
                                "expected a metric block at step %" PRId64 " of %zu rows with "
                                "%d lr groups, got a %zu-byte blob that does not match",
                                b->first, b->n, b->ng, len);
            if (b->sparse && (st_block_step(b, 0) != b->first ||
                              st_block_step(b, b->n - 1) != b->last))
                return an_failc(err, -EPROTO, NULL,
                                "expected the metric block at step %" PRId64 " to start there "
                                "and end at %" PRId64 ", its steps say %" PRId64 "..%" PRId64,
                                b->first, b->last, st_block_step(b, 0),
                                st_block_step(b, b->n - 1));
        }
        return 1;
    }
}

void st_blocks_close(st_block_iter *it)
{
    if (it->st)
        sqlite3_reset(it->st);
    it->st = NULL;
}

/* ---- writing ------------------------------------------------------------------------- */

/* Value c (ST_COL_*, or ST_COL_LR + g) of a row as it is stored. */
static double col_val(const store_metric *m, size_t c)
{
    switch (c) {
    case ST_COL_LOSS: return canon(m->loss);
    case ST_COL_GRAD_NORM: return canon(m->grad_norm);
    case ST_COL_TIME: return canon(m->time);
    case ST_COL_WALL: return canon(m->wall);
    default: return m->lr[c - ST_COL_LR];
    }
}

/* Packs rows[0..n) (n <= ST_BLOCK_CAP, same n_lr = ng, distinct increasing steps) into buf
 * (room for the all-columns-per-row size); returns the bytes used. */
static size_t encode(unsigned char *buf, const store_metric *const *rows, size_t n, int ng,
                     int sparse)
{
    size_t ncol = 4 + (size_t)ng, ml = mask_len(ng);
    unsigned char *p = buf + ml;
    memset(buf, 0, ml);
    if (sparse)
        for (size_t i = 0; i < n; i++, p += 8)
            le_put_u64(p, (uint64_t)rows[i]->step);
    for (size_t c = 0; c < ncol; c++) {
        unsigned char *start = p;
        uint64_t u0, u;
        double v = col_val(rows[0], c);
        memcpy(&u0, &v, 8);
        int constant = 1;
        for (size_t i = 0; i < n; i++, p += 8) {
            v = col_val(rows[i], c);
            memcpy(&u, &v, 8);
            constant &= u == u0;
            le_put_u64(p, u);
        }
        if (constant) {
            buf[c / 8] |= (unsigned char)(1u << (c % 8));
            p = start + 8;
        }
    }
    return (size_t)(p - buf);
}

int st_blocks_write(store_t *s, int64_t num, const store_metric *const *rows, size_t n,
                    an_err *err)
{
    int rc = 0;
    unsigned char stackbuf[16384];
    unsigned char *heap = NULL;
    size_t heapcap = 0;
    for (size_t i = 0; !rc && i < n;) {
        int ng = rows[i]->n_lr;
        size_t j = i + 1;
        while (j < n && j - i < ST_BLOCK_CAP && rows[j]->n_lr == ng)
            j++;
        size_t k = j - i;
        int64_t first = rows[i]->step, last = rows[j - 1]->step;
        int sparse = (uint64_t)(last - first) != (uint64_t)(k - 1);
        size_t len = mask_len(ng) + (sparse ? 8 * k : 0) + (size_t)(4 + ng) * 8 * k;
        unsigned char *buf = stackbuf;
        if (len > sizeof stackbuf) {
            if (len > heapcap) {
                free(heap);
                heap = malloc(len);
                heapcap = heap ? len : 0;
                if (!heap) {
                    rc = an_failc(err, -ENOMEM, NULL, "out of memory packing %zu metric rows",
                                  k);
                    break;
                }
            }
            buf = heap;
        }
        len = encode(buf, rows + i, k, ng, sparse);
        unsigned char *z = NULL;
        size_t zlen = 0;
        int pr = s->plain_blocks ? -EINVAL : st_block_pack(s, buf, len, mask_len(ng), &z, &zlen);
        if (pr == -ENOMEM) {
            rc = an_failc(err, -ENOMEM, NULL, "out of memory compressing %zu metric rows", k);
            break;
        }
        int packed = pr == 0 && zlen < len; /* else the layout as it is */
        sqlite3_stmt *st = st_stmt(s, ST_BLOCK_INSERT,
                                   "INSERT INTO metric_blocks(job, first_step, last_step, nrows,"
                                   " ngroups, data, raw) VALUES(?,?,?,?,?,?,?)",
                                   &rc, err);
        if (!st)
            break;
        sqlite3_bind_int64(st, 1, num);
        sqlite3_bind_int64(st, 2, first);
        sqlite3_bind_int64(st, 3, last);
        sqlite3_bind_int64(st, 4, (int64_t)k);
        sqlite3_bind_int(st, 5, ng);
        if (packed) {
            sqlite3_bind_blob(st, 6, z, (int)zlen, SQLITE_STATIC);
            sqlite3_bind_int64(st, 7, (int64_t)len);
        } else {
            sqlite3_bind_blob(st, 6, buf, (int)len, SQLITE_STATIC);
        }
        int r = sqlite3_step(st);
        sqlite3_reset(st);
        sqlite3_clear_bindings(st); /* the blob is ours and about to go */
        if (r != SQLITE_DONE)
            rc = st_fail(s, r, "storing metric rows", err);
        if (!rc)
            rc = st_summary_put(s, num, rows + i, k, err);
        i = j;
    }
    free(heap);
    return rc;
}

/* Runs "DELETE FROM metric_blocks WHERE job=?1 AND first_step <op> ?2". */
static int delete_blocks(store_t *s, const char *sql, int64_t num, int64_t step, an_err *err)
{
    sqlite3_stmt *st;
    int rc = st_prepare(s, sql, &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, num);
    sqlite3_bind_int64(st, 2, step);
    int r = sqlite3_step(st);
    if (r != SQLITE_DONE)
        rc = st_fail(s, r, "deleting metric blocks", err);
    sqlite3_finalize(st);
    return rc;
}

/* The stored block starting at `first`, decoded into a malloc'd array (*out, *n rows). */
static int read_block(store_t *s, int64_t num, int64_t first, store_metric **out, size_t *n,
                      an_err *err)
{
    st_block_iter it;
    st_block b;
    *out = NULL;
    *n = 0;
    int rc = st_blocks_open(s, &it, num, first, first, 0, err);
    if (rc)
        return rc;
    int r = st_blocks_next(&it, &b, 1, err);
    if (r == 1 && b.first != first)
        r = 0;
    if (r == 1) {
        *out = malloc(b.n * sizeof **out);
        if (!*out) {
            rc = an_failc(err, -ENOMEM, NULL, "out of memory decoding %zu metric rows", b.n);
        } else {
            for (size_t i = 0; i < b.n; i++)
                st_block_row(&b, i, &(*out)[i]);
            *n = b.n;
        }
    } else if (r == 0) {
        rc = an_failc(err, -EPROTO, NULL, "the metric block at step %" PRId64 " went missing",
                      first);
    } else {
        rc = r;
    }
    st_blocks_close(&it);
    return rc;
}

/* Rewrites the stored block starting at `first` with rows[0..n) (inside its span) merged in;
 * a new row replaces the stored one at the same step. */
static int merge_block(store_t *s, int64_t num, int64_t first, const store_metric *const *rows,
                       size_t n, an_err *err)
{
    store_metric *old;
    size_t nold;
    int rc = read_block(s, num, first, &old, &nold, err);
    if (rc)
        return rc;
    const store_metric **all = malloc((nold + n) * sizeof *all);
    if (!all) {
        free(old);
        return an_failc(err, -ENOMEM, NULL, "out of memory merging metric rows");
    }
    size_t i = 0, j = 0, k = 0;
    while (i < nold || j < n) {
        if (j == n || (i < nold && old[i].step < rows[j]->step)) {
            all[k++] = &old[i++];
        } else {
            if (i < nold && old[i].step == rows[j]->step)
                i++; /* replaced */
            all[k++] = rows[j++];
        }
    }
    rc = delete_blocks(s, "DELETE FROM metric_blocks WHERE job=?1 AND first_step=?2", num,
                       first, err);
    if (!rc)
        rc = st_blocks_write(s, num, all, k, err);
    free(all);
    free(old);
    return rc;
}

/* Orders by step, and for equal steps by position (so the last one written wins). */
static int by_step(const void *a, const void *b)
{
    const store_metric *x = *(const store_metric *const *)a;
    const store_metric *y = *(const store_metric *const *)b;
    if (x->step != y->step)
        return x->step < y->step ? -1 : 1;
    return x < y ? -1 : x > y;
}

typedef struct span {
    int64_t first, last;
} span;

int st_metrics_put(store_t *s, int64_t num, const store_metric *rows, size_t n, an_err *err)
{
    if (n == 0)
        return 0;
    const store_metric **p = malloc(n * sizeof *p);
    if (!p)
        return an_failc(err, -ENOMEM, NULL, "out of memory for %zu metric rows", n);
    int sorted = 1;
    for (size_t i = 0; i < n; i++) {
        p[i] = &rows[i];
        sorted &= i == 0 || rows[i].step > rows[i - 1].step;
    }
    size_t m = n;
    if (!sorted) {
        /* The rows are one array, so comparing addresses orders equal steps by position. */
        qsort(p, n, sizeof *p, by_step);
        m = 0;
        for (size_t i = 0; i < n; i++) {
            if (m > 0 && p[m - 1]->step == p[i]->step)
                m--; /* the later row for the step wins */
            p[m++] = p[i];
        }
    }
    int64_t lo = p[0]->step, hi = p[m - 1]->step;

    /* Does any stored block reach into [lo, hi]? Spans are disjoint, so only the last block
     * starting at or before hi can. */
    int rc;
    int overlap = 0;
    sqlite3_stmt *st = st_stmt(s, ST_BLOCK_BEFORE,
                               "SELECT last_step FROM metric_blocks WHERE job=?1 AND"
                               " first_step<=?2 ORDER BY first_step DESC LIMIT 1",
                               &rc, err);
    if (st) {
        sqlite3_bind_int64(st, 1, num);
        sqlite3_bind_int64(st, 2, hi);
        int r = sqlite3_step(st);
        if (r == SQLITE_ROW)
            overlap = sqlite3_column_int64(st, 0) >= lo;
        else if (r != SQLITE_DONE)
            rc = st_fail(s, r, "looking up metric blocks", err);
        sqlite3_reset(st);
    }
    if (!rc && !overlap) {
        rc = st_blocks_write(s, num, p, m, err);
        if (!rc && !s->no_pyramid) /* new steps only: they merge into the pyramid exactly */
            rc = st_pyr_add(s, num, p, m, err);
        free(p);
        return rc;
    }

    /* Replacement: the spans of every block the batch reaches into, then, in step order, new
     * blocks for the rows between them and a rewrite of each block that gets rows. */
    span *sp = NULL;
    size_t nsp = 0, capsp = 0;
    st_block_iter it;
    st_block b;
    if (!rc)
        rc = st_blocks_open(s, &it, num, lo, hi, 0, err);
    if (!rc) {
        int r;
        while ((r = st_blocks_next(&it, &b, 0, err)) == 1) {
            if (nsp == capsp) {
                size_t nc = capsp ? capsp * 2 : 16;
                span *ns = realloc(sp, nc * sizeof *ns);
                if (!ns) {
                    r = an_failc(err, -ENOMEM, NULL, "out of memory listing metric blocks");
                    break;
                }
                sp = ns;
                capsp = nc;
            }
            sp[nsp++] = (span){b.first, b.last};
        }
        if (r < 0)
            rc = r;
        st_blocks_close(&it);
    }
    size_t i = 0;
    for (size_t k = 0; !rc && k < nsp; k++) {
        size_t j = i;
        while (j < m && p[j]->step < sp[k].first)
            j++;
        if (j > i)
            rc = st_blocks_write(s, num, p + i, j - i, err);
        i = j;
        while (j < m && p[j]->step <= sp[k].last)
            j++;
        if (!rc && j > i)
            rc = merge_block(s, num, sp[k].first, p + i, j - i, err);
        i = j;
    }
    if (!rc && i < m)
        rc = st_blocks_write(s, num, p + i, m - i, err);
    if (!rc) /* stored steps were replaced: their buckets are recomputed */
        rc = st_pyr_rebuild(s, num, lo, hi, err);
    free(sp);
    free(p);
    return rc;
}

int st_metrics_truncate(store_t *s, int64_t num, int64_t step, an_err *err)
{
    /* The block straddling `step` keeps its rows up to it. */
    st_block_iter it;
    st_block b;
    store_metric *keep = NULL;
    size_t nkeep = 0;
    int64_t first = 0;
    int rc = st_blocks_open(s, &it, num, step, step, 1, err);
    if (rc)
        return rc;
    int r = st_blocks_next(&it, &b, 1, err);
    if (r < 0) {
        rc = r;
    } else if (r == 1 && b.last > step) {
        first = b.first;
        nkeep = st_block_upper(&b, step);
        keep = malloc((nkeep ? nkeep : 1) * sizeof *keep);
        if (!keep)
            rc = an_failc(err, -ENOMEM, NULL, "out of memory decoding metric rows");
        for (size_t i = 0; keep && i < nkeep; i++)
            st_block_row(&b, i, &keep[i]);
    }
    st_blocks_close(&it);
    if (!rc)
        rc = delete_blocks(s, "DELETE FROM metric_blocks WHERE job=?1 AND first_step>?2", num,
                           step, err);
    if (!rc && keep) {
        rc = delete_blocks(s, "DELETE FROM metric_blocks WHERE job=?1 AND first_step=?2", num,
                           first, err);
        const store_metric **pk = malloc((nkeep ? nkeep : 1) * sizeof *pk);
        if (!rc && !pk)
            rc = an_failc(err, -ENOMEM, NULL, "out of memory rewriting metric rows");
        for (size_t i = 0; !rc && i < nkeep; i++)
            pk[i] = &keep[i];
        if (!rc)
            rc = st_blocks_write(s, num, pk, nkeep, err);
        free(pk);
    }
    free(keep);
    if (!rc)
        rc = st_pyr_truncate(s, num, step, err);
    return rc;
}

int st_metric_at(store_t *s, int64_t num, int64_t step, store_metric *m, int *found,
                 an_err *err)
{
    st_block_iter it;
    st_block b;
    *found = 0;
    int rc = st_blocks_open(s, &it, num, step, step, 1, err);
    if (rc)
        return rc;
    int r = st_blocks_next(&it, &b, 1, err);
    if (r < 0) {
        rc = r;
    } else if (r == 1) {
        size_t i = st_block_lower(&b, step);
        if (i < b.n && st_block_step(&b, i) == step) {
            st_block_row(&b, i, m);
            *found = 1;
        }
    }
    st_blocks_close(&it);
    return rc;
}
