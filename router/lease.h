/*
 * router/lease.h: a worker's hold on one snapshot, with the per-snapshot
 * balancing state.
 *
 * A lease belongs to one worker and is touched by its thread only; it lives
 * while the snapshot is current or an exchange still uses it (users). Its
 * arrays are indexed by the snapshot's endpoint->index and cluster->index,
 * so they are valid only with that snapshot.
 */
#ifndef MR_ROUTER_LEASE_H
#define MR_ROUTER_LEASE_H

#include <stddef.h>
#include <stdint.h>

#include "conf/snapshot.h"

struct mr_cookie_keys;
struct mr_stats;
struct mr_stats_cluster;
struct mr_stats_endpoint;

/* A worker's hold on one snapshot, with the per-snapshot balancing state. */
struct mr_lease {
    struct mr_snapshot *snap;
    unsigned users;         /* exchanges using it, +1 while it is current */
    uint32_t *outstanding;  /* requests in flight per endpoint->index */
    uint32_t *cursors;      /* round-robin position per cluster->index */
    uint32_t *awaiting;     /* requests waiting for a response head, per endpoint->index */
    int64_t *waiting_since; /* per endpoint->index: since when (mr_passive_now_ms) it has
                               had requests waiting and answered none; 0: none waiting */
    struct mr_cookie_keys *cookie_keys; /* this snapshot's session keys */
    struct mr_stats_cluster **cluster_stats;   /* by cluster->index */
    struct mr_stats_endpoint **endpoint_stats; /* by endpoint->index */
    struct mr_cookie_line *cookie_lines;       /* by cluster->index * 2 + tls */
};

/* A signed Set-Cookie line, reused while its issue second lasts: every new
 * session of that second gets the same bytes, without another HMAC. */
struct mr_cookie_line {
    int64_t issued_s;       /* 0: empty */
    size_t len;
    char text[640];
};

/* A lease on snap (its reference moves to the lease) with one user, its
 * counters found by name in stats; NULL when memory ran out (snap is then
 * still the caller's). */
struct mr_lease *mr_lease_new(struct mr_stats *stats, struct mr_snapshot *snap);

/* Frees the lease and releases its snapshot; accepts NULL. */
void mr_lease_free(struct mr_lease *l);

#endif
