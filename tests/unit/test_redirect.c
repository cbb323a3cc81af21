/* tests/unit/test_redirect.c: the redirects meridian answers itself
 * (router/redirect.c). The exact bytes of a 307 to a cluster's public_url
 * and of a 308 to https: the request's path and query kept, the host's
 * port dropped and https_port added unless 443, the cookie line and
 * "Connection: close" where asked; a request without a usable host gets no
 * redirect. Heads come from the real parser (router/http1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <cmocka.h>

#include "router/http1.h"
#include "router/redirect.h"

static const struct mr_http1_limits limits = {16384, 100, 8192};

/* A parsed request head over raw; the parser and input stay alive until
 * done() (the head's fields point into them). */
struct parsed {
    struct mr_http1 *parser;
    struct evbuffer *in;
    struct mr_http1_head head;
};

static struct parsed parse(const char *raw)
{
    struct parsed p;

    p.parser = mr_http1_new(MR_HTTP1_REQUEST, &limits);
    p.in = evbuffer_new();
    assert_non_null(p.parser);
    assert_non_null(p.in);
    evbuffer_add(p.in, raw, strlen(raw));
    if (mr_http1_parse_head(p.parser, p.in, false, &p.head) >= 0)
        fail_msg("not a valid head: %s", raw);
    return p;
}

static void done(struct parsed *p)
{
    mr_http1_free(p->parser);
    evbuffer_free(p->in);
}

/* What was written to out, as a string (caller frees). */
static char *text(struct evbuffer *out)
{
    size_t len = evbuffer_get_length(out);
    char *s = calloc(1, len + 1);

    assert_non_null(s);
    evbuffer_remove(out, s, len);
    return s;
}

static void expect_https(const char *raw, int port, const char *cookie, bool close,
                         const char *want)
{
    struct parsed p = parse(raw);
    struct evbuffer *out = evbuffer_new();
    char *got;

    assert_int_equal(mr_redirect_to_https(out, port, &p.head, cookie,
                                          cookie != NULL ? strlen(cookie) : 0, close),
                     0);
    got = text(out);
    assert_string_equal(got, want);
    free(got);
    evbuffer_free(out);
    done(&p);
}

static void test_307_to_public_url(void **state)
{
    struct parsed p = parse("GET /app/page?x=1&y=%20 HTTP/1.1\r\nHost: edge.example\r\n\r\n");
    struct evbuffer *out = evbuffer_new();
    char *got;
    (void)state;

    mr_redirect_to_url(out, "https://eu.example.com", &p.head, NULL, 0, false);
    got = text(out);
    assert_string_equal(got, "HTTP/1.1 307 Temporary Redirect\r\n"
                             "Location: https://eu.example.com/app/page?x=1&y=%20\r\n"
                             "Content-Length: 0\r\n\r\n");
    free(got);
    evbuffer_free(out);
    done(&p);
}

static void test_307_with_cookie_and_close(void **state)
{
    static const char cookie[] = "Set-Cookie: MRD=v1.abc; Path=/; HttpOnly\r\n";
    struct parsed p = parse("POST /form HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc");
    struct evbuffer *out = evbuffer_new();
    char *got;
    (void)state;

    mr_redirect_to_url(out, "http://us.example.com:8080", &p.head, cookie, strlen(cookie), true);
    got = text(out);
    assert_string_equal(got, "HTTP/1.1 307 Temporary Redirect\r\n"
                             "Location: http://us.example.com:8080/form\r\n"
                             "Content-Length: 0\r\n"
                             "Set-Cookie: MRD=v1.abc; Path=/; HttpOnly\r\n"
                             "Connection: close\r\n\r\n");
    free(got);
    evbuffer_free(out);
    done(&p);
}

static void test_308_keeps_path_and_query(void **state)
{
    (void)state;
    expect_https("GET /a/b?c=d&e HTTP/1.1\r\nHost: www.example.com\r\n\r\n", 443, NULL, false,
                 "HTTP/1.1 308 Permanent Redirect\r\n"
                 "Location: https://www.example.com/a/b?c=d&e\r\n"
                 "Content-Length: 0\r\n\r\n");
}

/* The Host's own port is the plain listener's: https_port replaces it. */
static void test_308_port(void **state)
{
    (void)state;
    expect_https("GET /p HTTP/1.1\r\nHost: www.example.com:8080\r\n\r\n", 8443, NULL, true,
                 "HTTP/1.1 308 Permanent Redirect\r\n"
                 "Location: https://www.example.com:8443/p\r\n"
                 "Content-Length: 0\r\nConnection: close\r\n\r\n");
    expect_https("GET /p HTTP/1.1\r\nHost: www.example.com:8080\r\n\r\n", 443, NULL, false,
                 "HTTP/1.1 308 Permanent Redirect\r\n"
                 "Location: https://www.example.com/p\r\n"
                 "Content-Length: 0\r\n\r\n");
    expect_https("GET /v6 HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\n\r\n", 443, NULL, false,
                 "HTTP/1.1 308 Permanent Redirect\r\n"
                 "Location: https://[2001:db8::1]/v6\r\n"
                 "Content-Length: 0\r\n\r\n");
}

/* An absolute-form target: its authority is the host, its path the path;
 * OPTIONS * redirects to "/". */
static void test_308_target_forms(void **state)
{
    (void)state;
    expect_https("GET http://abs.example/x?y HTTP/1.1\r\nHost: abs.example\r\n\r\n", 443, NULL,
                 false,
                 "HTTP/1.1 308 Permanent Redirect\r\n"
                 "Location: https://abs.example/x?y\r\n"
                 "Content-Length: 0\r\n\r\n");
    expect_https("OPTIONS * HTTP/1.1\r\nHost: o.example\r\n\r\n", 443, NULL, false,
                 "HTTP/1.1 308 Permanent Redirect\r\n"
                 "Location: https://o.example/\r\n"
                 "Content-Length: 0\r\n\r\n");
}

static void test_308_without_host(void **state)
{
    struct parsed p = parse("GET /nohost HTTP/1.0\r\n\r\n");
    struct evbuffer *out = evbuffer_new();
    (void)state;

    assert_int_equal(mr_redirect_to_https(out, 443, &p.head, NULL, 0, false), -1);
    assert_int_equal(evbuffer_get_length(out), 0);
    evbuffer_free(out);
    done(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_307_to_public_url),
        cmocka_unit_test(test_307_with_cookie_and_close),
        cmocka_unit_test(test_308_keeps_path_and_query),
        cmocka_unit_test(test_308_port),
        cmocka_unit_test(test_308_target_forms),
        cmocka_unit_test(test_308_without_host),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
