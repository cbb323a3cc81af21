/* router/chunked.c: see chunked.h. */
#include "router/chunked.h"

#include <stdbool.h>

#include <event2/buffer.h>

/* Larger sizes are refused: no origin needs them and sums cannot overflow. */
#define MAX_CHUNK_SIZE (UINT64_C(1) << 62)
#define MAX_SIZE_DIGITS 16

enum state {
    S_SIZE_FIRST,     /* the first hex digit of a size */
    S_SIZE,           /* more hex digits, or what follows the size */
    S_WS,             /* BWS after the size or a value: only ";" may follow */
    S_EXT_NAME_START, /* BWS, then the first tchar of an extension name */
    S_EXT_NAME,
    S_EXT_AFTER_NAME, /* BWS after a name: "=" or ";" may follow */
    S_EXT_VAL_START,  /* BWS, then a token or a quoted-string */
    S_EXT_VAL,        /* a token value */
    S_EXT_QUOTED,
    S_EXT_QPAIR, /* after a backslash in a quoted-string */
    S_EXT_AFTER_QUOTED,
    S_SIZE_LF, /* CR of the size line seen */
    S_DATA,    /* left bytes of chunk data */
    S_DATA_CR,
    S_DATA_LF,
    S_TRAILER_START, /* a trailer field or the final CRLF */
    S_TR_NAME,
    S_TR_VALUE,
    S_TR_LF,
    S_FINAL_LF,
    S_DONE,
};

/* RFC 9110 tchar. */
static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~': return true;
    default: return false;
    }
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\t';
}

void mr_chunked_init(struct mr_chunked *ck)
{
    ck->state = S_SIZE_FIRST;
    ck->left = 0;
    ck->digits = 0;
    ck->line_len = 0;
    ck->trailer_len = 0;
}

/* Ends a size line (its LF read): data follows, or the trailers. */
static int end_size_line(struct mr_chunked *ck)
{
    ck->line_len = 0;
    ck->digits = 0;
    return ck->left == 0 ? S_TRAILER_START : S_DATA;
}

/* One byte of a size line; the next state or -1. */
static int size_line_byte(struct mr_chunked *ck, unsigned char c)
{
    int d;

    if (++ck->line_len > MR_CHUNKED_MAX_LINE)
        return -1;
    switch (ck->state) {
    case S_SIZE_FIRST:
    case S_SIZE:
        d = hex_value(c);
        if (d >= 0) {
            if (++ck->digits > MAX_SIZE_DIGITS || ck->left > (MAX_CHUNK_SIZE >> 4))
                return -1;
            ck->left = ck->left * 16 + (uint64_t)d;
            return ck->left > MAX_CHUNK_SIZE ? -1 : S_SIZE;
        }
        if (ck->state == S_SIZE_FIRST)
            return -1;
        return c == '\r' ? S_SIZE_LF : c == ';' ? S_EXT_NAME_START : is_ws(c) ? S_WS : -1;
    case S_WS: return c == ';' ? S_EXT_NAME_START : is_ws(c) ? S_WS : -1;
    case S_EXT_NAME_START: return is_tchar(c) ? S_EXT_NAME : is_ws(c) ? S_EXT_NAME_START : -1;
    case S_EXT_NAME:
        if (is_tchar(c))
            return S_EXT_NAME;
        return c == '\r'  ? S_SIZE_LF
               : c == ';' ? S_EXT_NAME_START
               : c == '=' ? S_EXT_VAL_START
               : is_ws(c) ? S_EXT_AFTER_NAME
                          : -1;
    case S_EXT_AFTER_NAME:
        return c == ';'   ? S_EXT_NAME_START
               : c == '=' ? S_EXT_VAL_START
               : is_ws(c) ? S_EXT_AFTER_NAME
                          : -1;
    case S_EXT_VAL_START:
        return is_tchar(c) ? S_EXT_VAL : c == '"' ? S_EXT_QUOTED : is_ws(c) ? S_EXT_VAL_START : -1;
    case S_EXT_VAL:
        if (is_tchar(c))
            return S_EXT_VAL;
        /* fall through */
    case S_EXT_AFTER_QUOTED:
        return c == '\r' ? S_SIZE_LF : c == ';' ? S_EXT_NAME_START : is_ws(c) ? S_WS : -1;
    case S_EXT_QUOTED:
        /* qdtext: HTAB, SP, VCHAR but DQUOTE and backslash, obs-text */
        if (c == '"')
            return S_EXT_AFTER_QUOTED;
        if (c == '\\')
            return S_EXT_QPAIR;
        return (c == '\t' || (c >= 0x20 && c != 0x7f)) ? S_EXT_QUOTED : -1;
    case S_EXT_QPAIR: return (c == '\t' || (c >= 0x20 && c != 0x7f)) ? S_EXT_QUOTED : -1;
    case S_SIZE_LF: return c == '\n' ? end_size_line(ck) : -1;
    default: return -1;
    }
}

