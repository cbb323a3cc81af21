/* control/admin.c: see admin.h. */
#include "control/admin.h"

#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <sys/queue.h>

#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "common/log.h"
#include "control/dashboard.h"

#define MAX_BODY (64 * 1024)
#define MAX_HEADERS (16 * 1024) /* request line and headers */

struct mr_admin {
    struct mr_admin_ops ops;
    struct evhttp *http;
    /* The bound address, fixed at start (a reload never moves it): the only
     * Host and Origin a request may name. */
    struct mr_sockaddr host; /* its address, port 0 */
    unsigned port;
    bool loopback; /* "localhost" names it too */
    bool wildcard; /* 0.0.0.0 or [::]: any host name, this port */
};

static void reply_json(struct evhttp_request *req, int status, json_t *body)
{
    struct evbuffer *out = evbuffer_new();
    char *text = json_dumps(body, JSON_INDENT(2) | JSON_REAL_PRECISION(10));

    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
    if (out != NULL && text != NULL) {
        evbuffer_add(out, text, strlen(text));
        evbuffer_add(out, "\n", 1);
    }
    evhttp_send_reply(req, status, NULL, out);
    free(text);
    if (out != NULL)
        evbuffer_free(out);
    json_decref(body);
}

static void reply_error(struct evhttp_request *req, int status, const char *msg)
{
    reply_json(req, status, json_pack("{s:s}", "error", msg));
}

static void reply_text(struct evhttp_request *req, int status, const char *type, const char *text,
                       size_t len)
{
    struct evbuffer *out = evbuffer_new();

    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
    if (out != NULL)
        evbuffer_add(out, text, len);
    evhttp_send_reply(req, status, NULL, out);
    if (out != NULL)
        evbuffer_free(out);
}

static bool bearer_is(const char *auth, const char *token)
{
    size_t len = strlen(token);

    /* Constant time over the token's length; the length itself may show. */
    return strlen(auth) == len && CRYPTO_memcmp(auth, token, len) == 0;
}

static bool authorized(struct evhttp_request *req, const char *path)
{
    const struct mr_snapshot *snap = mr_snap_peek();
    const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    const char *token = snap->admin.token;
    const char *metrics = snap->admin.metrics_token;

    if (token == NULL)
        return true; /* loopback without a token file: the operator's choice */
    if (auth == NULL || strncmp(auth, "Bearer ", 7) != 0)
        return false;
    auth += 7;
    if (bearer_is(auth, token))
        return true;
    /* The metrics token reads /metrics and nothing else. */
    return metrics != NULL && strcmp(path, "/metrics") == 0 &&
           evhttp_request_get_command(req) == EVHTTP_REQ_GET && bearer_is(auth, metrics);
}

/* True when "HOST[:PORT]" names the admin address: its port (80 when
 * absent) and its address, "localhost" for a loopback one, any host for a
 * wildcard one. Numeric hosts only otherwise: a DNS name pointing here is
 * what a rebinding attack uses. */
static bool names_admin(const struct mr_admin *admin, const char *text, size_t len)
{
    const char *host = text, *port = NULL, *end = text + len;
    size_t host_len;
    unsigned long p = 80;
    struct mr_sockaddr addr;

    if (len > 0 && text[0] == '[') {
        const char *close = memchr(text, ']', len);
        if (close == NULL)
            return false;
        host = text + 1;
        host_len = (size_t)(close - host);
        if (close + 1 < end) {
            if (close[1] != ':')
                return false;
            port = close + 2;
        }
    } else {
        const char *colon = memchr(text, ':', len);
        host_len = colon != NULL ? (size_t)(colon - text) : len;
        if (colon != NULL)
            port = colon + 1;
    }
    if (host_len == 0)
        return false;
    if (port != NULL) {
        if (port == end || end - port > 5)
            return false;
        p = 0;
        for (const char *c = port; c < end; c++) {
            if (*c < '0' || *c > '9')
                return false;
            p = p * 10 + (unsigned long)(*c - '0');
        }
    }
    if (p != admin->port)
        return false;
    if (admin->wildcard)
        return true;
    if (host_len == 9 && strncasecmp(host, "localhost", 9) == 0)
        return admin->loopback;
    return mr_netaddr_parse_host(host, host_len, &addr) == 0 &&
           mr_netaddr_equal(&addr, &admin->host);
}

/* Why a request may not come from where it says (403), or NULL. A browser
 * sends Origin and Sec-Fetch-Site on a page's cross-site calls, and a Host
 * of the attacker's name after DNS rebinding; the dashboard's own calls are
 * same-origin. page: GET /, which another site may open by a link (a
 * top-level navigation) but not load in a frame. */
