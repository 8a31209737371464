/* test_store_blocks — metric rows stored as blocks: ranges that start and end inside blocks,
 * batches split at the block cap, replacement of steps inside stored blocks, rewind inside a
 * block, many small batches against one big batch, mixed lr group counts, damaged blocks,
 * and the migration of a schema-1 database (one row per step) into blocks.
 *
 * Every check compares against a model: an array holding what each step should read back,
 * kept by the test alongside the calls. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store_fixture.h"

#define MAXSTEP 20000

/* What the store should hold for one job: present[s] and row[s] for each step s. */
typedef struct model {
    unsigned char present[MAXSTEP + 1];
    store_metric row[MAXSTEP + 1];
} model;

static int64_t scalar(store_t *s, const char *sql)
{
    sqlite3_stmt *st;
    int64_t v = -1;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return -2;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* A row whose every value depends on the step and a variant (so replaced rows differ). */
static store_metric gen(int64_t step, int variant, int groups)
{
    store_metric m;
    memset(&m, 0, sizeof m);
    uint64_t h = (uint64_t)(step * 7919 + variant * 104729) * 0x9E3779B97F4A7C15ull;
    h ^= h >> 31;
    m.step = step;
    m.loss = 1.0 / (1.0 + 0.01 * (double)step) + (double)(h % 1000) * 1e-4 + variant;
    if (step % 613 == 0)
        m.loss = NAN;
    m.grad_norm = (step % 5 == 0) ? NAN : (double)(h % 977) / 7.0;
    m.time = (double)step * 0.0137 + variant;
    m.wall = 1.7e9 + (double)step * 0.25;
    m.n_lr = groups;
    for (int g = 0; g < groups; g++)
        m.lr[g] = 1e-3 * (g + 1) / (1.0 + (double)step) + variant;
    return m;
}

static int same(double a, double b) { return (isnan(a) && isnan(b)) || a == b; }

static void put(fixture *f, const char *id, model *md, const store_metric *rows, size_t n)
{
    an_err e;
    assert_int_equal(store_metrics_append(&f->s, id, rows, n, NULL, &e), 0);
    for (size_t i = 0; i < n; i++) {
        md->present[rows[i].step] = 1;
        md->row[rows[i].step] = rows[i];
    }
}

/* Appends steps [a, b] of variant v in batches of `batch`. */
static void put_range(fixture *f, const char *id, model *md, int64_t a, int64_t b,
                      size_t batch, int v, int groups)
{
    store_metric *rows = malloc(batch * sizeof *rows);
    assert_non_null(rows);
    for (int64_t s = a; s <= b;) {
        size_t k = 0;
        for (; k < batch && s <= b; k++, s++)
            rows[k] = gen(s, v, groups);
        put(f, id, md, rows, k);
    }
    free(rows);
}

/* Every row of [from, to] equals the model (max_points 0), with n_lr of the first row. */
static void check_range(fixture *f, const char *id, const model *md, int64_t from, int64_t to)
{
    an_err e;
    store_series m;
    assert_int_equal(store_metrics_query(&f->s, id, from, to, 0, &m, &e), 0);
    size_t i = 0;
    int n_lr = -1;
    for (int64_t s = from < 0 ? 0 : from; s <= to && s <= MAXSTEP; s++) {
        if (!md->present[s])
            continue;
        const store_metric *r = &md->row[s];
        if (n_lr < 0)
            n_lr = r->n_lr;
        assert_true(i < m.n);
        assert_int_equal(m.step[i], s);
        assert_true(same(m.loss[i], r->loss));
        assert_true(same(m.grad_norm[i], r->grad_norm));
        assert_true(same(m.time[i], r->time));
        assert_true(same(m.wall[i], r->wall));
        for (int g = 0; g < n_lr; g++)
            assert_true(same(m.lr[(size_t)g * m.n + i], g < r->n_lr ? r->lr[g] : NAN));
        i++;
    }
    assert_int_equal(m.n, i);
    assert_int_equal(m.n_lr, n_lr < 0 ? 0 : n_lr);
    store_series_free(&m);
}

/* The documented downsampling rule, computed from the model. */
static void check_downsample(fixture *f, const char *id, const model *md, int64_t from,
                             int64_t to, size_t maxp)
{
    an_err e;
    int64_t first = -1, last = -1, count = 0;
    for (int64_t s = from; s <= to && s <= MAXSTEP; s++) {
        if (md->present[s]) {
            if (first < 0)
                first = s;
            last = s;
            count++;
        }
    }
    store_series m;
    assert_int_equal(store_metrics_query(&f->s, id, from, to, maxp, &m, &e), 0);
    if (count <= (int64_t)maxp) {
        assert_int_equal(m.n, count);
        store_series_free(&m);
        return;
    }
    int nsel = maxp < 4 ? (int)maxp : 4;
    int64_t B = (int64_t)maxp / nsel, W = (last - first + B) / B;
    size_t k = 0;
    for (int64_t s0 = first; s0 <= last; s0 += W) {
        int64_t imin = -1, imax = -1, ifirst = -1, ilast = -1;
        double vmin = 0, vmax = 0;
        for (int64_t s = s0; s < s0 + W && s <= last; s++) {
            if (!md->present[s])
                continue;
            double v = md->row[s].loss;
            ilast = s;
            if (imin < 0) {
                ifirst = imin = imax = s;
                vmin = vmax = v;
            } else if (!isnan(v) && (isnan(vmin) || v < vmin)) {
                imin = s;
                vmin = v;
            } else if (!isnan(vmax) && (isnan(v) || v > vmax)) {
                imax = s;
                vmax = v;
            }
        }
        if (imin < 0)
            continue;
        /* first, last, min, max: the first nsel of them, each step once, in step order */
        int64_t c[4] = {ifirst, ilast, imin, imax}, pick[4];
        int np = 0;
        for (int q = 0; q < nsel; q++) {
            int dup = 0;
            for (int j = 0; j < np; j++)
                dup |= pick[j] == c[q];
            if (!dup)
                pick[np++] = c[q];
        }
        for (int x = 1; x < np; x++)
            for (int j = x; j > 0 && pick[j] < pick[j - 1]; j--) {
                int64_t t = pick[j];
                pick[j] = pick[j - 1];
                pick[j - 1] = t;
            }
        for (int j = 0; j < np; j++) {
            assert_true(k < m.n);
            assert_int_equal(m.step[k], pick[j]);
            assert_true(same(m.time[k], md->row[pick[j]].time));
            assert_true(same(m.wall[k], md->row[pick[j]].wall));
            assert_true(same(m.loss[k], md->row[pick[j]].loss));
            k++;
        }
    }
    /* The range's first and last rows are always there. */
    assert_true(m.n >= 2);
    assert_int_equal(m.step[0], first);
    assert_int_equal(m.step[m.n - 1], last);
    assert_true(m.n <= maxp);
    assert_int_equal(m.n, k);
    store_series_free(&m);
}

static void test_ranges_inside_blocks(void **state)
{
    fixture *f = *state;
    model *md = calloc(1, sizeof *md);
    char id[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "r", NULL, id), 0);
    put_range(f, id, md, 1, 2000, 37, 0, 2); /* blocks of 37: ends fall everywhere */
    const int64_t ends[][2] = {{1, 37}, {1, 38}, {5, 20}, {36, 38}, {37, 37}, {38, 38},
                               {20, 1000}, {74, 75}, {0, 0}, {1999, 2000}, {2000, 5000},
                               {2001, 3000}, {0, -1}, {1500, -1}};
    for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
        int64_t to = ends[i][1] < 0 ? MAXSTEP : ends[i][1];
        check_range(f, id, md, ends[i][0], to);
        check_downsample(f, id, md, ends[i][0], to, 100);
        check_downsample(f, id, md, ends[i][0], to, 7);
    }
    an_err e;
    int64_t c;
    assert_int_equal(store_metrics_count(&f->s, id, &c, &e), 0);
    assert_int_equal(c, 2000);
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM metric_blocks"), (2000 + 36) / 37);
    free(md);
}

