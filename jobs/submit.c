/* submit — checking and storing a new job (see submit.h). */
#include "jobs/submit.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assets.h"
#include "core/config.h"
#include "core/config_data.h"
#include "core/config_gpt.h"
#include "core/config_model.h"
#include "core/data_idx.h"
#include "core/jsonnum.h"
#include "core/memest.h"
#include "jobs/admit.h"
#include "jobs/budget.h"
#include "jobs/fashion.h"
#include "jobs/mpirun.h"
#include "util/log.h"

/* Rows of a CSV text (lines after the header that are not empty). */
static int64_t csv_rows(const char *s, size_t len)
{
    int64_t lines = 0;
    int nonempty = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\n') {
            if (nonempty)
                lines++;
            nonempty = 0;
        } else if (s[i] != '\r') {
            nonempty = 1;
        }
    }
    if (nonempty)
        lines++;
    return lines > 0 ? lines - 1 : 0;
}

/* Rows of the uploaded data set a spec names; -1 when it has none or it is unknown. */
static int64_t dataset_rows(store_t *st, const job_spec *s)
{
    if (s->data.type != DATA_DATASET)
        return -1;
    store_dataset ds;
    memset(&ds, 0, sizeof ds);
    const char *ref = s->data.dataset_id[0] ? s->data.dataset_id : s->data.name;
    int64_t rows = store_dataset_get(st, ref, &ds, NULL) == 0 ? ds.rows : -1;
    store_dataset_free(&ds);
    return rows;
}

/* Tokens of a text job's corpus: inline and builtin text counted from the spec, an uploaded
 * corpus's as its upload counted them (rows are its code points; bytes for the byte
 * tokenizer); -1 for other data, or a corpus not found. */
static int64_t text_tokens(store_t *st, const job_spec *s)
{
    if (s->data.type != DATA_TEXT)
        return -1;
    int64_t n = cfg_text_tokens(&s->data);
    if (n >= 0)
        return n;
    store_dataset ds;
    memset(&ds, 0, sizeof ds);
    if (store_dataset_get(st, s->data.name, &ds, NULL) == 0)
        n = s->data.tokenizer == TEXT_BYTE ? ds.bytes : ds.rows;
    store_dataset_free(&ds);
    return n;
}

/* Training samples the job will see, for the stored total_steps of an epoch-based run (the
 * worker's train state has the exact figure and reports it with progress). `text`: a text
 * job's split, whose training windows are its samples. */
static int64_t samples_of(store_t *st, const job_spec *s, const text_split *text)
{
    int64_t n = 0;
    switch (s->data.type) {
    case DATA_TEXT: /* validation takes tokens, not windows: no row split below */
        return text->ktrain > 0 ? (int64_t)text->ktrain : 1;
    case DATA_SYNTHETIC:
        n = s->data.samples;
        break;
    case DATA_INLINE:
        n = cJSON_GetArraySize(s->data.x);
        break;
    case DATA_BUILTIN: {
        if (data_is_fashion(&s->data)) {
            n = FASHION_ROWS;
            break;
        }
        char name[160];
        snprintf(name, sizeof name, "data/%s.csv", s->data.name);
        size_t len = 0;
        const unsigned char *a = assets_get(name, &len);
        n = a ? csv_rows((const char *)a, len) : 0;
        break;
    }
    case DATA_DATASET:
        n = dataset_rows(st, s);
        break;
    }
    if (s->val_fraction > 0)
        n -= (int64_t)((double)n * s->val_fraction);
    return n > 0 ? n : 1;
}

