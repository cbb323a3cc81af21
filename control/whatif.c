/* control/whatif.c: see whatif.h. */
#include "control/whatif.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/netaddr.h"
#include "geo/countries.h"
#include "geo/geoip.h"
#include "geo/policy.h"
#include "health/health.h"
#include "health/passive.h"
#include "router/cookie.h"
#include "router/pick.h"

/* ---- guardrail: who would be stranded ---------------------------------- */

/* A synthetic client of one routing class. */
static void class_location(const char *country, const char *continent, struct mr_location *loc)
{
    memset(loc, 0, sizeof(*loc));
    if (country != NULL) {
        loc->found = true;
        memcpy(loc->country, country, 2);
        mr_countries_continent(country, loc->continent);
        loc->has_coords = mr_countries_centroid(country, &loc->lat, &loc->lon);
    } else if (continent != NULL) {
        loc->found = true;
        memcpy(loc->continent, continent, 2);
    }
}

/* True when a client at loc has a cluster taking new sessions. */
static bool class_served(const struct mr_snapshot *snap, const struct mr_location *loc)
{
    size_t regions[snap->n_regions + 1];
    size_t n = mr_policy_regions(snap, loc, regions, NULL, snap->n_regions);

    for (size_t i = 0; i < n; i++) {
        const struct mr_region *r = &snap->regions[regions[i]];
        for (size_t k = 0; k < r->n_clusters; k++)
            if (mr_pick_takes_new(snap, &r->clusters[k]))
                return true;
    }
    return false;
}

/* Routing classes served by before and not by after: "countries.GB",
 * "continents.EU", "default". */
json_t *mr_whatif_stranded(const struct mr_snapshot *before, const struct mr_snapshot *after)
{
    json_t *out = json_array();
    struct mr_location loc;
    char name[32];

    for (size_t i = 0; i < after->routing.n_countries; i++) {
        class_location(after->routing.countries[i].code, NULL, &loc);
        if (class_served(before, &loc) && !class_served(after, &loc)) {
            snprintf(name, sizeof(name), "countries.%s", after->routing.countries[i].code);
            json_array_append_new(out, json_string(name));
        }
    }
    for (size_t i = 0; i < after->routing.n_continents; i++) {
        class_location(NULL, after->routing.continents[i].code, &loc);
        if (class_served(before, &loc) && !class_served(after, &loc)) {
            snprintf(name, sizeof(name), "continents.%s", after->routing.continents[i].code);
            json_array_append_new(out, json_string(name));
        }
    }
    class_location(NULL, NULL, &loc);
    if (class_served(before, &loc) && !class_served(after, &loc))
        json_array_append_new(out, json_string("default"));
    return out;
}

/* Adds, for n sessions of a client at loc, the clusters they would go to
 * under snap (split by weight within the first region that takes them). */
static void spread(const struct mr_snapshot *snap, const struct mr_location *loc, double n,
                   json_t *shares)
{
    size_t regions[snap->n_regions + 1];
    size_t count = mr_policy_regions(snap, loc, regions, NULL, snap->n_regions);
    const char *where = "fail_open";

    for (size_t i = 0; i < count; i++) {
        const struct mr_region *r = &snap->regions[regions[i]];
        double total = 0;
        for (size_t k = 0; k < r->n_clusters; k++)
            if (mr_pick_takes_new(snap, &r->clusters[k]))
                total += r->clusters[k].weight;
        if (total <= 0)
            continue;
        for (size_t k = 0; k < r->n_clusters; k++) {
            const struct mr_cluster *c = &r->clusters[k];
            if (!mr_pick_takes_new(snap, c))
                continue;
            json_object_set_new(shares, c->name,
                                json_real(json_number_value(json_object_get(shares, c->name)) +
                                          n * c->weight / total));
        }
        return;
    }
    json_object_set_new(shares, where,
                        json_real(json_number_value(json_object_get(shares, where)) + n));
}

/* Where the new sessions that cluster took lately would go under after. */
json_t *mr_whatif_shares(const struct mr_snapshot *before, const struct mr_snapshot *after,
                         const char *cluster, json_t *recent, const char **basis)
{
    json_t *shares = json_object(), *list = json_array();
    struct mr_location loc;
    double total = 0;
    const char *key;
    json_t *value;

    *basis = "new sessions of the last minutes";
    if (recent != NULL && json_object_size(recent) > 0) {
        const char *cc;
        json_t *n;
        json_object_foreach(recent, cc, n) {
            class_location(strcmp(cc, "unknown") == 0 ? NULL : cc, NULL, &loc);
            spread(after, &loc, (double)json_integer_value(n), shares);
        }
    } else {
        /* No traffic yet: one client of each routing class, counted for
         * the share of it that the cluster takes now. */
        *basis = "no recent new sessions: one client per routing class";
        for (size_t i = 0; i <= before->routing.n_countries; i++) {
            json_t *now_shares = json_object();
            double mine;
            class_location(i < before->routing.n_countries ? before->routing.countries[i].code
                                                           : NULL,
                           NULL, &loc);
            spread(before, &loc, 1, now_shares);
            mine = json_number_value(json_object_get(now_shares, cluster));
            if (mine > 0)
                spread(after, &loc, mine, shares);
            json_decref(now_shares);
        }
    }
    json_object_foreach(shares, key, value)
        total += json_number_value(value);
    json_object_foreach(shares, key, value) {
        json_array_append_new(list, json_pack("{s:s, s:f}", "cluster", key, "share",
                                              total > 0 ? json_number_value(value) / total : 0));
    }
    json_decref(shares);
    return list;
}

