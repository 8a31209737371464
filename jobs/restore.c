/* restore — the state a job's run starts from: its newest usable checkpoint. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

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
