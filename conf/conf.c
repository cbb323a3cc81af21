/* conf/conf.c: see conf.h.
 *
 * One pass over the JSON document, section by section, filling a calloc'd
 * snapshot: the small sections here, listeners (listeners.c), regions
 * (regions.c) and routing (routing.c) in files of their own, all sharing
 * one struct mr_loader (loader.h) and the readers of jpath.h. Every check
 * reports "json.path: message" and carries on, so the user sees every
 * problem at once; a snapshot with any error is freed.
 * A value that fails a check leaves the default in place, so later checks
 * that depend on it (timeout_ms vs interval_ms) do not report twice.
 */
#include "conf/conf.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "conf/jpath.h"
#include "conf/listeners.h"
#include "conf/loader.h"
#include "conf/regions.h"
#include "conf/routing.h"
#include "conf/secrets.h"

#define WORKERS_MAX 256
#define ADMIN_TOKEN_MIN 16 /* bytes */

/* ---- sections, in the order of the example file ---- */

static void load_workers(struct mr_loader *ld, json_t *root)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int64_t workers;

    if (cpus < 1)
        cpus = 1;
    workers = cpus > WORKERS_MAX ? WORKERS_MAX : cpus;
    mr_jpath_member_int(&ld->jp, root, "", "workers", 1, WORKERS_MAX, &workers);
    ld->snap->workers = (int)workers;
}

static void load_geoip(struct mr_loader *ld, json_t *root)
{
    static const char *const keys[] = {"database", "country", "latitude", "longitude", NULL};
    static const char *const def_country[] = {"country", "iso_code", NULL};
    static const char *const def_latitude[] = {"location", "latitude", NULL};
    static const char *const def_longitude[] = {"location", "longitude", NULL};
    struct mr_snapshot *snap = ld->snap;
    json_t *obj = mr_jpath_member(&ld->jp, root, "", "geoip", false);
    const char *s = NULL;
    json_t *v;

    if (obj != NULL && mr_jpath_read_object(&ld->jp, obj, "geoip")) {
        mr_jpath_check_keys(&ld->jp, obj, "geoip", keys);
        if (mr_jpath_member_string(&ld->jp, obj, "geoip", "database", true, true, &s) && s != NULL)
            snap->geoip.database = mr_loader_path(ld, s);
        if ((v = mr_jpath_member(&ld->jp, obj, "geoip", "country", false)) != NULL)
            snap->geoip.country = mr_loader_read_strv(ld, v, "geoip.country");
        if ((v = mr_jpath_member(&ld->jp, obj, "geoip", "latitude", false)) != NULL)
            snap->geoip.latitude = mr_loader_read_strv(ld, v, "geoip.latitude");
        if ((v = mr_jpath_member(&ld->jp, obj, "geoip", "longitude", false)) != NULL)
            snap->geoip.longitude = mr_loader_read_strv(ld, v, "geoip.longitude");
    }
    if (snap->geoip.country == NULL)
        snap->geoip.country = mr_loader_strv(ld, def_country);
    if (snap->geoip.latitude == NULL)
        snap->geoip.latitude = mr_loader_strv(ld, def_latitude);
    if (snap->geoip.longitude == NULL)
        snap->geoip.longitude = mr_loader_strv(ld, def_longitude);
}

/* RFC 6265 cookie-name: an RFC 2616 token. */
static bool is_token(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        if (c <= 0x20 || c >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", c) != NULL)
            return false;
    }
    return true;
}

