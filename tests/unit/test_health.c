/* tests/unit/test_health.c: health slots attached to snapshots built from
 * JSON: initial state, the rise/fall state machine, identity across
 * re-attach, min_healthy, slot lifetimes, the transitions ring. No network,
 * no sleeping. */
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

#include "common/log.h"
#include "conf/snapshot.h"
#include "health/health.h"
#include "health/passive.h"

/* 32 bytes, base64: a valid session secret. */

/* Per-test state, freed by the teardown even when an assertion fails. */
#define MAX_SNAPS 4
static struct mr_health *reg;
static struct mr_snapshot *snaps[MAX_SNAPS];

static int setup_reg(void **state)
{
    (void)state;
    reg = mr_health_new();
    return reg == NULL ? -1 : 0;
}

static int teardown_reg(void **state)
{
    (void)state;
    for (size_t i = 0; i < MAX_SNAPS; i++) {
        mr_snap_release(snaps[i]);
        snaps[i] = NULL;
    }
    mr_health_free(reg);
    reg = NULL;
    return 0;
}

/* Loads a configuration with the given "regions" and "health" members into
 * snaps[k] (refs = 1, unpublished). */
static struct mr_snapshot *load(size_t k, const char *regions, const char *health)
{
    assert_true(k < MAX_SNAPS);
    assert_null(snaps[k]);
    snaps[k] =
        mr_test_loadf("\"health\": %s, \"regions\": %s, \"routing\": {\"default\": [\"eu\"]}",
                      health, regions);
    return snaps[k];
}

static void release_snap(size_t k)
{
    mr_snap_release(snaps[k]);
    snaps[k] = NULL;
}

#define HEALTH_2_3 "{\"rise\": 2, \"fall\": 3, \"min_healthy\": 0.5}"

#define EU_AB                                                                                      \
    "[{\"name\": \"eu\", \"clusters\": ["                                                          \
    "   {\"name\": \"eu-a\", \"endpoints\": [\"127.0.0.1:9001\", \"127.0.0.1:9002\"]},"            \
    "   {\"name\": \"eu-b\", \"endpoints\": [\"127.0.0.1:9011\", \"[::1]:9012\"]}]}]"

/* The endpoint of cluster with the given address text. */
static struct mr_endpoint *endpoint(struct mr_snapshot *snap, const char *cluster,
                                    const char *address)
{
    const struct mr_cluster *c = mr_snap_cluster(snap, cluster);

    assert_non_null(c);
    for (size_t i = 0; i < c->n_endpoints; i++) {
        if (strcmp(c->endpoints[i].address, address) == 0) {
            return &c->endpoints[i];
        }
    }
    fail_msg("no endpoint %s in %s", address, cluster);
    return NULL;
}

static struct mr_health_slot *slot_of(struct mr_snapshot *snap, const char *cluster,
                                      const char *address)
{
    struct mr_health_slot *s = endpoint(snap, cluster, address)->health;

    assert_non_null(s);
    return s;
}

static int refs(const struct mr_health_slot *s)
{
    return atomic_load(&s->refs);
}

static void report_n(struct mr_health_slot *s, bool ok, int n, const char *why)
{
    for (int i = 0; i < n; i++) {
        mr_health_report(s, ok, why);
    }
}

/* ---- initial state ---- */

static void test_unattached_reads_up(void **state)
{
    struct mr_snapshot *s = load(0, EU_AB, HEALTH_2_3);
    (void)state;

    for (size_t i = 0; i < s->n_endpoints; i++) {
        assert_null(s->endpoints[i]->health);
        assert_true(mr_health_endpoint_up(s->endpoints[i]));
    }
    assert_int_equal(mr_health_cluster_up(mr_snap_cluster(s, "eu-a")), 2);
    assert_true(mr_health_cluster_healthy(s, mr_snap_cluster(s, "eu-a")));
}

