/* router/proxy.c: see proxy.h. */
#include "router/proxy.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "common/proxyproto.h"
#include "health/passive.h"
#include "router/accesslog.h"
#include "router/chunked.h"
#include "router/clientaddr.h"
#include "router/conn.h"
#include "router/cookie.h"
#include "router/exchange.h"
#include "router/headers.h"
#include "router/http1.h"
#include "router/lease.h"
#include "router/pick.h"
#include "router/redirect.h"
#include "router/stats.h"
#include "router/tls.h"
#include "router/tunnel.h"
#include "router/upstream.h"
#include "router/worker.h"

#define CLIENT_MAGIC 0xc11e47a5U

/* Pipelined bytes read ahead while a request is in flight. */
#define PIPELINE_MAX (64 * 1024)

enum client_state {
    CS_PREFACE, /* reading the PROXY protocol header */
    CS_IDLE,    /* between requests (or before the first byte): idle timer */
    CS_HEAD,    /* part of a head has arrived: the header timer runs */
    CS_ACTIVE,  /* a request is being forwarded or answered */
    CS_CLOSING, /* flushing the last response, then close */
    CS_TUNNEL,  /* upgraded: bytes pass both ways as they are */
};

struct mr_client {
    unsigned magic;
    struct mr_worker *w;
    struct mr_client *prev, *next;
    struct mr_conn *conn;
    struct mr_sockaddr peer;  /* the socket's peer, or the PROXY header's source */
    struct mr_sockaddr local; /* where it connected to, or the PROXY header's destination */
    size_t listener;          /* index into snapshot->listeners */
    bool tls;                 /* the listener terminates TLS */
    struct event *preface;    /* reads the PROXY header (CS_PREFACE) */
    struct mr_proxyproto_reader *preface_reader;
    struct mr_http1 *req_parser, *resp_parser;
    struct event *timer;  /* header / idle / stalled-write timer */
    struct event *resume; /* serves a pipelined request from the loop */
    enum client_state state;
    bool close_after; /* no keep-alive after the current response */
    bool peer_closed; /* the client half-closed: answer what came, then close */

    struct mr_exchange ex; /* the exchange in flight (state CS_ACTIVE) */

    /* A connection opened with a PROXY header (send_proxy) speaks for one
     * client: kept here between requests instead of the shared pool. */
    struct mr_conn *private_up;
    struct mr_sockaddr private_endpoint, private_client;
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
    return c->ex.lease != NULL ? c->ex.lease->snap : c->w->lease->snap;
}

/* Notes upstream progress; the timer checks it lazily instead of being
 * re-armed on every read. */
static void upstream_progress(struct mr_client *c)
{
    event_base_gettimeofday_cached(c->w->base, &c->ex.up_activity);
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
    if (c->ex.awaiting == on)
        return;
    c->ex.awaiting = on;
    if (on)
        mr_lease_await(c->ex.lease, c->ex.endpoint, mr_passive_now_ms());
    else
        mr_lease_await_end(c->ex.lease, c->ex.endpoint, answered, mr_passive_now_ms());
}

/* Forgets the upstream connection, pooling it when reusable: in the shared
 * pool, or for this client alone when it began with the client's PROXY
 * header. The endpoint stops counting the exchange as in flight, whether a
 * connection was made or the connect was refused at once. */
static void release_upstream(struct mr_client *c, bool reusable)
{
    if (!c->ex.counted)
        return;
    c->ex.counted = false;
    await_head(c, false, false);
    mr_lease_endpoint_ended(c->ex.lease, c->ex.endpoint);
    if (c->ex.up == NULL)
        return;
    evtimer_del(c->ex.up_timer);
    if (reusable && !c->w->stopping && c->ex.endpoint->cluster->send_proxy != MR_SEND_PROXY_NONE) {
        drop_private_upstream(c);
        c->private_up = c->ex.up;
        c->private_endpoint = c->ex.endpoint->addr;
        c->private_client = c->ex.client_addr;
        c->ex.up->out_low = 0;
        mr_conn_setcb(c->ex.up, on_private_read, NULL, on_private_event, c);
    } else if (reusable && !c->w->stopping) {
        mr_upstream_pool_put(c->w->pool, &c->ex.endpoint->addr, c->ex.up,
                             c->ex.lease->snap->timeouts.upstream_idle_ms);
    } else {
        mr_conn_free(c->ex.up);
    }
    c->ex.up = NULL;
}

static int64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void write_log_line(struct mr_client *c, int64_t took_ns);

