/* cli_preview — `anneald preview`: a schedule's learning rates, streamed in constant memory. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/config.h"
#include "core/sched.h"
#include "daemon/cli.h"
#include "daemon/cli_util.h"
#include "util/util.h"

/* Writes the whole of buf to stdout; 0, or -1 when stdout fails (a closed pipe, a full disk). */
static int put_out(const char *buf, size_t n)
{
    return fwrite(buf, 1, n, stdout) == n ? 0 : -1;
}

int cli_preview(int argc, char **argv)
{
    const char *path = NULL;
    int csv = 0;
    int64_t steps = 0, every = 0, max_points = 0;
    cJSON *groups = cJSON_CreateArray();
    cJSON *body = NULL;
    sched_preview_stream *ps = NULL;
    char *chunk = NULL;
    int rc = 2;
    if (!groups) {
        fprintf(stderr, "error: out of memory\n");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (cli_is_help(a)) {
            rc = cli_help("preview");
            goto out;
        } else if (strcmp(a, "--steps") == 0) {
            if (cli_parse_i64(v, 1, CFG_MAX_STEPS, &steps)) {
                cli_usage_err("preview", "--steps expects a whole number in 1..1000000000, got "
                              "'%s'", v ? v : "");
                goto out;
            }
            i++;
        } else if (strcmp(a, "--every") == 0 || strcmp(a, "--max-points") == 0) {
            int is_every = strcmp(a, "--every") == 0;
            int64_t x;
            if (cli_parse_i64(v, is_every ? 1 : 2, CFG_MAX_STEPS, &x)) {
                cli_usage_err("preview", is_every ? "--every expects a whole number >= 1, got '%s'"
                                                  : "--max-points expects a whole number >= 2, "
                                                    "got '%s'", v ? v : "");
                goto out;
            }
            *(is_every ? &every : &max_points) = x;
            i++;
        } else if (strcmp(a, "--param-group-lr") == 0) {
            char *end = NULL;
            double x = v ? strtod(v, &end) : NAN;
            if (!v || !*v || *end || !isfinite(x) || x < 0) {
                cli_usage_err("preview", "--param-group-lr expects a learning rate >= 0, got '%s'", v ? v : "");
                goto out;
            }
            if (cJSON_GetArraySize(groups) >= SCHED_MAX_GROUPS) {
                cli_usage_err("preview", "--param-group-lr may be given at most %s times", "64");
                goto out;
            }
            cJSON *g = cJSON_CreateObject();
            cJSON_AddItemToArray(groups, g);
            cJSON_AddNumberToObject(g, "lr", x);
            i++;
        } else if (strcmp(a, "--format") == 0) {
            if (!v || (strcmp(v, "json") && strcmp(v, "csv"))) {
                cli_usage_err("preview", "--format expects json or csv, got '%s'", v ? v : "");
                goto out;
            }
            csv = strcmp(v, "csv") == 0;
            i++;
        } else if (strncmp(a, "--", 2) == 0) {
            static const char *const with_value[] = {"--steps", "--every", "--max-points",
                                                     "--param-group-lr", "--format", NULL};
            static const char *const bare[] = {"--help", NULL};
            cli_unknown_flag("preview", a, with_value, bare);
            goto out;
        } else if (!path && (a[0] != '-' || strcmp(a, "-") == 0)) {
            path = a;
        } else {
            cli_usage_err("preview", "unexpected argument '%s'", a);
            goto out;
        }
    }
    if (every && max_points) {
        cli_usage_err("preview", "give --every or --max-points, not both%s", "");
        goto out;
    }
    if (!path) {
        cli_usage_err("preview", "expects a FILE or - %s", "(a ds_config, a preview body or a job spec)");
        goto out;
    }
    rc = 1;
    char *text;
    size_t len;
    int r = util_read_file(path, &text, &len);
    if (r) {
        fprintf(stderr, "error: cannot read %s: %s\n", path, strerror(-r));
        goto out;
    }
    an_err e;
    an_err_clear(&e);
    r = json_parse_text(text, len, &body, &e);
    free(text);
    if (r) {
        cli_print_err(&e);
        goto out;
    }
    if (cJSON_GetArraySize(groups) > 0 && cJSON_IsObject(body)) {
        /* Groups given on the command line are every group, as a preview body's param_groups
         * are. A job spec's own param_groups mean something else (glob matches for groups
         * 1..), so of a job spec only ds_config and steps are kept. */
        cJSON *ds = cJSON_GetObjectItemCaseSensitive(body, "ds_config");
        cJSON *nb = cJSON_CreateObject();
        if (!nb) {
            fprintf(stderr, "error: out of memory\n");
            goto out;
        }
        if (!ds) {
            cJSON_AddItemToObject(nb, "ds_config", body);
        } else {
            cJSON_AddItemToObject(nb, "ds_config", cJSON_DetachItemViaPointer(body, ds));
            cJSON *st = cJSON_GetObjectItemCaseSensitive(body, "steps");
            if (st)
                cJSON_AddItemToObject(nb, "steps", cJSON_DetachItemViaPointer(body, st));
            cJSON_Delete(body);
        }
        body = nb;
        cJSON_AddItemToObject(body, "param_groups", groups);
        groups = NULL;
    }
    if ((every || max_points) && cJSON_IsObject(body)) {
        /* Thinning is a key of a preview body: a bare ds_config is wrapped into one. */
        if (!cJSON_GetObjectItemCaseSensitive(body, "ds_config")) {
            cJSON *nb = cJSON_CreateObject();
            if (!nb) {
                fprintf(stderr, "error: out of memory\n");
                goto out;
            }
            cJSON_AddItemToObject(nb, "ds_config", body);
            body = nb;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(body, "every");
        cJSON_DeleteItemFromObjectCaseSensitive(body, "max_points");
        cJSON_AddNumberToObject(body, every ? "every" : "max_points",
                                (double)(every ? every : max_points));
    }
    if (sched_preview_open(body, steps, csv, &ps, &e)) {
        if (strcmp(e.field, "steps") == 0 && !every && !max_points)
            fprintf(stderr, "error: steps: %s (or --steps N for fewer steps)\n", e.message);
        else if ((every && strcmp(e.field, "every") == 0) ||
                 (max_points && strcmp(e.field, "max_points") == 0))
            rc = cli_flag_err("preview", every ? "--every" : "--max-points", &e);
        else
            cli_print_err(&e);
        goto out;
    }
    /* In the JSON too, but a CSV has no place for them, and a person reads stderr first. */
    const cJSON *w;
    cJSON_ArrayForEach(w, sched_preview_warnings(ps)) {
        fprintf(stderr, "warning: %s\n", cJSON_GetStringValue(w));
    }
    /* The stream keeps the memory constant; stdout's own buffer is bypassed by writing
     * chunks of a size that suits pipes and files alike. */
    enum { CHUNK = 1 << 16 };
    chunk = malloc(CHUNK);
    if (!chunk) {
        fprintf(stderr, "error: out of memory\n");
        goto out;
    }
    size_t n;
    while ((n = sched_preview_read(ps, chunk, CHUNK)) > 0)
        if (put_out(chunk, n))
            break;
    /* The bytes are the answer's body exactly; JSON and CSV alike end with a newline. A write
     * that failed left stdout's error flag set, which cli_stdout_done reports. */
    rc = cli_stdout_done("the preview", 0);
out:
    free(chunk);
    sched_preview_close(ps);
    cJSON_Delete(body);
    cJSON_Delete(groups);
    return rc;
}

