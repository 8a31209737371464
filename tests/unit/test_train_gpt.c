/* Tests of core/train_gpt through the train.h interface: a gpt job on text trains, its loss
 * falls, save/restore mid-run continues bit for bit (windows and random sampling, gradient
 * accumulation), the blob carries the vocabulary, and checkpoints of another model or with a
 * changed cursor are refused without changing the state. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/blob.h"
#include "core/config.h"
#include "core/config_gpt.h"
#include "core/infer.h"
#include "core/memest.h"
#include "core/train.h"
#include "core/text.h"
#include "core/train_gpt.h"

static const char *TEXT =
    "It is a truth universally acknowledged, that a single man in possession of a good "
    "fortune, must be in want of a wife. However little known the feelings or views of such a "
    "man may be on his first entering a neighbourhood, this truth is so well fixed.";

static void spec_ds(job_spec *s, const char *data_extra, int n_embd, int gas,
                    const char *ds_extra, int steps);
static void spec_full(job_spec *s, const char *model_extra, const char *data_extra, int n_embd,
                      int gas, const char *ds_extra, int steps);

static void spec_of(job_spec *s, const char *data_extra, int n_embd, int gas)
{
    spec_ds(s, data_extra, n_embd, gas, "", 24);
}

static void spec_ds(job_spec *s, const char *data_extra, int n_embd, int gas,
                    const char *ds_extra, int steps)
{
    spec_full(s, "", data_extra, n_embd, gas, ds_extra, steps);
}

static void spec_full(job_spec *s, const char *model_extra, const char *data_extra, int n_embd,
                      int gas, const char *ds_extra, int steps)
{
    char buf[4096];
    snprintf(buf, sizeof buf,
             "{\"seed\": 5, \"model\": {\"type\": \"gpt\", \"block_size\": 8, \"n_layer\": 2, "
             "\"n_head\": 2, \"n_embd\": %d, \"gelu\": \"erf\"%s}, \"data\": {\"type\": \"text\", "
             "\"text\": \"%s\"%s}, \"steps\": %d, \"validation\": {\"fraction\": 0.2, "
             "\"every_steps\": 6}, \"ds_config\": {\"train_batch_size\": %d, "
             "\"gradient_accumulation_steps\": %d, \"optimizer\": {\"type\": \"AdamW\", "
             "\"params\": {\"lr\": 0.01}}, \"scheduler\": {\"type\": \"WarmupDecayLR\", "
             "\"params\": {\"total_num_steps\": %d, \"warmup_num_steps\": 4}}%s}}",
             n_embd, model_extra, TEXT, data_extra, steps, 4 * gas, gas, steps, ds_extra);
    an_err e;
    int rc = job_spec_parse_text(buf, strlen(buf), s, &e);
    if (rc)
        fail_msg("spec: %s: %s", e.field, e.message);
}

static void run(train *t, int64_t upto)
{
    an_err e;
    train_report rep;
    while (train_steps_done(t) < upto)
        assert_int_equal(train_step(t, &rep, &e), 0);
}

static void resume_case_full(const char *model_extra, const char *extra, int gas,
                             const char *ds_extra);

static void resume_case(const char *extra, int gas)
{
    resume_case_full("", extra, gas, "");
}

static void resume_case_ds(const char *extra, int gas, const char *ds_extra)
{
    resume_case_full("", extra, gas, ds_extra);
}

static void resume_case_full(const char *model_extra, const char *extra, int gas,
                             const char *ds_extra)
{
    job_spec s;
    spec_full(&s, model_extra, extra, 16, gas, ds_extra, 24);
    an_err e;
    train *a, *b, *c;
    assert_int_equal(train_create(&a, &s, NULL, 0, &e), 0);
    assert_int_equal(train_create(&b, &s, NULL, 0, &e), 0);
    assert_int_equal(train_create(&c, &s, NULL, 0, &e), 0);
    run(a, 24);
    run(b, 11);
    void *blob;
    size_t len;
    assert_int_equal(train_save(b, &blob, &len, &e), 0);
    assert_int_equal(train_restore(c, blob, len, &e), 0);
    free(blob);
    assert_int_equal(train_steps_done(c), 11);
    run(c, 24);
    void *ba, *bc;
    size_t la, lc;
    assert_int_equal(train_save(a, &ba, &la, &e), 0);
    assert_int_equal(train_save(c, &bc, &lc, &e), 0);
    assert_int_equal(la, lc);
    assert_memory_equal(ba, bc, la);
    free(ba);
    free(bc);
    train_free(a);
    train_free(b);
    train_free(c);
    job_spec_free(&s);
}

/* A checkpoint saved into the buffer of the previous one (train_save_into, as a worker
 * does) has the bytes of a fresh save: the buffer is kept when it holds the state, replaced
 * when it is too small. */
