/* tests/unit/test_whatif.c: the guardrail (which routing classes a change
 * strands, and none that the pick already fails open for), the dry run's
 * shares (by weight, to the next region, fail_open, the one-client-per-class
 * basis), ejections and explain's candidates and reasons, over snapshots
 * built from JSON with the configuration loader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <jansson.h>

#include "tests/unit/testutil.h"

#include "conf/snapshot.h"
#include "control/whatif.h"
#include "health/health.h"
#include "health/passive.h"

/* Before and after of the running test, freed by teardown. */
static struct mr_snapshot *before, *after;
static struct mr_health *health;

static int teardown(void **state)
{
    (void)state;
    mr_snap_free(before);
    mr_snap_free(after);
    mr_health_free(health);
    before = after = NULL;
    health = NULL;
    return 0;
}

/* A configuration of the given regions and routing members. */
static struct mr_snapshot *load(const char *regions, const char *routing)
{
    return mr_test_loadf("\"health\": {\"fall\": 1, \"rise\": 1}, \"regions\": %s, \"routing\": %s",
                         regions, routing);
}

/* Clusters are const in a snapshot; drains and weights are overrides the
 * control thread merges in, set by hand here. */
static struct mr_cluster *cluster(struct mr_snapshot *snap, const char *name)
{
    struct mr_cluster *c = (struct mr_cluster *)mr_snap_cluster(snap, name);

    assert_non_null(c);
    return c;
}

/* The JSON array of strings as "a,b,c". */
static const char *joined(json_t *list)
{
    static char buf[256];
    size_t i;
    json_t *item;

    buf[0] = '\0';
    json_array_foreach(list, i, item) {
        snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s", i ? "," : "",
                 json_string_value(item));
    }
    return buf;
}

/* eu: eu-a; us: us-a. US goes to us first; Europe and everyone else to eu. */
#define ONE_PER_REGION                                                                             \
    "[{\"name\": \"eu\", \"clusters\": ["                                                          \
    "   {\"name\": \"eu-a\", \"endpoints\": [\"127.0.0.1:9001\"]}]},"                              \
    " {\"name\": \"us\", \"clusters\": ["                                                          \
    "   {\"name\": \"us-a\", \"endpoints\": [\"127.0.0.1:9101\"]}]}]"
#define ONE_PER_REGION_ROUTING                                                                     \
    "{\"countries\": {\"US\": [\"us\"]}, \"continents\": {\"EU\": [\"eu\"]},"                      \
    " \"default\": [\"eu\"]}"

static void expect_stranded(const char *want)
{
    json_t *lost = mr_whatif_stranded(before, after);

    assert_non_null(lost);
    assert_string_equal(joined(lost), want);
    json_decref(lost);
}

/* Draining the only cluster of the region a class ends in strands it; a
 * class with another region to go to is not stranded. */
static void test_drain_of_a_regions_only_cluster_strands_its_classes(void **state)
{
    (void)state;
    before = load(ONE_PER_REGION, ONE_PER_REGION_ROUTING);
    after = load(ONE_PER_REGION, ONE_PER_REGION_ROUTING);
    expect_stranded("");

    cluster(after, "eu-a")->drain = MR_DRAIN_SOFT;
    expect_stranded("continents.EU,default");
    cluster(after, "eu-a")->drain = MR_DRAIN_HARD;
    expect_stranded("continents.EU,default");

    /* Weight 0 takes no new sessions either. */
    cluster(after, "eu-a")->drain = MR_DRAIN_NONE;
    cluster(after, "eu-a")->weight = 0;
    expect_stranded("continents.EU,default");

    /* US falls back from us to the default region: stranded only when
     * both are gone. */
    cluster(after, "eu-a")->weight = 1;
    cluster(after, "us-a")->drain = MR_DRAIN_SOFT;
    expect_stranded("");
    cluster(after, "eu-a")->drain = MR_DRAIN_SOFT;
    expect_stranded("countries.US,continents.EU,default");
}

/* A class no cluster served before is not the change's doing: the pick
 * already fails open for it, and the guardrail lets the change pass. */
static void test_classes_already_unserved_are_not_stranded(void **state)
{
    (void)state;
    before = load(ONE_PER_REGION, ONE_PER_REGION_ROUTING);
    after = load(ONE_PER_REGION, ONE_PER_REGION_ROUTING);
    cluster(before, "eu-a")->drain = MR_DRAIN_SOFT;
    cluster(after, "eu-a")->drain = MR_DRAIN_SOFT;
    expect_stranded("");
    cluster(after, "us-a")->drain = MR_DRAIN_HARD;
    expect_stranded("countries.US");
}

