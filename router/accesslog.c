/* router/accesslog.c: see accesslog.h. */
#include "router/accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "common/log.h"

#define FLUSH_BYTES (64 * 1024)
#define FLUSH_MS 100

/* A batch handed to the writer. */
struct batch {
    struct evbuffer *lines;
    struct batch *next;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct batch *head, *tail;
    bool running, stop;
    pthread_t thread;
    int fd;      /* the writer thread's own while it runs */
    int next_fd; /* a reopened file for the writer to adopt, under lock */
    bool swap;   /* next_fd is waiting for the writer */
    atomic_bool enabled;
} logger = {PTHREAD_MUTEX_INITIALIZER,
            PTHREAD_COND_INITIALIZER,
            NULL,
            NULL,
            false,
            false,
            0,
            -1,
            -1,
            false,
            false};

struct mr_accesslog_buffer {
    struct evbuffer *lines;
    struct event *timer;
    bool timer_armed;
};

static void write_all(int fd, struct evbuffer *lines)
{
    while (evbuffer_get_length(lines) > 0) {
        if (evbuffer_write(lines, fd) < 0 && errno != EINTR) {
            /* A full disk loses log lines, never requests. */
            evbuffer_drain(lines, evbuffer_get_length(lines));
            return;
        }
    }
}

static void *run_writer(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&logger.lock);
    for (;;) {
        struct batch *b;
        int fd;
        while (logger.head == NULL && !logger.stop && !logger.swap)
            pthread_cond_wait(&logger.wake, &logger.lock);
        if (logger.swap) {
            /* Only this thread writes to fd, so only it may close it. */
            int old = logger.fd;
            logger.fd = logger.next_fd;
            logger.swap = false;
            pthread_mutex_unlock(&logger.lock);
            if (old >= 0)
                close(old);
            pthread_mutex_lock(&logger.lock);
            continue;
        }
        if (logger.head == NULL && logger.stop)
            break;
        b = logger.head;
        logger.head = b->next;
        if (logger.head == NULL)
            logger.tail = NULL;
        fd = logger.fd;
        pthread_mutex_unlock(&logger.lock);
        if (fd >= 0)
            write_all(fd, b->lines);
        evbuffer_free(b->lines);
        free(b);
        pthread_mutex_lock(&logger.lock);
    }
    pthread_mutex_unlock(&logger.lock);
    return NULL;
}

int mr_accesslog_open(const char *path)
{
    int fd = -1, old;

    if (path != NULL) {
        fd = strcmp(path, "-") == 0 ? dup(STDOUT_FILENO)
                                    : open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (fd < 0)
            return -1;
    }
    pthread_mutex_lock(&logger.lock);
    if (logger.running) {
        /* The writer adopts fd and closes its old one itself: closed here,
         * the number could go to a worker's accept() or connect() while the
         * writer still writes to it. A file it has not adopted yet is ours. */
        old = logger.swap ? logger.next_fd : -1;
        logger.next_fd = fd;
        logger.swap = true;
        pthread_cond_signal(&logger.wake);
    } else {
        old = logger.fd;
        logger.fd = fd;
        if (fd >= 0) {
            logger.stop = false;
            if (pthread_create(&logger.thread, NULL, run_writer, NULL) == 0)
                logger.running = true;
        }
    }
    pthread_mutex_unlock(&logger.lock);
    atomic_store(&logger.enabled, fd >= 0);
    /* Batches queued for the old file go to the new one: fine for a reload. */
    if (old >= 0)
        close(old);
    return 0;
}

void mr_accesslog_close(void)
{
    atomic_store(&logger.enabled, false);
    pthread_mutex_lock(&logger.lock);
    logger.stop = true;
    pthread_cond_signal(&logger.wake);
    pthread_mutex_unlock(&logger.lock);
    if (logger.running)
        pthread_join(logger.thread, NULL);
    logger.running = false;
    while (logger.head != NULL) {
        struct batch *b = logger.head;
        logger.head = b->next;
        evbuffer_free(b->lines);
        free(b);
    }
    logger.tail = NULL;
    if (logger.fd >= 0)
        close(logger.fd);
    logger.fd = -1;
}

bool mr_accesslog_enabled(void)
{
    return atomic_load_explicit(&logger.enabled, memory_order_relaxed);
}