static void test_save_into_reused_buffer(void **state)
{
    (void)state;
    job_spec s;
    spec_full(&s, "", "", 16, 1, "", 24);
    an_err e;
    train *t;
    assert_int_equal(train_create(&t, &s, NULL, 0, &e), 0);
    void *buf = malloc(16), *fresh;
    size_t cap = 16, len = 0, flen;
    run(t, 3);
    assert_int_equal(train_save_into(t, &buf, &cap, &len, &e), 0);
    assert_true(cap >= len && len > 16); /* replaced: 16 bytes held no state */
    assert_int_equal(train_save(t, &fresh, &flen, &e), 0);
    assert_int_equal(len, flen);
    assert_memory_equal(buf, fresh, len);
    free(fresh);
    void *kept = buf;
    run(t, 7);
    assert_int_equal(train_save_into(t, &buf, &cap, &len, &e), 0);
    assert_ptr_equal(buf, kept); /* the same buffer, written over */
    assert_int_equal(train_save(t, &fresh, &flen, &e), 0);
    assert_int_equal(len, flen);
    assert_memory_equal(buf, fresh, len);
    free(fresh);
    free(buf);
    train_free(t);
    job_spec_free(&s);
}

static void test_resume_windows(void **state)
{
    (void)state;
    resume_case("", 1);
    resume_case(", \"shuffle\": false", 2);
}

static void test_resume_random(void **state)
{
    (void)state;
    resume_case(", \"sampling\": \"random\"", 1);
    resume_case(", \"sampling\": \"random\"", 3);
}

static void test_loss_falls_and_blob(void **state)
{
    (void)state;
    job_spec s;
    spec_of(&s, "", 16, 1);
    an_err e;
    train *t;
    assert_int_equal(train_create(&t, &s, NULL, 0, &e), 0);
    assert_non_null(train_gpt(t));
    train_report rep;
    assert_int_equal(train_step(t, &rep, &e), 0);
    double first = rep.loss;
    run(t, 24);
    double vl, acc;
    assert_int_equal(train_validate(t, &vl, &acc), 0);
    assert_true(rep.loss < first || vl < first);
    void *blob;
    size_t len;
    assert_int_equal(train_save(t, &blob, &len, &e), 0);
    /* The checkpoint alone (with the spec) gives the model and its vocabulary. */
    infer *f;
    assert_int_equal(infer_create(&f, &s, blob, len, &e), 0);
    assert_non_null(f->g);
    assert_int_equal(f->vocab.size, gtrain_vocab_size(train_gpt(t)));
    assert_int_equal(f->step, 24);
    assert_memory_equal(f->g->params, gtrain_model(train_gpt(t))->params,
                        f->g->nparams * sizeof(float));
    infer_free(f);

    /* A wider model refuses the blob and keeps its state. */
    job_spec w;
    spec_of(&w, "", 32, 1);
    train *o;
    assert_int_equal(train_create(&o, &w, NULL, 0, &e), 0);
    assert_int_equal(train_restore(o, blob, len, &e), -EPROTO);
    assert_string_equal(e.field, "checkpoint");
    assert_int_equal(train_steps_done(o), 0);
    /* A flipped byte fails the checksum. */
    ((unsigned char *)blob)[len / 2] ^= 1;
    assert_int_equal(train_restore(t, blob, len, &e), -EPROTO);
    assert_int_equal(train_steps_done(t), 24);
    free(blob);
    train_free(o);
    train_free(t);
    job_spec_free(&w);
    job_spec_free(&s);
}

static void test_uploaded_text(void **state)
{
    (void)state;
    const char *spec = "{\"model\": {\"type\": \"gpt\", \"block_size\": 4, \"n_layer\": 1, "
                       "\"n_head\": 1, \"n_embd\": 8, \"vocab_size\": 5}, \"data\": {\"type\": "
                       "\"text\", \"dataset\": \"poems\"}, \"steps\": 3, \"ds_config\": "
                       "{\"train_batch_size\": 2, \"optimizer\": {\"type\": \"SGD\", \"params\": "
                       "{\"lr\": 0.1}}}}";
    job_spec s;
    an_err e;
    assert_int_equal(job_spec_parse_text(spec, strlen(spec), &s, &e), 0);
    train *t;
    /* 4 distinct characters where the spec says 5. */
    const char *up = "abcdabcdabcdabcd";
    assert_int_equal(train_create(&t, &s, up, strlen(up), &e), -EINVAL);
    assert_string_equal(e.field, "model.vocab_size");
    const char *ok = "abcdeabcdeabcde";
    assert_int_equal(train_create(&t, &s, ok, strlen(ok), &e), 0);
    run(t, 3);
    train_free(t);
    assert_int_equal(train_create(&t, &s, "ab", 2, &e), -EINVAL);
    assert_string_equal(e.field, "data.dataset");
    job_spec_free(&s);
}

/* DeepSpeed's DynamicLossScaler (DEEPSPEED.md, "Additions (second round)"), written out again
 * from the rules, driven by the overflow flags the run reports. */
typedef struct ref_scaler {
    double scale;
    int64_t iter, last_overflow;
    int hyst;
} ref_scaler;

static void ref_update(ref_scaler *r, int overflow, int delayed_shift, int64_t window)
{
    if (overflow) {
        if (delayed_shift == 1 || r->hyst == 1)
            r->scale = r->scale / 2 > 1 ? r->scale / 2 : 1;
        else
            r->hyst -= 1;
        r->last_overflow = r->iter;
    } else {
        int64_t stable = (r->iter - r->last_overflow) - 1;
        if (stable > 0 && stable % window == 0) {
            r->hyst = delayed_shift;
            r->scale *= 2;
        }
    }
    r->iter += 1;
}