/* Sets a one-error outcome. Returns its kind. */
static int fail(submit_outcome *out, int kind, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(submit_outcome *out, int kind, const char *field, const char *fmt, ...)
{
    va_list ap;
    an_err_clear(&out->errs[0]);
    snprintf(out->errs[0].field, sizeof out->errs[0].field, "%s", field ? field : "");
    va_start(ap, fmt);
    vsnprintf(out->errs[0].message, sizeof out->errs[0].message, fmt, ap);
    va_end(ap);
    out->nerr = 1;
    return out->kind = kind;
}

/* Refuses (naming `model`) a job estimated to need more memory than --max-job-memory allows
 * (0 = no cap), or more than the whole --max-memory budget with its checkpoint copies (it
 * could never be admitted). Returns 1 then. */
static int over_memory_cap(store_t *st, const daemon_opts *o, const job_spec *spec,
                           submit_outcome *out)
{
    uint64_t cap = o->max_job_memory;
    if (cap == 0 && o->max_memory == 0)
        return 0;
    if (cap == 0)
        cap = UINT64_MAX;
    mem_estimate m;
    admit_estimate(o, st, spec, NULL, &m);
    uint64_t budget = o->max_memory, charge = budget_job_charge(&m);
    if (m.total <= cap && (budget == 0 || charge <= budget))
        return 0;
    char est[400], bt[32], ct[32];
    if (m.total <= cap)
        fail(out, SUBMIT_UNPROCESSABLE, "model",
             "this job needs %s with up to %d checkpoint copies in flight, %s, more than the "
             "daemon's whole %s memory budget (--max-memory): it could never run; make the "
             "model, the batch or the data smaller",
             mem_bytes_text(charge, ct, sizeof ct), BUDGET_CKPT_COPIES,
             mem_estimate_text(&m, est, sizeof est), mem_bytes_text(budget, bt, sizeof bt));
    else
        fail(out, SUBMIT_UNPROCESSABLE, "model",
             "this job needs %s, over the %s cap (--max-job-memory); make the model, the batch "
             "or the data smaller", mem_estimate_text(&m, est, sizeof est),
             mem_bytes_text(cap, ct, sizeof ct));
    return 1;
}

/* The uploaded data set a spec names must exist and have the columns the spec uses. */
static int dataset_fails(store_t *st, const job_spec *spec, char *id_out, submit_outcome *out)
{
    const char *ref = spec->data.dataset_id[0] ? spec->data.dataset_id : spec->data.name;
    store_dataset ds;
    memset(&ds, 0, sizeof ds);
    if (store_dataset_get(st, ref, &ds, NULL) != 0) {
        fail(out, SUBMIT_UNPROCESSABLE, spec->data.dataset_id[0] ? "data.id" : "data.name",
             "no uploaded data set '%s' (POST /v1/datasets?name=… first)", ref);
        return 1;
    }
    if (ds.columns_json && strcmp(ds.columns_json, "[]") == 0) { /* as the reverse: a 422 */
        fail(out, SUBMIT_UNPROCESSABLE, spec->data.dataset_id[0] ? "data.id" : "data.name",
             "data set '%s' (%s) is a text corpus, not a CSV table: it trains a gpt job "
             "(\"data\": {\"type\": \"text\", \"dataset\": \"%s\"}); upload a table as "
             "text/csv", ds.name ? ds.name : "?", ds.id, ds.name ? ds.name : ds.id);
        store_dataset_free(&ds);
        return 1;
    }
    snprintf(id_out, STORE_ID_LEN, "%s", ds.id);
    cJSON *cols = ds.columns_json ? cJSON_Parse(ds.columns_json) : NULL;
    int nbad = 0;
    char what[200];
    snprintf(what, sizeof what, "data set %s (%s)", ds.name ? ds.name : "?", ds.id);
    int bad = cols && cfg_data_check_columns(&spec->data, what, cols, out->errs, 8, &nbad) != 0;
    cJSON_Delete(cols);
    store_dataset_free(&ds);
    if (bad) {
        out->nerr = nbad > 0 ? nbad : 1;
        out->kind = SUBMIT_INVALID;
    }
    return bad;
}

/* A resume_from step without a checkpoint: the steps that have one, in the message. */
static int step_fails(store_t *st, const job_spec *spec, submit_outcome *out)
{
    store_checkpoint_info *list = NULL;
    size_t n = 0;
    if (store_checkpoint_list(st, spec->resume_job, &list, &n, NULL) != 0)
        return 0; /* the worker finds out when it starts */
    int found = 0;
    for (size_t i = 0; i < n; i++)
        found |= list[i].step == spec->resume_step;
    free(list);
    if (found)
        return 0;
    char have[240];
    if (store_checkpoint_steps_text(st, spec->resume_job, have, sizeof have) < 0)
        return 0;
    fail(out, SUBMIT_UNPROCESSABLE, "resume_from.step",
         "job %s has no checkpoint at step %lld (%s)", spec->resume_job,
         (long long)spec->resume_step, have);
    return 1;
}

/* The job to resume from must exist, have a checkpoint (at resume_from.step, when given) and
 * be of a model whose weights this one takes; *json gets the spec's resume_from object as
 * stored. What passes here is what the worker checks as it starts, so the job does not fail
 * then (unless retention removes the checkpoint meanwhile). */
static int resume_fails(store_t *st, const job_spec *spec, char **json, submit_outcome *out)
{
    store_job src;
    memset(&src, 0, sizeof src);
    if (store_job_get(st, spec->resume_job, &src, NULL) != 0) {
        fail(out, SUBMIT_UNPROCESSABLE, "resume_from.job", "no job with id '%s'",
             spec->resume_job);
        return 1;
    }
    int64_t last = src.last_checkpoint_step;
    job_spec from;
    an_err e;
    int parsed = src.spec_json &&
                 job_spec_parse_stored(src.spec_json, strlen(src.spec_json), &from, &e) == 0;
    store_job_free(&src);
    char what[400];
    int bad = 0;
    if (last < 0) {
        fail(out, SUBMIT_UNPROCESSABLE, "resume_from.job",
             "job %s has no checkpoint to start from", spec->resume_job);
        bad = 1;
    } else if (parsed && !cfg_model_same_shape(&from.model, &spec->model, what, sizeof what)) {
        fail(out, SUBMIT_UNPROCESSABLE, "model",
             "resume_from: the checkpoints of job %s are of another model (%s): its weights "
             "cannot start this one", spec->resume_job, what);
        bad = 1;
    } else if (spec->resume_step >= 0) {
        bad = step_fails(st, spec, out);
    }
    if (parsed)
        job_spec_free(&from);
    if (bad)
        return 1;
    cJSON *rf = cJSON_GetObjectItemCaseSensitive(spec->normalized, "resume_from");
    *json = rf ? json_print_exact(rf) : NULL;
    return 0;
}

/* The worker parses the stored text again: whatever would fail then is refused now, so a job
 * accepted never fails on its own spec. */
static int stored_spec_fails(const char *text, submit_outcome *out)
{
    job_spec again;
    an_err e;
    an_err_clear(&e);
    int rc = job_spec_parse_text(text, strlen(text), &again, &e);
    if (rc == 0) {
        job_spec_free(&again);
        return 0;
    }
    if (rc == -ENOMEM)
        fail(out, SUBMIT_NOMEM, NULL, "out of memory checking the job spec");
    else
        fail(out, SUBMIT_INVALID, e.field, "the spec as stored would not read back: %s",
             e.message);
    return 1;
}

/* The vocabulary of an uploaded corpus is known from its upload (datasets.vocab): it goes into
 * the spec as data.vocabulary, as inline and builtin text have theirs, so the parser checks
 * model.vocab_size against it now and the job object shows it. The byte tokenizer's is always
 * 256 tokens. A spec that gives its own vocabulary keeps it (checked against the text when
 * the job starts), and so does a corpus uploaded before schema 8, which has none stored. */
static void corpus_vocabulary(store_t *st, cJSON *body)
{
    cJSON *d = cJSON_GetObjectItemCaseSensitive(body, "data");
    if (!cJSON_IsObject(d))
        return;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(d, "type");
    const cJSON *ds = cJSON_GetObjectItemCaseSensitive(d, "dataset");
    const cJSON *tk = cJSON_GetObjectItemCaseSensitive(d, "tokenizer");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") != 0 ||
        !cJSON_IsString(ds) || cJSON_GetObjectItemCaseSensitive(d, "text") ||
        cJSON_GetObjectItemCaseSensitive(d, "vocabulary"))
        return;
    cJSON *v = NULL;
    if (cJSON_IsString(tk) && strcmp(tk->valuestring, "byte") == 0) {
        if ((v = cJSON_CreateObject()) && (!cJSON_AddStringToObject(v, "tokenizer", "byte") ||
                                           !cJSON_AddNumberToObject(v, "size", 256))) {
            cJSON_Delete(v);
            v = NULL;
        }
    } else if (!tk || (cJSON_IsString(tk) && strcmp(tk->valuestring, "char") == 0)) {
        store_dataset x;
        memset(&x, 0, sizeof x);
        if (store_dataset_get(st, ds->valuestring, &x, NULL) == 0 && x.vocab_json)
            v = cJSON_Parse(x.vocab_json);
        store_dataset_free(&x);
    }
    if (v && !cJSON_AddItemToObject(d, "vocabulary", v))
        cJSON_Delete(v);
}

