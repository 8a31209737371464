/* test_store_metrics — metric batches, range queries, extremes-keeping downsampling, CSV,
 * chunked checkpoints, retention and rewind. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "api/jobjson.h"
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

/* A deterministic, bumpy loss curve with a few spikes. */
static double curve(int64_t step)
{
    uint64_t h = (uint64_t)step * 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
    double noise = (double)(h % 1000) / 1000.0 * 0.05;
    double v = 2.0 / (1.0 + 0.001 * (double)step) + noise;
    if (step % 977 == 0)
        v += 3.0; /* spikes */
    return v;
}

static void fill(store_t *s, const char *id, int64_t n, int groups)
{
    store_metric rows[500];
    an_err e;
    for (int64_t b = 0; b < n; b += 500) {
        size_t k = 0;
        for (int64_t st = b + 1; st <= b + 500 && st <= n; st++, k++) {
            store_metric *m = &rows[k];
            memset(m, 0, sizeof *m);
            m->step = st;
            m->loss = curve(st);
            m->n_lr = groups;
            for (int g = 0; g < groups; g++)
                m->lr[g] = 0.001 * (g + 1) * (double)st / (double)n;
            m->grad_norm = 1.0 + (double)(st % 7);
            m->time = (double)st * 0.001;
            m->wall = 1.7e9 + (double)st;
        }
        assert_int_equal(store_metrics_append(s, id, rows, k, NULL, &e), 0);
    }
}

static void test_batch_insert_and_range(void **state)
{
    fixture *f = *state;
    an_err e;
    char id[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "m", NULL, id), 0);
    fill(&f->s, id, 1200, 2);
    int64_t c;
    assert_int_equal(store_metrics_count(&f->s, id, &c, &e), 0);
    assert_int_equal(c, 1200);

    store_series m;
    assert_int_equal(store_metrics_query(&f->s, id, 100, 199, 0, &m, &e), 0);
    assert_int_equal(m.n, 100);
    assert_int_equal(m.n_lr, 2);
    for (size_t i = 0; i < m.n; i++) {
        int64_t st = 100 + (int64_t)i;
        assert_int_equal(m.step[i], st);
        assert_true(m.loss[i] == curve(st));
        assert_true(m.lr[i] == 0.001 * (double)st / 1200.0);
        assert_true(m.lr[m.n + i] == 0.002 * (double)st / 1200.0);
        assert_true(m.grad_norm[i] == 1.0 + (double)(st % 7));
        assert_true(m.time[i] == (double)st * 0.001);
    }
    store_series_free(&m);

    /* Fewer rows than max_points: every row. */
    assert_int_equal(store_metrics_query(&f->s, id, 1, 50, 2000, &m, &e), 0);
    assert_int_equal(m.n, 50);
    store_series_free(&m);
    /* Empty and inverted ranges. */
    assert_int_equal(store_metrics_query(&f->s, id, 5000, -1, 100, &m, &e), 0);
    assert_int_equal(m.n, 0);
    store_series_free(&m);
    assert_int_equal(store_metrics_query(&f->s, id, 10, 5, 100, &m, &e), -EINVAL);

    /* Replacing a step keeps one row per step; NaN loss reads back as NaN. */
    store_metric r = {.step = 7, .loss = NAN, .n_lr = 2, .lr = {1, 2}, .grad_norm = NAN};
    assert_int_equal(store_metrics_append(&f->s, id, &r, 1, NULL, &e), 0);
    assert_int_equal(store_metrics_count(&f->s, id, &c, &e), 0);
    assert_int_equal(c, 1200);
    assert_int_equal(store_metrics_query(&f->s, id, 7, 7, 0, &m, &e), 0);
    assert_int_equal(m.n, 1);
    assert_true(isnan(m.loss[0]));
    assert_true(isnan(m.grad_norm[0]));
    store_series_free(&m);

    /* Bad rows are refused before anything is written. */
    store_metric bad[2] = {{.step = 2000, .loss = 1}, {.step = 2001, .n_lr = STORE_MAX_LR + 1}};
    assert_int_equal(store_metrics_append(&f->s, id, bad, 2, NULL, &e), -EINVAL);
    assert_int_equal(store_metrics_count(&f->s, id, &c, &e), 0);
    assert_int_equal(c, 1200);

    /* Progress lands with a batch. */
    store_progress p = {.step = 1201, .loss = 0.5, .n_lr = 1, .lr = {0.3}};
    store_metric r2 = {.step = 1201, .loss = 0.5, .n_lr = 1, .lr = {0.3}};
    assert_int_equal(store_metrics_append(&f->s, id, &r2, 1, &p, &e), 0);
    store_job j;
    assert_int_equal(store_job_get(&f->s, id, &j, &e), 0);
    assert_int_equal(j.step, 1201);
    assert_true(j.loss == 0.5);
    store_job_free(&j);

    store_val_metric v[2] = {{.step = 100, .val_loss = 0.7, .val_acc = 0.8},
                             {.step = 200, .val_loss = 0.6, .val_acc = NAN}};
    assert_int_equal(store_val_append(&f->s, id, v, 2, &e), 0);
    store_val_metric *vr;
    size_t n;
    assert_int_equal(store_val_query(&f->s, id, 150, -1, &vr, &n, &e), 0);
    assert_int_equal(n, 1);
    assert_int_equal(vr[0].step, 200);
    assert_true(vr[0].val_loss == 0.6);
    assert_true(isnan(vr[0].val_acc));
    free(vr);
}

