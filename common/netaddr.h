/*
 * common/netaddr.h: socket addresses and CIDR sets.
 *
 * Parses "host:port" and "[v6]:port" (numeric hosts only: no DNS on the data
 * path or at reload), CIDR prefixes such as "127.0.0.0/8" and "::1/128", and
 * formats addresses for headers and logs. Pure functions, any thread.
 */
#ifndef MR_COMMON_NETADDR_H
#define MR_COMMON_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct mr_sockaddr {
    struct sockaddr_storage ss;
    socklen_t len;
};

struct mr_cidr {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* network bytes; first 4 for AF_INET */
    unsigned prefix;  /* prefix length in bits */
};

struct mr_cidr_set {
    struct mr_cidr *items; /* owned */
    size_t n;
};

/* Parses "1.2.3.4:80" or "[::1]:80" into out; 0 or -1 (port must be 1-65535). */
int mr_netaddr_parse(const char *text, struct mr_sockaddr *out);

/* Parses "10.0.0.0/8", "::1/128" or a bare address (full-length prefix); 0 or -1. */
int mr_cidr_parse(const char *text, struct mr_cidr *out);

/* True when addr (IPv4, IPv6 or IPv4-mapped IPv6) falls in any prefix of set. */
bool mr_cidr_set_contains(const struct mr_cidr_set *set, const struct sockaddr *addr);

/* Writes the host part of addr ("1.2.3.4", "::1"; IPv4-mapped shown as IPv4)
 * into buf; returns its length, or -1. */
int mr_netaddr_host(const struct sockaddr *addr, char *buf, size_t len);

/* Parses a bare IPv4/IPv6 host ("1.2.3.4", "::1") into out with port 0; 0 or -1. */
int mr_netaddr_parse_host(const char *text, size_t len, struct mr_sockaddr *out);

/* True when both addresses have the same family, address and port. */
bool mr_netaddr_equal(const struct mr_sockaddr *a, const struct mr_sockaddr *b);

/* True for 127.0.0.0/8, ::1 and IPv4-mapped loopback. */
bool mr_netaddr_is_loopback(const struct sockaddr *addr);

#endif