static void load_session(struct mr_loader *ld, json_t *root)
{
    static const char *const keys[] = {"cookie",    "max_age_s", "keys_file", "secure",
                                       "http_only", "same_site", NULL};
    struct mr_snapshot *snap = ld->snap;
    json_t *obj = mr_jpath_member(&ld->jp, root, "", "session", true);
    const char *cookie = "MRD", *same_site = "Lax", *keys_file = NULL;
    int64_t max_age_s = 86400;

    snap->session.secure = false;
    snap->session.http_only = true;
    if (obj != NULL && mr_jpath_read_object(&ld->jp, obj, "session")) {
        mr_jpath_check_keys(&ld->jp, obj, "session", keys);
        if (mr_jpath_member_string(&ld->jp, obj, "session", "cookie", false, false, &cookie) &&
            !is_token(cookie)) {
            mr_errors_add(ld->errs,
                          "session.cookie: \"%s\" is not a valid cookie name (RFC 6265 token)",
                          cookie);
            cookie = "MRD";
        }
        mr_jpath_member_int(&ld->jp, obj, "session", "max_age_s", 1, INT_MAX, &max_age_s);
        mr_jpath_member_bool(&ld->jp, obj, "session", "secure", &snap->session.secure);
        mr_jpath_member_bool(&ld->jp, obj, "session", "http_only", &snap->session.http_only);
        if (mr_jpath_member_string(&ld->jp, obj, "session", "same_site", false, false,
                                   &same_site) &&
            strcmp(same_site, "Strict") != 0 && strcmp(same_site, "Lax") != 0 &&
            strcmp(same_site, "None") != 0) {
            mr_errors_add(ld->errs,
                          "session.same_site: expected one of \"Strict\", \"Lax\", \"None\"");
            same_site = "Lax";
        }
        if (strcmp(same_site, "None") == 0 && !snap->session.secure)
            mr_errors_warn(ld->errs, "session.same_site: \"None\" without session.secure: "
                                     "browsers reject such a cookie");
        if (mr_jpath_member_string(&ld->jp, obj, "session", "keys_file", true, true, &keys_file) &&
            keys_file != NULL) {
            snap->session.keys_file = mr_loader_path(ld, keys_file);
            if (snap->session.keys_file != NULL)
                mr_secrets_read_keys(snap->session.keys_file, "session.keys_file",
                                     &snap->session.keys, &snap->session.n_keys, ld->errs);
        }
    }
    snap->session.cookie = mr_loader_strdup(ld, cookie);
    snap->session.same_site = mr_loader_strdup(ld, same_site);
    snap->session.max_age_s = max_age_s;
}

/* health.passive: ejection of endpoints the data path sees failing. */
static void load_passive(struct mr_loader *ld, json_t *obj)
{
    static const char *const keys[] = {"consecutive_failures", "base_ms", "max_ms",
                                       "max_ejected_percent", NULL};
    struct mr_snapshot *snap = ld->snap;
    int64_t failures = 3, base_ms = 5000, max_ms = 300000, percent = 50;

    if (obj != NULL && mr_jpath_read_object(&ld->jp, obj, "health.passive")) {
        bool base_ok, max_ok;

        mr_jpath_check_keys(&ld->jp, obj, "health.passive", keys);
        mr_jpath_member_int(&ld->jp, obj, "health.passive", "consecutive_failures", 0, 1000,
                            &failures);
        base_ok = mr_jpath_member_int(&ld->jp, obj, "health.passive", "base_ms", 1, 86400000,
                                      &base_ms);
        max_ok = mr_jpath_member_int(&ld->jp, obj, "health.passive", "max_ms", 1, 86400000,
                                     &max_ms);
        if (base_ok && max_ok && max_ms < base_ms)
            mr_errors_add(ld->errs,
                          "health.passive.max_ms: must not be below "
                          "health.passive.base_ms (%lld)",
                          (long long)base_ms);
        mr_jpath_member_int(&ld->jp, obj, "health.passive", "max_ejected_percent", 0, 100,
                            &percent);
    }
    snap->health.passive.consecutive_failures = (int)failures;
    snap->health.passive.base_ms = (int)base_ms;
    snap->health.passive.max_ms = (int)max_ms;
    snap->health.passive.max_ejected_percent = (int)percent;
}

