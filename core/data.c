/* data — building data sets (synthetic, inline, CSV), splitting, standardising, batching. */
#include "core/data.h"
#include "core/data_idx.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assets.h"
#include "core/csv.h"
#include "core/loss.h"
#include "core/rng.h"

#define DATA_MAX_ROWS 100000000LL /* rows: permutations are 32-bit */

static int alloc_ds(dataset *d, long long n, int dim, int ydim, an_err *err)
{
    memset(d, 0, sizeof *d);
    d->n = n;
    d->d = dim;
    d->ydim = ydim;
    d->x = malloc((size_t)(n ? n : 1) * (size_t)dim * sizeof *d->x);
    d->y = malloc((size_t)(n ? n : 1) * (size_t)ydim * sizeof *d->y);
    if (!d->x || !d->y) {
        data_free(d);
        return an_failc(err, -ENOMEM, "data", "out of memory for %lld rows of %d features", n,
                        dim);
    }
    return 0;
}

void data_free(dataset *d)
{
    free(d->x);
    free(d->y);
    free(d->mean);
    free(d->std);
    free(d->xd);
    memset(d, 0, sizeof *d);
}

/* Writes a class label as a target row: index, one-hot, or value. */
static void put_class(float *y, int cls, int ydim, int one_hot)
{
    if (one_hot) {
        for (int c = 0; c < ydim; c++)
            y[c] = c == cls ? 1.0f : 0.0f;
    } else {
        y[0] = (float)cls;
    }
}

static int build_synthetic(const data_spec *s, uint64_t seed, int class_targets, int outputs,
                           dataset *out, an_err *err)
{
    if (s->samples < 1 || s->samples > DATA_MAX_ROWS)
        return an_fail(err, "data.samples", "expected 1..%lld samples, got %lld", DATA_MAX_ROWS,
                       (long long)s->samples);
    if (s->features < 1 || s->features > 1 << 20)
        return an_fail(err, "data.features", "expected at least 1 feature, got %d", s->features);
    long long n = s->samples;
    int d = s->features, rc;
    rng r;
    if (s->task == TASK_REGRESSION) {
        int o = s->outputs > 0 ? s->outputs : 1;
        if ((rc = alloc_ds(out, n, d, o, err)))
            return rc;
        /* W [d, o] and b [o] from part 0, rows from part 1: changing samples keeps W. */
        double *W = malloc(((size_t)d * o + o) * sizeof *W);
        if (!W) {
            data_free(out);
            return an_failc(err, -ENOMEM, "data", "out of memory");
        }
        rng_init(&r, seed, rng_stream_id(RNG_DATA, 0, 0, 0), 0);
        for (size_t i = 0; i < (size_t)d * o + o; i++)
            W[i] = rng_normal(&r);
        rng_init(&r, seed, rng_stream_id(RNG_DATA, 1, 0, 0), 0);
        for (long long i = 0; i < n; i++) {
            float *x = out->x + i * d;
            for (int f = 0; f < d; f++)
                x[f] = (float)rng_normal(&r);
            for (int k = 0; k < o; k++) {
                double v = W[(size_t)d * o + k];
                for (int f = 0; f < d; f++)
                    v += (double)x[f] * W[(size_t)f * o + k];
                out->y[i * o + k] = (float)(v + s->noise * rng_normal(&r));
            }
        }
        free(W);
        return 0;
    }
    if (s->task != TASK_CLASSIFICATION)
        return an_fail(err, "data.task", "expected \"regression\" or \"classification\"");
    int k = s->classes > 0 ? s->classes : 2;
    if (s->generator == GEN_XOR)
        k = 2;
    if ((s->generator == GEN_XOR || s->generator == GEN_SPIRALS) && d < 2)
        return an_fail(err, "data.features", "the %s generator needs at least 2 features, got %d",
                       s->generator == GEN_XOR ? "xor" : "spirals", d);
    if (s->generator < GEN_BLOBS || s->generator > GEN_XOR)
        return an_fail(err, "data.generator", "expected \"blobs\", \"spirals\" or \"xor\"");
    int one_hot = !class_targets && outputs == k && k > 1;
    int ydim = one_hot ? k : 1;
    if ((rc = alloc_ds(out, n, d, ydim, err)))
        return rc;
    out->nclasses = class_targets ? k : 0;
    double *centers = NULL;
    if (s->generator == GEN_BLOBS) {
        /* class centres uniform in [-10, 10]^d, unit spread (as scikit-learn's make_blobs) */
        centers = malloc((size_t)k * d * sizeof *centers);
        if (!centers) {
            data_free(out);
            return an_failc(err, -ENOMEM, "data", "out of memory");
        }
        rng_init(&r, seed, rng_stream_id(RNG_DATA, 0, 0, 0), 0);
        for (size_t i = 0; i < (size_t)k * d; i++)
            centers[i] = rng_range(&r, -10, 10);
    }
    rng_init(&r, seed, rng_stream_id(RNG_DATA, 1, 0, 0), 0);
    for (long long i = 0; i < n; i++) {
        float *x = out->x + i * d;
        int cls = (int)(i % k);
        if (s->generator == GEN_BLOBS) {
            for (int f = 0; f < d; f++)
                x[f] = (float)(centers[(size_t)cls * d + f] + rng_normal(&r));
        } else if (s->generator == GEN_SPIRALS) {
            double t = rng_uniform(&r);
            double a = 2 * M_PI * cls / k + 4.0 * t + s->noise * rng_normal(&r);
            x[0] = (float)(t * cos(a));
            x[1] = (float)(t * sin(a));
            for (int f = 2; f < d; f++)
                x[f] = (float)(s->noise * rng_normal(&r));
        } else {
            for (int f = 0; f < d; f++)
                x[f] = (float)rng_range(&r, -1, 1);
            cls = (x[0] > 0) != (x[1] > 0);
            if (s->noise > 0) {
                x[0] += (float)(s->noise * rng_normal(&r));
                x[1] += (float)(s->noise * rng_normal(&r));
            }
        }
        put_class(out->y + i * ydim, cls, ydim, one_hot);
    }
    free(centers);
    return 0;
}

