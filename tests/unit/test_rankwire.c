/* test_rankwire — the frames between the daemon and rank 0: rows, checkpoints and step times
 * read back to the same bits, and every malformed frame (unknown type, oversized length,
 * truncated or padded payload, impossible counts) is -EPROTO rather than a read past its end. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/rankwire.h"
#include "util/util.h"

static void test_header(void **state)
{
    (void)state;
    unsigned char h[RW_HEADER];
    int type;
    uint32_t len;
    rw_header(h, RW_CKPT, 123456);
    assert_int_equal(rw_header_parse(h, &type, &len), 0);
    assert_int_equal(type, RW_CKPT);
    assert_int_equal(len, 123456);
    rw_header(h, 99, 1); /* unknown type */
    assert_int_equal(rw_header_parse(h, &type, &len), -EPROTO);
    rw_header(h, 0, 1);
    assert_int_equal(rw_header_parse(h, &type, &len), -EPROTO);
    rw_header(h, RW_SPEC, RW_MAX_PAYLOAD + 1u); /* oversized */
    assert_int_equal(rw_header_parse(h, &type, &len), -EPROTO);
    rw_header(h, RW_SPEC, RW_MAX_PAYLOAD);
    assert_int_equal(rw_header_parse(h, &type, &len), 0);
}

static void test_metrics_roundtrip(void **state)
{
    (void)state;
    rw_metric in[3];
    memset(in, 0, sizeof in);
    for (int i = 0; i < 3; i++) {
        in[i].step = 7 + i;
        in[i].epoch = 2;
        in[i].loss = 1.0 / 3.0 + i;
        in[i].grad_norm = 0.1 * i;
        in[i].time = 0.25 * i;
        in[i].n_lr = i;
        for (int g = 0; g < i; g++)
            in[i].lr[g] = 1e-3 * (g + 1);
        in[i].has_val = i == 1;
        in[i].val_loss = i == 1 ? 0.5 : NAN;
        in[i].val_acc = i == 1 ? 0.75 : NAN;
        /* fp16 on rows 1 (skipped) and 2; row 0 is not fp16 (0 as a memset leaves it) */
        in[i].loss_scale = i == 0 ? 0.0 : 65536.0 / i;
        in[i].skipped_steps = i == 0 ? 0 : 40 + i;
        in[i].skipped = i == 1;
    }
    size_t sz = rw_metrics_size(in, 3);
    unsigned char *buf = malloc(sz + 8);
    assert_int_equal(rw_metrics_encode(in, 3, buf), sz);
    rw_metric out[3];
    size_t n = 0;
    assert_int_equal(rw_metrics_decode(buf, sz, out, 3, &n), 0);
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(out[i].step, in[i].step);
        assert_int_equal(out[i].epoch, in[i].epoch);
        assert_memory_equal(&out[i].loss, &in[i].loss, sizeof(double));
        assert_memory_equal(&out[i].grad_norm, &in[i].grad_norm, sizeof(double));
        assert_int_equal(out[i].n_lr, in[i].n_lr);
        assert_memory_equal(out[i].lr, in[i].lr, sizeof(double) * (size_t)in[i].n_lr);
        assert_int_equal(out[i].has_val, in[i].has_val);
        assert_int_equal(out[i].skipped_steps, in[i].skipped_steps);
        assert_int_equal(out[i].skipped, in[i].skipped);
    }
    assert_true(isnan(out[0].loss_scale));
    assert_true(out[1].loss_scale == 65536.0 && out[2].loss_scale == 32768.0);
    assert_true(out[1].val_loss == 0.5 && out[1].val_acc == 0.75);
    assert_true(isnan(out[0].val_loss));
    /* every truncation, and one byte too many, is refused */
    for (size_t cut = 0; cut < sz; cut++)
        assert_int_equal(rw_metrics_decode(buf, cut, out, 3, &n), -EPROTO);
    buf[sz] = 0;
    assert_int_equal(rw_metrics_decode(buf, sz + 1, out, 3, &n), -EPROTO);
    /* more rows than the caller has room for */
    assert_int_equal(rw_metrics_decode(buf, sz, out, 2, &n), -EPROTO);
    assert_int_equal(n, 0);
    /* n_lr over the limit (first row's n_lr at bytes 4+40..41) */
    unsigned char save = buf[4 + 41];
    buf[4 + 41] = 1;
    assert_int_equal(rw_metrics_decode(buf, sz, out, 3, &n), -EPROTO);
    buf[4 + 41] = save;
    /* flags: an unknown bit; skipped without fp16; fp16 announced without its bytes */
    buf[4 + 42] = 8;
    assert_int_equal(rw_metrics_decode(buf, sz, out, 3, &n), -EPROTO);
    buf[4 + 42] = 4;
    assert_int_equal(rw_metrics_decode(buf, sz, out, 3, &n), -EPROTO);
    buf[4 + 42] = 2;
    assert_int_equal(rw_metrics_decode(buf, sz, out, 3, &n), -EPROTO);
    buf[4 + 42] = 0;
    assert_int_equal(rw_metrics_decode(buf, sz, out, 3, &n), 0);
    /* a loss scale that is not finite and > 0 (row 2's, the last 16 bytes of the frame) */
    unsigned char keep[8];
    memcpy(keep, buf + sz - 16, 8);
    le_put_f64(buf + sz - 16, 0.0);
    assert_int_equal(rw_metrics_decode(buf, sz, out, 3, &n), -EPROTO);
    le_put_f64(buf + sz - 16, INFINITY);
    assert_int_equal(rw_metrics_decode(buf, sz, out, 3, &n), -EPROTO);
    memcpy(buf + sz - 16, keep, 8);
    assert_int_equal(rw_metrics_decode(buf, sz, out, 3, &n), 0);
    /* a step below 1 */
    memset(buf + 4, 0, 8);
    assert_int_equal(rw_metrics_decode(buf, sz, out, 3, &n), -EPROTO);
    free(buf);
}

