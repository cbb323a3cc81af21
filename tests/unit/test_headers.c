/* tests/unit/test_headers.c: the request head sent upstream and the response
 * head sent to the client (router/headers.c), checked byte for byte, against
 * their size bounds, and by parsing the output again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <cmocka.h>

#include "router/headers.h"
#include "router/http1.h"

/* The edge's default limits (conf.c), so heads as large as production's. */
static const struct mr_http1_limits limits = {
    .max_head_bytes = 16384,
    .max_headers = 100,
    .max_uri_bytes = 8192,
};

/* ---- resources freed by the teardown, also when an assertion fails ---- */

struct parsed {
    struct mr_http1 *parser;
    struct evbuffer *buf;
    struct mr_http1_head head;
};

/* Every test runs twice: heads parsed whole, then fed a byte at a time. */
static bool byte_at_a_time;

#define MAX_TRACKED 64
static struct parsed *parsed_list[MAX_TRACKED];
static size_t n_parsed;
static void *mem_list[MAX_TRACKED];
static size_t n_mem;

static int free_tracked(void **state)
{
    (void)state;
    for (size_t i = 0; i < n_parsed; i++) {
        mr_http1_free(parsed_list[i]->parser);
        evbuffer_free(parsed_list[i]->buf);
        free(parsed_list[i]);
    }
    n_parsed = 0;
    for (size_t i = 0; i < n_mem; i++)
        free(mem_list[i]);
    n_mem = 0;
    return 0;
}

static void *tracked_malloc(size_t n)
{
    void *p = malloc(n);
    assert_non_null(p);
    assert_true(n_mem < MAX_TRACKED);
    mem_list[n_mem++] = p;
    return p;
}

/* Parses len bytes of text as one head; the head stays valid until the
 * teardown. Returns the parser's verdict (-1: a complete head). */
static int try_parse(enum mr_http1_kind kind, const char *text, size_t len,
                     const struct mr_http1_head **out)
{
    struct parsed *ps = calloc(1, sizeof(*ps));

    assert_non_null(ps);
    assert_true(n_parsed < MAX_TRACKED);
    parsed_list[n_parsed++] = ps;
    ps->parser = mr_http1_new(kind, &limits);
    ps->buf = evbuffer_new();
    assert_non_null(ps->parser);
    assert_non_null(ps->buf);
    *out = &ps->head;
    if (!byte_at_a_time) {
        assert_int_equal(evbuffer_add(ps->buf, text, len), 0);
        return mr_http1_parse_head(ps->parser, ps->buf, false, &ps->head);
    }
    for (size_t fed = 0; fed < len; fed++) {
        int r;
        assert_int_equal(evbuffer_add(ps->buf, text + fed, 1), 0);
        r = mr_http1_parse_head(ps->parser, ps->buf, false, &ps->head);
        if (r != MR_HTTP1_AGAIN)
            return r;
    }
    return MR_HTTP1_AGAIN;
}

static const struct mr_http1_head *parse(enum mr_http1_kind kind, const char *text)
{
    const struct mr_http1_head *head;
    int r = try_parse(kind, text, strlen(text), &head);

    if (r != -1)
        fail_msg("input did not parse (%d):\n%s", r, text);
    return head;
}

#define REQ(text) parse(MR_HTTP1_REQUEST, (text))
#define RESP(text) parse(MR_HTTP1_RESPONSE, (text))

static struct mr_forward fwd_of(const char *peer, bool trusted, const char *proto, bool http10)
{
    struct mr_forward f = {
        .http10 = http10,
        .peer_trusted = trusted,
        .peer = peer,
        .peer_len = strlen(peer),
        .proto = proto,
    };
    return f;
}

/* Output buffers get generous slack filled with a canary, so an overrun of
 * the advertised bound fails an assertion instead of corrupting memory. */
#define CANARY 0xA5
#define SLACK 4096

static void check_bound(const char *what, const unsigned char *buf, size_t len, size_t bound,
                        size_t cap)
{
    for (size_t i = len; i < cap; i++)
        if (buf[i] != CANARY)
            fail_msg("%s wrote byte %zu past its returned length %zu", what, i, len);
    if (len > bound)
        fail_msg("%s: output of %zu bytes exceeds its size bound %zu", what, len, bound);
}

