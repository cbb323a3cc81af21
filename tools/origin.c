/*
 * tools/origin.c: the test and demo origin server.
 *
 * One single-threaded process listens on any number of addresses grouped in
 * named clusters and names the cluster, endpoint, connection and request in
 * every response, so integration tests can see where meridian sent a request
 * and whether it reused an upstream connection. Bodies stream both ways with
 * back-pressure and are never held whole (64 MiB transfers go through it);
 * several routes misbehave on purpose (close mid-body, hang, delay, drip) to
 * exercise the proxy's error paths. Raw bufferevents and http_parser rather
 * than evhttp, because evhttp buffers bodies and cannot misbehave.
 *
 * Standalone: links no project object. See usage() for the command line and
 * the route list below route_of().
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <http_parser.h>
#include <openssl/evp.h>

#define OUT_HIGH (256 * 1024) /* stop producing and reading above this much queued output */
#define OUT_LOW (64 * 1024)   /* the write callback fires at or below this: refill */
#define IN_HIGH (256 * 1024)  /* unparsed input held before we stop reading the socket */
#define FEED_SLICE 16384      /* input bytes per parser call, so back-pressure is checked often */
#define HEAD_MAX (64 * 1024)  /* request line + headers */
#define HEADERS_MAX 128
#define PATTERN_SPAN 16384 /* one pattern run; the pattern repeats every 256 bytes */

struct strbuf {
    char *p; /* always NUL-terminated once allocated */
    size_t len, cap;
};

struct header {
    struct strbuf name, value;
};

enum route {
    R_DEFAULT,
    R_HEALTHZ,
    R_SET_HEALTH,
    R_BYTES,
    R_ECHO,
    R_SINK,
    R_CLOSE_MID,
    R_CLOSE_NOW,
    R_HANG,
    R_SLOW,
};

enum framing { FR_NONE, FR_LENGTH, FR_CHUNKED, FR_UNTIL_CLOSE };

enum timer_kind { T_NONE, T_DELAY, T_SLOW };

struct endpoint {
    const char *cluster; /* argv strings, live for the whole process */
    const char *addr;
    int health_status; /* what /healthz answers; set by POST /__health */
    struct evconnlistener *lev;
    struct endpoint *next;
};

/* One request at a time per connection: pipelined ones wait in the input buffer. */
struct request {
    bool active;   /* message begun */
    bool msg_done; /* whole request body read */
    bool resp_started;
    bool resp_done;
    bool close_after;
    bool too_big;
    bool head_only;
    bool http10;
    bool in_value; /* last header callback was a value: the next field starts a header */
    uint64_t number;
    struct strbuf url;
    struct header headers[HEADERS_MAX];
    size_t nheaders;
    size_t head_bytes;
    enum route route;
    int status_param; /* ?status=, 0 when absent */
    uint64_t body_len;
    EVP_MD_CTX *md; /* /sink */
    enum framing framing;
    bool body_allowed; /* false for HEAD, 1xx, 204, 304 */
    enum timer_kind timer_kind;
    uint64_t total, sent; /* /bytes, /slow */
    uint64_t chunk, chunk_left;
};

struct conn {
    struct bufferevent *bev;
    struct endpoint *ep;
    http_parser parser;
    struct event *timer;
    struct evbuffer *held; /* /echo body that arrived during ?delay_ms */
    uint64_t serial;
    uint64_t nreq;
    bool peer_eof;
    bool closing; /* flush the output, then free */
    bool kill;    /* free now, without flushing */
    struct request rq;
    struct conn *prev, *next;
};

static struct {
    struct event_base *base;
    FILE *log;
    struct endpoint *endpoints;
    struct conn *conns;
    uint64_t next_serial;
} g;

static uint8_t pattern[PATTERN_SPAN + 256];

static void drive(struct conn *c);

/* A test tool: running out of memory is not a case worth handling gracefully. */
static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (q == NULL) {
        fprintf(stderr, "origin: out of memory\n");
        abort();
    }
    return q;
}

