/* router/lease.c: see lease.h. */
#include "router/lease.h"

#include <stdlib.h>

#include "router/cookie.h"
#include "router/stats.h"

struct mr_lease *mr_lease_new(struct mr_stats *stats, struct mr_snapshot *snap)
{
    struct mr_lease *l = calloc(1, sizeof(*l));

    if (l == NULL)
        return NULL;
    l->snap = snap;
    l->users = 1;
    l->outstanding = calloc(snap->n_endpoints + 1, sizeof(*l->outstanding));
    l->cursors = calloc(snap->n_clusters + 1, sizeof(*l->cursors));
    l->awaiting = calloc(snap->n_endpoints + 1, sizeof(*l->awaiting));
    l->waiting_since = calloc(snap->n_endpoints + 1, sizeof(*l->waiting_since));
    l->cookie_keys = mr_cookie_keys_new(snap);
    l->cluster_stats = calloc(snap->n_clusters + 1, sizeof(*l->cluster_stats));
    l->endpoint_stats = calloc(snap->n_endpoints + 1, sizeof(*l->endpoint_stats));
    l->cookie_lines = calloc(2 * snap->n_clusters + 1, sizeof(*l->cookie_lines));
    if (l->outstanding == NULL || l->cursors == NULL || l->awaiting == NULL ||
        l->waiting_since == NULL || l->cookie_keys == NULL || l->cluster_stats == NULL ||
        l->endpoint_stats == NULL || l->cookie_lines == NULL) {
        l->snap = NULL;
        mr_lease_free(l);
        return NULL;
    }
    /* Counters are found by name once per snapshot, not per request. */
    for (size_t i = 0; i < snap->n_clusters; i++)
        l->cluster_stats[i] = mr_stats_cluster(stats, snap->clusters[i]->name);
    for (size_t i = 0; i < snap->n_endpoints; i++)
        l->endpoint_stats[i] = mr_stats_endpoint(stats, snap->endpoints[i]->cluster->name,
                                                 snap->endpoints[i]->address);
    return l;
}

void mr_lease_free(struct mr_lease *l)
{
    if (l == NULL)
        return;
    mr_cookie_keys_free(l->cookie_keys);
    mr_snap_release(l->snap);
    free(l->outstanding);
    free(l->cursors);
    free(l->awaiting);
    free(l->waiting_since);
    free(l->cluster_stats);
    free(l->endpoint_stats);
    free(l->cookie_lines);
    free(l);
}