static void test_attach_new_slots_up(void **state)
{
    struct mr_snapshot *s = load(0, EU_AB, HEALTH_2_3);
    (void)state;

    assert_int_equal(mr_health_attach(reg, s), 0);
    for (size_t i = 0; i < s->n_endpoints; i++) {
        struct mr_endpoint *e = s->endpoints[i];
        struct mr_health_slot *slot = e->health;

        assert_non_null(slot);
        assert_true(mr_health_endpoint_up(e));
        assert_string_equal(slot->cluster, e->cluster->name);
        assert_string_equal(slot->address, e->address);
        assert_int_equal(slot->rise, 2);
        assert_int_equal(slot->fall, 3);
        assert_int_equal(refs(slot), 2); /* registry + snapshot */
        assert_ptr_equal(slot->registry, reg);
        for (size_t j = 0; j < i; j++) {
            assert_ptr_not_equal(s->endpoints[j]->health, slot);
        }
    }
    assert_string_equal(slot_of(s, "eu-b", "[::1]:9012")->address, "[::1]:9012");
}

/* ---- state machine ---- */

static void test_fall_then_rise(void **state)
{
    struct mr_snapshot *s = load(0, EU_AB, HEALTH_2_3);
    struct mr_health_slot *a;
    struct mr_endpoint *e;
    (void)state;

    assert_int_equal(mr_health_attach(reg, s), 0);
    e = endpoint(s, "eu-a", "127.0.0.1:9001");
    a = e->health;

    /* fall = 3: two failures keep it up, a success resets the run. */
    report_n(a, false, 2, "HTTP 503");
    assert_true(mr_health_endpoint_up(e));
    assert_int_equal(a->failures, 2);
    mr_health_report(a, true, "HTTP 200");
    assert_int_equal(a->failures, 0);
    report_n(a, false, 2, "HTTP 503");
    assert_true(mr_health_endpoint_up(e));
    mr_health_report(a, false, "connect: Connection refused");
    assert_false(mr_health_endpoint_up(e));
    assert_false(a->last_ok);
    assert_string_equal(a->last, "connect: Connection refused");

    /* Further failures change nothing. */
    report_n(a, false, 5, "HTTP 503");
    assert_false(mr_health_endpoint_up(e));

    /* rise = 2: one success is not enough, a failure resets the run. */
    mr_health_report(a, true, "HTTP 200");
    assert_false(mr_health_endpoint_up(e));
    assert_int_equal(a->successes, 1);
    mr_health_report(a, false, "HTTP 500");
    assert_int_equal(a->successes, 0);
    mr_health_report(a, true, "HTTP 200");
    assert_false(mr_health_endpoint_up(e));
    mr_health_report(a, true, "HTTP 204");
    assert_true(mr_health_endpoint_up(e));
    assert_true(a->last_ok);
    assert_string_equal(a->last, "HTTP 204");
    assert_int_equal(a->checks, 2 + 1 + 3 + 5 + 4);

    /* The other endpoints never moved. */
    assert_true(mr_health_endpoint_up(endpoint(s, "eu-a", "127.0.0.1:9002")));
}

static void test_rise_fall_one(void **state)
{
    struct mr_snapshot *s = load(0, EU_AB, "{\"rise\": 1, \"fall\": 1}");
    struct mr_endpoint *e;
    (void)state;

    assert_int_equal(mr_health_attach(reg, s), 0);
    e = endpoint(s, "eu-b", "[::1]:9012");
    mr_health_report(e->health, false, NULL);
    assert_false(mr_health_endpoint_up(e));
    assert_string_equal(e->health->last, "failed");
    mr_health_report(e->health, true, NULL);
    assert_true(mr_health_endpoint_up(e));
}

/* ---- identity across re-attach ---- */