static void test_fp16_rules(void **state)
{
    (void)state;
    const int steps = 40;
    job_spec s, f;
    spec_ds(&s, "", 16, 1, "", steps);
    spec_ds(&f, "", 16, 1, ", \"fp16\": {\"enabled\": true, \"initial_scale_power\": 24, "
            "\"loss_scale_window\": 4, \"hysteresis\": 2}", steps);
    assert_int_equal(f.fp16, 1);
    an_err e;
    train *ref, *t;
    assert_int_equal(train_create(&ref, &s, NULL, 0, &e), 0);
    assert_int_equal(train_create(&t, &f, NULL, 0, &e), 0);
    gpt *g = gtrain_model(train_gpt(t));
    float *before = malloc(g->nparams * sizeof *before);
    double ref_lr[64];
    train_report rep;
    for (int k = 0; k < steps; k++) {
        assert_int_equal(train_step(ref, &rep, &e), 0);
        ref_lr[k] = rep.lr[0];
    }
    ref_scaler r = {.scale = 16777216.0, .iter = 0, .last_overflow = -1, .hyst = 2};
    int good = 0, skipped = 0, doubled = 0;
    double prev_scale = r.scale;
    for (int k = 0; k < steps; k++) {
        memcpy(before, g->params, g->nparams * sizeof *before);
        assert_int_equal(train_step(t, &rep, &e), 0);
        /* the scale this step used is the rules' scale before the update */
        assert_true(rep.loss_scale == r.scale);
        if (r.scale > prev_scale)
            doubled++;
        prev_scale = r.scale;
        ref_update(&r, rep.skipped, 2, 4);
        skipped += rep.skipped;
        assert_int_equal(rep.skipped_steps, skipped);
        if (rep.skipped) {
            /* no optimizer step: the weights did not move */
            assert_memory_equal(before, g->params, g->nparams * sizeof *before);
            assert_true(isnan(rep.grad_norm));
        } else {
            /* the scheduler stepped only on good steps: the k-th good step uses the lr of
             * step k of the run without fp16 */
            assert_true(rep.lr[0] == ref_lr[good]);
            good++;
        }
    }
    assert_int_equal(train_steps_done(t), steps);
    assert_true(skipped >= 2);          /* 2^24 overflows at first */
    assert_true(good >= 10);            /* and then the scale has come down */
    assert_true(doubled >= 1);          /* 4 clean steps double it again */
    free(before);
    train_free(ref);
    train_free(t);
    job_spec_free(&s);
    job_spec_free(&f);
}

static const char *SOLILOQUY =
    "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer the "
    "slings and arrows of outrageous fortune, or to take arms against a sea of troubles.";

/* The skipped flags of `steps` steps of SGD with lr 0 (the weights never move, so every
 * step's gradients depend on its batch alone) at a fixed fp16 loss scale. */
static void fixed_scale_skips(double scale, int gas, int steps, int *skipped)
{
    char buf[2048];
    snprintf(buf, sizeof buf,
             "{\"seed\": 3, \"model\": {\"type\": \"gpt\", \"block_size\": 8, \"n_layer\": 1, "
             "\"n_head\": 1, \"n_embd\": 8}, \"data\": {\"type\": \"text\", \"text\": \"%s\"}, "
             "\"steps\": %d, \"ds_config\": {\"train_batch_size\": %d, "
             "\"train_micro_batch_size_per_gpu\": 2, \"optimizer\": {\"type\": \"SGD\", "
             "\"params\": {\"lr\": 0}}, \"fp16\": {\"enabled\": true, \"loss_scale\": %.17g}}}",
             SOLILOQUY, steps, 2 * gas, scale);
    job_spec s;
    an_err e;
    if (job_spec_parse_text(buf, strlen(buf), &s, &e))
        fail_msg("spec: %s: %s", e.field, e.message);
    train *t;
    assert_int_equal(train_create(&t, &s, NULL, 0, &e), 0);
    train_report rep;
    for (int k = 0; k < steps; k++) {
        assert_int_equal(train_step(t, &rep, &e), 0);
        skipped[k] = rep.skipped;
    }
    train_free(t);
    job_spec_free(&s);
}

/* fp16 with gradient accumulation: as in DeepSpeed, where each micro-batch's gradient is
 * held in half precision, a step is skipped when any one of its micro-batches overflows,
 * even when the sum of the micro-batches would not. A run of single micro-batches at half
 * the scale has the same gradients (the loss is scaled by scale / accumulation steps), so
 * its flags are those of each micro-batch. */
