/* cli — what the offline commands share, their help, and `anneald check`. The other commands
 * are in cli_preview.c and cli_train.c. */
#include "daemon/cli.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "core/cfgval.h"
#include "core/config.h"
#include "core/config_gpt.h"
#include "core/config_world.h"
#include "core/jsonnum.h"
#include "core/memest.h"
#include "daemon/cli_util.h"
#include "util/util.h"

void cli_print_err(const an_err *e)
{
    if (e->field[0])
        fprintf(stderr, "error: %s: %s\n", e->field, e->message);
    else
        fprintf(stderr, "error: %s\n", e->message);
}

int cli_usage_err(const char *cmd, const char *fmt, const char *arg)
{
    fprintf(stderr, "anneald %s: ", cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(see anneald %s --help)\n", cmd);
    return 2;
}

int cli_unknown_flag(const char *cmd, const char *arg, const char *const *with_value,
                     const char *const *bare)
{
    /* "--steps=5": the flag is known, only the form is not. */
    const char *eq = strchr(arg, '=');
    size_t nl = eq ? (size_t)(eq - arg) : 0;
    for (const char *const *k = with_value; eq && *k; k++)
        if (strlen(*k) == nl && strncmp(*k, arg, nl) == 0) {
            fprintf(stderr, "anneald %s: unknown flag '%s' (give the value after a space: %s "
                    "%s)\n(see anneald %s --help)\n", cmd, arg, *k, eq + 1, cmd);
            return 2;
        }
    /* The nearest flag within two edits (a typo of one); the first of equals wins. */
    const char *best = NULL;
    int best_d = 3;
    const char *const *lists[] = {with_value, bare};
    for (size_t l = 0; l < 2; l++)
        for (const char *const *k = lists[l]; k && *k; k++) {
            int d = cfg_edit_distance(*k, arg);
            if (d < best_d) {
                best_d = d;
                best = *k;
            }
        }
    if (best)
        fprintf(stderr, "anneald %s: unknown flag '%s' (did you mean '%s'?)\n", cmd, arg, best);
    else
        fprintf(stderr, "anneald %s: unknown flag '%s'\n", cmd, arg);
    fprintf(stderr, "(see anneald %s --help)\n", cmd);
    return 2;
}

int cli_stdout_done(const char *what, int rc)
{
    /* errno is cleared first, so that a reason found is the flush's (or, when a write already
     * failed and nothing is left to flush, that write's as it left errno). */
    int saved = errno;
    errno = 0;
    int bad = fflush(stdout) != 0;
    int err = errno;
    if (!bad && !ferror(stdout))
        return rc;
    if (!err)
        err = saved ? saved : EIO;
    fprintf(stderr, "error: cannot write %s to stdout: %s\n", what, strerror(err));
    return rc ? rc : 1;
}

int cli_flag_err(const char *cmd, const char *flag, const an_err *e)
{
    size_t kl = strlen(e->field);
    const char *m = e->message;
    if (kl && strncmp(m, e->field, kl) == 0 && m[kl] == ' ')
        fprintf(stderr, "anneald %s: %s%s\n", cmd, flag, m + kl);
    else
        fprintf(stderr, "anneald %s: %s: %s\n", cmd, flag, m);
    fprintf(stderr, "(see anneald %s --help)\n", cmd);
    return 2;
}

int cli_is_help(const char *a)
{
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

static const char CHECK_HELP[] =
    "usage: anneald check FILE|- [--max-job-memory BYTES]\n"
    "\n"
    "Validates a job spec (docs/JOBSPEC.md) as POST /v1/jobs would, without a service.\n"
    "Exit 0: prints {\"spec\": the spec with every default filled in, \"warnings\": [...]} on\n"
    "stdout, and each warning on stderr. Exit 1: every error, one line each on stderr,\n"
    "\"error: JSON.PATH: message\". Exit 2: a bad command line.\n"
    "\n"
    "  FILE|-                  the spec, or - for stdin\n"
    "  --max-job-memory BYTES  also refuse a job estimated to need more memory than this\n"
    "                          (suffixes K, M, G, T); without it no cap applies offline\n";

static const char PREVIEW_HELP[] =
    "usage: anneald preview FILE|- [--steps N] [--every N | --max-points N]\n"
    "                       [--param-group-lr X]... [--format json|csv]\n"
    "\n"
    "Prints the learning rate (and momentum, where the schedule cycles it) of every optimizer\n"
    "step, exactly as POST /v1/schedules/preview answers, without training. FILE is a job spec,\n"
    "a preview body {\"ds_config\": ..., \"steps\": N} or a bare ds_config (- for stdin).\n"
    "\n"
    "  --steps N           steps to preview (default: the spec's steps; for a job given in\n"
    "                      epochs its real length; else 1000). Up to 10000000 steps are\n"
    "                      printed; longer schedules (up to 1000000000) need --every or\n"
    "                      --max-points\n"
    "  --every N           print step 1, every N-th step, the last step and the steps where\n"
    "                      the lr changes direction\n"
    "  --max-points N      the same with N chosen so that at most N steps are printed\n"
    "  --param-group-lr X  one parameter group with base lr X; repeat for more groups\n"
    "  --format json|csv   json (default, one line) or csv: step,lr0,...[,momentum0,...]\n";

static const char TRAIN_HELP[] =
    "usage: anneald train JOB.json|- [--steps N] [--metrics-csv F] [--weights-json F]\n"
    "                     [--save F] [--resume F]\n"
    "\n"
    "Trains one job in the foreground, without a service, with the same numbers as the daemon\n"
    "(- reads the spec from standard input). A spec with world_size W trains its whole global\n"
    "batch here, W x gradient_accumulation_steps micro-batches a step.\n"
    "A progress line on stderr shows the step, loss, lr, steps per second and time left.\n"
    "Ctrl-C (or SIGTERM) stops after the current step: the metrics file is closed, the state\n"
    "saved when --save is given, and the command says where things are (exit 130). During\n"
    "start-up (reading the spec, making the data set, building the model) it ends the command\n"
    "at once, before anything is written (exit 130).\n"
    "\n"
    "  --steps N          train at most N more optimizer steps (the run itself is unchanged)\n"
    "  --metrics-csv F    write one row per step: the columns of the API's metrics CSV,\n"
    "                     step,loss,lr0[,lr1...],grad_norm,time[,val_loss,val_acc]\n"
    "                     [,loss_scale,skipped] (fp16); with --resume, an existing F of\n"
    "                     the run goes on: its rows after the resumed step are dropped\n"
    "  --weights-json F   write the final weights as GET /v1/jobs/{id}/weights does\n"
    "  --save F           write the whole training state to F at the end (or on Ctrl-C)\n"
    "  --resume F         continue from a state written by --save, here or by anneald-rank\n"
    "                     (same spec; name, checkpoint, world_size, accumulation steps and\n"
    "                     ZeRO's stage may differ)\n"
    "Outputs are files: two may not share one, and none may be the spec or '-'.\n";

int cli_help(const char *cmd)
{
    if (strcmp(cmd, "check") == 0)
        fputs(CHECK_HELP, stdout);
    else if (strcmp(cmd, "preview") == 0)
        fputs(PREVIEW_HELP, stdout);
    else
        fputs(TRAIN_HELP, stdout);
    return cli_stdout_done("the help", 0);
}

#define CLI_MAX_ERRORS 32 /* spec errors printed by one command */

int cli_read_json(const char *path, cJSON **out)
{
    char *text;
    size_t len;
    int rc = util_read_file(path, &text, &len);
    if (rc) {
        fprintf(stderr, "error: cannot read %s: %s\n", path, strerror(-rc));
        return 1;
    }
    an_err e;
    an_err_clear(&e);
    *out = NULL;
    /* The file's own errors name the file (not the field paths of a spec's errors). */
    const char *name = strcmp(path, "-") == 0 ? "standard input" : path;
    if (strspn(text, " \t\r\n") == len) {
        fprintf(stderr, "error: %s is empty: a JSON object was expected\n", name);
        free(text);
        return 1;
    }
    rc = json_parse_text(text, len, out, &e);
    free(text);
    if (rc) {
        if (e.field[0])
            cli_print_err(&e);
        else
            fprintf(stderr, "error: %s: %s\n", name, e.message);
        return 1;
    }
    return 0;
}

int cli_load_spec(const char *path, job_spec *spec)
{
    cJSON *json = NULL;
    if (cli_read_json(path, &json))
        return 1;
    int rc;
    /* Every independent error at once, each with its path, so one run fixes them all. */
    an_err errs[CLI_MAX_ERRORS];
    int n = 0;
    rc = job_spec_parse_all(json, spec, errs, CLI_MAX_ERRORS, &n);
    cJSON_Delete(json);
    if (rc) {
        for (int k = 0; k < n && k < CLI_MAX_ERRORS; k++)
            cli_print_err(&errs[k]);
        if (n > CLI_MAX_ERRORS)
            fprintf(stderr, "error: … and %d more\n", n - CLI_MAX_ERRORS);
        else if (n == 0)
            fprintf(stderr, "error: the job spec could not be checked (error %d)\n", rc);
        return 1;
    }
    return 0;
}

/* 1 when paths a and b name one file: the same inode when both exist, else the same
 * resolved directory and name. */
static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0)
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    char ca[PATH_MAX + 256], cb[PATH_MAX + 256];
    const char *in[2] = {a, b};
    char *out[2] = {ca, cb};
    for (int k = 0; k < 2; k++) {
        const char *slash = strrchr(in[k], '/');
        char dir[PATH_MAX], real[PATH_MAX];
        snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - in[k]) + 1 : 1,
                 slash ? in[k] : ".");
        if (!realpath(dir, real))
            snprintf(real, sizeof real, "%s", dir);
        snprintf(out[k], sizeof ca, "%s/%s", real, slash ? slash + 1 : in[k]);
    }
    return strcmp(ca, cb) == 0;
}