static void load_health(struct mr_loader *ld, json_t *root)
{
    static const char *const keys[] = {"path",       "rise",        "fall",    "interval_ms",
                                       "timeout_ms", "min_healthy", "passive", NULL};
    struct mr_snapshot *snap = ld->snap;
    json_t *obj = mr_jpath_member(&ld->jp, root, "", "health", false);
    const char *path = "/healthz", *s = NULL;
    int64_t interval_ms = 2000, timeout_ms = 1000, rise = 2, fall = 3;
    double min_healthy = 0.5;
    json_t *v;

    if (obj != NULL && mr_jpath_read_object(&ld->jp, obj, "health")) {
        bool interval_ok, timeout_ok;

        mr_jpath_check_keys(&ld->jp, obj, "health", keys);
        if (mr_jpath_member_string(&ld->jp, obj, "health", "path", false, false, &s) && s != NULL) {
            if (s[0] == '/')
                path = s;
            else
                mr_errors_add(ld->errs, "health.path: expected a string starting with \"/\"");
        }
        interval_ok = mr_jpath_member_int(&ld->jp, obj, "health", "interval_ms", 10, INT_MAX,
                                          &interval_ms);
        timeout_ok = mr_jpath_member_int(&ld->jp, obj, "health", "timeout_ms", 1, INT_MAX,
                                         &timeout_ms);
        if (interval_ok && timeout_ok && timeout_ms > interval_ms)
            mr_errors_add(ld->errs, "health.timeout_ms: must not exceed health.interval_ms (%lld)",
                          (long long)interval_ms);
        mr_jpath_member_int(&ld->jp, obj, "health", "rise", 1, INT_MAX, &rise);
        mr_jpath_member_int(&ld->jp, obj, "health", "fall", 1, INT_MAX, &fall);
        if ((v = mr_jpath_member(&ld->jp, obj, "health", "min_healthy", false)) != NULL)
            mr_jpath_read_number(&ld->jp, v, "health.min_healthy", 0, 1, true, "> 0 and <= 1",
                                 &min_healthy);
        load_passive(ld, mr_jpath_member(&ld->jp, obj, "health", "passive", false));
    } else {
        load_passive(ld, NULL);
    }
    snap->health.path = mr_loader_strdup(ld, path);
    snap->health.interval_ms = (int)interval_ms;
    snap->health.timeout_ms = (int)timeout_ms;
    snap->health.rise = (int)rise;
    snap->health.fall = (int)fall;
    snap->health.min_healthy = min_healthy;
}

static void load_timeouts(struct mr_loader *ld, json_t *root)
{
    static const char *const keys[] = {"client_header_ms",    "client_idle_ms",
                                       "upstream_connect_ms", "upstream_response_ms",
                                       "upstream_idle_ms",    "shutdown_grace_ms",
                                       "tunnel_idle_ms",      NULL};
    struct mr_snapshot *snap = ld->snap;
    json_t *obj = mr_jpath_member(&ld->jp, root, "", "timeouts", false);
    int64_t client_header_ms = 10000, client_idle_ms = 60000, upstream_connect_ms = 2000,
            upstream_response_ms = 30000, upstream_idle_ms = 30000, shutdown_grace_ms = 30000,
            tunnel_idle_ms = 300000;

    if (obj != NULL && mr_jpath_read_object(&ld->jp, obj, "timeouts")) {
        mr_jpath_check_keys(&ld->jp, obj, "timeouts", keys);
        mr_jpath_member_int(&ld->jp, obj, "timeouts", "client_header_ms", 1, INT_MAX,
                            &client_header_ms);
        mr_jpath_member_int(&ld->jp, obj, "timeouts", "client_idle_ms", 1, INT_MAX,
                            &client_idle_ms);
        mr_jpath_member_int(&ld->jp, obj, "timeouts", "upstream_connect_ms", 1, INT_MAX,
                            &upstream_connect_ms);
        mr_jpath_member_int(&ld->jp, obj, "timeouts", "upstream_response_ms", 1, INT_MAX,
                            &upstream_response_ms);
        mr_jpath_member_int(&ld->jp, obj, "timeouts", "upstream_idle_ms", 1, INT_MAX,
                            &upstream_idle_ms);
        mr_jpath_member_int(&ld->jp, obj, "timeouts", "shutdown_grace_ms", 0, INT_MAX,
                            &shutdown_grace_ms);
        mr_jpath_member_int(&ld->jp, obj, "timeouts", "tunnel_idle_ms", 1, INT_MAX,
                            &tunnel_idle_ms);
    }
    snap->timeouts.client_header_ms = (int)client_header_ms;
    snap->timeouts.client_idle_ms = (int)client_idle_ms;
    snap->timeouts.upstream_connect_ms = (int)upstream_connect_ms;
    snap->timeouts.upstream_response_ms = (int)upstream_response_ms;
    snap->timeouts.upstream_idle_ms = (int)upstream_idle_ms;
    snap->timeouts.shutdown_grace_ms = (int)shutdown_grace_ms;
    snap->timeouts.tunnel_idle_ms = (int)tunnel_idle_ms;
}

