/* test_store_pyramid — downsampled metric queries answered from the summary pyramid:
 * a multi-million-step job keeps its first step (with the warm-up's first lr), its last step
 * and its spikes, stays within max_points and returns stored rows bit for bit; answers equal
 * a brute-force bucketing of a model (gaps, NaN losses, two lr group counts) after appends,
 * replaced steps and rewinds; the 5 -> 6 migration builds the pyramid of rows stored before. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store/retain.h"
#include "store_fixture.h"

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

/* A row that depends on its step and a variant: warm-up lr from 0.001, a noisy falling loss
 * with NaN now and then, a grad_norm measured on most steps. */
static store_metric gen(int64_t step, int variant)
{
    store_metric m;
    memset(&m, 0, sizeof m);
    uint64_t h = (uint64_t)(step * 7919 + variant * 104729) * 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
    m.step = step;
    m.loss = 2.0 / (1.0 + 1e-5 * (double)step) + (double)(h % 10007) * 1e-6 + variant;
    if (step % 100003 == 0)
        m.loss = NAN;
    m.grad_norm = step % 7 == 0 ? NAN : (double)(h % 977) / 13.0;
    m.time = (double)step * 1e-4 + variant;
    m.wall = 1.7e9 + (double)step * 2.5e-5;
    m.n_lr = 1 + (variant & 1);
    m.lr[0] = step <= 2000 ? 0.001 + 0.999e-3 * (double)(step - 1) : 2e-3 / sqrt((double)step);
    m.lr[1] = 0.5 * m.lr[0];
    return m;
}

static int bits_eq(double a, double b)
{
    if (isnan(a) && isnan(b))
        return 1; /* NaN is stored canonical */
    return memcmp(&a, &b, 8) == 0;
}

/* The row a point must equal: every column, bit for bit. */
static void assert_point(const store_series *m, size_t i, const store_metric *r)
{
    assert_int_equal(m->step[i], r->step);
    assert_true(bits_eq(m->loss[i], r->loss));
    assert_true(bits_eq(m->grad_norm[i], r->grad_norm));
    assert_true(bits_eq(m->time[i], r->time));
    assert_true(bits_eq(m->wall[i], r->wall));
    for (int g = 0; g < m->n_lr; g++)
        assert_true(bits_eq(m->lr[(size_t)g * m->n + i], g < r->n_lr ? r->lr[g] : NAN));
}

/* Appends gen(step, variant) for the steps a..b with (step % skip) != 0 (skip 0: all). */
static void put_range_on(store_t *st, const char *id, int64_t a, int64_t b, int variant,
                         int64_t skip, size_t batch)
{
    store_metric *rows = malloc(batch * sizeof *rows);
    assert_non_null(rows);
    an_err e;
    for (int64_t s = a; s <= b;) {
        size_t k = 0;
        for (; k < batch && s <= b; s++)
            if (!skip || s % skip != 0)
                rows[k++] = gen(s, variant);
        if (k)
            assert_int_equal(store_metrics_append(st, id, rows, k, NULL, &e), 0);
    }
    free(rows);
}

static void put_range(fixture *f, const char *id, int64_t a, int64_t b, int variant,
                      int64_t skip, size_t batch)
{
    put_range_on(&f->s, id, a, b, variant, skip, batch);
}

/* ---- a long job ----------------------------------------------------------------------- */

#define LONG_STEPS 3000000
#define SPIKE 1234567
#define DIP 2222223
#define NANSTEP 2900087 /* a multiple of 100003 */

static store_metric long_row(int64_t step)
{
    store_metric m = gen(step, 0);
    if (isnan(m.loss)) /* one NaN loss only: NaN ranks above any spike */
        m.loss = step == NANSTEP ? m.loss : 1.0;
    if (step == SPIKE)
        m.loss = 1e6;
    if (step == DIP)
        m.loss = -5.0;
    return m;
}

