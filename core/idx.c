/* idx — IDX file parsing (see idx.h). */
#include "core/idx.h"

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int idx_parse(const uint8_t *buf, size_t len, const char *name, const char *field,
              idx_array *out, an_err *err)
{
    out->ndims = 0;
    out->data = NULL;
    out->count = 0;
    if (len < 4 || buf[0] != 0 || buf[1] != 0)
        return an_fail(err, field, "%s is not an IDX file (it does not start with the IDX "
                       "magic number); the file is damaged", name);
    if (buf[2] != 0x08)
        return an_fail(err, field, "%s holds IDX element type 0x%02x; only unsigned bytes "
                       "(0x08) are read", name, buf[2]);
    int nd = buf[3];
    if (nd < 1 || nd > IDX_MAX_DIMS)
        return an_fail(err, field, "%s declares %d dimensions; 1..%d expected", name, nd,
                       IDX_MAX_DIMS);
    size_t head = 4 + 4 * (size_t)nd;
    if (len < head)
        return an_fail(err, field, "%s is truncated inside its header (%zu bytes)", name, len);
    size_t count = 1;
    for (int i = 0; i < nd; i++) {
        out->dims[i] = be32(buf + 4 + 4 * i);
        /* Products beyond the buffer are caught below; this only keeps count from wrapping. */
        if (out->dims[i] != 0 && count > (SIZE_MAX / out->dims[i]))
            return an_fail(err, field, "%s declares more elements than fit in memory", name);
        count *= out->dims[i];
    }
    if (len - head != count)
        return an_fail(err, field, "%s is damaged: its header declares %zu elements but %zu "
                       "bytes follow it%s", name, count, len - head,
                       len - head < count ? " (truncated)" : "");
    out->ndims = nd;
    out->data = buf + head;
    out->count = count;
    return 0;
}

int idx_check_pair(const idx_array *images, const idx_array *labels, const char *names,
                   const char *field, an_err *err)
{
    if (images->ndims != 3 || images->dims[1] != 28 || images->dims[2] != 28)
        return an_fail(err, field, "%s: the images are not n×28×28", names);
    if (labels->ndims != 1)
        return an_fail(err, field, "%s: the labels file is not one-dimensional", names);
    if (images->dims[0] != labels->dims[0])
        return an_fail(err, field, "%s: %u images but %u labels", names, images->dims[0],
                       labels->dims[0]);
    for (size_t i = 0; i < labels->count; i++)
        if (labels->data[i] > 9)
            return an_fail(err, field, "%s: label %zu is %u; classes are 0..9", names, i,
                           labels->data[i]);
    return 0;
}
