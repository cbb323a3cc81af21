/* tests/unit/test_proxyproto.c: PROXY protocol v1/v2 parsing, building, and
 * the socket reader that must never take a byte past the header
 * (common/proxyproto.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/netaddr.h"
#include "common/proxyproto.h"

static const char payload[] = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";

/* ---- helpers ---- */

static int parse_text(const char *text, struct mr_proxyproto *pp)
{
    return mr_proxyproto_parse((const unsigned char *)text, strlen(text), pp);
}

/* Asserts family, address text (inet_ntop, so IPv4-mapped stays mapped) and port. */
static void assert_endpoint(const struct mr_sockaddr *a, int family, const char *host,
                            unsigned port)
{
    char text[INET6_ADDRSTRLEN];

    assert_int_equal(a->ss.ss_family, family);
    if (family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->ss;
        assert_int_equal(a->len, sizeof(*sin));
        assert_non_null(inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text)));
        assert_int_equal(ntohs(sin->sin_port), port);
    } else {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->ss;
        assert_int_equal(a->len, sizeof(*sin6));
        assert_non_null(inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text)));
        assert_int_equal(ntohs(sin6->sin6_port), port);
    }
    assert_string_equal(text, host);
}

static void assert_local(const struct mr_proxyproto *pp, int version)
{
    assert_true(pp->local);
    assert_int_equal(pp->version, version);
    assert_int_equal(pp->src.ss.ss_family, AF_UNSPEC);
    assert_int_equal(pp->dst.ss.ss_family, AF_UNSPEC);
    assert_int_equal(pp->src.len, 0);
    assert_int_equal(pp->dst.len, 0);
}

static void assert_same_result(const struct mr_proxyproto *a, const struct mr_proxyproto *b)
{
    assert_int_equal(a->local, b->local);
    assert_int_equal(a->version, b->version);
    if (!a->local) {
        assert_true(mr_netaddr_equal(&a->src, &b->src));
        assert_true(mr_netaddr_equal(&a->dst, &b->dst));
    }
}

/* A v2 header: signature, ver_cmd, fam, the announced len, then body_len
 * bytes of body (which may disagree with len, for malformed cases). */
static size_t v2(unsigned char *out, unsigned ver_cmd, unsigned fam, size_t len, const void *body,
                 size_t body_len)
{
    static const unsigned char sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                          0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
    memcpy(out, sig, 12);
    out[12] = (unsigned char)ver_cmd;
    out[13] = (unsigned char)fam;
    out[14] = (unsigned char)(len >> 8);
    out[15] = (unsigned char)(len & 0xff);
    if (body_len > 0) {
        memcpy(out + 16, body, body_len);
    }
    return 16 + body_len;
}

/* 192.0.2.1:51234 -> 198.51.100.7:443 */
static const unsigned char tcp4_body[12] = {192, 0, 2, 1, 198, 51, 100, 7, 0xc8, 0x22, 0x01, 0xbb};

/* 2001:db8::1:1000 -> ::1:8443, then a PP2_TYPE_AUTHORITY TLV "a.example" and a NOOP TLV. */
static const unsigned char tcp6_tlv_body[] = {
    0x20, 0x01, 0x0d, 0xb8, 0,    0,    0,    0,    0,    0,    0,    0,   0,   0,
    0,    1,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,   0,   0,
    0,    0,    0,    1,    0x03, 0xe8, 0x20, 0xfb, 0x02, 0x00, 0x09, 'a', '.', 'e',
    'x',  'a',  'm',  'p',  'l',  'e',  0x04, 0x00, 0x02, 0xaa, 0xbb,
};

/* The i-th valid header of the corpus the prefix and reader tests share,
 * written into buf (MR_PROXYPROTO_MAX bytes); 0 past the last one. */
static size_t valid_header(int i, unsigned char *buf)
{
    static const char *const v1[] = {
        "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
        "PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 0 65535\r\n",
        "PROXY UNKNOWN\r\n",
        /* The spec's worst case: exactly MR_PROXYPROTO_V1_MAX bytes. */
        "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
    };
    const int n_v1 = (int)(sizeof(v1) / sizeof(v1[0]));
    unsigned char big[MR_PROXYPROTO_MAX - 16];

    if (i < n_v1) {
        memcpy(buf, v1[i], strlen(v1[i]));
        return strlen(v1[i]);
    }
    switch (i - n_v1) {
    case 0: return v2(buf, 0x21, 0x11, sizeof(tcp4_body), tcp4_body, sizeof(tcp4_body));
    case 1: return v2(buf, 0x21, 0x21, sizeof(tcp6_tlv_body), tcp6_tlv_body, sizeof(tcp6_tlv_body));
    case 2: return v2(buf, 0x20, 0x00, 0, NULL, 0);
    case 3:
        /* TCP4 and TLVs filling the largest accepted header exactly. */
        memset(big, 0, sizeof(big));
        memcpy(big, tcp4_body, sizeof(tcp4_body));
        return v2(buf, 0x21, 0x11, sizeof(big), big, sizeof(big));
    default: return 0;
    }
}

