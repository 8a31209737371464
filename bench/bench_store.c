/* bench_store — what the SQLite store costs, each figure beside a plain-file reference
 * measured in the same run, in the same directory:
 *
 *   metrics ingest (rows/s, batches of 100 and of 1000 rows, one transaction per batch;
 *   then batches of 1000 whose lr and grad_norm change every row)
 *       ref: the same rows as packed 48-byte records, one write() per batch
 *   downsampled query (ms, max_points=2000 over every row of a 1M-row job)
 *       ref: the same range read without downsampling (every row to columnar arrays)
 *   checkpoint commit (s and MB/s for a 60M-parameter Adam state: params + m + v, fp32,
 *   720 MB, inside the 2^26-parameter cap of a job; 48 MB with BENCH_QUICK=1)
 *       ref: one sequential write() of the same bytes to a file, unsynced like the commit
 *       (WAL, synchronous=NORMAL). Two turns, the reference first in one and second in the
 *       other, each side's best time reported.
 *       The store's connection is set up as a worker's (store/walcopy.h): the commit returns
 *       once the pages are in the WAL, and their copy into the database file happens after it
 *       (the housekeeping thread or the next metrics commit), timed on its own:
 *   checkpoint WAL copy (s) — ref: the same plain write()
 *   checkpoint read (MB/s) — ref: read() of that file
 *
 * Output: one line per figure, `BENCH <name> <value> <unit> ref=<value> ratio=<value>`.
 * BENCH_METRICS_ONLY=1 stops after the metric figures (no multi-GB checkpoint).
 * The database lives in a fresh directory under $TMPDIR (or /tmp) and is removed after. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_util.h"
#include "store/store.h"
#include "store/walcopy.h"

/* With `varying`, lr decays every step and grad_norm is measured every step, so no column
 * is the same throughout a batch (the store keeps such a column once per block). */
static int varying;

static void make_row(store_metric *m, int64_t step)
{
    m->step = step;
    m->loss = 2.0 / (1.0 + 1e-4 * (double)step) + (double)(step % 97) * 1e-4;
    m->n_lr = 1;
    m->lr[0] = varying ? 1e-3 / (1.0 + 1e-5 * (double)step) : 1e-3;
    m->grad_norm = varying ? 1.0 + (double)(step % 13) * 0.01 : 1.0;
    m->time = (double)step * 1e-3;
    m->wall = 1.7e9 + (double)step * 1e-3;
}

/* Rows per second through store_metrics_append in batches of `batch`. */
static int ingest(store_t *s, const char *id, int64_t rows, size_t batch, double *rate,
                  an_err *e)
{
    store_metric *b = calloc(batch, sizeof *b);
    if (!b)
        return -ENOMEM;
    double t0 = util_now();
    int rc = 0;
    for (int64_t st = 1; !rc && st <= rows; st += (int64_t)batch) {
        size_t k = 0;
        for (; k < batch && st + (int64_t)k <= rows; k++)
            make_row(&b[k], st + (int64_t)k);
        rc = store_metrics_append(s, id, b, k, NULL, e);
    }
    *rate = (double)rows / (util_now() - t0);
    free(b);
    return rc;
}

