/*
 * control/admin.h: the admin API listener (docs/admin-api.md).
 *
 * libevent's evhttp on the control thread's event_base; JSON with jansson.
 * Every path but GET /healthz needs the bearer token of admin.token_file
 * (GET /metrics: or that of admin.metrics_token_file), compared in constant
 * time, and a Host and Origin naming the admin address (403), so that no
 * web page or rebound DNS name reaches it. Changes need Content-Type:
 * application/json (415). Requests that cannot apply change nothing:
 * 400 for a malformed body or value, 404 for an unknown cluster or path,
 * 405 for a wrong method, 409 for a guardrail. Control thread only.
 */
#ifndef MR_ROUTER_ADMIN_H
#define MR_ROUTER_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/snapshot.h"

struct mr_admin;
struct mr_control;

/* Binds snap's admin.address and serves ctl; NULL (logged) when it cannot
 * listen, or when the address is not loopback and no token is set. */
struct mr_admin *mr_admin_new(struct mr_control *ctl, const struct mr_snapshot *snap);

/* Closes the listener; accepts NULL. */
void mr_admin_free(struct mr_admin *admin);

/* What a drain, undrain or weight request's body asks for. */
struct mr_admin_change {
    int mode;            /* MR_DRAIN_SOFT or MR_DRAIN_HARD */
    int64_t deadline_s;  /* 0: none */
    double weight;
    bool dry_run, force;
};

/* Reads the JSON body (len bytes, not NUL-terminated; empty is {}) of a
 * change; action is "drain", "undrain" or "weight". 0, or -1 with the 400
 * message in msg (cap bytes). Pure: any thread, any bytes. */
int mr_admin_parse_change(const char *action, const char *body, size_t len,
                          struct mr_admin_change *out, char *msg, size_t cap);

#endif