/* fwd as the proxy completes it: unless a test says otherwise, the
 * parser's origin-form target and authority. */
static struct mr_forward complete(const struct mr_http1_head *head, const struct mr_forward *fwd)
{
    struct mr_forward f = *fwd;

    if (f.target == NULL) {
        f.target = head->path;
        f.target_len = head->path_len;
        f.host = head->host;
        f.host_len = head->host_len;
    }
    return f;
}

static const char *rewrite_request(const struct mr_http1_head *head, const struct mr_forward *given,
                                   size_t *len)
{
    struct mr_forward f = complete(head, given);
    const struct mr_forward *fwd = &f;
    size_t bound = mr_headers_request_size(head, fwd);
    size_t cap = bound + SLACK + 2 * head->head_len;
    unsigned char *buf = tracked_malloc(cap);

    memset(buf, CANARY, cap);
    *len = mr_headers_request((char *)buf, head, fwd);
    check_bound("mr_headers_request", buf, *len, bound, cap);
    return (const char *)buf;
}

static const char *rewrite_response(const struct mr_http1_head *head, bool close, size_t *len)
{
    size_t bound = mr_headers_response_size(head, 0);
    size_t cap = bound + SLACK + 2 * head->head_len;
    unsigned char *buf = tracked_malloc(cap);

    memset(buf, CANARY, cap);
    *len = mr_headers_response((char *)buf, head, close, false, NULL, 0);
    check_bound("mr_headers_response", buf, *len, bound, cap);
    return (const char *)buf;
}

static void expect_bytes(const char *got, size_t len, const char *want)
{
    size_t want_len = strlen(want);

    if (len != want_len || memcmp(got, want, len) != 0)
        fail_msg("head differs\n--- want (%zu bytes)\n%s--- got (%zu bytes)\n%.*s---", want_len,
                 want, len, (int)len, got);
}

/* The output parses again as a complete head of exactly its length. */
static const struct mr_http1_head *reparse(enum mr_http1_kind kind, const char *out, size_t len)
{
    const struct mr_http1_head *head;
    int r = try_parse(kind, out, len, &head);

    if (r != -1)
        fail_msg("output does not parse again (%d):\n%.*s", r, (int)len, out);
    assert_int_equal(head->head_len, len);
    return head;
}

/* Rewrites, compares to want, and parses the result again. */
static const struct mr_http1_head *request_is(const char *in, const struct mr_forward *fwd,
                                              const char *want)
{
    size_t len;
    const char *out = rewrite_request(REQ(in), fwd, &len);

    expect_bytes(out, len, want);
    return reparse(MR_HTTP1_REQUEST, out, len);
}

static const struct mr_http1_head *response_is(const char *in, bool close, const char *want)
{
    size_t len;
    const char *out = rewrite_response(RESP(in), close, &len);

    expect_bytes(out, len, want);
    return reparse(MR_HTTP1_RESPONSE, out, len);
}

static bool header_is(const struct mr_http1_header *h, const char *name, const char *value)
{
    return mr_http1_name_is(h, name) && h->value_len == strlen(value) &&
           memcmp(h->value, value, h->value_len) == 0;
}

/* ---- request line ---- */

static void test_request_line_http11(void **state)
{
    struct mr_forward fwd = fwd_of("192.0.2.7", false, "http", false);
    const struct mr_http1_head *again;
    (void)state;

    again = request_is("GET /a/b?c=1&d=%20 HTTP/1.1\r\nHost: example.test\r\nAccept: */*\r\n\r\n",
                       &fwd,
                       "GET /a/b?c=1&d=%20 HTTP/1.1\r\n"
                       "Host: example.test\r\n"
                       "Accept: */*\r\n"
                       "X-Forwarded-For: 192.0.2.7\r\n"
                       "X-Forwarded-Proto: http\r\n"
                       "\r\n");
    assert_int_equal(again->method, MR_METHOD_GET);
    assert_int_equal(again->version_minor, 1);
    assert_int_equal(again->n_headers, 4);

    /* An absolute-form target goes in origin-form, its authority the Host
     * (RFC 9112 3.2.2: the received Host is ignored). */
    request_is("DELETE http://Example.test:81/x HTTP/1.1\r\nHost: other.test\r\n\r\n", &fwd,
               "DELETE /x HTTP/1.1\r\n"
               "Host: Example.test:81\r\n"
               "X-Forwarded-For: 192.0.2.7\r\n"
               "X-Forwarded-Proto: http\r\n"
               "\r\n");
    request_is("GET HTTP://a.example?q=1 HTTP/1.1\r\nHost: a.example\r\n\r\n", &fwd,
               "GET /?q=1 HTTP/1.1\r\n"
               "Host: a.example\r\n"
               "X-Forwarded-For: 192.0.2.7\r\n"
               "X-Forwarded-Proto: http\r\n"
               "\r\n");
    request_is("OPTIONS http://a.example HTTP/1.1\r\nHost: a.example\r\n\r\n", &fwd,
               "OPTIONS * HTTP/1.1\r\n"
               "Host: a.example\r\n"
               "X-Forwarded-For: 192.0.2.7\r\n"
               "X-Forwarded-Proto: http\r\n"
               "\r\n");
}

