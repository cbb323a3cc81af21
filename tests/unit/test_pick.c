/* tests/unit/test_pick.c: the cluster decision (regions, weights, drain,
 * failover, stickiness, health, exclusion, GeoIP) and the endpoint choice
 * (round robin, least requests, avoid, down endpoints) over snapshots built
 * from JSON. The GeoIP case reads the database `make testdata` writes: from
 * $MERIDIAN_TESTDATA, else ../testdata beside this binary, else
 * build/release/testdata. */
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
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

#include "tests/unit/testutil.h"

#include "common/err.h"
#include "common/log.h"
#include "conf/conf.h"
#include "conf/snapshot.h"
#include "geo/geoip.h"
#include "health/health.h"
#include "health/passive.h"
#include "router/pick.h"

/* 32 bytes, base64: a valid session secret. */



/* The snapshot of the running test, freed by its teardown, and the health
 * registry attached to it (NULL when the test attaches none). */
static struct mr_snapshot *snap;
static struct mr_health *health;

static int free_snap(void **state)
{
    (void)state;
    mr_snap_free(snap);
    snap = NULL;
    mr_health_free(health);
    health = NULL;
    return 0;
}

/* Loads a configuration made of the given "regions" and "routing" members
 * and extra top-level members ("" or "\"health\": {...}, "). */
static struct mr_snapshot *load_with(const char *extra, const char *regions,
                                     const char *routing)
{
    char *json;
    int n;

    n = snprintf(NULL, 0, "x%sx%sx%sx", extra, regions, routing);
    json = malloc((size_t)n + 256);
    assert_non_null(json);
    sprintf(json,
            "{\"listeners\": [{\"name\": \"http\", \"address\": \"127.0.0.1:8080\"}],"
            " \"session\": {\"keys_file\": \"session.keys\"}, %s"
            " \"regions\": %s, \"routing\": %s}",
            extra, regions, routing);
    mr_snap_free(snap);
    snap = mr_test_load(json);
    free(json);
    return snap;
}

static struct mr_snapshot *load(const char *regions, const char *routing)
{
    return load_with("", regions, routing);
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
    uint32_t outstanding[4] = {900, 0, 2, 1};
    uint32_t cursor = 0;
    (void)state;

    load_endpoints("round_robin");
    assert_int_equal(snap->routing.endpoint_policy, MR_POLICY_ROUND_ROBIN);
    /* In order, round and round, within twice the least outstanding + 2. */
    for (int i = 0; i < 30; i++) {
        const struct mr_endpoint *e =
            mr_pick_endpoint(three, MR_POLICY_ROUND_ROBIN, outstanding, NULL, &cursor, NULL);
        assert_int_equal(pos(e), i % 3);
        assert_true(cursor < 3);
    }
    /* From any cursor, n picks see every endpoint once. */
    for (uint32_t start = 0; start < 3; start++) {
        bool seen[3] = {false, false, false};
        cursor = start;
        for (int i = 0; i < 3; i++) {
            int p = pos(mr_pick_endpoint(three, MR_POLICY_ROUND_ROBIN, outstanding, NULL, &cursor,
                                         NULL));
            assert_true(p >= 0);
            assert_false(seen[p]);
            seen[p] = true;
        }
    }
}

/* Round robin passes over an endpoint that collects requests without
 * finishing them (an origin stopped while its kernel still accepts). */
static void test_round_robin_skips_piled_up(void **state)
{
    uint32_t outstanding[4] = {0, 2, 13, 5};
    uint32_t cursor = 0;
    unsigned counts[3] = {0, 0, 0};
    (void)state;

    load_endpoints("round_robin");
    for (int i = 0; i < 30; i++)
        counts[pos(mr_pick_endpoint(three, MR_POLICY_ROUND_ROBIN, outstanding, NULL, &cursor,
                                    NULL))]++;
    assert_int_equal(counts[0], 15);
    assert_int_equal(counts[1], 0); /* 13 > 2 * 2 + 2 */
    assert_int_equal(counts[2], 15);
}

/* An endpoint with requests waiting for a head that answered none for
 * MR_PICK_STALL_MS is passed over by both policies while another can
 * serve; it serves again when it answers, or when nothing else can. */
