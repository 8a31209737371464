/* driver — replays a fuzz target's corpus as an ordinary test (no libFuzzer needed).
 *
 *   test_fuzz_<target> [DIR|FILE …]     (default: tests/fuzz/corpus/<target>)
 *
 * Feeds every regular file of each directory (sorted by name, so runs are repeatable) and
 * every named file to LLVMFuzzerTestOneInput, and prints cmocka's summary lines so that
 * tests/run.sh counts it like the unit tests: one passed test per input. A crash or failed
 * property ends the process in the middle of an input: the line naming that input is the
 * last one printed, and the missing summary counts as a failure. */
#include "tests/fuzz/fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

/* The committed corpus of the target this binary was built from, named by the binary:
 * ".../test_fuzz_csv" -> "tests/fuzz/corpus/csv" (tests run from the repository root). */
static void default_corpus(const char *argv0, char *buf, size_t size)
{
    const char *base = strrchr(argv0, '/');
    base = base ? base + 1 : argv0;
    if (strncmp(base, "test_fuzz_", 10) == 0)
        base += 10;
    snprintf(buf, size, "tests/fuzz/corpus/%s", base);
}

/* Reads a whole file into a malloc'd buffer (exactly its bytes, no terminator added, so a
 * target sees what libFuzzer would give it). Returns 0 or -errno. */
static int read_file(const char *path, uint8_t **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fclose(f);
            return -ENOMEM;
        }
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        uint8_t *bigger = realloc(buf, cap * 2);
        if (!bigger)
            free(buf);
        buf = bigger;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return -EIO;
    }
    /* A copy of exactly n bytes, so ASan catches a read one past the input's end. */
    uint8_t *exact = malloc(n ? n : 1);
    if (!exact) {
        free(buf);
        return -ENOMEM;
    }
    memcpy(exact, buf, n);
    free(buf);
    *out = exact;
    *len = n;
    return 0;
}

static int run_one(const char *path, int *ran)
{
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = read_file(path, &data, &len);
    if (rc) {
        printf("[  ERROR   ] %s: %s\n", path, strerror(-rc));
        return rc;
    }
    printf("[ RUN      ] %s\n", path);
    fflush(stdout);
    LLVMFuzzerTestOneInput(data, len);
    free(data);
    printf("[       OK ] %s\n", path);
    (*ran)++;
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file in dir, in name order. */
static int run_dir(const char *dir, int *ran)
{
    DIR *d = opendir(dir);
    if (!d) {
        printf("[  ERROR   ] %s: %s\n", dir, strerror(errno));
        return -errno;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **more = realloc(names, cap * sizeof *names);
            if (!more) {
                rc = -ENOMEM;
                break;
            }
            names = more;
        }
        size_t l = strlen(dir) + strlen(e->d_name) + 2;
        if (!(names[n] = malloc(l))) {
            rc = -ENOMEM;
            break;
        }
        snprintf(names[n], l, "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (!rc && stat(names[i], &st) == 0 && S_ISREG(st.st_mode))
            rc = run_one(names[i], ran);
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    int ran = 0, rc = 0;
    if (argc < 2) {
        char dir[512];
        default_corpus(argv[0], dir, sizeof dir);
        rc = run_dir(dir, &ran);
    } else {
        for (int i = 1; i < argc && !rc; i++) {
            struct stat st;
            if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
                rc = run_dir(argv[i], &ran);
            else
                rc = run_one(argv[i], &ran);
        }
    }
    if (!rc && ran == 0) {
        printf("[  ERROR   ] no inputs found\n");
        rc = -ENOENT;
    }
    if (rc) {
        printf("[  FAILED  ] 1 test(s), listed below:\n[  FAILED  ] corpus of %s\n", argv[0]);
        return 1;
    }
    /* One test per target: the corpus is its cases, the count of test(s) stays meaningful. */
    printf("[       OK ] corpus of %s: %d input(s)\n[==========] 1 test(s) run.\n"
           "[  PASSED  ] 1 test(s).\n", argv[0], ran);
    return 0;
}
