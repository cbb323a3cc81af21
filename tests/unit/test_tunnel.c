/* tests/unit/test_tunnel.c: when an upgraded connection ends
 * (router/tunnel.c): idle past tunnel_idle_ms, checked at least every
 * MR_TUNNEL_CHECK_MS; and a hard drain of its cluster, without a deadline
 * or past it, while soft drains and other clusters' drains leave it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/unit/testutil.h"
#include "router/tunnel.h"

static void test_next_check(void **state)
{
    static const struct {
        int64_t idle_ms;
        int limit_ms, next_ms;
    } cases[] = {
        {0, 300000, MR_TUNNEL_CHECK_MS}, /* a fresh tunnel: checked every second */
        {299500, 300000, 500},           /* the rest of its idle time */
        {299999, 300000, 1},
        {300000, 300000, 0}, /* idle for the limit: it ends */
        {400000, 300000, 0},
        {0, 200, 200}, /* a limit under a second */
        {150, 200, 50},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (mr_tunnel_next_check_ms(cases[i].idle_ms, cases[i].limit_ms) != cases[i].next_ms)
            fail_msg("idle %lld of %d ms: expected %d", (long long)cases[i].idle_ms,
                     cases[i].limit_ms, cases[i].next_ms);
}

static void test_drained(void **state)
{
    struct mr_snapshot *snap = mr_test_load(
        "{" MR_TEST_CONF_HEAD " \"regions\": [{\"name\": \"r1\", \"clusters\": ["
        "   {\"name\": \"a\", \"weight\": 1, \"endpoints\": [\"127.0.0.1:9001\"]},"
        "   {\"name\": \"b\", \"weight\": 1, \"endpoints\": [\"127.0.0.1:9002\"]}]}],"
        " \"routing\": {\"default\": [\"r1\"]}}");
    /* Clusters are const in a snapshot; drains are overrides, set by hand. */
    struct mr_cluster *a = (struct mr_cluster *)mr_snap_cluster(snap, "a");
    (void)state;

    assert_non_null(a);
    assert_false(mr_tunnel_drained(snap, "a", 1000));
    a->drain = MR_DRAIN_SOFT;
    a->drain_deadline_s = 0;
    assert_false(mr_tunnel_drained(snap, "a", 1000));
    a->drain_deadline_s = 900; /* a soft drain past its deadline: still not cut */
    assert_false(mr_tunnel_drained(snap, "a", 1000));
    a->drain = MR_DRAIN_HARD;
    a->drain_deadline_s = 0;
    assert_true(mr_tunnel_drained(snap, "a", 1000));
    assert_false(mr_tunnel_drained(snap, "b", 1000));
    a->drain_deadline_s = 2000;
    assert_false(mr_tunnel_drained(snap, "a", 1999));
    assert_true(mr_tunnel_drained(snap, "a", 2000));
    assert_false(mr_tunnel_drained(snap, "gone", 3000)); /* left the configuration */
    mr_snap_free(snap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_next_check),
        cmocka_unit_test(test_drained),
    };
    return cmocka_run_group_tests(tests, mr_test_keys_setup, mr_test_keys_teardown);
}
