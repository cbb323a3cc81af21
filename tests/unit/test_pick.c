/* tests/unit/test_pick.c: the cluster decision as one table of cases (a
 * snapshot built from JSON, its drains, weights and endpoint health; a
 * client, cookie and retry exclusion; the reason, region and cluster
 * expected, over many random draws), the weights' shares, and the endpoint
 * choice (round robin, least requests, avoid, down endpoints). The GeoIP
 * cases read the database `make testdata` writes: from $MERIDIAN_TESTDATA,
 * else ../testdata beside this binary, else build/release/testdata. */
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

#include <cmocka.h>

#include "tests/unit/testutil.h"

#include "common/err.h"
#include "common/log.h"
#include "conf/snapshot.h"
#include "geo/geoip.h"
#include "health/health.h"
#include "health/passive.h"
#include "router/pick.h"

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
static struct mr_snapshot *load_with(const char *extra, const char *regions, const char *routing)
{
    mr_snap_free(snap);
    snap = mr_test_loadf("%s \"regions\": %s, \"routing\": %s", extra, regions, routing);
    return snap;
}

static struct mr_snapshot *load(const char *regions, const char *routing)
{
    return load_with("", regions, routing);
}

/* Clusters are const in a snapshot; weights and drains are runtime
 * overrides the tests set by hand. */
static struct mr_cluster *cluster_rw(const char *name)
{
    struct mr_cluster *c = (struct mr_cluster *)mr_snap_cluster(snap, name);

