/* test_blob_pick — a checkpoint read piece by piece keeps exactly the sections asked for, with
 * the same bytes blob_parse sees, whatever the pieces' sizes; it rejects what blob_parse
 * rejects (every truncation, every flipped byte, padding) and holds none of the optimizer
 * state; a model built from the picked sections predicts what one built from the whole blob
 * does. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/blob.h"
#include "core/blob_pick.h"
#include "core/config.h"
#include "core/infer.h"
#include "core/train.h"

#define IRIS                                                                                     \
    "{\"seed\": 2, \"steps\": 20, \"model\": {\"type\": \"mlp\", \"inputs\": 4, \"hidden\": [8], " \
    "\"outputs\": 3}, \"loss\": \"cross_entropy\", \"data\": {\"type\": \"builtin\", \"name\": " \
    "\"iris\"}, \"ds_config\": {\"train_batch_size\": 16, \"optimizer\": {\"type\": \"Adam\", "  \
    "\"params\": {\"lr\": 0.01}}}}"

typedef struct fixture {
    job_spec spec;
    void *blob;
    size_t len;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    an_err e;
    train *t = NULL;
    if (!f || job_spec_parse_text(IRIS, strlen(IRIS), &f->spec, &e) ||
        train_create(&t, &f->spec, NULL, 0, &e))
        return -1;
    train_report rep;
    while (train_steps_done(t) < train_total_steps(t))
        if (train_step(t, &rep, &e))
            return -1;
    if (train_save(t, &f->blob, &f->len, &e))
        return -1;
    train_free(t);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    free(f->blob);
    job_spec_free(&f->spec);
    free(f);
    return 0;
}

/* Feeds buf in pieces of `piece` bytes (0: pseudo-random sizes 1..97); the finish's code. */
static int pick(const void *buf, size_t len, size_t piece, blob_picker *p, blob_view *v)
{
    an_err e;
    const unsigned char *b = buf;
    uint32_t x = 12345;
    size_t off = 0;
    while (off < len) {
        size_t n = piece;
        if (!n) {
            x = x * 1103515245u + 12345u;
            n = 1 + (x >> 16) % 97;
        }
        if (n > len - off)
            n = len - off;
        int rc = blob_pick_feed(p, b + off, n, &e);
        if (rc)
            return rc;
        off += n;
    }
    return blob_pick_finish(p, v, &e);
}

static void keeps_the_asked_sections_bit_for_bit(void **state)
{
    fixture *f = *state;
    blob_view whole;
    an_err e;
    assert_int_equal(blob_parse(f->blob, f->len, &whole, &e), 0);
    const size_t pieces[] = {0, 1, 7, 16, 40, 4096, f->len};
    for (size_t k = 0; k < sizeof pieces / sizeof pieces[0]; k++) {
        blob_picker p;
        blob_pick_init(&p, INFER_SECTIONS);
        blob_view v;
        assert_int_equal(pick(f->blob, f->len, pieces[k], &p, &v), 0);
        assert_true(whole.model_hash == v.model_hash);
        assert_true(whole.layout_hash == v.layout_hash);
        for (int id = 1; id <= SEC_COUNT; id++) {
            if ((INFER_SECTIONS & BLOB_PICK_BIT(id)) && whole.sec[id]) {
                assert_non_null(v.sec[id]);
                assert_int_equal(v.len[id], whole.len[id]);
                assert_memory_equal(v.sec[id], whole.sec[id], (size_t)whole.len[id]);
            } else {
                assert_null(v.sec[id]);
            }
        }
        /* It held the kept sections only: no optimizer state. */
        assert_true(p.kept_bytes < whole.len[SEC_OPTIM]);
        assert_true(p.kept_bytes >= whole.len[SEC_PARAMS]);
        blob_pick_free(&p);
    }
}

static void a_model_from_the_picked_sections_predicts_the_same(void **state)
{
    fixture *f = *state;
    blob_picker p;
    blob_pick_init(&p, INFER_SECTIONS);
    blob_view v;
    assert_int_equal(pick(f->blob, f->len, 0, &p, &v), 0);
    infer *a = NULL, *b = NULL;
    an_err e;
    assert_int_equal(infer_create(&a, &f->spec, f->blob, f->len, &e), 0);
    assert_int_equal(infer_create_view(&b, &f->spec, &v, &e), 0);
    blob_pick_free(&p); /* the model owns copies */
    assert_int_equal(a->step, b->step);
    assert_int_equal(a->m->nparams, b->m->nparams);
    assert_memory_equal(a->m->params, b->m->params, a->m->nparams * sizeof(float));
    assert_int_equal(a->nstats, b->nstats);
    assert_memory_equal(a->mean, b->mean, (size_t)a->nstats * sizeof(double));
    infer_free(a);
    infer_free(b);
}

/* Whatever blob_parse rejects, the picker rejects: every truncation, every flipped byte of a
 * blob's head and a sample of the rest, and a byte of padding. */
static void rejects_what_blob_parse_rejects(void **state)
{
    fixture *f = *state;
    an_err e;
    blob_view v;
    for (size_t cut = 0; cut < f->len; cut += (cut < 256 ? 1 : 257)) {
        blob_picker p;
        blob_pick_init(&p, INFER_SECTIONS);
        assert_int_not_equal(blob_parse(f->blob, cut, &v, &e), 0);
        assert_int_not_equal(pick(f->blob, cut, 0, &p, &v), 0);
        blob_pick_free(&p);
    }
    unsigned char *bad = malloc(f->len + 1);
    assert_non_null(bad);
    for (size_t i = 0; i < f->len; i += (i < 512 ? 1 : 131)) {
        memcpy(bad, f->blob, f->len);
        bad[i] ^= 0x10;
        blob_picker p;
        blob_pick_init(&p, INFER_SECTIONS);
        assert_int_not_equal(blob_parse(bad, f->len, &v, &e), 0);
        int rc = pick(bad, f->len, 0, &p, &v);
        if (rc == 0)
            fail_msg("a flipped byte at %zu of %zu was accepted", i, f->len);
        blob_pick_free(&p);
    }
    memcpy(bad, f->blob, f->len);
    bad[f->len] = 0;
    blob_picker p;
    blob_pick_init(&p, INFER_SECTIONS);
    assert_int_not_equal(pick(bad, f->len + 1, 5, &p, &v), 0);
    /* and a picker that failed keeps failing */
    assert_int_not_equal(blob_pick_feed(&p, bad, 1, &e), 0);
    blob_pick_free(&p);
    free(bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(keeps_the_asked_sections_bit_for_bit, setup, teardown),
        cmocka_unit_test_setup_teardown(a_model_from_the_picked_sections_predicts_the_same, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(rejects_what_blob_parse_rejects, setup, teardown),
    };
    return cmocka_run_group_tests_name("blob_pick", tests, NULL, NULL);
}