/* A batch above the cap is stored as several blocks; the content is the same. */
static void test_big_batch_splits(void **state)
{
    fixture *f = *state;
    model *md = calloc(1, sizeof *md);
    char id[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "big", NULL, id), 0);
    put_range(f, id, md, 1, 10000, 10000, 0, 1);
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM metric_blocks"), 3);
    assert_int_equal(scalar(&f->s, "SELECT max(nrows) FROM metric_blocks"), 4096);
    assert_int_equal(scalar(&f->s, "SELECT sum(nrows) FROM metric_blocks"), 10000);
    check_range(f, id, md, 4090, 4200);
    check_range(f, id, md, 1, 10000);
    check_downsample(f, id, md, 0, 10000, 2000);
    free(md);
}

/* The same rows appended in many small batches and in one big one read back the same. */
static void test_small_and_big_batches_agree(void **state)
{
    fixture *f = *state;
    model *ma = calloc(1, sizeof *ma), *mb = calloc(1, sizeof *mb);
    char a[STORE_ID_LEN], b[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "small", NULL, a), 0);
    assert_int_equal(make_job(&f->s, "big", NULL, b), 0);
    /* Batches of 1, 2, 3, …: sizes that never line up with anything. */
    size_t sz = 1;
    for (int64_t s = 1; s <= 9000; s += (int64_t)sz, sz = sz % 97 + 1)
        put_range(f, a, ma, s, s + (int64_t)sz - 1 > 9000 ? 9000 : s + (int64_t)sz - 1, sz, 0, 3);
    put_range(f, b, mb, 1, 9000, 9000, 0, 3);
    assert_true(scalar(&f->s, "SELECT count(*) FROM metric_blocks WHERE job=1") > 100);
    const int64_t r[][2] = {{0, -1}, {1, 1}, {17, 4500}, {4096, 4097}, {8999, 12000}};
    const size_t mp[] = {0, 2, 301, 2000};
    an_err e;
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
        for (size_t k = 0; k < sizeof mp / sizeof mp[0]; k++) {
            store_series x, y;
            assert_int_equal(store_metrics_query(&f->s, a, r[i][0], r[i][1], mp[k], &x, &e), 0);
            assert_int_equal(store_metrics_query(&f->s, b, r[i][0], r[i][1], mp[k], &y, &e), 0);
            assert_int_equal(x.n, y.n);
            assert_int_equal(x.n_lr, y.n_lr);
            assert_true(x.n > 0);
            assert_memory_equal(x.step, y.step, x.n * sizeof *x.step);
            assert_memory_equal(x.loss, y.loss, x.n * sizeof *x.loss);
            assert_memory_equal(x.lr, y.lr, x.n * (size_t)x.n_lr * sizeof *x.lr);
            assert_memory_equal(x.grad_norm, y.grad_norm, x.n * sizeof *x.grad_norm);
            assert_memory_equal(x.time, y.time, x.n * sizeof *x.time);
            assert_memory_equal(x.wall, y.wall, x.n * sizeof *x.wall);
            store_series_free(&x);
            store_series_free(&y);
        }
        char *ca, *cb;
        size_t la, lb;
        assert_int_equal(store_metrics_csv_buf(&f->s, a, r[i][0], r[i][1], &ca, &la, &e), 0);
        assert_int_equal(store_metrics_csv_buf(&f->s, b, r[i][0], r[i][1], &cb, &lb, &e), 0);
        assert_int_equal(la, lb);
        assert_string_equal(ca, cb);
        free(ca);
        free(cb);
    }
    check_range(f, a, ma, 0, MAXSTEP);
    check_downsample(f, a, ma, 3, 8000, 301);
    free(ma);
    free(mb);
}