    assert_non_null(c);
    return c;
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

/* ---- health ---- */

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

/* ---- the cluster decision: one table ---- */

#define TWO_REGIONS                                                                                \
    "[{\"name\": \"eu\", \"clusters\": ["                                                          \
    "   {\"name\": \"eu-a\", \"weight\": 1, \"endpoints\": [\"127.0.0.1:9001\"]},"                 \
    "   {\"name\": \"eu-b\", \"weight\": 3, \"endpoints\": [\"127.0.0.1:9002\"]}]},"               \
    " {\"name\": \"us\", \"clusters\": ["                                                          \
    "   {\"name\": \"us-a\", \"endpoints\": [\"127.0.0.1:9101\"]}]}]"

#define WEIGHTED_REGION                                                                            \
    "[{\"name\": \"r\", \"clusters\": ["                                                           \
    "  {\"name\": \"w1\", \"weight\": 1, \"endpoints\": [\"127.0.0.1:9001\"]},"                    \
    "  {\"name\": \"w0a\", \"weight\": 0, \"endpoints\": [\"127.0.0.1:9002\"]},"                   \
    "  {\"name\": \"w3\", \"weight\": 3, \"endpoints\": [\"127.0.0.1:9003\"]},"                    \
    "  {\"name\": \"w6\", \"weight\": 6, \"endpoints\": [\"127.0.0.1:9004\"]},"                    \
    "  {\"name\": \"w0b\", \"weight\": 0, \"endpoints\": [\"127.0.0.1:9005\"]}]}]"

/* eu and ap take no new sessions (every weight 0); us-b does. */
#define FIRST_REGIONS_NO_WEIGHT                                                                    \
    "[{\"name\": \"eu\", \"clusters\": ["                                                          \
    "   {\"name\": \"eu-a\", \"weight\": 0, \"endpoints\": [\"127.0.0.1:9001\"]},"                 \
    "   {\"name\": \"eu-b\", \"weight\": 0, \"endpoints\": [\"127.0.0.1:9002\"]}]},"               \
    " {\"name\": \"ap\", \"clusters\": ["                                                          \
    "   {\"name\": \"ap-a\", \"weight\": 0, \"endpoints\": [\"127.0.0.1:9201\"]}]},"               \
    " {\"name\": \"us\", \"clusters\": ["                                                          \
    "   {\"name\": \"us-a\", \"weight\": 0, \"endpoints\": [\"127.0.0.1:9101\"]},"                 \
    "   {\"name\": \"us-b\", \"weight\": 2, \"endpoints\": [\"127.0.0.1:9102\"]}]}]"

/* Only ap takes new sessions, and it is not a candidate of routing.default. */
#define ONLY_NON_CANDIDATE_WEIGHTED                                                                \
    "[{\"name\": \"eu\", \"clusters\": ["                                                          \
    "   {\"name\": \"eu-a\", \"weight\": 0, \"endpoints\": [\"127.0.0.1:9001\"]}]},"               \
    " {\"name\": \"us\", \"clusters\": ["                                                          \
    "   {\"name\": \"us-a\", \"weight\": 0, \"endpoints\": [\"127.0.0.1:9101\"]}]},"               \
    " {\"name\": \"ap\", \"clusters\": ["                                                          \
    "   {\"name\": \"ap-a\", \"weight\": 5, \"endpoints\": [\"127.0.0.1:9201\"]}]}]"

/* eu: eu-a (2 endpoints), eu-b (2); us: us-a (2). */
#define HEALTH_REGIONS                                                                             \
    "[{\"name\": \"eu\", \"clusters\": ["                                                          \
    "   {\"name\": \"eu-a\", \"endpoints\": [\"127.0.0.1:9001\", \"127.0.0.1:9002\"]},"            \
    "   {\"name\": \"eu-b\", \"endpoints\": [\"127.0.0.1:9011\", \"127.0.0.1:9012\"]}]},"          \
    " {\"name\": \"us\", \"clusters\": ["                                                          \
    "   {\"name\": \"us-a\", \"endpoints\": [\"127.0.0.1:9101\", \"127.0.0.1:9102\"]}]}]"

#define GEO_REGIONS                                                                                \
    "[{\"name\": \"uk\", \"lat\": 51.5, \"lon\": -0.1, \"clusters\": ["                            \
    "   {\"name\": \"uk-a\", \"endpoints\": [\"127.0.0.1:9001\"]}]},"                              \
    " {\"name\": \"us-east\", \"lat\": 40, \"lon\": -75, \"clusters\": ["                          \
    "   {\"name\": \"us-east-a\", \"endpoints\": [\"127.0.0.1:9101\"]}]},"                         \
    " {\"name\": \"ap\", \"lat\": 1.3, \"lon\": 103.8, \"clusters\": ["                            \
    "   {\"name\": \"ap-a\", \"endpoints\": [\"127.0.0.1:9201\"]}]}]"

#define EU_US "{\"default\": [\"eu\", \"us\"]}"
#define US_EU "{\"default\": [\"us\", \"eu\"]}"
/* GB goes to ap by rule (not the nearest: the rule wins); everyone else by
 * proximity; routing.default for clients the database does not know. */
#define GEO_ROUTING                                                                                \
    "{\"countries\": {\"GB\": [\"ap\"]}, \"proximity\": true, \"default\": [\"uk\"]}"

/* An expectation a case may leave unchecked. */
enum tri { ANY, NO, YES };

struct pick_case {
    const char *name;
    /* The snapshot. */
    const char *regions, *routing; /* JSON */
    const char *min_healthy;       /* attach health (fall 1, rise 1) with this; NULL: none */
    bool geoip;                    /* attach the test GeoIP database */
    const char *weights;           /* "cluster=weight ...", set in order */
    const char *drains;            /* "cluster=none|soft|hard[@deadline_s] ...", in order */
    const char *down, *up;         /* "cluster/i ...": failed `fall` times, then passed `rise` */
    /* The request, decided for RANDOMS draws (or one, `fixed`). */
    const char *client;  /* an IP address; NULL: none (routing.default) */
    const char *cookie;  /* the session cookie's cluster; NULL: no cookie */
    const char *exclude; /* the cluster a retry excludes */
    int64_t now;         /* unix seconds, when now_set; else 1000 */
    bool now_set;
    bool now_walks; /* the i-th random draw is at now + i */
    bool fixed;     /* decide for `random` only */
    uint64_t random;
    /* Expected: the reason, the region and cluster (region NULL: none;
     * cluster NULL: any of the region); the client's location. */
    enum mr_pick_reason reason;
    const char *region, *cluster;
    const char *country, *continent; /* NULL: unchecked; "": not found */
    enum tri found, has_coords;
    /* Expected of cluster `of` at now. */
    const char *of;
    enum tri takes_new, keeps, healthy;
    int n_up; /* UP(n): n endpoints up; 0: unchecked */
};

#define AT(t) .now = (t), .now_set = true
#define RANDOM(r) .fixed = true, .random = (r)
#define UP(n) ((n) + 1)

/* Random draws per case besides 0, UINT64_MAX and UINT64_MAX - 1. */
enum { RANDOMS = 1000 };

static const struct pick_case cases[] = {
    /* Regions in routing.default's order; weights within a region. */
    {"first default region", TWO_REGIONS, EU_US, .reason = MR_PICK_GEO, .region = "eu"},
    {"first default region, random 0", TWO_REGIONS, EU_US, RANDOM(0), .reason = MR_PICK_GEO,
     .region = "eu"},
    {"first default region, random max", TWO_REGIONS, EU_US, RANDOM(UINT64_MAX),
     .reason = MR_PICK_GEO, .region = "eu"},
    {"routing.default's order decides, not the order of regions", TWO_REGIONS, US_EU,
     .reason = MR_PICK_GEO, .region = "us", .cluster = "us-a"},
    /* The ends of the random range land on eligible clusters: the lowest
     * on the first, the highest never on the trailing weight-0 one. */
    {"random 0: the first cluster", WEIGHTED_REGION, "{\"default\": [\"r\"]}", RANDOM(0),
     .reason = MR_PICK_GEO, .region = "r", .cluster = "w1"},
    {"random max: not the trailing weight 0", WEIGHTED_REGION, "{\"default\": [\"r\"]}",
     RANDOM(UINT64_MAX), .reason = MR_PICK_GEO, .region = "r", .cluster = "w6"},
    {"random max - 1: not the trailing weight 0", WEIGHTED_REGION, "{\"default\": [\"r\"]}",
     RANDOM(UINT64_MAX - 1), .reason = MR_PICK_GEO, .region = "r", .cluster = "w6"},
    {"first regions without weight: failover", FIRST_REGIONS_NO_WEIGHT,
     "{\"default\": [\"eu\", \"ap\", \"us\"]}", .reason = MR_PICK_FAILOVER, .region = "us",
     .cluster = "us-b"},
    {"first regions without weight: failover, random 0", FIRST_REGIONS_NO_WEIGHT,
     "{\"default\": [\"eu\", \"ap\", \"us\"]}", RANDOM(0), .reason = MR_PICK_FAILOVER,
     .region = "us", .cluster = "us-b"},
    {"first regions without weight: failover, random max", FIRST_REGIONS_NO_WEIGHT,
     "{\"default\": [\"eu\", \"ap\", \"us\"]}", RANDOM(UINT64_MAX), .reason = MR_PICK_FAILOVER,
     .region = "us", .cluster = "us-b"},
    /* No candidate takes new sessions: fail open to the first candidate
     * cluster with an endpoint up (no health attached: all up), never to
     * an error. */
    {"no candidate takes new sessions: fail open", ONLY_NON_CANDIDATE_WEIGHTED, EU_US,
     .reason = MR_PICK_FAIL_OPEN, .region = "eu", .cluster = "eu-a"},
    {"no candidate takes new sessions: fail open, random 0", ONLY_NON_CANDIDATE_WEIGHTED, EU_US,
     RANDOM(0), .reason = MR_PICK_FAIL_OPEN, .region = "eu", .cluster = "eu-a"},
    {"no candidate takes new sessions: fail open, random max", ONLY_NON_CANDIDATE_WEIGHTED, EU_US,
     RANDOM(UINT64_MAX), .reason = MR_PICK_FAIL_OPEN, .region = "eu", .cluster = "eu-a"},

    /* Drains and weights. */
    {"eu-a takes new sessions", TWO_REGIONS, EU_US, .reason = MR_PICK_GEO, .region = "eu",
     .of = "eu-a", .takes_new = YES},
    {"eu-b takes new sessions", TWO_REGIONS, EU_US, .reason = MR_PICK_GEO, .region = "eu",
     .of = "eu-b", .takes_new = YES},
    {"one drained: the other takes everything, still geo", TWO_REGIONS, EU_US,
     .drains = "eu-b=soft", .reason = MR_PICK_GEO, .region = "eu", .cluster = "eu-a", .of = "eu-b",
     .takes_new = NO},
    {"one drained: the other takes new sessions", TWO_REGIONS, EU_US, .drains = "eu-b=soft",
     RANDOM(UINT64_MAX), .reason = MR_PICK_GEO, .region = "eu", .cluster = "eu-a", .of = "eu-a",
     .takes_new = YES},
    {"both drained, softly or hard: the next region", TWO_REGIONS, EU_US,
     .drains = "eu-b=soft eu-a=hard", .reason = MR_PICK_FAILOVER, .region = "us", .cluster = "us-a",
     .of = "eu-a", .takes_new = NO},
    {"everything drained: fail open to a cluster that is up", TWO_REGIONS, EU_US,
     .drains = "eu-b=soft eu-a=hard us-a=soft", .reason = MR_PICK_FAIL_OPEN, .region = "eu",
     .cluster = "eu-a"},
    {"undrained: back to normal", TWO_REGIONS, EU_US,
     .drains = "eu-b=soft eu-a=hard us-a=soft eu-a=none eu-b=none us-a=none", .reason = MR_PICK_GEO,
     .region = "eu", .of = "eu-a", .takes_new = YES},
    {"weight 0 takes no new sessions", TWO_REGIONS, EU_US, .weights = "eu-a=0",
     .reason = MR_PICK_GEO, .region = "eu", .cluster = "eu-b", .of = "eu-a", .takes_new = NO},
    {"any weight above 0 takes new sessions", TWO_REGIONS, EU_US, .weights = "eu-a=0.001",
     .reason = MR_PICK_GEO, .region = "eu", .of = "eu-a", .takes_new = YES},
    {"a drained weight takes none", TWO_REGIONS, EU_US, .weights = "eu-a=0.001",
     .drains = "eu-a=soft", .reason = MR_PICK_GEO, .region = "eu", .cluster = "eu-b", .of = "eu-a",
     .takes_new = NO},

    /* Sessions: the cookie's cluster. */
    {"sticky, not the geo choice", TWO_REGIONS, EU_US, .cookie = "us-a", .reason = MR_PICK_STICKY,
     .region = "us", .cluster = "us-a"},
    {"sticky to eu-a", TWO_REGIONS, EU_US, .cookie = "eu-a", .reason = MR_PICK_STICKY,
     .region = "eu", .cluster = "eu-a"},
    {"sticky to eu-b", TWO_REGIONS, EU_US, .cookie = "eu-b", .reason = MR_PICK_STICKY,
     .region = "eu", .cluster = "eu-b"},
    {"weight 0 keeps its sessions", TWO_REGIONS, EU_US, .weights = "us-a=0", .cookie = "us-a",
     .reason = MR_PICK_STICKY, .region = "us", .cluster = "us-a", .of = "us-a", .takes_new = NO,
     .keeps = YES},
    {"soft drain without a deadline keeps its sessions", TWO_REGIONS, EU_US,
     .weights = "us-a=0 us-a=1", .drains = "us-a=soft@0", .cookie = "us-a",
     .reason = MR_PICK_STICKY, .region = "us", .cluster = "us-a", .of = "us-a", .takes_new = NO,
     .keeps = YES},
    {"soft drain without a deadline keeps its sessions for ever", TWO_REGIONS, EU_US,
     .weights = "us-a=0 us-a=1", .drains = "us-a=soft@0", .cookie = "us-a", AT(INT64_MAX),
     .reason = MR_PICK_STICKY, .region = "us", .cluster = "us-a", .of = "us-a", .keeps = YES},
    {"weight 0 and soft drain at once keep sessions", TWO_REGIONS, EU_US,
     .weights = "us-a=0 us-a=1 us-a=0", .drains = "us-a=soft@0", .cookie = "us-a",
     .reason = MR_PICK_STICKY, .region = "us", .cluster = "us-a"},
    /* A cookie naming a cluster this snapshot does not have (removed by a
     * reload, or a prefix of a real name): decided anew. */
    {"cookie of a cluster gone", TWO_REGIONS, US_EU, .cookie = "gone", .reason = MR_PICK_GEO,
     .region = "us", .cluster = "us-a"},
    {"cookie naming a region", TWO_REGIONS, US_EU, .cookie = "eu", .reason = MR_PICK_GEO,
     .region = "us", .cluster = "us-a"},
    {"cookie naming a prefix", TWO_REGIONS, US_EU, .cookie = "eu-", .reason = MR_PICK_GEO,
     .region = "us", .cluster = "us-a"},
    {"empty cookie", TWO_REGIONS, US_EU, .cookie = "", .reason = MR_PICK_GEO, .region = "us",
     .cluster = "us-a"},
    {"no cookie", TWO_REGIONS, US_EU, .reason = MR_PICK_GEO, .region = "us", .cluster = "us-a"},
    /* Soft drain with a deadline: sticky before it; at and after it a new
     * decision, which never lands on the drained cluster (eu-a is the only
     * one of eu taking new sessions). */
    {"soft drain, at 0: sticky", TWO_REGIONS, EU_US, .drains = "eu-b=soft@2000", .cookie = "eu-b",
     AT(0), .reason = MR_PICK_STICKY, .region = "eu", .cluster = "eu-b"},
    {"soft drain, before the deadline: sticky", TWO_REGIONS, EU_US, .drains = "eu-b=soft@2000",
     .cookie = "eu-b", AT(1999), .reason = MR_PICK_STICKY, .region = "eu", .cluster = "eu-b",
     .of = "eu-b", .keeps = YES},
    {"soft drain, at the deadline: anew", TWO_REGIONS, EU_US, .drains = "eu-b=soft@2000",
     .cookie = "eu-b", AT(2000), .reason = MR_PICK_GEO, .region = "eu", .cluster = "eu-a",
     .of = "eu-b", .keeps = NO},
    {"soft drain, after the deadline: anew", TWO_REGIONS, EU_US, .drains = "eu-b=soft@2000",
     .cookie = "eu-b", AT(2001), .reason = MR_PICK_GEO, .region = "eu", .cluster = "eu-a",
     .of = "eu-b", .keeps = NO},
    {"soft drain, long after the deadline: anew", TWO_REGIONS, EU_US, .drains = "eu-b=soft@2000",
     .cookie = "eu-b", AT(INT64_MAX), .reason = MR_PICK_GEO, .region = "eu", .cluster = "eu-a"},
    {"soft drain, from the deadline on: anew", TWO_REGIONS, EU_US, .drains = "eu-b=soft@2000",
     .cookie = "eu-b", AT(2000), .now_walks = true, .reason = MR_PICK_GEO, .region = "eu",
     .cluster = "eu-a"},
    {"a deadline on a cluster not drained means nothing", TWO_REGIONS, EU_US,
     .drains = "eu-b=soft@2000 eu-b=none", .cookie = "eu-b", AT(5000), .reason = MR_PICK_STICKY,
     .region = "eu", .cluster = "eu-b", .of = "eu-b", .keeps = YES},
    /* Hard drain: sessions move at once, deadline or not. */
    {"hard drain, at 0: sessions move", TWO_REGIONS, EU_US, .drains = "eu-b=hard", .cookie = "eu-b",
     AT(0), .reason = MR_PICK_GEO, .region = "eu", .cluster = "eu-a", .of = "eu-b", .takes_new = NO,
     .keeps = NO},
    {"hard drain: sessions move", TWO_REGIONS, EU_US, .drains = "eu-b=hard", .cookie = "eu-b",
     .reason = MR_PICK_GEO, .region = "eu", .cluster = "eu-a"},
    {"hard drain with a deadline: sessions move", TWO_REGIONS, EU_US, .drains = "eu-b=hard@5000",
     .cookie = "eu-b", .reason = MR_PICK_GEO, .region = "eu", .cluster = "eu-a", .of = "eu-b",
     .keeps = NO},
    /* A session on a hard-drained cluster of a later region: the new
     * decision is the client's first region as usual. */
    {"hard drain of a later region: first region", TWO_REGIONS, EU_US,
     .drains = "eu-b=hard@5000 us-a=hard", .cookie = "us-a", .reason = MR_PICK_GEO, .region = "eu",
     .cluster = "eu-a"},
    {"everything drained hard: the cookie does not keep it, fail open", TWO_REGIONS, EU_US,
     .drains = "eu-b=hard@5000 us-a=hard eu-a=hard", .cookie = "eu-b", .reason = MR_PICK_FAIL_OPEN,
     .region = "eu", .cluster = "eu-a"},
    {"a retry after the sticky cluster failed goes elsewhere", TWO_REGIONS, EU_US, .cookie = "eu-b",
     .exclude = "eu-b", .reason = MR_PICK_GEO, .region = "eu", .cluster = "eu-a"},

    /* Health (fall 1, rise 1: one report flips a slot). */
    {"health: sticky while up", HEALTH_REGIONS, EU_US, .min_healthy = "0.5", .cookie = "eu-b",
     .reason = MR_PICK_STICKY, .region = "eu", .cluster = "eu-b"},
    /* All of eu-b's endpoints down: it neither takes new sessions nor keeps
     * its own; the cookie's session goes to the other cluster of eu. */
    {"cluster down: its session moves within the region", HEALTH_REGIONS, EU_US,
     .min_healthy = "0.5", .down = "eu-b/0 eu-b/1", .cookie = "eu-b", .reason = MR_PICK_GEO,
     .region = "eu", .cluster = "eu-a", .of = "eu-b", .n_up = UP(0), .healthy = NO, .takes_new = NO,
     .keeps = NO},
    {"cluster down: new sessions to the other", HEALTH_REGIONS, EU_US, .min_healthy = "0.5",
     .down = "eu-b/0 eu-b/1", .reason = MR_PICK_GEO, .region = "eu", .cluster = "eu-a"},
    {"region down: failover, eu-b's session", HEALTH_REGIONS, EU_US, .min_healthy = "0.5",
     .down = "eu-b/0 eu-b/1 eu-a/0 eu-a/1", .cookie = "eu-b", .reason = MR_PICK_FAILOVER,
     .region = "us", .cluster = "us-a", .of = "eu-a", .takes_new = NO},
    {"region down: failover, eu-a's session", HEALTH_REGIONS, EU_US, .min_healthy = "0.5",
     .down = "eu-b/0 eu-b/1 eu-a/0 eu-a/1", .cookie = "eu-a", .reason = MR_PICK_FAILOVER,
     .region = "us", .cluster = "us-a"},
    {"region down: failover", HEALTH_REGIONS, EU_US, .min_healthy = "0.5",
     .down = "eu-b/0 eu-b/1 eu-a/0 eu-a/1", .reason = MR_PICK_FAILOVER, .region = "us",
     .cluster = "us-a"},
    /* One endpoint of eu-b back (1 of 2 >= 0.5): eu-b serves again. */
    {"one endpoint back: sticky again", HEALTH_REGIONS, EU_US, .min_healthy = "0.5",
     .down = "eu-b/0 eu-b/1 eu-a/0 eu-a/1", .up = "eu-b/1", .cookie = "eu-b",
     .reason = MR_PICK_STICKY, .region = "eu", .cluster = "eu-b", .of = "eu-b", .takes_new = YES},
    {"one endpoint back: new sessions again", HEALTH_REGIONS, EU_US, .min_healthy = "0.5",
     .down = "eu-b/0 eu-b/1 eu-a/0 eu-a/1", .up = "eu-b/1", .reason = MR_PICK_GEO, .region = "eu",
     .cluster = "eu-b"},
    {"min_healthy 1.0, all up", HEALTH_REGIONS, EU_US, .min_healthy = "1.0", .reason = MR_PICK_GEO,
     .region = "eu", .of = "eu-a", .takes_new = YES},
    /* One of two down under min_healthy 1.0: not eligible either way. */
    {"min_healthy 1.0, one of two down: its session moves", HEALTH_REGIONS, EU_US,
     .min_healthy = "1.0", .down = "eu-a/0", .cookie = "eu-a", .reason = MR_PICK_GEO,
     .region = "eu", .cluster = "eu-b", .of = "eu-a", .n_up = UP(1), .healthy = NO, .takes_new = NO,
     .keeps = NO},
    {"min_healthy 1.0, one of two down: new sessions elsewhere", HEALTH_REGIONS, EU_US,
     .min_healthy = "1.0", .down = "eu-a/0", .reason = MR_PICK_GEO, .region = "eu",
     .cluster = "eu-b"},
    {"min_healthy 1.0, both clusters of eu half down: failover", HEALTH_REGIONS, EU_US,
     .min_healthy = "1.0", .down = "eu-a/0 eu-b/1", .reason = MR_PICK_FAILOVER, .region = "us",
     .cluster = "us-a"},
    {"min_healthy 1.0, both clusters of eu half down: the session fails over", HEALTH_REGIONS,
     EU_US, .min_healthy = "1.0", .down = "eu-a/0 eu-b/1", .cookie = "eu-b",
     .reason = MR_PICK_FAILOVER, .region = "us", .cluster = "us-a"},
    /* One of two up under 0.5: eligible, for new sessions and old. */
    {"min_healthy 0.5, one of two up: sticky", HEALTH_REGIONS, EU_US, .min_healthy = "0.5",
     .down = "eu-a/0 eu-b/0 eu-b/1", .cookie = "eu-a", .reason = MR_PICK_STICKY, .region = "eu",
     .cluster = "eu-a", .of = "eu-a", .healthy = YES, .takes_new = YES, .keeps = YES},
    {"min_healthy 0.5, one of two up: new sessions", HEALTH_REGIONS, EU_US, .min_healthy = "0.5",
     .down = "eu-a/0 eu-b/0 eu-b/1", .reason = MR_PICK_GEO, .region = "eu", .cluster = "eu-a"},
    /* Nothing can serve: none, with no cluster, cookie or not. */
    {"everything down: none", HEALTH_REGIONS, EU_US, .min_healthy = "0.5",
     .down = "eu-a/0 eu-a/1 eu-b/0 eu-b/1 us-a/0 us-a/1", .reason = MR_PICK_NONE},
    {"everything down: none for eu-a's session", HEALTH_REGIONS, EU_US, .min_healthy = "0.5",
     .down = "eu-a/0 eu-a/1 eu-b/0 eu-b/1 us-a/0 us-a/1", .cookie = "eu-a", .reason = MR_PICK_NONE},
    {"everything down: none for us-a's session", HEALTH_REGIONS, EU_US, .min_healthy = "0.5",
     .down = "eu-a/0 eu-a/1 eu-b/0 eu-b/1 us-a/0 us-a/1", .cookie = "us-a", .reason = MR_PICK_NONE},
    {"everything down: none, random 0", HEALTH_REGIONS, EU_US, .min_healthy = "0.5",
     .down = "eu-a/0 eu-a/1 eu-b/0 eu-b/1 us-a/0 us-a/1", RANDOM(0), .reason = MR_PICK_NONE},
    {"everything down: none, random max", HEALTH_REGIONS, EU_US, .min_healthy = "0.5",
     .down = "eu-a/0 eu-a/1 eu-b/0 eu-b/1 us-a/0 us-a/1", RANDOM(UINT64_MAX),
     .reason = MR_PICK_NONE},
    {"one endpoint back anywhere: served again", HEALTH_REGIONS, EU_US, .min_healthy = "0.5",
     .down = "eu-a/0 eu-a/1 eu-b/0 eu-b/1 us-a/0 us-a/1", .up = "us-a/1",
     .reason = MR_PICK_FAILOVER, .region = "us", .cluster = "us-a"},
    /* min_healthy 1.0 and every cluster one endpoint short: none is
     * healthy, so fail open to the first candidate cluster with an
     * endpoint up, in the client's region order. */
    {"none healthy: fail open in region order", HEALTH_REGIONS, US_EU, .min_healthy = "1.0",
     .down = "us-a/0 eu-a/1 eu-b/0", .reason = MR_PICK_FAIL_OPEN, .region = "us",
     .cluster = "us-a"},
    {"none healthy: the session fails open too", HEALTH_REGIONS, US_EU, .min_healthy = "1.0",
     .down = "us-a/0 eu-a/1 eu-b/0", .cookie = "eu-b", .reason = MR_PICK_FAIL_OPEN, .region = "us",
     .cluster = "us-a"},
    {"none healthy, us-a down: the next region's first cluster up", HEALTH_REGIONS, US_EU,
     .min_healthy = "1.0", .down = "us-a/0 eu-a/1 eu-b/0 us-a/1", .reason = MR_PICK_FAIL_OPEN,
     .region = "eu", .cluster = "eu-a"},
    {"none healthy, eu-a down too: skipped for eu-b", HEALTH_REGIONS, US_EU, .min_healthy = "1.0",
     .down = "us-a/0 eu-a/1 eu-b/0 us-a/1 eu-a/0", .reason = MR_PICK_FAIL_OPEN, .region = "eu",
     .cluster = "eu-b"},
    {"none healthy, the last one up excluded: none", HEALTH_REGIONS, US_EU, .min_healthy = "1.0",
     .down = "us-a/0 eu-a/1 eu-b/0 us-a/1 eu-a/0", .exclude = "eu-b", .reason = MR_PICK_NONE},
    {"fail open reaches regions outside the client's candidates", HEALTH_REGIONS,
     "{\"default\": [\"eu\"]}", .min_healthy = "1.0", .down = "eu-a/0 eu-a/1 eu-b/0 eu-b/1 us-a/0",
     .reason = MR_PICK_FAIL_OPEN, .region = "us", .cluster = "us-a"},

    /* Exclusion (a retry's). */
    {"excluded: the other cluster of the region", TWO_REGIONS, EU_US, .exclude = "eu-b",
     .reason = MR_PICK_GEO, .region = "eu", .cluster = "eu-a"},
    {"excluded: the other cluster of the region, the other way", TWO_REGIONS, EU_US,
     .exclude = "eu-a", .reason = MR_PICK_GEO, .region = "eu", .cluster = "eu-b"},
    {"a cluster of another region excluded changes nothing", TWO_REGIONS, EU_US, .cookie = "eu-a",
     .exclude = "us-a", .reason = MR_PICK_STICKY, .region = "eu", .cluster = "eu-a"},
    {"excluded nothing", TWO_REGIONS, US_EU, .reason = MR_PICK_GEO, .region = "us",
     .cluster = "us-a"},
    {"the only cluster of the first region excluded: failover", TWO_REGIONS, US_EU,
     .exclude = "us-a", .reason = MR_PICK_FAILOVER, .region = "eu"},
    {"the excluded sticky cluster: failover", TWO_REGIONS, US_EU, .cookie = "us-a",
     .exclude = "us-a", .reason = MR_PICK_FAILOVER, .region = "eu"},
    {"fail open", TWO_REGIONS, US_EU, .weights = "eu-a=0 eu-b=0 us-a=0",
     .reason = MR_PICK_FAIL_OPEN, .region = "us", .cluster = "us-a"},
    {"fail open skips the excluded cluster", TWO_REGIONS, US_EU, .weights = "eu-a=0 eu-b=0 us-a=0",
     .exclude = "us-a", .reason = MR_PICK_FAIL_OPEN, .region = "eu", .cluster = "eu-a"},

    /* GeoIP. */
    {"GB by its country rule", GEO_REGIONS, GEO_ROUTING, .geoip = true, .client = "81.2.69.142",
     .reason = MR_PICK_GEO, .region = "ap", .cluster = "ap-a", .found = YES, .country = "GB",
     .continent = "EU"},
    {"GB over IPv6", GEO_REGIONS, GEO_ROUTING, .geoip = true, .client = "2a02:c7f::1",
     .reason = MR_PICK_GEO, .region = "ap", .cluster = "ap-a", .country = "GB"},
    {"no rule for US: the nearest region", GEO_REGIONS, GEO_ROUTING, .geoip = true,
     .client = "8.8.8.8", .reason = MR_PICK_GEO, .region = "us-east", .cluster = "us-east-a",
     .found = YES, .country = "US", .has_coords = YES},
    {"unknown to the database: routing.default", GEO_REGIONS, GEO_ROUTING, .geoip = true,
     .client = "10.1.2.3", .reason = MR_PICK_GEO, .region = "uk", .cluster = "uk-a", .found = NO,
     .country = ""},
    /* GB's rule region drained: failover along the list, which continues
     * by proximity (uk is nearest to London). */
    {"GB's rule region drained: the nearest", GEO_REGIONS, GEO_ROUTING, .geoip = true,
     .drains = "ap-a=soft", .client = "81.2.69.142", .reason = MR_PICK_FAILOVER, .region = "uk",
     .cluster = "uk-a", .country = "GB"},
    {"a sticky decision does not look the client up", GEO_REGIONS, GEO_ROUTING, .geoip = true,
     .client = "81.2.69.142", .cookie = "us-east-a", .reason = MR_PICK_STICKY, .region = "us-east",
     .cluster = "us-east-a", .found = NO},
};

/* Calls each(cluster, value) for every "cluster<sep>value" word of spec. */
static void for_each_word(const struct pick_case *c, const char *spec, char sep,
                          void (*each)(const char *cluster, const char *value))
{
    char word[64];
    int n;

    while (spec != NULL && sscanf(spec, "%63s%n", word, &n) == 1) {
        char *at = strchr(word, sep);

        if (at == NULL)
            fail_msg("%s: \"%s\" has no '%c'", c->name, word, sep);
        *at = '\0';
        each(word, at + 1);
        spec += n;
    }
}

static void set_weight(const char *cluster, const char *value)
{
    cluster_rw(cluster)->weight = strtod(value, NULL);
}

/* "soft", "hard" or "none", then "@deadline_s" if given. */
static void set_drain(const char *cluster, const char *value)
{
    struct mr_cluster *c = cluster_rw(cluster);
    const char *at = strchr(value, '@');
    size_t len = at != NULL ? (size_t)(at - value) : strlen(value);

    if (len == 4 && strncmp(value, "soft", 4) == 0)
        c->drain = MR_DRAIN_SOFT;
    else if (len == 4 && strncmp(value, "hard", 4) == 0)
        c->drain = MR_DRAIN_HARD;
    else if (len == 4 && strncmp(value, "none", 4) == 0)
        c->drain = MR_DRAIN_NONE;
    else
        fail_msg("drain \"%s\": soft, hard or none", value);
    if (at != NULL)
        c->drain_deadline_s = strtoll(at + 1, NULL, 10);
}

static void set_endpoint_down(const char *cluster, const char *i)
{
    set_down(cluster, strtoul(i, NULL, 10));
}

static void set_endpoint_up(const char *cluster, const char *i)
{
    set_up(cluster, strtoul(i, NULL, 10));
}

/* Builds the case's snapshot in snap (and health), as the case says. */
static void build_snapshot(const struct pick_case *c)
{
    char extra[PATH_MAX + 128] = "";

    if (c->min_healthy != NULL)
        snprintf(extra, sizeof(extra),
                 "\"health\": {\"fall\": 1, \"rise\": 1, \"min_healthy\": %s},", c->min_healthy);
    if (c->geoip) {
        char path[PATH_MAX + 16], db[PATH_MAX];

        snprintf(path, sizeof(path), "%s/geoip2.mmdb", mr_test_testdata);
        /* The configuration resolves relative paths against its own
         * directory: give it an absolute one. */
        if (realpath(path, db) == NULL)
            fail_msg("cannot find %s: run `make testdata` or set MERIDIAN_TESTDATA", path);
        snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra),
                 "\"geoip\": {\"database\": \"%s\"},", db);
    }
    load_with(extra, c->regions, c->routing);
    if (c->min_healthy != NULL) {
        assert_int_equal(snap->health.fall, 1);
        assert_true(snap->health.min_healthy == strtod(c->min_healthy, NULL));
        attach_health();
    }
    if (c->geoip) {
        struct mr_errors errs = {0};

        if (mr_geoip_attach(snap, &errs) != 0) {
            mr_errors_print(&errs, stderr);
            mr_errors_clear(&errs);
            fail_msg("%s: cannot open the GeoIP database", c->name);
        }
        assert_int_equal(errs.n_errors, 0);
        assert_non_null(snap->geo);
        mr_errors_clear(&errs);
    }
    for_each_word(c, c->weights, '=', set_weight);
    for_each_word(c, c->drains, '=', set_drain);
    for_each_word(c, c->down, '/', set_endpoint_down);
    for_each_word(c, c->up, '/', set_endpoint_up);
}

