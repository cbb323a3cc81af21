/* common/proxyproto.c: see proxyproto.h. */
#include "common/proxyproto.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

static const unsigned char v2_sig[12] = {
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
};

#define V1_MAGIC "PROXY "
#define V1_MAGIC_LEN 6

#define V2_VERSION 0x20
#define V2_CMD_LOCAL 0x0
#define V2_CMD_PROXY 0x1
#define V2_FAM_UNSPEC 0x0
#define V2_FAM_INET 0x1
#define V2_FAM_INET6 0x2
#define V2_FAM_UNIX 0x3
#define V2_TRANS_UNSPEC 0x0
#define V2_TRANS_STREAM 0x1
#define V2_TRANS_DGRAM 0x2
#define V2_TCP4 0x11
#define V2_TCP6 0x21
#define V2_LEN_INET 12  /* 2 * 4 address bytes + 2 * 2 port bytes */
#define V2_LEN_INET6 36 /* 2 * 16 + 2 * 2 */
#define V2_LEN_UNIX 216 /* 2 * 108 */

/* Longest address text we parse or print ("ffff:...:255.255.255.255" and NUL). */
#define ADDR_TEXT_MAX INET6_ADDRSTRLEN

static void set_local(struct mr_proxyproto *out, uint8_t version)
{
    memset(out, 0, sizeof(*out));
    out->local = true;
    out->version = version;
}

/* addr: 4 or 16 network bytes; port: network order. */
static void fill_addr(struct mr_sockaddr *a, int family, const void *addr, uint16_t port)
{
    memset(a, 0, sizeof(*a));
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;
        sin->sin_family = AF_INET;
        sin->sin_port = port;
        memcpy(&sin->sin_addr, addr, 4);
        a->len = sizeof(*sin);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = port;
        memcpy(&sin6->sin6_addr, addr, 16);
        a->len = sizeof(*sin6);
    }
}

/* ---- v1 ---- */

static bool is_addr_char(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == '.' ||
           c == ':';
}

/*
 * Where the v1 line ends: the index just past its CRLF; 0 when more bytes
 * could still end it in time; -1 when it cannot (a lone CR or LF, or no
 * CRLF within MR_PROXYPROTO_V1_MAX bytes).
 */
static long v1_line_end(const unsigned char *buf, size_t len)
{
    size_t lim = len < MR_PROXYPROTO_V1_MAX ? len : MR_PROXYPROTO_V1_MAX;

    for (size_t i = 0; i < lim; i++) {
        if (buf[i] == '\n') {
            return -1;
        }
        if (buf[i] == '\r') {
            if (i + 1 >= MR_PROXYPROTO_V1_MAX) {
                return -1;
            }
            if (i + 1 >= len) {
                return 0;
            }
            return buf[i + 1] == '\n' ? (long)(i + 2) : -1;
        }
    }
    /* No CR in 106 bytes: a CRLF could only end past the limit. */
    return len >= MR_PROXYPROTO_V1_MAX - 1 ? -1 : 0;
}

/* True when a and b agree on their first min(alen, blen) bytes. */
static bool agree(const void *a, size_t alen, const char *b, size_t blen)
{
    return memcmp(a, b, alen < blen ? alen : blen) == 0;
}

/*
 * An unterminated line (no CR but perhaps the last byte): can it still
 * become a valid header? Cheap checks only, so that "GET / ..." or
 * "PROXY TCP9" is refused at once instead of after 107 bytes.
 */
static bool v1_prefix_ok(const unsigned char *buf, size_t len)
{
    if (len > 0 && buf[len - 1] == '\r') {
        len--;
    }
    if (!agree(buf, len, V1_MAGIC, V1_MAGIC_LEN)) {
        return false;
    }
    if (len <= V1_MAGIC_LEN) {
        return true;
    }
    const unsigned char *p = buf + V1_MAGIC_LEN;
    size_t n = len - V1_MAGIC_LEN;

    if (agree(p, n, "UNKNOWN", 7)) {
        /* "UNKNOWN", then the CRLF or a space and anything. */
        return n <= 7 || p[7] == ' ';
    }
    if (!agree(p, n, "TCP4 ", 5) && !agree(p, n, "TCP6 ", 5)) {
        return false;
    }
    for (size_t i = 5; i < n; i++) {
        if (p[i] != ' ' && !is_addr_char(p[i])) {
            return false;
        }
    }
    return true;
}

