/* router/http1.c: see http1.h. */
#include "router/http1.h"

#include <arpa/inet.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

struct mr_http1 {
    http_parser parser;
    http_parser_settings settings;
    enum mr_http1_kind kind;
    struct mr_http1_limits limits;
    struct mr_http1_header *headers; /* limits.max_headers slots */
    size_t n_headers;
    bool too_many_headers;
    bool in_value; /* last callback was a header value */
    bool head_request;
    bool message_done;
    size_t scanned; /* bytes of the head already scanned */
    size_t line_start;
    size_t request_line_end; /* 0 until the first line is complete */
    struct mr_http1_head *out;
};

/* RFC 9110 tchar. */
static const char token_chars[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,  ['~'] = 1, ['0'] = 1,
    ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,  ['7'] = 1, ['8'] = 1,
    ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1,  ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1,  ['N'] = 1, ['O'] = 1,
    ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,  ['V'] = 1, ['W'] = 1,
    ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1,  ['d'] = 1, ['e'] = 1,
    ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1,  ['l'] = 1, ['m'] = 1,
    ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1,  ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

static bool is_token(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!token_chars[(unsigned char)s[i]])
            return false;
    return true;
}

/* field-value: HTAB, SP, VCHAR, obs-text; no other control characters. */
static bool is_field_value(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct mr_http1 *h = p->data;
    if (h->out->target == NULL)
        h->out->target = at;
    h->out->target_len = (size_t)(at + len - h->out->target);
    return 0;
}

static int on_status(http_parser *p, const char *at, size_t len)
{
    struct mr_http1 *h = p->data;
    if (h->out->reason == NULL)
        h->out->reason = at;
    h->out->reason_len = (size_t)(at + len - h->out->reason);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct mr_http1 *h = p->data;
    struct mr_http1_header *hdr;

    if (h->n_headers > 0 && !h->in_value) {
        /* The same name continued (only when split across calls). */
        hdr = &h->headers[h->n_headers - 1];
        hdr->name_len = (size_t)(at + len - hdr->name);
        return 0;
    }
    h->in_value = false;
    if (h->n_headers == h->limits.max_headers) {
        h->too_many_headers = true;
        return 0;
    }
    hdr = &h->headers[h->n_headers++];
    hdr->name = at;
    hdr->name_len = len;
    hdr->value = NULL;
    hdr->value_len = 0;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct mr_http1 *h = p->data;
    struct mr_http1_header *hdr;

    if (h->too_many_headers)
        return 0;
    hdr = &h->headers[h->n_headers - 1];
    if (!h->in_value || hdr->value == NULL)
        hdr->value = at;
    hdr->value_len = (size_t)(at + len - hdr->value);
    h->in_value = true;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct mr_http1 *h = p->data;
    /* A HEAD response has no body whatever its framing headers say. */
    return h->kind == MR_HTTP1_RESPONSE && h->head_request ? 1 : 0;
}

static int on_message_complete(http_parser *p)
{
    struct mr_http1 *h = p->data;
    h->message_done = true;
    /* Stop exactly at the end of the message: what follows is the next one. */
    http_parser_pause(p, 1);
    return 0;
}

struct mr_http1 *mr_http1_new(enum mr_http1_kind kind, const struct mr_http1_limits *limits)
{
    struct mr_http1 *h = calloc(1, sizeof(*h));

    if (h == NULL)
        return NULL;
    h->kind = kind;
    h->limits = *limits;
    h->headers = calloc(limits->max_headers + 1, sizeof(*h->headers));
    if (h->headers == NULL) {
        free(h);
        return NULL;
    }
    h->settings.on_url = on_url;
    h->settings.on_status = on_status;
    h->settings.on_header_field = on_header_field;
    h->settings.on_header_value = on_header_value;
    h->settings.on_headers_complete = on_headers_complete;
    h->settings.on_message_complete = on_message_complete;
    mr_http1_reset(h);
    return h;
}

void mr_http1_free(struct mr_http1 *h)
{
    if (h == NULL)
        return;
    free(h->headers);
    free(h);
}

