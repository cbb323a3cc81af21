/*
 * router/conn.h: a buffered non-blocking socket on one event_base.
 *
 * What the data path needs of libevent's bufferevent and no more, without
 * its costs on this path: reads go straight into the input evbuffer in
 * steps that grow with the traffic (libevent 2.1 caps one read at 4 KiB and
 * asks FIONREAD first), and mr_conn_flush() writes at once, arming the write
 * event only when the kernel pushes back. One thread only.
 *
 * A conn may carry TLS (mr_conn_start_tls): the same reads and writes go
 * through SSL_read / SSL_write on the socket, with OpenSSL reading ahead,
 * so a record costs no extra system call.
 *
 * Callbacks may free the conn; nothing touches it after calling one.
 */
#ifndef MR_ROUTER_CONN_H
#define MR_ROUTER_CONN_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/util.h>

#include "common/netaddr.h"

struct event_base;
struct evbuffer;
struct mr_conn;
typedef struct ssl_st SSL;

enum mr_conn_event {
    MR_CONN_CONNECTED, /* an outgoing connect completed */
    MR_CONN_EOF,       /* the peer closed its side; reading stopped */
    MR_CONN_ERROR,     /* connect, I/O or TLS failed (errno in conn->error;
                          EPROTO for a TLS failure) */
    MR_CONN_TLS_READY, /* the TLS handshake completed; reading goes on (the
                          one callback that must not free the conn) */
};

/* Back-pressure on the data path: a side stops reading while its partner's
 * output holds MR_CONN_OUT_HIGH bytes, and resumes (out_low, the drain
 * callback) when it is down to MR_CONN_OUT_LOW. */
#define MR_CONN_OUT_HIGH (512 * 1024)
#define MR_CONN_OUT_LOW (128 * 1024)

typedef void (*mr_conn_cb)(struct mr_conn *conn, void *arg);
typedef void (*mr_conn_event_cb)(struct mr_conn *conn, enum mr_conn_event what, void *arg);

struct mr_conn {
    evutil_socket_t fd;
    struct evbuffer *in, *out; /* owned */
    int error;                 /* errno of the last MR_CONN_ERROR */
    size_t out_low;            /* on_drain runs when out falls to this */
    /* private */
    struct event *rev, *wev;
    bool reading, writing, connecting;
    SSL *ssl;              /* owned; NULL for plain TCP */
    bool handshaking;      /* TLS handshake not complete yet */
    bool read_wants_write; /* SSL_read needs the socket writable */
    bool write_wants_read; /* SSL_write needs the socket readable */
    bool tls_dead;         /* a fatal TLS error: no close_notify */
    size_t read_size;
    mr_conn_cb on_read, on_drain;
    mr_conn_event_cb on_event;
    void *arg;
};

/* Wraps an accepted socket (taking ownership); NULL on failure (closed). */
struct mr_conn *mr_conn_new(struct event_base *base, evutil_socket_t fd);

/* Starts connecting to addr; MR_CONN_CONNECTED or MR_CONN_ERROR follows.
 * NULL when the connect failed at once (errno set). */
struct mr_conn *mr_conn_connect(struct event_base *base, const struct mr_sockaddr *addr);

/* Closes the socket and frees everything; accepts NULL. */
void mr_conn_free(struct mr_conn *conn);

/* Makes conn a TLS server connection (taking ownership of ssl, which must
 * be in accept state); the handshake runs as the conn reads, before any
 * on_read. MR_CONN_TLS_READY or MR_CONN_ERROR follows. */
void mr_conn_start_tls(struct mr_conn *conn, SSL *ssl);

void mr_conn_setcb(struct mr_conn *conn, mr_conn_cb on_read, mr_conn_cb on_drain,
                   mr_conn_event_cb on_event, void *arg);

void mr_conn_read_start(struct mr_conn *conn);
void mr_conn_read_stop(struct mr_conn *conn);

/* Writes what out holds now, as far as the kernel takes it; the rest goes
 * when the socket is writable. A write error arrives as MR_CONN_ERROR from
 * the event loop, never from here. */
void mr_conn_flush(struct mr_conn *conn);

#endif
