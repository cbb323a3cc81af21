/*
 * router/stats.h: traffic counters, one set per worker, summed on read.
 *
 * Each worker writes only its own counters, with relaxed atomic loads and
 * stores (a plain add on x86, no lock and no shared cache line); readers on
 * the control thread load them relaxed and sum over workers. Per-cluster
 * and per-endpoint records are keyed by name, not by snapshot index, so
 * counters keep counting across reloads; a worker finds or adds its records
 * when it takes a lease on a new snapshot and publishes new records with a
 * release store, so readers can walk the lists at any time.
 *
 * Readers never walk the lists themselves: the mr_stats_sum* functions take
 * every worker's set (an array of n pointers) and add up what each has
 * counted, matching records by name, so a cluster or endpoint only some
 * workers have seen sums what those have. Sums are plain numbers on the
 * caller's side; a gauge is the sum of the workers' gauges.
 */
#ifndef MR_ROUTER_STATS_H
#define MR_ROUTER_STATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/snapshot.h"

/* Request duration histogram upper bounds, in seconds (Prometheus "le"). */
#define MR_STATS_BUCKETS 12
extern const double mr_stats_bucket_le[MR_STATS_BUCKETS];

/* New sessions per country: 26 x 26 two-letter codes, plus "unknown". */
#define MR_STATS_COUNTRIES (26 * 26 + 1)
#define MR_STATS_COUNTRY_UNKNOWN (26 * 26)

typedef _Atomic uint64_t mr_counter;

struct mr_stats_cluster {
    char name[72];
    mr_counter requests;
    mr_counter status[6]; /* by class: [0] no status, [1] 1xx ... [5] 5xx */
    mr_counter active;    /* exchanges in flight (a gauge) */
    mr_counter new_sessions;
    mr_counter sticky_hits;
    mr_counter new_by_country[MR_STATS_COUNTRIES];
    struct mr_stats_cluster *next; /* written before publication, then fixed */
};

struct mr_stats_endpoint {
    char cluster[72];
    char address[72];
    mr_counter requests;
    mr_counter active;
    mr_counter connect_failures;
    struct mr_stats_endpoint *next;
};

/* Per listener, by index: listeners change only at restart. */
#define MR_STATS_LISTENERS 32

struct mr_stats_listener {
    mr_counter tls_handshakes;         /* completed, full */
    mr_counter tls_resumed;            /* completed, resumed from a ticket or cache */
    mr_counter tls_handshake_failures; /* closed before the handshake completed */
    mr_counter proxy_protocol_errors;  /* no valid PROXY header: closed */
    mr_counter proxy_protocol_refused; /* peer not in proxy_protocol_from: closed */
};

struct mr_stats {
    mr_counter decisions[5]; /* by enum mr_pick_reason */
    mr_counter bad_cookies;
    mr_counter bad_response_bodies; /* malformed chunked from an origin: client cut */
    mr_counter retries;
    mr_counter duration_buckets[MR_STATS_BUCKETS]; /* cumulative at read */
    mr_counter duration_count;
    mr_counter duration_sum_us;
    mr_counter client_connections; /* open client connections (a gauge) */
    mr_counter tunnels;            /* open upgraded tunnels (a gauge) */
    mr_counter tunnels_total;
    struct mr_stats_listener listeners[MR_STATS_LISTENERS];
    _Atomic(struct mr_stats_cluster *) clusters;
    _Atomic(struct mr_stats_endpoint *) endpoints;
};

/* Single-writer increment: the owning worker only. */
static inline void mr_stats_add(mr_counter *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline uint64_t mr_stats_get(const mr_counter *c)
{
    return atomic_load_explicit((mr_counter *)c, memory_order_relaxed);
}

struct mr_stats *mr_stats_new(void);
void mr_stats_free(struct mr_stats *s);

/* The records of a cluster / endpoint, added when new (owning worker only);
 * NULL when memory ran out (the request is then not counted). */
struct mr_stats_cluster *mr_stats_cluster(struct mr_stats *s, const char *name);
struct mr_stats_endpoint *mr_stats_endpoint(struct mr_stats *s, const char *cluster,
                                            const char *address);

/* Index into new_by_country for "GB"; MR_STATS_COUNTRY_UNKNOWN otherwise. */
size_t mr_stats_country_index(const char *cc);

/* Counts one finished request's duration. */
void mr_stats_observe(struct mr_stats *s, uint64_t duration_us);

/* The label of new_by_country[k]: "GB", or "unknown" for
 * MR_STATS_COUNTRY_UNKNOWN. out holds at least 8 bytes. */
void mr_stats_country_name(size_t k, char *out);

/* The process-wide counters of struct mr_stats, summed over workers. */
struct mr_stats_listener_sum {
    uint64_t tls_handshakes, tls_resumed, tls_handshake_failures;
    uint64_t proxy_protocol_errors, proxy_protocol_refused;
};

struct mr_stats_sum {
    uint64_t decisions[5]; /* by enum mr_pick_reason */
    uint64_t bad_cookies, bad_response_bodies, retries;
    uint64_t duration_buckets[MR_STATS_BUCKETS]; /* per bucket, not cumulative */
    uint64_t duration_count, duration_sum_us;
    uint64_t client_connections, tunnels, tunnels_total;
    struct mr_stats_listener_sum listeners[MR_STATS_LISTENERS];
};

/* One cluster's counters summed over workers (0 where none counted it). */
struct mr_stats_cluster_sum {
    uint64_t requests, status[6], active, new_sessions, sticky_hits;
    uint64_t new_by_country[MR_STATS_COUNTRIES];
};

/* One endpoint's counters summed over workers. */
struct mr_stats_endpoint_sum {
    uint64_t requests, active, connect_failures;
};

/* Fills *out with the sum of the n sets in stats. */
void mr_stats_sum(struct mr_stats *const *stats, size_t n, struct mr_stats_sum *out);

/* Fills *out with the sum of every record named cluster. */
void mr_stats_sum_cluster(struct mr_stats *const *stats, size_t n, const char *cluster,
                          struct mr_stats_cluster_sum *out);

/* Fills *out with the sum of every record of (cluster, address). */
void mr_stats_sum_endpoint(struct mr_stats *const *stats, size_t n, const char *cluster,
                           const char *address, struct mr_stats_endpoint_sum *out);

/* Calls each once for every cluster name some worker has a record of (those
 * of clusters a reload removed included), with that cluster's sum; sum is
 * valid during the call only. */
typedef void mr_stats_cluster_fn(const char *name, const struct mr_stats_cluster_sum *sum,
                                 void *arg);
void mr_stats_sum_clusters(struct mr_stats *const *stats, size_t n, mr_stats_cluster_fn *each,
                           void *arg);

#endif
