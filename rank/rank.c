/* anneald-rank — one rank of a data-parallel job over Open MPI (built with mpicc; the daemon
 * never links MPI).
 *
 *   mpirun -n W anneald-rank SPEC.json [--steps N] [--weights-json F] [--metrics-csv F]
 *                                      [--save F] [--resume F]
 *   mpirun -n W anneald-rank --job ID --socket PATH     (started by the daemon: rank/rankd.c)
 *
 * Every rank loads the same spec (its "world_size" must equal W) and data, trains its shard
 * of every global batch (rank r: micro-batches r·gas … r·gas + gas − 1), and the ranks sum
 * their gradients in the fixed order of core/ddp.h: an all-to-all hands each rank the W
 * ranks' pieces of its slice of the flat gradient, the rank sums them in rank order with the
 * engine's pairwise tree, and an all-gather puts the whole sum back on every rank. Every rank
 * then scales, clips (the global norm over the whole gradient, in the same order as one
 * process) and steps alike, so W = 1, 2, 4 give the same weights and losses bit for bit when
 * gas is a power of two. Rank 0 alone writes the files. At ZeRO stage 1 (core/train.h,
 * train_shard_optimizer) each rank keeps the optimizer state of its slice of the parameters
 * only and all-gathers the parameters after each step; for --save the slices are gathered on
 * rank 0 first, so a checkpoint is always the blob a one-process job saves, and --resume
 * takes such a blob at any world size and stage. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "core/config.h"
#include "core/config_metrics.h"
#include "core/ddp.h"
#include "core/metrics_row.h"
#include "core/statefile.h"
#include "core/data_idx.h"
#include "core/train.h"
#include "jobs/fashion.h"
#include "rank/rank.h"
#include "util/metrics_file.h"
#include "util/util.h"

/* util_write_atomic's writers of the output files. */
static int put_text(FILE *f, void *arg)
{
    return fprintf(f, "%s\n", (const char *)arg) < 0 ? -errno : 0;
}

/* A --save file: its head (core/statefile.h), then the blob, as `anneald train` writes it. */
typedef struct blob_out {
    const char *head;
    const void *p;
    size_t len;
} blob_out;

static int put_blob(FILE *f, void *arg)
{
    const blob_out *b = arg;
    return fputs(b->head, f) >= 0 && fwrite(b->p, 1, b->len, f) == b->len ? 0
                                                                          : (errno ? -errno : -EIO);
}

static const char RANK_HELP[] =
    "usage: mpirun -n W anneald-rank SPEC.json [--steps N] [--weights-json F]\n"
    "                                [--metrics-csv F] [--save F] [--resume F]\n"
    "\n"
    "Every rank of a data-parallel job runs this program (also started as `anneald rank`):\n"
    "the spec's world_size must be W. Each rank trains its share of every global batch; the\n"
    "gradients are summed across the ranks in a fixed order, so the weights and losses are\n"
    "those of `anneald train` of the same spec. Rank 0 writes the files.\n"
    "\n"
    "  --steps N          stop after N more steps\n"
    "  --weights-json F   the trained weights, as `anneald train --weights-json` writes them\n"
    "  --metrics-csv F    one row per step, as `anneald train --metrics-csv` (no time column);\n"
    "                     with --resume the file is continued (rows after the state go)\n"
    "  --save F           the training state, the file `anneald train --save` writes\n"
    "  --resume F         go on from such a file (saved by the ranks or by anneald train,\n"
    "                     at any world size; another spec's is refused)\n";

/* A failure of this rank's setup, into `why` as it will be printed. */
__attribute__((format(printf, 4, 5)))
static void say(char *why, size_t size, int rank, const char *fmt, ...)
{
    int n = rank == 0 ? snprintf(why, size, "anneald-rank: ")
                      : snprintf(why, size, "anneald-rank %d: ", rank);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why + n, size - (size_t)n, fmt, ap);
    va_end(ap);
}

/* Whether every rank got through a stage of the setup (`why` is empty on a rank that did).
 * Rank 0 prints its failure, and another rank its own when rank 0 got through: a failure of
 * that rank alone, such as a file missing on its host (when rank 0 failed too, the others
 * mostly failed alike, and one message says it). */
