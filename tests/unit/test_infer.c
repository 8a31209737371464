/* test_infer — the tensors-only model of predictions: it predicts what the training state
 * predicts, standardises raw inputs with the statistics the checkpoint carries, refuses raw
 * inputs when a standardising job's checkpoint has none, and rejects malformed statistics. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/blob.h"
#include "core/config.h"
#include "core/infer.h"
#include "core/train.h"

#define IRIS                                                                                     \
    "{\"seed\": 2, \"steps\": 30, \"model\": {\"type\": \"mlp\", \"inputs\": 4, \"hidden\": [8], " \
    "\"outputs\": 3}, \"loss\": \"cross_entropy\", \"data\": {\"type\": \"builtin\", \"name\": " \
    "\"iris\"}, \"ds_config\": {\"train_batch_size\": 16, \"optimizer\": {\"type\": \"Adam\", "  \
    "\"params\": {\"lr\": 0.01}}}}"
#define SYNTH                                                                                    \
    "{\"seed\": 2, \"steps\": 30, \"model\": {\"type\": \"mlp\", \"inputs\": 4, \"hidden\": [8], " \
    "\"outputs\": 3}, \"loss\": \"cross_entropy\", \"data\": {\"type\": \"synthetic\", \"task\": " \
    "\"classification\", \"generator\": \"blobs\", \"samples\": 300, \"features\": 4, "          \
    "\"classes\": 3}, \"ds_config\": {\"train_batch_size\": 16, \"optimizer\": {\"type\": "      \
    "\"Adam\", \"params\": {\"lr\": 0.01}}}}"

static void trained(const char *text, job_spec *spec, train **t, void **blob, size_t *len)
{
    an_err e;
    if (job_spec_parse_text(text, strlen(text), spec, &e))
        fail_msg("%s: %s", e.field, e.message);
    assert_int_equal(train_create(t, spec, NULL, 0, &e), 0);
    train_report rep;
    while (train_steps_done(*t) < train_total_steps(*t))
        assert_int_equal(train_step(*t, &rep, &e), 0);
    assert_int_equal(train_save(*t, blob, len, &e), 0);
}

static void test_raw_inputs_are_standardised_as_in_training(void **state)
{
    (void)state;
    job_spec spec;
    train *t;
    void *blob;
    size_t len;
    trained(IRIS, &spec, &t, &blob, &len);
    infer *f;
    an_err e;
    assert_int_equal(infer_create(&f, &spec, blob, len, &e), 0);
    assert_int_equal(f->nstats, 4);
    const double *mean, *sd;
    assert_int_equal(train_input_stats(t, &mean, &sd), 4);
    assert_memory_equal(f->mean, mean, 4 * sizeof *mean);
    assert_memory_equal(f->std, sd, 4 * sizeof *sd);
    /* one raw iris row: standardised by infer_prepare, then predicted; the same row
     * standardised by hand through the training state gives the same outputs */
    double raw[4] = {5.1, 3.5, 1.4, 0.2};
    float x[4], by_hand[4], a[3], b[3];
    assert_int_equal(infer_prepare(f, raw, 1, x, &e), 0);
    for (int k = 0; k < 4; k++)
        by_hand[k] = (float)((raw[k] - mean[k]) / sd[k]);
    assert_memory_equal(x, by_hand, sizeof x);
    assert_int_equal(infer_predict(f, x, 1, a, &e), 0);
    assert_int_equal(train_predict(t, by_hand, 1, b, &e), 0);
    assert_memory_equal(a, b, sizeof a);
    infer_free(f);
    free(blob);
    train_free(t);
    job_spec_free(&spec);
}

static void test_a_checkpoint_without_statistics(void **state)
{
    (void)state;
    /* a synthetic job does not standardise: no statistics, raw inputs pass unchanged */
    job_spec synth, iris;
    train *t;
    void *blob;
    size_t len;
    trained(SYNTH, &synth, &t, &blob, &len);
    infer *f;
    an_err e;
    assert_int_equal(infer_create(&f, &synth, blob, len, &e), 0);
    assert_int_equal(f->nstats, 0);
    double raw[4] = {1.5, -2, 0.25, 8};
    float x[4];
    assert_int_equal(infer_prepare(f, raw, 1, x, &e), 0);
    for (int k = 0; k < 4; k++)
        assert_true(x[k] == (float)raw[k]);
    infer_free(f);
    /* the same model for a job that standardises (iris), from a checkpoint that carries no
     * statistics (as ones written before they were stored): raw inputs are refused */
    an_err pe;
    assert_int_equal(job_spec_parse_text(IRIS, strlen(IRIS), &iris, &pe), 0);
    assert_int_equal(infer_create(&f, &iris, blob, len, &e), 0);
    assert_int_equal(infer_prepare(f, raw, 1, x, &e), -ENOENT);
    assert_string_equal(e.field, "normalized");
    infer_free(f);
    free(blob);
    train_free(t);
    job_spec_free(&synth);
    job_spec_free(&iris);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raw_inputs_are_standardised_as_in_training),
        cmocka_unit_test(test_a_checkpoint_without_statistics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
