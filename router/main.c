/*
 * router/main.c: the meridian process.
 *
 *   meridian -c FILE      run the edge
 *   meridian -t -c FILE   check FILE: exit 0, or 1 with one line per error
 *   meridian --version
 *
 * The main thread is the control thread: it loads the configuration,
 * binds every listener once per worker (SO_REUSEPORT: the kernel spreads
 * connections, no accept lock), starts the workers, then handles signals:
 * SIGHUP reloads, SIGTERM and SIGINT stop gracefully.
 */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/err.h"
#include "common/log.h"
#include "conf/conf.h"
#include "conf/snapshot.h"
#include "geo/geoip.h"
#include "health/check.h"
#include "health/health.h"
#include "router/accesslog.h"
#include "router/worker.h"

struct control {
    const char *conf_path;
    struct event_base *base;
    struct mr_worker **workers;
    int n_workers;
    struct mr_health *health;
    struct mr_checker *checker;
};

static void usage(FILE *out)
{
    fprintf(out, "usage: meridian [-t] -c FILE\n"
                 "       meridian --version\n"
                 "  -c, --config FILE  configuration file (JSON)\n"
                 "  -t, --test         check the configuration and exit\n");
}

/* Loads path and opens what it names (the GeoIP database); prints
 * warnings and errors. NULL on any error. */
static struct mr_snapshot *load(const char *path, bool to_log)
{
    struct mr_errors errs = {0};
    struct mr_snapshot *snap = mr_conf_load(path, &errs);

    if (snap != NULL && mr_geoip_attach(snap, &errs) != 0) {
        mr_snap_free(snap);
        snap = NULL;
    }
    if (to_log) {
        for (size_t i = 0; i < errs.n_warnings; i++)
            mr_log(MR_LOG_WARN, "%s: %s", path, errs.warnings[i]);
        for (size_t i = 0; i < errs.n_errors; i++)
            mr_log(MR_LOG_ERROR, "%s: %s", path, errs.errors[i]);
    } else {
        mr_errors_print(&errs, stderr);
    }
    mr_errors_clear(&errs);
    return snap;
}