/* Steps written again replace the stored ones, inside a block, across two blocks, in an
 * unsorted batch with a duplicate step, and past the end of the stored history. */
static void test_replace_inside_blocks(void **state)
{
    fixture *f = *state;
    model *md = calloc(1, sizeof *md);
    char id[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "rep", NULL, id), 0);
    put_range(f, id, md, 1, 1000, 500, 0, 2); /* blocks 1..500, 501..1000 */

    store_metric one = gen(250, 1, 2);
    put(f, id, md, &one, 1);
    check_range(f, id, md, 240, 260);

    store_metric some[3] = {gen(100, 2, 2), gen(250, 2, 2), gen(499, 2, 2)};
    put(f, id, md, some, 3);
    put_range(f, id, md, 450, 550, 101, 3, 2); /* across the two blocks */

    /* Unsorted, with step 700 twice: the later one wins. */
    store_metric mixed[4] = {gen(900, 4, 2), gen(700, 4, 2), gen(600, 4, 2), gen(700, 5, 2)};
    assert_int_equal(store_metrics_append(&f->s, id, mixed, 4, NULL, NULL), 0);
    md->row[900] = mixed[0];
    md->row[600] = mixed[2];
    md->row[700] = mixed[3];

    /* Sparse, partly over the end and beyond it. */
    store_metric tail[4] = {gen(999, 6, 2), gen(1000, 6, 2), gen(1001, 6, 2), gen(1500, 6, 2)};
    put(f, id, md, tail, 4);

    check_range(f, id, md, 0, MAXSTEP);
    check_downsample(f, id, md, 0, MAXSTEP, 50);
    an_err e;
    int64_t c;
    assert_int_equal(store_metrics_count(&f->s, id, &c, &e), 0);
    assert_int_equal(c, 1002);
    /* Spans stay disjoint. */
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM metric_blocks a JOIN metric_blocks b"
                                   " ON a.job=b.job AND a.id<>b.id AND a.first_step<=b.last_step"
                                   " AND b.first_step<=a.last_step"), 0);

    /* A replacement batch with a bad row changes nothing. */
    store_metric bad[2] = {gen(10, 9, 2), gen(11, 9, 2)};
    bad[1].n_lr = STORE_MAX_LR + 1;
    assert_int_equal(store_metrics_append(&f->s, id, bad, 2, NULL, &e), -EINVAL);
    check_range(f, id, md, 5, 15);
    free(md);
}

