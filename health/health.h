/*
 * health/health.h: health state of every endpoint, and the cluster view.
 *
 * A slot holds one endpoint's state. It is keyed by (cluster name, address
 * text), so an endpoint that keeps its cluster and address keeps its slot,
 * history included, across a reload; an endpoint moved to another cluster
 * gets a fresh slot.
 *
 * Threads: the registry (struct mr_health), mr_health_attach(),
 * mr_health_report() and every field marked "control thread" belong to the
 * control thread. Workers read a slot's state through
 * mr_health_endpoint_up() (an acquire load) and write only its passive
 * fields (atomics, see health/passive.h).
 *
 * Lifetime: a slot is reference counted (atomically). The registry holds
 * one reference while the slot is in the newest attached snapshot; every
 * snapshot holds one per endpoint pointing at it (dropped by a release hook,
 * possibly on a worker thread); the checker holds one per check loop. The
 * slot's memory goes with the last reference, whoever drops it.
 *
 * Initial state: a new slot is UP. A new endpoint serves at once, as it did
 * before health checks existed, and a reload that adds endpoints never
 * shrinks a healthy cluster below min_healthy for the time of `rise` checks
 * (starting DOWN would make a freshly started edge answer 503 until the
 * first checks pass). The cost, routing to a dead new endpoint, is bounded:
 * the checker runs a new slot's first check at once, not after an interval,
 * and `fall` consecutive failures take it down; the data path retries a
 * failed connect on another endpoint meanwhile.
 *
 * State machine (pure, apart from logging): `rise` consecutive successes
 * take a down slot up, `fall` consecutive failures take an up slot down;
 * every success resets the failure run and the reverse. rise and fall come
 * from the newest snapshot the slot was attached to.
 */
#ifndef MR_HEALTH_HEALTH_H
#define MR_HEALTH_HEALTH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/snapshot.h"

struct mr_health; /* the registry: opaque, control thread */

#define MR_HEALTH_TRANSITIONS 64 /* transitions kept in the registry's ring */
#define MR_HEALTH_WHY_LEN 128    /* result and reason texts, truncated */

struct mr_health_slot {
    unsigned magic;
    atomic_bool up;  /* shared: release store by the control thread */
    atomic_int refs; /* shared: registry + snapshots + check loops */

    /* Passive health (health/passive.h), shared: workers and control thread. */
    atomic_int passive_failures;        /* data-path failures in a row */
    atomic_int_least64_t ejected_until; /* CLOCK_MONOTONIC ms; <= now: in picks */
    atomic_int ejections;               /* count the back-off doubles on */
    atomic_int eject_reason;            /* enum mr_passive_reason of the last ejection */
    atomic_uint_least64_t ejections_total;

    /* Control thread only, below. */
    char *cluster;           /* key, owned copy */
    char *address;           /* key, owned copy: "127.0.0.1:18101" */
    int rise, fall;          /* from the newest attached snapshot */
    int successes, failures; /* current run of consecutive results */
    int64_t changed_ms;      /* unix ms of the last transition, or creation */
    uint64_t checks;         /* results reported so far */
    bool last_ok;
    char last[MR_HEALTH_WHY_LEN]; /* last result: "HTTP 200", "timeout after 300 ms" */
    struct mr_health *registry;   /* NULL once dropped from the registry */
    uint64_t epoch;               /* last attach that kept it (registry internal) */
};

/* One state change, as kept in the registry's ring. */
struct mr_health_transition {
    int64_t time_ms;  /* unix ms */
    char cluster[64]; /* truncated copies: the slot may be gone */
    char address[64];
    bool up; /* the new state */
    char reason[MR_HEALTH_WHY_LEN];
};

/* A new, empty registry, or NULL when out of memory. Control thread. */
struct mr_health *mr_health_new(void);

/* Drops the registry's references (slots still held by snapshots or a
 * checker live on, frozen). Free the checker first. Accepts NULL. */
void mr_health_free(struct mr_health *h);

/* Before snap is published: points every endpoint->health at the slot with
 * the same (cluster name, address) or at a new UP slot, takes one slot
 * reference per endpoint for snap and registers a release hook dropping
 * them. Slots absent from snap leave the registry (held ones live on).
 * Attaching the same snapshot again re-attaches it. 0, or -1 when out of
 * memory or snap's release hooks are full; on -1 snap and the registry are
 * unchanged. */
int mr_health_attach(struct mr_health *h, struct mr_snapshot *snap);

/* Takes / drops a slot reference; the last drop frees. Any thread; release
 * accepts NULL. */
struct mr_health_slot *mr_health_slot_acquire(struct mr_health_slot *slot);
void mr_health_slot_release(struct mr_health_slot *slot);

/* True when the endpoint is up; an endpoint without a slot reads as up.
 * Any thread. */
bool mr_health_endpoint_up(const struct mr_endpoint *e);

/* Number of the cluster's endpoints that are up. Any thread. */
size_t mr_health_cluster_up(const struct mr_cluster *c);

/* True when at least one endpoint of c is up and up / n >= the snapshot's
 * health.min_healthy. Any thread. */
bool mr_health_cluster_healthy(const struct mr_snapshot *snap, const struct mr_cluster *c);

/* Feeds one check result (why: "HTTP 503", "connect: Connection refused";
 * NULL for none) to the rise/fall state machine; a transition is logged
 * ("health: eu-west-a 127.0.0.1:18101 down: HTTP 503") and kept in the
 * registry's ring. Control thread. */
void mr_health_report(struct mr_health_slot *slot, bool ok, const char *why);

/* Copies up to max of the latest transitions, newest first, into out and
 * returns how many. Control thread. */
size_t mr_health_transitions(const struct mr_health *h, struct mr_health_transition *out,
                             size_t max);

#endif
