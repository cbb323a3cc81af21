/*
 * control/metrics.h: GET /metrics, Prometheus text format 0.0.4.
 *
 * Writes sums of the workers' counters (router/stats.h), health and the
 * snapshot it is given; knows nothing of the control thread, whose caller
 * passes everything in. Runs on the control thread, never on the data path.
 */
#ifndef MR_CONTROL_METRICS_H
#define MR_CONTROL_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct mr_snapshot;
struct mr_stats;

/* Appends the whole exposition for snap to out: stats holds every worker's
 * counters (n_stats of them); reload_failures counts refused reloads. */
void mr_metrics_write(struct evbuffer *out, const struct mr_snapshot *snap,
                      struct mr_stats *const *stats, size_t n_stats, uint64_t reload_failures);

#endif