/* The reference: the same rows packed to 48 bytes, one write() per batch. */
static double ingest_ref(const char *path, int64_t rows, size_t batch)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return 0;
    double *rec = malloc(batch * 6 * sizeof *rec);
    double t0 = util_now();
    for (int64_t st = 1; rec && st <= rows; st += (int64_t)batch) {
        size_t k = 0;
        for (; k < batch && st + (int64_t)k <= rows; k++) {
            store_metric m;
            make_row(&m, st + (int64_t)k);
            double *r = rec + k * 6;
            r[0] = (double)m.step;
            r[1] = m.loss;
            r[2] = m.lr[0];
            r[3] = m.grad_norm;
            r[4] = m.time;
            r[5] = m.wall;
        }
        if (write(fd, rec, k * 6 * sizeof *rec) < 0)
            break;
    }
    double rate = (double)rows / (util_now() - t0);
    free(rec);
    close(fd);
    unlink(path);
    return rate;
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n > ((size_t)1 << 30) ? (size_t)1 << 30 : n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, unsigned char *p, size_t n)
{
    while (n) {
        ssize_t r = read(fd, p, n > ((size_t)1 << 30) ? (size_t)1 << 30 : n);
        if (r <= 0)
            return r < 0 ? -errno : -EIO;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

int main(void)
{
    int quick = getenv("BENCH_QUICK") && atoi(getenv("BENCH_QUICK")) != 0;
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char dir[256], path[300], ref[300];
    snprintf(dir, sizeof dir, "%s/anneald-bench-XXXXXX", tmp);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof path, "%s/bench.db", dir);
    snprintf(ref, sizeof ref, "%s/ref.bin", dir);

    store_t s;
    an_err e;
    int rc = store_open(&s, path, &e);
    if (rc) {
        fprintf(stderr, "store_open: %s\n", e.message);
        rm_dir(dir);
        return 1;
    }
    store_wal_copy_mode(&s, STORE_WAL_AFTER_SMALL); /* as a worker's connection */
    char a[STORE_ID_LEN], b[STORE_ID_LEN];
    store_job_new in = {.name = "bench", .spec_json = "{}", .total_steps = 1000000};
    rc = store_job_create(&s, &in, a, &e);
    if (!rc)
        rc = store_job_create(&s, &in, b, &e);

    /* ---- metrics ingest ---- */
    int64_t rows100 = quick ? 20000 : 200000;
    int64_t rows1000 = quick ? 100000 : 1000000;
    double r100 = 0, r1000 = 0;
    if (!rc)
        rc = ingest(&s, a, rows100, 100, &r100, &e);
    if (!rc)
        report("store_metrics_ingest_batch100", r100, "rows/s", ingest_ref(ref, rows100, 100));
    if (!rc)
        rc = ingest(&s, b, rows1000, 1000, &r1000, &e);
    if (!rc)
        report("store_metrics_ingest_batch1000", r1000, "rows/s",
               ingest_ref(ref, rows1000, 1000));

    /* The same with every column changing from row to row. */
    char c[STORE_ID_LEN];
    if (!rc)
        rc = store_job_create(&s, &in, c, &e);
    if (!rc) {
        double rv = 0;
        varying = 1;
        rc = ingest(&s, c, rows1000, 1000, &rv, &e);
        if (!rc)
            report("store_metrics_ingest_batch1000_varying", rv, "rows/s",
                   ingest_ref(ref, rows1000, 1000));
        varying = 0;
    }

    /* ---- downsampled query over the big job ---- */
    if (!rc) {
        store_series m;
        double t0 = util_now();
        rc = store_metrics_query(&s, b, 0, -1, 2000, &m, &e);
        double tq = util_now() - t0;
        size_t pts = m.n;
        store_series_free(&m);
        if (!rc) {
            t0 = util_now();
            rc = store_metrics_query(&s, b, 0, -1, 0, &m, &e);
            double tf = util_now() - t0;
            store_series_free(&m);
            char name[96];
            snprintf(name, sizeof name, "store_metrics_query_max2000_over_%lldrows",
                     (long long)rows1000);
            if (!rc)
                report(name, tq * 1e3, "ms", tf * 1e3);
            fprintf(stderr, "downsampled to %zu points\n", pts);
        }
    }

    if (getenv("BENCH_METRICS_ONLY") && atoi(getenv("BENCH_METRICS_ONLY")) != 0) {
        if (rc)
            fprintf(stderr, "bench_store: %s (%s)\n", e.message, store_strerror(rc));
        store_close(&s);
        rm_dir(dir);
        return rc ? 1 : 0;
    }

    /* ---- checkpoint of a 60M-parameter Adam state (inside the 2^26 cap) ---- */
    size_t params = quick ? (size_t)4000000 : (size_t)60000000;
    size_t bytes = params * 3 * sizeof(float);
    unsigned char *blob = rc ? NULL : malloc(bytes);
    unsigned char *back = rc ? NULL : malloc(bytes);
    if (!rc && (!blob || !back)) {
        fprintf(stderr, "out of memory for a %zu-byte state\n", bytes);
        rc = -ENOMEM;
    }
    if (!rc) {
        float *f = (float *)blob;
        for (size_t i = 0; i < params * 3; i++)
            f[i] = (float)(i % 1000) * 1e-3f;
        double mb = (double)bytes / 1e6;

        /* Two turns: the plain file first, then the store; then the store first. Each
         * commit goes to its own job (a and b), so neither replaces a checkpoint. */
        double tref = 1e30, tref_read = 1e30, tw = 1e30, tcopy = 1e30;
        for (int turn = 0; turn < 2 && !rc; turn++) {
            for (int side = 0; side < 2 && !rc; side++) {
                if ((side == 0) == (turn == 0)) {
                    int fd = open(ref, O_WRONLY | O_CREAT | O_TRUNC, 0600);
                    double t0 = util_now();
                    int wr = fd < 0 ? -errno : write_all(fd, blob, bytes);
                    double dt = util_now() - t0;
                    if (fd >= 0)
                        close(fd);
                    fd = open(ref, O_RDONLY);
                    t0 = util_now();
                    int rr = fd < 0 ? -errno : read_all(fd, back, bytes);
                    double dr = util_now() - t0;
                    if (fd >= 0)
                        close(fd);
                    unlink(ref);
                    if (wr || rr) {
                        fprintf(stderr, "reference file I/O failed: %s\n",
                                strerror(-(wr ? wr : rr)));
                        rc = -EIO;
                    }
                    tref = dt < tref ? dt : tref;
                    tref_read = dr < tref_read ? dr : tref_read;
                } else {
                    store_progress p = {.step = 1000, .loss = 0.1, .n_lr = 1, .lr = {1e-3}};
                    double t0 = util_now();
                    rc = store_checkpoint_commit(&s, turn == 0 ? a : b, 1000, 0.1, blob, bytes,
                                                 2, &p, &e);
                    double dt = util_now() - t0;
                    tw = dt < tw ? dt : tw;
                    /* the copy of its pages into the database, as the housekeeping thread
                     * makes it; then the WAL truncated between turns */
                    t0 = util_now();
                    if (!rc)
                        rc = store_housekeep(&s, 0, NULL, &e);
                    dt = util_now() - t0;
                    tcopy = dt < tcopy ? dt : tcopy;
                    if (!rc)
                        rc = store_maintain(&s, &e);
                }
            }
        }
        if (!rc) {
            report("store_checkpoint_commit_time", tw, "s", tref);
            report("store_checkpoint_commit_rate", mb / tw, "MB/s", mb / tref);
            report("store_checkpoint_wal_copy_time", tcopy, "s", tref);
        }
        if (!rc) {
            void *buf;
            size_t len;
            memset(back, 0, bytes);
            double t0 = util_now();
            rc = store_checkpoint_read(&s, a, -1, &buf, &len, NULL, &e);
            double tr = util_now() - t0;
            if (!rc) {
                if (len != bytes || memcmp(buf, blob, bytes) != 0) {
                    fprintf(stderr, "checkpoint read back different bytes\n");
                    rc = -EIO;
                }
                free(buf);
            }
            if (!rc)
                report("store_checkpoint_read_rate", mb / tr, "MB/s", mb / tref_read);
        }
    }
    free(blob);
    free(back);
    if (rc)
        fprintf(stderr, "bench_store: %s (%s)\n", e.message, store_strerror(rc));
    store_close(&s);
    rm_dir(dir);
    return rc ? 1 : 0;
}