/* ---- explain ------------------------------------------------------------ */

const char *mr_whatif_skip_reason(const struct mr_snapshot *snap, const struct mr_cluster *c)
{
    if (!mr_health_cluster_healthy(snap, c))
        return "down";
    if (c->drain != MR_DRAIN_NONE)
        return "drained";
    if (c->weight <= 0)
        return "weight 0";
    return NULL;
}

/* The endpoint's passive-health ejection in force, or JSON null. */
json_t *mr_whatif_ejection(const struct mr_endpoint *ep, int64_t now, int64_t wall_ms)
{
    const struct mr_health_slot *slot = ep->health;
    int64_t until;
    char stamp[40];

    if (!mr_passive_ejected(ep, now))
        return json_null();
    until = atomic_load(&slot->ejected_until);
    mr_iso_time(wall_ms + (until - now), stamp, sizeof(stamp));
    return json_pack("{s:s, s:s, s:I, s:i}", "reason",
                     mr_passive_reason_name(
                         (enum mr_passive_reason)atomic_load(&slot->eject_reason)),
                     "until", stamp, "remaining_ms", (json_int_t)(until - now), "ejections",
                     atomic_load(&slot->ejections));
}

json_t *mr_whatif_explain(const struct mr_snapshot *snap, const char *ip, const char *cookie,
                          const struct mr_whatif_clock *clock, uint64_t random, int *status)
{
    struct mr_sockaddr addr;
    struct mr_pick_input in = {0};
    struct mr_decision d;
    struct mr_location *loc = &d.loc;
    size_t regions[snap->n_regions + 1];
    enum mr_policy_step steps[snap->n_regions + 1];
    size_t n;
    json_t *candidates = json_array(), *cookie_json = json_null(), *out;
    char cluster[MR_COOKIE_CLUSTER_MAX + 1];
    const char *cookie_cluster = NULL;

    *status = 200;
    if (ip == NULL || mr_netaddr_parse_host(ip, strlen(ip), &addr) != 0) {
        *status = 400;
        json_decref(candidates);
        return json_pack("{s:s}", "error", "ip: expected an IPv4 or IPv6 address");
    }
    if (cookie != NULL) {
        struct mr_cookie_keys *keys = mr_cookie_keys_new(snap);
        enum mr_cookie_result r = keys != NULL
                                      ? mr_cookie_verify(keys, cookie, strlen(cookie), clock->now_s,
                                                         cluster, sizeof(cluster))
                                      : MR_COOKIE_MALFORMED;
        mr_cookie_keys_free(keys);
        if (r == MR_COOKIE_VALID)
            cookie_cluster = cluster;
        cookie_json = json_pack("{s:b, s:s, s:s?}", "present", 1, "result",
                                mr_cookie_result_name(r), "cluster", cookie_cluster);
    }
    in.addr = (const struct sockaddr *)&addr.ss;
    in.cookie_cluster = cookie_cluster;
    in.now = clock->now_s;
    in.random = random;
    mr_pick_session(snap, &in, &d);
    if (!d.located)
        mr_geoip_lookup(snap, in.addr, loc);
    n = mr_policy_regions(snap, loc, regions, steps, snap->n_regions);
    for (size_t i = 0; i < n; i++) {
        const struct mr_region *r = &snap->regions[regions[i]];
        json_t *clusters = json_array();
        for (size_t k = 0; k < r->n_clusters; k++) {
            const struct mr_cluster *c = &r->clusters[k];
            const char *why = mr_whatif_skip_reason(snap, c);
            json_t *ejected = json_array();
            for (size_t e = 0; e < c->n_endpoints; e++) {
                json_t *ej = mr_whatif_ejection(&c->endpoints[e], clock->mono_ms, clock->wall_ms);
                if (json_is_null(ej))
                    continue;
                json_object_set_new(ej, "address", json_string(c->endpoints[e].address));
                json_array_append_new(ejected, ej);
            }
            json_array_append_new(clusters, json_pack("{s:s, s:b, s:s?, s:o}", "name", c->name,
                                                      "eligible", why == NULL, "reason", why,
                                                      "ejected_endpoints", ejected));
        }
        json_array_append_new(candidates,
                              json_pack("{s:s, s:s, s:o}", "region", r->name, "rule",
                                        mr_policy_step_name(steps[i]), "clusters", clusters));
    }
    out = json_pack("{s:I, s:s, s:{s:b, s:s?, s:s?, s:o, s:o}, s:o, s:o, s:s, s:s?, s:s?}",
                    "generation", (json_int_t)snap->generation, "ip", ip, "location", "found",
                    loc->found, "country", loc->country[0] ? loc->country : NULL, "continent",
                    loc->continent[0] ? loc->continent : NULL, "lat",
                    loc->has_coords ? json_real(loc->lat) : json_null(), "lon",
                    loc->has_coords ? json_real(loc->lon) : json_null(), "cookie", cookie_json,
                    "candidates", candidates, "decision", mr_pick_reason_name(d.reason), "region",
                    d.region != NULL ? d.region->name : NULL, "cluster",
                    d.cluster != NULL ? d.cluster->name : NULL);
    return out;
}
