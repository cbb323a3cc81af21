/* router/cookie.c: see cookie.h. */
#include "router/cookie.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#define VERSION_TAG "v1"
#define KID_MAX 32   /* as conf/secrets.c accepts */
#define MAC_BYTES 32 /* SHA-256 */
#define MAC_CHARS 43 /* base64url of 32 bytes, no padding */
#define INT64_DIGITS 19

struct cookie_key {
    char kid[KID_MAX + 1];
    size_t kid_len;
    EVP_MAC_CTX *ctx; /* keyed once; EVP_MAC_init(ctx, NULL, ...) resets it */
};

/* Cookies that verified, so a session's next requests skip the HMAC: the
 * whole value is the key (its MAC included), compared in constant time. */
#define VERIFIED_SLOTS 256

struct verified {
    size_t len; /* 0: empty */
    char value[MR_COOKIE_VALUE_MAX];
    char cluster[MR_COOKIE_CLUSTER_MAX + 1];
    int64_t issued, expires;
};

struct mr_cookie_keys {
    EVP_MAC *mac;
    size_t n_keys;
    struct cookie_key *keys;   /* keys[0] signs */
    struct verified *verified; /* VERIFIED_SLOTS, by a hash of the value */
};

static size_t verified_slot(const char *value, size_t len)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)value[i]) * 1099511628211ULL;
    return (size_t)(h % VERIFIED_SLOTS);
}

/* The fields of a value: the kid as a span into it, the rest decoded. */
struct parsed {
    const char *kid; /* into the value */
    size_t kid_len;
    char cluster[MR_COOKIE_CLUSTER_MAX + 1]; /* decoded, no NUL inside */
    size_t cluster_len;
    int64_t issued, expires;
    unsigned char mac[MAC_BYTES]; /* decoded */
    size_t signed_len;            /* everything before the last dot */
};

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* ---- base64url, no padding ---- */

static size_t b64url_len(size_t n)
{
    return n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
}

/* Writes b64url_len(n) characters (no NUL). */
static void b64url_encode(const unsigned char *in, size_t n, char *out)
{
    size_t i = 0;

    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

        *out++ = b64url_alphabet[v >> 18];
        *out++ = b64url_alphabet[(v >> 12) & 63];
        *out++ = b64url_alphabet[(v >> 6) & 63];
        *out++ = b64url_alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;

        *out++ = b64url_alphabet[v >> 18];
        *out++ = b64url_alphabet[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;

        *out++ = b64url_alphabet[v >> 18];
        *out++ = b64url_alphabet[(v >> 12) & 63];
        *out++ = b64url_alphabet[(v >> 6) & 63];
    }
}

/* The 6-bit value of c, or -1 when c is not in the alphabet. */
static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '-') {
        return 62;
    }
    if (c == '_') {
        return 63;
    }
    return -1;
}

/* Decodes in[0..n) into out (at least n * 3 / 4 bytes); returns the decoded
 * length, or -1 on a bad character, an impossible length (n % 4 == 1) or
 * non-zero trailing bits, so every byte string has one encoding only. */
