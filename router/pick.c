/* router/pick.c: see pick.h. */
#include "router/pick.h"

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

bool mr_pick_takes_new(const struct mr_cluster *cluster)
{
    return cluster->weight > 0 && cluster->drain == MR_DRAIN_NONE;
}

/* Weighted choice among the region's clusters that take new sessions. */
static const struct mr_cluster *pick_in_region(const struct mr_region *region, uint64_t random)
{
    double total = 0, point;

    for (size_t i = 0; i < region->n_clusters; i++)
        if (mr_pick_takes_new(&region->clusters[i]))
            total += region->clusters[i].weight;
    if (total <= 0)
        return NULL;
    /* 53 random bits give a uniform double in [0, 1). */
    point = (double)(random >> 11) * (1.0 / 9007199254740992.0) * total;
    for (size_t i = 0; i < region->n_clusters; i++) {
        const struct mr_cluster *c = &region->clusters[i];
        if (!mr_pick_takes_new(c))
            continue;
        if (point < c->weight)
            return c;
        point -= c->weight;
    }
    /* Rounding left point at the very top: the last eligible one. */
    for (size_t i = region->n_clusters; i-- > 0;)
        if (mr_pick_takes_new(&region->clusters[i]))
            return &region->clusters[i];
    return NULL;
}

enum mr_pick_reason mr_pick_cluster(const struct mr_snapshot *snap,
                                    const struct mr_client_info *client,
                                    uint64_t random, struct mr_decision *out)
{
    const struct mr_region_list *candidates = &snap->routing.default_regions;

    (void)client;
    for (size_t i = 0; i < candidates->n; i++) {
        const struct mr_region *region = &snap->regions[candidates->regions[i]];
        const struct mr_cluster *cluster = pick_in_region(region, random);
        if (cluster != NULL) {
            out->reason = i == 0 ? MR_PICK_GEO : MR_PICK_FAILOVER;
            out->region = region;
            out->cluster = cluster;
            return out->reason;
        }
    }
    out->reason = MR_PICK_NONE;
    out->region = NULL;
    out->cluster = NULL;
    return MR_PICK_NONE;
}

const struct mr_endpoint *mr_pick_endpoint(const struct mr_cluster *cluster,
                                           enum mr_endpoint_policy policy,
                                           const uint32_t *outstanding, uint32_t *cursor,
                                           const struct mr_endpoint *avoid)
{
    const size_t n = cluster->n_endpoints;
    size_t best = n;

    if (n == 0)
        return NULL;
    if (n == 1)
        return &cluster->endpoints[0];
    /* Scan from the cursor and move it past the one chosen, so ties (and
     * round robin) rotate evenly instead of piling on one endpoint. */
    for (size_t k = 0; k < n; k++) {
        size_t i = (*cursor + k) % n;
        const struct mr_endpoint *e = &cluster->endpoints[i];
        if (e == avoid)
            continue;
        if (policy == MR_POLICY_ROUND_ROBIN) {
            best = i;
            break;
        }
        if (best == n || outstanding[e->index] < outstanding[cluster->endpoints[best].index])
            best = i;
    }
    if (best == n)
        return avoid; /* the only endpoint there is */
    *cursor = (uint32_t)((best + 1) % n);
    return &cluster->endpoints[best];
}