/* One address field of the announced family; 0 or -1. */
static int parse_v1_addr(int family, const char *s, size_t len, struct mr_sockaddr *out)
{
    char text[ADDR_TEXT_MAX];
    unsigned char addr[16];

    /* The character check also keeps NULs out of what inet_pton() reads. */
    if (len == 0 || len >= sizeof(text)) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (!is_addr_char((unsigned char)s[i])) {
            return -1;
        }
    }
    memcpy(text, s, len);
    text[len] = '\0';
    if (inet_pton(family, text, addr) != 1) {
        return -1;
    }
    fill_addr(out, family, addr, 0);
    return 0;
}

/* 0-65535 in decimal, no leading zeros (the spec forbids them: octal confusion). */
static int parse_v1_port(const char *s, size_t len, uint16_t *port)
{
    unsigned long v = 0;

    if (len == 0 || len > 5 || (len > 1 && s[0] == '0')) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > 65535) {
        return -1;
    }
    *port = htons((uint16_t)v);
    return 0;
}

static void set_port(struct mr_sockaddr *a, uint16_t port)
{
    if (a->ss.ss_family == AF_INET) {
        ((struct sockaddr_in *)&a->ss)->sin_port = port;
    } else {
        ((struct sockaddr_in6 *)&a->ss)->sin6_port = port;
    }
}

static int parse_v1(const unsigned char *buf, size_t len, struct mr_proxyproto *out)
{
    long end = v1_line_end(buf, len);

    if (end < 0) {
        return -1;
    }
    if (end == 0) {
        return v1_prefix_ok(buf, len) ? 0 : -1;
    }

    const char *p = (const char *)buf;
    const char *e = p + end - 2; /* the CRLF */
    if (e - p < V1_MAGIC_LEN || memcmp(p, V1_MAGIC, V1_MAGIC_LEN) != 0) {
        return -1;
    }
    p += V1_MAGIC_LEN;

    /* The spec: ignore whatever follows UNKNOWN up to the CRLF. */
    if (e - p >= 7 && memcmp(p, "UNKNOWN", 7) == 0 && (e - p == 7 || p[7] == ' ')) {
        set_local(out, 1);
        return (int)end;
    }

    int family;
    if (e - p >= 5 && memcmp(p, "TCP4 ", 5) == 0) {
        family = AF_INET;
    } else if (e - p >= 5 && memcmp(p, "TCP6 ", 5) == 0) {
        family = AF_INET6;
    } else {
        return -1;
    }
    p += 5;

    /* SRC DST SPORT DPORT, single spaces: an empty field fails its parse. */
    const char *field[4];
    size_t field_len[4];
    for (int i = 0; i < 4; i++) {
        const char *sp = i < 3 ? memchr(p, ' ', (size_t)(e - p)) : e;
        if (sp == NULL) {
            return -1;
        }
        field[i] = p;
        field_len[i] = (size_t)(sp - p);
        p = sp + 1;
    }

    uint16_t sport, dport;
    memset(out, 0, sizeof(*out));
    out->version = 1;
    if (parse_v1_addr(family, field[0], field_len[0], &out->src) != 0 ||
        parse_v1_addr(family, field[1], field_len[1], &out->dst) != 0 ||
        parse_v1_port(field[2], field_len[2], &sport) != 0 ||
        parse_v1_port(field[3], field_len[3], &dport) != 0) {
        return -1;
    }
    set_port(&out->src, sport);
    set_port(&out->dst, dport);
    return (int)end;
}

/* ---- v2 ---- */

/* Address bytes the family byte requires; the transport UNSPEC carries none. */
static size_t v2_addr_len(unsigned fam)
{
    if ((fam & 0x0f) == V2_TRANS_UNSPEC) {
        return 0;
    }
    switch (fam >> 4) {
    case V2_FAM_INET: return V2_LEN_INET;
    case V2_FAM_INET6: return V2_LEN_INET6;
    case V2_FAM_UNIX: return V2_LEN_UNIX;
    default: return 0;
    }
}

