/*
 * ctl/http.c: meridianctl's blocking HTTP/1.1 client of the admin API
 * (ctl/http.h).
 */
#include <errno.h>
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

#include "ctl/http.h"

#ifndef MR_VERSION
#define MR_VERSION "0.0.0"
#endif

#define IO_TIMEOUT_S 10
#define HEAD_MAX (64 * 1024)          /* an answer's status line and headers */
#define ANSWER_MAX (16 * 1024 * 1024) /* a whole answer; status of a big fleet fits */

/* Prints "meridianctl: MESSAGE" on stderr. */
void mr_ctl_vcomplain(const char *fmt, va_list ap)
{
    fputs("meridianctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void mr_ctl_complain(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    mr_ctl_vcomplain(fmt, ap);
    va_end(ap);
}

/* A one-shot process: running out of memory ends it with a message rather
 * than threading NULL checks through every printout. */
void *mr_ctl_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n != 0 ? n : 1);

    if (q == NULL) {
        mr_ctl_complain("out of memory");
        exit(2); /* meridianctl's "no usable answer" status */
    }
    return q;
}

void mr_ctl_buf_add(struct mr_ctl_buf *b, const void *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap != 0 ? b->cap : 1024;

        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        b->p = mr_ctl_xrealloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void mr_ctl_buf_printf(struct mr_ctl_buf *b, const char *fmt, ...)
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
        mr_ctl_buf_add(b, small, (size_t)n);
        return;
    }
    char *big = mr_ctl_xrealloc(NULL, (size_t)n + 1);

    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    mr_ctl_buf_add(b, big, (size_t)n);
    free(big);
}

/* Appends s percent-encoded; keep lists the characters besides unreserved
 * ones (RFC 3986) that may stay as they are. */
void mr_ctl_buf_add_encoded(struct mr_ctl_buf *b, const char *s, const char *keep)
{
    static const char hex[] = "0123456789ABCDEF";

    for (const unsigned char *c = (const unsigned char *)s; *c != '\0'; c++) {
        if ((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
            strchr("-._~", *c) != NULL || (*c >= 0x21 && strchr(keep, *c) != NULL)) {
            mr_ctl_buf_add(b, c, 1);
        } else {
            char esc[3] = {'%', hex[*c >> 4], hex[*c & 15]};

            mr_ctl_buf_add(b, esc, 3);
        }
    }
}

/* ------------------------------------------------------------ the admin URL */

/* Parses "http://HOST[:PORT][/PREFIX]" into t; 0, or -1 with the reason in why. */
int mr_ctl_url_parse(const char *url, struct mr_ctl_target *t, const char **why)
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
static int connect_admin(const struct mr_ctl_target *t)
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
        mr_ctl_complain("cannot resolve admin host %s: %s", t->host,
                        rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
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
            mr_ctl_complain("cannot connect to the admin API at %s: timed out after %d s",
                            t->authority, IO_TIMEOUT_S);
        } else {
            mr_ctl_complain("cannot connect to the admin API at %s: %s", t->authority,
                            strerror(err));
        }
    }
    return fd;
}

/* Sends all of data; 0, or the errno that stopped it. */
static int send_all(int fd, const char *data, size_t len)
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
static bool header_is(const char *p, const char *end, const char *name, const char **value)
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
static int dechunk(const char *p, const char *end, struct mr_ctl_buf *out)
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
        mr_ctl_buf_add(out, p, (size_t)size);
        p += size + 2;
    }
}

