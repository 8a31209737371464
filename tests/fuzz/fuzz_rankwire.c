/* fuzz_rankwire — the frames rank 0 sends the daemon (core/rankwire.h) on arbitrary bytes.
 *
 * The input is read as a stream of frames, as jobs/rankrun.c reads rank 0's socket: a header
 * that does not parse ends it (the daemon ends the run), a payload longer than what is left
 * ends it (more bytes would come). Each payload is decoded by its type; a payload that decodes
 * must encode back to the same bytes (metric rows, step times, start) and stay inside its
 * frame (a checkpoint's blob). */
#include "tests/fuzz/fuzz.h"

#include <string.h>

#include "core/rankwire.h"

#define MAX_ROWS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static rw_metric rows[MAX_ROWS]; /* large; no state is kept between calls */
    size_t at = 0;
    while (size - at >= RW_HEADER) {
        int type;
        uint32_t len;
        if (rw_header_parse(data + at, &type, &len) != 0)
            return 0;
        at += RW_HEADER;
        if (len > size - at)
            return 0;
        const unsigned char *p = data + at;
        at += len;
        size_t n;
        int k, how;
        int64_t a, b;
        double loss;
        const unsigned char *blob;
        size_t blen;
        switch (type) {
        case RW_METRICS:
            if (rw_metrics_decode(p, len, rows, MAX_ROWS, &n) == 0) {
                size_t sz = rw_metrics_size(rows, n);
                FUZZ_CHECK(sz == len);
                unsigned char *out = malloc(sz);
                FUZZ_CHECK(out && rw_metrics_encode(rows, n, out) == sz);
                FUZZ_CHECK(memcmp(out, p, sz) == 0);
                free(out);
            }
            break;
        case RW_RANKMS: {
            double ms[RW_MAX_RANKS];
            unsigned char out[4 + 8 * RW_MAX_RANKS];
            if (rw_rankms_decode(p, len, ms, RW_MAX_RANKS, &k) == 0)
                FUZZ_CHECK(rw_rankms_encode(ms, k, out) == len && memcmp(out, p, len) == 0);
            break;
        }
        case RW_START:
        {
            uint32_t ver;
            if (rw_start_decode(p, len, &a, &b, &ver) == 0) {
                unsigned char out[RW_START_LEN];
                rw_start_encode(out, a, b);
                FUZZ_CHECK(a >= 0 && b >= a && ver == RW_VERSION &&
                           memcmp(out, p, RW_START_LEN) == 0);
            }
            break;
        }
        case RW_CKPT:
            if (rw_ckpt_decode(p, len, &a, &loss, &blob, &blen) == 0)
                FUZZ_CHECK(a >= 1 && blob == p + RW_CKPT_HEAD && blen == len - RW_CKPT_HEAD &&
                           blen > 0);
            break;
        case RW_DONE:
            if (rw_done_decode(p, len, &how) == 0)
                FUZZ_CHECK(len == 1 && (how == RW_END_COMPLETED || how == RW_END_STOPPED));
            break;
        case RW_STOP:
            if (rw_stop_decode(p, len, &how) == 0)
                FUZZ_CHECK(len == 1 && (how == RW_STOP_PAUSE || how == RW_STOP_CANCEL));
            break;
        default:
            break;
        }
    }
    return 0;
}