static int all_ok(int world, int rank, const char *why)
{
    int mine = why[0] == 0, every = mine, first = mine;
    if (world > 1) {
        MPI_Allreduce(&mine, &every, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
        first = mine;
        MPI_Bcast(&first, 1, MPI_INT, 0, MPI_COMM_WORLD);
    }
    if (!mine && (rank == 0 || first))
        fprintf(stderr, "%s\n", why);
    return every;
}

static int usage(int rank, const char *msg)
{
    if (rank == 0)
        fprintf(stderr, "anneald-rank: %s\nusage: mpirun -n W anneald-rank SPEC.json "
                "[--steps N] [--weights-json F] [--metrics-csv F] [--save F] [--resume F]\n", msg);
    return 2;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank = 0, world = 1, rc = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    const char *path = NULL, *weights = NULL, *metrics = NULL, *save = NULL, *resume = NULL;
    const char *job = NULL, *sock = NULL;
    long long steps = -1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            if (rank == 0)
                fputs(RANK_HELP, stdout);
            rc = 0;
            goto out;
        }
        if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc) {
            char *end;
            steps = strtoll(argv[++i], &end, 10);
            if (*end || steps < 0) {
                rc = usage(rank, "--steps expects a whole number >= 0");
                goto out;
            }
        } else if (strcmp(argv[i], "--weights-json") == 0 && i + 1 < argc) {
            weights = argv[++i];
        } else if (strcmp(argv[i], "--metrics-csv") == 0 && i + 1 < argc) {
            metrics = argv[++i];
        } else if (strcmp(argv[i], "--save") == 0 && i + 1 < argc) {
            save = argv[++i];
        } else if (strcmp(argv[i], "--resume") == 0 && i + 1 < argc) {
            resume = argv[++i];
        } else if (strcmp(argv[i], "--job") == 0 && i + 1 < argc) {
            job = argv[++i];
        } else if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
            sock = argv[++i];
        } else if (argv[i][0] != '-' && !path) {
            path = argv[i];
        } else {
            /* named, as the other commands name it */
            char msg[160];
            snprintf(msg, sizeof msg, "%s '%.100s'", strncmp(argv[i], "--", 2) == 0
                     ? (i + 1 == argc ? "unknown flag (or one without its value)" : "unknown flag")
                     : "unexpected argument", argv[i]);
            rc = usage(rank, msg);
            goto out;
        }
    }
    if (sock && !path) {
        rc = rankd_run(rank, world, job ? job : "?", sock);
        goto out;
    }
    if (!path || sock) {
        rc = usage(rank, sock ? "--socket runs the job the daemon sends, not a spec file"
                              : "expects a job spec file");
        goto out;
    }
    /* The setup runs in stages, each ending where the ranks agree (all_ok) before the next
     * exchange: a failure on one rank (a file missing on its host) ends them all, rather than
     * leaving the others waiting in an exchange it never joins. */
    char why[800] = "";
    int have_spec = 0;
    job_spec spec;
    an_err e;
    an_err_clear(&e);
    train *t = NULL;
    comm_ctx c = {.world = world, .rank = rank};
    FILE *mf = NULL;
    cJSON *wj = NULL;
    size_t len = 0;
    char *text = NULL;
    int rrc = util_read_file(path, &text, &len);
    if (rrc)
        say(why, sizeof why, rank, "cannot read %s: %s", path, strerror(-rrc));
    else if (job_spec_parse_text(text, len, &spec, &e))
        say(why, sizeof why, rank, "%s: %s: %s", path, e.field, e.message);
    else
        have_spec = 1;
    free(text);
    if (have_spec && spec.world_size != world)
        say(why, sizeof why, rank, "world_size: the spec has world_size %d but %d ranks were "
            "started: start it with mpirun -n %d, or set \"world_size\": %d in the spec",
            spec.world_size, world, spec.world_size, world);
    /* the builtin fashion-mnist is four files that every rank reads (the daemon sends them
     * to rank 0 instead: rankd.c) */
    if (!why[0]) {
        char *data = NULL;
        size_t dlen = 0;
        if (data_is_fashion(&spec.data) && fashion_read(&data, &dlen, &e) != 0)
            say(why, sizeof why, rank, "%s: %s", e.field, e.message);
        else if (train_create(&t, &spec, data, dlen, &e))
            say(why, sizeof why, rank, "%s: %s", e.field[0] ? e.field : "model", e.message);
        else if (world > 1 && train_set_ranks(t, world, rank, comm_reduce, &c) != 0)
            say(why, sizeof why, rank, "model: this job cannot run on several ranks (too many "
                "micro-batches)");
        else if (world > 1 && comm_prepare(&c, train_nparams(t)) != 0)
            say(why, sizeof why, rank, "out of memory for the exchange buffers");
        free(data);
    }
    if (!why[0] && resume) {
        size_t flen = 0, blen = 0;
        char *buf = NULL;
        const char *blob = NULL;
        int r = util_read_file(resume, &buf, &flen);
        if (r || statefile_find_blob(&spec, buf, flen, &blob, &blen, &e) != 0 ||
            train_restore(t, blob, blen, &e) != 0)
            say(why, sizeof why, rank, "--resume %s: %s", resume, r ? strerror(-r) : e.message);
        free(buf);
    }
    if (!all_ok(world, rank, why))
        goto done;
    /* ZeRO stage 1 (2 and 3 run as 1: config_world.c warns), after a resume: the whole state
     * restored is sliced. Every rank takes part. */
    if (world > 1 && spec.zero_stage >= 1) {
        int zrc = train_shard_optimizer(t, comm_gather, &c, &e);
        if (zrc == -ENOTSUP) {
            if (rank == 0)
                fprintf(stderr, "anneald-rank: %s: %s\n", e.field, e.message);
        } else if (zrc) {
            say(why, sizeof why, rank, "%s: %s", e.field, e.message);
        } else {
            size_t total = 0, mine = train_optim_bytes(t, &total);
            fprintf(stderr, "anneald-rank %d: ZeRO stage 1: optimizer state %zu of %zu bytes\n",
                    rank, mine, total);
        }
    }
    /* A resumed run continues its file, as `anneald train` does (the rows after the state
     * saved go); a new one starts it. */
    char header[1024];
    job_spec_metrics_header(&spec, 0, header, sizeof header);
    double time_base = 0;
    if (!why[0] && rank == 0 && metrics &&
        metrics_file_open(metrics, header, resume ? train_steps_done(t) : 0, &mf, &time_base))
        say(why, sizeof why, rank, "--metrics-csv %s: not written", metrics);
    if (!all_ok(world, rank, why))
        goto done;
    /* The file has the columns of `anneald train`'s but time (the file of W ranks is then
     * the same bytes as that of one): each lr group's rate, the held-out loss and accuracy at
     * the steps that validate, and with fp16 (gpt) the scale each step used and whether it
     * overflowed. */
    int64_t total = train_total_steps(t), done_steps = 0;
    double t0 = MPI_Wtime();
    train_report rep;
    while (train_steps_done(t) < total && (steps < 0 || done_steps < steps)) {
        if (train_step(t, &rep, &e)) {
            fprintf(stderr, "anneald-rank %d: %s\n", rank, e.message);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        done_steps++;
        if (mf) { /* anneald train's row but time, which differs between runs */
            char row[METRICS_ROW_MAX];
            metrics_row(&spec, &rep, NULL, row, sizeof row);
            fputs(row, mf);
        }
    }
    double wall = MPI_Wtime() - t0, comm = c.comm_s; /* the save's gathers come after */
    int unwritten = 0; /* rank 0 could not write an output file */
    if (rank == 0 && weights) {
        char *s = NULL;
        /* the same document as `anneald train --weights-json`, input statistics included */
        int wrc = train_weights_json(t, &wj) == 0 && train_input_stats_json(t, wj) == 0 &&
                          (s = cJSON_PrintUnformatted(wj))
                      ? util_write_atomic(weights, put_text, s) : -ENOMEM;
        free(s);
        cJSON_Delete(wj);
        if (wrc) { /* the others go on to the collectives below: so does rank 0, then fails */
            fprintf(stderr, "anneald-rank: --weights-json %s: %s\n", weights, strerror(-wrc));
            unwritten = 1;
        }
    }
    /* A sharded optimizer is consolidated on rank 0 first (every rank sends its slices). */
    if (save && train_unshard_begin(t, &e) != 0) {
        fprintf(stderr, "anneald-rank %d: --save %s: %s\n", rank, save, e.message);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    if (rank == 0 && save) {
        void *blob = NULL;
        size_t blen = 0;
        int src = train_save(t, &blob, &blen, &e);
        char *head = src == 0 ? statefile_head(&spec) : NULL;
        if (src == 0) { /* whole or not at all: a failed save keeps the state it replaces */
            blob_out bo = {head, blob, blen};
            src = head ? util_write_atomic(save, put_blob, &bo) : -ENOMEM;
            if (src)
                snprintf(e.message, sizeof e.message, "%s", strerror(-src));
        }
        free(head);
        free(blob);
        if (src) {
            fprintf(stderr, "anneald-rank: --save %s: %s\n", save, e.message);
            unwritten = 1;
        }
    }
    train_unshard_end(t);
    /* Each rank's step time, split into computing and exchanging: a slow rank (a loaded host,
     * a slow link) shows as the one the others wait for. */
    double mine[2] = {done_steps ? 1e3 * (wall - comm) / (double)done_steps : 0.0,
                      done_steps ? 1e3 * comm / (double)done_steps : 0.0};
    double *all = rank == 0 ? calloc((size_t)world * 2, sizeof *all) : NULL;
    if (world > 1 && MPI_Gather(mine, 2, MPI_DOUBLE, all, 2, MPI_DOUBLE, 0, MPI_COMM_WORLD) ==
                         MPI_SUCCESS && all)
        for (int q = 0; q < world; q++)
            fprintf(stderr, "anneald-rank: rank %d: %.3f ms per step computing, %.3f ms "
                    "exchanging\n", q, all[2 * q], all[2 * q + 1]);
    free(all);
    if (rank == 0)
        fprintf(stderr, "anneald-rank: %lld steps at world_size %d in %.3f s (%.1f steps/s, "
                "%.0f%% in communication)\n", (long long)done_steps, world, wall,
                wall > 0 ? (double)done_steps / wall : 0.0,
                wall > 0 ? 100.0 * comm / wall : 0.0);
    rc = unwritten;
done:
    if (mf)
        fclose(mf);
    train_free(t);
    comm_free(&c);
    if (have_spec)
        job_spec_free(&spec);
out:
    MPI_Finalize();
    return rc;
}
