/*
 * control/whatif.h: what a change would do, and why a client goes where it
 * goes: the guardrail (which clients a change would strand), the dry run
 * (where a cluster's new sessions would move) and explain.
 *
 * Pure functions over the snapshots, traffic counts and clocks they are
 * given: no globals, no control-thread state, nothing published; they read
 * health slots through the snapshot's endpoints (a snapshot without slots
 * is all up) and allocate only the JSON they return (new references). A
 * "routing class" is what the policy can tell apart: each country and
 * continent of routing, and "default".
 */
#ifndef MR_CONTROL_WHATIF_H
#define MR_CONTROL_WHATIF_H

#include <stdint.h>

#include <jansson.h>

#include "conf/snapshot.h"

/*
 * The routing classes before has a cluster taking new sessions for and
 * after has none for: ["countries.GB", "continents.EU", "default"], in
 * routing's order. A class no cluster served before is not listed: the
 * pick fails open for it already, so the change strands nobody new.
 */
json_t *mr_whatif_stranded(const struct mr_snapshot *before, const struct mr_snapshot *after);

/*
 * Where cluster's new sessions would go under after: [{"cluster", "share"}]
 * with shares summing to 1 (or empty), split by weight within the first
 * region that takes them, "fail_open" for sessions no cluster would take.
 * recent: the cluster's new sessions by country ({"GB": 12, "unknown": 3},
 * read only); NULL or empty weighs one client per routing country under
 * before by the share cluster takes of it now. *basis says which of the two.
 */
json_t *mr_whatif_shares(const struct mr_snapshot *before, const struct mr_snapshot *after,
                         const char *cluster, json_t *recent, const char **basis);

/* Why explain calls c not eligible: "down", "drained", "weight 0"; NULL
 * when it takes new sessions. */
const char *mr_whatif_skip_reason(const struct mr_snapshot *snap, const struct mr_cluster *c);

/* ep's passive-health ejection at now (mr_passive_now_ms()), with wall_ms
 * the wall clock then, in ms: {"reason", "until", "remaining_ms",
 * "ejections"}, or JSON null when not ejected. */
json_t *mr_whatif_ejection(const struct mr_endpoint *ep, int64_t now, int64_t wall_ms);

/* The clocks of one explain. */
struct mr_whatif_clock {
    int64_t now_s;   /* wall, seconds: cookie expiry and the pick */
    int64_t mono_ms; /* mr_passive_now_ms(): ejections */
    int64_t wall_ms; /* wall, ms: an ejection's "until" */
};

/*
 * GET /api/v1/explain for a client at ip holding cookie (NULL: none): its
 * location, the cookie's verdict, every candidate region with its rule and
 * each cluster's eligibility, and the decision mr_pick_session() makes with
 * random. *status: 200, or 400 (and {"error"}) when ip is not an address.
 */
json_t *mr_whatif_explain(const struct mr_snapshot *snap, const char *ip, const char *cookie,
                          const struct mr_whatif_clock *clock, uint64_t random, int *status);

#endif
