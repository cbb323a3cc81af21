/*
 * health/check.h: active HTTP health checks, run by the control thread.
 *
 * One check loop per endpoint slot of the current snapshot. A round opens a
 * non-blocking connection to the endpoint, sends
 *   GET <health.path> HTTP/1.1, Host: <address>, User-Agent: meridian-health,
 *   Connection: close
 * and reads the status line: 2xx or 3xx is a success; another status, a
 * connect or I/O error, a close before the status line, or no status line
 * within health.timeout_ms is a failure ("HTTP 503", "connect: Connection
 * refused", "timeout after 300 ms"). The result goes to mr_health_report().
 *
 * Rounds start every health.interval_ms, counted from the start of the
 * previous round, each time scaled by a random factor in
 * [1 - MR_CHECK_JITTER_PCT %, 1 + MR_CHECK_JITTER_PCT %] so that the checks
 * of many endpoints (and of several edges) never align. A slot the checker
 * has not seen before is checked at once (see health.h: new slots start UP).
 *
 * Everything runs on the event_base given to mr_checker_new(), from the
 * thread that runs it (the control thread); nothing blocks. Each loop holds
 * a reference on its slot, so a slot is never freed under a pending check.
 * A check's socket and events live only while the check runs.
 */
#ifndef MR_HEALTH_CHECK_H
#define MR_HEALTH_CHECK_H

#include "conf/snapshot.h"
#include "health/health.h"

struct event_base;
struct mr_checker; /* opaque: owned by the control thread */

#define MR_CHECK_JITTER_PCT 15 /* +/- per round, in percent of interval_ms */

/* A checker without loops, or NULL when out of memory. h is the registry the
 * slots come from; base must outlive the checker. */
struct mr_checker *mr_checker_new(struct event_base *base, struct mr_health *h);

/* Call after each publish with the new current snapshot (already attached
 * with mr_health_attach(); endpoints without a slot are not checked): starts
 * a loop for every new slot (first check at once), stops and frees the loops
 * of slots no longer in snap (a running check is dropped unreported), and
 * keeps the schedule of the others. snap's health path, interval and timeout
 * apply from the next round. snap is not retained. 0, or -1 when out of
 * memory, leaving the previous loops running. */
int mr_checker_update(struct mr_checker *ck, const struct mr_snapshot *snap);

/* Stops every loop, closes its socket, frees its events and drops its slot
 * reference. Call before event_base_free(). Accepts NULL. */
void mr_checker_free(struct mr_checker *ck);

#endif