static int parse_v2(const unsigned char *buf, size_t len, struct mr_proxyproto *out)
{
    if (memcmp(buf, v2_sig, len < sizeof(v2_sig) ? len : sizeof(v2_sig)) != 0) {
        return -1;
    }
    if (len <= 12) {
        return 0;
    }
    unsigned ver_cmd = buf[12];
    if ((ver_cmd & 0xf0) != V2_VERSION || (ver_cmd & 0x0f) > V2_CMD_PROXY) {
        return -1;
    }
    bool proxy = (ver_cmd & 0x0f) == V2_CMD_PROXY;
    /* LOCAL ignores the family entirely (spec, 2.2), so only PROXY checks it. */
    if (len > 13 && proxy && ((buf[13] >> 4) > V2_FAM_UNIX || (buf[13] & 0x0f) > V2_TRANS_DGRAM)) {
        return -1;
    }
    if (len < MR_PROXYPROTO_V2_HEAD) {
        return 0;
    }

    unsigned fam = buf[13];
    size_t addr_len = (size_t)buf[14] << 8 | buf[15];
    size_t total = MR_PROXYPROTO_V2_HEAD + addr_len;
    if (total > MR_PROXYPROTO_MAX || (proxy && addr_len < v2_addr_len(fam))) {
        return -1;
    }
    if (len < total) {
        return 0;
    }

    /* TLVs past the addresses are skipped: total already accounts for them. */
    const unsigned char *a = buf + MR_PROXYPROTO_V2_HEAD;
    uint16_t sport, dport;
    if (proxy && fam == V2_TCP4) {
        memset(out, 0, sizeof(*out));
        out->version = 2;
        memcpy(&sport, a + 8, 2);
        memcpy(&dport, a + 10, 2);
        fill_addr(&out->src, AF_INET, a, sport);
        fill_addr(&out->dst, AF_INET, a + 4, dport);
    } else if (proxy && fam == V2_TCP6) {
        memset(out, 0, sizeof(*out));
        out->version = 2;
        memcpy(&sport, a + 32, 2);
        memcpy(&dport, a + 34, 2);
        fill_addr(&out->src, AF_INET6, a, sport);
        fill_addr(&out->dst, AF_INET6, a + 16, dport);
    } else {
        /* LOCAL, UNSPEC, UDP, UNIX: the spec's fallback is the real peer. */
        set_local(out, 2);
    }
    return (int)total;
}

int mr_proxyproto_parse(const unsigned char *buf, size_t len, struct mr_proxyproto *out)
{
    if (len == 0) {
        return 0;
    }
    /* The two formats differ from the first byte on. */
    if (buf[0] == v2_sig[0]) {
        return parse_v2(buf, len, out);
    }
    return parse_v1(buf, len, out);
}

/* ---- reader ---- */

void mr_proxyproto_reader_init(struct mr_proxyproto_reader *r)
{
    r->have = 0;
}

/* recv() retried on EINTR. */
static ssize_t recv_some(int fd, void *buf, size_t len, int flags)
{
    ssize_t n;

    do {
        n = recv(fd, buf, len, flags);
    } while (n < 0 && errno == EINTR);
    return n;
}

int mr_proxyproto_read(int fd, struct mr_proxyproto_reader *r, struct mr_proxyproto *out)
{
    for (;;) {
        size_t want;
        bool peek = false;

        /* Every valid header has at least MR_PROXYPROTO_MIN bytes, so those
         * are taken blindly; after them the format says how much is ours. */
        if (r->have < MR_PROXYPROTO_MIN) {
            want = MR_PROXYPROTO_MIN - r->have;
        } else if (r->buf[0] == v2_sig[0]) {
            size_t total = MR_PROXYPROTO_V2_HEAD;
            if (r->have >= MR_PROXYPROTO_V2_HEAD) {
                /* parse() has refused anything longer than the buffer. */
                total += (size_t)r->buf[14] << 8 | r->buf[15];
            }
            want = total - r->have;
        } else {
            /* v1 ends at a CRLF we cannot see without reading: peek. */
            peek = true;
            want = MR_PROXYPROTO_V1_MAX - r->have;
        }
        assert(want > 0 && r->have + want <= sizeof(r->buf));

        ssize_t n = recv_some(fd, r->buf + r->have, want, peek ? MSG_PEEK : 0);
        if (n < 0) {
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        }
        if (n == 0) {
            errno = r->have == 0 ? 0 : ECONNRESET;
            return -1;
        }

        int got = mr_proxyproto_parse(r->buf, r->have + (size_t)n, out);
        if (got < 0) {
            errno = EPROTO;
            return -1;
        }
        if (!peek) {
            r->have += (size_t)n;
            if (got > 0) {
                assert((size_t)got == r->have);
                return 1;
            }
            continue;
        }

        /* Consume the peeked bytes up to the CRLF, or all of them when there
         * is none yet: until the CRLF every byte belongs to the header. */
        size_t take = got > 0 ? (size_t)got - r->have : (size_t)n;
        ssize_t m = recv_some(fd, r->buf + r->have, take, 0);
        if (m < 0) {
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        }
        if (m == 0) {
            errno = ECONNRESET;
            return -1;
        }
        r->have += (size_t)m;
        if (got > 0 && (size_t)m == take) {
            return 1;
        }
        /* A short read (not seen in practice) or no CRLF yet: look again. */
    }
}

/* ---- builders ---- */

struct endpoint {
    int family;             /* AF_INET or AF_INET6 */
    unsigned char addr[16]; /* network bytes; first 4 for AF_INET */
    uint16_t port;          /* network order */
};