/* A cluster whose endpoints are all down strands like a drained one. */
static void test_down_cluster_strands(void **state)
{
    (void)state;
    before = load(ONE_PER_REGION, ONE_PER_REGION_ROUTING);
    after = load(ONE_PER_REGION, ONE_PER_REGION_ROUTING);
    health = mr_health_new();
    assert_non_null(health);
    assert_int_equal(mr_health_attach(health, after), 0);
    mr_health_report(cluster(after, "eu-a")->endpoints[0].health, false, "x");
    expect_stranded("continents.EU,default");
}

/* eu: eu-a (1), eu-b (3); us: us-a. GB goes to eu, the rest to us. */
#define WEIGHTED                                                                                   \
    "[{\"name\": \"eu\", \"clusters\": ["                                                          \
    "   {\"name\": \"eu-a\", \"weight\": 1, \"endpoints\": [\"127.0.0.1:9001\"]},"                 \
    "   {\"name\": \"eu-b\", \"weight\": 3, \"endpoints\": [\"127.0.0.1:9002\"]}]},"               \
    " {\"name\": \"us\", \"clusters\": ["                                                          \
    "   {\"name\": \"us-a\", \"endpoints\": [\"127.0.0.1:9101\"]}]}]"
#define WEIGHTED_ROUTING "{\"countries\": {\"GB\": [\"eu\"]}, \"default\": [\"us\"]}"

/* The share of name in a dry run's answer; -1 when it is not listed. */
static double share_of(json_t *shares, const char *name)
{
    size_t i;
    json_t *item;

    json_array_foreach(shares, i, item) {
        if (strcmp(json_string_value(json_object_get(item, "cluster")), name) == 0)
            return json_number_value(json_object_get(item, "share"));
    }
    return -1;
}

static json_t *shares(const char *cluster_name, const char *recent_json, const char **basis)
{
    json_t *recent = recent_json != NULL ? json_loads(recent_json, 0, NULL) : NULL;
    json_t *out = mr_whatif_shares(before, after, cluster_name, recent, basis);

    json_decref(recent);
    assert_non_null(out);
    return out;
}

/* Recent new sessions move by country: within the first region that takes
 * them, split by weight. */
static void test_dry_run_shares_move_by_weight(void **state)
{
    const char *basis;
    json_t *s;

    (void)state;
    before = load(WEIGHTED, WEIGHTED_ROUTING);
    after = load(WEIGHTED, WEIGHTED_ROUTING);

    /* Drain eu-a: GB goes to eu-b alone, the unknown clients to us-a. */
    cluster(after, "eu-a")->drain = MR_DRAIN_SOFT;
    s = shares("eu-a", "{\"GB\": 9, \"unknown\": 3}", &basis);
    assert_string_equal(basis, "new sessions of the last minutes");
    assert_int_equal(json_array_size(s), 2);
    assert_float_equal(share_of(s, "eu-b"), 0.75, 1e-9);
    assert_float_equal(share_of(s, "us-a"), 0.25, 1e-9);
    assert_float_equal(share_of(s, "eu-a"), -1, 0);
    json_decref(s);

    /* Weight eu-a 3 (as eu-b): GB splits half and half. */
    cluster(after, "eu-a")->drain = MR_DRAIN_NONE;
    cluster(after, "eu-a")->weight = 3;
    s = shares("eu-a", "{\"GB\": 8}", &basis);
    assert_float_equal(share_of(s, "eu-a"), 0.5, 1e-9);
    assert_float_equal(share_of(s, "eu-b"), 0.5, 1e-9);
    json_decref(s);

    /* Nothing left anywhere: every session would fail open. */
    cluster(after, "eu-a")->drain = MR_DRAIN_HARD;
    cluster(after, "eu-b")->drain = MR_DRAIN_HARD;
    cluster(after, "us-a")->weight = 0;
    s = shares("eu-a", "{\"GB\": 8, \"FR\": 2}", &basis);
    assert_int_equal(json_array_size(s), 1);
    assert_float_equal(share_of(s, "fail_open"), 1, 1e-9);
    json_decref(s);
}

/* Without recent traffic: one client per routing country and one unknown,
 * each counted for the share the cluster takes of it now. */
static void test_dry_run_without_traffic_weighs_routing_classes(void **state)
{
    const char *basis;
    json_t *s;

    (void)state;
    before = load(WEIGHTED, WEIGHTED_ROUTING);
    after = load(WEIGHTED, WEIGHTED_ROUTING);
    cluster(after, "eu-b")->drain = MR_DRAIN_SOFT;
    /* eu-b takes 3/4 of GB now, no unknown client: all to eu-a. */
    s = shares("eu-b", NULL, &basis);
    assert_string_equal(basis, "no recent new sessions: one client per routing class");
    assert_int_equal(json_array_size(s), 1);
    assert_float_equal(share_of(s, "eu-a"), 1, 1e-9);
    json_decref(s);

    /* An empty count is no traffic too. */
    s = shares("eu-b", "{}", &basis);
    assert_string_equal(basis, "no recent new sessions: one client per routing class");
    json_decref(s);

    /* A cluster that takes none of any class now moves nothing. */
    cluster(before, "us-a")->weight = 0;
    s = shares("us-a", NULL, &basis);
    assert_int_equal(json_array_size(s), 0);
    json_decref(s);
}