static void test_identity_survives_reattach(void **state)
{
    struct mr_snapshot *s1 = load(0, EU_AB, HEALTH_2_3), *s2;
    struct mr_health_slot *a1, *a2, *moved, *gone;
    (void)state;

    assert_int_equal(mr_health_attach(reg, s1), 0);
    a1 = slot_of(s1, "eu-a", "127.0.0.1:9001");
    moved = slot_of(s1, "eu-a", "127.0.0.1:9002");
    gone = slot_of(s1, "eu-b", "127.0.0.1:9011");
    report_n(a1, false, 3, "HTTP 503");
    assert_false(atomic_load(&a1->up));
    report_n(moved, false, 3, "HTTP 503");

    /* Reordered; 9002 moves to eu-b; 9011 goes; 9021 is new; fall 3 -> 4. */
    s2 = load(1,
              "[{\"name\": \"eu\", \"clusters\": ["
              "   {\"name\": \"eu-b\", \"endpoints\": [\"[::1]:9012\", \"127.0.0.1:9002\"]},"
              "   {\"name\": \"eu-a\", \"endpoints\": [\"127.0.0.1:9021\", "
              "                                       \"127.0.0.1:9001\"]}]}]",
              "{\"rise\": 2, \"fall\": 4}");
    assert_int_equal(mr_health_attach(reg, s2), 0);

    a2 = slot_of(s2, "eu-a", "127.0.0.1:9001");
    assert_ptr_equal(a2, a1);
    assert_false(mr_health_endpoint_up(endpoint(s2, "eu-a", "127.0.0.1:9001")));
    assert_int_equal(a2->fall, 4); /* rise/fall follow the newest snapshot */
    assert_int_equal(refs(a2), 3); /* registry + s1 + s2 */
    assert_ptr_equal(slot_of(s2, "eu-b", "[::1]:9012"), slot_of(s1, "eu-b", "[::1]:9012"));

    /* Same address, other cluster: a fresh slot, up. */
    assert_ptr_not_equal(slot_of(s2, "eu-b", "127.0.0.1:9002"), moved);
    assert_true(mr_health_endpoint_up(endpoint(s2, "eu-b", "127.0.0.1:9002")));
    assert_false(atomic_load(&moved->up));
    assert_true(mr_health_endpoint_up(endpoint(s2, "eu-a", "127.0.0.1:9021")));

    /* Left the registry, still readable through s1. */
    assert_null(gone->registry);
    assert_null(moved->registry);
    assert_int_equal(refs(gone), 1);
    assert_ptr_equal(a1->registry, reg);

    /* Reports on a slot out of the registry still work (no ring entry). */
    mr_health_report(moved, true, "HTTP 200");
    mr_health_report(moved, true, "HTTP 200");
    assert_true(atomic_load(&moved->up));

    /* s1 goes: only the slots it alone held go with it (ASan checks). */
    release_snap(0);
    assert_int_equal(refs(a2), 2);

    /* Re-attaching to a third snapshot identical to s2 keeps everything. */
    assert_int_equal(mr_health_attach(reg, load(2,
                                                "[{\"name\": \"eu\", \"clusters\": ["
                                                "   {\"name\": \"eu-a\", \"endpoints\": "
                                                "[\"127.0.0.1:9001\"]}]}]",
                                                HEALTH_2_3)),
                     0);
    assert_ptr_equal(slot_of(snaps[2], "eu-a", "127.0.0.1:9001"), a1);
    assert_false(mr_health_endpoint_up(endpoint(snaps[2], "eu-a", "127.0.0.1:9001")));
}

static void test_attach_same_snapshot_twice(void **state)
{
    struct mr_snapshot *s = load(0, EU_AB, HEALTH_2_3);
    struct mr_health_slot *a;
    size_t hooks;
    (void)state;

    assert_int_equal(mr_health_attach(reg, s), 0);
    hooks = s->n_release_hooks;
    a = slot_of(s, "eu-a", "127.0.0.1:9001");
    assert_int_equal(mr_health_attach(reg, s), 0);
    assert_int_equal(s->n_release_hooks, hooks);
    assert_ptr_equal(slot_of(s, "eu-a", "127.0.0.1:9001"), a);
    assert_int_equal(refs(a), 2);
}

static void dummy_hook(struct mr_snapshot *snap)
{
    (void)snap;
}

static void test_attach_fails_when_hooks_full(void **state)
{
    struct mr_snapshot *s = load(0, EU_AB, HEALTH_2_3);
    (void)state;

    while (s->n_release_hooks < MR_SNAP_MAX_HOOKS) {
        assert_int_equal(mr_snap_on_release(s, dummy_hook), 0);
    }
    assert_int_equal(mr_health_attach(reg, s), -1);
    for (size_t i = 0; i < s->n_endpoints; i++) {
        assert_null(s->endpoints[i]->health);
    }
}

/* ---- cluster view ---- */

