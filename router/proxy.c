/* router/proxy.c: see proxy.h. */
#include "router/proxy.h"

#include <inttypes.h>
#include <stdio.h>
#include <strings.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "router/accesslog.h"
#include "router/chunked.h"
#include "router/clientaddr.h"
#include "router/cookie.h"
#include "router/conn.h"
#include "router/headers.h"
#include "router/http1.h"
#include "router/lease.h"
#include "router/pick.h"
#include "common/proxyproto.h"
#include "router/stats.h"
#include "router/tls.h"
#include "router/upstream.h"
#include "router/worker.h"
#include "health/passive.h"

#define CLIENT_MAGIC 0xc11e47a5U

/* Back-pressure: stop reading one side while the other side's output holds
 * this much, resume when it is down to the low mark. */
#define BUFFER_HIGH (512 * 1024)
#define BUFFER_LOW (128 * 1024)
/* Pipelined bytes read ahead while a request is in flight. */
#define PIPELINE_MAX (64 * 1024)
/* How often an open tunnel looks at its idle time and its cluster's drain. */
#define TUNNEL_CHECK_MS 1000

enum client_state {
    CS_PREFACE, /* reading the PROXY protocol header */
    CS_IDLE,    /* between requests (or before the first byte): idle timer */
    CS_HEAD,    /* part of a head has arrived: the header timer runs */
    CS_ACTIVE,  /* a request is being forwarded or answered */
    CS_CLOSING, /* flushing the last response, then close */
    CS_TUNNEL,  /* upgraded: bytes pass both ways as they are */
};

enum upstream_phase {
    UP_CONNECTING, /* the connect timeout runs */
    UP_WAITING,    /* request sent or being sent, no response head yet */
    UP_BODY,       /* response body streaming */
};

struct mr_client {
    unsigned magic;
    struct mr_worker *w;
    struct mr_client *prev, *next;
    struct mr_conn *conn;
    struct mr_sockaddr peer;   /* the socket's peer, or the PROXY header's source */
    struct mr_sockaddr local;  /* where it connected to, or the PROXY header's destination */
    size_t listener;           /* index into snapshot->listeners */
    bool tls;                  /* the listener terminates TLS */
    struct event *preface;     /* reads the PROXY header (CS_PREFACE) */
    struct mr_proxyproto_reader *preface_reader;
    struct mr_http1 *req_parser, *resp_parser;
    struct event *timer;       /* header / idle / stalled-write timer */
    struct event *resume;      /* serves a pipelined request from the loop */
    enum client_state state;
    bool close_after;          /* no keep-alive after the current response */
    bool peer_closed;          /* the client half-closed: answer what came, then close */

    /* The exchange in flight (state CS_ACTIVE). */
    struct mr_lease *lease;
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
    bool awaiting;             /* counted in lease->awaiting for c->endpoint */
    struct mr_conn *up;
    bool up_reused;
    enum upstream_phase phase;
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
    bool tunnel_eof;           /* one side of the tunnel has closed */

    /* A connection opened with a PROXY header (send_proxy) speaks for one
     * client: kept here between requests instead of the shared pool. */
    struct mr_conn *private_up;
    struct mr_sockaddr private_endpoint, private_client;

    /* For the access log line of the exchange. */
    struct mr_sockaddr client_addr;
    int64_t started_ns;        /* CLOCK_MONOTONIC: libevent's cached clock is coarse */
    int status;
    uint64_t bytes_in, bytes_out;
    char *log_request;         /* "METHOD\0TARGET", kept while logging is on */
    size_t log_method_len, log_target_len, log_cap;
};

static void on_client_read(struct mr_conn *conn, void *arg);
static void on_client_drain(struct mr_conn *conn, void *arg);
static void on_client_event(struct mr_conn *conn, enum mr_conn_event what, void *arg);
static void on_upstream_read(struct mr_conn *conn, void *arg);
static void on_upstream_drain(struct mr_conn *conn, void *arg);
static void on_upstream_event(struct mr_conn *conn, enum mr_conn_event what, void *arg);
static void connect_upstream(struct mr_client *c);
static void tunnel_pump(struct mr_client *c, struct mr_conn *from, struct mr_conn *to);

