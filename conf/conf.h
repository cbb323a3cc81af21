/*
 * conf/conf.h: load and validate a JSON configuration into a snapshot.
 *
 * Every problem is collected with the JSON path of the value at fault
 * ("regions[0].clusters[1].weight: expected a number >= 0"); unknown keys
 * are warnings. Relative paths resolve against the file's directory. Does
 * not publish: the caller decides (reload keeps the running snapshot when
 * this fails). Control thread (or meridian -t) only.
 */
#ifndef MR_CONF_CONF_H
#define MR_CONF_CONF_H

#include "common/err.h"
#include "conf/snapshot.h"

/* Loads path; returns a new unpublished snapshot (refs = 1), or NULL when
 * errs->n_errors > 0. Warnings are added to errs either way. */
struct mr_snapshot *mr_conf_load(const char *path, struct mr_errors *errs);

/* The same from JSON text; base_dir resolves relative paths. For tests. */
struct mr_snapshot *mr_conf_load_string(const char *json, const char *base_dir,
                                        struct mr_errors *errs);

#endif