/* Independent reference for the documented downsampling rule. */
static void test_downsample_keeps_extremes(void **state)
{
    fixture *f = *state;
    an_err e;
    char id[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "d", NULL, id), 0);
    const int64_t N = 20011; /* not a multiple of anything convenient */
    fill(&f->s, id, N, 1);
    /* A NaN at one step and the global minimum somewhere else. */
    store_metric r = {.step = 12345, .loss = NAN, .n_lr = 1, .lr = {0.5}};
    store_metric lo = {.step = 4321, .loss = -1.0, .n_lr = 1, .lr = {0.25}};
    assert_int_equal(store_metrics_append(&f->s, id, &r, 1, NULL, &e), 0);
    assert_int_equal(store_metrics_append(&f->s, id, &lo, 1, NULL, &e), 0);

    const size_t maxp = 301; /* not a multiple of 4: 75 buckets */
    store_series m;
    assert_int_equal(store_metrics_query(&f->s, id, 0, -1, maxp, &m, &e), 0);
    assert_true(m.n <= maxp);
    assert_true(m.n > 150);
    assert_int_equal(m.step[0], 1); /* the first and last rows always come back */
    assert_int_equal(m.step[m.n - 1], N);
    for (size_t i = 1; i < m.n; i++)
        assert_true(m.step[i] > m.step[i - 1]);

    /* Expected points from the rule in store.h, computed from the generator. */
    int64_t B = 75, W = (N + B - 1) / B;
    int64_t expect[400];
    size_t ne = 0;
    for (int64_t b = 0; b < B; b++) {
        int64_t s0 = 1 + b * W, s1 = s0 + W - 1 < N ? s0 + W - 1 : N;
        if (s0 > N)
            break;
        int64_t imin = -1, imax = -1;
        double vmin = 0, vmax = 0;
        for (int64_t st = s0; st <= s1; st++) {
            double v = st == 12345 ? NAN : st == 4321 ? -1.0 : curve(st);
            if (imin < 0) {
                imin = imax = st;
                vmin = vmax = v;
                continue;
            }
            if (!isnan(v) && (isnan(vmin) || v < vmin)) {
                imin = st;
                vmin = v;
            } else if (!isnan(vmax) && (isnan(v) || v > vmax)) {
                imax = st;
                vmax = v;
            }
        }
        /* first, last, min, max, each step once, in step order */
        int64_t c[4] = {s0, s1, imin, imax};
        size_t n0 = ne;
        for (int q = 0; q < 4; q++) {
            int dup = 0;
            for (size_t j = n0; j < ne; j++)
                dup |= expect[j] == c[q];
            if (!dup)
                expect[ne++] = c[q];
        }
        for (size_t x = n0 + 1; x < ne; x++)
            for (size_t j = x; j > n0 && expect[j] < expect[j - 1]; j--) {
                int64_t t = expect[j];
                expect[j] = expect[j - 1];
                expect[j - 1] = t;
            }
    }
    assert_int_equal(m.n, ne);
    int has_nan = 0, has_min = 0, has_spike = 0;
    for (size_t i = 0; i < m.n; i++) {
        assert_int_equal(m.step[i], expect[i]);
        has_nan |= m.step[i] == 12345 && isnan(m.loss[i]);
        has_min |= m.step[i] == 4321 && m.loss[i] == -1.0 && m.lr[i] == 0.25;
        has_spike |= m.step[i] == 977 * 7;
        if (m.step[i] != 12345 && m.step[i] != 4321) {
            assert_true(m.loss[i] == curve(m.step[i]));
            assert_true(m.time[i] == (double)m.step[i] * 0.001);
        }
    }
    assert_true(has_nan);
    assert_true(has_min);
    assert_true(has_spike);
    store_series_free(&m);

    /* A sub-range downsamples within itself. */
    assert_int_equal(store_metrics_query(&f->s, id, 1000, 2999, 100, &m, &e), 0);
    assert_true(m.n <= 100 && m.n >= 50);
    assert_true(m.step[0] == 1000 && m.step[m.n - 1] == 2999);
    int spike = 0;
    for (size_t i = 0; i < m.n; i++)
        spike |= m.step[i] == 977 * 2 || m.step[i] == 977 * 3;
    assert_true(spike);
    store_series_free(&m);

    /* Sparse steps over a wide span: no more rows than max_points, so every row comes back. */
    char sp[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "sparse", NULL, sp), 0);
    store_metric sr[3] = {{.step = 1, .loss = 3}, {.step = 5000, .loss = 1}, {.step = 900000, .loss = 2}};
    assert_int_equal(store_metrics_append(&f->s, sp, sr, 3, NULL, &e), 0);
    store_series ms;
    assert_int_equal(store_metrics_query(&f->s, sp, 0, -1, 4, &ms, &e), 0);
    assert_int_equal(ms.n, 3);
    assert_int_equal(ms.step[2], 900000);
    assert_int_equal(ms.n_lr, 0);
    store_series_free(&ms);
    /* One bucket: its first and last rows; with 3 points its min (step 5000) too. */
    assert_int_equal(store_metrics_query(&f->s, sp, 0, -1, 2, &ms, &e), 0);
    assert_int_equal(ms.n, 2);
    assert_int_equal(ms.step[0], 1);
    assert_int_equal(ms.step[1], 900000);
    store_series_free(&ms);
    assert_int_equal(store_metrics_query(&f->s, sp, 0, -1, 3, &ms, &e), 0);
    assert_int_equal(ms.n, 3);
    assert_int_equal(ms.step[1], 5000);
    store_series_free(&ms);
    assert_int_equal(store_metrics_query(&f->s, sp, 0, -1, 0, &ms, &e), 0);
    assert_int_equal(ms.n, 3);
    store_series_free(&ms);

    /* max_points 1 behaves as 2: the first and last rows. */
    assert_int_equal(store_metrics_query(&f->s, id, 0, -1, 1, &m, &e), 0);
    assert_int_equal(m.n, 2);
    assert_true((m.step[0] == 1 && m.step[1] == N));
    store_series_free(&m);
}

