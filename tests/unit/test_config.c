/* test_config — the job-spec parser: the tutorial job, every rejection with its JSON path,
 * batch-size arithmetic, "auto", warnings, the normalized spec, and truncated input. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/unit/testutil.h"

#include "core/config.h"
#include "core/config_model.h"
#include "core/sched.h"

/* The example of JOBSPEC.md, as it stands. */
static const char *const tutorial =
    "{\n"
    "  \"name\": \"warmup-demo\",\n"
    "  \"seed\": 42,\n"
    "  \"model\": {\"type\": \"linear\", \"inputs\": 10, \"outputs\": 1},\n"
    "  \"loss\": \"mean\",\n"
    "  \"data\": {\"type\": \"synthetic\", \"task\": \"regression\", \"samples\": 4096, "
    "\"features\": 10},\n"
    "  \"steps\": 1000,\n"
    "  \"checkpoint\": {\"every_steps\": 100, \"keep_last\": 3},\n"
    "  \"ds_config\": {\n"
    "    \"train_batch_size\": 8,\n"
    "    \"optimizer\": {\"type\": \"Adam\", \"params\": {\"lr\": 0.01}},\n"
    "    \"scheduler\": {\"type\": \"WarmupLR\",\n"
    "                  \"params\": {\"warmup_min_lr\": 0.001, \"warmup_max_lr\": 0.01, "
    "\"warmup_num_steps\": 100}}\n"
    "  }\n"
    "}\n";

/* The tutorial with `patch` applied, as text (caller frees). */
static char *patched(const char *patch)
{
    cJSON *j = tu_patched(tutorial, patch);
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return text;
}

static int parse_patched(const char *patch, job_spec *s, an_err *e)
{
    char *text = patched(patch);
    int rc = job_spec_parse_text(text, strlen(text), s, e);
    free(text);
    return rc;
}

static const cJSON *at(const cJSON *o, const char *a, const char *b)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, a);
    return b ? cJSON_GetObjectItemCaseSensitive(x, b) : x;
}

static void test_tutorial(void **state)
{
    (void)state;
    job_spec s;
    an_err e;
    int rc = job_spec_parse_text(tutorial, strlen(tutorial), &s, &e);
    if (rc)
        fail_msg("tutorial rejected: %s: %s", e.field, e.message);
    assert_string_equal(s.name, "warmup-demo");
    assert_int_equal(s.seed, 42);
    assert_int_equal(s.model.type, MODEL_LINEAR);
    assert_int_equal(s.model.inputs, 10);
    assert_int_equal(s.model.outputs, 1);
    assert_null(s.model.init);
    assert_int_equal(s.loss, LOSS_MEAN);
    assert_int_equal(s.data.type, DATA_SYNTHETIC);
    assert_int_equal(s.data.task, TASK_REGRESSION);
    assert_int_equal(s.data.samples, 4096);
    assert_int_equal(s.data.features, 10);
    assert_int_equal(s.data.outputs, 1);
    assert_int_equal(s.data.shuffle, 1);
    assert_int_equal(s.steps, 1000);
    assert_int_equal(s.epochs, 0);
    assert_int_equal(s.ckpt_every_steps, 100);
    assert_int_equal(s.ckpt_keep_last, 3);
    assert_true(s.ckpt_every_seconds == 60.0);
    assert_true(s.val_fraction == 0.0);
    assert_int_equal(s.threads, 1);
    assert_int_equal(s.ngroups, 0);
    assert_string_equal(s.resume_job, "");
    assert_int_equal(s.train_batch_size, 8);
    assert_int_equal(s.micro_batch, 8);
    assert_int_equal(s.grad_accum, 1);
    assert_true(s.gradient_clipping == 1.0);
    assert_int_equal(s.optim.type, OPTIM_ADAM);
    assert_true(s.optim.lr == 0.01);
    assert_non_null(s.scheduler);
    assert_string_equal(cJSON_GetObjectItem(s.scheduler, "type")->valuestring, "WarmupLR");
    assert_true(cJSON_IsArray(s.warnings));
    assert_int_equal(cJSON_GetArraySize(s.warnings), 0);
    assert_int_equal(job_spec_total_steps(&s, 4096), 1000);
    assert_int_equal(job_spec_data_samples(&s), 4096);

    sched_env env;
    job_spec_sched_env(&s, 4096, &env);
    assert_int_equal(env.ngroups, 1);
    assert_true(env.base_lr[0] == 0.01);
    assert_int_equal(env.total_steps, 1000);
    assert_int_equal(env.train_batch_size, 8);
    assert_int_equal(env.has_betas, 1);

    /* The normalized spec: every default filled in. */
    const cJSON *n = s.normalized;
    assert_non_null(n);
    assert_string_equal(at(n, "name", NULL)->valuestring, "warmup-demo");
    assert_int_equal(at(n, "threads", NULL)->valueint, 1);
    assert_true(at(n, "validation", "fraction")->valuedouble == 0.0);
    assert_int_equal(at(n, "checkpoint", "every_seconds")->valueint, 60);
    assert_int_equal(at(n, "checkpoint", "every_steps")->valueint, 100);
    assert_true(cJSON_IsTrue(at(n, "data", "shuffle")));
    assert_int_equal(at(n, "data", "outputs")->valueint, 1);
    assert_non_null(at(n, "data", "noise"));
    assert_int_equal(at(n, "ds_config", "train_micro_batch_size_per_gpu")->valueint, 8);
    assert_int_equal(at(n, "ds_config", "gradient_accumulation_steps")->valueint, 1);
    assert_true(at(n, "ds_config", "gradient_clipping")->valuedouble == 1.0);
    assert_non_null(at(n, "ds_config", "scheduler"));
    assert_true(cJSON_IsArray(at(n, "param_groups", NULL)));
    assert_null(at(n, "epochs", NULL));

    /* The normalized spec is itself a spec that normalizes to itself. */
    char *text = cJSON_PrintUnformatted(n);
    job_spec s2;
    rc = job_spec_parse_text(text, strlen(text), &s2, &e);
    if (rc)
        fail_msg("normalized spec rejected: %s: %s", e.field, e.message);
    assert_true(cJSON_Compare(s.normalized, s2.normalized, 1));
    free(text);
    job_spec_free(&s2);
    job_spec_free(&s);
    assert_null(s.normalized);
}

/* One rejected spec: a merge patch of the tutorial (or raw text), the field, a message part. */
typedef struct bad_case {
    const char *patch;
    const char *field;
    const char *msg;
} bad_case;

#define NODATA "\"task\":null,\"samples\":null,\"features\":null,"
#define INLINE(x) "{\"data\":{" NODATA "\"type\":\"inline\"," x "}}"
#define IRIS(x) "{\"model\":{\"inputs\":4,\"outputs\":3},\"data\":{" NODATA \
                "\"type\":\"builtin\",\"name\":\"iris\"" x "}}"

