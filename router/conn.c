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

/* Reads start small (a request head) and double while they fill up. */
#define READ_MIN (16 * 1024)
#define READ_MAX (256 * 1024)

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

void mr_conn_read_start(struct mr_conn *conn)
{
    if (!conn->reading) {
        conn->reading = true;
        event_add(conn->rev, NULL);
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

void mr_conn_flush(struct mr_conn *conn)
{
    if (conn->connecting || evbuffer_get_length(conn->out) == 0)
        return;
    if (evbuffer_write(conn->out, conn->fd) < 0 && errno != EAGAIN && errno != EINTR) {
        /* Let the loop report it: the socket is writable (in error) now. */
        arm_write(conn, true);
        return;
    }
    arm_write(conn, evbuffer_get_length(conn->out) > 0);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct mr_conn *conn = arg;
    struct evbuffer_iovec vec[2];
    int n_vec = evbuffer_reserve_space(conn->in, (ev_ssize_t)conn->read_size, vec, 2);
    ssize_t n;
    (void)what;

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
        /* A full read means more is coming: read more at once next time;
         * a small one means the bulk is over: back to small buffers, which
         * malloc serves from its caches instead of fresh mappings. */
        if ((size_t)n == reserved && conn->read_size < READ_MAX)
            conn->read_size *= 2;
        else if ((size_t)n < conn->read_size / 4 && conn->read_size > READ_MIN)
            conn->read_size /= 2;
        evbuffer_commit_space(conn->in, vec, n_vec);
    }
    conn->on_read(conn, conn->arg);
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