static int build_inline(const data_spec *s, int class_targets, dataset *out, an_err *err)
{
    char path[64];
    if (!cJSON_IsArray(s->x) || cJSON_GetArraySize(s->x) < 1)
        return an_fail(err, "data.x", "expected a non-empty list of rows");
    /* without y (the mean loss reads no targets: config_data.c) every target is a 0 */
    const int noy = !s->y;
    if (!noy && (!cJSON_IsArray(s->y) || cJSON_GetArraySize(s->y) != cJSON_GetArraySize(s->x)))
        return an_fail(err, "data.y", "expected a list of %d targets (one per row of data.x)",
                       cJSON_GetArraySize(s->x));
    long long n = cJSON_GetArraySize(s->x);
    const cJSON *x0 = s->x->child, *y0 = noy ? NULL : s->y->child;
    int d = cJSON_IsArray(x0) ? cJSON_GetArraySize(x0) : 0;
    if (d < 1)
        return an_fail(err, "data.x[0]", "expected a non-empty list of numbers");
    int yrows = cJSON_IsArray(y0);
    int ydim = yrows ? cJSON_GetArraySize(y0) : 1;
    if (ydim < 1)
        return an_fail(err, "data.y[0]", "expected a non-empty list of numbers");
    if (class_targets && yrows)
        return an_fail(err, "data.y", "cross_entropy expects class indices, got rows");
    int rc = alloc_ds(out, n, d, ydim, err);
    if (rc)
        return rc;
    long long i = 0;
    for (const cJSON *xr = s->x->child, *yr = y0; xr;
         xr = xr->next, yr = yr ? yr->next : NULL, i++) {
        if (!cJSON_IsArray(xr) || cJSON_GetArraySize(xr) != d) {
            data_free(out);
            return an_fail(err, an_path_index(path, sizeof path, "data.x", (int)i),
                           "expected a row of %d numbers (as row 0)", d);
        }
        int f = 0;
        for (const cJSON *v = xr->child; v; v = v->next, f++) {
            if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
                data_free(out);
                snprintf(path, sizeof path, "data.x[%lld][%d]", i, f);
                return an_fail(err, path, "expected a finite number");
            }
            out->x[i * d + f] = (float)v->valuedouble;
        }
        if (noy) {
            out->y[i] = 0.0f;
            continue;
        }
        if (yrows != cJSON_IsArray(yr) || (yrows && cJSON_GetArraySize(yr) != ydim)) {
            data_free(out);
            return an_fail(err, an_path_index(path, sizeof path, "data.y", (int)i),
                           yrows ? "expected a row of %d numbers (as row 0)"
                                 : "expected a number (as row 0)", ydim);
        }
        const cJSON *v = yrows ? yr->child : yr;
        for (int k = 0; k < ydim; k++, v = v->next) {
            if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
                data_free(out);
                return an_fail(err, an_path_index(path, sizeof path, "data.y", (int)i),
                               "expected finite numbers");
            }
            out->y[i * ydim + k] = (float)v->valuedouble;
        }
    }
    if (class_targets)
        for (i = 0; i < n; i++) {
            float c = out->y[i];
            if (c < 0 || c != floorf(c) || c > 1e6f) {
                data_free(out);
                return an_fail(err, an_path_index(path, sizeof path, "data.y", (int)i),
                               "expected a class index (an integer >= 0), got %g", (double)c);
            }
            if ((int)c + 1 > out->nclasses)
                out->nclasses = (int)c + 1;
        }
    return 0;
}

