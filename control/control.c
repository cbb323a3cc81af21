/* control/control.c: see control.h. */
#include "control/control.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#include "common/clock.h"
#include "common/file.h"
#include "common/log.h"
#include "conf/conf.h"
#include "control/admin.h"
#include "control/history.h"
#include "control/metrics.h"
#include "control/status.h"
#include "control/whatif.h"
#include "geo/geoip.h"
#include "health/check.h"
#include "health/health.h"
#include "health/passive.h"
#include "router/accesslog.h"
#include "router/pick.h"
#include "router/proxy.h"
#include "router/stats.h"
#include "router/tls.h"
#include "router/worker.h"

#define TICK_MS 250
#define MIX_EVERY_S 10

static char *read_file(const char *path, struct mr_errors *errs)
{
    char *text = mr_file_read(path, 0, MR_FILE_SHORT_READ_OK, NULL, NULL);

    if (text == NULL && errno == ENOMEM)
        mr_errors_add(errs, "%s: out of memory", path);
    else if (text == NULL)
        mr_errors_add(errs, "%s: cannot read: %s", path, strerror(errno));
    return text;
}

/* The directory relative paths of the file resolve against. */
static char *base_dir_of(const char *path)
{
    char *abs = realpath(path, NULL), *slash;

    if (abs == NULL)
        return strdup(".");
    slash = strrchr(abs, '/');
    if (slash == abs)
        slash[1] = '\0';
    else if (slash != NULL)
        *slash = '\0';
    return abs;
}

static bool same_text(const char *a, const char *b)
{
    return a == NULL ? b == NULL : b != NULL && strcmp(a, b) == 0;
}

static void free_secret(char **s)
{
    if (*s != NULL)
        OPENSSL_cleanse(*s, strlen(*s));
    free(*s);
    *s = NULL;
}

static char *dup_or_null(const char *s, bool *oom)
{
    char *p = s != NULL ? strdup(s) : NULL;

    if (s != NULL && p == NULL)
        *oom = true;
    return p;
}

/*
 * The admin socket is bound once, at start: admin.address, token_file and
 * metrics_token_file take effect at restart, so no reload can leave a
 * non-loopback socket without a token. A snapshot built while running that
 * names other ones keeps the running admin block (tokens included) and
 * warns; one naming the same files has re-read them (token rotation).
 * 0, or -1 when out of memory.
 */
static int pin_admin(struct mr_snapshot *snap, const struct mr_snapshot *running,
                     struct mr_errors *errs)
{
    bool oom = false;

    if (same_text(snap->admin.address, running->admin.address) &&
        same_text(snap->admin.token_file, running->admin.token_file) &&
        same_text(snap->admin.metrics_token_file, running->admin.metrics_token_file))
        return 0;
    if (!same_text(snap->admin.address, running->admin.address))
        mr_errors_warn(errs, "admin.address: a change takes effect at restart");
    if (!same_text(snap->admin.token_file, running->admin.token_file))
        mr_errors_warn(errs, "admin.token_file: a change takes effect at restart");
    if (!same_text(snap->admin.metrics_token_file, running->admin.metrics_token_file))
        mr_errors_warn(errs, "admin.metrics_token_file: a change takes effect at restart");
    free(snap->admin.address);
    free(snap->admin.token_file);
    free(snap->admin.metrics_token_file);
    free_secret(&snap->admin.token);
    free_secret(&snap->admin.metrics_token);
    snap->admin.addr = running->admin.addr;
    snap->admin.address = dup_or_null(running->admin.address, &oom);
    snap->admin.token_file = dup_or_null(running->admin.token_file, &oom);
    snap->admin.token = dup_or_null(running->admin.token, &oom);
    snap->admin.metrics_token_file = dup_or_null(running->admin.metrics_token_file, &oom);
    snap->admin.metrics_token = dup_or_null(running->admin.metrics_token, &oom);
    return oom ? -1 : 0;
}

/*
 * Builds an unpublished snapshot from text and overrides: validated, with
 * its GeoIP database open, TLS certificates loaded and health slots
 * attached. NULL with errs filled.
 */