static void test_fp16_micro_batch_overflow(void **state)
{
    (void)state;
    enum { N = 16 };
    int alone = 0, total_single = 0;
    for (double scale = 98304; scale <= 1572864; scale *= 2) {
        int one[2 * N], acc[N];
        fixed_scale_skips(scale / 2, 1, 2 * N, one);
        fixed_scale_skips(scale, 2, N, acc);
        for (int k = 0; k < N; k++) {
            int micro = one[2 * k] || one[2 * k + 1];
            total_single += micro;
            if (micro && !acc[k])
                fail_msg("scale %g, step %d: micro-batch %d overflows, the step was applied",
                         scale, k + 1, one[2 * k] ? 0 : 1);
            /* a step skipped with no micro-batch overflowing: their sum did */
            alone += micro && one[2 * k] != one[2 * k + 1];
        }
    }
    print_message("steps with exactly one overflowing micro-batch: %d (of %d overflowing)\n",
                  alone, total_single);
    /* the case is exercised, not just all-or-nothing overflows (at scale 393216, step 13 has
     * one micro-batch overflowing and a sum that does not: the rounded sum alone was not
     * enough there) */
    assert_true(alone >= 3);
}

static void test_fp16_bf16_resume(void **state)
{
    (void)state;
    resume_case_ds("", 1, ", \"fp16\": {\"enabled\": true, \"initial_scale_power\": 20, "
                   "\"loss_scale_window\": 3}");
    resume_case_ds(", \"sampling\": \"random\"", 2, ", \"bf16\": {\"enabled\": true}");
}

/* bf16 products against float32 on the same job: the curves agree within a tolerance (every
 * step's training loss within 0.01, every validation loss within 1 %), and they are not the
 * same curve (the products were rounded). */
static void test_bf16_against_fp32(void **state)
{
    (void)state;
    const int steps = 60;
    job_spec s, b;
    spec_ds(&s, "", 32, 1, "", steps);
    spec_ds(&b, "", 32, 1, ", \"bf16\": {\"enabled\": true}", steps);
    assert_int_equal(b.bf16, 1);
    an_err e;
    train *a, *c;
    assert_int_equal(train_create(&a, &s, NULL, 0, &e), 0);
    assert_int_equal(train_create(&c, &b, NULL, 0, &e), 0);
    train_report ra, rc;
    int differ = 0;
    double maxd = 0;
    for (int k = 0; k < steps; k++) {
        assert_int_equal(train_step(a, &ra, &e), 0);
        assert_int_equal(train_step(c, &rc, &e), 0);
        double d = fabs(ra.loss - rc.loss);
        maxd = d > maxd ? d : maxd;
        differ += ra.loss != rc.loss;
        if (ra.has_val) {
            assert_true(rc.has_val);
            assert_true(fabs(ra.val_loss - rc.val_loss) <= 0.01 * ra.val_loss);
        }
    }
    print_message("bf16 vs fp32: largest training-loss difference %.4f over %d steps\n", maxd,
                  steps);
    assert_true(maxd <= 0.01);
    assert_true(differ > 0);
    train_free(a);
    train_free(c);
    job_spec_free(&s);
    job_spec_free(&b);
}

static void test_numerics_spec(void **state)
{
    (void)state;
    job_spec s;
    an_err e;
    const char *both = "{\"model\": {\"type\": \"gpt\", \"block_size\": 4, \"n_layer\": 1, "
                       "\"n_head\": 1, \"n_embd\": 8}, \"data\": {\"type\": \"text\", \"text\": "
                       "\"abcdefabcdef\"}, \"ds_config\": {\"train_batch_size\": 2, "
                       "\"optimizer\": {\"type\": \"SGD\", \"params\": {\"lr\": 0.1}}, "
                       "\"fp16\": {\"enabled\": true}, \"bf16\": {\"enabled\": true}}}";
    assert_int_equal(job_spec_parse_text(both, strlen(both), &s, &e), -EINVAL);
    assert_string_equal(e.field, "ds_config.bf16");
    const char *badw = "{\"model\": {\"type\": \"gpt\", \"block_size\": 4, \"n_layer\": 1, "
                       "\"n_head\": 1, \"n_embd\": 8}, \"data\": {\"type\": \"text\", \"text\": "
                       "\"abcdefabcdef\"}, \"ds_config\": {\"train_batch_size\": 2, "
                       "\"optimizer\": {\"type\": \"SGD\", \"params\": {\"lr\": 0.1}}, "
                       "\"fp16\": {\"enabled\": true, \"hysteresis\": 0}}}";
    assert_int_equal(job_spec_parse_text(badw, strlen(badw), &s, &e), -EINVAL);
    assert_string_equal(e.field, "ds_config.fp16.hysteresis");
}

static int numerics_spec(const char *opt, const char *blocks, job_spec *s, an_err *e)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "{\"model\": {\"type\": \"gpt\", \"block_size\": 4, \"n_layer\": "
             "1, \"n_head\": 1, \"n_embd\": 8}, \"data\": {\"type\": \"text\", \"text\": "
             "\"abcdefabcdef\"}, \"ds_config\": {\"train_batch_size\": 2, \"optimizer\": "
             "{\"type\": \"%s\", \"params\": {\"lr\": 0.01}}, %s}}", opt, blocks);
    return job_spec_parse_text(buf, strlen(buf), s, e);
}

/* The warnings of a parsed spec, one string. */
static const char *warnings_of(const job_spec *s, char *buf, size_t size)
{
    buf[0] = 0;
    const cJSON *w;
    cJSON_ArrayForEach(w, s->warnings)
        snprintf(buf + strlen(buf), size - strlen(buf), "%s|", w->valuestring);
    return buf;
}