void mr_http1_reset(struct mr_http1 *h)
{
    http_parser_init(&h->parser, h->kind == MR_HTTP1_REQUEST ? HTTP_REQUEST : HTTP_RESPONSE);
    h->parser.data = h;
    h->n_headers = 0;
    h->too_many_headers = false;
    h->in_value = false;
    h->message_done = false;
    h->scanned = 0;
    h->line_start = 0;
    h->request_line_end = 0;
}

static enum mr_http1_method method_of(unsigned m)
{
    switch (m) {
    case HTTP_GET: return MR_METHOD_GET;
    case HTTP_HEAD: return MR_METHOD_HEAD;
    case HTTP_POST: return MR_METHOD_POST;
    case HTTP_PUT: return MR_METHOD_PUT;
    case HTTP_DELETE: return MR_METHOD_DELETE;
    case HTTP_OPTIONS: return MR_METHOD_OPTIONS;
    case HTTP_TRACE: return MR_METHOD_TRACE;
    case HTTP_CONNECT: return MR_METHOD_CONNECT;
    case HTTP_PATCH: return MR_METHOD_PATCH;
    default: return MR_METHOD_OTHER;
    }
}

bool mr_http1_name_is(const struct mr_http1_header *hdr, const char *name)
{
    size_t len = strlen(name);
    return hdr->name_len == len && strncasecmp(hdr->name, name, len) == 0;
}

bool mr_http1_has_token(const char *value, size_t len, const char *tok, size_t tok_len)
{
    size_t i = 0;

    while (i < len) {
        size_t start, end;
        while (i < len && (value[i] == ' ' || value[i] == '\t' || value[i] == ','))
            i++;
        start = i;
        while (i < len && value[i] != ',')
            i++;
        end = i;
        while (end > start && (value[end - 1] == ' ' || value[end - 1] == '\t'))
            end--;
        if (end - start == tok_len && strncasecmp(value + start, tok, tok_len) == 0)
            return true;
    }
    return false;
}

/*
 * Finds the end of the head in p[0..len): every line must end in CRLF and no
 * header line may start with whitespace (obs-fold). Resumes where the last
 * call stopped, and every check looks back rather than ahead, so the verdict
 * never depends on where reads split. Returns the head length, 0 when
 * incomplete, or -1 when malformed.
 */
static long scan_head(struct mr_http1 *h, const unsigned char *p, size_t len)
{
    for (size_t i = h->scanned; i < len; i++) {
        if (i > 0 && p[i - 1] == '\r' && p[i] != '\n')
            return -1; /* bare CR */
        if (p[i] == '\r')
            continue;
        if (p[i] != '\n') {
            if (i == h->line_start && h->request_line_end != 0 && (p[i] == ' ' || p[i] == '\t'))
                return -1; /* obs-fold, or whitespace before the first header */
            continue;
        }
        if (i == 0 || p[i - 1] != '\r')
            return -1; /* bare LF */
        if (i + 1 - h->line_start == 2) {
            if (h->request_line_end == 0)
                return -1; /* empty first line */
            h->scanned = i + 1;
            return (long)(i + 1);
        }
        if (h->request_line_end == 0)
            h->request_line_end = i + 1;
        h->line_start = i + 1;
    }
    h->scanned = len;
    return 0;
}

/*
 * The parser is lenient about the request line ("HTTQ/1.1", runs of
 * spaces): it must be exactly METHOD SP TARGET SP HTTP/D.D CRLF. Returns 0,
 * or the status to refuse with.
 */
static int check_request_line(const unsigned char *p, size_t len)
{
    size_t spaces = 0;

    if (len < 14)
        return 400;
    for (size_t i = 0; i < len - 2; i++)
        if (p[i] == ' ')
            spaces++;
    p += len - 11;
    if (spaces != 2 || memcmp(p, " HTTP/", 6) != 0 || p[6] < '0' || p[6] > '9' || p[7] != '.' ||
        p[8] < '0' || p[8] > '9')
        return 400;
    return p[6] == '1' ? 0 : 505;
}

