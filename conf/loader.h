/*
 * conf/loader.h: the state of one configuration load, shared by conf.c and
 * the section readers it calls (listeners, regions, routing).
 *
 * Sections fill ld->snap and report through ld->jp (or ld->errs, the same
 * list) with the JSON path of every problem, then carry on. An allocation
 * failure sets ld->oom instead of aborting: the load then fails once, at
 * its end, with "out of memory". Internal to conf/; control thread (or
 * meridian -t) only.
 */
#ifndef MR_CONF_LOADER_H
#define MR_CONF_LOADER_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "common/err.h"
#include "common/netaddr.h"
#include "conf/jpath.h"
#include "conf/snapshot.h"

struct mr_loader {
    struct mr_errors *errs;
    struct mr_jpath jp;       /* reports to errs */
    const char *base_dir;     /* relative paths in the file resolve here */
    struct mr_snapshot *snap; /* being filled; freed by the caller on any error */
    bool proximity;           /* routing.proximity, peeked: regions need lat/lon */
    bool oom;
};

/* calloc(n, size), NULL when n is 0; sets ld->oom when it fails. */
void *mr_loader_alloc(struct mr_loader *ld, size_t n, size_t size);

/* strdup(s); sets ld->oom when it fails. */
char *mr_loader_strdup(struct mr_loader *ld, const char *s);

/* s, a path from the file, resolved against ld->base_dir (malloc'd). */
char *mr_loader_path(struct mr_loader *ld, const char *s);

/* Parses "HOST:PORT" text found at path; false with an error. */
bool mr_loader_hostport(struct mr_loader *ld, const char *text, const char *path,
                        struct mr_sockaddr *out);

/* A malloc'd NULL-terminated copy of items (NULL-terminated). */
char **mr_loader_strv(struct mr_loader *ld, const char *const *items);

/* The non-empty array of non-empty strings v at path, as a malloc'd
 * NULL-terminated vector; NULL with every bad element reported. */
char **mr_loader_read_strv(struct mr_loader *ld, json_t *v, const char *path);

#endif
