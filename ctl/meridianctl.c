/*
 * ctl/meridianctl.c: meridianctl, the command-line client of the admin API
 * (docs/admin-api.md).
 *
 *   meridianctl [--admin URL] [--token-file FILE] [--json] COMMAND [ARGS]
 *
 * One command is one HTTP/1.1 request on a fresh connection (Connection:
 * close), answered by one printout: a readable one by default, the edge's
 * JSON as is with --json. The client is deliberately small and blocking:
 * plain http:// only (the admin API binds to loopback), every send and
 * receive bounded by a 10 s timeout, the answer read whole (Content-Length,
 * chunked or up to EOF) before anything is printed.
 *
 * Exit status, which scripts depend on: 0 done; 1 the edge refused (any
 * 4xx/5xx answer; its message on stderr as "meridianctl: refused: ...");
 * 2 usage error, or no usable answer (bad URL, unreadable token file, cannot
 * connect, timeout, malformed answer). Usage errors are found before any
 * request is sent.
 */
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/err.h"
#include "conf/secrets.h"

#ifndef MR_VERSION
#define MR_VERSION "0.0.0"
#endif

#define DEFAULT_ADMIN "http://127.0.0.1:9090" /* admin.address's default */
#define IO_TIMEOUT_S 10
#define HEAD_MAX (64 * 1024)            /* an answer's status line and headers */
#define ANSWER_MAX (16 * 1024 * 1024)   /* a whole answer; status of a big fleet fits */
#define DEADLINE_MAX_S (10L * 366 * 24 * 3600)

enum ctl_exit {
    EXIT_DONE = 0,
    EXIT_REFUSED = 1, /* the edge answered 4xx/5xx */
    EXIT_TROUBLE = 2, /* usage, connection or protocol error */
};

/* Options that only some commands take; a command lists the ones it accepts. */
enum cmd_opt {
    OPT_HARD = 1u << 0,
    OPT_DEADLINE = 1u << 1,
    OPT_DRY_RUN = 1u << 2,
    OPT_FORCE = 1u << 3,
    OPT_COOKIE = 1u << 4,
};

static const struct {
    enum cmd_opt flag;
    const char *name;
} opt_names[] = {
    {OPT_HARD, "--hard"},     {OPT_DEADLINE, "--deadline"}, {OPT_DRY_RUN, "--dry-run"},
    {OPT_FORCE, "--force"},   {OPT_COOKIE, "--cookie"},
};

/* The parsed --admin URL. */
struct target {
    char host[256];      /* for getaddrinfo: an IPv6 literal without brackets */
    char port[8];
    char authority[300]; /* for the Host header: as the URL writes it */
    char prefix[1024];   /* path before /api/v1/...; "" or "/x" (no trailing slash) */
};

struct ctl {
    const char *admin_url;  /* from --admin or MERIDIAN_ADMIN or the default */
    const char *admin_from; /* which of the three, for messages */
    const char *token_file; /* NULL: send no Authorization header */
    const char *token_from;
    bool json_out;
    unsigned opts_seen;     /* OPT_* given on the command line */
    bool hard, dry_run, force;
    long deadline_s;        /* 0: none */
    const char *cookie;
    const char **args;      /* positionals: the command word, then its arguments */
    int n_args;
    struct target target;
    char *token;            /* owned */
};

/* One HTTP answer, read whole. */
struct answer {
    int status;
    char *body;     /* owned, NUL-terminated (chunks already joined) */
    size_t body_len;
    json_t *json;   /* body parsed when it is JSON, else NULL; owned */
};

struct buf {
    char *p;
    size_t len, cap;
};

struct command {
    const char *name;
    const char *synopsis; /* arguments, for usage messages */
    int min_args, max_args;
    unsigned opts;        /* OPT_* it accepts */
    int (*run)(struct ctl *ctl);
};

static void
usage(FILE *out)
{
    fprintf(out,
        "usage: meridianctl [--admin URL] [--token-file FILE] [--json] COMMAND [ARGS]\n"
        "\n"
        "Client of the meridian admin API. Options may come before or after COMMAND.\n"
        "\n"
        "commands:\n"
        "  status                        every region, cluster and endpoint: state, health,\n"
        "                                weight, drain and traffic\n"
        "  drain CLUSTER [--hard] [--deadline SECONDS] [--dry-run] [--force]\n"
        "                                stop new sessions to CLUSTER; soft (default) keeps its\n"
        "                                sticky sessions (until the deadline, if given), --hard\n"
        "                                moves them away at once\n"
        "  undrain CLUSTER               end CLUSTER's drain\n"
        "  weight CLUSTER N [--dry-run] [--force]\n"
        "                                set CLUSTER's weight in force (N >= 0; 0 takes no new\n"
        "                                sessions but keeps the ones it has)\n"
        "  reload                        re-read the edge's configuration file\n"
        "  explain IP [--cookie VALUE]   how a request from IP (carrying that session\n"
        "                                cookie) would be routed, and why\n"
        "  history                       the changes made, newest first\n"
        "  undo                          revert the last change not yet undone\n"
        "\n"
        "options:\n"
        "  --admin URL          admin API, http://HOST[:PORT] ([::1]:PORT for IPv6); default\n"
        "                       $MERIDIAN_ADMIN, else " DEFAULT_ADMIN "\n"
        "  --token-file FILE    file whose one line is the bearer token; default\n"
        "                       $MERIDIAN_TOKEN_FILE, else no token is sent\n"
        "  --json               print the edge's JSON answer as it is, for scripts\n"
        "  --hard               drain: hard drain, sticky sessions move too\n"
        "  --deadline SECONDS   drain: a soft drain keeps sessions only that long\n"
        "  --dry-run            drain, weight: show where new sessions would go, change\n"
        "                       nothing\n"
        "  --force              drain, weight: apply even if some clients would be left\n"
        "                       with no cluster taking new sessions\n"
        "  --cookie VALUE       explain: the value of the session cookie\n"
        "  -h, --help           print this help\n"
        "  --version            print meridianctl's version\n"
        "\n"
        "exit status: 0 done; 1 refused by the edge (its message on stderr); 2 usage\n"
        "error, or no usable answer (bad URL or token file, cannot connect, timeout).\n");
}

static void
complain(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "meridianctl: MESSAGE" on stderr. */
static void
complain(const char *fmt, ...)
{
    va_list ap;

    fputs("meridianctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int
usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints the message and where to find help; returns EXIT_TROUBLE. */
static int
usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs("meridianctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n(meridianctl --help lists the commands and options)\n", stderr);
    return EXIT_TROUBLE;
}

/* A one-shot process: running out of memory ends it with a message rather
 * than threading NULL checks through every printout. */
static void *
xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n != 0 ? n : 1);

    if (q == NULL) {
        complain("out of memory");
        exit(EXIT_TROUBLE);
    }
    return q;
}

static void
buf_add(struct buf *b, const void *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap != 0 ? b->cap : 1024;

        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void
buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    char small[512];
    int n;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if ((size_t)n < sizeof small) {
        buf_add(b, small, (size_t)n);
        return;
    }
    char *big = xrealloc(NULL, (size_t)n + 1);

    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf_add(b, big, (size_t)n);
    free(big);
}

