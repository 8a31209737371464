/* Tests for the streaming schedule preview: it must give exactly the text of the tree form,
 * whatever the reader's buffer size, and CSV rows with the same numbers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/sched.h"

static const char *bodies[] = {
    /* the tutorial's WarmupLR, one group */
    "{\"ds_config\":{\"train_batch_size\":8,\"optimizer\":{\"type\":\"Adam\",\"params\":{\"lr\":0.01}},"
    "\"scheduler\":{\"type\":\"WarmupLR\",\"params\":{\"warmup_min_lr\":0.001,\"warmup_max_lr\":0.01,"
    "\"warmup_num_steps\":100}}},\"steps\":300}",
    /* OneCycle cycles momentum: the "momentum" block appears; three groups */
    "{\"ds_config\":{\"optimizer\":{\"type\":\"Adam\",\"params\":{\"lr\":0.01}},"
    "\"scheduler\":{\"type\":\"OneCycle\",\"params\":{\"cycle_min_lr\":0.001,\"cycle_max_lr\":0.01,"
    "\"cycle_first_step_size\":40,\"decay_step_size\":10,\"decay_lr_rate\":0.1}}},\"steps\":157,"
    "\"param_groups\":[{\"lr\":0.01},{\"lr\":0.002},{\"lr\":0.5}]}",
    /* a bare ds_config without a scheduler: the optimizer's lr throughout */
    "{\"optimizer\":{\"type\":\"SGD\",\"params\":{\"lr\":0.1,\"momentum\":0.9}}}",
    /* a MultiPhase schedule */
    "{\"ds_config\":{\"optimizer\":{\"type\":\"AdamW\",\"params\":{\"lr\":0.001}},\"scheduler\":{"
    "\"type\":\"MultiPhase\",\"params\":{\"phases\":[{\"steps\":20,\"type\":\"WarmupLR\",\"params\":"
    "{\"warmup_num_steps\":20,\"warmup_type\":\"linear\"}},{\"steps\":80,\"type\":\"CosineAnnealingLR\","
    "\"params\":{\"T_max\":80}}]}}},\"steps\":100}",
    /* thinned: every 7th step, the last, and the turns of a OneCycle with momentum */
    "{\"ds_config\":{\"optimizer\":{\"type\":\"Adam\",\"params\":{\"lr\":0.01}},"
    "\"scheduler\":{\"type\":\"OneCycle\",\"params\":{\"cycle_min_lr\":0.001,\"cycle_max_lr\":0.01,"
    "\"cycle_first_step_size\":40,\"decay_step_size\":10,\"decay_lr_rate\":0.1}}},\"steps\":157,"
    "\"every\":7,\"param_groups\":[{\"lr\":0.01},{\"lr\":0.002}]}",
    /* thinned to at most 50 of 2,000,000 steps of a stepped schedule */
    "{\"ds_config\":{\"optimizer\":{\"type\":\"SGD\",\"params\":{\"lr\":1}},"
    "\"scheduler\":{\"type\":\"StepLR\",\"params\":{\"step_size\":300000,\"gamma\":0.5}}},"
    "\"steps\":2000000,\"max_points\":50}",
};


/* The tree's text as the stream writes it: unformatted, ending with a newline. */
static char *text_of(const cJSON *tree)
{
    char *t = cJSON_PrintUnformatted(tree);
    assert_non_null(t);
    size_t n = strlen(t);
    char *out = realloc(t, n + 2);
    assert_non_null(out);
    memcpy(out + n, "\n", 2);
    return out;
}
/* Reads a whole stream in chunks of `chunk` bytes. */
static char *read_all(sched_preview_stream *ps, size_t chunk, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap + 1);
    for (;;) {
        if (n + chunk > cap) {
            cap = 2 * (n + chunk);
            out = realloc(out, cap + 1);
        }
        size_t got = sched_preview_read(ps, out + n, chunk);
        if (got == 0)
            break;
        assert_true(got <= chunk);
        n += got;
    }
    out[n] = '\0';
    *len = n;
    return out;
}