static int bind_listener(const struct mr_listener *l, char *err, size_t err_len)
{
    int one = 1;
    int fd = socket(l->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        snprintf(err, err_len, "socket: %s", strerror(errno));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (l->addr.ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&l->addr.ss, l->addr.len) != 0 ||
        listen(fd, 1024) != 0) {
        snprintf(err, err_len, "cannot listen on %s: %s", l->address, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int start_workers(struct control *ctl, const struct mr_snapshot *snap)
{
    ctl->n_workers = snap->workers;
    ctl->workers = calloc((size_t)snap->workers, sizeof(*ctl->workers));
    if (ctl->workers == NULL)
        return -1;
    for (int i = 0; i < snap->workers; i++) {
        int fds[snap->n_listeners];
        char err[256];
        for (size_t k = 0; k < snap->n_listeners; k++) {
            fds[k] = bind_listener(&snap->listeners[k], err, sizeof(err));
            if (fds[k] < 0) {
                mr_log(MR_LOG_ERROR, "listeners[%zu].address: %s", k, err);
                while (k-- > 0)
                    close(fds[k]);
                return -1;
            }
        }
        ctl->workers[i] = mr_worker_new(i, fds, snap->n_listeners);
        if (ctl->workers[i] == NULL || mr_worker_start(ctl->workers[i]) != 0) {
            mr_log(MR_LOG_ERROR, "cannot start worker %d", i);
            return -1;
        }
    }
    return 0;
}

static void stop_workers(struct control *ctl)
{
    for (int i = 0; i < ctl->n_workers; i++)
        if (ctl->workers[i] != NULL)
            mr_worker_stop(ctl->workers[i]);
    for (int i = 0; i < ctl->n_workers; i++)
        mr_worker_join(ctl->workers[i]);
    free(ctl->workers);
    ctl->workers = NULL;
}

static void reload(struct control *ctl)
{
    const struct mr_snapshot *running = mr_snap_peek();
    struct mr_snapshot *snap = load(ctl->conf_path, true);

    if (snap == NULL) {
        mr_log(MR_LOG_ERROR, "reload refused: keeping generation %llu",
               (unsigned long long)running->generation);
        return;
    }
    /* Sockets and threads are made at start; say so rather than pretend. */
    if (snap->workers != running->workers)
        mr_log(MR_LOG_WARN, "workers changed: takes effect at restart");
    if (snap->n_listeners != running->n_listeners)
        mr_log(MR_LOG_WARN, "listeners changed: take effect at restart");
    for (size_t i = 0; i < snap->n_listeners && i < running->n_listeners; i++)
        if (!mr_netaddr_equal(&snap->listeners[i].addr, &running->listeners[i].addr))
            mr_log(MR_LOG_WARN, "listeners[%zu].address changed: takes effect at restart", i);
    if (mr_health_attach(ctl->health, snap) != 0) {
        mr_log(MR_LOG_ERROR, "reload refused: out of memory");
        mr_snap_free(snap);
        return;
    }
    if (mr_accesslog_open(snap->access_log) != 0)
        mr_log(MR_LOG_ERROR, "access_log: cannot open %s: %m (logging stops)", snap->access_log);
    mr_snap_publish(snap);
    mr_checker_update(ctl->checker, snap);
    mr_log(MR_LOG_INFO, "reloaded %s: generation %llu", ctl->conf_path,
           (unsigned long long)snap->generation);
}

static void on_signal(evutil_socket_t sig, short events, void *arg)
{
    struct control *ctl = arg;
    (void)events;

    if (sig == SIGHUP) {
        reload(ctl);
        return;
    }
    mr_log(MR_LOG_INFO, "%s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    event_base_loopbreak(ctl->base);
}

static int run(const char *path)
{
    struct control ctl = {.conf_path = path};
    struct mr_snapshot *snap = load(path, true);
    struct event *signals[3] = {NULL, NULL, NULL};
    const int signos[3] = {SIGHUP, SIGTERM, SIGINT};
    sigset_t block, old;
    int rc = 0;

    if (snap == NULL)
        return 1;
    if (mr_accesslog_open(snap->access_log) != 0) {
        mr_log(MR_LOG_ERROR, "access_log: cannot open %s: %m", snap->access_log);
        mr_snap_free(snap);
        return 1;
    }
    ctl.base = event_base_new();
    ctl.health = mr_health_new();
    ctl.checker = ctl.base != NULL && ctl.health != NULL
                      ? mr_checker_new(ctl.base, ctl.health) : NULL;
    if (ctl.checker == NULL || mr_health_attach(ctl.health, snap) != 0) {
        mr_log(MR_LOG_ERROR, "out of memory at start");
        mr_snap_free(snap);
        mr_checker_free(ctl.checker);
        mr_health_free(ctl.health);
        if (ctl.base != NULL)
            event_base_free(ctl.base);
        mr_accesslog_close();
        return 1;
    }
    mr_snap_publish(snap);
    mr_checker_update(ctl.checker, snap);
    for (int i = 0; i < 3; i++) {
        signals[i] = evsignal_new(ctl.base, signos[i], on_signal, &ctl);
        if (signals[i] != NULL)
            event_add(signals[i], NULL);
    }
    /* Workers never see these signals: the control thread handles them. */
    sigemptyset(&block);
    for (int i = 0; i < 3; i++)
        sigaddset(&block, signos[i]);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    if (start_workers(&ctl, snap) != 0)
        rc = 1;
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    if (rc == 0) {
        mr_log(MR_LOG_INFO, "meridian %s: generation %llu, %d workers, listening on %s%s",
               MR_VERSION, (unsigned long long)snap->generation, snap->workers,
               snap->listeners[0].address, snap->n_listeners > 1 ? " and more" : "");
        event_base_dispatch(ctl.base);
    }
    stop_workers(&ctl);
    mr_checker_free(ctl.checker);
    for (int i = 0; i < 3; i++)
        if (signals[i] != NULL)
            event_free(signals[i]);
    event_base_free(ctl.base);
    mr_snap_shutdown();
    mr_health_free(ctl.health);
    mr_accesslog_close();
    if (rc == 0)
        mr_log(MR_LOG_INFO, "stopped");
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"test", no_argument, NULL, 't'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    bool test_only = false;
    int opt;

    while ((opt = getopt_long(argc, argv, "c:thV", options, NULL)) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case 't': test_only = true; break;
        case 'V': printf("meridian %s\n", MR_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (path == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (test_only) {
        struct mr_snapshot *snap = load(path, false);
        if (snap == NULL)
            return 1;
        printf("%s: configuration OK\n", path);
        mr_snap_free(snap);
        return 0;
    }
    return run(path);
}
