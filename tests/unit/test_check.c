/* tests/unit/test_check.c: active HTTP checks against tiny servers on
 * loopback, served by the test's own event_base (the one the checker runs
 * on): 200, 503, silent, closed port; schedule kept across updates; jitter.
 * Every loop is bounded by a deadline; the whole file runs in a few seconds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "common/log.h"
#include "conf/snapshot.h"
#include "health/check.h"
#include "health/health.h"

/* 32 bytes, base64: a valid session secret. */

#define INTERVAL_MS 50
#define TIMEOUT_MS 40 /* conf requires timeout_ms <= interval_ms */

static int64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- tiny servers ---- */

enum mode { MODE_200, MODE_503, MODE_SILENT, MODE_301 };

#define MAX_SERVERS 4
#define MAX_ACCEPTS 256

struct server {
    int fd;
    int port;
    enum mode mode;
    struct event *ev;
    size_t accepts;
    int64_t accept_us[MAX_ACCEPTS];
    char last_request[512];
};

struct conn {
    int fd;
    struct event *ev;
    struct server *srv;
    char buf[512];
    size_t got;
    struct conn *next;
};

/* Per-test state, freed by the teardown even when an assertion fails. */
static struct event_base *base;
static struct event *tick;
static struct server servers[MAX_SERVERS];
static size_t n_servers;
static struct conn *conns;
static struct mr_health *reg;
static struct mr_checker *checker;
#define MAX_SNAPS 3
static struct mr_snapshot *snaps[MAX_SNAPS];

static void close_conn(struct conn *c)
{
    for (struct conn **p = &conns; *p != NULL; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            break;
        }
    }
    event_free(c->ev);
    close(c->fd);
    free(c);
}

static void on_conn_read(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    ssize_t n = recv(fd, c->buf + c->got, sizeof(c->buf) - 1 - c->got, 0);
    const char *reply;

    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    if (n <= 0) {
        close_conn(c); /* the checker gave up or finished */
        return;
    }
    c->got += (size_t)n;
    c->buf[c->got] = '\0';
    if (strstr(c->buf, "\r\n\r\n") == NULL) {
        return;
    }
    snprintf(c->srv->last_request, sizeof(c->srv->last_request), "%s", c->buf);
    switch (c->srv->mode) {
    case MODE_200:
        reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
        break;
    case MODE_301: reply = "HTTP/1.0 301 Moved\r\nLocation: /x\r\n\r\n"; break;
    case MODE_503: reply = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"; break;
    default:
        c->got = 0; /* silent: read on, answer never */
        return;
    }
    if (send(fd, reply, strlen(reply), MSG_NOSIGNAL) < 0) {
        fail_msg("server send: %s", strerror(errno));
    }
    close_conn(c);
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    struct server *srv = arg;
    struct conn *c;
    int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (cfd < 0) {
        return;
    }
    if (srv->accepts < MAX_ACCEPTS) {
        srv->accept_us[srv->accepts] = now_us();
    }
    srv->accepts++;
    c = calloc(1, sizeof(*c));
    assert_non_null(c);
    c->fd = cfd;
    c->srv = srv;
    c->ev = event_new(base, cfd, EV_READ | EV_PERSIST, on_conn_read, c);
    assert_non_null(c->ev);
    c->next = conns;
    conns = c;
    event_add(c->ev, NULL);
}

/* A listening socket on 127.0.0.1, any port; listening = false gives a
 * port nothing listens on (connect: refused). */
static struct server *start_server(enum mode mode, bool listening)
{
    struct server *srv = &servers[n_servers];
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t len = sizeof(sin);
    int one = 1;

