/* router/tls.c: see tls.h. */
#include "router/tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#define PATH_MAX_LEN 256
#define OCSP_MAX_BYTES (1 << 20)

struct tls_cert {
    SSL_CTX *ctx;
    unsigned char *ocsp; /* DER response to staple; NULL for none */
    size_t ocsp_len;
};

/* A name a certificate answers to: "a.example.com", or "*.example.com". */
struct tls_name {
    char *name;  /* lower case */
    size_t cert; /* index into certs */
};

struct mr_tls_server {
    atomic_int refs;
    struct tls_cert *certs; /* [0] is the default */
    size_t n_certs;
    struct tls_name *names;
    size_t n_names;
    unsigned char alpn[64]; /* wire format: length-prefixed names */
    size_t alpn_len;
    int ticket_rotate_s;
};

/* ---- session ticket keys: process-wide, rotated lazily ---------------- */

struct ticket_key {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
    time_t created; /* 0: empty slot */
};

/* [0] encrypts new tickets; [1] is the previous key, still accepted. A
 * mutex is taken once per handshake that issues or presents a ticket,
 * never per request. */
static struct {
    pthread_mutex_t lock;
    struct ticket_key keys[2];
} tickets = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int new_ticket_key(struct ticket_key *k, time_t now)
{
    if (RAND_bytes(k->name, sizeof(k->name)) != 1 || RAND_bytes(k->aes, sizeof(k->aes)) != 1 ||
        RAND_bytes(k->hmac, sizeof(k->hmac)) != 1)
        return -1;
    k->created = now;
    return 0;
}

/* Copies the key to encrypt with (rotating first when it is due), or the
 * key called name; 1 found current, 2 found previous, 0 none. */
static int ticket_key_get(const unsigned char *name, int rotate_s, struct ticket_key *out)
{
    time_t now = time(NULL);
    int found = 0;

    pthread_mutex_lock(&tickets.lock);
    if (tickets.keys[0].created == 0 || now - tickets.keys[0].created >= rotate_s) {
        struct ticket_key fresh;
        if (new_ticket_key(&fresh, now) == 0) {
            tickets.keys[1] = tickets.keys[0];
            tickets.keys[0] = fresh;
        }
    }
    if (name == NULL) {
        *out = tickets.keys[0];
        found = tickets.keys[0].created != 0;
    } else {
        for (int i = 0; i < 2 && found == 0; i++) {
            /* The previous key only while it is within its second period. */
            if (tickets.keys[i].created != 0 &&
                memcmp(tickets.keys[i].name, name, sizeof(tickets.keys[i].name)) == 0 &&
                (i == 0 || now - tickets.keys[0].created < rotate_s)) {
                *out = tickets.keys[i];
                found = i + 1;
            }
        }
    }
    pthread_mutex_unlock(&tickets.lock);
    return found;
}

static int on_ticket_key(SSL *ssl, unsigned char key_name[16], unsigned char iv[16],
                         EVP_CIPHER_CTX *cipher, EVP_MAC_CTX *mac, int enc)
{
    struct mr_tls_server *srv = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    struct ticket_key key;
    OSSL_PARAM params[2];
    int found;

    found = ticket_key_get(enc ? NULL : key_name, srv->ticket_rotate_s, &key);
    if (found == 0)
        return enc ? -1 : 0; /* unknown key: a full handshake */
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    if (enc) {
        memcpy(key_name, key.name, sizeof(key.name));
        if (RAND_bytes(iv, 16) != 1 ||
            EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), NULL, key.aes, iv) != 1 ||
            EVP_MAC_init(mac, key.hmac, sizeof(key.hmac), params) != 1)
            found = -1;
    } else if (EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), NULL, key.aes, iv) != 1 ||
               EVP_MAC_init(mac, key.hmac, sizeof(key.hmac), params) != 1) {
        found = -1;
    }
    OPENSSL_cleanse(&key, sizeof(key));
    /* 2 asks OpenSSL for a fresh ticket: under the current key when the
     * previous one was used, and always in TLS 1.3, whose clients use a
     * ticket once (RFC 8446 C.4). */
    if (!enc && found == 1 && SSL_version(ssl) >= TLS1_3_VERSION)
        found = 2;
    return found;
}

/* ---- references -------------------------------------------------------- */

static int ssl_server_index = -1;
static pthread_once_t index_once = PTHREAD_ONCE_INIT;

static void server_unref(struct mr_tls_server *srv)
{
    if (srv == NULL || atomic_fetch_sub(&srv->refs, 1) != 1)
        return;
    for (size_t i = 0; i < srv->n_certs; i++) {
        SSL_CTX_free(srv->certs[i].ctx);
        free(srv->certs[i].ocsp);
    }
    for (size_t i = 0; i < srv->n_names; i++)
        free(srv->names[i].name);
    free(srv->certs);
    free(srv->names);
    free(srv);
}