/* DeepSpeed's old name of the bf16 block, Lamb with a fixed fp16 scale (DeepSpeed refuses
 * it), and misspelt keys in the blocks (warned with the key meant, not as merely unused). */
static void test_numerics_spec_deepspeed_rules(void **state)
{
    (void)state;
    job_spec s;
    an_err e;
    char w[1024];
    assert_int_equal(numerics_spec("SGD", "\"bfloat16\": {\"enabled\": true}", &s, &e), 0);
    assert_int_equal(s.bf16, 1);
    assert_null(strstr(warnings_of(&s, w, sizeof w), "bfloat16"));
    job_spec_free(&s);
    /* with both names, bf16 is read and bfloat16 is not */
    assert_int_equal(numerics_spec("SGD", "\"bf16\": {\"enabled\": false}, \"bfloat16\": "
                                   "{\"enabled\": true}", &s, &e), 0);
    assert_int_equal(s.bf16, 0);
    assert_non_null(strstr(warnings_of(&s, w, sizeof w), "ds_config.bfloat16 is not used"));
    job_spec_free(&s);
    assert_int_equal(numerics_spec("SGD", "\"fp16\": {\"enabled\": true}, \"bfloat16\": "
                                   "{\"enabled\": true}", &s, &e), -EINVAL);
    assert_string_equal(e.field, "ds_config.bfloat16");

    assert_int_equal(numerics_spec("Lamb", "\"fp16\": {\"enabled\": true, \"loss_scale\": "
                                   "128}", &s, &e), -EINVAL);
    assert_string_equal(e.field, "ds_config.fp16.loss_scale");
    assert_non_null(strstr(e.message, "dynamic loss scaling"));
    assert_int_equal(numerics_spec("Lamb", "\"fp16\": {\"enabled\": true}", &s, &e), 0);
    assert_int_equal(s.fp16, 1);
    job_spec_free(&s);
    assert_int_equal(numerics_spec("SGD", "\"fp16\": {\"enabled\": true, \"loss_scale\": "
                                   "128}", &s, &e), 0);
    job_spec_free(&s);

    assert_int_equal(numerics_spec("SGD", "\"fp16\": {\"enabled\": true, "
                                   "\"loss_scale_windows\": 10, \"auto_cast\": false, "
                                   "\"zzz\": 1}, \"bf16\": {\"enable\": true}", &s, &e), 0);
    assert_int_equal(s.fp16, 1);
    warnings_of(&s, w, sizeof w);
    assert_non_null(strstr(w, "ds_config.fp16.loss_scale_windows is not a DeepSpeed key: did "
                           "you mean ds_config.fp16.loss_scale_window?"));
    assert_non_null(strstr(w, "ds_config.fp16.auto_cast is not used by this daemon"));
    assert_non_null(strstr(w, "ds_config.fp16.zzz is not a DeepSpeed key (ignored)"));
    assert_non_null(strstr(w, "ds_config.bf16.enable is not a DeepSpeed key: did you mean "
                           "ds_config.bf16.enabled?"));
    job_spec_free(&s);
}

/* A batch of more windows than the text has is warned about (the windows repeat in a
 * step), as a batch larger than an mlp's rows is; random sampling draws windows anywhere.
 * So is a text of one distinct character. */
static void test_batch_beyond_windows_warned(void **state)
{
    (void)state;
    char buf[1024], w[1024];
    job_spec s;
    an_err e;
    for (int k = 0; k < 3; k++) {
        snprintf(buf, sizeof buf, "{\"model\": {\"type\": \"gpt\", \"block_size\": 4, "
                 "\"n_layer\": 1, \"n_head\": 1, \"n_embd\": 8}, \"data\": {\"type\": "
                 "\"text\", \"text\": \"abcdefghijklmnopqrst\"%s}, \"ds_config\": "
                 "{\"train_batch_size\": %d, \"optimizer\": {\"type\": \"SGD\", "
                 "\"params\": {\"lr\": 0.1}}}}", k == 2 ? ", \"sampling\": \"random\"" : "",
                 k == 0 ? 4 : 5);
        assert_int_equal(job_spec_parse_text(buf, strlen(buf), &s, &e), 0);
        const char *hit = strstr(warnings_of(&s, w, sizeof w), "is larger than the 4 training "
                                 "windows: windows repeat within a step");
        if (k == 1)
            assert_non_null(hit); /* 20 tokens: 4 windows of 4 (and the next token) */
        else
            assert_null(hit);
        assert_null(strstr(w, "single distinct character"));
        job_spec_free(&s);
    }
    /* a text of one character: nothing to learn, and said so */
    snprintf(buf, sizeof buf, "{\"model\": {\"type\": \"gpt\", \"block_size\": 4, \"n_layer\": "
             "1, \"n_head\": 1, \"n_embd\": 8}, \"data\": {\"type\": \"text\", \"text\": "
             "\"aaaaaaaaaaaa\"}, \"ds_config\": {\"train_batch_size\": 2, \"optimizer\": "
             "{\"type\": \"SGD\", \"params\": {\"lr\": 0.1}}}}");
    assert_int_equal(job_spec_parse_text(buf, strlen(buf), &s, &e), 0);
    assert_non_null(strstr(warnings_of(&s, w, sizeof w), "data: the text has a single distinct "
                                                          "character"));
    job_spec_free(&s);
}

