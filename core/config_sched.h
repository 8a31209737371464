/* config_sched — the job spec's scheduling keys and the PATCH of a job's labels.
 *
 * Top-level keys: "priority" (higher runs first, ties oldest first), "preemptible" (may be
 * paused at a checkpoint for a job of higher priority), "max_runtime_s" (total training time
 * after which the job is checkpointed and fails with error max_runtime), "stall_timeout_s" and
 * "max_restarts" (a job that makes no step for that long is restarted from its latest
 * checkpoint, at most max_restarts times, then fails), "tags" and "notes" (labels and free
 * text for lists and search). Pure: parsing, validation, and the edit a PATCH makes to a
 * stored spec. */
#ifndef ANNEALD_CONFIG_SCHED_H
#define ANNEALD_CONFIG_SCHED_H

#include <cjson/cJSON.h>

#include "core/err.h"

#define SCHED_PRIORITY_MAX 1000000     /* |priority| at most this */
#define SCHED_MAX_TAGS 32
#define SCHED_TAG_LEN 64               /* bytes of a tag, NUL included */
#define SCHED_NOTES_LEN 4096           /* bytes of the notes, NUL included */
#define SCHED_STALL_DEFAULT_S 600.0
#define SCHED_SECONDS_MAX 1e9          /* max_runtime_s, stall_timeout_s at most this */
#define SCHED_RESTARTS_DEFAULT 3
#define SCHED_RESTARTS_MAX 1000

typedef struct cfg_sched {
    int priority;
    int preemptible;               /* 1 = may be preempted */
    double max_runtime_s;          /* 0 = no limit */
    double stall_timeout_s;        /* > 0 */
    int max_restarts;
    int ntags;
    char tags[SCHED_MAX_TAGS][SCHED_TAG_LEN];
    char notes[SCHED_NOTES_LEN];
} cfg_sched;

/* Reads the scheduling keys of spec `j` into *out (defaults for absent keys). Errors name the
 * key ("tags[2]" for one tag). */
int cfg_sched_parse(const cJSON *j, cfg_sched *out, an_err *err);

/* Adds the keys, defaults filled in, to the normalized spec `o`. 0 on success, -ENOMEM. */
int cfg_sched_json(const cfg_sched *s, cJSON *o);

/* Checks a PATCH body: an object with only "priority", "tags", "notes" and "name", each of
 * the type and range a spec allows (name: 1..127 bytes without control characters). The
 * error names the first bad field. An empty object is an error too (nothing to change). */
int cfg_sched_patch_check(const cJSON *patch, an_err *err);

/* Applies a checked PATCH to a normalized spec: only the keys the patch has are replaced. 0,
 * or -ENOMEM (spec unchanged then is not guaranteed: callers apply it to a copy). */
int cfg_sched_patch_apply(cJSON *spec, const cJSON *patch);

/* 1 when the tag list of `s` holds `tag` exactly. */
int cfg_sched_has_tag(const cfg_sched *s, const char *tag);

#endif