static void test_request_line_http10(void **state)
{
    struct mr_forward fwd10 = fwd_of("192.0.2.7", false, "http", true);
    struct mr_forward fwd11 = fwd_of("192.0.2.7", false, "http", false);
    const struct mr_http1_head *again;
    (void)state;

    again = request_is("GET /old HTTP/1.0\r\nAccept: text/html\r\n\r\n", &fwd10,
                       "GET /old HTTP/1.0\r\n"
                       "Accept: text/html\r\n"
                       "X-Forwarded-For: 192.0.2.7\r\n"
                       "X-Forwarded-Proto: http\r\n"
                       "\r\n");
    assert_int_equal(again->version_minor, 0);
    /* The version is fwd's, not the incoming line's. */
    request_is("POST /f HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n", &fwd10,
               "POST /f HTTP/1.0\r\n"
               "Host: h\r\n"
               "X-Forwarded-For: 192.0.2.7\r\n"
               "X-Forwarded-Proto: http\r\n"
               "Content-Length: 3\r\n"
               "\r\n");
    request_is("GET / HTTP/1.0\r\nHost: h\r\n\r\n", &fwd11,
               "GET / HTTP/1.1\r\n"
               "Host: h\r\n"
               "X-Forwarded-For: 192.0.2.7\r\n"
               "X-Forwarded-Proto: http\r\n"
               "\r\n");
}

/* ---- hop-by-hop headers ---- */

static void test_request_hop_by_hop_dropped(void **state)
{
    struct mr_forward fwd = fwd_of("198.51.100.20", false, "https", false);
    const struct mr_http1_head *again;
    (void)state;

    again = request_is("GET /ws HTTP/1.1\r\n"
                       "Host: example.test\r\n"
                       "Connection: keep-alive, Upgrade\r\n"
                       "User-Agent: test/1.0\r\n"
                       "KEEP-ALIVE: timeout=5\r\n"
                       "Proxy-Connection: keep-alive\r\n"
                       "Accept-Language: de, en;q=0.5\r\n"
                       "te: trailers\r\n"
                       "Trailer: X-Checksum\r\n"
                       "Upgrade: websocket\r\n"
                       "Cookie: a=1; b=2\r\n"
                       "Cookie: c=3\r\n"
                       "\r\n",
                       &fwd,
                       "GET /ws HTTP/1.1\r\n"
                       "Host: example.test\r\n"
                       "User-Agent: test/1.0\r\n"
                       "Accept-Language: de, en;q=0.5\r\n"
                       "Cookie: a=1; b=2\r\n"
                       "Cookie: c=3\r\n"
                       "X-Forwarded-For: 198.51.100.20\r\n"
                       "X-Forwarded-Proto: https\r\n"
                       "\r\n");
    assert_int_equal(again->n_headers, 7);
    assert_true(header_is(&again->headers[3], "cookie", "a=1; b=2"));
    assert_true(header_is(&again->headers[4], "cookie", "c=3"));
    assert_true(again->keep_alive);
    assert_false(again->upgrade);
}