static int build_csv(const data_spec *s, int class_targets, const char *text, size_t len,
                     dataset *out, an_err *err)
{
    csv_table t;
    int rc = csv_parse(text, len, &t, "data", err);
    if (rc)
        return rc;
    int tcol = s->target[0] ? csv_column(&t, s->target) : t.ncols - 1;
    if (tcol < 0) {
        char list[360];
        size_t n = 0;
        list[0] = '\0';
        int c = 0;
        for (; c < t.ncols && n + strlen(t.names[c]) + 45 < sizeof list; c++)
            n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", c ? ", " : "", t.names[c]);
        if (c < t.ncols) /* every column that fits, and how many there are */
            snprintf(list + n, sizeof list - n, ", … (%d columns in all)", t.ncols);
        rc = an_fail(err, "data.target", "no column '%s' in the data (columns: %s)", s->target,
                     list);
        goto done;
    }
    int *cols = malloc((size_t)t.ncols * sizeof *cols), d = 0;
    if (!cols) {
        rc = an_failc(err, -ENOMEM, "data", "out of memory");
        goto done;
    }
    if (s->features_sel) {
        int i = 0;
        const cJSON *f;
        cJSON_ArrayForEach(f, s->features_sel)
        {
            char path[64];
            an_path_index(path, sizeof path, "data.features", i++);
            int c = cJSON_IsString(f) ? csv_column(&t, f->valuestring) : -1;
            if (c < 0) {
                rc = an_fail(err, path, "no column '%s' in the data",
                             cJSON_IsString(f) ? f->valuestring : "?");
                break;
            }
            if (c == tcol) {
                rc = an_fail(err, path, "'%s' is the target column; it cannot be a feature too",
                             f->valuestring);
                break;
            }
            for (int k = 0; k < d && !rc; k++)
                if (cols[k] == c)
                    rc = an_fail(err, path, "column '%s' is listed twice", f->valuestring);
            if (rc)
                break;
            cols[d++] = c;
        }
        if (!rc && d == 0)
            rc = an_fail(err, "data.features", "expected at least one feature column");
    } else {
        for (int c = 0; c < t.ncols; c++)
            if (c != tcol)
                cols[d++] = c;
        if (d == 0)
            rc = an_fail(err, "data", "the data has only the target column; no features");
    }
    if (!rc && t.nrows > DATA_MAX_ROWS)
        rc = an_fail(err, "data", "%lld rows; at most %lld are supported", t.nrows, DATA_MAX_ROWS);
    if (!rc)
        rc = alloc_ds(out, t.nrows, d, 1, err);
    if (!rc && !(out->xd = malloc((size_t)t.nrows * d * sizeof *out->xd))) {
        data_free(out);
        rc = an_failc(err, -ENOMEM, "data", "out of memory");
    }
    for (long long r = 0; !rc && r < t.nrows; r++) {
        double v;
        for (int k = 0; k < d && !rc; k++) {
            rc = csv_number(&t, r, cols[k], &v, "data", err);
            out->x[r * d + k] = (float)v;
            out->xd[r * d + k] = v;
        }
        if (!rc)
            rc = csv_number(&t, r, tcol, &v, "data", err);
        if (!rc && class_targets && (v < 0 || v != floor(v) || v > 1e6))
            rc = an_fail(err, "data",
                         "row %lld (line %lld), column '%s': expected a class index (an integer "
                         ">= 0), got %g",
                         r + 1, t.lines[r], t.names[tcol], v);
        if (!rc) {
            out->y[r] = (float)v;
            if (class_targets && (int)v + 1 > out->nclasses)
                out->nclasses = (int)v + 1;
        }
    }
    if (rc && out->x)
        data_free(out);
    free(cols);
done:
    csv_free(&t);
    return rc;
}

