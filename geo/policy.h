/*
 * geo/policy.h: a client's location -> the regions to try, in order.
 *
 * The order is routing.countries[country], then routing.continents
 * [continent], then (routing.proximity on and coordinates known) every
 * region by great-circle distance from the client, then routing.default; a
 * region appears once, at its first place. A client the database does not
 * know gets routing.default alone. Pure: reads only its arguments, no
 * allocation, any thread (the pick on the data path, explain on admin).
 */
#ifndef MR_GEO_POLICY_H
#define MR_GEO_POLICY_H

#include <stddef.h>

#include "conf/snapshot.h"
#include "geo/geoip.h"

/* Which rule put a region in the list; names are explain's words. */
enum mr_policy_step {
    MR_POLICY_STEP_COUNTRY,   /* routing.countries */
    MR_POLICY_STEP_CONTINENT, /* routing.continents */
    MR_POLICY_STEP_PROXIMITY, /* nearest by coordinates */
    MR_POLICY_STEP_DEFAULT,   /* routing.default */
};

/* The proximity step adds at most this many regions (the nearest ones):
 * nobody fails over further, and it keeps the sort on the stack. */
#define MR_POLICY_MAX_NEAREST 64

/* "country", "continent", "proximity", "default". */
const char *mr_policy_step_name(enum mr_policy_step step);

/*
 * Writes up to cap region indices (into snap->regions) to out, best first,
 * without duplicates, and returns how many. steps: NULL, or a parallel array
 * of cap entries that receives the rule behind each index. A cap of
 * snap->n_regions never truncates.
 */
size_t mr_policy_regions(const struct mr_snapshot *snap, const struct mr_location *loc, size_t *out,
                         enum mr_policy_step *steps, size_t cap);

/* Great-circle distance in km between two points given in degrees. */
double mr_policy_distance_km(double lat1, double lon1, double lat2, double lon2);

#endif
