/* tests/unit/test_http1.c: request and response heads, limits, smuggling. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <cmocka.h>

#include "router/http1.h"

static const struct mr_http1_limits limits = {
    .max_head_bytes = 1024,
    .max_headers = 8,
    .max_uri_bytes = 64,
};

/* The head points into both: they live until the next parse. */
static struct mr_http1 *last_parser;
static struct evbuffer *last_buf;

static void forget_last(void)
{
    mr_http1_free(last_parser);
    if (last_buf != NULL)
        evbuffer_free(last_buf);
    last_parser = NULL;
    last_buf = NULL;
}

/* Every test runs twice: heads given whole, then a byte at a time (the
 * verdict must not depend on where reads split). */
static bool byte_at_a_time;
static size_t last_unfed; /* bytes not given to the parser: it decided before */

static int feed(const char *text, size_t len, bool head_request, struct mr_http1_head *head)
{
    size_t fed = 0;
    int r;

    if (!byte_at_a_time) {
        evbuffer_add(last_buf, text, len);
        last_unfed = 0;
        return mr_http1_parse_head(last_parser, last_buf, head_request, head);
    }
    do {
        evbuffer_add(last_buf, text + fed, 1);
        fed++;
        r = mr_http1_parse_head(last_parser, last_buf, head_request, head);
    } while (r == MR_HTTP1_AGAIN && fed < len);
    last_unfed = len - fed;
    return r;
}

/* Parses text as one request head; returns the parser's verdict. */
static int parse_request(const char *text, size_t len, struct mr_http1_head *head,
                         struct evbuffer **keep)
{
    forget_last();
    last_parser = mr_http1_new(MR_HTTP1_REQUEST, &limits);
    last_buf = evbuffer_new();
    if (keep != NULL)
        *keep = last_buf;
    return feed(text, len, false, head);
}

struct bad_case {
    const char *name;
    const char *request;
    int status;
};

