/*
 * router/pick.h: where a request goes.
 *
 * Pure functions over a snapshot: the cluster decision for a session and the
 * endpoint within a cluster. They read only their arguments, so any worker
 * calls them without locks and tests call them without a running edge. The
 * decision carries its reason, which the access log and explain show.
 */
#ifndef MR_ROUTER_PICK_H
#define MR_ROUTER_PICK_H

#include <stdint.h>
#include <sys/socket.h>

#include "conf/snapshot.h"

/* Why a cluster was chosen. Names are the access log's words. */
enum mr_pick_reason {
    MR_PICK_NONE,      /* nothing can serve: 503 */
    MR_PICK_STICKY,    /* the session cookie's cluster */
    MR_PICK_GEO,       /* the first candidate region of the client's location */
    MR_PICK_FAILOVER,  /* a later candidate region: earlier ones had no cluster */
    MR_PICK_FAIL_OPEN, /* no candidate region could take it */
};

/* What is known of the client when deciding. */
struct mr_client_info {
    const struct sockaddr *addr; /* resolved client address */
};

struct mr_decision {
    enum mr_pick_reason reason;
    const struct mr_region *region;   /* NULL with MR_PICK_NONE */
    const struct mr_cluster *cluster; /* NULL with MR_PICK_NONE */
};

/* "geo", "sticky", ... for logs. */
const char *mr_pick_reason_name(enum mr_pick_reason reason);

/* True when cluster may take a new session (weight > 0, not drained). */
bool mr_pick_takes_new(const struct mr_cluster *cluster);

/*
 * Decides the cluster for a request: the candidate regions in order (for now
 * routing.default), the first one with a cluster that takes new sessions,
 * a cluster within it by weight. random: a uniformly random 64-bit value
 * (the caller's generator). Returns the decision's reason.
 */
enum mr_pick_reason mr_pick_cluster(const struct mr_snapshot *snap,
                                    const struct mr_client_info *client,
                                    uint64_t random, struct mr_decision *out);

/*
 * Picks an endpoint of cluster. outstanding: requests in flight per endpoint
 * (indexed by endpoint->index), for least-requests; cursor: the cluster's
 * round-robin position, advanced. avoid: an endpoint to skip when another
 * exists (a retry), or NULL. Never NULL for a cluster with endpoints.
 */
const struct mr_endpoint *mr_pick_endpoint(const struct mr_cluster *cluster,
                                           enum mr_endpoint_policy policy,
                                           const uint32_t *outstanding, uint32_t *cursor,
                                           const struct mr_endpoint *avoid);

#endif
