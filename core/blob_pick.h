/* blob_pick — reads a checkpoint blob piece by piece and keeps only the sections asked for.
 *
 * A request on a trained model (weights, predict, generate) needs the parameters and a few
 * small sections, not the optimizer state, which is twice the parameters for Adam. Fed the
 * blob as it comes out of the store, the picker checks the same framing as blob_parse (magic,
 * version, length, every section within bounds and at most once, the required ones present)
 * and the checksum over every byte, while holding only the kept sections and a few bytes of
 * headers: the checksum still covers the whole blob, and memory is that of the model. */
#ifndef ANNEALD_BLOB_PICK_H
#define ANNEALD_BLOB_PICK_H

#include <stddef.h>
#include <stdint.h>

#include "core/blob.h"
#include "core/err.h"

#define BLOB_PICK_BIT(id) (1u << (id))

typedef struct blob_picker {
    unsigned want;                        /* BLOB_PICK_BIT of each section to keep */
    uint64_t total;                       /* the blob's length from its header (0: not yet) */
    uint64_t off;                         /* bytes fed so far */
    uint64_t hash;                        /* FNV-1a-64 of the bytes before the trailer */
    unsigned char stage[BLOB_HEADER];     /* the header being read */
    size_t staged;
    uint32_t nsec, seen;                  /* sections announced, section headers read */
    uint32_t cur;                         /* section whose payload is being read (0: none) */
    uint64_t left;                        /* its payload bytes still to come */
    uint64_t layout_hash, model_hash;
    unsigned present;                     /* BLOB_PICK_BIT of every section seen */
    unsigned char *keep[SEC_COUNT + 1];   /* kept payloads (malloc'd) */
    uint64_t len[SEC_COUNT + 1], filled[SEC_COUNT + 1];
    uint64_t kept_bytes;                  /* what the kept payloads hold together */
    int failed;
} blob_picker;

void blob_pick_init(blob_picker *p, unsigned want);

/* Feeds the next n bytes. Fails (and keeps failing) at the first byte that breaks the
 * framing; -ENOMEM when a kept section cannot be allocated. */
int blob_pick_feed(blob_picker *p, const void *data, size_t n, an_err *err);

/* After the last byte: checks the length, the checksum and the sections, and fills *v with
 * the kept sections (the others NULL), valid until blob_pick_free. */
int blob_pick_finish(blob_picker *p, blob_view *v, an_err *err);

void blob_pick_free(blob_picker *p);

#endif