static void sb_add(struct strbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(struct strbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static void sb_free(struct strbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* Escapes bytes >= 0x80 too, as \u00XX, so the output is valid JSON whatever the input. */
static void sb_json(struct strbuf *b, const char *s, size_t n, bool lower)
{
    sb_add(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc[8];
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\';
            esc[1] = (char)ch;
            sb_add(b, esc, 2);
        } else if (ch < 0x20 || ch >= 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", ch);
            sb_add(b, esc, 6);
        } else {
            if (lower && ch >= 'A' && ch <= 'Z') {
                ch = (unsigned char)(ch - 'A' + 'a');
            }
            sb_add(b, (const char *)&ch, 1);
        }
    }
    sb_add(b, "\"", 1);
}

static void sb_u64(struct strbuf *b, uint64_t v)
{
    char num[24];
    snprintf(num, sizeof(num), "%" PRIu64, v);
    sb_puts(b, num);
}

static const char *reason_of(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Status";
    }
}

static size_t path_len(const struct request *rq)
{
    const char *q = memchr(rq->url.p, '?', rq->url.len);
    return q ? (size_t)(q - rq->url.p) : rq->url.len;
}

/* Finds NAME in the query string; *val points into the URL, not NUL-terminated. */
static bool find_param(const struct request *rq, const char *name, const char **val, size_t *vlen)
{
    size_t plen = path_len(rq);
    size_t nlen = strlen(name);
    const char *s = rq->url.p + plen + 1;
    const char *end = rq->url.p + rq->url.len;
    if (plen >= rq->url.len) {
        return false;
    }
    while (s < end) {
        const char *amp = memchr(s, '&', (size_t)(end - s));
        const char *stop = amp ? amp : end;
        if ((size_t)(stop - s) > nlen && memcmp(s, name, nlen) == 0 && s[nlen] == '=') {
            *val = s + nlen + 1;
            *vlen = (size_t)(stop - *val);
            return true;
        }
        s = stop + 1;
    }
    return false;
}

/* A missing or non-numeric parameter gives DEF. */
static uint64_t param_u64(const struct request *rq, const char *name, uint64_t def)
{
    const char *v;
    size_t n;
    uint64_t x = 0;
    if (!find_param(rq, name, &v, &n) || n == 0 || n > 19) {
        return def;
    }
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') {
            return def;
        }
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    return x;
}

static bool has_prefix(const struct request *rq, const char *prefix)
{
    size_t plen = path_len(rq);
    size_t n = strlen(prefix);
    return plen >= n && memcmp(rq->url.p, prefix, n) == 0 && (plen == n || rq->url.p[n] == '/');
}

/*
 * Routes (path prefixes, parameters in the query string):
 *   /healthz  /__health?status=N (POST)  /bytes?n=&chunked=1&chunk=  /echo  /sink
 *   /close-mid?n=&after=  /close-now  /hang  /slow?n=&every_ms=&step=
 * and on any route ?status=N and ?delay_ms=N; anything else is the JSON echo of the head.
 */
static enum route route_of(const struct request *rq)
{
    static const struct {
        const char *prefix;
        enum route route;
    } table[] = {
        {"/healthz", R_HEALTHZ},     {"/__health", R_SET_HEALTH}, {"/bytes", R_BYTES},
        {"/echo", R_ECHO},           {"/sink", R_SINK},           {"/close-mid", R_CLOSE_MID},
        {"/close-now", R_CLOSE_NOW}, {"/hang", R_HANG},           {"/slow", R_SLOW},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (has_prefix(rq, table[i].prefix)) {
            return table[i].route;
        }
    }
    return R_DEFAULT;
}

static const struct header *find_header(const struct request *rq, const char *name)
{
    for (size_t i = 0; i < rq->nheaders; i++) {
        if (rq->headers[i].name.p && strcasecmp(rq->headers[i].name.p, name) == 0) {
            return &rq->headers[i];
        }
    }
    return NULL;
}

static void add_pattern(struct evbuffer *out, uint64_t offset, uint64_t n)
{
    while (n > 0) {
        size_t piece = n < PATTERN_SPAN ? (size_t)n : PATTERN_SPAN;
        evbuffer_add(out, pattern + (offset & 0xff), piece);
        offset += piece;
        n -= piece;
    }
}

