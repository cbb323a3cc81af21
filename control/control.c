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

#include "common/file.h"
#include "common/log.h"
#include "conf/conf.h"
#include "geo/countries.h"
#include "geo/geoip.h"
#include "geo/policy.h"
#include "health/check.h"
#include "health/health.h"
#include "health/passive.h"
#include "router/accesslog.h"
#include "control/admin.h"
#include "router/cookie.h"
#include "router/pick.h"
#include "router/stats.h"
#include "router/tls.h"
#include "router/worker.h"

#define TICK_MS 250
#define MIX_EVERY_S 10

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

/* ---- history and audit ------------------------------------------------ */

static struct mr_change *history_at(struct mr_control *ctl, size_t age)
{
    size_t i = (ctl->history_head + MR_CONTROL_HISTORY - 1 - age) % MR_CONTROL_HISTORY;
    return age < ctl->history_len ? &ctl->history[i] : NULL;
}

static void change_clear(struct mr_change *c)
{
    json_decref(c->value);
    json_decref(c->previous);
    free(c->previous_text);
    memset(c, 0, sizeof(*c));
}

static json_t *change_json(const struct mr_change *c)
{
    char stamp[40];
    time_t secs = (time_t)(c->time_ms / 1000);
    struct tm tm;

    gmtime_r(&secs, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp + strlen(stamp), sizeof(stamp) - strlen(stamp), ".%03dZ",
             (int)(c->time_ms % 1000));
    return json_pack("{s:I, s:s, s:s, s:s?, s:O?, s:O?, s:I, s:I, s:b}", "seq", (json_int_t)c->seq,
                     "time", stamp, "change", c->kind, "cluster",
                     c->cluster[0] != '\0' ? c->cluster : NULL, "value", c->value, "previous",
                     c->previous, "generation_before", (json_int_t)c->generation_before,
                     "generation_after", (json_int_t)c->generation_after, "undone", c->undone);
}

/* Appends one line to the audit log (O_APPEND: one write per line). */
static void audit(struct mr_control *ctl, const struct mr_change *c)
{
    const struct mr_snapshot *snap = mr_snap_peek();
    json_t *line;
    char *text;
    int fd;

    if (snap == NULL || snap->audit_log == NULL)
        return;
    line = change_json(c);
    text = line != NULL ? json_dumps(line, JSON_COMPACT) : NULL;
    json_decref(line);
    if (text == NULL)
        return;
    fd = open(snap->audit_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd >= 0) {
        size_t len = strlen(text);
        text[len] = '\n';
        if (write(fd, text, len + 1) != (ssize_t)(len + 1))
            mr_log(MR_LOG_ERROR, "audit_log: cannot write %s: %m", snap->audit_log);
        close(fd);
    } else {
        mr_log(MR_LOG_ERROR, "audit_log: cannot open %s: %m", snap->audit_log);
    }
    free(text);
    (void)ctl;
}

static struct mr_change *record(struct mr_control *ctl, const char *kind, const char *cluster,
                                json_t *value, json_t *previous, uint64_t before, uint64_t after)
{
    struct mr_change *c = &ctl->history[ctl->history_head];

    change_clear(c);
    ctl->history_head = (ctl->history_head + 1) % MR_CONTROL_HISTORY;
    if (ctl->history_len < MR_CONTROL_HISTORY)
        ctl->history_len++;
    c->seq = ++ctl->next_seq;
    c->time_ms = now_ms();
    snprintf(c->kind, sizeof(c->kind), "%s", kind);
    snprintf(c->cluster, sizeof(c->cluster), "%s", cluster != NULL ? cluster : "");
    c->value = value;
    c->previous = previous;
    c->generation_before = before;
    c->generation_after = after;
    return c;
}

/* Parses "2026-11-27T08:24:35.982Z" back to unix ms; 0 when it does not. */
static int64_t parse_iso_ms(const char *text)
{
    struct tm tm;
    int ms = 0;
    const char *rest;

    memset(&tm, 0, sizeof(tm));
    if (text == NULL || (rest = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm)) == NULL)
        return 0;
    if (rest[0] == '.')
        ms = atoi(rest + 1);
    return (int64_t)timegm(&tm) * 1000 + ms;
}

/* Reads the newest changes of earlier runs back from the audit log, so
 * history and undo survive a restart. */