static const bad_case bad[] = {
    /* top level */
    {"{\"stpes\": 10}", "stpes", "unknown key 'stpes' (did you mean 'steps'?)"},
    {"{\"learning_rate\": 0.1}", "learning_rate", "unknown key 'learning_rate'"},
    {"{\"model\": null}", "model", "model is required"},
    {"{\"data\": null}", "data", "data is required"},
    {"{\"ds_config\": null}", "ds_config", "ds_config is required"},
    {"{\"name\": \"\"}", "name", "name must be 1 to 127 bytes long, got 0"},
    {"{\"name\": 5}", "name", "must be a string, got 5"},
    {"{\"seed\": -1}", "seed", "integer from 0"},
    {"{\"seed\": 1.5}", "seed", "got 1.5"},
    {"{\"steps\": 0}", "steps", "integer from 1"},
    {"{\"steps\": 2.5}", "steps", "got 2.5"},
    {"{\"steps\": \"100\"}", "steps", "got \"100\""},
    {"{\"epochs\": 3}", "epochs", "not both"},
    {"{\"steps\": null, \"epochs\": 0}", "epochs", "integer from 1"},
    {"{\"threads\": 0}", "threads", "integer from 1 to 64"},
    {"{\"threads\": 1000}", "threads", "got 1000"},
    {"{\"validation\": {\"fraction\": 1}}", "validation.fraction", "[0, 1)"},
    {"{\"validation\": {\"fraction\": 0.0001}}", "validation.fraction", "no validation rows"},
    {"{\"validation\": {\"every\": 5}}", "validation.every", "unknown key 'every'"},
    {"{\"validation\": 0.1}", "validation", "must be an object"},
    {"{\"validation\": {\"fraction\": 0.1, \"batches\": 0}}", "validation.batches", "integer from 1"},
    {"{\"validation\": {\"fraction\": 0.1, \"batches\": \"20\"}}", "validation.batches", "got \"20\""},
    {"{\"validation\": {\"fraction\": 0.1, \"batches\": 2.5}}", "validation.batches", "got 2.5"},
    {"{\"validation\": {\"fraction\": 0.1, \"batches\": 20}}", "validation.batches", "applies to model gpt"},
    {"{\"checkpoint\": {\"keep_last\": 0}}", "checkpoint.keep_last", "integer from 1 to 1000"},
    {"{\"checkpoint\": {\"every_second\": 5}}", "checkpoint.every_second",
     "did you mean 'every_seconds'"},
    {"{\"checkpoint\": {\"every_seconds\": -1}}", "checkpoint.every_seconds", "got -1"},
    {"{\"resume_from\": {\"step\": 3}}", "resume_from.job", "required"},
    {"{\"resume_from\": {\"job\": \"j_1\", \"step\": -2}}", "resume_from.step", "got -2"},
    {"{\"param_groups\": [{\"lr\": 0.1}]}", "param_groups[0].match", "required"},
    {"{\"param_groups\": [{\"match\": \"*.bias\"}]}", "param_groups[0].match", "list of 1 to 64"},
    {"{\"param_groups\": [{\"match\": [\"*.bias\", 3]}]}", "param_groups[0].match[1]", "glob"},
    {"{\"param_groups\": [{\"match\": [\"*.bias\"], \"lr\": -1}]}", "param_groups[0].lr",
     "(0, 3.40282e+38]"},
    {"{\"param_groups\": [{\"match\": [\"*.bias\"], \"lr\": 1e39}]}", "param_groups[0].lr",
     "3.40282e+38], got 1e+39"},
    {"{\"param_groups\": [{\"match\": [\"*.bias\"], \"wd\": 0}]}", "param_groups[0].wd",
     "unknown key 'wd'"},
    {"{\"param_groups\": {\"match\": []}}", "param_groups", "list of at most 16"},
    /* metrics */
    {"{\"metrics\": []}", "metrics", "must be an object"},
    {"{\"metrics\": {\"max_bytes\": 47}}", "metrics.max_bytes", "got 47"},
    {"{\"metrics\": {\"max_bytes\": true}}", "metrics.max_bytes", "true"},
    {"{\"metrics\": {\"max_byte\": 100000000}}", "metrics.max_byte", "max_byte"},
    {"{\"metrics\": {\"full_resolution_steps\": 0}}", "metrics.full_resolution_steps",
     "got 0"},
    {"{\"metrics\": {\"full_resolution_steps\": -5}}", "metrics.full_resolution_steps",
     "got -5"},
    {"{\"metrics\": {\"full_resolution_steps\": 2.5}}", "metrics.full_resolution_steps",
     "2.5"},
    {"{\"metrics\": {\"full_resolution_steps\": \"1000\"}}",
     "metrics.full_resolution_steps", "\"1000\""},
    {"{\"metrics\": {\"full_resolution_steps\": 1e300}}", "metrics.full_resolution_steps",
     "integer from 1 to 1125899906842624"},
    {"{\"metrics\": {\"full_resolution_step\": 1000}}", "metrics.full_resolution_step",
     "did you mean 'full_resolution_steps'"},
    /* model */
    {"{\"model\": {\"type\": \"conv\"}}", "model.type", "one of linear, mlp, gpt, got \"conv\""},
    {"{\"model\": {\"inputs\": 0}}", "model.inputs", "integer from 1"},
    {"{\"model\": {\"inputs\": \"10\"}}", "model.inputs", "got \"10\""},
    {"{\"model\": {\"outputs\": null}}", "model.outputs", "required"},
    {"{\"model\": {\"hidden\": [4]}}", "model.hidden", "unknown key 'hidden' in model"},
    {"{\"model\": {\"type\": \"mlp\", \"hidden\": [16, 0]}}", "model.hidden[1]", "got 0"},
    {"{\"model\": {\"type\": \"mlp\", \"hidden\": [16, true]}}", "model.hidden[1]", "got true"},
    {"{\"model\": {\"type\": \"mlp\", \"hidden\": []}}", "model.hidden", "list of 1 to 16"},
    {"{\"model\": {\"type\": \"mlp\"}}", "model.hidden", "required"},
    {"{\"model\": {\"type\": \"mlp\", \"hidden\": [8], \"activation\": \"swish\"}}",
     "model.activation", "one of relu, gelu, tanh, sigmoid, silu"},
    {"{\"model\": {\"type\": \"mlp\", \"hidden\": [8], \"dropout\": 1}}", "model.dropout",
     "[0, 1)"},
    {"{\"model\": {\"type\": \"mlp\", \"hidden\": [1048576, 1048576]}}", "model",
     "1099525259265 parameters"},
    {"{\"model\": {\"init\": {\"fc.weight\": [[1, 2, 3]]}}}", "model.init.fc.weight",
     "shape [1, 3], expected [1, 10]"},
    {"{\"model\": {\"init\": {\"fc.bias\": [[0.5]]}}}", "model.init.fc.bias",
     "shape [1, 1], expected [1]"},
    {"{\"model\": {\"init\": {\"fc.bias\": [\"x\"]}}}", "model.init.fc.bias[0]",
     "finite number, got \"x\""},
    {"{\"model\": {\"init\": {\"fc.wieght\": [[0]]}}}", "model.init.fc.wieght",
     "did you mean 'fc.weight'"},
    {"{\"model\": {\"type\": \"mlp\", \"hidden\": [3], \"init\": {\"fc.weight\": []}}}",
     "model.init.fc.weight", "did you mean 'fc1.weight'"},
    {"{\"model\": {\"inputs\": 2, \"outputs\": 2, \"init\": {\"fc.weight\": [[1, 2], [3]]}}}",
     "model.init.fc.weight[1]", "row of 2 numbers"},
    {"{\"model\": {\"init\": {\"fc.bias\": 0.5}}}", "model.init.fc.bias", "with shape [1], got 0.5"},
    /* loss */
    {"{\"loss\": \"hinge\"}", "loss", "one of mse, cross_entropy, bce, mean"},
    {"{\"loss\": \"cross_entropy\"}", "model.outputs", "cross_entropy needs model.outputs >= 2"},
    {"{\"loss\": \"cross_entropy\", \"model\": {\"outputs\": 3}}", "loss", "class-index"},
    {"{\"loss\": \"bce\"}", "loss", "bce needs targets in [0, 1]"},
    {"{\"loss\": \"bce\", \"data\": {\"task\": \"classification\", \"classes\": 3}}", "loss",
     "bce needs 2 classes"},
    /* synthetic data */
    {"{\"data\": {\"features\": 5}}", "data.features", "model.inputs is 10"},
    {"{\"data\": {\"outputs\": 2}}", "data.outputs", "model.outputs is 1"},
    {"{\"data\": {\"samples\": 0}}", "data.samples", "integer from 1"},
    {"{\"data\": {\"samples\": 1e12}}", "data.samples", "got 1000000000000"},
    {"{\"data\": {\"noise\": -0.5}}", "data.noise", "got -0.5"},
    {"{\"data\": {\"type\": \"csv\"}}", "data.type", "one of synthetic, inline, dataset, builtin"},
    {"{\"data\": {\"task\": \"classification\", \"generator\": \"moons\"}}", "data.generator",
     "one of blobs, spirals, xor"},
    {"{\"data\": {\"task\": \"classification\", \"outputs\": 1}}", "data.outputs",
     "unknown key 'outputs'"},
    {"{\"loss\": \"cross_entropy\", \"model\": {\"outputs\": 3}, \"data\": {\"task\": "
     "\"classification\", \"classes\": 4}}",
     "model.outputs", "4 classes"},
    {"{\"loss\": \"mse\", \"model\": {\"outputs\": 3}, \"data\": {\"task\": "
     "\"classification\"}}",
     "loss", "mse needs real-valued targets"},
    {"{\"data\": {\"task\": \"classification\", \"generator\": \"xor\", \"classes\": 3}}",
     "data.classes", "must be 2 for generator xor"},
    {"{\"data\": {\"shuffle\": \"yes\"}}", "data.shuffle", "true or false"},
    /* inline data */
    {INLINE("\"x\": [[1, 2]], \"y\": [[1]]"), "data.x[0]", "row of 10 numbers"},
    {INLINE("\"x\": [], \"y\": []"), "data.x", "list of 1 to"},
    {INLINE("\"x\": [[1,2,3,\"a\",5,6,7,8,9,0]], \"y\": [[1]]"), "data.x[0][3]",
     "finite number"},
    {INLINE("\"x\": [[1,2,3,4,5,6,7,8,9,0], [1,2,3,4,5,6,7,8,9,0]], \"y\": [[1]]"), "data.y",
     "list of 2 targets"},
    {INLINE("\"x\": [[1,2,3,4,5,6,7,8,9,0]], \"y\": [[1, 2]]"), "data.y[0]", "row of 1 numbers"},
    {"{\"loss\": \"mse\", \"data\": {" NODATA
     "\"type\": \"inline\", \"x\": [[1,2,3,4,5,6,7,8,9,0]]}}",
     "data.y", "data.y is required"},
    {"{\"loss\": \"cross_entropy\", \"model\": {\"outputs\": 3}, \"data\": {" NODATA
     "\"type\": \"inline\", \"x\": [[1,2,3,4,5,6,7,8,9,0], [1,2,3,4,5,6,7,8,9,0]], "
     "\"y\": [0, 3]}}",
     "data.y[1]", "integer from 0 to 2"},
    {"{\"loss\": \"cross_entropy\", \"model\": {\"outputs\": 3}, \"data\": {" NODATA
     "\"type\": \"inline\", \"x\": [[1,2,3,4,5,6,7,8,9,0]], \"y\": [[0, 1, 0]]}}",
     "data.y[0]", "class index"},
    {"{\"loss\": \"bce\", \"data\": {" NODATA
     "\"type\": \"inline\", \"x\": [[1,2,3,4,5,6,7,8,9,0]], \"y\": [[2]]}}",
     "data.y[0][0]", "[0, 1]"},
    /* builtin and dataset */
    {"{\"data\": {" NODATA "\"type\": \"builtin\", \"name\": \"iris\"}}", "model.inputs",
     "builtin iris has 4 features"},
    {IRIS(", \"name\": \"mnist\""), "data.name", "one of iris, digits, wine"},
    {"{\"model\": {\"inputs\": 4}, \"data\": {" NODATA
     "\"type\": \"builtin\", \"name\": \"iris\"}, \"loss\": \"mse\"}",
     "loss", "mse needs real-valued targets"},
    {"{\"loss\": \"cross_entropy\", \"model\": {\"inputs\": 4, \"outputs\": 2}, \"data\": {" NODATA
     "\"type\": \"builtin\", \"name\": \"iris\"}}",
     "model.outputs", "3 classes"},
    {IRIS(", \"features\": [\"a\", \"b\"]"), "data.features", "lists 2 columns"},
    {IRIS(", \"features\": [\"a\", \"b\", \"c\", \"a\"]"), "data.features[3]", "repeats"},
    {IRIS(", \"normalize\": 1"), "data.normalize", "true or false"},
    {"{\"data\": {" NODATA "\"type\": \"dataset\"}}", "data.id", "data.id or data.name"},
    {"{\"data\": {" NODATA "\"type\": \"dataset\", \"id\": \"d_1\", \"name\": \"x\"}}",
     "data.name", "not both"},
    {"{\"data\": {" NODATA "\"type\": \"dataset\", \"name\": \"x\", \"features\": [\"a\"]}}",
     "data.features", "model.inputs is 10"},
    {"{\"data\": {" NODATA "\"type\": \"dataset\", \"name\": \"x\", \"colums\": [\"a\"]}}",
     "data.colums", "unknown key 'colums'"},
    /* ds_config */
    {"{\"ds_config\": {\"train_batch_size\": 256, \"train_micro_batch_size_per_gpu\": 32, "
     "\"gradient_accumulation_steps\": 1}}",
     "ds_config.train_batch_size",
     "train_batch_size 256 != train_micro_batch_size_per_gpu 32 × gradient_accumulation_steps 1 "
     "× world_size 1"},
    {"{\"ds_config\": {\"train_batch_size\": 10, \"train_micro_batch_size_per_gpu\": 4}}",
     "ds_config.train_batch_size",
     "train_batch_size 10 != train_micro_batch_size_per_gpu 4 × gradient_accumulation_steps 2"},
    {"{\"ds_config\": {\"train_batch_size\": 10, \"gradient_accumulation_steps\": 4}}",
     "ds_config.train_batch_size",
     "train_batch_size 10 != train_micro_batch_size_per_gpu 2 × gradient_accumulation_steps 4"},
    {"{\"ds_config\": {\"train_batch_size\": 4, \"train_micro_batch_size_per_gpu\": 8}}",
     "ds_config.train_batch_size", "gradient_accumulation_steps 0"},
    {"{\"ds_config\": {\"train_batch_size\": null}}", "ds_config.train_batch_size",
     "needs train_batch_size or train_micro_batch_size_per_gpu"},
    {"{\"ds_config\": {\"train_batch_size\": null, \"gradient_accumulation_steps\": 4}}",
     "ds_config.train_batch_size", "gradient_accumulation_steps alone"},
    {"{\"ds_config\": {\"train_batch_size\": 0}}", "ds_config.train_batch_size", "got 0"},
    {"{\"ds_config\": {\"train_batch_size\": 8.5}}", "ds_config.train_batch_size", "got 8.5"},
    {"{\"ds_config\": {\"train_micro_batch_size_per_gpu\": \"8\"}}",
     "ds_config.train_micro_batch_size_per_gpu", "got \"8\""},
    {"{\"ds_config\": {\"gradient_accumulation_steps\": -1}}",
     "ds_config.gradient_accumulation_steps", "got -1"},
    {"{\"ds_config\": {\"train_batch_size\": \"auto\"}}", "ds_config.train_batch_size",
     "\"auto\" but cannot be worked out"},
    {"{\"ds_config\": {\"train_batch_size\": \"auto\", \"train_micro_batch_size_per_gpu\": "
     "\"auto\", \"gradient_accumulation_steps\": 2}}",
     "ds_config.train_batch_size", "\"auto\" but cannot be worked out"},
    {"{\"ds_config\": {\"train_micro_batch_size_per_gpu\": 65536, "
     "\"gradient_accumulation_steps\": 65536, \"train_batch_size\": null}}",
     "ds_config.train_batch_size", "more than the limit"},
    {"{\"ds_config\": {\"gradient_clipping\": -1}}", "ds_config.gradient_clipping", "got -1"},
    {"{\"ds_config\": {\"gradient_clipping\": \"auto\"}}", "ds_config.gradient_clipping",
     "\"auto\""},
    {"{\"ds_config\": {\"gradient_clipping\": true}}", "ds_config.gradient_clipping",
     "got true"},
    {"{\"ds_config\": {\"optimizer\": null}}", "ds_config.optimizer",
     "ds_config.optimizer is required"},
    {"{\"ds_config\": [1]}", "ds_config", "must be an object"},
    /* optimizer and scheduler blocks: checked by optim_parse / sched_validate, paths kept */
    {"{\"ds_config\": {\"optimizer\": {\"params\": {\"lr\": \"auto\"}}}}",
     "ds_config.optimizer.params.lr", "auto"},
    {"{\"ds_config\": {\"optimizer\": {\"params\": {\"lr\": 1e300}}}}",
     "ds_config.optimizer.params.lr", "at most 3.4028234663852886e+38"},
    {"{\"ds_config\": {\"optimizer\": {\"type\": \"OneBitAdam\"}}}", "ds_config.optimizer.type",
     "Adam"},
    {"{\"ds_config\": {\"scheduler\": {\"params\": {\"warmup_num_steps\": -3}}}}",
     "ds_config.scheduler.params.warmup_num_steps", "warmup_num_steps"},
};

