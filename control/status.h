/*
 * control/status.h: GET /api/v1/status, the running configuration as the
 * dashboard and `meridianctl status` show it: every region, cluster and
 * endpoint with its state, health, drain, weight and traffic (summed over
 * workers), and the latest health transitions.
 *
 * A view: reads the snapshot, health and counters it is given and returns
 * new JSON; changes nothing. Control thread.
 */
#ifndef MR_CONTROL_STATUS_H
#define MR_CONTROL_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "conf/snapshot.h"

struct mr_health;
struct mr_stats;

/* What the status shows besides the snapshot. */
struct mr_status_source {
    struct mr_health *health;      /* its health transitions */
    struct mr_stats *const *stats; /* every worker's counters */
    size_t n_stats;
    int64_t started_s; /* the process's start, unix seconds */
    bool stopping;     /* a stop signal came: workers drain */
};

/* The status of snap (a new reference). */
json_t *mr_status_json(const struct mr_snapshot *snap, const struct mr_status_source *src);

#endif
