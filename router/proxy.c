/* router/proxy.c: see proxy.h. */
#include "router/proxy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "common/log.h"
#include "router/clientaddr.h"
#include "router/conn.h"
#include "router/headers.h"
#include "router/http1.h"
#include "router/pick.h"
#include "router/upstream.h"
#include "router/worker.h"

#define CLIENT_MAGIC 0xc11e47a5U

/* Back-pressure: stop reading one side while the other side's output holds
 * this much, resume when it is down to the low mark. */
#define BUFFER_HIGH (512 * 1024)
#define BUFFER_LOW (128 * 1024)
/* Pipelined bytes read ahead while a request is in flight. */
#define PIPELINE_MAX (64 * 1024)

enum client_state {
    CS_IDLE,    /* between requests (or before the first byte): idle timer */
    CS_HEAD,    /* part of a head has arrived: the header timer runs */
    CS_ACTIVE,  /* a request is being forwarded or answered */
    CS_CLOSING, /* flushing the last response, then close */
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
    struct mr_sockaddr peer;
    struct mr_http1 *req_parser, *resp_parser;
    struct event *timer;       /* header / idle / stalled-write timer */
    struct event *resume;      /* serves a pipelined request from the loop */
    enum client_state state;
    bool close_after;          /* no keep-alive after the current response */

    /* The exchange in flight (state CS_ACTIVE). */
    struct mr_lease *lease;
    const struct mr_endpoint *endpoint;
    struct mr_decision decision;
    enum mr_http1_method method;
    bool http10;
    enum mr_http1_body req_body;
    uint64_t req_left;         /* MR_BODY_LENGTH bytes still to forward */
    bool req_done;             /* the whole request reached the upstream buffer */
    bool body_forwarded;       /* some request body byte went upstream */
    int attempts;
    char *head_buf;            /* the upstream request head, kept for a retry */
    size_t head_len, head_cap;
    struct mr_conn *up;
    bool up_reused;
    enum upstream_phase phase;
    struct event *up_timer;    /* connect / response / stall timeout */
    struct timeval up_activity;/* last progress with the upstream */
    enum mr_http1_body resp_body;
    uint64_t resp_left;
    bool resp_keep_alive;
    bool resp_started;         /* response bytes went to the client */
};

static void on_client_read(struct mr_conn *conn, void *arg);
static void on_client_drain(struct mr_conn *conn, void *arg);
static void on_client_event(struct mr_conn *conn, enum mr_conn_event what, void *arg);
static void on_upstream_read(struct mr_conn *conn, void *arg);
static void on_upstream_drain(struct mr_conn *conn, void *arg);
static void on_upstream_event(struct mr_conn *conn, enum mr_conn_event what, void *arg);
static void connect_upstream(struct mr_client *c);

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

/* Forgets the upstream connection, pooling it when reusable. */
static void release_upstream(struct mr_client *c, bool reusable)
{
    if (c->up == NULL)
        return;
    evtimer_del(c->up_timer);
    if (c->lease->outstanding[c->endpoint->index] > 0)
        c->lease->outstanding[c->endpoint->index]--;
    if (reusable && !c->w->stopping)
        mr_upstream_pool_put(c->w->pool, &c->endpoint->addr, c->up,
                             c->lease->snap->timeouts.upstream_idle_ms);
    else
        mr_conn_free(c->up);
    c->up = NULL;
}

static void end_exchange(struct mr_client *c)
{
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
    mr_conn_free(c->conn);
    event_free(c->timer);
    event_free(c->up_timer);
    if (c->resume != NULL)
        event_free(c->resume);
    mr_http1_free(c->req_parser);
    mr_http1_free(c->resp_parser);
    free(c->head_buf);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        w->clients = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    w->n_clients--;
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
        evbuffer_add_printf(c->conn->out,
                            "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
                            "Content-Length: %zu\r\n%sConnection: close\r\n\r\n%d %s\n",
                            status, reason, strlen(reason) + 5,
                            status == 503 ? "Retry-After: 5\r\n" : "", status, reason);
    }
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
        .proto = "http",
    };

    if (!head_reserve(c, mr_headers_request_size(head, &fwd)))
        return false;
    c->head_len = mr_headers_request(c->head_buf, head, &fwd);
    return true;
}

