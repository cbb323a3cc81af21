/* tests/unit/test_history.c: the change history ring (wrap, the entry undo
 * reverts) and the audit log (written then loaded gives the same history;
 * lines that do not parse or name no change are skipped). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <jansson.h>

#include "tests/unit/testutil.h"

#include "control/history.h"

/* 2026-11-18T...: a time with ms to keep. */
#define T0 1795000000123

/* The history of the running test and its audit log, removed by teardown. */
static struct mr_history history;
static char audit_path[64];

static int setup(void **state)
{
    int fd;

    (void)state;
    memset(&history, 0, sizeof(history));
    strcpy(audit_path, "/tmp/meridian-audit-XXXXXX");
    fd = mkstemp(audit_path);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mr_history_clear(&history);
    unlink(audit_path);
    return 0;
}

static struct mr_change *record_weight(struct mr_history *h, const char *cluster, double weight,
                                       double was, uint64_t generation)
{
    return mr_history_record(h, T0 + (int64_t)generation, "weight", cluster,
                             json_pack("{s:n, s:f}", "drain", "weight", weight),
                             json_pack("{s:n, s:f}", "drain", "weight", was), generation,
                             generation + 1);
}

/* The ring keeps the newest MR_HISTORY_SIZE entries, newest at age 0. */
static void test_ring_wraps_at_its_size(void **state)
{
    (void)state;
    for (int i = 0; i < MR_HISTORY_SIZE + 5; i++)
        record_weight(&history, "eu-a", i, i - 1, (uint64_t)i);
    assert_int_equal(history.len, MR_HISTORY_SIZE);
    assert_int_equal(mr_history_at(&history, 0)->seq, MR_HISTORY_SIZE + 5);
    assert_int_equal(mr_history_at(&history, 0)->generation_before, MR_HISTORY_SIZE + 4);
    assert_int_equal(mr_history_at(&history, MR_HISTORY_SIZE - 1)->seq, 6);
    assert_null(mr_history_at(&history, MR_HISTORY_SIZE));
    /* Sequence numbers go on after the wrap. */
    assert_int_equal(record_weight(&history, "eu-a", 1, 0, 1)->seq, MR_HISTORY_SIZE + 6);
    assert_int_equal(mr_history_at(&history, MR_HISTORY_SIZE - 1)->seq, 7);
}

/* Undo takes the newest change not undone, never an undo itself. */
static void test_undo_finds_the_newest_change_not_undone(void **state)
{
    struct mr_change *first, *second, *undo;

    (void)state;
    assert_null(mr_history_undo_target(&history));
    first = record_weight(&history, "eu-a", 2, 1, 1);
    second = mr_history_record(&history, T0, "drain", "us-a",
                               json_pack("{s:{s:s, s:i}, s:f}", "drain", "mode", "soft", "deadline",
                                         0, "weight", 1.0),
                               json_pack("{s:n, s:f}", "drain", "weight", 1.0), 2, 3);
    assert_ptr_equal(mr_history_undo_target(&history), second);
    second->undone = true;
    undo = mr_history_record(&history, T0, "undo", "us-a", json_pack("{s:I}", "undid", 2), NULL, 3,
                             4);
    assert_ptr_not_equal(mr_history_undo_target(&history), undo);
    assert_ptr_equal(mr_history_undo_target(&history), first);
    assert_int_equal(mr_history_undo_target(&history)->seq, 1);
    first->undone = true;
    assert_null(mr_history_undo_target(&history));
}

/* Every change appended, then loaded into a new history, gives the same
 * API view: seq, time to the ms, values, generations, undone. */
static void test_audit_log_round_trip(void **state)
{
    struct mr_history loaded = {0};
    struct mr_change *c;
    json_t *want, *got;

    (void)state;
    c = record_weight(&history, "eu-a", 3, 1, 1);
    mr_history_append(audit_path, c);
    c = mr_history_record(&history, T0, "reload", NULL, json_pack("{s:s}", "file", "edge.json"),
                          NULL, 2, 3);
    mr_history_append(audit_path, c);
    c = record_weight(&history, "us-a", 0.5, 1, 3);
    mr_history_append(audit_path, c);
    /* Undo of seq 3: the change's own line stays "undone": false. */
    c->undone = true;
    mr_history_append(audit_path,
                      mr_history_record(&history, T0, "undo", "us-a",
                                        json_pack("{s:I, s:f}", "undid", 3, "weight", 1.0),
                                        json_pack("{s:n, s:f}", "drain", "weight", 0.5), 4, 5));

    mr_history_load(&loaded, audit_path);
    want = mr_history_json(&history);
    got = mr_history_json(&loaded);
    if (!json_equal(want, got)) {
        char *a = json_dumps(want, JSON_INDENT(1)), *b = json_dumps(got, JSON_INDENT(1));
        print_error("want %s\ngot %s\n", a, b);
        free(a);
        free(b);
        fail();
    }
    assert_int_equal(loaded.len, 4);
    assert_int_equal(mr_history_at(&loaded, 3)->time_ms, T0 + 1);
    assert_true(mr_history_at(&loaded, 1)->undone);
    /* Numbering goes on after the newest loaded. */
    assert_int_equal(record_weight(&loaded, "eu-a", 1, 3, 5)->seq, 5);
    json_decref(want);
    json_decref(got);
    mr_history_clear(&loaded);
}

/* A line that is not JSON or names no change is skipped; the rest load. */
static void test_malformed_audit_lines_are_skipped(void **state)
{
    (void)state;
    mr_test_write_text(audit_path,
                       "{\"seq\": 4, \"time\": \"2026-11-27T08:24:35.982Z\", \"change\": \"drain\","
                       " \"cluster\": \"eu-a\", \"value\": {\"drain\": null, \"weight\": 1},"
                       " \"generation_before\": 1, \"generation_after\": 2, \"undone\": false}\n"
                       "not json at all\n"
                       "{\"seq\": 9, \"cluster\": \"eu-a\"}\n"
                       "\n"
                       "{\"seq\": 7, \"time\": \"garbage\", \"change\": \"reload\","
                       " \"generation_before\": 2, \"generation_after\": 3, \"undone\": true}\n");
    mr_history_load(&history, audit_path);
    assert_int_equal(history.len, 2);
    assert_int_equal(mr_history_at(&history, 1)->seq, 4);
    assert_string_equal(mr_history_at(&history, 1)->kind, "drain");
    assert_string_equal(mr_history_at(&history, 1)->cluster, "eu-a");
    assert_int_equal(mr_history_at(&history, 1)->time_ms, 1795767875982);
    assert_int_equal(mr_history_at(&history, 0)->seq, 7);
    assert_string_equal(mr_history_at(&history, 0)->cluster, "");
    assert_int_equal(mr_history_at(&history, 0)->time_ms, 0);
    assert_true(mr_history_at(&history, 0)->undone);
    /* The skipped seq 9 does not count: the next change is 8. */
    assert_int_equal(record_weight(&history, "eu-a", 1, 1, 3)->seq, 8);
}

static void test_missing_audit_log_loads_nothing(void **state)
{
    (void)state;
    unlink(audit_path);
    mr_history_load(&history, audit_path);
    mr_history_load(&history, NULL);
    assert_int_equal(history.len, 0);
    assert_null(mr_history_at(&history, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ring_wraps_at_its_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_undo_finds_the_newest_change_not_undone, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_audit_log_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_audit_lines_are_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_audit_log_loads_nothing, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
