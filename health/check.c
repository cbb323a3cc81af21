/* health/check.c: see check.h. */
#include "health/check.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/proxyproto.h"

#define CHECKER_MAGIC 0xc4ec4e50U
#define LOOP_MAGIC 0xc4ec100bU
#define STATUS_LINE_MAX 256 /* a longer first line is not a status line */

struct check_loop {
    unsigned magic;
    struct mr_checker *ck;
    struct mr_health_slot *slot; /* a reference held */
    struct mr_sockaddr addr;
    enum mr_send_proxy send_proxy; /* the cluster's: checks open with a PROXY header too */
    struct event *timer;           /* next round; while a check runs, its timeout */
    bool fresh;                    /* created by the update in progress */
    bool kept;                     /* in the update in progress's new set */

    /* The running check; fd == -1 between checks. */
    int fd;
    struct event *io; /* EV_WRITE while connecting/sending, then EV_READ */
    bool connected;
    int64_t started_us; /* monotonic */
    int timeout_ms;     /* this check's, for the message */
    char *req;
    size_t req_len, sent;
    char resp[STATUS_LINE_MAX];
    size_t got;
};

struct mr_checker {
    unsigned magic;
    struct event_base *base;
    struct mr_health *h; /* the slots' registry (kept for later: events) */
    char *path;          /* from the latest update */
    int interval_ms, timeout_ms;
    struct check_loop **loops;
    size_t n_loops;
    uint64_t rng; /* xorshift64 state: jitter only */
};

static int64_t now_mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static uint64_t next_random(struct mr_checker *ck)
{
    uint64_t x = ck->rng;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    ck->rng = x;
    return x;
}

/* interval_ms scaled by a random factor in [1 - J, 1 + J], in microseconds. */
static int64_t jittered_interval_us(struct mr_checker *ck)
{
    int64_t base_us = (int64_t)ck->interval_ms * 1000;
    int64_t span_us = base_us * MR_CHECK_JITTER_PCT / 100;

    if (span_us == 0) {
        return base_us;
    }
    return base_us - span_us + (int64_t)(next_random(ck) % (uint64_t)(2 * span_us + 1));
}

static void arm_timer(struct check_loop *loop, int64_t delay_us)
{
    struct timeval tv;

    if (delay_us < 0) {
        delay_us = 0;
    }
    tv.tv_sec = (time_t)(delay_us / 1000000);
    tv.tv_usec = (suseconds_t)(delay_us % 1000000);
    event_add(loop->timer, &tv);
}

/* Closes the running check's socket and frees its events and buffers. */
static void stop_check(struct check_loop *loop)
{
    if (loop->io != NULL) {
        event_free(loop->io);
        loop->io = NULL;
    }
    if (loop->fd >= 0) {
        close(loop->fd);
        loop->fd = -1;
    }
    free(loop->req);
    loop->req = NULL;
}

/* Ends the running check with a result and schedules the next round one
 * jittered interval after this one started. */
static void finish_check(struct check_loop *loop, bool ok, const char *why)
{
    int64_t elapsed_us = now_mono_us() - loop->started_us;

    stop_check(loop);
    event_del(loop->timer);
    mr_health_report(loop->slot, ok, why);
    arm_timer(loop, jittered_interval_us(loop->ck) - elapsed_us);
}

static void fail_errno(struct check_loop *loop, const char *what, int err)
{
    char why[MR_HEALTH_WHY_LEN];

    snprintf(why, sizeof(why), "%s: %s", what, strerror(err));
    finish_check(loop, false, why);
}

static void on_io(evutil_socket_t fd, short what, void *arg);

/* Switches the check's I/O event to the given direction. */
static int watch(struct check_loop *loop, short what)
{
    if (loop->io != NULL) {
        event_free(loop->io);
    }
    loop->io = event_new(loop->ck->base, loop->fd, what | EV_PERSIST, on_io, loop);
    if (loop->io == NULL || event_add(loop->io, NULL) != 0) {
        return -1;
    }
    return 0;
}

/* Parses "HTTP/1.x NNN ..." (line ends at '\r' or '\n'); the status or -1. */
static int parse_status(const char *line, size_t len)
{
    int status;

    if (len < 12 || memcmp(line, "HTTP/", 5) != 0 || line[5] < '0' || line[5] > '9' ||
        line[6] != '.' || line[7] < '0' || line[7] > '9' || line[8] != ' ') {
        return -1;
    }
    for (size_t i = 9; i < 12; i++) {
        if (line[i] < '0' || line[i] > '9') {
            return -1;
        }
    }
    if (len > 12 && line[12] != ' ' && line[12] != '\r' && line[12] != '\n') {
        return -1;
    }
    status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    return status >= 100 ? status : -1;
}