/* eu: eu-a, eu-b (weight 0), eu-c (drained), eu-d (down); us: us-a. */
#define EXPLAINED                                                                                  \
    "[{\"name\": \"eu\", \"clusters\": ["                                                          \
    "   {\"name\": \"eu-a\", \"endpoints\": [\"127.0.0.1:9001\"]},"                                \
    "   {\"name\": \"eu-b\", \"weight\": 0, \"endpoints\": [\"127.0.0.1:9002\"]},"                 \
    "   {\"name\": \"eu-c\", \"endpoints\": [\"127.0.0.1:9003\"]},"                                \
    "   {\"name\": \"eu-d\", \"endpoints\": [\"127.0.0.1:9004\"]}]},"                              \
    " {\"name\": \"us\", \"clusters\": ["                                                          \
    "   {\"name\": \"us-a\", \"endpoints\": [\"127.0.0.1:9101\"]}]}]"

static const struct mr_whatif_clock clock = {.now_s = 1795767875,
                                             .mono_ms = 1000000,
                                             .wall_ms = 1795767875000};

static json_t *explain(const char *ip, int *status)
{
    json_t *out = mr_whatif_explain(before, ip, NULL, &clock, 0, status);

    assert_non_null(out);
    return out;
}

static void test_explain_lists_candidates_and_reasons(void **state)
{
    static const struct {
        const char *name;
        bool eligible;
        const char *reason;
    } want[] = {
        {"eu-a", true, NULL},
        {"eu-b", false, "weight 0"},
        {"eu-c", false, "drained"},
        {"eu-d", false, "down"},
    };
    json_t *out, *regions, *eu;
    int status = 0;

    (void)state;
    before = load(EXPLAINED, "{\"default\": [\"eu\", \"us\"]}");
    health = mr_health_new();
    assert_non_null(health);
    assert_int_equal(mr_health_attach(health, before), 0);
    mr_health_report(cluster(before, "eu-d")->endpoints[0].health, false, "x");
    cluster(before, "eu-c")->drain = MR_DRAIN_SOFT;

    out = explain("192.0.2.7", &status);
    assert_int_equal(status, 200);
    assert_string_equal(json_string_value(json_object_get(out, "ip")), "192.0.2.7");
    assert_false(json_is_true(json_object_get(json_object_get(out, "location"), "found")));
    assert_true(json_is_null(json_object_get(out, "cookie")));
    assert_string_equal(json_string_value(json_object_get(out, "decision")), "geo");
    assert_string_equal(json_string_value(json_object_get(out, "region")), "eu");
    assert_string_equal(json_string_value(json_object_get(out, "cluster")), "eu-a");

    regions = json_object_get(out, "candidates");
    assert_int_equal(json_array_size(regions), 2);
    eu = json_array_get(regions, 0);
    assert_string_equal(json_string_value(json_object_get(eu, "region")), "eu");
    assert_string_equal(json_string_value(json_object_get(eu, "rule")), "default");
    assert_string_equal(json_string_value(json_object_get(json_array_get(regions, 1), "region")),
                        "us");
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        json_t *c = json_array_get(json_object_get(eu, "clusters"), i);
        const char *reason = json_string_value(json_object_get(c, "reason"));
        assert_non_null(c);
        assert_string_equal(json_string_value(json_object_get(c, "name")), want[i].name);
        assert_int_equal(json_is_true(json_object_get(c, "eligible")), want[i].eligible);
        if (want[i].reason == NULL)
            assert_null(reason);
        else
            assert_string_equal(reason, want[i].reason);
        assert_int_equal(json_array_size(json_object_get(c, "ejected_endpoints")), 0);
    }
    json_decref(out);

    /* Nothing in eu takes new sessions: the decision fails over to us. */
    cluster(before, "eu-a")->drain = MR_DRAIN_HARD;
    out = explain("2001:db8::1", &status);
    assert_int_equal(status, 200);
    assert_string_equal(json_string_value(json_object_get(out, "decision")), "failover");
    assert_string_equal(json_string_value(json_object_get(out, "cluster")), "us-a");
    json_decref(out);
}

