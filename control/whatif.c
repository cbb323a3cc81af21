/* control/whatif.c: see whatif.h. */
#include "control/whatif.h"

#include <stdio.h>
#include <string.h>

#include "geo/countries.h"
#include "geo/policy.h"
#include "health/health.h"
#include "router/pick.h"

/* ---- guardrail: who would be stranded ---------------------------------- */

/* A synthetic client of one routing class. */
void class_location(const char *country, const char *continent, struct mr_location *loc)
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
json_t *stranded(const struct mr_snapshot *before, const struct mr_snapshot *after)
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
void spread(const struct mr_snapshot *snap, const struct mr_location *loc, double n,
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

const char *skip_reason(const struct mr_snapshot *snap, const struct mr_cluster *c)
{
    if (!mr_health_cluster_healthy(snap, c))
        return "down";
    if (c->drain != MR_DRAIN_NONE)
        return "drained";
    if (c->weight <= 0)
        return "weight 0";
    return NULL;
}