/* A micro-batch whose widest activation has more values than an int counts is refused
 * naming the micro-batch; one window fewer is accepted. */
static void test_pass_size_limit(void **state)
{
    (void)state;
    char text[1400], buf[2048];
    for (size_t i = 0; i + 1 < sizeof text; i++)
        text[i] = (char)('a' + (i * 7) % 26);
    text[sizeof text - 1] = 0;
    job_spec s;
    an_err e;
    for (int micro = 255; micro <= 256; micro++) {
        snprintf(buf, sizeof buf, "{\"model\": {\"type\": \"gpt\", \"block_size\": 1024, "
                 "\"n_layer\": 1, \"n_head\": 1, \"n_embd\": 2048}, \"data\": {\"type\": "
                 "\"text\", \"text\": \"%s\"}, \"steps\": 1, \"ds_config\": "
                 "{\"train_batch_size\": %d, \"optimizer\": {\"type\": \"SGD\", \"params\": "
                 "{\"lr\": 0.1}}}}", text, micro);
        int rc = job_spec_parse_text(buf, strlen(buf), &s, &e);
        if (micro == 255) {
            assert_int_equal(rc, 0);
            job_spec_free(&s);
        } else {
            assert_int_equal(rc, -EINVAL);
            assert_string_equal(e.field, "ds_config.train_micro_batch_size_per_gpu");
            assert_non_null(strstr(e.message, "2147483648 values"));
        }
    }
    /* far beyond: the product of the sizes is past 2^63, and still refused */
    size_t tl = 70000;
    char *big = malloc(tl + 512), *t = malloc(tl + 1);
    assert_non_null(big);
    assert_non_null(t);
    for (size_t i = 0; i < tl; i++)
        t[i] = (char)('a' + i % 26);
    t[tl] = 0;
    snprintf(big, tl + 512, "{\"model\": {\"type\": \"gpt\", \"block_size\": 65536, "
             "\"n_layer\": 1, \"n_head\": 512, \"n_embd\": 512}, \"data\": {\"type\": "
             "\"text\", \"text\": \"%s\"}, \"steps\": 1, \"ds_config\": "
             "{\"train_batch_size\": 8388608, \"optimizer\": {\"type\": \"SGD\", "
             "\"params\": {\"lr\": 0.1}}}}", t);
    assert_int_equal(job_spec_parse_text(big, strlen(big), &s, &e), -EINVAL);
    assert_string_equal(e.field, "ds_config.train_micro_batch_size_per_gpu");
    free(big);
    free(t);
}

/* ds_config.activation_checkpointing: the same weights bit for bit as without it, and a
 * smaller activation estimate. */
static void test_activation_checkpointing(void **state)
{
    (void)state;
    job_spec s, c;
    spec_ds(&s, "", 16, 2, "", 12);
    spec_ds(&c, "", 16, 2, ", \"activation_checkpointing\": {\"partition_activations\": false}",
            12);
    assert_int_equal(c.act_ckpt, 2); /* one per layer */
    assert_int_equal(cJSON_GetArraySize(c.warnings), 1); /* partition_activations: unused */
    an_err e;
    train *a, *b;
    assert_int_equal(train_create(&a, &s, NULL, 0, &e), 0);
    assert_int_equal(train_create(&b, &c, NULL, 0, &e), 0);
    assert_int_equal(gtrain_model(train_gpt(b))->checkpoint, 2);
    run(a, 12);
    run(b, 12);
    gpt *ga = gtrain_model(train_gpt(a)), *gb = gtrain_model(train_gpt(b));
    assert_memory_equal(ga->params, gb->params, ga->nparams * sizeof(float));
    mem_estimate ma, mb;
    job_spec_memory(&s, -1, &ma);
    job_spec_memory(&c, -1, &mb);
    assert_true(mb.activations < ma.activations);
    assert_int_equal(mb.activations, gb->arena_floats * sizeof(float));
    train_free(a);
    train_free(b);
    job_spec_free(&s);
    job_spec_free(&c);
}

/* ---- dropout ---- */
#define DROPOUT ", \"dropout\": 0.2"

/* Resumed from a mid-run checkpoint with dropout on: the same blob as the uninterrupted run
 * (the masks are drawn from (seed, step, micro-batch), nothing to checkpoint); also with
 * activation checkpointing and with fp16's skipped steps. */
static void test_dropout_resume(void **state)
{
    (void)state;
    resume_case_full(DROPOUT, "", 2, "");
    resume_case_full(DROPOUT, ", \"sampling\": \"random\"", 1,
                     ", \"activation_checkpointing\": {}");
    resume_case_full(DROPOUT, "", 1, ", \"fp16\": {\"enabled\": true, \"initial_scale_power\": 20, "
                     "\"loss_scale_window\": 3}");
}

/* With dropout, activation checkpointing's weights are those without it bit for bit, and
 * the memory estimate is the arena allocated (masks included); dropout changes the run,
 * dropout 0 written out is the run without the key. */
