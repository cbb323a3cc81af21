/* common/netaddr.c: see netaddr.h. */
#include "common/netaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

/* Long enough for any numeric IPv6 text, with room to spare. */
#define HOST_MAX 64

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Parses 1-5 decimal digits into a port 1..65535; 0 or -1. */
static int parse_port(const char *s, uint16_t *port)
{
    unsigned long v = 0;
    size_t n = 0;

    for (; s[n] != '\0'; n++) {
        if (s[n] < '0' || s[n] > '9' || n >= 5)
            return -1;
        v = v * 10 + (unsigned long)(s[n] - '0');
    }
    if (n == 0 || v < 1 || v > 65535)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

static void fill_v4(struct mr_sockaddr *out, const struct in_addr *a, uint16_t port)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;

    memset(out, 0, sizeof(*out));
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    sin->sin_addr = *a;
    out->len = sizeof(*sin);
}

static void fill_v6(struct mr_sockaddr *out, const struct in6_addr *a, uint16_t port)
{
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;

    memset(out, 0, sizeof(*out));
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    sin6->sin6_addr = *a;
    out->len = sizeof(*sin6);
}

int mr_netaddr_parse(const char *text, struct mr_sockaddr *out)
{
    char host[HOST_MAX];
    const char *colon, *end;
    uint16_t port;
    size_t n;

    if (text == NULL || out == NULL)
        return -1;
    if (text[0] == '[') {
        struct in6_addr a6;

        end = strchr(text, ']');
        if (end == NULL || end[1] != ':')
            return -1;
        n = (size_t)(end - text - 1);
        if (n == 0 || n >= sizeof(host))
            return -1;
        memcpy(host, text + 1, n);
        host[n] = '\0';
        if (inet_pton(AF_INET6, host, &a6) != 1 || parse_port(end + 2, &port) < 0)
            return -1;
        fill_v6(out, &a6, port);
        return 0;
    } else {
        struct in_addr a4;

        /* Unbracketed means IPv4: "::1:80" is ambiguous and refused. */
        colon = strrchr(text, ':');
        if (colon == NULL)
            return -1;
        n = (size_t)(colon - text);
        if (n == 0 || n >= sizeof(host))
            return -1;
        memcpy(host, text, n);
        host[n] = '\0';
        if (inet_pton(AF_INET, host, &a4) != 1 || parse_port(colon + 1, &port) < 0)
            return -1;
        fill_v4(out, &a4, port);
        return 0;
    }
}

int mr_netaddr_parse_host(const char *text, size_t len, struct mr_sockaddr *out)
{
    char host[HOST_MAX];
    struct in_addr a4;
    struct in6_addr a6;

    if (text == NULL || out == NULL)
        return -1;
    /* Header values arrive with optional whitespace around list items. */
    while (len > 0 && (*text == ' ' || *text == '\t')) {
        text++;
        len--;
    }
    while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t'))
        len--;
    if (len == 0 || len >= sizeof(host) || memchr(text, '\0', len) != NULL)
        return -1;
    memcpy(host, text, len);
    host[len] = '\0';
    if (inet_pton(AF_INET, host, &a4) == 1) {
        fill_v4(out, &a4, 0);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &a6) == 1) {
        fill_v6(out, &a6, 0);
        return 0;
    }
    return -1;
}

/* Keeps the first prefix bits of addr (nbytes long) and zeroes the rest. */
static void mask_bits(uint8_t *addr, size_t nbytes, unsigned prefix)
{
    for (size_t i = 0; i < nbytes; i++) {
        if (prefix >= 8) {
            prefix -= 8;
        } else {
            addr[i] &= (uint8_t)(0xff00u >> prefix);
            prefix = 0;
        }
    }
}