/*
 * The parser takes a status code of one or two digits and any byte in the
 * reason: it must be HTTP/D.D SP 3DIGIT (100-999) [SP reason] CRLF, the
 * reason HTAB, SP, VCHAR or obs-text, since both are forwarded. 0 or 502.
 */
static int check_status_line(const unsigned char *p, size_t len)
{
    if (len < 14 || p[8] != ' ' || p[9] < '1' || p[9] > '9' || p[10] < '0' || p[10] > '9' ||
        p[11] < '0' || p[11] > '9' || (p[12] != ' ' && p[12] != '\r'))
        return 502;
    for (size_t i = 13; i < len - 2; i++)
        if ((p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f)
            return 502;
    return 0;
}

/* True when the last coding of a Transfer-Encoding value is chunked. */
static bool ends_chunked(const char *v, size_t len)
{
    size_t start = len;

    while (start > 0 && v[start - 1] != ',')
        start--;
    while (start < len && (v[start] == ' ' || v[start] == '\t'))
        start++;
    return len - start == 7 && strncasecmp(v + start, "chunked", 7) == 0;
}

/* RFC 3986 unreserved and sub-delims: what a reg-name holds besides %HH. */
static bool is_reg_name_char(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return strchr("-._~!$&'()*+,;=", c) != NULL && c != '\0';
}

static bool is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/*
 * RFC 9110 7.2 / RFC 3986 3.2.2: uri-host [ ":" port ], where uri-host is an
 * IP-literal ("[" IPv6 "]", no zone, no IPvFuture) or a reg-name (which
 * covers IPv4), and port is 1 to 5 digits up to 65535. An empty value is
 * valid only where allow_empty says so. Nothing else (no "/", "@", space or
 * control byte) can reach routing, a hosts match or a Location.
 */
static bool valid_host(const char *s, size_t len, bool allow_empty)
{
    size_t host_end;
    unsigned port = 0;

    if (len == 0)
        return allow_empty;
    if (s[0] == '[') {
        const char *close = memchr(s, ']', len);
        char addr[INET6_ADDRSTRLEN];
        struct in6_addr in6;
        size_t n = close != NULL ? (size_t)(close - s) - 1 : 0;
        if (close == NULL || n == 0 || n >= sizeof(addr))
            return false;
        memcpy(addr, s + 1, n);
        addr[n] = '\0';
        if (inet_pton(AF_INET6, addr, &in6) != 1)
            return false;
        host_end = n + 2;
    } else {
        for (host_end = 0; host_end < len && s[host_end] != ':'; host_end++) {
            unsigned char c = (unsigned char)s[host_end];
            if (c == '%') {
                if (host_end + 2 >= len || !is_hex((unsigned char)s[host_end + 1]) ||
                    !is_hex((unsigned char)s[host_end + 2]))
                    return false;
                host_end += 2;
            } else if (!is_reg_name_char(c)) {
                return false;
            }
        }
        if (host_end == 0)
            return false; /* ":80" */
    }
    if (host_end == len)
        return true;
    if (s[host_end] != ':' || len - host_end - 1 == 0 || len - host_end - 1 > 5)
        return false;
    for (size_t i = host_end + 1; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        port = port * 10 + (unsigned)(s[i] - '0');
    }
    return port <= 65535;
}

/*
 * The request target: every byte a visible ASCII character but "#" (no
 * control byte, space, DEL or byte above 0x7f: RFC 3986's characters plus
 * the few that browsers leave unencoded, such as "|", "{" or "^"; a fragment
 * is never sent). Then one of origin-form, absolute-form (http or https,
 * no userinfo, a valid host) or "*" for OPTIONS. Sets head->path (the
 * origin-form to forward) and head->host (the authority to route on: the
 * absolute-form's, which RFC 9112 3.2.2 says wins over Host, else Host's,
 * which check_headers() found).
 */
static int check_target(struct mr_http1_head *head)
{
    const char *t = head->target;
    size_t n = head->target_len;
    size_t scheme, end;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c <= 0x20 || c >= 0x7f || c == '#')
            return 400;
    }
    if (n > 0 && t[0] == '/') {
        head->path = t;
        head->path_len = n;
        return 0;
    }
    if (n == 1 && t[0] == '*') {
        if (head->method != MR_METHOD_OPTIONS)
            return 400;
        head->path = t;
        head->path_len = n;
        return 0;
    }
    scheme = n > 7 && strncasecmp(t, "http://", 7) == 0    ? 7
             : n > 8 && strncasecmp(t, "https://", 8) == 0 ? 8
                                                           : 0;
    if (scheme == 0)
        return 400;
    for (end = scheme; end < n && t[end] != '/' && t[end] != '?'; end++)
        ;
    /* valid_host() refuses userinfo ("@") and an empty host */
    if (!valid_host(t + scheme, end - scheme, false))
        return 400;
    head->host = t + scheme;
    head->host_len = end - scheme;
    head->path = t + end;
    head->path_len = n - end;
    if (head->path_len == 0) {
        /* RFC 9112 3.2.1 and 3.2.4: an empty path is "/", or "*" for OPTIONS */
        head->path = head->method == MR_METHOD_OPTIONS ? "*" : "/";
        head->path_len = 1;
    }
    return 0;
}