static void test_stalled_skipped(void **state)
{
    static const enum mr_endpoint_policy policies[] = {MR_POLICY_ROUND_ROBIN,
                                                       MR_POLICY_LEAST_REQUESTS};
    int64_t now = mr_passive_now_ms();
    uint32_t outstanding[4] = {0, 1, 1, 1};
    int64_t waiting[4] = {0, now, now - MR_PICK_STALL_MS - 50, 0};
    (void)state;

    load_endpoints("round_robin");
    for (size_t p = 0; p < 2; p++) {
        uint32_t cursor = 0;
        for (int i = 0; i < 12; i++) {
            int at = pos(mr_pick_endpoint(three, policies[p], outstanding, waiting, &cursor,
                                          NULL));
            assert_true(at == 0 || at == 2);
        }
        /* Nothing waiting there any more: not stalled. */
        waiting[2] = 0;
        outstanding[2] = 0;
        cursor = 1;
        assert_int_equal(pos(mr_pick_endpoint(three, policies[p], outstanding, waiting, &cursor,
                                              NULL)),
                         1);
        outstanding[2] = 1;
        waiting[2] = now - MR_PICK_STALL_MS - 50;
    }
    /* The others stalled too: everyone serves. */
    waiting[1] = waiting[3] = waiting[2];
    {
        uint32_t cursor = 0;
        unsigned seen = 0;
        for (int i = 0; i < 3; i++)
            seen |= 1u << pos(mr_pick_endpoint(three, MR_POLICY_ROUND_ROBIN, outstanding,
                                               waiting, &cursor, NULL));
        assert_int_equal(seen, 7);
    }
}

static void attach_health(void);

/* Ejected endpoints are out of picks under both policies, unless nothing
 * else is up. */