static void check_long(fixture *f, const char *id, int64_t from, int64_t to, size_t mp)
{
    an_err e;
    store_series m;
    assert_int_equal(store_metrics_query(&f->s, id, from, to, mp, &m, &e), 0);
    int64_t last = to < 0 || to > LONG_STEPS ? LONG_STEPS : to;
    assert_true(m.n > mp / 8 && m.n <= mp);
    assert_int_equal(m.step[0], from < 1 ? 1 : from);
    assert_int_equal(m.step[m.n - 1], last);
    int spike = 0, dip = 0, nan = 0;
    for (size_t i = 0; i < m.n; i++) {
        if (i)
            assert_true(m.step[i] > m.step[i - 1]);
        store_metric r = long_row(m.step[i]);
        assert_point(&m, i, &r);
        spike |= m.step[i] == SPIKE;
        dip |= m.step[i] == DIP;
        nan |= m.step[i] == NANSTEP;
    }
    assert_int_equal(spike, from <= SPIKE && SPIKE <= last);
    assert_int_equal(dip, from <= DIP && DIP <= last);
    assert_int_equal(nan, from <= NANSTEP && NANSTEP <= last);
    store_series_free(&m);
}

static void test_long_job(void **state)
{
    fixture *f = *state;
    char id[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "long", NULL, id), 0);
    size_t batch = 50000;
    store_metric *rows = malloc(batch * sizeof *rows);
    assert_non_null(rows);
    an_err e;
    for (int64_t s = 1; s <= LONG_STEPS;) {
        size_t k = 0;
        for (; k < batch && s <= LONG_STEPS; s++)
            rows[k++] = long_row(s);
        assert_int_equal(store_metrics_append(&f->s, id, rows, k, NULL, &e), 0);
    }
    free(rows);
    /* Every level counts every row once. */
    assert_int_equal(scalar(&f->s, "SELECT count(DISTINCT level) FROM metric_pyramid"), 21);
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM (SELECT level, sum(nrows) AS n FROM"
                                   " metric_pyramid GROUP BY level) WHERE n=3000000"), 21);

    store_series m;
    assert_int_equal(store_metrics_query(&f->s, id, 0, -1, 2000, &m, &e), 0);
    assert_int_equal(m.step[0], 1);
    double lr0 = 0.001;
    assert_memory_equal(&m.lr[0], &lr0, 8); /* the warm-up starts where it starts */
    store_series_free(&m);

    check_long(f, id, 0, -1, 2000);
    check_long(f, id, 1, LONG_STEPS, 2000);
    check_long(f, id, 777777, 2999990, 500);
    check_long(f, id, 1000000, 1300000, 64);
    check_long(f, id, 5, -1, 9);
}

/* ---- against a model ------------------------------------------------------------------ */

#define MSTEPS 300000

/* What each step holds: variant + 1, or 0 for no row. */
typedef struct model {
    unsigned char v[MSTEPS + 1];
} model;

static store_metric model_row(const model *md, int64_t s) { return gen(s, md->v[s] - 1); }

static int lt(double a, double b) { return !isnan(a) && (isnan(b) || a < b); }

/* The expected answer: the finest level >= 11 with at most nb buckets over [first, last]
 * (none when level 10 would fit), each bucket's first, last, min and max loss rows (ties:
 * the earlier step), each once, in step order. Returns the points' steps in out, -1 when
 * the pyramid does not apply. */
static int64_t expected(const model *md, int64_t from, int64_t to, size_t mp, int64_t *out)
{
    int64_t first = -1, last = -1;
    for (int64_t s = from; s <= to; s++)
        if (md->v[s]) {
            if (first < 0)
                first = s;
            last = s;
        }
    int64_t nb = (int64_t)mp / 4;
    if (first < 0 || (last >> 10) - (first >> 10) + 1 <= nb)
        return -1;
    int k = 11;
    while ((last >> k) - (first >> k) + 1 > nb)
        k++;
    int64_t n = 0;
    for (int64_t b = first >> k; b <= last >> k; b++) {
        int64_t a = b << k, z = a + ((int64_t)1 << k) - 1;
        int64_t fr = -1, ls = -1, lo = -1, hi = -1;
        for (int64_t s = a < first ? first : a; s <= (z > last ? last : z); s++) {
            if (!md->v[s])
                continue;
            double l = model_row(md, s).loss;
            if (fr < 0) {
                fr = lo = hi = s;
            } else {
                if (lt(l, model_row(md, lo).loss))
                    lo = s;
                if (lt(model_row(md, hi).loss, l) || (isnan(l) && !isnan(model_row(md, hi).loss)))
                    hi = s;
            }
            ls = s;
        }
        if (fr < 0)
            continue;
        int64_t c[4] = {fr, ls, lo, hi}, pick[4];
        int np = 0;
        for (int i = 0; i < 4; i++) {
            int dup = 0;
            for (int j = 0; j < np; j++)
                dup |= pick[j] == c[i];
            if (!dup)
                pick[np++] = c[i];
        }
        for (int i = 1; i < np; i++)
            for (int j = i; j > 0 && pick[j] < pick[j - 1]; j--) {
                int64_t t = pick[j];
                pick[j] = pick[j - 1];
                pick[j - 1] = t;
            }
        for (int i = 0; i < np; i++)
            out[n++] = pick[i];
    }
    return n;
}

