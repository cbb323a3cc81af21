/*
 * tests/fuzz/fuzz_chunked.c: the chunked decoder/encoder
 * (router/chunked.c, mr_chunked_relay) against a reference written here.
 *
 * The reference is a plain non-streaming recursive-descent reading of
 * RFC 9112 7.1 with chunked.h's bounds (a size line of at most
 * MR_CHUNKED_MAX_LINE bytes with its CRLF, at most 16 hex digits and a size
 * of at most 2^62, trailers of at most MR_CHUNKED_MAX_TRAILERS bytes with the
 * final CRLF):
 *
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = 1*HEXDIG [ chunk-ext ] CRLF chunk-data CRLF
 *   chunk-ext    = *( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] )
 *   trailer      = token ":" *( HTAB / SP / VCHAR / obs-text ) CRLF
 *
 * It says DONE (with the body's length and data), MORE (a valid prefix) or
 * BAD for the whole input. Input: a byte giving the number of cuts (0-7),
 * one byte per cut giving the size of each piece but the last, then the
 * bytes (a body, maybe followed by what comes after it). Checked:
 * - fed in those pieces, the module reaches the reference's verdict,
 *   consumes exactly the body and leaves what follows in its buffer;
 * - its output is canonical ("HEX\r\n" data "\r\n", lower-case hex without
 *   leading zeros or extensions, no empty chunk but the last, no trailer)
 *   and decodes (reference) to the same data;
 * - that data encoded again as one chunk decodes (module) to itself:
 *   decode, encode, decode is the identity.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "tests/fuzz/fuzz.h"
#include "router/chunked.h"

enum { REF_BAD = -1, REF_MORE = 0, REF_DONE = 1 };

struct ref {
    const unsigned char *p;
    size_t len, i;
    unsigned char *data; /* decoded data (capacity len) */
    size_t data_len;
};

/* Each reader returns REF_DONE when its part was read, else MORE or BAD. */
#define NEED(r, n)                                                                                 \
    do {                                                                                           \
        if ((r)->len - (r)->i < (n))                                                               \
            return REF_MORE;                                                                       \
    } while (0)

