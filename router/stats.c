/* router/stats.c: see stats.h. */
#include "router/stats.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double mr_stats_bucket_le[MR_STATS_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
};

struct mr_stats *mr_stats_new(void)
{
    return calloc(1, sizeof(struct mr_stats));
}

void mr_stats_free(struct mr_stats *s)
{
    struct mr_stats_cluster *c;
    struct mr_stats_endpoint *e;

    if (s == NULL)
        return;
    c = atomic_load(&s->clusters);
    while (c != NULL) {
        struct mr_stats_cluster *next = c->next;
        free(c);
        c = next;
    }
    e = atomic_load(&s->endpoints);
    while (e != NULL) {
        struct mr_stats_endpoint *next = e->next;
        free(e);
        e = next;
    }
    free(s);
}

struct mr_stats_cluster *mr_stats_cluster(struct mr_stats *s, const char *name)
{
    struct mr_stats_cluster *c = atomic_load_explicit(&s->clusters, memory_order_relaxed);

    for (; c != NULL; c = c->next)
        if (strcmp(c->name, name) == 0)
            return c;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->next = atomic_load_explicit(&s->clusters, memory_order_relaxed);
    /* Readers see the record whole or not at all. */
    atomic_store_explicit(&s->clusters, c, memory_order_release);
    return c;
}

struct mr_stats_endpoint *mr_stats_endpoint(struct mr_stats *s, const char *cluster,
                                            const char *address)
{
    struct mr_stats_endpoint *e = atomic_load_explicit(&s->endpoints, memory_order_relaxed);

    for (; e != NULL; e = e->next)
        if (strcmp(e->cluster, cluster) == 0 && strcmp(e->address, address) == 0)
            return e;
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    snprintf(e->cluster, sizeof(e->cluster), "%s", cluster);
    snprintf(e->address, sizeof(e->address), "%s", address);
    e->next = atomic_load_explicit(&s->endpoints, memory_order_relaxed);
    atomic_store_explicit(&s->endpoints, e, memory_order_release);
    return e;
}

size_t mr_stats_country_index(const char *cc)
{
    if (cc == NULL || cc[0] < 'A' || cc[0] > 'Z' || cc[1] < 'A' || cc[1] > 'Z' || cc[2] != '\0')
        return MR_STATS_COUNTRY_UNKNOWN;
    return (size_t)(cc[0] - 'A') * 26 + (size_t)(cc[1] - 'A');
}

void mr_stats_observe(struct mr_stats *s, uint64_t duration_us)
{
    double seconds = (double)duration_us / 1e6;

    /* Stored per bucket, made cumulative when read. */
    for (size_t i = 0; i < MR_STATS_BUCKETS; i++) {
        if (seconds <= mr_stats_bucket_le[i]) {
            mr_stats_add(&s->duration_buckets[i], 1);
            break;
        }
    }
    mr_stats_add(&s->duration_count, 1);
    mr_stats_add(&s->duration_sum_us, duration_us);
}

void mr_stats_country_name(size_t k, char *out)
{
    if (k >= MR_STATS_COUNTRY_UNKNOWN)
        snprintf(out, 8, "unknown");
    else
        snprintf(out, 8, "%c%c", (char)('A' + k / 26), (char)('A' + k % 26));
}