int mr_ctl_http_parse(const char *data, size_t len, bool eof, struct mr_ctl_answer *ans,
                      const char **why)
{
    const char *end = data + len, *head_end, *line, *p, *value;
    bool chunked = false, has_length = false;
    unsigned long long length = 0;
    struct mr_ctl_buf body = {0};
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
            mr_ctl_buf_add(&body, p, (size_t)length);
            rc = 1;
        } else if (eof) {
            *why = "the answer ended before its Content-Length";
            rc = -1;
        } else {
            rc = 0;
        }
    } else if (eof) {
        mr_ctl_buf_add(&body, p, (size_t)(end - p));
        rc = 1;
    } else {
        rc = 0;
    }
    if (rc != 1) {
        free(body.p);
        return rc;
    }
    if (body.p == NULL) {
        mr_ctl_buf_add(&body, "", 0);
    }
    ans->status = status;
    ans->body = body.p;
    ans->body_len = body.len;
    return 1;
}

int mr_ctl_http_read(int fd, const char *authority, int send_err, struct mr_ctl_answer *ans)
{
    struct mr_ctl_buf in = {0};
    char chunk[16384];
    const char *why = NULL;
    bool eof = false;
    int rc = 0;

    memset(ans, 0, sizeof *ans);
    for (;;) {
        ssize_t n;

        rc = mr_ctl_http_parse(in.p != NULL ? in.p : "", in.len, eof, ans, &why);
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
            mr_ctl_buf_add(&in, chunk, (size_t)n);
        } else if (n == 0 || errno == ECONNRESET) {
            eof = true;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            mr_ctl_complain("no answer from the admin API at %s within %d s", authority,
                            IO_TIMEOUT_S);
            break;
        } else if (errno != EINTR) {
            mr_ctl_complain("reading from the admin API at %s: %s", authority, strerror(errno));
            break;
        }
    }
    free(in.p);
    if (rc == 1) {
        json_error_t jerr;

        ans->json = json_loadb(ans->body, ans->body_len, 0, &jerr);
        return 0;
    }
    if (rc < 0) {
        if (send_err != 0 && in.len == 0) {
            mr_ctl_complain("sending to the admin API at %s: %s", authority, strerror(send_err));
        } else {
            mr_ctl_complain("bad answer from the admin API at %s: %s", authority, why);
        }
    }
    return -1;
}

/* Sends one request (body: a JSON document, or NULL for none) and reads the
 * whole answer into ans; 0, or -1 with the reason printed. */
int mr_ctl_http_call(const struct mr_ctl_target *target, const char *token, const char *method,
                     const char *path, json_t *body, struct mr_ctl_answer *ans)
{
    struct mr_ctl_buf req = {0};
    char *text = NULL;
    int fd, send_err, rc;

    memset(ans, 0, sizeof *ans);
    if (body != NULL) {
        text = json_dumps(body, JSON_COMPACT);
        if (text == NULL) {
            mr_ctl_complain("out of memory");
            return -1;
        }
    }
    mr_ctl_buf_printf(&req,
                      "%s %s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: meridianctl/%s\r\n"
                      "Accept: application/json\r\nConnection: close\r\n",
                      method, target->prefix, path, target->authority, MR_VERSION);
    if (token != NULL) {
        mr_ctl_buf_printf(&req, "Authorization: Bearer %s\r\n", token);
    }
    if (text != NULL) {
        mr_ctl_buf_printf(&req, "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                          strlen(text), text);
    } else if (strcmp(method, "GET") != 0) {
        /* The edge refuses a change without it, body or not (CSRF). */
        mr_ctl_buf_printf(&req, "Content-Type: application/json\r\nContent-Length: 0\r\n\r\n");
    } else {
        mr_ctl_buf_printf(&req, "\r\n");
    }
    free(text);

    fd = connect_admin(target);
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
            mr_ctl_complain("sending to the admin API at %s timed out after %d s",
                            target->authority, IO_TIMEOUT_S);
        } else {
            mr_ctl_complain("sending to the admin API at %s: %s", target->authority,
                            strerror(send_err));
        }
        close(fd);
        return -1;
    }
    rc = mr_ctl_http_read(fd, target->authority, send_err, ans);
    close(fd);
    return rc;
}

void mr_ctl_answer_free(struct mr_ctl_answer *ans)
{
    free(ans->body);
    json_decref(ans->json);
    memset(ans, 0, sizeof *ans);
}
