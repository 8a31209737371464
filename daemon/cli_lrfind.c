/* cli_lrfind — `anneald lr-find`: runs a learning-rate sweep in the foreground and reports
 * what core/lrfind reads from it. */
#include "daemon/cli_lrfind.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/config.h"
#include "core/lrfind.h"
#include "core/train.h"
#include "daemon/cli.h"
#include "daemon/cli_util.h"
#include "util/util.h"

static const char USAGE[] =
    "usage: anneald lr-find FILE|- [--min-lr X] [--max-lr X] [--steps N] [--stop-factor F]\n"
    "                       [--mode exponential|linear] [--csv F] [--job]\n"
    "\n"
    "Sweeps the learning rate of a job upward, one step at a time, and suggests one.\n"
    "FILE is a job spec, or {\"job\": {...}, \"min_lr\": ..., \"max_lr\": ..., \"steps\": ...,\n"
    "\"stop_factor\": ..., \"mode\": ...}. The sweep stops once the smoothed loss passes\n"
    "stop_factor times its lowest value.\n"
    "\n"
    "  --min-lr X        first learning rate (default 1e-7)\n"
    "  --max-lr X        last learning rate (default 10)\n"
    "  --steps N         steps from min to max (default 100; 5 to 100000)\n"
    "  --stop-factor F   divergence threshold (default 4)\n"
    "  --mode M          exponential (ExponentialLR, default) or linear (LRRangeTest)\n"
    "  --csv FILE        also write step,lr,loss,smoothed rows to FILE\n"
    "  --job             print the finder's job spec instead of running it (it can be\n"
    "                    submitted to the service; GET /v1/jobs/{id}/lr_finder reads it)\n"
    "\n"
    "Prints the report of GET /v1/jobs/{id}/lr_finder on stdout: {\"lr\", \"loss\", \"smoothed\",\n"
    "\"suggestions\", \"stopped_early\", \"diverged_at\", \"caveats\", \"from\", \"to\"}.\n"
    "Suggestions: steepest (fastest fall of the smoothed loss against log lr), valley (halfway\n"
    "through its longest descent), minimum_div_10 (the lr of its minimum, divided by 10).\n";

static int bad_usage(const char *what, const char *arg)
{
    fprintf(stderr, "anneald lr-find: %s%s%s\n(see anneald lr-find --help)\n", what,
            arg ? " " : "", arg ? arg : "");
    return 2;
}

/* The flags that override a key of the request; the first four are numbers. */
static const char *const num[][2] = {{"--min-lr", "min_lr"},
                                     {"--max-lr", "max_lr"},
                                     {"--steps", "steps"},
                                     {"--stop-factor", "stop_factor"},
                                     {"--mode", "mode"}};

/* Every flag that takes a value, and those that take none (for cli_unknown_flag). */
static const char *const with_value[] = {"--min-lr", "--max-lr", "--steps", "--stop-factor",
                                         "--mode", "--csv", NULL};
static const char *const bare[] = {"--job", "--help", NULL};

/* Flags that override the request's options, as JSON numbers or strings. */
static int apply_flag(cJSON *opts, const char *flag, const char *val)
{
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(flag, num[i][0]) != 0)
            continue;
        char *end;
        double v = strtod(val, &end);
        if (end == val || *end || !isfinite(v))
            return -EINVAL;
        cJSON_DeleteItemFromObjectCaseSensitive(opts, num[i][1]);
        return cJSON_AddNumberToObject(opts, num[i][1], v) ? 0 : -ENOMEM;
    }
    if (strcmp(flag, "--mode") == 0) {
        cJSON_DeleteItemFromObjectCaseSensitive(opts, "mode");
        return cJSON_AddStringToObject(opts, "mode", val) ? 0 : -ENOMEM;
    }
    return -ENOENT;
}

/* Reads FILE into a finder request: {"job": spec} around a bare spec. */
static int read_request(const char *path, cJSON **out, int *wrapped)
{
    cJSON *j = NULL;
    *wrapped = 0;
    if (cli_read_json(path, &j))
        return 1;
    if (!cJSON_GetObjectItemCaseSensitive(j, "job")) {
        *wrapped = 1;
        cJSON *w = cJSON_CreateObject();
        if (!w) {
            cJSON_Delete(j);
            return 1;
        }
        cJSON_AddItemToObject(w, "job", j);
        j = w;
    }
    *out = j;
    return 0;
}