static int64_t count_lines(const char *s)
{
    int64_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static int failing_sink(void *ctx, const char *buf, size_t len)
{
    (void)buf;
    size_t *calls = ctx;
    (*calls) += len > 0;
    return -EPIPE;
}

static void test_csv(void **state)
{
    fixture *f = *state;
    an_err e;
    char id[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "c", NULL, id), 0);
    char *csv;
    size_t len;
    /* No rows: only the header. */
    assert_int_equal(store_metrics_csv_buf(&f->s, id, 0, -1, &csv, &len, &e), 0);
    assert_string_equal(csv, "step,loss,lr0,grad_norm,time\n");
    free(csv);

    fill(&f->s, id, 3000, 2);
    store_metric r = {.step = 2, .loss = 0.1, .n_lr = 2, .lr = {1e-3, NAN}, .grad_norm = NAN,
                      .time = 0.25};
    assert_int_equal(store_metrics_append(&f->s, id, &r, 1, NULL, &e), 0);
    assert_int_equal(store_metrics_csv_buf(&f->s, id, 0, -1, &csv, &len, &e), 0);
    assert_int_equal(len, strlen(csv));
    assert_int_equal(count_lines(csv), 3001);
    assert_memory_equal(csv, "step,loss,lr0,lr1,grad_norm,time\n", 33);
    /* Shortest round-trip numbers; NaN as an empty cell. */
    assert_non_null(strstr(csv, "\n2,0.1,0.001,,,0.25\n"));
    /* Every number reads back exactly. */
    const char *line = strstr(csv, "\n1500,");
    assert_non_null(line);
    long long st;
    double loss, lr0, lr1, gn, t;
    assert_int_equal(sscanf(line + 1, "%lld,%lf,%lf,%lf,%lf,%lf", &st, &loss, &lr0, &lr1, &gn, &t), 6);
    assert_int_equal(st, 1500);
    assert_true(loss == curve(1500));
    assert_true(lr0 == 0.001 * 1500.0 / 3000.0);
    assert_true(lr1 == 0.002 * 1500.0 / 3000.0);
    assert_true(gn == 1.0 + (double)(1500 % 7));
    assert_true(t == 1.5);
    free(csv);

    /* A range, and a sink that fails: the error comes back. */
    assert_int_equal(store_metrics_csv_buf(&f->s, id, 10, 19, &csv, &len, &e), 0);
    assert_int_equal(count_lines(csv), 11);
    free(csv);
    size_t calls = 0;
    assert_int_equal(store_metrics_csv(&f->s, id, 0, -1, failing_sink, &calls, &e), -EPIPE);
    assert_int_equal(calls, 1);
}