    assert_true(n_servers < MAX_SERVERS);
    memset(srv, 0, sizeof(*srv));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    srv->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(srv->fd >= 0);
    setsockopt(srv->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    assert_int_equal(bind(srv->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(srv->fd, (struct sockaddr *)&sin, &len), 0);
    srv->port = ntohs(sin.sin_port);
    srv->mode = mode;
    n_servers++;
    if (!listening) {
        close(srv->fd);
        srv->fd = -1;
        return srv;
    }
    assert_int_equal(listen(srv->fd, 64), 0);
    srv->ev = event_new(base, srv->fd, EV_READ | EV_PERSIST, on_accept, srv);
    assert_non_null(srv->ev);
    event_add(srv->ev, NULL);
    return srv;
}

/* ---- fixtures ---- */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    /* Only makes EVLOOP_ONCE return, so run_until sees its deadline. */
}

static int setup(void **state)
{
    struct timeval tv = {0, 5000};
    (void)state;

    base = event_base_new();
    reg = mr_health_new();
    if (base == NULL || reg == NULL) {
        return -1;
    }
    checker = mr_checker_new(base, reg);
    tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    if (checker == NULL || tick == NULL) {
        return -1;
    }
    event_add(tick, &tv);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mr_checker_free(checker);
    checker = NULL;
    for (size_t i = 0; i < MAX_SNAPS; i++) {
        mr_snap_release(snaps[i]);
        snaps[i] = NULL;
    }
    mr_health_free(reg);
    reg = NULL;
    while (conns != NULL) {
        close_conn(conns);
    }
    for (size_t i = 0; i < n_servers; i++) {
        if (servers[i].ev != NULL) {
            event_free(servers[i].ev);
        }
        if (servers[i].fd >= 0) {
            close(servers[i].fd);
        }
    }
    n_servers = 0;
    if (tick != NULL) {
        event_free(tick);
        tick = NULL;
    }
    event_base_free(base);
    base = NULL;
    return 0;
}

/* ---- helpers ---- */

/* Loads snaps[k] with one region; clusters is the JSON array of clusters. */
static struct mr_snapshot *load(size_t k, const char *clusters, int interval_ms, int timeout_ms)
{
    assert_true(k < MAX_SNAPS);
    assert_null(snaps[k]);
    snaps[k] =
        mr_test_loadf("\"health\": {\"path\": \"/hc\", \"interval_ms\": %d, \"timeout_ms\": %d,"
                      "              \"rise\": 2, \"fall\": 2},"
                      " \"regions\": [{\"name\": \"eu\", \"clusters\": %s}],"
                      " \"routing\": {\"default\": [\"eu\"]}",
                      interval_ms, timeout_ms, clusters);
    return snaps[k];
}

/* A snapshot with one cluster "c" whose endpoints are the given servers. */
static struct mr_snapshot *load_servers(size_t k, struct server **srv, size_t n, int interval_ms)
{
    char clusters[1024];
    size_t len;

    len = (size_t)snprintf(clusters, sizeof(clusters), "[{\"name\": \"c\", \"endpoints\": [");
    for (size_t i = 0; i < n; i++) {
        len += (size_t)snprintf(clusters + len, sizeof(clusters) - len, "%s\"127.0.0.1:%d\"",
                                i > 0 ? ", " : "", srv[i]->port);
    }
    snprintf(clusters + len, sizeof(clusters) - len, "]}]");
    return load(k, clusters, interval_ms, TIMEOUT_MS);
}

/* Attaches and hands the snapshot to the checker, as the control thread does
 * after each publish. */
static void apply(struct mr_snapshot *snap)
{
    assert_int_equal(mr_health_attach(reg, snap), 0);
    assert_int_equal(mr_checker_update(checker, snap), 0);
}

static struct mr_health_slot *slot_for(struct mr_snapshot *snap, const struct server *srv)
{
    char address[64];
    const struct mr_cluster *c = mr_snap_cluster(snap, "c");