static void expect_tri(const struct pick_case *c, const char *what, enum tri want, bool got)
{
    if (want != ANY && got != (want == YES))
        fail_msg("%s: %s is %s, want %s", c->name, what, got ? "true" : "false",
                 want == YES ? "true" : "false");
}

/* The predicates the case states about cluster `of`, at now. */
static void check_cluster(const struct pick_case *c, int64_t now)
{
    const struct mr_cluster *of;

    if (c->of == NULL)
        return;
    of = mr_snap_cluster(snap, c->of);
    assert_non_null(of);
    expect_tri(c, "takes_new", c->takes_new, mr_pick_takes_new(snap, of));
    expect_tri(c, "keeps_sessions", c->keeps, mr_pick_keeps_sessions(snap, of, now));
    expect_tri(c, "healthy", c->healthy, mr_health_cluster_healthy(snap, of));
    if (c->n_up != 0 && mr_health_cluster_up(of) != (size_t)(c->n_up - 1))
        fail_msg("%s: %zu endpoints up, want %d", c->name, (size_t)mr_health_cluster_up(of),
                 c->n_up - 1);
}

/* Decides once and checks everything the case expects. */
static void check_decision(const struct pick_case *c, const struct mr_pick_input *in)
{
    struct mr_decision d;
    enum mr_pick_reason got;

    memset(&d, 0x5a, sizeof(d));
    got = mr_pick_session(snap, in, &d);
    if (got != c->reason || d.reason != c->reason)
        fail_msg("%s: random %#llx, now %lld: reason %s (%s), want %s", c->name,
                 (unsigned long long)in->random, (long long)in->now, mr_pick_reason_name(got),
                 cluster_name(&d), mr_pick_reason_name(c->reason));
    if (c->region == NULL) {
        if (d.region != NULL || d.cluster != NULL)
            fail_msg("%s: picked %s, want none", c->name, cluster_name(&d));
    } else {
        assert_non_null(d.region);
        assert_non_null(d.cluster);
        if (strcmp(d.region->name, c->region) != 0)
            fail_msg("%s: random %#llx: region %s, want %s", c->name,
                     (unsigned long long)in->random, d.region->name, c->region);
        assert_ptr_equal(d.cluster->region, d.region);
        if (c->cluster != NULL && strcmp(cluster_name(&d), c->cluster) != 0)
            fail_msg("%s: random %#llx: picked %s, want %s", c->name,
                     (unsigned long long)in->random, cluster_name(&d), c->cluster);
        if (c->reason == MR_PICK_GEO || c->reason == MR_PICK_FAILOVER)
            expect_tri(c, "the pick takes new sessions", YES, mr_pick_takes_new(snap, d.cluster));
    }
    /* Only a new decision looks the client up. */
    expect_tri(c, "located", c->reason != MR_PICK_STICKY ? YES : NO, d.located);
    expect_tri(c, "location found", c->found, d.loc.found);
    expect_tri(c, "location has coordinates", c->has_coords, d.loc.has_coords);
    if (c->country != NULL && strcmp(d.loc.country, c->country) != 0)
        fail_msg("%s: country \"%s\", want \"%s\"", c->name, d.loc.country, c->country);
    if (c->continent != NULL && strcmp(d.loc.continent, c->continent) != 0)
        fail_msg("%s: continent \"%s\", want \"%s\"", c->name, d.loc.continent, c->continent);
}