/*
 * Writes the status line and headers. FR is the framing the body would have;
 * it is dropped for statuses without a body, and chunked becomes read-until-
 * close for an HTTP/1.0 client, which cannot parse chunks.
 */
static void send_head(struct conn *c, int status, const char *ctype, enum framing fr,
                      uint64_t length)
{
    struct request *rq = &c->rq;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    bool bodiless = status < 200 || status == 204 || status == 304;

    if (fr == FR_CHUNKED && rq->http10) {
        fr = FR_UNTIL_CLOSE;
    }
    if (fr == FR_UNTIL_CLOSE && !rq->head_only && !bodiless) {
        rq->close_after = true;
    }
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\nX-Origin-Cluster: %s\r\nX-Origin-Endpoint: %s\r\n"
                        "X-Origin-Conn: %" PRIu64 "\r\nX-Origin-Request: %" PRIu64 "\r\n",
                        status, reason_of(status), c->ep->cluster, c->ep->addr, c->serial,
                        rq->number);
    if (!bodiless) {
        if (ctype) {
            evbuffer_add_printf(out, "Content-Type: %s\r\n", ctype);
        }
        if (fr == FR_LENGTH) {
            evbuffer_add_printf(out, "Content-Length: %" PRIu64 "\r\n", length);
        } else if (fr == FR_CHUNKED) {
            evbuffer_add_printf(out, "Transfer-Encoding: chunked\r\n");
        }
    }
    if (rq->close_after) {
        evbuffer_add_printf(out, "Connection: close\r\n");
    } else if (rq->http10) {
        evbuffer_add_printf(out, "Connection: keep-alive\r\n");
    }
    evbuffer_add(out, "\r\n", 2);
    rq->framing = bodiless ? FR_NONE : fr;
    rq->body_allowed = !bodiless && !rq->head_only;
    rq->resp_started = true;
}

static void body_add(struct conn *c, const void *data, size_t n)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (!c->rq.body_allowed || n == 0) {
        return;
    }
    if (c->rq.framing == FR_CHUNKED) {
        evbuffer_add_printf(out, "%zx\r\n", n);
        evbuffer_add(out, data, n);
        evbuffer_add(out, "\r\n", 2);
    } else {
        evbuffer_add(out, data, n);
    }
}

static void body_end(struct conn *c)
{
    if (c->rq.body_allowed && c->rq.framing == FR_CHUNKED) {
        evbuffer_add(bufferevent_get_output(c->bev), "0\r\n\r\n", 5);
    }
    c->rq.resp_done = true;
}

static void respond_small(struct conn *c, int status, const char *ctype, const char *body, size_t n)
{
    send_head(c, status, ctype, FR_LENGTH, n);
    body_add(c, body, n);
    body_end(c);
}

/* Opens the JSON object both the log line and the default answer start with. */
static void sb_who(struct strbuf *b, const struct conn *c)
{
    const char *method = http_method_str((enum http_method)c->parser.method);

    sb_puts(b, "{\"cluster\":");
    sb_json(b, c->ep->cluster, strlen(c->ep->cluster), false);
    sb_puts(b, ",\"endpoint\":");
    sb_json(b, c->ep->addr, strlen(c->ep->addr), false);
    sb_puts(b, ",\"conn\":");
    sb_u64(b, c->serial);
    sb_puts(b, ",\"request\":");
    sb_u64(b, c->rq.number);
    sb_puts(b, ",\"method\":");
    sb_json(b, method, strlen(method), false);
    sb_puts(b, ",\"path\":");
    sb_json(b, c->rq.url.p, c->rq.url.len, false);
}

