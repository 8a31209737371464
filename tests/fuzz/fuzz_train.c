/* fuzz_train — restoring a job's checkpoint blob (core/train.h) from arbitrary bytes.
 *
 * A checkpoint read back from disk may be truncated, corrupt or from another job:
 * train_restore and train_restore_weights must refuse it with an error, or restore a state
 * that then trains, saves and restores again. Each input is tried twice against every fixture
 * job of train_fixtures.h: as it is (the framing: magic, version, length, checksum), and with
 * its length field and checksum made right, so that the fuzzer reaches the sections behind
 * the checksum (counters, cursor, parameters, optimizer and scheduler states). */
#include "tests/fuzz/fuzz.h"

#include <string.h>

#include "tests/fuzz/train_fixtures.h"

#define HEADER 40u  /* magic, version, sections, two hashes, total length */
#define TRAILER 8u  /* FNV-1a-64 of everything before it */

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* The blob's FNV-1a-64 (the checksum the format specifies). */
static uint64_t fnv1a(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static void try_blob(const unsigned char *blob, size_t len, int k)
{
    job_spec spec;
    train *t, *t2;
    an_err err;
    FUZZ_CHECK(fx_train(k, &spec, &t) == 0);
    void *before;
    size_t before_len;
    FUZZ_CHECK(train_save(t, &before, &before_len, &err) == 0);

    if (train_restore(t, blob, len, &err) != 0) {
        FUZZ_CHECK(err.message[0] != 0);
        /* A refused blob changes nothing. */
        void *after;
        size_t after_len;
        FUZZ_CHECK(train_save(t, &after, &after_len, &err) == 0);
        FUZZ_CHECK(after_len == before_len && memcmp(before, after, before_len) == 0);
        free(after);
    } else {
        FUZZ_CHECK(train_steps_done(t) >= 0);
        train_report rep;
        for (int s = 0; s < 2; s++)
            if (train_step(t, &rep, &err) != 0)
                break; /* a NaN loss from restored garbage is reported, not a crash */
        void *again;
        size_t again_len;
        FUZZ_CHECK(train_save(t, &again, &again_len, &err) == 0);
        job_spec spec2;
        FUZZ_CHECK(fx_train(k, &spec2, &t2) == 0);
        FUZZ_CHECK(train_restore(t2, again, again_len, &err) == 0);
        train_free(t2);
        job_spec_free(&spec2);
        free(again);
    }
    free(before);

    if (train_restore_weights(t, blob, len, &err) != 0)
        FUZZ_CHECK(err.message[0] != 0);
    train_free(t);
    job_spec_free(&spec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *fixed = NULL;
    if (size >= HEADER + TRAILER) {
        fixed = malloc(size);
        FUZZ_CHECK(fixed != NULL);
        memcpy(fixed, data, size);
        put64(fixed + 32, size);
        put64(fixed + size - TRAILER, fnv1a(fixed, size - TRAILER));
    }
    for (int k = 0; k < (int)FX_NTRAIN; k++) {
        try_blob(data, size, k);
        if (fixed)
            try_blob(fixed, size, k);
    }
    free(fixed);
    return 0;
}