/* Counts the finished exchange and writes its access log line, once. */
static void log_exchange(struct mr_client *c)
{
    int64_t took_ns;

    if (!c->ex.unlogged)
        return;
    c->ex.unlogged = false;
    took_ns = monotonic_ns() - c->ex.started_ns;
    mr_exchange_count_end(&c->ex, c->w->stats, took_ns);
    if (mr_accesslog_enabled() && c->w->log != NULL)
        write_log_line(c, took_ns);
}

static void write_log_line(struct mr_client *c, int64_t took_ns)
{
    const struct mr_decision *d = &c->ex.decision;
    char client[64];
    struct mr_accesslog_entry e = {
        .client = client,
        .method = c->ex.log_request,
        .method_len = c->ex.log_method_len,
        .path = c->ex.log_request != NULL ? c->ex.log_request + c->ex.log_method_len + 1 : NULL,
        .path_len = c->ex.log_target_len,
        .status = c->ex.status,
        .bytes_in = c->ex.bytes_in,
        .bytes_out = c->ex.bytes_out,
        .took_ns = took_ns,
        .decision = mr_pick_reason_name(d->reason),
        .region = d->cluster != NULL ? d->region->name : NULL,
        .cluster = d->cluster != NULL ? d->cluster->name : NULL,
        .endpoint = c->ex.endpoint != NULL ? c->ex.endpoint->address : NULL,
        .country = d->located && d->loc.found ? d->loc.country : NULL,
        .generation = client_snap(c)->generation,
        .error = mr_cause_name(c->ex.cause),
    };

    event_base_gettimeofday_cached(c->w->base, &e.time);
    if (mr_netaddr_host((const struct sockaddr *)&c->ex.client_addr.ss, client, sizeof(client)) < 0)
        client[0] = '\0';
    mr_accesslog_format(mr_accesslog_buffer_lines(c->w->log), &e);
    mr_accesslog_buffer_commit(c->w->log);
}