static void test_request_chunked_te_readded(void **state)
{
    struct mr_forward fwd = fwd_of("192.0.2.7", false, "http", false);
    const struct mr_http1_head *again;
    (void)state;

    /* The incoming Transfer-Encoding goes from its place (any case) and one
     * "Transfer-Encoding: chunked" ends the head. */
    again = request_is("POST /up HTTP/1.1\r\n"
                       "Host: h\r\n"
                       "transfer-encoding: Chunked\r\n"
                       "Content-Type: application/json\r\n"
                       "\r\n",
                       &fwd,
                       "POST /up HTTP/1.1\r\n"
                       "Host: h\r\n"
                       "Content-Type: application/json\r\n"
                       "X-Forwarded-For: 192.0.2.7\r\n"
                       "X-Forwarded-Proto: http\r\n"
                       "Transfer-Encoding: chunked\r\n"
                       "\r\n");
    assert_int_equal(again->body, MR_BODY_CHUNKED);

    /* A Content-Length body gets its parsed length, last, and no coding. */
    again = request_is("PUT /x HTTP/1.1\r\nHost: h\r\ncontent-length:  012\r\n\r\n", &fwd,
                       "PUT /x HTTP/1.1\r\n"
                       "Host: h\r\n"
                       "X-Forwarded-For: 192.0.2.7\r\n"
                       "X-Forwarded-Proto: http\r\n"
                       "Content-Length: 12\r\n"
                       "\r\n");
    assert_int_equal(again->body, MR_BODY_LENGTH);
    assert_int_equal(again->content_length, 12);
}

static void test_request_connection_named_dropped(void **state)
{
    struct mr_forward fwd = fwd_of("192.0.2.7", false, "http", false);
    (void)state;

    /* Several tokens, several Connection lines, any case; the names are
     * matched whole ("X-Secret-Not" is not "X-Secret"), and a name listed
     * before or after its header both count. */
    request_is("GET / HTTP/1.1\r\n"
               "x-secret: 1\r\n"
               "Host: h\r\n"
               "Connection: X-SECRET ,  close,x-other\r\n"
               "X-Secret-Not: kept\r\n"
               "X-Other: 2\r\n"
               "connection: X-Third\r\n"
               "Accept: a\r\n"
               "x-third: 3\r\n"
               "X-Secret: 4\r\n"
               "\r\n",
               &fwd,
               "GET / HTTP/1.1\r\n"
               "Host: h\r\n"
               "X-Secret-Not: kept\r\n"
               "Accept: a\r\n"
               "X-Forwarded-For: 192.0.2.7\r\n"
               "X-Forwarded-Proto: http\r\n"
               "\r\n");
}

/* RFC 9110 7.6.1: every header Connection names goes, whatever the length
 * of its name. */
static void test_request_connection_named_long_name(void **state)
{
    struct mr_forward fwd = fwd_of("192.0.2.7", false, "http", false);
    char name[81], in[512], want[512];
    (void)state;

    memset(name, 'n', 80);
    memcpy(name, "X-Long-", 7);
    name[80] = '\0';
    snprintf(in, sizeof(in),
             "GET / HTTP/1.1\r\nHost: h\r\nConnection: %s\r\n%s: secret\r\nAccept: a\r\n\r\n", name,
             name);
    snprintf(want, sizeof(want),
             "GET / HTTP/1.1\r\nHost: h\r\nAccept: a\r\n"
             "X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\n\r\n");
    request_is(in, &fwd, want);
}

/* Framing and Host are meridian's: a Connection token naming them is
 * ignored, and the lines are written from the parsed values. */
static void test_request_connection_cannot_remove_framing(void **state)
{
    struct mr_forward fwd = fwd_of("192.0.2.7", false, "http", false);
    (void)state;

    request_is("POST / HTTP/1.1\r\n"
               "Host: h\r\n"
               "Content-Length: 5\r\n"
               "Connection: content-length, Host, x-a\r\n"
               "X-A: 1\r\n"
               "\r\n",
               &fwd,
               "POST / HTTP/1.1\r\n"
               "Host: h\r\n"
               "X-Forwarded-For: 192.0.2.7\r\n"
               "X-Forwarded-Proto: http\r\n"
               "Content-Length: 5\r\n"
               "\r\n");
    request_is("POST / HTTP/1.1\r\n"
               "Transfer-Encoding: chunked\r\n"
               "Connection: transfer-encoding\r\n"
               "Host: h\r\n"
               "\r\n",
               &fwd,
               "POST / HTTP/1.1\r\n"
               "Host: h\r\n"
               "X-Forwarded-For: 192.0.2.7\r\n"
               "X-Forwarded-Proto: http\r\n"
               "Transfer-Encoding: chunked\r\n"
               "\r\n");
    /* An explicit zero length stays a zero length. */
    request_is("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nConnection: "
               "content-length\r\n\r\n",
               &fwd,
               "POST / HTTP/1.1\r\n"
               "Host: h\r\n"
               "X-Forwarded-For: 192.0.2.7\r\n"
               "X-Forwarded-Proto: http\r\n"
               "Content-Length: 0\r\n"
               "\r\n");
}

