/* geo/policy.c: see policy.h. */
#include "geo/policy.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#define EARTH_RADIUS_KM 6371.0088
#define DEG_TO_RAD (3.14159265358979323846 / 180.0)

/* The list being built: out/steps of the caller, n used of cap. */
struct candidates {
    const struct mr_snapshot *snap;
    size_t *out;
    enum mr_policy_step *steps;
    size_t n, cap;
};

const char *mr_policy_step_name(enum mr_policy_step step)
{
    switch (step) {
    case MR_POLICY_STEP_COUNTRY: return "country";
    case MR_POLICY_STEP_CONTINENT: return "continent";
    case MR_POLICY_STEP_PROXIMITY: return "proximity";
    case MR_POLICY_STEP_DEFAULT: return "default";
    }
    return "unknown";
}

double mr_policy_distance_km(double lat1, double lon1, double lat2, double lon2)
{
    double dlat = (lat2 - lat1) * DEG_TO_RAD;
    double dlon = (lon2 - lon1) * DEG_TO_RAD;
    double a = sin(dlat / 2) * sin(dlat / 2) +
               cos(lat1 * DEG_TO_RAD) * cos(lat2 * DEG_TO_RAD) * sin(dlon / 2) * sin(dlon / 2);

    /* Rounding can push a just past 1 for antipodes. */
    if (a > 1) {
        a = 1;
    }
    return 2 * EARTH_RADIUS_KM * asin(sqrt(a));
}

/* Linear: lists are a handful of regions, and this keeps it allocation-free. */
static bool contains(const struct candidates *c, size_t region)
{
    for (size_t i = 0; i < c->n; i++) {
        if (c->out[i] == region) {
            return true;
        }
    }
    return false;
}

static void add(struct candidates *c, size_t region, enum mr_policy_step step)
{
    if (c->n == c->cap || region >= c->snap->n_regions || contains(c, region)) {
        return;
    }
    c->out[c->n] = region;
    if (c->steps != NULL) {
        c->steps[c->n] = step;
    }
    c->n++;
}

static void add_list(struct candidates *c, const struct mr_region_list *list,
                     enum mr_policy_step step)
{
    for (size_t i = 0; i < list->n; i++) {
        add(c, list->regions[i], step);
    }
}

/* The route for code (upper case, as conf/ stores them), or NULL. */
static const struct mr_route *find_route(const struct mr_route *routes, size_t n, const char *code)
{
    if (code[0] == '\0') {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(routes[i].code, code) == 0) {
            return &routes[i];
        }
    }
    return NULL;
}

/* Adds the regions not yet listed, nearest first (ties by index), keeping
 * the MR_POLICY_MAX_NEAREST nearest by insertion into a sorted buffer. */
static void add_nearest(struct candidates *c, double lat, double lon)
{
    size_t region[MR_POLICY_MAX_NEAREST];
    double dist[MR_POLICY_MAX_NEAREST];
    size_t n = 0;

    if (c->n == c->cap) {
        return;
    }
    for (size_t r = 0; r < c->snap->n_regions; r++) {
        const struct mr_region *reg = &c->snap->regions[r];
        double d;
        size_t at;

        if (contains(c, r)) {
            continue;
        }
        d = mr_policy_distance_km(lat, lon, reg->lat, reg->lon);
        if (n == MR_POLICY_MAX_NEAREST && !(d < dist[n - 1])) {
            continue;
        }
        at = n < MR_POLICY_MAX_NEAREST ? n : n - 1;
        while (at > 0 && d < dist[at - 1]) {
            region[at] = region[at - 1];
            dist[at] = dist[at - 1];
            at--;
        }
        region[at] = r;
        dist[at] = d;
        if (n < MR_POLICY_MAX_NEAREST) {
            n++;
        }
    }
    for (size_t i = 0; i < n; i++) {
        add(c, region[i], MR_POLICY_STEP_PROXIMITY);
    }
}

size_t mr_policy_regions(const struct mr_snapshot *snap, const struct mr_location *loc, size_t *out,
                         enum mr_policy_step *steps, size_t cap)
{
    struct candidates c = {.snap = snap, .out = out, .steps = steps, .n = 0, .cap = cap};
    const struct mr_route *route;

    if (loc != NULL && loc->found) {
        route = find_route(snap->routing.countries, snap->routing.n_countries, loc->country);
        if (route != NULL) {
            add_list(&c, &route->list, MR_POLICY_STEP_COUNTRY);
        }
        route = find_route(snap->routing.continents, snap->routing.n_continents, loc->continent);
        if (route != NULL) {
            add_list(&c, &route->list, MR_POLICY_STEP_CONTINENT);
        }
        if (snap->routing.proximity && loc->has_coords) {
            add_nearest(&c, loc->lat, loc->lon);
        }
    }
    add_list(&c, &snap->routing.default_regions, MR_POLICY_STEP_DEFAULT);
    return c.n;
}
