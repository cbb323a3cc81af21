/*
 * router/pick.h: where a request goes.
 *
 * Pure functions over a snapshot (and the health atomics it points to):
 * the session decision and the endpoint within a cluster. They read only
 * their arguments, so any worker calls them without locks, explain can ask
 * "what would happen", and tests call them without a running edge.
 *
 * The two words of docs/design.md, used exactly: a cluster *takes new sessions*
 * when it is healthy, its weight is > 0 and it is not drained; it *keeps
 * its sessions* when it is healthy, not hard-drained and not past a soft
 * drain's deadline.
 */
#ifndef MR_ROUTER_PICK_H
#define MR_ROUTER_PICK_H

#include <stdint.h>
#include <sys/socket.h>

#include "conf/snapshot.h"
#include "geo/geoip.h"

/* Why a cluster was chosen. Names are the access log's words. */
enum mr_pick_reason {
    MR_PICK_NONE,      /* nothing can serve: 503 */
    MR_PICK_STICKY,    /* the session cookie's cluster */
    MR_PICK_GEO,       /* the first candidate region of the client's location */
    MR_PICK_FAILOVER,  /* a later candidate region: earlier ones had no cluster */
    MR_PICK_FAIL_OPEN, /* no candidate region could take it */
};

struct mr_pick_input {
    const struct sockaddr *addr;      /* the resolved client address */
    const char *cookie_cluster;       /* named by a valid cookie, or NULL */
    const struct mr_cluster *exclude; /* just failed (a retry), or NULL */
    int64_t now;                      /* unix seconds, for drain deadlines */
    uint64_t random;                  /* uniformly random, for weights */
};

struct mr_decision {
    enum mr_pick_reason reason;
    const struct mr_region *region;   /* NULL with MR_PICK_NONE */
    const struct mr_cluster *cluster; /* NULL with MR_PICK_NONE */
    struct mr_location loc;           /* looked up for a new decision */
    bool located;                     /* loc was looked up */
};

/* "geo", "sticky", ... for logs. */
const char *mr_pick_reason_name(enum mr_pick_reason reason);

bool mr_pick_takes_new(const struct mr_snapshot *snap, const struct mr_cluster *cluster);
bool mr_pick_keeps_sessions(const struct mr_snapshot *snap, const struct mr_cluster *cluster,
                            int64_t now);

/*
 * Decides the cluster for a request (docs/design.md, the request path, step 4): the
 * cookie's cluster when it keeps its sessions; else the client's candidate
 * regions in order and, in the first with clusters taking new sessions, one
 * by weight; else any cluster with an endpoint up (fail open); else none.
 * Returns out->reason.
 */
enum mr_pick_reason mr_pick_session(const struct mr_snapshot *snap, const struct mr_pick_input *in,
                                    struct mr_decision *out);

/* An endpoint with requests waiting for a response head that has answered
 * none for this long (on this worker) has stalled: others are preferred. */
#define MR_PICK_STALL_MS 1000

/*
 * Picks an endpoint of cluster that is up, preferring those neither ejected
 * by passive health nor stalled (an ejected or stalled one only when no
 * other is up). outstanding: requests in flight per endpoint (by
 * endpoint->index), for least-requests, and for round robin, which passes
 * over an endpoint with more than twice the least loaded one's plus
 * RR_SLACK (2); waiting_since: per endpoint, since when
 * (mr_passive_now_ms()) it has had requests waiting for a response head
 * and answered none, 0 when none waits (NULL: no stall check); cursor: the
 * cluster's rotation, advanced past the one chosen. avoid: an endpoint to
 * skip (a retry), or NULL. NULL when no endpoint (but avoid) is up.
 */
const struct mr_endpoint *mr_pick_endpoint(const struct mr_cluster *cluster,
                                           enum mr_endpoint_policy policy,
                                           const uint32_t *outstanding,
                                           const int64_t *waiting_since, uint32_t *cursor,
                                           const struct mr_endpoint *avoid);

#endif