static void test_explain_refuses_what_is_not_an_address(void **state)
{
    json_t *out;
    int status = 0;

    (void)state;
    before = load(ONE_PER_REGION, ONE_PER_REGION_ROUTING);
    out = explain("not-an-ip", &status);
    assert_int_equal(status, 400);
    assert_string_equal(json_string_value(json_object_get(out, "error")),
                        "ip: expected an IPv4 or IPv6 address");
    json_decref(out);
    out = explain(NULL, &status);
    assert_int_equal(status, 400);
    json_decref(out);
}

/* An ejected endpoint: its reason, when it comes back on the wall clock,
 * and explain lists it under its cluster. */
static void test_ejection_and_explain_list_ejected_endpoints(void **state)
{
    struct mr_health_slot *slot;
    json_t *ej, *out, *eu_a;
    int status = 0;

    (void)state;
    before = load(EXPLAINED, "{\"default\": [\"eu\"]}");
    health = mr_health_new();
    assert_non_null(health);
    assert_int_equal(mr_health_attach(health, before), 0);
    slot = cluster(before, "eu-a")->endpoints[0].health;
    assert_true(json_is_null(
        mr_whatif_ejection(&cluster(before, "eu-a")->endpoints[0], clock.mono_ms, clock.wall_ms)));

    atomic_store(&slot->ejected_until, clock.mono_ms + 1500);
    atomic_store(&slot->eject_reason, MR_PASSIVE_TIMEOUT);
    atomic_store(&slot->ejections, 2);
    ej = mr_whatif_ejection(&cluster(before, "eu-a")->endpoints[0], clock.mono_ms, clock.wall_ms);
    assert_string_equal(json_string_value(json_object_get(ej, "reason")), "timeout");
    /* 1795767875000 + 1500 ms, to the second. */
    assert_string_equal(json_string_value(json_object_get(ej, "until")), "2026-11-27T08:24:36Z");
    assert_int_equal(json_integer_value(json_object_get(ej, "remaining_ms")), 1500);
    assert_int_equal(json_integer_value(json_object_get(ej, "ejections")), 2);
    json_decref(ej);
    /* Over at ejected_until. */
    assert_true(json_is_null(mr_whatif_ejection(&cluster(before, "eu-a")->endpoints[0],
                                                clock.mono_ms + 1500, clock.wall_ms)));

    out = explain("192.0.2.7", &status);
    eu_a = json_array_get(json_object_get(json_array_get(json_object_get(out, "candidates"), 0),
                                          "clusters"),
                          0);
    assert_string_equal(json_string_value(json_object_get(eu_a, "name")), "eu-a");
    ej = json_array_get(json_object_get(eu_a, "ejected_endpoints"), 0);
    assert_non_null(ej);
    assert_string_equal(json_string_value(json_object_get(ej, "address")), "127.0.0.1:9001");
    assert_string_equal(json_string_value(json_object_get(ej, "reason")), "timeout");
    json_decref(out);
}

/* The skip reasons, in their order: down before drained before weight 0. */
static void test_skip_reason_order(void **state)
{
    struct mr_cluster *c;

    (void)state;
    before = load(ONE_PER_REGION, ONE_PER_REGION_ROUTING);
    health = mr_health_new();
    assert_non_null(health);
    assert_int_equal(mr_health_attach(health, before), 0);
    c = cluster(before, "eu-a");
    assert_null(mr_whatif_skip_reason(before, c));
    c->weight = 0;
    assert_string_equal(mr_whatif_skip_reason(before, c), "weight 0");
    c->drain = MR_DRAIN_SOFT;
    assert_string_equal(mr_whatif_skip_reason(before, c), "drained");
    mr_health_report(c->endpoints[0].health, false, "x");
    assert_string_equal(mr_whatif_skip_reason(before, c), "down");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_drain_of_a_regions_only_cluster_strands_its_classes,
                                  teardown),
        cmocka_unit_test_teardown(test_classes_already_unserved_are_not_stranded, teardown),
        cmocka_unit_test_teardown(test_down_cluster_strands, teardown),
        cmocka_unit_test_teardown(test_dry_run_shares_move_by_weight, teardown),
        cmocka_unit_test_teardown(test_dry_run_without_traffic_weighs_routing_classes, teardown),
        cmocka_unit_test_teardown(test_explain_lists_candidates_and_reasons, teardown),
        cmocka_unit_test_teardown(test_explain_refuses_what_is_not_an_address, teardown),
        cmocka_unit_test_teardown(test_ejection_and_explain_list_ejected_endpoints, teardown),
        cmocka_unit_test_teardown(test_skip_reason_order, teardown),
    };

    return cmocka_run_group_tests(tests, mr_test_keys_setup, mr_test_keys_teardown);
}
