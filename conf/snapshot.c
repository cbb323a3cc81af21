/* conf/snapshot.c: see snapshot.h. */
#include "conf/snapshot.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "conf/secrets.h"

static _Atomic(struct mr_snapshot *) current;
/* Held by acquire across "load current, take a reference" and by publish
 * across the swap, so a snapshot cannot be freed between those two steps.
 * Workers only acquire when mr_snap_peek() shows a change, so it is cold. */
static pthread_mutex_t swap_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t generation_counter; /* under swap_lock */

static void free_strv(char **v)
{
    if (v == NULL)
        return;
    for (char **p = v; *p != NULL; p++)
        free(*p);
    free(v);
}

static void free_routes(struct mr_route *routes, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(routes[i].list.regions);
    free(routes);
}

int mr_snap_on_release(struct mr_snapshot *snap, mr_snap_release_fn fn)
{
    if (snap->n_release_hooks == MR_SNAP_MAX_HOOKS)
        return -1;
    snap->release_hooks[snap->n_release_hooks++] = fn;
    return 0;
}

static void free_tls_conf(struct mr_tls_conf *tls)
{
    if (tls == NULL)
        return;
    for (size_t i = 0; i < tls->n_certificates; i++) {
        free(tls->certificates[i].cert);
        free(tls->certificates[i].key);
        free(tls->certificates[i].ocsp);
    }
    free(tls->certificates);
    free(tls->ciphers);
    free(tls->ciphersuites);
    free_strv(tls->alpn);
    free(tls);
}

void mr_snap_free(struct mr_snapshot *snap)
{
    if (snap == NULL)
        return;
    /* Attachments first, newest first: they may read the fields below. */
    while (snap->n_release_hooks > 0)
        snap->release_hooks[--snap->n_release_hooks](snap);
    free(snap->path);
    for (size_t i = 0; i < snap->n_listeners; i++) {
        free(snap->listeners[i].name);
        free(snap->listeners[i].address);
        free(snap->listeners[i].proxy_protocol_from.items);
        free_tls_conf(snap->listeners[i].tls);
    }
    free(snap->listeners);
    free(snap->trusted_proxies.items);
    for (size_t i = 0; i < snap->n_hosts; i++)
        free(snap->hosts[i].host);
    free(snap->hosts);

    free(snap->geoip.database);
    free_strv(snap->geoip.country);
    free_strv(snap->geoip.latitude);
    free_strv(snap->geoip.longitude);

    free(snap->session.cookie);
    free(snap->session.keys_file);
    mr_secrets_free_keys(snap->session.keys, snap->session.n_keys);
    free(snap->session.same_site);

    free(snap->health.path);

    for (size_t r = 0; r < snap->n_regions; r++) {
        struct mr_region *region = &snap->regions[r];

        for (size_t c = 0; c < region->n_clusters; c++) {
            struct mr_cluster *cluster = &region->clusters[c];

            for (size_t e = 0; e < cluster->n_endpoints; e++)
                free(cluster->endpoints[e].address);
            free(cluster->endpoints);
            free(cluster->name);
            free(cluster->public_url);
        }
        free(region->clusters);
        free(region->name);
    }
    free(snap->regions);
    free(snap->clusters);
    free(snap->endpoints);

    free_routes(snap->routing.countries, snap->routing.n_countries);
    free_routes(snap->routing.continents, snap->routing.n_continents);
    free(snap->routing.default_regions.regions);

    free(snap->admin.address);
    free(snap->admin.token_file);
    if (snap->admin.token != NULL) {
        OPENSSL_cleanse(snap->admin.token, strlen(snap->admin.token));
        free(snap->admin.token);
    }
    free(snap->admin.metrics_token_file);
    if (snap->admin.metrics_token != NULL) {
        OPENSSL_cleanse(snap->admin.metrics_token, strlen(snap->admin.metrics_token));
        free(snap->admin.metrics_token);
    }

    free(snap->state_file);
    free(snap->access_log);
    free(snap->audit_log);
    free(snap);
}

void mr_snap_publish(struct mr_snapshot *snap)
{
    struct mr_snapshot *old;

    pthread_mutex_lock(&swap_lock);
    if (snap != NULL)
        snap->generation = ++generation_counter;
    old = atomic_exchange(&current, snap);
    pthread_mutex_unlock(&swap_lock);
    /* Drops the reference "current" held; holders keep theirs. */
    mr_snap_release(old);
}

struct mr_snapshot *mr_snap_acquire(void)
{
    struct mr_snapshot *snap;

    pthread_mutex_lock(&swap_lock);
    snap = atomic_load(&current);
    if (snap != NULL)
        atomic_fetch_add(&snap->refs, 1);
    pthread_mutex_unlock(&swap_lock);
    return snap;
}

void mr_snap_release(struct mr_snapshot *snap)
{
    if (snap == NULL)
        return;
    if (atomic_fetch_sub(&snap->refs, 1) == 1)
        mr_snap_free(snap);
}

const struct mr_snapshot *mr_snap_peek(void)
{
    return atomic_load(&current);
}

void mr_snap_shutdown(void)
{
    struct mr_snapshot *old;

    pthread_mutex_lock(&swap_lock);
    old = atomic_exchange(&current, NULL);
    pthread_mutex_unlock(&swap_lock);
    mr_snap_release(old);
}

const struct mr_cluster *mr_snap_cluster(const struct mr_snapshot *snap, const char *name)
{
    if (snap == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < snap->n_clusters; i++) {
        if (snap->clusters[i]->name != NULL && strcmp(snap->clusters[i]->name, name) == 0)
            return snap->clusters[i];
    }
    return NULL;
}

const struct mr_region *mr_snap_region(const struct mr_snapshot *snap, const char *name)
{
    if (snap == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < snap->n_regions; i++) {
        if (snap->regions[i].name != NULL && strcmp(snap->regions[i].name, name) == 0)
            return &snap->regions[i];
    }
    return NULL;
}
