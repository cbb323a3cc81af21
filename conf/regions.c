/* conf/regions.c: see regions.h. */
#include "conf/regions.h"

#include <float.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "conf/jpath.h"

/* Fills c->endpoints from the cluster's "endpoints" array. */
static void load_endpoints(struct mr_loader *ld, json_t *obj, const char *cpath,
                           struct mr_cluster *c)
{
    struct mr_jpath_iter it;
    size_t n = mr_jpath_member_array(&ld->jp, obj, cpath, "endpoints", &it);
    char q[MR_JPATH_MAX];

    if (n == 0)
        return;
    c->endpoints = mr_loader_alloc(ld, n, sizeof(*c->endpoints));
    if (c->endpoints == NULL)
        return;
    c->n_endpoints = n;
    while (mr_jpath_next(&it)) {
        struct mr_endpoint *e = &c->endpoints[it.i];
        const char *s;

        e->cluster = c;
        if (!mr_jpath_read_string(&ld->jp, it.item, it.path, false, &s) ||
            !mr_loader_hostport(ld, s, it.path, &e->addr))
            continue;
        for (size_t j = 0; j < it.i; j++) {
            if (c->endpoints[j].address != NULL &&
                mr_netaddr_equal(&c->endpoints[j].addr, &e->addr)) {
                mr_jpath_index(q, it.array_path, j);
                mr_errors_add(ld->errs, "%s: duplicate endpoint \"%s\" (first at %s)", it.path, s,
                              q);
                break;
            }
        }
        e->address = mr_loader_strdup(ld, s);
    }
}

/* Finds the path of an earlier cluster named name, for duplicate messages. */
static bool find_cluster(const struct mr_snapshot *snap, size_t upto_region, size_t upto_cluster,
                         const char *name, char *where)
{
    for (size_t r = 0; r <= upto_region; r++) {
        const struct mr_region *region = &snap->regions[r];
        size_t limit = r == upto_region ? upto_cluster : region->n_clusters;

        for (size_t c = 0; c < limit; c++) {
            if (region->clusters[c].name != NULL && strcmp(region->clusters[c].name, name) == 0) {
                /* At most 60 bytes: never cut short. */
                snprintf(where, MR_JPATH_MAX, "regions[%zu].clusters[%zu].name", r, c);
                return true;
            }
        }
    }
    return false;
}

/* Region and cluster names appear in URLs, cookies, metric labels and log
 * lines: keep them to characters that need no escaping anywhere. */
static void check_name(struct mr_loader *ld, const char *parent, const char *name)
{
    char p[MR_JPATH_MAX];
    size_t len = strlen(name);

    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '.' || ch == '_' || ch == '-')
            continue;
        mr_jpath_key(p, parent, "name");
        mr_errors_add(ld->errs, "%s: \"%s\" may contain only letters, digits, '.', '_' and '-'", p,
                      name);
        return;
    }
    if (len > 64) {
        mr_jpath_key(p, parent, "name");
        mr_errors_add(ld->errs, "%s: longer than 64 characters", p);
    }
}

/* A drain written in the file: {"mode": "soft"|"hard", "deadline_s": N},
 * N seconds from this load (0 or absent: no deadline). */