/* The target and Host sent are the ones routed on (absolute-form becomes
 * origin-form, its authority the Host), not the received Host. */
static void test_request_target_and_host_from_fwd(void **state)
{
    struct mr_forward fwd = fwd_of("192.0.2.7", false, "http", false);
    size_t len;
    const char *out;
    (void)state;

    fwd.target = "/x?y";
    fwd.target_len = 4;
    fwd.host = "a.example:8080";
    fwd.host_len = 14;
    out = rewrite_request(REQ("GET http://a.example:8080/x?y HTTP/1.1\r\nHost: other\r\n"
                              "Accept: a\r\n\r\n"),
                          &fwd, &len);
    expect_bytes(out, len,
                 "GET /x?y HTTP/1.1\r\n"
                 "Host: a.example:8080\r\n"
                 "Accept: a\r\n"
                 "X-Forwarded-For: 192.0.2.7\r\n"
                 "X-Forwarded-Proto: http\r\n"
                 "\r\n");
    reparse(MR_HTTP1_REQUEST, out, len);
}

/* Found by tests/fuzz/fuzz_request_head.c: an empty Host (valid, RFC 9112
 * 3.2) stays an empty Host in HTTP/1.1, which has no request without one. */
static void test_request_empty_host_kept(void **state)
{
    struct mr_forward fwd = fwd_of("192.0.2.7", false, "http", false);
    (void)state;

    request_is("GET /x HTTP/1.1\r\nHost: \t\r\n\r\n", &fwd,
               "GET /x HTTP/1.1\r\n"
               "Host: \r\n"
               "X-Forwarded-For: 192.0.2.7\r\n"
               "X-Forwarded-Proto: http\r\n"
               "\r\n");
    fwd.http10 = true;
    request_is("GET /x HTTP/1.0\r\n\r\n", &fwd,
               "GET /x HTTP/1.0\r\n"
               "X-Forwarded-For: 192.0.2.7\r\n"
               "X-Forwarded-Proto: http\r\n"
               "\r\n");
}

