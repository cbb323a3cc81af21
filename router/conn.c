/* router/conn.c: see conn.h. */
#include "router/conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

/* Reads start small (a request head) and double while they fill up. */
#define READ_MIN (16 * 1024)
#define READ_MAX (256 * 1024)
/* One TLS record's worth of plaintext per SSL_write. */
#define TLS_WRITE_STEP 16384

static void on_readable(evutil_socket_t fd, short what, void *arg);
static void on_writable(evutil_socket_t fd, short what, void *arg);

static struct mr_conn *wrap(struct event_base *base, evutil_socket_t fd)
{
    struct mr_conn *conn = calloc(1, sizeof(*conn));
    int one = 1;

    if (conn == NULL) {
        evutil_closesocket(fd);
        return NULL;
    }
    conn->fd = fd;
    conn->read_size = READ_MIN;
    conn->in = evbuffer_new();
    conn->out = evbuffer_new();
    conn->rev = event_new(base, fd, EV_READ | EV_PERSIST, on_readable, conn);
    conn->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, on_writable, conn);
    if (conn->in == NULL || conn->out == NULL || conn->rev == NULL || conn->wev == NULL) {
        mr_conn_free(conn);
        return NULL;
    }
    /* Heads and small answers go out at once, not after a delayed ACK. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return conn;
}

struct mr_conn *mr_conn_new(struct event_base *base, evutil_socket_t fd)
{
    if (evutil_make_socket_nonblocking(fd) != 0) {
        evutil_closesocket(fd);
        return NULL;
    }
    return wrap(base, fd);
}

struct mr_conn *mr_conn_connect(struct event_base *base, const struct mr_sockaddr *addr)
{
    evutil_socket_t fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct mr_conn *conn;

    if (fd < 0)
        return NULL;
    if (connect(fd, (const struct sockaddr *)&addr->ss, addr->len) != 0 && errno != EINPROGRESS) {
        int saved = errno;
        evutil_closesocket(fd);
        errno = saved;
        return NULL;
    }
    conn = wrap(base, fd);
    if (conn == NULL)
        return NULL;
    /* Completion (or failure) shows as writability. */
    conn->connecting = true;
    conn->writing = true;
    event_add(conn->wev, NULL);
    return conn;
}

void mr_conn_free(struct mr_conn *conn)
{
    if (conn == NULL)
        return;
    if (conn->rev != NULL)
        event_free(conn->rev);
    if (conn->wev != NULL)
        event_free(conn->wev);
    if (conn->in != NULL)
        evbuffer_free(conn->in);
    if (conn->out != NULL)
        evbuffer_free(conn->out);
    if (conn->ssl != NULL) {
        /* close_notify, best effort; never after a fatal TLS error. */
        if (!conn->handshaking && !conn->tls_dead)
            SSL_shutdown(conn->ssl);
        SSL_free(conn->ssl);
        ERR_clear_error();
    }
    evutil_closesocket(conn->fd);
    free(conn);
}

void mr_conn_setcb(struct mr_conn *conn, mr_conn_cb on_read, mr_conn_cb on_drain,
                   mr_conn_event_cb on_event, void *arg)
{
    conn->on_read = on_read;
    conn->on_drain = on_drain;
    conn->on_event = on_event;
    conn->arg = arg;
}

void mr_conn_start_tls(struct mr_conn *conn, SSL *ssl)
{
    conn->ssl = ssl;
    conn->handshaking = true;
    SSL_set_fd(ssl, conn->fd);
}

void mr_conn_read_start(struct mr_conn *conn)
{
    if (!conn->reading) {
        conn->reading = true;
        event_add(conn->rev, NULL);
        /* Plaintext OpenSSL already holds would wake no epoll. */
        if (conn->ssl != NULL && !conn->handshaking && SSL_has_pending(conn->ssl))
            event_active(conn->rev, EV_READ, 1);
    }
}

void mr_conn_read_stop(struct mr_conn *conn)
{
    if (conn->reading) {
        conn->reading = false;
        event_del(conn->rev);
    }
}

static void arm_write(struct mr_conn *conn, bool on)
{
    if (on != conn->writing) {
        conn->writing = on;
        if (on)
            event_add(conn->wev, NULL);
        else
            event_del(conn->wev);
    }
}

/* Fails the conn: stops both directions and reports. */
static void report_error(struct mr_conn *conn, int err)
{
    conn->error = err;
    mr_conn_read_stop(conn);
    arm_write(conn, false);
    conn->on_event(conn, MR_CONN_ERROR, conn->arg);
}

/* What an SSL call that returned ret wants: 0 retry when the socket is
 * ready (the event is armed), -1 failed (errno set). */