static const char *cross_site(const struct mr_admin *admin, struct evhttp_request *req, bool page)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    const char *host = evhttp_find_header(in, "Host");
    const char *origin = evhttp_find_header(in, "Origin");
    const char *site = evhttp_find_header(in, "Sec-Fetch-Site");
    const char *dest = evhttp_find_header(in, "Sec-Fetch-Dest");

    if (page && dest != NULL && strcmp(dest, "document") == 0)
        site = NULL;
    if (host != NULL && !names_admin(admin, host, strlen(host)))
        return "Host: not the admin address";
    if (origin != NULL && (strncasecmp(origin, "http://", 7) != 0 ||
                           !names_admin(admin, origin + 7, strlen(origin + 7)) ||
                           (host != NULL && strcasecmp(origin + 7, host) != 0)))
        return "Origin: not the admin address";
    if (site != NULL && strcmp(site, "same-origin") != 0 && strcmp(site, "none") != 0)
        return "Sec-Fetch-Site: not a same-origin request";
    return NULL;
}

/* A change needs Content-Type: application/json (parameters allowed): a
 * page's form or text/plain fetch cannot send it without a CORS preflight,
 * which this API never answers. */
static bool json_content_type(struct evhttp_request *req)
{
    const char *t = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");

    if (t == NULL)
        return false;
    t += strspn(t, " \t");
    if (strncasecmp(t, "application/json", 16) != 0)
        return false;
    t += 16;
    t += strspn(t, " \t");
    return *t == '\0' || *t == ';';
}

static bool method_is(struct evhttp_request *req, enum evhttp_cmd_type cmd, const char *allow)
{
    if (evhttp_request_get_command(req) == cmd)
        return true;
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
    reply_error(req, 405, "method not allowed");
    return false;
}

/* Reads an optional boolean member; false with msg set when it is not one. */
static bool get_bool(json_t *body, const char *key, bool *out, char *msg, size_t cap)
{
    json_t *v = json_object_get(body, key);

    *out = false;
    if (v == NULL || json_is_null(v))
        return true;
    if (!json_is_boolean(v)) {
        snprintf(msg, cap, "%s: expected true or false", key);
        return false;
    }
    *out = json_is_true(v);
    return true;
}

/* Rejects keys the endpoint does not know: a typo must not pass silently. */
static bool known_keys(json_t *body, const char *const *keys, char *msg, size_t cap)
{
    const char *key;
    json_t *v;

    json_object_foreach(body, key, v) {
        bool found = false;
        for (size_t i = 0; keys[i] != NULL && !found; i++)
            found = strcmp(key, keys[i]) == 0;
        if (!found) {
            snprintf(msg, cap, "%.100s: unknown key", key);
            return false;
        }
    }
    return true;
}

int mr_admin_parse_change(const char *action, const char *body, size_t len,
                          struct mr_admin_change *out, char *msg, size_t cap)
{
    static const char *const drain_keys[] = {"mode", "deadline_s", "dry_run", "force", NULL};
    static const char *const weight_keys[] = {"weight", "dry_run", "force", NULL};
    static const char *const undrain_keys[] = {"dry_run", "force", NULL};
    bool is_drain = strcmp(action, "drain") == 0, is_weight = strcmp(action, "weight") == 0;
    json_error_t err;
    json_t *obj, *v;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    out->mode = MR_DRAIN_SOFT;
    obj = len == 0 ? json_object() : json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);
    if (obj == NULL || !json_is_object(obj)) {
        snprintf(msg, cap, "body: expected a JSON object%s%s", obj == NULL ? ": " : "",
                 obj == NULL ? err.text : "");
        json_decref(obj);
        return -1;
    }
    if (!known_keys(obj, is_drain ? drain_keys : (is_weight ? weight_keys : undrain_keys), msg,
                    cap) ||
        !get_bool(obj, "dry_run", &out->dry_run, msg, cap) ||
        !get_bool(obj, "force", &out->force, msg, cap))
        goto out;
    if (is_drain) {
        const char *m = json_string_value(json_object_get(obj, "mode"));
        if (json_object_get(obj, "mode") != NULL &&
            (m == NULL || (strcmp(m, "soft") != 0 && strcmp(m, "hard") != 0))) {
            snprintf(msg, cap, "mode: expected \"soft\" or \"hard\"");
            goto out;
        }
        out->mode = m != NULL && strcmp(m, "hard") == 0 ? MR_DRAIN_HARD : MR_DRAIN_SOFT;
        v = json_object_get(obj, "deadline_s");
        if (v != NULL && !json_is_null(v)) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                json_integer_value(v) > 365 * 86400) {
                snprintf(msg, cap, "deadline_s: expected an integer between 1 and 31536000");
                goto out;
            }
            out->deadline_s = json_integer_value(v);
        }
    } else if (is_weight) {
        v = json_object_get(obj, "weight");
        if (!json_is_number(v) || json_number_value(v) < 0 || !isfinite(json_number_value(v)) ||
            json_number_value(v) > 1e9) {
            snprintf(msg, cap, "weight: expected a number >= 0");
            goto out;
        }
        out->weight = json_number_value(v);
    }
    rc = 0;