static void test_refused_requests(void **state)
{
    (void)state;
    char long_uri[200], many_headers[600], big_head[1200];
    int n;

    n = snprintf(long_uri, sizeof(long_uri), "GET /");
    memset(long_uri + n, 'a', 100);
    strcpy(long_uri + n + 100, " HTTP/1.1\r\nHost: x\r\n\r\n");
    n = snprintf(many_headers, sizeof(many_headers), "GET / HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 9; i++)
        n += snprintf(many_headers + n, sizeof(many_headers) - (size_t)n, "X-H%d: v\r\n", i);
    strcpy(many_headers + n, "\r\n");
    n = snprintf(big_head, sizeof(big_head), "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(big_head + n, 'b', 1100);
    big_head[n + 1100] = '\0';

    const struct bad_case cases[] = {
        {"CL and TE",
         "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
         400},
        {"TE not chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
        {"TE chunked not last",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400},
        {"TE gzip, chunked",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 400},
        {"TE twice",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
         "chunked\r\n\r\n",
         400},
        {"TE on HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
        {"TE with space before colon",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n", 400},
        {"differing CL",
         "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400},
        {"repeated CL",
         "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400},
        {"CL not a number", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5x\r\n\r\n", 400},
        {"CL negative", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400},
        {"bare LF in headers", "GET / HTTP/1.1\nHost: x\n\n", 400},
        {"bare LF after a header", "GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n", 400},
        {"bare CR", "GET / HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n", 400},
        {"space in header name", "GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", 400},
        {"empty header name", "GET / HTTP/1.1\r\nHost: x\r\n: y\r\n\r\n", 400},
        {"NUL in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n", 400},
        {"control char in value",
         "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01"
         "b\r\n\r\n",
         400},
        {"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400},
        {"obs-fold after an empty value", "GET / HTTP/1.1\r\nHost: x\r\nX-A:\r\n b\r\n\r\n", 400},
        {"whitespace before first header", "GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400},
        {"no Host on 1.1", "GET / HTTP/1.1\r\nX-A: b\r\n\r\n", 400},
        {"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
        {"bad method", "G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"space in target", "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"HTTP/2 line", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505},
        {"garbage version", "GET / HTTQ/1.1\r\nHost: x\r\n\r\n", 400},
        {"CONNECT", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 405},
        {"GET *", "GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"* with a path", "OPTIONS */a HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"TAB in target", "GET /a\tb HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"form feed in target", "GET /a\fb HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"control byte in target",
         "GET /a\x01"
         "b HTTP/1.1\r\nHost: x\r\n\r\n",
         400},
        {"DEL in target",
         "GET /a\x7f"
         "b HTTP/1.1\r\nHost: x\r\n\r\n",
         400},
        {"byte above 0x7f in target", "GET /\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"fragment in target", "GET /a#b HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"relative target", "GET a/b HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"authority-form for GET", "GET a.example:80 HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"other scheme", "GET ftp://a.example/x HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"userinfo", "GET http://u@a.example/x HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"empty authority", "GET http:///x HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"authority port too big", "GET http://a:65536/ HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"authority bad char", "GET http://a\"b/ HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"Host with a path", "GET / HTTP/1.1\r\nHost: evil.example/x\r\n\r\n", 400},
        {"Host with userinfo", "GET / HTTP/1.1\r\nHost: u@evil.example\r\n\r\n", 400},
        {"Host with a space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
        {"Host with a tab", "GET / HTTP/1.1\r\nHost: a\tb\r\n\r\n", 400},
        {"Host with a quote", "GET / HTTP/1.1\r\nHost: a\"b\r\n\r\n", 400},
        {"Host empty port", "GET / HTTP/1.1\r\nHost: a:\r\n\r\n", 400},
        {"Host port not digits", "GET / HTTP/1.1\r\nHost: a:8o\r\n\r\n", 400},
        {"Host port too long", "GET / HTTP/1.1\r\nHost: a:000080\r\n\r\n", 400},
        {"Host two ports", "GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n", 400},
        {"Host only a port", "GET / HTTP/1.1\r\nHost: :80\r\n\r\n", 400},
        {"Host bad percent", "GET / HTTP/1.1\r\nHost: a%2\r\n\r\n", 400},
        {"Host IPv6 unclosed", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400},
        {"Host IPv6 not an address", "GET / HTTP/1.1\r\nHost: [evil/x]\r\n\r\n", 400},
        {"Host IPv6 then junk", "GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", 400},
        {"Host bad on absolute-form too", "GET http://a/ HTTP/1.1\r\nHost: a/b\r\n\r\n", 400},
        {"CR alone before the request line", "\rGET / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"URI too long", long_uri, 414},
        {"too many headers", many_headers, 431},
        {"head too big", big_head, 431},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mr_http1_head head;
        size_t len = strlen(cases[i].request);
        if (strcmp(cases[i].name, "NUL in value") == 0)
            len = sizeof("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n") - 1;
        int r = parse_request(cases[i].request, len, &head, NULL);
        if (r != cases[i].status)
            fail_msg("%s: got %d, want %d", cases[i].name, r, cases[i].status);
    }
}

static void test_incomplete_head_waits(void **state)
{
    struct mr_http1_head head;
    (void)state;
    const char *partial = "GET / HTTP/1.1\r\nHost: x\r\n";
    assert_int_equal(parse_request(partial, strlen(partial), &head, NULL), MR_HTTP1_AGAIN);
    /* A long request line still being received is 414 before it ends. */
    char line[200] = "GET /";
    memset(line + 5, 'a', 150);
    line[155] = '\0';
    assert_int_equal(parse_request(line, strlen(line), &head, NULL), 414);
}

static void test_valid_request(void **state)
{
    struct mr_http1_head head;
    struct evbuffer *buf;
    (void)state;
    const char *req = "\r\nPOST /up?x=1 HTTP/1.1\r\nHost: example\r\nContent-Length: 5\r\n"
                      "X-Tab:\tv  \r\nConnection: keep-alive\r\n\r\nhello";

    assert_int_equal(parse_request(req, strlen(req), &head, &buf), -1);
    assert_int_equal(head.method, MR_METHOD_POST);
    assert_int_equal(head.target_len, 7);
    assert_memory_equal(head.target, "/up?x=1", 7);
    assert_int_equal(head.version_minor, 1);
    assert_int_equal(head.body, MR_BODY_LENGTH);
    assert_int_equal(head.content_length, 5);
    assert_true(head.keep_alive);
    assert_int_equal(head.n_headers, 4);
    assert_true(mr_http1_name_is(&head.headers[2], "x-tab"));
    assert_int_equal(head.headers[2].value_len, 1); /* trailing spaces trimmed */
    /* The leading empty line was dropped; the head ends before the body. */
    assert_int_equal(evbuffer_get_length(buf) + last_unfed - head.head_len, 5);
}

static void test_http10_and_close(void **state)
{
    struct mr_http1_head head;
    (void)state;
    const char *r10 = "GET / HTTP/1.0\r\n\r\n";
    const char *rclose = "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    assert_int_equal(parse_request(r10, strlen(r10), &head, NULL), -1);
    assert_int_equal(head.version_minor, 0);
    assert_false(head.keep_alive);
    assert_int_equal(head.body, MR_BODY_NONE);
    assert_int_equal(parse_request(rclose, strlen(rclose), &head, NULL), -1);
    assert_false(head.keep_alive);
}

static int parse_response(const char *text, bool head_request, struct mr_http1_head *head)
{
    forget_last();
    last_parser = mr_http1_new(MR_HTTP1_RESPONSE, &limits);
    last_buf = evbuffer_new();
    return feed(text, strlen(text), head_request, head);
}

static void test_response_framing(void **state)
{
    struct mr_http1_head head;
    (void)state;

    assert_int_equal(parse_response("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", false, &head),
                     -1);
    assert_int_equal(head.status, 200);
    assert_int_equal(head.body, MR_BODY_LENGTH);
    assert_int_equal(head.content_length, 10);
    assert_memory_equal(head.reason, "OK", 2);
    /* The same answer to HEAD has no body. */
    assert_int_equal(parse_response("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true, &head),
                     -1);
    assert_int_equal(head.body, MR_BODY_NONE);
    assert_int_equal(parse_response("HTTP/1.1 204 No Content\r\n\r\n", false, &head), -1);
    assert_int_equal(head.body, MR_BODY_NONE);
    assert_int_equal(parse_response("HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n",
                                    false, &head),
                     -1);
    assert_int_equal(head.body, MR_BODY_NONE);
    assert_int_equal(parse_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false,
                                    &head),
                     -1);
    assert_int_equal(head.body, MR_BODY_CHUNKED);
    assert_int_equal(parse_response("HTTP/1.1 200 OK\r\n\r\n", false, &head), -1);
    assert_int_equal(head.body, MR_BODY_UNTIL_EOF);
    assert_int_equal(parse_response("HTTP/1.1 100 Continue\r\n\r\n", false, &head), -1);
    assert_int_equal(head.status, 100);
    assert_int_equal(head.body, MR_BODY_NONE);
    assert_int_equal(parse_response("HTTP/1.1 200 OK\nContent-Length: 1\n\n", false, &head), 502);
    assert_int_equal(parse_response("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: "
                                    "2\r\n\r\n",
                                    false, &head),
                     502);
    /* Found by tests/fuzz/fuzz_response_head.c: a body the parser reads
     * until close, whose Transfer-Encoding the client would read as
     * chunked once its blank is trimmed, is refused; codings before chunked
     * and after it are read as before. */
    assert_int_equal(parse_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\t\r\n\r\n",
                                    false, &head),
                     502);
    assert_int_equal(parse_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                                    false, &head),
                     -1);
    assert_int_equal(head.body, MR_BODY_CHUNKED);
    assert_int_equal(parse_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                                    false, &head),
                     -1);
    assert_int_equal(head.body, MR_BODY_UNTIL_EOF);
}

/* Found by tests/fuzz/fuzz_response_head.c: the parser takes a status of
 * one digit and control bytes in the reason, which would be forwarded (and
 * "HTTP/1.1 003" then frames differently). */
static void test_status_line(void **state)
{
    struct mr_http1_head head;
    (void)state;

    assert_int_equal(parse_response("HTTP/1.1 3 N\r\nContent-Length: 0\r\n\r\n", false, &head),
                     502);
    assert_int_equal(parse_response("HTTP/1.1 42 X\r\nContent-Length: 0\r\n\r\n", false, &head),
                     502);
    assert_int_equal(parse_response("HTTP/1.1 200 O\x01K\r\nContent-Length: 0\r\n\r\n", false,
                                    &head),
                     502);
    assert_int_equal(parse_response("HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", false, &head),
                     502);
    assert_int_equal(parse_response("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", false, &head), -1);
    assert_int_equal(parse_response("HTTP/1.1 599 \tWhy\x80\r\nContent-Length: 0\r\n\r\n", false,
                                    &head),
                     -1);
    assert_int_equal(head.status, 599);
}

/* What is forwarded and routed on: origin-form and the authority. */
static void test_targets(void **state)
{
    static const struct {
        const char *request, *path, *host;
    } ok[] = {
        {"GET /a?b HTTP/1.1\r\nHost: h.example:8080\r\n\r\n", "/a?b", "h.example:8080"},
        {"GET http://a.example:8080/x?y HTTP/1.1\r\nHost: other\r\n\r\n", "/x?y", "a.example:8080"},
        {"GET HTTPS://A.example HTTP/1.1\r\nHost: other\r\n\r\n", "/", "A.example"},
        {"GET http://a.example?q HTTP/1.1\r\nHost: a.example\r\n\r\n", "?q", "a.example"},
        {"OPTIONS http://a.example HTTP/1.1\r\nHost: a.example\r\n\r\n", "*", "a.example"},
        {"OPTIONS * HTTP/1.1\r\nHost: a.example\r\n\r\n", "*", "a.example"},
        {"GET http://[::1]:81/ HTTP/1.0\r\n\r\n", "/", "[::1]:81"},
        {"GET / HTTP/1.1\r\nHost: [2001:db8::1]\r\n\r\n", "/", "[2001:db8::1]"},
        {"GET / HTTP/1.1\r\nHost: 192.0.2.1:65535\r\n\r\n", "/", "192.0.2.1:65535"},
        {"GET / HTTP/1.1\r\nHost: a-b_c~d.example%41!$&'()*+,;=\r\n\r\n", "/",
         "a-b_c~d.example%41!$&'()*+,;="},
        {"GET / HTTP/1.1\r\nHost:\r\n\r\n", "/", ""},
        {"GET / HTTP/1.0\r\n\r\n", "/", ""},
        /* what browsers leave unencoded passes */
        {"GET /a|b{c}^`\"<>\\[]!$&'()*+,;=:@%20~ HTTP/1.1\r\nHost: h\r\n\r\n",
         "/a|b{c}^`\"<>\\[]!$&'()*+,;=:@%20~", "h"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct mr_http1_head head;
        int r = parse_request(ok[i].request, strlen(ok[i].request), &head, NULL);
        if (r != -1)
            fail_msg("%s: got %d", ok[i].request, r);
        if (head.path_len != strlen(ok[i].path) ||
            memcmp(head.path, ok[i].path, head.path_len) != 0)
            fail_msg("%s: path %.*s", ok[i].request, (int)head.path_len, head.path);
        if (head.host_len != strlen(ok[i].host) ||
            memcmp(head.host, ok[i].host, head.host_len) != 0)
            fail_msg("%s: host %.*s", ok[i].request, (int)head.host_len, head.host);
    }
}

static void test_tokens(void **state)
{
    (void)state;
    const char *v = "keep-alive, X-Secret ,Upgrade";
    assert_true(mr_http1_has_token(v, strlen(v), "x-secret", 8));
    assert_true(mr_http1_has_token(v, strlen(v), "upgrade", 7));
    assert_false(mr_http1_has_token(v, strlen(v), "close", 5));
    assert_false(mr_http1_has_token(v, strlen(v), "keep", 4));
}

/* Found by tests/fuzz/fuzz_request_head.c: the verdict must not depend on
 * where reads split (a bare CR, obs-fold or a leading CRLF cut by the end
 * of a read). Every split point gets the verdict of the whole. */
static void test_split_reads(void **state)
{
    static const struct {
        const char *request;
        int status;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400},
        {"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", -1},
        {"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", -1},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *req = cases[i].request;
        size_t len = strlen(req);
        for (size_t cut = 1; cut < len; cut++) {
            struct mr_http1_head head;
            struct evbuffer *buf;
            int r = parse_request(req, cut, &head, &buf);
            if (r == MR_HTTP1_AGAIN) {
                evbuffer_add(buf, req + cut, len - cut);
                r = mr_http1_parse_head(last_parser, buf, false, &head);
            }
            if (r != cases[i].status)
                fail_msg("case %zu split at %zu: got %d, want %d", i, cut, r, cases[i].status);
        }
    }
    /* A request line longer than any target is refused once ended too, as
     * a read that ends within it is. */
    char line[200] = "GET /";
    struct mr_http1_head head;
    memset(line + 5, 'a', 150);
    strcpy(line + 155, " HTTP/1.1\r\nHost: x\r\n");
    assert_int_equal(parse_request(line, 120, &head, NULL), 414);
    assert_int_equal(parse_request(line, strlen(line), &head, NULL), 414);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refused_requests), cmocka_unit_test(test_incomplete_head_waits),
        cmocka_unit_test(test_valid_request),    cmocka_unit_test(test_http10_and_close),
        cmocka_unit_test(test_targets),          cmocka_unit_test(test_response_framing),
        cmocka_unit_test(test_status_line),      cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_split_reads),
    };
    int failed = cmocka_run_group_tests_name("whole heads", tests, NULL, NULL);
    byte_at_a_time = true;
    failed += cmocka_run_group_tests_name("heads fed a byte at a time", tests, NULL, NULL);
    forget_last();
    return failed;
}