/* A request may be sent again when nothing of its body went out and its
 * method is idempotent (RFC 9110 9.2.2), or when it went on a pooled
 * connection that the origin had closed meanwhile. */
static bool may_retry(const struct mr_client *c)
{
    if (c->attempts > 1 || c->body_forwarded || c->req_body != MR_BODY_NONE)
        return false;
    switch (c->method) {
    case MR_METHOD_GET: case MR_METHOD_HEAD: case MR_METHOD_OPTIONS:
    case MR_METHOD_TRACE: case MR_METHOD_PUT: case MR_METHOD_DELETE:
        return true;
    default:
        return c->up_reused;
    }
}

/* The upstream failed before any response byte. May free c. */
static void upstream_failed(struct mr_client *c, int status)
{
    const struct mr_endpoint *failed = c->endpoint;
    bool was_reused = c->up_reused;

    release_upstream(c, false);
    if (may_retry(c) && (failed->cluster->n_endpoints > 1 || was_reused)) {
        c->endpoint = mr_pick_endpoint(failed->cluster, c->lease->snap->routing.endpoint_policy,
                                       c->lease->outstanding,
                                       &c->lease->cursors[failed->cluster->index], failed);
        connect_upstream(c);
        return;
    }
    fail_exchange(c, status);
}

/* Moves request body bytes from the client to the upstream. May free c. */
static void pump_request_body(struct mr_client *c)
{
    struct evbuffer *in = c->conn->in;
    struct evbuffer *out = c->up->out;

    if (c->req_body == MR_BODY_LENGTH) {
        size_t n = evbuffer_get_length(in);
        if (n > c->req_left)
            n = (size_t)c->req_left;
        if (n > 0) {
            evbuffer_remove_buffer(in, out, n);
            c->req_left -= n;
            c->body_forwarded = true;
        }
        c->req_done = c->req_left == 0;
    } else if (c->req_body == MR_BODY_CHUNKED) {
        while (evbuffer_get_length(in) > 0 && !c->req_done) {
            struct evbuffer_iovec vec;
            size_t used;
            int r;
            if (evbuffer_peek(in, -1, NULL, &vec, 1) < 1)
                break;
            r = mr_http1_chunked(c->req_parser, vec.iov_base, vec.iov_len, &used);
            if (r < 0) {
                /* The origin got part of a body: that connection is spent. */
                fail_exchange(c, 400);
                return;
            }
            evbuffer_remove_buffer(in, out, used);
            c->body_forwarded = true;
            c->req_done = r == 1;
        }
    } else {
        c->req_done = true;
    }
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
        upstream_failed(c, 502);
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
        fail_exchange(c, 504);
        return;
    }
    /* Stalled mid-body: the client sees a truncated message. */
    c->close_after = true;
    fail_exchange(c, 504);
}

static void connect_upstream(struct mr_client *c)
{
    const struct mr_snapshot *snap = c->lease->snap;
    struct mr_conn *up;

    c->attempts++;
    c->lease->outstanding[c->endpoint->index]++;
    up = mr_upstream_pool_take(c->w->pool, &c->endpoint->addr);
    c->up_reused = up != NULL;
    if (up == NULL) {
        up = mr_conn_connect(c->w->base, &c->endpoint->addr);
        if (up == NULL) {
            /* Refused at once (loopback): as a failed connect. */
            c->lease->outstanding[c->endpoint->index]--;
            c->up = NULL;
            if (may_retry(c) && c->endpoint->cluster->n_endpoints > 1) {
                const struct mr_endpoint *failed = c->endpoint;
                c->endpoint = mr_pick_endpoint(failed->cluster, snap->routing.endpoint_policy,
                                               c->lease->outstanding,
                                               &c->lease->cursors[failed->cluster->index],
                                               failed);
                connect_upstream(c);
                return;
            }
            fail_exchange(c, 502);
            return;
        }
        c->phase = UP_CONNECTING;
        arm_timer(c->up_timer, snap->timeouts.upstream_connect_ms);
    } else {
        c->phase = UP_WAITING;
        upstream_progress(c);
        arm_timer(c->up_timer, snap->timeouts.upstream_response_ms);
    }
    c->up = up;
    mr_conn_setcb(up, on_upstream_read, on_upstream_drain, on_upstream_event, c);
    mr_conn_read_start(up);
    evbuffer_add(up->out, c->head_buf, c->head_len);
    pump_request_body(c);
}

