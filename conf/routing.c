/* conf/routing.c: see routing.h. */
#include "conf/routing.h"

#include <stdbool.h>
#include <string.h>

#include "conf/jpath.h"

static const char *const continent_codes[] = {"AF", "AN", "AS", "EU", "NA", "OC", "SA", NULL};

/* A non-empty list of distinct, known region names. */
static void read_region_list(struct mr_loader *ld, json_t *arr, const char *path,
                             struct mr_region_list *out)
{
    const struct mr_snapshot *snap = ld->snap;
    struct mr_jpath_iter it;
    size_t n = mr_jpath_iter_array(&ld->jp, arr, path, true, &it);
    char q[MR_JPATH_MAX];

    if (n == 0)
        return;
    out->regions = mr_loader_alloc(ld, n, sizeof(*out->regions));
    if (out->regions == NULL)
        return;
    while (mr_jpath_next(&it)) {
        const char *p = it.path;
        const struct mr_region *region;
        const char *s;
        bool dup = false;

        if (!mr_jpath_read_string(&ld->jp, it.item, p, false, &s))
            continue;
        region = mr_snap_region(snap, s);
        if (region == NULL) {
            /* Without a usable "regions" every name is unknown: said once there. */
            if (snap->n_regions > 0)
                mr_errors_add(ld->errs, "%s: unknown region \"%s\"", p, s);
            continue;
        }
        for (size_t j = 0; j < it.i && !dup; j++) {
            json_t *earlier = json_array_get(arr, j);

            if (json_is_string(earlier) && strcmp(json_string_value(earlier), s) == 0) {
                mr_jpath_index(q, path, j);
                mr_errors_add(ld->errs, "%s: duplicate region \"%s\" (first at %s)", p, s, q);
                dup = true;
            }
        }
        if (!dup)
            out->regions[out->n++] = region->index;
    }
}

static bool is_country_code(const char *s)
{
    return s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z' && s[2] == '\0';
}

static bool is_continent_code(const char *s)
{
    for (const char *const *c = continent_codes; *c != NULL; c++) {
        if (strcmp(*c, s) == 0)
            return true;
    }
    return false;
}

/* routing.countries or routing.continents: code -> region list. */
static void load_routes(struct mr_loader *ld, json_t *routing, const char *key, bool continents,
                        struct mr_route **routes, size_t *n_routes)
{
    json_t *obj = mr_jpath_member(&ld->jp, routing, "routing", key, false);
    char path[MR_JPATH_MAX], p[MR_JPATH_MAX];
    size_t n;

    mr_jpath_key(path, "routing", key);
    if (obj == NULL || !mr_jpath_read_object(&ld->jp, obj, path))
        return;
    n = json_object_size(obj);
    *routes = mr_loader_alloc(ld, n, sizeof(**routes));
    if (*routes == NULL)
        return;
    for (void *it = json_object_iter(obj); it != NULL; it = json_object_iter_next(obj, it)) {
        const char *code = json_object_iter_key(it);
        struct mr_route *route = &(*routes)[*n_routes];

        mr_jpath_key(p, path, code);
        if (continents && !is_continent_code(code)) {
            mr_errors_add(ld->errs, "%s: expected a continent code (AF, AN, AS, EU, NA, OC or SA)",
                          p);
            continue;
        }
        if (!continents && !is_country_code(code)) {
            mr_errors_add(ld->errs, "%s: expected a two-letter upper-case country code", p);
            continue;
        }
        memcpy(route->code, code, 3);
        (*n_routes)++;
        read_region_list(ld, json_object_iter_value(it), p, &route->list);
    }
}

void mr_routing_load(struct mr_loader *ld, json_t *root)
{
    static const char *const keys[] = {"countries", "continents",      "proximity",
                                       "default",   "endpoint_policy", NULL};
    struct mr_snapshot *snap = ld->snap;
    json_t *obj = mr_jpath_member(&ld->jp, root, "", "routing", true), *v;
    const char *policy = NULL;

    snap->routing.endpoint_policy = MR_POLICY_LEAST_REQUESTS;
    if (obj == NULL || !mr_jpath_read_object(&ld->jp, obj, "routing"))
        return;
    mr_jpath_check_keys(&ld->jp, obj, "routing", keys);
    load_routes(ld, obj, "countries", false, &snap->routing.countries, &snap->routing.n_countries);
    load_routes(ld, obj, "continents", true, &snap->routing.continents,
                &snap->routing.n_continents);
    mr_jpath_member_bool(&ld->jp, obj, "routing", "proximity", &snap->routing.proximity);
    if ((v = mr_jpath_member(&ld->jp, obj, "routing", "default", true)) != NULL)
        read_region_list(ld, v, "routing.default", &snap->routing.default_regions);
    if (mr_jpath_member_string(&ld->jp, obj, "routing", "endpoint_policy", false, false, &policy) &&
        policy != NULL) {
        if (strcmp(policy, "round_robin") == 0)
            snap->routing.endpoint_policy = MR_POLICY_ROUND_ROBIN;
        else if (strcmp(policy, "least_requests") != 0)
            mr_errors_add(ld->errs, "routing.endpoint_policy: expected \"least_requests\" or "
                                    "\"round_robin\"");
    }
}
