/* fuzz_csv — the CSV parser (core/csv.h) and the data sets built from CSV (core/data.h) on
 * arbitrary bytes.
 *
 * The input is the text of an uploaded data set (POST /v1/datasets). csv_parse must return
 * a table or an error naming where; a table's names and cells must be readable. Then the
 * text goes the way a job takes it: data_build as a "dataset" source (regression targets from
 * the last column, class targets from the first), data_split, data_standardize and a few
 * batches from a loader. */
#include "tests/fuzz/fuzz.h"

#include <math.h>
#include <string.h>

#include "core/config.h"
#include "core/csv.h"
#include "core/data.h"

#define FUZZ_ROWS 64  /* rows whose cells are read one by one */
#define FUZZ_BATCH 5

static void check_table(const csv_table *t)
{
    FUZZ_CHECK(t->ncols >= 1 && t->ncols <= CSV_MAX_COLS && t->nrows >= 1);
    for (int c = 0; c < t->ncols; c++) {
        FUZZ_CHECK(strlen(t->names[c]) <= CSV_MAX_FIELD);
        FUZZ_CHECK(csv_column(t, t->names[c]) == c); /* names are unique */
    }
    for (long long r = 0; r < t->nrows && r < FUZZ_ROWS; r++) {
        FUZZ_CHECK(t->lines[r] >= 2 && (r == 0 || t->lines[r] > t->lines[r - 1]));
        for (int c = 0; c < t->ncols; c++) {
            double v;
            an_err err;
            FUZZ_CHECK(strlen(t->cells[r * t->ncols + c]) <= CSV_MAX_FIELD);
            if (csv_number(t, r, c, &v, "data", &err) == 0)
                FUZZ_CHECK(isfinite(v));
            else
                FUZZ_CHECK(err.message[0] != 0);
        }
    }
}

/* The way a job uses a data set: split, standardise, draw batches. */
static void use_dataset(dataset *all)
{
    dataset train, val;
    an_err err;
    FUZZ_CHECK(all->n >= 1 && all->d >= 1 && all->ydim == 1);
    for (long long i = 0; i < all->n * all->d; i++)
        FUZZ_CHECK(!isnan(all->x[i]));
    long long n = all->n;
    if (data_split(all, 0.25, 7, &train, &val, &err) != 0)
        return; /* too few rows to split: consumed */
    FUZZ_CHECK(train.n >= 1 && train.n + val.n == n);
    FUZZ_CHECK(data_standardize(&train, &val, &err) == 0);
    data_loader l;
    FUZZ_CHECK(data_loader_init(&l, &train, 7, 1, &err) == 0);
    float x[FUZZ_BATCH * 64], y[FUZZ_BATCH];
    if (train.d <= 64) {
        for (int k = 0; k < 4; k++) {
            int64_t epoch;
            data_next(&l, FUZZ_BATCH, x, y, &epoch);
            FUZZ_CHECK(epoch >= 0 && epoch <= (4 * FUZZ_BATCH) / train.n + 1);
        }
    }
    data_loader_free(&l);
    data_free(&train);
    data_free(&val);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    csv_table t;
    an_err err;
    int parsed = csv_parse(text, size, &t, "data", &err) == 0;
    if (!parsed) {
        FUZZ_CHECK(err.message[0] != 0 && strncmp(err.field, "data", 4) == 0);
    } else {
        check_table(&t);
    }

    data_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.type = DATA_DATASET;
    snprintf(spec.name, sizeof spec.name, "fuzz");
    spec.normalize = 1;
    spec.shuffle = 1;
    for (int class_targets = 0; class_targets <= 1; class_targets++) {
        /* class targets from the first column (as iris-like files put labels first or last) */
        spec.target[0] = 0;
        if (class_targets && parsed)
            snprintf(spec.target, sizeof spec.target, "%s", t.names[0]);
        dataset all;
        int rc = data_build(&spec, 7, class_targets, 1, text, size, &all, &err);
        if (!parsed)
            FUZZ_CHECK(rc != 0); /* no table, no data set */
        if (rc) {
            FUZZ_CHECK(err.message[0] != 0);
            continue;
        }
        FUZZ_CHECK(all.n == t.nrows && all.d == t.ncols - 1);
        if (class_targets)
            FUZZ_CHECK(all.nclasses >= 1);
        use_dataset(&all);
    }
    if (parsed)
        csv_free(&t);
    return 0;
}