int mr_cidr_parse(const char *text, struct mr_cidr *out)
{
    char host[HOST_MAX];
    const char *slash;
    unsigned long prefix = 0;
    unsigned max;
    size_t n;
    bool has_prefix;

    if (text == NULL || out == NULL)
        return -1;
    slash = strchr(text, '/');
    has_prefix = slash != NULL;
    n = has_prefix ? (size_t)(slash - text) : strlen(text);
    if (n == 0 || n >= sizeof(host))
        return -1;
    memcpy(host, text, n);
    host[n] = '\0';

    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, host, out->addr) == 1) {
        out->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, host, out->addr) == 1) {
        out->family = AF_INET6;
        max = 128;
    } else {
        return -1;
    }

    if (has_prefix) {
        const char *p = slash + 1;

        if (*p == '\0' || strlen(p) > 3)
            return -1;
        for (; *p != '\0'; p++) {
            if (*p < '0' || *p > '9')
                return -1;
            prefix = prefix * 10 + (unsigned long)(*p - '0');
        }
        if (prefix > max)
            return -1;
    } else {
        prefix = max;
    }
    out->prefix = (unsigned)prefix;

    /* "::ffff:10.0.0.0/104" is an IPv4 prefix in IPv6 clothing: store it as
     * IPv4 so it matches plain IPv4 peers too. */
    if (out->family == AF_INET6 && out->prefix >= 96 &&
        memcmp(out->addr, v4_mapped_prefix, sizeof(v4_mapped_prefix)) == 0) {
        memmove(out->addr, out->addr + 12, 4);
        memset(out->addr + 4, 0, 12);
        out->family = AF_INET;
        out->prefix -= 96;
    }
    mask_bits(out->addr, out->family == AF_INET ? 4 : 16, out->prefix);
    return 0;
}

/* Extracts family and network bytes, unwrapping IPv4-mapped IPv6; 0 or -1. */
static int address_bytes(const struct sockaddr *addr, int *family, uint8_t bytes[16])
{
    if (addr == NULL)
        return -1;
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)addr;

        memcpy(bytes, &sin->sin_addr, 4);
        *family = AF_INET;
        return 0;
    }
    if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)addr;
        const uint8_t *b = sin6->sin6_addr.s6_addr;

        if (memcmp(b, v4_mapped_prefix, sizeof(v4_mapped_prefix)) == 0) {
            memcpy(bytes, b + 12, 4);
            *family = AF_INET;
        } else {
            memcpy(bytes, b, 16);
            *family = AF_INET6;
        }
        return 0;
    }
    return -1;
}

static bool prefix_matches(const struct mr_cidr *c, const uint8_t *bytes)
{
    unsigned full = c->prefix / 8, rest = c->prefix % 8;

    if (memcmp(c->addr, bytes, full) != 0)
        return false;
    if (rest == 0)
        return true;
    return ((c->addr[full] ^ bytes[full]) & (uint8_t)(0xff00u >> rest)) == 0;
}

bool mr_cidr_set_contains(const struct mr_cidr_set *set, const struct sockaddr *addr)
{
    uint8_t bytes[16];
    int family;

    if (set == NULL || address_bytes(addr, &family, bytes) < 0)
        return false;
    for (size_t i = 0; i < set->n; i++) {
        if (set->items[i].family == family && prefix_matches(&set->items[i], bytes))
            return true;
    }
    return false;
}

int mr_netaddr_host(const struct sockaddr *addr, char *buf, size_t len)
{
    uint8_t bytes[16];
    int family;

    if (buf == NULL || len == 0 || address_bytes(addr, &family, bytes) < 0)
        return -1;
    if (len > (size_t)INT32_MAX)
        len = INT32_MAX;
    if (inet_ntop(family, bytes, buf, (socklen_t)len) == NULL)
        return -1;
    return (int)strlen(buf);
}

bool mr_netaddr_equal(const struct mr_sockaddr *a, const struct mr_sockaddr *b)
{
    if (a == NULL || b == NULL || a->ss.ss_family != b->ss.ss_family)
        return false;
    if (a->ss.ss_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)&a->ss;
        const struct sockaddr_in *y = (const struct sockaddr_in *)&b->ss;

        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)&a->ss;
        const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)&b->ss;

        return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return false;
}

bool mr_netaddr_is_loopback(const struct sockaddr *addr)
{
    static const uint8_t v6_loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    uint8_t bytes[16];
    int family;

    if (address_bytes(addr, &family, bytes) < 0)
        return false;
    if (family == AF_INET)
        return bytes[0] == 127;
    return memcmp(bytes, v6_loopback, 16) == 0;
}