void mr_stats_sum(struct mr_stats *const *stats, size_t n, struct mr_stats_sum *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        const struct mr_stats *s = stats[i];
        for (size_t k = 0; k < 5; k++)
            out->decisions[k] += mr_stats_get(&s->decisions[k]);
        out->bad_cookies += mr_stats_get(&s->bad_cookies);
        out->bad_response_bodies += mr_stats_get(&s->bad_response_bodies);
        out->retries += mr_stats_get(&s->retries);
        for (size_t b = 0; b < MR_STATS_BUCKETS; b++)
            out->duration_buckets[b] += mr_stats_get(&s->duration_buckets[b]);
        out->duration_count += mr_stats_get(&s->duration_count);
        out->duration_sum_us += mr_stats_get(&s->duration_sum_us);
        out->client_connections += mr_stats_get(&s->client_connections);
        out->tunnels += mr_stats_get(&s->tunnels);
        out->tunnels_total += mr_stats_get(&s->tunnels_total);
        for (size_t l = 0; l < MR_STATS_LISTENERS; l++) {
            const struct mr_stats_listener *from = &s->listeners[l];
            struct mr_stats_listener_sum *to = &out->listeners[l];
            to->tls_handshakes += mr_stats_get(&from->tls_handshakes);
            to->tls_resumed += mr_stats_get(&from->tls_resumed);
            to->tls_handshake_failures += mr_stats_get(&from->tls_handshake_failures);
            to->proxy_protocol_errors += mr_stats_get(&from->proxy_protocol_errors);
            to->proxy_protocol_refused += mr_stats_get(&from->proxy_protocol_refused);
        }
    }
}

static void add_cluster(struct mr_stats_cluster_sum *to, const struct mr_stats_cluster *from)
{
    to->requests += mr_stats_get(&from->requests);
    for (size_t k = 0; k < 6; k++)
        to->status[k] += mr_stats_get(&from->status[k]);
    to->active += mr_stats_get(&from->active);
    to->new_sessions += mr_stats_get(&from->new_sessions);
    to->sticky_hits += mr_stats_get(&from->sticky_hits);
    for (size_t k = 0; k < MR_STATS_COUNTRIES; k++)
        to->new_by_country[k] += mr_stats_get(&from->new_by_country[k]);
}

/* A worker's cluster records, as published (acquire: whole records only). */
static struct mr_stats_cluster *clusters_of(struct mr_stats *s)
{
    return atomic_load_explicit(&s->clusters, memory_order_acquire);
}

void mr_stats_sum_cluster(struct mr_stats *const *stats, size_t n, const char *cluster,
                          struct mr_stats_cluster_sum *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < n; i++)
        for (const struct mr_stats_cluster *cs = clusters_of(stats[i]); cs != NULL; cs = cs->next)
            if (strcmp(cs->name, cluster) == 0)
                add_cluster(out, cs);
}

void mr_stats_sum_endpoint(struct mr_stats *const *stats, size_t n, const char *cluster,
                           const char *address, struct mr_stats_endpoint_sum *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        const struct mr_stats_endpoint *es = atomic_load_explicit(&stats[i]->endpoints,
                                                                  memory_order_acquire);
        for (; es != NULL; es = es->next) {
            if (strcmp(es->cluster, cluster) != 0 || strcmp(es->address, address) != 0)
                continue;
            out->requests += mr_stats_get(&es->requests);
            out->active += mr_stats_get(&es->active);
            out->connect_failures += mr_stats_get(&es->connect_failures);
        }
    }
}

/* True when a worker before stats[w] has a record named name (a name is
 * unique within one worker's list). */
static bool seen_before(struct mr_stats *const *stats, size_t w, const char *name)
{
    for (size_t i = 0; i < w; i++)
        for (const struct mr_stats_cluster *cs = clusters_of(stats[i]); cs != NULL; cs = cs->next)
            if (strcmp(cs->name, name) == 0)
                return true;
    return false;
}

void mr_stats_sum_clusters(struct mr_stats *const *stats, size_t n, mr_stats_cluster_fn *each,
                           void *arg)
{
    struct mr_stats_cluster_sum sum;

    for (size_t w = 0; w < n; w++) {
        for (const struct mr_stats_cluster *cs = clusters_of(stats[w]); cs != NULL; cs = cs->next) {
            if (seen_before(stats, w, cs->name))
                continue;
            mr_stats_sum_cluster(stats, n, cs->name, &sum);
            each(cs->name, &sum, arg);
        }
    }
}
