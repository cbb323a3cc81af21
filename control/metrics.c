/* control/metrics.c: see metrics.h. */
#include "control/metrics.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "health/health.h"
#include "health/passive.h"
#include "router/pick.h"
#include "router/stats.h"

static void help(struct evbuffer *out, const char *name, const char *type, const char *text)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

/* TLS and PROXY protocol counters, labelled by the listeners' names. */
static void write_listener_counters(const struct mr_stats_sum *sum, const struct mr_snapshot *snap,
                                    struct evbuffer *out)
{
    static const struct {
        const char *name, *text;
        size_t offset;
    } kinds[] = {
        {"meridian_tls_handshake_failures_total",
         "TLS connections closed before their handshake completed.",
         offsetof(struct mr_stats_listener_sum, tls_handshake_failures)},
        {"meridian_proxy_protocol_errors_total",
         "Connections closed for a missing or invalid PROXY protocol header.",
         offsetof(struct mr_stats_listener_sum, proxy_protocol_errors)},
        {"meridian_proxy_protocol_refused_total",
         "Connections closed unread: the peer may not send a PROXY protocol header.",
         offsetof(struct mr_stats_listener_sum, proxy_protocol_refused)},
    };
    size_t n = snap->n_listeners < MR_STATS_LISTENERS ? snap->n_listeners : MR_STATS_LISTENERS;

    help(out, "meridian_tls_handshakes_total", "counter",
         "Completed TLS handshakes, by listener and whether the session was resumed.");
    for (size_t l = 0; l < n; l++) {
        if (snap->listeners[l].tls == NULL)
            continue;
        evbuffer_add_printf(
            out,
            "meridian_tls_handshakes_total{listener=\"%s\",resumed=\"false\"} %" PRIu64
            "\nmeridian_tls_handshakes_total{listener=\"%s\",resumed=\"true\"} %" PRIu64 "\n",
            snap->listeners[l].name, sum->listeners[l].tls_handshakes, snap->listeners[l].name,
            sum->listeners[l].tls_resumed);
    }
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        help(out, kinds[k].name, "counter", kinds[k].text);
        for (size_t l = 0; l < n; l++) {
            if (k == 0 ? snap->listeners[l].tls == NULL : !snap->listeners[l].proxy_protocol)
                continue;
            evbuffer_add_printf(out, "%s{listener=\"%s\"} %" PRIu64 "\n", kinds[k].name,
                                snap->listeners[l].name,
                                *(const uint64_t *)((const char *)&sum->listeners[l] +
                                                    kinds[k].offset));
        }
    }
}

void mr_metrics_write(struct evbuffer *out, const struct mr_snapshot *snap,
                      struct mr_stats *const *stats, size_t n_stats, uint64_t reload_failures)
{
    static const char *const classes[6] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
    struct mr_stats_sum sum;
    struct mr_stats_cluster_sum cs;
    struct mr_stats_endpoint_sum es;
    uint64_t cumulative = 0;
    int64_t now = time(NULL);

    mr_stats_sum(stats, n_stats, &sum);
    help(out, "meridian_requests_total", "counter",
         "Requests answered, by cluster and status class.");
    for (size_t c = 0; c < snap->n_clusters; c++) {
        mr_stats_sum_cluster(stats, n_stats, snap->clusters[c]->name, &cs);
        for (int k = 0; k < 6; k++)
            evbuffer_add_printf(out,
                                "meridian_requests_total{cluster=\"%s\",code=\"%s\"} %" PRIu64 "\n",
                                snap->clusters[c]->name, classes[k], cs.status[k]);
    }

    help(out, "meridian_decisions_total", "counter", "Session decisions, by kind.");
    for (int k = 0; k <= MR_PICK_FAIL_OPEN; k++)
        evbuffer_add_printf(out, "meridian_decisions_total{decision=\"%s\"} %" PRIu64 "\n",
                            mr_pick_reason_name((enum mr_pick_reason)k), sum.decisions[k]);