int cli_distinct_outputs(const char *cmd, const char *input, const char *const *flags,
                         const char *const *paths, int n)
{
    char msg[PATH_MAX + 200];
    for (int i = 0; i < n; i++) {
        if (!paths[i])
            continue;
        if (strcmp(paths[i], "-") == 0) {
            snprintf(msg, sizeof msg, "%s writes a file, not standard output: give it a file "
                     "name ('-' would make a file named '-')", flags[i]);
            return cli_usage_err(cmd, "%s", msg);
        }
        if (input && strcmp(input, "-") != 0 && same_file(paths[i], input)) {
            snprintf(msg, sizeof msg, "%s %s names the job spec file: it would be overwritten",
                     flags[i], paths[i]);
            return cli_usage_err(cmd, "%s", msg);
        }
        for (int j = 0; j < i; j++)
            if (paths[j] && same_file(paths[i], paths[j])) {
                snprintf(msg, sizeof msg, "%s and %s both name %s: each output needs a file "
                         "of its own", flags[j], flags[i], paths[i]);
                return cli_usage_err(cmd, "%s", msg);
            }
    }
    return 0;
}

void cli_print_warnings(const job_spec *spec)
{
    const cJSON *w;
    cJSON_ArrayForEach(w, spec->warnings)
        if (cJSON_IsString(w))
            fprintf(stderr, "warning: %s\n", w->valuestring);
}