static void load_limits(struct mr_loader *ld, json_t *root)
{
    static const char *const keys[] = {"max_head_bytes", "max_headers", "max_uri_bytes",
                                       "retry_body_bytes", NULL};
    struct mr_snapshot *snap = ld->snap;
    json_t *obj = mr_jpath_member(&ld->jp, root, "", "limits", false);
    int64_t max_head_bytes = 16384, max_headers = 100, max_uri_bytes = 8192;
    int64_t retry_body_bytes = 65536;

    if (obj != NULL && mr_jpath_read_object(&ld->jp, obj, "limits")) {
        mr_jpath_check_keys(&ld->jp, obj, "limits", keys);
        mr_jpath_member_int(&ld->jp, obj, "limits", "max_head_bytes", 1024, 1048576,
                            &max_head_bytes);
        mr_jpath_member_int(&ld->jp, obj, "limits", "max_headers", 1, 1000, &max_headers);
        /* The request target is part of the head, so it cannot be longer. */
        mr_jpath_member_int(&ld->jp, obj, "limits", "max_uri_bytes", 16, max_head_bytes,
                            &max_uri_bytes);
        mr_jpath_member_int(&ld->jp, obj, "limits", "retry_body_bytes", 0, 16777216,
                            &retry_body_bytes);
    }
    if (max_uri_bytes > max_head_bytes)
        max_uri_bytes = max_head_bytes;
    snap->limits.max_head_bytes = (size_t)max_head_bytes;
    snap->limits.max_headers = (size_t)max_headers;
    snap->limits.max_uri_bytes = (size_t)max_uri_bytes;
    snap->limits.retry_body_bytes = (size_t)retry_body_bytes;
}

/* An admin token: read, then at least ADMIN_TOKEN_MIN bytes, so that it
 * cannot be guessed in the requests an attacker can afford. */
static char *read_admin_token(struct mr_loader *ld, const char *file, const char *path)
{
    char *token = mr_secrets_read_token(file, path, ld->errs);

    if (token != NULL && strlen(token) < ADMIN_TOKEN_MIN) {
        mr_errors_add(ld->errs, "%s: %s: token is %zu bytes, at least %d required", path, file,
                      strlen(token), ADMIN_TOKEN_MIN);
        OPENSSL_cleanse(token, strlen(token));
        free(token);
        token = NULL;
    }
    return token;
}