/* Rewinding inside a block keeps that block's rows up to the step. */
static void test_rewind_inside_block(void **state)
{
    fixture *f = *state;
    model *md = calloc(1, sizeof *md);
    char id[STORE_ID_LEN];
    an_err e;
    assert_int_equal(make_job(&f->s, "rw", NULL, id), 0);
    put_range(f, id, md, 1, 1000, 100, 0, 1);
    assert_int_equal(store_job_set_state(&f->s, id, STORE_MASK_ALL, STORE_FAILED, NULL, NULL, &e), 0);
    assert_int_equal(store_job_rewind(&f->s, id, 250, STORE_QUEUED, &e), 0);
    for (int64_t s = 251; s <= 1000; s++)
        md->present[s] = 0;
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM metric_blocks"), 3);
    assert_int_equal(scalar(&f->s, "SELECT max(last_step) FROM metric_blocks"), 250);
    assert_int_equal(scalar(&f->s, "SELECT nrows FROM metric_blocks WHERE first_step=201"), 50);
    check_range(f, id, md, 0, MAXSTEP);
    store_job j;
    assert_int_equal(store_job_get(&f->s, id, &j, &e), 0);
    assert_int_equal(j.step, 250);
    assert_true(j.loss == md->row[250].loss);
    assert_int_equal(j.n_lr, 1);
    assert_true(j.lr[0] == md->row[250].lr[0]);
    store_job_free(&j);

    /* The resumed run appends after it as usual. */
    put_range(f, id, md, 251, 400, 100, 7, 1);
    check_range(f, id, md, 0, MAXSTEP);
    check_downsample(f, id, md, 0, MAXSTEP, 20);

    /* Rewind at a block's last step and at a step with no row (sparse history). */
    assert_int_equal(store_job_rewind(&f->s, id, 350, STORE_QUEUED, &e), 0);
    for (int64_t s = 351; s <= 400; s++)
        md->present[s] = 0;
    check_range(f, id, md, 0, MAXSTEP);
    store_metric sp[3] = {gen(360, 0, 1), gen(380, 0, 1), gen(390, 0, 1)};
    put(f, id, md, sp, 3);
    assert_int_equal(store_job_rewind(&f->s, id, 385, STORE_RUNNING, &e), 0);
    md->present[390] = 0;
    check_range(f, id, md, 0, MAXSTEP);
    assert_int_equal(store_job_get(&f->s, id, &j, &e), 0);
    assert_true(isnan(j.loss)); /* no row at 385 */
    store_job_free(&j);
    int64_t c;
    assert_int_equal(store_metrics_count(&f->s, id, &c, &e), 0);
    assert_int_equal(c, 352);
    free(md);
}

/* Rows of one batch with different lr group counts keep their own counts. */
static void test_mixed_groups(void **state)
{
    fixture *f = *state;
    model *md = calloc(1, sizeof *md);
    char id[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "g", NULL, id), 0);
    store_metric rows[6] = {gen(1, 0, 2), gen(2, 0, 2), gen(3, 0, 1),
                            gen(4, 0, 0), gen(5, 0, 3), gen(6, 0, 3)};
    put(f, id, md, rows, 6);
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM metric_blocks"), 4);
    for (int64_t s = 1; s <= 6; s++)
        check_range(f, id, md, s, 6);
    an_err e;
    char *csv;
    size_t len;
    assert_int_equal(store_metrics_csv_buf(&f->s, id, 4, 4, &csv, &len, &e), 0);
    assert_memory_equal(csv, "step,loss,grad_norm,time\n4,", 27);
    free(csv);
    assert_int_equal(store_metrics_csv_buf(&f->s, id, 3, 5, &csv, &len, &e), 0);
    assert_memory_equal(csv, "step,loss,lr0,grad_norm,time\n3,", 31);
    free(csv);
    free(md);
}

