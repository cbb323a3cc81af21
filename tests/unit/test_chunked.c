/* tests/unit/test_chunked.c: the strict chunked reader and canonical
 * re-encoder (router/chunked.c). Every input is fed whole and one byte at a
 * time, and the two must agree on the verdict, the decoded body and the
 * bytes left after it; what it writes must decode again to the same body. */
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

#include "router/chunked.h"

struct run {
    int status;
    size_t consumed;
    struct evbuffer *out;  /* canonical encoding written */
    struct evbuffer *rest; /* input left in the buffer */
};

static void run_free(struct run *r)
{
    evbuffer_free(r->out);
    evbuffer_free(r->rest);
}

/* Feeds in[0..len) in pieces of step bytes (0: whole); stops at BAD or
 * DONE, then puts whatever was not fed into the input buffer too. */
static struct run feed(const char *in, size_t len, size_t step)
{
    struct mr_chunked ck;
    struct run r = {MR_CHUNKED_MORE, 0, evbuffer_new(), evbuffer_new()};
    size_t fed = 0;

    assert_non_null(r.out);
    assert_non_null(r.rest);
    mr_chunked_init(&ck);
    do {
        size_t n = step == 0 || len - fed < step ? len - fed : step;
        size_t used;
        evbuffer_add(r.rest, in + fed, n);
        fed += n;
        r.status = mr_chunked_relay(&ck, r.rest, r.out, &used);
        r.consumed += used;
    } while (r.status == MR_CHUNKED_MORE && fed < len);
    if (r.status != MR_CHUNKED_BAD)
        evbuffer_add(r.rest, in + fed, len - fed);
    return r;
}

/* Decodes canonical chunks (what mr_chunked_relay writes) into body;
 * fails the test on anything else. */
static void decode_canonical(struct evbuffer *enc, struct evbuffer *body)
{
    size_t len = evbuffer_get_length(enc);
    const char *p = (const char *)evbuffer_pullup(enc, -1);
    size_t i = 0;

    for (;;) {
        size_t size = 0, digits = 0;
        while (i < len && ((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f'))) {
            size = size * 16 + (size_t)(p[i] <= '9' ? p[i] - '0' : p[i] - 'a' + 10);
            i++;
            digits++;
        }
        assert_true(digits > 0);
        assert_true(i + 2 <= len && p[i] == '\r' && p[i + 1] == '\n');
        i += 2;
        if (size == 0) {
            assert_true(i + 2 == len && p[i] == '\r' && p[i + 1] == '\n');
            return;
        }
        assert_true(i + size + 2 <= len);
        evbuffer_add(body, p + i, size);
        i += size;
        assert_true(p[i] == '\r' && p[i + 1] == '\n');
        i += 2;
    }
}

static bool buf_equals(struct evbuffer *b, const char *s, size_t len)
{
    return evbuffer_get_length(b) == len &&
           (len == 0 || memcmp(evbuffer_pullup(b, -1), s, len) == 0);
}

struct good {
    const char *in;
    const char *canonical; /* whole-input output */
    const char *body;
    const char *rest; /* bytes after the body */
};

static const struct good goods[] = {
    {"0\r\n\r\n", "0\r\n\r\n", "", ""},
    {"5\r\nhello\r\n0\r\n\r\n", "5\r\nhello\r\n0\r\n\r\n", "hello", ""},
    {"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
     "hello world", ""},
    {"A\r\n0123456789\r\n0\r\n\r\n", "a\r\n0123456789\r\n0\r\n\r\n", "0123456789", ""},
    {"000a\r\n0123456789\r\n00\r\n\r\n", "a\r\n0123456789\r\n0\r\n\r\n", "0123456789", ""},
    /* extensions are validated and dropped */
    {"5;name\r\nhello\r\n0;last=yes\r\n\r\n", "5\r\nhello\r\n0\r\n\r\n", "hello", ""},
    {"5 ; a = b ;c;d=\"q \\\" ;x\"\t;e\r\nhello\r\n0\r\n\r\n", "5\r\nhello\r\n0\r\n\r\n", "hello",
     ""},
    /* trailers are validated and dropped */
    {"3\r\nabc\r\n0\r\nExpires: never\r\nX-Sum:\t1 2 \r\nE:\r\n\r\n", "3\r\nabc\r\n0\r\n\r\n",
     "abc", ""},
    /* what follows the body stays */
    {"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n", "3\r\nabc\r\n0\r\n\r\n", "abc",
     "GET / HTTP/1.1\r\n\r\n"},
    /* data may hold anything, chunk lines included */
    {"b\r\n0\r\n\r\nGET /\n\r\n0\r\n\r\n", "b\r\n0\r\n\r\nGET /\n\r\n0\r\n\r\n", "0\r\n\r\nGET /\n",
     ""},
    /* 16 hex digits */
    {"0000000000000003\r\nabc\r\n0\r\n\r\n", "3\r\nabc\r\n0\r\n\r\n", "abc", ""},
};

static void check_good(const struct good *g, size_t step)
{
    size_t in_len = strlen(g->in), rest_len = strlen(g->rest);
    struct run r = feed(g->in, in_len, step);
    struct evbuffer *body = evbuffer_new();

    if (r.status != MR_CHUNKED_DONE)
        fail_msg("step %zu: %d for %s", step, r.status, g->in);
    assert_int_equal(r.consumed, in_len - rest_len);
    assert_true(buf_equals(r.rest, g->rest, rest_len));
    if (step == 0 && !buf_equals(r.out, g->canonical, strlen(g->canonical)))
        fail_msg("canonical form of %s: %.*s", g->in, (int)evbuffer_get_length(r.out),
                 (const char *)evbuffer_pullup(r.out, -1));
    decode_canonical(r.out, body);
    assert_true(buf_equals(body, g->body, strlen(g->body)));
    evbuffer_free(body);
    run_free(&r);
}

static void test_good_whole_and_split(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
        check_good(&goods[i], 0);
        check_good(&goods[i], 1);
        check_good(&goods[i], 2);
        check_good(&goods[i], 7);
    }
}

/* decode → encode → decode: the canonical form reads back to itself. */
static void test_canonical_is_identity(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
        for (size_t step = 0; step < 3; step++) {
            struct run a = feed(goods[i].in, strlen(goods[i].in), step);
            size_t len = evbuffer_get_length(a.out);
            char *enc = malloc(len);
            struct run b, c;

            assert_non_null(enc);
            evbuffer_copyout(a.out, enc, len);
            b = feed(enc, len, 0);
            c = feed(enc, len, 1);
            assert_int_equal(b.status, MR_CHUNKED_DONE);
            assert_int_equal(b.consumed, len);
            assert_true(buf_equals(b.out, enc, len));
            assert_int_equal(c.status, MR_CHUNKED_DONE);
            struct evbuffer *bb = evbuffer_new(), *cb = evbuffer_new();
            decode_canonical(b.out, bb);
            decode_canonical(c.out, cb);
            assert_true(buf_equals(bb, goods[i].body, strlen(goods[i].body)));
            assert_true(buf_equals(cb, goods[i].body, strlen(goods[i].body)));
            evbuffer_free(bb);
            evbuffer_free(cb);
            free(enc);
            run_free(&a);
            run_free(&b);
            run_free(&c);
        }
    }
}