/* SSL_free() drops the connection's reference through this. */
static void free_ssl_server(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                            void *argp)
{
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    server_unref(ptr);
}

static void make_index(void)
{
    ssl_server_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, free_ssl_server);
}

SSL *mr_tls_new_ssl(struct mr_tls_server *srv)
{
    SSL *ssl = SSL_new(srv->certs[0].ctx);

    if (ssl == NULL)
        return NULL;
    atomic_fetch_add(&srv->refs, 1);
    if (SSL_set_ex_data(ssl, ssl_server_index, srv) != 1) {
        server_unref(srv);
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_accept_state(ssl);
    return ssl;
}

/* ---- handshake callbacks ------------------------------------------------ */

static const struct tls_cert *cert_for_name(const struct mr_tls_server *srv, const char *name)
{
    char lower[256], wild[258];
    size_t len = strlen(name);
    const char *dot;

    if (len == 0 || len >= sizeof(lower))
        return NULL;
    for (size_t i = 0; i <= len; i++)
        lower[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
    for (size_t i = 0; i < srv->n_names; i++)
        if (strcmp(srv->names[i].name, lower) == 0)
            return &srv->certs[srv->names[i].cert];
    /* A wildcard stands for exactly one label. */
    dot = strchr(lower, '.');
    if (dot == NULL || dot == lower)
        return NULL;
    snprintf(wild, sizeof(wild), "*%s", dot);
    for (size_t i = 0; i < srv->n_names; i++)
        if (strcmp(srv->names[i].name, wild) == 0)
            return &srv->certs[srv->names[i].cert];
    return NULL;
}

static int on_servername(SSL *ssl, int *alert, void *arg)
{
    const struct mr_tls_server *srv = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    const struct tls_cert *cert;
    (void)alert;

    if (name == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    cert = cert_for_name(srv, name);
    if (cert == NULL)
        return SSL_TLSEXT_ERR_NOACK; /* the default certificate answers */
    if (cert->ctx != SSL_get_SSL_CTX(ssl) && SSL_set_SSL_CTX(ssl, cert->ctx) == NULL)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    return SSL_TLSEXT_ERR_OK;
}

static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *out_len,
                   const unsigned char *in, unsigned int in_len, void *arg)
{
    const struct mr_tls_server *srv = arg;
    unsigned char *selected;
    (void)ssl;

    if (SSL_select_next_proto(&selected, out_len, srv->alpn, (unsigned)srv->alpn_len, in, in_len) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* no common protocol: carry on without ALPN */
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
}

static int on_status_request(SSL *ssl, void *arg)
{
    /* The context SNI chose answers, with its own arg. */
    const struct tls_cert *cert = arg;
    unsigned char *copy;

    if (cert == NULL || cert->ocsp == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    copy = OPENSSL_memdup(cert->ocsp, cert->ocsp_len);
    if (copy == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    SSL_set_tlsext_status_ocsp_resp(ssl, copy, (long)cert->ocsp_len);
    return SSL_TLSEXT_ERR_OK;
}

/* ---- loading ------------------------------------------------------------ */

/* The latest queued OpenSSL error as text, clearing the queue. */
static const char *ssl_error(char *buf, size_t cap)
{
    unsigned long e = ERR_peek_last_error();

    if (e == 0)
        snprintf(buf, cap, "unknown error");
    else
        ERR_error_string_n(e, buf, cap);
    ERR_clear_error();
    return buf;
}

/* A readable regular file, or an error naming why not. */
static bool check_readable(const char *path, const char *jpath, struct mr_errors *errs)
{
    FILE *f = fopen(path, "rb");

    if (f == NULL) {
        mr_errors_add(errs, "%s: cannot read %s: %s", jpath, path, strerror(errno));
        return false;
    }
    fclose(f);
    return true;
}

static void format_time(const ASN1_TIME *t, char *out, size_t cap)
{
    struct tm tm;

    if (ASN1_TIME_to_tm(t, &tm) != 1 || strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, cap, "an unreadable date");
}

static bool add_name(struct mr_tls_server *srv, const char *name, size_t len, size_t cert)
{
    struct tls_name *grown;
    char *copy;

    /* An earlier certificate with the same name keeps it. */
    for (size_t i = 0; i < srv->n_names; i++)
        if (strlen(srv->names[i].name) == len && strncasecmp(srv->names[i].name, name, len) == 0)
            return true;
    copy = strndup(name, len);
    grown = realloc(srv->names, (srv->n_names + 1) * sizeof(*grown));
    if (copy == NULL || grown == NULL) {
        free(copy);
        if (grown != NULL)
            srv->names = grown;
        return false;
    }
    for (char *c = copy; *c != '\0'; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c + 32);
    srv->names = grown;
    srv->names[srv->n_names].name = copy;
    srv->names[srv->n_names].cert = cert;
    srv->n_names++;
    return true;
}

/* The DNS names of the subjectAltName, else the subject's common name. */
static bool collect_names(struct mr_tls_server *srv, X509 *x, size_t cert)
{
    GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    bool ok = true, any = false;

    for (int i = 0; sans != NULL && i < sk_GENERAL_NAME_num(sans) && ok; i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
        if (gn->type != GEN_DNS)
            continue;
        ok = add_name(srv, (const char *)ASN1_STRING_get0_data(gn->d.dNSName),
                      (size_t)ASN1_STRING_length(gn->d.dNSName), cert);
        any = true;
    }
    GENERAL_NAMES_free(sans);
    if (!any && ok) {
        char cn[256];
        int n = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
        if (n > 0)
            ok = add_name(srv, cn, (size_t)n, cert);
    }
    return ok;
}

static bool load_ocsp(struct tls_cert *cert, const char *path, const char *jpath,
                      struct mr_errors *errs)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    const unsigned char *p;
    size_t n;
    OCSP_RESPONSE *resp;

    if (f == NULL) {
        mr_errors_add(errs, "%s: cannot read %s: %s", jpath, path, strerror(errno));
        return false;
    }
    buf = malloc(OCSP_MAX_BYTES);
    n = buf != NULL ? fread(buf, 1, OCSP_MAX_BYTES, f) : 0;
    fclose(f);
    p = buf;
    resp = n > 0 && n < OCSP_MAX_BYTES ? d2i_OCSP_RESPONSE(NULL, &p, (long)n) : NULL;
    if (resp == NULL || OCSP_response_status(resp) != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        mr_errors_add(errs, "%s: %s is not a successful DER OCSP response", jpath, path);
        OCSP_RESPONSE_free(resp);
        free(buf);
        ERR_clear_error();
        return false;
    }
    OCSP_RESPONSE_free(resp);
    /* Kept as long as the snapshot: only its own size, not the read buffer's. */
    cert->ocsp = realloc(buf, n);
    if (cert->ocsp == NULL)
        cert->ocsp = buf;
    cert->ocsp_len = n;
    return true;
}

/* Encrypted keys are refused instead of prompting on a terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *arg)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)arg;
    return 0;
}

static EVP_PKEY *read_key(const char *path)
{
    FILE *f = fopen(path, "r");
    EVP_PKEY *key;

    if (f == NULL)
        return NULL;
    key = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
    fclose(f);
    return key;
}

/* One certificate's context, configured as the listener says. */
static bool load_certificate(struct mr_tls_server *srv, const struct mr_tls_conf *conf, size_t i,
                             const char *tpath, struct mr_errors *errs)
{
    static const unsigned char sid_ctx[] = "meridian";
    const struct mr_tls_certificate *c = &conf->certificates[i];
    struct tls_cert *cert = &srv->certs[i];
    char cpath[PATH_MAX_LEN], kpath[PATH_MAX_LEN], opath[PATH_MAX_LEN], err[256], when[64];
    SSL_CTX *ctx;
    X509 *x;
    EVP_PKEY *key;

    snprintf(cpath, sizeof(cpath), "%s.certificates[%zu].cert", tpath, i);
    snprintf(kpath, sizeof(kpath), "%s.certificates[%zu].key", tpath, i);
    snprintf(opath, sizeof(opath), "%s.certificates[%zu].ocsp", tpath, i);
    ctx = cert->ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        mr_errors_add(errs, "%s: %s", cpath, ssl_error(err, sizeof(err)));
        return false;
    }
    if (!check_readable(c->cert, cpath, errs) || !check_readable(c->key, kpath, errs))
        return false;
    if (SSL_CTX_use_certificate_chain_file(ctx, c->cert) != 1) {
        mr_errors_add(errs, "%s: cannot load %s: %s", cpath, c->cert, ssl_error(err, sizeof(err)));
        return false;
    }
    x = SSL_CTX_get0_certificate(ctx);
    if (X509_cmp_current_time(X509_get0_notAfter(x)) <= 0) {
        format_time(X509_get0_notAfter(x), when, sizeof(when));
        mr_errors_add(errs, "%s: certificate %s expired on %s", cpath, c->cert, when);
        return false;
    }
    if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0) {
        format_time(X509_get0_notBefore(x), when, sizeof(when));
        mr_errors_warn(errs, "%s: certificate %s is not valid before %s", cpath, c->cert, when);
    }
    /* Read apart from the context, so a key of another certificate is
     * reported as such and not as OpenSSL's "key values mismatch". */
    key = read_key(c->key);
    if (key == NULL) {
        mr_errors_add(errs, "%s: cannot load %s: %s", kpath, c->key, ssl_error(err, sizeof(err)));
        return false;
    }
    if (X509_check_private_key(x, key) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1) {
        ERR_clear_error();
        EVP_PKEY_free(key);
        mr_errors_add(errs, "%s: %s does not match %s (%s)", kpath, c->key, cpath, c->cert);
        return false;
    }
    EVP_PKEY_free(key);
    if (c->ocsp != NULL && !load_ocsp(cert, c->ocsp, opath, errs))
        return false;
    if (!collect_names(srv, x, i)) {
        mr_errors_add(errs, "%s: out of memory", cpath);
        return false;
    }

    SSL_CTX_set_min_proto_version(ctx, conf->min_version);
    if (SSL_CTX_set_cipher_list(ctx, conf->ciphers) != 1) {
        ERR_clear_error();
        mr_errors_add(errs, "%s.ciphers: no usable cipher in \"%s\"", tpath, conf->ciphers);
        return false;
    }
    if (conf->ciphersuites != NULL && SSL_CTX_set_ciphersuites(ctx, conf->ciphersuites) != 1) {
        ERR_clear_error();
        mr_errors_add(errs, "%s.ciphersuites: no usable suite in \"%s\"", tpath,
                      conf->ciphersuites);
        return false;
    }
    /* No renegotiation (a CPU sink for clients), server's cipher order,
     * a peer that closes without close_notify is a plain EOF. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF |
                                 (conf->session_tickets ? 0 : SSL_OP_NO_TICKET));
    /* Writes come from evbuffer chunks that move between attempts;
     * idle connections give their 34 KiB of record buffers back. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    /* Whole socket reads instead of a header read and a body read per record. */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
    SSL_CTX_set_num_tickets(ctx, 1);
    SSL_CTX_set_app_data(ctx, srv);
    if (conf->session_tickets)
        SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket_key);
    SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
    SSL_CTX_set_tlsext_servername_arg(ctx, srv);
    SSL_CTX_set_alpn_select_cb(ctx, on_alpn, srv);
    SSL_CTX_set_tlsext_status_cb(ctx, on_status_request);
    SSL_CTX_set_tlsext_status_arg(ctx, cert);
    return true;
}

static struct mr_tls_server *build_server(const struct mr_tls_conf *conf, const char *tpath,
                                          struct mr_errors *errs)
{
    struct mr_tls_server *srv = calloc(1, sizeof(*srv));
    bool ok = true;

    if (srv == NULL || (srv->certs = calloc(conf->n_certificates, sizeof(*srv->certs))) == NULL) {
        free(srv);
        mr_errors_add(errs, "%s: out of memory", tpath);
        return NULL;
    }
    atomic_init(&srv->refs, 1);
    srv->n_certs = conf->n_certificates;
    srv->ticket_rotate_s = conf->ticket_rotate_s;
    for (size_t i = 0; conf->alpn != NULL && conf->alpn[i] != NULL; i++) {
        size_t len = strlen(conf->alpn[i]);
        if (srv->alpn_len + 1 + len > sizeof(srv->alpn))
            break;
        srv->alpn[srv->alpn_len++] = (unsigned char)len;
        memcpy(srv->alpn + srv->alpn_len, conf->alpn[i], len);
        srv->alpn_len += len;
    }
    /* Every certificate is checked, so the user sees every problem at once. */
    for (size_t i = 0; i < conf->n_certificates; i++)
        if (!load_certificate(srv, conf, i, tpath, errs))
            ok = false;
    if (!ok) {
        server_unref(srv);
        return NULL;
    }
    return srv;
}

static void release_servers(struct mr_snapshot *snap)
{
    for (size_t i = 0; i < snap->n_listeners; i++) {
        server_unref(snap->listeners[i].tls_server);
        snap->listeners[i].tls_server = NULL;
    }
}

int mr_tls_attach(struct mr_snapshot *snap, struct mr_errors *errs)
{
    size_t errors_before = errs->n_errors;
    bool any = false;

    pthread_once(&index_once, make_index);
    for (size_t i = 0; i < snap->n_listeners; i++) {
        struct mr_listener *l = &snap->listeners[i];
        char tpath[64];

        if (l->tls == NULL)
            continue;
        snprintf(tpath, sizeof(tpath), "listeners[%zu].tls", i);
        l->tls_server = build_server(l->tls, tpath, errs);
        any = true;
    }
    if (any && mr_snap_on_release(snap, release_servers) != 0) {
        release_servers(snap);
        mr_errors_add(errs, "out of memory");
    }
    if (errs->n_errors > errors_before) {
        release_servers(snap);
        return -1;
    }
    return 0;
}