void cli_one_process(job_spec *spec)
{
    long long gas = (long long)spec->grad_accum, mb = (long long)spec->micro_batch;
    int w = cfg_world_one_process(spec);
    if (w > 1)
        fprintf(stderr, "note: world_size %d: trained here in one process, %lld micro-batches "
                "of %lld a step (%d ranks × %lld), the same global batch of %lld; `mpirun -n %d "
                "anneald-rank` trains it on %d ranks\n", w, gas * w, mb, w, gas,
                (long long)spec->train_batch_size, w, w);
}

int cli_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = s ? strtoll(s, &end, 10) : 0;
    if (!s || !*s || errno || *end || v < lo || v > hi)
        return -EINVAL;
    *out = v;
    return 0;
}

const char *cli_exact(char buf[40], double v)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, 40, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return buf;
}

char *cli_json_pretty(const void *json)
{
    /* cJSON_Print writes 15 digits whenever they read back within its epsilon of the value
     * (0.30000000000000004 as 0.3): a copy with exact numbers prints what the daemon stores. */
    cJSON *copy = cJSON_Duplicate(json, 1);
    char *t = copy && json_make_exact(copy) == 0 ? cJSON_Print(copy) : NULL;
    cJSON_Delete(copy);
    if (!t)
        return NULL;
    /* cJSON indents with one tab per level and puts a tab after each colon; strings never
     * hold a raw tab (it is escaped), so every tab is layout. */
    size_t tabs = 0, n = 0;
    for (const char *p = t; *p; p++, n++)
        tabs += *p == '\t';
    char *out = malloc(n + tabs + 1);
    if (out) {
        char *o = out;
        int line_start = 1;
        for (const char *p = t; *p; p++) {
            if (*p == '\t') {
                if (line_start) {
                    *o++ = ' ';
                    *o++ = ' ';
                } else {
                    *o++ = ' ';
                }
                continue;
            }
            line_start = *p == '\n';
            *o++ = *p;
        }
        *o = '\0';
    }
    cJSON_free(t);
    return out;
}

