/*
 * tools/tlsbench.c: a TLS connection-rate load client for `make bench`.
 *
 * N concurrent slots on one thread (non-blocking sockets, epoll). Each slot
 * loops: connect, TLS handshake, one GET, read the response and then the
 * server's close, record, start over. Modes:
 *   full       every connection is a full handshake (no session offered)
 *   resume     every slot keeps one SSL_SESSION (the newest ticket it was
 *              given: with TLS 1.3 tickets arrive after the handshake, read
 *              through SSL_CTX_sess_set_new_cb while the response is read)
 *              and offers it on its next connection; the measured window
 *              starts once every slot holds one
 *   keepalive  one handshake per slot, then GET after GET on the connection
 * Each response must be "HTTP/1.x 200" with a body of its Content-Length.
 *
 * Bounded: a warm-up (-w), then a measured window of -d seconds or -n
 * connections (requests in keepalive mode), whichever ends first; every
 * connection has a deadline (-T). With -P PID (repeatable) it reads the
 * utime+stime of those processes from /proc/PID/stat at the start and the
 * end of the measured window, so warm-up and priming are not counted.
 *
 * Output: a human summary on stderr and one machine line on stdout:
 *   TLSBENCH key=value ...
 * Exit status 0 when at least one connection succeeded and none failed,
 * 1 when some failed (figures still printed), 2 on usage or setup errors.
 *
 * Standalone: links only libssl and libcrypto (OpenSSL 3).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define MAX_SLOTS 10000
#define MAX_PIDS 8
#define HEAD_MAX 16384
#define MAX_CPUS 16

enum mode { M_FULL, M_RESUME, M_KEEPALIVE };
enum state { S_IDLE, S_CONNECTING, S_HANDSHAKE, S_WRITE, S_READ, S_DRAIN };
enum phase { P_WARMUP, P_MEASURE, P_DONE };
enum err_kind { E_CONNECT, E_HANDSHAKE, E_IO, E_TIMEOUT, E_STATUS, E_LENGTH, E_NOCLOSE, E_COUNT };
static const char *const err_names[E_COUNT] = {
    "connect", "handshake", "io", "timeout", "status", "length", "noclose",
};

struct slot {
    int idx;
    int fd;
    SSL *ssl;
    enum state state;
    uint64_t t_conn; /* connect() started */
    uint64_t t_req;  /* request started (keepalive: each request) */
    uint64_t deadline;
    size_t wrote; /* request bytes SSL_write accepted (retry with the same buffer) */
    char head[HEAD_MAX];
    size_t head_len;
    bool head_done;
    int status;
    long long content_length; /* -1: none */
    long long body;
    bool counted;      /* response complete and counted */
    unsigned tickets;  /* NewSessionTicket/new sessions seen on this connection */
    SSL_SESSION *sess; /* resume: the session this slot offers next */
};

static struct {
    enum mode mode;
    struct sockaddr_in addr;
    const char *target;
    int conns;
    double duration, warmup, conn_timeout;
    long long max_count, max_errors;
    const char *path, *host, *sni, *cookie, *ciphers, *suites, *groups, *alpn, *cafile;
    int version; /* 0: negotiate (TLS 1.2..1.3); else TLS1_2_VERSION/TLS1_3_VERSION */
    pid_t pids[MAX_PIDS];
    int npids;
    bool quiet;
} opt = {
    .mode = M_FULL,
    .conns = 50,
    .duration = 5,
    .warmup = 1,
    .conn_timeout = 5,
    .path = "/",
    .alpn = "http/1.1",
};

static struct {
    enum phase phase;
    uint64_t t_start, t_end, stop_at;
    long long done; /* measured completions (connections, or requests in keepalive) */
    long long handshakes, resumed; /* handshakes completed in the window, of which resumed */
    long long closed, tickets;     /* connections closed in the window, sessions they were given */
    long long errors[E_COUNT];     /* in the window */
    long long warm_done, warm_errors;
    uint32_t *lat; /* measured latencies, µs */
    size_t nlat, caplat;
    unsigned long long cpu0, cpu1;
    unsigned long long hbusy[2][MAX_CPUS], htotal[2][MAX_CPUS], hsteal[2][MAX_CPUS];
    int ncpus;
    struct rusage ru0, ru1;
    char version[32], cipher[64], group[32], alpn[32], key[32];
    bool have_params;
    int primed; /* resume: slots holding a session */
    unsigned reported[E_COUNT];
} st;