static struct mr_snapshot *build(struct mr_control *ctl, const char *text,
                                 const struct mr_overrides *ov, struct mr_errors *errs)
{
    char *dir = base_dir_of(ctl->conf_path);
    struct mr_snapshot *snap = dir != NULL ? mr_conf_load_string(text, dir, errs) : NULL;

    free(dir);
    if (snap == NULL)
        return NULL;
    snap->path = realpath(ctl->conf_path, NULL);
    mr_overrides_apply(ov, snap, errs);
    if ((ctl->admin != NULL && pin_admin(snap, mr_snap_peek(), errs) != 0) ||
        mr_geoip_attach(snap, errs) != 0 || mr_tls_attach(snap, errs) != 0 ||
        (ctl->health != NULL && mr_health_attach(ctl->health, snap) != 0)) {
        if (errs->n_errors == 0)
            mr_errors_add(errs, "out of memory");
        mr_snap_free(snap);
        return NULL;
    }
    return snap;
}

static void publish(struct mr_control *ctl, struct mr_snapshot *snap)
{
    if (mr_accesslog_open(snap->access_log) != 0)
        mr_log(MR_LOG_ERROR, "access_log: cannot open %s: %m (the previous log stays)",
               snap->access_log);
    mr_snap_publish(snap);
    if (ctl->checker != NULL)
        mr_checker_update(ctl->checker, snap);
}

static void log_errors(const char *what, const struct mr_errors *errs)
{
    for (size_t i = 0; i < errs->n_warnings; i++)
        mr_log(MR_LOG_WARN, "%s: %s", what, errs->warnings[i]);
    for (size_t i = 0; i < errs->n_errors; i++)
        mr_log(MR_LOG_ERROR, "%s: %s", what, errs->errors[i]);
}

int mr_control_check(const char *path)
{
    struct mr_control ctl = {.conf_path = (char *)path};
    struct mr_errors errs = {0};
    struct mr_overrides ov = {0};
    char *text = read_file(path, &errs);
    struct mr_snapshot *snap = text != NULL ? build(&ctl, text, &ov, &errs) : NULL;

    if (snap != NULL && snap->state_file != NULL) {
        /* A state file that cannot apply is worth knowing before a start. */
        struct mr_errors state = {0};
        if (mr_overrides_load(&ov, snap->state_file, &state) != 0)
            for (size_t i = 0; i < state.n_errors; i++)
                mr_errors_warn(&errs, "%s", state.errors[i]);
        mr_errors_clear(&state);
        mr_overrides_apply(&ov, snap, &errs);
    }
    mr_errors_print(&errs, stderr);
    mr_errors_clear(&errs);
    mr_overrides_clear(&ov);
    free(text);
    if (snap == NULL)
        return 1;
    printf("%s: configuration OK\n", path);
    mr_snap_free(snap);
    return 0;
}

/* ---- overrides as JSON (the "value" and "previous" of a change) -------- */

static json_t *override_json(const struct mr_overrides *ov, const struct mr_snapshot *snap,
                             const char *cluster)
{
    const struct mr_override *o = mr_overrides_get(ov, cluster);
    const struct mr_cluster *c = mr_snap_cluster(snap, cluster);
    json_t *drain = json_null();

    if (o != NULL && o->has_drain)
        drain = json_pack("{s:s, s:I}", "mode", o->drain == MR_DRAIN_HARD ? "hard" : "soft",
                          "deadline", (json_int_t)o->drain_deadline_s);
    return json_pack("{s:o, s:f}", "drain", drain, "weight",
                     o != NULL && o->has_weight ? o->weight
                                                : (c != NULL ? c->configured_weight : 0));
}

/* Puts back one cluster's entry as the JSON of override_json() says. */
static int restore_override(struct mr_overrides *ov, const struct mr_snapshot *snap,
                            const char *cluster, json_t *state)
{
    const struct mr_cluster *c = mr_snap_cluster(snap, cluster);
    json_t *drain = json_object_get(state, "drain");
    double weight = json_number_value(json_object_get(state, "weight"));
    int rc;

    if (json_is_object(drain)) {
        const char *mode = json_string_value(json_object_get(drain, "mode"));
        rc = mr_overrides_set_drain(ov, cluster,
                                    mode != NULL && strcmp(mode, "hard") == 0 ? MR_DRAIN_HARD
                                                                              : MR_DRAIN_SOFT,
                                    json_integer_value(json_object_get(drain, "deadline")),
                                    time(NULL));
    } else {
        rc = mr_overrides_clear_drain(ov, cluster);
    }
    if (rc == 0) {
        if (c != NULL && weight == c->configured_weight)
            rc = mr_overrides_clear_weight(ov, cluster);
        else
            rc = mr_overrides_set_weight(ov, cluster, weight);
    }
    return rc;
}

/* ---- dry run: where the new sessions would go -------------------------- */

