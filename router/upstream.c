/* router/upstream.c: see upstream.h. */
#include "router/upstream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "router/conn.h"

#define IDLE_MAGIC 0x1d1e0c0aU

struct idle_conn {
    unsigned magic;
    struct bucket *bucket;
    struct mr_conn *conn;
    struct event *timer;
    struct idle_conn *prev, *next; /* newest at bucket->head */
};

struct bucket {
    struct mr_sockaddr addr;
    struct idle_conn *head;
    size_t n;
    struct mr_upstream_pool *pool;
};

struct mr_upstream_pool {
    struct event_base *base;
    struct bucket **buckets;
    size_t n_buckets;
    size_t idle;
};

struct mr_upstream_pool *mr_upstream_pool_new(struct event_base *base)
{
    struct mr_upstream_pool *pool = calloc(1, sizeof(*pool));
    if (pool != NULL)
        pool->base = base;
    return pool;
}

static void unlink_idle(struct idle_conn *ic)
{
    struct bucket *b = ic->bucket;
    if (ic->prev != NULL)
        ic->prev->next = ic->next;
    else
        b->head = ic->next;
    if (ic->next != NULL)
        ic->next->prev = ic->prev;
    b->n--;
    b->pool->idle--;
}

/* Closes the connection and forgets it. */
static void drop_idle(struct idle_conn *ic)
{
    unlink_idle(ic);
    mr_conn_free(ic->conn);
    event_free(ic->timer);
    ic->magic = 0;
    free(ic);
}

/* Any byte or event on an idle connection means it is no longer usable. */
static void on_idle_read(struct mr_conn *conn, void *arg)
{
    (void)conn;
    drop_idle(arg);
}

static void on_idle_event(struct mr_conn *conn, enum mr_conn_event what, void *arg)
{
    (void)conn;
    (void)what;
    drop_idle(arg);
}

static void on_idle_timeout(evutil_socket_t fd, short events, void *arg)
{
    (void)fd;
    (void)events;
    drop_idle(arg);
}

static struct bucket *find_bucket(struct mr_upstream_pool *pool, const struct mr_sockaddr *addr,
                                  bool create)
{
    struct bucket **grown;
    struct bucket *b;

    for (size_t i = 0; i < pool->n_buckets; i++)
        if (mr_netaddr_equal(&pool->buckets[i]->addr, addr))
            return pool->buckets[i];
    if (!create)
        return NULL;
    b = calloc(1, sizeof(*b));
    grown = realloc(pool->buckets, (pool->n_buckets + 1) * sizeof(*grown));
    if (b == NULL || grown == NULL) {
        free(b);
        if (grown != NULL)
            pool->buckets = grown;
        return NULL;
    }
    b->addr = *addr;
    b->pool = pool;
    grown[pool->n_buckets++] = b;
    pool->buckets = grown;
    return b;
}

/* True when nothing (no EOF, no error, no stray byte) is waiting on an
 * idle connection. */
static bool still_open(const struct mr_conn *conn)
{
    char byte;

    return recv(conn->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) < 0 &&
           (errno == EAGAIN || errno == EWOULDBLOCK);
}

struct mr_conn *mr_upstream_pool_take(struct mr_upstream_pool *pool, const struct mr_sockaddr *addr)
{
    struct bucket *b = find_bucket(pool, addr, false);
    struct idle_conn *ic;
    struct mr_conn *conn;

    if (b == NULL)
        return NULL;
    /* The origin may have closed a connection whose EOF the loop has not
     * seen yet (it just died): a request written there might have been
     * read, so it could not be sent again. The kernel already knows. */
    while (b->head != NULL && !still_open(b->head->conn))
        drop_idle(b->head);
    if (b->head == NULL)
        return NULL;
    ic = b->head;
    conn = ic->conn;
    unlink_idle(ic);
    event_free(ic->timer);
    ic->magic = 0;
    free(ic);
    /* Still reading: the taker sets its callbacks before the loop runs
     * again, and an epoll_ctl pair per request is saved. */
    mr_conn_setcb(conn, NULL, NULL, NULL, NULL);
    return conn;
}

void mr_upstream_pool_put(struct mr_upstream_pool *pool, const struct mr_sockaddr *addr,
                          struct mr_conn *conn, int idle_ms)
{
    struct bucket *b = find_bucket(pool, addr, true);
    struct idle_conn *ic;
    struct timeval tv = {idle_ms / 1000, (idle_ms % 1000) * 1000};

    if (b == NULL || b->n >= MR_UPSTREAM_MAX_IDLE_PER_ENDPOINT ||
        (ic = calloc(1, sizeof(*ic))) == NULL) {
        mr_conn_free(conn);
        return;
    }
    ic->timer = evtimer_new(pool->base, on_idle_timeout, ic);
    if (ic->timer == NULL) {
        free(ic);
        mr_conn_free(conn);
        return;
    }
    ic->magic = IDLE_MAGIC;
    ic->bucket = b;
    ic->conn = conn;
    ic->next = b->head;
    if (b->head != NULL)
        b->head->prev = ic;
    b->head = ic;
    b->n++;
    pool->idle++;
    conn->out_low = 0;
    mr_conn_setcb(conn, on_idle_read, NULL, on_idle_event, ic);
    mr_conn_read_start(conn);
    evtimer_add(ic->timer, &tv);
}

void mr_upstream_pool_close_all(struct mr_upstream_pool *pool)
{
    if (pool == NULL)
        return;
    for (size_t i = 0; i < pool->n_buckets; i++)
        while (pool->buckets[i]->head != NULL)
            drop_idle(pool->buckets[i]->head);
}

void mr_upstream_pool_free(struct mr_upstream_pool *pool)
{
    if (pool == NULL)
        return;
    mr_upstream_pool_close_all(pool);
    for (size_t i = 0; i < pool->n_buckets; i++)
        free(pool->buckets[i]);
    free(pool->buckets);
    free(pool);
}

size_t mr_upstream_pool_idle(const struct mr_upstream_pool *pool)
{
    return pool->idle;
}
