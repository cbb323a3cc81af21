/* tests/unit/test_clientaddr.c: the client address behind trusted proxies
 * (router/clientaddr.c): the socket peer, or the rightmost untrusted entry
 * of X-Forwarded-For when the peer is trusted. */
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

#include "common/netaddr.h"
#include "router/clientaddr.h"
#include "router/http1.h"

static const struct mr_http1_limits limits = {
    .max_head_bytes = 16384,
    .max_headers = 100,
    .max_uri_bytes = 8192,
};

/* The head of the running test points into these; freed by the teardown. */
static struct mr_http1 *parser;
static struct evbuffer *input;
static struct mr_http1_head head;

static int free_head(void **state)
{
    (void)state;
    mr_http1_free(parser);
    if (input != NULL)
        evbuffer_free(input);
    parser = NULL;
    input = NULL;
    return 0;
}

/* Parses a request whose headers are the NULL-terminated lines given (each
 * "Name: value", without CRLF). */
static const struct mr_http1_head *request(const char *const *lines)
{
    int r;

    free_head(NULL);
    parser = mr_http1_new(MR_HTTP1_REQUEST, &limits);
    input = evbuffer_new();
    assert_non_null(parser);
    assert_non_null(input);
    evbuffer_add_printf(input, "GET / HTTP/1.1\r\nHost: h\r\n");
    for (size_t i = 0; lines != NULL && lines[i] != NULL; i++)
        evbuffer_add_printf(input, "%s\r\n", lines[i]);
    evbuffer_add_printf(input, "\r\n");
    r = mr_http1_parse_head(parser, input, false, &head);
    assert_int_equal(r, -1);
    return &head;
}

/* A request with a single X-Forwarded-For line of value xff (NULL: none). */
static const struct mr_http1_head *with_xff(const char *xff)
{
    char line[512];
    const char *lines[] = {line, NULL};

    if (xff == NULL)
        return request(NULL);
    snprintf(line, sizeof(line), "X-Forwarded-For: %s", xff);
    return request(lines);
}

/* A CIDR set parsed from a NULL-terminated list; items are static. */
#define MAX_CIDRS 8
static struct mr_cidr cidr_items[MAX_CIDRS];

static struct mr_cidr_set cidrs(const char *const *list)
{
    struct mr_cidr_set set = {.items = cidr_items, .n = 0};

    for (; list != NULL && *list != NULL; list++) {
        assert_true(set.n < MAX_CIDRS);
        if (mr_cidr_parse(*list, &cidr_items[set.n]) != 0)
            fail_msg("bad CIDR %s", *list);
        set.n++;
    }
    return set;
}

static struct mr_sockaddr addr(const char *text)
{
    struct mr_sockaddr a;

    if (mr_netaddr_parse(text, &a) != 0)
        fail_msg("bad address %s", text);
    return a;
}

/* Resolves and checks the return value and the client's host text. */
static void expect_client(const struct mr_cidr_set *trusted, const char *peer,
                          const struct mr_http1_head *h, bool want_trusted, const char *want)
{
    struct mr_sockaddr p = addr(peer), client;
    char host[64];
    bool got;

    memset(&client, 0x5a, sizeof(client));
    got = mr_clientaddr_resolve(trusted, &p, h, &client);
    assert_true(mr_netaddr_host((const struct sockaddr *)&client.ss, host, sizeof(host)) > 0);
    if (got != want_trusted || strcmp(host, want) != 0)
        fail_msg("peer %s: got %s (trusted %d), want %s (trusted %d)", peer, host, got, want,
                 want_trusted);
}

static const char *const loop_and_ten[] = {"127.0.0.0/8", "10.0.0.0/8", NULL};

/* ---- untrusted peers ---- */

static void test_untrusted_peer_is_client(void **state)
{
    struct mr_cidr_set trusted = cidrs(loop_and_ten);
    struct mr_sockaddr peer = addr("192.0.2.1:40000"), client;
    (void)state;

    /* The list is ignored, however it looks; the client is the peer itself,
     * port and all. */
    assert_false(mr_clientaddr_resolve(&trusted, &peer, with_xff("203.0.113.9"), &client));
    assert_true(mr_netaddr_equal(&client, &peer));
    assert_int_equal(client.len, peer.len);
    assert_false(mr_clientaddr_resolve(&trusted, &peer, with_xff("garbage, 10.0.0.1"), &client));
    assert_true(mr_netaddr_equal(&client, &peer));
    assert_false(mr_clientaddr_resolve(&trusted, &peer, with_xff(NULL), &client));
    assert_true(mr_netaddr_equal(&client, &peer));
}