static long b64url_decode(const char *in, size_t n, unsigned char *out)
{
    uint32_t acc = 0;
    int bits = 0;
    long len = 0;

    if (n % 4 == 1) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        int v = b64url_value((unsigned char)in[i]);

        if (v < 0) {
            return -1;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[len++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return acc == 0 ? len : -1;
}

/* ---- parsing ---- */

static bool is_kid_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

/* Parses a decimal without sign or leading zero into *out; false when s is
 * not one or it overflows int64. */
static bool parse_time(const char *s, size_t n, int64_t *out)
{
    int64_t v = 0;

    if (n == 0 || n > INT64_DIGITS || (s[0] == '0' && n > 1)) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        if (v > (INT64_MAX - (s[i] - '0')) / 10) {
            return false;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* Splits value into its six dot-separated fields and checks each one's
 * syntax; false when the value is malformed. Reads only value[0..len). */
static bool parse_value(const char *value, size_t len, struct parsed *p)
{
    const char *field[6];
    size_t flen[6], n = 0, start = 0;
    long dec;

    for (size_t i = 0; i <= len; i++) {
        if (i == len || value[i] == '.') {
            if (n == 6) {
                return false;
            }
            field[n] = value + start;
            flen[n] = i - start;
            n++;
            start = i + 1;
        }
    }
    if (n != 6) {
        return false;
    }
    if (flen[0] != sizeof(VERSION_TAG) - 1 || memcmp(field[0], VERSION_TAG, flen[0]) != 0) {
        return false;
    }
    if (flen[1] == 0 || flen[1] > KID_MAX) {
        return false;
    }
    for (size_t i = 0; i < flen[1]; i++) {
        if (!is_kid_char((unsigned char)field[1][i])) {
            return false;
        }
    }
    if (flen[2] == 0 || flen[2] > b64url_len(MR_COOKIE_CLUSTER_MAX)) {
        return false;
    }
    dec = b64url_decode(field[2], flen[2], (unsigned char *)p->cluster);
    if (dec <= 0 || (size_t)dec > MR_COOKIE_CLUSTER_MAX ||
        memchr(p->cluster, '\0', (size_t)dec) != NULL) {
        return false;
    }
    p->cluster_len = (size_t)dec;
    if (!parse_time(field[3], flen[3], &p->issued) || !parse_time(field[4], flen[4], &p->expires) ||
        p->expires <= p->issued) {
        return false;
    }
    if (flen[5] != MAC_CHARS || b64url_decode(field[5], flen[5], p->mac) != MAC_BYTES) {
        return false;
    }
    p->kid = field[1];
    p->kid_len = flen[1];
    p->signed_len = (size_t)(field[5] - value) - 1;
    return true;
}

/* ---- MAC ---- */

/* HMAC-SHA256 of msg[0..n) with key into out; 0 or -1. */
static int compute_mac(struct cookie_key *key, const char *msg, size_t n,
                       unsigned char out[MAC_BYTES])
{
    size_t out_len = 0;

    /* A NULL key reinitializes the keyed context: about 2.3 times cheaper
     * than EVP_MAC_CTX_dup() of a template, which allocates. */
    if (EVP_MAC_init(key->ctx, NULL, 0, NULL) != 1 ||
        EVP_MAC_update(key->ctx, (const unsigned char *)msg, n) != 1 ||
        EVP_MAC_final(key->ctx, out, &out_len, MAC_BYTES) != 1 || out_len != MAC_BYTES) {
        return -1;
    }
    return 0;
}

/* ---- API ---- */

const char *mr_cookie_result_name(enum mr_cookie_result r)
{
    switch (r) {
    case MR_COOKIE_VALID: return "valid";
    case MR_COOKIE_MALFORMED: return "malformed";
    case MR_COOKIE_UNKNOWN_KEY: return "unknown_key";
    case MR_COOKIE_BAD_SIGNATURE: return "bad_signature";
    case MR_COOKIE_EXPIRED: return "expired";
    }
    return "malformed";
}

struct mr_cookie_keys *mr_cookie_keys_new(const struct mr_snapshot *snap)
{
    struct mr_cookie_keys *k;
    OSSL_PARAM params[2];

    if (snap == NULL || snap->session.n_keys == 0) {
        return NULL;
    }
    k = calloc(1, sizeof(*k));
    if (k == NULL) {
        return NULL;
    }
    k->keys = calloc(snap->session.n_keys, sizeof(*k->keys));
    k->verified = calloc(VERIFIED_SLOTS, sizeof(*k->verified));
    k->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (k->keys == NULL || k->verified == NULL || k->mac == NULL) {
        goto fail;
    }
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    for (size_t i = 0; i < snap->session.n_keys; i++) {
        const struct mr_session_key *sk = &snap->session.keys[i];
        struct cookie_key *key = &k->keys[i];
        size_t kid_len = strlen(sk->kid);

        if (kid_len == 0 || kid_len > KID_MAX) {
            goto fail;
        }
        memcpy(key->kid, sk->kid, kid_len + 1);
        key->kid_len = kid_len;
        key->ctx = EVP_MAC_CTX_new(k->mac);
        k->n_keys = i + 1;
        if (key->ctx == NULL || EVP_MAC_init(key->ctx, sk->secret, sk->secret_len, params) != 1) {
            goto fail;
        }
    }
    return k;

fail:
    mr_cookie_keys_free(k);
    return NULL;
}

void mr_cookie_keys_free(struct mr_cookie_keys *k)
{
    if (k == NULL) {
        return;
    }
    for (size_t i = 0; i < k->n_keys; i++) {
        EVP_MAC_CTX_free(k->keys[i].ctx);
    }
    free(k->keys);
    free(k->verified);
    EVP_MAC_free(k->mac);
    free(k);
}

size_t mr_cookie_sign(struct mr_cookie_keys *k, const char *cluster, int64_t now, int64_t max_age_s,
                      char *out, size_t cap)
{
    struct cookie_key *key;
    unsigned char mac[MAC_BYTES];
    size_t cluster_len, len;
    int n;

    if (k == NULL || k->n_keys == 0 || cluster == NULL || out == NULL || now < 0 ||
        max_age_s <= 0 || now > INT64_MAX - max_age_s) {
        return 0;
    }
    key = &k->keys[0];
    cluster_len = strlen(cluster);
    if (cluster_len == 0 || cluster_len > MR_COOKIE_CLUSTER_MAX) {
        return 0;
    }
    /* "v1." kid "." cluster: checked before writing, so cap is never passed. */
    len = sizeof(VERSION_TAG) - 1 + 1 + key->kid_len + 1;
    if (len + b64url_len(cluster_len) >= cap) {
        return 0;
    }
    memcpy(out, VERSION_TAG ".", sizeof(VERSION_TAG));
    memcpy(out + sizeof(VERSION_TAG), key->kid, key->kid_len);
    out[len - 1] = '.';
    b64url_encode((const unsigned char *)cluster, cluster_len, out + len);
    len += b64url_len(cluster_len);
    n = snprintf(out + len, cap - len, ".%" PRId64 ".%" PRId64, now, now + max_age_s);
    if (n < 0 || (size_t)n >= cap - len) {
        return 0;
    }
    len += (size_t)n;
    if (len + 1 + MAC_CHARS >= cap || compute_mac(key, out, len, mac) != 0) {
        return 0;
    }
    out[len++] = '.';
    b64url_encode(mac, MAC_BYTES, out + len);
    len += MAC_CHARS;
    out[len] = '\0';
    return len;
}

enum mr_cookie_result mr_cookie_verify(struct mr_cookie_keys *k, const char *value, size_t len,
                                       int64_t now, char *cluster_out, size_t cluster_cap)
{
    struct parsed p;
    struct cookie_key *key = NULL;
    unsigned char expected[MAC_BYTES];
    struct verified *seen;

    /* Nothing longer than what sign writes can be ours. */
    if (k == NULL || value == NULL || len == 0 || len >= MR_COOKIE_VALUE_MAX) {
        return MR_COOKIE_MALFORMED;
    }
    seen = &k->verified[verified_slot(value, len)];
    if (seen->len == len && CRYPTO_memcmp(seen->value, value, len) == 0 && now < seen->expires &&
        (now > INT64_MAX - MR_COOKIE_CLOCK_SKEW_S ||
         seen->issued <= now + MR_COOKIE_CLOCK_SKEW_S) &&
        strlen(seen->cluster) < cluster_cap && cluster_out != NULL) {
        strcpy(cluster_out, seen->cluster);
        return MR_COOKIE_VALID;
    }
    if (!parse_value(value, len, &p)) {
        return MR_COOKIE_MALFORMED;
    }
    for (size_t i = 0; i < k->n_keys; i++) {
        if (k->keys[i].kid_len == p.kid_len && memcmp(k->keys[i].kid, p.kid, p.kid_len) == 0) {
            key = &k->keys[i];
            break;
        }
    }
    if (key == NULL) {
        return MR_COOKIE_UNKNOWN_KEY;
    }
    if (compute_mac(key, value, p.signed_len, expected) != 0 ||
        CRYPTO_memcmp(p.mac, expected, MAC_BYTES) != 0) {
        return MR_COOKIE_BAD_SIGNATURE;
    }
    /* Authentic from here on: what is left are the fields' meanings. */
    if (now <= INT64_MAX - MR_COOKIE_CLOCK_SKEW_S && p.issued > now + MR_COOKIE_CLOCK_SKEW_S) {
        return MR_COOKIE_MALFORMED;
    }
    if (cluster_out == NULL || p.cluster_len >= cluster_cap) {
        return MR_COOKIE_MALFORMED;
    }
    if (now >= p.expires) {
        return MR_COOKIE_EXPIRED;
    }
    memcpy(cluster_out, p.cluster, p.cluster_len);
    cluster_out[p.cluster_len] = '\0';
    memcpy(seen->value, value, len);
    memcpy(seen->cluster, p.cluster, p.cluster_len);
    seen->cluster[p.cluster_len] = '\0';
    seen->issued = p.issued;
    seen->expires = p.expires;
    seen->len = len;
    return MR_COOKIE_VALID;
}

/* RFC 6265 cookie-octet: visible ASCII but DQUOTE, comma, semicolon and
 * backslash. */
static bool is_cookie_octet(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x2B) || (c >= 0x2D && c <= 0x3A) ||
           (c >= 0x3C && c <= 0x5B) || (c >= 0x5D && c <= 0x7E);
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

const char *mr_cookie_find(const char *header_value, size_t len, const char *name,
                           size_t *value_len)
{
    size_t name_len, i = 0;

    if (header_value == NULL || name == NULL || (name_len = strlen(name)) == 0) {
        return NULL;
    }
    while (i < len) {
        size_t pair_end, n_start, n_end, v_start, v_end;
        const char *eq;

        /* One "name=value" pair up to the next ';' (or the end). */
        while (i < len && (is_blank(header_value[i]) || header_value[i] == ';')) {
            i++;
        }
        n_start = i;
        while (i < len && header_value[i] != ';') {
            i++;
        }
        pair_end = i;
        eq = memchr(header_value + n_start, '=', pair_end - n_start);
        if (eq == NULL) {
            continue;
        }
        n_end = (size_t)(eq - header_value);
        while (n_end > n_start && is_blank(header_value[n_end - 1])) {
            n_end--;
        }
        if (n_end - n_start != name_len || memcmp(header_value + n_start, name, name_len) != 0) {
            continue;
        }
        v_start = (size_t)(eq - header_value) + 1;
        while (v_start < pair_end && is_blank(header_value[v_start])) {
            v_start++;
        }
        v_end = pair_end;
        while (v_end > v_start && is_blank(header_value[v_end - 1])) {
            v_end--;
        }
        if (v_end - v_start >= 2 && header_value[v_start] == '"' &&
            header_value[v_end - 1] == '"') {
            v_start++;
            v_end--;
        }
        if (value_len != NULL) {
            *value_len = v_end - v_start;
        }
        return header_value + v_start;
    }
    return NULL;
}

size_t mr_cookie_set_header(const struct mr_snapshot *snap, const char *value, size_t value_len,
                            bool tls, char *out, size_t cap)
{
    int n;

    if (snap == NULL || snap->session.cookie == NULL || value == NULL || out == NULL ||
        value_len > INT32_MAX) {
        return 0;
    }
    for (size_t i = 0; i < value_len; i++) {
        if (!is_cookie_octet((unsigned char)value[i])) {
            return 0;
        }
    }
    n = snprintf(out, cap, "Set-Cookie: %s=%.*s; Max-Age=%" PRId64 "; Path=/%s%s; SameSite=%s\r\n",
                 snap->session.cookie, (int)value_len, value, snap->session.max_age_s,
                 snap->session.http_only ? "; HttpOnly" : "",
                 snap->session.secure || tls ? "; Secure" : "",
                 snap->session.same_site != NULL ? snap->session.same_site : "Lax");
    if (n < 0 || (size_t)n >= cap) {
        return 0;
    }
    return (size_t)n;
}