/* The default answer: who served it and the request head as received. */
static void respond_default(struct conn *c, int status)
{
    struct request *rq = &c->rq;
    struct strbuf b = {0};

    sb_who(&b, c);
    sb_puts(&b, ",\"body_length\":");
    sb_u64(&b, rq->body_len);
    sb_puts(&b, ",\"headers\":{");
    /* Repeated names are joined with ", ", the way HTTP combines them. */
    bool first = true;
    for (size_t i = 0; i < rq->nheaders; i++) {
        const struct header *h = &rq->headers[i];
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++) {
            seen = strcasecmp(rq->headers[j].name.p, h->name.p) == 0;
        }
        if (seen) {
            continue;
        }
        struct strbuf joined = {0};
        sb_add(&joined, "", 0);
        for (size_t j = i; j < rq->nheaders; j++) {
            if (strcasecmp(rq->headers[j].name.p, h->name.p) == 0) {
                if (joined.len > 0) {
                    sb_puts(&joined, ", ");
                }
                sb_add(&joined, rq->headers[j].value.p ? rq->headers[j].value.p : "",
                       rq->headers[j].value.len);
            }
        }
        sb_puts(&b, first ? "" : ",");
        sb_json(&b, h->name.p, h->name.len, true);
        sb_puts(&b, ":");
        sb_json(&b, joined.p, joined.len, false);
        sb_free(&joined);
        first = false;
    }
    sb_puts(&b, "}}");
    respond_small(c, status, "application/json", b.p, b.len);
    sb_free(&b);
}

static void respond_sink(struct conn *c, int status)
{
    struct request *rq = &c->rq;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    char body[160];
    int n;

    if (rq->md == NULL || EVP_DigestFinal_ex(rq->md, md, &mdlen) != 1) {
        respond_small(c, 500, "text/plain", "digest failed", 13);
        return;
    }
    n = snprintf(body, sizeof(body), "{\"length\":%" PRIu64 ",\"sha256\":\"", rq->body_len);
    for (unsigned i = 0; i < mdlen; i++) {
        n += snprintf(body + n, sizeof(body) - (size_t)n, "%02x", md[i]);
    }
    n += snprintf(body + n, sizeof(body) - (size_t)n, "\"}");
    respond_small(c, status, "application/json", body, (size_t)n);
}

static void respond_set_health(struct conn *c)
{
    struct request *rq = &c->rq;
    char body[128];
    int n;

    if (c->parser.method == HTTP_POST || c->parser.method == HTTP_PUT) {
        uint64_t s = param_u64(rq, "status", 0);
        if (s < 100 || s > 599) {
            respond_small(c, 400, "text/plain", "status must be 100..599", 23);
            return;
        }
        c->ep->health_status = (int)s;
    }
    n = snprintf(body, sizeof(body), "{\"endpoint\":\"%s\",\"health_status\":%d}", c->ep->addr,
                 c->ep->health_status);
    respond_small(c, 200, "application/json", body, (size_t)n);
}

static void arm_timer(struct conn *c, enum timer_kind kind, uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    c->rq.timer_kind = kind;
    evtimer_add(c->timer, &tv);
}

/* Sends the response head (and a first part of the body) for the current request. */
static void start_route(struct conn *c)
{
    struct request *rq = &c->rq;
    int status = rq->status_param ? rq->status_param : 200;
    struct evbuffer *out = bufferevent_get_output(c->bev);

    switch (rq->route) {
    case R_DEFAULT: respond_default(c, status); break;
    case R_HEALTHZ:
        status = rq->status_param ? rq->status_param : c->ep->health_status;
        if (status >= 200 && status < 300) {
            respond_small(c, status, "text/plain", "ok", 2);
        } else {
            respond_small(c, status, "text/plain", "unhealthy", 9);
        }
        break;
    case R_SET_HEALTH: respond_set_health(c); break;
    case R_BYTES:
        rq->total = param_u64(rq, "n", 0);
        rq->chunk = param_u64(rq, "chunk", 16384);
        if (rq->chunk == 0) {
            rq->chunk = 16384;
        }
        send_head(c, status, "application/octet-stream",
                  param_u64(rq, "chunked", 0) ? FR_CHUNKED : FR_LENGTH, rq->total);
        if (!rq->body_allowed) {
            body_end(c);
        }
        break; /* drive() pumps the body */
    case R_ECHO:
        send_head(c, status, "application/octet-stream", FR_CHUNKED, 0);
        if (evbuffer_get_length(c->held) > 0) {
            size_t n = evbuffer_get_length(c->held);
            body_add(c, evbuffer_pullup(c->held, -1), n);
            evbuffer_drain(c->held, n);
        }
        if (rq->msg_done) {
            body_end(c);
        }
        break;
    case R_SINK: respond_sink(c, status); break;
    case R_CLOSE_MID: {
        uint64_t n = param_u64(rq, "n", 1024);
        uint64_t after = param_u64(rq, "after", n / 2);
        rq->close_after = true;
        send_head(c, status, "application/octet-stream", FR_LENGTH, n);
        if (rq->body_allowed) {
            add_pattern(out, 0, after < n ? after : n);
        }
        rq->resp_done = true;
        break;
    }
    case R_CLOSE_NOW: c->kill = true; break;
    case R_HANG: break;
    case R_SLOW:
        rq->total = param_u64(rq, "n", 1024);
        rq->chunk = param_u64(rq, "step", 1024);
        send_head(c, status, "application/octet-stream", FR_LENGTH, rq->total);
        if (!rq->body_allowed || rq->total == 0) {
            body_end(c);
        } else {
            arm_timer(c, T_SLOW, param_u64(rq, "every_ms", 100));
        }
        break;
    }
}

