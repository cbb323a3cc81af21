/* router/headers.c: see headers.h. */
#include "router/headers.h"

#include <string.h>

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

/* The framing and Host meridian parsed: forwarded whatever Connection
 * lists, or the next hop would frame or route the message differently. */
static bool is_framing(const struct mr_http1_header *h)
{
    return mr_http1_name_is(h, "content-length") || mr_http1_name_is(h, "host");
}

/* Whether a header passes the hop, for either direction. */
static bool forwarded(const struct mr_http1_head *head, bool has_conn,
                      const struct mr_http1_header *h)
{
    return !is_hop_by_hop(h) && (!has_conn || is_framing(h) || !named_by_connection(head, h));
}

static char *put(char *p, const char *s, size_t len)
{
    memcpy(p, s, len);
    return p + len;
}

#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

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
    return head->head_len + head->n_headers + fwd->peer_len + 128;
}

size_t mr_headers_request(char *buf, const struct mr_http1_head *head,
                          const struct mr_forward *fwd)
{
    const bool has_conn = has_connection_header(head);
    char *p = buf;

    p = put(p, head->method_name, head->method_len);
    p = PUT_LIT(p, " ");
    p = put(p, head->target, head->target_len);
    p = fwd->http10 ? PUT_LIT(p, " HTTP/1.0\r\n") : PUT_LIT(p, " HTTP/1.1\r\n");
    for (size_t i = 0; i < head->n_headers; i++) {
        const struct mr_http1_header *h = &head->headers[i];
        if (!forwarded(head, has_conn, h))
            continue;
        if ((h->name[0] | 0x20) == 'x' && (mr_http1_name_is(h, "x-forwarded-proto") ||
                                           mr_http1_name_is(h, "x-forwarded-for")))
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
    if (head->body == MR_BODY_CHUNKED)
        p = PUT_LIT(p, "Transfer-Encoding: chunked\r\n");
    p = PUT_LIT(p, "\r\n");
    return (size_t)(p - buf);
}

size_t mr_headers_response_size(const struct mr_http1_head *head, size_t extra_len)
{
    /* As above, plus the space after a status code without a reason. */
    return head->head_len + head->n_headers + 1 + 64 + extra_len;
}

size_t mr_headers_response(char *buf, const struct mr_http1_head *head, bool close,
                           bool upgrade, const char *extra, size_t extra_len)
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
        /* Transfer-Encoding stays: the body goes on in the coding it came in. */
        if (forwarded(head, has_conn, h) || mr_http1_name_is(h, "transfer-encoding"))
            p = put_header(p, h);
    }
    if (upgrade)
        p = put_upgrade(p, head);
    else if (close)
        p = PUT_LIT(p, "Connection: close\r\n");
    if (extra != NULL)
        p = put(p, extra, extra_len);
    p = PUT_LIT(p, "\r\n");
    return (size_t)(p - buf);
}