static void test_bad_specs(void **state)
{
    (void)state;
    int checked = 0;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (!bad[i].msg)
            continue;
        job_spec s;
        an_err e;
        memset(&e, 0, sizeof e);
        int rc = parse_patched(bad[i].patch, &s, &e);
        if (rc == 0) {
            job_spec_free(&s);
            fail_msg("case %zu accepted: %s", i, bad[i].patch);
        }
        assert_int_equal(rc, -EINVAL);
        if (strcmp(e.field, bad[i].field) != 0 || !strstr(e.message, bad[i].msg))
            fail_msg("case %zu %s\n  want field %s, message containing '%s'\n  got  field %s: %s",
                     i, bad[i].patch, bad[i].field, bad[i].msg, e.field, e.message);
        /* A failed parse leaves nothing behind. */
        assert_null(s.normalized);
        assert_null(s.warnings);
        assert_null(s.scheduler);
        checked++;
    }
    assert_true(checked >= 45);
}

/* A name's limit is 127 bytes of UTF-8, whatever the characters: 63 × "é" (126 bytes) is
 * accepted, 64 of them (128 bytes, 64 characters) are not, and the message says bytes. */
static void test_name_length_in_bytes(void **state)
{
    (void)state;
    static const struct {
        int reps;
        const char *msg;
    } cases[] = {{63, NULL},
                 {64, "name must be 1 to 127 bytes long, got 128 bytes (64 characters)"},
                 {100, "name must be 1 to 127 bytes long, got 200 bytes (100 characters)"},
                 {-128, "name must be 1 to 127 bytes long, got 128"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char patch[512];
        int k = snprintf(patch, sizeof patch, "{\"name\": \"");
        int reps = cases[i].reps < 0 ? -cases[i].reps : cases[i].reps;
        for (int r = 0; r < reps; r++)
            k += snprintf(patch + k, sizeof patch - (size_t)k, "%s",
                          cases[i].reps < 0 ? "a" : "\xc3\xa9");
        snprintf(patch + k, sizeof patch - (size_t)k, "\"}");
        job_spec s;
        an_err e;
        memset(&e, 0, sizeof e);
        int rc = parse_patched(patch, &s, &e);
        if (!cases[i].msg) {
            if (rc)
                fail_msg("%d x e-acute refused: %s: %s", reps, e.field, e.message);
            assert_int_equal(strlen(s.name), 2 * (size_t)reps);
            job_spec_free(&s);
            continue;
        }
        if (rc == 0) {
            job_spec_free(&s);
            fail_msg("case %zu accepted", i);
        }
        assert_string_equal(e.field, "name");
        assert_string_equal(e.message, cases[i].msg);
    }
}

/* Whole texts: malformed JSON with line and column, duplicates, top-level shape. */
static const bad_case bad_text[] = {
    {"", "", "empty body"},
    {"  \n\t ", "", "empty body"},
    {"[1, 2]", "", "expected a JSON object at the top level, got an array of 2"},
    {"\"job\"", "", "top level"},
    {"{\"steps\": 10,}", "", "malformed JSON at line 1, column 13: trailing comma"},
    {"{\n  \"steps\": 10,\n  \"threads\": 2,\n}\n", "",
     "malformed JSON at line 3, column 15: trailing comma"},
    {"{\n  // the run length\n  \"steps\": 10\n}", "",
     "malformed JSON at line 2, column 3: comments are not JSON"},
    {"{\"steps\": 10 /* short */}", "", "line 1, column 14: comments are not JSON"},
    {"{\"steps\": 10", "", "line 1, column 13: the text ends before the JSON value is complete"},
    {"{\"name\": \"abc", "", "line 1, column 10: string never closed"},
    {"{\"steps\" 10}", "", "line 1, column 10: unexpected '1'"},
    {"{\"steps\": 10} {}", "", "line 1, column 15: text after the JSON value"},
    {"{\n\n   \"a\": tru}", "", "line 3, column 9: unexpected 't'"},
    {"{\"steps\": 10, \"steps\": 20}", "steps", "duplicate key 'steps'"},
};

static void test_bad_text(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_text / sizeof bad_text[0]; i++) {
        job_spec s;
        an_err e;
        int rc = job_spec_parse_text(bad_text[i].patch, strlen(bad_text[i].patch), &s, &e);
        if (rc == 0) {
            job_spec_free(&s);
            fail_msg("text case %zu accepted: %s", i, bad_text[i].patch);
        }
        if (strcmp(e.field, bad_text[i].field) != 0 || !strstr(e.message, bad_text[i].msg))
            fail_msg("text case %zu\n  want field '%s', message containing '%s'\n  got  field "
                     "'%s': %s",
                     i, bad_text[i].field, bad_text[i].msg, e.field, e.message);
    }
    /* NULL text is an empty body, not a crash. */
    job_spec s;
    an_err e;
    assert_int_equal(job_spec_parse_text(NULL, 0, &s, &e), -EINVAL);
    assert_non_null(strstr(e.message, "empty body"));
}

