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
struct mr_stats_cluster;

enum mr_exchange_phase {
    MR_EXCHANGE_CONNECTING, /* the connect timeout runs */
    MR_EXCHANGE_WAITING,    /* request sent or being sent, no response head yet */
    MR_EXCHANGE_BODY,       /* response body streaming */
};

struct mr_exchange {
    struct mr_lease *lease;    /* held from the head until the exchange ends */
    const struct mr_endpoint *endpoint;
    struct mr_decision decision;
    enum mr_http1_method method;
    bool http10;
    enum mr_http1_body req_body;
    uint64_t req_left;         /* MR_BODY_LENGTH bytes still to forward */
    struct mr_chunked req_chunked; /* MR_BODY_CHUNKED: decoded, re-encoded */
    bool req_done;             /* the whole request reached the upstream buffer */
    bool body_forwarded;       /* some request body byte went upstream */
    int attempts;
    char *head_buf;            /* the upstream request head, kept for a retry */
    size_t head_len, head_cap;
    struct evbuffer *sent_body;/* the body as forwarded, kept for a retry */
    bool body_unkept;          /* sent_body outgrew limits.retry_body_bytes */
    bool resp_seen;            /* a response byte came: never sent again */
    bool awaiting;             /* counted in lease->awaiting for endpoint */
    bool counted;              /* counted in flight to endpoint (outstanding, active) */
    struct mr_conn *up;
    bool up_reused;
    enum mr_exchange_phase phase;
    struct event *up_timer;    /* connect / response / stall timeout */
    struct timeval up_activity;/* last progress with the upstream */
    enum mr_http1_body resp_body;
    uint64_t resp_left;
    struct mr_chunked resp_chunked;
    bool resp_keep_alive;
    bool resp_started;         /* response bytes went to the client */
    bool set_cookie;           /* a new decision: the response carries a cookie */
    bool unlogged;             /* counting and an access log line are owed */
    struct mr_stats_cluster *cluster_stats; /* counts the exchange's cluster */
    bool upgrade;              /* the request asks for a tunnel */

    /* For the access log line of the exchange. */
    struct mr_sockaddr client_addr;
    int64_t started_ns;        /* CLOCK_MONOTONIC: libevent's cached clock is coarse */
    int status;
    uint64_t bytes_in, bytes_out;
    char *log_request;         /* "METHOD\0TARGET", kept while logging is on */
    size_t log_method_len, log_target_len, log_cap;
};

/* Resets the exchange for a request whose head arrived at now_ns
 * (CLOCK_MONOTONIC), head_bytes long (or the bytes read of a refused one),
 * from client (the connection's peer until the head is read for a
 * forwarded address). The lease, the upstream connection and the buffers
 * kept across requests are left as they are. */
void mr_exchange_begin(struct mr_exchange *x, uint64_t head_bytes,
                       const struct mr_sockaddr *client, int64_t now_ns);

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

/* Copies method and target for the access log line (the head goes soon). */
void mr_exchange_keep_for_log(struct mr_exchange *x, const struct mr_http1_head *head);

#endif