/* An address for mr_pick_input, from its text. */
static void client_addr(const char *ip, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (strchr(ip, ':') != NULL) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        in6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
    } else {
        struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
        in4->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, ip, &in4->sin_addr), 1);
    }
}

static void test_decisions(void **state)
{
    (void)state;

    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        const struct pick_case *c = &cases[k];
        static const uint64_t ends[] = {0, UINT64_MAX, UINT64_MAX - 1};
        struct sockaddr_storage ss;
        struct mr_pick_input in = {.cookie_cluster = c->cookie, .now = c->now_set ? c->now : 1000};

        build_snapshot(c);
        if (c->client != NULL) {
            client_addr(c->client, &ss);
            in.addr = (const struct sockaddr *)&ss;
        }
        if (c->exclude != NULL)
            in.exclude = cluster_rw(c->exclude);
        check_cluster(c, in.now);
        if (c->fixed) {
            in.random = c->random;
            check_decision(c, &in);
        } else {
            int64_t start = in.now;

            for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++) {
                in.random = ends[i];
                check_decision(c, &in);
            }
            for (int i = 0; i < RANDOMS; i++) {
                in.random = next_random();
                in.now = c->now_walks ? start + i : start;
                check_decision(c, &in);
            }
        }
        free_snap(NULL);
    }
}