/* Appends s percent-encoded; keep lists the characters besides unreserved
 * ones (RFC 3986) that may stay as they are. */
static void
buf_add_encoded(struct buf *b, const char *s, const char *keep)
{
    static const char hex[] = "0123456789ABCDEF";

    for (const unsigned char *c = (const unsigned char *)s; *c != '\0'; c++) {
        if ((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
            strchr("-._~", *c) != NULL || (*c >= 0x21 && strchr(keep, *c) != NULL)) {
            buf_add(b, c, 1);
        } else {
            char esc[3] = {'%', hex[*c >> 4], hex[*c & 15]};

            buf_add(b, esc, 3);
        }
    }
}

/* ------------------------------------------------------------ the admin URL */

/* Parses "http://HOST[:PORT][/PREFIX]" into t; 0, or -1 with the reason in why. */
static int
parse_url(const char *url, struct target *t, const char **why)
{
    const char *p, *auth, *auth_end, *host, *host_end, *port = NULL;
    size_t n;

    memset(t, 0, sizeof *t);
    if (strncasecmp(url, "https://", 8) == 0) {
        *why = "https is not supported (the admin API is plain http on loopback)";
        return -1;
    }
    if (strncasecmp(url, "http://", 7) != 0) {
        *why = "expected http://HOST[:PORT]";
        return -1;
    }
    auth = url + 7;
    auth_end = auth + strcspn(auth, "/?#");
    if (memchr(auth, '@', (size_t)(auth_end - auth)) != NULL) {
        *why = "user information in the URL is not supported (use --token-file)";
        return -1;
    }
    if (*auth == '[') {
        host = auth + 1;
        host_end = memchr(host, ']', (size_t)(auth_end - host));
        if (host_end == NULL) {
            *why = "unterminated IPv6 literal (expected [ADDRESS]:PORT)";
            return -1;
        }
        p = host_end + 1;
        if (p < auth_end) {
            if (*p != ':') {
                *why = "unexpected text after the IPv6 literal";
                return -1;
            }
            port = p + 1;
        }
    } else {
        host = auth;
        host_end = memchr(auth, ':', (size_t)(auth_end - auth));
        if (host_end == NULL) {
            host_end = auth_end;
        } else {
            port = host_end + 1;
        }
    }
    n = (size_t)(host_end - host);
    if (n == 0) {
        *why = "no host";
        return -1;
    }
    if (n >= sizeof t->host) {
        *why = "host name too long";
        return -1;
    }
    memcpy(t->host, host, n);
    if (port != NULL) {
        size_t plen = (size_t)(auth_end - port);
        long v = 0;

        if (plen == 0 || plen > 5 || strspn(port, "0123456789") < plen) {
            *why = "the port must be a number from 1 to 65535";
            return -1;
        }
        for (size_t i = 0; i < plen; i++) {
            v = v * 10 + (port[i] - '0');
        }
        if (v < 1 || v > 65535) {
            *why = "the port must be a number from 1 to 65535";
            return -1;
        }
        snprintf(t->port, sizeof t->port, "%ld", v);
    } else {
        snprintf(t->port, sizeof t->port, "80");
    }
    n = (size_t)(auth_end - auth);
    if (n >= sizeof t->authority) {
        *why = "host name too long";
        return -1;
    }
    memcpy(t->authority, auth, n);
    p = auth_end;
    if (strpbrk(p, "?#") != NULL) {
        *why = "a query or fragment has no place in the admin URL";
        return -1;
    }
    n = strlen(p);
    while (n > 0 && p[n - 1] == '/') {
        n--;
    }
    if (n >= sizeof t->prefix) {
        *why = "path too long";
        return -1;
    }
    memcpy(t->prefix, p, n);
    for (const char *c = t->prefix; *c != '\0'; c++) {
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f) {
            *why = "spaces or control characters in the path";
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------- HTTP client */

/* Connects to t; the socket, or -1 with the reason printed. Every send and
 * receive on it (and connect itself, on Linux) gives up after IO_TIMEOUT_S. */
static int
connect_admin(const struct target *t)
{
    struct addrinfo hints, *res = NULL;
    struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
    int fd = -1, err = 0, rc;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    rc = getaddrinfo(t->host, t->port, &hints, &res);
    if (rc != 0) {
        complain("cannot resolve admin host %s: %s",
                 t->host, rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        return -1;
    }
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) {
            err = errno;
            close(fd);
            fd = -1;
            continue;
        }
        while ((rc = connect(fd, ai->ai_addr, ai->ai_addrlen)) != 0 && errno == EINTR) {
        }
        if (rc == 0) {
            break;
        }
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        /* A connect cut short by SO_SNDTIMEO reports EINPROGRESS. */
        if (err == EINPROGRESS || err == EAGAIN || err == ETIMEDOUT) {
            complain("cannot connect to the admin API at %s: timed out after %d s",
                     t->authority, IO_TIMEOUT_S);
        } else {
            complain("cannot connect to the admin API at %s: %s", t->authority,
                     strerror(err));
        }
    }
    return fd;
}

/* Sends all of data; 0, or the errno that stopped it. */
static int
send_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Case-insensitive: does the header line [p, end) have this name? Sets *value. */
static bool
header_is(const char *p, const char *end, const char *name, const char **value)
{
    size_t n = strlen(name);

    if ((size_t)(end - p) <= n || strncasecmp(p, name, n) != 0 || p[n] != ':') {
        return false;
    }
    p += n + 1;
    while (p < end && (*p == ' ' || *p == '\t')) {
        p++;
    }
    *value = p;
    return true;
}

/* Decodes a chunked body from [p, end) into out. 1 complete, 0 more bytes
 * needed, -1 malformed. */
static int
dechunk(const char *p, const char *end, struct buf *out)
{
    for (;;) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        unsigned long long size = 0;
        const char *c = p;

        if (eol == NULL) {
            return (end - p) > 1024 ? -1 : 0;
        }
        if (c == eol || strchr("0123456789abcdefABCDEF", *c) == NULL) {
            return -1;
        }
        for (; c < eol && *c != ';' && *c != ' ' && *c != '\t'; c++) {
            const char *h = strchr("0123456789abcdef", *c | 0x20);

            if (*c == '\0' || h == NULL || size > ANSWER_MAX) {
                return -1;
            }
            size = size * 16 + (unsigned long long)(h - "0123456789abcdef");
        }
        p = eol + 2;
        if (size == 0) {
            /* Trailers, if any, up to an empty line. */
            for (;;) {
                eol = memmem(p, (size_t)(end - p), "\r\n", 2);
                if (eol == NULL) {
                    return 0;
                }
                if (eol == p) {
                    return 1;
                }
                p = eol + 2;
            }
        }
        if ((unsigned long long)(end - p) < size + 2) {
            return 0;
        }
        if (p[size] != '\r' || p[size + 1] != '\n') {
            return -1;
        }
        buf_add(out, p, (size_t)size);
        p += size + 2;
    }
}

/* Parses what has arrived of an answer: 1 complete (ans filled), 0 more bytes
 * needed, -1 malformed (*why says how). eof: the peer has closed. */
static int
parse_answer(const char *data, size_t len, bool eof, struct answer *ans, const char **why)
{
    const char *end = data + len, *head_end, *line, *p, *value;
    bool chunked = false, has_length = false;
    unsigned long long length = 0;
    struct buf body = {0};
    int status, rc;

    head_end = memmem(data, len, "\r\n\r\n", 4);
    if (head_end == NULL) {
        if (len > HEAD_MAX) {
            *why = "answer head too long";
            return -1;
        }
        if (eof) {
            *why = len == 0 ? "the admin API closed the connection without answering"
                            : "the answer ended inside its head";
            return -1;
        }
        return 0;
    }
    if (len < 12 || memcmp(data, "HTTP/1.", 7) != 0 || data[8] != ' ' ||
        strspn(data + 9, "0123456789") < 3 || (len > 12 && data[12] != ' ' && data[12] != '\r')) {
        *why = "not an HTTP/1.x answer";
        return -1;
    }
    status = (data[9] - '0') * 100 + (data[10] - '0') * 10 + (data[11] - '0');
    line = memmem(data, len, "\r\n", 2) + 2;
    while (line < head_end + 2) {
        const char *eol = memmem(line, (size_t)(end - line), "\r\n", 2);

        if (header_is(line, eol, "Content-Length", &value)) {
            unsigned long long v = 0;

            if (value == eol) {
                *why = "bad Content-Length";
                return -1;
            }
            for (p = value; p < eol && *p != ' ' && *p != '\t'; p++) {
                if (*p < '0' || *p > '9' || v > ANSWER_MAX) {
                    *why = "bad Content-Length";
                    return -1;
                }
                v = v * 10 + (unsigned long long)(*p - '0');
            }
            if (has_length && v != length) {
                *why = "two different Content-Length headers";
                return -1;
            }
            has_length = true;
            length = v;
        } else if (header_is(line, eol, "Transfer-Encoding", &value)) {
            const char *last = eol;

            while (last > value && (last[-1] == ' ' || last[-1] == '\t')) {
                last--;
            }
            chunked = last - value >= 7 && strncasecmp(last - 7, "chunked", 7) == 0;
        }
        line = eol + 2;
    }
    p = head_end + 4;
    if ((status >= 100 && status < 200) || status == 204 || status == 304) {
        rc = 1;
    } else if (chunked) {
        rc = dechunk(p, end, &body);
        if (rc < 0) {
            *why = "malformed chunked body";
        } else if (rc == 0 && eof) {
            *why = "the answer ended inside its chunked body";
            rc = -1;
        }
    } else if (has_length) {
        if ((unsigned long long)(end - p) >= length) {
            buf_add(&body, p, (size_t)length);
            rc = 1;
        } else if (eof) {
            *why = "the answer ended before its Content-Length";
            rc = -1;
        } else {
            rc = 0;
        }
    } else if (eof) {
        buf_add(&body, p, (size_t)(end - p));
        rc = 1;
    } else {
        rc = 0;
    }
    if (rc != 1) {
        free(body.p);
        return rc;
    }
    if (body.p == NULL) {
        buf_add(&body, "", 0);
    }
    ans->status = status;
    ans->body = body.p;
    ans->body_len = body.len;
    return 1;
}

/* Sends one request (body: a JSON document, or NULL for none) and reads the
 * whole answer into ans; 0, or -1 with the reason printed. */
static int
http_call(const struct ctl *ctl, const char *method, const char *path, json_t *body,
          struct answer *ans)
{
    struct buf req = {0}, in = {0};
    char *text = NULL, chunk[16384];
    const char *why = NULL;
    int fd, send_err, rc = 0;
    bool eof = false;

    memset(ans, 0, sizeof *ans);
    if (body != NULL) {
        text = json_dumps(body, JSON_COMPACT);
        if (text == NULL) {
            complain("out of memory");
            return -1;
        }
    }
    buf_printf(&req, "%s %s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: meridianctl/%s\r\n"
               "Accept: application/json\r\nConnection: close\r\n",
               method, ctl->target.prefix, path, ctl->target.authority, MR_VERSION);
    if (ctl->token != NULL) {
        buf_printf(&req, "Authorization: Bearer %s\r\n", ctl->token);
    }
    if (text != NULL) {
        buf_printf(&req, "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                   strlen(text), text);
    } else if (strcmp(method, "GET") != 0) {
        /* The edge refuses a change without it, body or not (CSRF). */
        buf_printf(&req, "Content-Type: application/json\r\nContent-Length: 0\r\n\r\n");
    } else {
        buf_printf(&req, "\r\n");
    }
    free(text);

    fd = connect_admin(&ctl->target);
    if (fd < 0) {
        free(req.p);
        return -1;
    }
    /* An edge that refuses early (401) may answer and close before reading
     * all we sent: a broken pipe is reported only if no answer follows. */
    send_err = send_all(fd, req.p, req.len);
    if (req.p != NULL) {
        memset(req.p, 0, req.len); /* it holds the token */
    }
    free(req.p);
    if (send_err != 0 && send_err != EPIPE && send_err != ECONNRESET) {
        if (send_err == EAGAIN || send_err == EWOULDBLOCK) {
            complain("sending to the admin API at %s timed out after %d s",
                     ctl->target.authority, IO_TIMEOUT_S);
        } else {
            complain("sending to the admin API at %s: %s", ctl->target.authority,
                     strerror(send_err));
        }
        close(fd);
        return -1;
    }
    for (;;) {
        ssize_t n;

        rc = parse_answer(in.p != NULL ? in.p : "", in.len, eof, ans, &why);
        if (rc != 0) {
            break;
        }
        n = recv(fd, chunk, sizeof chunk, 0);
        if (n > 0) {
            if (in.len + (size_t)n > ANSWER_MAX) {
                why = "answer too large";
                rc = -1;
                break;
            }
            buf_add(&in, chunk, (size_t)n);
        } else if (n == 0 || errno == ECONNRESET) {
            eof = true;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            complain("no answer from the admin API at %s within %d s", ctl->target.authority,
                     IO_TIMEOUT_S);
            break;
        } else if (errno != EINTR) {
            complain("reading from the admin API at %s: %s", ctl->target.authority,
                     strerror(errno));
            break;
        }
    }
    close(fd);
    free(in.p);
    if (rc == 1) {
        json_error_t jerr;

        ans->json = json_loadb(ans->body, ans->body_len, 0, &jerr);
        return 0;
    }
    if (rc < 0) {
        if (send_err != 0 && in.len == 0) {
            complain("sending to the admin API at %s: %s", ctl->target.authority,
                     strerror(send_err));
        } else {
            complain("bad answer from the admin API at %s: %s", ctl->target.authority, why);
        }
    }
    return -1;
}

static void
answer_free(struct answer *ans)
{
    free(ans->body);
    json_decref(ans->json);
    memset(ans, 0, sizeof *ans);
}

/* ------------------------------------------------------------ JSON helpers */

static const char *
jstr(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* A scalar as text: integers as such, reals shortest, null/missing as dflt. */
static const char *
jfmt(const json_t *v, char *out, size_t n, const char *dflt)
{
    if (json_is_integer(v)) {
        snprintf(out, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    } else if (json_is_real(v)) {
        double d = json_real_value(v);

        if (d == floor(d) && fabs(d) < 1e15) {
            snprintf(out, n, "%.0f", d);
        } else {
            snprintf(out, n, "%g", d);
        }
    } else if (json_is_string(v)) {
        snprintf(out, n, "%s", json_string_value(v));
    } else if (json_is_boolean(v)) {
        snprintf(out, n, "%s", json_is_true(v) ? "true" : "false");
    } else {
        snprintf(out, n, "%s", dflt);
    }
    return out;
}

/* A passive-health ejection of the status or explain: " ejected (timeout,
 * until ..., ejection 2)"; nothing for null. */
static void
print_ejection(const json_t *ej, const char *sep)
{
    char n[32];

    if (!json_is_object(ej)) {
        return;
    }
    printf("%sejected (%s, until %s, ejection %s)", sep,
           jstr(ej, "reason") ? jstr(ej, "reason") : "?",
           jstr(ej, "until") ? jstr(ej, "until") : "?",
           jfmt(json_object_get(ej, "ejections"), n, sizeof n, "?"));
}

/* One value of an audit line, short: null as "none", a drain object as its
 * mode (and deadline), other objects and arrays as compact JSON. */
static void
describe_item(const json_t *item, struct buf *out)
{
    char tmp[128];

    if (json_is_object(item) && jstr(item, "mode") != NULL) {
        const json_t *deadline = json_object_get(item, "deadline");

        buf_printf(out, "%s", jstr(item, "mode"));
        /* The edge writes "no deadline" as null or 0. */
        if (json_is_string(deadline) ||
            (json_is_number(deadline) && json_number_value(deadline) != 0)) {
            buf_printf(out, "(deadline %s)", jfmt(deadline, tmp, sizeof tmp, "?"));
        }
    } else if (json_is_object(item) || json_is_array(item)) {
        char *s = json_dumps(item, JSON_COMPACT);

        buf_printf(out, "%s", s != NULL ? s : "?");
        free(s);
    } else {
        buf_printf(out, "%s", jfmt(item, tmp, sizeof tmp, "none"));
    }
}

/* An audit line's value as "key=value ...". Only the keys that changed when
 * the line also has the previous value, each with "(was OLD)": the edge
 * records a cluster's whole override (drain and weight), and the reader
 * wants what moved. "-" when there is nothing to show. */
static void
describe_change_value(const json_t *change, struct buf *out)
{
    const json_t *value = json_object_get(change, "value");
    const json_t *prev = json_object_get(change, "previous");
    const char *key;
    json_t *item;
    size_t start = out->len;

    if (!json_is_object(value)) {
        if (value == NULL || json_is_null(value)) {
            buf_printf(out, "-");
        } else {
            describe_item(value, out);
        }
        return;
    }
    json_object_foreach((json_t *)value, key, item) {
        const json_t *old = json_is_object(prev) ? json_object_get(prev, key) : NULL;

        if (old != NULL && json_equal((json_t *)old, item)) {
            continue;
        }
        buf_printf(out, "%s%s=", out->len > start ? " " : "", key);
        describe_item(item, out);
        if (old != NULL) {
            buf_printf(out, " (was ");
            describe_item(old, out);
            buf_printf(out, ")");
        }
    }
    if (out->len == start) {
        buf_printf(out, "-");
    }
}

/* ------------------------------------------------------------- printouts */

#define STATUS_COLS 8

static const char *const status_heads[STATUS_COLS] = {
    "REGION", "CLUSTER", "STATE", "HEALTH", "WEIGHT", "DRAIN", "REQUESTS", "ACTIVE",
};

/* The table cells of one cluster. */
static void
cluster_cells(const json_t *region, const json_t *c, char cells[STATUS_COLS][160])
{
    const json_t *drain = json_object_get(c, "drain");
    const json_t *traffic = json_object_get(c, "traffic");
    const json_t *w = json_object_get(c, "weight"), *cw = json_object_get(c, "configured_weight");
    char a[64], b[64];

    snprintf(cells[0], 160, "%s", jstr(region, "name") ? jstr(region, "name") : "-");
    snprintf(cells[1], 160, "%s", jstr(c, "name") ? jstr(c, "name") : "-");
    snprintf(cells[2], 160, "%s", jstr(c, "state") ? jstr(c, "state") : "-");
    snprintf(cells[3], 160, "%s/%s", jfmt(json_object_get(c, "endpoints_up"), a, sizeof a, "?"),
             jfmt(json_object_get(c, "endpoints_total"), b, sizeof b, "?"));
    jfmt(w, a, sizeof a, "-");
    jfmt(cw, b, sizeof b, "-");
    if (cw != NULL && !json_is_null(cw) && strcmp(a, b) != 0) {
        snprintf(cells[4], 160, "%s (file %s)", a, b);
    } else {
        snprintf(cells[4], 160, "%s", a);
    }
    if (json_is_object(drain)) {
        const char *mode = jstr(drain, "mode") ? jstr(drain, "mode") : "?";
        const char *deadline = jstr(drain, "deadline");

        if (deadline != NULL) {
            snprintf(cells[5], 160, "%s until %s", mode, deadline);
        } else if (json_is_number(json_object_get(drain, "deadline_s"))) {
            snprintf(cells[5], 160, "%s, %ss", mode,
                     jfmt(json_object_get(drain, "deadline_s"), a, sizeof a, "?"));
        } else {
            snprintf(cells[5], 160, "%s", mode);
        }
    } else {
        snprintf(cells[5], 160, "-");
    }
    jfmt(json_object_get(traffic, "requests"), cells[6], 160, "-");
    jfmt(json_object_get(traffic, "active_connections"), cells[7], 160, "-");
}

static void
print_row(char cells[STATUS_COLS][160], const int width[STATUS_COLS])
{
    for (int i = 0; i < STATUS_COLS; i++) {
        if (i == STATUS_COLS - 1) {
            printf("%s\n", cells[i]);
        } else {
            printf("%-*s  ", width[i], cells[i]);
        }
    }
}

static void
print_status(const json_t *st)
{
    const json_t *regions = json_object_get(st, "regions"), *region, *c, *ep;
    char cells[STATUS_COLS][160], a[64], b[64];
    int width[STATUS_COLS], addr_width = 0;
    size_t i, j, k, n_clusters = 0;

    printf("generation %s", jfmt(json_object_get(st, "generation"), a, sizeof a, "?"));
    if (jstr(st, "config") != NULL) {
        printf("  config %s", jstr(st, "config"));
    }
    if (jstr(st, "started") != NULL) {
        printf("  started %s", jstr(st, "started"));
    }
    printf("\n");

    /* Two passes over the clusters: widths first, so columns line up. */
    for (i = 0; i < STATUS_COLS; i++) {
        width[i] = (int)strlen(status_heads[i]);
    }
    json_array_foreach(regions, i, region) {
        json_array_foreach(json_object_get(region, "clusters"), j, c) {
            cluster_cells(region, c, cells);
            for (k = 0; k < STATUS_COLS; k++) {
                if ((int)strlen(cells[k]) > width[k]) {
                    width[k] = (int)strlen(cells[k]);
                }
            }
            json_array_foreach(json_object_get(c, "endpoints"), k, ep) {
                const char *addr = jstr(ep, "address");

                if (addr != NULL && (int)strlen(addr) > addr_width) {
                    addr_width = (int)strlen(addr);
                }
            }
            n_clusters++;
        }
    }
    if (n_clusters == 0) {
        printf("no clusters\n");
        return;
    }
    for (i = 0; i < STATUS_COLS; i++) {
        snprintf(cells[i], sizeof cells[i], "%s", status_heads[i]);
    }
    print_row(cells, width);
    json_array_foreach(regions, i, region) {
        json_array_foreach(json_object_get(region, "clusters"), j, c) {
            cluster_cells(region, c, cells);
            print_row(cells, width);
            json_array_foreach(json_object_get(c, "endpoints"), k, ep) {
                const json_t *traffic = json_object_get(ep, "traffic");

                printf("    %-*s  %-4s  requests %s  active %s", addr_width,
                       jstr(ep, "address") ? jstr(ep, "address") : "?",
                       jstr(ep, "health") ? jstr(ep, "health") : "?",
                       jfmt(json_object_get(traffic, "requests"), a, sizeof a, "-"),
                       jfmt(json_object_get(traffic, "active_connections"), b, sizeof b, "-"));
                if (jstr(ep, "last_check") != NULL) {
                    printf("  last check %s", jstr(ep, "last_check"));
                }
                if (jstr(ep, "since") != NULL) {
                    printf("  since %s", jstr(ep, "since"));
                }
                print_ejection(json_object_get(ep, "ejection"), "  ");
                printf("\n");
            }
        }
    }
}

/* "WHAT: generation OLD -> NEW" for an applied change. */
static void
print_applied(const json_t *ans, const char *what)
{
    const json_t *gen = json_object_get(ans, "generation");
    char a[64], b[64];

    const json_t *warning;
    size_t i;

    printf("%s", what);
    if (gen != NULL) {
        printf(": generation %s -> %s",
               jfmt(json_object_get(ans, "previous_generation"), a, sizeof a, "?"),
               jfmt(gen, b, sizeof b, "?"));
    }
    printf("\n");
    json_array_foreach(json_object_get(ans, "warnings"), i, warning) {
        if (json_string_value(warning) != NULL) {
            complain("warning: %s", json_string_value(warning));
        }
    }
}

/* The answer's message, or fallback when it has none. */
static const char *
message_or(const json_t *ans, const char *fallback)
{
    const char *msg = jstr(ans, "message");

    return msg != NULL && *msg != '\0' ? msg : fallback;
}

static void
print_stranded(FILE *out, const char *prefix, const json_t *stranded)
{
    size_t i;
    const json_t *s;

    if (!json_is_array(stranded) || json_array_size(stranded) == 0) {
        return;
    }
    fprintf(out, "%s", prefix);
    json_array_foreach(stranded, i, s) {
        fprintf(out, "%s%s", i == 0 ? "" : ", ",
                json_string_value(s) != NULL ? json_string_value(s) : "?");
    }
    fprintf(out, "\n");
}

/* A dry run's answer: where the cluster's new sessions would go. what says
 * which change was tried (the edge's message restates "dry run"). */
static void
print_dry_run(const json_t *ans, const char *what)
{
    const json_t *to = json_object_get(ans, "new_sessions_to"), *item;
    size_t i;
    int w = 0;

    printf("dry run of %s: nothing was changed\n", what);
    json_array_foreach(to, i, item) {
        const char *name = jstr(item, "cluster");

        if (name != NULL && (int)strlen(name) > w) {
            w = (int)strlen(name);
        }
    }
    if (json_array_size(to) == 0) {
        printf("new sessions would go to no cluster\n");
    } else {
        printf("new sessions would go to:\n");
        json_array_foreach(to, i, item) {
            const json_t *share = json_object_get(item, "share");

            printf("  %-*s  %5.1f%%\n", w, jstr(item, "cluster") ? jstr(item, "cluster") : "?",
                   json_is_number(share) ? json_number_value(share) * 100.0 : 0.0);
        }
    }
    if (jstr(ans, "basis") != NULL) {
        printf("(estimated from %s)\n", jstr(ans, "basis"));
    }
    print_stranded(stdout, "would strand (no cluster taking their new sessions): ",
                   json_object_get(ans, "stranded"));
}

static void
print_explain(const json_t *ex)
{
    const json_t *loc = json_object_get(ex, "location"), *cookie = json_object_get(ex, "cookie");
    const json_t *cand, *c;
    char a[64], b[64];
    size_t i, j;

    printf("ip %s at generation %s\n", jstr(ex, "ip") ? jstr(ex, "ip") : "?",
           jfmt(json_object_get(ex, "generation"), a, sizeof a, "?"));
    if (json_is_true(json_object_get(loc, "found"))) {
        printf("location:   country %s, continent %s",
               jstr(loc, "country") ? jstr(loc, "country") : "-",
               jstr(loc, "continent") ? jstr(loc, "continent") : "-");
        if (json_is_number(json_object_get(loc, "lat"))) {
            printf(", at %s, %s", jfmt(json_object_get(loc, "lat"), a, sizeof a, "?"),
                   jfmt(json_object_get(loc, "lon"), b, sizeof b, "?"));
        }
        printf("\n");
    } else {
        printf("location:   not found\n");
    }
    if (!json_is_true(json_object_get(cookie, "present"))) {
        printf("cookie:     none\n");
    } else {
        printf("cookie:     %s", jstr(cookie, "result") ? jstr(cookie, "result") : "?");
        if (jstr(cookie, "cluster") != NULL) {
            printf(", names cluster %s", jstr(cookie, "cluster"));
        }
        printf("\n");
    }
    printf("candidates:\n");
    if (json_array_size(json_object_get(ex, "candidates")) == 0) {
        printf("  none\n");
    }
    json_array_foreach(json_object_get(ex, "candidates"), i, cand) {
        printf("  %zu. region %s", i + 1, jstr(cand, "region") ? jstr(cand, "region") : "?");
        if (jstr(cand, "rule") != NULL) {
            printf(" (by %s)", jstr(cand, "rule"));
        }
        printf("\n");
        json_array_foreach(json_object_get(cand, "clusters"), j, c) {
            const json_t *ej;
            size_t k;

            if (json_is_true(json_object_get(c, "eligible"))) {
                printf("       %s: eligible\n", jstr(c, "name") ? jstr(c, "name") : "?");
            } else {
                printf("       %s: not eligible, %s\n", jstr(c, "name") ? jstr(c, "name") : "?",
                       jstr(c, "reason") ? jstr(c, "reason") : "no reason given");
            }
            json_array_foreach(json_object_get(c, "ejected_endpoints"), k, ej) {
                printf("         endpoint %s", jstr(ej, "address") ? jstr(ej, "address") : "?");
                print_ejection(ej, " ");
                printf("\n");
            }
        }
    }
    printf("decision:   %s", jstr(ex, "decision") ? jstr(ex, "decision") : "?");
    if (jstr(ex, "cluster") != NULL) {
        printf(" -> cluster %s", jstr(ex, "cluster"));
        if (jstr(ex, "region") != NULL) {
            printf(" in region %s", jstr(ex, "region"));
        }
    } else {
        printf(" -> no cluster");
    }
    printf("\n");
}

#define HISTORY_COLS 5

static void
history_cells(const json_t *ch, char *cells[HISTORY_COLS], struct buf *value)
{
    static char gens[160], kind[96];
    char a[64], b[64];

    value->len = 0;
    describe_change_value(ch, value);
    /* A change already reverted by an undo says so. */
    snprintf(kind, sizeof kind, "%s%s", jstr(ch, "change") ? jstr(ch, "change") : "-",
             json_is_true(json_object_get(ch, "undone")) ? " (undone)" : "");
    snprintf(gens, sizeof gens, "%s -> %s",
             jfmt(json_object_get(ch, "generation_before"), a, sizeof a, "?"),
             jfmt(json_object_get(ch, "generation_after"), b, sizeof b, "?"));
    cells[0] = (char *)(jstr(ch, "time") ? jstr(ch, "time") : "-");
    cells[1] = kind;
    cells[2] = (char *)(jstr(ch, "cluster") ? jstr(ch, "cluster") : "-");
    cells[3] = value->p;
    cells[4] = gens;
}

static void
print_history(const json_t *h)
{
    static const char *const heads[HISTORY_COLS] = {"TIME", "CHANGE", "CLUSTER", "VALUE",
                                                     "GENERATION"};
    const json_t *changes = json_object_get(h, "changes"), *ch;
    int width[HISTORY_COLS];
    char *cells[HISTORY_COLS];
    struct buf value = {0};
    size_t i;
    int k;

    if (json_array_size(changes) == 0) {
        printf("no changes\n");
        return;
    }
    for (k = 0; k < HISTORY_COLS; k++) {
        width[k] = (int)strlen(heads[k]);
    }
    json_array_foreach(changes, i, ch) {
        history_cells(ch, cells, &value);
        for (k = 0; k < HISTORY_COLS; k++) {
            if ((int)strlen(cells[k]) > width[k]) {
                width[k] = (int)strlen(cells[k]);
            }
        }
    }
    for (k = 0; k < HISTORY_COLS - 1; k++) {
        printf("%-*s  ", width[k], heads[k]);
    }
    printf("%s\n", heads[HISTORY_COLS - 1]);
    json_array_foreach(changes, i, ch) {
        history_cells(ch, cells, &value);
        for (k = 0; k < HISTORY_COLS - 1; k++) {
            printf("%-*s  ", width[k], cells[k]);
        }
        printf("%s\n", cells[HISTORY_COLS - 1]);
    }
    free(value.p);
}

/* ---------------------------------------------------------------- commands */

/* The edge said no: its message (and the clients a guardrail protects, and
 * a reload's errors) on stderr. */
static void
report_refusal(const struct answer *ans, bool can_force)
{
    const char *msg = jstr(ans->json, "error");
    const json_t *errors = json_object_get(ans->json, "errors"), *e;
    size_t i;

    if (msg != NULL) {
        /* The edge may start its message with "refused:" too. */
        if (strncasecmp(msg, "refused: ", 9) == 0) {
            msg += 9;
        }
        complain("refused: %s", msg);
    } else {
        /* Not the admin API's JSON (a proxy in between?): show the start of it. */
        size_t n = strcspn(ans->body, "\r\n");

        complain("refused: HTTP %d%s%.*s", ans->status, n > 0 ? ": " : "",
                 (int)(n > 200 ? 200 : n), ans->body);
    }
    print_stranded(stderr, "meridianctl: stranded: ", json_object_get(ans->json, "stranded"));
    json_array_foreach(errors, i, e) {
        if (json_string_value(e) != NULL) {
            complain("  %s", json_string_value(e));
        }
    }
    if (ans->status == 409 && can_force && json_object_get(ans->json, "stranded") != NULL) {
        complain("(--force applies the change anyway)");
    }
}

/* Runs one call: on success, the answer's JSON in ans->json (or, with
 * --json, the body printed and *printed set). Returns an exit code. */
static int
call(const struct ctl *ctl, const char *method, const char *path, json_t *body,
     struct answer *ans, bool *printed)
{
    *printed = false;
    if (http_call(ctl, method, path, body, ans) != 0) {
        return EXIT_TROUBLE;
    }
    if (ans->status >= 400) {
        report_refusal(ans, (ctl->opts_seen & OPT_FORCE) == 0 &&
                            (strcmp(ctl->args[0], "drain") == 0 ||
                             strcmp(ctl->args[0], "weight") == 0));
        return EXIT_REFUSED;
    }
    if (ans->status < 200 || ans->status >= 300) {
        complain("unexpected answer from the admin API at %s: HTTP %d", ctl->target.authority,
                 ans->status);
        return EXIT_TROUBLE;
    }
    if (ctl->json_out) {
        fwrite(ans->body, 1, ans->body_len, stdout);
        if (ans->body_len == 0 || ans->body[ans->body_len - 1] != '\n') {
            fputc('\n', stdout);
        }
        *printed = true;
        return EXIT_DONE;
    }
    if (!json_is_object(ans->json)) {
        complain("bad answer from the admin API at %s: not a JSON object",
                 ctl->target.authority);
        return EXIT_TROUBLE;
    }
    return EXIT_DONE;
}

/* "/api/v1/clusters/NAME/ACTION", the name percent-encoded. */
static char *
cluster_path(const char *cluster, const char *action)
{
    struct buf b = {0};

    buf_printf(&b, "/api/v1/clusters/");
    buf_add_encoded(&b, cluster, "");
    buf_printf(&b, "/%s", action);
    return b.p;
}

static int
cmd_status(struct ctl *ctl)
{
    struct answer ans;
    bool printed;
    int rc = call(ctl, "GET", "/api/v1/status", NULL, &ans, &printed);

    if (rc == EXIT_DONE && !printed) {
        print_status(ans.json);
    }
    answer_free(&ans);
    return rc;
}

enum change_kind {
    CHANGE_DRAIN,
    CHANGE_UNDRAIN,
    CHANGE_WEIGHT,
};

/* A change in words, from the request and, once applied, the answer:
 * "drained eu-west-a (soft drain, no deadline)", "weight of eu-west-a set
 * to 0 (was 50)"; for a dry run (ans NULL) what was tried. */
static void
describe_change(const struct ctl *ctl, enum change_kind kind, const json_t *ans, struct buf *out)
{
    const char *cluster = ctl->args[1];
    const char *msg = ans != NULL ? message_or(ans, NULL) : NULL;
    char mode[96];

    if (ctl->hard) {
        snprintf(mode, sizeof mode, "hard");
    } else if (ctl->deadline_s > 0) {
        snprintf(mode, sizeof mode, "soft, deadline in %ld s", ctl->deadline_s);
    } else {
        snprintf(mode, sizeof mode, "soft, no deadline");
    }
    switch (kind) {
    case CHANGE_DRAIN:
        buf_printf(out, "%s %s (%s)", ans != NULL ? "drained" : "drain", cluster,
                   msg != NULL ? msg : mode);
        break;
    case CHANGE_UNDRAIN:
        buf_printf(out, "%s %s", ans != NULL ? "undrained" : "undrain", cluster);
        if (msg != NULL && strcmp(msg, "undrained") != 0) {
            buf_printf(out, " (%s)", msg);
        }
        break;
    case CHANGE_WEIGHT:
        if (ans == NULL) {
            buf_printf(out, "weight %s for %s", ctl->args[2], cluster);
        } else {
            const json_t *prev = json_object_get(json_object_get(json_object_get(ans, "change"),
                                                                 "previous"), "weight");
            char was[64];

            buf_printf(out, "weight of %s set to %s", cluster, ctl->args[2]);
            if (json_is_number(prev)) {
                buf_printf(out, " (was %s)", jfmt(prev, was, sizeof was, "?"));
            }
        }
        break;
    }
}

/* drain, undrain and weight: a change to one cluster, maybe a dry run. */
static int
run_change(struct ctl *ctl, const char *method, const char *action, json_t *body,
           enum change_kind kind)
{
    char *path = cluster_path(ctl->args[1], action);
    struct buf what = {0};
    struct answer ans;
    bool printed;
    int rc;

    rc = call(ctl, method, path, body, &ans, &printed);
    if (rc == EXIT_DONE && !printed) {
        if (json_is_true(json_object_get(ans.json, "dry_run"))) {
            describe_change(ctl, kind, NULL, &what);
            print_dry_run(ans.json, what.p);
        } else {
            describe_change(ctl, kind, ans.json, &what);
            print_applied(ans.json, what.p);
        }
    }
    free(what.p);
    answer_free(&ans);
    free(path);
    json_decref(body);
    return rc;
}

static int
cmd_drain(struct ctl *ctl)
{
    json_t *body = json_object();

    json_object_set_new(body, "mode", json_string(ctl->hard ? "hard" : "soft"));
    if (ctl->deadline_s > 0) {
        json_object_set_new(body, "deadline_s", json_integer(ctl->deadline_s));
    }
    json_object_set_new(body, "dry_run", json_boolean(ctl->dry_run));
    json_object_set_new(body, "force", json_boolean(ctl->force));
    return run_change(ctl, "POST", "drain", body, CHANGE_DRAIN);
}

static int
cmd_undrain(struct ctl *ctl)
{
    return run_change(ctl, "POST", "undrain", json_object(), CHANGE_UNDRAIN);
}

/* Strict: digits with an optional fraction and exponent, finite, >= 0;
 * no sign, spaces, hex, inf or nan (strtod alone would take them). */
static bool
parse_weight(const char *s, double *out)
{
    char *end;

    if (*s == '\0' || strspn(s, "0123456789.eE+-") != strlen(s) ||
        (*s != '.' && (*s < '0' || *s > '9'))) {
        return false;
    }
    errno = 0;
    *out = strtod(s, &end);
    return *end == '\0' && errno == 0 && isfinite(*out) && *out >= 0;
}

static int
cmd_weight(struct ctl *ctl)
{
    json_t *body = json_object();
    double w = 0;

    parse_weight(ctl->args[2], &w); /* checked in main, before any request */
    if (w == floor(w) && w < 9e15) {
        json_object_set_new(body, "weight", json_integer((json_int_t)w));
    } else {
        json_object_set_new(body, "weight", json_real(w));
    }
    json_object_set_new(body, "dry_run", json_boolean(ctl->dry_run));
    json_object_set_new(body, "force", json_boolean(ctl->force));
    return run_change(ctl, "PUT", "weight", body, CHANGE_WEIGHT);
}

static int
cmd_reload(struct ctl *ctl)
{
    struct answer ans;
    bool printed;
    int rc = call(ctl, "POST", "/api/v1/reload", NULL, &ans, &printed);

    if (rc == EXIT_DONE && !printed) {
        print_applied(ans.json, message_or(ans.json, "reloaded"));
    }
    answer_free(&ans);
    return rc;
}

static int
cmd_explain(struct ctl *ctl)
{
    struct buf path = {0};
    struct answer ans;
    bool printed;
    int rc;

    /* ':' stays as is: an IPv6 address reads the same on the edge's side. */
    buf_printf(&path, "/api/v1/explain?ip=");
    buf_add_encoded(&path, ctl->args[1], ":");
    if (ctl->cookie != NULL) {
        buf_printf(&path, "&cookie=");
        buf_add_encoded(&path, ctl->cookie, ":");
    }
    rc = call(ctl, "GET", path.p, NULL, &ans, &printed);
    if (rc == EXIT_DONE && !printed) {
        print_explain(ans.json);
    }
    answer_free(&ans);
    free(path.p);
    return rc;
}

static int
cmd_history(struct ctl *ctl)
{
    struct answer ans;
    bool printed;
    int rc = call(ctl, "GET", "/api/v1/history", NULL, &ans, &printed);

    if (rc == EXIT_DONE && !printed) {
        print_history(ans.json);
    }
    answer_free(&ans);
    return rc;
}

static int
cmd_undo(struct ctl *ctl)
{
    struct answer ans;
    bool printed;
    int rc = call(ctl, "POST", "/api/v1/undo", NULL, &ans, &printed);

    /* The edge's message names what was undone ("undid weight of ..."). */
    if (rc == EXIT_DONE && !printed) {
        print_applied(ans.json, message_or(ans.json, "undid the last change"));
    }
    answer_free(&ans);
    return rc;
}

static const struct command commands[] = {
    {"status", "", 0, 0, 0, cmd_status},
    {"drain", "CLUSTER", 1, 1, OPT_HARD | OPT_DEADLINE | OPT_DRY_RUN | OPT_FORCE, cmd_drain},
    {"undrain", "CLUSTER", 1, 1, 0, cmd_undrain},
    {"weight", "CLUSTER N", 2, 2, OPT_DRY_RUN | OPT_FORCE, cmd_weight},
    {"reload", "", 0, 0, 0, cmd_reload},
    {"explain", "IP", 1, 1, OPT_COOKIE, cmd_explain},
    {"history", "", 0, 0, 0, cmd_history},
    {"undo", "", 0, 0, 0, cmd_undo},
};

/* ------------------------------------------------------- the command line */

/* "-5" and "-0.5" are arguments (a weight that will be refused with a clear
 * message), not unknown options. */
static bool
looks_negative_number(const char *a)
{
    return a[0] == '-' &&
           ((a[1] >= '0' && a[1] <= '9') || (a[1] == '.' && a[2] >= '0' && a[2] <= '9'));
}

/* Parses argv into ctl; EXIT_DONE to go on, else the exit code (help and
 * version print and return -1 meaning "exit 0 now"). */
static int
parse_args(int argc, char **argv, struct ctl *ctl)
{
    bool positional_only = false;

    ctl->args = xrealloc(NULL, sizeof *ctl->args * (size_t)argc);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *value = NULL;
        char name[64];
        size_t n;

        if (positional_only || a[0] != '-' || a[1] == '\0' || looks_negative_number(a)) {
            ctl->args[ctl->n_args++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            positional_only = true;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return -1;
        }
        if (strcmp(a, "--version") == 0) {
            printf("meridianctl %s\n", MR_VERSION);
            return -1;
        }
        /* "--name=value" or "--name value" */
        n = strcspn(a, "=");
        if (n >= sizeof name) {
            return usage_error("unknown option %s", a);
        }
        memcpy(name, a, n);
        name[n] = '\0';
        if (a[n] == '=') {
            value = a + n + 1;
        }
        bool takes_value = strcmp(name, "--admin") == 0 || strcmp(name, "--token-file") == 0 ||
                           strcmp(name, "--deadline") == 0 || strcmp(name, "--cookie") == 0;
        bool known = takes_value || strcmp(name, "--json") == 0 || strcmp(name, "--hard") == 0 ||
                     strcmp(name, "--dry-run") == 0 || strcmp(name, "--force") == 0;

        if (!known) {
            return usage_error("unknown option %s", name);
        }
        if (takes_value && value == NULL) {
            if (i + 1 >= argc) {
                return usage_error("%s needs a value", name);
            }
            value = argv[++i];
        } else if (!takes_value && value != NULL) {
            return usage_error("%s takes no value", name);
        }
        if (strcmp(name, "--admin") == 0) {
            ctl->admin_url = value;
            ctl->admin_from = "--admin";
        } else if (strcmp(name, "--token-file") == 0) {
            ctl->token_file = value;
            ctl->token_from = "--token-file";
        } else if (strcmp(name, "--json") == 0) {
            ctl->json_out = true;
        } else if (strcmp(name, "--hard") == 0) {
            ctl->hard = true;
            ctl->opts_seen |= OPT_HARD;
        } else if (strcmp(name, "--dry-run") == 0) {
            ctl->dry_run = true;
            ctl->opts_seen |= OPT_DRY_RUN;
        } else if (strcmp(name, "--force") == 0) {
            ctl->force = true;
            ctl->opts_seen |= OPT_FORCE;
        } else if (strcmp(name, "--cookie") == 0) {
            ctl->cookie = value;
            ctl->opts_seen |= OPT_COOKIE;
        } else if (strcmp(name, "--deadline") == 0) {
            char *end;

            errno = 0;
            ctl->deadline_s = strtol(value, &end, 10);
            if (value[0] < '0' || value[0] > '9' || *end != '\0' || errno != 0 ||
                ctl->deadline_s < 1 || ctl->deadline_s > DEADLINE_MAX_S) {
                return usage_error("--deadline: expected a whole number of seconds >= 1, not '%s'",
                                   value);
            }
            ctl->opts_seen |= OPT_DEADLINE;
        }
    }
    return EXIT_DONE;
}

/* Reads the token named by --token-file or MERIDIAN_TOKEN_FILE, with the
 * edge's own reader so both agree on what the file holds. */
static int
load_token(struct ctl *ctl)
{
    struct mr_errors errs = {0};

    if (ctl->token_file == NULL) {
        return 0;
    }
    ctl->token = mr_secrets_read_token(ctl->token_file, ctl->token_from, &errs);
    if (ctl->token == NULL) {
        for (size_t i = 0; i < errs.n_errors; i++) {
            complain("%s", errs.errors[i]);
        }
        if (errs.n_errors == 0) {
            complain("%s: cannot read %s", ctl->token_from, ctl->token_file);
        }
        mr_errors_clear(&errs);
        return -1;
    }
    mr_errors_clear(&errs);
    return 0;
}

int
main(int argc, char **argv)
{
    struct ctl ctl;
    const struct command *cmd = NULL;
    const char *env, *why = NULL;
    unsigned extra;
    double w;
    int rc;

    memset(&ctl, 0, sizeof ctl);
    rc = parse_args(argc, argv, &ctl);
    if (rc != EXIT_DONE) {
        free(ctl.args);
        return rc < 0 ? EXIT_DONE : rc;
    }
    if (ctl.n_args == 0) {
        complain("no command given");
        usage(stderr);
        free(ctl.args);
        return EXIT_TROUBLE;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(ctl.args[0], commands[i].name) == 0) {
            cmd = &commands[i];
        }
    }
    rc = EXIT_TROUBLE;
    if (cmd == NULL) {
        usage_error("unknown command '%s'", ctl.args[0]);
        goto out;
    }
    if (ctl.n_args - 1 < cmd->min_args || ctl.n_args - 1 > cmd->max_args) {
        if (cmd->max_args == 0) {
            usage_error("%s takes no arguments", cmd->name);
        } else if (ctl.n_args - 1 < cmd->min_args) {
            usage_error("%s needs %s (meridianctl %s %s)", cmd->name, cmd->synopsis, cmd->name,
                        cmd->synopsis);
        } else {
            usage_error("too many arguments for %s (meridianctl %s %s)", cmd->name, cmd->name,
                        cmd->synopsis);
        }
        goto out;
    }
    extra = ctl.opts_seen & ~cmd->opts;
    if (extra != 0) {
        for (size_t i = 0; i < sizeof opt_names / sizeof opt_names[0]; i++) {
            if ((extra & opt_names[i].flag) != 0) {
                usage_error("%s is not an option of %s", opt_names[i].name, cmd->name);
                break;
            }
        }
        goto out;
    }
    if (cmd->min_args >= 1 && ctl.args[1][0] == '\0') {
        usage_error("%s: %s must not be empty", cmd->name, strcmp(cmd->name, "explain") == 0
                                                               ? "IP" : "CLUSTER");
        goto out;
    }
    if (cmd->run == cmd_weight && !parse_weight(ctl.args[2], &w)) {
        usage_error("weight: N must be a non-negative number, not '%s'", ctl.args[2]);
        goto out;
    }

    if (ctl.admin_url == NULL) {
        env = getenv("MERIDIAN_ADMIN");
        if (env != NULL && *env != '\0') {
            ctl.admin_url = env;
            ctl.admin_from = "MERIDIAN_ADMIN";
        } else {
            ctl.admin_url = DEFAULT_ADMIN;
            ctl.admin_from = "the default admin URL";
        }
    }
    if (parse_url(ctl.admin_url, &ctl.target, &why) != 0) {
        complain("bad admin URL '%s' (from %s): %s", ctl.admin_url, ctl.admin_from, why);
        goto out;
    }
    if (ctl.token_file == NULL) {
        env = getenv("MERIDIAN_TOKEN_FILE");
        if (env != NULL && *env != '\0') {
            ctl.token_file = env;
            ctl.token_from = "MERIDIAN_TOKEN_FILE";
        }
    }
    if (load_token(&ctl) != 0) {
        goto out;
    }
    rc = cmd->run(&ctl);
    if (fflush(stdout) != 0 && rc == EXIT_DONE) {
        complain("writing the output: %s", strerror(errno));
        rc = EXIT_TROUBLE;
    }
out:
    if (ctl.token != NULL) {
        memset(ctl.token, 0, strlen(ctl.token));
        free(ctl.token);
    }
    free(ctl.args);
    return rc;
}
