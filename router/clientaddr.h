/*
 * router/clientaddr.h: who the client is.
 *
 * The socket peer, unless the peer is a trusted proxy (trusted_proxies):
 * then the rightmost address of X-Forwarded-For that is not itself trusted,
 * since everything left of it was written by parties we cannot vouch for.
 * Pure; any thread.
 */
#ifndef MR_ROUTER_CLIENTADDR_H
#define MR_ROUTER_CLIENTADDR_H

#include <stdbool.h>

#include "common/netaddr.h"
#include "router/http1.h"

/* Fills *client; returns true when the peer is trusted (its
 * X-Forwarded-For is then kept and appended to, not replaced). */
bool mr_clientaddr_resolve(const struct mr_cidr_set *trusted, const struct mr_sockaddr *peer,
                           const struct mr_http1_head *head, struct mr_sockaddr *client);

#endif
