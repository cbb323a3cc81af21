/* tests/unit/test_lease.c: a worker's lease on a snapshot (router/lease.c).
 *
 * In-flight counts per endpoint go up and down with its requests and never
 * below zero; the stall clock (waiting_since) starts with the first request
 * waiting for a head, restarts when a head comes while others still wait,
 * and stops when none waits; counters land in the records of the right
 * cluster and endpoint, found by name; picks see the lease's counts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tests/unit/testutil.h"
#include "router/lease.h"
#include "router/stats.h"

static struct mr_stats *stats;
static struct mr_lease *lease;

static int setup(void **state)
{
    struct mr_snapshot *snap = mr_test_load(
        "{" MR_TEST_CONF_HEAD " \"regions\": [{\"name\": \"r1\", \"clusters\": ["
        "   {\"name\": \"a\", \"weight\": 1, \"endpoints\": [\"127.0.0.1:9001\", "
        "\"127.0.0.1:9002\"]},"
        "   {\"name\": \"b\", \"weight\": 1, \"endpoints\": [\"127.0.0.1:9003\"]}]}],"
        " \"routing\": {\"default\": [\"r1\"], \"endpoint_policy\": \"least_requests\"}}");
    (void)state;

    stats = mr_stats_new();
    assert_non_null(stats);
    lease = mr_lease_new(stats, snap);
    assert_non_null(lease);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mr_lease_free(lease);
    mr_stats_free(stats);
    lease = NULL;
    stats = NULL;
    return 0;
}

static const struct mr_endpoint *endpoint(size_t cluster, size_t i)
{
    return &lease->snap->clusters[cluster]->endpoints[i];
}

static void test_counts_up_and_down(void **state)
{
    const struct mr_endpoint *e0 = endpoint(0, 0), *e1 = endpoint(0, 1);
    struct mr_stats_endpoint *es = lease->endpoint_stats[e0->index];
    (void)state;

    assert_non_null(es);
    assert_string_equal(es->cluster, "a");
    assert_string_equal(es->address, "127.0.0.1:9001");
    mr_lease_endpoint_started(lease, e0);
    mr_lease_endpoint_started(lease, e0);
    assert_int_equal(lease->outstanding[e0->index], 2);
    assert_int_equal(lease->outstanding[e1->index], 0);
    assert_int_equal(mr_stats_get(&es->requests), 2);
    assert_int_equal(mr_stats_get(&es->active), 2);
    mr_lease_endpoint_ended(lease, e0);
    assert_int_equal(lease->outstanding[e0->index], 1);
    assert_int_equal(mr_stats_get(&es->active), 1);
    assert_int_equal(mr_stats_get(&es->requests), 2);
    mr_lease_endpoint_ended(lease, e0);
    mr_lease_endpoint_ended(lease, e0); /* one too many: the count stays at 0 */
    assert_int_equal(lease->outstanding[e0->index], 0);
    mr_lease_connect_failed(lease, e1);
    assert_int_equal(mr_stats_get(&lease->endpoint_stats[e1->index]->connect_failures), 1);
    assert_int_equal(mr_stats_get(&es->connect_failures), 0);
}

/* Least requests goes by the lease's counts. */
static void test_pick_sees_the_counts(void **state)
{
    const struct mr_endpoint *e0 = endpoint(0, 0), *e1 = endpoint(0, 1);
    const struct mr_cluster *a = lease->snap->clusters[0];
    (void)state;

    mr_lease_endpoint_started(lease, e0);
    assert_ptr_equal(mr_lease_pick_endpoint(lease, a, NULL), e1);
    mr_lease_endpoint_started(lease, e1);
    mr_lease_endpoint_started(lease, e1);
    assert_ptr_equal(mr_lease_pick_endpoint(lease, a, NULL), e0);
    assert_ptr_equal(mr_lease_pick_endpoint(lease, a, e0), e1);
}

static void test_awaiting_and_stall_clock(void **state)
{
    const struct mr_endpoint *e = endpoint(0, 0);
    size_t i = e->index;
    (void)state;

    mr_lease_await(lease, e, 1000);
    assert_int_equal(lease->awaiting[i], 1);
    assert_int_equal(lease->waiting_since[i], 1000);
    mr_lease_await(lease, e, 1500); /* the clock runs from the first */
    assert_int_equal(lease->awaiting[i], 2);
    assert_int_equal(lease->waiting_since[i], 1000);
    mr_lease_await_end(lease, e, false, 1700); /* gone unanswered: no news */
    assert_int_equal(lease->awaiting[i], 1);
    assert_int_equal(lease->waiting_since[i], 1000);
    mr_lease_await(lease, e, 1800);
    mr_lease_await_end(lease, e, true, 2000); /* a head came: it answers */
    assert_int_equal(lease->awaiting[i], 1);
    assert_int_equal(lease->waiting_since[i], 2000);
    mr_lease_await_end(lease, e, true, 2500);
    assert_int_equal(lease->awaiting[i], 0);
    assert_int_equal(lease->waiting_since[i], 0);
    assert_int_equal(lease->waiting_since[endpoint(0, 1)->index], 0);
}

/* Each cluster has its record, found by name, shared with a later lease. */
static void test_cluster_stats_records(void **state)
{
    const struct mr_cluster *a = lease->snap->clusters[0], *b = lease->snap->clusters[1];
    struct mr_stats_cluster *sa = mr_lease_cluster_stats(lease, a);
    struct mr_stats_cluster *sb = mr_lease_cluster_stats(lease, b);
    (void)state;

    assert_non_null(sa);
    assert_non_null(sb);
    assert_ptr_not_equal(sa, sb);
    assert_string_equal(sa->name, "a");
    assert_string_equal(sb->name, "b");
    assert_ptr_equal(sa, mr_stats_cluster(stats, "a"));
    assert_ptr_equal(mr_lease_cookie_line(lease, a, false) + 1,
                     mr_lease_cookie_line(lease, a, true));
    assert_ptr_not_equal(mr_lease_cookie_line(lease, a, true),
                         mr_lease_cookie_line(lease, b, false));
    assert_int_equal(mr_lease_cookie_line(lease, b, true)->issued_s, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_counts_up_and_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pick_sees_the_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_awaiting_and_stall_clock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_stats_records, setup, teardown),
    };
    return cmocka_run_group_tests(tests, mr_test_keys_setup, mr_test_keys_teardown);
}
