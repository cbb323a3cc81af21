/* router/pick.c: see pick.h. */
#include "router/pick.h"

#include <string.h>

#include "geo/policy.h"
#include "health/health.h"
#include "health/passive.h"

const char *mr_pick_reason_name(enum mr_pick_reason reason)
{
    switch (reason) {
    case MR_PICK_STICKY: return "sticky";
    case MR_PICK_GEO: return "geo";
    case MR_PICK_FAILOVER: return "failover";
    case MR_PICK_FAIL_OPEN: return "fail_open";
    case MR_PICK_NONE: break;
    }
    return "none";
}

bool mr_pick_takes_new(const struct mr_snapshot *snap, const struct mr_cluster *cluster)
{
    return cluster->weight > 0 && cluster->drain == MR_DRAIN_NONE &&
           mr_health_cluster_healthy(snap, cluster);
}

bool mr_pick_keeps_sessions(const struct mr_snapshot *snap, const struct mr_cluster *cluster,
                            int64_t now)
{
    if (cluster->drain == MR_DRAIN_HARD)
        return false;
    if (cluster->drain == MR_DRAIN_SOFT && cluster->drain_deadline_s != 0 &&
        now >= cluster->drain_deadline_s)
        return false;
    return mr_health_cluster_healthy(snap, cluster);
}

/* Weighted choice among the region's clusters that take new sessions. */
static const struct mr_cluster *pick_in_region(const struct mr_snapshot *snap,
                                               const struct mr_region *region,
                                               const struct mr_cluster *exclude, uint64_t random)
{
    const struct mr_cluster *eligible[region->n_clusters + 1];
    size_t n = 0;
    double total = 0, point;

    for (size_t i = 0; i < region->n_clusters; i++) {
        const struct mr_cluster *c = &region->clusters[i];
        if (c != exclude && mr_pick_takes_new(snap, c)) {
            eligible[n++] = c;
            total += c->weight;
        }
    }
    if (n == 0)
        return NULL;
    /* 53 random bits give a uniform double in [0, 1). */
    point = (double)(random >> 11) * (1.0 / 9007199254740992.0) * total;
    for (size_t i = 0; i < n; i++) {
        if (point < eligible[i]->weight)
            return eligible[i];
        point -= eligible[i]->weight;
    }
    return eligible[n - 1]; /* rounding left point at the very top */
}

/* Fail open: the first cluster, in the client's region order then in the
 * configuration's, that has an endpoint up, whatever its weight or drain. */
static const struct mr_cluster *pick_fail_open(const struct mr_snapshot *snap,
                                               const size_t *regions, size_t n_regions,
                                               const struct mr_cluster *exclude)
{
    for (size_t pass = 0; pass < 2; pass++) {
        size_t n = pass == 0 ? n_regions : snap->n_regions;
        for (size_t r = 0; r < n; r++) {
            const struct mr_region *region = &snap->regions[pass == 0 ? regions[r] : r];
            for (size_t i = 0; i < region->n_clusters; i++) {
                const struct mr_cluster *c = &region->clusters[i];
                if (c != exclude && mr_health_cluster_up(c) > 0)
                    return c;
            }
        }
    }
    return NULL;
}

static enum mr_pick_reason decide(struct mr_decision *out, enum mr_pick_reason reason,
                                  const struct mr_cluster *cluster)
{
    out->reason = cluster != NULL ? reason : MR_PICK_NONE;
    out->cluster = cluster;
    out->region = cluster != NULL ? cluster->region : NULL;
    return out->reason;
}

enum mr_pick_reason mr_pick_session(const struct mr_snapshot *snap, const struct mr_pick_input *in,
                                    struct mr_decision *out)
{
    size_t regions[snap->n_regions + 1];
    size_t n_regions;

    memset(out, 0, sizeof(*out));
    if (in->cookie_cluster != NULL) {
        const struct mr_cluster *c = mr_snap_cluster(snap, in->cookie_cluster);
        if (c != NULL && c != in->exclude && mr_pick_keeps_sessions(snap, c, in->now))
            return decide(out, MR_PICK_STICKY, c);
    }
    mr_geoip_lookup(snap, in->addr, &out->loc);
    out->located = true;
    n_regions = mr_policy_regions(snap, &out->loc, regions, NULL, snap->n_regions);
    for (size_t i = 0; i < n_regions; i++) {
        const struct mr_cluster *c = pick_in_region(snap, &snap->regions[regions[i]], in->exclude,
                                                    in->random);
        if (c != NULL)
            return decide(out, i == 0 ? MR_PICK_GEO : MR_PICK_FAILOVER, c);
    }
    return decide(out, MR_PICK_FAIL_OPEN, pick_fail_open(snap, regions, n_regions, in->exclude));
}

/* Round robin passes over an endpoint with this many more requests in
 * flight than twice the least loaded one's: an origin that stopped
 * answering (its kernel still accepting) collects requests without
 * finishing them, and would otherwise get its share until timeouts eject
 * it. */
#define RR_SLACK 2

/* One scan of mr_pick_endpoint(). The first pass (!fallback) leaves out
 * ejected and stalled endpoints. Returns the index chosen, or n. */
static size_t scan(const struct mr_cluster *cluster, enum mr_endpoint_policy policy,
                   const uint32_t *outstanding, const int64_t *waiting_since, uint32_t cursor,
                   const struct mr_endpoint *avoid, int64_t now, bool fallback)
{
    const size_t n = cluster->n_endpoints;
    size_t best = n;
    uint32_t least = UINT32_MAX;

    for (size_t k = 0; k < 2; k++) {
        for (size_t j = 0; j < n; j++) {
            size_t i = (cursor + j) % n;
            const struct mr_endpoint *e = &cluster->endpoints[i];
            uint32_t out = outstanding[e->index];
            if (e == avoid || !mr_health_endpoint_up(e))
                continue;
            if (!fallback && (mr_passive_ejected(e, now) ||
                              (waiting_since != NULL && waiting_since[e->index] != 0 &&
                               now - waiting_since[e->index] >= MR_PICK_STALL_MS)))
                continue;
            if (policy == MR_POLICY_LEAST_REQUESTS) {
                if (best == n || out < outstanding[cluster->endpoints[best].index])
                    best = i;
            } else if (k == 0) {
                least = out < least ? out : least;
            } else if (out <= 2 * (uint64_t)least + RR_SLACK) {
                return i;
            }
        }
        if (policy == MR_POLICY_LEAST_REQUESTS || least == UINT32_MAX)
            break;
    }
    return best;
}

const struct mr_endpoint *mr_pick_endpoint(const struct mr_cluster *cluster,
                                           enum mr_endpoint_policy policy,
                                           const uint32_t *outstanding,
                                           const int64_t *waiting_since, uint32_t *cursor,
                                           const struct mr_endpoint *avoid)
{
    const size_t n = cluster->n_endpoints;
    int64_t now = mr_passive_now_ms();
    size_t best;

    /* Scan from the cursor and move it past the one chosen, so ties (and
     * round robin) rotate evenly instead of piling on one endpoint. An
     * ejected or stalled endpoint serves only when every other one is
     * too, or down: better than no answer. */
    best = scan(cluster, policy, outstanding, waiting_since, *cursor, avoid, now, false);
    if (best == n)
        best = scan(cluster, policy, outstanding, waiting_since, *cursor, avoid, now, true);
    if (best == n)
        return NULL;
    *cursor = (uint32_t)((best + 1) % n);
    return &cluster->endpoints[best];
}
