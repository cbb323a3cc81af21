/*
 * router/lease.h: a worker's hold on one snapshot, with the per-snapshot
 * balancing state.
 *
 * A lease belongs to one worker and is touched by its thread only; it lives
 * while the snapshot is current or an exchange still uses it (users). Its
 * arrays are indexed by the snapshot's endpoint->index and cluster->index,
 * so they are valid only with that snapshot; the data path goes through the
 * inline functions below, never indexing them itself (no lock, no
 * allocation per request).
 */
#ifndef MR_ROUTER_LEASE_H
#define MR_ROUTER_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/snapshot.h"
#include "router/pick.h"
#include "router/stats.h"

struct mr_cookie_keys;

/* A worker's hold on one snapshot, with the per-snapshot balancing state. */
struct mr_lease {
    struct mr_snapshot *snap;
    unsigned users;         /* exchanges using it, +1 while it is current */
    uint32_t *outstanding;  /* requests in flight per endpoint->index */
    uint32_t *cursors;      /* round-robin position per cluster->index */
    uint32_t *awaiting;     /* requests waiting for a response head, per endpoint->index */
    int64_t *waiting_since; /* per endpoint->index: since when (mr_passive_now_ms) it has
                               had requests waiting and answered none; 0: none waiting */
    struct mr_cookie_keys *cookie_keys;        /* this snapshot's session keys */
    struct mr_stats_cluster **cluster_stats;   /* by cluster->index */
    struct mr_stats_endpoint **endpoint_stats; /* by endpoint->index */
    struct mr_cookie_line *cookie_lines;       /* by cluster->index * 2 + tls */
};

/* A signed Set-Cookie line, reused while its issue second lasts: every new
 * session of that second gets the same bytes, without another HMAC. */
struct mr_cookie_line {
    int64_t issued_s; /* 0: empty */
    size_t len;
    char text[640];
};

/* A lease on snap (its reference moves to the lease) with one user, its
 * counters found by name in stats; NULL when memory ran out (snap is then
 * still the caller's). */
struct mr_lease *mr_lease_new(struct mr_stats *stats, struct mr_snapshot *snap);

/* Frees the lease and releases its snapshot; accepts NULL. */
void mr_lease_free(struct mr_lease *l);

/* An attempt of an exchange starts on ep: one more request in flight there
 * (least-requests balancing) and in its counters. */
static inline void mr_lease_endpoint_started(struct mr_lease *l, const struct mr_endpoint *ep)
{
    struct mr_stats_endpoint *es = l->endpoint_stats[ep->index];

    l->outstanding[ep->index]++;
    if (es != NULL) {
        mr_stats_add(&es->requests, 1);
        mr_stats_add(&es->active, 1);
    }
}

/* The attempt on ep is over (answered, failed or cut). */
static inline void mr_lease_endpoint_ended(struct mr_lease *l, const struct mr_endpoint *ep)
{
    struct mr_stats_endpoint *es = l->endpoint_stats[ep->index];

    if (l->outstanding[ep->index] > 0)
        l->outstanding[ep->index]--;
    if (es != NULL)
        mr_stats_add(&es->active, (uint64_t)-1);
}

/* A connect to ep failed (refused, unreachable or timed out). */
static inline void mr_lease_connect_failed(struct mr_lease *l, const struct mr_endpoint *ep)
{
    struct mr_stats_endpoint *es = l->endpoint_stats[ep->index];

    if (es != NULL)
        mr_stats_add(&es->connect_failures, 1);
}

/* A request starts waiting for a response head from ep at now_ms
 * (mr_passive_now_ms()): the first one waiting starts the stall clock. */
static inline void mr_lease_await(struct mr_lease *l, const struct mr_endpoint *ep, int64_t now_ms)
{
    if (l->awaiting[ep->index]++ == 0)
        l->waiting_since[ep->index] = now_ms;
}

/* A request stops waiting for ep's response head; answered: a head came,
 * so ep is not stalled and the clock of those still waiting restarts. */
static inline void mr_lease_await_end(struct mr_lease *l, const struct mr_endpoint *ep,
                                      bool answered, int64_t now_ms)
{
    if (--l->awaiting[ep->index] == 0)
        l->waiting_since[ep->index] = 0;
    else if (answered)
        l->waiting_since[ep->index] = now_ms;
}

/* The counters of cluster (NULL when memory ran out: not counted). */
static inline struct mr_stats_cluster *mr_lease_cluster_stats(const struct mr_lease *l,
                                                              const struct mr_cluster *cluster)
{
    return l->cluster_stats[cluster->index];
}

/* An endpoint of cluster by the snapshot's endpoint_policy, on this
 * worker's in-flight counts, stall clocks and rotation (mr_pick_endpoint);
 * avoid: one to skip, or NULL. */
static inline const struct mr_endpoint *mr_lease_pick_endpoint(struct mr_lease *l,
                                                               const struct mr_cluster *cluster,
                                                               const struct mr_endpoint *avoid)
{
    return mr_pick_endpoint(cluster, l->snap->routing.endpoint_policy, l->outstanding,
                            l->waiting_since, &l->cursors[cluster->index], avoid);
}

/* The Set-Cookie line kept for cluster on TLS or plain listeners (TLS
 * listeners' carry Secure whatever the configuration says). */
static inline struct mr_cookie_line *
mr_lease_cookie_line(struct mr_lease *l, const struct mr_cluster *cluster, bool tls)
{
    return &l->cookie_lines[cluster->index * 2 + (tls ? 1 : 0)];
}

#endif
