/*
 * router/redirect.h: the redirects meridian answers itself.
 *
 * A listener (or a "hosts" entry) in redirect mode answers every request
 * with a 307 to the chosen cluster's public_url; a plain listener with
 * redirect_https answers 308 to the same host and target over https. These
 * functions are pure: they read the parsed request head and the snapshot,
 * and write bytes into the caller's buffer. The head's fields point into
 * the client's input, so the caller drains it only after calling them.
 */
#ifndef MR_ROUTER_REDIRECT_H
#define MR_ROUTER_REDIRECT_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/snapshot.h"
#include "router/http1.h"

struct evbuffer;

/* The name part (no port) of the authority routed on: the absolute-form
 * target's, else Host's; validated by the parser; maybe empty. */
const char *mr_redirect_host(const struct mr_http1_head *head, size_t *len);

/* The listener's mode, unless the "hosts" object names the request's Host. */
enum mr_mode mr_redirect_mode(const struct mr_snapshot *snap, const struct mr_listener *l,
                              const struct mr_http1_head *head);

/* The path and query of the request target (origin-form), for a Location:
 * "/" for OPTIONS "*", and a query alone goes behind the "/" (*slash). */
const char *mr_redirect_target_path(const struct mr_http1_head *head, size_t *len,
                                    const char **slash);

/* Writes the whole answer (a head, no body) into out: 307 to url followed
 * by the request's path and query. cookie: cookie_len bytes of Set-Cookie
 * header line (CRLF included), or NULL; close: with "Connection: close". */
void mr_redirect_to_url(struct evbuffer *out, const char *url, const struct mr_http1_head *head,
                        const char *cookie, size_t cookie_len, bool close);

/* As mr_redirect_to_url(), a 308 to https://HOST[:https_port] (the port
 * left out when 443) and the request's path and query. -1, and nothing
 * written, when the request names no usable host (empty or longer than
 * 255 bytes); 0 otherwise. */
int mr_redirect_to_https(struct evbuffer *out, int https_port, const struct mr_http1_head *head,
                         const char *cookie, size_t cookie_len, bool close);

#endif