/* ---- v1 ---- */

static void test_v1_tcp4(void **state)
{
    (void)state;
    struct mr_proxyproto pp;
    const char *h = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n";

    assert_int_equal(parse_text(h, &pp), 47);
    assert_false(pp.local);
    assert_int_equal(pp.version, 1);
    assert_endpoint(&pp.src, AF_INET, "192.168.0.1", 56324);
    assert_endpoint(&pp.dst, AF_INET, "192.168.0.11", 443);

    assert_int_equal(parse_text("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n", &pp), 44);
    assert_endpoint(&pp.src, AF_INET, "0.0.0.0", 0);
    assert_endpoint(&pp.dst, AF_INET, "255.255.255.255", 65535);
}

static void test_v1_tcp6(void **state)
{
    (void)state;
    struct mr_proxyproto pp;
    const char *h = "PROXY TCP6 2001:DB8::1 ::ffff:10.0.0.1 0 65535\r\n";

    assert_int_equal(parse_text(h, &pp), (int)strlen(h));
    assert_false(pp.local);
    assert_endpoint(&pp.src, AF_INET6, "2001:db8::1", 0);
    assert_endpoint(&pp.dst, AF_INET6, "::ffff:10.0.0.1", 65535);

    h = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe 65535 65535\r\n";
    assert_int_equal(parse_text(h, &pp), 104);
    assert_endpoint(&pp.dst, AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 65535);
}

static void test_v1_unknown(void **state)
{
    (void)state;
    struct mr_proxyproto pp;

    assert_int_equal(parse_text("PROXY UNKNOWN\r\nGET", &pp), 15);
    assert_local(&pp, 1);
    /* Anything after UNKNOWN up to the CRLF is ignored, even nonsense. */
    assert_int_equal(parse_text("PROXY UNKNOWN 1.2.3.4 what ever 99999\r\n", &pp), 39);
    assert_local(&pp, 1);
}

struct bad_case {
    const char *name;
    const char *bytes;
    size_t len; /* 0: strlen(bytes) */
};