static void check_model(fixture *f, const char *id, const model *md, int64_t from, int64_t to,
                        size_t mp, int64_t *buf)
{
    int64_t n = expected(md, from, to, mp, buf);
    assert_true(n >= 0); /* the ranges below are long enough for the pyramid */
    an_err e;
    store_series m;
    assert_int_equal(store_metrics_query(&f->s, id, from, to, mp, &m, &e), 0);
    assert_int_equal((int64_t)m.n, n);
    assert_true(m.n <= mp);
    for (size_t i = 0; i < m.n; i++) {
        assert_int_equal(m.step[i], buf[i]);
        store_metric r = model_row(md, buf[i]);
        assert_point(&m, i, &r);
    }
    store_series_free(&m);
}

static void check_ranges(fixture *f, const char *id, const model *md, int64_t *buf)
{
    check_model(f, id, md, 0, MSTEPS, 40, buf);
    check_model(f, id, md, 4097, 262143, 40, buf);
    check_model(f, id, md, 12345, 250000, 100, buf);
    check_model(f, id, md, 70000, 140000, 16, buf);
    check_model(f, id, md, 1, 99999, 8, buf);
}

static void test_against_model(void **state)
{
    fixture *f = *state;
    model *md = calloc(1, sizeof *md);
    int64_t *buf = malloc(4 * 1000 * sizeof *buf);
    assert_non_null(md);
    assert_non_null(buf);
    char id[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "model", NULL, id), 0);
    /* Appends with gaps, in uneven batches; a stretch of two lr groups. */
    put_range(f, id, 1, 150000, 0, 97, 3001);
    put_range(f, id, 150001, MSTEPS, 1, 0, 777);
    for (int64_t s = 1; s <= MSTEPS; s++)
        md->v[s] = s <= 150000 ? (s % 97 ? 1 : 0) : 2;
    check_ranges(f, id, md, buf);
    /* Filling gaps and replacing stored steps (one batch across both). */
    put_range(f, id, 60000, 64000, 1, 0, 5000);
    for (int64_t s = 60000; s <= 64000; s++)
        md->v[s] = 2;
    check_ranges(f, id, md, buf);
    /* A rewind inside a bucket, then a different continuation. */
    an_err e;
    assert_int_equal(store_job_rewind(&f->s, id, 200000, STORE_QUEUED, &e), 0);
    for (int64_t s = 200001; s <= MSTEPS; s++)
        md->v[s] = 0;
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM metric_pyramid WHERE"
                                   " bucket << level > 200000"), 0);
    put_range(f, id, 200001, MSTEPS, 0, 0, 4096);
    for (int64_t s = 200001; s <= MSTEPS; s++)
        md->v[s] = 1;
    check_ranges(f, id, md, buf);
    /* Each level still counts each row once. */
    int64_t rows = scalar(&f->s, "SELECT sum(nrows) FROM metric_blocks");
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM (SELECT sum(nrows) AS n FROM metric_pyramid"
                              " GROUP BY level) WHERE n=%lld", (long long)rows);
    assert_int_equal(scalar(&f->s, sql), 21);
    free(buf);
    free(md);
}

/* Appends of one job from two connections in turns, and a rewind from the other one: each
 * connection's cache of open buckets must notice that the other wrote in between (its next
 * append does not start where its own last one ended) and read the entries back. */
