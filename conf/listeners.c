/* conf/listeners.c: see listeners.h. */
#include "conf/listeners.h"

#include <stdbool.h>
#include <string.h>

#include <openssl/tls1.h>

#include "conf/jpath.h"

#define LISTENERS_MAX 32

/* Mozilla's "intermediate" TLS 1.2 list: forward secrecy, AEAD only. */
#define DEFAULT_CIPHERS                                                                            \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

static bool read_mode(struct mr_loader *ld, json_t *v, const char *path, enum mr_mode *out)
{
    const char *s;

    if (!mr_jpath_read_string(&ld->jp, v, path, true, &s))
        return false;
    if (strcmp(s, "proxy") == 0)
        *out = MR_MODE_PROXY;
    else if (strcmp(s, "redirect") == 0)
        *out = MR_MODE_REDIRECT;
    else {
        mr_errors_add(ld->errs, "%s: expected \"proxy\" or \"redirect\"", path);
        return false;
    }
    return true;
}

static void load_certificates(struct mr_loader *ld, json_t *tls, const char *tpath,
                              struct mr_tls_conf *conf)
{
    static const char *const keys[] = {"cert", "key", "ocsp", NULL};
    struct mr_jpath_iter it;
    size_t n = mr_jpath_member_array(&ld->jp, tls, tpath, "certificates", &it);

    if (n == 0)
        return;
    conf->certificates = mr_loader_alloc(ld, n, sizeof(*conf->certificates));
    if (conf->certificates == NULL)
        return;
    conf->n_certificates = n;
    while (mr_jpath_next_object(&ld->jp, &it)) {
        struct mr_tls_certificate *c = &conf->certificates[it.i];
        const char *p = it.path;
        json_t *item = it.item;
        const char *s;

        mr_jpath_check_keys(&ld->jp, item, p, keys);
        s = NULL;
        if (mr_jpath_member_string(&ld->jp, item, p, "cert", true, true, &s) && s != NULL)
            c->cert = mr_loader_path(ld, s);
        s = NULL;
        if (mr_jpath_member_string(&ld->jp, item, p, "key", true, true, &s) && s != NULL)
            c->key = mr_loader_path(ld, s);
        s = NULL;
        if (mr_jpath_member_string(&ld->jp, item, p, "ocsp", false, true, &s) && s != NULL)
            c->ocsp = mr_loader_path(ld, s);
    }
}

/* listeners[i].tls; the files themselves are read by router/tls.c. */
static void load_tls(struct mr_loader *ld, json_t *item, const char *lpath, struct mr_listener *l)
{
    static const char *const keys[] = {"certificates",    "min_version", "ciphers",
                                       "ciphersuites",    "alpn",        "session_tickets",
                                       "ticket_rotate_s", NULL};
    static const char *const default_alpn[] = {"http/1.1", NULL};
    json_t *tls = mr_jpath_member(&ld->jp, item, lpath, "tls", false), *v;
    struct mr_tls_conf *conf;
    char p[MR_JPATH_MAX], q[MR_JPATH_MAX];
    const char *s;
    int64_t rotate = 3600;

    if (tls == NULL)
        return;
    mr_jpath_key(p, lpath, "tls");
    if (!mr_jpath_read_object(&ld->jp, tls, p))
        return;
    mr_jpath_check_keys(&ld->jp, tls, p, keys);
    conf = l->tls = mr_loader_alloc(ld, 1, sizeof(*conf));
    if (conf == NULL)
        return;
    load_certificates(ld, tls, p, conf);
    conf->min_version = TLS1_2_VERSION;
    s = NULL;
    if (mr_jpath_member_string(&ld->jp, tls, p, "min_version", false, true, &s) && s != NULL) {
        if (strcmp(s, "TLSv1.3") == 0) {
            conf->min_version = TLS1_3_VERSION;
        } else if (strcmp(s, "TLSv1.2") != 0) {
            mr_jpath_key(q, p, "min_version");
            mr_errors_add(ld->errs,
                          "%s: expected \"TLSv1.2\" or \"TLSv1.3\" (older versions are "
                          "not offered)",
                          q);
        }
    }
    s = DEFAULT_CIPHERS;
    mr_jpath_member_string(&ld->jp, tls, p, "ciphers", false, true, &s);
    conf->ciphers = mr_loader_strdup(ld, s);
    s = NULL;
    if (mr_jpath_member_string(&ld->jp, tls, p, "ciphersuites", false, true, &s) && s != NULL)
        conf->ciphersuites = mr_loader_strdup(ld, s);
    if ((v = mr_jpath_member(&ld->jp, tls, p, "alpn", false)) != NULL) {
        mr_jpath_key(q, p, "alpn");
        conf->alpn = mr_loader_read_strv(ld, v, q);
        for (size_t i = 0; conf->alpn != NULL && conf->alpn[i] != NULL; i++) {
            if (strcmp(conf->alpn[i], "http/1.1") != 0 && strcmp(conf->alpn[i], "http/1.0") != 0) {
                char r[MR_JPATH_MAX];
                mr_jpath_index(r, q, i);
                mr_errors_add(ld->errs,
                              "%s: \"%s\" is not offered: meridian speaks HTTP/1.1 "
                              "(\"http/1.1\" or \"http/1.0\")",
                              r, conf->alpn[i]);
            }
        }
    } else {
        conf->alpn = mr_loader_strv(ld, default_alpn);
    }
    conf->session_tickets = true;
    mr_jpath_member_bool(&ld->jp, tls, p, "session_tickets", &conf->session_tickets);
    mr_jpath_member_int(&ld->jp, tls, p, "ticket_rotate_s", 1, 7 * 86400, &rotate);
    conf->ticket_rotate_s = (int)rotate;
}