static const char *const bads[] = {
    "\r\n", /* no size */
    "x\r\n",
    "-1\r\n",
    "+1\r\n",
    "0x5\r\nhello\r\n0\r\n\r\n",
    "5\nhello\r\n0\r\n\r\n", /* bare LF after size */
    "5\rhello\r\n0\r\n\r\n", /* CR then not LF */
    "5\r\rhello\r\n0\r\n\r\n",
    "5 \r\nhello\r\n0\r\n\r\n", /* BWS not followed by ";" */
    " 5\r\nhello\r\n0\r\n\r\n",
    "5;\r\nhello\r\n0\r\n\r\n",   /* empty extension name */
    "5;a=\r\nhello\r\n0\r\n\r\n", /* empty value */
    "5;a b\r\nhello\r\n0\r\n\r\n",
    "5;a=b c\r\nhello\r\n0\r\n\r\n",
    "5;a\nb\r\nhello\r\n0\r\n\r\n", /* bare LF in an extension */
    "5;a=\"b\nc\"\r\nhello\r\n0\r\n\r\n",
    "5;a=\"b\x01\"\r\nhello\r\n0\r\n\r\n",
    "5;a=\"b\\\x7f\"\r\nhello\r\n0\r\n\r\n",
    "5;a=\"b\"c\r\nhello\r\n0\r\n\r\n",
    "5;a=\"open\r\nhello\r\n0\r\n\r\n",
    "5;a@b\r\nhello\r\n0\r\n\r\n",
    "5\r\nhelloXY0\r\n\r\n", /* not CRLF after data */
    "5\r\nhello\n0\r\n\r\n",
    "5\r\nhello\r0\r\n\r\n",
    "5\r\nhello\r\r\n0\r\n\r\n",
    "0\r\nX: y\n\r\n", /* bare LF in trailers */
    "0\r\nX: y\r\r\n\r\n",
    "0\r\n\n",
    "0\r\n\rX",
    "0\r\nX: y\r\n folded\r\n\r\n", /* obs-fold */
    "0\r\n X: y\r\n\r\n",
    "0\r\nX y: z\r\n\r\n", /* name not a token */
    "0\r\nX : z\r\n\r\n",
    "0\r\n: z\r\n\r\n",
    "0\r\nX: a\x01z\r\n\r\n", /* CTL in a value */
    "0\r\nX: a\x7fz\r\n\r\n",
    "0\r\nNoColon\r\n\r\n",
    "4000000000000001\r\n", /* above 2^62 */
    "ffffffffffffffff\r\n",
    "10000000000000000\r\n", /* overflow */
    "00000000000000001\r\n", /* 17 digits */
};