static void load_admin(struct mr_loader *ld, json_t *root)
{
    static const char *const keys[] = {"address", "token_file", "metrics_token_file", NULL};
    struct mr_snapshot *snap = ld->snap;
    json_t *obj = mr_jpath_member(&ld->jp, root, "", "admin", false);
    const char *address = "127.0.0.1:9090", *token_file = NULL, *metrics_token_file = NULL;
    bool address_ok = true;

    if (obj != NULL && mr_jpath_read_object(&ld->jp, obj, "admin")) {
        mr_jpath_check_keys(&ld->jp, obj, "admin", keys);
        if (!mr_jpath_member_string(&ld->jp, obj, "admin", "address", false, true, &address)) {
            address = "127.0.0.1:9090";
            address_ok = false;
        }
        mr_jpath_member_string(&ld->jp, obj, "admin", "token_file", false, true, &token_file);
        mr_jpath_member_string(&ld->jp, obj, "admin", "metrics_token_file", false, true,
                               &metrics_token_file);
    }
    if (address_ok && !mr_loader_hostport(ld, address, "admin.address", &snap->admin.addr))
        address_ok = false;
    snap->admin.address = mr_loader_strdup(ld, address);
    if (address_ok) {
        for (size_t i = 0; i < snap->n_listeners; i++) {
            if (snap->listeners[i].address != NULL &&
                mr_netaddr_equal(&snap->listeners[i].addr, &snap->admin.addr)) {
                mr_errors_add(ld->errs, "admin.address: \"%s\" is also listeners[%zu].address",
                              address, i);
                break;
            }
        }
    }
    if (token_file != NULL) {
        snap->admin.token_file = mr_loader_path(ld, token_file);
        if (snap->admin.token_file != NULL)
            snap->admin.token = read_admin_token(ld, snap->admin.token_file, "admin.token_file");
    } else if (address_ok &&
               !mr_netaddr_is_loopback((const struct sockaddr *)&snap->admin.addr.ss)) {
        mr_errors_add(ld->errs, "admin.token_file: required when admin.address is not loopback");
    }
    if (metrics_token_file != NULL) {
        /* Without token_file every path, /metrics included, is open: a
         * metrics token alone would protect nothing. */
        if (token_file == NULL)
            mr_errors_add(ld->errs, "admin.metrics_token_file: needs admin.token_file");
        snap->admin.metrics_token_file = mr_loader_path(ld, metrics_token_file);
        if (snap->admin.metrics_token_file != NULL)
            snap->admin.metrics_token = read_admin_token(ld, snap->admin.metrics_token_file,
                                                         "admin.metrics_token_file");
    }
}

static void load_files(struct mr_loader *ld, json_t *root)
{
    struct mr_snapshot *snap = ld->snap;
    const char *s = NULL;

    if (mr_jpath_member_string(&ld->jp, root, "", "state_file", false, true, &s) && s != NULL)
        snap->state_file = mr_loader_path(ld, s);
    s = NULL;
    if (mr_jpath_member_string(&ld->jp, root, "", "access_log", false, false, &s) && s != NULL &&
        s[0] != '\0')
        snap->access_log = strcmp(s, "-") == 0 ? mr_loader_strdup(ld, s) : mr_loader_path(ld, s);
    s = NULL;
    /* The audit log of runtime changes: by default beside the state file. */
    if (mr_jpath_member_string(&ld->jp, root, "", "audit_log", false, false, &s) && s != NULL &&
        s[0] != '\0') {
        snap->audit_log = mr_loader_path(ld, s);
    } else if (snap->state_file != NULL) {
        const char *slash = strrchr(snap->state_file, '/');
        int dir_len = slash != NULL ? (int)(slash - snap->state_file) : 0;
        if (asprintf(&snap->audit_log, "%.*s%smeridian-audit.jsonl", dir_len, snap->state_file,
                     slash != NULL ? "/" : "") < 0)
            snap->audit_log = NULL;
    }
}

/* Validates root into a new snapshot that takes over path; NULL when any
 * error was added. source names the input in document-level messages. */
static struct mr_snapshot *build(json_t *root, const char *base_dir, char *path,
                                 struct mr_errors *errs, const char *source)
{
    static const char *const keys[] = {"workers",    "listeners", "trusted_proxies", "geoip",
                                       "session",    "health",    "regions",         "routing",
                                       "timeouts",   "limits",    "admin",           "state_file",
                                       "access_log", "audit_log", "hosts",           NULL};
    struct mr_loader ld = {.errs = errs, .jp = {.errs = errs}, .base_dir = base_dir};
    size_t errors_before = errs->n_errors;
    json_t *routing;

