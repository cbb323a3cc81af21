/*
 * health/passive.h: passive health, the data path's view of an endpoint.
 *
 * Workers report what they see of each endpoint: a connect failure, a
 * close or reset before the response head, no response head within
 * upstream_response_ms, an unreadable response head (meridian answers 502
 * or 504 itself). A response head from the origin is a success, whatever
 * its status: an origin answering 500 or 502 is not counted, so a client
 * cannot eject endpoints by finding a URL that fails.
 *
 * health.passive.consecutive_failures failures in a row (any worker; a
 * success resets the run; 0 turns ejection off) eject the endpoint: pickers
 * pass over it until the ejection ends, base_ms for the first, doubling on
 * each repeat up to max_ms. An endpoint that stayed in picks for max_ms
 * after its last ejection starts again at base_ms. A passing active health
 * check ends an ejection at once (the back-off count is kept). At most
 * max_ejected_percent of a cluster's endpoints, rounded down, are ejected at
 * once: with 2 endpoints and 50 %, one; a single endpoint needs 100 %.
 *
 * The state lives in the endpoint's health slot (health/health.h), so it
 * keeps across a reload that keeps the endpoint's cluster and address.
 * Everything here is lock-free: plain atomics, no mutex. Two workers
 * ejecting two endpoints of a cluster at the same instant may both see room
 * under the cap; each checks again after its compare-and-swap and undoes its
 * own ejection if the cap is exceeded. Times are CLOCK_MONOTONIC_COARSE ms.
 */
#ifndef MR_HEALTH_PASSIVE_H
#define MR_HEALTH_PASSIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/snapshot.h"
#include "health/health.h"

enum mr_passive_reason {
    MR_PASSIVE_NONE,
    MR_PASSIVE_CONNECT,      /* refused, unreachable or connect timeout */
    MR_PASSIVE_RESET,        /* closed or reset before a response head */
    MR_PASSIVE_TIMEOUT,      /* no response head within upstream_response_ms */
    MR_PASSIVE_BAD_RESPONSE, /* a response head meridian cannot forward */
};

/* "connect_failure", "reset", "timeout", "bad_response"; "" for none. */
const char *mr_passive_reason_name(enum mr_passive_reason why);

/* The clock of ejections, in ms. Any thread. */
int64_t mr_passive_now_ms(void);

/* Ejection length after `ejections` earlier ones in a row: base doubled
 * that many times, at most max. */
int64_t mr_passive_backoff_ms(int ejections, int base_ms, int max_ms);

/* How many of c's endpoints may be ejected at once. */
size_t mr_passive_max_ejected(const struct mr_snapshot *snap, const struct mr_cluster *c);

/* True when e is out of picks at now. Any thread. */
bool mr_passive_ejected(const struct mr_endpoint *e, int64_t now);

/* A response head came from e: the failure run ends. Any thread. */
void mr_passive_success(const struct mr_endpoint *e);

/* e failed as why says. Returns true when this call ejected it (and logs
 * it). Any thread. */
bool mr_passive_failure(const struct mr_snapshot *snap, const struct mr_endpoint *e,
                        enum mr_passive_reason why, int64_t now);

/* An active check of slot passed: an ejection in force ends now. Control
 * thread (called by mr_health_report). */
void mr_passive_check_passed(struct mr_health_slot *slot, int64_t now);

#endif