static void test_connections_take_turns(void **state)
{
    fixture *f = *state;
    model *md = calloc(1, sizeof *md);
    int64_t *buf = malloc(4 * 1000 * sizeof *buf);
    assert_non_null(md);
    assert_non_null(buf);
    char id[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "turns", NULL, id), 0);
    an_err e;
    store_t other;
    assert_int_equal(store_open(&other, f->path, &e), 0);
    /* A, B, A, B: each turn continues where the other stopped, inside open buckets. */
    const int64_t cut[] = {1, 70001, 140001, 200001, MSTEPS + 1};
    for (int t = 0; t < 4; t++) {
        put_range_on(t % 2 ? &other : &f->s, id, cut[t], cut[t + 1] - 1, t % 2, 0, 4096);
        for (int64_t s = cut[t]; s < cut[t + 1]; s++)
            md->v[s] = (unsigned char)(t % 2 + 1);
    }
    check_ranges(f, id, md, buf);
    /* B rewinds to a step inside A's last appends' range, then A continues from there. */
    assert_int_equal(store_job_rewind(&other, id, 250000, STORE_QUEUED, &e), 0);
    put_range(f, id, 250001, MSTEPS, 0, 0, 4096);
    for (int64_t s = 250001; s <= MSTEPS; s++)
        md->v[s] = 1;
    check_ranges(f, id, md, buf);
    /* B replaces the last steps A wrote; A's cache must not be trusted for them. */
    put_range_on(&other, id, MSTEPS - 5000, MSTEPS, 1, 0, 4096);
    for (int64_t s = MSTEPS - 5000; s <= MSTEPS; s++)
        md->v[s] = 2;
    check_ranges(f, id, md, buf);
    store_close(&other);
    free(buf);
    free(md);
}

/* A store at schema 5 (no pyramid) gets one built by the migration. */
static void test_migration_builds(void **state)
{
    fixture *f = *state;
    model *md = calloc(1, sizeof *md);
    int64_t *buf = malloc(4 * 1000 * sizeof *buf);
    assert_non_null(md);
    assert_non_null(buf);
    char id[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "old", NULL, id), 0);
    put_range(f, id, 3, 200000, 0, 89, 10000);
    for (int64_t s = 3; s <= 200000; s++)
        md->v[s] = s % 89 ? 1 : 0;
    int64_t before = scalar(&f->s, "SELECT count(*) FROM metric_pyramid");
    assert_true(before > 0);
    char sql[64];
    /* Back to schema 5, the last one without the pyramid (5 -> 6 adds it). */
    snprintf(sql, sizeof sql, "DROP TABLE metric_pyramid; PRAGMA user_version=%d", 5);
    assert_int_equal(sqlite3_exec(f->s.db, sql, NULL, NULL, NULL), SQLITE_OK);
    store_close(&f->s);
    an_err e;
    assert_int_equal(store_open(&f->s, f->path, &e), 0);
    assert_int_equal(scalar(&f->s, "PRAGMA user_version"), store_schema_version());
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM metric_pyramid"), before);
    check_model(f, id, md, 0, 200000, 40, buf);
    check_model(f, id, md, 5000, 190000, 64, buf);
    /* The job's summaries go with it. */
    assert_int_equal(store_job_set_state(&f->s, id, ~0u, STORE_CANCELLED, NULL, NULL, &e), 0);
    assert_int_equal(store_job_delete(&f->s, id, &e), 0);
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM metric_pyramid"), 0);
    free(buf);
    free(md);
}

/* ---- retention: metrics.full_resolution_steps ---------------------------------------- */

/* Drops job id's old blocks slice by slice until nothing more goes; returns the blocks. */
static int retain_all(fixture *f, const char *id, int64_t keep)
{
    an_err e;
    int total = 0, dropped;
    do {
        assert_int_equal(store_metrics_retain(&f->s, id, keep, 16, &dropped, &e), 0);
        assert_true(dropped <= 16);
        total += dropped;
    } while (dropped == 16);
    return total;
}

