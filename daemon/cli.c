/* cli — the offline commands: check, preview and train, with no service running. */
#include "daemon/cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/config.h"
#include "core/memest.h"
#include "core/sched.h"
#include "core/train.h"
#include "daemon/options.h"

int cli_read_file(const char *path, char **buf, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f)
        return -errno;
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap + 1);
    if (!b) {
        if (f != stdin)
            fclose(f);
        return -ENOMEM;
    }
    for (;;) {
        if (n == cap) {
            char *nb = realloc(b, cap * 2 + 1);
            if (!nb) {
                free(b);
                if (f != stdin)
                    fclose(f);
                return -ENOMEM;
            }
            b = nb;
            cap *= 2;
        }
        size_t r = fread(b + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    int bad = ferror(f);
    if (f != stdin)
        fclose(f);
    if (bad) {
        free(b);
        return -EIO;
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return 0;
}

static void print_err(const an_err *e)
{
    if (e->field[0])
        fprintf(stderr, "error: %s: %s\n", e->field, e->message);
    else
        fprintf(stderr, "error: %s\n", e->message);
}

static int usage_err(const char *fmt, const char *arg)
{
    fprintf(stderr, "anneald: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(see anneald --help)\n");
    return 2;
}

static int is_help(const char *a)
{
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

static int help(void)
{
    fputs(options_usage(), stdout);
    return 0;
}

#define CLI_MAX_ERRORS 32 /* spec errors printed by one command */

/* Reads and parses the spec at `path`; prints every error (one line each, "error: PATH:
 * MESSAGE") and returns 1 on failure. */
static int load_spec(const char *path, job_spec *spec)
{
    char *text;
    size_t len;
    int rc = cli_read_file(path, &text, &len);
    if (rc) {
        fprintf(stderr, "error: cannot read %s: %s\n", path, strerror(-rc));
        return 1;
    }
    an_err e;
    an_err_clear(&e);
    cJSON *json = NULL;
    rc = json_parse_text(text, len, &json, &e);
    free(text);
    if (rc) {
        print_err(&e);
        return 1;
    }
    /* Every independent error at once, each with its path, so one run fixes them all. */
    an_err errs[CLI_MAX_ERRORS];
    int n = 0;
    rc = job_spec_parse_all(json, spec, errs, CLI_MAX_ERRORS, &n);
    cJSON_Delete(json);
    if (rc) {
        for (int k = 0; k < n && k < CLI_MAX_ERRORS; k++)
            print_err(&errs[k]);
        if (n > CLI_MAX_ERRORS)
            fprintf(stderr, "error: … and %d more\n", n - CLI_MAX_ERRORS);
        else if (n == 0)
            fprintf(stderr, "error: the job spec could not be checked (error %d)\n", rc);
        return 1;
    }
    return 0;
}

int cli_check(int argc, char **argv)
{
    if (argc == 2 && is_help(argv[1]))
        return help();
    /* Offline there is no memory cap unless --max-job-memory names one: the machine that
     * checks a spec is often not the one that trains it. */
    uint64_t cap = 0;
    if (argc == 4 && strcmp(argv[2], "--max-job-memory") == 0) {
        if (mem_parse_size(argv[3], &cap))
            return usage_err("check: --max-job-memory expects a size in bytes with an optional "
                             "K, M, G or T suffix (e.g. 512M, 4G), got '%s'", argv[3]);
        argc = 2;
    }
    if (argc != 2)
        return usage_err("check expects one argument, FILE or -, %s", argc < 2 ? "got none" : "got more");
    if (argv[1][0] == '-' && argv[1][1])
        return usage_err("check: unknown option '%s'", argv[1]);
    job_spec spec;
    if (load_spec(argv[1], &spec))
        return 1;
    mem_estimate mem;
    job_spec_memory(&spec, -1, &mem);
    if (cap && mem.total > cap) {
        char est[400], capt[32];
        fprintf(stderr, "error: model: this job needs %s, over the %s cap (--max-job-memory)\n",
                mem_estimate_text(&mem, est, sizeof est), mem_bytes_text(cap, capt, sizeof capt));
        job_spec_free(&spec);
        return 1;
    }
    cJSON *out = cJSON_CreateObject();
    cJSON_AddItemToObject(out, "spec", cJSON_Duplicate(spec.normalized, 1));
    cJSON_AddItemToObject(out, "warnings", cJSON_Duplicate(spec.warnings, 1));
    char *s = cJSON_Print(out);
    printf("%s\n", s);
    cJSON_free(s);
    cJSON_Delete(out);
    cJSON *w;
    cJSON_ArrayForEach(w, spec.warnings)
        if (cJSON_IsString(w))
            fprintf(stderr, "warning: %s\n", w->valuestring);
    job_spec_free(&spec);
    return 0;
}

static int parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = s ? strtoll(s, &end, 10) : 0;
    if (!s || !*s || errno || *end || v < lo || v > hi)
        return -EINVAL;
    *out = v;
    return 0;
}

/* Writes the whole of buf to stdout; 0, or -1 when stdout fails (a closed pipe, a full disk). */
static int put_out(const char *buf, size_t n)
{
    return fwrite(buf, 1, n, stdout) == n ? 0 : -1;
}

/* A double in the fewest digits that read back to the same value (as the preview prints). */
static const char *exact(char buf[40], double v)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, 40, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return buf;
}

int cli_preview(int argc, char **argv)
{
    const char *path = NULL;
    int csv = 0;
    int64_t steps = 0;
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
        if (is_help(a)) {
            rc = help();
            goto out;
        } else if (strcmp(a, "--steps") == 0) {
            if (parse_i64(v, 1, 10000000, &steps)) {
                usage_err("--steps expects a whole number in 1..10000000, got '%s'", v ? v : "");
                goto out;
            }
            i++;
        } else if (strcmp(a, "--param-group-lr") == 0) {
            char *end = NULL;
            double x = v ? strtod(v, &end) : NAN;
            if (!v || !*v || *end || !isfinite(x) || x < 0) {
                usage_err("--param-group-lr expects a learning rate >= 0, got '%s'", v ? v : "");
                goto out;
            }
            if (cJSON_GetArraySize(groups) >= SCHED_MAX_GROUPS) {
                usage_err("--param-group-lr may be given at most %s times", "64");
                goto out;
            }
            cJSON *g = cJSON_CreateObject();
            cJSON_AddItemToArray(groups, g);
            cJSON_AddNumberToObject(g, "lr", x);
            i++;
        } else if (strcmp(a, "--format") == 0) {
            if (!v || (strcmp(v, "json") && strcmp(v, "csv"))) {
                usage_err("--format expects json or csv, got '%s'", v ? v : "");
                goto out;
            }
            csv = strcmp(v, "csv") == 0;
            i++;
        } else if (!path && (a[0] != '-' || strcmp(a, "-") == 0)) {
            path = a;
        } else {
            usage_err("preview: unexpected argument '%s'", a);
            goto out;
        }
    }
    if (!path) {
        usage_err("preview expects a FILE or - %s", "(a ds_config, a preview body or a job spec)");
        goto out;
    }
    rc = 1;
    char *text;
    size_t len;
    int r = cli_read_file(path, &text, &len);
    if (r) {
        fprintf(stderr, "error: cannot read %s: %s\n", path, strerror(-r));
        goto out;
    }
    an_err e;
    an_err_clear(&e);
    r = json_parse_text(text, len, &body, &e);
    free(text);
    if (r) {
        print_err(&e);
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
    if (sched_preview_open(body, steps, csv, &ps, &e)) {
        print_err(&e);
        goto out;
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
    /* JSON ends without a newline (it is the answer's body exactly); one is added so that a
     * terminal prompt starts on its own line. CSV rows already end in one. */
    if ((n == 0 && !csv && put_out("\n", 1)) || n > 0 || fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "error: cannot write the preview to stdout: %s\n", strerror(errno));
        goto out;
    }
    rc = 0;
out:
    free(chunk);
    sched_preview_close(ps);
    cJSON_Delete(body);
    cJSON_Delete(groups);
    return rc;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A `--save` file: this magic line, the job spec it belongs to on one line (normalised, without
 * the fields that do not change training), then the training state blob of train_save. The
 * spec line lets `--resume` refuse a state that another spec made and say what differs; the
 * blob's own checks only see the model and optimizer layout. */
#define STATE_MAGIC "anneald train state 1\n"

/* The spec as a --save file records it: one line of JSON; malloc'd, NULL when out of memory. */
static char *state_spec_text(const job_spec *spec)
{
    cJSON *c = cJSON_Duplicate(spec->normalized, 1);
    if (!c)
        return NULL;
    cJSON_DeleteItemFromObjectCaseSensitive(c, "name");
    cJSON_DeleteItemFromObjectCaseSensitive(c, "checkpoint");
    char *t = cJSON_PrintUnformatted(c);
    cJSON_Delete(c);
    return t;
}

/* Finds the first place where a and b differ; writes its JSON path into path. 1 if they
 * differ, 0 if equal. */
static int first_diff(const cJSON *a, const cJSON *b, char *path, size_t size)
{
    char sub[256];
    if (cJSON_IsObject(a) && cJSON_IsObject(b)) {
        const cJSON *x;
        cJSON_ArrayForEach(x, a) {
            an_path(sub, sizeof sub, path, x->string);
            const cJSON *y = cJSON_GetObjectItemCaseSensitive(b, x->string);
            if (!y || first_diff(x, y, sub, sizeof sub)) {
                snprintf(path, size, "%s", sub);
                return 1;
            }
        }
        cJSON_ArrayForEach(x, b)
            if (!cJSON_GetObjectItemCaseSensitive(a, x->string)) {
                snprintf(path, size, "%s", an_path(sub, sizeof sub, path, x->string));
                return 1;
            }
        return 0;
    }
    if (cJSON_IsArray(a) && cJSON_IsArray(b) && cJSON_GetArraySize(a) == cJSON_GetArraySize(b)) {
        int i = 0;
        for (const cJSON *x = a->child, *y = b->child; x && y; x = x->next, y = y->next, i++) {
            an_path_index(sub, sizeof sub, path, i);
            if (first_diff(x, y, sub, sizeof sub)) {
                snprintf(path, size, "%s", sub);
                return 1;
            }
        }
        return 0;
    }
    return !cJSON_Compare(a, b, 1);
}

/* A value for an error message, cut short when long. */
static void brief(const cJSON *v, char *buf, size_t size)
{
    char *t = v ? cJSON_PrintUnformatted(v) : NULL;
    snprintf(buf, size, "%s", t ? t : "(absent)");
    if (t && strlen(t) >= size && size > 4)
        memcpy(buf + size - 4, "...", 4);
    cJSON_free(t);
}

/* The value at a path made by first_diff ("a.b[2].c"), or NULL. */
static const cJSON *at_path(const cJSON *root, const char *path)
{
    const cJSON *v = root;
    const char *p = path;
    while (v && *p) {
        if (*p == '.') {
            p++;
            continue;
        }
        if (*p == '[') {
            v = cJSON_GetArrayItem(v, atoi(p + 1));
            p = strchr(p, ']');
            p = p ? p + 1 : "";
            continue;
        }
        size_t n = strcspn(p, ".[");
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)(n < 255 ? n : 255), p);
        v = cJSON_GetObjectItemCaseSensitive(v, key);
        p += n;
    }
    return v;
}