static void test_min_healthy(void **state)
{
    struct mr_snapshot *s = load(0, EU_AB, "{\"rise\": 1, \"fall\": 1, \"min_healthy\": 0.5}");
    const struct mr_cluster *a = mr_snap_cluster(s, "eu-a");
    (void)state;

    assert_int_equal(mr_health_attach(reg, s), 0);
    assert_int_equal(mr_health_cluster_up(a), 2);
    assert_true(mr_health_cluster_healthy(s, a));
    mr_health_report(a->endpoints[0].health, false, "HTTP 503");
    assert_int_equal(mr_health_cluster_up(a), 1);
    assert_true(mr_health_cluster_healthy(s, a)); /* 1 / 2 >= 0.5 */
    mr_health_report(a->endpoints[1].health, false, "HTTP 503");
    assert_int_equal(mr_health_cluster_up(a), 0);
    assert_false(mr_health_cluster_healthy(s, a));
    mr_health_report(a->endpoints[0].health, true, "HTTP 200");
    assert_true(mr_health_cluster_healthy(s, a));

    /* The threshold comes from the snapshot asked about. */
    s->health.min_healthy = 1.0;
    assert_false(mr_health_cluster_healthy(s, a)); /* 1 / 2 < 1 */
    s->health.min_healthy = 0.51;
    assert_false(mr_health_cluster_healthy(s, a));
    s->health.min_healthy = 0.01;
    assert_true(mr_health_cluster_healthy(s, a));
}

static void test_min_healthy_rounding(void **state)
{
    char regions[1024];
    size_t n;
    struct mr_snapshot *s;
    const struct mr_cluster *c;
    (void)state;

    n = (size_t)snprintf(regions, sizeof(regions),
                         "[{\"name\": \"eu\", \"clusters\": [{\"name\": \"many\", "
                         "\"endpoints\": [");
    for (int i = 0; i < 25; i++) {
        n += (size_t)snprintf(regions + n, sizeof(regions) - n, "%s\"127.0.0.1:%d\"",
                              i > 0 ? ", " : "", 9100 + i);
    }
    snprintf(regions + n, sizeof(regions) - n, "]}]}]");
    /* 0.28 * 25 is 7.000000000000001 in doubles: 7 up must still do. */
    s = load(0, regions, "{\"rise\": 1, \"fall\": 1, \"min_healthy\": 0.28}");
    c = mr_snap_cluster(s, "many");
    assert_int_equal(mr_health_attach(reg, s), 0);

    for (size_t i = 0; i < 18; i++) {
        mr_health_report(c->endpoints[i].health, false, "HTTP 503");
    }
    assert_int_equal(mr_health_cluster_up(c), 7);
    assert_true(mr_health_cluster_healthy(s, c)); /* 7 / 25 >= 0.28 */
    mr_health_report(c->endpoints[18].health, false, "HTTP 503");
    assert_int_equal(mr_health_cluster_up(c), 6);
    assert_false(mr_health_cluster_healthy(s, c)); /* 6 / 25 */
}

/* ---- lifetimes (ASan / valgrind report any leak or use after free) ---- */

static void attach_three(void)
{
    assert_int_equal(mr_health_attach(reg, load(0, EU_AB, HEALTH_2_3)), 0);
    assert_int_equal(mr_health_attach(reg, load(1,
                                                "[{\"name\": \"eu\", \"clusters\": ["
                                                "   {\"name\": \"eu-a\", \"endpoints\": "
                                                "[\"127.0.0.1:9001\"]}]}]",
                                                HEALTH_2_3)),
                     0);
    assert_int_equal(mr_health_attach(reg, load(2,
                                                "[{\"name\": \"eu\", \"clusters\": ["
                                                "   {\"name\": \"eu-b\", \"endpoints\": "
                                                "[\"127.0.0.1:9001\"]}]}]",
                                                HEALTH_2_3)),
                     0);
}

static void test_release_order_forward(void **state)
{
    (void)state;
    attach_three();
    release_snap(0);
    release_snap(1);
    release_snap(2);
    mr_health_free(reg);
    reg = NULL;
}

static void test_release_order_mixed(void **state)
{
    struct mr_health_slot *kept;
    (void)state;

    attach_three();
    kept = mr_health_slot_acquire(slot_of(snaps[0], "eu-a", "127.0.0.1:9001"));
    release_snap(2);
    mr_health_free(reg); /* registry first: snapshots keep their slots */
    reg = NULL;
    release_snap(0);
    assert_true(mr_health_endpoint_up(endpoint(snaps[1], "eu-a", "127.0.0.1:9001")));
    release_snap(1);
    assert_int_equal(refs(kept), 1);
    mr_health_report(kept, false, "still usable"); /* no registry: no ring */
    mr_health_slot_release(kept);
}