/* A complete, valid request head is at the start of the input. May free c. */
static void start_exchange(struct mr_client *c, const struct mr_http1_head *head)
{
    struct mr_client_info info;
    struct mr_sockaddr client_addr;
    bool peer_trusted;

    evtimer_del(c->timer);
    c->state = CS_ACTIVE;
    c->lease = mr_worker_lease(c->w);
    if (c->lease == NULL) {
        reply_error(c, 503);
        return;
    }
    c->method = head->method;
    c->http10 = head->version_minor == 0;
    c->req_body = head->body;
    c->req_left = head->content_length;
    c->req_done = false;
    c->body_forwarded = false;
    c->attempts = 0;
    c->resp_started = false;
    if (!head->keep_alive || c->http10 || c->w->stopping)
        c->close_after = true;

    peer_trusted = mr_clientaddr_resolve(&c->lease->snap->trusted_proxies, &c->peer, head,
                                         &client_addr);
    info.addr = (const struct sockaddr *)&client_addr.ss;
    mr_pick_cluster(c->lease->snap, &info, mr_worker_random(c->w), &c->decision);
    if (c->decision.cluster == NULL) {
        fail_exchange(c, 503);
        return;
    }
    c->endpoint = mr_pick_endpoint(c->decision.cluster, c->lease->snap->routing.endpoint_policy,
                                   c->lease->outstanding,
                                   &c->lease->cursors[c->decision.cluster->index], NULL);
    if (!build_request_head(c, head, peer_trusted)) {
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
        if (c->state == CS_IDLE && evbuffer_get_length(c->conn->in) > 0) {
            c->state = CS_HEAD;
            arm_timer(c->timer, client_snap(c)->timeouts.client_header_ms);
        }
        return;
    }
    if (r > 0) {
        evtimer_del(c->timer);
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

/* The exchange is over; keep-alive or close. May free c. */
static void finish_response(struct mr_client *c)
{
    bool reusable = c->resp_keep_alive && c->req_done && c->resp_body != MR_BODY_UNTIL_EOF &&
                    evbuffer_get_length(c->up->in) == 0 && evbuffer_get_length(c->up->out) == 0;

    mr_conn_flush(c->conn);
    release_upstream(c, reusable);
    if (!c->req_done)
        c->close_after = true; /* the rest of its body would be read as a request */
    if (c->close_after || c->w->stopping) {
        close_when_flushed(c);
        return;
    }
    end_exchange(c);
    c->state = CS_IDLE;
    arm_timer(c->timer, c->w->lease->snap->timeouts.client_idle_ms);
    mr_conn_read_start(c->conn);
    if (evbuffer_get_length(c->conn->in) > 0) {
        /* A pipelined request: served from the loop, not from this stack. */
        if (c->resume == NULL)
            c->resume = event_new(c->w->base, -1, 0, on_next_request, c);
        if (c->resume != NULL)
            event_active(c->resume, EV_TIMEOUT, 1);
    }
}

/* Writes the client's response head from the upstream's. */
static void send_response_head(struct mr_client *c, const struct mr_http1_head *head)
{
    struct evbuffer_iovec vec[1];

    if (evbuffer_reserve_space(c->conn->out, (ev_ssize_t)mr_headers_response_size(head), vec,
                               1) < 1) {
        c->close_after = true;
        return;
    }
    vec[0].iov_len = mr_headers_response(vec[0].iov_base, head, c->close_after);
    evbuffer_commit_space(c->conn->out, vec, 1);
    c->resp_started = true;
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
        done = c->resp_left == 0;
        break;
    }
    case MR_BODY_CHUNKED:
        while (evbuffer_get_length(in) > 0 && !done) {
            struct evbuffer_iovec vec;
            size_t used;
            int r;
            if (evbuffer_peek(in, -1, NULL, &vec, 1) < 1)
                break;
            r = mr_http1_chunked(c->resp_parser, vec.iov_base, vec.iov_len, &used);
            if (r < 0) {
                c->close_after = true;
                fail_exchange(c, 502);
                return;
            }
            evbuffer_remove_buffer(in, out, used);
            done = r == 1;
        }
        break;
    case MR_BODY_UNTIL_EOF:
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

static void on_upstream_read(struct mr_conn *conn, void *arg)
{
    struct mr_client *c = arg;

    upstream_progress(c);
    while (c->phase == UP_WAITING) {
        struct mr_http1_head head;
        int r = mr_http1_parse_head(c->resp_parser, conn->in, c->method == MR_METHOD_HEAD, &head);
        if (r == MR_HTTP1_AGAIN)
            return;
        if (r > 0 || head.status == 101) {
            c->close_after = true;
            fail_exchange(c, 502);
            return;
        }
        if (head.status < 200) {
            /* Interim (100 Continue, 103): passed on as it is. */
            evbuffer_remove_buffer(conn->in, c->conn->out, head.head_len);
            mr_conn_flush(c->conn);
            mr_http1_reset(c->resp_parser);
            continue;
        }
        c->resp_body = head.body;
        c->resp_left = head.content_length;
        c->resp_keep_alive = head.keep_alive && !c->http10;
        if (head.body == MR_BODY_UNTIL_EOF)
            c->close_after = true;
        send_response_head(c, &head);
        evbuffer_drain(conn->in, head.head_len);
        c->phase = UP_BODY;
    }
    pump_response_body(c);
}

static void on_upstream_drain(struct mr_conn *conn, void *arg)
{
    struct mr_client *c = arg;

    /* The upstream took what we had: let the client send more body. */
    conn->out_low = 0;
    if (c->state == CS_ACTIVE && !c->req_done) {
        mr_conn_read_start(c->conn);
        pump_request_body(c);
    }
}

static void on_upstream_event(struct mr_conn *conn, enum mr_conn_event what, void *arg)
{
    struct mr_client *c = arg;

    if (what == MR_CONN_CONNECTED) {
        c->phase = UP_WAITING;
        upstream_progress(c);
        arm_timer(c->up_timer, c->lease->snap->timeouts.upstream_response_ms);
        return;
    }
    if (c->phase == UP_CONNECTING) {
        upstream_failed(c, 502); /* refused or unreachable */
        return;
    }
    if (c->phase == UP_WAITING) {
        /* Closed before a whole head: retry only if nothing came at all. */
        if (evbuffer_get_length(conn->in) == 0) {
            upstream_failed(c, 502);
            return;
        }
        c->close_after = true;
        fail_exchange(c, 502);
        return;
    }
    if (what == MR_CONN_EOF && c->resp_body == MR_BODY_UNTIL_EOF) {
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
    if (c->state == CS_ACTIVE && c->up != NULL && c->phase == UP_BODY) {
        evtimer_del(c->timer);
        mr_conn_read_start(c->up);
        pump_response_body(c);
    }
}

static void on_client_event(struct mr_conn *conn, enum mr_conn_event what, void *arg)
{
    struct mr_client *c = arg;
    (void)conn;

    if (what == MR_CONN_EOF && c->state == CS_ACTIVE && c->req_done) {
        /* Half-closed after a whole request: still answer it. */
        c->close_after = true;
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
    /* Idle keep-alive connection, silent new one, or a client that does
     * not read what we send. */
    free_client(c);
}

void mr_proxy_accept(struct mr_worker *w, evutil_socket_t fd, const struct sockaddr *peer,
                     int peer_len)
{
    struct mr_client *c = calloc(1, sizeof(*c));
    struct mr_lease *lease;
    struct mr_http1_limits limits;

    lease = c != NULL && !w->stopping ? mr_worker_lease(w) : NULL;
    if (lease == NULL) {
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
    memcpy(&c->peer.ss, peer, (size_t)peer_len);
    c->peer.len = (socklen_t)peer_len;
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
    mr_conn_setcb(c->conn, on_client_read, on_client_drain, on_client_event, c);
    mr_conn_read_start(c->conn);
    /* No byte yet: CS_IDLE, so the timer closes silently; the first byte
     * restarts it as the header timer. */
    c->state = CS_IDLE;
    arm_timer(c->timer, lease->snap->timeouts.client_header_ms);
    mr_worker_unlease(w, lease);
}

void mr_proxy_drain(struct mr_worker *w)
{
    struct mr_client *c = w->clients;

    while (c != NULL) {
        struct mr_client *next = c->next;
        if (c->state == CS_IDLE)
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