static struct timeval ms_tv(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

static void arm_timer(struct event *timer, int ms)
{
    struct timeval tv = ms_tv(ms);
    evtimer_add(timer, &tv);
}

static const struct mr_snapshot *client_snap(const struct mr_client *c)
{
    return c->lease != NULL ? c->lease->snap : c->w->lease->snap;
}

/* Notes upstream progress; the timer checks it lazily instead of being
 * re-armed on every read. */
static void upstream_progress(struct mr_client *c)
{
    event_base_gettimeofday_cached(c->w->base, &c->up_activity);
}

/* ---- ending things --------------------------------------------------- */

static void drop_private_upstream(struct mr_client *c)
{
    mr_conn_free(c->private_up);
    c->private_up = NULL;
}

/* Anything from an idle private connection means it is spent. */
static void on_private_read(struct mr_conn *conn, void *arg)
{
    (void)conn;
    drop_private_upstream(arg);
}

static void on_private_event(struct mr_conn *conn, enum mr_conn_event what, void *arg)
{
    (void)conn;
    (void)what;
    drop_private_upstream(arg);
}

/* Counts the exchange as waiting for a response head from its endpoint, or
 * no longer (answered: a head came). Per worker, lease->waiting_since says
 * since when an endpoint has had requests waiting without answering any:
 * picks pass over one stalled for MR_PICK_STALL_MS. Requests whose head
 * came (a long download, a tunnel) do not count. */
static void await_head(struct mr_client *c, bool on, bool answered)
{
    size_t i = c->endpoint->index;
    int64_t now;

    if (c->awaiting == on)
        return;
    c->awaiting = on;
    now = mr_passive_now_ms();
    if (on) {
        if (c->lease->awaiting[i]++ == 0)
            c->lease->waiting_since[i] = now;
        return;
    }
    if (--c->lease->awaiting[i] == 0)
        c->lease->waiting_since[i] = 0;
    else if (answered)
        c->lease->waiting_since[i] = now;
}

/* Forgets the upstream connection, pooling it when reusable: in the shared
 * pool, or for this client alone when it began with the client's PROXY
 * header. */
static void release_upstream(struct mr_client *c, bool reusable)
{
    if (c->up == NULL)
        return;
    await_head(c, false, false);
    evtimer_del(c->up_timer);
    if (c->lease->outstanding[c->endpoint->index] > 0)
        c->lease->outstanding[c->endpoint->index]--;
    if (c->lease->endpoint_stats[c->endpoint->index] != NULL)
        mr_stats_add(&c->lease->endpoint_stats[c->endpoint->index]->active, (uint64_t)-1);
    if (reusable && !c->w->stopping && c->endpoint->cluster->send_proxy != MR_SEND_PROXY_NONE) {
        drop_private_upstream(c);
        c->private_up = c->up;
        c->private_endpoint = c->endpoint->addr;
        c->private_client = c->client_addr;
        c->up->out_low = 0;
        mr_conn_setcb(c->up, on_private_read, NULL, on_private_event, c);
    } else if (reusable && !c->w->stopping) {
        mr_upstream_pool_put(c->w->pool, &c->endpoint->addr, c->up,
                             c->lease->snap->timeouts.upstream_idle_ms);
    } else {
        mr_conn_free(c->up);
    }
    c->up = NULL;
}

static int64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Counts the exchange's cluster: its session kind now, the request when it
 * ends. A retry that moves the session moves the count. */
static void count_decision(struct mr_client *c)
{
    const struct mr_decision *d = &c->decision;
    struct mr_stats_cluster *cs = c->lease->cluster_stats[d->cluster->index];

    if (c->cluster_stats != NULL)
        mr_stats_add(&c->cluster_stats->active, (uint64_t)-1);
    c->cluster_stats = cs;
    if (cs == NULL)
        return;
    mr_stats_add(&cs->active, 1);
    if (d->reason == MR_PICK_STICKY) {
        mr_stats_add(&cs->sticky_hits, 1);
    } else {
        mr_stats_add(&cs->new_sessions, 1);
        mr_stats_add(&cs->new_by_country[mr_stats_country_index(
                         d->located && d->loc.found ? d->loc.country : NULL)],
                     1);
    }
}

static void write_log_line(struct mr_client *c, int64_t took_ns);

/* Counts the finished exchange and writes its access log line, once. */
static void log_exchange(struct mr_client *c)
{
    struct mr_stats *stats = c->w->stats;
    int64_t took_ns;

    if (!c->unlogged)
        return;
    c->unlogged = false;
    took_ns = monotonic_ns() - c->started_ns;
    mr_stats_add(&stats->decisions[c->decision.reason], 1);
    mr_stats_observe(stats, took_ns > 0 ? (uint64_t)took_ns / 1000 : 0);
    if (c->cluster_stats != NULL) {
        struct mr_stats_cluster *cs = c->cluster_stats;
        mr_stats_add(&cs->requests, 1);
        mr_stats_add(&cs->status[c->status >= 100 && c->status < 600 ? c->status / 100 : 0], 1);
        mr_stats_add(&cs->active, (uint64_t)-1);
        c->cluster_stats = NULL;
    }
    if (mr_accesslog_enabled() && c->w->log != NULL)
        write_log_line(c, took_ns);
}

static void write_log_line(struct mr_client *c, int64_t took_ns)
{
    const struct mr_decision *d = &c->decision;
    char client[64];
    struct mr_accesslog_entry e = {
        .client = client,
        .method = c->log_request,
        .method_len = c->log_method_len,
        .path = c->log_request != NULL ? c->log_request + c->log_method_len + 1 : NULL,
        .path_len = c->log_target_len,
        .status = c->status,
        .bytes_in = c->bytes_in,
        .bytes_out = c->bytes_out,
        .took_ns = took_ns,
        .decision = mr_pick_reason_name(d->reason),
        .region = d->cluster != NULL ? d->region->name : NULL,
        .cluster = d->cluster != NULL ? d->cluster->name : NULL,
        .endpoint = c->endpoint != NULL ? c->endpoint->address : NULL,
        .country = d->located && d->loc.found ? d->loc.country : NULL,
        .generation = client_snap(c)->generation,
    };

    event_base_gettimeofday_cached(c->w->base, &e.time);
    if (mr_netaddr_host((const struct sockaddr *)&c->client_addr.ss, client, sizeof(client)) < 0)
        client[0] = '\0';
    mr_accesslog_format(mr_accesslog_buffer_lines(c->w->log), &e);
    mr_accesslog_buffer_commit(c->w->log);
}

static void end_exchange(struct mr_client *c)
{
    log_exchange(c);
    release_upstream(c, false);
    if (c->lease != NULL) {
        mr_worker_unlease(c->w, c->lease);
        c->lease = NULL;
    }
    c->endpoint = NULL;
    mr_http1_reset(c->req_parser);
    mr_http1_reset(c->resp_parser);
}

static void free_client(struct mr_client *c)
{
    struct mr_worker *w = c->w;

    end_exchange(c);
    if (c->state == CS_TUNNEL)
        mr_stats_add(&w->stats->tunnels, (uint64_t)-1);
    if (c->tls && c->listener < MR_STATS_LISTENERS && c->conn != NULL && c->conn->handshaking)
        mr_stats_add(&w->stats->listeners[c->listener].tls_handshake_failures, 1);
    drop_private_upstream(c);
    if (c->preface != NULL)
        event_free(c->preface);
    free(c->preface_reader);
    mr_conn_free(c->conn);
    event_free(c->timer);
    event_free(c->up_timer);
    if (c->resume != NULL)
        event_free(c->resume);
    mr_http1_free(c->req_parser);
    mr_http1_free(c->resp_parser);
    free(c->head_buf);
    if (c->sent_body != NULL)
        evbuffer_free(c->sent_body);
    free(c->log_request);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        w->clients = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    w->n_clients--;
    mr_stats_add(&w->stats->client_connections, (uint64_t)-1);
    c->magic = 0;
    free(c);
    mr_worker_client_gone(w);
}

/* Closes once the output is flushed. May free c. */
static void close_when_flushed(struct mr_client *c)
{
    c->state = CS_CLOSING;
    mr_conn_read_stop(c->conn);
    mr_conn_flush(c->conn);
    if (evbuffer_get_length(c->conn->out) == 0) {
        free_client(c);
        return;
    }
    c->conn->out_low = 0;
    /* A client that does not take its last response is dropped. */
    arm_timer(c->timer, client_snap(c)->timeouts.client_idle_ms);
}

/* Answers with a status of our own and closes. May free c. */
static void reply_error(struct mr_client *c, int status)
{
    const char *reason = mr_http1_reason(status);

    if (!c->resp_started) {
        int n = evbuffer_add_printf(c->conn->out,
                            "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
                            "Content-Length: %zu\r\n%sConnection: close\r\n\r\n%d %s\n",
                            status, reason, strlen(reason) + 5,
                            status == 503 ? "Retry-After: 5\r\n" : "", status, reason);
        c->status = status;
        c->bytes_out += n > 0 ? (uint64_t)n : 0;
    }
    log_exchange(c);
    close_when_flushed(c);
}

/* reply_error() for an exchange in flight: its upstream connection goes
 * now, its lease when the client does. May free c. */
static void fail_exchange(struct mr_client *c, int status)
{
    release_upstream(c, false);
    reply_error(c, status);
}

/* ---- request path ---------------------------------------------------- */

static bool head_reserve(struct mr_client *c, size_t need)
{
    char *grown;

    if (need <= c->head_cap)
        return true;
    grown = realloc(c->head_buf, need);
    if (grown == NULL)
        return false;
    c->head_buf = grown;
    c->head_cap = need;
    return true;
}

/* Serializes the upstream request head into c->head_buf. */
static bool build_request_head(struct mr_client *c, const struct mr_http1_head *head,
                               bool peer_trusted)
{
    char peer[64];
    int peer_len = mr_netaddr_host((const struct sockaddr *)&c->peer.ss, peer, sizeof(peer));
    struct mr_forward fwd = {
        .http10 = c->http10,
        .peer_trusted = peer_trusted,
        .peer = peer,
        .peer_len = peer_len > 0 ? (size_t)peer_len : 0,
        .proto = c->tls ? "https" : "http",
        .upgrade = c->upgrade,
        .target = head->path,
        .target_len = head->path_len,
        .host = head->host,
        .host_len = head->host_len,
    };

    if (!head_reserve(c, mr_headers_request_size(head, &fwd)))
        return false;
    c->head_len = mr_headers_request(c->head_buf, head, &fwd);
    return true;
}

/* A request is sent again only when the origin cannot have acted on it:
 * the connect failed (not a byte of it reached that connection), or its
 * method is idempotent (RFC 9110 9.2.2) and no response byte came. Bytes
 * written to a reused pooled connection that turns out closed may have
 * been read: that is not a connect failure. Either way meridian must still
 * hold what it forwarded of the body. */
static bool may_retry(const struct mr_client *c, bool connect_failed)
{
    if (c->attempts > 1 || c->resp_seen || c->body_unkept)
        return false;
    if (connect_failed)
        return true;
    switch (c->method) {
    case MR_METHOD_GET: case MR_METHOD_HEAD: case MR_METHOD_OPTIONS:
    case MR_METHOD_TRACE: case MR_METHOD_PUT: case MR_METHOD_DELETE:
        return true;
    default:
        return false;
    }
}

/* Keeps a copy of the body bytes just queued to the upstream (those past
 * from in out) for a retry, until it outgrows limits.retry_body_bytes, a
 * response byte comes, or the one retry has been made. The one place the
 * pumps touch retries. */
static void keep_for_retry(struct mr_client *c, struct evbuffer *out, size_t from)
{
    size_t n = evbuffer_get_length(out) - from;
    struct evbuffer_ptr at;
    struct evbuffer_iovec vec;

    if (n == 0 || c->body_unkept || c->resp_seen || c->attempts > 1)
        return;
    if (c->sent_body == NULL)
        c->sent_body = evbuffer_new();
    if (c->sent_body == NULL ||
        evbuffer_get_length(c->sent_body) + n > c->lease->snap->limits.retry_body_bytes ||
        evbuffer_reserve_space(c->sent_body, (ev_ssize_t)n, &vec, 1) < 1) {
        c->body_unkept = true;
        if (c->sent_body != NULL)
            evbuffer_drain(c->sent_body, evbuffer_get_length(c->sent_body));
        return;
    }
    evbuffer_ptr_set(out, &at, from, EVBUFFER_PTR_SET);
    vec.iov_len = (size_t)evbuffer_copyout_from(out, &at, vec.iov_base, n);
    evbuffer_commit_space(c->sent_body, &vec, 1);
}

/* What the data path saw of the exchange's endpoint, for passive health. */
static void endpoint_failed(struct mr_client *c, enum mr_passive_reason why)
{
    mr_passive_failure(c->lease->snap, c->endpoint, why, mr_passive_now_ms());
}

static int64_t now_s(const struct mr_client *c)
{
    struct timeval now;
    event_base_gettimeofday_cached(c->w->base, &now);
    return (int64_t)now.tv_sec;
}

/* Where a retry goes: another endpoint of the cluster that is up, else
 * (a fresh decision) the next cluster that can take the session. Sets
 * c->endpoint; false when there is nowhere to go. */
static bool pick_retry(struct mr_client *c, const struct mr_endpoint *failed, bool was_reused)
{
    const struct mr_snapshot *snap = c->lease->snap;
    const struct mr_cluster *cluster = failed->cluster;
    struct mr_pick_input in = {
        .addr = (const struct sockaddr *)&c->client_addr.ss,
        .exclude = cluster,
        .now = now_s(c),
        .random = mr_worker_random(c->w),
    };

    c->endpoint = mr_pick_endpoint(cluster, snap->routing.endpoint_policy, c->lease->outstanding,
                                   c->lease->waiting_since, &c->lease->cursors[cluster->index],
                                   failed);
    if (c->endpoint != NULL)
        return true;
    if (was_reused) {
        /* A stale pooled connection says nothing about the endpoint. */
        c->endpoint = failed;
        return true;
    }
    if (mr_pick_session(snap, &in, &c->decision) == MR_PICK_NONE)
        return false;
    c->set_cookie = true; /* the session now lives elsewhere */
    count_decision(c);
    c->endpoint = mr_pick_endpoint(c->decision.cluster, snap->routing.endpoint_policy,
                                   c->lease->outstanding, c->lease->waiting_since,
                                   &c->lease->cursors[c->decision.cluster->index], NULL);
    return c->endpoint != NULL;
}

/* The upstream failed before any response byte (why). May free c. */
static void upstream_failed(struct mr_client *c, int status, enum mr_passive_reason why)
{
    const struct mr_endpoint *failed = c->endpoint;
    struct mr_stats_endpoint *es = c->lease->endpoint_stats[failed->index];
    /* A stale pooled connection says nothing of the endpoint; a timeout does. */
    bool was_reused = c->up_reused && why != MR_PASSIVE_TIMEOUT;
    bool connect_failed = c->phase == UP_CONNECTING;

    if (es != NULL && connect_failed)
        mr_stats_add(&es->connect_failures, 1);
    endpoint_failed(c, why);
    release_upstream(c, false);
    if (may_retry(c, connect_failed) && pick_retry(c, failed, was_reused)) {
        mr_stats_add(&c->w->stats->retries, 1);
        connect_upstream(c);
        return;
    }
    c->endpoint = failed;
    fail_exchange(c, status);
}

/* Moves request body bytes from the client to the upstream. May free c. */
static void pump_request_body(struct mr_client *c)
{
    struct evbuffer *in = c->conn->in;
    struct evbuffer *out = c->up->out;
    size_t queued = evbuffer_get_length(out);

    if (c->req_body == MR_BODY_LENGTH) {
        size_t n = evbuffer_get_length(in);
        if (n > c->req_left)
            n = (size_t)c->req_left;
        if (n > 0) {
            evbuffer_remove_buffer(in, out, n);
            c->req_left -= n;
            c->bytes_in += n;
            c->body_forwarded = true;
        }
        c->req_done = c->req_left == 0;
    } else if (c->req_body == MR_BODY_CHUNKED) {
        size_t used;
        int r = mr_chunked_relay(&c->req_chunked, in, out, &used);
        if (r == MR_CHUNKED_BAD) {
            /* Only canonical chunks went out, but the origin has part of a
             * body: that connection is spent. */
            fail_exchange(c, 400);
            return;
        }
        c->bytes_in += used;
        c->body_forwarded |= used > 0;
        c->req_done = r == MR_CHUNKED_DONE;
    } else {
        c->req_done = true;
    }
    keep_for_retry(c, out, queued);
    if (c->body_forwarded)
        upstream_progress(c);
    mr_conn_flush(c->up);
    if (!c->req_done && evbuffer_get_length(out) >= BUFFER_HIGH) {
        mr_conn_read_stop(c->conn);
        c->up->out_low = BUFFER_LOW;
    }
}

static void on_upstream_timer(evutil_socket_t fd, short events, void *arg)
{
    struct mr_client *c = arg;
    const struct mr_snapshot *snap = c->lease->snap;
    struct timeval now, idle;
    int limit_ms;
    (void)fd;
    (void)events;

    if (c->phase == UP_CONNECTING) {
        upstream_failed(c, 502, MR_PASSIVE_CONNECT);
        return;
    }
    limit_ms = snap->timeouts.upstream_response_ms;
    event_base_gettimeofday_cached(c->w->base, &now);
    timersub(&now, &c->up_activity, &idle);
    if (idle.tv_sec * 1000 + idle.tv_usec / 1000 < limit_ms) {
        /* There was progress since it was armed: wait out the rest. */
        arm_timer(c->up_timer, limit_ms - (int)(idle.tv_sec * 1000 + idle.tv_usec / 1000));
        return;
    }
    if (c->phase == UP_WAITING) {
        upstream_failed(c, 504, MR_PASSIVE_TIMEOUT);
        return;
    }
    /* Stalled mid-body: the client sees a truncated message. */
    c->close_after = true;
    fail_exchange(c, 504);
}

/* The PROXY header that opens a connection to a send_proxy cluster: the
 * client as meridian sees it, and the address it connected to. */
static void add_proxy_header(struct mr_client *c, struct evbuffer *out, enum mr_send_proxy version)
{
    unsigned char header[128]; /* v1 <= 107 bytes, v2 without TLVs <= 52 */
    size_t len;

    if (version == MR_SEND_PROXY_V1)
        len = mr_proxyproto_build_v1((char *)header, sizeof(header),
                                     (const struct sockaddr *)&c->client_addr.ss,
                                     (const struct sockaddr *)&c->local.ss);
    else
        len = mr_proxyproto_build_v2(header, sizeof(header),
                                     (const struct sockaddr *)&c->client_addr.ss,
                                     (const struct sockaddr *)&c->local.ss);
    evbuffer_add(out, header, len);
}

static void connect_upstream(struct mr_client *c)
{
    const struct mr_snapshot *snap = c->lease->snap;
    enum mr_send_proxy send_proxy;
    struct mr_conn *up;

    c->attempts++;
    c->lease->outstanding[c->endpoint->index]++;
    await_head(c, true, false);
    if (c->lease->endpoint_stats[c->endpoint->index] != NULL) {
        mr_stats_add(&c->lease->endpoint_stats[c->endpoint->index]->requests, 1);
        mr_stats_add(&c->lease->endpoint_stats[c->endpoint->index]->active, 1);
    }
    send_proxy = c->endpoint->cluster->send_proxy;
    if (send_proxy == MR_SEND_PROXY_NONE) {
        up = mr_upstream_pool_take(c->w->pool, &c->endpoint->addr);
    } else if (c->private_up != NULL &&
               mr_netaddr_equal(&c->private_endpoint, &c->endpoint->addr) &&
               mr_netaddr_equal(&c->private_client, &c->client_addr)) {
        up = c->private_up;
        c->private_up = NULL;
    } else {
        drop_private_upstream(c);
        up = NULL;
    }
    c->up_reused = up != NULL;
    if (up == NULL) {
        up = mr_conn_connect(c->w->base, &c->endpoint->addr);
        if (up == NULL) {
            /* Refused at once (loopback): as a failed connect. */
            const struct mr_endpoint *failed = c->endpoint;
            struct mr_stats_endpoint *es = c->lease->endpoint_stats[failed->index];
            c->lease->outstanding[failed->index]--;
            await_head(c, false, false);
            if (es != NULL) {
                mr_stats_add(&es->active, (uint64_t)-1);
                mr_stats_add(&es->connect_failures, 1);
            }
            endpoint_failed(c, MR_PASSIVE_CONNECT);
            if (may_retry(c, true) && pick_retry(c, failed, false)) {
                mr_stats_add(&c->w->stats->retries, 1);
                connect_upstream(c);
                return;
            }
            c->endpoint = failed;
            fail_exchange(c, 502);
            return;
        }
        c->phase = UP_CONNECTING;
        arm_timer(c->up_timer, snap->timeouts.upstream_connect_ms);
        if (send_proxy != MR_SEND_PROXY_NONE)
            add_proxy_header(c, up->out, send_proxy);
    } else {
        c->phase = UP_WAITING;
        upstream_progress(c);
        arm_timer(c->up_timer, snap->timeouts.upstream_response_ms);
    }
    c->up = up;
    mr_conn_setcb(up, on_upstream_read, on_upstream_drain, on_upstream_event, c);
    mr_conn_read_start(up);
    evbuffer_add(up->out, c->head_buf, c->head_len);
    /* A retry: the body forwarded so far goes again (there is no second
     * retry to keep it for), then what follows. */
    if (c->sent_body != NULL)
        evbuffer_add_buffer(up->out, c->sent_body);
    pump_request_body(c);
}

/* Copies method and target for the access log line (the head goes soon). */
static void keep_for_log(struct mr_client *c, const struct mr_http1_head *head)
{
    size_t target_len = head->target_len < 2048 ? head->target_len : 2048;
    size_t need = head->method_len + 1 + target_len;

    if (need > c->log_cap) {
        char *grown = realloc(c->log_request, need);
        if (grown == NULL)
            return;
        c->log_request = grown;
        c->log_cap = need;
    }
    memcpy(c->log_request, head->method_name, head->method_len);
    c->log_request[head->method_len] = '\0';
    memcpy(c->log_request + head->method_len + 1, head->target, target_len);
    c->log_method_len = head->method_len;
    c->log_target_len = target_len;
}

/* The cluster named by a valid session cookie, into buf; NULL when there is
 * none. A cookie that fails to verify is counted and ignored. */
static const char *cookie_cluster(struct mr_client *c, const struct mr_http1_head *head,
                                  int64_t now, char *buf, size_t cap)
{
    const struct mr_snapshot *snap = c->lease->snap;

    for (size_t i = 0; i < head->n_headers; i++) {
        const struct mr_http1_header *h = &head->headers[i];
        const char *value;
        size_t len;
        if ((h->name[0] | 0x20) != 'c' || !mr_http1_name_is(h, "cookie"))
            continue;
        value = mr_cookie_find(h->value, h->value_len, snap->session.cookie, &len);
        if (value == NULL)
            continue;
        if (c->lease->cookie_keys != NULL &&
            mr_cookie_verify(c->lease->cookie_keys, value, len, now, buf, cap) == MR_COOKIE_VALID)
            return buf;
        mr_stats_add(&c->w->stats->bad_cookies, 1);
        return NULL;
    }
    return NULL;
}

static void next_request(struct mr_client *c);
static const struct mr_cookie_line *cookie_line(struct mr_client *c);

/* The name part (no port) of the authority routed on: the absolute-form
 * target's, else Host's; validated by the parser; maybe empty. */
static const char *request_host(const struct mr_http1_head *head, size_t *len)
{
    size_t n = head->host_len;

    if (n > 0 && head->host[0] == '[') {
        const char *end = memchr(head->host, ']', n);
        n = end != NULL ? (size_t)(end - head->host) + 1 : n;
    } else {
        const char *colon = memchr(head->host, ':', n);
        n = colon != NULL ? (size_t)(colon - head->host) : n;
    }
    *len = n;
    return head->host;
}

/* The listener's mode, unless the "hosts" object names the request's Host. */
static enum mr_mode request_mode(const struct mr_snapshot *snap, const struct mr_listener *l,
                                 const struct mr_http1_head *head)
{
    size_t len;
    const char *host;

    if (snap->n_hosts == 0)
        return l->mode;
    host = request_host(head, &len);
    for (size_t i = 0; i < snap->n_hosts; i++)
        if (strlen(snap->hosts[i].host) == len && strncasecmp(snap->hosts[i].host, host, len) == 0)
            return snap->hosts[i].mode;
    return l->mode;
}

/* The path and query of the request target (origin-form), for a Location:
 * "/" for OPTIONS "*", and a query alone goes behind the "/" (*slash). */
static const char *target_path(const struct mr_http1_head *head, size_t *len, const char **slash)
{
    *slash = head->path[0] == '?' ? "/" : "";
    if (head->path_len == 1 && head->path[0] == '*') {
        *len = 1;
        return "/";
    }
    *len = head->path_len;
    return head->path;
}

/* Answers the exchange with a redirect of our own (no body), with the
 * session cookie when the decision was new, and goes on with the next
 * request. May free c. */
static void reply_redirect(struct mr_client *c, const struct mr_http1_head *head, int status,
                           const char *base, size_t base_len, const char *port)
{
    const struct mr_cookie_line *cookie = c->set_cookie ? cookie_line(c) : NULL;
    size_t path_len;
    const char *slash;
    const char *path = target_path(head, &path_len, &slash);
    size_t before = evbuffer_get_length(c->conn->out);

    c->req_done = c->req_body == MR_BODY_NONE; /* a body would have to be read: close */
    evbuffer_add_printf(c->conn->out, "HTTP/1.1 %d %s\r\nLocation: %.*s%s%s%.*s\r\n"
                                      "Content-Length: 0\r\n",
                        status, status == 308 ? "Permanent Redirect" : "Temporary Redirect",
                        (int)base_len, base, port, slash, (int)path_len, path);
    /* The head's fields point into the input: it goes only now. */
    evbuffer_drain(c->conn->in, head->head_len);
    if (cookie != NULL)
        evbuffer_add(c->conn->out, cookie->text, cookie->len);
    if (c->close_after || !c->req_done)
        evbuffer_add(c->conn->out, "Connection: close\r\n", 19);
    evbuffer_add(c->conn->out, "\r\n", 2);
    c->status = status;
    c->resp_started = true;
    c->bytes_out += evbuffer_get_length(c->conn->out) - before;
    mr_conn_flush(c->conn);
    log_exchange(c);
    next_request(c);
}

/* A plain listener with redirect_https: 308 to the same host and target
 * over https. May free c. */
static void redirect_to_https(struct mr_client *c, const struct mr_http1_head *head,
                              const struct mr_listener *l)
{
    char base[300], port[8] = "";
    size_t host_len;
    const char *host = request_host(head, &host_len);
    int n;

    if (host_len == 0 || host_len > 255) {
        reply_error(c, 400);
        return;
    }
    n = snprintf(base, sizeof(base), "https://%.*s", (int)host_len, host);
    if (l->https_port != 443)
        snprintf(port, sizeof(port), ":%d", l->https_port);
    reply_redirect(c, head, 308, base, (size_t)n, port);
}

/* An upgrade this proxy tunnels: HTTP/1.1 GET without a body, and not h2c
 * (HTTP/2 over a tunnel would hide its requests from every check here). */
static bool wants_tunnel(const struct mr_http1_head *head)
{
    if (!head->upgrade || head->method != MR_METHOD_GET || head->version_minor == 0 ||
        head->body != MR_BODY_NONE)
        return false;
    for (size_t i = 0; i < head->n_headers; i++) {
        const struct mr_http1_header *h = &head->headers[i];
        if (mr_http1_name_is(h, "upgrade") && mr_http1_has_token(h->value, h->value_len, "h2c", 3))
            return false;
    }
    return true;
}

/* A complete, valid request head is at the start of the input. May free c. */
static void start_exchange(struct mr_client *c, const struct mr_http1_head *head)
{
    const struct mr_listener *listener;
    enum mr_mode mode;
    char sticky[MR_COOKIE_CLUSTER_MAX + 1];
    struct mr_pick_input in;
    bool peer_trusted;

    evtimer_del(c->timer);
    c->state = CS_ACTIVE;
    c->unlogged = true;
    c->status = 0;
    c->bytes_in = head->head_len;
    c->bytes_out = 0;
    c->endpoint = NULL;
    c->decision.reason = MR_PICK_NONE;
    c->decision.cluster = NULL;
    c->decision.located = false;
    c->started_ns = monotonic_ns();
    if (mr_accesslog_enabled())
        keep_for_log(c, head);
    c->lease = mr_worker_lease(c->w);
    if (c->lease == NULL) {
        reply_error(c, 503);
        return;
    }
    c->method = head->method;
    c->http10 = head->version_minor == 0;
    c->req_body = head->body;
    c->req_left = head->content_length;
    mr_chunked_init(&c->req_chunked);
    c->req_done = false;
    c->body_forwarded = false;
    c->attempts = 0;
    c->body_unkept = false;
    c->resp_seen = false;
    if (c->sent_body != NULL)
        evbuffer_drain(c->sent_body, evbuffer_get_length(c->sent_body));
    c->resp_started = false;
    if (!head->keep_alive || c->http10 || c->w->stopping)
        c->close_after = true;
    if (c->listener >= c->lease->snap->n_listeners) {
        reply_error(c, 503); /* its listener left the configuration */
        return;
    }
    listener = &c->lease->snap->listeners[c->listener];
    if (listener->redirect_https && !c->tls) {
        redirect_to_https(c, head, listener);
        return;
    }
    mode = request_mode(c->lease->snap, listener, head);
    c->upgrade = mode == MR_MODE_PROXY && wants_tunnel(head);

    peer_trusted = mr_clientaddr_resolve(&c->lease->snap->trusted_proxies, &c->peer, head,
                                         &c->client_addr);
    in.addr = (const struct sockaddr *)&c->client_addr.ss;
    in.now = now_s(c);
    in.cookie_cluster = cookie_cluster(c, head, in.now, sticky, sizeof(sticky));
    in.exclude = NULL;
    in.random = mr_worker_random(c->w);
    if (mr_pick_session(c->lease->snap, &in, &c->decision) == MR_PICK_NONE) {
        fail_exchange(c, 503);
        return;
    }
    c->set_cookie = c->decision.reason != MR_PICK_STICKY;
    count_decision(c);
    if (mode == MR_MODE_REDIRECT) {
        const char *url = c->decision.cluster->public_url;
        if (url == NULL) {
            fail_exchange(c, 503); /* the configuration check makes this unreachable */
            return;
        }
        reply_redirect(c, head, 307, url, strlen(url), "");
        return;
    }
    c->endpoint = mr_pick_endpoint(c->decision.cluster, c->lease->snap->routing.endpoint_policy,
                                   c->lease->outstanding, c->lease->waiting_since,
                                   &c->lease->cursors[c->decision.cluster->index], NULL);
    if (c->endpoint == NULL || !build_request_head(c, head, peer_trusted)) {
        fail_exchange(c, 503);
        return;
    }
    evbuffer_drain(c->conn->in, head->head_len);
    connect_upstream(c);
}

/* Reads and starts the next request, if a whole head is there. May free c. */
static void read_request(struct mr_client *c)
{
    struct mr_http1_head head;
    int r = mr_http1_parse_head(c->req_parser, c->conn->in, false, &head);

    if (r == MR_HTTP1_AGAIN) {
        if (c->peer_closed) {
            free_client(c); /* a head that can no longer complete */
            return;
        }
        if (c->state == CS_IDLE && evbuffer_get_length(c->conn->in) > 0) {
            c->state = CS_HEAD;
            arm_timer(c->timer, client_snap(c)->timeouts.client_header_ms);
        }
        return;
    }
    if (r > 0) {
        /* Logged with what is known: no method, path or decision. */
        evtimer_del(c->timer);
        c->resp_started = false; /* whatever the previous exchange sent */
        c->status = 0;
        c->bytes_out = 0;
        c->unlogged = true;
        c->bytes_in = evbuffer_get_length(c->conn->in);
        c->log_method_len = c->log_target_len = 0;
        c->decision.reason = MR_PICK_NONE;
        c->decision.cluster = NULL;
        c->decision.located = false;
        c->endpoint = NULL;
        c->client_addr = c->peer;
        c->started_ns = monotonic_ns();
        reply_error(c, r);
        return;
    }
    start_exchange(c, &head);
}

static void on_client_read(struct mr_conn *conn, void *arg)
{
    struct mr_client *c = arg;

    switch (c->state) {
    case CS_IDLE:
    case CS_HEAD:
        read_request(c);
        return;
    case CS_ACTIVE:
        if (!c->req_done && c->up != NULL) {
            pump_request_body(c);
        } else if (c->req_done && evbuffer_get_length(conn->in) >= PIPELINE_MAX) {
            /* Pipelined requests wait their turn without growing memory. */
            mr_conn_read_stop(conn);
        }
        return;
    case CS_TUNNEL:
        tunnel_pump(c, conn, c->up);
        return;
    case CS_PREFACE:
    case CS_CLOSING:
        return;
    }
}

/* ---- response path --------------------------------------------------- */

static void on_next_request(evutil_socket_t fd, short events, void *arg)
{
    struct mr_client *c = arg;
    (void)fd;
    (void)events;
    if (c->state == CS_IDLE && evbuffer_get_length(c->conn->in) > 0)
        read_request(c);
}

/* After an exchange: keep-alive and the next request, or close. May free c. */
static void next_request(struct mr_client *c)
{
    if (!c->req_done)
        c->close_after = true; /* the rest of its body would be read as a request */
    if (c->close_after || c->w->stopping) {
        close_when_flushed(c);
        return;
    }
    if (c->peer_closed && evbuffer_get_length(c->conn->in) == 0) {
        close_when_flushed(c);
        return;
    }
    end_exchange(c);
    c->state = CS_IDLE;
    arm_timer(c->timer, c->w->lease->snap->timeouts.client_idle_ms);
    if (!c->peer_closed)
        mr_conn_read_start(c->conn);
    if (evbuffer_get_length(c->conn->in) > 0) {
        /* A pipelined request: served from the loop, not from this stack. */
        if (c->resume == NULL)
            c->resume = event_new(c->w->base, -1, 0, on_next_request, c);
        if (c->resume != NULL)
            event_active(c->resume, EV_TIMEOUT, 1);
    }
}

/* The exchange is over; keep-alive or close. May free c. */
static void finish_response(struct mr_client *c)
{
    bool reusable = c->resp_keep_alive && c->req_done && c->resp_body != MR_BODY_UNTIL_EOF &&
                    evbuffer_get_length(c->up->in) == 0 && evbuffer_get_length(c->up->out) == 0;

    mr_conn_flush(c->conn);
    log_exchange(c);
    release_upstream(c, reusable);
    next_request(c);
}

/* The Set-Cookie line for the exchange's cluster, signed at most once per
 * second per cluster and worker; NULL when signing failed. */
static const struct mr_cookie_line *cookie_line(struct mr_client *c)
{
    const struct mr_snapshot *snap = c->lease->snap;
    /* Two lines per cluster: TLS listeners' carry Secure whatever the
     * configuration says. */
    struct mr_cookie_line *line =
        &c->lease->cookie_lines[c->decision.cluster->index * 2 + (c->tls ? 1 : 0)];
    int64_t now = now_s(c);
    char value[MR_COOKIE_VALUE_MAX];
    size_t value_len;

    if (line->issued_s == now && line->len > 0)
        return line;
    value_len = mr_cookie_sign(c->lease->cookie_keys, c->decision.cluster->name, now,
                               snap->session.max_age_s, value, sizeof(value));
    line->len = value_len > 0 ? mr_cookie_set_header(snap, value, value_len, c->tls, line->text,
                                                     sizeof(line->text))
                              : 0;
    line->issued_s = now;
    return line->len > 0 ? line : NULL;
}

/* Writes the client's response head from the upstream's, with the session
 * cookie when the decision was new; upgrade keeps a 101's Upgrade. */
static void send_response_head(struct mr_client *c, const struct mr_http1_head *head,
                               bool upgrade)
{
    const struct mr_cookie_line *cookie = c->set_cookie ? cookie_line(c) : NULL;
    size_t extra_len = cookie != NULL ? cookie->len : 0;
    struct evbuffer_iovec vec[1];

    if (evbuffer_reserve_space(c->conn->out,
                               (ev_ssize_t)mr_headers_response_size(head, extra_len), vec,
                               1) < 1) {
        c->close_after = true;
        return;
    }
    vec[0].iov_len = mr_headers_response(vec[0].iov_base, head, c->close_after, upgrade,
                                         cookie != NULL ? cookie->text : NULL, extra_len);
    c->bytes_out += vec[0].iov_len;
    c->status = head->status;
    evbuffer_commit_space(c->conn->out, vec, 1);
    c->resp_started = true;
}

/* An interim response's head, its hop-by-hop headers dropped. */
static void send_interim(struct mr_client *c, const struct mr_http1_head *head)
{
    struct evbuffer_iovec vec[1];

    if (evbuffer_reserve_space(c->conn->out, (ev_ssize_t)mr_headers_response_size(head, 0), vec,
                               1) < 1)
        return;
    vec[0].iov_len = mr_headers_response(vec[0].iov_base, head, false, false, NULL, 0);
    evbuffer_commit_space(c->conn->out, vec, 1);
}

/* Moves response body bytes to the client. May free c. */
static void pump_response_body(struct mr_client *c)
{
    struct evbuffer *in = c->up->in;
    struct evbuffer *out = c->conn->out;
    bool done = false;

    switch (c->resp_body) {
    case MR_BODY_LENGTH: {
        size_t n = evbuffer_get_length(in);
        if (n > c->resp_left)
            n = (size_t)c->resp_left;
        evbuffer_remove_buffer(in, out, n);
        c->resp_left -= n;
        c->bytes_out += n;
        done = c->resp_left == 0;
        break;
    }
    case MR_BODY_CHUNKED: {
        size_t before = evbuffer_get_length(out), used;
        int r = mr_chunked_relay(&c->resp_chunked, in, out, &used);
        c->bytes_out += evbuffer_get_length(out) - before;
        if (r == MR_CHUNKED_BAD) {
            /* The client sees a body without its last chunk: truncated. */
            mr_stats_add(&c->w->stats->bad_response_bodies, 1);
            c->close_after = true;
            fail_exchange(c, 502);
            return;
        }
        done = r == MR_CHUNKED_DONE;
        break;
    }
    case MR_BODY_UNTIL_EOF:
        c->bytes_out += evbuffer_get_length(in);
        evbuffer_add_buffer(out, in);
        break;
    case MR_BODY_NONE:
        done = true;
        break;
    }
    if (done) {
        finish_response(c);
        return;
    }
    mr_conn_flush(c->conn);
    if (evbuffer_get_length(out) >= BUFFER_HIGH) {
        mr_conn_read_stop(c->up);
        c->conn->out_low = BUFFER_LOW;
        /* A client that stops reading is dropped after client_idle_ms. */
        arm_timer(c->timer, c->lease->snap->timeouts.client_idle_ms);
    }
}

/* ---- tunnels ----------------------------------------------------------- */

/* The tunnel is over (a side closed, idle, or a hard drain): what the
 * client is owed is flushed, then everything closes. May free c. */
static void end_tunnel(struct mr_client *c)
{
    mr_stats_add(&c->w->stats->tunnels, (uint64_t)-1);
    c->state = CS_CLOSING;
    log_exchange(c);
    release_upstream(c, false);
    close_when_flushed(c);
}

/* Moves what one side sent to the other, as it is. */
static void tunnel_pump(struct mr_client *c, struct mr_conn *from, struct mr_conn *to)
{
    size_t n = evbuffer_get_length(from->in);

    if (n == 0)
        return;
    if (from == c->conn)
        c->bytes_in += n;
    else
        c->bytes_out += n;
    evbuffer_add_buffer(to->out, from->in);
    upstream_progress(c);
    mr_conn_flush(to);
    if (evbuffer_get_length(to->out) >= BUFFER_HIGH) {
        mr_conn_read_stop(from);
        to->out_low = BUFFER_LOW;
    }
}

/* A hard drain of the tunnel's cluster in the current snapshot, past its
 * deadline (or without one), ends it; soft drains never do. */
static bool tunnel_drained(struct mr_client *c)
{
    struct mr_lease *now_lease = mr_worker_lease(c->w);
    const struct mr_cluster *cl;
    bool drained = false;

    if (now_lease == NULL)
        return false;
    cl = mr_snap_cluster(now_lease->snap, c->decision.cluster->name);
    if (cl != NULL && cl->drain == MR_DRAIN_HARD)
        drained = cl->drain_deadline_s == 0 || now_s(c) >= cl->drain_deadline_s;
    mr_worker_unlease(c->w, now_lease);
    return drained;
}

static void tunnel_check(struct mr_client *c)
{
    int limit_ms = c->lease->snap->timeouts.tunnel_idle_ms;
    struct timeval now, idle;
    int64_t idle_ms;

    event_base_gettimeofday_cached(c->w->base, &now);
    timersub(&now, &c->up_activity, &idle);
    idle_ms = (int64_t)idle.tv_sec * 1000 + idle.tv_usec / 1000;
    if (idle_ms >= limit_ms || tunnel_drained(c)) {
        end_tunnel(c);
        return;
    }
    arm_timer(c->timer, limit_ms - idle_ms < TUNNEL_CHECK_MS ? (int)(limit_ms - idle_ms)
                                                            : TUNNEL_CHECK_MS);
}

/* The origin answered 101 to an upgrade: from now on bytes pass both ways
 * unchanged. May free c. */
static void start_tunnel(struct mr_client *c, const struct mr_http1_head *head)
{
    send_response_head(c, head, true);
    evbuffer_drain(c->up->in, head->head_len);
    evtimer_del(c->up_timer);
    c->state = CS_TUNNEL;
    c->phase = UP_BODY;
    c->req_done = true;
    mr_stats_add(&c->w->stats->tunnels, 1);
    mr_stats_add(&c->w->stats->tunnels_total, 1);
    mr_conn_read_start(c->conn);
    mr_conn_flush(c->conn);
    upstream_progress(c);
    arm_timer(c->timer, TUNNEL_CHECK_MS < c->lease->snap->timeouts.tunnel_idle_ms
                            ? TUNNEL_CHECK_MS
                            : c->lease->snap->timeouts.tunnel_idle_ms);
    /* Bytes that came right behind either head. */
    tunnel_pump(c, c->up, c->conn);
    tunnel_pump(c, c->conn, c->up);
}

static void on_upstream_read(struct mr_conn *conn, void *arg)
{
    struct mr_client *c = arg;

    if (c->state == CS_TUNNEL) {
        tunnel_pump(c, conn, c->conn);
        return;
    }
    upstream_progress(c);
    if (!c->resp_seen && evbuffer_get_length(conn->in) > 0) {
        /* Sent for good: the copy kept for a retry goes. */
        c->resp_seen = true;
        if (c->sent_body != NULL)
            evbuffer_drain(c->sent_body, evbuffer_get_length(c->sent_body));
    }
    while (c->phase == UP_WAITING) {
        struct mr_http1_head head;
        int r = mr_http1_parse_head(c->resp_parser, conn->in, c->method == MR_METHOD_HEAD, &head);
        if (r == MR_HTTP1_AGAIN)
            return;
        if (r <= 0 && head.status == 101 && c->upgrade) {
            start_tunnel(c, &head);
            return;
        }
        if (r > 0 || head.status == 101) {
            endpoint_failed(c, MR_PASSIVE_BAD_RESPONSE);
            c->close_after = true;
            fail_exchange(c, 502);
            return;
        }
        mr_passive_success(c->endpoint);
        await_head(c, false, true);
        if (head.status < 200) {
            /* Interim (100 Continue, 103): rewritten like any response
             * head, and never to an HTTP/1.0 client (RFC 9110 15.2). */
            if (!c->http10)
                send_interim(c, &head);
            evbuffer_drain(conn->in, head.head_len);
            mr_conn_flush(c->conn);
            mr_http1_reset(c->resp_parser);
            continue;
        }
        c->resp_body = head.body;
        c->resp_left = head.content_length;
        mr_chunked_init(&c->resp_chunked);
        c->resp_keep_alive = head.keep_alive && !c->http10;
        if (head.body == MR_BODY_UNTIL_EOF)
            c->close_after = true;
        send_response_head(c, &head, false);
        evbuffer_drain(conn->in, head.head_len);
        c->phase = UP_BODY;
    }
    pump_response_body(c);
}

static void on_upstream_drain(struct mr_conn *conn, void *arg)
{
    struct mr_client *c = arg;

    /* The upstream took what we had: let the client send more. */
    conn->out_low = 0;
    if (c->state == CS_TUNNEL) {
        mr_conn_read_start(c->conn);
        return;
    }
    if (c->state == CS_ACTIVE && !c->req_done) {
        mr_conn_read_start(c->conn);
        pump_request_body(c);
    }
}

static void on_upstream_event(struct mr_conn *conn, enum mr_conn_event what, void *arg)
{
    struct mr_client *c = arg;

    if (c->state == CS_TUNNEL) {
        end_tunnel(c);
        return;
    }
    if (what == MR_CONN_CONNECTED) {
        c->phase = UP_WAITING;
        upstream_progress(c);
        arm_timer(c->up_timer, c->lease->snap->timeouts.upstream_response_ms);
        return;
    }
    if (c->phase == UP_CONNECTING) {
        upstream_failed(c, 502, MR_PASSIVE_CONNECT); /* refused or unreachable */
        return;
    }
    if (c->phase == UP_WAITING) {
        /* Closed before a whole head: retry only if nothing came at all. */
        if (evbuffer_get_length(conn->in) == 0 && !c->resp_seen) {
            upstream_failed(c, 502, MR_PASSIVE_RESET);
            return;
        }
        endpoint_failed(c, MR_PASSIVE_RESET);
        c->close_after = true;
        fail_exchange(c, 502);
        return;
    }
    if (what == MR_CONN_EOF && c->resp_body == MR_BODY_UNTIL_EOF) {
        c->bytes_out += evbuffer_get_length(conn->in);
        evbuffer_add_buffer(c->conn->out, conn->in);
        c->req_done = true;
        c->resp_keep_alive = false;
        finish_response(c);
        return;
    }
    /* Cut mid-body: the client must see a truncated message, not a whole one. */
    c->close_after = true;
    fail_exchange(c, 502);
}

/* ---- client events --------------------------------------------------- */

static void on_client_drain(struct mr_conn *conn, void *arg)
{
    struct mr_client *c = arg;

    if (c->state == CS_CLOSING) {
        if (evbuffer_get_length(conn->out) == 0)
            free_client(c);
        return;
    }
    conn->out_low = 0;
    if (c->state == CS_TUNNEL) {
        mr_conn_read_start(c->up);
        return;
    }
    if (c->state == CS_ACTIVE && c->up != NULL && c->phase == UP_BODY) {
        evtimer_del(c->timer);
        mr_conn_read_start(c->up);
        pump_response_body(c);
    }
}

static void on_client_event(struct mr_conn *conn, enum mr_conn_event what, void *arg)
{
    struct mr_client *c = arg;

    if (what == MR_CONN_TLS_READY) {
        if (c->listener < MR_STATS_LISTENERS) {
            struct mr_stats_listener *ls = &c->w->stats->listeners[c->listener];
            mr_stats_add(SSL_session_reused(conn->ssl) ? &ls->tls_resumed : &ls->tls_handshakes, 1);
        }
        return;
    }
    if (c->state == CS_TUNNEL) {
        end_tunnel(c);
        return;
    }
    /* Half-closed after whole requests (pipelined ones wait in the input):
     * answer them all, then close. */
    if (what == MR_CONN_EOF && ((c->state == CS_ACTIVE && c->req_done) ||
                                (c->state == CS_IDLE && evbuffer_get_length(conn->in) > 0))) {
        c->peer_closed = true;
        return;
    }
    free_client(c);
}

static void on_client_timer(evutil_socket_t fd, short events, void *arg)
{
    struct mr_client *c = arg;
    (void)fd;
    (void)events;

    if (c->state == CS_HEAD) {
        reply_error(c, 408);
        return;
    }
    if (c->state == CS_TUNNEL) {
        tunnel_check(c);
        return;
    }
    /* Idle keep-alive connection, silent new one, or a client that does
     * not read what we send. */
    free_client(c);
}

/* Starts TLS (when the listener has it) and HTTP on a client whose
 * connection is ready for them. false when out of memory. */
static bool start_client(struct mr_client *c, const struct mr_snapshot *snap)
{
    if (c->tls) {
        const struct mr_listener *l =
            c->listener < snap->n_listeners ? &snap->listeners[c->listener] : NULL;
        SSL *ssl = l != NULL && l->tls_server != NULL ? mr_tls_new_ssl(l->tls_server) : NULL;
        if (ssl == NULL)
            return false;
        mr_conn_start_tls(c->conn, ssl);
    }
    mr_conn_setcb(c->conn, on_client_read, on_client_drain, on_client_event, c);
    mr_conn_read_start(c->conn);
    c->state = CS_IDLE;
    return true;
}

/* Reads the PROXY header that must open the connection; its addresses
 * replace the socket's. May free c. */
static void on_preface(evutil_socket_t fd, short events, void *arg)
{
    struct mr_client *c = arg;
    struct mr_proxyproto pp;
    struct mr_lease *lease;
    int r = mr_proxyproto_read(fd, c->preface_reader, &pp);
    (void)events;

    if (r == 0)
        return;
    if (r < 0) {
        /* A connection closed before its first byte is a TCP probe, not
         * a bad header. */
        bool probe = errno == 0 && c->preface_reader->have == 0;
        if (!probe && c->listener < MR_STATS_LISTENERS)
            mr_stats_add(&c->w->stats->listeners[c->listener].proxy_protocol_errors, 1);
        free_client(c);
        return;
    }
    event_free(c->preface);
    c->preface = NULL;
    free(c->preface_reader);
    c->preface_reader = NULL;
    if (!pp.local) {
        c->peer = pp.src;
        c->local = pp.dst;
    }
    lease = mr_worker_lease(c->w);
    if (lease == NULL || !start_client(c, lease->snap)) {
        if (lease != NULL)
            mr_worker_unlease(c->w, lease);
        free_client(c);
        return;
    }
    mr_worker_unlease(c->w, lease);
}

void mr_proxy_accept(struct mr_worker *w, size_t listener, evutil_socket_t fd,
                     const struct sockaddr *peer, int peer_len)
{
    struct mr_client *c = calloc(1, sizeof(*c));
    struct mr_lease *lease;
    const struct mr_listener *l;
    struct mr_http1_limits limits;
    bool started;

    lease = c != NULL && !w->stopping ? mr_worker_lease(w) : NULL;
    /* A listener removed by a reload accepts until restart: refused here. */
    if (lease == NULL || listener >= lease->snap->n_listeners) {
        if (lease != NULL)
            mr_worker_unlease(w, lease);
        free(c);
        evutil_closesocket(fd);
        return;
    }
    l = &lease->snap->listeners[listener];
    /* A PROXY header from anyone else would let a client pick its address:
     * such peers are closed before a byte is read. */
    if (l->proxy_protocol &&
        !mr_cidr_set_contains(l->proxy_protocol_from.n > 0 ? &l->proxy_protocol_from
                                                           : &lease->snap->trusted_proxies,
                              peer)) {
        if (listener < MR_STATS_LISTENERS)
            mr_stats_add(&w->stats->listeners[listener].proxy_protocol_refused, 1);
        mr_worker_unlease(w, lease);
        free(c);
        evutil_closesocket(fd);
        return;
    }
    /* The snapshot current at accept gives this connection its limits. */
    limits.max_head_bytes = lease->snap->limits.max_head_bytes;
    limits.max_headers = lease->snap->limits.max_headers;
    limits.max_uri_bytes = lease->snap->limits.max_uri_bytes;
    c->magic = CLIENT_MAGIC;
    c->w = w;
    c->listener = listener;
    c->tls = l->tls_server != NULL;
    memcpy(&c->peer.ss, peer, (size_t)peer_len);
    c->peer.len = (socklen_t)peer_len;
    c->local.len = sizeof(c->local.ss);
    if (getsockname(fd, (struct sockaddr *)&c->local.ss, &c->local.len) != 0)
        c->local.len = 0;
    c->conn = mr_conn_new(w->base, fd);
    c->timer = evtimer_new(w->base, on_client_timer, c);
    c->up_timer = evtimer_new(w->base, on_upstream_timer, c);
    c->req_parser = mr_http1_new(MR_HTTP1_REQUEST, &limits);
    /* An upstream head may be as large as a client's. */
    c->resp_parser = mr_http1_new(MR_HTTP1_RESPONSE, &limits);
    if (c->conn == NULL || c->timer == NULL || c->up_timer == NULL || c->req_parser == NULL ||
        c->resp_parser == NULL) {
        mr_conn_free(c->conn);
        if (c->timer != NULL)
            event_free(c->timer);
        if (c->up_timer != NULL)
            event_free(c->up_timer);
        mr_http1_free(c->req_parser);
        mr_http1_free(c->resp_parser);
        free(c);
        mr_worker_unlease(w, lease);
        return;
    }
    c->next = w->clients;
    if (w->clients != NULL)
        w->clients->prev = c;
    w->clients = c;
    w->n_clients++;
    mr_stats_add(&w->stats->client_connections, 1);
    if (l->proxy_protocol) {
        c->state = CS_PREFACE;
        c->preface_reader = calloc(1, sizeof(*c->preface_reader));
        c->preface = event_new(w->base, c->conn->fd, EV_READ | EV_PERSIST, on_preface, c);
        started = c->preface_reader != NULL && c->preface != NULL &&
                  event_add(c->preface, NULL) == 0;
    } else {
        started = start_client(c, lease->snap);
    }
    /* No request yet: the timer closes silently (a silent connection, a
     * slow PROXY header or TLS handshake); the first byte of a request
     * restarts it as the header timer. */
    arm_timer(c->timer, lease->snap->timeouts.client_header_ms);
    mr_worker_unlease(w, lease);
    if (!started)
        free_client(c);
}

void mr_proxy_drain(struct mr_worker *w)
{
    struct mr_client *c = w->clients;

    while (c != NULL) {
        struct mr_client *next = c->next;
        if (c->state == CS_IDLE || c->state == CS_PREFACE)
            free_client(c);
        else
            c->close_after = true;
        c = next;
    }
}

void mr_proxy_close_all(struct mr_worker *w)
{
    while (w->clients != NULL)
        free_client(w->clients);
}