static void test_release_through_publish(void **state)
{
    (void)state;
    attach_three();
    /* The publish path: snapshots released by the swap and at shutdown. */
    mr_snap_publish(snaps[0]);
    mr_snap_publish(snaps[1]);
    mr_snap_publish(snaps[2]);
    snaps[0] = snaps[1] = snaps[2] = NULL;
    mr_snap_shutdown();
}

/* ---- transitions ring ---- */

static void test_transitions_ring(void **state)
{
    struct mr_snapshot *s = load(0, EU_AB, "{\"rise\": 1, \"fall\": 1}");
    struct mr_health_transition t[MR_HEALTH_TRANSITIONS + 8];
    struct mr_health_slot *a, *b;
    char why[32];
    size_t n;
    (void)state;

    assert_int_equal(mr_health_attach(reg, s), 0);
    assert_int_equal(mr_health_transitions(reg, t, 8), 0);
    a = slot_of(s, "eu-a", "127.0.0.1:9001");
    b = slot_of(s, "eu-b", "[::1]:9012");

    mr_health_report(a, true, "HTTP 200"); /* not a transition */
    mr_health_report(a, false, "connect: Connection refused");
    n = mr_health_transitions(reg, t, 8);
    assert_int_equal(n, 1);
    assert_string_equal(t[0].cluster, "eu-a");
    assert_string_equal(t[0].address, "127.0.0.1:9001");
    assert_false(t[0].up);
    assert_string_equal(t[0].reason, "connect: Connection refused");
    assert_true(t[0].time_ms > 0);
    assert_int_equal(t[0].time_ms, a->changed_ms);

    /* 70 more transitions on b: the ring keeps the newest 64, newest first. */
    for (int i = 0; i < 70; i++) {
        snprintf(why, sizeof(why), "step %d", i);
        mr_health_report(b, i % 2 == 1, why);
    }
    n = mr_health_transitions(reg, t, sizeof(t) / sizeof(t[0]));
    assert_int_equal(n, MR_HEALTH_TRANSITIONS);
    for (size_t i = 0; i < n; i++) {
        int step = 69 - (int)i;

        snprintf(why, sizeof(why), "step %d", step);
        assert_string_equal(t[i].reason, why);
        assert_string_equal(t[i].cluster, "eu-b");
        assert_string_equal(t[i].address, "[::1]:9012");
        assert_int_equal(t[i].up, step % 2 == 1);
    }
    assert_int_equal(mr_health_transitions(reg, t, 3), 3);
    assert_string_equal(t[0].reason, "step 69");
    assert_string_equal(t[2].reason, "step 67");
}

/* ---- passive health ---- */

#define PASSIVE(pct)                                                                               \
    "{\"passive\": {\"consecutive_failures\": 3, \"base_ms\": 1000, \"max_ms\": 4000,"             \
    " \"max_ejected_percent\": " pct "}}"

/* n failures of e at now; true when the last one ejected it. */
static bool fail_n(struct mr_snapshot *s, struct mr_endpoint *e, int n, int64_t now)
{
    bool ejected = false;

    for (int i = 0; i < n; i++)
        ejected = mr_passive_failure(s, e, MR_PASSIVE_CONNECT, now);
    return ejected;
}

static void test_passive_backoff(void **state)
{
    (void)state;
    assert_int_equal(mr_passive_backoff_ms(0, 5000, 300000), 5000);
    assert_int_equal(mr_passive_backoff_ms(1, 5000, 300000), 10000);
    assert_int_equal(mr_passive_backoff_ms(5, 5000, 300000), 160000);
    assert_int_equal(mr_passive_backoff_ms(6, 5000, 300000), 300000);
    assert_int_equal(mr_passive_backoff_ms(1000, 5000, 300000), 300000);
    assert_int_equal(mr_passive_backoff_ms(0, 700, 500), 500);
}

