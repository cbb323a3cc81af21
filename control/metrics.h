/*
 * control/metrics.h: GET /metrics, Prometheus text format 0.0.4.
 *
 * Sums every worker's counters (router/stats.h) and reads health and the
 * current snapshot; runs on the control thread, never on the data path.
 */
#ifndef MR_ROUTER_METRICS_H
#define MR_ROUTER_METRICS_H

struct evbuffer;
struct mr_control;

/* Appends the whole exposition to out. */
void mr_metrics_write(struct mr_control *ctl, struct evbuffer *out);

#endif