static void test_response_connection_cannot_remove_framing(void **state)
{
    const struct mr_http1_head *again;
    (void)state;

    again =
        response_is("HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 5\r\n\r\n",
                    false, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
    assert_int_equal(again->body, MR_BODY_LENGTH);
    assert_int_equal(again->content_length, 5);
    again = response_is("HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\n"
                        "Connection: transfer-encoding\r\n\r\n",
                        false, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_int_equal(again->body, MR_BODY_CHUNKED);
    /* Other codings are the client's to undo: they go as they came. */
    response_is("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", true,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\n");
    /* A 304 keeps the length it announces; it has no body. */
    response_is("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nConnection: "
                "content-length\r\n\r\n",
                false, "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n");
}

/* ---- X-Forwarded-For / X-Forwarded-Proto ---- */

static void test_xff_untrusted_peer_replaced(void **state)
{
    struct mr_forward fwd = fwd_of("192.0.2.7", false, "http", false);
    (void)state;

    request_is("GET / HTTP/1.1\r\n"
               "Host: h\r\n"
               "X-Forwarded-For: 1.2.3.4, 10.0.0.1\r\n"
               "Accept: a\r\n"
               "x-forwarded-for: 5.6.7.8\r\n"
               "X-Forwarded-Proto: https\r\n"
               "\r\n",
               &fwd,
               "GET / HTTP/1.1\r\n"
               "Host: h\r\n"
               "Accept: a\r\n"
               "X-Forwarded-For: 192.0.2.7\r\n"
               "X-Forwarded-Proto: http\r\n"
               "\r\n");
}

static void test_xff_trusted_peer_extended(void **state)
{
    struct mr_forward fwd = fwd_of("127.0.0.1", true, "https", false);
    struct mr_forward fwd6 = fwd_of("::1", true, "http", false);
    const struct mr_http1_head *again;
    (void)state;

    /* Every line in order (an empty one adds nothing), then the peer. */
    again = request_is("GET / HTTP/1.1\r\n"
                       "X-Forwarded-For: 203.0.113.9, 10.0.0.1\r\n"
                       "Host: h\r\n"
                       "X-FORWARDED-FOR:\r\n"
                       "Accept: a\r\n"
                       "x-forwarded-for: 10.0.0.2\r\n"
                       "X-Forwarded-Proto: http\r\n"
                       "\r\n",
                       &fwd,
                       "GET / HTTP/1.1\r\n"
                       "Host: h\r\n"
                       "Accept: a\r\n"
                       "X-Forwarded-For: 203.0.113.9, 10.0.0.1, 10.0.0.2, 127.0.0.1\r\n"
                       "X-Forwarded-Proto: https\r\n"
                       "\r\n");
    assert_int_equal(again->n_headers, 4);
    assert_true(header_is(&again->headers[2], "x-forwarded-for",
                          "203.0.113.9, 10.0.0.1, 10.0.0.2, 127.0.0.1"));
    assert_true(header_is(&again->headers[3], "x-forwarded-proto", "https"));

    /* No incoming list: just the peer. */
    request_is("GET / HTTP/1.1\r\nHost: h\r\n\r\n", &fwd6,
               "GET / HTTP/1.1\r\n"
               "Host: h\r\n"
               "X-Forwarded-For: ::1\r\n"
               "X-Forwarded-Proto: http\r\n"
               "\r\n");
    request_is("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 2001:db8::5\r\n\r\n", &fwd6,
               "GET / HTTP/1.1\r\n"
               "Host: h\r\n"
               "X-Forwarded-For: 2001:db8::5, ::1\r\n"
               "X-Forwarded-Proto: http\r\n"
               "\r\n");
}

static void test_xfp_replaced(void **state)
{
    struct mr_forward fwd = fwd_of("127.0.0.1", true, "http", false);
    struct mr_forward fwds = fwd_of("192.0.2.7", false, "https", false);
    (void)state;

    /* Even a trusted peer's X-Forwarded-Proto is ours to set. */
    request_is("GET / HTTP/1.1\r\nX-Forwarded-Proto: https\r\nHost: h\r\n"
               "x-forwarded-proto: wss\r\n\r\n",
               &fwd,
               "GET / HTTP/1.1\r\n"
               "Host: h\r\n"
               "X-Forwarded-For: 127.0.0.1\r\n"
               "X-Forwarded-Proto: http\r\n"
               "\r\n");
    request_is("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-Proto: http\r\n\r\n", &fwds,
               "GET / HTTP/1.1\r\n"
               "Host: h\r\n"
               "X-Forwarded-For: 192.0.2.7\r\n"
               "X-Forwarded-Proto: https\r\n"
               "\r\n");
}

/* ---- size bound of the request ---- */

/* Builds a request of n_headers header lines (Host first) in buf. */
static size_t compact_request(char *buf, size_t cap, size_t n_headers, bool chunked,
                              const char *sep)
{
    size_t n = (size_t)snprintf(buf, cap, "%s / HTTP/1.1\r\nHost%sh\r\n", chunked ? "POST" : "GET",
                                sep);
    size_t lines = 1;

    if (chunked) {
        n += (size_t)snprintf(buf + n, cap - n, "Transfer-Encoding%schunked\r\n", sep);
        lines++;
    }
    for (; lines < n_headers; lines++)
        n += (size_t)snprintf(buf + n, cap - n, "X-%zu%sv\r\n", lines, sep);
    n += (size_t)snprintf(buf + n, cap - n, "\r\n");
    assert_true(n < cap);
    return n;
}

static void test_request_size_bound_ordinary(void **state)
{
    static const char *const requests[] = {
        "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET / HTTP/1.0\r\n\r\n",
        "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nConnection: x-a\r\nX-A: 1\r\nX-Forwarded-For: 1.1.1.1\r\n"
        "X-Forwarded-For: 2.2.2.2, 3.3.3.3\r\nX-Forwarded-For:\r\n\r\n",
    };
    const char *peers[] = {"1.2.3.4", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"};
    (void)state;

    for (size_t i = 0; i < sizeof(requests) / sizeof(requests[0]); i++) {
        const struct mr_http1_head *head = REQ(requests[i]);
        for (size_t p = 0; p < 2; p++) {
            for (int t = 0; t < 4; t++) {
                struct mr_forward fwd = fwd_of(peers[p], t & 1, t & 2 ? "https" : "http",
                                               head->version_minor == 0);
                size_t len;
                rewrite_request(head, &fwd, &len);
            }
        }
    }
}

/* "Name:value" without the optional space is valid HTTP (RFC 9112 5: OWS),
 * but comes out as "Name: value", one byte longer per line. */
static void test_request_size_bound_compact_headers(void **state)
{
    char in[4096];
    const struct mr_http1_head *head;
    struct mr_forward fwd = fwd_of("192.0.2.7", false, "https", false);
    size_t len;
    (void)state;

    /* A few such lines fit in the slack... */
    compact_request(in, sizeof(in), 10, false, ":");
    rewrite_request(REQ(in), &fwd, &len);
    /* ...the default limit of 100 does not. */
    compact_request(in, sizeof(in), 100, true, ":");
    head = REQ(in);
    assert_int_equal(head->n_headers, 100);
    rewrite_request(head, &fwd, &len);
}

/* ---- responses ---- */

static void test_response_status_line(void **state)
{
    const struct mr_http1_head *again;
    (void)state;

    again = response_is("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n",
                        false,
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n");
    assert_int_equal(again->status, 200);
    assert_int_equal(again->body, MR_BODY_LENGTH);
    response_is("HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n", false,
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    response_is("HTTP/1.1 503 Service Temporarily Unavailable\r\nRetry-After: 1\r\n\r\n", false,
                "HTTP/1.1 503 Service Temporarily Unavailable\r\nRetry-After: 1\r\n\r\n");
    again = response_is("HTTP/1.1 100 Continue\r\n\r\n", false, "HTTP/1.1 100 Continue\r\n\r\n");
    assert_int_equal(again->status, 100);
    response_is("HTTP/1.1 599 Odd\r\n\r\n", false, "HTTP/1.1 599 Odd\r\n\r\n");
}

static void test_response_connection_close(void **state)
{
    const struct mr_http1_head *again;
    (void)state;

    again = response_is("HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n", true,
                        "HTTP/1.1 204 No Content\r\nX-A: 1\r\nConnection: close\r\n\r\n");
    assert_false(again->keep_alive);
    /* The upstream's own Connection: close is hop-by-hop: gone unless asked. */
    again = response_is("HTTP/1.1 204 No Content\r\nConnection: close\r\nX-A: 1\r\n\r\n", false,
                        "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n");
    assert_true(again->keep_alive);
    response_is("HTTP/1.1 204 No Content\r\nConnection: close\r\nX-A: 1\r\n\r\n", true,
                "HTTP/1.1 204 No Content\r\nX-A: 1\r\nConnection: close\r\n\r\n");
}

/* Extra lines (the session cookie) come last, after Connection: close. */
static void test_response_extra_lines(void **state)
{
    static const char extra[] = "Set-Cookie: MRD=v1.k.x; Path=/\r\n";
    static const char want[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n"
                               "Set-Cookie: MRD=v1.k.x; Path=/\r\n\r\n";
    const struct mr_http1_head *head = RESP("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    size_t bound = mr_headers_response_size(head, sizeof(extra) - 1);
    char *buf = tracked_malloc(bound);
    size_t len = mr_headers_response(buf, head, true, false, extra, sizeof(extra) - 1);
    (void)state;

    assert_true(len <= bound);
    expect_bytes(buf, len, want);
}

static void test_response_hop_by_hop(void **state)
{
    const struct mr_http1_head *again;
    (void)state;

    again = response_is("HTTP/1.1 200 OK\r\n"
                        "Connection: keep-alive, X-Internal\r\n"
                        "Content-Type: text/html\r\n"
                        "Keep-Alive: timeout=5, max=100\r\n"
                        "Proxy-Connection: keep-alive\r\n"
                        "Transfer-Encoding: chunked\r\n"
                        "Trailer: X-Checksum\r\n"
                        "TE: trailers\r\n"
                        "Upgrade: h2c\r\n"
                        "x-internal: secret\r\n"
                        "Set-Cookie: a=1\r\n"
                        "Set-Cookie: b=2\r\n"
                        "\r\n",
                        false,
                        "HTTP/1.1 200 OK\r\n"
                        "Content-Type: text/html\r\n"
                        "Set-Cookie: a=1\r\n"
                        "Set-Cookie: b=2\r\n"
                        "Transfer-Encoding: chunked\r\n"
                        "\r\n");
    assert_int_equal(again->body, MR_BODY_CHUNKED);
    assert_int_equal(again->n_headers, 4);

    /* Several Connection lines name headers too. */
    response_is("HTTP/1.1 200 OK\r\nConnection: X-A\r\nX-A: 1\r\nCONNECTION: x-b\r\n"
                "X-B: 2\r\nX-C: 3\r\nContent-Length: 0\r\n\r\n",
                true,
                "HTTP/1.1 200 OK\r\nX-C: 3\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}

static void test_response_size_bound_ordinary(void **state)
{
    static const char *const responses[] = {
        "HTTP/1.1 200 OK\r\n\r\n",
        "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        "HTTP/1.1 302 Found\r\nLocation: /x\r\nConnection: x-y\r\nX-Y: 1\r\n\r\n",
    };
    (void)state;

    for (size_t i = 0; i < sizeof(responses) / sizeof(responses[0]); i++) {
        size_t len;
        rewrite_response(RESP(responses[i]), false, &len);
        rewrite_response(RESP(responses[i]), true, &len);
    }
}

/* The status line without a reason phrase ("HTTP/1.1 204\r\n") is valid
 * and comes out with the SP the grammar requires; compact header lines gain
 * a space each. The bound must cover both. */
static void test_response_size_bound_compact(void **state)
{
    char in[4096];
    size_t n, len;
    const struct mr_http1_head *head;
    (void)state;

    response_is("HTTP/1.1 204\r\nX-A:1\r\n\r\n", true,
                "HTTP/1.1 204 \r\nX-A: 1\r\nConnection: close\r\n\r\n");

    n = (size_t)snprintf(in, sizeof(in), "HTTP/1.1 200\r\n");
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(in + n, sizeof(in) - n, "X-%d:v\r\n", i);
    snprintf(in + n, sizeof(in) - n, "\r\n");
    head = RESP(in);
    assert_int_equal(head->n_headers, 100);
    rewrite_response(head, true, &len);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_response_extra_lines),
        cmocka_unit_test_teardown(test_request_line_http11, free_tracked),
        cmocka_unit_test_teardown(test_request_line_http10, free_tracked),
        cmocka_unit_test_teardown(test_request_hop_by_hop_dropped, free_tracked),
        cmocka_unit_test_teardown(test_request_chunked_te_readded, free_tracked),
        cmocka_unit_test_teardown(test_request_connection_named_dropped, free_tracked),
        cmocka_unit_test_teardown(test_request_connection_named_long_name, free_tracked),
        cmocka_unit_test_teardown(test_xff_untrusted_peer_replaced, free_tracked),
        cmocka_unit_test_teardown(test_xff_trusted_peer_extended, free_tracked),
        cmocka_unit_test_teardown(test_xfp_replaced, free_tracked),
        cmocka_unit_test_teardown(test_request_size_bound_ordinary, free_tracked),
        cmocka_unit_test_teardown(test_request_size_bound_compact_headers, free_tracked),
        cmocka_unit_test_teardown(test_response_status_line, free_tracked),
        cmocka_unit_test_teardown(test_response_connection_close, free_tracked),
        cmocka_unit_test_teardown(test_response_hop_by_hop, free_tracked),
        cmocka_unit_test_teardown(test_request_connection_cannot_remove_framing, free_tracked),
        cmocka_unit_test_teardown(test_request_target_and_host_from_fwd, free_tracked),
        cmocka_unit_test_teardown(test_request_empty_host_kept, free_tracked),
        cmocka_unit_test_teardown(test_response_connection_cannot_remove_framing, free_tracked),
        cmocka_unit_test_teardown(test_response_size_bound_ordinary, free_tracked),
        cmocka_unit_test_teardown(test_response_size_bound_compact, free_tracked),
    };
    int failed = cmocka_run_group_tests_name("whole heads", tests, NULL, NULL);
    byte_at_a_time = true;
    return failed + cmocka_run_group_tests_name("heads fed a byte at a time", tests, NULL, NULL);
}
