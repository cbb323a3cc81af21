/*
 * router/http1.h: strict HTTP/1.1 message heads and body framing.
 *
 * The only includer of <http_parser.h> (Debian's libhttp-parser 2.9), so the
 * parser can be swapped. On top of the parser it refuses what RFC 9112 says
 * to refuse and the parser lets through: bare LF line endings, header names
 * that are not tokens, control characters in values, obs-fold,
 * Transfer-Encoding on HTTP/1.0, any Transfer-Encoding but a lone "chunked",
 * a missing, repeated or malformed Host, a target with a control byte or in
 * a form other than origin-form, http(s) absolute-form or OPTIONS "*".
 * Limits (head bytes, header count, URI length) are checked before anything
 * is forwarded. The verdict does not depend on how the head was split
 * across reads. Bodies are not read here: chunked ones go through
 * router/chunked.h.
 *
 * A struct mr_http1 belongs to one connection (one thread). The parsed head
 * points into the connection's input buffer: it stays valid until the caller
 * drains head_len bytes from that buffer.
 */
#ifndef MR_ROUTER_HTTP1_H
#define MR_ROUTER_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

enum mr_http1_kind { MR_HTTP1_REQUEST, MR_HTTP1_RESPONSE };

enum mr_http1_method {
    MR_METHOD_OTHER,
    MR_METHOD_GET,
    MR_METHOD_HEAD,
    MR_METHOD_POST,
    MR_METHOD_PUT,
    MR_METHOD_DELETE,
    MR_METHOD_OPTIONS,
    MR_METHOD_TRACE,
    MR_METHOD_CONNECT,
    MR_METHOD_PATCH,
};

/* How the body of a message is delimited. */
enum mr_http1_body {
    MR_BODY_NONE,     /* no body */
    MR_BODY_LENGTH,   /* Content-Length bytes */
    MR_BODY_CHUNKED,  /* chunked coding, ends with the last chunk + trailers */
    MR_BODY_UNTIL_EOF /* responses only: until the connection closes */
};

struct mr_http1_header {
    const char *name;
    size_t name_len;
    const char *value; /* leading and trailing whitespace trimmed */
    size_t value_len;
};

struct mr_http1_limits {
    size_t max_head_bytes;
    size_t max_headers;
    size_t max_uri_bytes;
};

struct mr_http1_head {
    /* request line */
    enum mr_http1_method method;
    const char *method_name;
    size_t method_len;
    const char *target; /* as received */
    size_t target_len;
    /* What to forward and route on (requests): the target in origin-form
     * (an absolute-form's path and query; "/" or, for OPTIONS, "*" when it
     * has neither; a query alone is sent behind a "/" by the writer) and the
     * authority: the absolute-form's, else the Host header's, validated
     * (uri-host and optional port), possibly empty. */
    const char *path;
    size_t path_len;
    const char *host;
    size_t host_len;
    /* status line */
    int status;
    const char *reason;
    size_t reason_len;

    int version_minor;               /* HTTP/1.<minor>: 0 or 1 */
    struct mr_http1_header *headers; /* owned by the struct mr_http1 */
    size_t n_headers;
    enum mr_http1_body body;
    uint64_t content_length;                     /* when body == MR_BODY_LENGTH */
    const struct mr_http1_header *length_header; /* Content-Length, if any */
    bool keep_alive;                             /* by version and Connection */
    bool upgrade;                                /* Connection: upgrade with Upgrade */
    size_t head_len;                             /* bytes of the head, incl. final CRLF */
};

/* Results of mr_http1_parse_head(); a positive value is an HTTP status. */
#define MR_HTTP1_AGAIN 0

struct mr_http1;

/* A parser for one connection; NULL on allocation failure. */
struct mr_http1 *mr_http1_new(enum mr_http1_kind kind, const struct mr_http1_limits *limits);
void mr_http1_free(struct mr_http1 *h);

/*
 * Parses the head at the start of buf. Returns -1 when a complete head was
 * parsed into *head (head_len bytes, still in buf); MR_HTTP1_AGAIN when more
 * bytes are needed; otherwise the HTTP status to refuse with (400, 414, 431,
 * 501, 505; for responses, 502). head_request: the request being answered
 * was HEAD (responses only: the body is then absent whatever the head says).
 */
int mr_http1_parse_head(struct mr_http1 *h, struct evbuffer *buf, bool head_request,
                        struct mr_http1_head *head);

/* Prepares for the next message on the connection. */
void mr_http1_reset(struct mr_http1 *h);

/* Case-insensitive header name comparison with a NUL-terminated name. */
bool mr_http1_name_is(const struct mr_http1_header *hdr, const char *name);

/* True when the comma-separated value lists token tok (case-insensitive). */
bool mr_http1_has_token(const char *value, size_t len, const char *tok, size_t tok_len);

/* The reason phrase of a status this proxy generates ("Bad Gateway"). */
const char *mr_http1_reason(int status);

#endif
