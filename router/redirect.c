/* router/redirect.c: see redirect.h. */
#include "router/redirect.h"

#include <string.h>
#include <strings.h>

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
