/* conf/loader.c: see loader.h. */
#include "conf/loader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- memory: a failure marks the load failed instead of aborting ---- */

void *mr_loader_alloc(struct mr_loader *ld, size_t n, size_t size)
{
    void *p;

    if (n == 0)
        return NULL;
    p = calloc(n, size);
    if (p == NULL)
        ld->oom = true;
    return p;
}

char *mr_loader_strdup(struct mr_loader *ld, const char *s)
{
    char *p = strdup(s);

    if (p == NULL)
        ld->oom = true;
    return p;
}

/* Resolves a path from the file against the configuration's directory. */
char *mr_loader_path(struct mr_loader *ld, const char *s)
{
    char *p = NULL;

    if (s[0] == '/')
        return mr_loader_strdup(ld, s);
    if (asprintf(&p, "%s/%s", ld->base_dir, s) < 0) {
        ld->oom = true;
        return NULL;
    }
    return p;
}

/* Parses "HOST:PORT" text found at path. */
bool mr_loader_hostport(struct mr_loader *ld, const char *text, const char *path,
                        struct mr_sockaddr *out)
{
    if (mr_netaddr_parse(text, out) == 0)
        return true;
    mr_errors_add(ld->errs, "%s: cannot parse \"%s\" as HOST:PORT", path, text);
    return false;
}

char **mr_loader_strv(struct mr_loader *ld, const char *const *items)
{
    size_t n = 0;
    char **v;

    while (items[n] != NULL)
        n++;
    v = mr_loader_alloc(ld, n + 1, sizeof(*v));
    if (v == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        v[i] = mr_loader_strdup(ld, items[i]);
    return v;
}

/* A non-empty array of non-empty strings, as a NULL-terminated vector. */
char **mr_loader_read_strv(struct mr_loader *ld, json_t *v, const char *path)
{
    struct mr_jpath_iter it;
    size_t n = mr_jpath_iter_array(&ld->jp, v, path, true, &it);
    char **out;
    bool ok = true;

    if (n == 0)
        return NULL;
    out = mr_loader_alloc(ld, n + 1, sizeof(*out));
    if (out == NULL)
        return NULL;
    while (mr_jpath_next(&it)) {
        const char *s;

        if (mr_jpath_read_string(&ld->jp, it.item, it.path, true, &s))
            out[it.i] = mr_loader_strdup(ld, s);
        else
            ok = false;
    }
    if (!ok) {
        /* Entries are not contiguous after a bad one: free them here. */
        for (size_t i = 0; i < n; i++)
            free(out[i]);
        free(out);
        return NULL;
    }
    return out;
}
