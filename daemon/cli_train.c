/* cli_train — `anneald train`: one job in the foreground, its state saved and resumed in a
 * file. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/config.h"
#include "core/config_metrics.h"
#include "core/metrics_row.h"
#include "core/sched.h"
#include "core/train.h"
#include "core/data_idx.h"
#include "daemon/cli.h"
#include "jobs/fashion.h"
#include "daemon/startup_signals.h"
#include "daemon/cli_util.h"
#include "core/statefile.h"
#include "util/metrics_file.h"
#include "util/util.h"

/* Restores a --save file (or a bare checkpoint blob) into t; prints the error and returns 1
 * when it cannot. */
int cli_resume_from(train *t, const job_spec *spec, const char *path)
{
    char *buf;
    size_t len;
    int r = util_read_file(path, &buf, &len);
    if (r) {
        fprintf(stderr, "error: cannot read %s: %s\n", path, strerror(-r));
        return 1;
    }
    const char *blob;
    size_t blen;
    an_err e;
    an_err_clear(&e);
    int rc = statefile_find_blob(spec, buf, len, &blob, &blen, &e) != 0 ||
             train_restore(t, blob, blen, &e) != 0;
    if (rc)
        fprintf(stderr, "error: %s: %s\n", path, e.message);
    free(buf);
    return rc;
}

/* What a --save file holds: its head (core/statefile.h), then the blob. */
struct state_file {
    const char *head;
    const void *blob;
    size_t len;
};

static int put_state(FILE *f, void *arg)
{
    const struct state_file *s = arg;
    int bad = fputs(s->head, f) < 0 || fwrite(s->blob, 1, s->len, f) != s->len;
    return bad ? (errno ? -errno : -EIO) : 0;
}

/* Writes a --save file, replacing the old one whole or not at all (util_write_atomic): a
 * failed save (a full disk) keeps the state it would have replaced. 0 or -errno. */
static int save_state(const train *t, const job_spec *spec, const char *path, an_err *e)
{
    void *blob = NULL;
    size_t blen = 0;
    int r = train_save(t, &blob, &blen, e);
    if (r)
        return r;
    char *head = statefile_head(spec);
    struct state_file sf = {head, blob, blen};
    r = head ? util_write_atomic(path, put_state, &sf) : -ENOMEM;
    free(blob);
    free(head);
    return r;
}

struct buf {
    const void *p;
    size_t len;
};

static int put_buf(FILE *f, void *arg)
{
    const struct buf *b = arg;
    return fwrite(b->p, 1, b->len, f) == b->len ? 0 : errno ? -errno : -EIO;
}

/* Set by SIGINT/SIGTERM: the loop stops after the step it is in. */
static volatile sig_atomic_t stop_signal;
/* SIGINT and SIGTERM stay blocked while the model is built and trained, and the loop takes
 * them between steps (stop_pending). oneDNN 2.x's JIT matrix kernels point rsp into the heap
 * while they run, so a handler run on a thread inside one writes its signal frame over heap
 * memory (an abort in free() later; fixed upstream in oneDNN 3.11.2, Debian ships 2.6). The
 * mask is set before any product runs, so the threads OpenMP starts for them inherit it. */
static sigset_t stop_set;
/* Set while the state and weights are written: a signal then only says so, since a save cut
 * short is what the user stopped the run to keep. */
static volatile sig_atomic_t saving;

static void on_stop(int sig)
{
    static const char msg[] = "anneald train: still saving; it stops once the files are written\n";
    int saved_errno = errno; /* the interrupted code may be about to read it */
    if (saving) {
        ssize_t n = write(2, msg, sizeof msg - 1);
        (void)n; /* nothing more to do when stderr is gone */
    }
    errno = saved_errno;
    stop_signal = sig;
}

/* The stop signal waiting while they are blocked, taken; 0 when none. */
static int stop_pending(void)
{
    static const struct timespec now = {0, 0};
    int sig = sigtimedwait(&stop_set, NULL, &now);
    return sig > 0 ? sig : 0;
}