/* Huge and odd inputs: deep nesting, long keys, long strings, non-object JSON. */
static void test_odd_inputs(void **state)
{
    (void)state;
    job_spec s;
    an_err e;
    cJSON *j;
    /* 5000 nested arrays: beyond the nesting limit, a clean error naming it. */
    size_t depth = 5000, n = 0;
    char *deep = malloc(2 * depth + 16);
    n += (size_t)sprintf(deep, "{\"a\": ");
    for (size_t i = 0; i < depth; i++)
        deep[n++] = '[';
    for (size_t i = 0; i < depth; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    deep[n] = '\0';
    assert_int_equal(job_spec_parse_text(deep, n, &s, &e), -EINVAL);
    assert_non_null(strstr(e.message, "nested more than 512 levels deep"));
    assert_non_null(strstr(e.message, "line 1, column"));
    free(deep);

    /* A 3000-character unknown key: named (cut) in the error, no suggestion. */
    char *key = malloc(3000 + 1);
    memset(key, 'k', 3000);
    key[3000] = '\0';
    char *patch = malloc(3100);
    snprintf(patch, 3100, "{\"%s\": 1}", key);
    assert_int_equal(parse_patched(patch, &s, &e), -EINVAL);
    assert_non_null(strstr(e.message, "unknown key 'kkkk"));
    assert_null(strstr(e.message, "did you mean"));
    free(patch);

    /* A long name with a multi-byte character at the cut: the message stays valid UTF-8. */
    char typ[200];
    snprintf(typ, sizeof typ, "{\"model\": {\"type\": \"%.39s\u00e9%.40s\"}}", key, key);
    assert_int_equal(parse_patched(typ, &s, &e), -EINVAL);
    assert_string_equal(e.field, "model.type");
    assert_non_null(strstr(e.message, "kkk…"));
    assert_null(strstr(e.message, "\xc3\xe2"));
    free(key);

    /* json_parse_text alone: only an object is a body. */
    assert_int_equal(json_parse_text("null", 4, &j, &e), -EINVAL);
    assert_null(j);
    assert_non_null(strstr(e.message, "got null"));
    assert_int_equal(json_parse_text("123", 3, &j, &e), -EINVAL);
    assert_non_null(strstr(e.message, "got 123"));
    assert_int_equal(json_parse_text(" {\"a\": [1, {\"b\": null}]} \n", 26, &j, &e), 0);
    assert_non_null(j);
    assert_true(cJSON_IsArray(cJSON_GetObjectItem(j, "a")));
    cJSON_Delete(j);
    /* A NUL inside the length is not JSON. */
    assert_int_equal(json_parse_text("{\"a\": 1}\0{}", 11, &j, &e), -EINVAL);
    assert_non_null(strstr(e.message, "column 9"));

    /* Not an object handed to job_spec_parse directly. */
    cJSON *arr = cJSON_CreateArray();
    assert_int_equal(job_spec_parse(arr, &s, &e), -EINVAL);
    assert_non_null(strstr(e.message, "must be a JSON object"));
    cJSON_Delete(arr);
    assert_int_equal(job_spec_parse(NULL, &s, &e), -EINVAL);
}

static void test_duplicate_in_ds_config(void **state)
{
    (void)state;
    /* Splice a second train_batch_size into the tutorial's ds_config. */
    const char *anchor = "\"train_batch_size\": 8,";
    const char *p = strstr(tutorial, anchor);
    assert_non_null(p);
    size_t head = (size_t)(p - tutorial) + strlen(anchor);
    char text[4096];
    snprintf(text, sizeof text, "%.*s \"train_batch_size\": 16,%s", (int)head, tutorial,
             tutorial + head);
    job_spec s;
    an_err e;
    assert_int_equal(job_spec_parse_text(text, strlen(text), &s, &e), -EINVAL);
    assert_string_equal(e.field, "ds_config.train_batch_size");
    assert_non_null(strstr(e.message, "duplicate key"));

    /* Before the text itself was checked, the parser let a repeated key through where no
     * section checks its own (an optimizer's params). A spec stored then still loads, with
     * the first value: the one the job was accepted and trained with. */
    const char *lr = "{\"lr\": 0.01}";
    p = strstr(tutorial, lr);
    assert_non_null(p);
    head = (size_t)(p - tutorial) + strlen(lr) - 1;
    snprintf(text, sizeof text, "%.*s, \"lr\": 0.5%s", (int)head, tutorial, tutorial + head);
    assert_int_equal(job_spec_parse_text(text, strlen(text), &s, &e), -EINVAL);
    assert_string_equal(e.field, "ds_config.optimizer.params.lr");
    if (job_spec_parse_stored(text, strlen(text), &s, &e) != 0)
        fail_msg("a stored spec with a duplicate key: %s: %s", e.field, e.message);
    assert_true(s.optim.lr == 0.01);
    job_spec_free(&s);
    assert_int_equal(job_spec_parse_stored("{\"steps\": ", 11, &s, &e), -EINVAL);
    assert_non_null(strstr(e.message, "not JSON"));
}

/* Refusals added after a job was accepted do not stop it: its stored spec loads, and runs as
 * it did (a CyclicLR on Adam cycles beta1; a gpt job's lr_finder is no sweep), while the same
 * spec submitted now is refused naming the key. */
static void test_stored_specs_keep_what_they_were_accepted_with(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"{\"model\": {\"type\": \"linear\", \"inputs\": 2, \"outputs\": 1}, \"data\": "
         "{\"type\": \"synthetic\", \"task\": \"regression\", \"samples\": 64, \"features\": 2}, "
         "\"steps\": 20, \"ds_config\": {\"train_batch_size\": 8, \"optimizer\": {\"type\": "
         "\"Adam\", \"params\": {\"lr\": 0.1}}, \"scheduler\": {\"type\": \"CyclicLR\", "
         "\"params\": {\"base_lr\": 0.01, \"max_lr\": 0.1, \"step_size_up\": 5}}}}",
         "ds_config.scheduler.params.cycle_momentum"},
        {"{\"model\": {\"type\": \"gpt\", \"block_size\": 8, \"n_layer\": 1, \"n_head\": 2, "
         "\"n_embd\": 8}, \"data\": {\"type\": \"text\", \"text\": \"to be or not to be, that is "
         "the question; to be or not to be\"}, \"steps\": 4, \"lr_finder\": {\"stop_factor\": 4}, "
         "\"ds_config\": {\"train_batch_size\": 4, \"optimizer\": {\"type\": \"AdamW\", "
         "\"params\": {\"lr\": 0.003}}}}", "lr_finder"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        job_spec s;
        an_err e;
        const char *text = cases[k][0];
        assert_int_not_equal(job_spec_parse_text(text, strlen(text), &s, &e), 0);
        assert_string_equal(e.field, cases[k][1]);
        if (job_spec_parse_stored(text, strlen(text), &s, &e) != 0)
            fail_msg("case %zu stored: %s: %s", k, e.field, e.message);
        assert_true(s.stored);
        if (k == 0) { /* its schedule builds, cycling beta1 from 0.9 down */
            sched_env env;
            job_spec_sched_env(&s, 64, &env);
            cJSON *b = cJSON_GetObjectItem(cJSON_GetObjectItem(s.normalized, "ds_config"),
                                           "scheduler");
            sched *x;
            if (sched_create(&x, b, "ds_config.scheduler", &env, &e, NULL))
                fail_msg("stored CyclicLR: %s: %s", e.field, e.message);
            assert_non_null(sched_mom(x));
            sched_step(x, NAN);
            assert_true(sched_mom(x)[0] < 0.9);
            sched_free(x);
        }
        job_spec_free(&s);
    }
}