/* Restores a --save file (or a bare checkpoint blob) into t; prints the error and returns 1
 * when it cannot. */
static int resume_from(train *t, const job_spec *spec, const char *path)
{
    char *buf;
    size_t len;
    int r = cli_read_file(path, &buf, &len);
    if (r) {
        fprintf(stderr, "error: cannot read %s: %s\n", path, strerror(-r));
        return 1;
    }
    const char *blob = buf;
    size_t blen = len, ml = strlen(STATE_MAGIC);
    int rc = 1;
    if (len >= ml && memcmp(buf, STATE_MAGIC, ml) == 0) {
        const char *line = buf + ml;
        const char *nl = memchr(line, '\n', len - ml);
        cJSON *saved = nl ? cJSON_ParseWithLength(line, (size_t)(nl - line)) : NULL;
        char *mine_t = state_spec_text(spec);
        cJSON *mine = mine_t ? cJSON_Parse(mine_t) : NULL;
        cJSON_free(mine_t);
        char where[256] = "";
        if (!saved) {
            fprintf(stderr, "error: %s: the job spec line of the saved state is damaged\n", path);
        } else if (!mine) {
            fprintf(stderr, "error: out of memory\n");
        } else if (first_diff(mine, saved, where, sizeof where)) {
            char here[96], there[96];
            brief(at_path(mine, where), here, sizeof here);
            brief(at_path(saved, where), there, sizeof there);
            fprintf(stderr, "error: %s: the state was saved by another job spec: %s is %s here, "
                    "%s in the saved state\n", path, where[0] ? where : "the spec", here, there);
        } else {
            rc = 0;
        }
        cJSON_Delete(saved);
        cJSON_Delete(mine);
        if (rc) {
            free(buf);
            return 1;
        }
        blob = nl + 1;
        blen = len - (size_t)(blob - buf);
    }
    an_err e;
    an_err_clear(&e);
    rc = train_restore(t, blob, blen, &e) != 0;
    if (rc)
        fprintf(stderr, "error: %s: %s\n", path, e.message);
    free(buf);
    return rc;
}