static void load_drain(struct mr_loader *ld, json_t *obj, const char *cpath, struct mr_cluster *c)
{
    static const char *const keys[] = {"mode", "deadline_s", NULL};
    json_t *v = mr_jpath_member(&ld->jp, obj, cpath, "drain", false);
    char p[MR_JPATH_MAX], q[MR_JPATH_MAX];
    const char *mode = NULL;
    int64_t deadline = 0;

    if (v == NULL)
        return;
    mr_jpath_key(p, cpath, "drain");
    if (!mr_jpath_read_object(&ld->jp, v, p))
        return;
    mr_jpath_check_keys(&ld->jp, v, p, keys);
    if (mr_jpath_member_string(&ld->jp, v, p, "mode", true, true, &mode) && mode != NULL) {
        if (strcmp(mode, "soft") == 0) {
            c->drain = MR_DRAIN_SOFT;
        } else if (strcmp(mode, "hard") == 0) {
            c->drain = MR_DRAIN_HARD;
        } else {
            mr_jpath_key(q, p, "mode");
            mr_errors_add(ld->errs, "%s: expected \"soft\" or \"hard\"", q);
        }
    }
    if (mr_jpath_member_int(&ld->jp, v, p, "deadline_s", 0, INT_MAX, &deadline) && deadline > 0) {
        /* Deadlines are whole seconds: round up, so a session keeps at
         * least deadline_s, never a fraction of a second less. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        c->drain_deadline_s = (int64_t)ts.tv_sec + deadline + (ts.tv_nsec > 0 ? 1 : 0);
    }
}

/* An absolute http(s) URL with a host, no query or fragment; kept without
 * a trailing '/', since the request target is appended to it. */
static void load_public_url(struct mr_loader *ld, const char *cpath, const char *s,
                            struct mr_cluster *c)
{
    const char *rest = strncmp(s, "https://", 8) == 0  ? s + 8
                       : strncmp(s, "http://", 7) == 0 ? s + 7
                                                       : NULL;
    char p[MR_JPATH_MAX];
    size_t len = strlen(s);
    bool ok = rest != NULL && rest[0] != '\0' && rest[0] != '/';

    for (const char *ch = s; ok && *ch != '\0'; ch++)
        ok = *ch > 0x20 && *ch < 0x7f && *ch != '?' && *ch != '#' && *ch != '"';
    if (!ok) {
        mr_jpath_key(p, cpath, "public_url");
        mr_errors_add(ld->errs,
                      "%s: expected an absolute http:// or https:// URL without "
                      "query or fragment",
                      p);
        return;
    }
    while (len > 0 && s[len - 1] == '/')
        len--;
    c->public_url = strndup(s, len);
    if (c->public_url == NULL)
        ld->oom = true;
}

/* regions[r].clusters[i] from obj, the object at cpath. */
static void load_cluster(struct mr_loader *ld, json_t *obj, const char *cpath, size_t r, size_t i)
{
    static const char *const keys[] = {"name",  "weight",     "endpoints", "public_url",
                                       "drain", "send_proxy", NULL};
    struct mr_region *region = &ld->snap->regions[r];
    struct mr_cluster *c = &region->clusters[i];
    char p[MR_JPATH_MAX], where[MR_JPATH_MAX];
    const char *s = NULL;
    json_t *v;

    c->region = region;
    c->weight = 1;
    mr_jpath_check_keys(&ld->jp, obj, cpath, keys);
    if (mr_jpath_member_string(&ld->jp, obj, cpath, "name", true, true, &s) && s != NULL) {
        if (find_cluster(ld->snap, r, i, s, where)) {
            mr_jpath_key(p, cpath, "name");
            mr_errors_add(ld->errs, "%s: duplicate cluster name \"%s\" (first at %s)", p, s, where);
        }
        check_name(ld, cpath, s);
        c->name = mr_loader_strdup(ld, s);
    }
    if ((v = mr_jpath_member(&ld->jp, obj, cpath, "weight", false)) != NULL) {
        mr_jpath_key(p, cpath, "weight");
        mr_jpath_read_number(&ld->jp, v, p, 0, DBL_MAX, false, ">= 0", &c->weight);
    }
    c->configured_weight = c->weight;
    s = NULL;
    if (mr_jpath_member_string(&ld->jp, obj, cpath, "public_url", false, true, &s) && s != NULL)
        load_public_url(ld, cpath, s, c);
    s = NULL;
    if (mr_jpath_member_string(&ld->jp, obj, cpath, "send_proxy", false, true, &s) && s != NULL) {
        if (strcmp(s, "v1") == 0)
            c->send_proxy = MR_SEND_PROXY_V1;
        else if (strcmp(s, "v2") == 0)
            c->send_proxy = MR_SEND_PROXY_V2;
        else if (strcmp(s, "none") != 0) {
            mr_jpath_key(p, cpath, "send_proxy");
            mr_errors_add(ld->errs, "%s: expected \"v1\", \"v2\" or \"none\"", p);
        }
    }
    load_drain(ld, obj, cpath, c);
    load_endpoints(ld, obj, cpath, c);
}

static void load_coordinate(struct mr_loader *ld, json_t *obj, const char *rpath, const char *key,
                            double limit, double *out)
{
    json_t *v = mr_jpath_member(&ld->jp, obj, rpath, key, false);
    char p[MR_JPATH_MAX], expect[64];

    mr_jpath_key(p, rpath, key);
    if (v == NULL) {
        if (ld->proximity)
            mr_errors_add(ld->errs, "%s: required when routing.proximity is true", p);
        return;
    }
    snprintf(expect, sizeof(expect), "between %g and %g", -limit, limit);
    mr_jpath_read_number(&ld->jp, v, p, -limit, limit, false, expect, out);
}

void mr_regions_load(struct mr_loader *ld, json_t *root)
{
    static const char *const keys[] = {"name", "lat", "lon", "clusters", NULL};
    struct mr_snapshot *snap = ld->snap;
    struct mr_jpath_iter it, cit;
    size_t n = mr_jpath_member_array(&ld->jp, root, "", "regions", &it);
    char q[MR_JPATH_MAX];

    if (n == 0)
        return;
    snap->regions = mr_loader_alloc(ld, n, sizeof(*snap->regions));
    if (snap->regions == NULL)
        return;
    snap->n_regions = n;
    while (mr_jpath_next_object(&ld->jp, &it)) {
        size_t i = it.i;
        struct mr_region *region = &snap->regions[i];
        const char *p = it.path;
        json_t *item = it.item;
        const char *s = NULL;
        size_t nc;

        region->index = i;
        mr_jpath_check_keys(&ld->jp, item, p, keys);
        if (mr_jpath_member_string(&ld->jp, item, p, "name", true, true, &s) && s != NULL) {
            mr_jpath_key(q, p, "name");
            for (size_t j = 0; j < i; j++) {
                if (snap->regions[j].name != NULL && strcmp(snap->regions[j].name, s) == 0) {
                    mr_errors_add(ld->errs,
                                  "%s: duplicate region name \"%s\" (first at regions[%zu].name)",
                                  q, s, j);
                    break;
                }
            }
            check_name(ld, p, s);
            region->name = mr_loader_strdup(ld, s);
        }
        load_coordinate(ld, item, p, "lat", 90, &region->lat);
        load_coordinate(ld, item, p, "lon", 180, &region->lon);

        nc = mr_jpath_member_array(&ld->jp, item, p, "clusters", &cit);
        if (nc == 0)
            continue;
        region->clusters = mr_loader_alloc(ld, nc, sizeof(*region->clusters));
        if (region->clusters == NULL)
            continue;
        region->n_clusters = nc;
        while (mr_jpath_next_object(&ld->jp, &cit))
            load_cluster(ld, cit.item, cit.path, i, cit.i);
    }
}

/* Numbers clusters and endpoints densely and builds the by-index arrays. */
void mr_regions_index(struct mr_loader *ld)
{
    struct mr_snapshot *snap = ld->snap;
    size_t nc = 0, ne = 0;

    for (size_t r = 0; r < snap->n_regions; r++) {
        nc += snap->regions[r].n_clusters;
        for (size_t c = 0; c < snap->regions[r].n_clusters; c++)
            ne += snap->regions[r].clusters[c].n_endpoints;
    }
    snap->clusters = mr_loader_alloc(ld, nc, sizeof(*snap->clusters));
    snap->endpoints = mr_loader_alloc(ld, ne, sizeof(*snap->endpoints));
    if ((nc > 0 && snap->clusters == NULL) || (ne > 0 && snap->endpoints == NULL))
        return;
    snap->n_clusters = nc;
    snap->n_endpoints = ne;
    nc = ne = 0;
    for (size_t r = 0; r < snap->n_regions; r++) {
        struct mr_region *region = &snap->regions[r];

        for (size_t c = 0; c < region->n_clusters; c++) {
            struct mr_cluster *cluster = &region->clusters[c];

            cluster->index = nc;
            snap->clusters[nc++] = cluster;
            for (size_t e = 0; e < cluster->n_endpoints; e++) {
                cluster->endpoints[e].index = ne;
                snap->endpoints[ne++] = &cluster->endpoints[e];
            }
        }
    }
}

/* Redirect mode sends sessions to public_url: every cluster needs one. */
void mr_regions_check_public_urls(struct mr_loader *ld)
{
    const struct mr_snapshot *snap = ld->snap;

    if (!snap->uses_redirect)
        return;
    for (size_t r = 0; r < snap->n_regions; r++)
        for (size_t i = 0; i < snap->regions[r].n_clusters; i++)
            if (snap->regions[r].clusters[i].public_url == NULL)
                mr_errors_add(ld->errs,
                              "regions[%zu].clusters[%zu].public_url: required when a listener "
                              "or host uses redirect mode",
                              r, i);
}