static SSL_CTX *ctx;
static int ep;
static struct slot *slots;
static char request[4096];
static size_t request_len;
static int slot_index = -1; /* SSL ex_data index for the slot pointer */

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("tlsbench: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

/* utime+stime (clock ticks) of every -P process, all threads included. */
static unsigned long long proc_ticks(void)
{
    unsigned long long total = 0;
    for (int i = 0; i < opt.npids; i++) {
        char path[64], buf[2048];
        snprintf(path, sizeof path, "/proc/%d/stat", (int)opt.pids[i]);
        FILE *f = fopen(path, "r");
        if (!f)
            die("cannot read %s: %s", path, strerror(errno));
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        /* comm (field 2) may hold spaces and parentheses: start after the last ')'. */
        char *p = strrchr(buf, ')');
        if (!p)
            die("%s: unexpected format", path);
        unsigned long long ut = 0, stm = 0;
        /* after ") ": field 3 (state) ... utime is field 14, stime 15 */
        if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &stm) != 2)
            die("%s: cannot parse utime/stime", path);
        total += ut + stm;
    }
    return total;
}

/* Busy, total and steal ticks of each CPU from /proc/stat (busy: all but idle and iowait). */
static void host_ticks(int which)
{
    FILE *f = fopen("/proc/stat", "r");
    char line[512];
    int n = 0;
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        unsigned long long v[8] = {0};
        int cpu;
        if (strncmp(line, "cpu", 3) != 0 || line[3] < '0' || line[3] > '9')
            continue;
        if (sscanf(line + 3, "%d %llu %llu %llu %llu %llu %llu %llu %llu", &cpu, &v[0], &v[1],
                   &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) < 9 ||
            cpu < 0 || cpu >= MAX_CPUS)
            continue;
        unsigned long long total = 0;
        for (int i = 0; i < 8; i++)
            total += v[i];
        st.htotal[which][cpu] = total;
        st.hbusy[which][cpu] = total - v[3] - v[4];
        st.hsteal[which][cpu] = v[7];
        if (cpu + 1 > n)
            n = cpu + 1;
    }
    fclose(f);
    st.ncpus = n;
}

static double rusage_s(const struct rusage *a, const struct rusage *b)
{
    double ua = a->ru_utime.tv_sec + a->ru_utime.tv_usec / 1e6 + a->ru_stime.tv_sec +
                a->ru_stime.tv_usec / 1e6;
    double ub = b->ru_utime.tv_sec + b->ru_utime.tv_usec / 1e6 + b->ru_stime.tv_sec +
                b->ru_stime.tv_usec / 1e6;
    return ub - ua;
}

static void report_error(struct slot *s, enum err_kind k, const char *what)
{
    if (st.phase == P_MEASURE)
        st.errors[k]++;
    else if (st.phase == P_WARMUP)
        st.warm_errors++; /* reported too: a broken server must not look fine */
    if (st.reported[k]++ < 3 && !opt.quiet) {
        char e[256] = "";
        unsigned long code = ERR_peek_last_error();
        if (code)
            ERR_error_string_n(code, e, sizeof e);
        fprintf(stderr, "tlsbench: slot %d: %s error: %s%s%s\n", s->idx, err_names[k], what,
                code ? ": " : "", e);
    }
    ERR_clear_error();
}