/* One byte of the trailer section; the next state or -1. */
static int trailer_byte(struct mr_chunked *ck, unsigned char c)
{
    if (++ck->trailer_len > MR_CHUNKED_MAX_TRAILERS)
        return -1;
    switch (ck->state) {
    case S_TRAILER_START:
        /* A leading SP or HTAB (obs-fold) is not a tchar: refused. */
        return c == '\r' ? S_FINAL_LF : is_tchar(c) ? S_TR_NAME : -1;
    case S_TR_NAME: return c == ':' ? S_TR_VALUE : is_tchar(c) ? S_TR_NAME : -1;
    case S_TR_VALUE:
        if (c == '\r')
            return S_TR_LF;
        return (c == '\t' || (c >= 0x20 && c != 0x7f)) ? S_TR_VALUE : -1;
    case S_TR_LF: return c == '\n' ? S_TRAILER_START : -1;
    case S_FINAL_LF: return c == '\n' ? S_DONE : -1;
    default: return -1;
    }
}

/* One byte outside chunk data; the next state or -1. */
static int step(struct mr_chunked *ck, unsigned char c)
{
    switch (ck->state) {
    case S_DATA_CR: return c == '\r' ? S_DATA_LF : -1;
    case S_DATA_LF: return c == '\n' ? S_SIZE_FIRST : -1;
    case S_TRAILER_START:
    case S_TR_NAME:
    case S_TR_VALUE:
    case S_TR_LF:
    case S_FINAL_LF: return trailer_byte(ck, c);
    default: return size_line_byte(ck, c);
    }
}

/* Moves up to left bytes of chunk data as one canonical chunk. */
static size_t relay_data(struct mr_chunked *ck, struct evbuffer *in, struct evbuffer *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t avail = evbuffer_get_length(in);
    size_t n = ck->left < avail ? (size_t)ck->left : avail;
    char line[24];
    size_t at = sizeof(line);

    if (n == 0)
        return 0;
    line[--at] = '\n';
    line[--at] = '\r';
    for (size_t v = n; v > 0; v >>= 4)
        line[--at] = hex[v & 15];
    evbuffer_add(out, line + at, sizeof(line) - at);
    evbuffer_remove_buffer(in, out, n);
    evbuffer_add(out, "\r\n", 2);
    ck->left -= n;
    if (ck->left == 0)
        ck->state = S_DATA_CR;
    return n;
}

int mr_chunked_relay(struct mr_chunked *ck, struct evbuffer *in, struct evbuffer *out,
                     size_t *consumed)
{
    *consumed = 0;
    for (;;) {
        struct evbuffer_iovec v;
        const unsigned char *p;
        size_t i;

        if (ck->state == S_DONE)
            return MR_CHUNKED_DONE;
        if (ck->state == S_DATA) {
            size_t n = relay_data(ck, in, out);
            if (n == 0)
                return MR_CHUNKED_MORE;
            *consumed += n;
            continue;
        }
        if (evbuffer_get_length(in) == 0 || evbuffer_peek(in, 1, NULL, &v, 1) < 1)
            return MR_CHUNKED_MORE;
        p = v.iov_base;
        for (i = 0; i < v.iov_len && ck->state != S_DATA && ck->state != S_DONE; i++) {
            int next = step(ck, p[i]);
            if (next < 0)
                return MR_CHUNKED_BAD;
            ck->state = next;
        }
        evbuffer_drain(in, i);
        *consumed += i;
        if (ck->state == S_DONE)
            evbuffer_add(out, "0\r\n\r\n", 5);
    }
}
