/*
 * tests/fuzz/fuzz_proxy.c: the whole data path of one worker, in process.
 *
 * A worker (router/worker.c) with no listener runs its event loop in this
 * thread; each input is one client connection handed to mr_proxy_accept()
 * as a socketpair, fed in fuzzer-chosen packets, and answered by an origin
 * written here on a loopback socket of the same loop. The loop runs until
 * nothing moves (no timer is waited for: every timeout is a minute), then
 * everything is closed, so LeakSanitizer sees each exchange's memory go.
 *
 * Input: a flags byte (bit 0: the client half-closes after its last packet;
 * bits 1-3: packets - 1), two bytes per packet giving its size, 8 bytes of
 * origin script (one per request, cycling: how the origin answers), two
 * bytes giving the length of the origin's raw answer and its bytes (script
 * kind 7 sends them as they are), then the client's bytes.
 *
 * The origin is strict, so it sees what a careful server would: a head
 * that is not a request, or a request without exactly one X-Forwarded-For
 * naming the client (a request meridian did not route, smuggled in a
 * body), or with both Content-Length and Transfer-Encoding, fails the run.
 * A body that is not strictly framed gets 400 and a close, as from a real
 * server that refuses it. MR_FUZZ_VERBOSE=1 prints what the client got.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "tests/fuzz/fuzz.h"
#include "common/err.h"
#include "conf/conf.h"
#include "router/proxy.h"
#include "router/upstream.h"
#include "router/worker.h"

#define PEER "192.0.2.1"

static struct mr_worker *worker;
static int origin_fd = -1;
static struct event *origin_ev;
static unsigned long activity; /* bumped by every byte moved here */
static uint8_t script[8];
static const uint8_t *raw; /* the origin's own bytes (script kind 7) */
static size_t raw_len;
static unsigned requests; /* seen by the origin this run */

/* ---- the origin ---------------------------------------------------- */

struct oconn {
    int fd;
    struct event *ev;
    struct evbuffer *in;
    bool broken; /* answered 400: reads no more */
    struct oconn *next;
};

static struct oconn *oconns;

static void oconn_free(struct oconn *o)
{
    struct oconn **p = &oconns;

    while (*p != o)
        p = &(*p)->next;
    *p = o->next;
    event_free(o->ev);
    evbuffer_free(o->in);
    close(o->fd);
    free(o);
}

static void say(struct oconn *o, const char *text, size_t len)
{
    /* Small answers to a socket with room: written whole or not at all. */
    if (len > 0 && write(o->fd, text, len) < 0)
        o->broken = true;
}

static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Moves *i past the CRLF ending the line at *i: 1, 0 need more, -1 a bare
 * CR or LF. */
static int skip_line(const char *p, size_t len, size_t *i)
{
    while (*i < len && p[*i] != '\r') {
        if (p[*i] == '\n')
            return -1;
        (*i)++;
    }
    if (*i + 1 >= len)
        return 0;
    if (p[*i + 1] != '\n')
        return -1;
    *i += 2;
    return 1;
}

/* Length of the chunked body at p[0..len): > 0 complete, 0 need more,
 * -1 not strictly framed. */
static long chunked_len(const char *p, size_t len)
{
    size_t i = 0;
    int r;

    for (;;) {
        uint64_t size = 0;
        size_t digits = 0;
        while (i < len && isxdigit((unsigned char)p[i])) {
            if (++digits > 15)
                return -1;
            size = size * 16 + (uint64_t)(p[i] <= '9' ? p[i] - '0' : (p[i] | 0x20) - 'a' + 10);
            i++;
        }
        if (i == len)
            return 0;
        if (digits == 0)
            return -1;
        /* Extensions are skipped to the CRLF. */
        if ((r = skip_line(p, len, &i)) <= 0)
            return r;
        if (size == 0)
            break;
        if (len - i < size + 2)
            return 0;
        i += size;
        if (p[i] != '\r' || p[i + 1] != '\n')
            return -1;
        i += 2;
    }
    /* Trailers, then the empty line. */
    for (;;) {
        size_t start = i;
        if ((r = skip_line(p, len, &i)) <= 0)
            return r;
        if (i - start == 2)
            return (long)i;
    }
}

