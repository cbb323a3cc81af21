/* tests/unit/test_pick.c: the cluster decision (regions, weights, drain,
 * failover) and the endpoint choice (round robin, least requests, avoid)
 * over snapshots built from JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "conf/conf.h"
#include "conf/snapshot.h"
#include "router/pick.h"

/* 32 bytes, base64: a valid session secret. */
#define SECRET32 "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

static char tmpdir[64];
static char keys_path[128];

static int setup_keys(void **state)
{
    FILE *f;
    (void)state;

    strcpy(tmpdir, "/tmp/meridian-test-pick-XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    snprintf(keys_path, sizeof(keys_path), "%s/session.keys", tmpdir);
    f = fopen(keys_path, "w");
    if (f == NULL)
        return -1;
    fputs("test1:" SECRET32 "\n", f);
    return fclose(f);
}

static int teardown_keys(void **state)
{
    (void)state;
    unlink(keys_path);
    return rmdir(tmpdir);
}

/* The snapshot of the running test, freed by its teardown. */
static struct mr_snapshot *snap;

static int free_snap(void **state)
{
    (void)state;
    mr_snap_free(snap);
    snap = NULL;
    return 0;
}

/* Loads a configuration made of the given "regions" and "routing" members. */
static struct mr_snapshot *load(const char *regions, const char *routing)
{
    struct mr_errors errs = {0};
    char *json;
    int n;

    n = snprintf(NULL, 0, "x%sx%sx", regions, routing);
    json = malloc((size_t)n + 256);
    assert_non_null(json);
    sprintf(json,
            "{\"listeners\": [{\"name\": \"http\", \"address\": \"127.0.0.1:8080\"}],"
            " \"session\": {\"keys_file\": \"session.keys\"},"
            " \"regions\": %s, \"routing\": %s}",
            regions, routing);
    mr_snap_free(snap);
    snap = mr_conf_load_string(json, tmpdir, &errs);
    free(json);
    if (snap == NULL) {
        for (size_t i = 0; i < errs.n_errors; i++)
            fprintf(stderr, "    error: %s\n", errs.errors[i]);
        mr_errors_clear(&errs);
        fail_msg("configuration did not load");
    }
    mr_errors_clear(&errs);
    return snap;
}

/* Clusters are const in a snapshot; drain is a runtime override the tests
 * set by hand. */
static void set_drain(const char *cluster, int drain)
{
    struct mr_cluster *c = (struct mr_cluster *)mr_snap_cluster(snap, cluster);

    assert_non_null(c);
    c->drain = drain;
}

/* splitmix64: a small, good enough generator with a fixed seed. */
static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint64_t next_random(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15u);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

/* A client the (absent) GeoIP database cannot place: routing.default. */
static enum mr_pick_reason pick(uint64_t random, struct mr_decision *d)
{
    struct mr_pick_input in = {.addr = NULL, .now = 1000, .random = random};
    return mr_pick_session(snap, &in, d);
}

static const char *cluster_name(const struct mr_decision *d)
{
    return d->cluster != NULL ? d->cluster->name : "(null)";
}

/* Decides and checks reason, region and cluster (NULL: any of the region). */
static void expect_pick(uint64_t random, enum mr_pick_reason reason, const char *region,
                        const char *cluster)
{
    struct mr_decision d;

    memset(&d, 0x5a, sizeof(d));
    assert_int_equal(pick(random, &d), reason);
    assert_int_equal(d.reason, reason);
    if (region == NULL) {
        assert_null(d.region);
        assert_null(d.cluster);
        return;
    }
    assert_non_null(d.region);
    assert_non_null(d.cluster);
    assert_string_equal(d.region->name, region);
    assert_ptr_equal(d.cluster->region, d.region);
    if (reason == MR_PICK_GEO || reason == MR_PICK_FAILOVER)
        assert_true(mr_pick_takes_new(snap, d.cluster));
    if (cluster != NULL && strcmp(cluster_name(&d), cluster) != 0)
        fail_msg("random %#llx: picked %s, want %s", (unsigned long long)random,
                 cluster_name(&d), cluster);
}

/* ---- reasons ---- */

static void test_reason_names(void **state)
{
    (void)state;
    assert_string_equal(mr_pick_reason_name(MR_PICK_STICKY), "sticky");
    assert_string_equal(mr_pick_reason_name(MR_PICK_GEO), "geo");
    assert_string_equal(mr_pick_reason_name(MR_PICK_FAILOVER), "failover");
    assert_string_equal(mr_pick_reason_name(MR_PICK_FAIL_OPEN), "fail_open");
    assert_string_equal(mr_pick_reason_name(MR_PICK_NONE), "none");
}

/* ---- clusters ---- */

#define TWO_REGIONS                                                                         \
    "[{\"name\": \"eu\", \"clusters\": ["                                                   \
    "   {\"name\": \"eu-a\", \"weight\": 1, \"endpoints\": [\"127.0.0.1:9001\"]},"          \
    "   {\"name\": \"eu-b\", \"weight\": 3, \"endpoints\": [\"127.0.0.1:9002\"]}]},"        \
    " {\"name\": \"us\", \"clusters\": ["                                                   \
    "   {\"name\": \"us-a\", \"endpoints\": [\"127.0.0.1:9101\"]}]}]"

static void test_first_default_region_is_geo(void **state)
{
    (void)state;
    load(TWO_REGIONS, "{\"default\": [\"eu\", \"us\"]}");
    expect_pick(0, MR_PICK_GEO, "eu", NULL);
    expect_pick(UINT64_MAX, MR_PICK_GEO, "eu", NULL);
    for (int i = 0; i < 1000; i++)
        expect_pick(next_random(), MR_PICK_GEO, "eu", NULL);

    /* The order of routing.default decides, not the order of regions. */
    load(TWO_REGIONS, "{\"default\": [\"us\", \"eu\"]}");
    for (int i = 0; i < 1000; i++)
        expect_pick(next_random(), MR_PICK_GEO, "us", "us-a");
}

static void test_weights_proportional(void **state)
{
    enum { N = 200000 };
    static const char *const names[] = {"w1", "w0a", "w3", "w6", "w0b"};
    static const double expect[] = {0.1, 0, 0.3, 0.6, 0};
    size_t counts[5] = {0};
    (void)state;

    load("[{\"name\": \"r\", \"clusters\": ["
         "  {\"name\": \"w1\", \"weight\": 1, \"endpoints\": [\"127.0.0.1:9001\"]},"
         "  {\"name\": \"w0a\", \"weight\": 0, \"endpoints\": [\"127.0.0.1:9002\"]},"
         "  {\"name\": \"w3\", \"weight\": 3, \"endpoints\": [\"127.0.0.1:9003\"]},"
         "  {\"name\": \"w6\", \"weight\": 6, \"endpoints\": [\"127.0.0.1:9004\"]},"
         "  {\"name\": \"w0b\", \"weight\": 0, \"endpoints\": [\"127.0.0.1:9005\"]}]}]",
         "{\"default\": [\"r\"]}");
    for (int i = 0; i < N; i++) {
        struct mr_decision d;
        size_t k;

        assert_int_equal(pick(next_random(), &d), MR_PICK_GEO);
        for (k = 0; k < 5; k++)
            if (strcmp(d.cluster->name, names[k]) == 0)
                break;
        assert_true(k < 5);
        counts[k]++;
    }
    for (size_t k = 0; k < 5; k++) {
        double share = (double)counts[k] / N;
        if (share < expect[k] - 0.02 || share > expect[k] + 0.02)
            fail_msg("%s: share %.4f, want %.2f", names[k], share, expect[k]);
    }
    assert_int_equal(counts[1], 0);
    assert_int_equal(counts[4], 0);

    /* The ends of the random range land on eligible clusters: the lowest on
     * the first, the highest never on the trailing weight-0 one. */
    expect_pick(0, MR_PICK_GEO, "r", "w1");
    expect_pick(UINT64_MAX, MR_PICK_GEO, "r", "w6");
    expect_pick(UINT64_MAX - 1, MR_PICK_GEO, "r", "w6");
}

static void test_fractional_weights(void **state)
{
    enum { N = 100000 };
    size_t small = 0;
    (void)state;

    load("[{\"name\": \"r\", \"clusters\": ["
         "  {\"name\": \"a\", \"weight\": 0.25, \"endpoints\": [\"127.0.0.1:9001\"]},"
         "  {\"name\": \"b\", \"weight\": 0.75, \"endpoints\": [\"127.0.0.1:9002\"]}]}]",
         "{\"default\": [\"r\"]}");
    for (int i = 0; i < N; i++) {
        struct mr_decision d;
        pick(next_random(), &d);
        small += strcmp(cluster_name(&d), "a") == 0;
    }
    assert_true(small > N * 0.23 && small < N * 0.27);
}

static void test_failover_when_first_region_has_no_weight(void **state)
{
    (void)state;
    load("[{\"name\": \"eu\", \"clusters\": ["
         "   {\"name\": \"eu-a\", \"weight\": 0, \"endpoints\": [\"127.0.0.1:9001\"]},"
         "   {\"name\": \"eu-b\", \"weight\": 0, \"endpoints\": [\"127.0.0.1:9002\"]}]},"
         " {\"name\": \"ap\", \"clusters\": ["
         "   {\"name\": \"ap-a\", \"weight\": 0, \"endpoints\": [\"127.0.0.1:9201\"]}]},"
         " {\"name\": \"us\", \"clusters\": ["
         "   {\"name\": \"us-a\", \"weight\": 0, \"endpoints\": [\"127.0.0.1:9101\"]},"
         "   {\"name\": \"us-b\", \"weight\": 2, \"endpoints\": [\"127.0.0.1:9102\"]}]}]",
         "{\"default\": [\"eu\", \"ap\", \"us\"]}");
    expect_pick(0, MR_PICK_FAILOVER, "us", "us-b");
    expect_pick(UINT64_MAX, MR_PICK_FAILOVER, "us", "us-b");
    for (int i = 0; i < 1000; i++)
        expect_pick(next_random(), MR_PICK_FAILOVER, "us", "us-b");
}

static void test_fail_open_when_nothing_takes_new(void **state)
{
    (void)state;
    load("[{\"name\": \"eu\", \"clusters\": ["
         "   {\"name\": \"eu-a\", \"weight\": 0, \"endpoints\": [\"127.0.0.1:9001\"]}]},"
         " {\"name\": \"us\", \"clusters\": ["
         "   {\"name\": \"us-a\", \"weight\": 0, \"endpoints\": [\"127.0.0.1:9101\"]}]},"
         " {\"name\": \"ap\", \"clusters\": ["
         "   {\"name\": \"ap-a\", \"weight\": 5, \"endpoints\": [\"127.0.0.1:9201\"]}]}]",
         "{\"default\": [\"eu\", \"us\"]}");
    /* No candidate takes new sessions: fail open to the first candidate
     * cluster with an endpoint up (no health attached: all up), never to
     * an error. */
    expect_pick(0, MR_PICK_FAIL_OPEN, "eu", "eu-a");
    expect_pick(UINT64_MAX, MR_PICK_FAIL_OPEN, "eu", "eu-a");
    for (int i = 0; i < 100; i++)
        expect_pick(next_random(), MR_PICK_FAIL_OPEN, "eu", "eu-a");
}

static void test_drained_clusters(void **state)
{
    const struct mr_cluster *eu_a, *eu_b;
    (void)state;

    load(TWO_REGIONS, "{\"default\": [\"eu\", \"us\"]}");
    eu_a = mr_snap_cluster(snap, "eu-a");
    eu_b = mr_snap_cluster(snap, "eu-b");
    assert_true(mr_pick_takes_new(snap, eu_a));
    assert_true(mr_pick_takes_new(snap, eu_b));

    /* One drained: the other takes everything, still "geo". */
    set_drain("eu-b", MR_DRAIN_SOFT);
    assert_false(mr_pick_takes_new(snap, eu_b));
    assert_true(mr_pick_takes_new(snap, eu_a));
    expect_pick(UINT64_MAX, MR_PICK_GEO, "eu", "eu-a");
    for (int i = 0; i < 1000; i++)
        expect_pick(next_random(), MR_PICK_GEO, "eu", "eu-a");

    /* Both drained (softly or hard): the next region. */
    set_drain("eu-a", MR_DRAIN_HARD);
    assert_false(mr_pick_takes_new(snap, eu_a));
    for (int i = 0; i < 1000; i++)
        expect_pick(next_random(), MR_PICK_FAILOVER, "us", "us-a");

    /* And everything drained: fail open to a cluster that is up. */
    set_drain("us-a", MR_DRAIN_SOFT);
    expect_pick(next_random(), MR_PICK_FAIL_OPEN, "eu", "eu-a");

    /* Undrained, back to normal. */
    set_drain("eu-a", MR_DRAIN_NONE);
    set_drain("eu-b", MR_DRAIN_NONE);
    set_drain("us-a", MR_DRAIN_NONE);
    expect_pick(next_random(), MR_PICK_GEO, "eu", NULL);
}

static void test_takes_new_weight(void **state)
{
    struct mr_cluster *c;
    (void)state;

    load(TWO_REGIONS, "{\"default\": [\"eu\", \"us\"]}");
    c = (struct mr_cluster *)mr_snap_cluster(snap, "eu-a");
    c->weight = 0;
    assert_false(mr_pick_takes_new(snap, c));
    c->weight = 0.001;
    assert_true(mr_pick_takes_new(snap, c));
    c->drain = MR_DRAIN_SOFT;
    assert_false(mr_pick_takes_new(snap, c));
}

/* ---- endpoints ---- */

/* "one" has one endpoint (index 0); "three" has three, at indices 1..3, so
 * a mix-up of the cluster's and the snapshot's numbering shows. */
#define ENDPOINT_REGIONS                                                                    \
    "[{\"name\": \"r\", \"clusters\": ["                                                    \
    "   {\"name\": \"one\", \"endpoints\": [\"127.0.0.1:9001\"]},"                          \
    "   {\"name\": \"three\", \"endpoints\": [\"127.0.0.1:9101\", \"127.0.0.1:9102\","      \
    "                                      \"[::1]:9103\"]}]}]"

static const struct mr_cluster *three;
static const struct mr_cluster *one;

static void load_endpoints(const char *policy)
{
    char routing[128];

    snprintf(routing, sizeof(routing), "{\"default\": [\"r\"], \"endpoint_policy\": \"%s\"}",
             policy);
    load(ENDPOINT_REGIONS, routing);
    one = mr_snap_cluster(snap, "one");
    three = mr_snap_cluster(snap, "three");
    assert_non_null(one);
    assert_non_null(three);
    assert_int_equal(snap->n_endpoints, 4);
    assert_int_equal(three->n_endpoints, 3);
    assert_int_equal(three->endpoints[0].index, 1);
    assert_int_equal(three->endpoints[2].index, 3);
}

/* Position of e within three, or -1. */
static int pos(const struct mr_endpoint *e)
{
    for (size_t i = 0; i < three->n_endpoints; i++)
        if (e == &three->endpoints[i])
            return (int)i;
    return -1;
}

static void test_round_robin_cycles(void **state)
{
    uint32_t outstanding[4] = {9, 0, 100, 0};
    uint32_t cursor = 0;
    (void)state;

    load_endpoints("round_robin");
    assert_int_equal(snap->routing.endpoint_policy, MR_POLICY_ROUND_ROBIN);
    /* In order, round and round, whatever is outstanding. */
    for (int i = 0; i < 30; i++) {
        const struct mr_endpoint *e =
            mr_pick_endpoint(three, MR_POLICY_ROUND_ROBIN, outstanding, &cursor, NULL);
        assert_int_equal(pos(e), i % 3);
        assert_true(cursor < 3);
    }
    /* From any cursor, n picks see every endpoint once. */
    for (uint32_t start = 0; start < 3; start++) {
        bool seen[3] = {false, false, false};
        cursor = start;
        for (int i = 0; i < 3; i++) {
            int p = pos(mr_pick_endpoint(three, MR_POLICY_ROUND_ROBIN, outstanding, &cursor,
                                         NULL));
            assert_true(p >= 0);
            assert_false(seen[p]);
            seen[p] = true;
        }
    }
}

static void test_least_requests(void **state)
{
    /* By snapshot index: [0] is "one"'s endpoint, [1..3] "three"'s. */
    uint32_t outstanding[4] = {0, 5, 0, 5};
    uint32_t cursor = 0;
    (void)state;

    load_endpoints("least_requests");
    assert_int_equal(snap->routing.endpoint_policy, MR_POLICY_LEAST_REQUESTS);
    for (int i = 0; i < 9; i++)
        assert_int_equal(pos(mr_pick_endpoint(three, MR_POLICY_LEAST_REQUESTS, outstanding,
                                              &cursor, NULL)),
                         1);
    outstanding[1] = 3;
    outstanding[2] = 4;
    outstanding[3] = 1;
    for (int i = 0; i < 9; i++)
        assert_int_equal(pos(mr_pick_endpoint(three, MR_POLICY_LEAST_REQUESTS, outstanding,
                                              &cursor, NULL)),
                         2);
}

static void test_least_requests_ties_rotate(void **state)
{
    uint32_t outstanding[4] = {7, 2, 2, 2};
    uint32_t cursor = 0;
    unsigned counts[3] = {0, 0, 0};
    (void)state;

    load_endpoints("least_requests");
    /* All equal: each in turn, like round robin. */
    for (int i = 0; i < 30; i++) {
        int p = pos(mr_pick_endpoint(three, MR_POLICY_LEAST_REQUESTS, outstanding, &cursor,
                                     NULL));
        assert_int_equal(p, i % 3);
    }
    /* Two tied at the minimum: both get picks, the other none. */
    outstanding[2] = 9;
    for (int i = 0; i < 30; i++)
        counts[pos(mr_pick_endpoint(three, MR_POLICY_LEAST_REQUESTS, outstanding, &cursor,
                                    NULL))]++;
    assert_int_equal(counts[1], 0);
    assert_true(counts[0] >= 10);
    assert_true(counts[2] >= 10);
}

static void test_avoid(void **state)
{
    uint32_t outstanding[4] = {0, 0, 0, 0};
    static const enum mr_endpoint_policy policies[] = {MR_POLICY_ROUND_ROBIN,
                                                       MR_POLICY_LEAST_REQUESTS};
    (void)state;

    load_endpoints("least_requests");
    for (size_t pi = 0; pi < 2; pi++) {
        for (size_t a = 0; a < 3; a++) {
            const struct mr_endpoint *avoid = &three->endpoints[a];
            for (uint32_t start = 0; start < 3; start++) {
                uint32_t cursor = start;
                const struct mr_endpoint *e =
                    mr_pick_endpoint(three, policies[pi], outstanding, &cursor, avoid);
                assert_non_null(e);
                assert_ptr_not_equal(e, avoid);
                assert_true(pos(e) >= 0);
            }
        }
    }
    /* Least requests skips the least loaded one when told to avoid it, and
     * takes the next least. */
    outstanding[1] = 4;
    outstanding[2] = 0;
    outstanding[3] = 1;
    for (uint32_t start = 0; start < 3; start++) {
        uint32_t cursor = start;
        assert_int_equal(pos(mr_pick_endpoint(three, MR_POLICY_LEAST_REQUESTS, outstanding,
                                              &cursor, &three->endpoints[1])),
                         2);
    }
    /* Round robin at the avoided one moves on to the next. */
    {
        uint32_t cursor = 1;
        assert_int_equal(pos(mr_pick_endpoint(three, MR_POLICY_ROUND_ROBIN, outstanding,
                                              &cursor, &three->endpoints[1])),
                         2);
    }
    /* Avoiding the only endpoint leaves none: the caller decides. */
    for (size_t pi = 0; pi < 2; pi++) {
        uint32_t cursor = 0;
        assert_null(mr_pick_endpoint(one, policies[pi], outstanding, &cursor,
                                     &one->endpoints[0]));
        assert_ptr_equal(mr_pick_endpoint(one, policies[pi], outstanding, &cursor, NULL),
                         &one->endpoints[0]);
    }
}

static void test_no_endpoints(void **state)
{
    struct mr_cluster empty;
    uint32_t cursor = 0;
    (void)state;

    memset(&empty, 0, sizeof(empty));
    assert_null(mr_pick_endpoint(&empty, MR_POLICY_ROUND_ROBIN, NULL, &cursor, NULL));
    assert_null(mr_pick_endpoint(&empty, MR_POLICY_LEAST_REQUESTS, NULL, &cursor, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reason_names),
        cmocka_unit_test_teardown(test_first_default_region_is_geo, free_snap),
        cmocka_unit_test_teardown(test_weights_proportional, free_snap),
        cmocka_unit_test_teardown(test_fractional_weights, free_snap),
        cmocka_unit_test_teardown(test_failover_when_first_region_has_no_weight, free_snap),
        cmocka_unit_test_teardown(test_fail_open_when_nothing_takes_new, free_snap),
        cmocka_unit_test_teardown(test_drained_clusters, free_snap),
        cmocka_unit_test(test_takes_new_weight),
        cmocka_unit_test_teardown(test_round_robin_cycles, free_snap),
        cmocka_unit_test_teardown(test_least_requests, free_snap),
        cmocka_unit_test_teardown(test_least_requests_ties_rotate, free_snap),
        cmocka_unit_test_teardown(test_avoid, free_snap),
        cmocka_unit_test(test_no_endpoints),
    };
    return cmocka_run_group_tests(tests, setup_keys, teardown_keys);
}
