/* tests/unit/test_netaddr.c: host:port parsing, formatting and CIDR sets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "common/netaddr.h"

static const struct sockaddr *sa(const struct mr_sockaddr *a)
{
    return (const struct sockaddr *)&a->ss;
}

static unsigned port_of(const struct mr_sockaddr *a)
{
    if (a->ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
}

/* ---- mr_netaddr_parse ---- */

static const struct {
    const char *text;
    int ok;
    int family;
    const char *host; /* as mr_netaddr_host prints it */
    unsigned port;
} parse_cases[] = {
    {"1.2.3.4:80", 1, AF_INET, "1.2.3.4", 80},
    {"127.0.0.1:65535", 1, AF_INET, "127.0.0.1", 65535},
    {"0.0.0.0:1", 1, AF_INET, "0.0.0.0", 1},
    {"[::1]:8080", 1, AF_INET6, "::1", 8080},
    {"[2001:db8::1]:443", 1, AF_INET6, "2001:db8::1", 443},
    {"[::ffff:10.0.0.1]:443", 1, AF_INET6, "10.0.0.1", 443},
    {"[::]:9", 1, AF_INET6, "::", 9},
    {"127.0.0.1:0", 0, 0, NULL, 0},
    {"127.0.0.1:65536", 0, 0, NULL, 0},
    {"127.0.0.1:123456", 0, 0, NULL, 0},
    {"127.0.0.1:", 0, 0, NULL, 0},
    {"127.0.0.1", 0, 0, NULL, 0},
    {"127.0.0.1:8a", 0, 0, NULL, 0},
    {"127.0.0.1:+80", 0, 0, NULL, 0},
    {"127.0.0.1:-1", 0, 0, NULL, 0},
    {":80", 0, 0, NULL, 0},
    {"", 0, 0, NULL, 0},
    {" 1.2.3.4:80", 0, 0, NULL, 0},
    {"1.2.3.256:80", 0, 0, NULL, 0},
    {"localhost:80", 0, 0, NULL, 0},
    {"::1:80", 0, 0, NULL, 0},
    {"[::1]80", 0, 0, NULL, 0},
    {"[::1]", 0, 0, NULL, 0},
    {"[::1]:", 0, 0, NULL, 0},
    {"[]:80", 0, 0, NULL, 0},
    {"[1.2.3.4]:80", 0, 0, NULL, 0},
    {"[::1:80", 0, 0, NULL, 0},
};

static void test_parse_table(void **state)
{
    for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
        struct mr_sockaddr a;
        char host[64];
        int rc = mr_netaddr_parse(parse_cases[i].text, &a);

        if ((rc == 0) != parse_cases[i].ok)
            fail_msg("mr_netaddr_parse(\"%s\") returned %d", parse_cases[i].text, rc);
        if (!parse_cases[i].ok)
            continue;
        assert_int_equal(a.ss.ss_family, parse_cases[i].family);
        assert_int_equal(a.len, parse_cases[i].family == AF_INET ? sizeof(struct sockaddr_in)
                                                                 : sizeof(struct sockaddr_in6));
        assert_int_equal(port_of(&a), parse_cases[i].port);
        assert_int_equal(mr_netaddr_host(sa(&a), host, sizeof(host)),
                         (int)strlen(parse_cases[i].host));
        assert_string_equal(host, parse_cases[i].host);
    }
    assert_int_equal(mr_netaddr_parse(NULL, NULL), -1);
}

/* ---- mr_netaddr_parse_host ---- */

static void test_parse_host(void **state)
{
    static const char list[] = "10.0.0.1,192.168.0.1";
    struct mr_sockaddr a;
    char host[64];

    assert_int_equal(mr_netaddr_parse_host("1.2.3.4", 7, &a), 0);
    assert_int_equal(a.ss.ss_family, AF_INET);
    assert_int_equal(port_of(&a), 0);
    assert_int_equal(mr_netaddr_parse_host("::1", 3, &a), 0);
    assert_int_equal(a.ss.ss_family, AF_INET6);
    /* Not NUL-terminated: only the first len bytes count. */
    assert_int_equal(mr_netaddr_parse_host(list, 8, &a), 0);
    mr_netaddr_host(sa(&a), host, sizeof(host));
    assert_string_equal(host, "10.0.0.1");
    /* Optional whitespace around a header list item. */
    assert_int_equal(mr_netaddr_parse_host(" 10.0.0.2\t", 10, &a), 0);
    mr_netaddr_host(sa(&a), host, sizeof(host));
    assert_string_equal(host, "10.0.0.2");

    assert_int_equal(mr_netaddr_parse_host("", 0, &a), -1);
    assert_int_equal(mr_netaddr_parse_host("  ", 2, &a), -1);
    assert_int_equal(mr_netaddr_parse_host("1.2.3.4:80", 10, &a), -1);
    assert_int_equal(mr_netaddr_parse_host("[::1]", 5, &a), -1);
    assert_int_equal(mr_netaddr_parse_host("unknown", 7, &a), -1);
    assert_int_equal(mr_netaddr_parse_host("1.2.3.4\0x", 9, &a), -1);
}