static void assert_same_series(const store_series *a, const store_series *b)
{
    assert_int_equal(a->n, b->n);
    assert_int_equal(a->n_lr, b->n_lr);
    for (size_t i = 0; i < a->n; i++) {
        assert_int_equal(a->step[i], b->step[i]);
        assert_true(bits_eq(a->loss[i], b->loss[i]));
        assert_true(bits_eq(a->time[i], b->time[i]));
        for (int g = 0; g < a->n_lr; g++)
            assert_true(bits_eq(a->lr[(size_t)g * a->n + i], b->lr[(size_t)g * b->n + i]));
    }
}

#define RSTEPS 200000
#define RKEEP 5000

static void test_retention(void **state)
{
    fixture *f = *state;
    char id[STORE_ID_LEN], all[STORE_ID_LEN];
    an_err e;
    assert_int_equal(make_job(&f->s, "retained", NULL, id), 0);
    assert_int_equal(make_job(&f->s, "every-row", NULL, all), 0);
    put_range(f, id, 1, RSTEPS, 0, 0, 4096);
    put_range(f, all, 1, RSTEPS, 0, 0, 4096);
    int64_t pyr_before = scalar(&f->s, "SELECT count(*) FROM metric_pyramid WHERE job=1");
    int64_t blocks_before = scalar(&f->s, "SELECT count(*) FROM metric_blocks WHERE job=1");

    /* No checkpoint: everything below the 2048-step bucket holding (last - keep + 1) goes, in
     * whole blocks; the block that straddles it stays. */
    int dropped = retain_all(f, id, RKEEP);
    int64_t cut = (RSTEPS - RKEEP + 1) / 2048 * 2048;
    int64_t kept = (cut - 1) / 4096 * 4096 + 1; /* blocks of 4096 rows from step 1 */
    assert_true(dropped > 30);
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM metric_blocks WHERE job=1"),
                     blocks_before - dropped);
    assert_int_equal(scalar(&f->s, "SELECT min(first_step) FROM metric_blocks WHERE job=1"), kept);
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM metric_sums WHERE job=1 AND"
                                   " first_step < (SELECT min(first_step) FROM metric_blocks"
                                   " WHERE job=1)"), 0);
    /* The pyramid is untouched: every level still counts every row. */
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM metric_pyramid WHERE job=1"), pyr_before);
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM (SELECT level, sum(nrows) AS n FROM"
                                   " metric_pyramid WHERE job=1 GROUP BY level) WHERE n != 200000"), 0);
    int64_t count;
    assert_int_equal(store_metrics_count(&f->s, id, &count, &e), 0);
    assert_int_equal(count, RSTEPS - kept + 1);
    assert_int_equal(retain_all(f, id, RKEEP), 0); /* nothing more to drop */
    assert_int_equal(store_metrics_retain(&f->s, "j_999999", RKEEP, 16, &dropped, &e), -ENOENT);
    assert_true(store_metrics_retain(&f->s, id, 0, 16, &dropped, &e) < 0);
    assert_string_equal(e.field, "full_resolution_steps");

    /* The newest RKEEP steps, every one, bit for bit; no summary point among them. */
    store_series m, ref;
    assert_int_equal(store_metrics_query(&f->s, id, RSTEPS - RKEEP + 1, -1, 0, &m, &e), 0);
    assert_int_equal(m.n, RKEEP);
    for (size_t i = 0; i < m.n; i++) {
        store_metric r = gen(RSTEPS - RKEEP + 1 + (int64_t)i, 0);
        assert_point(&m, i, &r);
    }
    assert_int_equal(m.full_from, kept);
    store_series_free(&m);

    /* max_points over the whole range: the pyramid's answer, the same as the job that kept
     * every row, starting at step 1 with the warm-up's first lr. */
    assert_int_equal(store_metrics_query(&f->s, id, 0, -1, 200, &m, &e), 0);
    assert_int_equal(store_metrics_query(&f->s, all, 0, -1, 200, &ref, &e), 0);
    assert_same_series(&m, &ref);
    assert_int_equal(m.step[0], 1);
    double lr0 = 0.001;
    assert_memory_equal(&m.lr[0], &lr0, 8);
    assert_int_equal(m.full_from, kept);
    assert_int_equal(ref.full_from, 0);
    store_series_free(&m);
    store_series_free(&ref);

    /* Full resolution over a dropped range: each bucket's points (at most 4 per 2048 steps),
     * stored rows bit for bit, from step 1 on. */
    assert_int_equal(store_metrics_query(&f->s, id, 0, 10239, 0, &m, &e), 0);
    assert_true(m.n >= 5 * 2 && m.n <= 5 * 4);
    assert_int_equal(m.step[0], 1);
    assert_int_equal(m.step[m.n - 1], 10239); /* the last of bucket 4 */
    for (size_t i = 0; i < m.n; i++) {
        if (i)
            assert_true(m.step[i] > m.step[i - 1]);
        store_metric r = gen(m.step[i], 0);
        assert_point(&m, i, &r);
    }
    assert_int_equal(m.full_from, kept);
    store_series_free(&m);
    /* A range across the boundary: points below it, then every row. */
    assert_int_equal(store_metrics_query(&f->s, id, kept - 10000, kept + 999, 0, &m, &e), 0);
    size_t below = 0;
    while (below < m.n && m.step[below] < kept)
        below++;
    assert_true(below >= 4 && below <= 24);
    assert_int_equal(m.n - below, 1000);
    for (size_t i = 0; i < m.n; i++) {
        store_metric r = gen(m.step[i], 0);
        assert_point(&m, i, &r);
        if (i > below)
            assert_int_equal(m.step[i], m.step[i - 1] + 1);
    }
    store_series_free(&m);
    /* Downsampled across it with more points than a pyramid level gives: at most max_points,
     * from the range's first point to its last row. */
    assert_int_equal(store_metrics_query(&f->s, id, kept - 3000, RSTEPS, 400, &m, &e), 0);
    assert_true(m.n > 100 && m.n <= 400);
    assert_int_equal(m.step[m.n - 1], RSTEPS);
    assert_true(m.step[0] >= kept - 3000 && m.step[0] < kept);
    store_series_free(&m);

    /* The CSV says which lines are summaries; a job with every row has no such column. */
    char *csv;
    size_t len;
    assert_int_equal(store_metrics_csv_buf(&f->s, id, 0, -1, &csv, &len, &e), 0);
    assert_non_null(strstr(csv, ",grad_norm,time,resolution\n1,"));
    assert_true(len > 6 && strcmp(csv + len - 6, ",full\n") == 0);
    char *firstline = strchr(csv, '\n') + 1;
    char *end = strchr(firstline, '\n');
    assert_memory_equal(end - 8, ",summary", 8);
    free(csv);
    assert_int_equal(store_metrics_csv_buf(&f->s, all, 0, 100, &csv, &len, &e), 0);
    assert_null(strstr(csv, "resolution"));
    assert_null(strstr(csv, "summary"));
    free(csv);
}

