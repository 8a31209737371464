/* Tests of api/sse.c: frame layout, the ring of recent events and what replay can promise. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <microhttpd.h>

#include "api/sse.h"

static void frame_has_event_id_data_and_blank_line(void **state)
{
    (void)state;
    char buf[256];
    size_t n = sse_frame(buf, sizeof buf, "progress", 42, "{\"step\":3}");
    assert_string_equal(buf, "event: progress\nid: 42\ndata: {\"step\":3}\n\n");
    assert_int_equal(n, strlen(buf));
}

static void frame_reports_needed_length_when_short(void **state)
{
    (void)state;
    char small[8];
    size_t need = sse_frame(small, sizeof small, "state", 1234567890123ULL, "{}");
    assert_int_equal(need, strlen("event: state\nid: 1234567890123\ndata: {}\n\n"));
    assert_int_equal(small[sizeof small - 1], '\0'); /* truncated, still terminated */
}

static void published_data_is_one_line(void **state)
{
    (void)state;
    sse_hub h;
    assert_int_equal(sse_hub_init(&h, 4, 1000), 0);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "error", "line one\nline two"); /* must be escaped */
    uint64_t id = sse_publish(&h, "j_1", "state", d);
    cJSON_Delete(d);
    assert_int_equal(id, 1000);
    const sse_event *e = &h.ring[h.ring_head];
    /* exactly the 3 field lines and the blank line: 4 newlines */
    int nl = 0;
    for (size_t i = 0; i < e->len; i++)
        nl += e->frame[i] == '\n';
    assert_int_equal(nl, 4);
    assert_non_null(strstr(e->frame, "id: 1000\n"));
    assert_non_null(strstr(e->frame, "line one\\nline two"));
    sse_hub_close(&h);
}

static void ids_increase_and_ring_keeps_the_newest(void **state)
{
    (void)state;
    sse_hub h;
    assert_int_equal(sse_hub_init(&h, 3, 10), 0);
    cJSON *d = cJSON_CreateObject();
    for (int i = 0; i < 5; i++)
        assert_int_equal(sse_publish(&h, i % 2 ? "j_2" : "j_1", "progress", d), 10 + (uint64_t)i);
    cJSON_Delete(d);
    assert_int_equal(sse_last_id(&h), 14);
    assert_int_equal(h.ring_len, 3);
    assert_int_equal(h.ring[h.ring_head].id, 12); /* oldest kept */
    sse_hub_close(&h);
}

static void replay_is_possible_only_within_the_ring(void **state)
{
    (void)state;
    sse_hub h;
    assert_int_equal(sse_hub_init(&h, 3, 100), 0);
    assert_false(sse_can_replay(&h, "", 50)); /* nothing published, id unknown */
    cJSON *d = cJSON_CreateObject();
    for (int i = 0; i < 5; i++) /* ids 100..104, ring keeps 102..104 */
        sse_publish(&h, "j_1", "progress", d);
    cJSON_Delete(d);
    assert_true(sse_can_replay(&h, "", 104));  /* up to date */
    assert_true(sse_can_replay(&h, "", 103));
    assert_true(sse_can_replay(&h, "", 101));  /* next wanted is 102, still there */
    assert_false(sse_can_replay(&h, "", 100)); /* 101 was dropped */
    assert_false(sse_can_replay(&h, "", 105)); /* from the future: not ours */
    sse_hub_close(&h);
}

/* An event's data of about 64 KiB. */
static cJSON *big_event(void)
{
    cJSON *d = cJSON_CreateObject();
    char *big = malloc(64 * 1024);
    assert_non_null(big);
    memset(big, 'x', 64 * 1024 - 1);
    big[64 * 1024 - 1] = '\0';
    cJSON_AddStringToObject(d, "pad", big);
    free(big);
    return d;
}

/* A replay larger than half a client's buffer is refused (the snapshot is sent instead): it
 * would drop the client as it opens, and its reconnect would ask for the same again. */
static void a_replay_too_large_for_the_buffer_is_refused(void **state)
{
    (void)state;
    sse_hub h;
    assert_int_equal(sse_hub_init(&h, 64, 1), 0);
    cJSON *d = big_event();
    for (int i = 0; i < 12; i++) /* ids 1..12, 64 KiB each: 768 KiB in all */
        sse_publish(&h, "j_1", "progress", d);
    cJSON_Delete(d);
    assert_true(sse_can_replay(&h, "", 5));  /* 7 frames, 448 KiB: under half a buffer */
    assert_false(sse_can_replay(&h, "", 3)); /* 9 frames, 576 KiB: over it */
    assert_false(sse_can_replay(&h, "", 0));
    /* a stream of another job takes none of them: its replay is empty, and allowed */
    assert_true(sse_can_replay(&h, "j_2", 0));
    assert_false(sse_can_replay(&h, "j_1", 0));
    sse_client *c = NULL;
    struct MHD_Response *resp = sse_client_open(&h, NULL, "", 1, 5, &c);
    assert_non_null(resp);
    assert_false(c->dropped); /* the replay that was allowed fits */
    MHD_destroy_response(resp);
    sse_hub_close(&h);
}

static void a_reader_far_behind_is_dropped_and_its_buffer_freed(void **state)
{
    (void)state;
    sse_hub h;
    assert_int_equal(sse_hub_init(&h, 4, 1), 0);
    sse_client *c = NULL;
    struct MHD_Response *resp = sse_client_open(&h, NULL, "", 0, 0, &c);
    assert_non_null(resp);
    assert_int_equal(h.nclients, 1);
    cJSON *d = big_event();
    /* Nobody reads: 15 events of 64 KiB stay under the 1 MiB limit, the 16th passes it. */
    for (int i = 0; i < 15; i++)
        sse_publish(&h, "j_1", "progress", d);
    assert_false(c->dropped);
    assert_true(c->len - c->off > 15 * 64 * 1024 - 1);
    for (int i = 0; i < 2; i++)
        sse_publish(&h, "j_1", "progress", d);
    assert_true(c->dropped);
    assert_null(c->buf); /* freed now, not drained */
    assert_int_equal(c->len, 0);
    sse_publish(&h, "j_1", "progress", d); /* nothing more is queued for it */
    assert_null(c->buf);
    cJSON_Delete(d);
    MHD_destroy_response(resp); /* frees the client */
    assert_int_equal(h.nclients, 0);
    sse_hub_close(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(frame_has_event_id_data_and_blank_line),
        cmocka_unit_test(frame_reports_needed_length_when_short),
        cmocka_unit_test(published_data_is_one_line),
        cmocka_unit_test(ids_increase_and_ring_keeps_the_newest),
        cmocka_unit_test(replay_is_possible_only_within_the_ring),
        cmocka_unit_test(a_reader_far_behind_is_dropped_and_its_buffer_freed),
        cmocka_unit_test(a_replay_too_large_for_the_buffer_is_refused),
    };
    return cmocka_run_group_tests_name("api_sse", tests, NULL, NULL);
}
