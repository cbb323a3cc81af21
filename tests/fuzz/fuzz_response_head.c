/*
 * tests/fuzz/fuzz_response_head.c: the response head parser
 * (mr_http1_parse_head, MR_HTTP1_RESPONSE), answering a HEAD request or not.
 *
 * Input: two bytes choosing a split point, a flags byte (bit 0: the request
 * was HEAD), then the bytes an origin sends.
 * 1. Reads may split anywhere: the verdict and the head are those of the
 *    whole bytes.
 * 2. A HEAD's response has no body; otherwise it is the same head.
 * 3. Round trip: an accepted head, serialized for the client
 *    (mr_headers_response), parses again to the same status and framing.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "tests/fuzz/fuzz.h"
#include "router/headers.h"
#include "router/http1.h"

static const struct mr_http1_limits limits = {
    .max_head_bytes = 4096,
    .max_headers = 32,
    .max_uri_bytes = 1024,
};
static const struct mr_http1_limits wide = {
    .max_head_bytes = 65536,
    .max_headers = 1000,
    .max_uri_bytes = 65536,
};

struct run {
    struct mr_http1 *parser;
    struct evbuffer *buf;
    struct mr_http1_head head;
    int verdict;
};

static void run(struct run *r, const struct mr_http1_limits *lim, const uint8_t *data, size_t len,
                size_t split, bool head_request)
{
    r->parser = mr_http1_new(MR_HTTP1_RESPONSE, lim);
    r->buf = evbuffer_new();
    evbuffer_add(r->buf, data, split);
    r->verdict = mr_http1_parse_head(r->parser, r->buf, head_request, &r->head);
    if (r->verdict == MR_HTTP1_AGAIN && split < len) {
        evbuffer_add(r->buf, data + split, len - split);
        r->verdict = mr_http1_parse_head(r->parser, r->buf, head_request, &r->head);
    }
}

static void done(struct run *r)
{
    evbuffer_free(r->buf);
    mr_http1_free(r->parser);
}

static void same_framing(const char *what, const struct mr_http1_head *a,
                         const struct mr_http1_head *b)
{
    if (a->status != b->status || a->body != b->body || a->content_length != b->content_length) {
        fprintf(stderr, "%s: status %d body %d cl %llu became status %d body %d cl %llu\n", what,
                a->status, a->body, (unsigned long long)a->content_length, b->status, b->body,
                (unsigned long long)b->content_length);
        abort();
    }
}

static void round_trip(const struct mr_http1_head *head, bool head_request)
{
    size_t cap = mr_headers_response_size(head, 0);
    char *out = malloc(cap);
    size_t n = mr_headers_response(out, head, false, false, NULL, 0);
    struct run again;

    if (n > cap)
        abort();
    run(&again, &wide, (const uint8_t *)out, n, n, head_request);
    if (again.verdict != -1 || again.head.head_len != n) {
        fprintf(stderr, "the forwarded head does not parse (%d):\n%.*s\n", again.verdict, (int)n,
                out);
        abort();
    }
    same_framing("round trip", head, &again.head);
    done(&again);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct run whole, split, plain;
    bool head_request;
    size_t len, cut;

    if (size < 3)
        return 0;
    cut = ((size_t)data[0] << 8 | data[1]);
    head_request = data[2] & 1;
    data += 3;
    len = size - 3;
    cut %= len + 1;

    run(&whole, &limits, data, len, len, head_request);
    run(&split, &limits, data, len, cut, head_request);
    if (whole.verdict != split.verdict) {
        fprintf(stderr, "verdict %d whole, %d split at %zu\n", whole.verdict, split.verdict, cut);
        abort();
    }
    if (whole.verdict == -1) {
        same_framing("split", &whole.head, &split.head);
        if (whole.head.head_len != split.head.head_len ||
            whole.head.n_headers != split.head.n_headers ||
            whole.head.keep_alive != split.head.keep_alive)
            abort();
        if (head_request) {
            if (whole.head.body != MR_BODY_NONE)
                abort();
        } else {
            /* As the answer to a HEAD: the same, without a body. */
            run(&plain, &limits, data, len, len, true);
            if (plain.verdict != -1 || plain.head.status != whole.head.status ||
                plain.head.body != MR_BODY_NONE || plain.head.head_len != whole.head.head_len)
                abort();
            done(&plain);
        }
        round_trip(&whole.head, head_request);
    }
    done(&whole);
    done(&split);
    return 0;
}