static void test_stream_equals_tree(void **state)
{
    (void)state;
    const size_t chunks[] = {1, 7, 64, 4096, 1 << 20};
    for (size_t b = 0; b < sizeof bodies / sizeof *bodies; b++) {
        cJSON *body = cJSON_Parse(bodies[b]);
        assert_non_null(body);
        cJSON *tree = NULL;
        an_err err;
        assert_int_equal(sched_preview(body, 0, &tree, &err), 0);
        char *want = text_of(tree);
        for (size_t c = 0; c < sizeof chunks / sizeof *chunks; c++) {
            sched_preview_stream *ps;
            assert_int_equal(sched_preview_open(body, 0, 0, &ps, &err), 0);
            size_t len;
            char *got = read_all(ps, chunks[c], &len);
            assert_int_equal(len, strlen(want));
            assert_string_equal(got, want);
            assert_int_equal(sched_preview_read(ps, got, 16), 0); /* stays at the end */
            free(got);
            sched_preview_close(ps);
        }
        free(want);
        cJSON_Delete(tree);
        cJSON_Delete(body);
    }
}

/* A read with a budget of scheduler steps may give nothing yet without being at the end; read
 * to the end so, the text is the tree's, and the thinned answer keeps its promises. */
static void test_budgeted_read(void **state)
{
    (void)state;
    cJSON *body = cJSON_Parse(bodies[5]);
    cJSON *tree = NULL;
    an_err err;
    assert_int_equal(sched_preview(body, 0, &tree, &err), 0);
    char *want = text_of(tree);
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(tree, "step");
    int n = cJSON_GetArraySize(steps);
    assert_true(n <= 50 && n >= 10);
    assert_int_equal(cJSON_GetArrayItem(steps, 0)->valuedouble, 1);
    assert_int_equal(cJSON_GetArrayItem(steps, n - 1)->valuedouble, 2000000);
    sched_preview_stream *ps;
    assert_int_equal(sched_preview_open(body, 0, 0, &ps, &err), 0);
    size_t cap = strlen(want) + 4096, len = 0;
    char *got = malloc(cap);
    int empty = 0;
    while (!sched_preview_done(ps)) {
        size_t k = sched_preview_read_some(ps, got + len, 4096, 1000);
        empty += k == 0;
        len += k;
        assert_true(len < cap);
    }
    got[len] = '\0';
    assert_true(empty > 0); /* 2,000,000 steps at 1000 a call: most calls give nothing */
    assert_string_equal(got, want);
    free(got);
    free(want);
    sched_preview_close(ps);
    cJSON_Delete(tree);
    cJSON_Delete(body);
}

static void test_csv_rows(void **state)
{
    (void)state;
    cJSON *body = cJSON_Parse(bodies[1]);
    cJSON *tree = NULL;
    an_err err;
    assert_int_equal(sched_preview(body, 0, &tree, &err), 0);
    sched_preview_stream *ps;
    assert_int_equal(sched_preview_open(body, 0, 1, &ps, &err), 0);
    assert_int_equal(sched_preview_steps(ps), 157);
    size_t len;
    char *csv = read_all(ps, 100, &len);
    sched_preview_close(ps);

    char *save, *line = strtok_r(csv, "\n", &save);
    assert_string_equal(line, "step,lr0,lr1,lr2,momentum0,momentum1,momentum2");
    const cJSON *lr = cJSON_GetObjectItem(tree, "lr"), *mom = cJSON_GetObjectItem(tree, "momentum");
    int rows = 0;
    while ((line = strtok_r(NULL, "\n", &save))) {
        char *p = line, *end;
        assert_int_equal(strtoll(p, &end, 10), rows + 1);
        for (int col = 0; col < 6; col++) {
            assert_int_equal(*end, ',');
            double v = strtod(end + 1, &end);
            const cJSON *src = col < 3 ? lr : mom;
            double want = cJSON_GetArrayItem(cJSON_GetArrayItem(src, col % 3), rows)->valuedouble;
            assert_true(v == want); /* bit for bit: printed so it reads back exactly */
        }
        assert_int_equal(*end, '\0');
        rows++;
    }
    assert_int_equal(rows, 157);
    free(csv);
    cJSON_Delete(tree);
    cJSON_Delete(body);
}

