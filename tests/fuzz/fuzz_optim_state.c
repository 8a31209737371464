/* fuzz_optim_state — restoring saved optimizer and scheduler states from arbitrary bytes.
 *
 * A checkpoint's optimizer and scheduler parts come back through optim_load and sched_load.
 * Whatever the bytes, both must either refuse them with an error or restore a state that then
 * steps, saves and restores again without reading or writing out of bounds. The optimizers
 * and schedulers are the fixed ones of state_fixtures.h (every optimizer type in both element
 * types; schedulers with state); seed_state.c writes real saved states of them as seeds. */
#include "tests/fuzz/fuzz.h"

#include <math.h>

#include "tests/fuzz/state_fixtures.h"

static void try_optim(const uint8_t *data, size_t size, int k, int dtype)
{
    optim o, o2;
    an_err err;
    FUZZ_CHECK(fx_optim(&o, k, dtype) == 0);
    if (optim_load(&o, data, size, &err) != 0) {
        FUZZ_CHECK(err.message[0] != 0);
        optim_free(&o);
        return;
    }
    FUZZ_CHECK(size == optim_state_size(&o));
    double params[FX_N], grads[FX_N];
    memset(params, 0, sizeof params);
    for (int s = 0; s < 3; s++) {
        fx_grads(grads, dtype, s);
        optim_step(&o, params, grads);
    }
    /* What was restored saves and restores again, and saves to the same bytes. */
    size_t len = optim_state_size(&o);
    unsigned char *a = malloc(len), *b = malloc(len);
    FUZZ_CHECK(a && b);
    FUZZ_CHECK(optim_save(&o, a, len) == 0);
    FUZZ_CHECK(fx_optim(&o2, k, dtype) == 0);
    FUZZ_CHECK(optim_load(&o2, a, len, &err) == 0);
    FUZZ_CHECK(optim_save(&o2, b, len) == 0);
    FUZZ_CHECK(memcmp(a, b, len) == 0);
    free(a);
    free(b);
    optim_free(&o2);
    optim_free(&o);
}

static void try_sched(const uint8_t *data, size_t size, int k)
{
    sched *s, *s2;
    an_err err;
    FUZZ_CHECK(fx_sched(&s, k) == 0);
    if (sched_load(s, data, size, &err) != 0) {
        FUZZ_CHECK(err.message[0] != 0);
        sched_free(s);
        return;
    }
    /* What loads saves to the same bytes and loads again. */
    size_t len = sched_state_size(s);
    unsigned char *a = malloc(len ? len : 1);
    FUZZ_CHECK(a != NULL);
    FUZZ_CHECK(sched_save(s, a, len) == 0);
    FUZZ_CHECK(len == size && memcmp(a, data, size) == 0);
    FUZZ_CHECK(fx_sched(&s2, k) == 0);
    FUZZ_CHECK(sched_load(s2, a, len, &err) == 0);
    sched_free(s2);
    /* After steps it still saves and loads, unless a counter it was given at the edge of
     * what a run can reach (2^53) has stepped past it: then the state is refused cleanly,
     * never a counter that overflows later. */
    for (int i = 0; i < 5; i++)
        sched_step(s, i % 2 ? NAN : 1.0 / (i + 1));
    FUZZ_CHECK(sched_save(s, a, len) == 0);
    FUZZ_CHECK(fx_sched(&s2, k) == 0);
    int back = sched_load(s2, a, len, &err);
    if (back != 0 && strstr(err.message, "impossible counters") == NULL)
        fprintf(stderr, "scheduler %d: its own saved state is refused: %s: %s\n", k, err.field,
                err.message);
    FUZZ_CHECK(back == 0 || strstr(err.message, "impossible counters") != NULL);
    if (back == 0) {
        FUZZ_CHECK(sched_steps(s2) == sched_steps(s));
        FUZZ_CHECK(memcmp(sched_lr(s), sched_lr(s2), 2 * sizeof(double)) == 0);
    }
    free(a);
    sched_free(s2);
    sched_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int k = 0; k < (int)FX_NOPTIM; k++) {
        try_optim(data, size, k, OPTIM_F32);
        try_optim(data, size, k, OPTIM_F64);
    }
    for (int k = 0; k < (int)FX_NSCHED; k++)
        try_sched(data, size, k);
    return 0;
}
