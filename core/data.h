/* data — a job's data set (JOBSPEC.md, Data) and the batches drawn from it.
 *
 * A dataset is features X [n, d] and targets Y [n, ydim] as floats; class targets are class
 * indices stored as floats (ydim 1, nclasses > 0). Sources: synthetic (from the seed), inline
 * (rows in the spec), builtin (an embedded CSV) and dataset (CSV text the caller hands in).
 * Batches come from a cursor (epoch, position): each epoch visits the training rows in the
 * permutation of (seed, epoch), so any batch can be recomputed from those two integers. No
 * I/O, and no allocation after setup. */
#ifndef ANNEALD_DATA_H
#define ANNEALD_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/err.h"

typedef struct dataset {
    long long n;      /* rows */
    int d;            /* features per row */
    int ydim;         /* target values per row */
    int nclasses;     /* > 0: targets are class indices 0..nclasses-1 (ydim 1) */
    float *x;         /* [n, d] */
    float *y;         /* [n, ydim] */
    double *mean;     /* [d] standardisation applied (from the training split), or NULL */
    double *std;      /* [d] population std (1 where a feature is constant), or NULL */
    double *xd;       /* [n, d] features as read, in double (CSV sources; freed once
                       * standardised), or NULL: standardising from these rounds once */
} dataset;

/* Builds the whole data set of `spec` (no split, no standardisation). class_targets = 1 reads
 * targets as class indices (cross_entropy); for synthetic classification without it, targets
 * are one-hot rows when `outputs` equals the class count, else the class index as a value.
 * `csv` is the uploaded text for type "dataset". Errors name their JSON path under "data". */
int data_build(const data_spec *spec, uint64_t seed, int class_targets, int outputs,
               const char *csv, size_t csv_len, dataset *out, an_err *err);

/* Splits `all` (consumed: its buffers become train's) into train and val: floor(fraction * n)
 * rows (at least 1 when fraction > 0, leaving at least 1) drawn by the permutation of stream
 * RNG_SPLIT of `seed`; both keep the original row order. At the peak it holds `all` and a
 * copy of the validation rows (core/data_split.c). fraction 0 gives an empty val (n = 0). */
int data_split(dataset *all, double fraction, uint64_t seed, dataset *train, dataset *val,
               an_err *err);

/* Standardises features: mean and population std over train's rows (in double), applied to
 * train and, if not NULL, val. Constant features get std 1. */
int data_standardize(dataset *train, dataset *val, an_err *err);

/* Everything a job needs: build from spec->data, check it against the model (inputs, target
 * width, class range), split off spec->val_fraction, standardise (types dataset and builtin
 * when data.normalize is set). */
int data_load(const job_spec *spec, const char *csv, size_t csv_len, dataset *train,
              dataset *val, an_err *err);

void data_free(dataset *d);

/* A position in the stream of training rows. */
typedef struct data_cursor {
    int64_t epoch;    /* current pass over the data (from 0) */
    int64_t pos;      /* next position in that epoch's permutation, 0..n-1 */
} data_cursor;

typedef struct data_loader {
    const dataset *ds;
    uint64_t seed;
    int shuffle;
    uint32_t *perm;       /* [n]: the order of perm_epoch */
    int64_t perm_epoch;   /* epoch perm belongs to (-1: none yet) */
    data_cursor cur;
} data_loader;

/* Sets up batching over ds (which must outlive the loader) at cursor (0, 0). */
int data_loader_init(data_loader *l, const dataset *ds, uint64_t seed, int shuffle,
                     an_err *err);
void data_loader_free(data_loader *l);

/* Moves the cursor (e.g. after a restore). pos must be in 0..n-1. */
int data_loader_seek(data_loader *l, int64_t epoch, int64_t pos);

/* Copies the next B rows into x [B, d] and y [B, ydim] (caller's buffers) and advances. A
 * batch that reaches the end of an epoch continues with the next epoch's order, so every
 * batch is full. *epoch (if not NULL) gets the epoch of the batch's last row. */
void data_next(data_loader *l, int B, float *x, float *y, int64_t *epoch);

/* Row index of position pos in epoch's order (pure: the permutation of (seed, epoch)). */
uint32_t data_row_at(data_loader *l, int64_t epoch, int64_t pos);

#endif
