/* router/proxy.c: see proxy.h. */
#include "router/proxy.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "common/log.h"
#include "router/clientaddr.h"
#include "router/headers.h"
#include "router/http1.h"
#include "router/pick.h"
#include "router/upstream.h"
#include "router/worker.h"

#define CLIENT_MAGIC 0xc11e47a5U

/* Back-pressure: stop reading one side while the other side's output holds
 * this much, resume when it is down to the low mark. */
#define BUFFER_HIGH (256 * 1024)
#define BUFFER_LOW (64 * 1024)
/* Pipelined bytes read ahead while a request is in flight. */
#define PIPELINE_MAX (64 * 1024)
/* Bytes one read or write syscall may move. */
#define IO_SIZE (128 * 1024)

enum client_state {
    CS_IDLE,    /* between requests: the idle timer runs */
    CS_HEAD,    /* part of a head has arrived: the header timer runs */
    CS_ACTIVE,  /* a request is being forwarded or answered */
    CS_CLOSING, /* flushing the last response, then close */
};

enum response_state { RS_WAIT_HEAD, RS_BODY };

struct mr_client {
    unsigned magic;
    struct mr_worker *w;
    struct mr_client *prev, *next;
    struct bufferevent *bev;
    struct mr_sockaddr peer;
    struct mr_http1 *req_parser, *resp_parser;
    struct event *timer;
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
    struct bufferevent *up;
    bool up_connected, up_reused;
    enum response_state resp_state;
    enum mr_http1_body resp_body;
    uint64_t resp_left;
    bool resp_keep_alive;
    bool resp_started;         /* response bytes went to the client */
};

static void on_client_read(struct bufferevent *bev, void *arg);
static void on_client_write(struct bufferevent *bev, void *arg);
static void on_client_event(struct bufferevent *bev, short events, void *arg);
static void on_upstream_read(struct bufferevent *bev, void *arg);
static void on_upstream_write(struct bufferevent *bev, void *arg);
static void on_upstream_event(struct bufferevent *bev, short events, void *arg);
static void connect_upstream(struct mr_client *c);

static struct timeval ms_tv(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

static const struct mr_snapshot *client_snap(const struct mr_client *c)
{
    return c->lease != NULL ? c->lease->snap : c->w->lease->snap;
}

static void set_nodelay(struct bufferevent *bev)
{
    int one = 1;
    evutil_socket_t fd = bufferevent_getfd(bev);
    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* libevent moves 16 KiB per syscall by default: bodies go in larger steps. */
static void set_io_size(struct bufferevent *bev)
{
    bufferevent_set_max_single_read(bev, IO_SIZE);
    bufferevent_set_max_single_write(bev, IO_SIZE);
}

/* ---- buffers --------------------------------------------------------- */

static bool head_reserve(struct mr_client *c, size_t more)
{
    size_t need = c->head_len + more;
    char *grown;

    if (need <= c->head_cap)
        return true;
    if (need < 2 * c->head_cap)
        need = 2 * c->head_cap;
    grown = realloc(c->head_buf, need);
    if (grown == NULL)
        return false;
    c->head_buf = grown;
    c->head_cap = need;
    return true;
}

/* ---- ending things --------------------------------------------------- */

/* Forgets the upstream connection, pooling it when reusable. */
static void release_upstream(struct mr_client *c, bool reusable)
{
    if (c->up == NULL)
        return;
    if (c->endpoint != NULL && c->lease->outstanding[c->endpoint->index] > 0)
        c->lease->outstanding[c->endpoint->index]--;
    if (reusable && !c->w->stopping) {
        mr_upstream_pool_put(c->w->pool, &c->endpoint->addr, c->up,
                             c->lease->snap->timeouts.upstream_idle_ms);
    } else {
        bufferevent_free(c->up);
    }
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
    bufferevent_free(c->bev);
    event_free(c->timer);
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
    evtimer_del(c->timer);
    bufferevent_disable(c->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        free_client(c);
        return;
    }
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    bufferevent_enable(c->bev, EV_WRITE);
}

/* Answers with a status of our own and closes. May free c. */
static void reply_error(struct mr_client *c, int status)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    const char *reason = mr_http1_reason(status);

    end_exchange(c);
    if (!c->resp_started) {
        evbuffer_add_printf(out,
                            "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
                            "Content-Length: %zu\r\n%sConnection: close\r\n\r\n%d %s\n",
                            status, reason, strlen(reason) + 5,
                            status == 503 ? "Retry-After: 5\r\n" : "", status, reason);
    }
    close_when_flushed(c);
}

/* ---- request path ---------------------------------------------------- */

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

    c->head_len = 0;
    if (!head_reserve(c, mr_headers_request_size(head, &fwd)))
        return false;
    c->head_len = mr_headers_request(c->head_buf, head, &fwd);
    return true;
}