static void test_empty_trusted_set(void **state)
{
    struct mr_cidr_set none = {.items = NULL, .n = 0};
    struct mr_sockaddr peer = addr("127.0.0.1:5555"), client;
    (void)state;

    assert_false(mr_clientaddr_resolve(&none, &peer, with_xff("203.0.113.9"), &client));
    assert_true(mr_netaddr_equal(&client, &peer));
}

/* ---- trusted peers ---- */

static void test_trusted_peer_without_xff(void **state)
{
    struct mr_cidr_set trusted = cidrs(loop_and_ten);
    struct mr_sockaddr peer = addr("127.0.0.1:5555"), client;
    (void)state;

    assert_true(mr_clientaddr_resolve(&trusted, &peer, with_xff(NULL), &client));
    assert_true(mr_netaddr_equal(&client, &peer));
    /* An empty list is no list. */
    assert_true(mr_clientaddr_resolve(&trusted, &peer, with_xff(""), &client));
    assert_true(mr_netaddr_equal(&client, &peer));
    assert_true(mr_clientaddr_resolve(&trusted, &peer, with_xff(" , ,"), &client));
    assert_true(mr_netaddr_equal(&client, &peer));
}

static void test_rightmost_untrusted(void **state)
{
    struct mr_cidr_set trusted = cidrs(loop_and_ten);
    (void)state;

    expect_client(&trusted, "127.0.0.1:5555", with_xff("203.0.113.9"), true, "203.0.113.9");
    /* The trusted hop right of the client is skipped. */
    expect_client(&trusted, "127.0.0.1:5555", with_xff("203.0.113.9, 10.0.0.1"), true,
                  "203.0.113.9");
    /* Whatever the client wrote itself (left of it) is not believed. */
    expect_client(&trusted, "127.0.0.1:5555", with_xff("1.1.1.1, 203.0.113.9"), true,
                  "203.0.113.9");
    expect_client(&trusted, "127.0.0.2:1", with_xff("1.1.1.1, 203.0.113.9, 10.1.2.3, 10.0.0.1"),
                  true, "203.0.113.9");
    /* Spacing and empty list elements do not matter. */
    expect_client(&trusted, "127.0.0.1:5555", with_xff(",1.1.1.1,,203.0.113.9 ,\t10.0.0.1,,"), true,
                  "203.0.113.9");
}

static void test_all_trusted_gives_leftmost(void **state)
{
    struct mr_cidr_set trusted = cidrs(loop_and_ten);
    (void)state;

    expect_client(&trusted, "127.0.0.1:5555", with_xff("10.0.0.5, 10.0.0.1"), true, "10.0.0.5");
    expect_client(&trusted, "127.0.0.1:5555", with_xff("127.0.0.9"), true, "127.0.0.9");
    expect_client(&trusted, "127.0.0.1:5555", with_xff(", 10.9.9.9, 10.0.0.1"), true, "10.9.9.9");
}

/* An entry that does not parse ends the walk: nothing left of it can be
 * believed, so the answer is the last good (trusted) address right of it,
 * or the peer when there is none. */
static void test_unparseable_entry_stops(void **state)
{
    struct mr_cidr_set trusted = cidrs(loop_and_ten);
    (void)state;

    expect_client(&trusted, "127.0.0.1:5555", with_xff("203.0.113.9, bogus, 10.0.0.1"), true,
                  "10.0.0.1");
    expect_client(&trusted, "127.0.0.1:5555", with_xff("203.0.113.9, 10.0.0.7, 10.0.0.1, bogus"),
                  true, "127.0.0.1");
    expect_client(&trusted, "127.0.0.1:5555", with_xff("unknown"), true, "127.0.0.1");
    /* Ports and brackets are not X-Forwarded-For syntax. */
    expect_client(&trusted, "127.0.0.1:5555", with_xff("203.0.113.9:4711"), true, "127.0.0.1");
    expect_client(&trusted, "127.0.0.1:5555", with_xff("[2001:db8::1]"), true, "127.0.0.1");
    /* An untrusted address right of the bad entry is found first. */
    expect_client(&trusted, "127.0.0.1:5555", with_xff("bogus, 198.51.100.4, 10.0.0.1"), true,
                  "198.51.100.4");
}