static void test_passive_consecutive(void **state)
{
    struct mr_snapshot *s = load(0, EU_AB, PASSIVE("50"));
    struct mr_endpoint *a1 = endpoint(s, "eu-a", "127.0.0.1:9001");
    int64_t t = mr_passive_now_ms();
    (void)state;

    assert_int_equal(s->health.passive.consecutive_failures, 3);
    assert_int_equal(mr_health_attach(reg, s), 0);
    /* Two, a success, two: never three in a row. */
    assert_false(fail_n(s, a1, 2, t));
    mr_passive_success(a1);
    assert_false(fail_n(s, a1, 2, t));
    assert_false(mr_passive_ejected(a1, t));
    /* The third in a row ejects, for base_ms. */
    assert_true(mr_passive_failure(s, a1, MR_PASSIVE_TIMEOUT, t));
    assert_true(mr_passive_ejected(a1, t));
    assert_true(mr_passive_ejected(a1, t + 999));
    assert_false(mr_passive_ejected(a1, t + 1000));
    assert_int_equal(atomic_load(&a1->health->eject_reason), MR_PASSIVE_TIMEOUT);
    assert_int_equal(atomic_load(&a1->health->ejections_total), 1);
    /* Failures while ejected (requests already in flight) do not count. */
    assert_false(fail_n(s, a1, 5, t + 10));
    assert_int_equal(atomic_load(&a1->health->passive_failures), 0);
    /* Health is not touched: ejection only steers picks. */
    assert_true(mr_health_endpoint_up(a1));
}

static void test_passive_backoff_doubles_then_resets(void **state)
{
    struct mr_snapshot *s = load(0, EU_AB, PASSIVE("50"));
    struct mr_endpoint *a1 = endpoint(s, "eu-a", "127.0.0.1:9001");
    int64_t t = mr_passive_now_ms();
    int64_t expect[] = {1000, 2000, 4000, 4000};
    (void)state;

    assert_int_equal(mr_health_attach(reg, s), 0);
    for (size_t i = 0; i < 4; i++) {
        assert_true(fail_n(s, a1, 3, t));
        assert_true(mr_passive_ejected(a1, t + expect[i] - 1));
        assert_false(mr_passive_ejected(a1, t + expect[i]));
        t += expect[i] + 10; /* back in picks, failing again soon */
    }
    /* In picks for max_ms since the last ejection ended: base_ms again. */
    t += 4000;
    assert_true(fail_n(s, a1, 3, t));
    assert_true(mr_passive_ejected(a1, t + 999));
    assert_false(mr_passive_ejected(a1, t + 1000));
}

static void test_passive_max_ejected_percent(void **state)
{
    struct mr_snapshot *s = load(0, EU_AB, PASSIVE("50"));
    struct mr_endpoint *a1 = endpoint(s, "eu-a", "127.0.0.1:9001");
    struct mr_endpoint *a2 = endpoint(s, "eu-a", "127.0.0.1:9002");
    struct mr_endpoint *b1 = endpoint(s, "eu-b", "127.0.0.1:9011");
    int64_t t = mr_passive_now_ms();
    (void)state;

    assert_int_equal(mr_health_attach(reg, s), 0);
    assert_int_equal(mr_passive_max_ejected(s, mr_snap_cluster(s, "eu-a")), 1);
    assert_true(fail_n(s, a1, 3, t));
    /* 2 endpoints at 50 %: the second stays in picks however it fails. */
    assert_false(fail_n(s, a2, 10, t));
    assert_false(mr_passive_ejected(a2, t));
    /* Another cluster has its own count. */
    assert_true(fail_n(s, b1, 3, t));
    /* Once the first is back, the second (still failing) goes out. */
    assert_true(mr_passive_failure(s, a2, MR_PASSIVE_RESET, t + 1000));
    assert_true(mr_passive_ejected(a2, t + 1000));
    assert_false(mr_passive_ejected(a1, t + 1000));
}

