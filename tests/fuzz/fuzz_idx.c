/* fuzz_idx — the IDX parser (core/idx.h) on arbitrary bytes, as a damaged Fashion-MNIST file
 * would give it. A parse succeeds only when the header's dimensions account for every byte
 * after it (and the data pointer stays inside the buffer), otherwise it fails with a message
 * naming the file; the pair check of a parsed array with itself never reads past it. */
#include "tests/fuzz/fuzz.h"

#include <string.h>

#include "core/idx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    idx_array a;
    an_err err;
    if (idx_parse(data, size, "fuzz.idx", "data", &a, &err)) {
        FUZZ_CHECK(strstr(err.message, "fuzz.idx") != NULL && a.data == NULL);
        return 0;
    }
    size_t count = 1;
    for (int i = 0; i < a.ndims; i++)
        count *= a.dims[i];
    FUZZ_CHECK(a.count == count);
    FUZZ_CHECK(a.data == data + 4 + 4 * a.ndims && a.data + a.count == data + size);
    if (idx_check_pair(&a, &a, "pair", "data", &err))
        FUZZ_CHECK(err.message[0] != 0);
    return 0;
}
