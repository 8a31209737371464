/* bench_pyramid — downsampled metric queries of a long job, answered from the summary
 * pyramid:
 *
 *   store_pyramid_query_100M: the slowest of a set of ranges (the whole job, its first and
 *   last tenth, ranges starting and ending inside buckets) of a 100,000,000-step job asked
 *   with max_points=2000, in ms of store time (the median of 5 runs of each range)
 *       ref: the whole range through the scan that came before the pyramid (the rows and
 *       per-block summaries), one run
 *   store_pyramid_ingest: rows/s written while the job is built (batches of 4096 rows, the
 *   daemon's, lr and grad_norm changing every row), with the pyramid kept up to date
 *       ref: the same batches with the pyramid merge off (the store's scan_queries path is
 *       unaffected; only this benchmark writes that way)
 *
 * The job is written straight through store_metrics_append (no training). BENCH_QUICK=1
 * uses 5,000,000 steps. Output: `BENCH <name> <value> <unit> ref=<value> ratio=<value>`.
 * The database lives in a fresh directory under $TMPDIR (or /tmp) and is removed after. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_util.h"
#include "store/store.h"

static void make_row(store_metric *m, int64_t step)
{
    m->step = step;
    m->loss = 2.0 / (1.0 + 1e-6 * (double)step) + (double)(step % 97) * 1e-4;
    if (step % 10000019 == 0)
        m->loss = 50.0; /* a spike now and then */
    m->n_lr = 1;
    m->lr[0] = step <= 1000 ? 1e-3 * (double)step / 1000.0 : 1e-3 / sqrt((double)step / 1000.0);
    m->grad_norm = 1.0 + (double)(step % 13) * 0.01;
    m->time = (double)step * 1e-6;
    m->wall = 1.7e9 + (double)step * 1e-6;
}

/* Appends steps [a, b] in batches of 4096; returns rows/s or -1. */
static double ingest(store_t *s, const char *id, int64_t a, int64_t b, store_metric *buf)
{
    an_err e;
    double t0 = util_now();
    for (int64_t st = a; st <= b;) {
        size_t k = 0;
        for (; k < 4096 && st <= b; st++)
            make_row(&buf[k++], st);
        if (store_metrics_append(s, id, buf, k, NULL, &e) != 0) {
            fprintf(stderr, "append: %s\n", e.message);
            return -1;
        }
    }
    return (double)(b - a + 1) / (util_now() - t0);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ms of one query; -1 on failure. Checks the answer's size and ends. */
static double query_ms(store_t *s, const char *id, int64_t from, int64_t to, int64_t last)
{
    an_err e;
    store_series m;
    double t0 = util_now();
    if (store_metrics_query(s, id, from, to, 2000, &m, &e) != 0) {
        fprintf(stderr, "query: %s\n", e.message);
        return -1;
    }
    double ms = (util_now() - t0) * 1e3;
    int ok = m.n > 0 && m.n <= 2000 && m.step[0] == (from < 1 ? 1 : from) &&
             m.step[m.n - 1] == (to < 0 || to > last ? last : to);
    store_series_free(&m);
    if (!ok) {
        fprintf(stderr, "query %lld..%lld: wrong answer\n", (long long)from, (long long)to);
        return -1;
    }
    return ms;
}

int main(void)
{
    int quick = getenv("BENCH_QUICK") && atoi(getenv("BENCH_QUICK")) != 0;
    int64_t steps = quick ? 5000000 : 100000000;
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char dir[256], path[300];
    snprintf(dir, sizeof dir, "%s/anneald-bench-XXXXXX", tmp);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof path, "%s/bench.db", dir);
    store_t s;
    an_err e;
    char id[STORE_ID_LEN], id2[STORE_ID_LEN];
    store_job_new in = {.name = "bench", .spec_json = "{}", .total_steps = steps};
    store_metric *buf = calloc(4096, sizeof *buf);
    int rc = buf ? store_open(&s, path, &e) : -ENOMEM;
    if (!rc)
        rc = store_job_create(&s, &in, id, &e);
    if (!rc)
        rc = store_job_create(&s, &in, id2, &e);
    if (rc) {
        fprintf(stderr, "setup: %s\n", e.message);
        free(buf);
        rm_dir(dir);
        return 1;
    }
    /* Ingest with and without the pyramid merge, on a second job of 2M rows. */
    double with = ingest(&s, id, 1, steps, buf);
    s.no_pyramid = 1;
    double without = ingest(&s, id2, 1, 2000000, buf);
    s.no_pyramid = 0;
    if (with < 0 || without < 0) {
        store_close(&s);
        free(buf);
        rm_dir(dir);
        return 1;
    }
    report("store_pyramid_ingest", with, "rows/s", without);

    int64_t r[][2] = {
        {0, -1},
        {1, steps / 10},
        {steps - steps / 10, -1},
        {12345, steps - 54321},
        {steps / 3 + 777, steps / 3 + steps / 50},
        {steps / 7, steps / 7 + 600000},
    };
    double worst = 0;
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
        double t[5];
        for (int k = 0; k < 5; k++)
            if ((t[k] = query_ms(&s, id, r[i][0], r[i][1], steps)) < 0)
                worst = -1e9;
        qsort(t, 5, sizeof t[0], cmp_d);
        if (t[2] > worst)
            worst = t[2];
    }
    s.scan_queries = 1;
    double ref = query_ms(&s, id, 0, -1, steps);
    s.scan_queries = 0;
    store_close(&s);
    free(buf);
    rm_dir(dir);
    if (worst < 0 || ref < 0)
        return 1;
    report(quick ? "store_pyramid_query_5M" : "store_pyramid_query_100M", worst, "ms", ref);
    return 0;
}