static void capture_params(SSL *ssl)
{
    if (st.have_params)
        return;
    st.have_params = true;
    snprintf(st.version, sizeof st.version, "%s", SSL_get_version(ssl));
    snprintf(st.cipher, sizeof st.cipher, "%s", SSL_get_cipher_name(ssl));
    int g = SSL_get_negotiated_group(ssl);
    const char *gn = g ? SSL_group_to_name(ssl, g) : NULL;
    snprintf(st.group, sizeof st.group, "%s", gn ? gn : (g ? "?" : "none"));
    const unsigned char *a = NULL;
    unsigned alen = 0;
    SSL_get0_alpn_selected(ssl, &a, &alen);
    snprintf(st.alpn, sizeof st.alpn, "%.*s", alen ? (int)alen : 4,
             alen ? (const char *)a : "none");
    X509 *cert = SSL_get0_peer_certificate(ssl);
    EVP_PKEY *pk = cert ? X509_get0_pubkey(cert) : NULL;
    if (pk) {
        int id = EVP_PKEY_get_base_id(pk);
        snprintf(st.key, sizeof st.key, "%s-%d",
                 id == EVP_PKEY_EC    ? "EC"
                 : id == EVP_PKEY_RSA ? "RSA"
                                      : OBJ_nid2sn(id),
                 EVP_PKEY_get_bits(pk));
    } else {
        snprintf(st.key, sizeof st.key, "none");
    }
}

/* A new session from the server (TLS 1.3: each NewSessionTicket; TLS 1.2: at
 * the end of the handshake). In resume mode the slot keeps the newest one. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    struct slot *s = SSL_get_ex_data(ssl, slot_index);
    if (!s)
        return 0;
    s->tickets++;
    if (opt.mode != M_RESUME)
        return 0;
    if (!s->sess)
        st.primed++;
    else
        SSL_SESSION_free(s->sess);
    s->sess = sess;
    return 1; /* we keep the reference */
}

static void slot_close(struct slot *s)
{
    if (s->ssl && st.phase == P_MEASURE) {
        st.closed++;
        st.tickets += s->tickets;
    }
    if (s->ssl) {
        /* Mark the connection as cleanly shut down without sending anything:
         * SSL_free of an unclean one marks its session not resumable. */
        SSL_set_shutdown(s->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    if (s->fd >= 0) {
        close(s->fd); /* also removes it from the epoll set */
        s->fd = -1;
    }
    s->state = S_IDLE;
}

static void slot_fail(struct slot *s, enum err_kind k, const char *what)
{
    report_error(s, k, what);
    slot_close(s);
}

static void record(struct slot *s, uint64_t t0)
{
    uint64_t t = now_us();
    if (st.phase == P_WARMUP) {
        st.warm_done++;
        return;
    }
    if (st.phase != P_MEASURE)
        return;
    st.done++;
    if (st.nlat == st.caplat) {
        size_t cap = st.caplat ? st.caplat * 2 : 65536;
        uint32_t *p = realloc(st.lat, cap * sizeof *p);
        if (!p)
            die("out of memory");
        st.lat = p;
        st.caplat = cap;
    }
    uint64_t d = t - t0;
    st.lat[st.nlat++] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

static void start_request(struct slot *s)
{
    s->state = S_WRITE;
    s->wrote = 0;
    s->head_len = 0;
    s->head_done = false;
    s->status = 0;
    s->content_length = -1;
    s->body = 0;
    s->counted = false;
    s->t_req = now_us();
    s->deadline = s->t_req + (uint64_t)(opt.conn_timeout * 1e6);
}

static void slot_start(struct slot *s)
{
    s->tickets = 0;
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0)
        die("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    s->t_conn = now_us();
    s->deadline = s->t_conn + (uint64_t)(opt.conn_timeout * 1e6);
    s->ssl = SSL_new(ctx);
    if (!s->ssl)
        die("SSL_new failed");
    SSL_set_ex_data(s->ssl, slot_index, s);
    SSL_set_fd(s->ssl, s->fd);
    if (opt.sni)
        SSL_set_tlsext_host_name(s->ssl, opt.sni);
    if (opt.cafile && opt.sni)
        SSL_set1_host(s->ssl, opt.sni);
    if (opt.mode == M_RESUME && s->sess)
        SSL_set_session(s->ssl, s->sess);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = s};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev) < 0)
        die("epoll_ctl: %s", strerror(errno));
    if (connect(s->fd, (struct sockaddr *)&opt.addr, sizeof opt.addr) == 0) {
        s->state = S_HANDSHAKE;
    } else if (errno == EINPROGRESS) {
        s->state = S_CONNECTING;
    } else {
        char what[128];
        snprintf(what, sizeof what, "connect %s: %s", opt.target, strerror(errno));
        slot_fail(s, E_CONNECT, what);
    }
}