/* "1h02m", "3m05s", "12.3s": a duration for the progress line. */
static const char *dur(char buf[24], double s)
{
    if (!(s >= 0) || s > 1e9)
        snprintf(buf, 24, "?");
    else if (s >= 3600)
        snprintf(buf, 24, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
    else if (s >= 60)
        snprintf(buf, 24, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else
        snprintf(buf, 24, "%.1fs", s);
    return buf;
}

/* The progress line: step, loss, lr, the rate of this run (steps per second since it started)
 * and the time left at that rate. */
/* The last validation's loss (kept by the step loop), shown on the progress line once there
 * is one. */
static double last_val = NAN;

static void progress(int tty, const train_report *r, int64_t total, int64_t first_step,
                     double t0, int final)
{
    char val[40] = "";
    if (!isnan(last_val))
        snprintf(val, sizeof val, " val_loss %.6g", last_val);
    double el = util_now() - t0;
    double rate = el > 0 ? (double)(r->step - first_step) / el : 0;
    double eta = rate > 0 ? (double)(total - r->step) / rate : NAN;
    char e1[24], e2[24];
    if (tty) {
        int width = 30, fill = total > 0 ? (int)(width * r->step / total) : width;
        char bar[64];
        for (int i = 0; i < width; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[width] = '\0';
        fprintf(stderr, "\r[%s] %lld/%lld loss %.6g%s lr %.6g %.0f steps/s %s ETA %s ", bar,
                (long long)r->step, (long long)total, r->loss, val, r->lr[0], rate,
                dur(e1, el), final ? "0s" : dur(e2, eta));
        if (final)
            fputc('\n', stderr);
    } else {
        fprintf(stderr, "step %lld/%lld loss %.9g%s lr %.9g %.0f steps/s elapsed %s eta %s",
                (long long)r->step, (long long)total, r->loss, val, r->lr[0], rate, dur(e1, el),
                final ? "0s" : dur(e2, eta));
        /* fp16: the loss scale the step used and the overflowed (skipped) steps so far */
        if (!isnan(r->loss_scale))
            fprintf(stderr, " loss_scale %.9g skipped %lld", r->loss_scale,
                    (long long)r->skipped_steps);
        fputc('\n', stderr);
    }
}

/* A stop signal before the first step (startup_signals.h). Nothing is written before then,
 * so nothing is left half done. */
static void stopped_in_startup(int sig)
{
    char msg[200];
    int n = snprintf(msg, sizeof msg, "anneald train: interrupted by %s during start-up, "
                     "before the first step: nothing was trained or written\n",
                     sig == SIGINT ? "Ctrl-C (SIGINT)" : "SIGTERM");
    ssize_t w = write(2, msg, (size_t)n);
    (void)w; /* nothing more to do when stderr is gone */
    _exit(130);
}

int cli_train(int argc, char **argv)
{
    const char *path = NULL, *metrics_csv = NULL, *weights_json = NULL, *save = NULL,
               *resume = NULL;
    int64_t steps = -1;
    startup_watch(stopped_in_startup); /* until the first step, a signal ends the process */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        const char **dst = NULL;
        if (cli_is_help(a))
            return cli_help("train");
        if (strcmp(a, "--steps") == 0) {
            if (cli_parse_i64(v, 0, INT64_MAX, &steps))
                return cli_usage_err("train", "--steps expects a whole number >= 0, got '%s'", v ? v : "");
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
                return cli_usage_err("train", "%s needs a file name", a);
            *dst = v;
            i++;
        } else if (strncmp(a, "--", 2) == 0) {
            static const char *const with_value[] = {"--steps", "--metrics-csv", "--weights-json",
                                                     "--save", "--resume", NULL};
            static const char *const bare[] = {"--help", NULL};
            return cli_unknown_flag("train", a, with_value, bare);
        } else if (!path && (a[0] != '-' || strcmp(a, "-") == 0)) {
            path = a;
        } else {
            return cli_usage_err("train", "unexpected argument '%s'", a);
        }
    }
    if (!path)
        return cli_usage_err("train", "expects a job spec file%s", "");
    const char *const out_flags[] = {"--save", "--weights-json", "--metrics-csv"};
    const char *const out_paths[] = {save, weights_json, metrics_csv};
    int orc = cli_distinct_outputs("train", path, out_flags, out_paths, 3);
    if (orc)
        return orc;

    job_spec spec;
    if (cli_load_spec(path, &spec))
        return 1;
    cli_print_warnings(&spec);
    cli_one_process(&spec);
    if (spec.data.type == DATA_TEXT && !spec.data.text && !spec.data.text_builtin) {
        fprintf(stderr, "error: data.dataset: names a text corpus uploaded to the service; "
                        "the offline trainer takes \"text\" inline or the builtin "
                        "tinyshakespeare\n");
        job_spec_free(&spec);
        return 1;
    }
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
    /* The output files are checked before training, so that a bad path costs no training;
     * they are written only at the end, and nothing is left behind if the run fails first. */
    const char *outs[] = {save, weights_json};
    for (int k = 0; k < 2; k++) {
        startup_hold(1); /* the probe file is removed before a signal ends the process */
        int w = outs[k] ? util_check_writable(outs[k]) : 0;
        startup_hold(0);
        if (w) {
            fprintf(stderr, "error: cannot write %s: %s\n", outs[k], strerror(-w));
            job_spec_free(&spec);
            return 1;
        }
    }
    an_err e;
    an_err_clear(&e);
    train *t = NULL;
    FILE *mf = NULL;
    int rc = 1;
    int handlers = 0, mf_err = 0;
    struct sigaction old_int, old_term;
    sigset_t old_mask;
    char *packed = NULL;
    size_t packed_len = 0;
    /* Ctrl-C and SIGTERM end the run between steps, so the files are left whole; they stay
     * caught until the files are written (a second Ctrl-C during a long save must not kill
     * it halfway). Until the save they are blocked too (stop_set says why): since main
     * (startup_signals.h), so the mask to go back to is the old one without them. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGINT);
    sigaddset(&stop_set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_set, &old_mask);
    sigdelset(&old_mask, SIGINT);
    sigdelset(&old_mask, SIGTERM);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    handlers = 1;
    stop_signal = 0;
    if (data_is_fashion(&spec.data) && fashion_read(&packed, &packed_len, &e)) {
        cli_print_err(&e);
        goto out;
    }
    int crc = train_create(&t, &spec, packed, packed_len, &e);
    free(packed);
    if (crc) {
        cli_print_err(&e);
        goto out;
    }
    if (resume && cli_resume_from(t, &spec, resume))
        goto out;
    /* Start-up is over: from here on (the metrics file first) a signal stops the run
     * between steps. */
    startup_over();
    double time_base = 0; /* a continued metrics file: the time its last kept row had */
    if (metrics_csv) {
        char head[1024];
        job_spec_metrics_header(&spec, 1, head, sizeof head);
        if (metrics_file_open(metrics_csv, head, resume ? train_steps_done(t) : 0, &mf,
                              &time_base))
            goto out;
    }
    int64_t total = train_total_steps(t);
    int tty = isatty(2);
    double t0 = util_now(), last = 0;
    double clock_at = t0;                 /* the last clock read, and the steps done then */
    int64_t clock_done = 0, clock_next = 1;
    int64_t first_step = train_steps_done(t);
    train_report rep;
    memset(&rep, 0, sizeof rep);
    rep.loss_scale = NAN;
    int64_t done = 0;
    char nb[40];
    stop_signal = stop_pending(); /* a Ctrl-C as start-up ended */
    while (train_steps_done(t) < total && (steps < 0 || done < steps) && !stop_signal) {
        if (train_step(t, &rep, &e)) {
            if (tty)
                fputc('\n', stderr);
            cli_print_err(&e);
            goto out;
        }
        done++;
        if (rep.has_val)
            last_val = rep.val_loss;
        total = train_total_steps(t); /* a learning-rate sweep may end itself early */
        /* The clock is read for every row of a metrics file, else about every 200 µs of
         * steps: a read costs as much as a step of a tiny model. */
        if (!mf && done < clock_next)
            continue;
        stop_signal = stop_pending();
        double now = util_now();
        if (done > clock_done) {
            double per = (now - clock_at) / (double)(done - clock_done);
            int64_t stride = per > 0 ? (int64_t)fmin(1024, fmax(1, 200e-6 / per)) : 1024;
            clock_next = done + stride;
        }
        clock_at = now;
        clock_done = done;
        if (mf) {
            /* time: seconds of training since the file's first row, as the API's time
             * (which counts from the job's first start) */
            double secs = time_base + (now - t0);
            char row[METRICS_ROW_MAX];
            metrics_row(&spec, &rep, &secs, row, sizeof row);
            fputs(row, mf);
            if (!mf_err && ferror(mf)) /* the reason, before later calls change errno */
                mf_err = errno ? errno : EIO;
        }
        if (now - last >= (tty ? 0.1 : 1.0)) {
            progress(tty, &rep, total, first_step, t0, 0);
            last = now;
        }
    }
    if (!stop_signal) /* one that came during the last steps, which read no clock */
        stop_signal = stop_pending();
    int stopped = stop_signal != 0;
    /* "eta 0s" only when the run is over: a --steps N stop or Ctrl-C leaves steps to go */
    if (done > 0)
        progress(tty, &rep, total, first_step, t0, train_steps_done(t) >= total);
    if (stopped && tty)
        fputc('\n', stderr);
    if (mf) {
        errno = 0;
        if (fflush(mf) != 0 && !mf_err)
            mf_err = errno ? errno : EIO;
        if (fclose(mf) != 0 && !mf_err)
            mf_err = errno ? errno : EIO;
        mf = NULL;
        if (mf_err) {
            fprintf(stderr, "error: cannot write %s: %s\n", metrics_csv, strerror(mf_err));
            goto out;
        }
    }
    saving = 1;
    /* No more matrix products: a second signal now reaches on_stop at once, to say that the
     * save goes on. */
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    if (stopped && (save || weights_json))
        fprintf(stderr, "saving %s%s%s (a moment for a large model)\n", save ? save : "",
                save && weights_json ? " and " : "", weights_json ? weights_json : "");
    if (save) {
        int r = save_state(t, &spec, save, &e);
        if (r) {
            if (e.message[0])
                cli_print_err(&e);
            else
                fprintf(stderr, "error: cannot write %s: %s\n", save, strerror(-r));
            goto out;
        }
    }
    if (weights_json) {
        cJSON *w = NULL;
        if (train_weights_json(t, &w) || !w || train_input_stats_json(t, w)) {
            cJSON_Delete(w);
            fprintf(stderr, "error: cannot build the weights JSON\n");
            goto out;
        }
        char *s = cJSON_PrintUnformatted(w);
        cJSON_Delete(w);
        /* ending in a newline, as the ranks' file and the API's answer do */
        char *nl = s ? realloc(s, strlen(s) + 2) : NULL;
        if (nl)
            strcat(nl, "\n");
        else
            cJSON_free(s);
        s = nl;
        struct buf b = {s, s ? strlen(s) : 0};
        int r = s ? util_write_atomic(weights_json, put_buf, &b) : -ENOMEM;
        cJSON_free(s);
        if (r) {
            fprintf(stderr, "error: cannot write %s: %s\n", weights_json, strerror(-r));
            goto out;
        }
    }
    if (stopped || (save && train_steps_done(t) < total)) {
        /* Say what was kept, and the command that continues the run with the same files. */
        fprintf(stderr, "%s after step %lld of %lld.\n", stopped ? "interrupted" : "stopped",
                (long long)train_steps_done(t), (long long)total);
        if (metrics_csv)
            fprintf(stderr, "metrics up to it: %s\n", metrics_csv);
        if (save) {
            fprintf(stderr, "state saved to %s; continue with: anneald train ", save);
            cli_shell_word(stderr, path);
            char nsteps[24];
            snprintf(nsteps, sizeof nsteps, "%lld", (long long)steps);
            const char *flags[][2] = {{"--resume", save}, {"--save", save},
                                      {"--metrics-csv", metrics_csv},
                                      {"--weights-json", weights_json},
                                      {"--steps", steps >= 0 ? nsteps : NULL}};
            for (size_t k = 0; k < sizeof flags / sizeof flags[0]; k++)
                if (flags[k][1]) {
                    fprintf(stderr, " %s ", flags[k][0]);
                    cli_shell_word(stderr, flags[k][1]);
                }
            /* the spec came on standard input: it has to come the same way again */
            fputs(strcmp(path, "-") == 0 ? " < (the same job spec)\n" : "\n", stderr);
        } else {
            fprintf(stderr, "no state saved (give --save FILE to be able to continue)\n");
        }
    } else if (save) {
        fprintf(stderr, "state of step %lld saved to %s\n", (long long)train_steps_done(t),
                save);
    }
    if (done > 0) {
        printf("step %lld loss %s lr", (long long)rep.step, cli_exact(nb, rep.loss));
        for (int g = 0; g < rep.ngroups; g++)
            printf(" %s", cli_exact(nb, rep.lr[g]));
        printf("\n");
    } else {
        printf("step %lld (nothing to train)\n", (long long)train_steps_done(t));
    }
    rc = cli_stdout_done("the last step", stopped ? 130 : 0);
out:
    if (mf)
        fclose(mf);
    startup_over(); /* a run that failed in start-up */
    if (handlers) {
        /* a signal still blocked reaches on_stop here, not the default action */
        pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        saving = 0;
    }
    train_free(t);
    job_spec_free(&spec);
    return rc;
}