static int is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int hexval(unsigned char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

static void bws(struct ref *r)
{
    while (r->i < r->len && (r->p[r->i] == ' ' || r->p[r->i] == '\t'))
        r->i++;
}

static int token(struct ref *r)
{
    size_t start = r->i;
    while (r->i < r->len && is_tchar(r->p[r->i]))
        r->i++;
    NEED(r, 1);
    return r->i > start ? REF_DONE : REF_BAD;
}

static int quoted(struct ref *r)
{
    r->i++; /* the opening quote */
    for (;;) {
        unsigned char c;
        NEED(r, 1);
        c = r->p[r->i++];
        if (c == '"')
            return REF_DONE;
        if (c == '\\') {
            NEED(r, 1);
            c = r->p[r->i++];
        }
        if (c != '\t' && (c < 0x20 || c == 0x7f))
            return REF_BAD;
    }
}

static int crlf(struct ref *r)
{
    NEED(r, 1);
    if (r->p[r->i] != '\r')
        return REF_BAD;
    NEED(r, 2);
    if (r->p[r->i + 1] != '\n')
        return REF_BAD;
    r->i += 2;
    return REF_DONE;
}

/* A size line: *size gets the size. */
static int size_line_unbounded(struct ref *r, uint64_t *size)
{
    size_t digits = 0;
    int st;

    *size = 0;
    while (r->i < r->len && hexval(r->p[r->i]) >= 0) {
        if (++digits > 16)
            return REF_BAD;
        *size = *size * 16 + (uint64_t)hexval(r->p[r->i++]);
        if (*size > (UINT64_C(1) << 62))
            return REF_BAD;
    }
    NEED(r, 1);
    if (digits == 0)
        return REF_BAD;
    for (;;) {
        size_t save = r->i;
        bws(r);
        NEED(r, 1);
        if (r->p[r->i] != ';') {
            if (r->i != save)
                return REF_BAD; /* BWS only before ";" */
            break;
        }
        r->i++;
        bws(r);
        if ((st = token(r)) != REF_DONE)
            return st;
        save = r->i;
        bws(r);
        NEED(r, 1);
        if (r->p[r->i] == '=') {
            r->i++;
            bws(r);
            NEED(r, 1);
            st = r->p[r->i] == '"' ? quoted(r) : token(r);
            if (st != REF_DONE)
                return st;
        } else {
            r->i = save;
        }
    }
    return crlf(r);
}

static int trailers_unbounded(struct ref *r)
{
    int st = REF_DONE;

    for (;;) {
        NEED(r, 1);
        if (r->p[r->i] == '\r') {
            st = crlf(r);
            break;
        }
        if ((st = token(r)) != REF_DONE)
            break;
        if (r->p[r->i] != ':')
            return REF_BAD;
        r->i++;
        while (r->i < r->len && r->p[r->i] != '\r') {
            unsigned char c = r->p[r->i++];
            if (c != '\t' && (c < 0x20 || c == 0x7f))
                return REF_BAD;
        }
        if ((st = crlf(r)) != REF_DONE)
            break;
    }
    return st;
}

/* A bound holds for the whole part, and for any prefix of it: with MORE,
 * every byte left belongs to the part. */
static int bounded(struct ref *r, size_t start, int st, size_t max)
{
    return st != REF_BAD && (st == REF_MORE ? r->len : r->i) - start > max ? REF_BAD : st;
}

static int size_line(struct ref *r, uint64_t *size)
{
    size_t start = r->i;
    return bounded(r, start, size_line_unbounded(r, size), MR_CHUNKED_MAX_LINE);
}

static int trailers(struct ref *r)
{
    size_t start = r->i;
    return bounded(r, start, trailers_unbounded(r), MR_CHUNKED_MAX_TRAILERS);
}

static int ref_decode(struct ref *r, const unsigned char *p, size_t len)
{
    r->p = p;
    r->len = len;
    r->i = 0;
    r->data = malloc(len + 1);
    r->data_len = 0;
    for (;;) {
        uint64_t size;
        int st = size_line(r, &size);
        if (st != REF_DONE)
            return st;
        if (size == 0)
            return trailers(r);
        if (r->len - r->i < size) {
            memcpy(r->data + r->data_len, r->p + r->i, r->len - r->i);
            r->data_len += r->len - r->i;
            return REF_MORE;
        }
        memcpy(r->data + r->data_len, r->p + r->i, (size_t)size);
        r->data_len += (size_t)size;
        r->i += (size_t)size;
        if ((st = crlf(r)) != REF_DONE)
            return st;
    }
}

/* The module's output: canonical chunks only. */
static void check_canonical(const unsigned char *p, size_t len)
{
    size_t i = 0;

    for (;;) {
        size_t size = 0, start = i;
        while (i < len && hexval(p[i]) >= 0) {
            if (p[i] >= 'A' && p[i] <= 'F')
                abort();
            size = size * 16 + (size_t)hexval(p[i++]);
        }
        if (i == start || (p[start] == '0' && i - start > 1) || len - i < 2 || p[i] != '\r' ||
            p[i + 1] != '\n') {
            fprintf(stderr, "output is not canonical at %zu\n", start);
            abort();
        }
        i += 2;
        if (size == 0)
            break;
        if (len - i < size + 2 || p[i + size] != '\r' || p[i + size + 1] != '\n')
            abort();
        i += size + 2;
    }
    if (len - i != 2 || p[i] != '\r' || p[i + 1] != '\n') {
        fprintf(stderr, "output does not end with the last chunk\n");
        abort();
    }
}

/* Feeds the module p[0..len) in pieces; returns its verdict. */
static int module(const unsigned char *p, size_t len, const size_t *cuts, size_t n_cuts,
                  struct evbuffer *out, size_t *consumed, size_t *left_in)
{
    struct evbuffer *in = evbuffer_new();
    struct mr_chunked ck;
    size_t off = 0, total = 0;
    int st = MR_CHUNKED_MORE;

    mr_chunked_init(&ck);
    for (size_t k = 0; k <= n_cuts && st == MR_CHUNKED_MORE; k++) {
        size_t n = k < n_cuts && cuts[k] < len - off ? cuts[k] : len - off;
        size_t c = 0, before;
        evbuffer_add(in, p + off, n);
        off += n;
        before = evbuffer_get_length(in);
        st = mr_chunked_relay(&ck, in, out, &c);
        if (st != MR_CHUNKED_BAD && before - evbuffer_get_length(in) != c) {
            fprintf(stderr, "consumed %zu, removed %zu\n", c, before - evbuffer_get_length(in));
            abort();
        }
        total += c;
        if (off == len && k < n_cuts)
            break;
    }
    *consumed = total;
    *left_in = evbuffer_get_length(in) + (len - off);
    evbuffer_free(in);
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t cuts[7], n_cuts, consumed, left, len;
    struct evbuffer *out, *again;
    struct ref ref, dec;
    int rs, ms;

    if (size < 1)
        return 0;
    n_cuts = data[0] & 7;
    if (size < 1 + n_cuts)
        return 0;
    for (size_t k = 0; k < n_cuts; k++)
        cuts[k] = data[1 + k];
    data += 1 + n_cuts;
    len = size - 1 - n_cuts;

    rs = ref_decode(&ref, data, len);
    out = evbuffer_new();
    ms = module(data, len, cuts, n_cuts, out, &consumed, &left);
    if (ms != rs || (rs == REF_DONE && (consumed != ref.i || left != len - ref.i))) {
        fprintf(stderr, "module %d (consumed %zu, left %zu), reference %d (body %zu of %zu)\n", ms,
                consumed, left, rs, ref.i, len);
        abort();
    }
    if (rs == REF_DONE) {
        size_t olen = evbuffer_get_length(out);
        const unsigned char *o = evbuffer_pullup(out, -1);
        char line[32];
        int n;

        check_canonical(o, olen);
        if (ref_decode(&dec, o, olen) != REF_DONE || dec.i != olen ||
            dec.data_len != ref.data_len || memcmp(dec.data, ref.data, ref.data_len) != 0) {
            fprintf(stderr, "the output does not decode to the input's data\n");
            abort();
        }
        free(dec.data);
        /* Encode the data as one chunk; the module decodes it back. */
        again = evbuffer_new();
        if (ref.data_len > 0) {
            n = snprintf(line, sizeof(line), "%zX;x=\"y\"\r\n", ref.data_len);
            evbuffer_add(again, line, (size_t)n);
            evbuffer_add(again, ref.data, ref.data_len);
            evbuffer_add(again, "\r\n", 2);
        }
        evbuffer_add(again, "0\r\nT: v\r\n\r\n", 11);
        evbuffer_drain(out, olen);
        {
            size_t alen = evbuffer_get_length(again);
            unsigned char *a = malloc(alen);
            evbuffer_remove(again, a, alen);
            if (module(a, alen, NULL, 0, out, &consumed, &left) != MR_CHUNKED_DONE ||
                consumed != alen || left != 0 ||
                ref_decode(&dec, evbuffer_pullup(out, -1), evbuffer_get_length(out)) != REF_DONE ||
                dec.data_len != ref.data_len || memcmp(dec.data, ref.data, ref.data_len) != 0) {
                fprintf(stderr, "decode, encode, decode is not the identity\n");
                abort();
            }
            free(dec.data);
            free(a);
        }
        evbuffer_free(again);
    }
    free(ref.data);
    evbuffer_free(out);
    return 0;
}