static void test_several_lines_are_one_list(void **state)
{
    struct mr_cidr_set trusted = cidrs(loop_and_ten);
    const char *const split[] = {
        "X-Forwarded-For: 1.1.1.1",  "Accept: */*", "x-forwarded-for: 203.0.113.9, 10.0.0.1",
        "X-FORWARDED-FOR: 10.0.0.2", NULL,
    };
    const char *const across[] = {
        "X-Forwarded-For: 198.51.100.1, 203.0.113.9",
        "X-Forwarded-For: 10.0.0.3",
        "X-Forwarded-For:",
        "X-Forwarded-For: 10.0.0.2, 10.0.0.1",
        NULL,
    };
    const char *const all_trusted[] = {
        "X-Forwarded-For: 10.0.0.9",
        "X-Forwarded-For: 10.0.0.1, 10.0.0.2",
        NULL,
    };
    const char *const bad_earlier[] = {
        "X-Forwarded-For: 198.51.100.1, bogus",
        "X-Forwarded-For: 10.0.0.7",
        NULL,
    };
    const char *const bad_later[] = {
        "X-Forwarded-For: 198.51.100.1",
        "X-Forwarded-For: 10.0.0.8, bogus",
        NULL,
    };
    (void)state;

    expect_client(&trusted, "127.0.0.1:5555", request(split), true, "203.0.113.9");
    expect_client(&trusted, "127.0.0.1:5555", request(across), true, "203.0.113.9");
    expect_client(&trusted, "127.0.0.1:5555", request(all_trusted), true, "10.0.0.9");
    expect_client(&trusted, "127.0.0.1:5555", request(bad_earlier), true, "10.0.0.7");
    /* The bad entry stops the walk across lines too. */
    expect_client(&trusted, "127.0.0.1:5555", request(bad_later), true, "127.0.0.1");
}

static void test_ipv6(void **state)
{
    const char *const list[] = {"::1/128", "fd00::/8", "10.0.0.0/8", NULL};
    struct mr_cidr_set trusted = cidrs(list);
    struct mr_sockaddr peer = addr("[2001:db8::99]:443"), client;
    (void)state;

    expect_client(&trusted, "[::1]:443", with_xff("2001:db8::7, fd00::1"), true, "2001:db8::7");
    expect_client(&trusted, "[::1]:443", with_xff("2001:db8::7, fd12:3456::1, 10.0.0.1"), true,
                  "2001:db8::7");
    expect_client(&trusted, "[::1]:443", with_xff("203.0.113.9, fd00::1"), true, "203.0.113.9");
    expect_client(&trusted, "[::1]:443", with_xff("2001:DB8:0:0:0:0:0:8"), true, "2001:db8::8");
    expect_client(&trusted, "[::1]:443", with_xff("fd00::2, fd00::1"), true, "fd00::2");
    expect_client(&trusted, "[fd00::5]:1", with_xff("2001:db8::7"), true, "2001:db8::7");
    /* An untrusted IPv6 peer is the client. */
    assert_false(mr_clientaddr_resolve(&trusted, &peer, with_xff("2001:db8::7"), &client));
    assert_true(mr_netaddr_equal(&client, &peer));
}

static void test_ipv4_mapped(void **state)
{
    struct mr_cidr_set trusted = cidrs(loop_and_ten);
    struct mr_sockaddr peer = addr("[::ffff:192.0.2.1]:80"), client;
    (void)state;

    /* A mapped peer is trusted as its IPv4 address... */
    expect_client(&trusted, "[::ffff:127.0.0.1]:5555", with_xff("203.0.113.9"), true,
                  "203.0.113.9");
    expect_client(&trusted, "[::ffff:127.0.0.1]:5555", with_xff(NULL), true, "127.0.0.1");
    /* ...and so is a mapped entry of the list. */
    expect_client(&trusted, "127.0.0.1:5555", with_xff("203.0.113.9, ::ffff:10.0.0.3"), true,
                  "203.0.113.9");
    expect_client(&trusted, "127.0.0.1:5555", with_xff("::ffff:203.0.113.9, 10.0.0.3"), true,
                  "203.0.113.9");
    /* A mapped untrusted peer stays the client. */
    assert_false(mr_clientaddr_resolve(&trusted, &peer, with_xff("203.0.113.9"), &client));
    assert_true(mr_netaddr_equal(&client, &peer));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_untrusted_peer_is_client, free_head),
        cmocka_unit_test_teardown(test_empty_trusted_set, free_head),
        cmocka_unit_test_teardown(test_trusted_peer_without_xff, free_head),
        cmocka_unit_test_teardown(test_rightmost_untrusted, free_head),
        cmocka_unit_test_teardown(test_all_trusted_gives_leftmost, free_head),
        cmocka_unit_test_teardown(test_unparseable_entry_stops, free_head),
        cmocka_unit_test_teardown(test_several_lines_are_one_list, free_head),
        cmocka_unit_test_teardown(test_ipv6, free_head),
        cmocka_unit_test_teardown(test_ipv4_mapped, free_head),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
