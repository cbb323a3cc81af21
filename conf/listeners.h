/*
 * conf/listeners.h: the configuration of how connections arrive:
 * "listeners" (address, name, mode, TLS, PROXY protocol), "hosts" (a mode
 * per request Host) and "trusted_proxies".
 *
 * Each reader fills ld->snap and reports every problem with its JSON path,
 * then carries on (conf/loader.h). Certificate files are only named here;
 * router/tls.c reads them.
 */
#ifndef MR_CONF_LISTENERS_H
#define MR_CONF_LISTENERS_H

#include <jansson.h>

#include "conf/loader.h"

/* root.listeners: a non-empty array of at most 32 listeners. */
void mr_listeners_load(struct mr_loader *ld, json_t *root);

/* root.hosts, when present: {"go.example.com": {"mode": "redirect"}}. */
void mr_listeners_load_hosts(struct mr_loader *ld, json_t *root);

/* root.trusted_proxies, when present: addresses or CIDR prefixes. */
void mr_listeners_load_trusted_proxies(struct mr_loader *ld, json_t *root);

/* After the two loads above: a listener with proxy_protocol needs
 * proxy_protocol_from or trusted_proxies, or any client could forge its
 * address. */
void mr_listeners_check_proxy_protocol_from(struct mr_loader *ld);

#endif