static void test_passive_rounding_and_off(void **state)
{
    struct mr_snapshot *s = load(0, EU_AB, PASSIVE("49"));
    struct mr_snapshot *off = load(1, EU_AB, "{\"passive\": {\"consecutive_failures\": 0}}");
    int64_t t = mr_passive_now_ms();
    (void)state;

    /* Rounded down: 49 % of 2 is none. */
    assert_int_equal(mr_health_attach(reg, s), 0);
    assert_int_equal(mr_passive_max_ejected(s, mr_snap_cluster(s, "eu-a")), 0);
    assert_false(fail_n(s, endpoint(s, "eu-a", "127.0.0.1:9001"), 10, t));
    /* consecutive_failures 0: passive ejection off. */
    assert_int_equal(mr_health_attach(reg, off), 0);
    assert_false(fail_n(off, endpoint(off, "eu-a", "127.0.0.1:9002"), 100, t));
}

static void test_passive_check_pass_and_reload(void **state)
{
    struct mr_snapshot *s = load(0, EU_AB, PASSIVE("50"));
    struct mr_snapshot *next;
    struct mr_endpoint *a1 = endpoint(s, "eu-a", "127.0.0.1:9001");
    int64_t t = mr_passive_now_ms();
    (void)state;

    assert_int_equal(mr_health_attach(reg, s), 0);
    assert_true(fail_n(s, a1, 3, t));
    /* A reload that keeps the endpoint keeps its ejection. */
    next = load(1, EU_AB, PASSIVE("50"));
    assert_int_equal(mr_health_attach(reg, next), 0);
    assert_true(mr_passive_ejected(endpoint(next, "eu-a", "127.0.0.1:9001"), t));
    /* A passing active check ends it; a failing one does not. */
    mr_health_report(slot_of(next, "eu-a", "127.0.0.1:9001"), false, "HTTP 503");
    assert_true(mr_passive_ejected(endpoint(next, "eu-a", "127.0.0.1:9001"), t));
    mr_health_report(slot_of(next, "eu-a", "127.0.0.1:9001"), true, "HTTP 200");
    /* The ejection ends at the check's time, so ask at or after it (t is
     * older by however long the test took to get here). */
    assert_false(mr_passive_ejected(endpoint(next, "eu-a", "127.0.0.1:9001"), mr_passive_now_ms()));
    assert_int_equal(atomic_load(&a1->health->ejections_total), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unattached_reads_up, setup_reg, teardown_reg),
        cmocka_unit_test_setup_teardown(test_attach_new_slots_up, setup_reg, teardown_reg),
        cmocka_unit_test_setup_teardown(test_fall_then_rise, setup_reg, teardown_reg),
        cmocka_unit_test_setup_teardown(test_rise_fall_one, setup_reg, teardown_reg),
        cmocka_unit_test_setup_teardown(test_identity_survives_reattach, setup_reg, teardown_reg),
        cmocka_unit_test_setup_teardown(test_attach_same_snapshot_twice, setup_reg, teardown_reg),
        cmocka_unit_test_setup_teardown(test_attach_fails_when_hooks_full, setup_reg, teardown_reg),
        cmocka_unit_test_setup_teardown(test_min_healthy, setup_reg, teardown_reg),
        cmocka_unit_test_setup_teardown(test_min_healthy_rounding, setup_reg, teardown_reg),
        cmocka_unit_test_setup_teardown(test_release_order_forward, setup_reg, teardown_reg),
        cmocka_unit_test_setup_teardown(test_release_order_mixed, setup_reg, teardown_reg),
        cmocka_unit_test_setup_teardown(test_release_through_publish, setup_reg, teardown_reg),
        cmocka_unit_test_setup_teardown(test_transitions_ring, setup_reg, teardown_reg),
        cmocka_unit_test(test_passive_backoff),
        cmocka_unit_test_setup_teardown(test_passive_consecutive, setup_reg, teardown_reg),
        cmocka_unit_test_setup_teardown(test_passive_backoff_doubles_then_resets, setup_reg,
                                        teardown_reg),
        cmocka_unit_test_setup_teardown(test_passive_max_ejected_percent, setup_reg, teardown_reg),
        cmocka_unit_test_setup_teardown(test_passive_rounding_and_off, setup_reg, teardown_reg),
        cmocka_unit_test_setup_teardown(test_passive_check_pass_and_reload, setup_reg,
                                        teardown_reg),
    };

    /* Transitions are logged at info/warning; keep the test output quiet. */
    mr_log_set_level(MR_LOG_ERROR);
    return cmocka_run_group_tests(tests, mr_test_keys_setup, mr_test_keys_teardown);
}
