/*
 * router/exchange.h: one request and its response, from a complete request
 * head to the last response byte (or the error that ends it).
 *
 * A client connection (router/proxy.c) holds one struct mr_exchange and
 * runs at most one exchange at a time; the exchange holds what that request
 * needs: the lease it decided on, the decision and endpoint, the upstream
 * connection and its phase, the attempts and what is kept for the one
 * retry, and what its access-log line says. mr_exchange_begin() resets it
 * for each request. The decisions about it (may it be sent again?) are
 * pure functions, so tests call them without a running edge. Worker thread
 * only.
 */
#ifndef MR_ROUTER_EXCHANGE_H
#define MR_ROUTER_EXCHANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#include "common/netaddr.h"
#include "router/chunked.h"
#include "router/http1.h"
#include "router/pick.h"

struct event;
struct evbuffer;
struct mr_conn;
struct mr_lease;
struct mr_stats;
struct mr_stats_cluster;

enum mr_exchange_phase {
    MR_EXCHANGE_CONNECTING, /* the connect timeout runs */
    MR_EXCHANGE_WAITING,    /* request sent or being sent, no response head yet */
    MR_EXCHANGE_BODY,       /* response body streaming */
};

/* Why meridian answered with an error of its own, or cut a response that
 * had begun. One table gives each cause its name (stable, lowercase: the
 * access log's "error") and the status it answers with when no response
 * byte has gone to the client yet. */
enum mr_cause {
    MR_CAUSE_NONE,               /* no failure */
    MR_CAUSE_BAD_REQUEST,        /* the request head breaks the grammar or a rule: 400 */
    MR_CAUSE_METHOD_NOT_ALLOWED, /* 405 */
    MR_CAUSE_URI_TOO_LONG,       /* 414 */
    MR_CAUSE_HEAD_TOO_LARGE,     /* past limits.max_head_bytes or max_headers: 431 */
    MR_CAUSE_NOT_IMPLEMENTED,    /* 501 */
    MR_CAUSE_VERSION,            /* not HTTP/1.x: 505 */
    MR_CAUSE_HEAD_TIMEOUT,       /* no whole head within client_header_ms: 408 */
    MR_CAUSE_BAD_REQUEST_BODY,   /* a malformed chunked request body: 400 */
    MR_CAUSE_NO_HOST,            /* redirect_https without a usable Host: 400 */
    MR_CAUSE_NO_SNAPSHOT,        /* no configuration to decide on: 503 */
    MR_CAUSE_LISTENER_GONE,      /* the listener left the configuration: 503 */
    MR_CAUSE_NO_CLUSTER,         /* no cluster can take the request: 503 */
    MR_CAUSE_NO_PUBLIC_URL,      /* redirect mode, a cluster without public_url: 503 */
    MR_CAUSE_NO_ENDPOINT,        /* the cluster has no endpoint up: 503 */
    MR_CAUSE_NO_MEMORY,          /* 503 */
    MR_CAUSE_CONNECT_FAILED,     /* refused or unreachable: 502 */
    MR_CAUSE_CONNECT_TIMEOUT,    /* no connection within upstream_connect_ms: 502 */
    MR_CAUSE_UPSTREAM_CLOSED,    /* closed before a whole response head: 502 */
    MR_CAUSE_RESPONSE_TIMEOUT,   /* no response head within upstream_response_ms: 504 */
    MR_CAUSE_BAD_RESPONSE_HEAD,  /* a malformed (or unasked 101) response head: 502 */
    MR_CAUSE_BAD_RESPONSE_BODY,  /* a malformed chunked response body: cut (502) */
    MR_CAUSE_UPSTREAM_CUT,       /* closed mid-body: cut (502) */
    MR_CAUSE_BODY_TIMEOUT,       /* the response body stalled: cut (504) */
    MR_CAUSE_COUNT
};

/* The cause's name ("upstream connect failed"); NULL for MR_CAUSE_NONE. */
const char *mr_cause_name(enum mr_cause cause);

/* The status a cause answers with; 0 for MR_CAUSE_NONE. */
int mr_cause_status(enum mr_cause cause);

/* The cause of a request head refused by router/http1 with status. */
enum mr_cause mr_cause_of_head(int status);

