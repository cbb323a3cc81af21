/*
 * router/headers.h: the heads meridian forwards.
 *
 * Rewrites a parsed request head for the upstream and a response head for
 * the client: hop-by-hop headers dropped (Connection, Keep-Alive,
 * Proxy-Connection, TE, Trailer, Upgrade, and every header Connection
 * names), X-Forwarded-For and X-Forwarded-Proto set. The framing is
 * meridian's, never copied: Content-Length is the parsed length,
 * Transfer-Encoding "chunked" when the body is re-encoded, Host the one
 * routed on; so Connection can never remove them. Pure: writes into the
 * caller's buffer, which must hold the *_size() bound.
 */
#ifndef MR_ROUTER_HEADERS_H
#define MR_ROUTER_HEADERS_H

#include <stdbool.h>
#include <stddef.h>

#include "router/http1.h"

struct mr_forward {
    bool http10;       /* the client spoke HTTP/1.0: so do we upstream */
    bool peer_trusted; /* keep and extend the peer's X-Forwarded-For */
    const char *peer;  /* the socket peer's address, as text */
    size_t peer_len;
    const char *proto;  /* "http" or "https" */
    bool upgrade;       /* a tunnel is asked for: Upgrade and Connection pass */
    const char *target; /* the target to send, in origin-form */
    size_t target_len;
    const char *host; /* the Host routed on (host[:port]); when empty, an
                         empty Host in HTTP/1.1 and none in HTTP/1.0 */
    size_t host_len;
};

/* An upper bound of mr_headers_request()'s output for head. */
size_t mr_headers_request_size(const struct mr_http1_head *head, const struct mr_forward *fwd);

/* Writes the upstream request head into buf; returns its length. */
size_t mr_headers_request(char *buf, const struct mr_http1_head *head,
                          const struct mr_forward *fwd);

/* An upper bound of mr_headers_response()'s output for head and extra. */
size_t mr_headers_response_size(const struct mr_http1_head *head, size_t extra_len);

/* Writes the client's response head into buf; close adds Connection: close,
 * upgrade keeps a 101's Upgrade with "Connection: Upgrade", extra
 * (extra_len bytes of complete header lines, such as Set-Cookie, or NULL)
 * goes last. Returns its length. */
size_t mr_headers_response(char *buf, const struct mr_http1_head *head, bool close, bool upgrade,
                           const char *extra, size_t extra_len);

#endif
