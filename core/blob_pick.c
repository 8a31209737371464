/* blob_pick — a checkpoint blob read piece by piece, keeping only some sections. */
#include "core/blob_pick.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *const F = "checkpoint";

void blob_pick_init(blob_picker *p, unsigned want)
{
    memset(p, 0, sizeof *p);
    p->want = want;
    p->hash = FNV_OFFSET;
}

void blob_pick_free(blob_picker *p)
{
    for (int i = 0; i <= SEC_COUNT; i++)
        free(p->keep[i]);
    unsigned want = p->want;
    memset(p, 0, sizeof *p);
    p->want = want;
}

/* Every later call fails too: a malformed blob is not read further. */
static int bad(blob_picker *p, int code)
{
    p->failed = 1;
    return code;
}

static int check_header(blob_picker *p, an_err *err)
{
    const unsigned char *b = p->stage;
    if (memcmp(b, BLOB_MAGIC, 8) != 0)
        return bad(p, an_failc(err, -EPROTO, F, "expected a checkpoint starting with "
                                    "\"ANNEALD\", got other bytes (not an anneald checkpoint)"));
    uint32_t version = le_get_u32(b + 8);
    if (version != BLOB_VERSION)
        return bad(p, an_failc(err, -EPROTO, F, "expected checkpoint format version %u, "
                                    "got %u", BLOB_VERSION, version));
    p->nsec = le_get_u32(b + 12);
    p->layout_hash = le_get_u64(b + 16);
    p->model_hash = le_get_u64(b + 24);
    p->total = le_get_u64(b + 32);
    if (p->total < BLOB_HEADER + BLOB_TRAILER)
        return bad(p, an_failc(err, -EPROTO, F, "the checkpoint says it is %llu bytes "
                                    "long, less than its header and trailer",
                                    (unsigned long long)p->total));
    if (p->nsec < SEC_REQUIRED || p->nsec > SEC_COUNT)
        return bad(p, an_failc(err, -EPROTO, F, "expected %d to %d sections in the "
                                    "checkpoint, got %u", SEC_REQUIRED, SEC_COUNT, p->nsec));
    return 0;
}

static int check_section(blob_picker *p, an_err *err)
{
    uint32_t id = le_get_u32(p->stage);
    uint64_t sl = le_get_u64(p->stage + 8);
    uint64_t end = p->total - BLOB_TRAILER;
    if (id < 1 || id > SEC_COUNT || (p->present & BLOB_PICK_BIT(id)))
        return bad(p, an_failc(err, -EPROTO, F, "checkpoint section %u has id %u: expected "
                                    "each of 1..%d once", p->seen, id, SEC_COUNT));
    if (sl > end - p->off)
        return bad(p, an_failc(err, -EPROTO, F, "checkpoint section %u says %llu bytes, "
                                    "only %llu remain", id, (unsigned long long)sl,
                                    (unsigned long long)(end - p->off)));
    p->present |= BLOB_PICK_BIT(id);
    p->len[id] = sl;
    if (p->want & BLOB_PICK_BIT(id)) {
        p->keep[id] = malloc(sl ? (size_t)sl : 1);
        if (!p->keep[id])
            return bad(p, an_failc(err, -ENOMEM, F, "out of memory for a %llu-byte "
                                        "checkpoint section", (unsigned long long)sl));
        p->kept_bytes += sl;
    }
    p->cur = id;
    p->left = sl;
    if (sl == 0) {
        p->cur = 0;
        p->seen++;
    }
    return 0;
}

/* Stages up to `size` header bytes (the blob's or a section's) from *in, hashing them;
 * returns 1 once the header is whole (staged is reset for the next one). */
static int stage(blob_picker *p, size_t size, const unsigned char **in, size_t *n)
{
    size_t take = size - p->staged < *n ? size - p->staged : *n;
    memcpy(p->stage + p->staged, *in, take);
    p->hash = blob_fnv1a(p->hash, *in, take);
    p->staged += take;
    p->off += take;
    *in += take;
    *n -= take;
    if (p->staged < size)
        return 0;
    p->staged = 0;
    return 1;
}

int blob_pick_feed(blob_picker *p, const void *data, size_t n, an_err *err)
{
    if (p->failed)
        return an_failc(err, -EPROTO, F, "the checkpoint was already found malformed");
    const unsigned char *in = data;
    while (n) {
        size_t take;
        if (p->off < BLOB_HEADER) { /* the header */
            int rc = stage(p, BLOB_HEADER, &in, &n) ? check_header(p, err) : 0;
            if (rc)
                return rc;
            continue;
        }
        uint64_t end = p->total - BLOB_TRAILER;
        if (p->off >= end) { /* the trailer */
            if (p->off == end && p->seen < p->nsec)
                return bad(p, an_failc(err, -EPROTO, F, "checkpoint section %u is cut off",
                                            p->seen));
            if (p->off >= p->total)
                return bad(p, an_failc(err, -EPROTO, F, "the checkpoint says it is %llu "
                                            "bytes long, got more (padded)",
                                            (unsigned long long)p->total));
            take = p->total - p->off < n ? (size_t)(p->total - p->off) : n;
            memcpy(p->stage + p->staged, in, take);
            p->staged += take;
            p->off += take;
            in += take;
            n -= take;
            continue;
        }
        if (p->cur) { /* a section's payload */
            take = p->left < n ? (size_t)p->left : n;
            if (p->keep[p->cur])
                memcpy(p->keep[p->cur] + p->filled[p->cur], in, take);
            p->filled[p->cur] += take;
            p->hash = blob_fnv1a(p->hash, in, take);
            p->left -= take;
            p->off += take;
            in += take;
            n -= take;
            if (p->left == 0) {
                p->cur = 0;
                p->seen++;
            }
            continue;
        }
        if (p->seen == p->nsec)
            return bad(p, an_failc(err, -EPROTO, F, "checkpoint has %llu stray bytes after "
                                        "its sections", (unsigned long long)(end - p->off)));
        if (p->staged == 0 && end - p->off < SECTION_HEADER)
            return bad(p, an_failc(err, -EPROTO, F, "checkpoint section %u is cut off",
                                        p->seen));
        int rc = stage(p, SECTION_HEADER, &in, &n) ? check_section(p, err) : 0;
        if (rc)
            return rc;
    }
    return 0;
}

int blob_pick_finish(blob_picker *p, blob_view *v, an_err *err)
{
    memset(v, 0, sizeof *v);
    if (p->failed)
        return an_failc(err, -EPROTO, F, "the checkpoint was already found malformed");
    if (p->off < BLOB_HEADER + BLOB_TRAILER || p->off != p->total)
        return bad(p, an_failc(err, -EPROTO, F, "the checkpoint says it is %llu bytes long, "
                                    "got %llu (truncated)", (unsigned long long)p->total,
                                    (unsigned long long)p->off));
    if (le_get_u64(p->stage) != p->hash)
        return bad(p, an_failc(err, -EPROTO, F, "checkpoint checksum mismatch: the blob "
                                    "is corrupt"));
    for (int id = 1; id <= SEC_REQUIRED; id++)
        if (!(p->present & BLOB_PICK_BIT(id)))
            return bad(p, an_failc(err, -EPROTO, F, "checkpoint section %d is missing",
                                        id));
    v->layout_hash = p->layout_hash;
    v->model_hash = p->model_hash;
    for (int id = 1; id <= SEC_COUNT; id++)
        if (p->keep[id]) {
            v->sec[id] = p->keep[id];
            v->len[id] = p->len[id];
        }
    return 0;
}