static void test_ejected_skipped(void **state)
{
    static const enum mr_endpoint_policy policies[] = {MR_POLICY_ROUND_ROBIN,
                                                       MR_POLICY_LEAST_REQUESTS};
    uint32_t outstanding[4] = {0, 0, 0, 0};
    int64_t far = mr_passive_now_ms() + 3600 * 1000;
    (void)state;

    load_endpoints("round_robin");
    attach_health();
    atomic_store(&three->endpoints[1].health->ejected_until, far);
    for (size_t p = 0; p < 2; p++) {
        uint32_t cursor = 0;
        for (int i = 0; i < 12; i++) {
            int at = pos(mr_pick_endpoint(three, policies[p], outstanding, NULL, &cursor, NULL));
            assert_true(at == 0 || at == 2);
        }
    }
    /* Everything else ejected or down: the ejected one beats no answer. */
    atomic_store(&three->endpoints[0].health->ejected_until, far);
    for (int k = 0; k < snap->health.fall; k++)
        mr_health_report(three->endpoints[2].health, false, "x");
    for (size_t p = 0; p < 2; p++) {
        uint32_t cursor = 0;
        const struct mr_endpoint *e = mr_pick_endpoint(three, policies[p], outstanding, NULL, &cursor,
                                                       NULL);
        assert_true(pos(e) == 0 || pos(e) == 1);
    }
    /* An ejection that ended is forgotten by picks. */
    atomic_store(&three->endpoints[1].health->ejected_until, mr_passive_now_ms() - 1);
    for (int i = 0; i < 4; i++) {
        uint32_t cursor = (uint32_t)i % 3;
        assert_int_equal(pos(mr_pick_endpoint(three, MR_POLICY_ROUND_ROBIN, outstanding, NULL,
                                              &cursor, NULL)),
                         1);
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
        assert_int_equal(pos(mr_pick_endpoint(three, MR_POLICY_LEAST_REQUESTS, outstanding, NULL,
                                              &cursor, NULL)),
                         1);
    outstanding[1] = 3;
    outstanding[2] = 4;
    outstanding[3] = 1;
    for (int i = 0; i < 9; i++)
        assert_int_equal(pos(mr_pick_endpoint(three, MR_POLICY_LEAST_REQUESTS, outstanding, NULL,
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
        int p = pos(mr_pick_endpoint(three, MR_POLICY_LEAST_REQUESTS, outstanding, NULL, &cursor,
                                     NULL));
        assert_int_equal(p, i % 3);
    }
    /* Two tied at the minimum: both get picks, the other none. */
    outstanding[2] = 9;
    for (int i = 0; i < 30; i++)
        counts[pos(mr_pick_endpoint(three, MR_POLICY_LEAST_REQUESTS, outstanding, NULL, &cursor,
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
                    mr_pick_endpoint(three, policies[pi], outstanding, NULL, &cursor, avoid);
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
        assert_int_equal(pos(mr_pick_endpoint(three, MR_POLICY_LEAST_REQUESTS, outstanding, NULL,
                                              &cursor, &three->endpoints[1])),
                         2);
    }
    /* Round robin at the avoided one moves on to the next. */
    {
        uint32_t cursor = 1;
        assert_int_equal(pos(mr_pick_endpoint(three, MR_POLICY_ROUND_ROBIN, outstanding, NULL,
                                              &cursor, &three->endpoints[1])),
                         2);
    }
    /* Avoiding the only endpoint leaves none: the caller decides. */
    for (size_t pi = 0; pi < 2; pi++) {
        uint32_t cursor = 0;
        assert_null(mr_pick_endpoint(one, policies[pi], outstanding, NULL, &cursor,
                                     &one->endpoints[0]));
        assert_ptr_equal(mr_pick_endpoint(one, policies[pi], outstanding, NULL, &cursor, NULL),
                         &one->endpoints[0]);
    }
}

static void test_no_endpoints(void **state)
{
    struct mr_cluster empty;
    uint32_t cursor = 0;
    (void)state;

    memset(&empty, 0, sizeof(empty));
    assert_null(mr_pick_endpoint(&empty, MR_POLICY_ROUND_ROBIN, NULL, NULL, &cursor, NULL));
    assert_null(mr_pick_endpoint(&empty, MR_POLICY_LEAST_REQUESTS, NULL, NULL, &cursor, NULL));
}

/* ---- sessions: the cookie's cluster ---- */

/* A decision for a client with a session cookie (or NULL), at time now. */
static enum mr_pick_reason pick_session(const char *cookie, const struct mr_cluster *exclude,
                                        int64_t now, uint64_t random, struct mr_decision *d)
{
    struct mr_pick_input in = {
        .addr = NULL, .cookie_cluster = cookie, .exclude = exclude, .now = now,
        .random = random};

    memset(d, 0x5a, sizeof(*d));
    return mr_pick_session(snap, &in, d);
}

/* Checks a decision: reason, region and cluster (NULL region: none). */
static void check_decision(const struct mr_decision *d, enum mr_pick_reason reason,
                           const char *region, const char *cluster)
{
    if (d->reason != reason)
        fail_msg("reason %s (%s), want %s", mr_pick_reason_name(d->reason), cluster_name(d),
                 mr_pick_reason_name(reason));
    if (region == NULL) {
        assert_null(d->region);
        assert_null(d->cluster);
        return;
    }
    assert_non_null(d->region);
    assert_non_null(d->cluster);
    assert_string_equal(d->region->name, region);
    assert_ptr_equal(d->cluster->region, d->region);
    if (cluster != NULL && strcmp(cluster_name(d), cluster) != 0)
        fail_msg("picked %s, want %s", cluster_name(d), cluster);
}

static void expect_session(const char *cookie, const struct mr_cluster *exclude, int64_t now,
                           enum mr_pick_reason reason, const char *region, const char *cluster)
{
    struct mr_decision d;
    uint64_t randoms[] = {0, UINT64_MAX, next_random(), next_random(), next_random()};

    for (size_t i = 0; i < sizeof(randoms) / sizeof(randoms[0]); i++) {
        assert_int_equal(pick_session(cookie, exclude, now, randoms[i], &d), reason);
        check_decision(&d, reason, region, cluster);
        /* Only a new decision looks the client up. */
        assert_int_equal(d.located, reason != MR_PICK_STICKY);
    }
}

static struct mr_cluster *cluster_rw(const char *name)
{
    struct mr_cluster *c = (struct mr_cluster *)mr_snap_cluster(snap, name);

    assert_non_null(c);
    return c;
}

static void test_sticky(void **state)
{
    struct mr_cluster *us_a;
    (void)state;

    load(TWO_REGIONS, "{\"default\": [\"eu\", \"us\"]}");
    us_a = cluster_rw("us-a");
    /* Not the geo choice (eu), yet the cookie keeps the session in us. */
    expect_session("us-a", NULL, 1000, MR_PICK_STICKY, "us", "us-a");
    expect_session("eu-a", NULL, 1000, MR_PICK_STICKY, "eu", "eu-a");
    expect_session("eu-b", NULL, 1000, MR_PICK_STICKY, "eu", "eu-b");

    /* Weight 0: takes no new sessions, keeps its own. */
    us_a->weight = 0;
    assert_false(mr_pick_takes_new(snap, us_a));
    assert_true(mr_pick_keeps_sessions(snap, us_a, 1000));
    expect_session("us-a", NULL, 1000, MR_PICK_STICKY, "us", "us-a");

    /* Soft drain without a deadline: keeps its sessions for ever. */
    us_a->weight = 1;
    us_a->drain = MR_DRAIN_SOFT;
    us_a->drain_deadline_s = 0;
    assert_false(mr_pick_takes_new(snap, us_a));
    assert_true(mr_pick_keeps_sessions(snap, us_a, 1000));
    assert_true(mr_pick_keeps_sessions(snap, us_a, INT64_MAX));
    expect_session("us-a", NULL, 1000, MR_PICK_STICKY, "us", "us-a");
    expect_session("us-a", NULL, INT64_MAX, MR_PICK_STICKY, "us", "us-a");

    /* Both at once. */
    us_a->weight = 0;
    expect_session("us-a", NULL, 1000, MR_PICK_STICKY, "us", "us-a");
}

static void test_cookie_unknown_cluster(void **state)
{
    (void)state;

    load(TWO_REGIONS, "{\"default\": [\"us\", \"eu\"]}");
    /* A cookie naming a cluster this snapshot does not have (removed by a
     * reload, or a prefix of a real name): decided anew. */
    expect_session("gone", NULL, 1000, MR_PICK_GEO, "us", "us-a");
    expect_session("eu", NULL, 1000, MR_PICK_GEO, "us", "us-a");
    expect_session("eu-", NULL, 1000, MR_PICK_GEO, "us", "us-a");
    expect_session("", NULL, 1000, MR_PICK_GEO, "us", "us-a");
    expect_session(NULL, NULL, 1000, MR_PICK_GEO, "us", "us-a");
}

static void test_soft_drain_deadline(void **state)
{
    struct mr_cluster *eu_b;
    (void)state;

    load(TWO_REGIONS, "{\"default\": [\"eu\", \"us\"]}");
    eu_b = cluster_rw("eu-b");
    eu_b->drain = MR_DRAIN_SOFT;
    eu_b->drain_deadline_s = 2000;

    /* Before the deadline: sticky. */
    assert_true(mr_pick_keeps_sessions(snap, eu_b, 1999));
    expect_session("eu-b", NULL, 0, MR_PICK_STICKY, "eu", "eu-b");
    expect_session("eu-b", NULL, 1999, MR_PICK_STICKY, "eu", "eu-b");

    /* At and after it: a new decision, which never lands on the drained
     * cluster (eu-a is the only one of eu taking new sessions). */
    assert_false(mr_pick_keeps_sessions(snap, eu_b, 2000));
    assert_false(mr_pick_keeps_sessions(snap, eu_b, 2001));
    expect_session("eu-b", NULL, 2000, MR_PICK_GEO, "eu", "eu-a");
    expect_session("eu-b", NULL, 2001, MR_PICK_GEO, "eu", "eu-a");
    expect_session("eu-b", NULL, INT64_MAX, MR_PICK_GEO, "eu", "eu-a");
    for (int i = 0; i < 200; i++) {
        struct mr_decision d;
        pick_session("eu-b", NULL, 2000 + i, next_random(), &d);
        check_decision(&d, MR_PICK_GEO, "eu", "eu-a");
    }

    /* A deadline on a cluster that is not drained means nothing. */
    eu_b->drain = MR_DRAIN_NONE;
    assert_true(mr_pick_keeps_sessions(snap, eu_b, 5000));
    expect_session("eu-b", NULL, 5000, MR_PICK_STICKY, "eu", "eu-b");
}

static void test_hard_drain(void **state)
{
    struct mr_cluster *eu_b, *us_a;
    (void)state;

    load(TWO_REGIONS, "{\"default\": [\"eu\", \"us\"]}");
    eu_b = cluster_rw("eu-b");
    us_a = cluster_rw("us-a");

    /* Hard: sessions move at once, deadline or not. */
    eu_b->drain = MR_DRAIN_HARD;
    assert_false(mr_pick_keeps_sessions(snap, eu_b, 0));
    assert_false(mr_pick_takes_new(snap, eu_b));
    expect_session("eu-b", NULL, 1000, MR_PICK_GEO, "eu", "eu-a");
    eu_b->drain_deadline_s = 5000;
    assert_false(mr_pick_keeps_sessions(snap, eu_b, 1000));
    expect_session("eu-b", NULL, 1000, MR_PICK_GEO, "eu", "eu-a");

    /* A session on a hard-drained cluster of a later region: the new
     * decision is the client's first region as usual. */
    us_a->drain = MR_DRAIN_HARD;
    expect_session("us-a", NULL, 1000, MR_PICK_GEO, "eu", "eu-a");

    /* Everything drained hard: the cookie does not keep it, fail open. */
    cluster_rw("eu-a")->drain = MR_DRAIN_HARD;
    expect_session("eu-b", NULL, 1000, MR_PICK_FAIL_OPEN, "eu", "eu-a");
}

static void test_sticky_excluded(void **state)
{
    const struct mr_cluster *eu_b;
    (void)state;

    load(TWO_REGIONS, "{\"default\": [\"eu\", \"us\"]}");
    eu_b = mr_snap_cluster(snap, "eu-b");
    /* A retry after the sticky cluster failed goes elsewhere. */
    expect_session("eu-b", eu_b, 1000, MR_PICK_GEO, "eu", "eu-a");
}

/* ---- health ---- */

/* fall 1, rise 1: one report flips a slot (the helpers read the snapshot's
 * numbers all the same). */
#define HEALTH(min) "\"health\": {\"fall\": 1, \"rise\": 1, \"min_healthy\": " min "},"

/* eu: eu-a (2 endpoints), eu-b (2); us: us-a (2). */
#define HEALTH_REGIONS                                                                       \
    "[{\"name\": \"eu\", \"clusters\": ["                                                    \
    "   {\"name\": \"eu-a\", \"endpoints\": [\"127.0.0.1:9001\", \"127.0.0.1:9002\"]},"      \
    "   {\"name\": \"eu-b\", \"endpoints\": [\"127.0.0.1:9011\", \"127.0.0.1:9012\"]}]},"    \
    " {\"name\": \"us\", \"clusters\": ["                                                    \
    "   {\"name\": \"us-a\", \"endpoints\": [\"127.0.0.1:9101\", \"127.0.0.1:9102\"]}]}]"

/* A fresh registry attached to snap: every endpoint up. */
static void attach_health(void)
{
    mr_health_free(health);
    health = mr_health_new();
    assert_non_null(health);
    assert_int_equal(mr_health_attach(health, snap), 0);
    for (size_t i = 0; i < snap->n_endpoints; i++) {
        assert_non_null(snap->endpoints[i]->health);
        assert_true(mr_health_endpoint_up(snap->endpoints[i]));
    }
}

static void load_health(const char *min_healthy_extra, const char *routing)
{
    load_with(min_healthy_extra, HEALTH_REGIONS, routing);
    assert_int_equal(snap->health.fall, 1);
    attach_health();
}

static const struct mr_endpoint *endpoint_of(const char *cluster, size_t i)
{
    const struct mr_cluster *c = mr_snap_cluster(snap, cluster);

    assert_non_null(c);
    assert_true(i < c->n_endpoints);
    return &c->endpoints[i];
}

/* Fails the endpoint's checks `fall` times: down. */
static void set_down(const char *cluster, size_t i)
{
    const struct mr_endpoint *e = endpoint_of(cluster, i);

    assert_non_null(e->health);
    assert_int_equal(e->health->fall, snap->health.fall);
    for (int k = 0; k < snap->health.fall; k++)
        mr_health_report(e->health, false, "x");
    assert_false(mr_health_endpoint_up(e));
}

/* Passes the endpoint's checks `rise` times: up again. */
static void set_up(const char *cluster, size_t i)
{
    const struct mr_endpoint *e = endpoint_of(cluster, i);

    for (int k = 0; k < snap->health.rise; k++)
        mr_health_report(e->health, true, "HTTP 200");
    assert_true(mr_health_endpoint_up(e));
}

static void test_health_cluster_down(void **state)
{
    const struct mr_cluster *eu_a, *eu_b;
    (void)state;

    load_health(HEALTH("0.5"), "{\"default\": [\"eu\", \"us\"]}");
    eu_a = mr_snap_cluster(snap, "eu-a");
    eu_b = mr_snap_cluster(snap, "eu-b");
    expect_session("eu-b", NULL, 1000, MR_PICK_STICKY, "eu", "eu-b");

    /* All of eu-b's endpoints down: it neither takes new sessions nor keeps
     * its own; the cookie's session goes to the other cluster of eu. */
    set_down("eu-b", 0);
    set_down("eu-b", 1);
    assert_int_equal(mr_health_cluster_up(eu_b), 0);
    assert_false(mr_health_cluster_healthy(snap, eu_b));
    assert_false(mr_pick_takes_new(snap, eu_b));
    assert_false(mr_pick_keeps_sessions(snap, eu_b, 1000));
    expect_session("eu-b", NULL, 1000, MR_PICK_GEO, "eu", "eu-a");
    for (int i = 0; i < 200; i++)
        expect_pick(next_random(), MR_PICK_GEO, "eu", "eu-a");

    /* And eu-a too: the region is skipped, failover to us. */
    set_down("eu-a", 0);
    set_down("eu-a", 1);
    assert_false(mr_pick_takes_new(snap, eu_a));
    expect_session("eu-b", NULL, 1000, MR_PICK_FAILOVER, "us", "us-a");
    expect_session("eu-a", NULL, 1000, MR_PICK_FAILOVER, "us", "us-a");
    expect_session(NULL, NULL, 1000, MR_PICK_FAILOVER, "us", "us-a");

    /* One endpoint of eu-b back (1 of 2 >= 0.5): eu-b serves again. */
    set_up("eu-b", 1);
    assert_true(mr_pick_takes_new(snap, eu_b));
    expect_session("eu-b", NULL, 1000, MR_PICK_STICKY, "eu", "eu-b");
    expect_session(NULL, NULL, 1000, MR_PICK_GEO, "eu", "eu-b");
}

static void test_health_min_healthy_all(void **state)
{
    const struct mr_cluster *eu_a;
    (void)state;

    load_health(HEALTH("1.0"), "{\"default\": [\"eu\", \"us\"]}");
    assert_true(snap->health.min_healthy == 1.0);
    eu_a = mr_snap_cluster(snap, "eu-a");
    assert_true(mr_pick_takes_new(snap, eu_a));

    /* One of two down under min_healthy 1.0: not eligible either way. */
    set_down("eu-a", 0);
    assert_int_equal(mr_health_cluster_up(eu_a), 1);
    assert_false(mr_health_cluster_healthy(snap, eu_a));
    assert_false(mr_pick_takes_new(snap, eu_a));
    assert_false(mr_pick_keeps_sessions(snap, eu_a, 1000));
    expect_session("eu-a", NULL, 1000, MR_PICK_GEO, "eu", "eu-b");
    for (int i = 0; i < 200; i++)
        expect_pick(next_random(), MR_PICK_GEO, "eu", "eu-b");

    /* Both clusters of eu half down: failover. */
    set_down("eu-b", 1);
    expect_session(NULL, NULL, 1000, MR_PICK_FAILOVER, "us", "us-a");
    expect_session("eu-b", NULL, 1000, MR_PICK_FAILOVER, "us", "us-a");
}

static void test_health_min_healthy_half(void **state)
{
    static const enum mr_endpoint_policy policies[] = {MR_POLICY_ROUND_ROBIN,
                                                       MR_POLICY_LEAST_REQUESTS};
    const struct mr_cluster *eu_a;
    const struct mr_endpoint *down, *up;
    (void)state;

    load_health(HEALTH("0.5"), "{\"default\": [\"eu\", \"us\"]}");
    eu_a = mr_snap_cluster(snap, "eu-a");
    set_down("eu-a", 0);
    set_down("eu-b", 0);
    set_down("eu-b", 1);
    down = &eu_a->endpoints[0];
    up = &eu_a->endpoints[1];

    /* One of two up under 0.5: eligible, for new sessions and old. */
    assert_true(mr_health_cluster_healthy(snap, eu_a));
    assert_true(mr_pick_takes_new(snap, eu_a));
    assert_true(mr_pick_keeps_sessions(snap, eu_a, 1000));
    expect_session("eu-a", NULL, 1000, MR_PICK_STICKY, "eu", "eu-a");
    for (int i = 0; i < 200; i++)
        expect_pick(next_random(), MR_PICK_GEO, "eu", "eu-a");

    /* The endpoint choice never returns the down one, even when it is the
     * least loaded and whatever the cursor. */
    for (size_t pi = 0; pi < 2; pi++) {
        uint32_t outstanding[6] = {0};
        outstanding[up->index] = 1000;
        for (uint32_t start = 0; start < 2; start++) {
            uint32_t cursor = start;
            for (int i = 0; i < 20; i++) {
                const struct mr_endpoint *e =
                    mr_pick_endpoint(eu_a, policies[pi], outstanding, NULL, &cursor, NULL);
                assert_ptr_equal(e, up);
                assert_true(cursor < 2);
            }
        }
        /* Avoiding the only endpoint up leaves none. */
        {
            uint32_t cursor = 0;
            assert_null(mr_pick_endpoint(eu_a, policies[pi], outstanding, NULL, &cursor, up));
        }
        /* Nothing up in eu-b: no endpoint at all. */
        {
            uint32_t cursor = 0;
            assert_null(mr_pick_endpoint(mr_snap_cluster(snap, "eu-b"), policies[pi],
                                         outstanding, NULL, &cursor, NULL));
        }
    }
    assert_false(mr_health_endpoint_up(down));
}

static void test_health_everything_down(void **state)
{
    static const char *const clusters[] = {"eu-a", "eu-b", "us-a"};
    (void)state;

    load_health(HEALTH("0.5"), "{\"default\": [\"eu\", \"us\"]}");
    for (size_t c = 0; c < 3; c++) {
        set_down(clusters[c], 0);
        set_down(clusters[c], 1);
    }
    /* Nothing can serve: none, with no cluster, cookie or not. */
    expect_session(NULL, NULL, 1000, MR_PICK_NONE, NULL, NULL);
    expect_session("eu-a", NULL, 1000, MR_PICK_NONE, NULL, NULL);
    expect_session("us-a", NULL, 1000, MR_PICK_NONE, NULL, NULL);
    expect_pick(0, MR_PICK_NONE, NULL, NULL);
    expect_pick(UINT64_MAX, MR_PICK_NONE, NULL, NULL);

    /* One endpoint back anywhere: served again. */
    set_up("us-a", 1);
    expect_session(NULL, NULL, 1000, MR_PICK_FAILOVER, "us", "us-a");
}

static void test_health_fail_open(void **state)
{
    (void)state;

    /* min_healthy 1.0 and every cluster one endpoint short: none is
     * healthy, so fail open to the first candidate cluster with an
     * endpoint up, in the client's region order. */
    load_health(HEALTH("1.0"), "{\"default\": [\"us\", \"eu\"]}");
    set_down("us-a", 0);
    set_down("eu-a", 1);
    set_down("eu-b", 0);
    expect_session(NULL, NULL, 1000, MR_PICK_FAIL_OPEN, "us", "us-a");
    expect_session("eu-b", NULL, 1000, MR_PICK_FAIL_OPEN, "us", "us-a");

    /* us-a entirely down: the next candidate region's first cluster up. */
    set_down("us-a", 1);
    expect_session(NULL, NULL, 1000, MR_PICK_FAIL_OPEN, "eu", "eu-a");
    /* eu-a entirely down: skipped for eu-b. */
    set_down("eu-a", 0);
    expect_session(NULL, NULL, 1000, MR_PICK_FAIL_OPEN, "eu", "eu-b");
    /* Excluding that one leaves nothing. */
    expect_session(NULL, mr_snap_cluster(snap, "eu-b"), 1000, MR_PICK_NONE, NULL, NULL);

    /* Fail open also reaches regions outside the client's candidates. */
    load_health(HEALTH("1.0"), "{\"default\": [\"eu\"]}");
    set_down("eu-a", 0);
    set_down("eu-a", 1);
    set_down("eu-b", 0);
    set_down("eu-b", 1);
    set_down("us-a", 0);
    expect_session(NULL, NULL, 1000, MR_PICK_FAIL_OPEN, "us", "us-a");
}

/* ---- exclude ---- */

static void test_exclude(void **state)
{
    const struct mr_cluster *eu_a, *eu_b, *us_a;
    (void)state;

    load(TWO_REGIONS, "{\"default\": [\"eu\", \"us\"]}");
    eu_a = mr_snap_cluster(snap, "eu-a");
    eu_b = mr_snap_cluster(snap, "eu-b");
    us_a = mr_snap_cluster(snap, "us-a");

    /* The other cluster of the region, whatever the random. */
    for (int i = 0; i < 500; i++) {
        struct mr_decision d;
        pick_session(NULL, eu_b, 1000, next_random(), &d);
        check_decision(&d, MR_PICK_GEO, "eu", "eu-a");
        pick_session(NULL, eu_a, 1000, next_random(), &d);
        check_decision(&d, MR_PICK_GEO, "eu", "eu-b");
    }
    expect_session(NULL, eu_b, 1000, MR_PICK_GEO, "eu", "eu-a");
    expect_session(NULL, eu_a, 1000, MR_PICK_GEO, "eu", "eu-b");
    /* A cluster of another region excluded changes nothing. */
    expect_session("eu-a", us_a, 1000, MR_PICK_STICKY, "eu", "eu-a");

    /* The only cluster of the first region excluded: failover. */
    load(TWO_REGIONS, "{\"default\": [\"us\", \"eu\"]}");
    us_a = mr_snap_cluster(snap, "us-a");
    expect_session(NULL, NULL, 1000, MR_PICK_GEO, "us", "us-a");
    expect_session(NULL, us_a, 1000, MR_PICK_FAILOVER, "eu", NULL);
    expect_session("us-a", us_a, 1000, MR_PICK_FAILOVER, "eu", NULL);

    /* Fail open skips it too. */
    load(TWO_REGIONS, "{\"default\": [\"us\", \"eu\"]}");
    cluster_rw("eu-a")->weight = 0;
    cluster_rw("eu-b")->weight = 0;
    cluster_rw("us-a")->weight = 0;
    expect_session(NULL, NULL, 1000, MR_PICK_FAIL_OPEN, "us", "us-a");
    expect_session(NULL, mr_snap_cluster(snap, "us-a"), 1000, MR_PICK_FAIL_OPEN, "eu", "eu-a");
}

/* ---- GeoIP ---- */

static char testdata[PATH_MAX];

/* $MERIDIAN_TESTDATA, else ../testdata beside this binary when it exists,
 * else the release build's (as test_geoip does). */
static void find_testdata(const char *argv0)
{
    const char *env = getenv("MERIDIAN_TESTDATA");
    const char *slash = strrchr(argv0, '/');

    if (env != NULL && env[0] != '\0') {
        snprintf(testdata, sizeof(testdata), "%s", env);
        return;
    }
    if (slash != NULL) {
        snprintf(testdata, sizeof(testdata), "%.*s/../testdata", (int)(slash - argv0), argv0);
        if (access(testdata, F_OK) == 0)
            return;
    }
    snprintf(testdata, sizeof(testdata), "build/release/testdata");
}

#define GEO_REGIONS                                                                         \
    "[{\"name\": \"uk\", \"lat\": 51.5, \"lon\": -0.1, \"clusters\": ["                     \
    "   {\"name\": \"uk-a\", \"endpoints\": [\"127.0.0.1:9001\"]}]},"                       \
    " {\"name\": \"us-east\", \"lat\": 40, \"lon\": -75, \"clusters\": ["                   \
    "   {\"name\": \"us-east-a\", \"endpoints\": [\"127.0.0.1:9101\"]}]},"                  \
    " {\"name\": \"ap\", \"lat\": 1.3, \"lon\": 103.8, \"clusters\": ["                     \
    "   {\"name\": \"ap-a\", \"endpoints\": [\"127.0.0.1:9201\"]}]}]"

static void pick_addr(const char *ip, struct mr_decision *d)
{
    struct sockaddr_storage ss;
    struct mr_pick_input in = {.addr = (const struct sockaddr *)&ss, .now = 1000,
                               .random = next_random()};

    memset(&ss, 0, sizeof(ss));
    if (strchr(ip, ':') != NULL) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
    } else {
        struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
        in4->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, ip, &in4->sin_addr), 1);
    }
    memset(d, 0x5a, sizeof(*d));
    mr_pick_session(snap, &in, d);
}

static void test_geoip_routing(void **state)
{
    char db[PATH_MAX], extra[PATH_MAX + 64];
    struct mr_errors errs = {0};
    struct mr_decision d;
    (void)state;

    snprintf(extra, sizeof(extra), "%s/geoip2.mmdb", testdata);
    /* The configuration resolves relative paths against its own directory:
     * give it an absolute one. */
    if (realpath(extra, db) == NULL)
        fail_msg("cannot find %s: run `make testdata` or set MERIDIAN_TESTDATA", extra);
    snprintf(extra, sizeof(extra), "\"geoip\": {\"database\": \"%s\"},", db);
    /* GB goes to ap by rule (not the nearest: the rule wins); everyone
     * else by proximity; routing.default for clients the database does not
     * know. */
    load_with(extra, GEO_REGIONS,
              "{\"countries\": {\"GB\": [\"ap\"]}, \"proximity\": true,"
              " \"default\": [\"uk\"]}");
    if (mr_geoip_attach(snap, &errs) != 0) {
        mr_errors_print(&errs, stderr);
        mr_errors_clear(&errs);
        fail_msg("cannot open %s", db);
    }
    assert_int_equal(errs.n_errors, 0);
    assert_non_null(snap->geo);

    pick_addr("81.2.69.142", &d);
    check_decision(&d, MR_PICK_GEO, "ap", "ap-a");
    assert_true(d.located);
    assert_true(d.loc.found);
    assert_string_equal(d.loc.country, "GB");
    assert_string_equal(d.loc.continent, "EU");

    /* The same over IPv6. */
    pick_addr("2a02:c7f::1", &d);
    check_decision(&d, MR_PICK_GEO, "ap", "ap-a");
    assert_string_equal(d.loc.country, "GB");

    /* No rule for US: the nearest region. */
    pick_addr("8.8.8.8", &d);
    check_decision(&d, MR_PICK_GEO, "us-east", "us-east-a");
    assert_true(d.located);
    assert_true(d.loc.found);
    assert_string_equal(d.loc.country, "US");
    assert_true(d.loc.has_coords);

    /* Unknown to the database: routing.default. */
    pick_addr("10.1.2.3", &d);
    check_decision(&d, MR_PICK_GEO, "uk", "uk-a");
    assert_true(d.located);
    assert_false(d.loc.found);
    assert_string_equal(d.loc.country, "");

    /* GB's rule region drained: failover along the list, which continues
     * by proximity (uk is nearest to London). */
    cluster_rw("ap-a")->drain = MR_DRAIN_SOFT;
    pick_addr("81.2.69.142", &d);
    check_decision(&d, MR_PICK_FAILOVER, "uk", "uk-a");
    assert_string_equal(d.loc.country, "GB");
    cluster_rw("ap-a")->drain = MR_DRAIN_NONE;

    /* A sticky decision does not look the client up. */
    {
        struct sockaddr_in sin;
        struct mr_pick_input in = {.addr = (const struct sockaddr *)&sin,
                                   .cookie_cluster = "us-east-a", .now = 1000};
        memset(&sin, 0, sizeof(sin));
        sin.sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, "81.2.69.142", &sin.sin_addr), 1);
        assert_int_equal(mr_pick_session(snap, &in, &d), MR_PICK_STICKY);
        check_decision(&d, MR_PICK_STICKY, "us-east", "us-east-a");
        assert_false(d.located);
        assert_false(d.loc.found);
    }
    mr_errors_clear(&errs);
}

