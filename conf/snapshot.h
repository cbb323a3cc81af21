/*
 * conf/snapshot.h: the immutable, reference-counted configuration snapshot.
 *
 * A snapshot is everything a request is decided against: built once by
 * mr_conf_load(), never modified after mr_snap_publish(), and freed when the
 * last reference goes. Workers read its fields directly through const
 * pointers. The control thread publishes a new one with an atomic pointer
 * swap; any thread may acquire the current one and must release it.
 * Indices (region->index, cluster->index, endpoint->index) are dense within
 * one snapshot, so per-worker state can be kept in plain arrays.
 */
#ifndef MR_CONF_SNAPSHOT_H
#define MR_CONF_SNAPSHOT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/netaddr.h"

struct mr_region;
struct mr_cluster;
struct mr_snapshot;
struct mr_geoip;       /* geo/geoip.h: an open GeoIP database */
struct mr_health_slot; /* health/health.h: one endpoint's health */

/* Layers above conf/ attach their per-snapshot objects before publishing
 * and register a hook that releases them when the snapshot is freed. */
typedef void (*mr_snap_release_fn)(struct mr_snapshot *snap);
#define MR_SNAP_MAX_HOOKS 4

struct mr_endpoint {
    char *address; /* as written: "127.0.0.1:18101" */
    struct mr_sockaddr addr;
    struct mr_cluster *cluster;
    size_t index;                  /* dense over every endpoint of the snapshot */
    struct mr_health_slot *health; /* attached by health/; NULL reads as up */
};

/* How a cluster's origins learn the client's address (PROXY protocol). */
enum mr_send_proxy { MR_SEND_PROXY_NONE, MR_SEND_PROXY_V1, MR_SEND_PROXY_V2 };

struct mr_cluster {
    char *name;
    double weight;            /* >= 0; relative within the region; in force */
    double configured_weight; /* as the file says (weight may be overridden) */
    char *public_url;         /* redirect mode's target, no trailing '/'; NULL unless set */
    enum mr_send_proxy send_proxy;
    struct mr_endpoint *endpoints;
    size_t n_endpoints;
    struct mr_region *region;
    size_t index; /* dense over every cluster of the snapshot */
    /* Runtime overrides merged in (admin drain, later issues). */
    enum { MR_DRAIN_NONE, MR_DRAIN_SOFT, MR_DRAIN_HARD } drain;
    int64_t drain_deadline_s; /* unix time, 0 = none */
};

struct mr_region {
    char *name;
    double lat, lon;
    struct mr_cluster *clusters;
    size_t n_clusters;
    size_t index;
};

/* What a listener (or a request's Host) does with a request. */
enum mr_mode { MR_MODE_PROXY, MR_MODE_REDIRECT };

struct mr_tls_certificate {
    char *cert, *key; /* resolved PEM paths */
    char *ocsp;       /* DER OCSP response to staple; NULL for none */
};

struct mr_tls_conf {
    struct mr_tls_certificate *certificates; /* [0] is the default */
    size_t n_certificates;
    int min_version;    /* TLS1_2_VERSION or TLS1_3_VERSION */
    char *ciphers;      /* TLS 1.2 cipher list */
    char *ciphersuites; /* TLS 1.3 suites; NULL: OpenSSL's */
    char **alpn;        /* NULL-terminated protocol names */
    bool session_tickets;
    int ticket_rotate_s;
};

struct mr_tls_server; /* router/tls.h: a listener's certificates, ready */

struct mr_listener {
    char *name;
    char *address;
    struct mr_sockaddr addr;
    struct mr_tls_conf *tls;                /* NULL: plain HTTP */
    bool proxy_protocol;                    /* connections start with a PROXY v1/v2 header */
    struct mr_cidr_set proxy_protocol_from; /* peers that may send it; empty: trusted_proxies */
    enum mr_mode mode;
    bool redirect_https;              /* plain listener: 308 every request to https */
    int https_port;                   /* for redirect_https; 443 is left out of URLs */
    struct mr_tls_server *tls_server; /* attached by router/tls.c when tls is set */
};

/* A per-Host mode from the "hosts" object. */
struct mr_host_rule {
    char *host; /* lower case, no port */
    enum mr_mode mode;
};

/* An ordered list of regions (indices into snapshot->regions). */
struct mr_region_list {
    size_t *regions;
    size_t n;
};

/* One entry of routing.countries or routing.continents. */
struct mr_route {
    char code[4]; /* "US", "EU" (upper case) */
    struct mr_region_list list;
};

struct mr_session_key {
    char *kid;
    unsigned char *secret; /* decoded; >= 32 bytes */
    size_t secret_len;
};

enum mr_endpoint_policy { MR_POLICY_LEAST_REQUESTS, MR_POLICY_ROUND_ROBIN };