/* An array of addresses or CIDR prefixes at path into set. */
static void read_cidr_set(struct mr_loader *ld, json_t *arr, const char *path,
                          struct mr_cidr_set *set)
{
    struct mr_jpath_iter it;
    size_t n = mr_jpath_iter_array(&ld->jp, arr, path, false, &it);

    set->items = mr_loader_alloc(ld, n, sizeof(*set->items));
    if (set->items == NULL)
        return;
    while (mr_jpath_next(&it)) {
        const char *s;

        if (!mr_jpath_read_string(&ld->jp, it.item, it.path, false, &s))
            continue;
        if (mr_cidr_parse(s, &set->items[set->n]) < 0) {
            mr_errors_add(ld->errs, "%s: cannot parse \"%s\" as an address or CIDR prefix", it.path,
                          s);
            continue;
        }
        set->n++;
    }
}

void mr_listeners_load(struct mr_loader *ld, json_t *root)
{
    static const char *const keys[] = {"name",       "address",
                                       "tls",        "proxy_protocol",
                                       "mode",       "redirect_https",
                                       "https_port", "proxy_protocol_from",
                                       NULL};
    struct mr_snapshot *snap = ld->snap;
    struct mr_jpath_iter it;
    size_t n = mr_jpath_member_array(&ld->jp, root, "", "listeners", &it);
    char q[MR_JPATH_MAX];

    if (n == 0)
        return;
    if (n > LISTENERS_MAX) {
        mr_errors_add(ld->errs, "listeners: at most %d listeners", LISTENERS_MAX);
        return;
    }
    snap->listeners = mr_loader_alloc(ld, n, sizeof(*snap->listeners));
    if (snap->listeners == NULL)
        return;
    snap->n_listeners = n;
    while (mr_jpath_next_object(&ld->jp, &it)) {
        size_t i = it.i;
        struct mr_listener *l = &snap->listeners[i];
        const char *p = it.path;
        json_t *item = it.item, *v;
        const char *s = NULL;
        int64_t https_port = 443;

        l->https_port = 443;
        mr_jpath_check_keys(&ld->jp, item, p, keys);
        if (mr_jpath_member_string(&ld->jp, item, p, "name", true, true, &s) && s != NULL) {
            mr_jpath_key(q, p, "name");
            for (size_t j = 0; j < i; j++) {
                if (snap->listeners[j].name != NULL && strcmp(snap->listeners[j].name, s) == 0) {
                    mr_errors_add(ld->errs,
                                  "%s: duplicate listener name \"%s\" (first at "
                                  "listeners[%zu].name)",
                                  q, s, j);
                    break;
                }
            }
            l->name = mr_loader_strdup(ld, s);
        }
        load_tls(ld, item, p, l);
        mr_jpath_member_bool(&ld->jp, item, p, "proxy_protocol", &l->proxy_protocol);
        if ((v = mr_jpath_member(&ld->jp, item, p, "proxy_protocol_from", false)) != NULL) {
            mr_jpath_key(q, p, "proxy_protocol_from");
            read_cidr_set(ld, v, q, &l->proxy_protocol_from);
            if (!l->proxy_protocol)
                mr_errors_warn(ld->errs, "%s: ignored: proxy_protocol is false", q);
        }
        if ((v = mr_jpath_member(&ld->jp, item, p, "mode", false)) != NULL) {
            mr_jpath_key(q, p, "mode");
            read_mode(ld, v, q, &l->mode);
        }
        mr_jpath_member_bool(&ld->jp, item, p, "redirect_https", &l->redirect_https);
        if (l->redirect_https && l->tls != NULL) {
            mr_jpath_key(q, p, "redirect_https");
            mr_errors_add(ld->errs, "%s: only for a plain listener (this one has tls)", q);
        }
        if (mr_jpath_member_int(&ld->jp, item, p, "https_port", 1, 65535, &https_port))
            l->https_port = (int)https_port;
        if (l->mode == MR_MODE_REDIRECT && !l->redirect_https)
            snap->uses_redirect = true;
        s = NULL;
        if (mr_jpath_member_string(&ld->jp, item, p, "address", true, true, &s) && s != NULL) {
            mr_jpath_key(q, p, "address");
            if (!mr_loader_hostport(ld, s, q, &l->addr))
                continue;
            for (size_t j = 0; j < i; j++) {
                if (snap->listeners[j].address != NULL &&
                    mr_netaddr_equal(&snap->listeners[j].addr, &l->addr)) {
                    mr_errors_add(ld->errs,
                                  "%s: duplicate address \"%s\" (first at "
                                  "listeners[%zu].address)",
                                  q, s, j);
                    break;
                }
            }
            l->address = mr_loader_strdup(ld, s);
        }
    }
}

