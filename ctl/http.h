/*
 * ctl/http.h: meridianctl's blocking HTTP/1.1 client of the admin API.
 *
 * One request per connection (Connection: close), plain http:// only (the
 * admin API binds to loopback); connect, every send and every receive give
 * up after 10 s; the answer is read whole (Content-Length, chunked or up to
 * EOF) before the caller sees it. Failures are reported on stderr as
 * "meridianctl: ..." here, so callers only pick the exit status.
 *
 * Also the small helpers every part of meridianctl shares: a growing text
 * buffer and the stderr message. A one-shot process: running out of memory
 * ends it (exit 2) rather than returning NULL.
 */
#ifndef MR_CTL_HTTP_H
#define MR_CTL_HTTP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* The parsed --admin URL. */
struct mr_ctl_target {
    char host[256]; /* for getaddrinfo: an IPv6 literal without brackets */
    char port[8];
    char authority[300]; /* for the Host header: as the URL writes it */
    char prefix[1024];   /* path before /api/v1/...; "" or "/x" (no trailing slash) */
};

/* One HTTP answer, read whole. */
struct mr_ctl_answer {
    int status;
    char *body; /* owned, NUL-terminated (chunks already joined) */
    size_t body_len;
    json_t *json; /* body parsed when it is JSON, else NULL; owned */
};

struct mr_ctl_buf {
    char *p;
    size_t len, cap;
};

/* Prints "meridianctl: MESSAGE" on stderr. */
void mr_ctl_complain(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void mr_ctl_vcomplain(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* realloc that never returns NULL (exits 2 with a message instead). */
void *mr_ctl_xrealloc(void *p, size_t n);

/* Append to b, keeping b->p NUL-terminated; {0} is an empty buffer, the
 * caller frees b->p. */
void mr_ctl_buf_add(struct mr_ctl_buf *b, const void *data, size_t n);
void mr_ctl_buf_printf(struct mr_ctl_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends s percent-encoded; keep lists the characters besides unreserved
 * ones (RFC 3986) that may stay as they are. */
void mr_ctl_buf_add_encoded(struct mr_ctl_buf *b, const char *s, const char *keep);

/* Parses "http://HOST[:PORT][/PREFIX]" into t; 0, or -1 with the reason in why. */
int mr_ctl_url_parse(const char *url, struct mr_ctl_target *t, const char **why);

/* Sends one request to target (token: the bearer token, or NULL for no
 * Authorization header; body: a JSON document, or NULL for none) and reads
 * the whole answer into ans, its body parsed as JSON when it is JSON; 0, or
 * -1 with the reason printed. The caller frees ans with mr_ctl_answer_free. */
int mr_ctl_http_call(const struct mr_ctl_target *target, const char *token, const char *method,
                     const char *path, json_t *body, struct mr_ctl_answer *ans);

/* Reads one whole answer from fd (the request sent) into ans, as
 * mr_ctl_http_call does; fd stays open. authority names the admin API in
 * messages; send_err is the errno that cut the request short (EPIPE or
 * ECONNRESET: an edge refusing early may still have answered), or 0.
 * 0, or -1 with the reason printed. */
int mr_ctl_http_read(int fd, const char *authority, int send_err, struct mr_ctl_answer *ans);

/* Parses what has arrived of an answer, [data, data + len): 1 complete (ans
 * filled but for json), 0 more bytes needed, -1 malformed (*why says how).
 * eof: the peer has closed, so a close-delimited body is complete and
 * anything shorter than announced is truncated. */
int mr_ctl_http_parse(const char *data, size_t len, bool eof, struct mr_ctl_answer *ans,
                      const char **why);

void mr_ctl_answer_free(struct mr_ctl_answer *ans);

#endif
