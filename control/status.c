/* control/status.c: see status.h. */
#include "control/status.h"

#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include "common/clock.h"
#include "control/whatif.h"
#include "health/health.h"
#include "health/passive.h"
#include "router/pick.h"
#include "router/stats.h"

static const char *cluster_state(const struct mr_snapshot *snap, const struct mr_cluster *c,
                                 int64_t now)
{
    if (!mr_health_cluster_healthy(snap, c))
        return "down";
    if (c->drain == MR_DRAIN_HARD ||
        (c->drain == MR_DRAIN_SOFT && c->drain_deadline_s != 0 && now >= c->drain_deadline_s))
        return "drained";
    if (c->drain == MR_DRAIN_SOFT)
        return "draining";
    return "active";
}

static json_t *drain_json(const struct mr_cluster *c, int64_t now)
{
    char stamp[40];

    if (c->drain == MR_DRAIN_NONE)
        return json_null();
    if (c->drain_deadline_s == 0)
        return json_pack("{s:s, s:n, s:n}", "mode", c->drain == MR_DRAIN_HARD ? "hard" : "soft",
                         "deadline", "deadline_s");
    mr_iso_time(c->drain_deadline_s * 1000, stamp, sizeof(stamp));
    return json_pack("{s:s, s:s, s:I}", "mode", c->drain == MR_DRAIN_HARD ? "hard" : "soft",
                     "deadline", stamp, "deadline_s",
                     (json_int_t)(c->drain_deadline_s > now ? c->drain_deadline_s - now : 0));
}

json_t *mr_status_json(const struct mr_snapshot *snap, const struct mr_status_source *src)
{
    struct mr_health_transition tr[64];
    size_t n_tr = mr_health_transitions(src->health, tr, 64);
    json_t *regions = json_array(), *transitions = json_array(), *out;
    int64_t now = time(NULL);
    char stamp[40];

    for (size_t r = 0; r < snap->n_regions; r++) {
        const struct mr_region *region = &snap->regions[r];
        json_t *clusters = json_array();
        for (size_t k = 0; k < region->n_clusters; k++) {
            const struct mr_cluster *c = &region->clusters[k];
            json_t *endpoints = json_array();
            struct mr_stats_cluster_sum sum;
            for (size_t e = 0; e < c->n_endpoints; e++) {
                const struct mr_endpoint *ep = &c->endpoints[e];
                const struct mr_health_slot *slot = ep->health;
                struct mr_stats_endpoint_sum es;
                mr_stats_sum_endpoint(src->stats, src->n_stats, c->name, ep->address, &es);
                mr_iso_time(slot != NULL ? slot->changed_ms : src->started_s * 1000, stamp,
                            sizeof(stamp));
                json_array_append_new(endpoints,
                                      json_pack("{s:s, s:s, s:s, s:s, s:{s:I, s:I}, s:b, s:o, s:I}",
                                                "address", ep->address, "health",
                                                mr_health_endpoint_up(ep) ? "up" : "down", "since",
                                                stamp, "last_check",
                                                slot != NULL && slot->checks > 0
                                                    ? slot->last
                                                    : "not checked yet",
                                                "traffic", "requests", (json_int_t)es.requests,
                                                "active_connections", (json_int_t)es.active,
                                                "ejected",
                                                mr_passive_ejected(ep, mr_passive_now_ms()),
                                                "ejection",
                                                mr_whatif_ejection(ep, mr_passive_now_ms(),
                                                                   mr_wall_ms()),
                                                "ejections_total",
                                                (json_int_t)(slot != NULL
                                                                 ? atomic_load(
                                                                       &slot->ejections_total)
                                                                 : 0)));
            }
            mr_stats_sum_cluster(src->stats, src->n_stats, c->name, &sum);
            json_array_append_new(clusters,
                                  json_pack("{s:s, s:s, s:b, s:I, s:I, s:f, s:f, s:o, s:b, s:b, "
                                            "s:{s:I, s:I, s:I, s:I}, s:o}",
                                            "name", c->name, "state", cluster_state(snap, c, now),
                                            "healthy", mr_health_cluster_healthy(snap, c),
                                            "endpoints_up", (json_int_t)mr_health_cluster_up(c),
                                            "endpoints_total", (json_int_t)c->n_endpoints, "weight",
                                            c->weight, "configured_weight", c->configured_weight,
                                            "drain", drain_json(c, now), "takes_new_sessions",
                                            mr_pick_takes_new(snap, c), "keeps_sessions",
                                            mr_pick_keeps_sessions(snap, c, now), "traffic",
                                            "requests", (json_int_t)sum.requests,
                                            "active_connections", (json_int_t)sum.active,
                                            "new_sessions", (json_int_t)sum.new_sessions,
                                            "sticky_hits", (json_int_t)sum.sticky_hits, "endpoints",
                                            endpoints));
        }
        json_array_append_new(regions,
                              json_pack("{s:s, s:f, s:f, s:o}", "name", region->name, "lat",
                                        region->lat, "lon", region->lon, "clusters", clusters));
    }
    for (size_t i = 0; i < n_tr; i++) {
        mr_iso_time(tr[i].time_ms, stamp, sizeof(stamp));
        json_array_append_new(transitions,
                              json_pack("{s:s, s:s, s:s, s:s, s:s}", "time", stamp, "cluster",
                                        tr[i].cluster, "address", tr[i].address, "health",
                                        tr[i].up ? "up" : "down", "reason", tr[i].reason));
    }
    mr_iso_time(src->started_s * 1000, stamp, sizeof(stamp));
    out = json_pack("{s:I, s:s?, s:s, s:b, s:o, s:o}", "generation", (json_int_t)snap->generation,
                    "config", snap->path, "started", stamp, "stopping", src->stopping, "regions",
                    regions, "health_transitions", transitions);
    return out;
}
