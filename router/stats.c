/* router/stats.c: see stats.h. */
#include "router/stats.h"

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