/* A request may be sent again when nothing of its body went out and its
 * method is idempotent (RFC 9110 9.2.2). */
static bool may_retry(const struct mr_client *c)
{
    if (c->attempts > 1 || c->body_forwarded || c->req_body != MR_BODY_NONE)
        return false;
    switch (c->method) {
    case MR_METHOD_GET: case MR_METHOD_HEAD: case MR_METHOD_OPTIONS:
    case MR_METHOD_TRACE: case MR_METHOD_PUT: case MR_METHOD_DELETE:
        return true;
    default:
        /* A pooled connection that the origin closed meanwhile: the request
         * cannot have been processed. */
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
    reply_error(c, status);
}

/* Moves request body bytes from the client to the upstream. May free c. */
static void pump_request_body(struct mr_client *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct evbuffer *out;

    if (c->req_done || c->up == NULL)
        return;
    out = bufferevent_get_output(c->up);
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
                /* Malformed chunk: the origin got a truncated body and the
                 * connection to it cannot be reused. */
                reply_error(c, 400);
                return;
            }
            evbuffer_remove_buffer(in, out, used);
            c->body_forwarded = true;
            c->req_done = r == 1;
        }
    } else {
        c->req_done = true;
    }
    if (!c->req_done && evbuffer_get_length(out) >= BUFFER_HIGH) {
        bufferevent_disable(c->bev, EV_READ);
        bufferevent_setwatermark(c->up, EV_WRITE, BUFFER_LOW, 0);
    }
    if (c->up_connected && c->body_forwarded) {
        /* The response clock starts again with every bit of upload. */
        const struct mr_snapshot *snap = c->lease->snap;
        struct timeval tv = ms_tv(snap->timeouts.upstream_response_ms);
        bufferevent_set_timeouts(c->up, &tv, &tv);
    }
}

static void connect_upstream(struct mr_client *c)
{
    const struct mr_snapshot *snap = c->lease->snap;
    struct bufferevent *up;

    c->attempts++;
    c->lease->outstanding[c->endpoint->index]++;
    up = mr_upstream_pool_take(c->w->pool, &c->endpoint->addr);
    c->up_reused = up != NULL;
    c->up_connected = up != NULL;
    if (up == NULL) {
        struct timeval tv = ms_tv(snap->timeouts.upstream_connect_ms);
        up = bufferevent_socket_new(c->w->base, -1, BEV_OPT_CLOSE_ON_FREE);
        if (up == NULL) {
            c->lease->outstanding[c->endpoint->index]--;
            reply_error(c, 502);
            return;
        }
        c->up = up;
        set_io_size(up);
        bufferevent_setcb(up, on_upstream_read, on_upstream_write, on_upstream_event, c);
        /* The connect timeout runs on the write side while connecting. */
        bufferevent_set_timeouts(up, NULL, &tv);
        if (bufferevent_socket_connect(up, (const struct sockaddr *)&c->endpoint->addr.ss,
                                       (int)c->endpoint->addr.len) != 0) {
            upstream_failed(c, 502);
            return;
        }
    } else {
        struct timeval tv = ms_tv(snap->timeouts.upstream_response_ms);
        c->up = up;
        bufferevent_setcb(up, on_upstream_read, on_upstream_write, on_upstream_event, c);
        bufferevent_set_timeouts(up, &tv, &tv);
    }
    bufferevent_enable(up, EV_READ | EV_WRITE);
    c->resp_state = RS_WAIT_HEAD;
    evbuffer_add(bufferevent_get_output(up), c->head_buf, c->head_len);
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
        reply_error(c, 503);
        return;
    }
    c->endpoint = mr_pick_endpoint(c->decision.cluster, c->lease->snap->routing.endpoint_policy,
                                   c->lease->outstanding,
                                   &c->lease->cursors[c->decision.cluster->index], NULL);
    if (!build_request_head(c, head, peer_trusted)) {
        reply_error(c, 503);
        return;
    }
    evbuffer_drain(bufferevent_get_input(c->bev), head->head_len);
    connect_upstream(c);
}

