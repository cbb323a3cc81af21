/*
 * conf/overrides.h: runtime drains and weights, and the state file that
 * keeps them across restarts.
 *
 * An override set maps cluster names to a drain (mode, absolute deadline)
 * and/or a weight that replace what the configuration file says. It is
 * owned by the control thread, merged into every snapshot it builds
 * (mr_overrides_apply) and saved atomically to state_file after each
 * change, so a restart never silently undrains a cluster under maintenance.
 */
#ifndef MR_CONF_OVERRIDES_H
#define MR_CONF_OVERRIDES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "conf/snapshot.h"

struct mr_override {
    char *cluster; /* owned */
    bool has_drain;
    int drain;                /* MR_DRAIN_SOFT or MR_DRAIN_HARD */
    int64_t drain_deadline_s; /* unix seconds, 0 = none */
    int64_t drained_at_s;     /* unix seconds the drain began */
    bool has_weight;
    double weight; /* >= 0 */
};

struct mr_overrides {
    struct mr_override *items; /* owned */
    size_t n;
};

/* Frees every entry and empties the set; accepts NULL. */
void mr_overrides_clear(struct mr_overrides *ov);

/* Deep copy of src into *dst (emptied first); 0 or -1. */
int mr_overrides_copy(struct mr_overrides *dst, const struct mr_overrides *src);

/* The entry of cluster, or NULL. */
const struct mr_override *mr_overrides_get(const struct mr_overrides *ov, const char *cluster);

/* Set or clear one cluster's drain / weight; an entry left with neither is
 * removed. 0, or -1 on allocation failure (nothing changed). */
int mr_overrides_set_drain(struct mr_overrides *ov, const char *cluster, int mode,
                           int64_t deadline_s, int64_t now_s);
int mr_overrides_clear_drain(struct mr_overrides *ov, const char *cluster);
int mr_overrides_set_weight(struct mr_overrides *ov, const char *cluster, double weight);
int mr_overrides_clear_weight(struct mr_overrides *ov, const char *cluster);

/*
 * Merges ov into snap before it is published: each named cluster gets the
 * override's drain and/or weight (cluster->configured_weight keeps the
 * file's). Entries naming clusters the snapshot does not have are reported
 * as warnings ("state_file: cluster \"x\" does not exist in the
 * configuration; its override is kept but not applied") and skipped.
 */
void mr_overrides_apply(const struct mr_overrides *ov, struct mr_snapshot *snap,
                        struct mr_errors *warnings);

/*
 * Reads path into *ov (emptied first). A missing file is an empty set (0).
 * A file that is not valid JSON, or entries that are malformed, are
 * reported in errs with their JSON path ("state_file: clusters.eu-west-a.weight:
 * expected a number >= 0"); every valid entry is still loaded. Returns 0
 * when the whole file was read cleanly, -1 when anything was reported.
 */
int mr_overrides_load(struct mr_overrides *ov, const char *path, struct mr_errors *errs);

/* Writes ov to path atomically (temporary file in the same directory,
 * fsync, rename, fsync of the directory). 0; -1 with err filled when path
 * still holds the old file; 1 with err filled when the new file is in place
 * but the directory sync failed (it may not survive a crash). */
int mr_overrides_save(const struct mr_overrides *ov, const char *path, char *err, size_t err_len);

#endif
