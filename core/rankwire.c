/* rankwire — frames between the daemon and rank 0 (rankwire.h). */
#include "core/rankwire.h"

#include <errno.h>
#include <math.h>

#include "util/util.h"

/* A metric row: step, epoch, loss, grad_norm, time (8 bytes each), n_lr (u16), flags (u8),
 * the lrs, the validation pair when F_VAL, and the loss scale and skipped steps (8 bytes
 * each) when F_FP16. */
#define ROW_FIXED 43
enum { F_VAL = 1, F_FP16 = 2, F_SKIPPED = 4 /* with F_FP16: the step overflowed */ };

void rw_header(unsigned char *out, int type, uint32_t len)
{
    le_put_u32(out, len);
    out[4] = (unsigned char)type;
}

int rw_header_parse(const unsigned char *hdr, int *type, uint32_t *len)
{
    *len = le_get_u32(hdr);
    *type = hdr[4];
    switch (*type) {
    case RW_SPEC: case RW_DATA: case RW_RESUME: case RW_STOP:
    case RW_METRICS: case RW_CKPT: case RW_RANKMS: case RW_DONE: case RW_FAIL: case RW_START:
        break;
    default:
        return -EPROTO;
    }
    return *len > RW_MAX_PAYLOAD ? -EPROTO : 0;
}

static size_t row_size(const rw_metric *m)
{
    return ROW_FIXED + 8 * (size_t)m->n_lr + (m->has_val ? 16 : 0) +
           (m->loss_scale > 0 ? 16 : 0);
}

size_t rw_metrics_size(const rw_metric *rows, size_t n)
{
    size_t s = 4;
    for (size_t i = 0; i < n; i++)
        s += row_size(&rows[i]);
    return s;
}

size_t rw_metrics_encode(const rw_metric *rows, size_t n, unsigned char *out)
{
    unsigned char *p = out;
    le_put_u32(p, (uint32_t)n);
    p += 4;
    for (size_t i = 0; i < n; i++) {
        const rw_metric *m = &rows[i];
        le_put_u64(p, (uint64_t)m->step);
        le_put_u64(p + 8, (uint64_t)m->epoch);
        le_put_f64(p + 16, m->loss);
        le_put_f64(p + 24, m->grad_norm);
        le_put_f64(p + 32, m->time);
        p[40] = (unsigned char)(m->n_lr & 0xff);
        p[41] = (unsigned char)(m->n_lr >> 8);
        int fp16 = m->loss_scale > 0; /* NAN (or 0) when the job is not fp16 */
        p[42] = (unsigned char)((m->has_val ? F_VAL : 0) | (fp16 ? F_FP16 : 0) |
                                (fp16 && m->skipped ? F_SKIPPED : 0));
        p += ROW_FIXED;
        for (int g = 0; g < m->n_lr; g++, p += 8)
            le_put_f64(p, m->lr[g]);
        if (m->has_val) {
            le_put_f64(p, m->val_loss);
            le_put_f64(p + 8, m->val_acc);
            p += 16;
        }
        if (fp16) {
            le_put_f64(p, m->loss_scale);
            le_put_u64(p + 8, (uint64_t)m->skipped_steps);
            p += 16;
        }
    }
    return (size_t)(p - out);
}