static void test_checkpoint_chunks_and_retention(void **state)
{
    fixture *f = *state;
    an_err e;
    char id[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "k", NULL, id), 0);
    f->s.chunk_size = 1000;
    size_t len = 3500;
    unsigned char blob[3500];
    for (size_t i = 0; i < len; i++)
        blob[i] = (unsigned char)(i * 31 + 7);
    store_progress p = {.step = 10, .epoch = 1, .loss = 0.9, .n_lr = 1, .lr = {0.01}};
    assert_int_equal(store_checkpoint_commit(&f->s, id, 10, 0.9, blob, len, 2, &p, &e), 0);
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM checkpoint_chunks"), 4);
    assert_int_equal(scalar(&f->s, "SELECT max(length(data)) FROM checkpoint_chunks"), 1000);

    void *buf;
    size_t got;
    int64_t at;
    assert_int_equal(store_checkpoint_read(&f->s, id, -1, &buf, &got, &at, &e), 0);
    assert_int_equal(got, len);
    assert_int_equal(at, 10);
    assert_memory_equal(buf, blob, len);
    free(buf);

    store_job j;
    assert_int_equal(store_job_get(&f->s, id, &j, &e), 0);
    assert_int_equal(j.last_checkpoint_step, 10);
    assert_int_equal(j.step, 10);
    assert_int_equal(j.epoch, 1);
    store_job_free(&j);

    /* Three more: only the newest two stay. */
    for (int k = 2; k <= 4; k++) {
        blob[0] = (unsigned char)k;
        assert_int_equal(store_checkpoint_commit(&f->s, id, 10 * k, 1.0 / k, blob, len - 1000 * (size_t)(k - 2), 2, NULL, &e), 0);
    }
    store_checkpoint_info *ci;
    size_t n;
    assert_int_equal(store_checkpoint_list(&f->s, id, &ci, &n, &e), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ci[0].step, 30);
    assert_int_equal(ci[1].step, 40);
    assert_int_equal(ci[0].bytes, 2500);
    assert_int_equal(ci[1].bytes, 1500);
    assert_true(ci[1].loss == 0.25);
    free(ci);
    /* Chunks of retired checkpoints are gone: 3 (2500 B) + 2 (1500 B). */
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM checkpoint_chunks"), 5);
    assert_int_equal(store_checkpoint_read(&f->s, id, 10, &buf, &got, NULL, &e), -ENOENT);
    assert_int_equal(store_checkpoint_read(&f->s, id, 30, &buf, &got, &at, &e), 0);
    assert_int_equal(got, 2500);
    assert_int_equal(((unsigned char *)buf)[0], 3);
    assert_memory_equal((unsigned char *)buf + 1, blob + 1, 2499);
    free(buf);

    /* Same step again replaces; an empty blob is fine; keep_last 0 keeps all. */
    assert_int_equal(store_checkpoint_commit(&f->s, id, 40, 0.2, "", 0, 0, NULL, &e), 0);
    assert_int_equal(store_checkpoint_read(&f->s, id, -1, &buf, &got, &at, &e), 0);
    assert_int_equal(got, 0);
    assert_int_equal(at, 40);
    free(buf);
    assert_int_equal(store_checkpoint_commit(&f->s, id, 50, 0.2, blob, 10, 0, NULL, &e), 0);
    assert_int_equal(store_checkpoint_list(&f->s, id, &ci, &n, &e), 0);
    assert_int_equal(n, 3);
    free(ci);

    /* A checkpoint whose chunks went missing is reported, not returned short. */
    assert_int_equal(sqlite3_exec(f->s.db, "DELETE FROM checkpoint_chunks WHERE idx=1 AND ckpt="
                                  "(SELECT id FROM checkpoints WHERE step=30)", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(store_checkpoint_read(&f->s, id, 30, &buf, &got, NULL, &e), -EPROTO);
    assert_null(buf);

    assert_int_equal(store_checkpoint_commit(&f->s, id, -1, 0, blob, 10, 0, NULL, &e), -EINVAL);
    assert_int_equal(store_checkpoint_commit(&f->s, id, 60, 0, NULL, 10, 0, NULL, &e), -EINVAL);

    char other[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "none", NULL, other), 0);
    assert_int_equal(store_checkpoint_read(&f->s, other, -1, &buf, &got, NULL, &e), -ENOENT);
}