int cli_check(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (cli_is_help(argv[i]))
            return cli_help("check");
    /* Offline there is no memory cap unless --max-job-memory names one: the machine that
     * checks a spec is often not the one that trains it. The flag goes before or after the
     * file, as the other commands' flags do (and, as theirs, with its value after a space). */
    static const char *const with_value[] = {"--max-job-memory", NULL};
    static const char *const bare[] = {"--help", NULL};
    uint64_t cap = 0;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--max-job-memory") == 0) {
            if (i + 1 >= argc)
                return cli_usage_err("check", "%s needs a value: a size in bytes with an optional "
                                     "K, M, G or T suffix (e.g. 512M, 4G)", a);
            if (mem_parse_size(argv[++i], &cap))
                return cli_usage_err("check", "--max-job-memory expects a size in bytes with an "
                                     "optional K, M, G or T suffix (e.g. 512M, 4G), got '%s'", argv[i]);
        } else if (strncmp(a, "--", 2) == 0) {
            return cli_unknown_flag("check", a, with_value, bare);
        } else if (a[0] == '-' && a[1]) { /* a lone "-" is stdin */
            return cli_usage_err("check", "unexpected argument '%s'", a);
        } else if (path) {
            return cli_usage_err("check", "expects one file, FILE or -, got more ('%s')", a);
        } else {
            path = a;
        }
    }
    if (!path)
        return cli_usage_err("check", "expects one argument, FILE or -, %s", "got none");
    job_spec spec;
    if (cli_load_spec(path, &spec))
        return 1;
    mem_estimate mem;
    job_spec_memory(&spec, -1, &mem);
    mem_estimate_ranks(&spec, spec.world_size, &mem); /* mpirun on this machine */
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
    char *s = cli_json_pretty(out);
    printf("%s\n", s ? s : "null");
    free(s);
    cJSON_Delete(out);
    cli_print_warnings(&spec);
    job_spec_free(&spec);
    return cli_stdout_done("the checked spec", 0);
}

/* Characters a shell takes as they are. */
static int plain_word(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./-=,:+@%",
                    *s))
            return 0;
    return 1;
}

void cli_shell_word(FILE *out, const char *s)
{
    if (plain_word(s)) {
        fputs(s, out);
        return;
    }
    fputc('\'', out);
    for (; *s; s++) {
        if (*s == '\'')
            fputs("'\\''", out);
        else
            fputc(*s, out);
    }
    fputc('\'', out);
}