static void test_warnings_for_unused_keys(void **state)
{
    (void)state;
    job_spec s;
    an_err e;
    int rc = parse_patched("{\"ds_config\": {\"fp16\": {\"enabled\": true}, \"zero_optimization\": "
                           "{\"stage\": 2}, \"steps_per_print\": 10, \"my_own_key\": 1}}",
                           &s, &e);
    if (rc)
        fail_msg("%s: %s", e.field, e.message);
    assert_true(tu_has_text(s.warnings, "ds_config.fp16 is not used by this daemon"));
    assert_true(tu_has_text(s.warnings, "ds_config.zero_optimization.stage 2 runs as stage 1 here"));
    assert_int_equal(s.zero_stage, 1);
    assert_true(tu_has_text(s.warnings, "ds_config.steps_per_print is not used by this daemon"));
    assert_true(tu_has_text(s.warnings, "ds_config.my_own_key is not a DeepSpeed key (ignored; "
                               "DeepSpeed 0.14 knows"));
    assert_false(tu_has_text(s.warnings, "ds_config.optimizer"));
    /* Accepted unchanged: the normalized ds_config still carries them. */
    assert_non_null(at(s.normalized, "ds_config", "fp16"));
    assert_non_null(at(s.normalized, "ds_config", "zero_optimization"));
    job_spec_free(&s);
}