static void fail(const char *why, const char *head, size_t len)
{
    fprintf(stderr, "origin: %s:\n%.*s\n", why, (int)len, head);
    abort();
}

/* Checks one request head; returns its body length (-2: chunked). */
static long check_head(const char *h, size_t len, bool *is_head)
{
    const char *line = h, *end = h + len - 2, *eol;
    long body = 0;
    int xff = 0, cl = 0, te = 0;

    eol = memmem(line, (size_t)(end - line), "\r\n", 2);
    /* METHOD SP TARGET SP HTTP/1.x */
    const char *sp1 = memchr(line, ' ', (size_t)(eol - line));
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
    if (sp1 == NULL || sp2 == NULL || sp1 == line || sp2 == sp1 + 1 || eol - sp2 != 9 ||
        memcmp(sp2, " HTTP/1.", 8) != 0 || (sp2[8] != '0' && sp2[8] != '1'))
        fail("not a request line", h, len);
    for (const char *m = line; m < sp1; m++)
        if (!is_tchar((unsigned char)*m))
            fail("bad method", h, len);
    for (const char *t = sp1 + 1; t < sp2; t++)
        if ((unsigned char)*t <= ' ' || *t == 0x7f)
            fail("bad target", h, len);
    *is_head = sp1 - line == 4 && memcmp(line, "HEAD", 4) == 0;
    for (line = eol + 2; line < end; line = eol + 2) {
        eol = memmem(line, (size_t)(end - line) + 2, "\r\n", 2);
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        const char *v;
        size_t vlen;
        if (colon == NULL || colon == line)
            fail("not a header line", h, len);
        for (const char *n = line; n < colon; n++)
            if (!is_tchar((unsigned char)*n))
                fail("bad header name", h, len);
        for (v = colon + 1; v < eol && (*v == ' ' || *v == '\t'); v++)
            ;
        vlen = (size_t)(eol - v);
        while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
            vlen--;
        for (size_t k = 0; k < vlen; k++)
            if (((unsigned char)v[k] < 0x20 && v[k] != '\t') || v[k] == 0x7f)
                fail("control byte in a value", h, len);
#define NAME_IS(s)                                                                                 \
    ((size_t)(colon - line) == sizeof(s) - 1 && strncasecmp(line, s, sizeof(s) - 1) == 0)
        if (NAME_IS("x-forwarded-for")) {
            xff++;
            if (vlen != strlen(PEER) || memcmp(v, PEER, vlen) != 0)
                fail("X-Forwarded-For is not the client", h, len);
        } else if (NAME_IS("content-length")) {
            cl++;
            body = 0;
            if (vlen == 0 || vlen > 18)
                fail("bad Content-Length", h, len);
            for (size_t k = 0; k < vlen; k++) {
                if (v[k] < '0' || v[k] > '9')
                    fail("bad Content-Length", h, len);
                body = body * 10 + (v[k] - '0');
            }
        } else if (NAME_IS("transfer-encoding")) {
            te++;
            if (vlen != 7 || strncasecmp(v, "chunked", 7) != 0)
                fail("Transfer-Encoding is not chunked", h, len);
        }
#undef NAME_IS
    }
    if (xff != 1)
        fail("not exactly one X-Forwarded-For: a request meridian did not route", h, len);
    if (cl > 1 || te > 1 || (cl && te))
        fail("ambiguous framing", h, len);
    return te ? -2 : body;
}