static void test_steps_override_and_errors(void **state)
{
    (void)state;
    cJSON *body = cJSON_Parse(bodies[0]);
    sched_preview_stream *ps = NULL;
    an_err err;
    assert_int_equal(sched_preview_open(body, 5, 0, &ps, &err), 0);
    size_t len;
    char *got = read_all(ps, 3, &len);
    assert_string_equal(got, "{\"warnings\":[],\"step\":[1,2,3,4,5],\"lr\":[[0.001,0.001,0.0023546349804879152,"
                             "0.003147045646238481,0.0037092699609758304]]}\n");
    free(got);
    sched_preview_close(ps);
    assert_int_equal(sched_preview_open(body, 10000001, 0, &ps, &err), -EINVAL);
    assert_null(ps);
    assert_string_equal(err.field, "steps");
    cJSON_Delete(body);

    body = cJSON_Parse("{\"ds_config\":{\"optimizer\":{\"type\":\"Adam\",\"params\":{\"lr\":\"x\"}}}}");
    assert_int_equal(sched_preview_open(body, 0, 0, &ps, &err), -EINVAL);
    assert_string_equal(err.field, "ds_config.optimizer.params.lr");
    cJSON_Delete(body);
}

/* A key beside ds_config that the preview would ignore is refused, naming it; keys the body's
 * form does have are taken, and so are ds_config's DeepSpeed keys the schedule does not use. */