/* Queues the buffer's lines for the writer and gives it a fresh evbuffer. */
static void hand_over(struct mr_accesslog_buffer *buf)
{
    struct batch *b;
    struct evbuffer *fresh;

    if (evbuffer_get_length(buf->lines) == 0)
        return;
    b = malloc(sizeof(*b));
    fresh = evbuffer_new();
    if (b == NULL || fresh == NULL || !logger.running) {
        free(b);
        if (fresh != NULL)
            evbuffer_free(fresh);
        evbuffer_drain(buf->lines, evbuffer_get_length(buf->lines));
        return;
    }
    b->lines = buf->lines;
    b->next = NULL;
    buf->lines = fresh;
    pthread_mutex_lock(&logger.lock);
    if (logger.tail != NULL)
        logger.tail->next = b;
    else
        logger.head = b;
    logger.tail = b;
    pthread_cond_signal(&logger.wake);
    pthread_mutex_unlock(&logger.lock);
}

static void on_flush_timer(evutil_socket_t fd, short events, void *arg)
{
    struct mr_accesslog_buffer *buf = arg;
    (void)fd;
    (void)events;
    buf->timer_armed = false;
    hand_over(buf);
}

struct mr_accesslog_buffer *mr_accesslog_buffer_new(struct event_base *base)
{
    struct mr_accesslog_buffer *buf = calloc(1, sizeof(*buf));

    if (buf == NULL)
        return NULL;
    buf->lines = evbuffer_new();
    buf->timer = evtimer_new(base, on_flush_timer, buf);
    if (buf->lines == NULL || buf->timer == NULL) {
        mr_accesslog_buffer_free(buf);
        return NULL;
    }
    return buf;
}

void mr_accesslog_buffer_free(struct mr_accesslog_buffer *buf)
{
    if (buf == NULL)
        return;
    if (buf->lines != NULL)
        hand_over(buf);
    if (buf->timer != NULL)
        event_free(buf->timer);
    if (buf->lines != NULL)
        evbuffer_free(buf->lines);
    free(buf);
}

struct evbuffer *mr_accesslog_buffer_lines(struct mr_accesslog_buffer *buf)
{
    return buf->lines;
}

void mr_accesslog_buffer_commit(struct mr_accesslog_buffer *buf)
{
    if (evbuffer_get_length(buf->lines) >= FLUSH_BYTES) {
        hand_over(buf);
    } else if (!buf->timer_armed) {
        struct timeval tv = {0, FLUSH_MS * 1000};
        buf->timer_armed = true;
        evtimer_add(buf->timer, &tv);
    }
}

static void json_string(struct evbuffer *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = 0;

    evbuffer_add(out, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc[6] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15]};
        if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
            continue;
        evbuffer_add(out, s + start, i - start);
        evbuffer_add(out, esc, sizeof(esc));
        start = i + 1;
    }
    evbuffer_add(out, s + start, len - start);
    evbuffer_add(out, "\"", 1);
}

void mr_accesslog_format(struct evbuffer *out, const struct mr_accesslog_entry *e)
{
    struct tm tm;
    char stamp[32];

    gmtime_r(&e->time.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    evbuffer_add_printf(out, "{\"time\":\"%s.%03dZ\",\"client\":\"%s\",\"method\":", stamp,
                        (int)(e->time.tv_usec / 1000), e->client);
    json_string(out, e->method != NULL ? e->method : "", e->method != NULL ? e->method_len : 0);
    evbuffer_add(out, ",\"path\":", 8);
    json_string(out, e->path != NULL ? e->path : "", e->path != NULL ? e->path_len : 0);
    evbuffer_add_printf(out,
                        ",\"status\":%d,\"bytes_in\":%" PRIu64 ",\"bytes_out\":%" PRIu64
                        ",\"duration_ms\":%.3f,\"decision\":\"%s\"",
                        e->status, e->bytes_in, e->bytes_out, (double)e->took_ns / 1e6,
                        e->decision);
    /* Names are JSON-safe: the configuration allows no quotes in them. */
    if (e->cluster != NULL)
        evbuffer_add_printf(out, ",\"region\":\"%s\",\"cluster\":\"%s\"", e->region, e->cluster);
    else
        evbuffer_add_printf(out, ",\"region\":null,\"cluster\":null");
    if (e->endpoint != NULL)
        evbuffer_add_printf(out, ",\"endpoint\":\"%s\"", e->endpoint);
    else
        evbuffer_add_printf(out, ",\"endpoint\":null");
    if (e->country != NULL && e->country[0] != '\0')
        evbuffer_add_printf(out, ",\"country\":\"%s\"", e->country);
    else
        evbuffer_add_printf(out, ",\"country\":null");
    evbuffer_add_printf(out, ",\"generation\":%" PRIu64, e->generation);
    if (e->error != NULL)
        evbuffer_add_printf(out, ",\"error\":\"%s\"", e->error);
    evbuffer_add(out, "}\n", 2);
}
