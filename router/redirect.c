/* router/redirect.c: see redirect.h. */
#include "router/redirect.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

const char *mr_redirect_host(const struct mr_http1_head *head, size_t *len)
{
    size_t n = head->host_len;

    if (n > 0 && head->host[0] == '[') {
        const char *end = memchr(head->host, ']', n);
        n = end != NULL ? (size_t)(end - head->host) + 1 : n;
    } else {
        const char *colon = memchr(head->host, ':', n);
        n = colon != NULL ? (size_t)(colon - head->host) : n;
    }
    *len = n;
    return head->host;
}

enum mr_mode mr_redirect_mode(const struct mr_snapshot *snap, const struct mr_listener *l,
                              const struct mr_http1_head *head)
{
    size_t len;
    const char *host;

    if (snap->n_hosts == 0)
        return l->mode;
    host = mr_redirect_host(head, &len);
    for (size_t i = 0; i < snap->n_hosts; i++)
        if (strlen(snap->hosts[i].host) == len && strncasecmp(snap->hosts[i].host, host, len) == 0)
            return snap->hosts[i].mode;
    return l->mode;
}

const char *mr_redirect_target_path(const struct mr_http1_head *head, size_t *len,
                                    const char **slash)
{
    *slash = head->path[0] == '?' ? "/" : "";
    if (head->path_len == 1 && head->path[0] == '*') {
        *len = 1;
        return "/";
    }
    *len = head->path_len;
    return head->path;
}

static void write_redirect(struct evbuffer *out, int status, const char *base, size_t base_len,
                           const char *port, const struct mr_http1_head *head, const char *cookie,
                           size_t cookie_len, bool close)
{
    size_t path_len;
    const char *slash;
    const char *path = mr_redirect_target_path(head, &path_len, &slash);

    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\nLocation: %.*s%s%s%.*s\r\n"
                        "Content-Length: 0\r\n",
                        status, status == 308 ? "Permanent Redirect" : "Temporary Redirect",
                        (int)base_len, base, port, slash, (int)path_len, path);
    if (cookie != NULL)
        evbuffer_add(out, cookie, cookie_len);
    if (close)
        evbuffer_add(out, "Connection: close\r\n", 19);
    evbuffer_add(out, "\r\n", 2);
}

void mr_redirect_to_url(struct evbuffer *out, const char *url, const struct mr_http1_head *head,
                        const char *cookie, size_t cookie_len, bool close)
{
    write_redirect(out, 307, url, strlen(url), "", head, cookie, cookie_len, close);
}

int mr_redirect_to_https(struct evbuffer *out, int https_port, const struct mr_http1_head *head,
                         const char *cookie, size_t cookie_len, bool close)
{
    char base[300], port[8] = "";
    size_t host_len;
    const char *host = mr_redirect_host(head, &host_len);
    int n;

    if (host_len == 0 || host_len > 255)
        return -1;
    n = snprintf(base, sizeof(base), "https://%.*s", (int)host_len, host);
    if (https_port != 443)
        snprintf(port, sizeof(port), ":%d", https_port);
    write_redirect(out, 308, base, (size_t)n, port, head, cookie, cookie_len, close);
    return 0;
}