/* Checks every header and fills the framing fields; 0 or an HTTP status. */
static int check_headers(struct mr_http1 *h, struct mr_http1_head *head)
{
    const bool request = h->kind == MR_HTTP1_REQUEST;
    const int bad = request ? 400 : 502;
    size_t hosts = 0, lengths = 0, encodings = 0;
    bool chunked = false, last_chunked = false, conn_upgrade = false, upgrade = false;

    head->host = "";
    head->host_len = 0;
    for (size_t i = 0; i < h->n_headers; i++) {
        struct mr_http1_header *hdr = &h->headers[i];
        if (hdr->value == NULL) {
            hdr->value = hdr->name + hdr->name_len;
            hdr->value_len = 0;
        }
        while (hdr->value_len > 0 &&
               (hdr->value[hdr->value_len - 1] == ' ' || hdr->value[hdr->value_len - 1] == '\t'))
            hdr->value_len--;
        if (!is_token(hdr->name, hdr->name_len) || !is_field_value(hdr->value, hdr->value_len))
            return bad;
        switch (hdr->name[0] | 0x20) {
        case 'h':
            if (request && mr_http1_name_is(hdr, "host")) {
                hosts++;
                if (!valid_host(hdr->value, hdr->value_len, true))
                    return 400;
                head->host = hdr->value;
                head->host_len = hdr->value_len;
            }
            break;
        case 'c':
            if (mr_http1_name_is(hdr, "content-length")) {
                lengths++;
                head->length_header = hdr;
            } else if (mr_http1_name_is(hdr, "connection"))
                conn_upgrade |= mr_http1_has_token(hdr->value, hdr->value_len, "upgrade", 7);
            break;
        case 't':
            if (mr_http1_name_is(hdr, "transfer-encoding")) {
                encodings++;
                /* Only a lone "chunked" is framing we can forward as it is. */
                chunked = hdr->value_len == 7 && strncasecmp(hdr->value, "chunked", 7) == 0;
                last_chunked = ends_chunked(hdr->value, hdr->value_len);
            }
            break;
        case 'u':
            if (mr_http1_name_is(hdr, "upgrade"))
                upgrade = true;
            break;
        }
    }
    head->upgrade = conn_upgrade && upgrade;
    if (request) {
        if (lengths > 1 || (lengths && encodings))
            return 400;
        if (encodings && (encodings > 1 || !chunked || head->version_minor == 0))
            return 400;
        if (hosts > 1 || (hosts == 0 && head->version_minor == 1))
            return 400;
        if (encodings)
            head->body = MR_BODY_CHUNKED;
        else if (lengths && h->parser.content_length > 0)
            head->body = MR_BODY_LENGTH;
        else
            head->body = MR_BODY_NONE;
    } else {
        int s = head->status;
        if (lengths > 1)
            return 502;
        if (h->head_request || (s >= 100 && s < 200) || s == 204 || s == 304)
            head->body = MR_BODY_NONE;
        else if (encodings) {
            /* The parser's reading, which frames the body, must be ours,
             * which the client is told ("chunked\t" is not chunked to it). */
            if (last_chunked != ((h->parser.flags & F_CHUNKED) != 0))
                return 502;
            head->body = last_chunked ? MR_BODY_CHUNKED : MR_BODY_UNTIL_EOF;
        } else if (lengths)
            head->body = h->parser.content_length > 0 ? MR_BODY_LENGTH : MR_BODY_NONE;
        else
            head->body = MR_BODY_UNTIL_EOF;
    }
    head->content_length = head->body == MR_BODY_LENGTH ? h->parser.content_length : 0;
    return 0;
}