static int write_csv(const char *path, const double *lr, const double *loss,
                     const double *sm, size_t n)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    fputs("step,lr,loss,smoothed\n", f);
    char a[40], b[40], c[40];
    for (size_t i = 0; i < n; i++) /* each number in the fewest digits that read back */
        fprintf(f, "%zu,%s,%s,%s\n", i + 1, cli_exact(a, lr[i]), cli_exact(b, loss[i]),
                cli_exact(c, sm[i]));
    return fclose(f) ? -errno : 0;
}

int cli_lrfind(int argc, char **argv)
{
    const char *file = NULL, *csv = NULL;
    int print_job = 0;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(USAGE, stdout);
            return cli_stdout_done("the help", 0);
        }
    cJSON *flags = cJSON_CreateObject();
    if (!flags)
        return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--job") == 0) {
            print_job = 1;
            continue;
        }
        if (a[0] == '-' && a[1] == '-') {
            int known = 0;
            for (const char *const *k = with_value; *k; k++)
                known |= strcmp(a, *k) == 0;
            if (!known) {
                cJSON_Delete(flags);
                return cli_unknown_flag("lr-find", a, with_value, bare);
            }
            if (i + 1 >= argc) {
                cJSON_Delete(flags);
                return bad_usage(a, "needs a value");
            }
            if (strcmp(a, "--csv") == 0) {
                csv = argv[++i];
                continue;
            }
            int rc = apply_flag(flags, a, argv[i + 1]);
            if (rc == -ENOENT) {
                cJSON_Delete(flags);
                return cli_unknown_flag("lr-find", a, with_value, bare);
            }
            if (rc) {
                cJSON_Delete(flags);
                return bad_usage(a, "needs a number");
            }
            i++;
        } else if (!file) {
            file = a;
        } else {
            cJSON_Delete(flags);
            return bad_usage("one FILE only; also got", a);
        }
    }
    if (!file) {
        cJSON_Delete(flags);
        return bad_usage("needs a FILE (a job spec or a finder request; - for stdin)", NULL);
    }
    if (print_job && csv) {
        cJSON_Delete(flags);
        return bad_usage("--csv goes with a run; --job prints the finder's job spec and runs",
                         "nothing");
    }
    const char *const out_flag[] = {"--csv"}, *const out_path[] = {csv};
    int orc = cli_distinct_outputs("lr-find", file, out_flag, out_path, 1);
    if (orc) {
        cJSON_Delete(flags);
        return orc;
    }
    cJSON *body;
    int wrapped;
    if (read_request(file, &body, &wrapped)) {
        cJSON_Delete(flags);
        return 1;
    }
    cJSON *f;
    cJSON_ArrayForEach(f, flags) {
        cJSON_DeleteItemFromObjectCaseSensitive(body, f->string);
        cJSON_AddItemToObject(body, f->string, cJSON_Duplicate(f, 0));
    }

    lrfind_req q;
    cJSON *spec_json = NULL;
    an_err e;
    an_err_clear(&e);
    int rc = lrfind_request(body, &q, &spec_json, &e);
    cJSON_Delete(body);
    if (rc) {
        /* A bad value a flag gave is a bad command line (exit 2), named by the flag; one from
         * the file keeps its JSON key (exit 1). */
        const char *flag = NULL;
        for (size_t i = 0; i < sizeof num / sizeof *num; i++)
            if (strcmp(e.field, num[i][1]) == 0 && cJSON_GetObjectItemCaseSensitive(flags, e.field))
                flag = num[i][0];
        cJSON_Delete(flags);
        if (flag)
            return cli_flag_err("lr-find", flag, &e);
        /* A file that is a job spec names its own keys, not the request's "job." ones. */
        if (wrapped && strncmp(e.field, "job.", 4) == 0)
            memmove(e.field, e.field + 4, strlen(e.field + 4) + 1);
        cli_print_err(&e);
        return 1;
    }
    cJSON_Delete(flags);
    if (print_job) {
        /* laid out as `anneald check` prints a spec, so the two read alike and diff cleanly;
         * cli_json_pretty prints every number exactly (gamma's last bits decide every lr of
         * the sweep) */
        char *text = cli_json_pretty(spec_json);
        cJSON_Delete(spec_json);
        if (!text) {
            fprintf(stderr, "error: out of memory\n");
            return 1;
        }
        puts(text);
        free(text);
        return cli_stdout_done("the job spec", 0);
    }
    job_spec spec;
    rc = job_spec_parse(spec_json, &spec, &e);
    cJSON_Delete(spec_json);
    train *t = NULL;
    if (!rc) {
        cli_print_warnings(&spec);
        cli_one_process(&spec);
    }
    if (rc || (rc = train_create(&t, &spec, NULL, 0, &e))) {
        cli_print_err(&e);
        job_spec_free(&spec);
        return 1;
    }
    size_t cap = (size_t)q.steps;
    double *lr = malloc(cap * sizeof *lr), *loss = malloc(cap * sizeof *loss);
    double *sm = malloc(cap * sizeof *sm);
    int status = 1;
    if (!lr || !loss || !sm) {
        fprintf(stderr, "error: out of memory for %zu steps\n", cap);
        goto out;
    }
    /* The sweep's job ends itself once its loss diverges (its spec has "lr_finder"). */
    size_t n = 0;
    while (train_steps_done(t) < train_total_steps(t) && n < cap) {
        train_report rep;
        if ((rc = train_step(t, &rep, &e))) {
            cli_print_err(&e);
            goto out;
        }
        lr[n] = rep.lr[0];
        loss[n++] = isfinite(rep.loss) ? rep.loss : INFINITY;
    }
    lrfind_result r;
    if ((rc = lrfind_analyze(lr, loss, n, LRFIND_BETA, q.stop_factor, sm, &r))) {
        fprintf(stderr, "error: analysing the sweep: %s\n", strerror(-rc));
        goto out;
    }
    if (csv && (rc = write_csv(csv, lr, loss, sm, n))) {
        fprintf(stderr, "error: cannot write %s: %s\n", csv, strerror(-rc));
        goto out;
    }
    cJSON *rep = lrfind_report(lr, loss, sm, n, &r);
    lrfind_caveats cav;
    if (rep && (lrfind_caveats_find(loss, sm, n, &r, spec.loss == LOSS_MEAN, &cav) ||
                lrfind_caveats_json(&cav, rep))) {
        cJSON_Delete(rep);
        rep = NULL;
    }
    /* the steps the arrays cover, as the service's report has them */
    if (rep && (!cJSON_AddItemToObject(rep, "from", n ? cJSON_CreateNumber(1) : cJSON_CreateNull()) ||
                !cJSON_AddItemToObject(rep, "to", n ? cJSON_CreateNumber((double)n)
                                                    : cJSON_CreateNull()))) {
        cJSON_Delete(rep);
        rep = NULL;
    }
    char *text = rep ? cJSON_PrintUnformatted(rep) : NULL;
    if (!text) {
        cJSON_Delete(rep);
        fprintf(stderr, "error: out of memory\n");
        goto out;
    }
    puts(text);
    free(text);
    if (r.has_suggestions)
        fprintf(stderr, "lr-find: %zu steps from %g to %g%s; suggestions: steepest %.3g, "
                "valley %.3g, minimum/10 %.3g\n", n, lr[0], lr[n - 1],
                r.stopped_early ? " (stopped: the loss diverged)" : "", r.steepest, r.valley,
                r.minimum_div_10);
    else
        fprintf(stderr, "lr-find: %zu steps: too few before the loss diverged to suggest a "
                "learning rate; lower --min-lr or add --steps\n", n);
    if (r.has_suggestions)
        for (const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(rep, "caveats"), 0); c;
             c = c->next)
            fprintf(stderr, "lr-find: caveat: %s\n",
                    cJSON_GetObjectItem(c, "message")->valuestring);
    cJSON_Delete(rep);
    status = cli_stdout_done("the report", 0);
out:
    free(lr);
    free(loss);
    free(sm);
    train_free(t);
    job_spec_free(&spec);
    return status;
}