struct mr_exchange {
    struct mr_lease *lease; /* held from the head until the exchange ends */
    const struct mr_endpoint *endpoint;
    struct mr_decision decision;
    enum mr_http1_method method;
    bool http10;
    enum mr_http1_body req_body;
    uint64_t req_left;             /* MR_BODY_LENGTH bytes still to forward */
    struct mr_chunked req_chunked; /* MR_BODY_CHUNKED: decoded, re-encoded */
    bool req_done;                 /* the whole request reached the upstream buffer */
    bool body_forwarded;           /* some request body byte went upstream */
    int attempts;
    char *head_buf; /* the upstream request head, kept for a retry */
    size_t head_len, head_cap;
    struct evbuffer *sent_body; /* the body as forwarded, kept for a retry */
    bool body_unkept;           /* sent_body outgrew limits.retry_body_bytes */
    bool resp_seen;             /* a response byte came: never sent again */
    bool awaiting;              /* counted in lease->awaiting for endpoint */
    bool counted;               /* counted in flight to endpoint (outstanding, active) */
    struct mr_conn *up;
    bool up_reused;
    enum mr_exchange_phase phase;
    struct event *up_timer;     /* connect / response / stall timeout */
    struct timeval up_activity; /* last progress with the upstream */
    enum mr_http1_body resp_body;
    uint64_t resp_left;
    struct mr_chunked resp_chunked;
    bool resp_keep_alive;
    bool resp_started;                      /* response bytes went to the client */
    bool set_cookie;                        /* a new decision: the response carries a cookie */
    bool unlogged;                          /* counting and an access log line are owed */
    struct mr_stats_cluster *cluster_stats; /* counts the exchange's cluster */
    bool upgrade;                           /* the request asks for a tunnel */
    enum mr_cause cause;                    /* why it failed, MR_CAUSE_NONE while it has not */

    /* For the access log line of the exchange. */
    struct mr_sockaddr client_addr;
    int64_t started_ns; /* CLOCK_MONOTONIC: libevent's cached clock is coarse */
    int status;
    uint64_t bytes_in, bytes_out;
    char *log_request; /* "METHOD\0TARGET", kept while logging is on */
    size_t log_method_len, log_target_len, log_cap;
};

/* Resets the exchange for a request whose head arrived at now_ns
 * (CLOCK_MONOTONIC), head_bytes long (or the bytes read of a refused one),
 * from client (the connection's peer until the head is read for a
 * forwarded address). The lease, the upstream connection and the buffers
 * kept across requests are left as they are. */
void mr_exchange_begin(struct mr_exchange *x, uint64_t head_bytes, const struct mr_sockaddr *client,
                       int64_t now_ns);

/* Frees what the exchange owns (buffers kept across requests); the lease
 * and upstream connection must already be gone. */
void mr_exchange_free(struct mr_exchange *x);

/* Room for an upstream request head of need bytes in head_buf; false when
 * memory ran out. */
bool mr_exchange_head_reserve(struct mr_exchange *x, size_t need);

/* A request is sent again only when the origin cannot have acted on it:
 * the connect failed (not a byte of it reached that connection), or its
 * method is idempotent (RFC 9110 9.2.2) and no response byte came. Bytes
 * written to a reused pooled connection that turns out closed may have
 * been read: that is not a connect failure. Either way meridian must still
 * hold what it forwarded of the body. */
bool mr_exchange_may_retry(const struct mr_exchange *x, bool connect_failed);

/* Keeps a copy of the body bytes just queued to the upstream (those past
 * from in out) for a retry, until it outgrows limit bytes
 * (limits.retry_body_bytes), a response byte comes, or the one retry has
 * been made. The one place the pumps touch retries. */
void mr_exchange_keep_for_retry(struct mr_exchange *x, struct evbuffer *out, size_t from,
                                size_t limit);

/* Where a retry goes: another endpoint of the failed one's cluster that is
 * up; the failed one again after a stale pooled connection (was_reused: it
 * says nothing of the endpoint); else a fresh decision that excludes that
 * cluster, which moves the session (set_cookie) and its count. Sets
 * x->endpoint; false when there is nowhere to go. now: unix seconds;
 * random: uniformly random, for weights. */
bool mr_exchange_pick_retry(struct mr_exchange *x, const struct mr_endpoint *failed,
                            bool was_reused, int64_t now, uint64_t random);

/* Counts the exchange's cluster: its session kind now, the request when it
 * ends (mr_exchange_count_end). A retry that moves the session moves the
 * count. */
void mr_exchange_count_decision(struct mr_exchange *x);

/* Counts the ended exchange, took_ns long, in the worker's stats and its
 * cluster's (decision, duration, status class; no longer active). */
void mr_exchange_count_end(struct mr_exchange *x, struct mr_stats *stats, int64_t took_ns);

/* Copies method and target for the access log line (the head goes soon). */
void mr_exchange_keep_for_log(struct mr_exchange *x, const struct mr_http1_head *head);

#endif