    snprintf(address, sizeof(address), "127.0.0.1:%d", srv->port);
    assert_non_null(c);
    for (size_t i = 0; i < c->n_endpoints; i++) {
        if (strcmp(c->endpoints[i].address, address) == 0) {
            assert_non_null(c->endpoints[i].health);
            return c->endpoints[i].health;
        }
    }
    fail_msg("no endpoint %s", address);
    return NULL;
}

typedef bool (*pred_fn)(const void *arg);

/* Runs the loop until pred(arg) holds (true) or max_ms pass (false). */
static bool run_until(pred_fn pred, const void *arg, int max_ms)
{
    int64_t deadline = now_us() + (int64_t)max_ms * 1000;

    while (pred == NULL || !pred(arg)) {
        if (now_us() >= deadline) {
            return pred == NULL;
        }
        event_base_loop(base, EVLOOP_ONCE);
    }
    return true;
}

static void run_for(int ms)
{
    run_until(NULL, NULL, ms);
}

static bool is_down(const void *arg)
{
    return !atomic_load(&((const struct mr_health_slot *)arg)->up);
}

static bool is_up(const void *arg)
{
    return atomic_load(&((const struct mr_health_slot *)arg)->up);
}

struct checks_at_least {
    const struct mr_health_slot *slot;
    uint64_t n;
};

static bool has_checks(const void *arg)
{
    const struct checks_at_least *c = arg;

    return c->slot->checks >= c->n;
}

static size_t open_conns(void)
{
    size_t n = 0;

    for (const struct conn *c = conns; c != NULL; c = c->next) {
        n++;
    }
    return n;
}

static bool has_request(const void *arg)
{
    return ((const struct server *)arg)->last_request[0] != '\0';
}

/* ---- tests ---- */

static void test_503_down_then_200_up(void **state)
{
    struct server *srv = start_server(MODE_503, true);
    struct mr_snapshot *snap = load_servers(0, &srv, 1, INTERVAL_MS);
    struct mr_health_slot *slot;
    struct checks_at_least one;
    char expect[256];
    (void)state;

    apply(snap);
    slot = slot_for(snap, srv);
    assert_true(atomic_load(&slot->up)); /* new slots start up */

    /* fall = 2: one 503 keeps it up. */
    one = (struct checks_at_least){slot, 1};
    assert_true(run_until(has_checks, &one, 500));
    assert_int_equal(slot->checks, 1);
    assert_true(atomic_load(&slot->up));
    assert_string_equal(slot->last, "HTTP 503");

    assert_true(run_until(is_down, slot, 1000));
    assert_int_equal(slot->checks, 2);
    assert_string_equal(slot->last, "HTTP 503");
    snprintf(expect, sizeof(expect),
             "GET /hc HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: meridian-health\r\n"
             "Connection: close\r\n\r\n",
             srv->port);
    assert_string_equal(srv->last_request, expect);

    /* rise = 2. */
    srv->mode = MODE_200;
    one = (struct checks_at_least){slot, 3};
    assert_true(run_until(has_checks, &one, 500));
    assert_false(atomic_load(&slot->up));
    assert_true(run_until(is_up, slot, 1000));
    assert_int_equal(slot->checks, 4);
    assert_string_equal(slot->last, "HTTP 200");
    assert_true(slot->last_ok);

    /* 3xx counts as success. */
    srv->mode = MODE_301;
    one = (struct checks_at_least){slot, 6};
    assert_true(run_until(has_checks, &one, 1000));
    assert_true(atomic_load(&slot->up));
    assert_string_equal(slot->last, "HTTP 301");
}

static void test_refused_goes_down(void **state)
{
    struct server *srv = start_server(MODE_200, false);
    struct mr_snapshot *snap = load_servers(0, &srv, 1, INTERVAL_MS);
    struct mr_health_slot *slot;
    (void)state;

    apply(snap);
    slot = slot_for(snap, srv);
    assert_true(run_until(is_down, slot, 1000));
    assert_string_equal(slot->last, "connect: Connection refused");
    assert_false(slot->last_ok);
}

static void test_silent_times_out(void **state)
{
    struct server *srv = start_server(MODE_SILENT, true);
    struct mr_snapshot *snap = load_servers(0, &srv, 1, INTERVAL_MS);
    struct mr_health_slot *slot;
    int64_t start = now_us();
    (void)state;

    apply(snap);
    slot = slot_for(snap, srv);
    assert_true(run_until(is_down, slot, 1000));
    assert_int_equal(slot->checks, 2);
    assert_string_equal(slot->last, "timeout after 40 ms");
    /* Two timeouts, the second one jittered interval after the first start. */
    assert_true(now_us() - start >= (int64_t)(INTERVAL_MS * 85 / 100 + TIMEOUT_MS) * 1000);
    /* The checker closed the sockets of timed-out checks: the server sees at
     * most the one of the round in progress. */
    run_for(20);
    assert_true(open_conns() <= 1);
}

static void test_first_check_at_once_and_schedule_kept(void **state)
{
    struct server *a = start_server(MODE_200, true);
    struct server *b = start_server(MODE_200, true);
    struct server *both[2] = {a, b};
    struct mr_snapshot *s1, *s2;
    struct mr_health_slot *slot_a;
    int64_t start;
    size_t a_before;
    (void)state;

    /* A long interval, so any check within 200 ms is a "first check". */
    s1 = load_servers(0, &a, 1, 2000);
    start = now_us();
    apply(s1);
    slot_a = slot_for(s1, a);
    assert_true(run_until(has_checks, &(struct checks_at_least){slot_a, 1}, 200));
    assert_true(now_us() - start < 100 * 1000);
    assert_int_equal(a->accepts, 1);

    /* Reload: a stays (no new check), b is new (checked at once). */
    s2 = load_servers(1, both, 2, 2000);
    apply(s2);
    assert_ptr_equal(slot_for(s2, a), slot_a);
    mr_snap_release(s1);
    snaps[0] = NULL;
    a_before = a->accepts;
    assert_true(run_until(has_checks, &(struct checks_at_least){slot_for(s2, b), 1}, 200));
    run_for(100);
    assert_int_equal(a->accepts, a_before);
    assert_int_equal(b->accepts, 1);

    /* Reload without a: its loop stops; b keeps its schedule. */
    assert_int_equal(atomic_load(&slot_a->refs), 3); /* registry, s2, a's loop */
    apply(load_servers(2, &b, 1, 2000));
    assert_int_equal(atomic_load(&slot_a->refs), 1); /* s2 only */
    run_for(100);
    assert_int_equal(a->accepts, a_before);
    assert_int_equal(b->accepts, 1);
}

static void test_jitter_no_lockstep(void **state)
{
    struct server *a = start_server(MODE_200, true);
    struct server *b = start_server(MODE_200, true);
    struct server *both[2] = {a, b};
    struct mr_snapshot *snap = load_servers(0, both, 2, INTERVAL_MS);
    int64_t min_gap = INT64_MAX, max_gap = 0, min_off = INT64_MAX, max_off = INT64_MIN;
    size_t n;
    (void)state;

    apply(snap);
    run_for(1000);
    n = a->accepts < b->accepts ? a->accepts : b->accepts;
    assert_true(n >= 8);
    for (size_t i = 0; i < n; i++) {
        int64_t off = a->accept_us[i] - b->accept_us[i];

        min_off = off < min_off ? off : min_off;
        max_off = off > max_off ? off : max_off;
        if (i > 0) {
            int64_t gap = a->accept_us[i] - a->accept_us[i - 1];

            min_gap = gap < min_gap ? gap : min_gap;
            max_gap = gap > max_gap ? gap : max_gap;
        }
    }
    /* Rounds stay within the jitter band (with slack for a loaded machine:
     * the server sees a round when it accepts, not when it starts)... */
    if (min_gap < (INTERVAL_MS * (100 - MR_CHECK_JITTER_PCT) / 100 - 10) * 1000 ||
        max_gap > (INTERVAL_MS * (100 + MR_CHECK_JITTER_PCT) / 100 + 40) * 1000) {
        fail_msg("gaps %lld..%lld us", (long long)min_gap, (long long)max_gap);
    }
    /* ...but vary, and the two endpoints drift apart instead of checking
     * in lock-step. */
    if (max_gap - min_gap < 2000 || max_off - min_off < 2000) {
        fail_msg("gaps %lld..%lld us, offsets %lld..%lld us", (long long)min_gap,
                 (long long)max_gap, (long long)min_off, (long long)max_off);
    }
}

static void test_free_with_check_pending(void **state)
{
    struct server *srv = start_server(MODE_SILENT, true);
    struct mr_snapshot *snap = load_servers(0, &srv, 1, INTERVAL_MS);
    struct mr_health_slot *slot;
    (void)state;

    apply(snap);
    slot = slot_for(snap, srv);
    /* Wait until the server holds the checker's connection open. */
    assert_true(run_until(has_request, srv, 500));
    assert_int_equal(atomic_load(&slot->refs), 3); /* registry, snapshot, loop */
    mr_checker_free(checker);
    checker = NULL;
    assert_int_equal(atomic_load(&slot->refs), 2);
    run_for(20);
    assert_null(conns); /* the socket was closed at once */
}

static void test_slots_outlive_registry(void **state)
{
    struct server *srv = start_server(MODE_503, true);
    struct mr_snapshot *snap = load_servers(0, &srv, 1, INTERVAL_MS);
    struct mr_health_slot *slot;
    (void)state;

    apply(snap);
    slot = slot_for(snap, srv);
    /* Registry and snapshot go first; the checker's loop keeps the slot. */
    mr_health_free(reg);
    reg = NULL;
    mr_snap_release(snap);
    snaps[0] = NULL;
    assert_int_equal(atomic_load(&slot->refs), 1);
    assert_true(run_until(is_down, slot, 1000));
    assert_null(slot->registry);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_503_down_then_200_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_goes_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_silent_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_check_at_once_and_schedule_kept, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_jitter_no_lockstep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_check_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slots_outlive_registry, setup, teardown),
    };

    mr_log_set_level(MR_LOG_ERROR);
    return cmocka_run_group_tests(tests, mr_test_keys_setup, mr_test_keys_teardown);
}