static const struct bad_case v1_bad[] = {
    {"lowercase proxy", "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", 0},
    {"HTTP instead", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0},
    {"TLS instead", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00\x00\x00\x00\x00", 16},
    {"lowercase tcp4", "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", 0},
    {"TCP5", "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", 0},
    {"UNKNOWN glued", "PROXY UNKNOWNX\r\n", 0},
    {"nothing after PROXY", "PROXY\r\n", 0},
    {"no protocol", "PROXY \r\n", 0},
    {"octet 256", "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", 0},
    {"three octets", "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", 0},
    {"leading zero octet", "PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", 0},
    {"hostname", "PROXY TCP4 localhost 5.6.7.8 1 2\r\n", 0},
    {"port 65536", "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", 0},
    {"port 6 digits", "PROXY TCP4 1.2.3.4 5.6.7.8 1 100000\r\n", 0},
    {"port leading zero", "PROXY TCP4 1.2.3.4 5.6.7.8 1 080\r\n", 0},
    {"port 00", "PROXY TCP4 1.2.3.4 5.6.7.8 00 2\r\n", 0},
    {"port negative", "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", 0},
    {"port plus", "PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", 0},
    {"port hex", "PROXY TCP4 1.2.3.4 5.6.7.8 1 0x50\r\n", 0},
    {"missing port", "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", 0},
    {"extra field", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", 0},
    {"double space", "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", 0},
    {"double space before port", "PROXY TCP4 1.2.3.4 5.6.7.8  1 2\r\n", 0},
    {"trailing space", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", 0},
    {"tab separator", "PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n", 0},
    {"IPv6 in TCP4", "PROXY TCP4 ::1 ::1 1 2\r\n", 0},
    {"IPv4 in TCP6", "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", 0},
    {"mixed in TCP6", "PROXY TCP6 ::1 5.6.7.8 1 2\r\n", 0},
    {"bad IPv6", "PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n", 0},
    {"bracketed IPv6", "PROXY TCP6 [::1] ::1 1 2\r\n", 0},
    {"NUL in address", "PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n", 33},
    {"bare LF", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", 0},
    {"bare LF in UNKNOWN", "PROXY UNKNOWN x\ny\r\n", 0},
    {"bare CR", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX\n", 0},
    {"LF CR", "PROXY UNKNOWN\n\r", 0},
};

static void test_v1_malformed(void **state)
{
    (void)state;
    struct mr_proxyproto pp;

    for (size_t i = 0; i < sizeof(v1_bad) / sizeof(v1_bad[0]); i++) {
        size_t len = v1_bad[i].len ? v1_bad[i].len : strlen(v1_bad[i].bytes);
        int rc = mr_proxyproto_parse((const unsigned char *)v1_bad[i].bytes, len, &pp);
        if (rc != -1) {
            fail_msg("%s: parse returned %d, want -1", v1_bad[i].name, rc);
        }
    }
}

/* The CRLF must come within MR_PROXYPROTO_V1_MAX bytes. */
static void test_v1_too_long(void **state)
{
    (void)state;
    struct mr_proxyproto pp;
    char line[200];

    /* 108 bytes with the CRLF: one too many, even for UNKNOWN. */
    memcpy(line, "PROXY UNKNOWN ", 14);
    memset(line + 14, 'a', 92);
    memcpy(line + 106, "\r\n", 2);
    assert_int_equal(mr_proxyproto_parse((unsigned char *)line, 108, &pp), -1);
    /* Refused as soon as the 107th byte is not the LF of a CRLF... */
    assert_int_equal(mr_proxyproto_parse((unsigned char *)line, 107, &pp), -1);
    /* ...or as soon as 106 bytes do not end in a CR. */
    assert_int_equal(mr_proxyproto_parse((unsigned char *)line, 106, &pp), -1);
    assert_int_equal(mr_proxyproto_parse((unsigned char *)line, 105, &pp), 0);
    /* 107 with the CRLF is the limit, and fine. */
    memcpy(line + 105, "\r\n", 2);
    assert_int_equal(mr_proxyproto_parse((unsigned char *)line, 107, &pp), 107);
    assert_local(&pp, 1);
    /* Many bytes and no CRLF at all. */
    memset(line + 14, 'a', sizeof(line) - 14);
    assert_int_equal(mr_proxyproto_parse((unsigned char *)line, sizeof(line), &pp), -1);
}

/* Prefixes that cannot become a header are refused before the CRLF arrives. */
static void test_v1_early_refusal(void **state)
{
    (void)state;
    struct mr_proxyproto pp;
    static const char *const bad[] = {
        "G",
        "GET ",
        "p",
        "PROXX",
        "PROXY  ",
        "PROXY X",
        "PROXY TCP9",
        "PROXY UNKNOWNS",
        "PROXY TCP4 1.2.3.4 x",
        "PROXY TCP6 ::1\t",
    };
    static const char *const partial[] = {
        "P",
        "PROXY",
        "PROXY ",
        "PROXY T",
        "PROXY TCP4",
        "PROXY TCP4 1.2.3.4 5.6",
        "PROXY UNKNOWN",
        "PROXY UNKNOWN anything at all",
        "PROXY TCP6 ::1 ::2 1 2\r",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse_text(bad[i], &pp) != -1) {
            fail_msg("\"%s\" should be refused at once", bad[i]);
        }
    }
    for (size_t i = 0; i < sizeof(partial) / sizeof(partial[0]); i++) {
        if (parse_text(partial[i], &pp) != 0) {
            fail_msg("\"%s\" should wait for more", partial[i]);
        }
    }
}

/* ---- v2 ---- */

static void test_v2_tcp4(void **state)
{
    (void)state;
    unsigned char buf[64];
    struct mr_proxyproto pp;
    size_t n = v2(buf, 0x21, 0x11, 12, tcp4_body, 12);

    memcpy(buf + n, "GET", 3); /* payload after the header is not read */
    assert_int_equal(mr_proxyproto_parse(buf, n + 3, &pp), 28);
    assert_false(pp.local);
    assert_int_equal(pp.version, 2);
    assert_endpoint(&pp.src, AF_INET, "192.0.2.1", 51234);
    assert_endpoint(&pp.dst, AF_INET, "198.51.100.7", 443);
}

static void test_v2_tcp6_with_tlvs(void **state)
{
    (void)state;
    unsigned char buf[128];
    struct mr_proxyproto pp;
    size_t n = v2(buf, 0x21, 0x21, sizeof(tcp6_tlv_body), tcp6_tlv_body, sizeof(tcp6_tlv_body));

    assert_int_equal(n, 16 + 36 + 12 + 5);
    assert_int_equal(mr_proxyproto_parse(buf, n, &pp), (int)n);
    assert_false(pp.local);
    assert_endpoint(&pp.src, AF_INET6, "2001:db8::1", 1000);
    assert_endpoint(&pp.dst, AF_INET6, "::1", 8443);

    /* TLVs are skipped by length, not validated: garbage is fine. */
    unsigned char body[12 + 7];
    memcpy(body, tcp4_body, 12);
    memset(body + 12, 0xee, 7);
    n = v2(buf, 0x21, 0x11, sizeof(body), body, sizeof(body));
    assert_int_equal(mr_proxyproto_parse(buf, n, &pp), 35);
    assert_endpoint(&pp.src, AF_INET, "192.0.2.1", 51234);
}

static void test_v2_local_and_fallbacks(void **state)
{
    (void)state;
    unsigned char buf[300], body[216];
    struct mr_proxyproto pp;
    size_t n;

    memset(body, 0x5a, sizeof(body));
    /* LOCAL: family and addresses ignored, whatever they are. */
    n = v2(buf, 0x20, 0x00, 0, NULL, 0);
    assert_int_equal(mr_proxyproto_parse(buf, n, &pp), 16);
    assert_local(&pp, 2);
    n = v2(buf, 0x20, 0x11, 12, tcp4_body, 12);
    assert_int_equal(mr_proxyproto_parse(buf, n, &pp), 28);
    assert_local(&pp, 2);
    n = v2(buf, 0x20, 0xff, 3, body, 3);
    assert_int_equal(mr_proxyproto_parse(buf, n, &pp), 19);
    assert_local(&pp, 2);

    /* PROXY with a family we do not carry falls back to the real peer. */
    n = v2(buf, 0x21, 0x00, 0, NULL, 0);
    assert_int_equal(mr_proxyproto_parse(buf, n, &pp), 16);
    assert_local(&pp, 2);
    n = v2(buf, 0x21, 0x12, 12, tcp4_body, 12); /* UDP4 */
    assert_int_equal(mr_proxyproto_parse(buf, n, &pp), 28);
    assert_local(&pp, 2);
    n = v2(buf, 0x21, 0x22, 36, tcp6_tlv_body, 36); /* UDP6 */
    assert_int_equal(mr_proxyproto_parse(buf, n, &pp), 52);
    assert_local(&pp, 2);
    n = v2(buf, 0x21, 0x31, 216, body, 216); /* UNIX stream */
    assert_int_equal(mr_proxyproto_parse(buf, n, &pp), 232);
    assert_local(&pp, 2);
    n = v2(buf, 0x21, 0x10, 0, NULL, 0); /* INET, transport UNSPEC: no address */
    assert_int_equal(mr_proxyproto_parse(buf, n, &pp), 16);
    assert_local(&pp, 2);
}

static void test_v2_malformed(void **state)
{
    (void)state;
    unsigned char buf[MR_PROXYPROTO_MAX + 64], body[MR_PROXYPROTO_MAX];
    struct mr_proxyproto pp;
    size_t n;

    memset(body, 0, sizeof(body));
    memcpy(body, tcp4_body, sizeof(tcp4_body));

    /* Wrong signature, at its last byte and at the NUL. */
    n = v2(buf, 0x21, 0x11, 12, tcp4_body, 12);
    buf[11] = 0x0b;
    assert_int_equal(mr_proxyproto_parse(buf, n, &pp), -1);
    assert_int_equal(mr_proxyproto_parse(buf, 12, &pp), -1);
    n = v2(buf, 0x21, 0x11, 12, tcp4_body, 12);
    buf[4] = 0x20;
    assert_int_equal(mr_proxyproto_parse(buf, 5, &pp), -1);

    /* Version 1 (and 3) in the version nibble; refused with 13 bytes. */
    n = v2(buf, 0x11, 0x11, 12, tcp4_body, 12);
    assert_int_equal(mr_proxyproto_parse(buf, n, &pp), -1);
    assert_int_equal(mr_proxyproto_parse(buf, 13, &pp), -1);
    n = v2(buf, 0x31, 0x11, 12, tcp4_body, 12);
    assert_int_equal(mr_proxyproto_parse(buf, n, &pp), -1);
    /* Command 2 is unassigned. */
    n = v2(buf, 0x22, 0x11, 12, tcp4_body, 12);
    assert_int_equal(mr_proxyproto_parse(buf, n, &pp), -1);
    /* Family 4, transport 3: unspecified, refused with 14 bytes. */
    n = v2(buf, 0x21, 0x41, 12, tcp4_body, 12);
    assert_int_equal(mr_proxyproto_parse(buf, n, &pp), -1);
    assert_int_equal(mr_proxyproto_parse(buf, 14, &pp), -1);
    n = v2(buf, 0x21, 0x13, 12, tcp4_body, 12);
    assert_int_equal(mr_proxyproto_parse(buf, n, &pp), -1);

    /* Length too short for the family: known from the 16 fixed bytes. */
    n = v2(buf, 0x21, 0x11, 11, tcp4_body, 11);
    assert_int_equal(mr_proxyproto_parse(buf, n, &pp), -1);
    assert_int_equal(mr_proxyproto_parse(buf, 16, &pp), -1);
    n = v2(buf, 0x21, 0x11, 0, NULL, 0);
    assert_int_equal(mr_proxyproto_parse(buf, n, &pp), -1);
    n = v2(buf, 0x21, 0x21, 35, body, 35);
    assert_int_equal(mr_proxyproto_parse(buf, n, &pp), -1);
    n = v2(buf, 0x21, 0x21, 12, body, 12);
    assert_int_equal(mr_proxyproto_parse(buf, n, &pp), -1);
    n = v2(buf, 0x21, 0x12, 11, body, 11);
    assert_int_equal(mr_proxyproto_parse(buf, n, &pp), -1);
    n = v2(buf, 0x21, 0x31, 215, body, 215);
    assert_int_equal(mr_proxyproto_parse(buf, n, &pp), -1);

    /* Too long: one byte over MR_PROXYPROTO_MAX, refused at 16 bytes. */
    n = v2(buf, 0x21, 0x11, MR_PROXYPROTO_MAX - 16 + 1, body, MR_PROXYPROTO_MAX - 16 + 1);
    assert_int_equal(n, MR_PROXYPROTO_MAX + 1);
    assert_int_equal(mr_proxyproto_parse(buf, n, &pp), -1);
    assert_int_equal(mr_proxyproto_parse(buf, 16, &pp), -1);
    n = v2(buf, 0x21, 0x11, 0xffff, NULL, 0);
    assert_int_equal(mr_proxyproto_parse(buf, n, &pp), -1);
    /* ...and the largest accepted one. */
    n = v2(buf, 0x21, 0x11, MR_PROXYPROTO_MAX - 16, body, MR_PROXYPROTO_MAX - 16);
    assert_int_equal(mr_proxyproto_parse(buf, n, &pp), MR_PROXYPROTO_MAX);
    assert_endpoint(&pp.src, AF_INET, "192.0.2.1", 51234);
}

/* ---- every header, every prefix ---- */

static void test_every_prefix_needs_more(void **state)
{
    (void)state;
    unsigned char buf[MR_PROXYPROTO_MAX + sizeof(payload)];
    struct mr_proxyproto pp;
    size_t n;

    for (int i = 0; (n = valid_header(i, buf)) > 0; i++) {
        for (size_t k = 0; k < n; k++) {
            int rc = mr_proxyproto_parse(buf, k, &pp);
            if (rc != 0) {
                fail_msg("header %d: prefix of %zu/%zu bytes returned %d", i, k, n, rc);
            }
        }
        assert_int_equal(mr_proxyproto_parse(buf, n, &pp), (int)n);
        memcpy(buf + n, payload, sizeof(payload));
        assert_int_equal(mr_proxyproto_parse(buf, n + sizeof(payload), &pp), (int)n);
    }
}

/* ---- builders ---- */

static struct sockaddr_in v4addr(const char *host, uint16_t port)
{
    struct sockaddr_in sin;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    assert_int_equal(inet_pton(AF_INET, host, &sin.sin_addr), 1);
    return sin;
}

static struct sockaddr_in6 v6addr(const char *host, uint16_t port)
{
    struct sockaddr_in6 sin6;

    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(port);
    assert_int_equal(inet_pton(AF_INET6, host, &sin6.sin6_addr), 1);
    return sin6;
}

#define SA(x) ((const struct sockaddr *)&(x))

static void test_build_v1(void **state)
{
    (void)state;
    struct sockaddr_in s4 = v4addr("192.0.2.1", 51234), d4 = v4addr("198.51.100.7", 443);
    struct sockaddr_in6 s6 = v6addr("2001:db8::5", 0), d6 = v6addr("::1", 65535);
    struct sockaddr_un un;
    struct mr_proxyproto pp;
    char out[MR_PROXYPROTO_V1_MAX + 1];
    size_t n;

    n = mr_proxyproto_build_v1(out, sizeof(out), SA(s4), SA(d4));
    out[n] = '\0';
    assert_string_equal(out, "PROXY TCP4 192.0.2.1 198.51.100.7 51234 443\r\n");
    assert_int_equal(mr_proxyproto_parse((unsigned char *)out, n, &pp), (int)n);
    assert_endpoint(&pp.src, AF_INET, "192.0.2.1", 51234);
    assert_endpoint(&pp.dst, AF_INET, "198.51.100.7", 443);

    n = mr_proxyproto_build_v1(out, sizeof(out), SA(s6), SA(d6));
    out[n] = '\0';
    assert_string_equal(out, "PROXY TCP6 2001:db8::5 ::1 0 65535\r\n");
    assert_int_equal(mr_proxyproto_parse((unsigned char *)out, n, &pp), (int)n);
    assert_endpoint(&pp.src, AF_INET6, "2001:db8::5", 0);
    assert_endpoint(&pp.dst, AF_INET6, "::1", 65535);

    /* Mixed families: the IPv4 side is mapped, so the client is still named. */
    n = mr_proxyproto_build_v1(out, sizeof(out), SA(s4), SA(d6));
    out[n] = '\0';
    assert_string_equal(out, "PROXY TCP6 ::ffff:192.0.2.1 ::1 51234 65535\r\n");
    assert_int_equal(mr_proxyproto_parse((unsigned char *)out, n, &pp), (int)n);
    assert_endpoint(&pp.src, AF_INET6, "::ffff:192.0.2.1", 51234);
    char host[64];
    mr_netaddr_host((const struct sockaddr *)&pp.src.ss, host, sizeof(host));
    assert_string_equal(host, "192.0.2.1");

    /* Not an internet address: UNKNOWN, read back as local. */
    memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    n = mr_proxyproto_build_v1(out, sizeof(out), SA(un), SA(d4));
    out[n] = '\0';
    assert_string_equal(out, "PROXY UNKNOWN\r\n");
    assert_int_equal(mr_proxyproto_parse((unsigned char *)out, n, &pp), 15);
    assert_local(&pp, 1);
    assert_int_equal(mr_proxyproto_build_v1(out, sizeof(out), NULL, NULL), 15);

    /* The longest line fits MR_PROXYPROTO_V1_MAX. */
    struct sockaddr_in6 big = v6addr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
    n = mr_proxyproto_build_v1(out, sizeof(out), SA(big), SA(big));
    assert_int_equal(n, 104);
    assert_int_equal(mr_proxyproto_parse((unsigned char *)out, n, &pp), 104);

    /* cap: exactly enough works; one less writes nothing. */
    memset(out, 'Z', sizeof(out));
    assert_int_equal(mr_proxyproto_build_v1(out, 44, SA(s4), SA(d4)), 0);
    assert_int_equal(out[0], 'Z');
    assert_int_equal(mr_proxyproto_build_v1(out, 45, SA(s4), SA(d4)), 45);
    assert_int_equal(mr_proxyproto_build_v1(out, 14, NULL, NULL), 0);
    assert_int_equal(mr_proxyproto_build_v1(out, 15, NULL, NULL), 15);
}

static void test_build_v2(void **state)
{
    (void)state;
    struct sockaddr_in s4 = v4addr("192.0.2.1", 51234), d4 = v4addr("198.51.100.7", 443);
    struct sockaddr_in6 s6 = v6addr("2001:db8::1", 1000), d6 = v6addr("::1", 8443);
    struct sockaddr_storage unspec;
    struct mr_proxyproto pp;
    unsigned char out[128], want[128];
    size_t n;

    n = mr_proxyproto_build_v2(out, sizeof(out), SA(s4), SA(d4));
    assert_int_equal(n, v2(want, 0x21, 0x11, 12, tcp4_body, 12));
    assert_memory_equal(out, want, n);
    assert_int_equal(mr_proxyproto_parse(out, n, &pp), 28);
    assert_endpoint(&pp.src, AF_INET, "192.0.2.1", 51234);
    assert_endpoint(&pp.dst, AF_INET, "198.51.100.7", 443);

    n = mr_proxyproto_build_v2(out, sizeof(out), SA(s6), SA(d6));
    assert_int_equal(n, v2(want, 0x21, 0x21, 36, tcp6_tlv_body, 36));
    assert_memory_equal(out, want, n);
    assert_int_equal(mr_proxyproto_parse(out, n, &pp), 52);
    assert_endpoint(&pp.src, AF_INET6, "2001:db8::1", 1000);
    assert_endpoint(&pp.dst, AF_INET6, "::1", 8443);

    /* Mixed: TCP6 with the IPv4 side mapped. */
    n = mr_proxyproto_build_v2(out, sizeof(out), SA(s6), SA(d4));
    assert_int_equal(n, 52);
    assert_int_equal(out[13], 0x21);
    assert_int_equal(mr_proxyproto_parse(out, n, &pp), 52);
    assert_endpoint(&pp.src, AF_INET6, "2001:db8::1", 1000);
    assert_endpoint(&pp.dst, AF_INET6, "::ffff:198.51.100.7", 443);

    /* AF_UNSPEC or nothing: LOCAL, family UNSPEC, no address. */
    memset(&unspec, 0, sizeof(unspec));
    n = mr_proxyproto_build_v2(out, sizeof(out), SA(unspec), SA(d4));
    assert_int_equal(n, v2(want, 0x20, 0x00, 0, NULL, 0));
    assert_memory_equal(out, want, n);
    assert_int_equal(mr_proxyproto_parse(out, n, &pp), 16);
    assert_local(&pp, 2);
    assert_int_equal(mr_proxyproto_build_v2(out, sizeof(out), NULL, NULL), 16);

    /* cap */
    memset(out, 0x77, sizeof(out));
    assert_int_equal(mr_proxyproto_build_v2(out, 27, SA(s4), SA(d4)), 0);
    assert_int_equal(out[0], 0x77);
    assert_int_equal(mr_proxyproto_build_v2(out, 28, SA(s4), SA(d4)), 28);
    assert_int_equal(mr_proxyproto_build_v2(out, 51, SA(s6), SA(d6)), 0);
    assert_int_equal(mr_proxyproto_build_v2(out, 15, NULL, NULL), 0);
}

/* ---- the reader, over a real socket pair ---- */

/* sv[0]: the reading end, non-blocking; sv[1]: the writing end. */
static void open_pair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int flags = fcntl(sv[0], F_GETFL);
    assert_true(flags >= 0);
    assert_int_equal(fcntl(sv[0], F_SETFL, flags | O_NONBLOCK), 0);
}

static void close_pair(int sv[2])
{
    close(sv[0]);
    if (sv[1] >= 0) {
        close(sv[1]);
    }
}

static void send_all(int fd, const void *buf, size_t len)
{
    assert_int_equal(send(fd, buf, len, 0), (ssize_t)len);
}

/* True when fd has bytes (or EOF) to read now: the reader must leave none
 * after it returns 0, or a level-triggered loop would spin. */
static bool readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) == 1;
}

/* What the socket holds after the header must be exactly the payload. */
static void assert_payload_intact(int fd)
{
    char got[sizeof(payload) + 16];
    ssize_t n = recv(fd, got, sizeof(got), 0);

    assert_int_equal(n, (ssize_t)(sizeof(payload) - 1));
    assert_memory_equal(got, payload, sizeof(payload) - 1);
    assert_false(readable(fd));
}

static void test_reader_whole_header(void **state)
{
    (void)state;
    unsigned char buf[MR_PROXYPROTO_MAX + sizeof(payload)];
    struct mr_proxyproto_reader r;
    struct mr_proxyproto pp, want;
    size_t n;
    int sv[2];

    for (int i = 0; (n = valid_header(i, buf)) > 0; i++) {
        assert_int_equal(mr_proxyproto_parse(buf, n, &want), (int)n);
        memcpy(buf + n, payload, sizeof(payload) - 1);
        open_pair(sv);
        send_all(sv[1], buf, n + sizeof(payload) - 1);
        mr_proxyproto_reader_init(&r);
        assert_int_equal(mr_proxyproto_read(sv[0], &r, &pp), 1);
        assert_int_equal(r.have, n);
        assert_same_result(&pp, &want);
        assert_payload_intact(sv[0]);
        close_pair(sv);
    }
}

static void test_reader_byte_by_byte(void **state)
{
    (void)state;
    unsigned char buf[MR_PROXYPROTO_MAX + sizeof(payload)];
    struct mr_proxyproto_reader r;
    struct mr_proxyproto pp, want;
    size_t n;
    int sv[2];

    for (int i = 0; (n = valid_header(i, buf)) > 0; i++) {
        assert_int_equal(mr_proxyproto_parse(buf, n, &want), (int)n);
        memcpy(buf + n, payload, sizeof(payload) - 1);
        open_pair(sv);
        mr_proxyproto_reader_init(&r);
        /* Nothing yet: wait, consume nothing. */
        assert_int_equal(mr_proxyproto_read(sv[0], &r, &pp), 0);
        assert_int_equal(r.have, 0);
        for (size_t k = 0; k + 1 < n; k++) {
            send_all(sv[1], buf + k, 1);
            int rc = mr_proxyproto_read(sv[0], &r, &pp);
            if (rc != 0 || r.have != k + 1 || readable(sv[0])) {
                fail_msg("header %d, byte %zu: rc %d, have %zu, readable %d", i, k, rc, r.have,
                         readable(sv[0]));
            }
        }
        /* The last header byte arrives together with the payload. */
        send_all(sv[1], buf + n - 1, 1 + sizeof(payload) - 1);
        assert_int_equal(mr_proxyproto_read(sv[0], &r, &pp), 1);
        assert_int_equal(r.have, n);
        assert_same_result(&pp, &want);
        assert_payload_intact(sv[0]);
        close_pair(sv);
    }
}

/* Every split point: the first part waits (returning 0, taking nothing past
 * the header, leaving nothing readable), the rest and the payload complete it. */
static void test_reader_split_anywhere(void **state)
{
    (void)state;
    unsigned char buf[MR_PROXYPROTO_MAX + sizeof(payload)];
    struct mr_proxyproto_reader r;
    struct mr_proxyproto pp, want;
    size_t n;
    int sv[2];

    for (int i = 0; (n = valid_header(i, buf)) > 0; i++) {
        assert_int_equal(mr_proxyproto_parse(buf, n, &want), (int)n);
        memcpy(buf + n, payload, sizeof(payload) - 1);
        /* All splits of the short headers; a sample of the 2048-byte one. */
        size_t step = n > 200 ? 97 : 1;
        for (size_t k = 1; k < n; k += step) {
            open_pair(sv);
            mr_proxyproto_reader_init(&r);
            send_all(sv[1], buf, k);
            assert_int_equal(mr_proxyproto_read(sv[0], &r, &pp), 0);
            assert_int_equal(r.have, k);
            assert_false(readable(sv[0]));
            send_all(sv[1], buf + k, n - k + sizeof(payload) - 1);
            assert_int_equal(mr_proxyproto_read(sv[0], &r, &pp), 1);
            assert_int_equal(r.have, n);
            assert_same_result(&pp, &want);
            assert_payload_intact(sv[0]);
            close_pair(sv);
        }
    }
}

static void test_reader_eof(void **state)
{
    (void)state;
    unsigned char buf[MR_PROXYPROTO_MAX];
    struct mr_proxyproto_reader r;
    struct mr_proxyproto pp;
    int sv[2];
    size_t cuts[] = {1, 14, 15, 20}; /* before and after the blind first 15 bytes */

    size_t n;

    for (int i = 0; (n = valid_header(i, buf)) > 0; i++) {
        for (size_t c = 0; c < sizeof(cuts) / sizeof(cuts[0]); c++) {
            if (cuts[c] >= n) {
                continue;
            }
            open_pair(sv);
            mr_proxyproto_reader_init(&r);
            send_all(sv[1], buf, cuts[c]);
            close(sv[1]);
            sv[1] = -1;
            errno = 0;
            assert_int_equal(mr_proxyproto_read(sv[0], &r, &pp), -1);
            assert_int_equal(errno, ECONNRESET);
            close_pair(sv);
        }
    }

    /* EOF before any byte: a plain close, errno 0. */
    open_pair(sv);
    mr_proxyproto_reader_init(&r);
    close(sv[1]);
    sv[1] = -1;
    errno = EINVAL;
    assert_int_equal(mr_proxyproto_read(sv[0], &r, &pp), -1);
    assert_int_equal(errno, 0);
    close_pair(sv);
}

static void test_reader_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\nGET / HTTP/1.1\r\n\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\nGET / HTTP/1.1\r\n\r\n",
        "PROXZ",
    };
    unsigned char buf[64], body[12] = {0};
    struct mr_proxyproto_reader r;
    struct mr_proxyproto pp;
    int sv[2];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        open_pair(sv);
        mr_proxyproto_reader_init(&r);
        send_all(sv[1], bad[i], strlen(bad[i]));
        errno = 0;
        assert_int_equal(mr_proxyproto_read(sv[0], &r, &pp), -1);
        assert_int_equal(errno, EPROTO);
        close_pair(sv);
    }

    /* v2 announcing more than MR_PROXYPROTO_MAX: refused at 16 bytes,
     * without waiting for the rest. */
    open_pair(sv);
    mr_proxyproto_reader_init(&r);
    send_all(sv[1], buf, v2(buf, 0x21, 0x11, MR_PROXYPROTO_MAX, body, sizeof(body)));
    errno = 0;
    assert_int_equal(mr_proxyproto_read(sv[0], &r, &pp), -1);
    assert_int_equal(errno, EPROTO);
    close_pair(sv);

    /* v1 with no CRLF in 107 bytes: refused with at most 107 taken. */
    open_pair(sv);
    mr_proxyproto_reader_init(&r);
    char line[300];
    memcpy(line, "PROXY UNKNOWN ", 14);
    memset(line + 14, 'x', sizeof(line) - 14);
    send_all(sv[1], line, sizeof(line));
    errno = 0;
    assert_int_equal(mr_proxyproto_read(sv[0], &r, &pp), -1);
    assert_int_equal(errno, EPROTO);
    assert_true(r.have <= MR_PROXYPROTO_V1_MAX);
    close_pair(sv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_tcp4),
        cmocka_unit_test(test_v1_tcp6),
        cmocka_unit_test(test_v1_unknown),
        cmocka_unit_test(test_v1_malformed),
        cmocka_unit_test(test_v1_too_long),
        cmocka_unit_test(test_v1_early_refusal),
        cmocka_unit_test(test_v2_tcp4),
        cmocka_unit_test(test_v2_tcp6_with_tlvs),
        cmocka_unit_test(test_v2_local_and_fallbacks),
        cmocka_unit_test(test_v2_malformed),
        cmocka_unit_test(test_every_prefix_needs_more),
        cmocka_unit_test(test_build_v1),
        cmocka_unit_test(test_build_v2),
        cmocka_unit_test(test_reader_whole_header),
        cmocka_unit_test(test_reader_byte_by_byte),
        cmocka_unit_test(test_reader_split_anywhere),
        cmocka_unit_test(test_reader_eof),
        cmocka_unit_test(test_reader_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
