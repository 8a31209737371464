/* store/retain.h — metrics.full_resolution_steps: a job that keeps every step's row for its
 * newest steps only (store/retain.c; docs/STORAGE.md, "Keeping only the newest steps").
 *
 * Reads of such a job: store_series.full_from and store_metrics_cursor.full_from hold S > 0
 * once the job's rows before step S were dropped (0 for a job that kept every row). The
 * answers then hold, for steps before S, the summary pyramid's points instead of every row:
 * for each bucket of 2048 steps its first row, last row and the rows of its smallest and
 * largest loss (each once, in step order, the values as stored), and every stored row from S
 * on. A downsampled store_metrics_query is answered from the pyramid as for any job. */
#ifndef ANNEALD_STORE_RETAIN_H
#define ANNEALD_STORE_RETAIN_H

#include <stdint.h>

#include "store/store.h"

/* One slice of dropping job `id`'s oldest metric blocks, in its own short transaction: at
 * most max_blocks whole blocks that end before both (last stored step - keep + 1) and the
 * job's latest checkpoint step, rounded down to a bucket of the pyramid (2048 steps). The
 * pyramid keeps what they summarised, and a resume's rewind to the latest checkpoint keeps
 * it exact. *dropped: blocks dropped (== max_blocks: call again for more). The pages go to
 * the free list (the housekeeping thread's incremental vacuum gives them back). -ENOENT
 * unknown job; keep < 1 is an error naming full_resolution_steps. */
int store_metrics_retain(store_t *s, const char *id, int64_t keep, int max_blocks,
                         int *dropped, an_err *err);

#endif