/* Judges the response once its first line is complete (or the peer closed). */
static void judge_response(struct check_loop *loop, bool closed)
{
    const char *nl = memchr(loop->resp, '\n', loop->got);
    char why[MR_HEALTH_WHY_LEN];
    int status;

    if (nl == NULL) {
        if (closed) {
            finish_check(loop, false,
                         loop->got == 0 ? "closed without a response"
                                        : "closed before the status line");
        } else if (loop->got == sizeof(loop->resp)) {
            finish_check(loop, false, "bad status line");
        }
        return;
    }
    status = parse_status(loop->resp, (size_t)(nl - loop->resp) + 1);
    if (status < 0) {
        finish_check(loop, false, "bad status line");
        return;
    }
    snprintf(why, sizeof(why), "HTTP %d", status);
    finish_check(loop, status >= 200 && status < 400, why);
}

static void send_request(struct check_loop *loop)
{
    while (loop->sent < loop->req_len) {
        ssize_t n = send(loop->fd, loop->req + loop->sent, loop->req_len - loop->sent,
                         MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return;
            }
            if (errno == EINTR) {
                continue;
            }
            fail_errno(loop, "send", errno);
            return;
        }
        loop->sent += (size_t)n;
    }
    if (watch(loop, EV_READ) != 0) {
        finish_check(loop, false, "out of memory");
    }
}

static void read_response(struct check_loop *loop)
{
    for (;;) {
        ssize_t n = recv(loop->fd, loop->resp + loop->got, sizeof(loop->resp) - loop->got, 0);

        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return;
            }
            if (errno == EINTR) {
                continue;
            }
            fail_errno(loop, "recv", errno);
            return;
        }
        loop->got += (size_t)n;
        if (n == 0 || memchr(loop->resp, '\n', loop->got) != NULL ||
            loop->got == sizeof(loop->resp)) {
            judge_response(loop, n == 0);
            return;
        }
    }
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
    struct check_loop *loop = arg;

    assert(loop->magic == LOOP_MAGIC);
    if (!loop->connected) {
        int err = 0;
        socklen_t len = sizeof(err);

        if (getsockopt(loop->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
            err = errno;
        }
        if (err != 0) {
            fail_errno(loop, "connect", err);
            return;
        }
        loop->connected = true;
    }
    if (loop->sent < loop->req_len) {
        send_request(loop);
    } else {
        read_response(loop);
    }
}

static int build_request(struct check_loop *loop)
{
    const char *path = loop->ck->path != NULL ? loop->ck->path : "/";
    /* An origin behind send_proxy expects a PROXY header on every
     * connection; a check speaks for no client: v2 LOCAL, v1 UNKNOWN. */
    char preface[MR_PROXYPROTO_V1_MAX];
    size_t preface_len = loop->send_proxy == MR_SEND_PROXY_V2
                             ? mr_proxyproto_build_v2((unsigned char *)preface, sizeof(preface),
                                                      NULL, NULL)
                         : loop->send_proxy == MR_SEND_PROXY_V1
                             ? mr_proxyproto_build_v1(preface, sizeof(preface), NULL, NULL)
                             : 0;
    int n = snprintf(NULL, 0,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: meridian-health\r\n"
                     "Connection: close\r\n\r\n",
                     path, loop->slot->address);

    loop->req = malloc(preface_len + (size_t)n + 1);
    if (loop->req == NULL) {
        return -1;
    }
    memcpy(loop->req, preface, preface_len);
    snprintf(loop->req + preface_len, (size_t)n + 1,
             "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: meridian-health\r\n"
             "Connection: close\r\n\r\n",
             path, loop->slot->address);
    loop->req_len = preface_len + (size_t)n;
    loop->sent = 0;
    return 0;
}

