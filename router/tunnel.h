/*
 * router/tunnel.h: upgraded (WebSocket) connections.
 *
 * When an origin answers 101 to an upgrade, the client connection
 * (router/proxy.c) becomes a tunnel: bytes pass both ways as they are,
 * with back-pressure, until a side closes, the tunnel has been idle for
 * timeouts.tunnel_idle_ms, or its cluster is hard-drained past its
 * deadline (soft drains never cut a tunnel). This module moves the bytes
 * and decides when a tunnel ends; the client connection switches state and
 * counts. Worker thread only; mr_tunnel_drained and mr_tunnel_next_check_ms
 * are pure.
 */
#ifndef MR_ROUTER_TUNNEL_H
#define MR_ROUTER_TUNNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/snapshot.h"

struct mr_conn;

/* How often an open tunnel looks at its idle time and its cluster's drain. */
#define MR_TUNNEL_CHECK_MS 1000

/* Moves what from has received to to's output, as it is, and writes it;
 * stops reading from while to's output holds MR_CONN_OUT_HIGH bytes (to's
 * drain callback resumes it). Returns the bytes moved. */
size_t mr_tunnel_pump(struct mr_conn *from, struct mr_conn *to);

/* True when a tunnel to cluster (by name) must end in snap, the current
 * snapshot, at now_s (unix seconds): the cluster is hard-drained, without
 * a deadline or past it. */
bool mr_tunnel_drained(const struct mr_snapshot *snap, const char *cluster, int64_t now_s);

/* When to look again at a tunnel idle for idle_ms, limit_ms allowed
 * (tunnel_idle_ms): in ms, at most MR_TUNNEL_CHECK_MS; 0: it ends now. */
int mr_tunnel_next_check_ms(int64_t idle_ms, int limit_ms);

#endif
