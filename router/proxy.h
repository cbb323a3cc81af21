/*
 * router/proxy.h: the HTTP/1.1 data path of one worker.
 *
 * A client connection reads a request head (router/http1), decides where it
 * goes (router/pick), takes a kept-alive upstream connection from the
 * worker's pool or opens one, forwards the head with hop-by-hop headers
 * removed and X-Forwarded-* set, and streams bodies both ways with
 * back-pressure: neither side's body is ever held whole. One request is in
 * flight per client connection; pipelined requests wait in the input buffer
 * and are answered in order. It also terminates TLS and reads PROXY
 * protocol headers where the listener says so, answers redirects, and
 * tunnels upgraded (WebSocket) connections byte for byte. This file is the
 * client connection's state machine; the request in flight and its retry
 * decisions are router/exchange, the redirect answers router/redirect, the
 * tunnel's pump router/tunnel, the per-snapshot balancing state
 * router/lease. Worker thread only.
 */
#ifndef MR_ROUTER_PROXY_H
#define MR_ROUTER_PROXY_H

#include <event2/util.h>
#include <sys/socket.h>

#include "router/worker.h"

/* The three below, as the worker calls them (mr_worker_new). */
extern const struct mr_worker_conns mr_proxy_conns;

/* Takes over a client socket accepted on listeners[listener] (the index in
 * the configuration). */
void mr_proxy_accept(struct mr_worker *w, size_t listener, evutil_socket_t fd,
                     const struct sockaddr *peer, int peer_len);

/* Shutdown begins: idle connections close now, busy ones after their
 * current response. */
void mr_proxy_drain(struct mr_worker *w);

/* Closes every client connection at once (grace period over, or exit). */
void mr_proxy_close_all(struct mr_worker *w);

#endif
