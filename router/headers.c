/* router/headers.c: see headers.h. */
#include "router/headers.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

static bool is_hop_by_hop(const struct mr_http1_header *h)
{
    switch (h->name[0] | 0x20) {
    case 'c': return mr_http1_name_is(h, "connection");
    case 'k': return mr_http1_name_is(h, "keep-alive");
    case 'p': return mr_http1_name_is(h, "proxy-connection");
    case 't':
        return mr_http1_name_is(h, "te") || mr_http1_name_is(h, "trailer") ||
               mr_http1_name_is(h, "transfer-encoding");
    case 'u': return mr_http1_name_is(h, "upgrade");
    default: return false;
    }
}

/* True when h is named in one of the message's Connection headers. */
static bool named_by_connection(const struct mr_http1_head *head, const struct mr_http1_header *h)
{
    for (size_t i = 0; i < head->n_headers; i++) {
        const struct mr_http1_header *conn = &head->headers[i];
        if (mr_http1_name_is(conn, "connection") &&
            mr_http1_has_token(conn->value, conn->value_len, h->name, h->name_len))
            return true;
    }
    return false;
}

static bool has_connection_header(const struct mr_http1_head *head)
{
    for (size_t i = 0; i < head->n_headers; i++)
        if (mr_http1_name_is(&head->headers[i], "connection"))
            return true;
    return false;
}

/* Whether a header passes the hop, for either direction. */
static bool forwarded(const struct mr_http1_head *head, bool has_conn,
                      const struct mr_http1_header *h)
{
    return !is_hop_by_hop(h) && (!has_conn || !named_by_connection(head, h));
}

/*
 * Content-Length, Transfer-Encoding and Host are never copied: meridian
 * writes them from what it parsed and routed on, so what the next hop reads
 * as the message is what meridian read, and no Connection token can take
 * them away (RFC 9110 7.6.1 lets a proxy ignore such tokens; nginx does).
 */
static bool is_framing(const struct mr_http1_header *h, bool request)
{
    switch (h->name[0] | 0x20) {
    case 'c': return mr_http1_name_is(h, "content-length");
    case 't': return mr_http1_name_is(h, "transfer-encoding");
    case 'h': return request && mr_http1_name_is(h, "host");
    default: return false;
    }
}

static char *put(char *p, const char *s, size_t len)
{
    memcpy(p, s, len);
    return p + len;
}

#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

static char *put_length(char *p, uint64_t n)
{
    char digits[24];
    size_t len = 0;

    p = PUT_LIT(p, "Content-Length: ");
    do {
        digits[len++] = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0);
    while (len > 0)
        *p++ = digits[--len];
    return PUT_LIT(p, "\r\n");
}

static char *put_header(char *p, const struct mr_http1_header *h)
{
    p = put(p, h->name, h->name_len);
    p = PUT_LIT(p, ": ");
    p = put(p, h->value, h->value_len);
    return PUT_LIT(p, "\r\n");
}

/* The Upgrade lines of head, then the Connection line that asks for them. */
static char *put_upgrade(char *p, const struct mr_http1_head *head)
{
    for (size_t i = 0; i < head->n_headers; i++)
        if (mr_http1_name_is(&head->headers[i], "upgrade"))
            p = put_header(p, &head->headers[i]);
    return PUT_LIT(p, "Connection: Upgrade\r\n");
}

size_t mr_headers_request_size(const struct mr_http1_head *head, const struct mr_forward *fwd)
{
    /* Each line may grow by the space after its colon ("Name:value" is
     * valid); dropped lines only shrink it; what we add is bounded. */
    return head->head_len + head->n_headers + fwd->peer_len + fwd->host_len + 192;
}

