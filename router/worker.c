/* router/worker.c: see worker.h. */
#include "router/worker.h"

#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "common/log.h"
#include "router/accesslog.h"
#include "router/lease.h"
#include "router/stats.h"
#include "router/upstream.h"

struct mr_lease *mr_worker_lease(struct mr_worker *w)
{
    if (w->lease == NULL || mr_snap_peek() != w->lease->snap) {
        struct mr_snapshot *snap = mr_snap_acquire();
        struct mr_lease *fresh;

        if (snap == NULL)
            return NULL;
        fresh = mr_lease_new(w->stats, snap);
        if (fresh == NULL) {
            mr_snap_release(snap);
            return NULL;
        }
        /* Exchanges still on the old lease keep it until they end. */
        if (w->lease != NULL)
            mr_worker_unlease(w, w->lease);
        w->lease = fresh;
    }
    w->lease->users++;
    return w->lease;
}

void mr_worker_unlease(struct mr_worker *w, struct mr_lease *lease)
{
    (void)w;
    if (--lease->users == 0)
        mr_lease_free(lease);
}

uint64_t mr_worker_random(struct mr_worker *w)
{
    /* xorshift64*: fast, per worker, good enough to spread by weight. */
    uint64_t x = w->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static void on_accept(struct evconnlistener *listener, evutil_socket_t fd, struct sockaddr *peer,
                      int peer_len, void *arg)
{
    struct mr_worker *w = arg;

    /* Listeners are few: finding which one accepted costs a short scan. */
    for (size_t i = 0; i < w->n_listeners; i++) {
        if (w->listeners[i] == listener) {
            w->conns->accept(w, i, fd, peer, peer_len);
            return;
        }
    }
    evutil_closesocket(fd);
}

static void on_grace_over(evutil_socket_t fd, short events, void *arg)
{
    struct mr_worker *w = arg;
    (void)fd;
    (void)events;
    if (w->n_clients > 0)
        mr_log(MR_LOG_WARN, "worker %d: grace period over, closing %zu connections", w->id,
               w->n_clients);
    w->conns->close_all(w);
    event_base_loopexit(w->base, NULL);
}

static void begin_stop(struct mr_worker *w)
{
    const struct mr_snapshot *snap = w->lease != NULL ? w->lease->snap : mr_snap_peek();
    int grace_ms = snap != NULL ? snap->timeouts.shutdown_grace_ms : 0;
    struct timeval tv = {grace_ms / 1000, (grace_ms % 1000) * 1000};

    if (w->stopping)
        return;
    w->stopping = true;
    for (size_t i = 0; i < w->n_listeners; i++) {
        evconnlistener_free(w->listeners[i]);
        w->listeners[i] = NULL;
    }
    mr_upstream_pool_close_all(w->pool);
    w->conns->drain(w);
    if (w->n_clients == 0) {
        event_base_loopexit(w->base, NULL);
        return;
    }
    evtimer_add(w->grace_timer, &tv);
}

static void on_wake(evutil_socket_t fd, short events, void *arg)
{
    struct mr_worker *w = arg;
    uint64_t count;
    (void)events;
    if (read(fd, &count, sizeof(count)) < 0)
        return;
    if (atomic_load(&w->stop_requested))
        begin_stop(w);
}

void mr_worker_client_gone(struct mr_worker *w)
{
    if (w->stopping && w->n_clients == 0)
        event_base_loopexit(w->base, NULL);
}

struct mr_worker *mr_worker_new(int id, int *fds, size_t n, const struct mr_worker_conns *conns)
{
    struct mr_worker *w = calloc(1, sizeof(*w));
    struct event_config *cfg = event_config_new();

    if (w == NULL || cfg == NULL)
        goto fail;
    w->id = id;
    w->conns = conns;
    w->wake_fd = -1;
    w->rng = ((uint64_t)time(NULL) << 20) ^ (uint64_t)(id + 1) * 0x9E3779B97F4A7C15ULL;
    /* One thread per base: libevent needs no locks of its own. */
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
    w->base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    cfg = NULL;
    w->listeners = calloc(n, sizeof(*w->listeners));
    w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->base == NULL || w->listeners == NULL || w->wake_fd < 0)
        goto fail;
    w->wake = event_new(w->base, w->wake_fd, EV_READ | EV_PERSIST, on_wake, w);
    w->grace_timer = evtimer_new(w->base, on_grace_over, w);
    w->pool = mr_upstream_pool_new(w->base);
    w->log = mr_accesslog_buffer_new(w->base);
    w->stats = mr_stats_new();
    if (w->wake == NULL || w->grace_timer == NULL || w->pool == NULL || w->log == NULL ||
        w->stats == NULL)
        goto fail;
    event_add(w->wake, NULL);
    for (size_t i = 0; i < n; i++) {
        w->listeners[i] = evconnlistener_new(w->base, on_accept, w,
                                             LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1,
                                             fds[i]);
        if (w->listeners[i] == NULL)
            goto fail;
        fds[i] = -1;
        w->n_listeners = i + 1;
    }
    return w;
fail:
    if (cfg != NULL)
        event_config_free(cfg);
    for (size_t i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    if (w != NULL) {
        w->thread = 0;
        mr_worker_join(w);
    }
    return NULL;
}

static void *run(void *arg)
{
    struct mr_worker *w = arg;
    event_base_dispatch(w->base);
    w->conns->close_all(w);
    atomic_store(&w->finished, true);
    return NULL;
}

int mr_worker_start(struct mr_worker *w)
{
    return pthread_create(&w->thread, NULL, run, w) == 0 ? 0 : -1;
}

void mr_worker_stop(struct mr_worker *w)
{
    uint64_t one = 1;
    atomic_store(&w->stop_requested, true);
    if (write(w->wake_fd, &one, sizeof(one)) < 0)
        mr_log(MR_LOG_ERROR, "worker %d: cannot wake: %m", w->id);
}

void mr_worker_join(struct mr_worker *w)
{
    if (w == NULL)
        return;
    if (w->thread != 0)
        pthread_join(w->thread, NULL);
    for (size_t i = 0; i < w->n_listeners; i++)
        if (w->listeners[i] != NULL)
            evconnlistener_free(w->listeners[i]);
    free(w->listeners);
    mr_upstream_pool_free(w->pool);
    mr_accesslog_buffer_free(w->log);
    if (w->lease != NULL)
        mr_worker_unlease(w, w->lease);
    mr_stats_free(w->stats);
    if (w->wake != NULL)
        event_free(w->wake);
    if (w->grace_timer != NULL)
        event_free(w->grace_timer);
    if (w->wake_fd >= 0)
        close(w->wake_fd);
    if (w->base != NULL)
        event_base_free(w->base);
    free(w);
}