static void test_rewind_deletes_later_rows(void **state)
{
    fixture *f = *state;
    an_err e;
    char id[STORE_ID_LEN], other[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "r", NULL, id), 0);
    assert_int_equal(make_job(&f->s, "o", NULL, other), 0);
    fill(&f->s, id, 100, 1);
    fill(&f->s, other, 100, 1);
    store_val_metric v[2] = {{.step = 40, .val_loss = 1}, {.step = 41, .val_loss = 1}};
    assert_int_equal(store_val_append(&f->s, id, v, 2, &e), 0);
    assert_int_equal(store_checkpoint_commit(&f->s, id, 40, curve(40), "abc", 3, 0, NULL, &e), 0);
    assert_int_equal(store_checkpoint_commit(&f->s, id, 80, curve(80), "def", 3, 0, NULL, &e), 0);
    store_progress p = {.step = 100, .loss = curve(100)};
    assert_int_equal(store_job_progress(&f->s, id, &p, &e), 0);
    assert_int_equal(store_job_set_state(&f->s, id, STORE_MASK_ALL, STORE_FAILED, "killed", NULL, &e), 0);

    assert_int_equal(store_job_rewind(&f->s, id, 40, STORE_PAUSED, &e), -EINVAL);
    assert_int_equal(store_job_rewind(&f->s, id, -3, STORE_QUEUED, &e), -EINVAL);
    assert_int_equal(store_job_rewind(&f->s, id, 40, STORE_QUEUED, &e), 0);

    int64_t c;
    assert_int_equal(store_metrics_count(&f->s, id, &c, &e), 0);
    assert_int_equal(c, 40);
    store_series m;
    assert_int_equal(store_metrics_query(&f->s, id, 0, -1, 0, &m, &e), 0);
    assert_int_equal(m.step[m.n - 1], 40);
    assert_int_equal(m.step[0], 1);
    store_series_free(&m);
    store_val_metric *vr;
    size_t n;
    assert_int_equal(store_val_query(&f->s, id, 0, -1, &vr, &n, &e), 0);
    assert_int_equal(n, 1);
    free(vr);
    store_checkpoint_info *ci;
    assert_int_equal(store_checkpoint_list(&f->s, id, &ci, &n, &e), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ci[0].step, 40);
    free(ci);
    store_job j;
    assert_int_equal(store_job_get(&f->s, id, &j, &e), 0);
    assert_int_equal(j.state, STORE_QUEUED);
    assert_int_equal(j.step, 40);
    assert_true(j.loss == curve(40));
    assert_int_equal(j.last_checkpoint_step, 40);
    assert_null(j.error);
    assert_string_equal(j.finished_at, "");
    store_job_free(&j);
    /* The other job is untouched. */
    assert_int_equal(store_metrics_count(&f->s, other, &c, &e), 0);
    assert_int_equal(c, 100);

    /* From scratch. */
    assert_int_equal(store_job_rewind(&f->s, id, 0, STORE_RUNNING, &e), 0);
    assert_int_equal(store_metrics_count(&f->s, id, &c, &e), 0);
    assert_int_equal(c, 0);
    assert_int_equal(store_job_get(&f->s, id, &j, &e), 0);
    assert_int_equal(j.state, STORE_RUNNING);
    assert_int_equal(j.last_checkpoint_step, -1);
    store_job_free(&j);
}