out:
    json_decref(obj);
    return rc;
}

static void change(struct mr_admin *admin, struct evhttp_request *req, const char *cluster,
                   const char *action)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    struct mr_admin_change ch;
    json_t *answer = NULL;
    bool is_weight = strcmp(action, "weight") == 0;
    char msg[300];
    int status;

    if (!method_is(req, is_weight ? EVHTTP_REQ_PUT : EVHTTP_REQ_POST, is_weight ? "PUT" : "POST"))
        return;
    if (mr_admin_parse_change(action, (const char *)evbuffer_pullup(in, -1),
                              evbuffer_get_length(in), &ch, msg, sizeof(msg)) != 0) {
        reply_error(req, 400, msg);
        return;
    }
    status = admin->ops.change(admin->ops.ctx, action, cluster, &ch, &answer);
    reply_json(req, status, answer);
}

/* /api/v1/clusters/NAME/ACTION */
static void route_cluster(struct mr_admin *admin, struct evhttp_request *req, const char *rest)
{
    const char *slash = strchr(rest, '/');
    char cluster[128];
    const char *action;

    if (slash == NULL || slash == rest || (size_t)(slash - rest) >= sizeof(cluster)) {
        reply_error(req, 404, "no such path");
        return;
    }
    memcpy(cluster, rest, (size_t)(slash - rest));
    cluster[slash - rest] = '\0';
    action = slash + 1;
    if (strcmp(action, "drain") != 0 && strcmp(action, "undrain") != 0 &&
        strcmp(action, "weight") != 0) {
        reply_error(req, 404, "no such path");
        return;
    }
    change(admin, req, cluster, action);
}

static void explain(struct mr_admin *admin, struct evhttp_request *req)
{
    struct evkeyvalq query;
    const char *uri_query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    int status = 400;
    json_t *answer;

    TAILQ_INIT(&query);
    if (uri_query == NULL || evhttp_parse_query_str(uri_query, &query) != 0) {
        reply_error(req, 400, "ip: required (?ip=ADDRESS)");
        evhttp_clear_headers(&query);
        return;
    }
    answer = admin->ops.explain(admin->ops.ctx, evhttp_find_header(&query, "ip"),
                                evhttp_find_header(&query, "cookie"), &status);
    reply_json(req, status, answer);
    evhttp_clear_headers(&query);
}

