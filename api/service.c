/* service — GET /healthz and GET /metrics (Prometheus text format). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/conns.h"
#include "api/http.h"
#include "api/routes.h"
#include "core/memest.h"
#include "api/api.h"
#include "api/reqtime.h"
#include "store/lock.h"
#include "util/version.h"
#include "util/util.h"
#include "util/log.h"

/* What the two answers read of the store: read on a queue thread's connection (the loop
 * thread never waits on the disk), the answer then made on the loop, which owns the rest. */
typedef struct vitals {
    int counts_ok;                 /* the job counts could be read */
    int64_t counts[STORE_NSTATES];
    int usage_ok;
    store_usage usage;             /* its bytes are the store's size */
    int disk_ok;                   /* the store's file system's free space could be read */
    uint64_t avail;                /* its free bytes */
} vitals;

static void vitals_work(http_req *r, struct store_t *s)
{
    vitals *v = r->ctx;
    v->counts_ok = store_job_counts(s, v->counts, NULL) == 0;
    v->usage_ok = store_usage_get(s, &v->usage, NULL) == 0;
    /* looked at afresh for healthz_answer (store_lock_moved) */
    store_lock_verify(r->api->sv->opts->db, NULL, NULL);
    /* statvfs can wait on the disk: here, not on the loop thread that answers */
    v->disk_ok = util_free_disk(r->api->sv->opts->db, &v->avail) == 0;
}

/* Reads the vitals on the quick queue, then runs `answer` on the loop. */
static void with_vitals(http_req *r, void (*answer)(http_req *r))
{
    vitals *v = calloc(1, sizeof *v);
    if (!v) {
        http_error(r, 503, "unavailable", NULL, "out of memory");
        return;
    }
    r->ctx = v;
    r->ctx_free = free;
    r->loop_fn = answer;
    http_defer(r, vitals_work);
}

static void healthz_answer(http_req *r)
{
    api_t *api = r->api;
    const vitals *v = r->ctx;
    const int64_t *counts = v->counts;
    cJSON *o = cJSON_CreateObject();
    int ok = v->counts_ok;
    int down = atomic_load(&api->sv->pool.down);
    cJSON *problems = cJSON_CreateArray();
    if (!ok)
        cJSON_AddItemToArray(problems, cJSON_CreateString("the store cannot be read"));
    if (down > 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "%d of %d workers cannot open the store and take no jobs",
                 down, api->sv->opts->workers);
        cJSON_AddItemToArray(problems, cJSON_CreateString(msg));
        ok = 0;
    }
    /* The store file deleted or replaced: found by vitals_work, or, when this request's
     * thread could not open its connection for that reason, by that open. */
    char gone[600];
    if (store_lock_moved(gone, sizeof gone)) {
        cJSON_AddItemToArray(problems, cJSON_CreateString(gone));
        ok = 0;
    }
    int requeued = 0;
    int unrecorded = jobs_unrecorded(&api->sv->jobs, &requeued);
    if (unrecorded > 0) {
        char msg[200];
        snprintf(msg, sizeof msg, "the state of %d job(s) is not recorded in the store yet (a "
                 "full disk, a read-only file, or a busy store); written again every second",
                 unrecorded);
        cJSON_AddItemToArray(problems, cJSON_CreateString(msg));
        ok = 0;
    }
    /* Free disk: a warning from twice --min-free-disk, a problem below it (jobs pause). */
    cJSON *warnings = cJSON_CreateArray();
    uint64_t avail = v->disk_ok ? v->avail : 0, min = api->sv->opts->min_free_disk;
    if (min > 0 && v->disk_ok && avail < 2 * min) {
        char msg[200], a[32], m[32];
        snprintf(msg, sizeof msg, "the store's file system has %s free; training pauses below "
                 "%s (--min-free-disk)", mem_bytes_text(avail, a, sizeof a),
                 mem_bytes_text(min, m, sizeof m));
        cJSON_AddItemToArray(avail < min ? problems : warnings, cJSON_CreateString(msg));
        if (avail < min)
            ok = 0;
    }
    cJSON_AddStringToObject(o, "status", ok ? "ok" : "degraded");
    cJSON_AddItemToObject(o, "problems", problems);
    cJSON_AddItemToObject(o, "warnings", warnings);
    if (min > 0 && v->disk_ok)
        cJSON_AddNumberToObject(o, "free_disk_bytes", (double)avail);
    cJSON_AddStringToObject(o, "version", ANNEALD_VERSION);
    cJSON_AddNumberToObject(o, "uptime_s", util_now() - api->sv->started);
    cJSON *j = cJSON_AddObjectToObject(o, "jobs");
    /* jobs a restart queued again while the store still says running count as what they are */
    int64_t moved = requeued < counts[STORE_RUNNING] ? requeued : counts[STORE_RUNNING];
    cJSON_AddNumberToObject(j, "running", (double)(counts[STORE_RUNNING] - moved));
    cJSON_AddNumberToObject(j, "queued", (double)(counts[STORE_QUEUED] + moved));
    cJSON_AddNumberToObject(o, "workers", api->sv->opts->workers);
    cJSON_AddNumberToObject(o, "workers_down", down);
    const store_usage u = v->usage;
    if (v->usage_ok) {
        /* Where the disk goes: the file, the part of it free for reuse (being given back
         * by housekeeping), and the write-ahead log beside it. */
        cJSON *so = cJSON_AddObjectToObject(o, "store");
        cJSON_AddNumberToObject(so, "bytes", (double)u.bytes);
        cJSON_AddNumberToObject(so, "free_pages", (double)u.free_pages);
        cJSON_AddNumberToObject(so, "free_bytes", (double)(u.free_pages * u.page_size));
        cJSON_AddNumberToObject(so, "wal_bytes", (double)u.wal_bytes);
    }
    http_set_pending_json(r, ok ? 200 : 503, o);
}