    if (!json_is_object(root)) {
        mr_errors_add(errs, "%s: expected a JSON object at the top level", source);
        free(path);
        return NULL;
    }
    ld.snap = calloc(1, sizeof(*ld.snap));
    if (ld.snap == NULL) {
        mr_errors_add(errs, "%s: out of memory", source);
        free(path);
        return NULL;
    }
    atomic_init(&ld.snap->refs, 1);
    ld.snap->path = path;
    routing = json_object_get(root, "routing");
    ld.proximity = json_is_object(routing) && json_is_true(json_object_get(routing, "proximity"));

    mr_jpath_check_keys(&ld.jp, root, "", keys);
    load_workers(&ld, root);
    mr_listeners_load(&ld, root);
    mr_listeners_load_trusted_proxies(&ld, root);
    mr_listeners_check_proxy_protocol_from(&ld);
    mr_listeners_load_hosts(&ld, root);
    load_geoip(&ld, root);
    load_session(&ld, root);
    load_health(&ld, root);
    mr_regions_load(&ld, root);
    mr_regions_index(&ld);
    mr_routing_load(&ld, root);
    load_timeouts(&ld, root);
    load_limits(&ld, root);
    load_admin(&ld, root);
    load_files(&ld, root);
    mr_regions_check_public_urls(&ld);

    if (ld.oom)
        mr_errors_add(errs, "%s: out of memory", source);
    if (errs->n_errors > errors_before) {
        mr_snap_free(ld.snap);
        return NULL;
    }
    return ld.snap;
}

static void add_syntax_error(struct mr_errors *errs, const char *source, const json_error_t *je)
{
    mr_errors_add(errs, "%s: line %d, column %d: %s", source, je->line, je->column, je->text);
}

struct mr_snapshot *mr_conf_load(const char *path, struct mr_errors *errs)
{
    struct mr_snapshot *snap;
    char *copy, *slash, *base_dir, *abs_path;
    json_error_t je;
    json_t *root;
    FILE *f;

    f = fopen(path, "re");
    if (f == NULL) {
        mr_errors_add(errs, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    root = json_loadf(f, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL && ferror(f)) {
        mr_errors_add(errs, "cannot read %s: %s", path, strerror(errno));
        fclose(f);
        return NULL;
    }
    fclose(f);
    if (root == NULL) {
        add_syntax_error(errs, path, &je);
        return NULL;
    }

    /* Absolute, so a later reload or chdir resolves the same files. */
    abs_path = realpath(path, NULL);
    copy = strdup(abs_path != NULL ? abs_path : path);
    if (copy == NULL) {
        free(abs_path);
        json_decref(root);
        mr_errors_add(errs, "%s: out of memory", path);
        return NULL;
    }
    slash = strrchr(copy, '/');
    if (slash == NULL)
        base_dir = ".";
    else if (slash == copy)
        base_dir = "/";
    else {
        *slash = '\0';
        base_dir = copy;
    }
    /* "/" + "/x" would give "//x": harmless, but keep paths tidy. */
    snap = build(root, strcmp(base_dir, "/") == 0 ? "" : base_dir,
                 abs_path != NULL ? abs_path : strdup(path), errs, path);
    free(copy);
    json_decref(root);
    return snap;
}

struct mr_snapshot *mr_conf_load_string(const char *json, const char *base_dir,
                                        struct mr_errors *errs)
{
    struct mr_snapshot *snap;
    json_error_t je;
    json_t *root;

    root = json_loads(json, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        add_syntax_error(errs, "<string>", &je);
        return NULL;
    }
    snap = build(root, base_dir != NULL ? base_dir : ".", NULL, errs, "<string>");
    json_decref(root);
    return snap;
}
