/*
 * router/upstream.h: a worker's pool of idle kept-alive upstream connections.
 *
 * One pool per worker, touched only by that worker's thread: no lock. Idle
 * connections are keyed by endpoint address (not by snapshot pointer, so
 * they survive a reload) and reused newest first. An idle connection that
 * the origin closes, that receives unexpected bytes, or that stays idle
 * past its timeout is closed and forgotten.
 */
#ifndef MR_ROUTER_UPSTREAM_H
#define MR_ROUTER_UPSTREAM_H

#include <stddef.h>

#include "common/netaddr.h"

struct mr_conn;
struct event_base;
struct mr_upstream_pool;

/* At most this many idle connections are kept per endpoint. */
#define MR_UPSTREAM_MAX_IDLE_PER_ENDPOINT 512

struct mr_upstream_pool *mr_upstream_pool_new(struct event_base *base);

/* Closes every idle connection and frees the pool; accepts NULL. */
void mr_upstream_pool_free(struct mr_upstream_pool *pool);

/* Takes an idle connection to addr out of the pool (callbacks cleared,
 * still reading: set new ones at once) for the caller to own; NULL when
 * there is none. */
struct mr_conn *mr_upstream_pool_take(struct mr_upstream_pool *pool,
                                      const struct mr_sockaddr *addr);

/* Gives an idle, fully read connection to addr to the pool, which owns it
 * from now on (and closes it if the pool is full). */
void mr_upstream_pool_put(struct mr_upstream_pool *pool, const struct mr_sockaddr *addr,
                          struct mr_conn *conn, int idle_ms);

/* Closes every idle connection (at shutdown). */
void mr_upstream_pool_close_all(struct mr_upstream_pool *pool);

/* Idle connections currently pooled (for tests and metrics). */
size_t mr_upstream_pool_idle(const struct mr_upstream_pool *pool);

#endif