/* One cluster's new sessions by country into the object arg. */
static void add_new_sessions(const char *name, const struct mr_stats_cluster_sum *sum, void *arg)
{
    json_t *per = json_object();

    for (size_t k = 0; k < MR_STATS_COUNTRIES; k++) {
        char cc[8];
        if (sum->new_by_country[k] == 0)
            continue;
        mr_stats_country_name(k, cc);
        json_object_set_new(per, cc, json_integer((json_int_t)sum->new_by_country[k]));
    }
    json_object_set_new(arg, name, per);
}

/* New sessions per cluster and country since start, summed over workers:
 * {"eu-west-a": {"GB": 12, "unknown": 3}, ...}. */
static json_t *new_session_counts(struct mr_control *ctl)
{
    json_t *counts = json_object();

    mr_stats_sum_clusters(ctl->stats, (size_t)ctl->n_workers, add_new_sessions, counts);
    return counts;
}

/* New sessions per cluster and country over the sampled window: the counts
 * now less the oldest sample's. */
static json_t *traffic_mix(struct mr_control *ctl)
{
    json_t *now = new_session_counts(ctl), *oldest, *per;
    const char *cluster;

    if (ctl->mix_len == 0)
        return now;
    oldest =
        ctl->mix[(ctl->mix_head + MR_CONTROL_MIX_SAMPLES - ctl->mix_len) % MR_CONTROL_MIX_SAMPLES]
            .counts;
    json_object_foreach(now, cluster, per) {
        json_t *old = json_object_get(oldest, cluster), *n;
        const char *cc;
        void *tmp;
        json_object_foreach_safe(per, tmp, cc, n) {
            json_int_t left = json_integer_value(n) - json_integer_value(json_object_get(old, cc));
            if (left > 0)
                json_object_set_new(per, cc, json_integer(left));
            else
                json_object_del(per, cc);
        }
    }
    return now;
}

static void sample_mix(struct mr_control *ctl)
{
    struct mix_sample *s = &ctl->mix[ctl->mix_head];

    json_decref(s->counts);
    s->counts = new_session_counts(ctl);
    s->time_s = time(NULL);
    ctl->mix_head = (ctl->mix_head + 1) % MR_CONTROL_MIX_SAMPLES;
    if (ctl->mix_len < MR_CONTROL_MIX_SAMPLES)
        ctl->mix_len++;
}

/* ---- changes ----------------------------------------------------------- */