/* The request is ready for its response: after its head for /echo, its body for the rest. */
static void dispatch(struct conn *c)
{
    uint64_t delay_ms = param_u64(&c->rq, "delay_ms", 0);
    if (delay_ms > 0) {
        arm_timer(c, T_DELAY, delay_ms);
        return;
    }
    start_route(c);
}

static void pump_bytes(struct conn *c)
{
    struct request *rq = &c->rq;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    bool chunked = rq->framing == FR_CHUNKED;

    while (rq->sent < rq->total && evbuffer_get_length(out) < OUT_HIGH) {
        uint64_t piece = rq->total - rq->sent;
        if (chunked && rq->chunk_left == 0) {
            rq->chunk_left = rq->chunk < piece ? rq->chunk : piece;
            evbuffer_add_printf(out, "%" PRIx64 "\r\n", rq->chunk_left);
        }
        if (chunked && piece > rq->chunk_left) {
            piece = rq->chunk_left;
        }
        if (piece > PATTERN_SPAN) {
            piece = PATTERN_SPAN;
        }
        add_pattern(out, rq->sent, piece);
        rq->sent += piece;
        if (chunked) {
            rq->chunk_left -= piece;
            if (rq->chunk_left == 0) {
                evbuffer_add(out, "\r\n", 2);
            }
        }
    }
    if (rq->sent == rq->total) {
        body_end(c);
    }
}

static void log_request(struct conn *c)
{
    struct request *rq = &c->rq;
    struct strbuf b = {0};

    sb_who(&b, c);
    sb_puts(&b, rq->http10 ? ",\"version\":\"1.0\"" : ",\"version\":\"1.1\"");
    sb_puts(&b, ",\"headers\":[");
    for (size_t i = 0; i < rq->nheaders; i++) {
        const struct header *h = &rq->headers[i];
        sb_puts(&b, i ? ",[" : "[");
        sb_json(&b, h->name.p, h->name.len, false);
        sb_puts(&b, ",");
        sb_json(&b, h->value.p ? h->value.p : "", h->value.len, false);
        sb_puts(&b, "]");
    }
    sb_puts(&b, "]}\n");
    /* Flushed per line: tests read the log while the origin runs. */
    fwrite(b.p, 1, b.len, g.log);
    fflush(g.log);
    sb_free(&b);
}

static void reset_request(struct conn *c)
{
    struct request *rq = &c->rq;
    sb_free(&rq->url);
    for (size_t i = 0; i < rq->nheaders; i++) {
        sb_free(&rq->headers[i].name);
        sb_free(&rq->headers[i].value);
    }
    EVP_MD_CTX_free(rq->md);
    evtimer_del(c->timer);
    evbuffer_drain(c->held, evbuffer_get_length(c->held));
    memset(rq, 0, sizeof(*rq));
}

static int count_head(struct request *rq, size_t n)
{
    rq->head_bytes += n;
    if (rq->head_bytes > HEAD_MAX) {
        rq->too_big = true;
        return -1;
    }
    return 0;
}