struct mr_snapshot {
    atomic_int refs;
    uint64_t generation; /* set by mr_snap_publish: 1, 2, 3, ... */
    char *path;          /* the configuration file it was loaded from */

    int workers; /* >= 1 */
    struct mr_listener *listeners;
    size_t n_listeners;
    struct mr_cidr_set trusted_proxies;
    struct mr_host_rule *hosts;
    size_t n_hosts;
    bool uses_redirect; /* some listener or host rule is in redirect mode */

    struct {
        char *database; /* resolved path, NULL when no geoip block */
        char **country; /* NULL-terminated lookup path */
        char **latitude;
        char **longitude;
    } geoip;

    struct {
        char *cookie; /* cookie name, "MRD" */
        int64_t max_age_s;
        char *keys_file;             /* resolved path */
        struct mr_session_key *keys; /* first one signs */
        size_t n_keys;
        bool secure, http_only;
        char *same_site; /* "Strict", "Lax" or "None" */
    } session;

    struct {
        char *path;
        int interval_ms, timeout_ms, rise, fall;
        double min_healthy; /* fraction 0..1 */
        struct {
            int consecutive_failures; /* data-path failures in a row that eject; 0: never */
            int base_ms, max_ms;      /* first ejection, doubling up to max */
            int max_ejected_percent;  /* of a cluster's endpoints at once, rounded down */
        } passive;
    } health;

    struct mr_region *regions;
    size_t n_regions;
    size_t n_clusters;              /* over all regions */
    struct mr_cluster **clusters;   /* by cluster->index */
    size_t n_endpoints;             /* over all clusters */
    struct mr_endpoint **endpoints; /* by endpoint->index */

    struct {
        struct mr_route *countries;
        size_t n_countries;
        struct mr_route *continents;
        size_t n_continents;
        bool proximity;
        struct mr_region_list default_regions;
        enum mr_endpoint_policy endpoint_policy;
    } routing;

    struct {
        int client_header_ms, client_idle_ms;
        int upstream_connect_ms, upstream_response_ms;
        int upstream_idle_ms;  /* pooled upstream connections closed after */
        int shutdown_grace_ms; /* in-flight requests get this long at stop */
        int tunnel_idle_ms;    /* an upgraded connection silent both ways this long closes */
    } timeouts;

    struct {
        size_t max_head_bytes;   /* request line + headers: 431 past it */
        size_t max_headers;      /* header count: 431 past it */
        size_t max_uri_bytes;    /* request target: 414 past it */
        size_t retry_body_bytes; /* request body kept for a resend; larger: not resent */
    } limits;

    struct {
        char *address;
        struct mr_sockaddr addr;
        char *token_file;         /* resolved path, NULL when unset */
        char *token;              /* NULL when unset */
        char *metrics_token_file; /* resolved path, NULL when unset */
        char *metrics_token;      /* GET /metrics only; NULL when unset */
    } admin;

    char *state_file; /* resolved path, NULL when unset */
    char *access_log; /* path, "-" for stdout, NULL for none */
    char *audit_log;  /* runtime changes; default beside state_file */

    struct mr_geoip *geo; /* attached by geo/ when geoip.database is set */
    mr_snap_release_fn release_hooks[MR_SNAP_MAX_HOOKS];
    size_t n_release_hooks;
};

/* Registers fn to run (once) when snap is freed, before its fields go;
 * 0, or -1 when MR_SNAP_MAX_HOOKS are taken. Before publish only. */
int mr_snap_on_release(struct mr_snapshot *snap, mr_snap_release_fn fn);

/* Frees a snapshot that was never published (refs ignored); accepts NULL. */
void mr_snap_free(struct mr_snapshot *snap);

/* Makes snap the current snapshot, giving it the next generation number;
 * takes over the caller's reference. Control thread only. */
void mr_snap_publish(struct mr_snapshot *snap);

/* Returns the current snapshot with a reference held, or NULL before the
 * first publish. Any thread. */
struct mr_snapshot *mr_snap_acquire(void);

/* Drops a reference; the last one frees. Accepts NULL. Any thread. */
void mr_snap_release(struct mr_snapshot *snap);

/* Like mr_snap_acquire() but without taking a reference: only for comparing
 * against a snapshot the caller already holds. */
const struct mr_snapshot *mr_snap_peek(void);

/* Unpublishes and releases the current snapshot (at exit). */
void mr_snap_shutdown(void);

/* Looks a cluster / region up by name; NULL when absent. */
const struct mr_cluster *mr_snap_cluster(const struct mr_snapshot *snap, const char *name);
const struct mr_region *mr_snap_region(const struct mr_snapshot *snap, const char *name);

#endif
