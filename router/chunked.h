/*
 * router/chunked.h: strict chunked transfer-coding reader that re-encodes
 * canonically.
 *
 * Reads a chunked body (RFC 9112 7.1) as it arrives, refuses anything the
 * grammar does not allow (bare CR or LF, malformed or oversized sizes and
 * extensions, loose trailers) and writes the body in canonical form:
 * "HEX\r\n" data "\r\n" per run of data, lower-case hex and no extensions,
 * ending "0\r\n\r\n" with trailers dropped. So what a peer receives is what
 * meridian parsed, never the bytes it was sent. Pure: no I/O, no heap; the
 * result does not depend on how the input is split.
 */
#ifndef MR_ROUTER_CHUNKED_H
#define MR_ROUTER_CHUNKED_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

/* Bounds on what is not chunk data. */
#define MR_CHUNKED_MAX_LINE 4096      /* a size line with its extensions */
#define MR_CHUNKED_MAX_TRAILERS 16384 /* every trailer line together */

enum mr_chunked_status { MR_CHUNKED_BAD = -1, MR_CHUNKED_MORE = 0, MR_CHUNKED_DONE = 1 };

/* Decoder state: plain fields, no heap; copyable. */
struct mr_chunked {
    int state;
    uint64_t left;      /* chunk size being read, then data bytes left */
    unsigned digits;    /* hex digits of the size read so far */
    size_t line_len;    /* bytes of the current size line */
    size_t trailer_len; /* bytes of trailers so far */
};

void mr_chunked_init(struct mr_chunked *ck);

/*
 * Reads chunked-coded bytes from the front of in, validating them strictly,
 * and appends their canonical encoding to out: for each run of chunk data
 * available, "HEX\r\n" data "\r\n" (lower-case hex, no extensions); at the end
 * "0\r\n\r\n" (trailers are validated, bounded and dropped). Removes from in
 * exactly the bytes that belong to the body (on DONE, bytes after the body,
 * e.g. a pipelined request, stay in in); *consumed = how many.
 * MR_CHUNKED_DONE when the last chunk and trailers ended, MR_CHUNKED_MORE when
 * more input is needed, MR_CHUNKED_BAD on malformed input (state then undefined).
 */
int mr_chunked_relay(struct mr_chunked *ck, struct evbuffer *in, struct evbuffer *out,
                     size_t *consumed);

#endif