/* Reads and starts the next request, if a whole head is there. May free c. */
static void read_request(struct mr_client *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct mr_http1_head head;
    int r;

    r = mr_http1_parse_head(c->req_parser, in, false, &head);
    if (r == MR_HTTP1_AGAIN) {
        if (c->state == CS_IDLE && evbuffer_get_length(in) > 0) {
            struct timeval tv = ms_tv(client_snap(c)->timeouts.client_header_ms);
            c->state = CS_HEAD;
            evtimer_add(c->timer, &tv);
        }
        return;
    }
    if (r > 0) {
        reply_error(c, r);
        return;
    }
    start_exchange(c, &head);
}

static void on_client_read(struct bufferevent *bev, void *arg)
{
    struct mr_client *c = arg;
    (void)bev;

    switch (c->state) {
    case CS_IDLE:
    case CS_HEAD:
        read_request(c);
        return;
    case CS_ACTIVE:
        if (!c->req_done) {
            pump_request_body(c);
        } else if (evbuffer_get_length(bufferevent_get_input(c->bev)) >= PIPELINE_MAX) {
            /* Pipelined requests wait their turn without growing memory. */
            bufferevent_disable(c->bev, EV_READ);
        }
        return;
    case CS_CLOSING:
        return;
    }
}

/* ---- response path --------------------------------------------------- */

/* The exchange is over; keep-alive or close. May free c. */
static void finish_response(struct mr_client *c)
{
    struct evbuffer *up_in = bufferevent_get_input(c->up);
    bool reusable = c->resp_keep_alive && c->req_done && c->resp_body != MR_BODY_UNTIL_EOF &&
                    evbuffer_get_length(up_in) == 0;
    struct timeval tv;

    release_upstream(c, reusable);
    if (!c->req_done)
        c->close_after = true; /* the rest of its body would be read as a request */
    end_exchange(c);
    if (c->close_after || c->w->stopping) {
        close_when_flushed(c);
        return;
    }
    c->state = CS_IDLE;
    tv = ms_tv(c->w->lease->snap->timeouts.client_idle_ms);
    evtimer_add(c->timer, &tv);
    bufferevent_enable(c->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/* Writes the client's response head from the upstream's. */
static void send_response_head(struct mr_client *c, const struct mr_http1_head *head)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    struct evbuffer_iovec vec[1];

    if (evbuffer_reserve_space(out, (ev_ssize_t)mr_headers_response_size(head), vec, 1) < 1) {
        c->close_after = true;
        return;
    }
    vec[0].iov_len = mr_headers_response(vec[0].iov_base, head, c->close_after);
    evbuffer_commit_space(out, vec, 1);
    c->resp_started = true;
}

/* Moves response body bytes to the client. May free c. */
static void pump_response_body(struct mr_client *c)
{
    struct evbuffer *in = bufferevent_get_input(c->up);
    struct evbuffer *out = bufferevent_get_output(c->bev);
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
                reply_error(c, 502);
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
    if (evbuffer_get_length(out) >= BUFFER_HIGH) {
        bufferevent_disable(c->up, EV_READ);
        bufferevent_setwatermark(c->bev, EV_WRITE, BUFFER_LOW, 0);
    }
}

static void on_upstream_read(struct bufferevent *bev, void *arg)
{
    struct mr_client *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);

    while (c->resp_state == RS_WAIT_HEAD) {
        struct mr_http1_head head;
        int r = mr_http1_parse_head(c->resp_parser, in, c->method == MR_METHOD_HEAD, &head);
        if (r == MR_HTTP1_AGAIN)
            return;
        if (r > 0 || head.status == 101) {
            reply_error(c, 502);
            return;
        }
        if (head.status < 200) {
            /* Interim (100 Continue, 103): passed on as it is. */
            evbuffer_remove_buffer(in, bufferevent_get_output(c->bev), head.head_len);
            mr_http1_reset(c->resp_parser);
            continue;
        }
        c->resp_body = head.body;
        c->resp_left = head.content_length;
        c->resp_keep_alive = head.keep_alive && !c->http10;
        if (head.body == MR_BODY_UNTIL_EOF)
            c->close_after = true;
        send_response_head(c, &head);
        evbuffer_drain(in, head.head_len);
        c->resp_state = RS_BODY;
    }
    pump_response_body(c);
}

static void on_upstream_write(struct bufferevent *bev, void *arg)
{
    struct mr_client *c = arg;

    /* The upstream took what we had: let the client send more body. */
    bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
    if (c->state == CS_ACTIVE && !c->req_done) {
        bufferevent_enable(c->bev, EV_READ);
        pump_request_body(c);
    }
}

