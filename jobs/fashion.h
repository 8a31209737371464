/* fashion — reads the builtin fashion-mnist data set's four gzip-compressed IDX files
 * (Debian's dataset-fashion-mnist, installed by `make deps`) into the packed buffer
 * core/data_idx.h parses. The directory is FASHION_DIR, or $ANNEALD_FASHION_MNIST_DIR when set
 * (for tests of missing and damaged files). */
#ifndef ANNEALD_FASHION_H
#define ANNEALD_FASHION_H

#include <stddef.h>

#include "core/err.h"

/* The directory the files are read from. */
const char *fashion_dir(void);

/* 0 when all four files exist and are readable, else an error naming the missing one
 * (field "data.name"). Cheap: for checks at submission. */
int fashion_check(an_err *err);

/* Reads and decompresses the four files into *buf (malloc'd). A missing, unreadable or
 * damaged (not gzip, cut off) file is an error naming it. */
int fashion_read(char **buf, size_t *len, an_err *err);

#endif
