/* router/clientaddr.c: see clientaddr.h. */
#include "router/clientaddr.h"

#include <string.h>

/* Walks one X-Forwarded-For value right to left. Returns true when an
 * untrusted address was found (in *client); false when every entry was
 * trusted (*client then holds the leftmost good one, if any). *stop is set
 * when an entry does not parse: nothing left of it can be believed. */
static bool walk_value(const struct mr_cidr_set *trusted, const char *v, size_t len,
                       struct mr_sockaddr *client, bool *stop)
{
    size_t end = len;

    while (end > 0) {
        size_t start = end, a, b;
        struct mr_sockaddr addr;

        while (start > 0 && v[start - 1] != ',')
            start--;
        a = start;
        b = end;
        while (a < b && (v[a] == ' ' || v[a] == '\t'))
            a++;
        while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
            b--;
        end = start > 0 ? start - 1 : 0;
        if (a == b && start == 0)
            break;
        if (a == b)
            continue;
        if (mr_netaddr_parse_host(v + a, b - a, &addr) != 0) {
            *stop = true;
            return false;
        }
        *client = addr;
        if (!mr_cidr_set_contains(trusted, (const struct sockaddr *)&addr.ss))
            return true;
    }
    return false;
}

bool mr_clientaddr_resolve(const struct mr_cidr_set *trusted, const struct mr_sockaddr *peer,
                           const struct mr_http1_head *head, struct mr_sockaddr *client)
{
    *client = *peer;
    if (trusted->n == 0 || !mr_cidr_set_contains(trusted, (const struct sockaddr *)&peer->ss))
        return false;
    /* Several X-Forwarded-For lines read as one list, in order. */
    for (size_t i = head->n_headers; i-- > 0;) {
        const struct mr_http1_header *h = &head->headers[i];
        bool stop = false;
        if (!mr_http1_name_is(h, "x-forwarded-for"))
            continue;
        if (walk_value(trusted, h->value, h->value_len, client, &stop) || stop)
            break;
    }
    return true;
}
