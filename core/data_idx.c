/* data_idx — Fashion-MNIST from its packed IDX files (data_idx.h). */
#include "core/data_idx.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/blob.h"
#include "core/idx.h"

const char *const fashion_files[4] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                      "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};

int data_is_fashion(const data_spec *d)
{
    return d->type == DATA_BUILTIN && strcmp(d->name, "fashion-mnist") == 0;
}

/* One images/labels pair into a dataset. */
static int build_pair(const idx_array *im, const idx_array *lb, dataset *out, an_err *err)
{
    size_t n = lb->count;
    memset(out, 0, sizeof *out);
    out->x = malloc(n * FASHION_FEATURES * sizeof *out->x);
    out->y = malloc(n * sizeof *out->y);
    if (!out->x || !out->y) {
        data_free(out);
        return an_failc(err, -ENOMEM, "data", "out of memory for %zu images", n);
    }
    for (size_t i = 0; i < n * FASHION_FEATURES; i++)
        out->x[i] = (float)im->data[i] / 255.0f;
    for (size_t i = 0; i < n; i++)
        out->y[i] = (float)lb->data[i];
    out->n = (long long)n;
    out->d = FASHION_FEATURES;
    out->ydim = 1;
    out->nclasses = FASHION_CLASSES;
    return 0;
}

int data_fashion_load(const job_spec *spec, const char *packed, size_t len, dataset *train,
                      dataset *val, an_err *err)
{
    memset(train, 0, sizeof *train);
    memset(val, 0, sizeof *val);
    const unsigned char *p = (const unsigned char *)packed;
    if (!p || len < 40 || memcmp(p, FASHION_MAGIC, 8) != 0)
        return an_fail(err, "data.name", "the Fashion-MNIST files were not read (install "
                       "dataset-fashion-mnist: make deps)");
    idx_array a[4];
    size_t off = 40;
    for (int k = 0; k < 4; k++) {
        uint64_t l = le_get_u64(p + 8 + 8 * k);
        if (l > len - off)
            return an_fail(err, "data.name", "the packed Fashion-MNIST files are cut off");
        int rc = idx_parse(p + off, (size_t)l, fashion_files[k], "data.name", &a[k], err);
        if (rc)
            return rc;
        off += (size_t)l;
    }
    int rc = idx_check_pair(&a[0], &a[1], "train-images/train-labels", "data.name", err);
    if (!rc)
        rc = idx_check_pair(&a[2], &a[3], "t10k-images/t10k-labels", "data.name", err);
    if (rc)
        return rc;
    if (spec->model.inputs != FASHION_FEATURES)
        return an_fail(err, "model.inputs", "fashion-mnist has %d features (28x28 pixels), "
                       "model.inputs is %d", FASHION_FEATURES, spec->model.inputs);
    dataset all;
    if ((rc = build_pair(&a[0], &a[1], &all, err)))
        return rc;
    if (spec->val_split_test) {
        *train = all;
        rc = build_pair(&a[2], &a[3], val, err);
    } else {
        rc = data_split(&all, spec->val_fraction, spec->seed, train, val, err);
    }
    if (!rc && spec->data.normalize)
        rc = data_standardize(train, val->n > 0 ? val : NULL, err);
    if (rc) {
        data_free(train);
        data_free(val);
    }
    return rc;
}