/* "hosts": {"go.example.com": {"mode": "redirect"}}: a mode per request Host. */
void mr_listeners_load_hosts(struct mr_loader *ld, json_t *root)
{
    static const char *const keys[] = {"mode", NULL};
    struct mr_snapshot *snap = ld->snap;
    json_t *obj = mr_jpath_member(&ld->jp, root, "", "hosts", false);
    const char *host;
    json_t *rule;
    char p[MR_JPATH_MAX], q[MR_JPATH_MAX];

    if (obj == NULL || !mr_jpath_read_object(&ld->jp, obj, "hosts") || json_object_size(obj) == 0)
        return;
    snap->hosts = mr_loader_alloc(ld, json_object_size(obj), sizeof(*snap->hosts));
    if (snap->hosts == NULL)
        return;
    json_object_foreach(obj, host, rule) {
        struct mr_host_rule *h = &snap->hosts[snap->n_hosts];
        bool ok = host[0] != '\0';

        mr_jpath_key(p, "hosts", host);
        for (const char *c = host; *c != '\0' && ok; c++)
            ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                 *c == '-' || *c == '.';
        if (!ok) {
            mr_errors_add(ld->errs,
                          "%s: expected a host name (letters, digits, '-' and '.', "
                          "no port)",
                          p);
            continue;
        }
        if (!mr_jpath_read_object(&ld->jp, rule, p))
            continue;
        mr_jpath_check_keys(&ld->jp, rule, p, keys);
        h->mode = MR_MODE_PROXY;
        if (mr_jpath_member(&ld->jp, rule, p, "mode", true) != NULL) {
            mr_jpath_key(q, p, "mode");
            if (!read_mode(ld, json_object_get(rule, "mode"), q, &h->mode))
                continue;
        }
        h->host = mr_loader_strdup(ld, host);
        for (char *c = h->host; c != NULL && *c != '\0'; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c - 'A' + 'a');
        if (h->mode == MR_MODE_REDIRECT)
            snap->uses_redirect = true;
        snap->n_hosts++;
    }
}

void mr_listeners_load_trusted_proxies(struct mr_loader *ld, json_t *root)
{
    json_t *arr = mr_jpath_member(&ld->jp, root, "", "trusted_proxies", false);

    if (arr != NULL)
        read_cidr_set(ld, arr, "trusted_proxies", &ld->snap->trusted_proxies);
}

/* A PROXY header is believed only from proxy_protocol_from, by default
 * trusted_proxies: with neither, any client could forge its address. */
void mr_listeners_check_proxy_protocol_from(struct mr_loader *ld)
{
    const struct mr_snapshot *snap = ld->snap;

    for (size_t i = 0; i < snap->n_listeners; i++) {
        const struct mr_listener *l = &snap->listeners[i];
        if (l->proxy_protocol && l->proxy_protocol_from.n == 0 && snap->trusted_proxies.n == 0)
            mr_errors_add(ld->errs,
                          "listeners[%zu].proxy_protocol_from: required when proxy_protocol "
                          "is true and trusted_proxies is empty",
                          i);
    }
}