static bool endpoint_of(const struct sockaddr *sa, struct endpoint *ep)
{
    memset(ep, 0, sizeof(*ep));
    if (sa == NULL) {
        return false;
    }
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        ep->family = AF_INET;
        memcpy(ep->addr, &sin->sin_addr, 4);
        ep->port = sin->sin_port;
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        ep->family = AF_INET6;
        memcpy(ep->addr, &sin6->sin6_addr, 16);
        ep->port = sin6->sin6_port;
        return true;
    }
    return false;
}

/* AF_INET becomes ::ffff:a.b.c.d. */
static void map_to_v6(struct endpoint *ep)
{
    if (ep->family != AF_INET) {
        return;
    }
    memmove(ep->addr + 12, ep->addr, 4);
    memset(ep->addr, 0, 10);
    ep->addr[10] = 0xff;
    ep->addr[11] = 0xff;
    ep->family = AF_INET6;
}

/* Both sides in one family: AF_INET, AF_INET6 (mapping an IPv4 side), or
 * AF_UNSPEC when either is not an internet address. */
static int endpoint_pair(const struct sockaddr *src, const struct sockaddr *dst, struct endpoint *s,
                         struct endpoint *d)
{
    if (!endpoint_of(src, s) || !endpoint_of(dst, d)) {
        return AF_UNSPEC;
    }
    if (s->family != d->family) {
        map_to_v6(s);
        map_to_v6(d);
    }
    return s->family;
}

size_t mr_proxyproto_build_v1(char *out, size_t cap, const struct sockaddr *src,
                              const struct sockaddr *dst)
{
    static const char unknown[] = "PROXY UNKNOWN\r\n";
    struct endpoint s, d;
    char line[MR_PROXYPROTO_V1_MAX + 1];
    size_t len;
    int family = endpoint_pair(src, dst, &s, &d);

    if (family == AF_UNSPEC) {
        len = sizeof(unknown) - 1;
        memcpy(line, unknown, len);
    } else {
        char stext[ADDR_TEXT_MAX], dtext[ADDR_TEXT_MAX];
        if (inet_ntop(family, s.addr, stext, sizeof(stext)) == NULL ||
            inet_ntop(family, d.addr, dtext, sizeof(dtext)) == NULL) {
            return 0;
        }
        int n = snprintf(line, sizeof(line), "PROXY %s %s %s %u %u\r\n",
                         family == AF_INET ? "TCP4" : "TCP6", stext, dtext, (unsigned)ntohs(s.port),
                         (unsigned)ntohs(d.port));
        if (n < 0 || (size_t)n >= sizeof(line)) {
            return 0;
        }
        len = (size_t)n;
    }
    if (len > cap) {
        return 0;
    }
    memcpy(out, line, len);
    return len;
}

size_t mr_proxyproto_build_v2(unsigned char *out, size_t cap, const struct sockaddr *src,
                              const struct sockaddr *dst)
{
    struct endpoint s, d;
    unsigned char hdr[MR_PROXYPROTO_V2_HEAD + V2_LEN_INET6];
    size_t addr_len;
    int family = endpoint_pair(src, dst, &s, &d);

    memcpy(hdr, v2_sig, sizeof(v2_sig));
    if (family == AF_INET) {
        hdr[12] = V2_VERSION | V2_CMD_PROXY;
        hdr[13] = V2_TCP4;
        addr_len = V2_LEN_INET;
        memcpy(hdr + 16, s.addr, 4);
        memcpy(hdr + 20, d.addr, 4);
        memcpy(hdr + 24, &s.port, 2);
        memcpy(hdr + 26, &d.port, 2);
    } else if (family == AF_INET6) {
        hdr[12] = V2_VERSION | V2_CMD_PROXY;
        hdr[13] = V2_TCP6;
        addr_len = V2_LEN_INET6;
        memcpy(hdr + 16, s.addr, 16);
        memcpy(hdr + 32, d.addr, 16);
        memcpy(hdr + 48, &s.port, 2);
        memcpy(hdr + 50, &d.port, 2);
    } else {
        /* The spec: LOCAL presents no address and family UNSPEC. */
        hdr[12] = V2_VERSION | V2_CMD_LOCAL;
        hdr[13] = (V2_FAM_UNSPEC << 4) | V2_TRANS_UNSPEC;
        addr_len = 0;
    }
    hdr[14] = (unsigned char)(addr_len >> 8);
    hdr[15] = (unsigned char)(addr_len & 0xff);

    size_t len = MR_PROXYPROTO_V2_HEAD + addr_len;
    if (len > cap) {
        return 0;
    }
    memcpy(out, hdr, len);
    return len;
}