static int answer_error(json_t **answer, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int answer_error(json_t **answer, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    *answer = json_pack("{s:s}", "error", msg);
    return status;
}

static const char *describe(const char *kind, int mode, int64_t deadline_s, double weight,
                            char *buf, size_t len)
{
    if (strcmp(kind, "drain") == 0) {
        if (deadline_s > 0)
            snprintf(buf, len, "%s drain, deadline in %lld s",
                     mode == MR_DRAIN_HARD ? "hard" : "soft", (long long)deadline_s);
        else
            snprintf(buf, len, "%s drain, no deadline", mode == MR_DRAIN_HARD ? "hard" : "soft");
    } else if (strcmp(kind, "weight") == 0) {
        snprintf(buf, len, "weight %g", weight);
    } else {
        snprintf(buf, len, "undrained");
    }
    return buf;
}

/* Appends c to the audit log of the running snapshot. */
static void audit(const struct mr_change *c)
{
    const struct mr_snapshot *snap = mr_snap_peek();

    if (snap != NULL)
        mr_history_append(snap->audit_log, c);
}

/* Builds with next, checks, saves, publishes and records. */
static int apply(struct mr_control *ctl, const char *kind, const char *cluster,
                 struct mr_overrides *next, bool dry_run, bool force, uint64_t undid,
                 const char *what, json_t **answer, struct mr_change **done)
{
    struct mr_snapshot *before = mr_snap_acquire();
    struct mr_errors errs = {0};
    struct mr_snapshot *after = build(ctl, ctl->conf_text, next, &errs);
    json_t *lost, *value, *previous;
    char err[256];
    int status = 200, saved = 0;

    *done = NULL;
    if (after == NULL) {
        status = answer_error(answer, 500, "cannot build the new configuration: %s",
                              errs.n_errors > 0 ? errs.errors[0] : "unknown error");
        goto out;
    }
    lost = mr_whatif_stranded(before, after);
    if (dry_run) {
        const char *basis;
        json_t *mix = traffic_mix(ctl);
        json_t *shares = mr_whatif_shares(before, after, cluster, json_object_get(mix, cluster),
                                          &basis);
        json_decref(mix);
        *answer = json_pack("{s:b, s:s+, s:o, s:o, s:s, s:I}", "dry_run", 1, "message",
                            "dry run, nothing changed: ", what, "new_sessions_to", shares,
                            "stranded", lost, "basis", basis, "generation",
                            (json_int_t)before->generation);
        mr_snap_free(after);
        goto out;
    }
    if (json_array_size(lost) > 0 && !force) {
        char list[256] = "";
        size_t i;
        json_t *item;
        json_array_foreach(lost, i, item) {
            snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "",
                     json_string_value(item));
        }
        *answer = json_pack("{s:s+++, s:o}", "error", "refused: ", what,
                            " would leave these clients with no cluster taking new sessions: ",
                            list, "stranded", lost);
        status = 409;
        mr_snap_free(after);
        goto out;
    }
    json_decref(lost);
    if (after->state_file != NULL &&
        (saved = mr_overrides_save(next, after->state_file, err, sizeof(err))) < 0) {
        status = answer_error(answer, 500, "state_file: %s (nothing changed)", err);
        mr_snap_free(after);
        goto out;
    }
    previous = override_json(&ctl->overrides, before, cluster);
    value = override_json(next, after, cluster);
    mr_overrides_clear(&ctl->overrides);
    ctl->overrides = *next;
    memset(next, 0, sizeof(*next));
    publish(ctl, after);
    if (undid != 0)
        json_object_set_new(value, "undid", json_integer((json_int_t)undid));
    if (force && undid == 0)
        json_object_set_new(value, "forced", json_true());
    *done = mr_history_record(&ctl->history, mr_wall_ms(), kind, cluster, value, previous,
                              before->generation, after->generation);
    audit(*done);
    mr_log(MR_LOG_INFO, "%s %s: %s (generation %llu -> %llu)", kind, cluster, what,
           (unsigned long long)before->generation, (unsigned long long)after->generation);
    *answer = json_pack("{s:I, s:I, s:s, s:s, s:o}", "generation", (json_int_t)after->generation,
                        "previous_generation", (json_int_t)before->generation, "cluster", cluster,
                        "message", what, "change", mr_history_change_json(*done));
    if (saved > 0) {
        /* The file was renamed into place: a restart would apply the change,
         * so it runs now too, and only its surviving a crash is in doubt. */
        char warning[512];
        snprintf(warning, sizeof(warning),
                 "state_file: %s: the change is in effect and in the file, but may not "
                 "survive a crash",
                 err);
        mr_log(MR_LOG_WARN, "%s %s: %s", kind, cluster, warning);
        json_object_set_new(*answer, "warnings", json_pack("[s]", warning));
    }
out:
    log_errors("change", &errs);
    mr_errors_clear(&errs);
    mr_snap_release(before);
    return status;
}

int mr_control_change(struct mr_control *ctl, const char *kind, const char *cluster, int mode,
                      int64_t deadline_s, double weight, bool dry_run, bool force, json_t **answer)
{
    const struct mr_snapshot *snap = mr_snap_peek();
    struct mr_overrides next = {0};
    struct mr_change *done;
    char what[128];
    int64_t now = time(NULL);
    /* Rounded up: a deadline of N seconds keeps sessions at least N s. */
    int64_t deadline_at = deadline_s > 0 ? (mr_wall_ms() + deadline_s * 1000 + 999) / 1000 : 0;
    int rc;

    if (mr_snap_cluster(snap, cluster) == NULL)
        return answer_error(answer, 404, "unknown cluster \"%s\"", cluster);
    if (mr_overrides_copy(&next, &ctl->overrides) != 0)
        return answer_error(answer, 500, "out of memory");
    if (strcmp(kind, "drain") == 0)
        rc = mr_overrides_set_drain(&next, cluster, mode, deadline_at, now);
    else if (strcmp(kind, "undrain") == 0)
        rc = mr_overrides_clear_drain(&next, cluster);
    else
        rc = mr_overrides_set_weight(&next, cluster, weight);
    if (rc != 0) {
        mr_overrides_clear(&next);
        return answer_error(answer, 500, "out of memory");
    }
    describe(kind, mode, deadline_s, weight, what, sizeof(what));
    rc = apply(ctl, kind, cluster, &next, dry_run, force, 0, what, answer, &done);
    mr_overrides_clear(&next);
    return rc;
}