static void answer(struct oconn *o, bool is_head, bool *close_after)
{
    static const char body[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    char text[512];
    int n = 0;
    uint8_t kind = script[requests++ % sizeof(script)];
    size_t blen = kind >> 3 & 31;

    switch (kind & 7) {
    case 0:
        n = snprintf(text, sizeof(text), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%.*s", blen,
                     is_head ? 0 : (int)blen, body);
        break;
    case 1:
        n = snprintf(text, sizeof(text),
                     "HTTP/1.0 200 OK\r\nContent-Length: %zu\r\nConnection: keep-alive, "
                     "content-length\r\n\r\n%.*s",
                     blen, is_head ? 0 : (int)blen, body);
        break;
    case 2:
        n = snprintf(text, sizeof(text),
                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: "
                     "chunked\r\n\r\n%s%x\r\n%.*s\r\n0\r\n\r\n",
                     is_head ? "" : "1;ext=a\r\nx\r\n", (unsigned)blen, (int)blen, body);
        if (is_head)
            n = (int)strlen("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        break;
    case 3: n = snprintf(text, sizeof(text), "HTTP/1.1 204 No Content\r\n\r\n"); break;
    case 4:
        n = snprintf(text, sizeof(text), "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n%.*s",
                     is_head ? 0 : (int)blen, body);
        *close_after = true;
        break;
    case 5:
        n = snprintf(text, sizeof(text),
                     "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: "
                     "%zu\r\n\r\n%.*s",
                     blen, is_head ? 0 : (int)blen, body);
        break;
    case 6:
        n = snprintf(text, sizeof(text), "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n");
        break;
    case 7:
        /* Whatever the input says, as a hostile origin would. */
        say(o, (const char *)raw, raw_len);
        return;
    }
    say(o, text, (size_t)n);
}

/* Answers every whole request in o->in. */
static void serve(struct oconn *o)
{
    for (;;) {
        size_t avail = evbuffer_get_length(o->in);
        struct evbuffer_ptr end = evbuffer_search(o->in, "\r\n\r\n", 4, NULL);
        bool is_head = false, close_after = false;
        const char *p;
        long body, total;

        if (avail == 0 || o->broken)
            return;
        /* RFC 9112 2.2: empty lines before a request line are ignored. */
        if (avail >= 2 && memcmp(evbuffer_pullup(o->in, 2), "\r\n", 2) == 0) {
            evbuffer_drain(o->in, 2);
            continue;
        }
        if (end.pos < 0) {
            if (avail > 1 << 20)
                fail("a head over 1 MiB", "", 0);
            return;
        }
        p = (const char *)evbuffer_pullup(o->in, -1);
        body = check_head(p, (size_t)end.pos + 4, &is_head);
        total = end.pos + 4;
        if (body == -2) {
            long c = chunked_len(p + total, avail - (size_t)total);
            if (c < 0) {
                say(o, "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                    67);
                o->broken = true;
                shutdown(o->fd, SHUT_WR);
                return;
            }
            if (c == 0)
                return;
            total += c;
        } else {
            if ((size_t)(avail - (size_t)total) < (size_t)body)
                return;
            total += body;
        }
        evbuffer_drain(o->in, (size_t)total);
        answer(o, is_head, &close_after);
        if (close_after) {
            o->broken = true;
            shutdown(o->fd, SHUT_WR);
            return;
        }
    }
}

static void on_oconn(evutil_socket_t fd, short events, void *arg)
{
    struct oconn *o = arg;
    char buf[16384];
    ssize_t n;
    (void)events;

    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        activity++;
        if (!o->broken)
            evbuffer_add(o->in, buf, (size_t)n);
    }
    serve(o);
    if (n == 0) {
        activity++;
        oconn_free(o);
    }
}

static void on_origin_accept(evutil_socket_t fd, short events, void *arg)
{
    int cfd;
    (void)events;
    (void)arg;

    while ((cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        struct oconn *o = calloc(1, sizeof(*o));
        activity++;
        o->fd = cfd;
        o->in = evbuffer_new();
        o->ev = event_new(worker->base, cfd, EV_READ | EV_PERSIST, on_oconn, o);
        event_add(o->ev, NULL);
        o->next = oconns;
        oconns = o;
    }
}

/* ---- setup --------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t sl = sizeof(sin);
    static char dir[64] = "/tmp/meridian-fuzz-proxy-XXXXXX";
    char json[2048], path[128];
    struct mr_errors errs = {0};
    struct mr_snapshot *snap;
    FILE *f;
    (void)argc;
    (void)argv;

    /* As meridian's main(): a peer gone is an error return, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    if (mkdtemp(dir) == NULL)
        abort();
    snprintf(path, sizeof(path), "%s/session.keys", dir);
    f = fopen(path, "w");
    fputs("k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n", f);
    fclose(f);

    origin_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (origin_fd < 0 || bind(origin_fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
        listen(origin_fd, 64) != 0 || getsockname(origin_fd, (struct sockaddr *)&sin, &sl) != 0)
        abort();
    snprintf(json, sizeof(json),
             "{\"listeners\": [{\"name\": \"http\", \"address\": \"127.0.0.1:1\"}],"
             " \"session\": {\"keys_file\": \"session.keys\"},"
             " \"timeouts\": {\"client_header_ms\": 60000, \"client_idle_ms\": 60000,"
             "   \"upstream_connect_ms\": 60000, \"upstream_response_ms\": 60000,"
             "   \"upstream_idle_ms\": 60000, \"tunnel_idle_ms\": 60000},"
             " \"limits\": {\"max_head_bytes\": 4096, \"max_headers\": 32, \"max_uri_bytes\": "
             "1024},"
             " \"routing\": {\"default\": [\"r\"]},"
             " \"regions\": [{\"name\": \"r\", \"lat\": 0, \"lon\": 0, \"clusters\":"
             "   [{\"name\": \"c\", \"endpoints\": [\"127.0.0.1:%d\"]}]}]}",
             ntohs(sin.sin_port));
    snap = mr_conf_load_string(json, dir, &errs);
    if (snap == NULL) {
        for (size_t i = 0; i < errs.n_errors; i++)
            fprintf(stderr, "%s\n", errs.errors[i]);
        abort();
    }
    mr_errors_clear(&errs);
    unlink(path);
    rmdir(dir);
    mr_snap_publish(snap);
    worker = mr_worker_new(0, NULL, 0, &mr_proxy_conns);
    if (worker == NULL)
        abort();
    origin_ev = event_new(worker->base, origin_fd, EV_READ | EV_PERSIST, on_origin_accept, NULL);
    event_add(origin_ev, NULL);
    return 0;
}

/* ---- one run ------------------------------------------------------- */

static void drain_client(int fd, struct evbuffer *got)
{
    char buf[16384];
    ssize_t n;

    while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
        activity++;
        evbuffer_add(got, buf, (size_t)n);
    }
}

/* Runs the loop until nothing has moved for a few rounds. */
static void settle(int client_fd, struct evbuffer *got)
{
    int quiet = 0;

    for (int round = 0; round < 400 && quiet < 4; round++) {
        unsigned long before = activity;
        event_base_loop(worker->base, EVLOOP_NONBLOCK);
        if (client_fd >= 0)
            drain_client(client_fd, got);
        quiet = activity == before ? quiet + 1 : 0;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000)};
    size_t n_packets, sizes[8], off;
    struct evbuffer *got;
    bool half_close;
    int sv[2];

    if (size < 1)
        return 0;
    half_close = data[0] & 1;
    n_packets = (size_t)(data[0] >> 1 & 7) + 1;
    off = 1;
    if (size < off + 2 * n_packets + sizeof(script) + 2)
        return 0;
    for (size_t i = 0; i < n_packets; i++, off += 2)
        sizes[i] = (size_t)data[off] << 8 | data[off + 1];
    memcpy(script, data + off, sizeof(script));
    off += sizeof(script);
    raw_len = (size_t)data[off] << 8 | data[off + 1];
    off += 2;
    raw_len = raw_len < size - off ? raw_len : size - off;
    raw = data + off;
    off += raw_len;
    requests = 0;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    inet_pton(AF_INET, PEER, &peer.sin_addr);
    got = evbuffer_new();
    mr_proxy_accept(worker, 0, sv[0], (struct sockaddr *)&peer, sizeof(peer));
    for (size_t i = 0; i < n_packets && off < size; i++) {
        size_t len = i + 1 == n_packets || sizes[i] > size - off ? size - off : sizes[i];
        if (len > 0 && write(sv[1], data + off, len) < 0)
            break;
        off += len;
        activity++;
        settle(sv[1], got);
    }
    if (half_close) {
        shutdown(sv[1], SHUT_WR);
        activity++;
        settle(sv[1], got);
    }
    /* The client goes; everything it held must be freed. */
    close(sv[1]);
    activity++;
    settle(-1, NULL);
    mr_proxy_close_all(worker);
    mr_upstream_pool_close_all(worker->pool);
    settle(-1, NULL);
    while (oconns != NULL)
        oconn_free(oconns);
    if (getenv("MR_FUZZ_VERBOSE") != NULL)
        fprintf(stderr, "client got %zu bytes:\n%.*s\n", evbuffer_get_length(got),
                (int)evbuffer_get_length(got), (const char *)evbuffer_pullup(got, -1));
    evbuffer_free(got);
    return 0;
}