/* A reload's errors or warnings: logged, and answered as a JSON array. */
static json_t *logged_lines(char **lines, size_t n, enum mr_log_level level)
{
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(list, json_string(lines[i]));
        mr_log(level, "reload: %s", lines[i]);
    }
    return list;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct mr_admin *admin = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    const char *why;

    if (path == NULL)
        path = "/";
    if (strcmp(path, "/healthz") == 0) {
        if (!method_is(req, EVHTTP_REQ_GET, "GET"))
            return;
        if (admin->ops.stopping(admin->ops.ctx))
            reply_text(req, 503, "text/plain", "stopping\n", 9);
        else
            reply_text(req, 200, "text/plain", "ok\n", 3);
        return;
    }
    if ((why = cross_site(admin, req, strcmp(path, "/") == 0 && cmd == EVHTTP_REQ_GET)) != NULL) {
        reply_error(req, 403, why);
        return;
    }
    if (strcmp(path, "/") == 0 && cmd == EVHTTP_REQ_GET) {
        /* The page itself holds no data: it asks for the token, then calls
         * the API with it. Never in another site's frame (clickjacking). */
        evhttp_add_header(evhttp_request_get_output_headers(req), "X-Frame-Options", "DENY");
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Security-Policy",
                          "frame-ancestors 'none'");
        reply_text(req, 200, "text/html; charset=utf-8", mr_dashboard_html, mr_dashboard_html_len);
        return;
    }
    if (!authorized(req, path)) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                          "Bearer realm=\"meridian\"");
        reply_error(req, 401, "missing or wrong bearer token");
        return;
    }
    if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD && cmd != EVHTTP_REQ_OPTIONS &&
        !json_content_type(req)) {
        reply_error(req, 415, "Content-Type: application/json required");
        return;
    }
    if (strcmp(path, "/") == 0) {
        method_is(req, EVHTTP_REQ_GET, "GET");
    } else if (strcmp(path, "/metrics") == 0) {
        if (method_is(req, EVHTTP_REQ_GET, "GET")) {
            struct evbuffer *out = evbuffer_new();
            admin->ops.metrics(admin->ops.ctx, out);
            evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                              "text/plain; version=0.0.4; charset=utf-8");
            evhttp_send_reply(req, 200, NULL, out);
            evbuffer_free(out);
        }
    } else if (strcmp(path, "/api/v1/status") == 0) {
        if (method_is(req, EVHTTP_REQ_GET, "GET"))
            reply_json(req, 200, admin->ops.status(admin->ops.ctx));
    } else if (strcmp(path, "/api/v1/history") == 0) {
        if (method_is(req, EVHTTP_REQ_GET, "GET"))
            reply_json(req, 200, admin->ops.history(admin->ops.ctx));
    } else if (strcmp(path, "/api/v1/explain") == 0) {
        if (method_is(req, EVHTTP_REQ_GET, "GET"))
            explain(admin, req);
    } else if (strcmp(path, "/api/v1/reload") == 0) {
        if (method_is(req, EVHTTP_REQ_POST, "POST")) {
            struct mr_errors errs = {0};
            uint64_t before = mr_snap_peek()->generation;
            if (admin->ops.reload(admin->ops.ctx, &errs) == 0) {
                json_t *warnings = logged_lines(errs.warnings, errs.n_warnings, MR_LOG_WARN);
                reply_json(req, 200,
                           json_pack("{s:I, s:I, s:s, s:o}", "generation",
                                     (json_int_t)mr_snap_peek()->generation, "previous_generation",
                                     (json_int_t)before, "message", "reloaded", "warnings",
                                     warnings));
            } else {
                json_t *list = logged_lines(errs.errors, errs.n_errors, MR_LOG_ERROR);
                reply_json(req, 400,
                           json_pack("{s:s, s:o, s:I}", "error",
                                     "reload refused: the running configuration stays", "errors",
                                     list, "generation", (json_int_t)before));
            }
            mr_errors_clear(&errs);
        }
    } else if (strcmp(path, "/api/v1/undo") == 0) {
        if (method_is(req, EVHTTP_REQ_POST, "POST")) {
            json_t *answer = NULL;
            int status = admin->ops.undo(admin->ops.ctx, &answer);
            reply_json(req, status, answer);
        }
    } else if (strncmp(path, "/api/v1/clusters/", 17) == 0) {
        route_cluster(admin, req, path + 17);
    } else {
        reply_error(req, 404, "no such path");
    }
}

struct mr_admin *mr_admin_new(struct event_base *base, const struct mr_admin_ops *ops,
                              const struct mr_snapshot *snap)
{
    struct mr_admin *admin;
    char host[64];
    unsigned port = ntohs(snap->admin.addr.ss.ss_family == AF_INET6
                              ? ((const struct sockaddr_in6 *)&snap->admin.addr.ss)->sin6_port
                              : ((const struct sockaddr_in *)&snap->admin.addr.ss)->sin_port);

    if (!mr_netaddr_is_loopback((const struct sockaddr *)&snap->admin.addr.ss) &&
        snap->admin.token == NULL) {
        mr_log(MR_LOG_ERROR, "admin.token_file: required when admin.address is not loopback");
        return NULL;
    }
    admin = calloc(1, sizeof(*admin));
    if (admin == NULL)
        return NULL;
    admin->ops = *ops;
    admin->http = evhttp_new(base);
    if (admin->http == NULL ||
        mr_netaddr_host((const struct sockaddr *)&snap->admin.addr.ss, host, sizeof(host)) < 0 ||
        mr_netaddr_parse_host(host, strlen(host), &admin->host) != 0) {
        mr_admin_free(admin);
        return NULL;
    }
    admin->loopback = mr_netaddr_is_loopback((const struct sockaddr *)&snap->admin.addr.ss);
    admin->wildcard = strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0;
    admin->port = port;
    evhttp_set_max_headers_size(admin->http, MAX_HEADERS);
    evhttp_set_max_body_size(admin->http, MAX_BODY);
    evhttp_set_timeout(admin->http, 10);
    evhttp_set_allowed_methods(admin->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                                EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD |
                                                EVHTTP_REQ_PATCH | EVHTTP_REQ_OPTIONS);
    evhttp_set_gencb(admin->http, on_request, admin);
    if (evhttp_bind_socket(admin->http, host, (ev_uint16_t)port) != 0) {
        mr_log(MR_LOG_ERROR, "admin.address: cannot listen on %s: %m", snap->admin.address);
        mr_admin_free(admin);
        return NULL;
    }
    return admin;
}

void mr_admin_free(struct mr_admin *admin)
{
    if (admin == NULL)
        return;
    if (admin->http != NULL)
        evhttp_free(admin->http);
    free(admin);
}
