/*
 * control/control.h: the control thread.
 *
 * Owns everything that changes the running configuration: the file text
 * the snapshot was built from, the runtime overrides (drains, weights) and
 * their state file, the audit log, health checking, the admin listener and
 * the workers' lifecycle. Every change is the same operation: build a new
 * snapshot beside the running one (file text + overrides + GeoIP + health
 * slots), check it, save the state, publish it with an atomic swap. A
 * change that cannot apply changes nothing. Control thread only.
 *
 * control.c keeps the thread (start, signals, tick, stop), the snapshot
 * build and publish, reload, and applying changes; the rest is in modules
 * it calls, and none of them calls back or includes this header:
 *
 *   main -> control -> admin     (served through struct mr_admin_ops)
 *                   -> metrics   -> router/stats (sums over workers)
 *                   -> status    -> whatif, router/stats
 *                   -> history
 *                   -> whatif    -> geo/policy, router/pick, router/cookie
 */
#ifndef MR_CONTROL_CONTROL_H
#define MR_CONTROL_CONTROL_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "common/err.h"
#include "conf/overrides.h"
#include "conf/snapshot.h"
#include "control/history.h"

struct event_base;
struct mr_worker;
struct mr_health;
struct mr_checker;
struct mr_admin;
struct mr_stats;

#define MR_CONTROL_MIX_SAMPLES 31 /* every 10 s: the last 5 minutes */

struct mr_control {
    char *conf_path; /* as given on the command line */
    char *conf_text; /* the JSON the running snapshot came from */
    struct event_base *base;
    struct mr_worker **workers;
    struct mr_stats **stats; /* workers[i]->stats, for the sums */
    int n_workers;
    struct mr_health *health;
    struct mr_checker *checker;
    struct mr_overrides overrides;
    struct mr_admin *admin;
    bool stopping;
    int64_t started_s;
    uint64_t reload_failures;
    struct event *tick; /* drain deadlines, traffic mix, shutdown */
    struct mr_history history;
    /* New sessions per cluster and country, sampled for dry runs. */
    struct mix_sample {
        int64_t time_s;
        json_t *counts; /* {"cluster": {"GB": n, ...}} */
    } mix[MR_CONTROL_MIX_SAMPLES];
    size_t mix_head, mix_len;
};

/* Loads path, starts workers, health checks and the admin listener;
 * 0, or -1 with errors logged (nothing left running). */
int mr_control_start(struct mr_control *ctl, const char *path);

/* Runs until SIGTERM/SIGINT and a graceful stop; frees everything. */
void mr_control_run(struct mr_control *ctl);

/* meridian -t: loads path as a start would; prints warnings and errors.
 * 0 when it would start. */
int mr_control_check(const char *path);

/* Re-reads the file. 0, or -1 with the errors in errs (nothing changed). */
int mr_control_reload(struct mr_control *ctl, struct mr_errors *errs);

/*
 * Changes one cluster. kind: "drain" (mode MR_DRAIN_SOFT/HARD, deadline_s
 * relative, 0 none), "undrain", "weight" (weight). dry_run: only answer
 * what would happen. force: skip the stranding guardrail. Fills *answer
 * (a new JSON object) in every case. Returns the HTTP status: 200, 404
 * (unknown cluster), 409 (guardrail), 500 (state file not writable).
 */
int mr_control_change(struct mr_control *ctl, const char *kind, const char *cluster, int mode,
                      int64_t deadline_s, double weight, bool dry_run, bool force, json_t **answer);

/* Reverts the newest change not yet undone; status and *answer as above
 * (409 when there is nothing to undo). */
int mr_control_undo(struct mr_control *ctl, json_t **answer);

/* JSON views for the admin API (new references). */
json_t *mr_control_status(struct mr_control *ctl);
json_t *mr_control_explain(struct mr_control *ctl, const char *ip, const char *cookie, int *status);

#endif