void api_healthz(http_req *r) { with_vitals(r, healthz_answer); }

/* A growing text buffer for the exposition format. */
typedef struct tbuf {
    char *s;
    size_t len, cap;
} tbuf;

static void tb_printf(tbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tb_printf(tbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (b->s && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t nc = b->cap ? b->cap * 2 : 4096;
        while (nc < b->len + (size_t)n + 1)
            nc *= 2;
        char *ns = realloc(b->s, nc);
        if (!ns)
            return;
        b->s = ns;
        b->cap = nc;
    }
}

static void prometheus_answer(http_req *r)
{
    api_t *api = r->api;
    const vitals *v = r->ctx;
    tbuf b = {0};
    const int64_t *counts = v->counts;
    tb_printf(&b, "# HELP anneald_jobs Jobs in the store by state.\n# TYPE anneald_jobs gauge\n");
    for (int s = 0; s < STORE_NSTATES; s++)
        tb_printf(&b, "anneald_jobs{state=\"%s\"} %" PRId64 "\n", store_state_name((store_job_state)s),
                  counts[s]);
    tb_printf(&b, "# HELP anneald_steps_trained_total Optimizer steps trained and committed to "
                  "the store since start.\n"
                  "# TYPE anneald_steps_trained_total counter\n"
                  "anneald_steps_trained_total %" PRIu64 "\n",
              (uint64_t)atomic_load(&api->sv->jobs.steps_trained));
    tb_printf(&b, "# HELP anneald_samples_trained_total Training samples of those steps.\n"
                  "# TYPE anneald_samples_trained_total counter\n"
                  "anneald_samples_trained_total %" PRIu64 "\n",
              (uint64_t)atomic_load(&api->sv->jobs.samples_trained));
    tb_printf(&b, "# HELP anneald_http_requests_total HTTP requests answered, by status code.\n"
                  "# TYPE anneald_http_requests_total counter\n");
    for (int c = 100; c < 600; c++)
        if (api->http_by_code[c])
            tb_printf(&b, "anneald_http_requests_total{code=\"%d\"} %" PRIu64 "\n", c,
                      api->http_by_code[c]);
    char *time_text = reqtime_metrics_text(api);
    if (time_text)
        tb_printf(&b, "%s", time_text);
    free(time_text);
    tb_printf(&b, "# HELP anneald_sse_clients Open Server-Sent Events streams.\n"
                  "# TYPE anneald_sse_clients gauge\nanneald_sse_clients %d\n",
              api->hub.nclients);
    char *conn_text = conns_metrics_text(api); /* connections and refusals (api/conns.c) */
    if (conn_text)
        tb_printf(&b, "%s", conn_text);
    free(conn_text);
    tb_printf(&b, "# HELP anneald_sse_events_total Events written to streams.\n"
                  "# TYPE anneald_sse_events_total counter\nanneald_sse_events_total %" PRIu64 "\n",
              api->hub.events_sent);
    tb_printf(&b, "# HELP anneald_checkpoints_total Checkpoints committed since start.\n"
                  "# TYPE anneald_checkpoints_total counter\nanneald_checkpoints_total %" PRIu64 "\n",
              (uint64_t)atomic_load(&api->sv->jobs.ckpt_count));
    tb_printf(&b, "# HELP anneald_checkpoint_bytes_total Bytes of checkpoints committed.\n"
                  "# TYPE anneald_checkpoint_bytes_total counter\n"
                  "anneald_checkpoint_bytes_total %" PRIu64 "\n",
              (uint64_t)atomic_load(&api->sv->jobs.ckpt_bytes));
    tb_printf(&b, "# HELP anneald_checkpoint_seconds_total Time spent writing checkpoints.\n"
                  "# TYPE anneald_checkpoint_seconds_total counter\n"
                  "anneald_checkpoint_seconds_total %.6f\n",
              (double)atomic_load(&api->sv->jobs.ckpt_usec) * 1e-6);
    {   /* running jobs of several ranks (jobs/rankrun.c), and every running job's activations */
        job_overlay ov = {0};
        if (jobs_overlay_capture(&api->sv->jobs, &ov) == 0) {
            tb_printf(&b, "# HELP anneald_job_activation_bytes Activation memory of each running "
                          "job (its estimate).\n# TYPE anneald_job_activation_bytes gauge\n"
                          "# HELP anneald_job_activation_saved_bytes Activation memory that "
                          "activation checkpointing saves each running job (0 without it).\n"
                          "# TYPE anneald_job_activation_saved_bytes gauge\n");
            for (size_t i = 0; i < ov.n; i++) {
                const job_snap *s = &ov.items[i].snap;
                if (!ov.items[i].has_snap || !s->started || s->done)
                    continue;
                tb_printf(&b, "anneald_job_activation_bytes{job=\"%s\"} %" PRIu64 "\n"
                              "anneald_job_activation_saved_bytes{job=\"%s\"} %" PRIu64 "\n",
                          ov.items[i].id, s->act_bytes, ov.items[i].id, s->act_saved);
            }
            tb_printf(&b, "# HELP anneald_job_world_size Ranks of each running job of several "
                          "ranks.\n# TYPE anneald_job_world_size gauge\n"
                          "# HELP anneald_job_rank_step_ms Milliseconds per step each rank of a "
                          "running job spends outside the gradient exchange (the last half second)."
                          "\n# TYPE anneald_job_rank_step_ms gauge\n");
            for (size_t i = 0; i < ov.n; i++) {
                const job_snap *s = &ov.items[i].snap;
                if (!ov.items[i].has_snap || !s->started || s->done || s->world_size < 2)
                    continue;
                tb_printf(&b, "anneald_job_world_size{job=\"%s\"} %d\n", ov.items[i].id,
                          s->world_size);
                for (int k = 0; k < s->n_rank_ms; k++)
                    tb_printf(&b, "anneald_job_rank_step_ms{job=\"%s\",rank=\"%d\"} %.6g\n",
                              ov.items[i].id, k, s->rank_step_ms[k]);
            }
            jobs_overlay_free(&ov);
        }
    }
    {   /* scheduling (jobs/jobsched.c) */
        int prio[64], cnt[64];
        int np = jobs_queue_by_priority(&api->sv->jobs, prio, cnt, 64);
        tb_printf(&b, "# HELP anneald_queue_depth Jobs waiting for a worker, by priority "
                      "(the 64 highest priorities that have any).\n"
                      "# TYPE anneald_queue_depth gauge\n");
        for (int i = 0; i < np; i++)
            tb_printf(&b, "anneald_queue_depth{priority=\"%d\"} %d\n", prio[i], cnt[i]);
        tb_printf(&b, "# HELP anneald_preemptions_total Running jobs paused at a checkpoint "
                      "for a job of higher priority since start.\n"
                      "# TYPE anneald_preemptions_total counter\n"
                      "anneald_preemptions_total %" PRIu64 "\n"
                      "# HELP anneald_job_restarts_total Jobs restarted from their latest "
                      "checkpoint after a stall since start.\n"
                      "# TYPE anneald_job_restarts_total counter\n"
                      "anneald_job_restarts_total %" PRIu64 "\n"
                      "# HELP anneald_job_stall_failures_total Jobs failed after max_restarts "
                      "stalls since start.\n"
                      "# TYPE anneald_job_stall_failures_total counter\n"
                      "anneald_job_stall_failures_total %" PRIu64 "\n",
                  (uint64_t)atomic_load(&api->sv->jobs.preemptions),
                  (uint64_t)atomic_load(&api->sv->jobs.restarts),
                  (uint64_t)atomic_load(&api->sv->jobs.stall_failures));
    }
    tb_printf(&b, "# HELP anneald_loop_longest_turn_seconds Longest turn of the event loop since "
                  "start (its callbacks, not the wait for events).\n"
                  "# TYPE anneald_loop_longest_turn_seconds gauge\n"
                  "anneald_loop_longest_turn_seconds %.6f\n"
                  "# HELP anneald_loop_longest_turn_cpu_seconds Longest turn of the event loop in "
                  "the loop thread's CPU time.\n"
                  "# TYPE anneald_loop_longest_turn_cpu_seconds gauge\n"
                  "anneald_loop_longest_turn_cpu_seconds %.6f\n"
                  "# HELP anneald_loop_turns_total Turns of the event loop.\n"
                  "# TYPE anneald_loop_turns_total counter\nanneald_loop_turns_total %" PRIu64 "\n",
              (double)api->sv->longest_turn_ns * 1e-9, (double)api->sv->longest_turn_cpu_ns * 1e-9, api->sv->turns);
    workq *qs[2] = {&api->sv->quick, &api->sv->slow};
    tb_printf(&b, "# HELP anneald_work_queue_depth Deferred requests waiting, by queue.\n"
                  "# TYPE anneald_work_queue_depth gauge\n");
    int waiting[2], running[2], peak[2];
    for (int k = 0; k < 2; k++) {
        workq_depths(qs[k], &waiting[k], &running[k], &peak[k]);
        tb_printf(&b, "anneald_work_queue_depth{queue=\"%s\"} %d\n", qs[k]->name, waiting[k]);
    }
    tb_printf(&b, "# HELP anneald_work_queue_running Deferred requests being worked on, by "
                  "queue.\n# TYPE anneald_work_queue_running gauge\n");
    for (int k = 0; k < 2; k++)
        tb_printf(&b, "anneald_work_queue_running{queue=\"%s\"} %d\n", qs[k]->name, running[k]);
    tb_printf(&b, "# HELP anneald_work_queue_peak_depth Deepest each queue has been.\n"
                  "# TYPE anneald_work_queue_peak_depth gauge\n");
    for (int k = 0; k < 2; k++)
        tb_printf(&b, "anneald_work_queue_peak_depth{queue=\"%s\"} %d\n", qs[k]->name, peak[k]);
    tb_printf(&b, "# HELP anneald_work_queue_rejected_total Requests refused (503) because their "
                  "queue was full.\n# TYPE anneald_work_queue_rejected_total counter\n");
    for (int k = 0; k < 2; k++)
        tb_printf(&b, "anneald_work_queue_rejected_total{queue=\"%s\"} %" PRIu64 "\n",
                  qs[k]->name, (uint64_t)atomic_load(&qs[k]->rejected));
    uv_mutex_lock(&api->sv->mem.mu);
    uint64_t mem_used = api->sv->mem.used, mem_refused = api->sv->mem.refused;
    uv_mutex_unlock(&api->sv->mem.mu);
    tb_printf(&b, "# HELP anneald_memory_budget_bytes The daemon's memory budget (--max-memory; 0 "
                  "= none).\n# TYPE anneald_memory_budget_bytes gauge\n"
                  "anneald_memory_budget_bytes %" PRIu64 "\n"
                  "# HELP anneald_memory_reserved_bytes Memory reserved now by running jobs, "
                  "loaded models and uploads.\n# TYPE anneald_memory_reserved_bytes gauge\n"
                  "anneald_memory_reserved_bytes %" PRIu64 "\n"
                  "# HELP anneald_memory_refused_total Reservations refused (a job waited or a "
                  "request got 503).\n# TYPE anneald_memory_refused_total counter\n"
                  "anneald_memory_refused_total %" PRIu64 "\n",
              api->sv->mem.cap, mem_used, mem_refused);
    tb_printf(&b, "# HELP anneald_store_bytes Size of the SQLite store.\n"
                  "# TYPE anneald_store_bytes gauge\nanneald_store_bytes %" PRId64 "\n",
              v->usage_ok ? v->usage.bytes : 0);
    const store_usage u = v->usage;
    if (v->usage_ok)
        tb_printf(&b, "# HELP anneald_store_free_pages Pages of the store free for reuse.\n"
                      "# TYPE anneald_store_free_pages gauge\nanneald_store_free_pages %" PRId64 "\n"
                      "# HELP anneald_store_free_bytes Bytes of those pages.\n"
                      "# TYPE anneald_store_free_bytes gauge\nanneald_store_free_bytes %" PRId64 "\n"
                      "# HELP anneald_store_wal_bytes Size of the store's write-ahead log.\n"
                      "# TYPE anneald_store_wal_bytes gauge\nanneald_store_wal_bytes %" PRId64 "\n",
                  u.free_pages, u.free_pages * u.page_size, u.wal_bytes);
    tb_printf(&b, "# HELP anneald_uptime_seconds Seconds since start.\n"
                  "# TYPE anneald_uptime_seconds gauge\nanneald_uptime_seconds %.3f\n",
              util_now() - api->sv->started);
    if (!b.s) {
        http_set_pending_error(r, 500, "internal", NULL, "out of memory");
        return;
    }
    http_set_pending_owned(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.s, b.len);
}

void api_prometheus(http_req *r) { with_vitals(r, prometheus_answer); }