/* Metric and validation rows land in one transaction; the job row carries the latest
 * validation; the CSV gets validation columns; a rewind takes the job's latest validation
 * back with the rows. */
static void test_val_with_metrics(void **state)
{
    fixture *f = *state;
    an_err e;
    char id[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "v", NULL, id), 0);
    store_job j;
    assert_int_equal(store_job_get(&f->s, id, &j, &e), 0);
    assert_true(j.val_step <= 0);
    cJSON *o = api_job_json(&j);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "val_loss")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "val_acc")));
    cJSON_Delete(o);
    store_job_free(&j);

    store_metric rows[30];
    store_val_metric val[3];
    for (int i = 0; i < 30; i++) {
        memset(&rows[i], 0, sizeof rows[i]);
        rows[i].step = i + 1;
        rows[i].loss = curve(i + 1);
        rows[i].n_lr = 1;
        rows[i].lr[0] = 0.01;
        rows[i].grad_norm = NAN;
        rows[i].time = 0.5 * (i + 1);
    }
    for (int k = 0; k < 3; k++)
        val[k] = (store_val_metric){.step = 10 * (k + 1), .val_loss = 1.0 / (k + 1),
                                    .val_acc = 0.25 * (k + 1)};
    store_progress p = {.step = 30, .loss = curve(30), .n_lr = 1, .lr = {0.01}};

    /* Bad input stores nothing: the metric rows of a call with a bad validation row too. */
    assert_int_equal(store_metrics_append_with_val(&f->s, id, rows, 30, NULL, 2, &p, &e), -EINVAL);
    store_val_metric bad = {.step = -4, .val_loss = 1};
    assert_int_equal(store_metrics_append_with_val(&f->s, id, rows, 30, &bad, 1, &p, &e), -EINVAL);
    assert_string_equal(e.field, "step");
    assert_int_equal(store_metrics_append_with_val(&f->s, "j_999999", rows, 30, val, 3, &p, &e),
                     -ENOENT);
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM metric_blocks"), 0);
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM val_metrics"), 0);

    assert_int_equal(store_metrics_append_with_val(&f->s, id, rows, 30, val, 3, &p, &e), 0);
    int64_t c;
    assert_int_equal(store_metrics_count(&f->s, id, &c, &e), 0);
    assert_int_equal(c, 30);
    store_val_metric *vr;
    size_t n;
    assert_int_equal(store_val_query(&f->s, id, 15, 30, &vr, &n, &e), 0);
    assert_int_equal(n, 2);
    assert_int_equal(vr[0].step, 20);
    assert_true(vr[0].val_loss == 0.5);
    assert_true(vr[1].val_acc == 0.75);
    free(vr);

    assert_int_equal(store_job_get(&f->s, id, &j, &e), 0);
    assert_int_equal(j.step, 30);
    assert_int_equal(j.val_step, 30);
    assert_true(j.val_loss == 1.0 / 3);
    assert_true(j.val_acc == 0.75);
    o = api_job_json(&j);
    assert_true(cJSON_GetObjectItem(o, "val_loss")->valuedouble == 1.0 / 3);
    assert_true(cJSON_GetObjectItem(o, "val_acc")->valuedouble == 0.75);
    cJSON_Delete(o);
    store_job_free(&j);
    /* The listing reads the same columns. */
    store_job *list;
    assert_int_equal(store_job_list(&f->s, STORE_MASK_ALL, -1, 0, &list, &n, NULL, &e), 0);
    assert_int_equal(n, 1);
    assert_int_equal(list[0].val_step, 30);
    store_job_list_free(list, n);

    /* CSV: validation cells on steps 10, 20, 30 only; the header keeps them in any range. */
    char *csv;
    size_t len;
    assert_int_equal(store_metrics_csv_buf(&f->s, id, 0, -1, &csv, &len, &e), 0);
    assert_memory_equal(csv, "step,loss,lr0,grad_norm,time,val_loss,val_acc\n", 46);
    assert_non_null(strstr(csv, ",5,1,0.25\n11,"));     /* step 10: time 5, val 1, acc 0.25 */
    assert_non_null(strstr(csv, ",10,0.5,0.5\n21,"));
    assert_non_null(strstr(csv, ",15,0.3333333333333333,0.75\n"));
    assert_non_null(strstr(csv, ",5.5,,\n"));           /* step 11: empty validation cells */
    assert_int_equal(count_lines(csv), 31);
    free(csv);
    assert_int_equal(store_metrics_csv_buf(&f->s, id, 11, 19, &csv, &len, &e), 0);
    assert_memory_equal(csv, "step,loss,lr0,grad_norm,time,val_loss,val_acc\n", 46);
    assert_int_equal(count_lines(csv), 10);
    assert_null(strstr(csv, "0.5,0.5"));
    free(csv);

    /* A rewind to step 20 drops the validation at 30, and the job's latest is step 20's. */
    assert_int_equal(store_checkpoint_commit(&f->s, id, 20, curve(20), "x", 1, 0, NULL, &e), 0);
    assert_int_equal(store_job_rewind(&f->s, id, 20, STORE_QUEUED, &e), 0);
    assert_int_equal(store_job_get(&f->s, id, &j, &e), 0);
    assert_int_equal(j.val_step, 20);
    assert_true(j.val_loss == 0.5);
    store_job_free(&j);
    assert_int_equal(store_val_query(&f->s, id, 0, -1, &vr, &n, &e), 0);
    assert_int_equal(n, 2);
    assert_int_equal(vr[1].step, 20);
    free(vr);
}