static void test_dropout_checkpointing(void **state)
{
    (void)state;
    job_spec s, c, z, n;
    spec_full(&s, DROPOUT, "", 16, 2, "", 12);
    spec_full(&c, DROPOUT, "", 16, 2, ", \"activation_checkpointing\": {}", 12);
    spec_full(&z, ", \"dropout\": 0", "", 16, 2, "", 12);
    spec_ds(&n, "", 16, 2, "", 12);
    an_err e;
    train *a, *b, *y, *x;
    assert_int_equal(train_create(&a, &s, NULL, 0, &e), 0);
    assert_int_equal(train_create(&b, &c, NULL, 0, &e), 0);
    assert_int_equal(train_create(&y, &z, NULL, 0, &e), 0);
    assert_int_equal(train_create(&x, &n, NULL, 0, &e), 0);
    run(a, 12);
    run(b, 12);
    run(y, 12);
    run(x, 12);
    gpt *ga = gtrain_model(train_gpt(a)), *gb = gtrain_model(train_gpt(b));
    gpt *gy = gtrain_model(train_gpt(y)), *gx = gtrain_model(train_gpt(x));
    assert_true(ga->s.dropout == 0.2f && gb->checkpoint == gb->s.n_layer); /* one a layer */
    assert_memory_equal(ga->params, gb->params, ga->nparams * sizeof(float));
    assert_memory_equal(gy->params, gx->params, gy->nparams * sizeof(float));
    assert_true(memcmp(ga->params, gy->params, ga->nparams * sizeof(float)) != 0);
    mem_estimate ma, mb, my;
    job_spec_memory(&s, -1, &ma);
    job_spec_memory(&c, -1, &mb);
    job_spec_memory(&z, -1, &my);
    assert_int_equal(ma.activations, ga->arena_floats * sizeof(float));
    assert_int_equal(mb.activations, gb->arena_floats * sizeof(float));
    assert_true(ma.activations > my.activations && mb.activations < ma.activations);
    train_free(a);
    train_free(b);
    train_free(y);
    train_free(x);
    job_spec_free(&s);
    job_spec_free(&c);
    job_spec_free(&z);
    job_spec_free(&n);
}

/* Validation runs without dropout: the validation loss a step reports is that of the same
 * weights in a model that has no dropout; the training loss on a batch is not. */
static void test_dropout_validation(void **state)
{
    (void)state;
    job_spec s, z;
    spec_full(&s, ", \"dropout\": 0.5", "", 16, 1, "", 24);
    spec_ds(&z, "", 16, 1, "", 24);
    an_err e;
    train *a, *b;
    assert_int_equal(train_create(&a, &s, NULL, 0, &e), 0);
    assert_int_equal(train_create(&b, &z, NULL, 0, &e), 0);
    train_report rep;
    do
        assert_int_equal(train_step(a, &rep, &e), 0);
    while (!rep.has_val);
    assert_int_equal(rep.step, 6);
    gpt *ga = gtrain_model(train_gpt(a)), *gb = gtrain_model(train_gpt(b));
    memcpy(gb->params, ga->params, ga->nparams * sizeof(float));
    double vb, va;
    assert_int_equal(gtrain_validate(train_gpt(b), &vb), 0);
    assert_int_equal(gtrain_validate(train_gpt(a), &va), 0);
    assert_true(rep.val_loss == vb && va == vb);
    /* A training forward of the dropout model on the validation text's first window differs
     * from the evaluation forward: the masks are real. */
    int32_t idx[8], tg[8];
    for (int i = 0; i < 8; i++) {
        idx[i] = (i * 3) % ga->s.vocab_size;
        tg[i] = (i * 7 + 1) % ga->s.vocab_size;
    }
    double lt, le;
    assert_int_equal(gpt_forward_train(ga, idx, tg, 1, 8, &lt, 0, 0), 0);
    assert_int_equal(gpt_forward(ga, idx, tg, 1, 8, &le), 0);
    assert_true(lt != le);
    train_free(a);
    train_free(b);
    job_spec_free(&s);
    job_spec_free(&z);
}

/* validation.batches: a validation reads that many micro-batches of windows, window
 * ⌊i·kval/n⌋ for the i-th of n, and reports their mean loss (checked against forwards of those
 * windows made here); batches covering the split give the full validation; the spec keeps the
 * key; other models are refused it. */