size_t mr_headers_request(char *buf, const struct mr_http1_head *head, const struct mr_forward *fwd)
{
    const bool has_conn = has_connection_header(head);
    char *p = buf;

    p = put(p, head->method_name, head->method_len);
    p = PUT_LIT(p, " ");
    if (fwd->target_len > 0 && fwd->target[0] == '?')
        p = PUT_LIT(p, "/"); /* absolute-form with a query and no path */
    p = put(p, fwd->target, fwd->target_len);
    p = fwd->http10 ? PUT_LIT(p, " HTTP/1.0\r\n") : PUT_LIT(p, " HTTP/1.1\r\n");
    /* HTTP/1.1 needs a Host, empty when the client's was (RFC 9112 3.2). */
    if (fwd->host_len > 0 || !fwd->http10) {
        p = PUT_LIT(p, "Host: ");
        if (fwd->host_len > 0)
            p = put(p, fwd->host, fwd->host_len);
        p = PUT_LIT(p, "\r\n");
    }
    for (size_t i = 0; i < head->n_headers; i++) {
        const struct mr_http1_header *h = &head->headers[i];
        if (is_framing(h, true) || !forwarded(head, has_conn, h))
            continue;
        if ((h->name[0] | 0x20) == 'x' &&
            (mr_http1_name_is(h, "x-forwarded-proto") || mr_http1_name_is(h, "x-forwarded-for")))
            continue;
        p = put_header(p, h);
    }
    if (fwd->upgrade)
        p = put_upgrade(p, head);
    /* A trusted peer's list is kept, all its lines in order, and the peer
     * appended; an untrusted peer's list is replaced by the peer. */
    p = PUT_LIT(p, "X-Forwarded-For: ");
    for (size_t i = 0; fwd->peer_trusted && i < head->n_headers; i++) {
        const struct mr_http1_header *h = &head->headers[i];
        if (!mr_http1_name_is(h, "x-forwarded-for") || h->value_len == 0)
            continue;
        p = put(p, h->value, h->value_len);
        p = PUT_LIT(p, ", ");
    }
    p = put(p, fwd->peer, fwd->peer_len);
    p = PUT_LIT(p, "\r\nX-Forwarded-Proto: ");
    p = put(p, fwd->proto, strlen(fwd->proto));
    p = PUT_LIT(p, "\r\n");
    /* The body goes as it was parsed: re-encoded chunks, or the length
     * (an explicit zero too: some origins want a length on every POST). */
    if (head->body == MR_BODY_CHUNKED)
        p = PUT_LIT(p, "Transfer-Encoding: chunked\r\n");
    else if (head->body == MR_BODY_LENGTH || head->length_header != NULL)
        p = put_length(p, head->content_length);
    p = PUT_LIT(p, "\r\n");
    return (size_t)(p - buf);
}

/* True when the message's only transfer coding is chunked. */
static bool lone_chunked(const struct mr_http1_head *head)
{
    size_t n = 0;
    bool chunked = false;

    for (size_t i = 0; i < head->n_headers; i++) {
        const struct mr_http1_header *h = &head->headers[i];
        if (mr_http1_name_is(h, "transfer-encoding")) {
            n++;
            chunked = h->value_len == 7 && strncasecmp(h->value, "chunked", 7) == 0;
        }
    }
    return n == 1 && chunked;
}

/*
 * The response's framing as meridian forwards it: its parsed length, or
 * chunked as re-encoded. Other transfer codings (gzip before chunked, or a
 * body read until close) are the client's to undo and go as they came.
 * A body-less response (HEAD, 304) keeps the length it announces.
 */
static char *put_response_framing(char *p, const struct mr_http1_head *head)
{
    switch (head->body) {
    case MR_BODY_LENGTH: return put_length(p, head->content_length);
    case MR_BODY_CHUNKED:
        if (lone_chunked(head))
            return PUT_LIT(p, "Transfer-Encoding: chunked\r\n");
        /* fall through */
    case MR_BODY_UNTIL_EOF:
        for (size_t i = 0; i < head->n_headers; i++)
            if (mr_http1_name_is(&head->headers[i], "transfer-encoding"))
                p = put_header(p, &head->headers[i]);
        return p;
    case MR_BODY_NONE:
        if (head->length_header != NULL && head->status >= 200)
            p = put_header(p, head->length_header);
        return p;
    }
    return p;
}

size_t mr_headers_response_size(const struct mr_http1_head *head, size_t extra_len)
{
    /* As above, plus the space after a status code without a reason and
     * the framing line. */
    return head->head_len + head->n_headers + 1 + 128 + extra_len;
}

size_t mr_headers_response(char *buf, const struct mr_http1_head *head, bool close, bool upgrade,
                           const char *extra, size_t extra_len)
{
    const bool has_conn = has_connection_header(head);
    char *p = buf;

    p = PUT_LIT(p, "HTTP/1.1 ");
    *p++ = (char)('0' + head->status / 100 % 10);
    *p++ = (char)('0' + head->status / 10 % 10);
    *p++ = (char)('0' + head->status % 10);
    *p++ = ' ';
    p = put(p, head->reason, head->reason_len);
    p = PUT_LIT(p, "\r\n");
    for (size_t i = 0; i < head->n_headers; i++) {
        const struct mr_http1_header *h = &head->headers[i];
        if (!is_framing(h, false) && forwarded(head, has_conn, h))
            p = put_header(p, h);
    }
    p = put_response_framing(p, head);
    if (upgrade)
        p = put_upgrade(p, head);
    else if (close)
        p = PUT_LIT(p, "Connection: close\r\n");
    if (extra != NULL)
        p = put(p, extra, extra_len);
    p = PUT_LIT(p, "\r\n");
    return (size_t)(p - buf);
}
