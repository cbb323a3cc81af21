/*
 * common/proxyproto.h: the PROXY protocol (HAProxy spec, v1 text and v2
 * binary), read from clients and written to upstreams (by the data path and by
 * health checks).
 *
 * A listener behind a load balancer that speaks the PROXY protocol gets the
 * real client address from a header sent before any other byte. The parser
 * is pure (any thread) and tells "complete", "need more" and "invalid" apart
 * on any prefix, so an invalid header is refused as soon as it cannot be one.
 * The reader takes that header off a non-blocking socket without ever
 * consuming a byte past it (what follows is HTTP or a TLS ClientHello, read
 * by someone else) and without leaving a partial header readable in the
 * socket (no busy loop on a level-triggered event). A reader belongs to one
 * connection (one thread).
 *
 * What is "local" (use the socket's own peer, as if no header were sent):
 * v1 "UNKNOWN", v2 LOCAL, and v2 PROXY with any valid family other than
 * TCP4/TCP6 (UNSPEC, UDP, UNIX), as the spec's "fall back to UNSPEC" allows.
 */
#ifndef MR_COMMON_PROXYPROTO_H
#define MR_COMMON_PROXYPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/netaddr.h"

#define MR_PROXYPROTO_MAX 2048   /* longest header we accept (v2 with TLVs); longer = invalid */
#define MR_PROXYPROTO_V1_MAX 107 /* longest v1 line, CRLF included (spec, 2.1) */
#define MR_PROXYPROTO_V2_HEAD 16 /* v2 fixed part: signature, ver_cmd, fam, len */
#define MR_PROXYPROTO_MIN 15     /* shortest valid header: "PROXY UNKNOWN\r\n" */

struct mr_proxyproto {
    bool local;                  /* use the socket's own peer; src and dst are then zeroed
                                    (family AF_UNSPEC, len 0) */
    uint8_t version;             /* 1 or 2: which format was read */
    struct mr_sockaddr src, dst; /* when !local: AF_INET or AF_INET6 (TCP6 may carry
                                    IPv4-mapped addresses), ports in network order */
};

/*
 * Parses a whole header at the start of buf (len bytes available; bytes after
 * the header are ignored). Returns the header length (> 0) when complete and
 * valid, with *out filled; 0 when buf is a valid prefix and more bytes are
 * needed; -1 when it is not a valid header. *out is undefined unless > 0.
 *
 * v1 is strict: "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n" with single spaces,
 * addresses as inet_pton() of the announced family reads them (dotted quads
 * without leading zeros), ports 0-65535 in decimal without leading zeros;
 * "PROXY UNKNOWN" then anything up to the CRLF is local. No CRLF within
 * MR_PROXYPROTO_V1_MAX bytes, or a lone CR or LF, is invalid.
 * v2: version 2 only; command LOCAL (family and addresses ignored) or PROXY;
 * family nibble 0-3, transport nibble 0-2; the length must cover the
 * addresses of the family (12 for TCP4/UDP4, 36 for TCP6/UDP6, 216 for
 * UNIX); TLVs after the addresses are skipped unread; 16 + length above
 * MR_PROXYPROTO_MAX is invalid as soon as the 16 fixed bytes are seen.
 */
int mr_proxyproto_parse(const unsigned char *buf, size_t len, struct mr_proxyproto *out);

/* Incremental state of mr_proxyproto_read(); zeroed (or reader_init) before
 * the first call. buf[0..have) are the header bytes consumed so far; after a
 * return of 1, have is the header's length. */
struct mr_proxyproto_reader {
    unsigned char buf[MR_PROXYPROTO_MAX];
    size_t have;
};

void mr_proxyproto_reader_init(struct mr_proxyproto_reader *r);

/*
 * Reads the header a non-blocking stream socket must start with, as far as
 * the socket allows. Consumes only header bytes: the first
 * MR_PROXYPROTO_MIN, then for v2 exactly 16 + length, for v1 what
 * recv(MSG_PEEK) shows up to and including the first CRLF (all of it while
 * there is no CRLF yet, since those bytes can only be header bytes). So when
 * it returns 0 the socket holds nothing readable any more: wait for the next
 * readable event and call again.
 *
 * Returns 1 when the whole header was read (result in *out), 0 when the
 * socket has no more bytes for now and the header is incomplete, -1 with
 * errno set: EPROTO for an invalid header (as soon as the bytes so far
 * cannot start one), 0 for EOF before any byte, ECONNRESET for EOF within
 * the header, or recv()'s errno. Call no more after 1 or -1.
 */
int mr_proxyproto_read(int fd, struct mr_proxyproto_reader *r, struct mr_proxyproto *out);

/*
 * Write a header announcing a TCP connection from src to dst into out
 * (cap bytes). Both AF_INET: TCP4. AF_INET6 on either side with AF_INET or
 * AF_INET6 on the other: TCP6, an IPv4 side mapped to ::ffff:a.b.c.d so the
 * client is still named. Anything else (NULL, AF_UNSPEC, AF_UNIX): v1
 * "PROXY UNKNOWN\r\n", v2 LOCAL with family UNSPEC and no address, so the
 * upstream uses our own address. Return the header length, 0 when cap is
 * too small (out is then untouched). v1 is not NUL-terminated.
 */
size_t mr_proxyproto_build_v1(char *out, size_t cap, const struct sockaddr *src,
                              const struct sockaddr *dst);
size_t mr_proxyproto_build_v2(unsigned char *out, size_t cap, const struct sockaddr *src,
                              const struct sockaddr *dst);

#endif
