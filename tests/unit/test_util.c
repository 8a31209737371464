/* test_util — the shared helpers: little-endian bytes in a fixed order on any machine, a
 * whole file read back with its NUL, clear errors for what cannot be read, and a clock that
 * never goes back, and log lines that stay one line each. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/log.h"
#include "util/util.h"

static void little_endian_bytes(void **state)
{
    (void)state;
    unsigned char b[8];
    le_put_u32(b, 0x11223344u);
    const unsigned char want32[4] = {0x44, 0x33, 0x22, 0x11};
    assert_memory_equal(b, want32, 4);
    assert_int_equal(le_get_u32(b), 0x11223344u);
    le_put_u64(b, 0x0102030405060708ull);
    const unsigned char want64[8] = {8, 7, 6, 5, 4, 3, 2, 1};
    assert_memory_equal(b, want64, 8);
    assert_true(le_get_u64(b) == 0x0102030405060708ull);
    const uint64_t edge[] = {0, 1, 0x80, 0xff00000000000000ull, UINT64_MAX};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) {
        le_put_u64(b, edge[i]);
        assert_true(le_get_u64(b) == edge[i]);
    }
}

static void reads_a_whole_file(void **state)
{
    (void)state;
    char path[] = "/tmp/anneald-util-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    /* Larger than the first buffer (64 KiB), with a NUL inside: read as bytes. */
    size_t n = 200000;
    unsigned char *data = malloc(n);
    assert_non_null(data);
    for (size_t i = 0; i < n; i++)
        data[i] = (unsigned char)(i * 31 + 7);
    data[1000] = 0;
    assert_int_equal(write(fd, data, n), (ssize_t)n);
    close(fd);
    char *buf = NULL;
    size_t len = 0;
    assert_int_equal(util_read_file(path, &buf, &len), 0);
    assert_int_equal(len, n);
    assert_memory_equal(buf, data, n);
    assert_int_equal(buf[n], 0);
    free(buf);
    unlink(path);
    free(data);
    assert_int_equal(util_read_file(path, &buf, &len), -ENOENT);
    assert_int_not_equal(util_read_file("/tmp", &buf, &len), 0); /* a directory */
}

static void the_clock_never_goes_back(void **state)
{
    (void)state;
    double prev = util_now();
    assert_true(prev > 0);
    for (int i = 0; i < 100000; i++) {
        double t = util_now();
        assert_true(t >= prev);
        prev = t;
    }
}

/* A message with line breaks (an error quoting a client's input) stays one line of the log,
 * and a message longer than the line's buffer says it was cut. */
static void a_log_line_is_one_line(void **state)
{
    (void)state;
    char path[] = "/tmp/anneald-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fd, 2), 2);
    util_log(LOG_WARN, "job %s: %s", "j_1", "bad\n2026-01-01T00:00:00Z anneald error: forged\r");
    char big[6000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    util_log(LOG_INFO, "%s", big);
    util_log(LOG_DEBUG, "dropped at the default level");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char buf[16384];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
    unlink(path);
    assert_true(n > 0);
    buf[n] = '\0';
    char *second = strchr(buf, '\n');
    assert_non_null(second);
    assert_non_null(strstr(buf, " anneald warn: job j_1: bad 2026-01-01T00:00:00Z anneald error: forged \n"));
    assert_non_null(strstr(second + 1, " anneald info: xxx"));
    assert_non_null(strstr(second + 1, "x [cut]\n"));
    assert_null(strchr(strchr(second + 1, '\n') + 1, '\n')); /* two lines in all */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(little_endian_bytes),
        cmocka_unit_test(reads_a_whole_file),
        cmocka_unit_test(the_clock_never_goes_back),
        cmocka_unit_test(a_log_line_is_one_line),
    };
    return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