/* A misspelt key is told apart from a DeepSpeed feature, with the key it resembles. */
static void test_ds_key_typos(void **state)
{
    (void)state;
    job_spec s;
    an_err e;
    int rc = parse_patched("{\"ds_config\": {\"gradient_cliping\": 1.0, \"zero_optimisation\": {}}}",
                           &s, &e);
    if (rc)
        fail_msg("%s: %s", e.field, e.message);
    assert_true(tu_has_text(s.warnings, "ds_config.gradient_cliping is not a DeepSpeed key: did you mean "
                               "ds_config.gradient_clipping? (ignored)"));
    assert_true(tu_has_text(s.warnings, "ds_config.zero_optimisation is not a DeepSpeed key: did you "
                               "mean ds_config.zero_optimization? (ignored)"));
    job_spec_free(&s);
    /* a misspelt optimizer: the error names the key that was meant */
    cJSON *j = cJSON_Parse("{\"model\": {\"type\": \"linear\", \"inputs\": 2, \"outputs\": 1},"
                           "\"data\": {\"type\": \"synthetic\", \"task\": \"regression\", "
                           "\"samples\": 16, \"features\": 2}, \"ds_config\": {\"train_batch_size\": 4,"
                           "\"optimiser\": {\"type\": \"Adam\"}}}");
    assert_int_not_equal(job_spec_parse(j, &s, &e), 0);
    assert_string_equal(e.field, "ds_config.optimizer");
    assert_non_null(strstr(e.message, "ds_config has \"optimiser\": did you mean \"optimizer\"?"));
    cJSON_Delete(j);
}

/* A Hugging Face ZeRO-2 config full of "auto": every value that cannot be worked out is an
 * error of the same answer. */
static void test_every_auto_at_once(void **state)
{
    (void)state;
    cJSON *j = cJSON_Parse(
        "{\"model\": {\"type\": \"linear\", \"inputs\": 2, \"outputs\": 1},"
        "\"data\": {\"type\": \"synthetic\", \"task\": \"regression\", \"samples\": 16, \"features\": 2},"
        "\"ds_config\": {\"train_batch_size\": \"auto\", \"train_micro_batch_size_per_gpu\": \"auto\","
        "\"gradient_accumulation_steps\": \"auto\", \"gradient_clipping\": \"auto\","
        "\"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": \"auto\", \"betas\": \"auto\","
        "\"eps\": \"auto\", \"weight_decay\": \"auto\"}},"
        "\"scheduler\": {\"type\": \"WarmupLR\", \"params\": {\"warmup_min_lr\": \"auto\","
        "\"warmup_max_lr\": \"auto\", \"warmup_num_steps\": \"auto\"}},"
        "\"zero_optimization\": {\"stage\": 2}}}");
    assert_non_null(j);
    job_spec s;
    an_err errs[16];
    int n = 0;
    assert_int_not_equal(job_spec_parse_all(j, &s, errs, 16, &n), 0);
    static const char *const want[] = {
        "ds_config.train_batch_size", "ds_config.gradient_clipping",
        "ds_config.optimizer.params.lr", "ds_config.optimizer.params.betas",
        "ds_config.optimizer.params.eps", "ds_config.optimizer.params.weight_decay",
        "ds_config.scheduler.params.warmup_num_steps"};
    assert_int_equal(n, 7);
    for (int k = 0; k < 7; k++)
        assert_string_equal(errs[k].field, want[k]);
    assert_non_null(strstr(errs[2].message, "learning_rate"));
    cJSON_Delete(j);
}

static void test_auto_batch_sizes(void **state)
{
    (void)state;
    job_spec s;
    an_err e;
    int rc = parse_patched("{\"ds_config\": {\"train_batch_size\": \"auto\", "
                           "\"train_micro_batch_size_per_gpu\": 4, "
                           "\"gradient_accumulation_steps\": 3}}",
                           &s, &e);
    if (rc)
        fail_msg("%s: %s", e.field, e.message);
    assert_int_equal(s.train_batch_size, 12);
    assert_int_equal(s.micro_batch, 4);
    assert_int_equal(s.grad_accum, 3);
    assert_true(tu_has_text(s.warnings, "ds_config.train_batch_size \"auto\" resolved to 12"));
    assert_int_equal(at(s.normalized, "ds_config", "train_batch_size")->valueint, 12);
    job_spec_free(&s);

    rc = parse_patched("{\"ds_config\": {\"train_batch_size\": 32, "
                       "\"train_micro_batch_size_per_gpu\": \"auto\", "
                       "\"gradient_accumulation_steps\": \"auto\"}}",
                       &s, &e);
    if (rc)
        fail_msg("%s: %s", e.field, e.message);
    assert_int_equal(s.micro_batch, 32);
    assert_int_equal(s.grad_accum, 1);
    assert_true(tu_has_text(s.warnings, "train_micro_batch_size_per_gpu \"auto\" resolved to 32"));
    assert_true(tu_has_text(s.warnings, "gradient_accumulation_steps \"auto\" resolved to 1"));
    job_spec_free(&s);
}

/* The scheduler's "auto" total_num_steps is the job's length: steps, or epochs over the
 * spec's data in batches of train_batch_size. */
static void test_sched_env_total_steps(void **state)
{
    (void)state;
    job_spec s;
    an_err e;
    const char *block = "\"scheduler\": {\"type\": \"WarmupDecayLR\", \"params\": "
                        "{\"total_num_steps\": \"auto\", \"warmup_num_steps\": 10}}";
    char patch[512];
    snprintf(patch, sizeof patch, "{\"steps\": 700, \"ds_config\": {%s}}", block);
    if (parse_patched(patch, &s, &e))
        fail_msg("%s: %s", e.field, e.message);
    assert_true(tu_has_text(s.warnings, "total_num_steps"));
    assert_true(tu_has_text(s.warnings, "700"));
    job_spec_free(&s);
    /* 4096 rows, 10% held out: 3687 training rows, 461 batches of 8 (the last partial). */
    snprintf(patch, sizeof patch,
             "{\"steps\": null, \"epochs\": 2, \"validation\": {\"fraction\": 0.1}, "
             "\"ds_config\": {%s}}",
             block);
    if (parse_patched(patch, &s, &e))
        fail_msg("%s: %s", e.field, e.message);
    assert_true(tu_has_text(s.warnings, "922"));
    assert_int_equal(job_spec_total_steps(&s, job_spec_train_samples(&s, 4096, NULL)), 922);
    job_spec_free(&s);
}

static void test_batch_derivation(void **state)
{
    (void)state;
    static const struct {
        const char *patch;
        int64_t tbs, mb, gas;
    } cases[] = {
        {"{\"ds_config\": {\"train_batch_size\": 32, \"train_micro_batch_size_per_gpu\": 4}}",
         32, 4, 8},
        {"{\"ds_config\": {\"train_batch_size\": 32, \"gradient_accumulation_steps\": 4}}", 32, 8,
         4},
        {"{\"ds_config\": {\"train_batch_size\": null, \"train_micro_batch_size_per_gpu\": 6, "
         "\"gradient_accumulation_steps\": 5}}",
         30, 6, 5},
        {"{\"ds_config\": {\"train_batch_size\": null, \"train_micro_batch_size_per_gpu\": 6}}",
         6, 6, 1},
        {"{\"ds_config\": {\"train_batch_size\": 24, \"train_micro_batch_size_per_gpu\": 4, "
         "\"gradient_accumulation_steps\": 6}}",
         24, 4, 6},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        job_spec s;
        an_err e;
        if (parse_patched(cases[i].patch, &s, &e))
            fail_msg("case %zu: %s: %s", i, e.field, e.message);
        assert_int_equal(s.train_batch_size, cases[i].tbs);
        assert_int_equal(s.micro_batch, cases[i].mb);
        assert_int_equal(s.grad_accum, cases[i].gas);
        job_spec_free(&s);
    }
}