/* A block whose blob does not match its columns is reported, not misread. */
static void test_damaged_block(void **state)
{
    fixture *f = *state;
    model *md = calloc(1, sizeof *md);
    char id[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "bad", NULL, id), 0);
    put_range(f, id, md, 1, 300, 100, 0, 1);
    assert_int_equal(sqlite3_exec(f->s.db, "UPDATE metric_blocks SET data=x'0011' WHERE first_step=101",
                                  NULL, NULL, NULL), SQLITE_OK);
    an_err e;
    store_series m;
    assert_int_equal(store_metrics_query(&f->s, id, 0, -1, 0, &m, &e), -EPROTO);
    assert_int_equal(store_metrics_query(&f->s, id, 0, -1, 10, &m, &e), -EPROTO);
    char *csv;
    size_t len;
    assert_int_equal(store_metrics_csv_buf(&f->s, id, 0, -1, &csv, &len, &e), -EPROTO);
    assert_null(csv);
    /* Ranges that miss it still work. */
    check_range(f, id, md, 1, 100);
    check_range(f, id, md, 201, 300);
    /* Columns that contradict each other too. */
    assert_int_equal(sqlite3_exec(f->s.db, "UPDATE metric_blocks SET nrows=5000 WHERE first_step=1",
                                  NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(store_metrics_query(&f->s, id, 1, 50, 0, &m, &e), -EPROTO);
    free(md);
}

/* A byte of a stored block changed (a damaged page): every read of it fails; none gives back
 * other numbers. Blocks are compressed with a checksum of their content. */
static void test_block_bytes_are_checked(void **state)
{
    fixture *f = *state;
    model *md = calloc(1, sizeof *md);
    char id[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "flip", NULL, id), 0);
    put_range(f, id, md, 1, 3000, 1000, 0, 2);
    an_err e;
    store_series ref;
    assert_int_equal(store_metrics_query(&f->s, id, 1001, 2000, 0, &ref, &e), 0);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(f->s.db, "SELECT data FROM metric_blocks WHERE "
                                        "first_step=1001", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int len = sqlite3_column_bytes(st, 0);
    unsigned char *good = malloc((size_t)len), *bad = malloc((size_t)len);
    memcpy(good, sqlite3_column_blob(st, 0), (size_t)len);
    sqlite3_finalize(st);
    assert_true(len > 100);
    int failed = 0;
    for (int i = 0; i < len; i += 5) {
        memcpy(bad, good, (size_t)len);
        bad[i] ^= 0x10;
        assert_int_equal(sqlite3_prepare_v2(f->s.db, "UPDATE metric_blocks SET data=?1 WHERE "
                                            "first_step=1001", -1, &st, NULL), SQLITE_OK);
        sqlite3_bind_blob(st, 1, bad, len, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        sqlite3_finalize(st);
        store_series m;
        int rc = store_metrics_query(&f->s, id, 1001, 2000, 0, &m, &e);
        if (rc) {
            assert_int_equal(rc, -EPROTO);
            failed++;
            continue;
        }
        /* read without an error: then only with the same bits */
        assert_int_equal(m.n, ref.n);
        assert_memory_equal(m.loss, ref.loss, ref.n * sizeof *ref.loss);
        assert_memory_equal(m.lr, ref.lr, (size_t)ref.n_lr * ref.n * sizeof *ref.lr);
        assert_memory_equal(m.grad_norm, ref.grad_norm, ref.n * sizeof *ref.grad_norm);
        assert_memory_equal(m.time, ref.time, ref.n * sizeof *ref.time);
        store_series_free(&m);
    }
    assert_true(failed > 0);
    store_series_free(&ref);
    free(good);
    free(bad);
    free(md);
}

/* Columns with one value for a whole block are stored once and read back for every row. */
static void test_constant_columns(void **state)
{
    fixture *f = *state;
    model *md = calloc(1, sizeof *md);
    char id[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "k", NULL, id), 0);
    store_metric rows[100];
    for (int i = 0; i < 100; i++) {
        rows[i] = gen(i + 1, 0, 3);
        rows[i].grad_norm = NAN; /* not measured */
        rows[i].lr[0] = 1e-3;    /* a flat group */
        rows[i].lr[2] = -0.0;    /* the same bits throughout, too */
    }
    rows[99].lr[2] = 0.0; /* equal as a number, other bits: not constant */
    put(f, id, md, rows, 100);
    /* mask (1 byte for 7 columns) + loss, time, wall, lr1, lr2 per row + grad_norm, lr0 once */
    assert_int_equal(scalar(&f->s, "SELECT coalesce(raw, length(data)) FROM metric_blocks"), 1 + 5 * 800 + 2 * 8);
    check_range(f, id, md, 0, MAXSTEP);
    check_range(f, id, md, 50, 60);
    an_err e;
    store_series m;
    assert_int_equal(store_metrics_query(&f->s, id, 99, 100, 0, &m, &e), 0);
    assert_true(signbit(m.lr[2 * m.n]) && !signbit(m.lr[2 * m.n + 1]));
    store_series_free(&m);
    /* A single-row block: every column is "constant". */
    store_metric one = gen(200, 0, 1);
    put(f, id, md, &one, 1);
    assert_int_equal(scalar(&f->s, "SELECT coalesce(raw, length(data)) FROM metric_blocks WHERE first_step=200"), 1 + 5 * 8);
    check_range(f, id, md, 100, 300);
    /* A mask that does not match the columns stored (grad_norm per row, not once): refused. */
    assert_int_equal(sqlite3_exec(f->s.db, "UPDATE metric_blocks SET data=x'10' || substr(data, 2)"
                                  " WHERE first_step=1", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(store_metrics_query(&f->s, id, 1, 10, 0, &m, &e), -EPROTO);
    free(md);
}

/* Binds an lr blob in the schema-1 format (little-endian float64 per group). */
static void bind_lr(sqlite3_stmt *st, int col, const double *lr, int n)
{
    unsigned char b[STORE_MAX_LR * 8];
    for (int g = 0; g < n; g++) {
        uint64_t u;
        memcpy(&u, &lr[g], 8);
        for (int k = 0; k < 8; k++)
            b[g * 8 + k] = (unsigned char)(u >> (8 * k));
    }
    if (n == 0)
        sqlite3_bind_null(st, col);
    else
        sqlite3_bind_blob(st, col, b, n * 8, SQLITE_TRANSIENT);
}

static void bind_num(sqlite3_stmt *st, int col, double v)
{
    if (isnan(v))
        sqlite3_bind_null(st, col);
    else
        sqlite3_bind_double(st, col, v);
}

/* A schema-1 file (one row per step in `metrics`) opens as schema 2 with the same rows. */
static void test_migration_from_rows(void **state)
{
    fixture *f = *state;
    model *ma = calloc(1, sizeof *ma), *mb = calloc(1, sizeof *mb);
    char a[STORE_ID_LEN], b[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "a", NULL, a), 0);
    assert_int_equal(make_job(&f->s, "b", NULL, b), 0);
    assert_true(store_schema_version() >= 3); /* later migrations keep this path */
    /* Back to schema 1: the per-step table exactly as version 1 made it. */
    assert_int_equal(sqlite3_exec(f->s.db,
                                  "DROP TABLE metric_blocks;"
                                  "CREATE TABLE metrics("
                                  "  job INTEGER NOT NULL REFERENCES jobs(num) ON DELETE CASCADE,"
                                  "  step INTEGER NOT NULL,"
                                  "  loss REAL, grad_norm REAL, time REAL, wall REAL, lr BLOB,"
                                  "  PRIMARY KEY(job, step)) WITHOUT ROWID;"
                                  "PRAGMA user_version=1;",
                                  NULL, NULL, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(f->s.db, "INSERT INTO metrics VALUES(?,?,?,?,?,?,?)", -1,
                                        &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(f->s.db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    /* Job 1: 9000 contiguous steps (more than two blocks), 2 groups, group count changing
     * at 5000; job 2: sparse steps with no lr. */
    for (int64_t s = 1; s <= 9000; s++) {
        store_metric m = gen(s, 0, s < 5000 ? 2 : 1);
        ma->present[s] = 1;
        ma->row[s] = m;
        sqlite3_bind_int64(st, 1, 1);
        sqlite3_bind_int64(st, 2, s);
        bind_num(st, 3, m.loss);
        bind_num(st, 4, m.grad_norm);
        bind_num(st, 5, m.time);
        bind_num(st, 6, m.wall);
        bind_lr(st, 7, m.lr, m.n_lr);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        sqlite3_reset(st);
    }
    for (int64_t s = 3; s <= 19000; s += 1000) {
        store_metric m = gen(s, 1, 0);
        mb->present[s] = 1;
        mb->row[s] = m;
        sqlite3_bind_int64(st, 1, 2);
        sqlite3_bind_int64(st, 2, s);
        bind_num(st, 3, m.loss);
        bind_num(st, 4, m.grad_norm);
        bind_num(st, 5, m.time);
        bind_num(st, 6, m.wall);
        bind_lr(st, 7, m.lr, 0);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_exec(f->s.db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    store_close(&f->s);

    an_err e;
    assert_int_equal(store_open(&f->s, f->path, &e), 0);
    assert_int_equal(scalar(&f->s, "PRAGMA user_version"), store_schema_version());
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM sqlite_schema WHERE name='metrics'"), 0);
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM metric_blocks WHERE raw IS NULL"), 0);
    /* Job 1 goes in pieces of 4096 rows, cut again where the group count changes:
     * 1..4096, 4097..4999, 5000..8192, 8193..9000; job 2 fits one block. */
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM metric_blocks WHERE job=1"), 4);
    assert_int_equal(scalar(&f->s, "SELECT nrows FROM metric_blocks WHERE first_step=4097"), 903);
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM metric_blocks WHERE job=2"), 1);
    int64_t c;
    assert_int_equal(store_metrics_count(&f->s, a, &c, &e), 0);
    assert_int_equal(c, 9000);
    assert_int_equal(store_metrics_count(&f->s, b, &c, &e), 0);
    assert_int_equal(c, 19);
    check_range(f, a, ma, 0, MAXSTEP);
    check_range(f, a, ma, 4990, 5010);
    check_range(f, b, mb, 0, MAXSTEP);
    check_range(f, b, mb, 4, 2002);
    check_downsample(f, a, ma, 0, MAXSTEP, 301);
    check_downsample(f, b, mb, 0, MAXSTEP, 6);
    /* And it goes on as a schema-3 database. */
    put_range(f, a, ma, 9001, 9100, 100, 0, 1);
    check_range(f, a, ma, 8990, MAXSTEP);
    free(ma);
    free(mb);
}

/* Compressed blocks give back every value's bits (signed zeros, subnormals, infinities, lr
 * values one ulp apart); a schema-2 file with plain blocks migrates to schema 3, its blocks
 * read back unchanged and new ones are compressed beside them. */
static void test_compressed_bits_and_v2(void **state)
{
    fixture *f = *state;
    model *md = calloc(1, sizeof *md);
    char id[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "z", NULL, id), 0);
    /* Schema 2: plain blocks and no raw column. */
    f->s.plain_blocks = 1;
    put_range(f, id, md, 1, 3000, 1000, 0, 2);
    f->s.plain_blocks = 0;
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM metric_blocks WHERE raw IS NULL"), 3);
    assert_int_equal(sqlite3_exec(f->s.db, "ALTER TABLE metric_blocks DROP COLUMN raw;"
                                  "PRAGMA user_version=2;", NULL, NULL, NULL), SQLITE_OK);
    store_close(&f->s);
    an_err e;
    assert_int_equal(store_open(&f->s, f->path, &e), 0);
    assert_int_equal(scalar(&f->s, "PRAGMA user_version"), store_schema_version());
    check_range(f, id, md, 0, MAXSTEP);
    check_range(f, id, md, 999, 2001);
    store_metric rows[600];
    for (int i = 0; i < 600; i++) {
        rows[i] = gen(3001 + i, 1, 2);
        double odd[] = {-0.0, 0.0, 4.9e-324, -INFINITY, INFINITY, 1e308, -2.5e-310};
        rows[i].loss = i % 3 ? rows[i].loss : odd[i % 7];
        rows[i].grad_norm = odd[(i + 3) % 7];
        rows[i].lr[1] = nextafter(0.01, i % 2 ? 1.0 : 0.0);
    }
    put(f, id, md, rows, 600);
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM metric_blocks WHERE raw IS NOT NULL"), 1);
    /* Smaller than its layout, or it would have been stored plain. */
    assert_true(scalar(&f->s, "SELECT length(data) < raw FROM metric_blocks WHERE first_step=3001") == 1);
    store_series m;
    assert_int_equal(store_metrics_query(&f->s, id, 3001, 3600, 0, &m, &e), 0);
    assert_int_equal(m.n, 600);
    for (size_t i = 0; i < 600; i++) {
        assert_memory_equal(&m.loss[i], &rows[i].loss, 8);
        assert_memory_equal(&m.grad_norm[i], &rows[i].grad_norm, 8);
        assert_memory_equal(&m.time[i], &rows[i].time, 8);
        assert_memory_equal(&m.wall[i], &rows[i].wall, 8);
        assert_memory_equal(&m.lr[i], &rows[i].lr[0], 8);
        assert_memory_equal(&m.lr[600 + i], &rows[i].lr[1], 8);
    }
    store_series_free(&m);
    check_range(f, id, md, 2990, MAXSTEP);
    /* A compressed blob cut short is reported, not misread. */
    assert_int_equal(sqlite3_exec(f->s.db, "UPDATE metric_blocks SET data=substr(data, 1, 40)"
                                  " WHERE first_step=3001", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(store_metrics_query(&f->s, id, 3001, 3600, 0, &m, &e), -EPROTO);
    /* …and so is a plain block claimed to be compressed. */
    assert_int_equal(sqlite3_exec(f->s.db, "UPDATE metric_blocks SET raw=length(data)"
                                  " WHERE first_step=1", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(store_metrics_query(&f->s, id, 1, 10, 0, &m, &e), -EPROTO);
    free(md);
}

/* Wide buckets take whole blocks from their summaries: the answer is the documented rule's,
 * with blocks of odd sizes, spikes, NaN losses and ranges that cut blocks; ranges with
 * blocks from before schema 3 (no summary) give the same answer by scanning; a damaged
 * summary is reported. */
static void test_summaries_downsample(void **state)
{
    fixture *f = *state;
    model *md = calloc(1, sizeof *md);
    char id[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "sum", NULL, id), 0);
    f->s.scan_queries = 1; /* the block summaries' path (the pyramid has tests of its own) */
    put_range(f, id, md, 1, 20000, 333, 0, 2);
    store_metric spike = gen(15001, 0, 2);
    spike.loss = -1e9; /* a dip inside a block, away from its ends (NaN losses are the maxima) */
    put(f, id, md, &spike, 1);
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM metric_sums"),
                     scalar(&f->s, "SELECT count(*) FROM metric_blocks"));
    size_t mp[] = {2, 3, 4, 5, 8, 9};
    for (size_t i = 0; i < sizeof mp / sizeof mp[0]; i++) {
        check_downsample(f, id, md, 0, MAXSTEP, mp[i]);
        check_downsample(f, id, md, 170, 19990, mp[i]);
    }
    an_err e;
    store_series m;
    assert_int_equal(store_metrics_query(&f->s, id, 0, -1, 8, &m, &e), 0);
    int has_spike = 0;
    for (size_t i = 0; i < m.n; i++)
        has_spike |= m.step[i] == 15001 && m.loss[i] == -1e9;
    assert_true(has_spike);
    store_series_free(&m);
    /* Without summaries (a schema-2 range): the same points. */
    store_series a;
    assert_int_equal(store_metrics_query(&f->s, id, 5, 19000, 9, &a, &e), 0);
    assert_int_equal(sqlite3_exec(f->s.db, "DELETE FROM metric_sums WHERE first_step=1000",
                                  NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(store_metrics_query(&f->s, id, 5, 19000, 9, &m, &e), 0);
    assert_int_equal(m.n, a.n);
    assert_memory_equal(m.step, a.step, m.n * sizeof *m.step);
    assert_memory_equal(m.loss, a.loss, m.n * sizeof *m.loss);
    assert_memory_equal(m.lr, a.lr, 2 * m.n * sizeof *m.lr);
    store_series_free(&m);
    store_series_free(&a);
    check_downsample(f, id, md, 0, MAXSTEP, 8);
    /* A block's summary goes with it (rewind). */
    assert_int_equal(store_job_rewind(&f->s, id, 10000, STORE_QUEUED, &e), 0);
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM metric_sums WHERE last_step>10000"), 0);
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM metric_sums WHERE first_step<=10000"
                                    " AND first_step>1000"),
                     scalar(&f->s, "SELECT count(*) FROM metric_blocks WHERE first_step>1000"));
    for (int64_t st = 10001; st <= MAXSTEP; st++)
        md->present[st] = 0;
    check_downsample(f, id, md, 0, MAXSTEP, 4);
    /* A damaged summary is refused, not misread. */
    assert_int_equal(sqlite3_exec(f->s.db, "UPDATE metric_sums SET rows=x'00' WHERE first_step=1",
                                  NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(f->s.db, "INSERT INTO metric_sums SELECT job, first_step,"
                                  " last_step, nrows, ngroups, x'00' FROM metric_blocks WHERE"
                                  " first_step=1000", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(store_metrics_query(&f->s, id, 0, -1, 4, &m, &e), -EPROTO);
    free(md);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ranges_inside_blocks, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_big_batch_splits, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_small_and_big_batches_agree, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_replace_inside_blocks, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_rewind_inside_block, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_mixed_groups, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_damaged_block, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_block_bytes_are_checked, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_constant_columns, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_migration_from_rows, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_compressed_bits_and_v2, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_summaries_downsample, fixture_setup, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
