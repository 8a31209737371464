/* restore — the state a job's run starts from: its newest usable checkpoint (restored here,
 * or as a blob for the ranks of a job of several). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/train.h"
#include "jobs/wctx.h"
#include "util/log.h"

/* Restores the newest usable checkpoint of job `id` into `t`; *step receives its step, or -1
 * when the job has none or none is usable (the job then starts over from step 0: a retry
 * could not do better, and the uninterrupted result is still what it ends with). A checkpoint
 * whose chunks do not read back (missing or short chunks: -EPROTO) or whose blob train_restore
 * rejects (checksum, framing) is logged and skipped for the one before it; the rewind that
 * follows deletes the skipped ones with the rest of the abandoned future. Any other failure
 * (I/O, out of memory, a full disk) says nothing about the checkpoint and is returned. */
int wctx_restore_newest(wctx *w, const char *id, train *t, int64_t *step, an_err *e)
{
    *step = -1;
    store_checkpoint_info *list = NULL;
    size_t n = 0;
    int rc = store_checkpoint_list(&w->store, id, &list, &n, e);
    if (rc)
        return rc;
    size_t bad = 0;
    for (size_t i = n; i-- > 0;) {
        void *blob = NULL;
        size_t len = 0;
        int64_t at = list[i].step;
        rc = store_checkpoint_read(&w->store, id, at, &blob, &len, NULL, e);
        if (rc == 0) {
            rc = train_restore(t, blob, len, e);
            free(blob);
            if (rc == -ENOMEM)
                break;
        } else if (rc != -EPROTO) {
            break;
        }
        if (rc == 0) {
            *step = at;
            if (bad)
                util_log(LOG_WARN, "job %s: resuming from the checkpoint at step %" PRId64
                           " (%zu newer one%s unusable)", id, at, bad, bad == 1 ? " was" : "s were");
            break;
        }
        bad++;
        util_log(LOG_ERROR, "job %s: the checkpoint at step %" PRId64 " is unusable (%s%s%s); "
                   "%s", id, at, e->field, e->field[0] ? ": " : "", e->message,
                   i > 0 ? "trying the one before it" : "no older checkpoint: starting over "
                   "from step 0");
        rc = 0;
    }
    free(list);
    return rc;
}

/* wctx.h. (A job of several ranks: the blob goes to rank 0, which restores it.) */
int wctx_pick_resume_blob(wctx *w, const store_job *row, const job_spec *spec, void **blob,
                          size_t *len, int *kind, int64_t *step, an_err *e)
{
    *blob = NULL, *len = 0, *kind = 0, *step = 0;
    store_checkpoint_info *list = NULL;
    size_t n = 0;
    int rc = store_checkpoint_list(&w->store, row->id, &list, &n, e);
    int own = 0; /* a checkpoint of its own, maybe at step 0 (a run paused there) */
    for (size_t i = n; rc == 0 && i-- > 0;) {
        rc = store_checkpoint_read(&w->store, row->id, list[i].step, blob, len, NULL, e);
        if (rc == 0) {
            *step = list[i].step;
            own = 1;
            break;
        }
        if (rc == -EPROTO) {
            util_log(LOG_ERROR, "job %s: the checkpoint at step %" PRId64 " is unusable (%s)",
                     row->id, list[i].step, e->message);
            rc = 0;
        }
    }
    free(list);
    if (rc == 0)
        rc = store_job_rewind(&w->store, row->id, *step, STORE_RUNNING, e);
    if (rc == 0 && !own && spec->resume_job[0]) {
        int64_t at = spec->resume_step;
        rc = store_checkpoint_read(&w->store, spec->resume_job, at < 0 ? -1 : at, blob, len,
                                   NULL, e);
        *kind = 1;
        if (rc == -ENOENT)
            an_fail(e, "resume_from", "job %s has no checkpoint%s to start from",
                    spec->resume_job, at < 0 ? "" : " at that step");
    }
    w->time_base = 0;
    if (rc == 0 && *step > 0) {
        store_series ser;
        memset(&ser, 0, sizeof ser);
        if (store_metrics_query(&w->store, row->id, *step, *step, 0, &ser, NULL) == 0 && ser.n)
            w->time_base = ser.time[ser.n - 1];
        store_series_free(&ser);
    }
    return rc;
}