static void load_history(struct mr_control *ctl, const char *audit_log)
{
    FILE *f = audit_log != NULL ? fopen(audit_log, "r") : NULL;
    char line[16384];

    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL) {
        json_t *entry = json_loads(line, 0, NULL);
        const char *kind = json_string_value(json_object_get(entry, "change"));
        const char *cluster = json_string_value(json_object_get(entry, "cluster"));
        struct mr_change *c;
        uint64_t seq = (uint64_t)json_integer_value(json_object_get(entry, "seq"));

        if (kind == NULL) {
            json_decref(entry);
            continue;
        }
        if (strcmp(kind, "undo") == 0) {
            /* An undo marks what it undid. */
            uint64_t undid = (uint64_t)json_integer_value(
                json_object_get(json_object_get(entry, "value"), "undid"));
            for (size_t age = 0; age < ctl->history_len; age++)
                if (history_at(ctl, age)->seq == undid)
                    history_at(ctl, age)->undone = true;
        }
        c = record(ctl, kind, cluster, json_incref(json_object_get(entry, "value")),
                   json_incref(json_object_get(entry, "previous")),
                   (uint64_t)json_integer_value(json_object_get(entry, "generation_before")),
                   (uint64_t)json_integer_value(json_object_get(entry, "generation_after")));
        c->seq = seq;
        c->time_ms = parse_iso_ms(json_string_value(json_object_get(entry, "time")));
        c->undone = c->undone || json_is_true(json_object_get(entry, "undone"));
        if (seq > ctl->next_seq)
            ctl->next_seq = seq;
        json_decref(entry);
    }
    fclose(f);
}