static void test_ckpt(void **state)
{
    (void)state;
    unsigned char buf[RW_CKPT_HEAD + 4];
    rw_ckpt_head(buf, 42, 0.125);
    memcpy(buf + RW_CKPT_HEAD, "blob", 4);
    int64_t step;
    double loss;
    const unsigned char *blob;
    size_t blen;
    assert_int_equal(rw_ckpt_decode(buf, sizeof buf, &step, &loss, &blob, &blen), 0);
    assert_int_equal(step, 42);
    assert_true(loss == 0.125);
    assert_int_equal(blen, 4);
    assert_memory_equal(blob, "blob", 4);
    /* no blob at all, a short head, a step of 0 */
    assert_int_equal(rw_ckpt_decode(buf, RW_CKPT_HEAD, &step, &loss, &blob, &blen), -EPROTO);
    assert_int_equal(rw_ckpt_decode(buf, 3, &step, &loss, &blob, &blen), -EPROTO);
    rw_ckpt_head(buf, 0, 0.0);
    assert_int_equal(rw_ckpt_decode(buf, sizeof buf, &step, &loss, &blob, &blen), -EPROTO);
}

static void test_rankms_and_bytes(void **state)
{
    (void)state;
    double ms[4] = {1.5, 2.25, 3.0, 4.75}, out[4];
    unsigned char buf[4 + 8 * 4];
    size_t len = rw_rankms_encode(ms, 4, buf);
    assert_int_equal(len, sizeof buf);
    int n;
    assert_int_equal(rw_rankms_decode(buf, len, out, 4, &n), 0);
    assert_int_equal(n, 4);
    assert_memory_equal(out, ms, sizeof ms);
    assert_int_equal(rw_rankms_decode(buf, len - 1, out, 4, &n), -EPROTO);
    assert_int_equal(rw_rankms_decode(buf, len, out, 3, &n), -EPROTO);
    assert_int_equal(rw_rankms_decode(buf, 3, out, 4, &n), -EPROTO);
    rw_rankms_encode(ms, 0, buf);
    assert_int_equal(rw_rankms_decode(buf, 4, out, 4, &n), -EPROTO);

    unsigned char st[RW_START_LEN + 1];
    int64_t done, total;
    uint32_t ver;
    rw_start_encode(st, 5, 40);
    assert_int_equal(rw_start_decode(st, RW_START_LEN, &done, &total, &ver), 0);
    assert_true(done == 5 && total == 40 && ver == RW_VERSION);
    assert_int_equal(rw_start_decode(st, RW_START_LEN + 1, &done, &total, &ver), -EPROTO);
    assert_int_equal(rw_start_decode(st, 15, &done, &total, &ver), -EPROTO);
    /* a rank program of another build: the first protocol's 16 bytes, or another version */
    assert_int_equal(rw_start_decode(st, 16, &done, &total, &ver), -EPROTONOSUPPORT);
    assert_int_equal(ver, 1);
    st[16] = RW_VERSION + 1;
    assert_int_equal(rw_start_decode(st, RW_START_LEN, &done, &total, &ver), -EPROTONOSUPPORT);
    assert_int_equal(ver, RW_VERSION + 1);
    rw_start_encode(st, 41, 40); /* more done than there is */
    assert_int_equal(rw_start_decode(st, RW_START_LEN, &done, &total, &ver), -EPROTO);

    int how;
    unsigned char b[2] = {RW_STOP_PAUSE, 0};
    assert_int_equal(rw_stop_decode(b, 1, &how), 0);
    assert_int_equal(how, RW_STOP_PAUSE);
    assert_int_equal(rw_stop_decode(b, 2, &how), -EPROTO);
    assert_int_equal(rw_stop_decode(b, 0, &how), -EPROTO);
    b[0] = 3;
    assert_int_equal(rw_stop_decode(b, 1, &how), -EPROTO);
    b[0] = RW_END_STOPPED;
    assert_int_equal(rw_done_decode(b, 1, &how), 0);
    assert_int_equal(how, RW_END_STOPPED);
    b[0] = 7;
    assert_int_equal(rw_done_decode(b, 1, &how), -EPROTO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header),
        cmocka_unit_test(test_metrics_roundtrip),
        cmocka_unit_test(test_ckpt),
        cmocka_unit_test(test_rankms_and_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