/* Parse the response head once "\r\n\r\n" is in s->head. */
static bool parse_head(struct slot *s, size_t end)
{
    s->head[end] = '\0';
    if (strncmp(s->head, "HTTP/1.", 7) != 0 || s->head_len < 12)
        return false;
    s->status = atoi(s->head + 9);
    for (char *line = strstr(s->head, "\r\n"); line && line[2]; line = strstr(line + 2, "\r\n")) {
        char *l = line + 2;
        if (strncasecmp(l, "content-length:", 15) == 0)
            s->content_length = strtoll(l + 15, NULL, 10);
    }
    return true;
}

/* The response is complete when its body has Content-Length bytes. */
static void response_done(struct slot *s)
{
    s->counted = true;
    if (s->status != 200) {
        char what[64];
        snprintf(what, sizeof what, "HTTP status %d", s->status);
        slot_fail(s, E_STATUS, what);
        return;
    }
    if (opt.mode == M_KEEPALIVE) {
        record(s, s->t_req);
        if (st.phase == P_DONE) {
            slot_close(s);
            return;
        }
        start_request(s);
        return;
    }
    record(s, s->t_conn);
    s->state = S_DRAIN; /* Connection: close: wait for the server to close */
}

static void on_eof(struct slot *s)
{
    if (s->state == S_DRAIN) {
        slot_close(s);
        return;
    }
    if (s->head_done && s->content_length < 0 && opt.mode != M_KEEPALIVE) {
        /* no Content-Length: the body ends at the close */
        response_done(s);
        if (s->state == S_DRAIN)
            slot_close(s);
        return;
    }
    slot_fail(s, s->head_done ? E_LENGTH : E_IO, "connection closed before the response ended");
}

static void consume(struct slot *s, const char *p, size_t n)
{
    while (n > 0 && s->state == S_READ) {
        if (!s->head_done) {
            size_t take = HEAD_MAX - 1 - s->head_len;
            if (take > n)
                take = n;
            memcpy(s->head + s->head_len, p, take);
            size_t old = s->head_len;
            s->head_len += take;
            s->head[s->head_len] = '\0';
            size_t from = old >= 3 ? old - 3 : 0;
            char *e = strstr(s->head + from, "\r\n\r\n");
            if (!e) {
                if (s->head_len >= HEAD_MAX - 1) {
                    slot_fail(s, E_IO, "response head too large");
                    return;
                }
                return;
            }
            size_t end = (size_t)(e - s->head) + 4;
            if (!parse_head(s, end)) {
                slot_fail(s, E_STATUS, "not an HTTP/1.x response");
                return;
            }
            s->head_done = true;
            if (opt.mode == M_KEEPALIVE && s->content_length < 0) {
                slot_fail(s, E_LENGTH, "keepalive mode needs Content-Length");
                return;
            }
            size_t used = end - old; /* bytes of this chunk that belonged to the head */
            p += used;
            n -= used;
            s->body = 0;
        } else {
            s->body += (long long)n;
            n = 0;
        }
        if (s->content_length >= 0 && s->body > s->content_length) {
            slot_fail(s, E_LENGTH, "more body bytes than Content-Length");
            return;
        }
        if (s->content_length >= 0 && s->body == s->content_length) {
            if (n > 0) {
                slot_fail(s, E_LENGTH, "bytes after the response");
                return;
            }
            response_done(s);
            return;
        }
    }
    if (n > 0 && s->state == S_DRAIN)
        slot_fail(s, E_LENGTH, "bytes after the response");
}

