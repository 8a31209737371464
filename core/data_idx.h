/* data_idx — the builtin `fashion-mnist` data set (JOBSPEC.md, "Builtin fashion-mnist") from
 * its four IDX files, which the daemon reads and decompresses (jobs/fashion.c) and hands in
 * as one packed buffer: "FASHION\0", four u64 lengths (little-endian), then train images,
 * train labels, test images, test labels. Pure: parsing and building only. */
#ifndef ANNEALD_DATA_IDX_H
#define ANNEALD_DATA_IDX_H

#include <stddef.h>

#include "core/config.h"
#include "core/data.h"
#include "core/err.h"

#define FASHION_MAGIC "FASHION"   /* 8 bytes with its NUL */
#define FASHION_DIR "/usr/share/datasets/fashion-mnist"
#define FASHION_ROWS 60000
#define FASHION_TEST_ROWS 10000
#define FASHION_FEATURES 784
#define FASHION_CLASSES 10

/* The file names, in the packed order. */
extern const char *const fashion_files[4];

/* 1 if the spec's data is the builtin fashion-mnist. */
int data_is_fashion(const data_spec *d);

/* data_load for fashion-mnist: pixels scaled to [0, 1], the class index as target; the test
 * split as validation (validation.split "test"), or validation.fraction of the training
 * images; standardised when data.normalize. A damaged file is an error naming it. */
int data_fashion_load(const job_spec *spec, const char *packed, size_t len, dataset *train,
                      dataset *val, an_err *err);

#endif