static int tls_want(struct mr_conn *conn, int ret, bool reading)
{
    switch (SSL_get_error(conn->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        if (!reading) {
            conn->write_wants_read = true;
            event_add(conn->rev, NULL);
        }
        return 0;
    case SSL_ERROR_WANT_WRITE:
        if (reading)
            conn->read_wants_write = true;
        arm_write(conn, true);
        return 0;
    case SSL_ERROR_SYSCALL:
        if (errno == EAGAIN || errno == EINTR)
            return 0;
        if (errno == 0)
            errno = ECONNRESET;
        conn->tls_dead = true;
        ERR_clear_error();
        return -1;
    default:
        conn->tls_dead = true;
        ERR_clear_error();
        errno = EPROTO;
        return -1;
    }
}

/* Encrypts and sends what out holds, a record at a time; -1 on failure. */
static int tls_write(struct mr_conn *conn)
{
    size_t len;

    conn->write_wants_read = false;
    while ((len = evbuffer_get_length(conn->out)) > 0) {
        size_t step = len < TLS_WRITE_STEP ? len : TLS_WRITE_STEP;
        unsigned char *p = evbuffer_pullup(conn->out, (ev_ssize_t)step);
        int n;

        if (p == NULL) {
            errno = ENOMEM;
            return -1;
        }
        n = SSL_write(conn->ssl, p, (int)step);
        if (n <= 0)
            return tls_want(conn, n, false);
        evbuffer_drain(conn->out, (size_t)n);
    }
    return 0;
}

void mr_conn_flush(struct mr_conn *conn)
{
    if (conn->connecting || conn->handshaking || evbuffer_get_length(conn->out) == 0)
        return;
    if (conn->ssl != NULL) {
        if (tls_write(conn) < 0) {
            conn->error = errno;
            arm_write(conn, true); /* reported from the loop, as below */
            return;
        }
        arm_write(conn, evbuffer_get_length(conn->out) > 0 || conn->read_wants_write);
        return;
    }
    if (evbuffer_write(conn->out, conn->fd) < 0 && errno != EAGAIN && errno != EINTR) {
        /* Let the loop report it: the socket is writable (in error) now. */
        arm_write(conn, true);
        return;
    }
    arm_write(conn, evbuffer_get_length(conn->out) > 0);
}

/* Grows or shrinks the next read after one that took n of reserved. */
static void adapt_read_size(struct mr_conn *conn, size_t n, size_t reserved)
{
    /* A full read means more is coming: read more at once next time;
     * a small one means the bulk is over: back to small buffers, which
     * malloc serves from its caches instead of fresh mappings. */
    if (n == reserved && conn->read_size < READ_MAX)
        conn->read_size *= 2;
    else if (n < conn->read_size / 4 && conn->read_size > READ_MIN)
        conn->read_size /= 2;
}

/* Runs the handshake a step: 1 done, 0 waiting for the socket, -1 failed
 * and reported (conn may be gone). */
static int tls_handshake(struct mr_conn *conn)
{
    int r = SSL_do_handshake(conn->ssl);

    if (r == 1) {
        conn->handshaking = false;
        arm_write(conn, evbuffer_get_length(conn->out) > 0);
        conn->on_event(conn, MR_CONN_TLS_READY, conn->arg);
        mr_conn_flush(conn);
        return 1;
    }
    if (tls_want(conn, r, true) == 0) {
        conn->read_wants_write = false;
        arm_write(conn, SSL_get_error(conn->ssl, r) == SSL_ERROR_WANT_WRITE);
        return 0;
    }
    report_error(conn, errno);
    return -1;
}

/* Decrypts what the socket has, up to read_size, into in. */
static void tls_read(struct mr_conn *conn)
{
    size_t total = 0;
    bool eof = false;

    conn->read_wants_write = false;
    while (total < conn->read_size) {
        struct evbuffer_iovec vec;
        int n;

        if (evbuffer_reserve_space(conn->in, (ev_ssize_t)(conn->read_size - total), &vec, 1) < 1) {
            report_error(conn, ENOMEM);
            return;
        }
        n = SSL_read(conn->ssl, vec.iov_base, (int)vec.iov_len);
        if (n > 0) {
            vec.iov_len = (size_t)n;
            evbuffer_commit_space(conn->in, &vec, 1);
            total += (size_t)n;
            /* Nothing buffered in OpenSSL: whatever else comes wakes epoll
             * again, so no read() that would only say EAGAIN. */
            if (!SSL_has_pending(conn->ssl))
                break;
            continue;
        }
        evbuffer_commit_space(conn->in, &vec, 0);
        if (SSL_get_error(conn->ssl, n) == SSL_ERROR_ZERO_RETURN) {
            eof = true;
            break;
        }
        if (tls_want(conn, n, true) == 0)
            break;
        report_error(conn, errno);
        return;
    }
    adapt_read_size(conn, total, conn->read_size);
    if (eof && total == 0) {
        mr_conn_read_stop(conn);
        conn->on_event(conn, MR_CONN_EOF, conn->arg);
        return;
    }
    /* More than one read's worth decrypted, or the close after the data:
     * come back from the loop (a freed conn takes the activation along). */
    if (eof || SSL_has_pending(conn->ssl))
        event_active(conn->rev, EV_READ, 1);
    if (total > 0)
        conn->on_read(conn, conn->arg);
}

/* A TLS conn's readable socket: handshake, a write waiting on a read, or data. */
static void tls_readable(struct mr_conn *conn)
{
    if (conn->handshaking && tls_handshake(conn) <= 0)
        return;
    if (conn->write_wants_read) {
        if (!conn->reading)
            event_del(conn->rev);
        mr_conn_flush(conn);
    }
    if (conn->reading)
        tls_read(conn);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct mr_conn *conn = arg;
    struct evbuffer_iovec vec[2];
    int n_vec;
    ssize_t n;
    (void)what;

    if (conn->ssl != NULL) {
        tls_readable(conn);
        return;
    }
    n_vec = evbuffer_reserve_space(conn->in, (ev_ssize_t)conn->read_size, vec, 2);
    if (n_vec < 1) {
        conn->error = ENOMEM;
        mr_conn_read_stop(conn);
        conn->on_event(conn, MR_CONN_ERROR, conn->arg);
        return;
    }
    n = readv(fd, (struct iovec *)vec, n_vec);
    if (n < 0) {
        evbuffer_commit_space(conn->in, vec, 0);
        if (errno == EAGAIN || errno == EINTR)
            return;
        conn->error = errno;
        mr_conn_read_stop(conn);
        conn->on_event(conn, MR_CONN_ERROR, conn->arg);
        return;
    }
    if (n == 0) {
        evbuffer_commit_space(conn->in, vec, 0);
        mr_conn_read_stop(conn);
        conn->on_event(conn, MR_CONN_EOF, conn->arg);
        return;
    }
    {
        size_t left = (size_t)n, reserved = 0;
        for (int i = 0; i < n_vec; i++) {
            reserved += vec[i].iov_len;
            if (vec[i].iov_len > left)
                vec[i].iov_len = left;
            left -= vec[i].iov_len;
        }
        adapt_read_size(conn, (size_t)n, reserved);
        evbuffer_commit_space(conn->in, vec, n_vec);
    }
    conn->on_read(conn, conn->arg);
}

/* A TLS conn's writable socket: handshake, a read waiting on a write, or
 * the output. */
static void tls_writable(struct mr_conn *conn)
{
    if (conn->handshaking) {
        if (tls_handshake(conn) > 0 && conn->reading)
            tls_read(conn);
        return;
    }
    if (conn->read_wants_write && conn->reading) {
        /* tls_read may free the conn: let the loop come back for the rest. */
        event_active(conn->rev, EV_READ, 1);
        conn->read_wants_write = false;
    }
    if (tls_write(conn) < 0) {
        report_error(conn, errno);
        return;
    }
    if (evbuffer_get_length(conn->out) == 0)
        arm_write(conn, false);
    if (evbuffer_get_length(conn->out) <= conn->out_low && conn->on_drain != NULL)
        conn->on_drain(conn, conn->arg);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    struct mr_conn *conn = arg;
    (void)what;

    if (conn->connecting) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err == EINPROGRESS)
            return;
        conn->connecting = false;
        if (err != 0) {
            conn->error = err;
            arm_write(conn, false);
            conn->on_event(conn, MR_CONN_ERROR, conn->arg);
            return;
        }
        mr_conn_flush(conn);
        if (evbuffer_get_length(conn->out) == 0)
            arm_write(conn, false);
        conn->on_event(conn, MR_CONN_CONNECTED, conn->arg);
        return;
    }
    if (conn->ssl != NULL) {
        tls_writable(conn);
        return;
    }
    if (evbuffer_get_length(conn->out) > 0 && evbuffer_write(conn->out, fd) < 0 &&
        errno != EAGAIN && errno != EINTR) {
        conn->error = errno;
        arm_write(conn, false);
        conn->on_event(conn, MR_CONN_ERROR, conn->arg);
        return;
    }
    if (evbuffer_get_length(conn->out) == 0)
        arm_write(conn, false);
    if (evbuffer_get_length(conn->out) <= conn->out_low && conn->on_drain != NULL)
        conn->on_drain(conn, conn->arg);
}
