/* Tests of core/idx: a well-formed IDX buffer parses (dimensions, data pointer, count), and
 * every kind of damage — bad magic, wrong element type, bad dimension count, header cut
 * short, body truncated or followed by trailing bytes — is an error naming the file; the
 * Fashion-MNIST pair check (28×28 images, labels 0..9, equal counts). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/idx.h"

/* An IDX buffer of n images of 28×28 (ndims 3) or n labels (ndims 1), pixel/label = i % m. */
static uint8_t *make(int ndims, uint32_t n, int m, size_t *len)
{
    uint32_t dims[3] = {n, 28, 28};
    size_t count = ndims == 3 ? (size_t)n * 784 : n;
    *len = 4 + 4 * (size_t)ndims + count;
    uint8_t *b = malloc(*len);
    b[0] = b[1] = 0;
    b[2] = 0x08;
    b[3] = (uint8_t)ndims;
    for (int i = 0; i < ndims; i++) {
        b[4 + 4 * i] = (uint8_t)(dims[i] >> 24);
        b[5 + 4 * i] = (uint8_t)(dims[i] >> 16);
        b[6 + 4 * i] = (uint8_t)(dims[i] >> 8);
        b[7 + 4 * i] = (uint8_t)dims[i];
    }
    for (size_t i = 0; i < count; i++)
        b[4 + 4 * ndims + i] = (uint8_t)(i % (size_t)m);
    return b;
}

static void test_parse(void **state)
{
    (void)state;
    size_t len;
    uint8_t *b = make(3, 300, 256, &len);
    idx_array a;
    an_err err;
    assert_int_equal(idx_parse(b, len, "train-images-idx3-ubyte.gz", "data", &a, &err), 0);
    assert_int_equal(a.ndims, 3);
    assert_int_equal(a.dims[0], 300);
    assert_int_equal(a.dims[2], 28);
    assert_int_equal(a.count, 300 * 784);
    assert_ptr_equal(a.data, b + 16);
    assert_int_equal(a.data[257], 1);
    free(b);
}

static void expect_bad(const uint8_t *b, size_t len, const char *words)
{
    idx_array a;
    an_err err;
    assert_int_equal(idx_parse(b, len, "t10k-labels-idx1-ubyte.gz", "data.name", &a, &err),
                     -EINVAL);
    assert_string_equal(err.field, "data.name");
    assert_non_null(strstr(err.message, "t10k-labels-idx1-ubyte.gz"));
    if (!strstr(err.message, words))
        fail_msg("message '%s' lacks '%s'", err.message, words);
    assert_null(a.data);
}

static void test_damaged(void **state)
{
    (void)state;
    size_t len;
    uint8_t *b = make(1, 50, 10, &len);
    expect_bad(b, 3, "not an IDX file");
    expect_bad(b, len - 1, "truncated");
    b[2] = 0x0D; /* float elements */
    expect_bad(b, len, "element type 0x0d");
    b[2] = 0x08;
    b[0] = 1;
    expect_bad(b, len, "magic");
    b[0] = 0;
    b[3] = 0;
    expect_bad(b, len, "0 dimensions");
    b[3] = 1;
    expect_bad(b, 6, "inside its header");
    uint8_t *longer = malloc(len + 5);
    memcpy(longer, b, len);
    expect_bad(longer, len + 5, "55 bytes follow");
    free(longer);
    b[4] = 0xFF; /* 4 billion labels declared, 50 present */
    expect_bad(b, len, "truncated");
    free(b);
}

static void test_pair(void **state)
{
    (void)state;
    size_t li, ll;
    uint8_t *im = make(3, 20, 256, &li), *lb = make(1, 20, 10, &ll);
    idx_array a, l;
    an_err err;
    assert_int_equal(idx_parse(im, li, "i", "data", &a, &err), 0);
    assert_int_equal(idx_parse(lb, ll, "l", "data", &l, &err), 0);
    assert_int_equal(idx_check_pair(&a, &l, "train", "data", &err), 0);
    lb[8 + 7] = 10;
    assert_int_equal(idx_check_pair(&a, &l, "train", "data", &err), -EINVAL);
    assert_non_null(strstr(err.message, "label 7 is 10"));
    lb[8 + 7] = 3;
    assert_int_equal(idx_parse(lb, ll - 1, "l", "data", &l, &err), -EINVAL);
    free(lb);
    lb = make(1, 19, 10, &ll);
    assert_int_equal(idx_parse(lb, ll, "l", "data", &l, &err), 0);
    assert_int_equal(idx_check_pair(&a, &l, "train", "data", &err), -EINVAL);
    assert_non_null(strstr(err.message, "20 images but 19 labels"));
    assert_int_equal(idx_check_pair(&l, &l, "train", "data", &err), -EINVAL);
    assert_non_null(strstr(err.message, "28"));
    free(im);
    free(lb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_damaged),
        cmocka_unit_test(test_pair),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