static void test_epochs_and_groups(void **state)
{
    (void)state;
    job_spec s;
    an_err e;
    int rc = parse_patched("{\"steps\": null, \"epochs\": 3, \"data\": {\"samples\": 100}, "
                           "\"validation\": {\"fraction\": 0.1}, "
                           "\"param_groups\": [{\"match\": [\"*.bias\"], \"lr\": 0.5}, "
                           "{\"match\": [\"fc.weight\"], \"weight_decay\": 0.01}, "
                           "{\"match\": [\"fc2.*\"]}]}",
                           &s, &e);
    if (rc)
        fail_msg("%s: %s", e.field, e.message);
    assert_int_equal(s.steps, 0);
    assert_int_equal(s.epochs, 3);
    int64_t val;
    assert_int_equal(job_spec_train_samples(&s, 100, &val), 90);
    assert_int_equal(val, 10);
    /* 3 epochs of 90 rows = 270 samples in full batches of 8: 33 batches and 6 samples,
     * rounded up to 34 (the last batch runs into a fourth epoch's order). */
    assert_int_equal(job_spec_total_steps(&s, 90), 34);
    assert_int_equal(job_spec_total_steps(&s, 88), 33);
    assert_int_equal(s.val_every_steps, 100);
    assert_int_equal(s.ngroups, 3);
    assert_int_equal(s.groups[0].has_lr, 1);
    assert_int_equal(s.groups[1].has_lr, 0);
    assert_int_equal(s.groups[1].has_weight_decay, 1);
    assert_true(tu_has_text(s.warnings, "param_groups[2].match[0] \"fc2.*\" matches no tensor"));
    assert_false(tu_has_text(s.warnings, "param_groups[0]"));
    sched_env env;
    job_spec_sched_env(&s, 90, &env);
    assert_int_equal(env.ngroups, 4);
    assert_true(env.base_lr[0] == 0.01);
    assert_true(env.base_lr[1] == 0.5);
    assert_true(env.base_lr[2] == 0.01);
    assert_int_equal(env.total_steps, 34);
    job_spec_sched_env(&s, -1, &env);
    assert_int_equal(env.total_steps, 3 * CFG_UNKNOWN_STEPS_PER_EPOCH);
    assert_int_equal(at(s.normalized, "epochs", NULL)->valueint, 3);
    assert_null(at(s.normalized, "steps", NULL));
    assert_true(at(s.normalized, "validation", "fraction")->valuedouble == 0.1);
    const cJSON *g = cJSON_GetArrayItem(at(s.normalized, "param_groups", NULL), 1);
    assert_true(at(g, "lr", NULL)->valuedouble == 0.01); /* the optimizer's, filled in */
    job_spec_free(&s);
}

/* metrics.full_resolution_steps: parsed, kept in the normalized spec beside max_bytes, and
 * absent (every row kept) by default. */
static void test_metrics_retention(void **state)
{
    (void)state;
    job_spec s;
    an_err e;
    int rc = parse_patched("{\"metrics\": {\"full_resolution_steps\": 5000}}", &s, &e);
    if (rc)
        fail_msg("%s: %s", e.field, e.message);
    assert_int_equal(s.metrics_full_res, 5000);
    assert_int_equal(s.metrics_max_bytes, 0);
    assert_int_equal(at(s.normalized, "metrics", "full_resolution_steps")->valueint, 5000);
    assert_null(at(s.normalized, "metrics", "max_bytes"));
    job_spec_free(&s);
    rc = parse_patched("{\"metrics\": {\"full_resolution_steps\": 1, \"max_bytes\": 4800}}",
                       &s, &e);
    if (rc)
        fail_msg("%s: %s", e.field, e.message);
    assert_int_equal(s.metrics_full_res, 1);
    assert_int_equal(at(s.normalized, "metrics", "full_resolution_steps")->valueint, 1);
    assert_int_equal(at(s.normalized, "metrics", "max_bytes")->valueint, 4800);
    job_spec_free(&s);
    rc = parse_patched("{}", &s, &e);
    assert_int_equal(rc, 0);
    assert_int_equal(s.metrics_full_res, 0);
    assert_null(at(s.normalized, "metrics", NULL));
    job_spec_free(&s);
}

static void test_mlp_init_inline(void **state)
{
    (void)state;
    job_spec s;
    an_err e;
    int rc = parse_patched(
        "{\"loss\": \"cross_entropy\", \"model\": {\"type\": \"mlp\", \"inputs\": 2, "
        "\"hidden\": [3], \"outputs\": 2, \"activation\": \"tanh\", \"init\": {"
        "\"fc1.weight\": [[1, 2], [3, 4], [5, 6]], \"fc2.bias\": [0.5, -0.5]}}, "
        "\"data\": {" NODATA "\"type\": \"inline\", \"x\": [[0, 1], [1, 0], [1, 1], [0, 0]], "
        "\"y\": [1, 1, 0, 0], \"shuffle\": false}, "
        "\"ds_config\": {\"train_batch_size\": 2, \"scheduler\": null, \"optimizer\": "
        "{\"type\": \"SGD\", \"params\": {\"lr\": 0.1, \"momentum\": 0.9}}}}",
        &s, &e);
    if (rc)
        fail_msg("%s: %s", e.field, e.message);
    assert_int_equal(s.model.type, MODEL_MLP);
    assert_int_equal(s.model.nhidden, 1);
    assert_int_equal(s.model.hidden[0], 3);
    assert_int_equal(s.model.activation, ACT_TANH);
    assert_non_null(s.model.init);
    assert_int_equal(s.data.type, DATA_INLINE);
    assert_int_equal(s.data.shuffle, 0);
    assert_int_equal(cJSON_GetArraySize(s.data.x), 4);
    assert_int_equal(job_spec_data_samples(&s), 4);
    assert_null(s.scheduler);
    assert_int_equal(s.optim.type, OPTIM_SGD);
    spec_tensor t[CFG_MAX_TENSORS];
    assert_int_equal(model_spec_tensors(&s.model, t), 4);
    assert_string_equal(t[0].name, "fc1.weight");
    assert_int_equal(t[0].shape[0], 3);
    assert_int_equal(t[0].shape[1], 2);
    assert_string_equal(t[3].name, "fc2.bias");
    assert_int_equal(t[3].rank, 1);
    assert_int_equal(model_spec_params(&s.model), 3 * 2 + 3 + 2 * 3 + 2);
    assert_string_equal(at(s.normalized, "model", "activation")->valuestring, "tanh");
    assert_non_null(at(s.normalized, "model", "init"));
    job_spec_free(&s);
}