static void test_bad_whole_and_split(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
        for (size_t step = 0; step < 3; step++) {
            struct run r = feed(bads[i], strlen(bads[i]), step);
            if (r.status != MR_CHUNKED_BAD)
                fail_msg("step %zu: %d for bad input #%zu", step, r.status, i);
            run_free(&r);
        }
    }
}

/* An incomplete body asks for more at every split, and forwards only
 * whole data it has read, never the lines. */
static void test_incomplete(void **state)
{
    static const char *const partial[] = {
        "",
        "5",
        "5\r",
        "5\r\nhel",
        "5\r\nhello",
        "5\r\nhello\r",
        "5\r\nhello\r\n0",
        "5\r\nhello\r\n0\r\n",
        "5\r\nhello\r\n0\r\nX: y\r\n",
        "5\r\nhello\r\n0\r\n\r",
        "4000000000000000\r\n",
        "5;a=\"b",
        "0\r\nX: y",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(partial) / sizeof(partial[0]); i++) {
        for (size_t step = 0; step < 2; step++) {
            struct run r = feed(partial[i], strlen(partial[i]), step);
            assert_int_equal(r.status, MR_CHUNKED_MORE);
            assert_int_equal(r.consumed, strlen(partial[i]));
            assert_int_equal(evbuffer_get_length(r.rest), 0);
            run_free(&r);
        }
    }
}

/* Size lines and trailers are bounded; data is not. */
static void test_bounds(void **state)
{
    size_t n = MR_CHUNKED_MAX_LINE + MR_CHUNKED_MAX_TRAILERS + 64;
    char *in = malloc(n);
    struct run r;
    size_t len;

    (void)state;
    assert_non_null(in);
    /* a size line of exactly MAX_LINE bytes passes, one more fails */
    for (size_t extra = 0; extra < 2; extra++) {
        len = MR_CHUNKED_MAX_LINE + extra;
        memset(in, 'a', len);
        memcpy(in, "1;", 2);
        memcpy(in + len - 2, "\r\n", 2);
        memcpy(in + len, "x\r\n0\r\n\r\n", 8);
        r = feed(in, len + 8, extra ? 1 : 0);
        assert_int_equal(r.status, extra ? MR_CHUNKED_BAD : MR_CHUNKED_DONE);
        run_free(&r);
    }
    /* trailers of exactly MAX_TRAILERS bytes (final CRLF included) pass */
    for (size_t extra = 0; extra < 2; extra++) {
        len = 3 + MR_CHUNKED_MAX_TRAILERS + extra;
        memcpy(in, "0\r\n", 3);
        memset(in + 3, 'v', len - 3);
        memcpy(in + 3, "X:", 2);
        memcpy(in + len - 4, "\r\n\r\n", 4);
        r = feed(in, len, extra ? 0 : 1);
        assert_int_equal(r.status, extra ? MR_CHUNKED_BAD : MR_CHUNKED_DONE);
        run_free(&r);
    }
    free(in);
}

/* A large chunk moves through in pieces as its bytes arrive. */
static void test_streams_large_chunk(void **state)
{
    struct mr_chunked ck;
    struct evbuffer *in = evbuffer_new(), *out = evbuffer_new(), *body = evbuffer_new();
    static char block[4096];
    size_t used, total = 0;

    (void)state;
    memset(block, 'z', sizeof(block));
    mr_chunked_init(&ck);
    evbuffer_add(in, "100000\r\n", 8);
    for (int i = 0; i < 256; i++) {
        evbuffer_add(in, block, sizeof(block));
        assert_int_equal(mr_chunked_relay(&ck, in, out, &used), MR_CHUNKED_MORE);
        assert_int_equal(evbuffer_get_length(in), 0);
        total += used;
    }
    evbuffer_add(in, "\r\n0\r\n\r\n", 7);
    assert_int_equal(mr_chunked_relay(&ck, in, out, &used), MR_CHUNKED_DONE);
    total += used;
    assert_int_equal(total, 8 + 0x100000 + 7);
    decode_canonical(out, body);
    assert_int_equal(evbuffer_get_length(body), 0x100000);
    evbuffer_free(in);
    evbuffer_free(out);
    evbuffer_free(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_whole_and_split),
        cmocka_unit_test(test_canonical_is_identity),
        cmocka_unit_test(test_bad_whole_and_split),
        cmocka_unit_test(test_incomplete),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_streams_large_chunk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
