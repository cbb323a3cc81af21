/*
 * tests/fuzz/fuzz_proxyproto.c: the PROXY protocol v1/v2 parser and reader
 * (common/proxyproto.c).
 *
 * Input: a byte choosing a cut, then the bytes a peer sends.
 * - Prefixes: a header of n bytes needs more (0) on every shorter prefix
 *   tried; a prefix found invalid stays invalid; bytes after a header
 *   change nothing.
 * - Round trip: a header announcing TCP addresses, built again from what
 *   was parsed (in the version it came in), parses to the same addresses;
 *   a local one builds as UNKNOWN / LOCAL.
 * - Reader: the bytes written to a socketpair in two writes (cut at the
 *   chosen point) are read by mr_proxyproto_read to the parser's verdict and
 *   result, consuming exactly the header and nothing after it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/fuzz/fuzz.h"
#include "common/proxyproto.h"

static bool same(const struct mr_proxyproto *a, const struct mr_proxyproto *b)
{
    return a->local == b->local && a->version == b->version &&
           memcmp(&a->src, &b->src, sizeof(a->src)) == 0 &&
           memcmp(&a->dst, &b->dst, sizeof(a->dst)) == 0;
}

static void round_trip(const struct mr_proxyproto *pp)
{
    unsigned char out[MR_PROXYPROTO_MAX];
    struct mr_proxyproto again;
    const struct sockaddr *src = pp->local ? NULL : (const struct sockaddr *)&pp->src.ss;
    const struct sockaddr *dst = pp->local ? NULL : (const struct sockaddr *)&pp->dst.ss;
    size_t n = pp->version == 1 ? mr_proxyproto_build_v1((char *)out, sizeof(out), src, dst)
                                : mr_proxyproto_build_v2(out, sizeof(out), src, dst);

    if (n == 0 || mr_proxyproto_parse(out, n, &again) != (int)n || !same(pp, &again)) {
        fprintf(stderr, "a parsed header does not build and parse back\n");
        abort();
    }
}

/* Feeds the socketpair in two writes and checks the reader against r. */
static void reader(const uint8_t *data, size_t len, size_t cut, int r,
                   const struct mr_proxyproto *want)
{
    struct mr_proxyproto_reader rd;
    struct mr_proxyproto got;
    int sv[2], rr;
    char rest[4096];
    size_t written = cut;
    ssize_t left;

    if (len > sizeof(rest) || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return;
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    mr_proxyproto_reader_init(&rd);
    if (write(sv[1], data, cut) != (ssize_t)cut)
        abort();
    rr = mr_proxyproto_read(sv[0], &rd, &got);
    if (rr == 0) {
        if (len > cut && write(sv[1], data + cut, len - cut) != (ssize_t)(len - cut))
            abort();
        written = len;
        shutdown(sv[1], SHUT_WR);
        rr = mr_proxyproto_read(sv[0], &rd, &got);
    }
    if (r > 0 && (rr != 1 || rd.have != (size_t)r || !same(&got, want))) {
        fprintf(stderr, "reader %d (have %zu), parser %d\n", rr, rd.have, r);
        abort();
    }
    if (r < 0 && (rr != -1 || errno != EPROTO)) {
        fprintf(stderr, "reader %d, parser refused\n", rr);
        abort();
    }
    if (r > 0) {
        /* Exactly the header was consumed of what was written. */
        left = recv(sv[0], rest, sizeof(rest), MSG_DONTWAIT);
        if ((size_t)(left < 0 ? 0 : left) != written - (size_t)r ||
            (left > 0 && memcmp(rest, data + r, (size_t)left) != 0)) {
            fprintf(stderr, "reader consumed past the header\n");
            abort();
        }
    }
    close(sv[0]);
    close(sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mr_proxyproto pp, other;
    size_t len, cut;
    int r, rp;

    if (size < 1)
        return 0;
    cut = data[0];
    data++;
    len = size - 1;
    cut = len ? cut % (len + 1) : 0;

    r = mr_proxyproto_parse(data, len, &pp);
    rp = mr_proxyproto_parse(data, cut, &other);
    if (r > 0 && (size_t)r > len)
        abort();
    if (rp < 0 && r >= 0) {
        fprintf(stderr, "prefix of %zu refused, whole %d\n", cut, r);
        abort();
    }
    if (rp > 0 && (r != rp || !same(&pp, &other))) {
        fprintf(stderr, "bytes after the header changed it\n");
        abort();
    }
    if (r > 0) {
        if (rp == 0 && cut >= (size_t)r)
            abort();
        if (mr_proxyproto_parse(data, (size_t)r - 1, &other) != 0) {
            fprintf(stderr, "the header less a byte is not 'need more'\n");
            abort();
        }
        round_trip(&pp);
    }
    if (r != 0 && cut > 0)
        reader(data, len, cut, r, &pp);
    return 0;
}