    help(out, "meridian_request_duration_seconds", "histogram",
         "Time from a request head to the end of its response.");
    for (size_t b = 0; b < MR_STATS_BUCKETS; b++) {
        cumulative += sum.duration_buckets[b];
        evbuffer_add_printf(out,
                            "meridian_request_duration_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                            mr_stats_bucket_le[b], cumulative);
    }
    evbuffer_add_printf(out, "meridian_request_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n",
                        sum.duration_count);
    evbuffer_add_printf(out, "meridian_request_duration_seconds_sum %.6f\n",
                        (double)sum.duration_sum_us / 1e6);
    evbuffer_add_printf(out, "meridian_request_duration_seconds_count %" PRIu64 "\n",
                        sum.duration_count);

    help(out, "meridian_new_sessions_total", "counter",
         "New session decisions, by cluster and client country.");
    for (size_t c = 0; c < snap->n_clusters; c++) {
        mr_stats_sum_cluster(stats, n_stats, snap->clusters[c]->name, &cs);
        for (size_t k = 0; k < MR_STATS_COUNTRIES; k++) {
            char cc[8];
            if (cs.new_by_country[k] == 0)
                continue;
            mr_stats_country_name(k, cc);
            evbuffer_add_printf(out,
                                "meridian_new_sessions_total{cluster=\"%s\",country=\"%s\"} "
                                "%" PRIu64 "\n",
                                snap->clusters[c]->name, cc, cs.new_by_country[k]);
        }
    }

    help(out, "meridian_sticky_requests_total", "counter",
         "Requests that followed a valid session cookie, by cluster.");
    for (size_t c = 0; c < snap->n_clusters; c++) {
        mr_stats_sum_cluster(stats, n_stats, snap->clusters[c]->name, &cs);
        evbuffer_add_printf(out, "meridian_sticky_requests_total{cluster=\"%s\"} %" PRIu64 "\n",
                            snap->clusters[c]->name, cs.sticky_hits);
    }
    help(out, "meridian_cluster_active_requests", "gauge", "Requests in flight, by cluster.");
    for (size_t c = 0; c < snap->n_clusters; c++) {
        mr_stats_sum_cluster(stats, n_stats, snap->clusters[c]->name, &cs);
        evbuffer_add_printf(out, "meridian_cluster_active_requests{cluster=\"%s\"} %" PRIu64 "\n",
                            snap->clusters[c]->name, cs.active);
    }

    help(out, "meridian_upstream_connect_failures_total", "counter",
         "Upstream connections that could not be made, by endpoint.");
    for (size_t e = 0; e < snap->n_endpoints; e++) {
        const struct mr_endpoint *ep = snap->endpoints[e];
        mr_stats_sum_endpoint(stats, n_stats, ep->cluster->name, ep->address, &es);
        evbuffer_add_printf(out,
                            "meridian_upstream_connect_failures_total{cluster=\"%s\",endpoint=\"%"
                            "s\"} %" PRIu64 "\n",
                            ep->cluster->name, ep->address, es.connect_failures);
    }
    help(out, "meridian_upstream_retries_total", "counter",
         "Requests sent again after an upstream failed before answering.");
    evbuffer_add_printf(out, "meridian_upstream_retries_total %" PRIu64 "\n", sum.retries);
    help(out, "meridian_bad_cookies_total", "counter",
         "Session cookies ignored: forged, truncated, expired or of an unknown key.");
    evbuffer_add_printf(out, "meridian_bad_cookies_total %" PRIu64 "\n", sum.bad_cookies);
    help(out, "meridian_bad_response_bodies_total", "counter",
         "Responses cut because the origin's chunked body was malformed.");
    evbuffer_add_printf(out, "meridian_bad_response_bodies_total %" PRIu64 "\n",
                        sum.bad_response_bodies);

    help(out, "meridian_endpoint_up", "gauge", "1 when the endpoint passes its health checks.");
    for (size_t e = 0; e < snap->n_endpoints; e++)
        evbuffer_add_printf(out, "meridian_endpoint_up{cluster=\"%s\",endpoint=\"%s\"} %d\n",
                            snap->endpoints[e]->cluster->name, snap->endpoints[e]->address,
                            mr_health_endpoint_up(snap->endpoints[e]) ? 1 : 0);
    help(out, "meridian_endpoint_ejected", "gauge",
         "1 while passive health keeps the endpoint out of picks.");
    for (size_t e = 0; e < snap->n_endpoints; e++)
        evbuffer_add_printf(out, "meridian_endpoint_ejected{cluster=\"%s\",endpoint=\"%s\"} %d\n",
                            snap->endpoints[e]->cluster->name, snap->endpoints[e]->address,
                            mr_passive_ejected(snap->endpoints[e], mr_passive_now_ms()) ? 1 : 0);
    help(out, "meridian_passive_ejections_total", "counter",
         "Times passive health ejected the endpoint (kept across reloads with the endpoint).");
    for (size_t e = 0; e < snap->n_endpoints; e++) {
        const struct mr_health_slot *slot = snap->endpoints[e]->health;
        evbuffer_add_printf(out,
                            "meridian_passive_ejections_total{cluster=\"%s\",endpoint=\"%s\"} "
                            "%" PRIu64 "\n",
                            snap->endpoints[e]->cluster->name, snap->endpoints[e]->address,
                            slot != NULL ? (uint64_t)atomic_load(&slot->ejections_total) : 0);
    }
    help(out, "meridian_cluster_eligible", "gauge", "1 when the cluster takes new sessions.");
    for (size_t c = 0; c < snap->n_clusters; c++)
        evbuffer_add_printf(out, "meridian_cluster_eligible{cluster=\"%s\"} %d\n",
                            snap->clusters[c]->name,
                            mr_pick_takes_new(snap, snap->clusters[c]) ? 1 : 0);
    help(out, "meridian_cluster_keeps_sessions", "gauge", "1 when the cluster keeps its sessions.");
    for (size_t c = 0; c < snap->n_clusters; c++)
        evbuffer_add_printf(out, "meridian_cluster_keeps_sessions{cluster=\"%s\"} %d\n",
                            snap->clusters[c]->name,
                            mr_pick_keeps_sessions(snap, snap->clusters[c], now) ? 1 : 0);
    help(out, "meridian_cluster_weight", "gauge", "The cluster's weight in force.");
    for (size_t c = 0; c < snap->n_clusters; c++)
        evbuffer_add_printf(out, "meridian_cluster_weight{cluster=\"%s\"} %g\n",
                            snap->clusters[c]->name, snap->clusters[c]->weight);

    help(out, "meridian_active_connections", "gauge", "Open client connections.");
    evbuffer_add_printf(out, "meridian_active_connections %" PRIu64 "\n", sum.client_connections);
    help(out, "meridian_tunnels_active", "gauge", "Open upgraded (WebSocket) tunnels.");
    evbuffer_add_printf(out, "meridian_tunnels_active %" PRIu64 "\n", sum.tunnels);
    help(out, "meridian_tunnels_total", "counter", "Upgraded (WebSocket) tunnels opened.");
    evbuffer_add_printf(out, "meridian_tunnels_total %" PRIu64 "\n", sum.tunnels_total);
    write_listener_counters(&sum, snap, out);
    help(out, "meridian_config_generation", "gauge", "Generation of the running configuration.");
    evbuffer_add_printf(out, "meridian_config_generation %" PRIu64 "\n", snap->generation);
    help(out, "meridian_config_reload_failures_total", "counter", "Reloads refused.");
    evbuffer_add_printf(out, "meridian_config_reload_failures_total %" PRIu64 "\n",
                        reload_failures);
}
