/* blob — checkpoint framing: little-endian bytes, the checksum, the section table. */
#include "core/blob.h"
#include "util/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/optim.h"
#include "core/sched.h"

uint64_t blob_fnv1a(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= FNV_PRIME;
    }
    return h;
}

uint64_t blob_fnv_i64(uint64_t h, int64_t v)
{
    unsigned char b[8];
    le_put_u64(b, (uint64_t)v);
    return blob_fnv1a(h, b, 8);
}

uint64_t blob_model_hash(const model *m)
{
    uint64_t h = blob_fnv_i64(FNV_OFFSET, m->type);
    h = blob_fnv_i64(h, m->nlayers);
    for (int l = 0; l <= m->nlayers; l++)
        h = blob_fnv_i64(h, m->dims[l]);
    h = blob_fnv_i64(h, m->nlayers > 1 ? m->act : 0);
    return blob_fnv_i64(h, (int64_t)m->nparams);
}


int blob_parse(const void *buf, size_t len, blob_view *v, an_err *err)
{
    const char *f = "checkpoint";
    memset(v, 0, sizeof *v);
    if (!buf || len == 0)
        return an_failc(err, -EPROTO, f, "expected a checkpoint blob, got an empty one");
    const unsigned char *b = buf;
    if (len < BLOB_HEADER + BLOB_TRAILER)
        return an_failc(err, -EPROTO, f, "expected a checkpoint of at least %u bytes, got %zu "
                        "(truncated)", BLOB_HEADER + BLOB_TRAILER, len);
    if (memcmp(b, BLOB_MAGIC, 8) != 0)
        return an_failc(err, -EPROTO, f, "expected a checkpoint starting with \"ANNEALD\", got "
                        "other bytes (not an anneald checkpoint)");
    uint32_t version = le_get_u32(b + 8), nsec = le_get_u32(b + 12);
    if (version != BLOB_VERSION)
        return an_failc(err, -EPROTO, f, "expected checkpoint format version %u, got %u",
                        BLOB_VERSION, version);
    uint64_t total = le_get_u64(b + 32);
    if (total != len)
        return an_failc(err, -EPROTO, f, "the checkpoint says it is %llu bytes long, got %zu "
                        "(truncated or padded)", (unsigned long long)total, len);
    uint64_t sum = le_get_u64(b + len - BLOB_TRAILER);
    if (blob_fnv1a(FNV_OFFSET, b, len - BLOB_TRAILER) != sum)
        return an_failc(err, -EPROTO, f, "checkpoint checksum mismatch: the blob is corrupt");
    if (nsec < SEC_REQUIRED || nsec > SEC_COUNT)
        return an_failc(err, -EPROTO, f, "expected %d to %d sections in the checkpoint, got %u",
                        SEC_REQUIRED, SEC_COUNT, nsec);
    v->layout_hash = le_get_u64(b + 16);
    v->model_hash = le_get_u64(b + 24);
    size_t off = BLOB_HEADER, end = len - BLOB_TRAILER;
    for (uint32_t s = 0; s < nsec; s++) {
        if (end - off < SECTION_HEADER)
            return an_failc(err, -EPROTO, f, "checkpoint section %u is cut off", s);
        uint32_t id = le_get_u32(b + off);
        uint64_t sl = le_get_u64(b + off + 8);
        off += SECTION_HEADER;
        if (id < 1 || id > SEC_COUNT || v->sec[id])
            return an_failc(err, -EPROTO, f, "checkpoint section %u has id %u: expected each "
                            "of 1..%d once", s, id, SEC_COUNT);
        if (sl > end - off)
            return an_failc(err, -EPROTO, f, "checkpoint section %u says %llu bytes, only %zu "
                            "remain", id, (unsigned long long)sl, end - off);
        v->sec[id] = b + off;
        v->len[id] = sl;
        off += (size_t)sl;
    }
    if (off != end)
        return an_failc(err, -EPROTO, f, "checkpoint has %zu stray bytes after its sections",
                        end - off);
    for (int id = 1; id <= SEC_REQUIRED; id++)
        if (!v->sec[id])
            return an_failc(err, -EPROTO, f, "checkpoint section %d is missing", id);
    return 0;
}

int64_t blob_steps(const blob_view *v)
{
    if (v->len[SEC_COUNTERS] != 16)
        return -1;
    int64_t steps = (int64_t)le_get_u64(v->sec[SEC_COUNTERS]);
    return steps < 0 ? -1 : steps;
}

int blob_load_optim_sched(const blob_view *v, optim *o, sched *s, an_err *err)
{
    size_t ol = optim_state_size(o), sl = sched_state_size(s);
    unsigned char *keep = malloc(ol + sl + 1);
    if (!keep)
        return an_failc(err, -ENOMEM, "checkpoint", "out of memory restoring a checkpoint");
    optim_save(o, keep, ol);
    sched_save(s, keep + ol, sl);
    int rc = optim_load(o, v->sec[SEC_OPTIM], (size_t)v->len[SEC_OPTIM], err);
    if (!rc && (rc = sched_load(s, v->sec[SEC_SCHED], (size_t)v->len[SEC_SCHED], err))) {
        an_err ignored;
        optim_load(o, keep, ol, &ignored);
    }
    free(keep);
    return rc == 0 ? 0 : rc < 0 ? rc : -EPROTO;
}

unsigned char *blob_put_section(unsigned char *w, uint32_t id, uint64_t len)
{
    le_put_u32(w, id);
    le_put_u32(w + 4, 0);
    le_put_u64(w + 8, len);
    return w + SECTION_HEADER;
}

unsigned char *blob_reserve(void **buf, size_t *cap, size_t total)
{
    if (*buf && *cap >= total)
        return *buf;
    free(*buf);
    *buf = malloc(total);
    *cap = *buf ? total : 0;
    return *buf;
}