static void test_unknown_keys(void **state)
{
    (void)state;
    static const struct {
        const char *body, *field, *msg; /* msg NULL: accepted */
    } cases[] = {
        {"{\"ds_config\":{\"optimizer\":{\"type\":\"SGD\",\"params\":{\"lr\":0.1}}},\"step\":20}",
         "step", "unknown key 'step' (did you mean 'steps'?)"},
        {"{\"ds_config\":{\"optimizer\":{\"type\":\"SGD\",\"params\":{\"lr\":0.1}}},\"epochs\":2}",
         "epochs", "unknown key 'epochs'"},
        /* a job spec: a job's keys and the thinning keys; a job's top-level typo */
        {"{\"model\":{\"type\":\"linear\"},\"steps\":30,\"notes\":\"x\",\"max_points\":4,"
         "\"ds_config\":{\"optimizer\":{\"type\":\"SGD\",\"params\":{\"lr\":0.1}}}}", NULL, NULL},
        {"{\"model\":{\"type\":\"linear\"},\"stpes\":30,"
         "\"ds_config\":{\"optimizer\":{\"type\":\"SGD\",\"params\":{\"lr\":0.1}}}}",
         "stpes", "unknown key 'stpes' (did you mean 'steps'?)"},
        /* DeepSpeed keys the schedule does not use; a bare ds_config is not checked here */
        {"{\"ds_config\":{\"optimizer\":{\"type\":\"SGD\",\"params\":{\"lr\":0.1}},"
         "\"zero_optimization\":{\"stage\":1},\"fp16\":{\"enabled\":false}},\"every\":2}", NULL, NULL},
        {"{\"optimizer\":{\"type\":\"SGD\",\"params\":{\"lr\":0.1}},\"zero_optimization\":{}}", NULL, NULL},
        /* a group's keys as a job's groups have them: a typo is named, values checked */
        {"{\"ds_config\":{\"optimizer\":{\"type\":\"SGD\",\"params\":{\"lr\":0.1}}},"
         "\"param_groups\":[{\"Lr\":0.5}]}", "param_groups[0].Lr", "did you mean 'lr'"},
        {"{\"ds_config\":{\"optimizer\":{\"type\":\"SGD\",\"params\":{\"lr\":0.1}}},"
         "\"param_groups\":[{\"lr\":0.1,\"weight_decay\":-5}]}", "param_groups[0].weight_decay",
         "weight_decay"},
        {"{\"ds_config\":{\"optimizer\":{\"type\":\"SGD\",\"params\":{\"lr\":0.1}}},"
         "\"param_groups\":[{\"match\":[\"*.bias\"],\"lr\":0.1,\"weight_decay\":0}]}", NULL, NULL},
        {"{\"ds_config\":{\"optimizer\":{\"type\":\"SGD\",\"params\":{\"lr\":0.1}}},"
         "\"param_groups\":[{\"match\":5,\"lr\":0.1}]}", "param_groups[0].match", "globs"},
        /* a job spec's groups: a job's limit (16 besides group 0) */
        {"{\"model\":{\"type\":\"linear\"},\"steps\":3,\"ds_config\":{\"optimizer\":"
         "{\"type\":\"SGD\",\"params\":{\"lr\":0.1}}},\"param_groups\":[{},{},{},{},{},{},{},"
         "{},{},{},{},{},{},{},{},{},{}]}", "param_groups", "at most 16 groups, got 17"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *body = cJSON_Parse(cases[i].body);
        assert_non_null(body);
        sched_preview_stream *ps = NULL;
        an_err err;
        memset(&err, 0, sizeof err);
        int rc = sched_preview_open(body, 0, 0, &ps, &err);
        if (!cases[i].msg) {
            assert_int_equal(rc, 0);
            sched_preview_close(ps);
        } else {
            assert_int_equal(rc, -EINVAL);
            assert_null(ps);
            assert_string_equal(err.field, cases[i].field);
            assert_non_null(strstr(err.message, cases[i].msg));
        }
        cJSON_Delete(body);
    }
}

/* What would pass unnoticed is told in `warnings`: a ds_config key DeepSpeed does not have (a
 * misspelt "scheduler" previews as a constant lr), in a body's ds_config and in a bare one,
 * and a quirk the scheduler accepts as DeepSpeed does. DeepSpeed keys the schedule does not
 * read are no warning. The stream's text carries the same list. */
static void test_warnings(void **state)
{
    (void)state;
    static const struct {
        const char *body, *want; /* want: the warnings array as text */
    } cases[] = {
        {"{\"ds_config\":{\"optimizer\":{\"type\":\"SGD\",\"params\":{\"lr\":0.1}},"
         "\"schedular\":{\"type\":\"WarmupLR\",\"params\":{}},\"zero_optimization\":{\"stage\":1}},"
         "\"steps\":3}",
         "[\"ds_config.schedular is not a DeepSpeed key: did you mean ds_config.scheduler? "
         "(ignored)\"]"},
        {"{\"optimizer\":{\"type\":\"SGD\",\"params\":{\"lr\":0.1}},\"gradient_clippin\":1,"
         "\"fp16\":{\"enabled\":true},\"wibble_wobble\":2}",
         "[\"gradient_clippin is not a DeepSpeed key: did you mean gradient_clipping? (ignored)\","
         "\"wibble_wobble is not a DeepSpeed key (ignored; DeepSpeed 0.14 knows 59 top-level "
         "keys)\"]"},
        {"{\"ds_config\":{\"optimizer\":{\"type\":\"SGD\",\"params\":{\"lr\":0.1}},"
         "\"scheduler\":{\"type\":\"WarmupLR\",\"params\":{\"warmup_type\":\"cosine\"}}},"
         "\"steps\":3}",
         "[\"ds_config.scheduler.params.warmup_type: unknown warmup_type \\\"cosine\\\"; using "
         "\\\"log\\\" as DeepSpeed does\"]"},
        {"{\"ds_config\":{\"optimizer\":{\"type\":\"SGD\",\"params\":{\"lr\":0.1}},"
         "\"train_batch_size\":8},\"steps\":3}", "[]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *body = cJSON_Parse(cases[i].body);
        assert_non_null(body);
        cJSON *tree = NULL;
        an_err err;
        if (sched_preview(body, 0, &tree, &err) != 0)
            fail_msg("case %zu: %s: %s", i, err.field, err.message);
        char *got = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(tree, "warnings"));
        assert_non_null(got);
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("case %zu\n  want %s\n  got  %s", i, cases[i].want, got);
        sched_preview_stream *ps;
        assert_int_equal(sched_preview_open(body, 0, 1, &ps, &err), 0); /* CSV: by the call */
        char *w = cJSON_PrintUnformatted(sched_preview_warnings(ps));
        assert_string_equal(w, got);
        free(w);
        sched_preview_close(ps);
        assert_int_equal(sched_preview_open(body, 0, 0, &ps, &err), 0); /* JSON: in the text */
        size_t len;
        char *text = read_all(ps, 5, &len);
        char head[600];
        snprintf(head, sizeof head, "{\"warnings\":%s,\"step\":[1,", got);
        assert_memory_equal(text, head, strlen(head));
        free(text);
        sched_preview_close(ps);
        free(got);
        cJSON_Delete(tree);
        cJSON_Delete(body);
    }
}

/* A schedule that overflows shows null in JSON (inf is not JSON) and inf in CSV. */
static void test_non_finite_values(void **state)
{
    (void)state;
    cJSON *body = cJSON_Parse("{\"ds_config\":{\"optimizer\":{\"type\":\"SGD\",\"params\":"
                              "{\"lr\":0.1}},\"scheduler\":{\"type\":\"ExponentialLR\",\"params\":"
                              "{\"gamma\":1e300}}},\"steps\":4}");
    sched_preview_stream *ps;
    an_err err;
    size_t len;
    assert_int_equal(sched_preview_open(body, 0, 0, &ps, &err), 0);
    char *json = read_all(ps, 5, &len);
    sched_preview_close(ps);
    assert_string_equal(json, "{\"warnings\":[],\"step\":[1,2,3,4],\"lr\":[[0.1,1e+299,null,null]]}\n");
    cJSON *parsed = cJSON_Parse(json);
    assert_non_null(parsed);
    cJSON_Delete(parsed);
    free(json);
    assert_int_equal(sched_preview_open(body, 0, 1, &ps, &err), 0);
    char *csv = read_all(ps, 5, &len);
    sched_preview_close(ps);
    assert_string_equal(csv, "step,lr0\n1,0.1\n2,1e+299\n3,inf\n4,inf\n");
    free(csv);
    cJSON_Delete(body);
}

/* The largest preview the API allows runs in constant memory; counting its bytes is enough. */
static void test_ten_million_steps_stream(void **state)
{
    (void)state;
    cJSON *body = cJSON_Parse(bodies[0]);
    sched_preview_stream *ps;
    an_err err;
    assert_int_equal(sched_preview_open(body, 10000000, 1, &ps, &err), 0);
    static char buf[1 << 16];
    size_t total = 0, got, lines = 0;
    while ((got = sched_preview_read(ps, buf, sizeof buf)) > 0) {
        for (size_t i = 0; i < got; i++)
            lines += buf[i] == '\n';
        total += got;
    }
    assert_int_equal(lines, 10000001); /* header + one row per step */
    assert_true(total > 10000000 * 10);
    sched_preview_close(ps);
    cJSON_Delete(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_equals_tree),
        cmocka_unit_test(test_budgeted_read),
        cmocka_unit_test(test_csv_rows),
        cmocka_unit_test(test_steps_override_and_errors),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_warnings),
        cmocka_unit_test(test_non_finite_values),
        cmocka_unit_test(test_ten_million_steps_stream),
    };
    return cmocka_run_group_tests_name("preview", tests, NULL, NULL);
}