int data_build(const data_spec *spec, uint64_t seed, int class_targets, int outputs,
               const char *csv, size_t csv_len, dataset *out, an_err *err)
{
    memset(out, 0, sizeof *out);
    switch (spec->type) {
    case DATA_SYNTHETIC:
        return build_synthetic(spec, seed, class_targets, outputs, out, err);
    case DATA_INLINE:
        return build_inline(spec, class_targets, out, err);
    case DATA_BUILTIN: {
        char name[CFG_MAX_NAME + 16];
        size_t len = 0;
        const unsigned char *text = NULL;
        if (!strcmp(spec->name, "iris") || !strcmp(spec->name, "digits") ||
            !strcmp(spec->name, "wine")) {
            snprintf(name, sizeof name, "data/%s.csv", spec->name);
            text = assets_get(name, &len);
        }
        if (!text)
            return an_fail(err, "data.name", "expected \"iris\", \"digits\" or \"wine\", got \"%s\"",
                           spec->name);
        return build_csv(spec, class_targets, (const char *)text, len, out, err);
    }
    case DATA_DATASET:
        if (!csv)
            return an_fail(err, "data", "the uploaded data set's text is missing");
        return build_csv(spec, class_targets, csv, csv_len, out, err);
    default:
        return an_fail(err, "data.type",
                       "expected \"synthetic\", \"inline\", \"dataset\" or \"builtin\", got %d",
                       spec->type);
    }
}

int data_standardize(dataset *train, dataset *val, an_err *err)
{
    int d = train->d;
    free(train->mean);
    free(train->std);
    train->mean = calloc((size_t)d, sizeof *train->mean);
    train->std = calloc((size_t)d, sizeof *train->std);
    if (!train->mean || !train->std)
        return an_failc(err, -ENOMEM, "data", "out of memory");
#define FEAT(ds, i, f) ((ds)->xd ? (ds)->xd[(i) * d + (f)] : (double)(ds)->x[(i) * d + (f)])
    for (long long i = 0; i < train->n; i++)
        for (int f = 0; f < d; f++)
            train->mean[f] += FEAT(train, i, f);
    for (int f = 0; f < d; f++)
        train->mean[f] /= (double)train->n;
    for (long long i = 0; i < train->n; i++)
        for (int f = 0; f < d; f++) {
            double c = FEAT(train, i, f) - train->mean[f];
            train->std[f] += c * c;
        }
    for (int f = 0; f < d; f++) {
        train->std[f] = sqrt(train->std[f] / (double)train->n);
        if (!(train->std[f] > 0))
            train->std[f] = 1.0;
    }
    dataset *sets[2] = {train, val};
    for (int s = 0; s < 2; s++) {
        if (!sets[s])
            continue;
        for (long long i = 0; i < sets[s]->n; i++)
            for (int f = 0; f < d; f++)
                sets[s]->x[i * d + f] = (float)((FEAT(sets[s], i, f) - train->mean[f]) /
                                                train->std[f]);
        free(sets[s]->xd);
        sets[s]->xd = NULL;
    }
#undef FEAT
    if (val && val->n) {
        val->mean = malloc((size_t)d * sizeof *val->mean);
        val->std = malloc((size_t)d * sizeof *val->std);
        if (!val->mean || !val->std)
            return an_failc(err, -ENOMEM, "data", "out of memory");
        memcpy(val->mean, train->mean, (size_t)d * sizeof *val->mean);
        memcpy(val->std, train->std, (size_t)d * sizeof *val->std);
    }
    return 0;
}