/* ---- mr_cidr_parse ---- */

static const struct {
    const char *text;
    int ok;
    int family;
    unsigned prefix;
    const char *network; /* the stored (masked) address */
} cidr_cases[] = {
    {"10.0.0.0/8", 1, AF_INET, 8, "10.0.0.0"},
    {"10.1.2.3/8", 1, AF_INET, 8, "10.0.0.0"},
    {"192.168.1.255/25", 1, AF_INET, 25, "192.168.1.128"},
    {"1.2.3.4", 1, AF_INET, 32, "1.2.3.4"},
    {"0.0.0.0/0", 1, AF_INET, 0, "0.0.0.0"},
    {"::1/128", 1, AF_INET6, 128, "::1"},
    {"::1", 1, AF_INET6, 128, "::1"},
    {"2001:db8::1/32", 1, AF_INET6, 32, "2001:db8::"},
    {"::/0", 1, AF_INET6, 0, "::"},
    {"::ffff:10.0.0.0/104", 1, AF_INET, 8, "10.0.0.0"},
    {"::ffff:127.0.0.1", 1, AF_INET, 32, "127.0.0.1"},
    {"10.0.0.0/33", 0, 0, 0, NULL},
    {"::/129", 0, 0, 0, NULL},
    {"10.0.0.0/", 0, 0, 0, NULL},
    {"/8", 0, 0, 0, NULL},
    {"10.0.0.0/-1", 0, 0, 0, NULL},
    {"10.0.0.0/8x", 0, 0, 0, NULL},
    {"10.0.0.0/0008", 0, 0, 0, NULL},
    {"10.0.0/8", 0, 0, 0, NULL},
    {"x", 0, 0, 0, NULL},
    {"", 0, 0, 0, NULL},
};

static void test_cidr_parse_table(void **state)
{
    for (size_t i = 0; i < sizeof(cidr_cases) / sizeof(cidr_cases[0]); i++) {
        struct mr_cidr c;
        char text[64];
        int rc = mr_cidr_parse(cidr_cases[i].text, &c);

        if ((rc == 0) != cidr_cases[i].ok)
            fail_msg("mr_cidr_parse(\"%s\") returned %d", cidr_cases[i].text, rc);
        if (!cidr_cases[i].ok)
            continue;
        assert_int_equal(c.family, cidr_cases[i].family);
        assert_int_equal(c.prefix, cidr_cases[i].prefix);
        assert_non_null(inet_ntop(c.family, c.addr, text, sizeof(text)));
        assert_string_equal(text, cidr_cases[i].network);
    }
}

/* ---- mr_cidr_set_contains ---- */

static const char *const proxies[] = {"127.0.0.0/8",      "::1/128",        "10.0.0.0/8",
                                      "2001:db8::/32",    "192.168.1.0/25", "::ffff:172.16.0.0/108",
                                      "fe80::1:0:0:0/80", "fd00::/7"};

static const struct {
    const char *addr;
    bool in;
} contains_cases[] = {
    {"127.0.0.1", true},
    {"127.255.255.254", true},
    {"::ffff:127.0.0.1", true}, /* IPv4-mapped client, IPv4 prefix */
    {"::1", true},
    {"::2", false},
    {"::", false},
    {"10.255.255.255", true},
    {"11.0.0.1", false},
    {"9.255.255.255", false},
    {"::ffff:10.1.2.3", true},
    {"::ffff:11.1.2.3", false},
    {"2001:db8:ffff::1", true},
    {"2001:db9::1", false},
    {"192.168.1.0", true},
    {"192.168.1.127", true},
    {"192.168.1.128", false},
    {"::ffff:192.168.1.200", false},
    {"172.16.0.1", true}, /* IPv4 client, IPv4-mapped prefix */
    {"172.31.255.255", true},
    {"172.32.0.0", false},
    {"fe80::1:0:0:1", true},
    {"fe80::2:0:0:1", false},
    {"fc00::1", true},
    {"fdff::1", true},
    {"fe00::1", false},
};