static void on_upstream_event(struct bufferevent *bev, short events, void *arg)
{
    struct mr_client *c = arg;
    const struct mr_snapshot *snap = c->lease->snap;

    if (events & BEV_EVENT_CONNECTED) {
        struct timeval tv = ms_tv(snap->timeouts.upstream_response_ms);
        c->up_connected = true;
        set_nodelay(bev);
        bufferevent_set_timeouts(bev, &tv, &tv);
        return;
    }
    if (!c->up_connected) {
        upstream_failed(c, 502); /* refused, unreachable or connect timeout */
        return;
    }
    if (c->resp_state == RS_WAIT_HEAD) {
        if (events & BEV_EVENT_TIMEOUT) {
            reply_error(c, 504);
            return;
        }
        /* Closed before a whole head: retry only if nothing came at all. */
        if (evbuffer_get_length(bufferevent_get_input(bev)) == 0) {
            upstream_failed(c, 502);
            return;
        }
        reply_error(c, 502);
        return;
    }
    if ((events & BEV_EVENT_EOF) && c->resp_body == MR_BODY_UNTIL_EOF) {
        evbuffer_add_buffer(bufferevent_get_output(c->bev), bufferevent_get_input(bev));
        c->close_after = true;
        c->req_done = true;
        c->resp_keep_alive = false;
        finish_response(c);
        return;
    }
    /* Cut mid-body: the client must see a truncated message, not a complete one. */
    c->close_after = true;
    reply_error(c, 502);
}

/* ---- client events --------------------------------------------------- */

static void on_client_write(struct bufferevent *bev, void *arg)
{
    struct mr_client *c = arg;

    if (c->state == CS_CLOSING) {
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            free_client(c);
        return;
    }
    bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
    if (c->state == CS_ACTIVE && c->up != NULL && c->resp_state == RS_BODY) {
        bufferevent_enable(c->up, EV_READ);
        pump_response_body(c);
    }
}

static void on_client_event(struct bufferevent *bev, short events, void *arg)
{
    struct mr_client *c = arg;
    (void)bev;

    if ((events & BEV_EVENT_EOF) && c->state == CS_ACTIVE && c->req_done) {
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
    free_client(c); /* idle keep-alive connection, or no byte at all */
}

void mr_proxy_accept(struct mr_worker *w, evutil_socket_t fd, const struct sockaddr *peer,
                     int peer_len)
{
    struct mr_client *c = calloc(1, sizeof(*c));
    const struct mr_snapshot *snap;
    struct mr_http1_limits limits;
    struct timeval tv;

    if (c == NULL || w->stopping || mr_worker_lease(w) == NULL) {
        free(c);
        evutil_closesocket(fd);
        return;
    }
    /* The worker's current lease gives this connection its limits. */
    snap = w->lease->snap;
    mr_worker_unlease(w, w->lease);
    limits.max_head_bytes = snap->limits.max_head_bytes;
    limits.max_headers = snap->limits.max_headers;
    limits.max_uri_bytes = snap->limits.max_uri_bytes;
    c->magic = CLIENT_MAGIC;
    c->w = w;
    memcpy(&c->peer.ss, peer, (size_t)peer_len);
    c->peer.len = (socklen_t)peer_len;
    c->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->timer = evtimer_new(w->base, on_client_timer, c);
    c->req_parser = mr_http1_new(MR_HTTP1_REQUEST, &limits);
    /* An upstream head may be as large as a client's. */
    c->resp_parser = mr_http1_new(MR_HTTP1_RESPONSE, &limits);
    if (c->bev == NULL || c->timer == NULL || c->req_parser == NULL || c->resp_parser == NULL) {
        if (c->bev != NULL)
            bufferevent_free(c->bev);
        else
            evutil_closesocket(fd);
        if (c->timer != NULL)
            event_free(c->timer);
        mr_http1_free(c->req_parser);
        mr_http1_free(c->resp_parser);
        free(c);
        return;
    }
    c->next = w->clients;
    if (w->clients != NULL)
        w->clients->prev = c;
    w->clients = c;
    w->n_clients++;
    set_nodelay(c->bev);
    set_io_size(c->bev);
    bufferevent_setcb(c->bev, on_client_read, on_client_write, on_client_event, c);
    tv = ms_tv(snap->timeouts.client_idle_ms);
    /* A client that stops reading its response is dropped after idle_ms. */
    bufferevent_set_timeouts(c->bev, NULL, &tv);
    bufferevent_enable(c->bev, EV_READ);
    /* No byte yet: CS_IDLE, so the timer closes silently; the first byte
     * restarts it as the header timer. */
    c->state = CS_IDLE;
    tv = ms_tv(snap->timeouts.client_header_ms);
    evtimer_add(c->timer, &tv);
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
