/*
 * tests/fuzz/fuzz_request_head.c: the request head parser
 * (mr_http1_parse_head, MR_HTTP1_REQUEST) with two oracles.
 *
 * Input: two bytes choosing a split point, then the bytes a client sends.
 * 1. Reads may split anywhere: the bytes fed in two evbuffer reads (split at
 *    the chosen point) get the verdict they get whole: both need more, both
 *    refuse, or both accept the same head.
 * 2. Round trip: an accepted head, serialized for the upstream
 *    (mr_headers_request, given the parsed path and authority as proxy.c
 *    gives them), parses again to the same method, target and Host (an
 *    absolute-form target counts as its origin-form path and authority,
 *    RFC 9112 3.2.2), and the same framing (body kind and Content-Length).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "tests/fuzz/fuzz.h"
#include "router/headers.h"
#include "router/http1.h"

static const struct mr_http1_limits limits = {
    .max_head_bytes = 4096,
    .max_headers = 32,
    .max_uri_bytes = 1024,
};
/* The upstream head grows (X-Forwarded-*, a space after each colon). */
static const struct mr_http1_limits wide = {
    .max_head_bytes = 65536,
    .max_headers = 1000,
    .max_uri_bytes = 65536,
};

/* What a head means to the origin. */
struct meaning {
    int method;
    char method_name[32];
    const char *target; /* origin-form, as forwarded */
    size_t target_len;
    char target_buf[4096]; /* paths are at most max_uri_bytes */
    const char *host;      /* the authority routed on; NULL: none */
    size_t host_len;
    int body;
    uint64_t content_length;
};

static void meaning_of(const struct mr_http1_head *head, struct meaning *m)
{
    memset(m, 0, sizeof(*m));
    m->method = head->method;
    snprintf(m->method_name, sizeof(m->method_name), "%.*s", (int)head->method_len,
             head->method_name);
    m->target = head->path;
    m->target_len = head->path_len;
    /* A query alone goes behind a "/" (http1.h). */
    if (m->target_len > 0 && m->target[0] == '?') {
        snprintf(m->target_buf, sizeof(m->target_buf), "/%.*s", (int)m->target_len, m->target);
        m->target = m->target_buf;
        m->target_len++;
    }
    m->host = head->host_len > 0 ? head->host : NULL;
    m->host_len = head->host_len;
    m->body = head->body;
    m->content_length = head->content_length;
}

static void same_meaning(const struct meaning *a, const struct meaning *b)
{
    if (a->method != b->method || strcmp(a->method_name, b->method_name) != 0 ||
        a->target_len != b->target_len || memcmp(a->target, b->target, a->target_len) != 0 ||
        (a->host == NULL) != (b->host == NULL) || a->host_len != b->host_len ||
        (a->host != NULL && memcmp(a->host, b->host, a->host_len) != 0) || a->body != b->body ||
        a->content_length != b->content_length) {
        fprintf(stderr,
                "round trip changed the request: %s %.*s host=%.*s body=%d cl=%llu"
                " became %s %.*s host=%.*s body=%d cl=%llu\n",
                a->method_name, (int)a->target_len, a->target, (int)a->host_len,
                a->host ? a->host : "", a->body, (unsigned long long)a->content_length,
                b->method_name, (int)b->target_len, b->target, (int)b->host_len,
                b->host ? b->host : "", b->body, (unsigned long long)b->content_length);
        abort();
    }
}

/* Parses data whole; returns the verdict, the head in *head (buf kept). */
static int parse(struct mr_http1 *h, struct evbuffer *buf, const uint8_t *data, size_t len,
                 size_t split, struct mr_http1_head *head)
{
    int r;

    evbuffer_add(buf, data, split);
    r = mr_http1_parse_head(h, buf, false, head);
    if (r != MR_HTTP1_AGAIN || split == len)
        return r;
    evbuffer_add(buf, data + split, len - split);
    return mr_http1_parse_head(h, buf, false, head);
}

static void round_trip(const struct mr_http1_head *head)
{
    struct mr_forward fwd = {
        .http10 = head->version_minor == 0,
        .peer = "192.0.2.1",
        .peer_len = 9,
        .proto = "http",
        .upgrade = head->upgrade,
        .target = head->path,
        .target_len = head->path_len,
        .host = head->host,
        .host_len = head->host_len,
    };
    size_t cap = mr_headers_request_size(head, &fwd);
    char *out = malloc(cap);
    size_t n = mr_headers_request(out, head, &fwd);
    struct mr_http1 *h = mr_http1_new(MR_HTTP1_REQUEST, &wide);
    struct evbuffer *buf = evbuffer_new();
    struct mr_http1_head again;
    struct meaning a, b;
    int r;

    if (n > cap)
        abort();
    evbuffer_add(buf, out, n);
    r = mr_http1_parse_head(h, buf, false, &again);
    if (r != -1 || again.head_len != n) {
        fprintf(stderr, "the forwarded head does not parse (%d):\n%.*s\n", r, (int)n, out);
        abort();
    }
    meaning_of(head, &a);
    meaning_of(&again, &b);
    same_meaning(&a, &b);
    evbuffer_free(buf);
    mr_http1_free(h);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mr_http1 *whole_p, *split_p;
    struct evbuffer *whole_b, *split_b;
    struct mr_http1_head whole, split;
    size_t len, cut;
    int rw, rs;

    if (size < 2)
        return 0;
    cut = ((size_t)data[0] << 8 | data[1]);
    data += 2;
    len = size - 2;
    cut %= len + 1;

    whole_p = mr_http1_new(MR_HTTP1_REQUEST, &limits);
    split_p = mr_http1_new(MR_HTTP1_REQUEST, &limits);
    whole_b = evbuffer_new();
    split_b = evbuffer_new();
    rw = parse(whole_p, whole_b, data, len, len, &whole);
    rs = parse(split_p, split_b, data, len, cut, &split);
    /* Refusals may differ in status (a limit can be hit before the error
     * that the whole input shows), never in kind. */
    if ((rw == -1) != (rs == -1) || (rw == MR_HTTP1_AGAIN) != (rs == MR_HTTP1_AGAIN)) {
        fprintf(stderr, "verdict %d whole, %d split at %zu\n", rw, rs, cut);
        abort();
    }
    if (rw == -1) {
        struct meaning a, b;
        meaning_of(&whole, &a);
        meaning_of(&split, &b);
        same_meaning(&a, &b);
        if (whole.head_len != split.head_len || whole.n_headers != split.n_headers ||
            whole.keep_alive != split.keep_alive || whole.upgrade != split.upgrade) {
            fprintf(stderr, "whole and split heads differ\n");
            abort();
        }
        round_trip(&whole);
    }
    evbuffer_free(whole_b);
    evbuffer_free(split_b);
    mr_http1_free(whole_p);
    mr_http1_free(split_p);
    return 0;
}
