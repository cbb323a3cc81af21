/*
 * router/worker.h: a worker thread and what it owns.
 *
 * Each worker runs its own event_base with its own SO_REUSEPORT socket per
 * listener, its own upstream pool and its own client connections; nothing
 * in it is touched by another thread except the wake-up eventfd through
 * which the control thread asks it to stop. Requests decide against a
 * lease (router/lease.h): the worker's hold on one snapshot, refreshed when
 * the control thread publishes a new one (a pointer comparison per request,
 * no lock).
 */
#ifndef MR_ROUTER_WORKER_H
#define MR_ROUTER_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <event2/util.h>
#include <sys/socket.h>

#include "conf/snapshot.h"

struct event;
struct event_base;
struct evconnlistener;
struct mr_upstream_pool;
struct mr_client;
struct mr_accesslog_buffer;
struct mr_stats;
struct mr_lease;

struct mr_worker;

/* What the worker does with its client connections, supplied by the data
 * path (router/proxy.c's mr_proxy_conns), so the worker knows threads,
 * sockets and shutdown, not HTTP, and proxy.c alone depends on worker.h. */
struct mr_worker_conns {
    /* Takes over a socket accepted on listeners[listener]. */
    void (*accept)(struct mr_worker *w, size_t listener, evutil_socket_t fd,
                   const struct sockaddr *peer, int peer_len);
    void (*drain)(struct mr_worker *w);     /* shutdown begins */
    void (*close_all)(struct mr_worker *w); /* grace over, or exit */
};

struct mr_worker {
    int id;
    const struct mr_worker_conns *conns;
    pthread_t thread;
    struct event_base *base;
    int *listen_fds; /* one per listener, owned until started */
    struct evconnlistener **listeners;
    size_t n_listeners;
    int wake_fd; /* eventfd written by the control thread */
    struct event *wake;
    atomic_bool stop_requested;
    atomic_bool finished; /* the thread's loop has ended */
    bool stopping;        /* this thread's view of stop_requested */
    struct event *grace_timer;
    struct mr_lease *lease; /* current */
    struct mr_upstream_pool *pool;
    struct mr_client *clients; /* every open client connection */
    size_t n_clients;
    uint64_t rng;
    struct mr_accesslog_buffer *log;
    struct mr_stats *stats; /* read by the control thread too */
};

/* Creates a worker whose listening sockets are fds (n of them; ownership
 * moves to the worker) and whose connections conns handles. NULL on failure
 * (the fds are then closed). */
struct mr_worker *mr_worker_new(int id, int *fds, size_t n, const struct mr_worker_conns *conns);

/* Starts the thread; 0 or -1. */
int mr_worker_start(struct mr_worker *w);

/* Asks the worker to stop (any thread): it stops accepting, lets in-flight
 * requests finish within grace_ms, then its thread ends. */
void mr_worker_stop(struct mr_worker *w);

/* Waits for the thread to end and frees the worker; accepts NULL. */
void mr_worker_join(struct mr_worker *w);

/* The current lease with one more user (worker thread only). NULL when no
 * snapshot is published or memory ran out. */
struct mr_lease *mr_worker_lease(struct mr_worker *w);

/* Drops a user of a lease taken with mr_worker_lease(). */
void mr_worker_unlease(struct mr_worker *w, struct mr_lease *lease);

/* A fast uniformly random 64-bit value (worker thread only). */
uint64_t mr_worker_random(struct mr_worker *w);

/* Called by proxy.c when a client connection closes during shutdown. */
void mr_worker_client_gone(struct mr_worker *w);

#endif