static void start_check(struct check_loop *loop)
{
    struct mr_checker *ck = loop->ck;

    loop->started_us = now_mono_us();
    loop->timeout_ms = ck->timeout_ms;
    loop->connected = false;
    loop->got = 0;
    if (build_request(loop) != 0) {
        finish_check(loop, false, "out of memory");
        return;
    }
    loop->fd = socket(loop->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (loop->fd < 0) {
        fail_errno(loop, "socket", errno);
        return;
    }
    if (connect(loop->fd, (const struct sockaddr *)&loop->addr.ss, loop->addr.len) != 0 &&
        errno != EINPROGRESS) {
        fail_errno(loop, "connect", errno);
        return;
    }
    /* Writable means connected (or failed: SO_ERROR tells, in on_io). */
    if (watch(loop, EV_WRITE) != 0) {
        finish_check(loop, false, "out of memory");
        return;
    }
    arm_timer(loop, (int64_t)loop->timeout_ms * 1000);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct check_loop *loop = arg;
    char why[MR_HEALTH_WHY_LEN];

    assert(loop->magic == LOOP_MAGIC);
    if (loop->fd < 0) {
        start_check(loop);
        return;
    }
    snprintf(why, sizeof(why), "timeout after %d ms", loop->timeout_ms);
    finish_check(loop, false, why);
}

static struct check_loop *new_loop(struct mr_checker *ck, const struct mr_endpoint *e)
{
    struct check_loop *loop = calloc(1, sizeof(*loop));

    if (loop == NULL) {
        return NULL;
    }
    loop->timer = event_new(ck->base, -1, 0, on_timer, loop);
    if (loop->timer == NULL) {
        free(loop);
        return NULL;
    }
    loop->magic = LOOP_MAGIC;
    loop->ck = ck;
    loop->slot = mr_health_slot_acquire(e->health);
    loop->addr = e->addr;
    loop->fd = -1;
    return loop;
}

static void free_loop(struct check_loop *loop)
{
    stop_check(loop);
    event_free(loop->timer);
    mr_health_slot_release(loop->slot);
    loop->magic = 0;
    free(loop);
}

struct mr_checker *mr_checker_new(struct event_base *base, struct mr_health *h)
{
    struct mr_checker *ck = calloc(1, sizeof(*ck));

    if (ck == NULL) {
        return NULL;
    }
    ck->magic = CHECKER_MAGIC;
    ck->base = base;
    ck->h = h;
    ck->interval_ms = 1000;
    ck->timeout_ms = 1000;
    /* Jitter only needs loops (and edges) to differ, not secrecy. */
    ck->rng = (uint64_t)now_mono_us() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)ck;
    if (ck->rng == 0) {
        ck->rng = 0x9e3779b97f4a7c15ULL;
    }
    return ck;
}

static int compare_by_slot(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)(*(struct check_loop *const *)a)->slot;
    uintptr_t y = (uintptr_t)(*(struct check_loop *const *)b)->slot;

    return x < y ? -1 : x > y;
}

/* The old loop of slot, by binary search in the sorted array; NULL if none. */
static struct check_loop *find_loop(struct check_loop **loops, size_t n,
                                    const struct mr_health_slot *slot)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (loops[mid]->slot == slot) {
            return loops[mid];
        }
        if ((uintptr_t)loops[mid]->slot < (uintptr_t)slot) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

int mr_checker_update(struct mr_checker *ck, const struct mr_snapshot *snap)
{
    struct check_loop **next;
    size_t n = 0;
    char *path;

    assert(ck->magic == CHECKER_MAGIC);
    path = strdup(snap->health.path != NULL ? snap->health.path : "/");
    next = calloc(snap->n_endpoints + 1, sizeof(*next));
    if (path == NULL || next == NULL) {
        free(path);
        free(next);
        return -1;
    }
    if (ck->n_loops > 1) {
        qsort(ck->loops, ck->n_loops, sizeof(*ck->loops), compare_by_slot);
    }
    for (size_t i = 0; i < snap->n_endpoints; i++) {
        const struct mr_endpoint *e = snap->endpoints[i];
        struct check_loop *loop;

        if (e->health == NULL) {
            continue;
        }
        loop = find_loop(ck->loops, ck->n_loops, e->health);
        if (loop != NULL && loop->kept) {
            continue; /* the same slot twice: one loop is enough */
        }
        if (loop == NULL) {
            loop = new_loop(ck, e);
            if (loop == NULL) {
                for (size_t j = 0; j < n; j++) {
                    if (next[j]->fresh) {
                        free_loop(next[j]);
                    } else {
                        next[j]->kept = false;
                    }
                }
                free(next);
                free(path);
                return -1;
            }
            loop->fresh = true;
        }
        loop->kept = true;
        loop->send_proxy = e->cluster->send_proxy;
        next[n++] = loop;
    }

    /* Commit: nothing below fails. */
    for (size_t i = 0; i < ck->n_loops; i++) {
        if (!ck->loops[i]->kept) {
            free_loop(ck->loops[i]);
        }
    }
    free(ck->loops);
    ck->loops = next;
    ck->n_loops = n;
    free(ck->path);
    ck->path = path;
    ck->interval_ms = snap->health.interval_ms > 0 ? snap->health.interval_ms : 1000;
    ck->timeout_ms = snap->health.timeout_ms > 0 ? snap->health.timeout_ms : 1000;
    for (size_t i = 0; i < n; i++) {
        struct check_loop *loop = next[i];

        if (loop->fresh) {
            arm_timer(loop, 0);
        }
        loop->fresh = false;
        loop->kept = false;
    }
    return 0;
}

void mr_checker_free(struct mr_checker *ck)
{
    if (ck == NULL) {
        return;
    }
    assert(ck->magic == CHECKER_MAGIC);
    for (size_t i = 0; i < ck->n_loops; i++) {
        free_loop(ck->loops[i]);
    }
    free(ck->loops);
    free(ck->path);
    ck->magic = 0;
    free(ck);
}
