/*
 * router/accesslog.h: the access log, one JSON line per request.
 *
 * Workers append lines to their own buffer (no lock per request) and hand
 * a whole buffer to the writer thread every 100 ms or at 64 KiB, under one
 * mutex per batch; only the writer thread touches the file, so a slow disk
 * never blocks a worker. Lines of one worker stay in order; lines of
 * different workers interleave by batch. "-" writes to standard output.
 */
#ifndef MR_ROUTER_ACCESSLOG_H
#define MR_ROUTER_ACCESSLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

struct evbuffer;
struct event_base;
struct mr_accesslog_buffer;

/* Opens path ("-" = stdout) for appending and starts the writer thread;
 * a later call with another path reopens (reload). NULL path = no log.
 * Control thread; 0 or -1 (errno set, the previous log stays). */
int mr_accesslog_open(const char *path);

/* Writes out everything handed over, stops the writer, closes the file. */
void mr_accesslog_close(void);

/* True while a log is open (workers skip formatting otherwise). */
bool mr_accesslog_enabled(void);

/* A worker's buffer; its flush timer runs on base. */
struct mr_accesslog_buffer *mr_accesslog_buffer_new(struct event_base *base);

/* Hands over what is buffered and frees; accepts NULL. */
void mr_accesslog_buffer_free(struct mr_accesslog_buffer *buf);

/* The evbuffer to append one complete line to (ending in '\n'); call
 * mr_accesslog_buffer_commit() after. */
struct evbuffer *mr_accesslog_buffer_lines(struct mr_accesslog_buffer *buf);
void mr_accesslog_buffer_commit(struct mr_accesslog_buffer *buf);

/* What one line says about one exchange. Strings are the caller's; method
 * and path are any bytes (escaped in the line), the other strings are
 * JSON-safe (addresses, names the configuration allows, static words). */
struct mr_accesslog_entry {
    struct timeval time; /* wall clock when the line is written */
    const char *client;  /* the client's address, "" when unknown */
    const char *method;  /* method_len bytes; NULL: "" */
    size_t method_len;
    const char *path; /* path_len bytes of the request target; NULL: "" */
    size_t path_len;
    int status; /* 0: no response began */
    uint64_t bytes_in, bytes_out;
    int64_t took_ns;
    const char *decision;         /* mr_pick_reason_name() */
    const char *region, *cluster; /* NULL (both): no cluster was decided */
    const char *endpoint;         /* NULL: none was picked */
    const char *country;          /* NULL or "": unknown */
    uint64_t generation;          /* of the snapshot the exchange used */
    const char *error;            /* why meridian answered with an error or cut the
                                     response (a cause's name); NULL: no field */
};

/* Appends the entry's JSON line, '\n' included, to out (pure: no clock, no
 * state). */
void mr_accesslog_format(struct evbuffer *out, const struct mr_accesslog_entry *e);

#endif