static int on_message_begin(http_parser *p)
{
    struct conn *c = p->data;
    reset_request(c);
    c->rq.active = true;
    c->rq.number = ++c->nreq;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    struct conn *c = p->data;
    if (count_head(&c->rq, n) != 0) {
        return -1;
    }
    sb_add(&c->rq.url, at, n);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    struct request *rq = &((struct conn *)p->data)->rq;
    if (count_head(rq, n) != 0) {
        return -1;
    }
    if (rq->nheaders == 0 || rq->in_value) {
        if (rq->nheaders == HEADERS_MAX) {
            rq->too_big = true;
            return -1;
        }
        rq->nheaders++;
        rq->in_value = false;
    }
    sb_add(&rq->headers[rq->nheaders - 1].name, at, n);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    struct request *rq = &((struct conn *)p->data)->rq;
    if (count_head(rq, n) != 0) {
        return -1;
    }
    rq->in_value = true;
    sb_add(&rq->headers[rq->nheaders - 1].value, at, n);
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct conn *c = p->data;
    struct request *rq = &c->rq;
    const struct header *expect;
    uint64_t status;

    if (rq->url.p == NULL) {
        sb_add(&rq->url, "", 0);
    }
    for (size_t i = 0; i < rq->nheaders; i++) {
        if (rq->headers[i].name.p == NULL) {
            sb_add(&rq->headers[i].name, "", 0);
        }
        if (rq->headers[i].value.p == NULL) {
            sb_add(&rq->headers[i].value, "", 0);
        }
    }
    rq->head_only = p->method == HTTP_HEAD;
    rq->http10 = p->http_major == 1 && p->http_minor == 0;
    rq->close_after = !http_should_keep_alive(p) || p->upgrade;
    rq->route = route_of(rq);
    status = param_u64(rq, "status", 0);
    if (status >= 200 && status <= 599 && rq->route != R_SET_HEALTH) {
        rq->status_param = (int)status;
    }
    if (g.log) {
        log_request(c);
    }
    expect = find_header(rq, "expect");
    if (expect && !rq->http10 && strcasecmp(expect->value.p, "100-continue") == 0) {
        evbuffer_add_printf(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n");
    }
    if (rq->route == R_SINK) {
        rq->md = EVP_MD_CTX_new();
        if (rq->md && EVP_DigestInit_ex(rq->md, EVP_sha256(), NULL) != 1) {
            EVP_MD_CTX_free(rq->md);
            rq->md = NULL;
        }
    }
    if (rq->route == R_ECHO) {
        dispatch(c);
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    struct conn *c = p->data;
    struct request *rq = &c->rq;
    rq->body_len += n;
    if (rq->route == R_ECHO) {
        if (rq->resp_started) {
            body_add(c, at, n);
        } else {
            evbuffer_add(c->held, at, n);
        }
    } else if (rq->route == R_SINK && rq->md) {
        EVP_DigestUpdate(rq->md, at, n);
    }
    return 0;
}

/* Pauses the parser so a pipelined request waits until this one is answered. */
static int on_message_complete(http_parser *p)
{
    struct conn *c = p->data;
    struct request *rq = &c->rq;
    rq->msg_done = true;
    if (rq->route != R_ECHO) {
        dispatch(c);
    } else if (rq->resp_started) {
        body_end(c);
    }
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* A parse error: 400 (431 for an oversized head) and close, or just close mid-response. */
static void reject(struct conn *c)
{
    struct request *rq = &c->rq;
    int status = rq->too_big ? 431 : 400;
    const char *body = rq->too_big ? "request head too large\n" : "bad request\n";

    if (rq->resp_started) {
        c->kill = true;
        return;
    }
    /* Said on stderr so tests can tell that something not HTTP arrived. */
    fprintf(stderr, "origin: answered %d to an unparsable request\n", status);
    evtimer_del(c->timer);
    rq->head_only = false;
    rq->close_after = true;
    respond_small(c, status, "text/plain", body, strlen(body));
    c->closing = true;
}

static bool output_full(struct conn *c)
{
    return evbuffer_get_length(bufferevent_get_output(c->bev)) + evbuffer_get_length(c->held) >=
           OUT_HIGH;
}

/* Parses one slice of input; false when nothing could be consumed. */
static bool feed_slice(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct evbuffer_iovec v;
    size_t n, len;
    enum http_errno err;

    if ((c->rq.active && c->rq.msg_done) || output_full(c) || evbuffer_get_length(in) == 0) {
        return false;
    }
    if (evbuffer_peek(in, -1, NULL, &v, 1) < 1) {
        return false;
    }
    len = v.iov_len < FEED_SLICE ? v.iov_len : FEED_SLICE;
    n = http_parser_execute(&c->parser, &parser_settings, v.iov_base, len);
    err = HTTP_PARSER_ERRNO(&c->parser);
    evbuffer_drain(in, n);
    if (err != HPE_OK && err != HPE_PAUSED) {
        reject(c);
        return true;
    }
    return n > 0;
}

static void conn_free(struct conn *c)
{
    reset_request(c);
    event_free(c->timer);
    evbuffer_free(c->held);
    bufferevent_free(c->bev);
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        g.conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    free(c);
}

/*
 * The one place that advances a connection and the only one that frees it,
 * so parser callbacks and route code only set flags and never free under
 * their own feet.
 */
static void drive(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    struct request *rq = &c->rq;

    for (;;) {
        if (c->kill) {
            conn_free(c);
            return;
        }
        if (rq->route == R_BYTES && rq->resp_started && !rq->resp_done) {
            pump_bytes(c);
        }
        if (rq->active && rq->msg_done && rq->resp_done) {
            if (rq->close_after) {
                c->closing = true;
            } else {
                reset_request(c);
                http_parser_pause(&c->parser, 0);
                continue;
            }
        }
        if (c->closing || !feed_slice(c)) {
            break;
        }
    }
    if (!c->closing && c->peer_eof && evbuffer_get_length(in) == 0) {
        /* A client that half-closed after a full request still gets its answer. */
        bool awaiting = rq->active && rq->msg_done && !rq->resp_done && rq->route != R_HANG;
        if (!awaiting) {
            c->closing = true;
        }
    }
    if (c->closing) {
        bufferevent_disable(c->bev, EV_READ);
        if (evbuffer_get_length(out) == 0) {
            conn_free(c);
        }
        return;
    }
    if (!c->peer_eof && evbuffer_get_length(in) < IN_HIGH) {
        bufferevent_enable(c->bev, EV_READ);
    } else {
        bufferevent_disable(c->bev, EV_READ);
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    struct request *rq = &c->rq;

    if (rq->timer_kind == T_DELAY) {
        rq->timer_kind = T_NONE;
        start_route(c);
    } else if (rq->timer_kind == T_SLOW) {
        uint64_t piece = rq->total - rq->sent;
        if (piece > rq->chunk && rq->chunk > 0) {
            piece = rq->chunk;
        }
        add_pattern(bufferevent_get_output(c->bev), rq->sent, piece);
        rq->sent += piece;
        if (rq->sent == rq->total) {
            rq->timer_kind = T_NONE;
            body_end(c);
        } else {
            arm_timer(c, T_SLOW, param_u64(rq, "every_ms", 100));
        }
    }
    drive(c);
}

/* Input arrived or output drained: either may unblock the connection. */
static void on_io(struct bufferevent *bev, void *arg)
{
    drive(arg);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    if (what & BEV_EVENT_ERROR) {
        conn_free(c);
        return;
    }
    if (what & BEV_EVENT_EOF) {
        c->peer_eof = true;
        drive(c);
    }
}

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    struct conn *c = calloc(1, sizeof(*c));
    int one = 1;

    if (c == NULL) {
        evutil_closesocket(fd);
        return;
    }
    /* Small pipelined answers must not wait for a delayed ACK. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->ep = arg;
    c->serial = ++g.next_serial;
    c->bev = bufferevent_socket_new(g.base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->timer = evtimer_new(g.base, on_timer, c);
    c->held = evbuffer_new();
    if (c->bev == NULL || c->timer == NULL || c->held == NULL) {
        fprintf(stderr, "origin: cannot set up a connection\n");
        abort();
    }
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->next = g.conns;
    if (g.conns) {
        g.conns->prev = c;
    }
    g.conns = c;
    bufferevent_setcb(c->bev, on_io, on_io, on_event, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, OUT_LOW, 0);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void on_accept_error(struct evconnlistener *lev, void *arg)
{
    struct endpoint *ep = arg;
    fprintf(stderr, "origin: accept on %s: %s\n", ep->addr,
            evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    event_base_loopbreak(g.base);
}

static void usage(void)
{
    fprintf(stderr, "usage: origin [--log FILE] --cluster NAME ADDR [ADDR...] "
                    "[--cluster NAME ADDR...]\n"
                    "  ADDR is 127.0.0.1:PORT or [::1]:PORT; prints \"ready\" once all listen\n");
    exit(2);
}

static int listen_on(struct endpoint *ep)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    if (evutil_parse_sockaddr_port(ep->addr, (struct sockaddr *)&ss, &len) != 0) {
        fprintf(stderr, "origin: %s: not an address\n", ep->addr);
        return -1;
    }
    ep->lev = evconnlistener_new_bind(g.base, on_accept, ep,
                                      LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE |
                                          LEV_OPT_CLOSE_ON_EXEC,
                                      511, (struct sockaddr *)&ss, len);
    if (ep->lev == NULL) {
        fprintf(stderr, "origin: listen on %s: %s\n", ep->addr, strerror(errno));
        return -1;
    }
    evconnlistener_set_error_cb(ep->lev, on_accept_error);
    return 0;
}

static void free_all(void)
{
    while (g.conns) {
        conn_free(g.conns);
    }
    while (g.endpoints) {
        struct endpoint *ep = g.endpoints;
        g.endpoints = ep->next;
        if (ep->lev) {
            evconnlistener_free(ep->lev);
        }
        free(ep);
    }
}

int main(int argc, char **argv)
{
    const char *cluster = NULL;
    const char *log_path = NULL;
    struct endpoint **tail = &g.endpoints;
    struct event *sigs[2];
    int rc = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--log") == 0 && i + 1 < argc) {
            log_path = argv[++i];
        } else if (strcmp(argv[i], "--cluster") == 0 && i + 1 < argc) {
            cluster = argv[++i];
            if (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0) {
                usage();
            }
        } else if (argv[i][0] != '-' && cluster != NULL) {
            struct endpoint *ep = calloc(1, sizeof(*ep));
            if (ep == NULL) {
                return 1;
            }
            ep->cluster = cluster;
            ep->addr = argv[i];
            ep->health_status = 200;
            *tail = ep;
            tail = &ep->next;
        } else {
            usage();
        }
    }
    if (g.endpoints == NULL) {
        usage();
    }
    for (size_t i = 0; i < sizeof(pattern); i++) {
        pattern[i] = (uint8_t)((i * 31 + 7) & 0xff);
    }
    signal(SIGPIPE, SIG_IGN);
    if (log_path && (g.log = fopen(log_path, "a")) == NULL) {
        fprintf(stderr, "origin: %s: %s\n", log_path, strerror(errno));
        return 1;
    }
    g.base = event_base_new();
    if (g.base == NULL) {
        return 1;
    }
    for (struct endpoint *ep = g.endpoints; ep; ep = ep->next) {
        if (listen_on(ep) != 0) {
            rc = 1;
            break;
        }
    }
    sigs[0] = evsignal_new(g.base, SIGTERM, on_signal, NULL);
    sigs[1] = evsignal_new(g.base, SIGINT, on_signal, NULL);
    if (rc == 0) {
        evsignal_add(sigs[0], NULL);
        evsignal_add(sigs[1], NULL);
        printf("ready\n");
        fflush(stdout);
        event_base_dispatch(g.base);
    }
    free_all();
    event_free(sigs[0]);
    event_free(sigs[1]);
    event_base_free(g.base);
    libevent_global_shutdown();
    if (g.log) {
        fclose(g.log);
    }
    return rc;
}