/* Writes a --save file: STATE_MAGIC, the spec line, the blob. 0 or -errno. */
static int save_state(const train *t, const job_spec *spec, const char *path, an_err *e)
{
    void *blob = NULL;
    size_t blen = 0;
    int r = train_save(t, &blob, &blen, e);
    if (r)
        return r;
    char *st = state_spec_text(spec);
    FILE *f = st ? fopen(path, "wb") : NULL;
    if (!f) {
        r = st ? -errno : -ENOMEM;
        free(blob);
        cJSON_free(st);
        return r;
    }
    int bad = fputs(STATE_MAGIC, f) < 0 || fputs(st, f) < 0 || fputc('\n', f) == EOF ||
              fwrite(blob, 1, blen, f) != blen || fflush(f) != 0;
    if (fclose(f) != 0)
        bad = 1;
    free(blob);
    cJSON_free(st);
    return bad ? -EIO : 0;
}

static int write_file(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -errno;
    size_t w = fwrite(buf, 1, len, f);
    int bad = w != len || fflush(f) != 0;
    if (fclose(f) != 0 || bad)
        return -EIO;
    return 0;
}

static void progress(int tty, const train_report *r, int64_t total, double t0, int final)
{
    double el = now_s() - t0;
    if (tty) {
        int width = 30, fill = total > 0 ? (int)(width * r->step / total) : width;
        char bar[64];
        for (int i = 0; i < width; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[width] = '\0';
        fprintf(stderr, "\r[%s] %lld/%lld loss %.6g lr %.6g %.1fs ", bar, (long long)r->step,
                (long long)total, r->loss, r->lr[0], el);
        if (final)
            fputc('\n', stderr);
    } else {
        fprintf(stderr, "step %lld/%lld loss %.9g lr %.9g\n", (long long)r->step,
                (long long)total, r->loss, r->lr[0]);
    }
}

int cli_train(int argc, char **argv)
{
    const char *path = NULL, *metrics_csv = NULL, *weights_json = NULL, *save = NULL,
               *resume = NULL;
    int64_t steps = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        const char **dst = NULL;
        if (is_help(a))
            return help();
        if (strcmp(a, "--steps") == 0) {
            if (parse_i64(v, 0, INT64_MAX, &steps))
                return usage_err("--steps expects a whole number >= 0, got '%s'", v ? v : "");
            i++;
            continue;
        }
        if (strcmp(a, "--metrics-csv") == 0)
            dst = &metrics_csv;
        else if (strcmp(a, "--weights-json") == 0)
            dst = &weights_json;
        else if (strcmp(a, "--save") == 0)
            dst = &save;
        else if (strcmp(a, "--resume") == 0)
            dst = &resume;
        if (dst) {
            if (!v)
                return usage_err("%s needs a file name", a);
            *dst = v;
            i++;
        } else if (!path && (a[0] != '-' || strcmp(a, "-") == 0)) {
            path = a;
        } else {
            return usage_err("train: unexpected argument '%s'", a);
        }
    }
    if (!path)
        return usage_err("train expects a job spec file%s", "");

    job_spec spec;
    if (load_spec(path, &spec))
        return 1;
    if (spec.data.type == DATA_DATASET) {
        fprintf(stderr, "error: data.type: \"dataset\" names a data set uploaded to the service; "
                        "the offline trainer takes \"builtin\", \"inline\" or \"synthetic\"\n");
        job_spec_free(&spec);
        return 1;
    }
    if (spec.resume_job[0]) {
        fprintf(stderr, "error: resume_from: needs the service's checkpoints; use --resume FILE "
                        "offline\n");
        job_spec_free(&spec);
        return 1;
    }
    an_err e;
    an_err_clear(&e);
    train *t = NULL;
    FILE *mf = NULL;
    int rc = 1;
    if (train_create(&t, &spec, NULL, 0, &e)) {
        print_err(&e);
        goto out;
    }
    if (resume && resume_from(t, &spec, resume))
        goto out;
    if (metrics_csv) {
        mf = fopen(metrics_csv, "w");
        if (!mf) {
            fprintf(stderr, "error: cannot write %s: %s\n", metrics_csv, strerror(errno));
            goto out;
        }
    }
    int64_t total = train_total_steps(t);
    int tty = isatty(2);
    double t0 = now_s(), last = 0;
    train_report rep;
    memset(&rep, 0, sizeof rep);
    int64_t done = 0;
    char nb[40];
    if (mf) {
        /* The header comes from the spec, so a run with nothing left to train still writes a
         * well-formed (empty) table. */
        sched_env env;
        job_spec_sched_env(&spec, job_spec_data_samples(&spec), &env);
        fprintf(mf, "step,loss");
        for (int g = 0; g < env.ngroups; g++)
            fprintf(mf, ",lr%d", g);
        fprintf(mf, ",grad_norm\n");
    }
    while (train_steps_done(t) < total && (steps < 0 || done < steps)) {
        if (train_step(t, &rep, &e)) {
            if (tty)
                fputc('\n', stderr);
            print_err(&e);
            goto out;
        }
        done++;
        if (mf) {
            fprintf(mf, "%lld,%s", (long long)rep.step, exact(nb, rep.loss));
            for (int g = 0; g < rep.ngroups; g++)
                fprintf(mf, ",%s", exact(nb, rep.lr[g]));
            fprintf(mf, ",%s\n", exact(nb, rep.grad_norm));
        }
        double now = now_s();
        if (now - last >= (tty ? 0.1 : 1.0)) {
            progress(tty, &rep, total, t0, 0);
            last = now;
        }
    }
    if (done > 0)
        progress(tty, &rep, total, t0, 1);
    if (mf && fclose(mf) != 0) {
        mf = NULL;
        fprintf(stderr, "error: cannot write %s\n", metrics_csv);
        goto out;
    }
    mf = NULL;
    if (save) {
        int r = save_state(t, &spec, save, &e);
        if (r) {
            if (e.message[0])
                print_err(&e);
            else
                fprintf(stderr, "error: cannot write %s: %s\n", save, strerror(-r));
            goto out;
        }
    }
    if (weights_json) {
        cJSON *w = NULL;
        if (train_weights_json(t, &w) || !w) {
            fprintf(stderr, "error: cannot build the weights JSON\n");
            goto out;
        }
        char *s = cJSON_PrintUnformatted(w);
        cJSON_Delete(w);
        int r = s ? write_file(weights_json, s, strlen(s)) : -ENOMEM;
        cJSON_free(s);
        if (r) {
            fprintf(stderr, "error: cannot write %s: %s\n", weights_json, strerror(-r));
            goto out;
        }
    }
    if (done > 0) {
        printf("step %lld loss %s lr", (long long)rep.step, exact(nb, rep.loss));
        for (int g = 0; g < rep.ngroups; g++)
            printf(" %s", exact(nb, rep.lr[g]));
        printf("\n");
    } else {
        printf("step %lld (nothing to train)\n", (long long)train_steps_done(t));
    }
    rc = 0;
out:
    if (mf)
        fclose(mf);
    train_free(t);
    job_spec_free(&spec);
    return rc;
}