int data_load(const job_spec *spec, const char *csv, size_t csv_len, dataset *train,
              dataset *val, an_err *err)
{
    dataset all;
    int ce = spec->loss == LOSS_CROSS_ENTROPY, outputs = spec->model.outputs;
    memset(train, 0, sizeof *train);
    memset(val, 0, sizeof *val);
    if (data_is_fashion(&spec->data)) /* images from the packed IDX files (data_idx.c) */
        return data_fashion_load(spec, csv, csv_len, train, val, err);
    int rc = data_build(&spec->data, spec->seed, ce, outputs, csv, csv_len, &all, err);
    if (rc)
        return rc;
    if (all.d != spec->model.inputs) {
        rc = an_fail(err, "model.inputs", "the data has %d features per row, but model.inputs is %d",
                     all.d, spec->model.inputs);
        data_free(&all);
        return rc;
    }
    int w = loss_target_width(spec->loss, outputs);
    if (spec->loss != LOSS_MEAN && all.ydim != w) {
        rc = an_fail(err, "model.outputs",
                     "the data has %d target values per row, but the model's %d outputs with "
                     "this loss need %d",
                     all.ydim, outputs, w);
        data_free(&all);
        return rc;
    }
    if (spec->loss != LOSS_MEAN &&
        (rc = loss_check_targets(spec->loss, all.y, all.n, outputs, "data", err))) {
        data_free(&all);
        return rc;
    }
    if ((rc = data_split(&all, spec->val_fraction, spec->seed, train, val, err)))
        return rc;
    if (spec->data.normalize &&
        (spec->data.type == DATA_DATASET || spec->data.type == DATA_BUILTIN))
        rc = data_standardize(train, val, err);
    if (rc) {
        data_free(train);
        data_free(val);
    }
    return rc;
}

/* ------------------------------------------------------------------------------------------
 * Batching */

int data_loader_init(data_loader *l, const dataset *ds, uint64_t seed, int shuffle,
                     an_err *err)
{
    memset(l, 0, sizeof *l);
    if (ds->n < 1)
        return an_fail(err, "data", "no training rows");
    l->ds = ds;
    l->seed = seed;
    l->shuffle = shuffle;
    l->perm_epoch = -1;
    l->perm = malloc((size_t)ds->n * sizeof *l->perm);
    if (!l->perm)
        return an_failc(err, -ENOMEM, "data", "out of memory");
    return 0;
}

void data_loader_free(data_loader *l)
{
    free(l->perm);
    memset(l, 0, sizeof *l);
}

int data_loader_seek(data_loader *l, int64_t epoch, int64_t pos)
{
    if (epoch < 0 || pos < 0 || pos >= l->ds->n)
        return -EINVAL;
    l->cur.epoch = epoch;
    l->cur.pos = pos;
    return 0;
}

uint32_t data_row_at(data_loader *l, int64_t epoch, int64_t pos)
{
    if (!l->shuffle)
        return (uint32_t)pos;
    if (l->perm_epoch != epoch) {
        rng_permutation(l->perm, (uint32_t)l->ds->n, l->seed, (uint64_t)epoch);
        l->perm_epoch = epoch;
    }
    return l->perm[pos];
}

/* The cursor is kept in locals over the batch. Read back from the loader after each copy
 * (as far as the compiler knows, the copies may write it), every row's read waited for the
 * copies' stores; in the daemon's worker, where those stores were slow, that was a few
 * percent of the fastest jobs' time. */
void data_next(data_loader *l, int B, float *x, float *y, int64_t *epoch)
{
    const dataset *ds = l->ds;
    const size_t d = (size_t)ds->d, yd = (size_t)ds->ydim;
    data_cursor c = l->cur;
    for (int i = 0; i < B; i++) {
        uint32_t row = data_row_at(l, c.epoch, c.pos);
        memcpy(x + (size_t)i * d, ds->x + (size_t)row * d, d * sizeof *x);
        memcpy(y + (size_t)i * yd, ds->y + (size_t)row * yd, yd * sizeof *y);
        if (epoch)
            *epoch = c.epoch;
        if (++c.pos == ds->n) {
            c.pos = 0;
            c.epoch++;
        }
    }
    l->cur = c;
}