int main(int argc, char **argv)
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
        cmocka_unit_test_teardown(test_round_robin_skips_piled_up, free_snap),
        cmocka_unit_test_teardown(test_ejected_skipped, free_snap),
        cmocka_unit_test_teardown(test_stalled_skipped, free_snap),
        cmocka_unit_test_teardown(test_least_requests, free_snap),
        cmocka_unit_test_teardown(test_least_requests_ties_rotate, free_snap),
        cmocka_unit_test_teardown(test_avoid, free_snap),
        cmocka_unit_test(test_no_endpoints),
        cmocka_unit_test_teardown(test_sticky, free_snap),
        cmocka_unit_test_teardown(test_cookie_unknown_cluster, free_snap),
        cmocka_unit_test_teardown(test_soft_drain_deadline, free_snap),
        cmocka_unit_test_teardown(test_hard_drain, free_snap),
        cmocka_unit_test_teardown(test_sticky_excluded, free_snap),
        cmocka_unit_test_teardown(test_health_cluster_down, free_snap),
        cmocka_unit_test_teardown(test_health_min_healthy_all, free_snap),
        cmocka_unit_test_teardown(test_health_min_healthy_half, free_snap),
        cmocka_unit_test_teardown(test_health_everything_down, free_snap),
        cmocka_unit_test_teardown(test_health_fail_open, free_snap),
        cmocka_unit_test_teardown(test_exclude, free_snap),
        cmocka_unit_test_teardown(test_geoip_routing, free_snap),
    };

    find_testdata(argc > 0 ? argv[0] : "");
    /* Health transitions log at WARN: keep the test output to cmocka's. */
    mr_log_set_level(MR_LOG_ERROR);
    return cmocka_run_group_tests(tests, mr_test_keys_setup, mr_test_keys_teardown);
}