/* ---- weights ---- */

static void test_weights_proportional(void **state)
{
    enum { N = 200000 };
    static const char *const names[] = {"w1", "w0a", "w3", "w6", "w0b"};
    static const double expect[] = {0.1, 0, 0.3, 0.6, 0};
    size_t counts[5] = {0};
    (void)state;

    load(WEIGHTED_REGION, "{\"default\": [\"r\"]}");
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

/* ---- endpoints ---- */

/* "one" has one endpoint (index 0); "three" has three, at indices 1..3, so
 * a mix-up of the cluster's and the snapshot's numbering shows. */
#define ENDPOINT_REGIONS                                                                           \
    "[{\"name\": \"r\", \"clusters\": ["                                                           \
    "   {\"name\": \"one\", \"endpoints\": [\"127.0.0.1:9001\"]},"                                 \
    "   {\"name\": \"three\", \"endpoints\": [\"127.0.0.1:9101\", \"127.0.0.1:9102\","             \
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
        const struct mr_endpoint *e = mr_pick_endpoint(three, MR_POLICY_ROUND_ROBIN, outstanding,
                                                       NULL, &cursor, NULL);
        assert_int_equal(pos(e), i % 3);
        assert_true(cursor < 3);
    }
    /* From any cursor, n picks see every endpoint once. */
    for (uint32_t start = 0; start < 3; start++) {
        bool seen[3] = {false, false, false};
        cursor = start;
        for (int i = 0; i < 3; i++) {
            int p = pos(
                mr_pick_endpoint(three, MR_POLICY_ROUND_ROBIN, outstanding, NULL, &cursor, NULL));
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
        counts[pos(
            mr_pick_endpoint(three, MR_POLICY_ROUND_ROBIN, outstanding, NULL, &cursor, NULL))]++;
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
            int at = pos(mr_pick_endpoint(three, policies[p], outstanding, waiting, &cursor, NULL));
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
            seen |= 1u << pos(mr_pick_endpoint(three, MR_POLICY_ROUND_ROBIN, outstanding, waiting,
                                               &cursor, NULL));
        assert_int_equal(seen, 7);
    }
}

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
        const struct mr_endpoint *e = mr_pick_endpoint(three, policies[p], outstanding, NULL,
                                                       &cursor, NULL);
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
        int p = pos(
            mr_pick_endpoint(three, MR_POLICY_LEAST_REQUESTS, outstanding, NULL, &cursor, NULL));
        assert_int_equal(p, i % 3);
    }
    /* Two tied at the minimum: both get picks, the other none. */
    outstanding[2] = 9;
    for (int i = 0; i < 30; i++)
        counts[pos(
            mr_pick_endpoint(three, MR_POLICY_LEAST_REQUESTS, outstanding, NULL, &cursor, NULL))]++;
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
                const struct mr_endpoint *e = mr_pick_endpoint(three, policies[pi], outstanding,
                                                               NULL, &cursor, avoid);
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
        assert_null(
            mr_pick_endpoint(one, policies[pi], outstanding, NULL, &cursor, &one->endpoints[0]));
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

