/* test_rankproc — mpirun's output made one line for a job's error: Open MPI's rules of dashes
 * and blank lines go, lines join with one space, and the result always fits its buffer with
 * its NUL, whatever the input ends with. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "jobs/rankproc.h"

static void test_open_mpi_banner(void **state)
{
    (void)state;
    const char *in =
        "--------------------------------------------------------------------------\n"
        "mpirun noticed that process rank 0 with PID 0 on node vm exited on signal 9\n"
        "(Killed).\n"
        "--------------------------------------------------------------------------\n";
    char out[300];
    rankproc_tidy(in, out, sizeof out);
    assert_string_equal(out, "mpirun noticed that process rank 0 with PID 0 on node vm exited on "
                             "signal 9 (Killed).");
}

static void test_no_final_newline_and_blanks(void **state)
{
    (void)state;
    char out[64];
    rankproc_tidy("rank 1: Killed", out, sizeof out);
    assert_string_equal(out, "rank 1: Killed");
    rankproc_tidy("  a\t\tb  \r\n\n   \n====\nc", out, sizeof out);
    assert_string_equal(out, "a b c");
    rankproc_tidy("", out, sizeof out);
    assert_string_equal(out, "");
    rankproc_tidy("-----\n\n", out, sizeof out);
    assert_string_equal(out, "");
}

/* A long input is cut at the buffer's end, the NUL included; nothing past it is written. */
static void test_cut_to_size(void **state)
{
    (void)state;
    char in[500];
    memset(in, 'x', sizeof in - 1);
    in[sizeof in - 1] = '\0';
    char out[40];
    memset(out, '#', sizeof out);
    char guard[8];
    memset(guard, 'G', sizeof guard);
    rankproc_tidy(in, out, 32);
    assert_int_equal(strlen(out), 31);
    for (size_t i = 32; i < sizeof out; i++)
        assert_int_equal(out[i], '#');
    assert_memory_equal(guard, "GGGGGGGG", 8);
    rankproc_tidy("ab\ncd\nef", out, 4); /* "ab " then no room */
    assert_string_equal(out, "ab");
}

/* A directory named with a pid no process has is a killed daemon's: it goes with its socket
 * and log; one of a live process stays, as does anything not named as the daemon names them. */
static void test_sweep_stale(void **state)
{
    (void)state;
    pid_t dead = fork();
    if (dead == 0)
        _exit(0);
    assert_true(dead > 0);
    waitpid(dead, NULL, 0); /* reaped: no process has that pid now (barring reuse) */
    char gone[96], live[96], other[96], f[128];
    snprintf(gone, sizeof gone, "/tmp/anneald-ranks-%d-Ab12Cd", (int)dead);
    snprintf(live, sizeof live, "/tmp/anneald-ranks-%d-Ab12Cd", (int)getppid());
    snprintf(other, sizeof other, "/tmp/anneald-ranks-%d-Ab12Cd-x", (int)dead);
    const char *dirs[] = {gone, live, other};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(mkdir(dirs[i], 0700), 0);
        snprintf(f, sizeof f, "%s/mpirun.log", dirs[i]);
        FILE *fp = fopen(f, "w");
        assert_non_null(fp);
        fclose(fp);
    }
    snprintf(f, sizeof f, "%s/daemon.sock", gone);
    fclose(fopen(f, "w"));
    assert_true(rankproc_sweep_stale() >= 1);
    struct stat st;
    assert_int_not_equal(stat(gone, &st), 0);
    assert_int_equal(stat(live, &st), 0);
    assert_int_equal(stat(other, &st), 0);
    for (int i = 1; i < 3; i++) {
        snprintf(f, sizeof f, "%s/mpirun.log", dirs[i]);
        unlink(f);
        rmdir(dirs[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_mpi_banner),
        cmocka_unit_test(test_no_final_newline_and_blanks),
        cmocka_unit_test(test_cut_to_size),
        cmocka_unit_test(test_sweep_stale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
