/* fuzz — the one entry point every fuzz target in tests/fuzz/ defines.
 *
 * Built two ways: with clang and libFuzzer (`make fuzz`, libFuzzer supplies main and feeds
 * mutated inputs), and with the ordinary compiler against driver.c (`make test`, which replays
 * the committed corpus of the target as a regression test). A target must not keep state
 * between calls, print, or exit: a failed property is an abort(), which both builds report. */
#ifndef ANNEALD_FUZZ_H
#define ANNEALD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Runs one input. Returns 0 (libFuzzer's convention; other values are reserved). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property that must hold for every input: on failure, names it and aborts, so libFuzzer
 * saves the input as a crash and the regression driver's run fails. */
#define FUZZ_CHECK(cond)                                                                     \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond);       \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

#endif