static void drive(struct slot *s)
{
    for (;;) {
        switch (s->state) {
        case S_IDLE: return;
        case S_CONNECTING: {
            int err = 0;
            socklen_t len = sizeof err;
            if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                err = errno;
            if (err == EINPROGRESS || err == EALREADY)
                return;
            if (err) {
                char what[128];
                snprintf(what, sizeof what, "connect %s: %s", opt.target, strerror(err));
                slot_fail(s, E_CONNECT, what);
                return;
            }
            s->state = S_HANDSHAKE;
            break;
        }
        case S_HANDSHAKE: {
            ERR_clear_error();
            int r = SSL_connect(s->ssl);
            if (r == 1) {
                if (st.phase != P_DONE)
                    capture_params(s->ssl);
                bool reused = SSL_session_reused(s->ssl);
                if (st.phase == P_MEASURE) {
                    st.handshakes++;
                    st.resumed += reused;
                }
                uint64_t t_conn = s->t_conn;
                start_request(s);
                s->t_req = t_conn; /* latency of a new connection counts from connect() */
                break;
            }
            int e = SSL_get_error(s->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return;
            slot_fail(s, E_HANDSHAKE,
                      e == SSL_ERROR_SYSCALL ? "handshake: connection reset or closed"
                                             : "handshake");
            return;
        }
        case S_WRITE: {
            ERR_clear_error();
            int r = SSL_write(s->ssl, request + s->wrote, (int)(request_len - s->wrote));
            if (r > 0) {
                s->wrote += (size_t)r;
                if (s->wrote == request_len)
                    s->state = S_READ;
                break;
            }
            int e = SSL_get_error(s->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return;
            slot_fail(s, E_IO, "write");
            return;
        }
        case S_READ:
        case S_DRAIN: {
            char buf[16384];
            ERR_clear_error();
            int r = SSL_read(s->ssl, buf, sizeof buf);
            if (r > 0) {
                consume(s, buf, (size_t)r);
                break;
            }
            int e = SSL_get_error(s->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return;
            if (e == SSL_ERROR_ZERO_RETURN) {
                on_eof(s);
                return;
            }
            if (e == SSL_ERROR_SYSCALL && s->state == S_DRAIN) {
                slot_close(s); /* a reset after the whole response: count it done */
                return;
            }
            slot_fail(s, E_IO, "read");
            return;
        }
        }
    }
}

static void check_timeouts(uint64_t t)
{
    for (int i = 0; i < opt.conns; i++) {
        struct slot *s = &slots[i];
        if (s->state == S_IDLE || t < s->deadline)
            continue;
        if (s->state == S_DRAIN)
            slot_fail(s, E_NOCLOSE, "the server did not close after Connection: close");
        else
            slot_fail(s, E_TIMEOUT,
                      s->state == S_CONNECTING  ? "connect timed out"
                      : s->state == S_HANDSHAKE ? "handshake timed out"
                                                : "response timed out");
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void begin_measure(void)
{
    memset(st.errors, 0, sizeof st.errors);
    st.phase = P_MEASURE;
    st.done = st.handshakes = st.resumed = st.closed = st.tickets = 0;
    st.nlat = 0;
    st.cpu0 = opt.npids ? proc_ticks() : 0;
    getrusage(RUSAGE_SELF, &st.ru0);
    host_ticks(0);
    st.t_start = now_us();
    st.stop_at = st.t_start + (uint64_t)(opt.duration * 1e6);
}

static void end_measure(void)
{
    st.t_end = now_us();
    st.cpu1 = opt.npids ? proc_ticks() : 0;
    getrusage(RUSAGE_SELF, &st.ru1);
    host_ticks(1);
    st.phase = P_DONE;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: tlsbench [options] HOST:PORT\n"
            "  -m MODE      full | resume | keepalive (default full)\n"
            "  -c N         concurrent connections (50)\n"
            "  -d SECONDS   measured duration (5)\n"
            "  -n COUNT     stop after COUNT measured connections/requests (0: duration only)\n"
            "  -w SECONDS   warm-up before measuring (1); resume mode also waits until every\n"
            "               slot holds a session (at most warm-up + 10 s)\n"
            "  -E COUNT     stop after COUNT errors (0: never)\n"
            "  -T SECONDS   per connection (keepalive: per request) deadline (5)\n"
            "  -V VERSION   1.2 | 1.3 (default: negotiate 1.2..1.3)\n"
            "  -C LIST      TLS 1.2 cipher list offered;  -S LIST  TLS 1.3 suites offered\n"
            "  -g LIST      groups offered (default OpenSSL's)\n"
            "  -a LIST      ALPN protocols, comma separated (http/1.1; \"\" for none)\n"
            "  -s NAME      SNI and Host (default: none, Host: HOST:PORT)\n"
            "  -p PATH      request path (/)\n"
            "  -H COOKIE    send 'Cookie: COOKIE'\n"
            "  -k CAFILE    verify the server certificate against CAFILE (and -s NAME)\n"
            "  -P PID       proxy process whose CPU is measured (repeatable, max %d)\n"
            "  -q           no per-error messages\n",
            MAX_PIDS);
    exit(2);
}

static bool set_alpn(SSL_CTX *c, const char *list)
{
    unsigned char wire[256];
    size_t n = 0;
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 0 || len > 255 || n + 1 + len > sizeof wire)
            return false;
        wire[n++] = (unsigned char)len;
        memcpy(wire + n, p, len);
        n += len;
        p += len + (e ? 1 : 0);
    }
    return n == 0 || SSL_CTX_set_alpn_protos(c, wire, (unsigned)n) == 0;
}

int main(int argc, char **argv)
{
    int c;
    while ((c = getopt(argc, argv, "m:c:d:n:w:E:T:V:C:S:g:a:s:p:H:k:P:qh")) != -1) {
        switch (c) {
        case 'm':
            if (!strcmp(optarg, "full"))
                opt.mode = M_FULL;
            else if (!strcmp(optarg, "resume"))
                opt.mode = M_RESUME;
            else if (!strcmp(optarg, "keepalive"))
                opt.mode = M_KEEPALIVE;
            else
                usage();
            break;
        case 'c': opt.conns = atoi(optarg); break;
        case 'd': opt.duration = atof(optarg); break;
        case 'n': opt.max_count = atoll(optarg); break;
        case 'w': opt.warmup = atof(optarg); break;
        case 'E': opt.max_errors = atoll(optarg); break;
        case 'T': opt.conn_timeout = atof(optarg); break;
        case 'V':
            if (!strcmp(optarg, "1.2"))
                opt.version = TLS1_2_VERSION;
            else if (!strcmp(optarg, "1.3"))
                opt.version = TLS1_3_VERSION;
            else
                usage();
            break;
        case 'C': opt.ciphers = optarg; break;
        case 'S': opt.suites = optarg; break;
        case 'g': opt.groups = optarg; break;
        case 'a': opt.alpn = optarg; break;
        case 's': opt.sni = optarg; break;
        case 'p': opt.path = optarg; break;
        case 'H': opt.cookie = optarg; break;
        case 'k': opt.cafile = optarg; break;
        case 'P':
            if (opt.npids == MAX_PIDS)
                usage();
            opt.pids[opt.npids++] = (pid_t)atoi(optarg);
            break;
        case 'q': opt.quiet = true; break;
        default: usage();
        }
    }
    if (optind != argc - 1 || opt.conns < 1 || opt.conns > MAX_SLOTS || opt.duration <= 0 ||
        opt.duration > 3600 || opt.warmup < 0 || opt.warmup > 600 || opt.conn_timeout <= 0 ||
        opt.max_count < 0 || opt.max_errors < 0)
        usage();
    opt.target = argv[optind];
    char hostbuf[256];
    const char *colon = strrchr(opt.target, ':');
    if (!colon || (size_t)(colon - opt.target) >= sizeof hostbuf)
        usage();
    memcpy(hostbuf, opt.target, (size_t)(colon - opt.target));
    hostbuf[colon - opt.target] = '\0';
    opt.addr.sin_family = AF_INET;
    opt.addr.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, hostbuf, &opt.addr.sin_addr) != 1)
        die("%s: need an IPv4 address and a port", opt.target);
    for (int i = 0; i < opt.npids; i++)
        if (kill(opt.pids[i], 0) < 0)
            die("-P %d: %s", (int)opt.pids[i], strerror(errno));
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)opt.conns + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    int n = snprintf(request, sizeof request,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tlsbench\r\nAccept: "
                     "*/*\r\n%s%s%s%s\r\n",
                     opt.path, opt.sni ? opt.sni : opt.target, opt.cookie ? "Cookie: " : "",
                     opt.cookie ? opt.cookie : "", opt.cookie ? "\r\n" : "",
                     opt.mode == M_KEEPALIVE ? "" : "Connection: close\r\n");
    if (n < 0 || (size_t)n >= sizeof request)
        die("request too long");
    request_len = (size_t)n;

    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        die("SSL_CTX_new failed");
    SSL_CTX_set_min_proto_version(ctx, opt.version ? opt.version : TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, opt.version ? opt.version : TLS1_3_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (opt.ciphers && SSL_CTX_set_cipher_list(ctx, opt.ciphers) != 1)
        die("-C %s: no usable cipher", opt.ciphers);
    if (opt.suites && SSL_CTX_set_ciphersuites(ctx, opt.suites) != 1)
        die("-S %s: no usable suite", opt.suites);
    if (opt.groups && SSL_CTX_set1_groups_list(ctx, opt.groups) != 1)
        die("-g %s: unknown group", opt.groups);
    if (!set_alpn(ctx, opt.alpn))
        die("-a %s: bad ALPN list", opt.alpn);
    if (opt.cafile) {
        if (SSL_CTX_load_verify_locations(ctx, opt.cafile, NULL) != 1)
            die("-k %s: cannot load", opt.cafile);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    /* Sessions reach us through the callback only; no internal client cache. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);
    slot_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1: %s", strerror(errno));
    slots = calloc((size_t)opt.conns, sizeof *slots);
    if (!slots)
        die("out of memory");

    uint64_t t0 = now_us();
    uint64_t warm_end = t0 + (uint64_t)(opt.warmup * 1e6);
    uint64_t prime_limit = warm_end + 10000000u; /* resume: sessions for every slot by then */
    st.phase = P_WARMUP;
    for (int i = 0; i < opt.conns; i++) {
        slots[i].idx = i;
        slots[i].fd = -1;
        slot_start(&slots[i]);
    }
    if (opt.warmup == 0 && opt.mode != M_RESUME)
        begin_measure();

    struct epoll_event evs[256];
    uint64_t last_scan = t0;
    while (st.phase != P_DONE) {
        int k = epoll_wait(ep, evs, 256, 50);
        if (k < 0 && errno != EINTR)
            die("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < k; i++)
            drive(evs[i].data.ptr);
        uint64_t t = now_us();
        if (t - last_scan >= 50000) {
            check_timeouts(t);
            last_scan = t;
        }
        if (st.phase == P_WARMUP && t >= warm_end) {
            if (opt.mode != M_RESUME || st.primed == opt.conns)
                begin_measure();
            else if (t >= prime_limit)
                die("resume: only %d of %d slots got a session in %.0f s of warm-up (does the "
                    "server issue tickets or session IDs?)",
                    st.primed, opt.conns, opt.warmup + 10);
        } else if (st.phase == P_MEASURE &&
                   (t >= st.stop_at || (opt.max_count && st.done >= opt.max_count))) {
            end_measure();
        }
        if (opt.max_errors && st.phase != P_DONE) {
            long long e = st.warm_errors;
            for (int i = 0; i < E_COUNT; i++)
                e += st.errors[i];
            if (e >= opt.max_errors) {
                if (st.phase == P_WARMUP)
                    begin_measure();
                end_measure();
            }
        }
        if (st.phase == P_DONE)
            break;
        /* refill idle slots (after a close or an error) */
        for (int i = 0; i < opt.conns; i++)
            if (slots[i].state == S_IDLE)
                slot_start(&slots[i]);
    }
    for (int i = 0; i < opt.conns; i++) {
        slot_close(&slots[i]);
        if (slots[i].sess)
            SSL_SESSION_free(slots[i].sess);
    }

    double secs = (double)(st.t_end - st.t_start) / 1e6;
    long long errs = st.warm_errors;
    for (int i = 0; i < E_COUNT; i++)
        errs += st.errors[i];
    uint32_t p50 = 0, p90 = 0, p99 = 0, pmax = 0;
    if (st.nlat) {
        qsort(st.lat, st.nlat, sizeof *st.lat, cmp_u32);
        p50 = st.lat[(st.nlat - 1) * 50 / 100];
        p90 = st.lat[(st.nlat - 1) * 90 / 100];
        p99 = st.lat[(st.nlat - 1) * 99 / 100];
        pmax = st.lat[st.nlat - 1];
    }
    long hz = sysconf(_SC_CLK_TCK);
    double proxy_cpu_s = opt.npids ? (double)(st.cpu1 - st.cpu0) / (double)hz : 0;
    double client_cpu_s = rusage_s(&st.ru0, &st.ru1);
    double rate = secs > 0 ? (double)st.done / secs : 0;
    static const char *const mode_names[] = {"full", "resume", "keepalive"};
    printf("TLSBENCH mode=%s conns=%d secs=%.3f done=%lld rate=%.1f p50_us=%u p90_us=%u p99_us=%u "
           "max_us=%u"
           " handshakes=%lld resumed=%lld tickets_per_conn=%.2f errors=%lld",
           mode_names[opt.mode], opt.conns, secs, st.done, rate, p50, p90, p99, pmax, st.handshakes,
           st.resumed, st.closed ? (double)st.tickets / (double)st.closed : 0.0, errs);
    for (int i = 0; i < E_COUNT; i++)
        printf(" err_%s=%lld", err_names[i], st.errors[i]);
    printf(" warmup_errors=%lld", st.warm_errors);
    printf(" version=%s cipher=%s group=%s alpn=%s key=%s", st.have_params ? st.version : "none",
           st.have_params ? st.cipher : "none", st.have_params ? st.group : "none",
           st.have_params ? st.alpn : "none", st.have_params ? st.key : "none");
    if (opt.npids)
        printf(" proxy_cpu_s=%.3f proxy_cpu_us_per=%.2f proxy_busy_pct=%.1f", proxy_cpu_s,
               st.done ? proxy_cpu_s * 1e6 / (double)st.done : 0,
               secs > 0 ? proxy_cpu_s * 100 / secs : 0);
    printf(" client_cpu_s=%.3f client_busy_pct=%.1f", client_cpu_s,
           secs > 0 ? client_cpu_s * 100 / secs : 0);
    /* each CPU's busy share over the window (who set the rate?), and steal */
    unsigned long long steal = 0, total = 0;
    printf(" cpu_busy_pct=");
    for (int i = 0; i < st.ncpus; i++) {
        unsigned long long dt = st.htotal[1][i] - st.htotal[0][i];
        printf("%s%.0f", i ? "/" : "",
               dt ? 100.0 * (double)(st.hbusy[1][i] - st.hbusy[0][i]) / (double)dt : 0.0);
        steal += st.hsteal[1][i] - st.hsteal[0][i];
        total += dt;
    }
    printf(" steal_pct=%.1f\n", total ? 100.0 * (double)steal / (double)total : 0.0);
    fflush(stdout);
    fprintf(stderr,
            "tlsbench %s %s: %lld %s in %.2f s = %.1f/s, p50 %.2f ms, p99 %.2f ms, errors %lld",
            mode_names[opt.mode], opt.target, st.done,
            opt.mode == M_KEEPALIVE ? "requests" : "connections", secs, rate, p50 / 1e3, p99 / 1e3,
            errs);
    for (int i = 0; i < E_COUNT; i++)
        if (st.errors[i])
            fprintf(stderr, " %s=%lld", err_names[i], st.errors[i]);
    if (st.warm_errors)
        fprintf(stderr, " (warm-up: %lld)", st.warm_errors);
    if (opt.mode == M_RESUME)
        fprintf(stderr, ", resumed %lld of %lld", st.resumed, st.handshakes);
    if (st.have_params)
        fprintf(stderr, " [%s %s %s %s alpn=%s]", st.version, st.cipher, st.group, st.key, st.alpn);
    fputc('\n', stderr);
    SSL_CTX_free(ctx);
    free(st.lat);
    free(slots);
    return st.done > 0 && errs == 0 ? 0 : 1;
}