static void test_builtin_and_dataset(void **state)
{
    (void)state;
    job_spec s;
    an_err e;
    int rc = parse_patched(IRIS(", \"normalize\": false"), &s, &e);
    /* IRIS's default loss is the tutorial's "mean": no label check. */
    if (rc)
        fail_msg("%s: %s", e.field, e.message);
    assert_int_equal(s.data.type, DATA_BUILTIN);
    assert_string_equal(s.data.name, "iris");
    assert_int_equal(s.data.normalize, 0);
    assert_int_equal(job_spec_data_samples(&s), 150);
    job_spec_free(&s);

    rc = parse_patched("{\"loss\": \"cross_entropy\", \"model\": {\"inputs\": 64, \"outputs\": 10}, "
                       "\"data\": {" NODATA "\"type\": \"builtin\", \"name\": \"digits\"}}",
                       &s, &e);
    if (rc)
        fail_msg("%s: %s", e.field, e.message);
    assert_int_equal(s.data.classes, 10);
    job_spec_free(&s);

    rc = parse_patched("{\"steps\": null, \"epochs\": 2, \"model\": {\"inputs\": 2}, \"data\": {"
                       NODATA "\"type\": \"dataset\", \"id\": \"d_000003\", \"target\": \"price\", "
                       "\"features\": [\"rooms\", \"area\"]}}",
                       &s, &e);
    if (rc)
        fail_msg("%s: %s", e.field, e.message);
    assert_string_equal(s.data.dataset_id, "d_000003");
    assert_string_equal(s.data.target, "price");
    assert_int_equal(cJSON_GetArraySize(s.data.features_sel), 2);
    assert_int_equal(s.data.normalize, 1);
    assert_int_equal(job_spec_data_samples(&s), -1);
    job_spec_free(&s);
}

/* Every prefix of the tutorial is rejected cleanly, never accepted, never a crash. */
static void test_truncated(void **state)
{
    (void)state;
    size_t n = strlen(tutorial);
    /* The last bytes are whitespace after the closing brace: stop before them. */
    size_t full = n;
    while (full > 0 && (tutorial[full - 1] == '\n' || tutorial[full - 1] == ' '))
        full--;
    for (size_t len = 0; len < full; len++) {
        char *copy = malloc(len + 1);
        memcpy(copy, tutorial, len);
        copy[len] = '\0';
        job_spec s;
        an_err e;
        memset(&e, 0, sizeof e);
        int rc = job_spec_parse_text(copy, len, &s, &e);
        if (rc == 0)
            fail_msg("prefix of %zu bytes accepted", len);
        assert_int_equal(rc, -EINVAL);
        assert_true(e.message[0] != '\0');
        assert_null(s.normalized);
        /* Also unterminated buffers: the parser must honour len. */
        char *heap = malloc(len ? len : 1);
        memcpy(heap, tutorial, len);
        rc = job_spec_parse_text(heap, len, &s, &e);
        assert_int_equal(rc, -EINVAL);
        free(heap);
        free(copy);
    }
}

/* Every independent section's error is reported at once; dependent sections are skipped. */
static void test_every_error_reported(void **state)
{
    (void)state;
    cJSON *j = cJSON_Parse(
        "{\"name\": 5, \"stpes\": 3, \"model\": {\"type\": \"linear\", \"inputs\": 0, "
        "\"outputs\": 1}, \"data\": {\"type\": \"synthetic\", \"task\": \"regression\"}, "
        "\"steps\": -1, \"checkpoint\": {\"keep_last\": 0}, \"ds_config\": {\"train_batch_size\": 8, "
        "\"optimizer\": {\"type\": \"Adam\", \"params\": {\"lr\": \"x\"}}}}");
    assert_non_null(j);
    job_spec s;
    an_err errs[16];
    int n = 0;
    assert_int_equal(job_spec_parse_all(j, &s, errs, 16, &n), -EINVAL);
    const char *want[] = {"stpes", "name", "model.inputs", "steps", "checkpoint.keep_last",
                          "ds_config.optimizer.params.lr"};
    assert_int_equal(n, 6);
    for (int k = 0; k < n; k++)
        assert_string_equal(errs[k].field, want[k]);
    /* with room for two, the count is still the total and the first two are kept */
    assert_int_equal(job_spec_parse_all(j, &s, errs, 2, &n), -EINVAL);
    assert_int_equal(n, 6);
    assert_string_equal(errs[1].field, "name");
    /* job_spec_parse gives the first of them */
    an_err e;
    assert_int_equal(job_spec_parse(j, &s, &e), -EINVAL);
    assert_string_equal(e.field, "stpes");
    cJSON_Delete(j);
}

/* resume_from's model check: the first dimension whose weights would not fit is named, with
 * both values; a size not known yet (0) matches any. */
static void test_model_same_shape(void **state)
{
    (void)state;
    char what[200];
    model_spec a = {.type = MODEL_MLP, .inputs = 4, .outputs = 3, .nhidden = 2,
                    .hidden = {16, 8}, .activation = ACT_RELU};
    model_spec b = a;
    assert_int_equal(cfg_model_same_shape(&a, &b, what, sizeof what), 1);
    b.dropout = 0.5; /* no weights of its own */
    assert_int_equal(cfg_model_same_shape(&a, &b, what, sizeof what), 1);
    b.hidden[1] = 9;
    assert_int_equal(cfg_model_same_shape(&a, &b, what, sizeof what), 0);
    assert_string_equal(what, "model.hidden is [16, 8] there and [16, 9] here");
    b = a;
    b.nhidden = 1;
    assert_int_equal(cfg_model_same_shape(&a, &b, what, sizeof what), 0);
    assert_string_equal(what, "model.hidden is [16, 8] there and [16] here");
    b = a;
    b.activation = ACT_TANH;
    assert_int_equal(cfg_model_same_shape(&a, &b, what, sizeof what), 0);
    assert_string_equal(what, "model.activation is relu there and tanh here");
    b = a;
    b.inputs = 5;
    assert_int_equal(cfg_model_same_shape(&a, &b, what, sizeof what), 0);
    assert_string_equal(what, "model.inputs is 4 there and 5 here");
    b.inputs = 0; /* from the data, not known yet */
    assert_int_equal(cfg_model_same_shape(&a, &b, what, sizeof what), 1);
    b = a;
    b.type = MODEL_LINEAR;
    assert_int_equal(cfg_model_same_shape(&a, &b, what, sizeof what), 0);
    assert_string_equal(what, "model.type is mlp there and linear here");

    model_spec g = {.type = MODEL_GPT, .vocab_size = 65, .outputs = 65, .block_size = 64,
                    .n_layer = 4, .n_head = 4, .n_embd = 128, .bias = 0, .gelu = 1};
    model_spec h = g;
    h.dropout = 0.1;
    assert_int_equal(cfg_model_same_shape(&g, &h, what, sizeof what), 1);
    h.n_head = 8; /* the same tensors, another model */
    assert_int_equal(cfg_model_same_shape(&g, &h, what, sizeof what), 0);
    assert_string_equal(what, "model.n_head is 4 there and 8 here");
    h = g;
    h.gelu = 0;
    assert_int_equal(cfg_model_same_shape(&g, &h, what, sizeof what), 0);
    assert_string_equal(what, "model.gelu is erf there and tanh here");
    h = g;
    h.vocab_size = h.outputs = 256;
    assert_int_equal(cfg_model_same_shape(&g, &h, what, sizeof what), 0);
    assert_string_equal(what, "model.vocab_size is 65 there and 256 here");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tutorial),
        cmocka_unit_test(test_bad_specs),
        cmocka_unit_test(test_bad_text),
        cmocka_unit_test(test_name_length_in_bytes),
        cmocka_unit_test(test_odd_inputs),
        cmocka_unit_test(test_duplicate_in_ds_config),
        cmocka_unit_test(test_warnings_for_unused_keys),
        cmocka_unit_test(test_ds_key_typos),
        cmocka_unit_test(test_every_auto_at_once),
        cmocka_unit_test(test_auto_batch_sizes),
        cmocka_unit_test(test_batch_derivation),
        cmocka_unit_test(test_sched_env_total_steps),
        cmocka_unit_test(test_epochs_and_groups),
        cmocka_unit_test(test_every_error_reported),
        cmocka_unit_test(test_mlp_init_inline),
        cmocka_unit_test(test_metrics_retention),
        cmocka_unit_test(test_builtin_and_dataset),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_model_same_shape),
        cmocka_unit_test(test_stored_specs_keep_what_they_were_accepted_with),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