json_t *mr_control_history(struct mr_control *ctl)
{
    json_t *list = json_array();

    for (size_t age = 0; age < ctl->history_len; age++)
        json_array_append_new(list, change_json(history_at(ctl, age)));
    return json_pack("{s:o}", "changes", list);
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

/* ---- guardrail: who would be stranded ---------------------------------- */

/* A synthetic client of one routing class. */
static void class_location(const char *country, const char *continent, struct mr_location *loc)
{
    memset(loc, 0, sizeof(*loc));
    if (country != NULL) {
        loc->found = true;
        memcpy(loc->country, country, 2);
        mr_countries_continent(country, loc->continent);
        loc->has_coords = mr_countries_centroid(country, &loc->lat, &loc->lon);
    } else if (continent != NULL) {
        loc->found = true;
        memcpy(loc->continent, continent, 2);
    }
}

/* True when a client at loc has a cluster taking new sessions. */
static bool class_served(const struct mr_snapshot *snap, const struct mr_location *loc)
{
    size_t regions[snap->n_regions + 1];
    size_t n = mr_policy_regions(snap, loc, regions, NULL, snap->n_regions);

    for (size_t i = 0; i < n; i++) {
        const struct mr_region *r = &snap->regions[regions[i]];
        for (size_t k = 0; k < r->n_clusters; k++)
            if (mr_pick_takes_new(snap, &r->clusters[k]))
                return true;
    }
    return false;
}

/* Routing classes served by before and not by after: "countries.GB",
 * "continents.EU", "default". */
static json_t *stranded(const struct mr_snapshot *before, const struct mr_snapshot *after)
{
    json_t *out = json_array();
    struct mr_location loc;
    char name[32];

    for (size_t i = 0; i < after->routing.n_countries; i++) {
        class_location(after->routing.countries[i].code, NULL, &loc);
        if (class_served(before, &loc) && !class_served(after, &loc)) {
            snprintf(name, sizeof(name), "countries.%s", after->routing.countries[i].code);
            json_array_append_new(out, json_string(name));
        }
    }
    for (size_t i = 0; i < after->routing.n_continents; i++) {
        class_location(NULL, after->routing.continents[i].code, &loc);
        if (class_served(before, &loc) && !class_served(after, &loc)) {
            snprintf(name, sizeof(name), "continents.%s", after->routing.continents[i].code);
            json_array_append_new(out, json_string(name));
        }
    }
    class_location(NULL, NULL, &loc);
    if (class_served(before, &loc) && !class_served(after, &loc))
        json_array_append_new(out, json_string("default"));
    return out;
}

/* ---- dry run: where the new sessions would go -------------------------- */

/* New sessions per cluster and country since start, summed over workers:
 * {"eu-west-a": {"GB": 12, "unknown": 3}, ...}. */
static json_t *new_session_counts(struct mr_control *ctl)
{
    json_t *counts = json_object();

    for (int i = 0; i < ctl->n_workers; i++) {
        struct mr_stats_cluster *cs =
            atomic_load_explicit(&ctl->workers[i]->stats->clusters, memory_order_acquire);
        for (; cs != NULL; cs = cs->next) {
            json_t *per = json_object_get(counts, cs->name);
            if (per == NULL) {
                per = json_object();
                json_object_set_new(counts, cs->name, per);
            }
            for (size_t k = 0; k < MR_STATS_COUNTRIES; k++) {
                uint64_t n = mr_stats_get(&cs->new_by_country[k]);
                char cc[8];
                if (n == 0)
                    continue;
                if (k == MR_STATS_COUNTRY_UNKNOWN)
                    snprintf(cc, sizeof(cc), "unknown");
                else
                    snprintf(cc, sizeof(cc), "%c%c", (char)('A' + k / 26), (char)('A' + k % 26));
                json_object_set_new(per, cc,
                                    json_integer(json_integer_value(json_object_get(per, cc)) +
                                                 (json_int_t)n));
            }
        }
    }
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
    oldest = ctl->mix[(ctl->mix_head + MR_CONTROL_MIX_SAMPLES - ctl->mix_len) %
                      MR_CONTROL_MIX_SAMPLES]
                 .counts;
    json_object_foreach(now, cluster, per)
    {
        json_t *old = json_object_get(oldest, cluster), *n;
        const char *cc;
        void *tmp;
        json_object_foreach_safe(per, tmp, cc, n)
        {
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

/* Adds, for n sessions of a client at loc, the clusters they would go to
 * under snap (split by weight within the first region that takes them). */
static void spread(const struct mr_snapshot *snap, const struct mr_location *loc, double n,
                   json_t *shares)
{
    size_t regions[snap->n_regions + 1];
    size_t count = mr_policy_regions(snap, loc, regions, NULL, snap->n_regions);
    const char *where = "fail_open";

    for (size_t i = 0; i < count; i++) {
        const struct mr_region *r = &snap->regions[regions[i]];
        double total = 0;
        for (size_t k = 0; k < r->n_clusters; k++)
            if (mr_pick_takes_new(snap, &r->clusters[k]))
                total += r->clusters[k].weight;
        if (total <= 0)
            continue;
        for (size_t k = 0; k < r->n_clusters; k++) {
            const struct mr_cluster *c = &r->clusters[k];
            if (!mr_pick_takes_new(snap, c))
                continue;
            json_object_set_new(shares, c->name,
                                json_real(json_number_value(json_object_get(shares, c->name)) +
                                          n * c->weight / total));
        }
        return;
    }
    json_object_set_new(shares, where,
                        json_real(json_number_value(json_object_get(shares, where)) + n));
}

/* Where the new sessions that cluster took lately would go under after. */
static json_t *dry_run_shares(struct mr_control *ctl, const struct mr_snapshot *before,
                              const struct mr_snapshot *after, const char *cluster,
                              const char **basis)
{
    json_t *mix = traffic_mix(ctl), *per = json_object_get(mix, cluster);
    json_t *shares = json_object(), *list = json_array();
    struct mr_location loc;
    double total = 0;
    const char *key;
    json_t *value;

    *basis = "new sessions of the last minutes";
    if (per != NULL && json_object_size(per) > 0) {
        const char *cc;
        json_t *n;
        json_object_foreach(per, cc, n)
        {
            class_location(strcmp(cc, "unknown") == 0 ? NULL : cc, NULL, &loc);
            spread(after, &loc, (double)json_integer_value(n), shares);
        }
    } else {
        /* No traffic yet: one client of each routing class, counted for
         * the share of it that the cluster takes now. */
        *basis = "no recent new sessions: one client per routing class";
        for (size_t i = 0; i <= before->routing.n_countries; i++) {
            json_t *now_shares = json_object();
            double mine;
            class_location(i < before->routing.n_countries ? before->routing.countries[i].code
                                                           : NULL,
                           NULL, &loc);
            spread(before, &loc, 1, now_shares);
            mine = json_number_value(json_object_get(now_shares, cluster));
            if (mine > 0)
                spread(after, &loc, mine, shares);
            json_decref(now_shares);
        }
    }
    json_object_foreach(shares, key, value) total += json_number_value(value);
    json_object_foreach(shares, key, value)
    {
        json_array_append_new(list, json_pack("{s:s, s:f}", "cluster", key, "share",
                                              total > 0 ? json_number_value(value) / total : 0));
    }
    json_decref(shares);
    json_decref(mix);
    return list;
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
            snprintf(buf, len, "%s drain, deadline in %lld s", mode == MR_DRAIN_HARD ? "hard" : "soft",
                     (long long)deadline_s);
        else
            snprintf(buf, len, "%s drain, no deadline", mode == MR_DRAIN_HARD ? "hard" : "soft");
    } else if (strcmp(kind, "weight") == 0) {
        snprintf(buf, len, "weight %g", weight);
    } else {
        snprintf(buf, len, "undrained");
    }
    return buf;
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
    lost = stranded(before, after);
    if (dry_run) {
        const char *basis;
        json_t *shares = dry_run_shares(ctl, before, after, cluster, &basis);
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
        json_array_foreach(lost, i, item)
        {
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
    *done = record(ctl, kind, cluster, value, previous, before->generation, after->generation);
    audit(ctl, *done);
    mr_log(MR_LOG_INFO, "%s %s: %s (generation %llu -> %llu)", kind, cluster, what,
           (unsigned long long)before->generation, (unsigned long long)after->generation);
    *answer = json_pack("{s:I, s:I, s:s, s:s, s:o}", "generation", (json_int_t)after->generation,
                        "previous_generation", (json_int_t)before->generation, "cluster",
                        cluster, "message", what, "change", change_json(*done));
    if (saved > 0) {
        /* The file was renamed into place: a restart would apply the change,
         * so it runs now too, and only its surviving a crash is in doubt. */
        char warning[512];
        snprintf(warning, sizeof(warning),
                 "state_file: %s: the change is in effect and in the file, but may not "
                 "survive a crash", err);
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
                      int64_t deadline_s, double weight, bool dry_run, bool force,
                      json_t **answer)
{
    const struct mr_snapshot *snap = mr_snap_peek();
    struct mr_overrides next = {0};
    struct mr_change *done;
    char what[128];
    int64_t now = time(NULL);
    /* Rounded up: a deadline of N seconds keeps sessions at least N s. */
    int64_t deadline_at = deadline_s > 0 ? (now_ms() + deadline_s * 1000 + 999) / 1000 : 0;
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

static int swap_text(struct mr_control *ctl, char *text, struct mr_errors *errs,
                     uint64_t *before, uint64_t *after)
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
    done = record(ctl, "reload", NULL, json_pack("{s:s}", "file", ctl->conf_path), NULL, before,
                  after);
    done->previous_text = ctl->conf_text;
    ctl->conf_text = text;
    audit(ctl, done);
    mr_log(MR_LOG_INFO, "reloaded %s: generation %llu (was %llu)", ctl->conf_path,
           (unsigned long long)after, (unsigned long long)before);
    return 0;
}

int mr_control_undo(struct mr_control *ctl, json_t **answer)
{
    struct mr_change *target = NULL, *done;
    struct mr_errors errs = {0};
    int status;

    for (size_t age = 0; age < ctl->history_len; age++) {
        struct mr_change *c = history_at(ctl, age);
        if (!c->undone && strcmp(c->kind, "undo") != 0) {
            target = c;
            break;
        }
    }
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
        done = record(ctl, "undo", NULL, json_pack("{s:I, s:s}", "undid", (json_int_t)target->seq,
                                                   "change", "reload"),
                      NULL, before, after);
        audit(ctl, done);
        *answer = json_pack("{s:I, s:I, s:s, s:o}", "generation", (json_int_t)after,
                            "previous_generation", (json_int_t)before, "message",
                            "undid reload: the previous configuration is running",
                            "change", change_json(done));
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
        status = apply(ctl, "undo", cluster, &next, false, true, seq, what, &undo_answer,
                       &applied);
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

/* ---- views --------------------------------------------------------------- */

static void iso_time(int64_t ms, char *buf, size_t len)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void mr_control_cluster_traffic(struct mr_control *ctl, const char *cluster, uint64_t *requests,
                                uint64_t *active, uint64_t *new_sessions, uint64_t *sticky)
{
    *requests = *active = *new_sessions = *sticky = 0;
    for (int i = 0; i < ctl->n_workers; i++) {
        struct mr_stats_cluster *cs =
            atomic_load_explicit(&ctl->workers[i]->stats->clusters, memory_order_acquire);
        for (; cs != NULL; cs = cs->next) {
            if (strcmp(cs->name, cluster) != 0)
                continue;
            *requests += mr_stats_get(&cs->requests);
            *active += mr_stats_get(&cs->active);
            *new_sessions += mr_stats_get(&cs->new_sessions);
            *sticky += mr_stats_get(&cs->sticky_hits);
        }
    }
}

static void endpoint_traffic(struct mr_control *ctl, const char *cluster, const char *address,
                             uint64_t *requests, uint64_t *active)
{
    *requests = *active = 0;
    for (int i = 0; i < ctl->n_workers; i++) {
        struct mr_stats_endpoint *es =
            atomic_load_explicit(&ctl->workers[i]->stats->endpoints, memory_order_acquire);
        for (; es != NULL; es = es->next) {
            if (strcmp(es->cluster, cluster) != 0 || strcmp(es->address, address) != 0)
                continue;
            *requests += mr_stats_get(&es->requests);
            *active += mr_stats_get(&es->active);
        }
    }
}

static const char *cluster_state(const struct mr_snapshot *snap, const struct mr_cluster *c,
                                 int64_t now)
{
    if (!mr_health_cluster_healthy(snap, c))
        return "down";
    if (c->drain == MR_DRAIN_HARD ||
        (c->drain == MR_DRAIN_SOFT && c->drain_deadline_s != 0 && now >= c->drain_deadline_s))
        return "drained";
    if (c->drain == MR_DRAIN_SOFT)
        return "draining";
    return "active";
}

static json_t *drain_json(const struct mr_cluster *c, int64_t now)
{
    char stamp[40];

    if (c->drain == MR_DRAIN_NONE)
        return json_null();
    if (c->drain_deadline_s == 0)
        return json_pack("{s:s, s:n, s:n}", "mode", c->drain == MR_DRAIN_HARD ? "hard" : "soft",
                         "deadline", "deadline_s");
    iso_time(c->drain_deadline_s * 1000, stamp, sizeof(stamp));
    return json_pack("{s:s, s:s, s:I}", "mode", c->drain == MR_DRAIN_HARD ? "hard" : "soft",
                     "deadline", stamp, "deadline_s",
                     (json_int_t)(c->drain_deadline_s > now ? c->drain_deadline_s - now : 0));
}

/* The endpoint's passive-health ejection in force, or JSON null. */
static json_t *ejection_json(const struct mr_endpoint *ep)
{
    const struct mr_health_slot *slot = ep->health;
    int64_t now = mr_passive_now_ms(), until;
    struct timespec wall;
    char stamp[40];

    if (!mr_passive_ejected(ep, now))
        return json_null();
    until = atomic_load(&slot->ejected_until);
    clock_gettime(CLOCK_REALTIME, &wall);
    iso_time((int64_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000 + (until - now), stamp,
             sizeof(stamp));
    return json_pack("{s:s, s:s, s:I, s:i}", "reason",
                     mr_passive_reason_name((enum mr_passive_reason)atomic_load(
                         &slot->eject_reason)),
                     "until", stamp, "remaining_ms", (json_int_t)(until - now), "ejections",
                     atomic_load(&slot->ejections));
}

json_t *mr_control_status(struct mr_control *ctl)
{
    struct mr_snapshot *snap = mr_snap_acquire();
    struct mr_health_transition tr[64];
    size_t n_tr = mr_health_transitions(ctl->health, tr, 64);
    json_t *regions = json_array(), *transitions = json_array(), *out;
    int64_t now = time(NULL);
    char stamp[40];

    for (size_t r = 0; r < snap->n_regions; r++) {
        const struct mr_region *region = &snap->regions[r];
        json_t *clusters = json_array();
        for (size_t k = 0; k < region->n_clusters; k++) {
            const struct mr_cluster *c = &region->clusters[k];
            json_t *endpoints = json_array();
            uint64_t req, act, fresh, sticky;
            for (size_t e = 0; e < c->n_endpoints; e++) {
                const struct mr_endpoint *ep = &c->endpoints[e];
                const struct mr_health_slot *slot = ep->health;
                uint64_t ereq, eact;
                endpoint_traffic(ctl, c->name, ep->address, &ereq, &eact);
                iso_time(slot != NULL ? slot->changed_ms : ctl->started_s * 1000, stamp,
                         sizeof(stamp));
                json_array_append_new(
                    endpoints,
                    json_pack("{s:s, s:s, s:s, s:s, s:{s:I, s:I}, s:b, s:o, s:I}", "address",
                              ep->address, "health", mr_health_endpoint_up(ep) ? "up" : "down",
                              "since", stamp, "last_check",
                              slot != NULL && slot->checks > 0 ? slot->last : "not checked yet",
                              "traffic", "requests", (json_int_t)ereq, "active_connections",
                              (json_int_t)eact, "ejected",
                              mr_passive_ejected(ep, mr_passive_now_ms()), "ejection",
                              ejection_json(ep), "ejections_total",
                              (json_int_t)(slot != NULL ? atomic_load(&slot->ejections_total)
                                                        : 0)));
            }
            mr_control_cluster_traffic(ctl, c->name, &req, &act, &fresh, &sticky);
            json_array_append_new(
                clusters,
                json_pack("{s:s, s:s, s:b, s:I, s:I, s:f, s:f, s:o, s:b, s:b, "
                          "s:{s:I, s:I, s:I, s:I}, s:o}",
                          "name", c->name, "state", cluster_state(snap, c, now), "healthy",
                          mr_health_cluster_healthy(snap, c), "endpoints_up",
                          (json_int_t)mr_health_cluster_up(c), "endpoints_total",
                          (json_int_t)c->n_endpoints, "weight", c->weight, "configured_weight",
                          c->configured_weight, "drain", drain_json(c, now),
                          "takes_new_sessions", mr_pick_takes_new(snap, c), "keeps_sessions",
                          mr_pick_keeps_sessions(snap, c, now), "traffic", "requests",
                          (json_int_t)req, "active_connections", (json_int_t)act,
                          "new_sessions", (json_int_t)fresh, "sticky_hits", (json_int_t)sticky,
                          "endpoints", endpoints));
        }
        json_array_append_new(regions, json_pack("{s:s, s:f, s:f, s:o}", "name", region->name,
                                                 "lat", region->lat, "lon", region->lon,
                                                 "clusters", clusters));
    }
    for (size_t i = 0; i < n_tr; i++) {
        iso_time(tr[i].time_ms, stamp, sizeof(stamp));
        json_array_append_new(transitions,
                              json_pack("{s:s, s:s, s:s, s:s, s:s}", "time", stamp, "cluster",
                                        tr[i].cluster, "address", tr[i].address, "health",
                                        tr[i].up ? "up" : "down", "reason", tr[i].reason));
    }
    iso_time(ctl->started_s * 1000, stamp, sizeof(stamp));
    out = json_pack("{s:I, s:s?, s:s, s:b, s:o, s:o}", "generation", (json_int_t)snap->generation,
                    "config", snap->path, "started", stamp, "stopping", ctl->stopping, "regions",
                    regions, "health_transitions", transitions);
    mr_snap_release(snap);
    return out;
}

static const char *skip_reason(const struct mr_snapshot *snap, const struct mr_cluster *c)
{
    if (!mr_health_cluster_healthy(snap, c))
        return "down";
    if (c->drain != MR_DRAIN_NONE)
        return "drained";
    if (c->weight <= 0)
        return "weight 0";
    return NULL;
}

json_t *mr_control_explain(struct mr_control *ctl, const char *ip, const char *cookie,
                           int *status)
{
    struct mr_snapshot *snap = mr_snap_acquire();
    struct mr_sockaddr addr;
    struct mr_pick_input in = {0};
    struct mr_decision d;
    struct mr_location *loc = &d.loc;
    size_t regions[snap->n_regions + 1];
    enum mr_policy_step steps[snap->n_regions + 1];
    size_t n;
    json_t *candidates = json_array(), *cookie_json = json_null(), *out;
    char cluster[MR_COOKIE_CLUSTER_MAX + 1];
    const char *cookie_cluster = NULL;

    (void)ctl;
    *status = 200;
    if (ip == NULL || mr_netaddr_parse_host(ip, strlen(ip), &addr) != 0) {
        *status = 400;
        mr_snap_release(snap);
        json_decref(candidates);
        return json_pack("{s:s}", "error", "ip: expected an IPv4 or IPv6 address");
    }
    if (cookie != NULL) {
        struct mr_cookie_keys *keys = mr_cookie_keys_new(snap);
        enum mr_cookie_result r =
            keys != NULL ? mr_cookie_verify(keys, cookie, strlen(cookie), time(NULL), cluster,
                                            sizeof(cluster))
                         : MR_COOKIE_MALFORMED;
        mr_cookie_keys_free(keys);
        if (r == MR_COOKIE_VALID)
            cookie_cluster = cluster;
        cookie_json = json_pack("{s:b, s:s, s:s?}", "present", 1, "result",
                                mr_cookie_result_name(r), "cluster", cookie_cluster);
    }
    in.addr = (const struct sockaddr *)&addr.ss;
    in.cookie_cluster = cookie_cluster;
    in.now = time(NULL);
    in.random = (uint64_t)random() << 32 ^ (uint64_t)random();
    mr_pick_session(snap, &in, &d);
    if (!d.located)
        mr_geoip_lookup(snap, in.addr, loc);
    n = mr_policy_regions(snap, loc, regions, steps, snap->n_regions);
    for (size_t i = 0; i < n; i++) {
        const struct mr_region *r = &snap->regions[regions[i]];
        json_t *clusters = json_array();
        for (size_t k = 0; k < r->n_clusters; k++) {
            const struct mr_cluster *c = &r->clusters[k];
            const char *why = skip_reason(snap, c);
            json_t *ejected = json_array();
            for (size_t e = 0; e < c->n_endpoints; e++) {
                json_t *ej = ejection_json(&c->endpoints[e]);
                if (json_is_null(ej))
                    continue;
                json_object_set_new(ej, "address", json_string(c->endpoints[e].address));
                json_array_append_new(ejected, ej);
            }
            json_array_append_new(clusters, json_pack("{s:s, s:b, s:s?, s:o}", "name", c->name,
                                                      "eligible", why == NULL, "reason", why,
                                                      "ejected_endpoints", ejected));
        }
        json_array_append_new(candidates,
                              json_pack("{s:s, s:s, s:o}", "region", r->name, "rule",
                                        mr_policy_step_name(steps[i]), "clusters", clusters));
    }
    out = json_pack("{s:I, s:s, s:{s:b, s:s?, s:s?, s:o, s:o}, s:o, s:o, s:s, s:s?, s:s?}",
                    "generation", (json_int_t)snap->generation, "ip", ip, "location", "found",
                    loc->found, "country", loc->country[0] ? loc->country : NULL, "continent",
                    loc->continent[0] ? loc->continent : NULL, "lat",
                    loc->has_coords ? json_real(loc->lat) : json_null(), "lon",
                    loc->has_coords ? json_real(loc->lon) : json_null(), "cookie", cookie_json,
                    "candidates", candidates, "decision", mr_pick_reason_name(d.reason),
                    "region", d.region != NULL ? d.region->name : NULL, "cluster",
                    d.cluster != NULL ? d.cluster->name : NULL);
    mr_snap_release(snap);
    return out;
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
    if (ctl->workers == NULL)
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
        ctl->workers[i] = mr_worker_new(i, fds, snap->n_listeners);
        if (ctl->workers[i] == NULL)
            return -1;
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
    load_history(ctl, snap->audit_log);
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
    ctl->admin = mr_admin_new(ctl, snap);
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
    for (size_t i = 0; i < MR_CONTROL_HISTORY; i++)
        change_clear(&ctl->history[i]);
    for (size_t i = 0; i < MR_CONTROL_MIX_SAMPLES; i++)
        json_decref(ctl->mix[i].counts);
    free(ctl->conf_text);
    free(ctl->conf_path);
    mr_log(MR_LOG_INFO, "stopped");
}