/* Under min_healthy 0.5, eu-a is eligible with one of its two endpoints
 * down (the decision table's case): the endpoint choice never returns the
 * down one, even when it is the least loaded and whatever the cursor. */
static void test_down_endpoint_never_picked(void **state)
{
    static const enum mr_endpoint_policy policies[] = {MR_POLICY_ROUND_ROBIN,
                                                       MR_POLICY_LEAST_REQUESTS};
    const struct mr_cluster *eu_a;
    const struct mr_endpoint *down, *up;
    (void)state;

    load_with("\"health\": {\"fall\": 1, \"rise\": 1, \"min_healthy\": 0.5},", HEALTH_REGIONS,
              EU_US);
    attach_health();
    eu_a = mr_snap_cluster(snap, "eu-a");
    set_down("eu-a", 0);
    set_down("eu-b", 0);
    set_down("eu-b", 1);
    down = &eu_a->endpoints[0];
    up = &eu_a->endpoints[1];

    for (size_t pi = 0; pi < 2; pi++) {
        uint32_t outstanding[6] = {0};
        outstanding[up->index] = 1000;
        for (uint32_t start = 0; start < 2; start++) {
            uint32_t cursor = start;
            for (int i = 0; i < 20; i++) {
                const struct mr_endpoint *e = mr_pick_endpoint(eu_a, policies[pi], outstanding,
                                                               NULL, &cursor, NULL);
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
            assert_null(mr_pick_endpoint(mr_snap_cluster(snap, "eu-b"), policies[pi], outstanding,
                                         NULL, &cursor, NULL));
        }
    }
    assert_false(mr_health_endpoint_up(down));
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reason_names),
        cmocka_unit_test_teardown(test_decisions, free_snap),
        cmocka_unit_test_teardown(test_weights_proportional, free_snap),
        cmocka_unit_test_teardown(test_fractional_weights, free_snap),
        cmocka_unit_test_teardown(test_round_robin_cycles, free_snap),
        cmocka_unit_test_teardown(test_round_robin_skips_piled_up, free_snap),
        cmocka_unit_test_teardown(test_ejected_skipped, free_snap),
        cmocka_unit_test_teardown(test_stalled_skipped, free_snap),
        cmocka_unit_test_teardown(test_least_requests, free_snap),
        cmocka_unit_test_teardown(test_least_requests_ties_rotate, free_snap),
        cmocka_unit_test_teardown(test_avoid, free_snap),
        cmocka_unit_test(test_no_endpoints),
        cmocka_unit_test_teardown(test_down_endpoint_never_picked, free_snap),
    };

    mr_test_find_testdata(argc > 0 ? argv[0] : "");
    /* Health transitions log at WARN: keep the test output to cmocka's. */
    mr_log_set_level(MR_LOG_ERROR);
    return cmocka_run_group_tests(tests, mr_test_keys_setup, mr_test_keys_teardown);
}
