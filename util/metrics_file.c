/* metrics_file — the per-step metrics file of `anneald train --metrics-csv` (and of the rank
 * program's): a new file,
 * or, for a run resumed from a saved state, the same file continued. */
#include "util/metrics_file.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

/* The index of column `name` in a header line (comma-separated, newline ended), or -1. */
static int column_of(const char *header, const char *name)
{
    size_t n = strlen(name);
    int k = 0;
    for (const char *p = header;; k++) {
        size_t len = strcspn(p, ",\n");
        if (len == n && strncmp(p, name, n) == 0)
            return k;
        if (p[len] != ',')
            return -1;
        p += len + 1;
    }
}

/* Field k of a row as a double, or 0 when the row has none. */
static double field(const char *row, int k)
{
    const char *p = row;
    for (int i = 0; i < k && p; i++) {
        p = strchr(p, ',');
        if (p)
            p++;
    }
    return p ? strtod(p, NULL) : 0;
}

/* A new file with its header. */
static int start(const char *path, const char *header, FILE **out)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(header, f) == EOF) {
        fprintf(stderr, "error: cannot write %s: %s\n", path, strerror(errno));
        if (f)
            fclose(f);
        return 1;
    }
    *out = f;
    return 0;
}

int metrics_file_open(const char *path, const char *header, int64_t resumed, FILE **out,
                      double *time_base)
{
    *out = NULL;
    *time_base = 0;
    FILE *f = resumed > 0 ? fopen(path, "r+") : NULL;
    if (!f) {
        if (resumed > 0 && errno != ENOENT) {
            fprintf(stderr, "error: cannot open %s: %s\n", path, strerror(errno));
            return 1;
        }
        return start(path, header, out);
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);
    if (n <= 0) { /* empty: as a new file */
        free(line);
        fclose(f);
        return start(path, header, out);
    }
    if (strcmp(line, header) != 0) {
        fprintf(stderr, "error: --metrics-csv %s: its columns (%.*s) are not this job's (%.*s); "
                        "give the file of this run or a new one\n",
                path, (int)strcspn(line, "\n"), line, (int)strcspn(header, "\n"), header);
        free(line);
        fclose(f);
        return 1;
    }
    /* Rows up to the resumed step stay; the first later one (a run that went on past the
     * saved state) and everything after it go. */
    int tcol = column_of(header, "time");
    off_t keep = (off_t)n;
    int64_t last = 0;
    long row = 1;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] != '\n') /* a row cut short (an earlier write that failed): dropped */
            break;
        row++;
        char *end;
        errno = 0;
        long long step = strtoll(line, &end, 10);
        if (end == line || *end != ',' || errno) {
            fprintf(stderr, "error: --metrics-csv %s: line %ld is not a metrics row; give the "
                            "file of this run or a new one\n", path, row);
            free(line);
            fclose(f);
            return 1;
        }
        if (step > resumed)
            break;
        last = step;
        keep += (off_t)n;
        if (tcol >= 0)
            *time_base = field(line, tcol);
    }
    free(line);
    if (fflush(f) != 0 || ftruncate(fileno(f), keep) != 0 || fseeko(f, keep, SEEK_SET) != 0) {
        fprintf(stderr, "error: cannot write %s: %s\n", path, strerror(errno));
        fclose(f);
        return 1;
    }
    if (last < resumed)
        fprintf(stderr, "warning: %s ends at step %" PRId64 ", before the resumed step %" PRId64
                        ": the steps between are not in it\n", path, last, resumed);
    *out = f;
    return 0;
}