static void end_exchange(struct mr_client *c)
{
    log_exchange(c);
    release_upstream(c, false);
    if (c->ex.lease != NULL) {
        mr_worker_unlease(c->w, c->ex.lease);
        c->ex.lease = NULL;
    }
    c->ex.endpoint = NULL;
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
    event_free(c->ex.up_timer);
    if (c->resume != NULL)
        event_free(c->resume);
    mr_http1_free(c->req_parser);
    mr_http1_free(c->resp_parser);
    mr_exchange_free(&c->ex);
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

/* Answers with the cause's status, unless the response has begun (then the
 * client sees it cut), and closes. May free c. */
static void reply_error(struct mr_client *c, enum mr_cause cause)
{
    int status = mr_cause_status(cause);
    const char *reason = mr_http1_reason(status);

    c->ex.cause = cause;
    if (!c->ex.resp_started) {
        int n = evbuffer_add_printf(c->conn->out,
                                    "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
                                    "Content-Length: %zu\r\n%sConnection: close\r\n\r\n%d %s\n",
                                    status, reason, strlen(reason) + 5,
                                    status == 503 ? "Retry-After: 5\r\n" : "", status, reason);
        c->ex.status = status;
        c->ex.bytes_out += n > 0 ? (uint64_t)n : 0;
    }
    log_exchange(c);
    close_when_flushed(c);
}

/* reply_error() for an exchange in flight: its upstream connection goes
 * now, its lease when the client does. May free c. */
static void fail_exchange(struct mr_client *c, enum mr_cause cause)
{
    release_upstream(c, false);
    reply_error(c, cause);
}

/* ---- request path ---------------------------------------------------- */

/* Serializes the upstream request head into c->ex.head_buf. */
static bool build_request_head(struct mr_client *c, const struct mr_http1_head *head,
                               bool peer_trusted)
{
    char peer[64];
    int peer_len = mr_netaddr_host((const struct sockaddr *)&c->peer.ss, peer, sizeof(peer));
    struct mr_forward fwd = {
        .http10 = c->ex.http10,
        .peer_trusted = peer_trusted,
        .peer = peer,
        .peer_len = peer_len > 0 ? (size_t)peer_len : 0,
        .proto = c->tls ? "https" : "http",
        .upgrade = c->ex.upgrade,
        .target = head->path,
        .target_len = head->path_len,
        .host = head->host,
        .host_len = head->host_len,
    };

    if (!mr_exchange_head_reserve(&c->ex, mr_headers_request_size(head, &fwd)))
        return false;
    c->ex.head_len = mr_headers_request(c->ex.head_buf, head, &fwd);
    return true;
}

/* What the data path saw of the exchange's endpoint, for passive health. */
static void endpoint_failed(struct mr_client *c, enum mr_passive_reason why)
{
    mr_passive_failure(c->ex.lease->snap, c->ex.endpoint, why, mr_passive_now_ms());
}

static int64_t now_s(const struct mr_client *c)
{
    struct timeval now;
    event_base_gettimeofday_cached(c->w->base, &now);
    return (int64_t)now.tv_sec;
}

/* The upstream failed before any response byte (why). May free c. */
static void upstream_failed(struct mr_client *c, enum mr_cause cause, enum mr_passive_reason why)
{
    const struct mr_endpoint *failed = c->ex.endpoint;
    /* A stale pooled connection says nothing of the endpoint; a timeout does. */
    bool was_reused = c->ex.up_reused && why != MR_PASSIVE_TIMEOUT;
    bool connect_failed = c->ex.phase == MR_EXCHANGE_CONNECTING;

    if (connect_failed)
        mr_lease_connect_failed(c->ex.lease, failed);
    endpoint_failed(c, why);
    release_upstream(c, false);
    if (mr_exchange_may_retry(&c->ex, connect_failed) &&
        mr_exchange_pick_retry(&c->ex, failed, was_reused, now_s(c), mr_worker_random(c->w))) {
        mr_stats_add(&c->w->stats->retries, 1);
        connect_upstream(c);
        return;
    }
    c->ex.endpoint = failed;
    fail_exchange(c, cause);
}

/* Moves request body bytes from the client to the upstream. May free c. */
static void pump_request_body(struct mr_client *c)
{
    struct evbuffer *in = c->conn->in;
    struct evbuffer *out = c->ex.up->out;
    size_t queued = evbuffer_get_length(out);

    if (c->ex.req_body == MR_BODY_LENGTH) {
        size_t n = evbuffer_get_length(in);
        if (n > c->ex.req_left)
            n = (size_t)c->ex.req_left;
        if (n > 0) {
            evbuffer_remove_buffer(in, out, n);
            c->ex.req_left -= n;
            c->ex.bytes_in += n;
            c->ex.body_forwarded = true;
        }
        c->ex.req_done = c->ex.req_left == 0;
    } else if (c->ex.req_body == MR_BODY_CHUNKED) {
        size_t used;
        int r = mr_chunked_relay(&c->ex.req_chunked, in, out, &used);
        if (r == MR_CHUNKED_BAD) {
            /* Only canonical chunks went out, but the origin has part of a
             * body: that connection is spent. */
            fail_exchange(c, MR_CAUSE_BAD_REQUEST_BODY);
            return;
        }
        c->ex.bytes_in += used;
        c->ex.body_forwarded |= used > 0;
        c->ex.req_done = r == MR_CHUNKED_DONE;
    } else {
        c->ex.req_done = true;
    }
    mr_exchange_keep_for_retry(&c->ex, out, queued, c->ex.lease->snap->limits.retry_body_bytes);
    if (c->ex.body_forwarded)
        upstream_progress(c);
    mr_conn_flush(c->ex.up);
    if (!c->ex.req_done && evbuffer_get_length(out) >= MR_CONN_OUT_HIGH) {
        mr_conn_read_stop(c->conn);
        c->ex.up->out_low = MR_CONN_OUT_LOW;
    }
}

static void on_upstream_timer(evutil_socket_t fd, short events, void *arg)
{
    struct mr_client *c = arg;
    const struct mr_snapshot *snap = c->ex.lease->snap;
    struct timeval now, idle;
    int limit_ms;
    (void)fd;
    (void)events;

    if (c->ex.phase == MR_EXCHANGE_CONNECTING) {
        upstream_failed(c, MR_CAUSE_CONNECT_TIMEOUT, MR_PASSIVE_CONNECT);
        return;
    }
    limit_ms = snap->timeouts.upstream_response_ms;
    event_base_gettimeofday_cached(c->w->base, &now);
    timersub(&now, &c->ex.up_activity, &idle);
    if (idle.tv_sec * 1000 + idle.tv_usec / 1000 < limit_ms) {
        /* There was progress since it was armed: wait out the rest. */
        arm_timer(c->ex.up_timer, limit_ms - (int)(idle.tv_sec * 1000 + idle.tv_usec / 1000));
        return;
    }
    if (c->ex.phase == MR_EXCHANGE_WAITING) {
        upstream_failed(c, MR_CAUSE_RESPONSE_TIMEOUT, MR_PASSIVE_TIMEOUT);
        return;
    }
    /* Stalled mid-body: the client sees a truncated message. */
    c->close_after = true;
    fail_exchange(c, MR_CAUSE_BODY_TIMEOUT);
}

/* The PROXY header that opens a connection to a send_proxy cluster: the
 * client as meridian sees it, and the address it connected to. */
static void add_proxy_header(struct mr_client *c, struct evbuffer *out, enum mr_send_proxy version)
{
    unsigned char header[128]; /* v1 <= 107 bytes, v2 without TLVs <= 52 */
    size_t len;

    if (version == MR_SEND_PROXY_V1)
        len = mr_proxyproto_build_v1((char *)header, sizeof(header),
                                     (const struct sockaddr *)&c->ex.client_addr.ss,
                                     (const struct sockaddr *)&c->local.ss);
    else
        len = mr_proxyproto_build_v2(header, sizeof(header),
                                     (const struct sockaddr *)&c->ex.client_addr.ss,
                                     (const struct sockaddr *)&c->local.ss);
    evbuffer_add(out, header, len);
}

static void connect_upstream(struct mr_client *c)
{
    const struct mr_snapshot *snap = c->ex.lease->snap;
    enum mr_send_proxy send_proxy;
    struct mr_conn *up;

    c->ex.attempts++;
    c->ex.counted = true;
    mr_lease_endpoint_started(c->ex.lease, c->ex.endpoint);
    await_head(c, true, false);
    send_proxy = c->ex.endpoint->cluster->send_proxy;
    if (send_proxy == MR_SEND_PROXY_NONE) {
        up = mr_upstream_pool_take(c->w->pool, &c->ex.endpoint->addr);
    } else if (c->private_up != NULL &&
               mr_netaddr_equal(&c->private_endpoint, &c->ex.endpoint->addr) &&
               mr_netaddr_equal(&c->private_client, &c->ex.client_addr)) {
        up = c->private_up;
        c->private_up = NULL;
    } else {
        drop_private_upstream(c);
        up = NULL;
    }
    c->ex.up_reused = up != NULL;
    if (up == NULL) {
        up = mr_conn_connect(c->w->base, &c->ex.endpoint->addr);
        if (up == NULL) {
            /* Refused at once (loopback): as a failed connect. */
            c->ex.phase = MR_EXCHANGE_CONNECTING;
            upstream_failed(c, MR_CAUSE_CONNECT_FAILED, MR_PASSIVE_CONNECT);
            return;
        }
        c->ex.phase = MR_EXCHANGE_CONNECTING;
        arm_timer(c->ex.up_timer, snap->timeouts.upstream_connect_ms);
        if (send_proxy != MR_SEND_PROXY_NONE)
            add_proxy_header(c, up->out, send_proxy);
    } else {
        c->ex.phase = MR_EXCHANGE_WAITING;
        upstream_progress(c);
        arm_timer(c->ex.up_timer, snap->timeouts.upstream_response_ms);
    }
    c->ex.up = up;
    mr_conn_setcb(up, on_upstream_read, on_upstream_drain, on_upstream_event, c);
    mr_conn_read_start(up);
    evbuffer_add(up->out, c->ex.head_buf, c->ex.head_len);
    /* A retry: the body forwarded so far goes again (there is no second
     * retry to keep it for), then what follows. */
    if (c->ex.sent_body != NULL)
        evbuffer_add_buffer(up->out, c->ex.sent_body);
    pump_request_body(c);
}

/* The cluster named by a valid session cookie, into buf; NULL when there is
 * none. A cookie that fails to verify is counted and ignored. */
static const char *cookie_cluster(struct mr_client *c, const struct mr_http1_head *head,
                                  int64_t now, char *buf, size_t cap)
{
    const struct mr_snapshot *snap = c->ex.lease->snap;

    for (size_t i = 0; i < head->n_headers; i++) {
        const struct mr_http1_header *h = &head->headers[i];
        const char *value;
        size_t len;
        if ((h->name[0] | 0x20) != 'c' || !mr_http1_name_is(h, "cookie"))
            continue;
        value = mr_cookie_find(h->value, h->value_len, snap->session.cookie, &len);
        if (value == NULL)
            continue;
        if (c->ex.lease->cookie_keys != NULL &&
            mr_cookie_verify(c->ex.lease->cookie_keys, value, len, now, buf, cap) ==
                MR_COOKIE_VALID)
            return buf;
        mr_stats_add(&c->w->stats->bad_cookies, 1);
        return NULL;
    }
    return NULL;
}

static void next_request(struct mr_client *c);
static const struct mr_cookie_line *cookie_line(struct mr_client *c);

/* Answers the exchange with a redirect of our own (no body): 307 to url,
 * or without one 308 to https on https_port; with the session cookie when
 * the decision was new. Goes on with the next request. May free c. */
static void reply_redirect(struct mr_client *c, const struct mr_http1_head *head, const char *url,
                           int https_port)
{
    const struct mr_cookie_line *cookie = c->ex.set_cookie ? cookie_line(c) : NULL;
    const char *cookie_text = cookie != NULL ? cookie->text : NULL;
    size_t cookie_len = cookie != NULL ? cookie->len : 0;
    size_t before = evbuffer_get_length(c->conn->out);
    bool close;

    c->ex.req_done = c->ex.req_body == MR_BODY_NONE; /* a body would have to be read: close */
    close = c->close_after || !c->ex.req_done;
    if (url != NULL) {
        mr_redirect_to_url(c->conn->out, url, head, cookie_text, cookie_len, close);
        c->ex.status = 307;
    } else if (mr_redirect_to_https(c->conn->out, https_port, head, cookie_text, cookie_len,
                                    close) == 0) {
        c->ex.status = 308;
    } else {
        reply_error(c, MR_CAUSE_NO_HOST);
        return;
    }
    /* The head's fields point into the input: it goes only now. */
    evbuffer_drain(c->conn->in, head->head_len);
    c->ex.resp_started = true;
    c->ex.bytes_out += evbuffer_get_length(c->conn->out) - before;
    mr_conn_flush(c->conn);
    log_exchange(c);
    next_request(c);
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
    mr_exchange_begin(&c->ex, head->head_len, &c->peer, monotonic_ns());
    if (mr_accesslog_enabled())
        mr_exchange_keep_for_log(&c->ex, head);
    c->ex.lease = mr_worker_lease(c->w);
    if (c->ex.lease == NULL) {
        reply_error(c, MR_CAUSE_NO_SNAPSHOT);
        return;
    }
    c->ex.method = head->method;
    c->ex.http10 = head->version_minor == 0;
    c->ex.req_body = head->body;
    c->ex.req_left = head->content_length;
    mr_chunked_init(&c->ex.req_chunked);
    if (!head->keep_alive || c->ex.http10 || c->w->stopping)
        c->close_after = true;
    if (c->listener >= c->ex.lease->snap->n_listeners) {
        reply_error(c, MR_CAUSE_LISTENER_GONE);
        return;
    }
    listener = &c->ex.lease->snap->listeners[c->listener];
    if (listener->redirect_https && !c->tls) {
        reply_redirect(c, head, NULL, listener->https_port);
        return;
    }
    mode = mr_redirect_mode(c->ex.lease->snap, listener, head);
    c->ex.upgrade = mode == MR_MODE_PROXY && wants_tunnel(head);

    peer_trusted = mr_clientaddr_resolve(&c->ex.lease->snap->trusted_proxies, &c->peer, head,
                                         &c->ex.client_addr);
    in.addr = (const struct sockaddr *)&c->ex.client_addr.ss;
    in.now = now_s(c);
    in.cookie_cluster = cookie_cluster(c, head, in.now, sticky, sizeof(sticky));
    in.exclude = NULL;
    in.random = mr_worker_random(c->w);
    if (mr_pick_session(c->ex.lease->snap, &in, &c->ex.decision) == MR_PICK_NONE) {
        fail_exchange(c, MR_CAUSE_NO_CLUSTER);
        return;
    }
    c->ex.set_cookie = c->ex.decision.reason != MR_PICK_STICKY;
    mr_exchange_count_decision(&c->ex);
    if (mode == MR_MODE_REDIRECT) {
        const char *url = c->ex.decision.cluster->public_url;
        if (url == NULL) {
            fail_exchange(c, MR_CAUSE_NO_PUBLIC_URL); /* the configuration check makes this
                                                         unreachable */
            return;
        }
        reply_redirect(c, head, url, 0);
        return;
    }
    c->ex.endpoint = mr_lease_pick_endpoint(c->ex.lease, c->ex.decision.cluster, NULL);
    if (c->ex.endpoint == NULL) {
        fail_exchange(c, MR_CAUSE_NO_ENDPOINT);
        return;
    }
    if (!build_request_head(c, head, peer_trusted)) {
        fail_exchange(c, MR_CAUSE_NO_MEMORY);
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
        mr_exchange_begin(&c->ex, evbuffer_get_length(c->conn->in), &c->peer, monotonic_ns());
        reply_error(c, mr_cause_of_head(r));
        return;
    }
    start_exchange(c, &head);
}

static void on_client_read(struct mr_conn *conn, void *arg)
{
    struct mr_client *c = arg;

    switch (c->state) {
    case CS_IDLE:
    case CS_HEAD: read_request(c); return;
    case CS_ACTIVE:
        if (!c->ex.req_done && c->ex.up != NULL) {
            pump_request_body(c);
        } else if (c->ex.req_done && evbuffer_get_length(conn->in) >= PIPELINE_MAX) {
            /* Pipelined requests wait their turn without growing memory. */
            mr_conn_read_stop(conn);
        }
        return;
    case CS_TUNNEL: tunnel_pump(c, conn, c->ex.up); return;
    case CS_PREFACE:
    case CS_CLOSING: return;
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
    if (!c->ex.req_done)
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
    bool reusable = c->ex.resp_keep_alive && c->ex.req_done &&
                    c->ex.resp_body != MR_BODY_UNTIL_EOF &&
                    evbuffer_get_length(c->ex.up->in) == 0 &&
                    evbuffer_get_length(c->ex.up->out) == 0;

    mr_conn_flush(c->conn);
    log_exchange(c);
    release_upstream(c, reusable);
    next_request(c);
}

/* The Set-Cookie line for the exchange's cluster, signed at most once per
 * second per cluster and worker; NULL when signing failed. */
static const struct mr_cookie_line *cookie_line(struct mr_client *c)
{
    const struct mr_snapshot *snap = c->ex.lease->snap;
    struct mr_cookie_line *line = mr_lease_cookie_line(c->ex.lease, c->ex.decision.cluster, c->tls);
    int64_t now = now_s(c);
    char value[MR_COOKIE_VALUE_MAX];
    size_t value_len;

    if (line->issued_s == now && line->len > 0)
        return line;
    value_len = mr_cookie_sign(c->ex.lease->cookie_keys, c->ex.decision.cluster->name, now,
                               snap->session.max_age_s, value, sizeof(value));
    line->len = value_len > 0 ? mr_cookie_set_header(snap, value, value_len, c->tls, line->text,
                                                     sizeof(line->text))
                              : 0;
    line->issued_s = now;
    return line->len > 0 ? line : NULL;
}

/* Writes the client's response head from the upstream's, with the session
 * cookie when the decision was new; upgrade keeps a 101's Upgrade. */
static void send_response_head(struct mr_client *c, const struct mr_http1_head *head, bool upgrade)
{
    const struct mr_cookie_line *cookie = c->ex.set_cookie ? cookie_line(c) : NULL;
    size_t extra_len = cookie != NULL ? cookie->len : 0;
    struct evbuffer_iovec vec[1];

    if (evbuffer_reserve_space(c->conn->out, (ev_ssize_t)mr_headers_response_size(head, extra_len),
                               vec, 1) < 1) {
        c->close_after = true;
        return;
    }
    vec[0].iov_len = mr_headers_response(vec[0].iov_base, head, c->close_after, upgrade,
                                         cookie != NULL ? cookie->text : NULL, extra_len);
    c->ex.bytes_out += vec[0].iov_len;
    c->ex.status = head->status;
    evbuffer_commit_space(c->conn->out, vec, 1);
    c->ex.resp_started = true;
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
    struct evbuffer *in = c->ex.up->in;
    struct evbuffer *out = c->conn->out;
    bool done = false;

    switch (c->ex.resp_body) {
    case MR_BODY_LENGTH: {
        size_t n = evbuffer_get_length(in);
        if (n > c->ex.resp_left)
            n = (size_t)c->ex.resp_left;
        evbuffer_remove_buffer(in, out, n);
        c->ex.resp_left -= n;
        c->ex.bytes_out += n;
        done = c->ex.resp_left == 0;
        break;
    }
    case MR_BODY_CHUNKED: {
        size_t before = evbuffer_get_length(out), used;
        int r = mr_chunked_relay(&c->ex.resp_chunked, in, out, &used);
        c->ex.bytes_out += evbuffer_get_length(out) - before;
        if (r == MR_CHUNKED_BAD) {
            /* The client sees a body without its last chunk: truncated. */
            mr_stats_add(&c->w->stats->bad_response_bodies, 1);
            c->close_after = true;
            fail_exchange(c, MR_CAUSE_BAD_RESPONSE_BODY);
            return;
        }
        done = r == MR_CHUNKED_DONE;
        break;
    }
    case MR_BODY_UNTIL_EOF:
        c->ex.bytes_out += evbuffer_get_length(in);
        evbuffer_add_buffer(out, in);
        break;
    case MR_BODY_NONE: done = true; break;
    }
    if (done) {
        finish_response(c);
        return;
    }
    mr_conn_flush(c->conn);
    if (evbuffer_get_length(out) >= MR_CONN_OUT_HIGH) {
        mr_conn_read_stop(c->ex.up);
        c->conn->out_low = MR_CONN_OUT_LOW;
        /* A client that stops reading is dropped after client_idle_ms. */
        arm_timer(c->timer, c->ex.lease->snap->timeouts.client_idle_ms);
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

/* Moves what one side sent to the other, as it is, counting it. */
static void tunnel_pump(struct mr_client *c, struct mr_conn *from, struct mr_conn *to)
{
    size_t n = mr_tunnel_pump(from, to);

    if (n == 0)
        return;
    if (from == c->conn)
        c->ex.bytes_in += n;
    else
        c->ex.bytes_out += n;
    upstream_progress(c);
}

/* A hard drain of the tunnel's cluster in the current snapshot, past its
 * deadline (or without one), ends it; soft drains never do. */
static bool tunnel_drained(struct mr_client *c)
{
    struct mr_lease *now_lease = mr_worker_lease(c->w);
    bool drained;

    if (now_lease == NULL)
        return false;
    drained = mr_tunnel_drained(now_lease->snap, c->ex.decision.cluster->name, now_s(c));
    mr_worker_unlease(c->w, now_lease);
    return drained;
}

static void tunnel_check(struct mr_client *c)
{
    struct timeval now, idle;
    int next_ms;

    event_base_gettimeofday_cached(c->w->base, &now);
    timersub(&now, &c->ex.up_activity, &idle);
    next_ms = mr_tunnel_next_check_ms((int64_t)idle.tv_sec * 1000 + idle.tv_usec / 1000,
                                      c->ex.lease->snap->timeouts.tunnel_idle_ms);
    if (next_ms == 0 || tunnel_drained(c)) {
        end_tunnel(c);
        return;
    }
    arm_timer(c->timer, next_ms);
}

/* The origin answered 101 to an upgrade: from now on bytes pass both ways
 * unchanged. May free c. */
static void start_tunnel(struct mr_client *c, const struct mr_http1_head *head)
{
    send_response_head(c, head, true);
    evbuffer_drain(c->ex.up->in, head->head_len);
    evtimer_del(c->ex.up_timer);
    c->state = CS_TUNNEL;
    c->ex.phase = MR_EXCHANGE_BODY;
    c->ex.req_done = true;
    mr_stats_add(&c->w->stats->tunnels, 1);
    mr_stats_add(&c->w->stats->tunnels_total, 1);
    mr_conn_read_start(c->conn);
    mr_conn_flush(c->conn);
    upstream_progress(c);
    arm_timer(c->timer, mr_tunnel_next_check_ms(0, c->ex.lease->snap->timeouts.tunnel_idle_ms));
    /* Bytes that came right behind either head. */
    tunnel_pump(c, c->ex.up, c->conn);
    tunnel_pump(c, c->conn, c->ex.up);
}

static void on_upstream_read(struct mr_conn *conn, void *arg)
{
    struct mr_client *c = arg;

    if (c->state == CS_TUNNEL) {
        tunnel_pump(c, conn, c->conn);
        return;
    }
    upstream_progress(c);
    if (!c->ex.resp_seen && evbuffer_get_length(conn->in) > 0) {
        /* Sent for good: the copy kept for a retry goes. */
        c->ex.resp_seen = true;
        if (c->ex.sent_body != NULL)
            evbuffer_drain(c->ex.sent_body, evbuffer_get_length(c->ex.sent_body));
    }
    while (c->ex.phase == MR_EXCHANGE_WAITING) {
        struct mr_http1_head head;
        int r = mr_http1_parse_head(c->resp_parser, conn->in, c->ex.method == MR_METHOD_HEAD,
                                    &head);
        if (r == MR_HTTP1_AGAIN)
            return;
        if (r <= 0 && head.status == 101 && c->ex.upgrade) {
            start_tunnel(c, &head);
            return;
        }
        if (r > 0 || head.status == 101) {
            endpoint_failed(c, MR_PASSIVE_BAD_RESPONSE);
            c->close_after = true;
            fail_exchange(c, MR_CAUSE_BAD_RESPONSE_HEAD);
            return;
        }
        mr_passive_success(c->ex.endpoint);
        await_head(c, false, true);
        if (head.status < 200) {
            /* Interim (100 Continue, 103): rewritten like any response
             * head, and never to an HTTP/1.0 client (RFC 9110 15.2). */
            if (!c->ex.http10)
                send_interim(c, &head);
            evbuffer_drain(conn->in, head.head_len);
            mr_conn_flush(c->conn);
            mr_http1_reset(c->resp_parser);
            continue;
        }
        c->ex.resp_body = head.body;
        c->ex.resp_left = head.content_length;
        mr_chunked_init(&c->ex.resp_chunked);
        c->ex.resp_keep_alive = head.keep_alive && !c->ex.http10;
        if (head.body == MR_BODY_UNTIL_EOF)
            c->close_after = true;
        send_response_head(c, &head, false);
        evbuffer_drain(conn->in, head.head_len);
        c->ex.phase = MR_EXCHANGE_BODY;
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
    if (c->state == CS_ACTIVE && !c->ex.req_done) {
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
        c->ex.phase = MR_EXCHANGE_WAITING;
        upstream_progress(c);
        arm_timer(c->ex.up_timer, c->ex.lease->snap->timeouts.upstream_response_ms);
        return;
    }
    if (c->ex.phase == MR_EXCHANGE_CONNECTING) {
        upstream_failed(c, MR_CAUSE_CONNECT_FAILED,
                        MR_PASSIVE_CONNECT); /* refused or unreachable */
        return;
    }
    if (c->ex.phase == MR_EXCHANGE_WAITING) {
        /* Closed before a whole head: retry only if nothing came at all. */
        if (evbuffer_get_length(conn->in) == 0 && !c->ex.resp_seen) {
            upstream_failed(c, MR_CAUSE_UPSTREAM_CLOSED, MR_PASSIVE_RESET);
            return;
        }
        endpoint_failed(c, MR_PASSIVE_RESET);
        c->close_after = true;
        fail_exchange(c, MR_CAUSE_UPSTREAM_CLOSED);
        return;
    }
    if (what == MR_CONN_EOF && c->ex.resp_body == MR_BODY_UNTIL_EOF) {
        c->ex.bytes_out += evbuffer_get_length(conn->in);
        evbuffer_add_buffer(c->conn->out, conn->in);
        c->ex.req_done = true;
        c->ex.resp_keep_alive = false;
        finish_response(c);
        return;
    }
    /* Cut mid-body: the client must see a truncated message, not a whole one. */
    c->close_after = true;
    fail_exchange(c, MR_CAUSE_UPSTREAM_CUT);
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
        mr_conn_read_start(c->ex.up);
        return;
    }
    if (c->state == CS_ACTIVE && c->ex.up != NULL && c->ex.phase == MR_EXCHANGE_BODY) {
        evtimer_del(c->timer);
        mr_conn_read_start(c->ex.up);
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
    if (what == MR_CONN_EOF && ((c->state == CS_ACTIVE && c->ex.req_done) ||
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
        reply_error(c, MR_CAUSE_HEAD_TIMEOUT);
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
        const struct mr_listener *l = c->listener < snap->n_listeners
                                          ? &snap->listeners[c->listener]
                                          : NULL;
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
    c->ex.up_timer = evtimer_new(w->base, on_upstream_timer, c);
    c->req_parser = mr_http1_new(MR_HTTP1_REQUEST, &limits);
    /* An upstream head may be as large as a client's. */
    c->resp_parser = mr_http1_new(MR_HTTP1_RESPONSE, &limits);
    if (c->conn == NULL || c->timer == NULL || c->ex.up_timer == NULL || c->req_parser == NULL ||
        c->resp_parser == NULL) {
        mr_conn_free(c->conn);
        if (c->timer != NULL)
            event_free(c->timer);
        if (c->ex.up_timer != NULL)
            event_free(c->ex.up_timer);
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

const struct mr_worker_conns mr_proxy_conns = {
    .accept = mr_proxy_accept,
    .drain = mr_proxy_drain,
    .close_all = mr_proxy_close_all,
};