int job_submit(store_t *st, const daemon_opts *opts, cJSON *body, const submit_link *link,
               submit_outcome *out)
{
    memset(out, 0, sizeof *out);
    corpus_vocabulary(st, body);
    job_spec spec;
    int prc = job_spec_parse_all(body, &spec, out->errs, SUBMIT_MAX_ERRORS, &out->nerr);
    cJSON_Delete(body);
    if (prc != 0) {
        if (out->nerr == 0) /* a failure that recorded nothing (out of memory) */
            return fail(out, prc == -ENOMEM ? SUBMIT_NOMEM : SUBMIT_INVALID, NULL,
                        "the job spec could not be checked (error %d)", prc);
        if (out->nerr > SUBMIT_MAX_ERRORS)
            out->nerr = SUBMIT_MAX_ERRORS;
        return out->kind = SUBMIT_INVALID;
    }
    /* The data set is stored by its id, not the name the spec gives: a job resumed after the
     * name was deleted and uploaded again must not train on the new data. */
    const char *dataset_ref = NULL;
    char dataset_id[STORE_ID_LEN] = "";
    char *resume_json = NULL, *spec_text = NULL, *warn_text = NULL;
    an_err ferr;
    if (data_is_fashion(&spec.data) && fashion_check(&ferr)) {
        fail(out, SUBMIT_INVALID, ferr.field, "%s", ferr.message);
        goto done;
    }
    if (spec.data.type == DATA_TEXT && !spec.data.text && !spec.data.text_builtin) {
        /* An uploaded corpus (api/datasets.c stores text with no columns). */
        dataset_ref = spec.data.name;
        store_dataset ds;
        memset(&ds, 0, sizeof ds);
        int found = store_dataset_get(st, dataset_ref, &ds, NULL) == 0;
        int is_text = found && ds.columns_json && strcmp(ds.columns_json, "[]") == 0;
        if (is_text) {
            snprintf(dataset_id, sizeof dataset_id, "%s", ds.id);
            dataset_ref = dataset_id;
        }
        store_dataset_free(&ds);
        if (!is_text) {
            fail(out, SUBMIT_UNPROCESSABLE, "data.dataset", found
                 ? "data set '%s' is a CSV table: upload the corpus as text/plain"
                 : "no uploaded data set '%s' (POST /v1/datasets?name=… with Content-Type: "
                   "text/plain first)", dataset_ref);
            goto done;
        }
    }
    /* Each part of the text's validation split must hold a window, as the job checks when
     * it starts. The parse checks inline and builtin text; an uploaded corpus is counted
     * here, from the store. */
    text_split split;
    memset(&split, 0, sizeof split);
    int64_t ntok = text_tokens(st, &spec);
    if (ntok >= 0 && cfg_text_split(&spec, ntok, &split, &ferr)) {
        fail(out, SUBMIT_INVALID, ferr.field, "%s", ferr.message);
        goto done;
    }
    if (spec.data.type == DATA_DATASET) {
        if (dataset_fails(st, &spec, dataset_id, out))
            goto done;
        dataset_ref = dataset_id;
    }
    if (over_memory_cap(st, opts, &spec, out))
        goto done;
    char mpimsg[512];
    if (mpirun_job_check(opts, spec.world_size, mpimsg, sizeof mpimsg) != 0) {
        fail(out, SUBMIT_UNPROCESSABLE, "world_size", "%s", mpimsg);
        goto done;
    }
    if (spec.resume_job[0] && resume_fails(st, &spec, &resume_json, out))
        goto done;
    spec_text = json_print_exact(spec.normalized);
    if (!spec_text) {
        fail(out, SUBMIT_NOMEM, NULL, "out of memory printing the job spec");
        goto done;
    }
    if (stored_spec_fails(spec_text, out))
        goto done;
    int64_t train = spec.steps > 0 ? 0 : samples_of(st, &spec, &split);
    if (job_spec_data_samples(&spec) < 0 && job_spec_check_run_length(&spec, train, &ferr)) {
        fail(out, SUBMIT_INVALID, ferr.field, "%s", ferr.message);
        goto done;
    }
    warn_text = cJSON_PrintUnformatted(spec.warnings);
    int64_t total = spec.steps > 0 ? spec.steps : job_spec_total_steps(&spec, train);
    store_job_new in = {
        .name = spec.name,
        .spec_json = spec_text,
        .warnings_json = warn_text,
        .total_steps = total,
        .dataset_ref = dataset_ref,
        .resume_from_json = resume_json,
        .sweep_id = link ? link->sweep_id : NULL,
        .trial = link ? link->trial : 0,
    };
    int rc = store_job_create(st, &in, out->id, &out->errs[0]);
    if (rc) {
        out->nerr = 1;
        out->store_rc = rc;
        out->kind = rc == -ENOMEM ? SUBMIT_NOMEM : SUBMIT_STORE;
    } else {
        util_log(LOG_INFO, "job %s submitted: \"%s\", %lld steps", out->id, spec.name,
                 (long long)total);
    }
done:
    cJSON_free(spec_text);
    cJSON_free(warn_text);
    cJSON_free(resume_json);
    job_spec_free(&spec);
    return out->kind;
}

void job_submit_undo(store_t *st, const char *id)
{
    an_err ignored;
    store_job_set_state(st, id, STORE_MASK(STORE_QUEUED), STORE_CANCELLED, NULL, NULL,
                        &ignored);
    store_job_delete(st, id, &ignored);
}