/* Metric rows 1..n from `from` on, with the curve as loss. */
static void rows_from(store_metric *rows, int64_t from, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        memset(&rows[i], 0, sizeof rows[i]);
        rows[i].step = from + (int64_t)i;
        rows[i].loss = curve(rows[i].step);
        rows[i].n_lr = 1;
        rows[i].lr[0] = 0.01;
        rows[i].grad_norm = NAN;
        rows[i].time = 0.001 * (double)rows[i].step;
    }
}

static void test_checkpoint_with_metrics(void **state)
{
    fixture *f = *state;
    an_err e;
    char id[STORE_ID_LEN];
    assert_int_equal(make_job(&f->s, "cm", NULL, id), 0);
    f->s.chunk_size = 100;
    unsigned char blob[250];
    for (size_t i = 0; i < sizeof blob; i++)
        blob[i] = (unsigned char)(i * 13 + 1);
    store_metric rows[100];
    rows_from(rows, 1, 100);
    store_val_metric v = {.step = 50, .val_loss = 0.5, .val_acc = NAN};
    store_progress p = {.step = 100, .epoch = 2, .loss = curve(100), .n_lr = 1, .lr = {0.01},
                        .samples_per_sec = 1234.5};
    assert_int_equal(store_checkpoint_commit_with_metrics(&f->s, id, rows, 100, &v, 1, 100,
                                                          curve(100), blob, sizeof blob, 2, &p,
                                                          &e), 0);
    int64_t c;
    assert_int_equal(store_metrics_count(&f->s, id, &c, &e), 0);
    assert_int_equal(c, 100);
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM val_metrics"), 1);
    store_job j;
    assert_int_equal(store_job_get(&f->s, id, &j, &e), 0);
    assert_int_equal(j.step, 100);
    assert_int_equal(j.epoch, 2);
    assert_int_equal(j.last_checkpoint_step, 100);
    assert_true(j.samples_per_sec == 1234.5);
    store_job_free(&j);

    /* Bad rows, NULL arrays, an unknown job: nothing lands, the checkpoint neither. */
    rows_from(rows, 101, 100);
    rows[40].n_lr = -1;
    assert_int_equal(store_checkpoint_commit_with_metrics(&f->s, id, rows, 100, NULL, 0, 200, 0,
                                                          blob, sizeof blob, 2, NULL, &e), -EINVAL);
    assert_string_equal(e.field, "lr");
    rows[40].n_lr = 1;
    assert_int_equal(store_checkpoint_commit_with_metrics(&f->s, id, NULL, 100, NULL, 0, 200, 0,
                                                          blob, sizeof blob, 2, NULL, &e), -EINVAL);
    assert_int_equal(store_checkpoint_commit_with_metrics(&f->s, id, rows, 100, NULL, 3, 200, 0,
                                                          blob, sizeof blob, 2, NULL, &e), -EINVAL);
    store_val_metric badv = {.step = -1};
    assert_int_equal(store_checkpoint_commit_with_metrics(&f->s, id, rows, 100, &badv, 1, 200, 0,
                                                          blob, sizeof blob, 2, NULL, &e), -EINVAL);
    assert_int_equal(store_checkpoint_commit_with_metrics(&f->s, "j_999999", rows, 100, NULL, 0,
                                                          200, 0, blob, sizeof blob, 2, NULL, &e),
                     -ENOENT);
    assert_int_equal(store_metrics_count(&f->s, id, &c, &e), 0);
    assert_int_equal(c, 100);
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM checkpoints"), 1);

    /* A commit that fails half way (the file cannot grow for a 4 MiB blob) leaves neither the
     * rows nor the checkpoint nor the job's progress. */
    int64_t pages = scalar(&f->s, "PRAGMA page_count");
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA max_page_count=%lld", (long long)pages + 2);
    assert_int_equal(sqlite3_exec(f->s.db, sql, NULL, NULL, NULL), SQLITE_OK);
    size_t big = (size_t)4 << 20;
    unsigned char *huge = malloc(big);
    assert_non_null(huge);
    memset(huge, 3, big);
    f->s.chunk_size = STORE_CHUNK_SIZE;
    store_progress p2 = {.step = 200, .loss = 1.0};
    assert_int_equal(store_checkpoint_commit_with_metrics(&f->s, id, rows, 100, NULL, 0, 200, 1.0,
                                                          huge, big, 2, &p2, &e), -ENOSPC);
    free(huge);
    assert_int_equal(sqlite3_exec(f->s.db, "PRAGMA max_page_count=1073741823", NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(store_metrics_count(&f->s, id, &c, &e), 0);
    assert_int_equal(c, 100);
    assert_int_equal(store_job_get(&f->s, id, &j, &e), 0);
    assert_int_equal(j.step, 100);
    assert_int_equal(j.last_checkpoint_step, 100);
    store_job_free(&j);
    store_checkpoint_info *ci;
    size_t n;
    assert_int_equal(store_checkpoint_list(&f->s, id, &ci, &n, &e), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ci[0].step, 100);
    free(ci);

    /* Checkpoints every 100 steps with keep_last 2: once two are stored, each new one takes
     * the oldest one's rows (no new checkpoint ids), and reads back whole, even with fewer or
     * more chunks than the row held, or a chunk row that went missing. */
    f->s.chunk_size = 100;
    size_t sizes[] = {250, 250, 90, 250, 300, 250};
    for (int k = 0; k < 6; k++) {
        int64_t step = 200 + 100 * k;
        rows_from(rows, step - 99, 100);
        blob[0] = (unsigned char)k;
        if (k == 3)
            assert_int_equal(sqlite3_exec(f->s.db, "DELETE FROM checkpoint_chunks WHERE idx=1 AND "
                                          "ckpt=(SELECT id FROM checkpoints ORDER BY step LIMIT 1)",
                                          NULL, NULL, NULL), SQLITE_OK);
        unsigned char *src = blob;
        unsigned char more[300];
        if (sizes[k] > sizeof blob) {
            memset(more, 9, sizeof more);
            src = more;
        }
        assert_int_equal(store_checkpoint_commit_with_metrics(&f->s, id, rows, 100, NULL, 0, step,
                                                              curve(step), src, sizes[k], 2, NULL,
                                                              &e), 0);
        assert_int_equal(scalar(&f->s, "SELECT count(*) FROM checkpoints"), 2);
        assert_true(scalar(&f->s, "SELECT max(id) FROM checkpoints") <= 2);
        void *buf;
        size_t got;
        int64_t at;
        assert_int_equal(store_checkpoint_read(&f->s, id, -1, &buf, &got, &at, &e), 0);
        assert_int_equal(at, step);
        assert_int_equal(got, sizes[k]);
        assert_memory_equal(buf, src, sizes[k]);
        free(buf);
        assert_int_equal(store_checkpoint_read(&f->s, id, step - 100, &buf, &got, NULL, &e), 0);
        free(buf);
    }
    /* Chunks: 3 (250 B) + 3 (250 B) and nothing left over from the larger or damaged ones. */
    assert_int_equal(scalar(&f->s, "SELECT count(*) FROM checkpoint_chunks"), 6);
    assert_int_equal(store_metrics_count(&f->s, id, &c, &e), 0);
    assert_int_equal(c, 700);
    assert_int_equal(store_checkpoint_list(&f->s, id, &ci, &n, &e), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ci[0].step, 600);
    assert_int_equal(ci[1].step, 700);
    free(ci);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(f->s.db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_batch_insert_and_range, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_downsample_keeps_extremes, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_csv, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_chunks_and_retention, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_rewind_deletes_later_rows, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_val_with_metrics, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_with_metrics, fixture_setup, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