/* The latest checkpoint bounds what is dropped: its row stays, and a rewind to it (a resume)
 * keeps the pyramid exact. A rewind further back keeps the points it still has. */
static void test_retention_resume(void **state)
{
    fixture *f = *state;
    char id[STORE_ID_LEN], ref[STORE_ID_LEN];
    an_err e;
    assert_int_equal(make_job(&f->s, "retained", NULL, id), 0);
    assert_int_equal(make_job(&f->s, "reference", NULL, ref), 0);
    put_range(f, id, 1, 100000, 0, 0, 4096);
    put_range(f, ref, 1, 30000, 0, 0, 4096);
    assert_int_equal(store_checkpoint_commit(&f->s, id, 30000, 0.5, "x", 1, 3, NULL, &e), 0);
    assert_true(retain_all(f, id, 10) > 0);
    /* Nothing at or after bucket 14 (28672, the checkpoint's) is dropped. */
    assert_int_equal(scalar(&f->s, "SELECT min(first_step) FROM metric_blocks WHERE job=1"),
                     24577);
    store_series m, r;
    assert_int_equal(store_metrics_query(&f->s, id, 30000, 30000, 0, &m, &e), 0);
    assert_int_equal(m.n, 1); /* the row a resume takes its job time from */
    store_series_free(&m);
    assert_int_equal(store_job_rewind(&f->s, id, 30000, STORE_RUNNING, &e), 0);
    assert_int_equal(store_metrics_query(&f->s, id, 0, -1, 100, &m, &e), 0);
    assert_int_equal(store_metrics_query(&f->s, ref, 0, -1, 100, &r, &e), 0);
    assert_same_series(&m, &r);
    assert_int_equal(m.step[0], 1);
    store_series_free(&m);
    store_series_free(&r);
    /* Every level counts each of the 30000 rows once, as before the drop. */
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM (SELECT level, sum(nrows) AS n FROM"
                                   " metric_pyramid WHERE job=1 GROUP BY level) WHERE n != 30000"), 0);
    /* Back to a step whose rows are gone: the points up to it stay, none after it. */
    assert_int_equal(store_job_rewind(&f->s, id, 5000, STORE_RUNNING, &e), 0);
    assert_int_equal(store_metrics_query(&f->s, id, 0, -1, 0, &m, &e), 0);
    assert_true(m.n >= 3);
    assert_int_equal(m.step[0], 1);
    for (size_t i = 0; i < m.n; i++) {
        assert_true(m.step[i] <= 5000);
        store_metric g = gen(m.step[i], 0);
        assert_point(&m, i, &g);
    }
    assert_int_equal(m.full_from, m.step[m.n - 1] + 1); /* no row left at all */
    store_series_free(&m);
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM metric_pyramid WHERE job=1 AND"
                                   " bucket << level > 5000"), 0);
}