int rw_metrics_decode(const unsigned char *p, size_t len, rw_metric *rows, size_t max, size_t *n)
{
    *n = 0;
    if (len < 4)
        return -EPROTO;
    uint32_t count = le_get_u32(p);
    if (count > max)
        return -EPROTO;
    size_t at = 4;
    for (uint32_t i = 0; i < count; i++) {
        if (len - at < ROW_FIXED)
            return -EPROTO;
        const unsigned char *r = p + at;
        rw_metric *m = &rows[i];
        m->step = (int64_t)le_get_u64(r);
        m->epoch = (int64_t)le_get_u64(r + 8);
        m->loss = le_get_f64(r + 16);
        m->grad_norm = le_get_f64(r + 24);
        m->time = le_get_f64(r + 32);
        m->n_lr = r[40] | (r[41] << 8);
        int flags = r[42];
        m->has_val = (flags & F_VAL) != 0;
        int fp16 = (flags & F_FP16) != 0;
        m->skipped = (flags & F_SKIPPED) != 0;
        if (m->n_lr > RW_MAX_LR || (flags & ~(F_VAL | F_FP16 | F_SKIPPED)) ||
            (m->skipped && !fp16) || m->step < 1)
            return -EPROTO;
        at += ROW_FIXED;
        size_t rest = 8 * (size_t)m->n_lr + (m->has_val ? 16 : 0) + (fp16 ? 16 : 0);
        if (len - at < rest)
            return -EPROTO;
        for (int g = 0; g < m->n_lr; g++)
            m->lr[g] = le_get_f64(p + at + 8 * (size_t)g);
        at += 8 * (size_t)m->n_lr;
        m->val_loss = m->val_acc = NAN;
        if (m->has_val) {
            m->val_loss = le_get_f64(p + at);
            m->val_acc = le_get_f64(p + at + 8);
            at += 16;
        }
        m->loss_scale = NAN;
        m->skipped_steps = 0;
        if (fp16) {
            m->loss_scale = le_get_f64(p + at);
            m->skipped_steps = (int64_t)le_get_u64(p + at + 8);
            at += 16;
            if (!(m->loss_scale > 0) || !isfinite(m->loss_scale) || m->skipped_steps < 0)
                return -EPROTO;
        }
    }
    if (at != len)
        return -EPROTO;
    *n = count;
    return 0;
}

void rw_ckpt_head(unsigned char *out, int64_t step, double loss)
{
    le_put_u64(out, (uint64_t)step);
    le_put_f64(out + 8, loss);
}

int rw_ckpt_decode(const unsigned char *p, size_t len, int64_t *step, double *loss,
                   const unsigned char **blob, size_t *blob_len)
{
    if (len <= RW_CKPT_HEAD)
        return -EPROTO;
    *step = (int64_t)le_get_u64(p);
    *loss = le_get_f64(p + 8);
    if (*step < 1)
        return -EPROTO;
    *blob = p + RW_CKPT_HEAD;
    *blob_len = len - RW_CKPT_HEAD;
    return 0;
}

size_t rw_rankms_encode(const double *ms, int n, unsigned char *out)
{
    le_put_u32(out, (uint32_t)n);
    for (int i = 0; i < n; i++)
        le_put_f64(out + 4 + 8 * (size_t)i, ms[i]);
    return 4 + 8 * (size_t)n;
}

int rw_rankms_decode(const unsigned char *p, size_t len, double *ms, int max, int *n)
{
    *n = 0;
    if (len < 4)
        return -EPROTO;
    uint32_t count = le_get_u32(p);
    if (count == 0 || count > (uint32_t)max || len != 4 + 8 * (size_t)count)
        return -EPROTO;
    for (uint32_t i = 0; i < count; i++)
        ms[i] = le_get_f64(p + 4 + 8 * (size_t)i);
    *n = (int)count;
    return 0;
}

int rw_stop_decode(const unsigned char *p, size_t len, int *how)
{
    if (len != 1 || (p[0] != RW_STOP_PAUSE && p[0] != RW_STOP_CANCEL))
        return -EPROTO;
    *how = p[0];
    return 0;
}

int rw_done_decode(const unsigned char *p, size_t len, int *how)
{
    if (len != 1 || (p[0] != RW_END_COMPLETED && p[0] != RW_END_STOPPED))
        return -EPROTO;
    *how = p[0];
    return 0;
}

void rw_start_encode(unsigned char *out, int64_t done, int64_t total)
{
    le_put_u64(out, (uint64_t)done);
    le_put_u64(out + 8, (uint64_t)total);
    le_put_u32(out + 16, RW_VERSION);
}

int rw_start_decode(const unsigned char *p, size_t len, int64_t *done, int64_t *total,
                    uint32_t *version)
{
    *version = len == 16 ? 1 : len == RW_START_LEN ? le_get_u32(p + 16) : 0;
    if (len != 16 && len != RW_START_LEN)
        return -EPROTO;
    if (*version != RW_VERSION) /* the first version's start was 16 bytes, without one */
        return -EPROTONOSUPPORT;
    *done = (int64_t)le_get_u64(p);
    *total = (int64_t)le_get_u64(p + 8);
    return *done < 0 || *total < *done ? -EPROTO : 0;
}
