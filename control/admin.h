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
 *
 * The answers come from the control thread through struct mr_admin_ops,
 * which control.c fills when it starts the listener: admin.c knows HTTP and
 * the routes, not the control thread, and includes no control/ header but
 * dashboard.h, so the arrows point one way: control -> admin (control.h
 * draws the whole picture).
 */
#ifndef MR_CONTROL_ADMIN_H
#define MR_CONTROL_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/err.h"
#include "conf/snapshot.h"

struct event_base;
struct evbuffer;
struct mr_admin;

/* What a drain, undrain or weight request's body asks for. */
struct mr_admin_change {
    int mode;           /* MR_DRAIN_SOFT or MR_DRAIN_HARD */
    int64_t deadline_s; /* 0: none */
    double weight;
    bool dry_run, force;
};

/* The control thread's answers, each called with ctx. JSON results are new
 * references the admin sends and frees; statuses are HTTP statuses. */
struct mr_admin_ops {
    void *ctx;
    bool (*stopping)(void *ctx); /* GET /healthz answers 503 */
    /* action "drain", "undrain" or "weight" on cluster. */
    int (*change)(void *ctx, const char *action, const char *cluster,
                  const struct mr_admin_change *ch, json_t **answer);
    int (*undo)(void *ctx, json_t **answer);
    int (*reload)(void *ctx, struct mr_errors *errs); /* 0 or -1 */
    json_t *(*status)(void *ctx);
    json_t *(*history)(void *ctx);
    json_t *(*explain)(void *ctx, const char *ip, const char *cookie, int *status);
    void (*metrics)(void *ctx, struct evbuffer *out);
};

/* Binds snap's admin.address on base and serves ops (copied); NULL (logged)
 * when it cannot listen, or when the address is not loopback and no token
 * is set. */
struct mr_admin *mr_admin_new(struct event_base *base, const struct mr_admin_ops *ops,
                              const struct mr_snapshot *snap);

/* Closes the listener; accepts NULL. */
void mr_admin_free(struct mr_admin *admin);

/* Reads the JSON body (len bytes, not NUL-terminated; empty is {}) of a
 * change; action is "drain", "undrain" or "weight". 0, or -1 with the 400
 * message in msg (cap bytes). Pure: any thread, any bytes. */
int mr_admin_parse_change(const char *action, const char *body, size_t len,
                          struct mr_admin_change *out, char *msg, size_t cap);

#endif