static void test_cidr_contains_table(void **state)
{
    struct mr_cidr items[sizeof(proxies) / sizeof(proxies[0])];
    struct mr_cidr_set set = {items, sizeof(items) / sizeof(items[0])};
    struct mr_cidr_set empty = {NULL, 0};
    struct mr_cidr any;
    struct mr_cidr_set all = {&any, 1};

    for (size_t i = 0; i < set.n; i++)
        assert_int_equal(mr_cidr_parse(proxies[i], &items[i]), 0);
    for (size_t i = 0; i < sizeof(contains_cases) / sizeof(contains_cases[0]); i++) {
        const char *text = contains_cases[i].addr;
        struct mr_sockaddr a;

        assert_int_equal(mr_netaddr_parse_host(text, strlen(text), &a), 0);
        if (mr_cidr_set_contains(&set, sa(&a)) != contains_cases[i].in)
            fail_msg("mr_cidr_set_contains(%s) should be %d", text, contains_cases[i].in);
        assert_false(mr_cidr_set_contains(&empty, sa(&a)));
    }

    assert_int_equal(mr_cidr_parse("0.0.0.0/0", &any), 0);
    {
        struct mr_sockaddr a;

        mr_netaddr_parse_host("203.0.113.9", 11, &a);
        assert_true(mr_cidr_set_contains(&all, sa(&a)));
        mr_netaddr_parse_host("::ffff:203.0.113.9", 18, &a);
        assert_true(mr_cidr_set_contains(&all, sa(&a)));
        mr_netaddr_parse_host("2001:db8::9", 11, &a);
        assert_false(mr_cidr_set_contains(&all, sa(&a)));
        assert_false(mr_cidr_set_contains(NULL, sa(&a)));
        assert_false(mr_cidr_set_contains(&all, NULL));
    }
}

/* ---- formatting, equality, loopback ---- */

static void test_host_format(void **state)
{
    struct mr_sockaddr a;
    char buf[64];

    assert_int_equal(mr_netaddr_parse("[2001:db8:0:0:0:0:0:1]:80", &a), 0);
    assert_int_equal(mr_netaddr_host(sa(&a), buf, sizeof(buf)), 11);
    assert_string_equal(buf, "2001:db8::1");
    assert_int_equal(mr_netaddr_parse("[::ffff:1.2.3.4]:80", &a), 0);
    assert_int_equal(mr_netaddr_host(sa(&a), buf, sizeof(buf)), 7);
    assert_string_equal(buf, "1.2.3.4");
    /* Too small a buffer is an error, never a truncated address. */
    assert_int_equal(mr_netaddr_host(sa(&a), buf, 7), -1);
    assert_int_equal(mr_netaddr_host(sa(&a), buf, 8), 7);
    assert_int_equal(mr_netaddr_host(NULL, buf, sizeof(buf)), -1);
    {
        struct sockaddr unix_like = {.sa_family = AF_UNIX};

        assert_int_equal(mr_netaddr_host(&unix_like, buf, sizeof(buf)), -1);
    }
}

static void test_equal(void **state)
{
    struct mr_sockaddr a, b;

    mr_netaddr_parse("127.0.0.1:80", &a);
    mr_netaddr_parse("127.0.0.1:80", &b);
    assert_true(mr_netaddr_equal(&a, &b));
    mr_netaddr_parse("127.0.0.1:81", &b);
    assert_false(mr_netaddr_equal(&a, &b));
    mr_netaddr_parse("127.0.0.2:80", &b);
    assert_false(mr_netaddr_equal(&a, &b));
    mr_netaddr_parse("[::ffff:127.0.0.1]:80", &b);
    assert_false(mr_netaddr_equal(&a, &b)); /* different families */
    mr_netaddr_parse("[::1]:80", &a);
    mr_netaddr_parse("[0:0::1]:80", &b);
    assert_true(mr_netaddr_equal(&a, &b));
    assert_false(mr_netaddr_equal(&a, NULL));
}

static void test_loopback(void **state)
{
    static const struct {
        const char *host;
        bool loopback;
    } cases[] = {
        {"127.0.0.1", true},  {"127.255.0.1", true}, {"::1", true}, {"::ffff:127.0.0.1", true},
        {"10.0.0.1", false},  {"0.0.0.0", false},    {"::", false}, {"::2", false},
        {"128.0.0.1", false},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mr_sockaddr a;

        assert_int_equal(mr_netaddr_parse_host(cases[i].host, strlen(cases[i].host), &a), 0);
        if (mr_netaddr_is_loopback(sa(&a)) != cases[i].loopback)
            fail_msg("mr_netaddr_is_loopback(%s) should be %d", cases[i].host, cases[i].loopback);
    }
    assert_false(mr_netaddr_is_loopback(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),      cmocka_unit_test(test_parse_host),
        cmocka_unit_test(test_cidr_parse_table), cmocka_unit_test(test_cidr_contains_table),
        cmocka_unit_test(test_host_format),      cmocka_unit_test(test_equal),
        cmocka_unit_test(test_loopback),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