/* A CSV export of a running job that keeps only its newest rows: the job drops rows the
 * export has not reached yet (between two of its pieces). Those come as summary points, with
 * no hole, and the resolution column is there from the header on. */
static void test_retention_while_csv_streams(void **state)
{
    fixture *f = *state;
    char id[STORE_ID_LEN];
    an_err e;
    assert_int_equal(make_job(&f->s, "streamed", NULL, id), 0);
    char sql[160];
    snprintf(sql, sizeof sql, "UPDATE jobs SET spec='{\"metrics\":{\"full_resolution_steps\":1000}}'"
             " WHERE id='%s'", id);
    assert_int_equal(sqlite3_exec(f->s.db, sql, NULL, NULL, NULL), SQLITE_OK);
    const int64_t steps = 100000;
    put_range(f, id, 1, steps, 0, 0, 4096);
    store_metrics_cursor c;
    assert_int_equal(store_metrics_cursor_open(&f->s, id, 0, -1, &c, &e), 0);
    size_t cap = 64 * 1024, len, total = 0;
    char *all = malloc(16 << 20), *buf = malloc(cap);
    assert_non_null(all);
    assert_non_null(buf);
    int pieces = 0;
    while (store_metrics_csv_piece(&f->s, &c, buf, cap, &len, &e) == 0 && len > 0) {
        assert_true(total + len < (16u << 20));
        memcpy(all + total, buf, len);
        total += len;
        if (++pieces == 1)
            assert_true(retain_all(f, id, 1000) > 10); /* the job drops its old rows now */
    }
    all[total] = '\0';
    assert_true(pieces > 2);
    char *line = strchr(all, '\n');
    assert_non_null(line);
    assert_memory_equal(line - 11, ",resolution", 11);
    int64_t prev = 0, gap = 0, summaries = 0;
    for (line++; *line; line = strchr(line, '\n') + 1) {
        int64_t step = strtoll(line, NULL, 10);
        assert_true(step > prev);
        if (step - prev > gap)
            gap = step - prev;
        prev = step;
        char *eol = strchr(line, '\n');
        assert_non_null(eol);
        if (eol - line > 8 && memcmp(eol - 8, ",summary", 8) == 0)
            summaries++;
        else
            assert_memory_equal(eol - 5, ",full", 5);
    }
    assert_int_equal(prev, steps);
    assert_true(gap <= 2048); /* each dropped bucket keeps its first and last row */
    assert_true(summaries > 10);
    free(buf);
    free(all);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_long_job, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_against_model, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_connections_take_turns, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_migration_builds, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_retention, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_retention_resume, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_retention_while_csv_streams, fixture_setup,
                                        fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