static void test_validation_batches(void **state)
{
    (void)state;
    char buf[2048];
    const char *fmt =
        "{\"seed\": 5, \"model\": {\"type\": \"gpt\", \"block_size\": 4, \"n_layer\": 1, "
        "\"n_head\": 2, \"n_embd\": 8}, \"data\": {\"type\": \"text\", \"text\": \"%s\"}, "
        "\"steps\": 4, \"validation\": {\"fraction\": 0.3, \"every_steps\": 2%s}, "
        "\"ds_config\": {\"train_batch_size\": 3, \"optimizer\": {\"type\": \"SGD\", "
        "\"params\": {\"lr\": 0.1}}}}";
    job_spec s[3];
    const char *extra[3] = {"", ", \"batches\": 2", ", \"batches\": 1000"};
    train *t[3];
    an_err e;
    for (int k = 0; k < 3; k++) {
        snprintf(buf, sizeof buf, fmt, TEXT, extra[k]);
        if (job_spec_parse_text(buf, strlen(buf), &s[k], &e))
            fail_msg("spec: %s: %s", e.field, e.message);
        assert_int_equal(train_create(&t[k], &s[k], NULL, 0, &e), 0);
    }
    const cJSON *v = cJSON_GetObjectItem(s[1].normalized, "validation");
    assert_int_equal(cJSON_GetObjectItem(v, "batches")->valueint, 2);
    assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(s[0].normalized, "validation"),
                                    "batches"));
    double full, two, all;
    assert_int_equal(gtrain_validate(train_gpt(t[0]), &full), 0);
    assert_int_equal(gtrain_validate(train_gpt(t[1]), &two), 0);
    assert_int_equal(gtrain_validate(train_gpt(t[2]), &all), 0);
    assert_true(all == full); /* 1000 batches cover the split: every window */
    assert_true(two != full);
    /* The six windows of two batches of 3, by hand. */
    text_vocab voc;
    int32_t *tok;
    size_t ntok;
    assert_int_equal(text_tokenize(TEXT, strlen(TEXT), TEXT_CHAR, 5, "data", &voc, &tok, &ntok,
                                   &e), 0);
    size_t ntrain = text_train_tokens(ntok, 0.3), kval = text_windows(ntok - ntrain, 4);
    assert_true(kval > 6);
    gpt *g = gtrain_model(train_gpt(t[1]));
    double sum = 0;
    for (size_t i = 0; i < 6; i++) {
        int32_t idx[4], tg[4];
        text_window(tok + ntrain, i * kval / 6, 4, idx, tg);
        double l;
        assert_int_equal(gpt_forward(g, idx, tg, 1, 4, &l), 0);
        sum += l;
    }
    assert_true(fabs(sum / 6 - two) < 1e-6);
    /* A step's report carries the sampled validation. */
    train_report rep;
    assert_int_equal(train_step(t[1], &rep, &e), 0);
    assert_int_equal(train_step(t[1], &rep, &e), 0);
    assert_true(rep.has_val && isfinite(rep.val_loss));
    double again;
    assert_int_equal(gtrain_validate(train_gpt(t[1]), &again), 0);
    assert_true(again == rep.val_loss);
    free(tok);
    text_vocab_free(&voc);
    for (int k = 0; k < 3; k++) {
        train_free(t[k]);
        job_spec_free(&s[k]);
    }
}

/* model.dropout out of [0, 1) or not a number: refused naming the field; a valid one is kept
 * in the spec and shown in the job's model. */
static void test_dropout_spec(void **state)
{
    (void)state;
    static const char *const bad[] = {"1", "1.5", "-0.1", "\"0.1\"", "true"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        char buf[512];
        snprintf(buf, sizeof buf, "{\"model\": {\"type\": \"gpt\", \"block_size\": 4, "
                 "\"n_layer\": 1, \"n_head\": 1, \"n_embd\": 8, \"dropout\": %s}, \"data\": "
                 "{\"type\": \"text\", \"text\": \"abcdefabcdef\"}, \"ds_config\": "
                 "{\"train_batch_size\": 2, \"optimizer\": {\"type\": \"SGD\", \"params\": "
                 "{\"lr\": 0.1}}}}", bad[k]);
        job_spec s;
        an_err e;
        assert_int_equal(job_spec_parse_text(buf, strlen(buf), &s, &e), -EINVAL);
        assert_string_equal(e.field, "model.dropout");
        if (k < 3)
            assert_non_null(strstr(e.message, "[0, 1)"));
    }
    job_spec s;
    spec_full(&s, ", \"dropout\": 0.1", "", 16, 1, "", 4);
    assert_true(s.model.dropout == 0.1);
    cJSON *m = cfg_gpt_json(&s.model);
    assert_non_null(m);
    assert_true(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(m, "dropout")) == 0.1);
    cJSON_Delete(m);
    job_spec_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_save_into_reused_buffer),
        cmocka_unit_test(test_resume_windows),
        cmocka_unit_test(test_resume_random),
        cmocka_unit_test(test_loss_falls_and_blob),
        cmocka_unit_test(test_uploaded_text),
        cmocka_unit_test(test_fp16_rules),
        cmocka_unit_test(test_fp16_micro_batch_overflow),
        cmocka_unit_test(test_fp16_bf16_resume),
        cmocka_unit_test(test_bf16_against_fp32),
        cmocka_unit_test(test_numerics_spec),
        cmocka_unit_test(test_numerics_spec_deepspeed_rules),
        cmocka_unit_test(test_pass_size_limit),
        cmocka_unit_test(test_batch_beyond_windows_warned),
        cmocka_unit_test(test_activation_checkpointing),
        cmocka_unit_test(test_dropout_resume),
        cmocka_unit_test(test_dropout_checkpointing),
        cmocka_unit_test(test_dropout_validation),
        cmocka_unit_test(test_validation_batches),
        cmocka_unit_test(test_dropout_spec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