int mr_http1_parse_head(struct mr_http1 *h, struct evbuffer *buf, bool head_request,
                        struct mr_http1_head *head)
{
    const bool request = h->kind == MR_HTTP1_REQUEST;
    size_t avail = evbuffer_get_length(buf);
    size_t want = avail < h->limits.max_head_bytes ? avail : h->limits.max_head_bytes;
    const unsigned char *p;
    long head_len;
    size_t parsed;
    int status;

    /* RFC 9112 2.2: ignore empty lines before a request line (a lone CR
     * may be the first half of one). */
    while (request && h->scanned == 0 && avail >= 1) {
        unsigned char crlf[2];
        if (evbuffer_copyout(buf, crlf, avail >= 2 ? 2 : 1) < 1 || crlf[0] != '\r')
            break;
        if (avail == 1)
            return MR_HTTP1_AGAIN;
        if (crlf[1] != '\n')
            break;
        evbuffer_drain(buf, 2);
        avail -= 2;
        want = avail < h->limits.max_head_bytes ? avail : h->limits.max_head_bytes;
    }
    if (want == 0)
        return MR_HTTP1_AGAIN;
    p = evbuffer_pullup(buf, (ssize_t)want);
    if (p == NULL)
        return request ? 400 : 502;
    head_len = scan_head(h, p, want);
    if (head_len < 0)
        return request ? 400 : 502;
    if (head_len == 0) {
        /* A request line too long for any target, ended or not (as a
         * shorter read of it would be refused). */
        if (request &&
            (h->request_line_end ? h->request_line_end : want) > h->limits.max_uri_bytes + 32)
            return 414;
        if (want == h->limits.max_head_bytes)
            return request ? 431 : 502;
        return MR_HTTP1_AGAIN;
    }

    if (request && (status = check_request_line(p, h->request_line_end)) != 0)
        return status;
    if (!request && (status = check_status_line(p, h->request_line_end)) != 0)
        return status;
    memset(head, 0, sizeof(*head));
    h->out = head;
    h->head_request = head_request;
    h->n_headers = 0;
    parsed = http_parser_execute(&h->parser, &h->settings, (const char *)p, (size_t)head_len);
    if (HTTP_PARSER_ERRNO(&h->parser) != HPE_OK && HTTP_PARSER_ERRNO(&h->parser) != HPE_PAUSED)
        return request ? 400 : 502;
    if (parsed != (size_t)head_len && !h->message_done)
        return request ? 400 : 502;
    if (h->too_many_headers)
        return request ? 431 : 502;
    if (h->parser.http_major != 1)
        return request ? 505 : 502;

    head->version_minor = h->parser.http_minor ? 1 : 0;
    head->headers = h->headers;
    head->n_headers = h->n_headers;
    head->keep_alive = http_should_keep_alive(&h->parser);
    head->head_len = (size_t)head_len;
    if (request) {
        head->method = method_of(h->parser.method);
        head->method_name = http_method_str(h->parser.method);
        head->method_len = strlen(head->method_name);
        if (head->target_len > h->limits.max_uri_bytes)
            return 414;
        if (head->method == MR_METHOD_CONNECT)
            return 405;
    } else {
        head->status = (int)h->parser.status_code;
    }
    status = check_headers(h, head);
    if (status != 0)
        return status;
    if (request && (status = check_target(head)) != 0)
        return status;
    return -1;
}

const char *mr_http1_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}