/* Creates the missing directories above path, mode 0750 (a relative
 * state_file in a fresh checkout); 0, or -1 with an error at key. */
static int make_parent(const char *path, const char *key, struct mr_errors *errs)
{
    const char *end = path != NULL ? strrchr(path, '/') : NULL;
    char dir[PATH_MAX];
    struct stat st;

    if (end == NULL || end == path)
        return 0;
    if ((size_t)(end - path) >= sizeof(dir)) {
        mr_errors_add(errs, "%s: cannot create the directory of %s: %s", key, path,
                      strerror(ENAMETOOLONG));
        return -1;
    }
    memcpy(dir, path, (size_t)(end - path));
    dir[end - path] = '\0';
    for (char *slash = strchr(dir + 1, '/');; slash = strchr(slash + 1, '/')) {
        if (slash != NULL)
            *slash = '\0';
        if (mkdir(dir, 0750) != 0 && errno != EEXIST)
            goto fail;
        if (slash == NULL)
            break;
        *slash = '/';
    }
    /* EEXIST is also what a file in the way gives. */
    if (stat(dir, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return 0;
        errno = ENOTDIR;
    }
fail:
    mr_errors_add(errs, "%s: cannot create directory %s: %s", key, dir, strerror(errno));
    return -1;
}

/* The state file's and audit log's directories; an audit log beside a
 * state file that failed is not reported twice. */
static int make_dirs(const struct mr_snapshot *snap, struct mr_errors *errs)
{
    const char *s = snap->state_file, *a = snap->audit_log;
    size_t s_len = s != NULL && strrchr(s, '/') != NULL ? (size_t)(strrchr(s, '/') - s) : 0;
    bool same = a != NULL && s_len > 0 && strncmp(s, a, s_len + 1) == 0 &&
                strchr(a + s_len + 1, '/') == NULL;
    int rc = make_parent(s, "state_file", errs);

    if (rc == 0 || !same)
        rc |= make_parent(a, "audit_log", errs);
    return rc;
}

static int swap_text(struct mr_control *ctl, char *text, struct mr_errors *errs, uint64_t *before,
                     uint64_t *after)
{
    struct mr_snapshot *snap = build(ctl, text, &ctl->overrides, errs);
    const struct mr_snapshot *running = mr_snap_peek();

    if (snap != NULL && make_dirs(snap, errs) != 0) {
        mr_snap_free(snap);
        snap = NULL;
    }
    if (snap == NULL) {
        ctl->reload_failures++;
        return -1;
    }
    if (snap->workers != running->workers)
        mr_errors_warn(errs, "workers: a change takes effect at restart");
    for (size_t i = 0; i < snap->n_listeners; i++)
        if (i >= running->n_listeners ||
            !mr_netaddr_equal(&snap->listeners[i].addr, &running->listeners[i].addr))
            mr_errors_warn(errs, "listeners[%zu]: a change takes effect at restart", i);
    *before = running->generation;
    publish(ctl, snap);
    *after = snap->generation;
    return 0;
}

int mr_control_reload(struct mr_control *ctl, struct mr_errors *errs)
{
    char *text = read_file(ctl->conf_path, errs);
    uint64_t before, after;
    struct mr_change *done;

    if (text == NULL) {
        ctl->reload_failures++;
        return -1;
    }
    if (swap_text(ctl, text, errs, &before, &after) != 0) {
        free(text);
        return -1;
    }
    done = mr_history_record(&ctl->history, mr_wall_ms(), "reload", NULL,
                             json_pack("{s:s}", "file", ctl->conf_path), NULL, before, after);
    done->previous_text = ctl->conf_text;
    ctl->conf_text = text;
    audit(done);
    mr_log(MR_LOG_INFO, "reloaded %s: generation %llu (was %llu)", ctl->conf_path,
           (unsigned long long)after, (unsigned long long)before);
    return 0;
}

int mr_control_undo(struct mr_control *ctl, json_t **answer)
{
    struct mr_change *target = mr_history_undo_target(&ctl->history), *done;
    struct mr_errors errs = {0};
    int status;

    if (target == NULL)
        return answer_error(answer, 409, "nothing to undo");
    if (strcmp(target->kind, "reload") == 0) {
        uint64_t before, after;
        char *text = target->previous_text;
        if (text == NULL)
            return answer_error(answer, 409, "the configuration before reload %llu is not kept",
                                (unsigned long long)target->seq);
        if (swap_text(ctl, text, &errs, &before, &after) != 0) {
            status = answer_error(answer, 409, "cannot restore the previous configuration: %s",
                                  errs.n_errors > 0 ? errs.errors[0] : "unknown error");
            mr_errors_clear(&errs);
            return status;
        }
        mr_errors_clear(&errs);
        /* The text of the reload becomes what undoing this undo would need. */
        target->previous_text = ctl->conf_text;
        ctl->conf_text = text;
        target->undone = true;
        done = mr_history_record(&ctl->history, mr_wall_ms(), "undo", NULL,
                                 json_pack("{s:I, s:s}", "undid", (json_int_t)target->seq, "change",
                                           "reload"),
                                 NULL, before, after);
        audit(done);
        *answer = json_pack("{s:I, s:I, s:s, s:o}", "generation", (json_int_t)after,
                            "previous_generation", (json_int_t)before, "message",
                            "undid reload: the previous configuration is running", "change",
                            mr_history_change_json(done));
        return 200;
    }
    {
        struct mr_overrides next = {0};
        const struct mr_snapshot *snap = mr_snap_peek();
        char what[160], cluster[72];
        uint64_t seq = target->seq;
        json_t *undo_answer = NULL;
        struct mr_change *applied;

        snprintf(cluster, sizeof(cluster), "%s", target->cluster);
        if (mr_snap_cluster(snap, cluster) == NULL)
            return answer_error(answer, 409, "cluster \"%s\" no longer exists", cluster);
        if (mr_overrides_copy(&next, &ctl->overrides) != 0 ||
            restore_override(&next, snap, cluster, target->previous) != 0) {
            mr_overrides_clear(&next);
            return answer_error(answer, 500, "out of memory");
        }
        snprintf(what, sizeof(what), "undid %s of %s", target->kind, cluster);
        target->undone = true;
        status = apply(ctl, "undo", cluster, &next, false, true, seq, what, &undo_answer, &applied);
        mr_overrides_clear(&next);
        if (status != 200) {
            target->undone = false;
            *answer = undo_answer;
            return status;
        }
        *answer = undo_answer;
        return 200;
    }
}

json_t *mr_control_status(struct mr_control *ctl)
{
    struct mr_snapshot *snap = mr_snap_acquire();
    struct mr_status_source src = {
        .health = ctl->health,
        .stats = ctl->stats,
        .n_stats = (size_t)ctl->n_workers,
        .started_s = ctl->started_s,
        .stopping = ctl->stopping,
    };
    json_t *out = mr_status_json(snap, &src);

    mr_snap_release(snap);
    return out;
}

json_t *mr_control_explain(struct mr_control *ctl, const char *ip, const char *cookie, int *status)
{
    struct mr_snapshot *snap = mr_snap_acquire();
    struct mr_whatif_clock clock = {.now_s = time(NULL),
                                    .mono_ms = mr_passive_now_ms(),
                                    .wall_ms = mr_wall_ms()};
    json_t *out = mr_whatif_explain(snap, ip, cookie, &clock,
                                    (uint64_t)random() << 32 ^ (uint64_t)random(), status);

    (void)ctl;
    mr_snap_release(snap);
    return out;
}

/* ---- the admin API's view of the control thread (struct mr_admin_ops) ---- */

static bool admin_stopping(void *ctx)
{
    return ((struct mr_control *)ctx)->stopping;
}

static int admin_change(void *ctx, const char *action, const char *cluster,
                        const struct mr_admin_change *ch, json_t **answer)
{
    return mr_control_change(ctx, action, cluster, ch->mode, ch->deadline_s, ch->weight,
                             ch->dry_run, ch->force, answer);
}

static int admin_undo(void *ctx, json_t **answer)
{
    return mr_control_undo(ctx, answer);
}

static int admin_reload(void *ctx, struct mr_errors *errs)
{
    return mr_control_reload(ctx, errs);
}

static json_t *admin_status(void *ctx)
{
    return mr_control_status(ctx);
}

static json_t *admin_history(void *ctx)
{
    return mr_history_json(&((struct mr_control *)ctx)->history);
}

static json_t *admin_explain(void *ctx, const char *ip, const char *cookie, int *status)
{
    return mr_control_explain(ctx, ip, cookie, status);
}

static void admin_metrics(void *ctx, struct evbuffer *out)
{
    struct mr_control *ctl = ctx;
    struct mr_snapshot *snap = mr_snap_acquire();

    mr_metrics_write(out, snap, ctl->stats, (size_t)ctl->n_workers, ctl->reload_failures);
    mr_snap_release(snap);
}

/* ---- lifecycle ------------------------------------------------------------ */

static int bind_listener(const struct mr_listener *l)
{
    int one = 1;
    int fd = socket(l->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        mr_log(MR_LOG_ERROR, "listeners: socket: %m");
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* One socket per worker on the same address: the kernel spreads. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (l->addr.ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&l->addr.ss, l->addr.len) != 0 || listen(fd, 1024) != 0) {
        mr_log(MR_LOG_ERROR, "listeners: cannot listen on %s: %m", l->address);
        close(fd);
        return -1;
    }
    return fd;
}

static int start_workers(struct mr_control *ctl, const struct mr_snapshot *snap)
{
    ctl->workers = calloc((size_t)snap->workers, sizeof(*ctl->workers));
    ctl->stats = calloc((size_t)snap->workers, sizeof(*ctl->stats));
    if (ctl->workers == NULL || ctl->stats == NULL)
        return -1;
    for (int i = 0; i < snap->workers; i++) {
        int fds[snap->n_listeners + 1];
        for (size_t k = 0; k < snap->n_listeners; k++) {
            fds[k] = bind_listener(&snap->listeners[k]);
            if (fds[k] < 0) {
                while (k-- > 0)
                    close(fds[k]);
                return -1;
            }
        }
        ctl->workers[i] = mr_worker_new(i, fds, snap->n_listeners, &mr_proxy_conns);
        if (ctl->workers[i] == NULL)
            return -1;
        ctl->stats[i] = ctl->workers[i]->stats;
        ctl->n_workers = i + 1;
        if (mr_worker_start(ctl->workers[i]) != 0)
            return -1;
    }
    return 0;
}

static void stop_workers(struct mr_control *ctl)
{
    for (int i = 0; i < ctl->n_workers; i++)
        mr_worker_stop(ctl->workers[i]);
}

static bool workers_finished(const struct mr_control *ctl)
{
    for (int i = 0; i < ctl->n_workers; i++)
        if (!atomic_load(&ctl->workers[i]->finished))
            return false;
    return true;
}

/* Drain deadlines that pass, traffic-mix samples, the end of a stop. */
static void on_tick(evutil_socket_t fd, short events, void *arg)
{
    struct mr_control *ctl = arg;
    static int64_t last_mix;
    int64_t now = time(NULL);
    (void)fd;
    (void)events;

    if (ctl->stopping) {
        if (workers_finished(ctl))
            event_base_loopbreak(ctl->base);
        return;
    }
    if (now - last_mix >= MIX_EVERY_S) {
        last_mix = now;
        sample_mix(ctl);
    }
}

static void on_signal(evutil_socket_t sig, short events, void *arg)
{
    struct mr_control *ctl = arg;
    (void)events;

    if (sig == SIGHUP) {
        struct mr_errors errs = {0};
        if (mr_control_reload(ctl, &errs) != 0) {
            log_errors(ctl->conf_path, &errs);
            mr_log(MR_LOG_ERROR, "reload refused: keeping generation %llu",
                   (unsigned long long)mr_snap_peek()->generation);
        } else {
            log_errors(ctl->conf_path, &errs);
        }
        mr_errors_clear(&errs);
        return;
    }
    if (ctl->stopping)
        return;
    mr_log(MR_LOG_INFO, "%s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    /* The control loop goes on: /healthz answers 503 while workers drain. */
    ctl->stopping = true;
    stop_workers(ctl);
}

static void block_signals(int how)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(how, &set, NULL);
}

int mr_control_start(struct mr_control *ctl, const char *path)
{
    struct mr_errors errs = {0};
    struct mr_snapshot *snap;
    struct timeval tick = {0, TICK_MS * 1000};
    const struct mr_admin_ops admin_ops = {
        .ctx = ctl,
        .stopping = admin_stopping,
        .change = admin_change,
        .undo = admin_undo,
        .reload = admin_reload,
        .status = admin_status,
        .history = admin_history,
        .explain = admin_explain,
        .metrics = admin_metrics,
    };

    /* Until mr_control_run() handles them, the stop and reload signals wait:
     * a SIGHUP in the moment between the first accept and the handler would
     * otherwise kill the process. Every thread started from here inherits
     * the mask, so only the control thread ever takes them. */
    block_signals(SIG_BLOCK);
    memset(ctl, 0, sizeof(*ctl));
    ctl->conf_path = strdup(path);
    ctl->started_s = time(NULL);
    ctl->conf_text = read_file(path, &errs);
    ctl->base = event_base_new();
    ctl->health = mr_health_new();
    if (ctl->conf_path == NULL || ctl->conf_text == NULL || ctl->base == NULL ||
        ctl->health == NULL)
        goto fail;
    /* A first, override-free build finds the state file's path. */
    snap = build(ctl, ctl->conf_text, &ctl->overrides, &errs);
    if (snap == NULL)
        goto fail;
    if (make_dirs(snap, &errs) != 0) {
        mr_snap_free(snap);
        goto fail;
    }
    if (snap->state_file != NULL) {
        struct mr_errors state = {0};
        if (mr_overrides_load(&ctl->overrides, snap->state_file, &state) != 0)
            for (size_t i = 0; i < state.n_errors; i++)
                mr_log(MR_LOG_ERROR, "%s (the rest of the state applies)", state.errors[i]);
        mr_errors_clear(&state);
        mr_overrides_apply(&ctl->overrides, snap, &errs);
        for (size_t i = 0; i < ctl->overrides.n; i++)
            mr_log(MR_LOG_INFO, "state_file: %s: restored%s%s", ctl->overrides.items[i].cluster,
                   ctl->overrides.items[i].has_drain ? " drain" : "",
                   ctl->overrides.items[i].has_weight ? " weight" : "");
    }
    log_errors(path, &errs);
    mr_errors_clear(&errs);
    mr_history_load(&ctl->history, snap->audit_log);
    if (mr_accesslog_open(snap->access_log) != 0) {
        mr_log(MR_LOG_ERROR, "access_log: cannot open %s: %m", snap->access_log);
        mr_snap_free(snap);
        goto fail;
    }
    ctl->checker = mr_checker_new(ctl->base, ctl->health);
    if (ctl->checker == NULL) {
        mr_snap_free(snap);
        goto fail;
    }
    mr_snap_publish(snap);
    mr_checker_update(ctl->checker, snap);
    ctl->admin = mr_admin_new(ctl->base, &admin_ops, snap);
    if (ctl->admin == NULL)
        goto fail_running;
    if (start_workers(ctl, snap) != 0)
        goto fail_running;
    ctl->tick = event_new(ctl->base, -1, EV_PERSIST, on_tick, ctl);
    if (ctl->tick == NULL)
        goto fail_running;
    event_add(ctl->tick, &tick);
    mr_log(MR_LOG_INFO, "meridian %s: generation %llu, %d workers, listening on %s%s", MR_VERSION,
           (unsigned long long)snap->generation, snap->workers, snap->listeners[0].address,
           snap->n_listeners > 1 ? " and more" : "");
    return 0;
fail:
    log_errors(path, &errs);
    mr_errors_clear(&errs);
fail_running:
    ctl->stopping = true;
    stop_workers(ctl);
    mr_control_run(ctl);
    return -1;
}

void mr_control_run(struct mr_control *ctl)
{
    struct event *signals[3] = {NULL, NULL, NULL};
    const int signos[3] = {SIGHUP, SIGTERM, SIGINT};

    if (!ctl->stopping && ctl->base != NULL) {
        for (int i = 0; i < 3; i++) {
            signals[i] = evsignal_new(ctl->base, signos[i], on_signal, ctl);
            if (signals[i] != NULL)
                event_add(signals[i], NULL);
        }
        block_signals(SIG_UNBLOCK);
        event_base_dispatch(ctl->base);
    }
    for (int i = 0; i < ctl->n_workers; i++)
        mr_worker_join(ctl->workers[i]);
    free(ctl->workers);
    free(ctl->stats);
    for (int i = 0; i < 3; i++)
        if (signals[i] != NULL)
            event_free(signals[i]);
    mr_admin_free(ctl->admin);
    mr_checker_free(ctl->checker);
    if (ctl->tick != NULL)
        event_free(ctl->tick);
    if (ctl->base != NULL)
        event_base_free(ctl->base);
    mr_snap_shutdown();
    mr_health_free(ctl->health);
    mr_accesslog_close();
    mr_overrides_clear(&ctl->overrides);
    mr_history_clear(&ctl->history);
    for (size_t i = 0; i < MR_CONTROL_MIX_SAMPLES; i++)
        json_decref(ctl->mix[i].counts);
    free(ctl->conf_text);
    free(ctl->conf_path);
    mr_log(MR_LOG_INFO, "stopped");
}
