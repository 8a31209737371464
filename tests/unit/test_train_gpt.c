/* Tests of core/train_gpt through the train.h interface: a gpt job on text trains, its loss
 * falls, save/restore mid-run continues bit for bit (windows and random sampling, gradient
 * accumulation), the blob carries the vocabulary, and checkpoints of another model or with a
 * changed cursor are refused without changing the state. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/blob.h"
#include "core/config.h"
#include "core/infer.h"
#include "core/train.h"
#include "core/train_gpt.h"

static const char *TEXT =
    "It is a truth universally acknowledged, that a single man in possession of a good "
    "fortune, must be in want of a wife. However little known the feelings or views of such a "
    "man may be on his first entering a neighbourhood, this truth is so well fixed.";

static void spec_of(job_spec *s, const char *data_extra, int n_embd, int gas)
{
    char buf[4096];
    snprintf(buf, sizeof buf,
             "{\"seed\": 5, \"model\": {\"type\": \"gpt\", \"block_size\": 8, \"n_layer\": 2, "
             "\"n_head\": 2, \"n_embd\": %d, \"gelu\": \"erf\"}, \"data\": {\"type\": \"text\", "
             "\"text\": \"%s\"%s}, \"steps\": 24, \"validation\": {\"fraction\": 0.2, "
             "\"every_steps\": 6}, \"ds_config\": {\"train_batch_size\": %d, "
             "\"gradient_accumulation_steps\": %d, \"optimizer\": {\"type\": \"AdamW\", "
             "\"params\": {\"lr\": 0.01}}, \"scheduler\": {\"type\": \"WarmupDecayLR\", "
             "\"params\": {\"total_num_steps\": 24, \"warmup_num_steps\": 4}}}}",
             n_embd, TEXT, data_extra, 4 * gas, gas);
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

static void resume_case(const char *extra, int gas)
{
    job_spec s;
    spec_of(&s, extra, 16, gas);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_windows),
        cmocka_unit_test(test_resume_random),
        cmocka_unit_test(test_loss_falls_and_blob),
        cmocka_unit_test(test_uploaded_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
