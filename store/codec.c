/* codec.c — compression of metric blocks (the metric_blocks.raw column; layout in internal.h).
 *
 * A block's columnar layout is made of 8-byte words after its constant-column mask. Before
 * zstd sees it, every word is XORed with the word before it (steps, times and wall clocks
 * then differ only in their low bytes, a flat column becomes zeros) and the words are split
 * into byte planes: all first bytes, then all second bytes, … so sign and exponent bytes,
 * which rarely change, sit together. The transform is exact, so decoding gives back the
 * layout's bytes and every value its bits. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "store/internal.h"
#include "util/util.h"

/* zstd level: the writer thread must keep up with the fastest job (the tutorial job makes a
 * row every ~0.3 µs), so the level is chosen for speed at a size still near the limit. On
 * 1M of its rows, shuffled as below: level 2 packs 13.4 bytes a row at 0.05 µs a row, 5 packs
 * 12.7 at 0.11 µs, 9 gains nothing over 5 (12.6) at 0.16 µs, 1 packs 13.7 and -1 13.5 at
 * 0.035 µs. 2 keeps the store under 14 bytes a step, summaries included, at half of 5's cost. */
#define ST_ZSTD_LEVEL 2

/* Grows s->zbuf to at least `need` bytes. */
static unsigned char *scratch(store_t *s, size_t need)
{
    if (need > s->zcap) {
        unsigned char *p = realloc(s->zbuf, need);
        if (!p)
            return NULL;
        s->zbuf = p;
        s->zcap = need;
    }
    return s->zbuf;
}

int st_block_pack(store_t *s, const unsigned char *raw, size_t len, size_t ml,
                  unsigned char **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    if (len < ml || (len - ml) % 8 != 0)
        return -EINVAL;
    size_t w = (len - ml) / 8, bound = ZSTD_compressBound(len);
    unsigned char *buf = scratch(s, len + bound);
    if (!buf)
        return -ENOMEM;
    if (!s->zc) {
        if (!(s->zc = ZSTD_createCCtx()))
            return -ENOMEM;
        /* Every frame carries a checksum of its content (4 bytes a block), which decoding
         * checks: a damaged page of a block is an error, never other numbers read back. */
        if (ZSTD_isError(ZSTD_CCtx_setParameter(s->zc, ZSTD_c_compressionLevel, ST_ZSTD_LEVEL)) ||
            ZSTD_isError(ZSTD_CCtx_setParameter(s->zc, ZSTD_c_checksumFlag, 1))) {
            ZSTD_freeCCtx(s->zc);
            s->zc = NULL;
            return -EIO;
        }
    }
    unsigned char *t = buf, *z = buf + len;
    memcpy(t, raw, ml);
    uint64_t prev = 0;
    for (size_t i = 0; i < w; i++) {
        uint64_t u = le_get_u64(raw + ml + 8 * i);
        uint64_t x = u ^ prev;
        prev = u;
        for (int k = 0; k < 8; k++)
            t[ml + (size_t)k * w + i] = (unsigned char)(x >> (8 * k));
    }
    size_t n = ZSTD_compress2(s->zc, z, bound, t, len);
    if (ZSTD_isError(n))
        return -EIO;
    *out = z;
    *outlen = n;
    return 0;
}

int st_block_unpack(store_t *s, const unsigned char *z, size_t zlen, size_t len, size_t ml,
                    unsigned char **out)
{
    *out = NULL;
    if (len < ml || (len - ml) % 8 != 0)
        return -EPROTO;
    unsigned char *buf = scratch(s, 2 * len);
    if (!buf)
        return -ENOMEM;
    if (!s->zd && !(s->zd = ZSTD_createDCtx()))
        return -ENOMEM;
    unsigned char *t = buf, *r = buf + len;
    size_t n = ZSTD_decompressDCtx(s->zd, t, len, z, zlen);
    if (ZSTD_isError(n) || n != len)
        return -EPROTO;
    memcpy(r, t, ml);
    size_t w = (len - ml) / 8;
    uint64_t prev = 0;
    for (size_t i = 0; i < w; i++) {
        uint64_t x = 0;
        for (int k = 0; k < 8; k++)
            x |= (uint64_t)t[ml + (size_t)k * w + i] << (8 * k);
        prev ^= x;
        le_put_u64(r + ml + 8 * i, prev);
    }
    *out = r;
    return 0;
}

void st_codec_free(store_t *s)
{
    ZSTD_freeCCtx(s->zc);
    ZSTD_freeDCtx(s->zd);
    free(s->zbuf);
    s->zc = NULL;
    s->zd = NULL;
    s->zbuf = NULL;
    s->zcap = 0;
}
